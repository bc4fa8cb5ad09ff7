/* spawn.c - run a helper program to its end (see spawn.h).
 *
 * The child is made with clone(CLONE_VM | CLONE_VFORK), as glibc's
 * posix_spawn() makes it, and does what posix_spawn() was asked to do (a
 * session of its own, stdio, no other fd, signals at their defaults and
 * unblocked) before its execve(); a failed execve() is reported through
 * memory the parent shares, so "exec `/usr/sbin/runc`: No such file or
 * directory" stays distinct from "runc exited with status 1".  Not
 * posix_spawn() itself: it maps a stack for each child and unmaps it after
 * (a TLB shoot-down across the daemon's threads), 60 to 70 us of the
 * spawning thread's CPU of 130 here on each job's runtime start; these
 * stacks are kept for the next child.  The pid is registered with the
 * reaper under its lock across the spawn, so the orphan reaper can never
 * take a helper's status. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/heartbeat.h"
#include "base/util.h"

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

/* The children's stacks: one for each spawn under way at once, kept. */
#define CHILD_STACK_BYTES (64 * 1024)

static pthread_mutex_t stacks_lock = PTHREAD_MUTEX_INITIALIZER;
static void **free_stacks;
static size_t n_free_stacks, cap_free_stacks;

/* Below each stack, one page that faults (a page of this host's size:
 * 64 KiB on some arm64 kernels). */
static size_t guard_bytes(void)
{
        long pg = sysconf(_SC_PAGESIZE);
        return pg > 0 ? (size_t)pg : 4096;
}

/* The top of a stack from stack_take(), where the child starts. */
static void *stack_top(void *s)
{
        return (char *)s + guard_bytes() + CHILD_STACK_BYTES;
}

static void *stack_take(void)
{
        void *s = NULL;
        pthread_mutex_lock(&stacks_lock);
        if (n_free_stacks)
                s = free_stacks[--n_free_stacks];
        pthread_mutex_unlock(&stacks_lock);
        if (s)
                return s;
        size_t guard = guard_bytes();
        s = mmap(NULL, guard + CHILD_STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
        if (s == MAP_FAILED)
                return NULL;
        if (mprotect(s, guard, PROT_NONE) < 0) {
                munmap(s, guard + CHILD_STACK_BYTES);
                return NULL;
        }
        return s;
}

static void stack_give(void *s)
{
        pthread_mutex_lock(&stacks_lock);
        if (n_free_stacks == cap_free_stacks) {
                cap_free_stacks = cap_free_stacks ? cap_free_stacks * 2 : 8;
                free_stacks = xrealloc(free_stacks, cap_free_stacks * sizeof *free_stacks);
        }
        free_stacks[n_free_stacks++] = s;
        pthread_mutex_unlock(&stacks_lock);
}

struct child {
        char *const *argv;
        char *const *envp;
        int out_fd;                /* >= 3 */
        const char *cwd;           /* NULL: the daemon's */
        bool oom_first;            /* spawn_request's */
        int err;                   /* the child's: errno of what failed before its execve() */
        const char *step;          /* ...and which call that was */
};

/* The sigset the kernel takes (rt_sigprocmask's size argument). */
#define KERNEL_SIGSET_BYTES sizeof(uint64_t)

/* The fallback of close_range(3, ~0U) (Linux before 5.9, or a seccomp
 * policy that refuses it, as glibc's closefrom falls back): every fd past
 * 2 that /proc/self/fd lists, its own too (close-on-exec). */
struct kernel_dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[];
};

__attribute__((no_sanitize_address)) static long close_from_3(void)
{
        long dir = syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return -1;
        char buf[2048] __attribute__((aligned(8)));
        for (;;) {
                long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
                if (n <= 0)
                        return n;
                /* procfs lists fds by number from where it left off:
                 * closing those already listed moves nothing. */
                for (long at = 0; at < n;) {
                        const struct kernel_dirent64 *d = (const struct kernel_dirent64 *)(buf + at);
                        at += d->reclen;
                        long fd = 0;
                        const char *p = d->name;
                        for (; *p >= '0' && *p <= '9' && fd < (1L << 30); p++)
                                fd = fd * 10 + (*p - '0');
                        if (p != d->name && !*p && fd > 2 && fd != dir)
                                syscall(SYS_close, fd);
                }
        }
}

/* In the child, on its own stack, sharing the daemon's memory until its
 * execve(): system calls only (no libc state, no sanitizer's interceptor
 * touched from here), and every signal blocked until the last one. */
__attribute__((no_sanitize_address)) static int child_main(void *arg)
{
        struct child *c = arg;
        /* Every signal at its default (SIG_IGN, as SIGPIPE is here, would
         * outlive the execve): an all-zero kernel sigaction is SIG_DFL,
         * no flags, on every architecture's layout. */
        uint64_t dfl[4] = { 0 };
        for (long sig = 1; sig <= 64; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        syscall(SYS_rt_sigaction, sig, dfl, NULL, KERNEL_SIGSET_BYTES);
        /* A session of its own: a signal to the daemon's process group (a
         * Ctrl-C, a supervisor) never reaches a runtime, which would pass
         * it on to a running container. */
        c->step = "setsid";
        if (syscall(SYS_setsid) < 0)
                goto fail;
        c->step = "dup3 of its output";
        if (syscall(SYS_dup3, c->out_fd, STDOUT_FILENO, 0) < 0 || syscall(SYS_dup3, c->out_fd, STDERR_FILENO, 0) < 0)
                goto fail;
        c->step = "open /dev/null";
        long in = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
        if (in < 0 || (in != STDIN_FILENO && syscall(SYS_dup3, in, STDIN_FILENO, 0) < 0))
                goto fail;
        c->step = "close the daemon's fds";
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0 && close_from_3() < 0)
                goto fail;
        c->step = "chdir";
        if (c->cwd && syscall(SYS_chdir, c->cwd) < 0)
                goto fail;
        if (c->oom_first) {
                c->step = "set its oom_score_adj";
                long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
                if (fd < 0 || syscall(SYS_write, fd, "1000", 4) != 4)
                        goto fail;
                syscall(SYS_close, fd);
        }
        c->step = "unblock signals";
        uint64_t none = 0;
        if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, KERNEL_SIGSET_BYTES) < 0)
                goto fail;
        c->step = NULL;   /* execve's own failure: "exec `PATH`: ..." */
        syscall(SYS_execve, c->argv[0], c->argv, c->envp);
fail:
        c->err = errno ? errno : EIO;
        syscall(SYS_exit_group, 127);
        return 127;
}

/* argv with stdout and stderr on out_fd (>= 3), stdin /dev/null, the pid
 * registered before it can exit. */
static int start(const struct spawn_request *req, int out_fd, struct pidref *ret, struct err *err)
{
        static char *const no_env[] = { NULL };
        *ret = PIDREF_NULL;
        void *stack = stack_take();
        if (!stack)
                return err_errno(err, ERR_RUNTIME, "exec `%s`: a stack for the child", req->argv[0]);
        struct child c = { .argv = req->argv, .envp = req->envp ? req->envp : no_env, .out_fd = out_fd,
                           .cwd = req->cwd, .oom_first = req->oom_first };
        /* Every signal blocked across the clone (glibc's own ones too): no
         * handler may run in the child while it shares our memory. */
        uint64_t all = ~(uint64_t)0, old = 0;
        syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, KERNEL_SIGSET_BYTES);
        reaper_lock();
        /* The parent waits here until the child has called execve() or
         * exited (CLONE_VFORK).  Its pidfd comes with it (CLONE_PIDFD; a
         * kernel without it leaves pidfd at -1).  Its exit signal stays
         * SIGCHLD: an execve() sets it back to that anyway. */
        int pidfd = -1;
        pid_t pid = clone(child_main, stack_top(stack), CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &c, &pidfd);
        if (pid < 0 && (errno == EINVAL || errno == EMFILE || errno == ENFILE)) {
                /* A kernel (or an emulation of one) that refuses the flag,
                 * or no fd left for the pidfd: the child still starts, and
                 * is waited for by polling. */
                pidfd = -1;
                pid = clone(child_main, stack_top(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
        }
        int clone_errno = errno;
        if (pid > 0 && c.err) {
                /* Its execve() failed: reaped here, never seen by the reaper. */
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                if (pidfd >= 0)
                        close(pidfd);
        } else if (pid > 0) {
                pidref_register_locked(pid, pidfd, ret);
        }
        reaper_unlock();
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, KERNEL_SIGSET_BYTES);
        stack_give(stack);
        if (pid < 0)
                return err_set(err, ERR_RUNTIME, clone_errno, "exec `%s`: clone", req->argv[0]);
        if (c.err && c.step)
                return err_set(err, ERR_RUNTIME, c.err, "exec `%s`: the child's %s", req->argv[0], c.step);
        if (c.err)
                return err_set(err, ERR_RUNTIME, c.err, "exec `%s`", req->argv[0]);
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

/* SIGKILL, then reaped (or given up on after 5 s). */
static void kill_child(struct pidref *child)
{
        pidref_signal(child, SIGKILL);
        struct proc_exit ignored;
        struct err e2 = ERR_INIT;
        if (pidref_wait(child, now_mono_ms() + 5000, -1, &ignored, &e2) < 0)
                pidref_release(child);
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
        int64_t watch_ms = req->watch ? (req->watch_ms > 0 ? req->watch_ms : HEARTBEAT_SLICE_MS) : 0;
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
                        if (watch_ms && slice > watch_ms)
                                slice = (int)watch_ms;
                        if (poll(pfd, child.fd >= 0 ? 2 : 1, slice) > 0 && pfd[0].revents && !drain(rd, out))
                                close(TAKE_FD(rd));
                }
                int64_t until = rd >= 0 ? now_mono_ms() : deadline;
                if (rd < 0 && watch_ms && until > now_mono_ms() + watch_ms)
                        until = now_mono_ms() + watch_ms;
                if (pidref_wait(&child, until, -1, &ex, err) < 0) {
                        ret_code = err_wrap(err, "`%s`", req->argv[0]);
                        break;
                }
                if (ex.status != WAIT_TIMEOUT)
                        break;
                if (req->watch && req->watch(req->watch_ctx, err) < 0) {
                        kill_child(&child);
                        ret_code = err_wrap(err, "`%s` was killed", req->argv[0]);
                        break;
                }
                if (now_mono_ms() >= deadline) {
                        kill_child(&child);
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
