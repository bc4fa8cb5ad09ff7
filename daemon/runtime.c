/* runtime.c - drives an OCI runtime (youki, crun, runc) through the CLI
 * subset the three share, waits for container inits as their subreaper, and
 * picks the runtime that can actually run a container on this host.
 *
 * Owns: the table of child pids that somebody is about to wait for (below),
 * and the probe bundles it writes under probe_dir during runtime_resolve().
 * Threads: every worker thread calls create/start/wait/kill/delete
 * concurrently; a housekeeping thread calls runtime_reap_orphans(); main
 * calls runtime_setup_reaper() and runtime_resolve() once.  A `struct
 * runtime` is read-only after resolve, so it is shared without a lock.
 *
 * DESIGN: who reaps which child.  The daemon is a child subreaper, so three
 * kinds of children end up with it:
 *   - the runtime CLI processes it spawns itself (CHILD_CLI): cli_spawn()
 *     waits for exactly that pid;
 *   - container inits, re-parented to us when `create` exits (CHILD_CREATED
 *     from then on, CHILD_WAITING while runtime_wait() waits on them);
 *   - anything else that gets orphaned below us (a runtime's helper, a
 *     container whose job was abandoned): runtime_reap_orphans() reaps it.
 * A pid enters the table under `children_lock` before it can become a
 * zombie nobody expects (cli_spawn holds the lock across posix_spawn), and
 * runtime_reap_orphans() never reaps a CLI or WAITING pid.  When it reaps a
 * CREATED pid (an init that died before anybody waited, or whose job gave
 * up after a timeout) it keeps the status in the table (CHILD_REAPED), so a
 * later runtime_wait() still gets it; unclaimed statuses expire after
 * REAPED_TTL_MS.  Nothing here may hold children_lock across a blocking
 * wait.
 *
 * Spawning uses posix_spawn(): glibc implements it with clone(CLONE_VFORK)
 * and reports a failed execve() as its return value - the close-on-exec
 * error-pipe trick of libuv, done by libc - so "exec `/usr/sbin/runc`: No
 * such file or directory" stays distinct from "runc exited with status 1".
 * The child gets stdin from /dev/null, stdout and stderr on one fd, no other
 * fd (closefrom 3), an empty signal mask and default dispositions (the
 * daemon blocks signals in its threads and may ignore SIGPIPE). */
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

extern char **environ;

#define CLI_TIMEOUT_MS      30000   /* any one runtime CLI call */
#define VERSION_TIMEOUT_MS  5000
#define PROBE_DEADLINE_MS   10000
#define OUTPUT_MAX          8192    /* captured CLI output we keep (the tail) */
#define MSG_MAX             480     /* runtime message quoted in an error */
#define REAPED_TTL_MS       (10 * 60 * 1000)

/* ---- the child table (see DESIGN) ---- */

enum child_state { CHILD_CLI, CHILD_CREATED, CHILD_WAITING, CHILD_REAPED };

struct child {
        pid_t pid;
        enum child_state state;
        int code;            /* CHILD_REAPED: si_code and si_status */
        int status;
        int64_t reaped_at;
};

static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;
static struct child *children;
static size_t n_children, cap_children;

/* All child_* helpers run with children_lock held. */
static struct child *child_find(pid_t pid)
{
        for (size_t i = 0; i < n_children; i++)
                if (children[i].pid == pid)
                        return &children[i];
        return NULL;
}

static struct child *child_set(pid_t pid, enum child_state state)
{
        struct child *c = child_find(pid);
        if (!c) {
                if (n_children == cap_children) {
                        cap_children = cap_children ? cap_children * 2 : 16;
                        children = xrealloc(children, cap_children * sizeof *children);
                }
                c = &children[n_children++];
                *c = (struct child){ .pid = pid };
        }
        c->state = state;
        return c;
}

static void child_remove(pid_t pid)
{
        struct child *c = child_find(pid);
        if (c)
                *c = children[--n_children];
}

static void fill_exit(int code, int status, struct runtime_exit *ret)
{
        *ret = (struct runtime_exit){ 0 };
        if (code == CLD_EXITED) {
                ret->status = WAIT_EXITED;
                ret->exit_code = status;
        } else {
                ret->status = WAIT_SIGNALED;
                ret->signal = status;
        }
}

/* ---- small text helpers ---- */

static bool id_ok(const char *id)
{
        if (!id || !*id || id[0] == '-' || id[0] == '.' || strlen(id) > 200)
                return false;
        for (const char *p = id; *p; p++)
                if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return false;
        return true;
}

/* Append s to a growing "; "-separated string. */
static void join(char **acc, const char *s)
{
        char *n = *acc ? xasprintf("%s; %s", *acc, s) : xstrdup(s);
        free(*acc);
        *acc = n;
}

/* Extract the value of msg="..." from a logrus line (runc), unescaping
 * \" and \\; NULL when the line has none. */
static char *logrus_msg(const char *line, size_t len)
{
        const char *m = memmem(line, len, "msg=\"", 5);
        if (!m)
                return NULL;
        const char *p = m + 5, *end = line + len;
        char *out = xmalloc(len + 1), *o = out;
        while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end)
                        p++;
                *o++ = *p++;
        }
        *o = '\0';
        return out;
}

/* Turn a runtime's error output into one line fit for an error message:
 * runc's logrus lines give their msg="..." (errors first), other runtimes'
 * plain lines are kept as they are; long output keeps its end. */
static char *tidy_output(const char *text)
{
        _cleanup_free_ char *errors = NULL, *msgs = NULL, *plain = NULL;
        for (const char *line = text ? text : ""; *line;) {
                size_t len = strcspn(line, "\n");
                while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
                        len--;
                char *msg = logrus_msg(line, len);
                if (msg) {
                        if (memmem(line, len, "level=error", 11) || memmem(line, len, "level=fatal", 11))
                                join(&errors, msg);
                        else
                                join(&msgs, msg);
                        free(msg);
                } else if (len) {
                        _cleanup_free_ char *l = strndup(line, len);
                        if (!l)
                                abort();
                        join(&plain, l);
                }
                line += strcspn(line, "\n");
                if (*line)
                        line++;
        }
        const char *best = errors ? errors : plain ? plain : msgs;
        if (!best)
                return xstrdup("(no output)");
        size_t n = strlen(best);
        if (n > MSG_MAX)
                return xasprintf("...%s", best + n - MSG_MAX);
        return xstrdup(best);
}

char *runtime_error_text(const char *output)
{
        return tidy_output(output);
}

/* Does a runtime's output say the container is not there?  runc: "container
 * does not exist"; crun: "error opening file `.../status`: No such file or
 * directory"; youki: "container ... does not exist". */
static bool says_gone(const char *text)
{
        return text && (strstr(text, "does not exist") || strstr(text, "not exist") ||
                        strstr(text, "No such file or directory") || strstr(text, "not found"));
}

static char *status_text(int status)
{
        if (WIFEXITED(status))
                return xasprintf("exited with status %d", WEXITSTATUS(status));
        if (WIFSIGNALED(status))
                return xasprintf("killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return xasprintf("ended with wait status %#x", (unsigned)status);
}

/* ---- spawning one CLI call ---- */

struct tailbuf {
        char data[OUTPUT_MAX + 1];
        size_t len;
};

static void tail_append(struct tailbuf *t, const char *p, size_t n)
{
        if (n > OUTPUT_MAX) {
                p += n - OUTPUT_MAX;
                n = OUTPUT_MAX;
        }
        if (t->len + n > OUTPUT_MAX) {
                size_t drop = t->len + n - OUTPUT_MAX;
                memmove(t->data, t->data + drop, t->len - drop);
                t->len -= drop;
        }
        memcpy(t->data + t->len, p, n);
        t->len += n;
}

/* Read what is there; false at EOF or on error. */
static bool drain(int fd, struct tailbuf *t)
{
        char buf[OUTPUT_MAX];
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

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Run argv (argv[0] an absolute path) and wait for it, at most timeout_ms.
 * stdout and stderr go to out_fd, or, when out_fd < 0, into a pipe whose
 * last OUTPUT_MAX bytes come back in *ret_output.  Returns 0 when it ran to
 * the end (*ret_status is its wait status, whatever it was), -1 when it
 * could not be started or had to be killed for the timeout. */
static int cli_spawn(char *const argv[], int out_fd, int64_t timeout_ms, int *ret_status,
                     char **ret_output, struct err *err)
{
        _cleanup_close_ int rd = -1, wr = -1, low_fd = -1;
        if (out_fd < 0) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return err_errno(err, ERR_INTERNAL, "pipe");
                rd = p[0];
                wr = p[1];
                if (fcntl(rd, F_SETFL, O_NONBLOCK) < 0)
                        return err_errno(err, ERR_INTERNAL, "pipe");
                out_fd = wr;
        } else if (out_fd < 3) {
                /* dup2(fd, fd) would keep close-on-exec; move it up. */
                low_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
                if (low_fd < 0)
                        return err_errno(err, ERR_INTERNAL, "dup");
                out_fd = low_fd;
        }

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
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

        pid_t pid;
        pthread_mutex_lock(&children_lock);
        int r = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
        if (r == 0)
                child_set(pid, CHILD_CLI);
        pthread_mutex_unlock(&children_lock);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return err_set(err, ERR_RUNTIME, r, "exec `%s`", argv[0]);
        if (wr >= 0) {
                close(wr);
                wr = -1;
        }

        /* Without a pidfd (kernel < 5.3) poll in short slices instead. */
        _cleanup_close_ int pidfd = pidfd_open_(pid);
        struct tailbuf *out = rd >= 0 ? xcalloc(1, sizeof *out) : NULL;
        int64_t deadline = now_mono_ms() + timeout_ms;
        int status = 0;
        bool exited = false, lost = false;
        while (!exited && !lost) {
                int64_t left = deadline - now_mono_ms();
                if (left <= 0)
                        break;
                struct pollfd pfd[2];
                nfds_t n = 0;
                if (pidfd >= 0)
                        pfd[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
                if (rd >= 0)
                        pfd[n++] = (struct pollfd){ .fd = rd, .events = POLLIN };
                int slice = pidfd >= 0 ? (int)(left > INT_MAX ? INT_MAX : left) : (int)(left < 20 ? left : 20);
                if (poll(pfd, n, slice) < 0 && errno != EINTR)
                        break;
                if (rd >= 0 && !drain(rd, out)) {
                        close(rd);
                        rd = -1;
                }
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        exited = true;
                else if (w < 0 && errno == ECHILD)
                        lost = true;  /* somebody else reaped it: a bug */
        }
        bool timed_out = !exited && !lost;
        if (timed_out) {
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        pthread_mutex_lock(&children_lock);
        child_remove(pid);
        pthread_mutex_unlock(&children_lock);

        /* The child is gone; take what it left in the pipe without waiting
         * for an EOF a grandchild holding the pipe could delay forever. */
        if (rd >= 0)
                drain(rd, out);
        if (lost) {
                free(out);
                return err_set(err, ERR_INTERNAL, ECHILD, "`%s`: its status was taken by another waiter", argv[0]);
        }
        if (timed_out) {
                free(out);
                return err_set(err, ERR_RUNTIME, 0, "`%s` timed out after %lld ms and was killed", argv[0],
                               (long long)timeout_ms);
        }
        *ret_status = status;
        if (ret_output) {
                if (out) {
                        out->data[out->len] = '\0';
                        *ret_output = xstrdup(out->data);
                } else {
                        *ret_output = NULL;
                }
        }
        free(out);
        return 0;
}

/* Run one op with its output captured.  0: exit status 0.  -1: failed;
 * err says why and, when the runtime ran and said something,
 * *ret_output (if asked for) holds what it said. */
static int cli_call(const struct runtime *rt, char *const argv[], const char *what, const char *id,
                    char **ret_output, struct err *err)
{
        int status;
        _cleanup_free_ char *output = NULL;
        if (!argv)
                return err_set(err, ERR_INVALID, 0, "runtime: %s `%s`: no runtime", what, id);
        if (cli_spawn(argv, -1, CLI_TIMEOUT_MS, &status, &output, err) < 0)
                return err_wrap(err, "%s %s `%s`", rt->name, what, id);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                if (ret_output)
                        *ret_output = TAKE_PTR(output);
                return 0;
        }
        _cleanup_free_ char *st = status_text(status);
        _cleanup_free_ char *msg = tidy_output(output);
        err_set(err, ERR_RUNTIME, 0, "%s %s `%s`: %s: %s", rt->name, what, id, st, msg);
        if (ret_output)
                *ret_output = TAKE_PTR(output);
        return -1;
}

/* ---- argv ---- */

char **runtime_argv(const struct runtime *rt, enum runtime_op op, const char *id,
                    const char *bundle, const char *pid_file, const char *signal, bool force)
{
        if (!rt || !rt->path || !rt->root || !id)
                return NULL;
        if (op == RUNTIME_CREATE && (!bundle || !pid_file))
                return NULL;
        char **v = NULL;
        strv_push(&v, rt->path);
        strv_push(&v, "--root");
        strv_push(&v, rt->root);
        switch (op) {
        case RUNTIME_CREATE:
                strv_push(&v, "create");
                strv_push(&v, "--bundle");
                strv_push(&v, bundle);
                strv_push(&v, "--pid-file");
                strv_push(&v, pid_file);
                break;
        case RUNTIME_START:
                strv_push(&v, "start");
                break;
        case RUNTIME_STATE:
                strv_push(&v, "state");
                break;
        case RUNTIME_KILL:
                strv_push(&v, "kill");
                break;
        case RUNTIME_DELETE:
                strv_push(&v, "delete");
                if (force)
                        strv_push(&v, "--force");
                break;
        default:
                strv_free(v);
                return NULL;
        }
        strv_push(&v, id);
        if (op == RUNTIME_KILL)
                strv_push(&v, signal ? signal : "KILL");
        return v;
}

/* ---- operations ---- */

int runtime_setup_reaper(struct err *err)
{
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return err_errno(err, ERR_INTERNAL, "runtime: become a child subreaper");
        return 0;
}

/* The bytes a runtime wrote to the log since `mark` (at most 4 KiB of the
 * end), read through the fd: the log may be a file nobody can reopen. */
static char *log_tail(int fd, off_t mark)
{
        struct stat st;
        if (mark < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= mark)
                return NULL;
        off_t start = st.st_size - mark > 4096 ? st.st_size - 4096 : mark;
        size_t len = (size_t)(st.st_size - start);
        char *buf = xmalloc(len + 1);
        ssize_t n = pread(fd, buf, len, start);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

int runtime_create(const struct runtime *rt, const char *id, const char *bundle,
                   int log_fd, pid_t *ret_pid, struct err *err)
{
        if (!id_ok(id))
                return err_set(err, ERR_INVALID, 0, "runtime: bad container id `%s`", id ? id : "");
        if (!bundle || log_fd < 0)
                return err_set(err, ERR_INVALID, 0, "runtime: create `%s`: no bundle or log fd", id);
        int reaper = 0;
        if (prctl(PR_GET_CHILD_SUBREAPER, &reaper, 0, 0, 0) < 0 || !reaper)
                return err_set(err, ERR_INTERNAL, 0,
                               "runtime: create `%s`: not a child subreaper, the init could not be waited for", id);

        _cleanup_free_ char *pid_file = xasprintf("%s/container.pid", bundle);
        if (unlink(pid_file) < 0 && errno != ENOENT)
                return err_errno(err, ERR_IO, "runtime: remove `%s`", pid_file);
        _cleanup_strv_ char **argv = runtime_argv(rt, RUNTIME_CREATE, id, bundle, pid_file, NULL, false);
        if (!argv)
                return err_set(err, ERR_INVALID, 0, "runtime: create `%s`: no runtime", id);

        struct stat st;
        off_t mark = fstat(log_fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
        int status;
        if (cli_spawn(argv, log_fd, CLI_TIMEOUT_MS, &status, NULL, err) < 0)
                return err_wrap(err, "%s create `%s`", rt->name, id);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                /* The runtime's stderr is log_fd (the init inherits it);
                 * through a pipe its message went on to whoever reads it. */
                _cleanup_free_ char *st_text = status_text(status);
                _cleanup_free_ char *tail = log_tail(log_fd, mark);
                _cleanup_free_ char *msg = mark < 0 ? xstrdup("its message is in the container log")
                                                    : tidy_output(tail);
                return err_set(err, ERR_RUNTIME, 0, "%s create `%s`: %s: %s", rt->name, id, st_text, msg);
        }

        _cleanup_free_ char *data = NULL;
        if (read_file(pid_file, 64, 0, &data, NULL, err) < 0) {
                if (err)
                        err->code = ERR_RUNTIME;
                return err_wrap(err, "%s create `%s`: pid file", rt->name, id);
        }
        data[strcspn(data, "\n")] = '\0';
        int64_t pid;
        if (!parse_int64(data, 1, INT32_MAX, &pid))
                return err_set(err, ERR_RUNTIME, 0, "%s create `%s`: bad pid file `%s`: `%s`", rt->name, id,
                               pid_file, data);
        pthread_mutex_lock(&children_lock);
        struct child *c = child_find((pid_t)pid);
        if (!c || c->state != CHILD_WAITING)
                child_set((pid_t)pid, CHILD_CREATED);
        pthread_mutex_unlock(&children_lock);
        *ret_pid = (pid_t)pid;
        return 0;
}

int runtime_start(const struct runtime *rt, const char *id, struct err *err)
{
        if (!id_ok(id))
                return err_set(err, ERR_INVALID, 0, "runtime: bad container id `%s`", id ? id : "");
        _cleanup_strv_ char **argv = runtime_argv(rt, RUNTIME_START, id, NULL, NULL, NULL, false);
        return cli_call(rt, argv, "start", id, NULL, err);
}

/* What `state` says: "created", "running", "stopped", ..., "gone" when the
 * container does not exist, NULL when it cannot tell. */
static char *container_status(const struct runtime *rt, const char *id)
{
        _cleanup_strv_ char **argv = runtime_argv(rt, RUNTIME_STATE, id, NULL, NULL, NULL, false);
        _cleanup_free_ char *out = NULL;
        struct err e = ERR_INIT;
        if (cli_call(rt, argv, "state", id, &out, &e) < 0)
                return e.code == ERR_RUNTIME && says_gone(out) ? xstrdup("gone") : NULL;
        /* stderr shares the pipe: the JSON starts at the first brace. */
        const char *brace = out ? strchr(out, '{') : NULL;
        if (!brace)
                return NULL;
        _cleanup_json_ json_t *j = json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL);
        const char *s = json_string_value(json_object_get(j, "status"));
        return s ? xstrdup(s) : NULL;
}

int runtime_kill(const struct runtime *rt, const char *id, const char *signal, struct err *err)
{
        if (!id_ok(id))
                return err_set(err, ERR_INVALID, 0, "runtime: bad container id `%s`", id ? id : "");
        _cleanup_strv_ char **argv = runtime_argv(rt, RUNTIME_KILL, id, NULL, NULL, signal, false);
        _cleanup_free_ char *out = NULL;
        struct err e = ERR_INIT;
        if (cli_call(rt, argv, "kill", id, &out, &e) == 0)
                return 0;
        /* Killing a container that already exited (or is gone) is what the
         * caller wanted anyway. */
        if (e.code == ERR_RUNTIME && out && (says_gone(out) || strstr(out, "not running")))
                return 0;
        _cleanup_free_ char *status = container_status(rt, id);
        if (status && (!strcmp(status, "gone") || !strcmp(status, "stopped")))
                return 0;
        *err = e;
        return -1;
}

int runtime_delete(const struct runtime *rt, const char *id, bool force, struct err *err)
{
        if (!id_ok(id))
                return err_set(err, ERR_INVALID, 0, "runtime: bad container id `%s`", id ? id : "");
        _cleanup_strv_ char **argv = runtime_argv(rt, RUNTIME_DELETE, id, NULL, NULL, NULL, force);
        _cleanup_free_ char *out = NULL;
        struct err e = ERR_INIT;
        if (cli_call(rt, argv, "delete", id, &out, &e) == 0)
                return 0;
        if (e.code == ERR_RUNTIME && out && says_gone(out))
                return 0;
        _cleanup_free_ char *status = container_status(rt, id);
        if (status && !strcmp(status, "gone"))
                return 0;
        *err = e;
        return -1;
}

int runtime_sweep(const struct runtime *rt, size_t *ret_removed, struct err *err)
{
        /* The runtimes keep one directory per container under --root; ours
         * holds only our containers, so whatever is there is a leftover of a
         * daemon that died without cleaning up. */
        DIR *d = opendir(rt->root);
        if (!d)
                return errno == ENOENT ? 0 : err_errno(err, ERR_IO, "runtime: open `%s`", rt->root);
        _cleanup_strv_ char **ids = NULL;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && id_ok(de->d_name))
                        strv_push(&ids, de->d_name);
        closedir(d);
        size_t removed = 0;
        int ret = 0;
        for (size_t i = 0; ids && ids[i]; i++) {
                struct err e = ERR_INIT;
                if (runtime_delete(rt, ids[i], true, &e) == 0) {
                        removed++;
                } else if (ret == 0) {
                        *err = e;
                        ret = -1;
                }
        }
        if (ret_removed)
                *ret_removed = removed;
        return ret;
}

/* ---- waiting ---- */

enum wait_why { WHY_EXITED, WHY_CANCELLED, WHY_TIMED_OUT };

/* Wait until the pidfd says the process ended (0, *why EXITED), the cancel
 * fd is readable (CANCELLED) or the deadline passes (TIMED_OUT).  Returns 0
 * or an errno. */
static int wait_pidfd(int pidfd, int64_t deadline_mono_ms, int cancel_fd, enum wait_why *why)
{
        for (;;) {
                int64_t left = deadline_mono_ms - now_mono_ms();
                struct pollfd pfd[2] = {
                        { .fd = pidfd, .events = POLLIN },
                        { .fd = cancel_fd, .events = POLLIN },
                };
                int r = poll(pfd, cancel_fd >= 0 ? 2 : 1,
                             left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return errno;
                if (pfd[0].revents) {
                        *why = WHY_EXITED;
                        return 0;
                }
                if (r > 0 || left <= 0) {
                        *why = r > 0 ? WHY_CANCELLED : WHY_TIMED_OUT;
                        return 0;
                }
        }
}

/* The same without pidfd_open (kernels before 5.3, valgrind): look at the
 * child every few milliseconds without reaping it. */
static int wait_polling(pid_t pid, int64_t deadline_mono_ms, int cancel_fd, enum wait_why *why)
{
        for (;;) {
                siginfo_t peek = { 0 };
                if (waitid(P_PID, (id_t)pid, &peek, WEXITED | WNOHANG | WNOWAIT) < 0) {
                        if (errno == EINTR)
                                continue;
                        *why = WHY_EXITED;   /* gone or not ours: the reaping waitid says which */
                        return 0;
                }
                if (peek.si_pid == pid) {
                        *why = WHY_EXITED;
                        return 0;
                }
                int64_t left = deadline_mono_ms - now_mono_ms();
                if (left <= 0) {
                        *why = WHY_TIMED_OUT;
                        return 0;
                }
                struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };
                int r = poll(&pfd, cancel_fd >= 0 ? 1 : 0, left < 10 ? (int)left : 10);
                if (r < 0 && errno != EINTR)
                        return errno;
                if (r > 0) {
                        *why = WHY_CANCELLED;
                        return 0;
                }
        }
}

int runtime_wait(pid_t pid, int64_t deadline_mono_ms, int cancel_fd,
                 struct runtime_exit *ret, struct err *err)
{
        if (pid <= 0)
                return err_set(err, ERR_INVALID, 0, "runtime: wait: bad pid %d", (int)pid);

        pthread_mutex_lock(&children_lock);
        struct child *c = child_find(pid);
        if (c && c->state == CHILD_REAPED) {
                /* runtime_reap_orphans() got to it first and kept this. */
                fill_exit(c->code, c->status, ret);
                child_remove(pid);
                pthread_mutex_unlock(&children_lock);
                return 0;
        }
        if (c && (c->state == CHILD_WAITING || c->state == CHILD_CLI)) {
                pthread_mutex_unlock(&children_lock);
                return err_set(err, ERR_INTERNAL, 0, "runtime: wait: pid %d is already waited for", (int)pid);
        }
        child_set(pid, CHILD_WAITING);
        pthread_mutex_unlock(&children_lock);

        enum wait_why why = WHY_EXITED;
        int e = 0;
        /* ESRCH: no such process at all; waitid below says ECHILD then. */
        _cleanup_close_ int pidfd = pidfd_open_(pid);
        if (pidfd >= 0)
                e = wait_pidfd(pidfd, deadline_mono_ms, cancel_fd, &why);
        else if (errno == ENOSYS)
                e = wait_polling(pid, deadline_mono_ms, cancel_fd, &why);
        else if (errno != ESRCH)
                e = errno;
        if (e || why != WHY_EXITED) {
                /* Not reaped: on a timeout or cancel the caller kills it and
                 * waits again. */
                pthread_mutex_lock(&children_lock);
                child_set(pid, CHILD_CREATED);
                pthread_mutex_unlock(&children_lock);
                if (e)
                        return err_set(err, ERR_INTERNAL, e, "runtime: wait for pid %d", (int)pid);
                *ret = (struct runtime_exit){ .status = why == WHY_CANCELLED ? WAIT_CANCELLED : WAIT_TIMEOUT };
                return 0;
        }

        siginfo_t si = { 0 };
        int r;
        while ((r = waitid(P_PID, (id_t)pid, &si, WEXITED)) < 0 && errno == EINTR)
                ;
        e = errno;
        pthread_mutex_lock(&children_lock);
        child_remove(pid);
        pthread_mutex_unlock(&children_lock);
        if (r < 0)
                return err_set(err, ERR_INTERNAL, e, "runtime: wait for pid %d%s", (int)pid,
                               e == ECHILD ? " (not our child: is the daemon a subreaper?)" : "");
        fill_exit(si.si_code, si.si_status, ret);
        return 0;
}

/* Our children: /proc/self/task/<tid>/children lists them per thread
 * (an orphan is re-parented to any thread of the subreaper); without
 * CONFIG_PROC_CHILDREN scan /proc for our pid as the parent. */
static pid_t *list_children(size_t *ret_n)
{
        pid_t *v = NULL;
        size_t n = 0, cap = 0;
        bool have_children_files = false;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[64];
                snprintf(p, sizeof p, "/proc/self/task/%.20s/children", de->d_name);
                _cleanup_fclose_ FILE *f = fopen(p, "re");
                if (!f)
                        continue;
                have_children_files = true;
                long pid;
                while (fscanf(f, "%ld", &pid) == 1) {
                        if (n == cap)
                                v = xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
                        v[n++] = (pid_t)pid;
                }
        }
        if (d)
                closedir(d);
        if (!have_children_files && (d = opendir("/proc"))) {
                pid_t self = getpid();
                while ((de = readdir(d))) {
                        if (de->d_name[0] < '1' || de->d_name[0] > '9')
                                continue;
                        char p[64], buf[512];
                        snprintf(p, sizeof p, "/proc/%.20s/stat", de->d_name);
                        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
                        ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
                        if (len <= 0)
                                continue;
                        buf[len] = '\0';
                        /* "pid (comm) S ppid ...": comm may hold ')' */
                        const char *rp = strrchr(buf, ')');
                        long ppid;
                        if (rp && sscanf(rp + 1, " %*c %ld", &ppid) == 1 && ppid == self) {
                                if (n == cap)
                                        v = xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
                                v[n++] = (pid_t)atol(de->d_name);
                        }
                }
                closedir(d);
        }
        *ret_n = n;
        return v;
}

void runtime_reap_orphans(void)
{
        size_t n;
        _cleanup_free_ pid_t *kids = list_children(&n);
        int64_t now = now_mono_ms();
        pthread_mutex_lock(&children_lock);
        for (size_t i = 0; i < n; i++) {
                struct child *c = child_find(kids[i]);
                if (c && c->state != CHILD_CREATED)
                        continue;
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t)kids[i], &si, WEXITED | WNOHANG) < 0 || si.si_pid != kids[i])
                        continue;  /* still running, or not ours after all */
                if (c) {
                        c->state = CHILD_REAPED;
                        c->code = si.si_code;
                        c->status = si.si_status;
                        c->reaped_at = now;
                }
        }
        for (size_t i = 0; i < n_children;) {
                if (children[i].state == CHILD_REAPED && now - children[i].reaped_at > REAPED_TTL_MS)
                        children[i] = children[--n_children];
                else
                        i++;
        }
        pthread_mutex_unlock(&children_lock);
}

/* ---- resolving which runtime to use ---- */

void runtime_free(struct runtime *rt)
{
        if (!rt)
                return;
        free(rt->name);
        free(rt->path);
        free(rt->root);
        free(rt->version);
        free(rt);
}

static bool is_executable(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* A name is looked up in PATH and then in the usual sbin/bin directories
 * (a daemon's PATH often lacks sbin, where Debian puts runc). */
static char *find_binary(const char *name)
{
        if (strchr(name, '/'))
                return is_executable(name) ? realpath(name, NULL) : NULL;
        static const char *const fixed[] = { "/usr/sbin", "/usr/bin", "/usr/local/bin",
                                             "/usr/local/sbin", "/sbin", "/bin" };
        const char *path_env = getenv("PATH");
        _cleanup_free_ char *dirs = xstrdup(path_env ? path_env : "");
        char *save = NULL;
        for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                if (dir[0] != '/')
                        continue;
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
                if (is_executable(p))
                        return TAKE_PTR(p);
        }
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", fixed[i], name);
                if (is_executable(p))
                        return TAKE_PTR(p);
        }
        return NULL;
}

/* "runc version 1.1.5+ds1" -> "1.1.5+ds1"; NULL when it will not say. */
static char *runtime_version(const char *path)
{
        char *argv[] = { (char *)(uintptr_t)path, (char *)(uintptr_t)"--version", NULL };
        _cleanup_free_ char *out = NULL;
        int status;
        struct err e = ERR_INIT;
        if (cli_spawn(argv, -1, VERSION_TIMEOUT_MS, &status, &out, &e) < 0 || !out ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return NULL;
        out[strcspn(out, "\n")] = '\0';
        const char *v = strstr(out, "version ");
        v = v ? v + 8 : out;
        return *v ? xstrdup(v) : NULL;
}

static json_t *jstrv(const char *const *v)
{
        json_t *a = json_array();
        for (; *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

/* The probe rootfs mirrors the host's /usr, /bin, /lib, /lib64, /sbin: a
 * symlink (merged /usr) becomes the same symlink, a directory becomes a
 * mount point for a read-only bind mount added to `mounts`. */
static int probe_rootfs(const char *rootfs, json_t *mounts, struct err *err)
{
        static const char *const top[] = { "usr", "bin", "lib", "lib64", "sbin" };
        static const char *const empty[] = { "proc", "dev" };
        for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", rootfs, empty[i]);
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return err_errno(err, ERR_IO, "mkdir `%s`", p);
        }
        for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
                _cleanup_free_ char *host = xasprintf("/%s", top[i]);
                _cleanup_free_ char *p = xasprintf("%s/%s", rootfs, top[i]);
                struct stat st;
                if (lstat(host, &st) < 0)
                        continue;
                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t n = readlink(host, target, sizeof target - 1);
                        if (n < 0)
                                return err_errno(err, ERR_IO, "readlink `%s`", host);
                        target[n] = '\0';
                        if (symlink(target, p) < 0 && errno != EEXIST)
                                return err_errno(err, ERR_IO, "symlink `%s`", p);
                } else if (S_ISDIR(st.st_mode)) {
                        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                                return err_errno(err, ERR_IO, "mkdir `%s`", p);
                        static const char *const opts[] = { "rbind", "ro", "nosuid", "nodev", NULL };
                        json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:o}", "destination", host,
                                                                "type", "bind", "source", host,
                                                                "options", jstrv(opts)));
                }
        }
        return 0;
}

static int probe_bundle(const char *bundle, const char *cgroups_path, struct err *err)
{
        _cleanup_free_ char *rootfs = xasprintf("%s/rootfs", bundle);
        if (mkdir_p(rootfs, 0755, err) < 0)
                return -1;
        static const char *const proc_opts[] = { "nosuid", "noexec", "nodev", NULL };
        static const char *const dev_opts[] = { "nosuid", "noexec", "strictatime", "mode=755", "size=64k", NULL };
        static const char *const args[] = { "/bin/true", NULL };
        static const char *const env[] = { "PATH=/usr/bin:/bin", NULL };
        static const char *const ns[] = { "pid", "network", "ipc", "uts", "mount" };
        json_t *mounts = json_pack("[{s:s, s:s, s:s, s:o}, {s:s, s:s, s:s, s:o}]",
                                   "destination", "/proc", "type", "proc", "source", "proc",
                                   "options", jstrv(proc_opts),
                                   "destination", "/dev", "type", "tmpfs", "source", "tmpfs",
                                   "options", jstrv(dev_opts));
        if (probe_rootfs(rootfs, mounts, err) < 0) {
                json_decref(mounts);
                return -1;
        }
        json_t *namespaces = json_array();
        for (size_t i = 0; i < ARRAY_SIZE(ns); i++)
                json_array_append_new(namespaces, json_pack("{s:s}", "type", ns[i]));
        _cleanup_json_ json_t *config = json_pack(
                "{s:s, s:{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:b, s:{s:[], s:[], s:[]}},"
                " s:{s:s, s:b}, s:s, s:o,"
                " s:{s:o, s:s, s:{s:{s:I}, s:{s:I}, s:[{s:b, s:s}]},"
                "    s:[s, s], s:[s, s]}}",
                "ociVersion", "1.0.2",
                "process", "terminal", 0, "user", "uid", 65534, "gid", 65534,
                "args", jstrv(args), "env", jstrv(env), "cwd", "/", "noNewPrivileges", 1,
                "capabilities", "bounding", "effective", "permitted",
                "root", "path", "rootfs", "readonly", 1,
                "hostname", "probe",
                "mounts", mounts,
                "linux", "namespaces", namespaces, "cgroupsPath", cgroups_path,
                "resources", "memory", "limit", (json_int_t)64 << 20, "pids", "limit", (json_int_t)16,
                "devices", "allow", 0, "access", "rwm",
                "maskedPaths", "/proc/kcore", "/proc/keys",
                "readonlyPaths", "/proc/sys", "/proc/sysrq-trigger");
        if (!config)
                return err_set(err, ERR_INTERNAL, 0, "build probe config");
        _cleanup_free_ char *text = json_dumps(config, JSON_INDENT(2));
        _cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
        return write_file(path, text, strlen(text), 0644, err);
}

/* "crun create `edgecd-probe-1-crun`: exited ..." -> "create: exited ...":
 * in a probe report the runtime and the id say nothing new. */
static void drop_id_prefix(struct err *err, const char *name, const char *id)
{
        _cleanup_free_ char *head = xasprintf("%s ", name);
        _cleanup_free_ char *tail = xasprintf(" `%s`: ", id);
        size_t hl = strlen(head);
        if (!err || strncmp(err->msg, head, hl))
                return;
        char *t = strstr(err->msg + hl, tail);
        if (!t || memchr(err->msg + hl, ' ', (size_t)(t - err->msg - hl)))
                return;
        char buf[ERR_MSG_MAX];
        snprintf(buf, sizeof buf, "%.*s: %s", (int)(t - err->msg - hl), err->msg + hl, t + strlen(tail));
        memcpy(err->msg, buf, sizeof buf);
}

/* Run /bin/true in a throw-away container; *ret_ms is create+start+exit. */
static int probe(const struct runtime *rt, const char *probe_dir, const char *cgroup_parent,
                 int64_t *ret_ms, struct err *err)
{
        _cleanup_free_ char *bundle = xasprintf("%s/%s", probe_dir, rt->name);
        _cleanup_free_ char *id = xasprintf("edgecd-probe-%d-%s", (int)getpid(), rt->name);
        _cleanup_free_ char *cg = xasprintf("%s/probe-%d-%s", cgroup_parent, (int)getpid(), rt->name);
        struct err ignore = ERR_INIT;
        rm_rf(bundle, &ignore);
        runtime_delete(rt, id, true, &ignore);  /* a leftover of an earlier run */
        if (probe_bundle(bundle, cg, err) < 0) {
                rm_rf(bundle, &ignore);
                return err_wrap(err, "probe bundle");
        }
        _cleanup_free_ char *log_path = xasprintf("%s/probe.log", bundle);
        _cleanup_close_ int log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (log_fd < 0) {
                err_errno(err, ERR_IO, "open `%s`", log_path);
                rm_rf(bundle, &ignore);
                return -1;
        }

        int64_t t0 = now_mono_ms();
        pid_t pid;
        struct runtime_exit ex = { 0 };
        int r = runtime_create(rt, id, bundle, log_fd, &pid, err);
        if (r == 0) {
                r = runtime_start(rt, id, err);
                if (r < 0) {
                        runtime_delete(rt, id, true, &ignore);
                        runtime_wait(pid, now_mono_ms() + 2000, -1, &ex, &ignore);
                }
        }
        if (r == 0) {
                r = runtime_wait(pid, t0 + PROBE_DEADLINE_MS, -1, &ex, err);
                if (r == 0 && ex.status == WAIT_TIMEOUT) {
                        runtime_kill(rt, id, "KILL", &ignore);
                        runtime_wait(pid, now_mono_ms() + 2000, -1, &ex, &ignore);
                        r = err_set(err, ERR_RUNTIME, 0, "probe container did not exit within %d ms",
                                    PROBE_DEADLINE_MS);
                }
        }
        *ret_ms = now_mono_ms() - t0;
        if (r == 0 && !(ex.status == WAIT_EXITED && ex.exit_code == 0)) {
                _cleanup_free_ char *tail = log_tail(log_fd, 0);
                _cleanup_free_ char *msg = tidy_output(tail);
                if (ex.status == WAIT_EXITED)
                        r = err_set(err, ERR_RUNTIME, 0, "probe container exited with status %d: %s",
                                    ex.exit_code, msg);
                else
                        r = err_set(err, ERR_RUNTIME, 0, "probe container killed by signal %d: %s",
                                    ex.signal, msg);
        }
        if (r < 0)
                drop_id_prefix(err, rt->name, id);
        struct err derr = ERR_INIT;
        if (runtime_delete(rt, id, true, &derr) < 0 && r == 0)
                r = err_set(err, derr.code, derr.errnum, "%s", derr.msg);
        rm_rf(bundle, &ignore);
        return r;
}

static const char *base_name(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static void say(void (*report)(const char *, void *), void *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void say(void (*report)(const char *, void *), void *ctx, const char *fmt, ...)
{
        if (!report)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                abort();
        va_end(ap);
        report(msg, ctx);
        free(msg);
}

int runtime_resolve(const char *preferred, const char *root_dir, const char *probe_dir,
                    const char *cgroup_parent, void (*report)(const char *msg, void *ctx),
                    void *ctx, struct runtime **ret, struct err *err)
{
        if (!root_dir || !probe_dir)
                return err_set(err, ERR_INVALID, 0, "runtime: no root or probe directory");
        if (!cgroup_parent || cgroup_parent[0] != '/')
                return err_set(err, ERR_INVALID, 0, "runtime: bad cgroup parent `%s`",
                               cgroup_parent ? cgroup_parent : "");
        if (mkdir_p(root_dir, 0700, err) < 0 || mkdir_p(probe_dir, 0700, err) < 0)
                return err_wrap(err, "runtime");

        const char *cands[3];
        size_t n = 0;
        if (preferred && *preferred)
                cands[n++] = preferred;
        cands[n++] = "crun";
        cands[n++] = "runc";

        _cleanup_free_ char *reasons = NULL;
        for (size_t i = 0; i < n; i++) {
                const char *name = base_name(cands[i]);
                bool dup = false;
                for (size_t j = 0; j < i; j++)
                        dup |= !strcmp(base_name(cands[j]), name);
                if (dup || !*name)
                        continue;

                char *path = find_binary(cands[i]);
                if (!path) {
                        if (strchr(cands[i], '/'))
                                say(report, ctx, "runtime `%s`: not found at `%s`", name, cands[i]);
                        else
                                say(report, ctx, "runtime `%s`: not found in PATH", name);
                        _cleanup_free_ char *r = xasprintf("%s: not found", name);
                        join(&reasons, r);
                        continue;
                }
                struct runtime *rt = xcalloc(1, sizeof *rt);
                rt->name = xstrdup(name);
                rt->path = path;
                rt->root = xstrdup(root_dir);
                rt->version = runtime_version(path);
                const char *version = rt->version;
                int64_t ms = 0;
                struct err perr = ERR_INIT;
                if (probe(rt, probe_dir, cgroup_parent, &ms, &perr) == 0) {
                        say(report, ctx, "runtime: using `%s` (%s, version %s): probe container ran in %lld ms",
                            name, path, version ? version : "unknown", (long long)ms);
                        *ret = rt;
                        return 0;
                }
                say(report, ctx, "runtime `%s` (%s): cannot run a container here: %s", name, path, perr.msg);
                _cleanup_free_ char *r = xasprintf("%s: %s", name, perr.msg);
                join(&reasons, r);
                runtime_free(rt);
        }
        return err_set(err, ERR_RUNTIME, 0, "no usable OCI runtime: %s", reasons ? reasons : "none tried");
}
