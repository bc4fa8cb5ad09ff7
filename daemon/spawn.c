/* spawn.c - run a helper program to its end (see spawn.h).
 *
 * posix_spawn(): glibc implements it with clone(CLONE_VFORK) and reports a
 * failed execve() as its return value - the close-on-exec error-pipe trick
 * of libuv, done by libc - so "exec `/usr/sbin/runc`: No such file or
 * directory" stays distinct from "runc exited with status 1".  The pid is
 * registered with the reaper under its lock across the spawn, so the orphan
 * reaper can never take a helper's status. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "heartbeat.h"
#include "util.h"

struct tailbuf {
        char data[SPAWN_OUTPUT_MAX + 1];
        size_t len;
};

static void tail_append(struct tailbuf *t, const char *p, size_t n)
{
        if (n > SPAWN_OUTPUT_MAX) {
                p += n - SPAWN_OUTPUT_MAX;
                n = SPAWN_OUTPUT_MAX;
        }
        if (t->len + n > SPAWN_OUTPUT_MAX) {
                size_t drop = t->len + n - SPAWN_OUTPUT_MAX;
                memmove(t->data, t->data + drop, t->len - drop);
                t->len -= drop;
        }
        memcpy(t->data + t->len, p, n);
        t->len += n;
}

/* Read what is there; false at EOF or on an error. */
static bool drain(int fd, struct tailbuf *t)
{
        char buf[4096];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n > 0) {
                        tail_append(t, buf, (size_t)n);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 && errno == EAGAIN;
        }
}

char *spawn_exit_text(const struct proc_exit *e)
{
        if (e->status == WAIT_EXITED)
                return xasprintf("exited with status %d", e->exit_code);
        if (e->status == WAIT_SIGNALED)
                return xasprintf("killed by signal %d (%s)", e->signal, strsignal(e->signal));
        return xstrdup(e->status == WAIT_TIMEOUT ? "timed out" : "cancelled");
}

void spawn_result_done(struct spawn_result *r)
{
        if (r) {
                free(r->output);
                r->output = NULL;
        }
}

/* posix_spawn argv with stdout and stderr on out_fd (>= 3), stdin
 * /dev/null, the pid registered before it can exit. */
static int start(const struct spawn_request *req, int out_fd, struct pidref *ret, struct err *err)
{
        static char *const no_env[] = { NULL };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&attr);
        /* The daemon blocks signals in its threads and ignores SIGPIPE. */
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        /* A session of its own: a signal to the daemon's process group (a
         * Ctrl-C, a supervisor) never reaches a runtime, which would pass
         * it on to a running container. */
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);

        pid_t pid;
        *ret = PIDREF_NULL;
        reaper_lock();
        int r = posix_spawn(&pid, req->argv[0], &fa, &attr, req->argv, req->envp ? req->envp : no_env);
        if (r == 0)
                pidref_register_locked(pid, ret);
        reaper_unlock();
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return err_set(err, ERR_RUNTIME, r, "exec `%s`", req->argv[0]);
        return 0;
}

/* fd made >= 3 (dup2(fd, fd) would keep close-on-exec): fd itself, or a
 * duplicate in *dup to close. */
static int high_fd(int fd, int *dup, struct err *err)
{
        if (fd >= 3)
                return fd;
        *dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (*dup < 0)
                return err_errno(err, ERR_INTERNAL, "dup");
        return *dup;
}

int spawn_start(const struct spawn_request *req, struct pidref *ret, struct err *err)
{
        _cleanup_close_ int low_fd = -1;
        *ret = PIDREF_NULL;
        if (req->out_fd < 0)
                return err_set(err, ERR_INVALID, 0, "spawn `%s`: no output fd", req->argv[0]);
        int out_fd = high_fd(req->out_fd, &low_fd, err);
        if (out_fd < 0)
                return -1;
        return start(req, out_fd, ret, err);
}

int spawn_run(const struct spawn_request *req, struct spawn_result *ret, struct err *err)
{
        _cleanup_close_ int rd = -1, wr = -1, low_fd = -1;
        int out_fd = req->out_fd;
        if (out_fd < 0) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return err_errno(err, ERR_INTERNAL, "pipe");
                rd = p[0];
                wr = p[1];
                if (fcntl(rd, F_SETFL, O_NONBLOCK) < 0)
                        return err_errno(err, ERR_INTERNAL, "pipe");
                out_fd = wr;
        } else if ((out_fd = high_fd(out_fd, &low_fd, err)) < 0) {
                return -1;
        }

        struct pidref child;
        if (start(req, out_fd, &child, err) < 0)
                return -1;
        if (wr >= 0)
                close(TAKE_FD(wr));

        struct tailbuf *out = rd >= 0 ? xcalloc(1, sizeof *out) : NULL;
        int64_t deadline = now_mono_ms() + req->timeout_ms;
        struct proc_exit ex = { 0 };
        int ret_code = 0;
        for (;;) {
                /* Wait for the child while draining the pipe: a helper that
                 * fills the pipe would otherwise never end. */
                if (rd >= 0) {
                        struct pollfd pfd[2] = { { .fd = rd, .events = POLLIN },
                                                 { .fd = child.fd, .events = POLLIN } };
                        int64_t left = deadline - now_mono_ms();
                        int slice = child.fd >= 0 ? (int)(left < 0 ? 0 : left > HEARTBEAT_SLICE_MS ? HEARTBEAT_SLICE_MS : left)
                                                  : (int)(left < 0 ? 0 : left < 10 ? left : 10);
                        if (poll(pfd, child.fd >= 0 ? 2 : 1, slice) > 0 && pfd[0].revents && !drain(rd, out))
                                close(TAKE_FD(rd));
                }
                int64_t until = rd >= 0 ? now_mono_ms() : deadline;
                if (pidref_wait(&child, until, -1, &ex, err) < 0) {
                        ret_code = err_wrap(err, "`%s`", req->argv[0]);
                        break;
                }
                if (ex.status != WAIT_TIMEOUT)
                        break;
                if (now_mono_ms() >= deadline) {
                        pidref_signal(&child, SIGKILL);
                        struct proc_exit ignored;
                        struct err e2 = ERR_INIT;
                        if (pidref_wait(&child, now_mono_ms() + 5000, -1, &ignored, &e2) < 0)
                                pidref_release(&child);
                        ret_code = err_set(err, ERR_RUNTIME, 0, "`%s` timed out after %lld ms and was killed",
                                           req->argv[0], (long long)req->timeout_ms);
                        break;
                }
        }
        pidref_release(&child);

        /* The child is gone; take what it left in the pipe without waiting
         * for an EOF that a grandchild holding the pipe could delay forever. */
        if (rd >= 0)
                drain(rd, out);
        if (ret_code == 0) {
                *ret = (struct spawn_result){ .exit = ex };
                if (out) {
                        out->data[out->len] = '\0';
                        ret->output = xstrdup(out->data);
                }
        }
        free(out);
        return ret_code;
}
