/* runtime_cli.c - the OCI command-line driver (see runtime_cli.h).
 *
 * Every call is one spawn_run() with the runtime's own minimal environment
 * and time limit, but for `run` in the foreground, whose process the caller
 * waits for as long as the container runs.  `create` and `run --detach`
 * run inside a reaper claim window: the
 * container's init is re-parented to the daemon when `create` exits, and
 * the window keeps the orphan reaper off it until the pid file has been
 * read and the init claimed. */
#include "runtime_cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "base/util.h"
#include "spawn.h"

#define MSG_MAX 480          /* runtime words quoted in an error */
#define VERSION_TIMEOUT_MS 5000

/* sbin first: Debian puts runc there, and a daemon's own PATH often lacks it. */
static const char *const default_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        NULL,
};

/* ---- argv ---- */

char **runtime_cli_argv(const struct runtime *rt, enum runtime_cli_op op, const char *id,
                        const char *bundle, const char *pid_file, const char *sig)
{
        if (!rt || !rt->path || !rt->root || !id)
                return NULL;
        if ((op == CLI_CREATE || op == CLI_RUN || op == CLI_RUN_ATTACHED) && (!bundle || !pid_file))
                return NULL;
        char **v = NULL;
        strv_push(&v, rt->path);
        strv_push(&v, "--root");
        strv_push(&v, rt->root);
        switch (op) {
        case CLI_CREATE:
                strv_push(&v, "create");
                strv_push(&v, "--bundle");
                strv_push(&v, bundle);
                strv_push(&v, "--pid-file");
                strv_push(&v, pid_file);
                break;
        case CLI_RUN:
        case CLI_RUN_ATTACHED:
                strv_push(&v, "run");
                if (op == CLI_RUN)
                        strv_push(&v, "--detach");
                strv_push(&v, "--bundle");
                strv_push(&v, bundle);
                strv_push(&v, "--pid-file");
                strv_push(&v, pid_file);
                break;
        case CLI_START:
                strv_push(&v, "start");
                break;
        case CLI_STATE:
                strv_push(&v, "state");
                break;
        case CLI_KILL:
                strv_push(&v, "kill");
                break;
        case CLI_DELETE:
                strv_push(&v, "delete");
                strv_push(&v, "--force");
                break;
        default:
                strv_free(v);
                return NULL;
        }
        strv_push(&v, id);
        if (op == CLI_KILL)
                strv_push(&v, sig ? sig : "KILL");
        return v;
}

/* ---- output ---- */

/* The value of msg="..." in a logrus line (runc), \" and \\ unescaped;
 * NULL when the line has none. */
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

char *runtime_cli_error_text(const char *output)
{
        _cleanup_free_ char *errors = NULL, *msgs = NULL, *plain = NULL;
        for (const char *line = output ? output : ""; *line;) {
                size_t len = strcspn(line, "\n");
                size_t tlen = len;
                while (tlen && (line[tlen - 1] == '\r' || line[tlen - 1] == ' '))
                        tlen--;
                char *msg = logrus_msg(line, tlen);
                if (msg) {
                        if (memmem(line, tlen, "level=error", 11) || memmem(line, tlen, "level=fatal", 11))
                                strv_join_append(&errors, msg);
                        else
                                strv_join_append(&msgs, msg);
                        free(msg);
                } else if (tlen) {
                        _cleanup_free_ char *l = xmemdup0(line, tlen);
                        strv_join_append(&plain, l);
                }
                line += len;
                if (*line)
                        line++;
        }
        const char *best = errors ? errors : plain ? plain : msgs;
        if (!best)
                return xstrdup("");
        size_t n = strlen(best);
        if (n > MSG_MAX)
                return xasprintf("...%s", best + n - MSG_MAX);
        return xstrdup(best);
}

char *runtime_cli_parse_version(const char *output)
{
        if (!output)
                return NULL;
        size_t len = strcspn(output, "\n");
        _cleanup_free_ char *line = xmemdup0(output, len);
        const char *v = strstr(line, "version");
        v = v ? v + strlen("version") : line;
        while (*v == ':' || *v == ' ' || *v == '\t')
                v++;
        if (!isdigit((unsigned char)*v))
                return NULL;
        size_t n = strcspn(v, " \t,;");
        return xmemdup0(v, n);
}

/* ---- calls ---- */

/* oom_first: it makes a container (spawn_request). */
static int run(const struct runtime *rt, char **argv, int out_fd, bool oom_first, struct spawn_result *res,
               struct err *err)
{
        if (!argv)
                return err_set(err, ERR_INVALID, 0, "no runtime");
        struct spawn_request req = {
                .argv = argv, .envp = rt->env ? rt->env : (char *const *)(uintptr_t)default_env,
                .out_fd = out_fd, .timeout_ms = rt->cli_timeout_ms > 0 ? rt->cli_timeout_ms : 30000,
                .oom_first = oom_first,
        };
        return spawn_run(&req, res, err);
}

/* Run op with output captured.  0: exit status 0.  -1: err says why; what
 * the runtime printed is in *ret_output (if asked for) either way. */
static int call(const struct runtime *rt, enum runtime_cli_op op, const char *what, const char *id,
                const char *sig, char **ret_output, struct err *err)
{
        _cleanup_strv_ char **argv = runtime_cli_argv(rt, op, id, NULL, NULL, sig);
        struct spawn_result res = { 0 };
        if (run(rt, argv, -1, false, &res, err) < 0)
                return err_wrap(err, "%s %s `%s`", rt->name, what, id);
        int ret = 0;
        if (res.exit.status != WAIT_EXITED || res.exit.exit_code != 0) {
                _cleanup_free_ char *st = spawn_exit_text(&res.exit);
                _cleanup_free_ char *msg = runtime_cli_error_text(res.output);
                ret = err_set(err, ERR_RUNTIME, 0, "%s %s `%s`: %s%s%s", rt->name, what, id, st,
                              *msg ? ": " : "", msg);
        }
        if (ret_output)
                *ret_output = TAKE_PTR(res.output);
        spawn_result_done(&res);
        return ret;
}

/* Does the runtime keep state for id?  R/ID is where youki, crun and runc
 * keep a container's state while it exists. */
static bool state_exists(const struct runtime *rt, const char *id)
{
        _cleanup_free_ char *dir = xasprintf("%s/%s", rt->root, id);
        struct stat st;
        return lstat(dir, &st) == 0 || errno != ENOENT;
}

/* The bytes a runtime wrote to the log since `mark` (at most 4 KiB of the
 * end), read through the fd: the log may be a file nobody can reopen. */
static char *log_since(int fd, off_t mark)
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

/* `create`, or `run --detach` (create and start in one runtime process). */
static int create_or_run(const struct runtime *rt, enum runtime_cli_op op, const char *id, const char *bundle,
                         int log_fd, struct pidref *ret, struct err *err)
{
        const char *verb = op == CLI_RUN ? "run" : "create";
        _cleanup_free_ char *pid_file = xasprintf("%s/container.pid", bundle);
        if (unlink(pid_file) < 0 && errno != ENOENT)
                return err_errno(err, ERR_IO, "%s %s `%s`: remove `%s`", rt->name, verb, id, pid_file);
        _cleanup_strv_ char **argv = runtime_cli_argv(rt, op, id, bundle, pid_file, NULL);
        struct stat st;
        off_t mark = fstat(log_fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;

        uint64_t window = reaper_window_open();
        struct spawn_result res = { 0 };
        int r = run(rt, argv, log_fd, true, &res, err);
        if (r < 0) {
                reaper_window_close(window);
                return err_wrap(err, "%s %s `%s`", rt->name, verb, id);
        }
        if (res.exit.status != WAIT_EXITED || res.exit.exit_code != 0) {
                reaper_window_close(window);
                /* Its stderr is log_fd (the init inherits it): when that is
                 * a file we can quote it; through a pipe it reaches whoever
                 * reads the pipe, who may add it. */
                _cleanup_free_ char *st_text = spawn_exit_text(&res.exit);
                _cleanup_free_ char *tail = log_since(log_fd, mark);
                _cleanup_free_ char *msg = runtime_cli_error_text(tail);
                return err_set(err, ERR_RUNTIME, 0, "%s %s `%s`: %s%s%s", rt->name, verb, id, st_text,
                               *msg ? ": " : "", msg);
        }

        _cleanup_free_ char *data = NULL;
        if (read_file(pid_file, 64, 0, &data, NULL, err) < 0) {
                reaper_window_close(window);
                if (err)
                        err->code = ERR_RUNTIME;
                return err_wrap(err, "%s %s `%s`: pid file", rt->name, verb, id);
        }
        data[strcspn(data, "\n")] = '\0';
        int64_t pid;
        if (!parse_int64(data, 1, INT32_MAX, &pid)) {
                reaper_window_close(window);
                return err_set(err, ERR_RUNTIME, 0, "%s %s `%s`: bad pid file `%s`: `%.64s`", rt->name, verb, id,
                               pid_file, data);
        }
        r = pidref_claim((pid_t)pid, ret, err);
        reaper_window_close(window);
        if (r < 0)
                return err_wrap(err, "%s %s `%s`: init", rt->name, verb, id);
        return 0;
}

static int cli_create(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                      struct pidref *ret, struct err *err)
{
        return create_or_run(rt, CLI_CREATE, id, bundle, log_fd, ret, err);
}

static int cli_run(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                   struct pidref *ret, struct err *err)
{
        return create_or_run(rt, CLI_RUN, id, bundle, log_fd, ret, err);
}

static int cli_run_attached(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                            struct pidref *ret, struct err *err)
{
        _cleanup_free_ char *pid_file = xasprintf("%s/container.pid", bundle);
        if (unlink(pid_file) < 0 && errno != ENOENT)
                return err_errno(err, ERR_IO, "%s run `%s`: remove `%s`", rt->name, id, pid_file);
        _cleanup_strv_ char **argv = runtime_cli_argv(rt, CLI_RUN_ATTACHED, id, bundle, pid_file, NULL);
        struct spawn_request req = {
                .argv = argv, .envp = rt->env ? rt->env : (char *const *)(uintptr_t)default_env,
                .out_fd = log_fd, .oom_first = true,
        };
        if (spawn_start(&req, ret, err) < 0)
                return err_wrap(err, "%s run `%s`", rt->name, id);
        return 0;
}

/* The pid file is written once the container's process runs (after the
 * runtime's create and start), so its presence tells an algorithm's
 * failure from the runtime's, and its time when the container ran. */
static bool cli_attached_started(const struct runtime *rt, const char *id, const char *bundle, int64_t *ret_ms)
{
        (void)rt;
        (void)id;
        _cleanup_free_ char *pid_file = xasprintf("%s/container.pid", bundle);
        struct stat st;
        if (stat(pid_file, &st) < 0)
                return false;
        *ret_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        return true;
}

static int cli_attached_end(const struct runtime *rt, const char *id, const char *bundle,
                            const struct proc_exit *runtime_exit, struct proc_exit *ret, struct err *err)
{
        int64_t ignored;
        bool ran = cli_attached_started(rt, id, bundle, &ignored);
        const struct proc_exit *x = runtime_exit;
        if (!ran || x->status != WAIT_EXITED) {
                _cleanup_free_ char *st_text = spawn_exit_text(x);
                return err_set(err, ERR_RUNTIME, 0, "%s run `%s`: %s%s", rt->name, id, st_text,
                               ran ? " (the runtime itself)" : " before the container ran");
        }
        /* 128+N: killed by signal N, in runc (utils.ExitStatus), crun and
         * youki alike; a process that exits 128+N by itself reads the same. */
        if (x->exit_code > 128 && x->exit_code < 128 + 65)
                *ret = (struct proc_exit){ .status = WAIT_SIGNALED, .signal = x->exit_code - 128,
                                           .exit_code = x->exit_code, .from_status = true };
        else
                *ret = *x;
        return 0;
}

static int cli_start(const struct runtime *rt, const char *id, struct err *err)
{
        return call(rt, CLI_START, "start", id, NULL, NULL, err);
}

/* What `state` says: "created", "running", "stopped"...; NULL when it
 * cannot tell.  The status field is the OCI spec's, the same everywhere. */
static char *container_status(const struct runtime *rt, const char *id)
{
        _cleanup_free_ char *out = NULL;
        struct err e = ERR_INIT;
        if (call(rt, CLI_STATE, "state", id, NULL, &out, &e) < 0)
                return NULL;
        /* stderr shares the pipe: the JSON starts at the first brace. */
        const char *brace = out ? strchr(out, '{') : NULL;
        if (!brace)
                return NULL;
        _cleanup_json_ json_t *j = json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL);
        const char *s = json_string_value(json_object_get(j, "status"));
        return s ? xstrdup(s) : NULL;
}

static int cli_kill(const struct runtime *rt, const char *id, const char *sig, struct err *err)
{
        struct err e = ERR_INIT;
        if (call(rt, CLI_KILL, "kill", id, sig, NULL, &e) == 0)
                return 0;
        /* Killing a container that has stopped, or is gone, is what the
         * caller wanted anyway. */
        if (!state_exists(rt, id))
                return 0;
        _cleanup_free_ char *status = container_status(rt, id);
        if (status && !strcmp(status, "stopped"))
                return 0;
        if (err)
                *err = e;
        return -1;
}

static int cli_delete(const struct runtime *rt, const char *id, struct err *err)
{
        /* An attached run deletes its own container: no process to spawn. */
        if (!state_exists(rt, id))
                return 0;
        struct err e = ERR_INIT;
        int r = call(rt, CLI_DELETE, "delete", id, NULL, NULL, &e);
        bool exists = state_exists(rt, id);
        if (!exists)
                return 0;   /* deleted now, or gone before: either way done */
        if (r == 0)
                return err_set(err, ERR_RUNTIME, 0, "%s delete `%s`: it said yes, but its state `%s/%s` is still there",
                               rt->name, id, rt->root, id);
        if (err)
                *err = e;
        return -1;
}

static int cli_list(const struct runtime *rt, char ***ret, struct err *err)
{
        char **ids = NULL;
        DIR *d = opendir(rt->root);
        if (!d) {
                if (errno == ENOENT) {
                        *ret = NULL;
                        return 0;
                }
                return err_errno(err, ERR_IO, "%s: open `%s`", rt->name, rt->root);
        }
        struct dirent *de;
        while ((de = readdir(d)))
                if (runtime_id_ok(de->d_name) && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
                        strv_push(&ids, de->d_name);
        closedir(d);
        *ret = ids;
        return 0;
}

const struct runtime_ops runtime_cli_ops = {
        .kind = "oci-cli",
        .create = cli_create,
        .run = cli_run,
        .run_attached = cli_run_attached,
        .attached_started = cli_attached_started,
        .attached_end = cli_attached_end,
        .start = cli_start,
        .kill = cli_kill,
        .delete = cli_delete,
        .list = cli_list,
        .error_text = runtime_cli_error_text,
};

struct runtime *runtime_cli_new(const char *name, const char *path, const char *root,
                                int64_t cli_timeout_ms)
{
        struct runtime *rt = xcalloc(1, sizeof *rt);
        rt->ops = &runtime_cli_ops;
        rt->name = xstrdup(name);
        rt->path = xstrdup(path);
        rt->root = xstrdup(root);
        rt->env = strv_dup((char *const *)(uintptr_t)default_env);
        rt->cli_timeout_ms = cli_timeout_ms;
        /* Cold runs in the foreground: one runtime call, no `delete`
         * after.  Elsewhere (warm containers; youki) `run --detach`:
         * runc and youki make the init the command's own child, ours once
         * the command has exited; crun daemonises (fork, setsid, fork) and
         * its last process, the init's parent, can outlive the command
         * (seen in the QEMU VM), which pidref_claim() waits out. */
        rt->attached_ok = !strcmp(name, "runc") || !strcmp(name, "crun");

        char *argv[] = { rt->path, (char *)(uintptr_t)"--version", NULL };
        struct spawn_request req = { .argv = argv, .envp = rt->env, .out_fd = -1,
                                     .timeout_ms = VERSION_TIMEOUT_MS };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        if (spawn_run(&req, &res, &e) == 0 && res.exit.status == WAIT_EXITED && res.exit.exit_code == 0)
                rt->version = runtime_cli_parse_version(res.output);
        spawn_result_done(&res);
        return rt;
}

/* ---- runtime calls another daemon left running ---- */

static bool in_roots(const char *dir, const char *roots_dir, size_t rl)
{
        return !strncmp(dir, roots_dir, rl) && dir[rl] == '/' && dir[rl + 1] && dir[rl + 1] != '/';
}

const char *runtime_cli_cmdline_root(const char *cmdline, size_t len, const char *roots_dir)
{
        size_t rl = strlen(roots_dir);
        while (rl > 1 && roots_dir[rl - 1] == '/')
                rl--;
        if (roots_dir[0] != '/' || rl < 2)
                return NULL;   /* never "anything under /" */
        const char *end = cmdline + len;
        bool root_next = false;
        for (const char *a = cmdline; a < end;) {
                const char *nul = memchr(a, '\0', (size_t)(end - a));
                if (!nul)
                        break;   /* a cut-off last argument is no path */
                if (root_next && in_roots(a, roots_dir, rl))
                        return a;
                root_next = !strcmp(a, "--root");
                if (!strncmp(a, "--root=", 7) && in_roots(a + 7, roots_dir, rl))
                        return a + 7;
                a = nul + 1;
        }
        return NULL;
}

#define CMDLINE_MAX 16384
#define COMM_MAX 15   /* TASK_COMM_LEN - 1: a longer name is cut there */

/* pid's /proc file `what` into buf, whole or cut at size; its length, or -1. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -1 : read_full(fd, buf, size);
}

/* name as the kernel keeps a process's: its first COMM_MAX bytes. */
static void push_name(char ***names, const char *name)
{
        char cut[COMM_MAX + 1];
        size_t n = strnlen(name, COMM_MAX);
        memcpy(cut, name, n);
        cut[n] = '\0';
        strv_push(names, cut);
}

/* The names a runtime process on these roots runs under: each root is
 * named after its runtime (ROOTS/NAME), whose binary ROOTS/NAME.path
 * records.  Reading a command line takes the process's memory lock, which
 * a process stuck in a page fault holds for as long as it is stuck: only
 * processes of these names are read, not every one on the host. */
static char **runtime_names(const char *roots_dir)
{
        char **names = NULL;
        DIR *d = opendir(roots_dir);
        if (!d)
                return NULL;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                size_t n = strlen(de->d_name);
                if (n > 5 && !strcmp(de->d_name + n - 5, ".path")) {
                        _cleanup_free_ char *path = xasprintf("%s/%s", roots_dir, de->d_name);
                        _cleanup_free_ char *bin = NULL;
                        struct err ignored = ERR_INIT;
                        if (read_file(path, PATH_MAX, 0, &bin, NULL, &ignored) == 0) {
                                bin[strcspn(bin, "\n")] = '\0';
                                const char *base = strrchr(bin, '/');
                                if (base && base[1])
                                        push_name(&names, base + 1);
                        }
                } else if (de->d_type == DT_DIR) {
                        push_name(&names, de->d_name);
                }
        }
        closedir(d);
        return names;
}

static bool named(const char *comm, char *const *names)
{
        for (size_t i = 0; names && names[i]; i++)
                if (!strcmp(comm, names[i]))
                        return true;
        return false;
}

/* Is roots_dir, seen from pid's root (its mount namespace, its chroot),
 * the directory it is here?  A daemon in a container may use the same
 * path for its own state dir. */
static bool same_roots(pid_t pid, const char *roots_dir, const struct stat *ours)
{
        _cleanup_free_ char *theirs = xasprintf("/proc/%d/root%s", (int)pid, roots_dir);
        struct stat st;
        return stat(theirs, &st) == 0 && st.st_dev == ours->st_dev && st.st_ino == ours->st_ino;
}

/* pid is a runtime process on our roots: its name, its command line, where
 * that points. */
static bool is_stray(pid_t pid, const char *roots_dir, const struct stat *roots_st, char *const *names, char *buf)
{
        char comm[COMM_MAX + 2];
        ssize_t n = read_proc(pid, "comm", comm, sizeof comm - 1);
        if (n <= 0)
                return false;
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        if (!named(comm, names))
                return false;
        n = read_proc(pid, "cmdline", buf, CMDLINE_MAX);
        return n > 0 && runtime_cli_cmdline_root(buf, (size_t)n, roots_dir) && same_roots(pid, roots_dir, roots_st);
}

/* One look through /proc: each stray killed, its pidfd added to *fds. */
static void kill_strays_once(const char *roots_dir, const struct stat *roots_st, char *const *names, int **fds,
                             size_t *n_fds, struct runtime_strays *r)
{
        DIR *d = opendir("/proc");
        if (!d)
                return;
        _cleanup_free_ char *buf = xmalloc(CMDLINE_MAX);
        pid_t self = getpid();
        struct dirent *de;
        while ((de = readdir(d))) {
                char *e;
                long pid = strtol(de->d_name, &e, 10);
                if (*e || pid <= 0 || pid == self || !is_stray((pid_t)pid, roots_dir, roots_st, names, buf))
                        continue;
                int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
                if (fd < 0) {
                        if (errno != ESRCH) {   /* not "gone meanwhile" */
                                r->skipped++;
                                r->pidfd_errno = errno;
                        }
                        continue;
                }
                /* The pidfd holds this process: the pid looked at again
                 * now is not another's. */
                if (!is_stray((pid_t)pid, roots_dir, roots_st, names, buf) ||
                    syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) < 0) {
                        close(fd);
                        continue;
                }
                r->killed++;
                *fds = xrealloc(*fds, (*n_fds + 1) * sizeof **fds);
                (*fds)[(*n_fds)++] = fd;
        }
        closedir(d);
}

void runtime_cli_stop_strays(const char *roots_dir, int64_t timeout_ms, struct runtime_strays *ret)
{
        *ret = (struct runtime_strays){ 0 };
        struct stat roots_st;
        _cleanup_strv_ char **names = runtime_names(roots_dir);
        if (!names || stat(roots_dir, &roots_st) < 0)
                return;   /* no runtime has had a root here */
        int64_t deadline = now_mono_ms() + timeout_ms;
        /* Again until a look finds none: one may have been starting. */
        for (int pass = 0; pass < 3 && now_mono_ms() < deadline; pass++) {
                _cleanup_free_ int *fds = NULL;
                size_t n = 0;
                kill_strays_once(roots_dir, &roots_st, names, &fds, &n, ret);
                if (n == 0)
                        break;
                /* A pidfd of a process not our child reads as ready once
                 * it has ended. */
                size_t done = 0;
                while (done < n) {
                        int64_t wait = deadline - now_mono_ms();
                        if (wait <= 0)
                                break;
                        struct pollfd pfd = { .fd = fds[done], .events = POLLIN };
                        int rc = poll(&pfd, 1, (int)(wait < 1000 ? wait : 1000));
                        if (rc > 0 || (rc < 0 && errno != EINTR))
                                done++;
                }
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                if (done < n) {
                        ret->left = n - done;
                        break;
                }
        }
}
