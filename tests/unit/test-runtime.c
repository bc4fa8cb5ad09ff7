/* test-runtime.c - the runtime driver (runtime.h, runtime_cli.h) and the
 * choice of runtime by the sandbox probe (probe.h).
 *
 *   argv:  exact argument vectors, the error line made of a runtime's output,
 *          version strings of runc, crun and youki;
 *   stub:  a recording stub runtime (tests/data/stub-runtime): which argv and
 *          which environment reach the binary, how failures are surfaced,
 *          when a delete counts as done, retries, pid files, time limits;
 *   real:  real containers on the host's runtime (runc here, or the path in
 *          $EDGECD_RUNTIME): exit codes, signals, timeout, cancel, sweep,
 *          and the sandbox probe passing over runtimes whose sandbox leaks.
 * Every real-container test ends with no container in the state root and no
 * cgroup under the test's parent; the tcase teardown cleans up after a
 * failed test too (the fixture: containerfix.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <jansson.h>

#include "base/config.h"
#include "base/util.h"
#include "containerfix.h"
#include "registry/seccomp.h"
#include "runtime/runtime.h"
#include "runtime/runtime_cli.h"
#include "sandbox/idpool.h"
#include "sandbox/probe.h"
#include "testutil.h"

static char T_stub[4096];    /* tests/data/stub-runtime */

static void setup(void)
{
        fixture_setup();
        char *stub = NULL;
        ck_assert_int_ge(asprintf(&stub, "%s/tests/data/stub-runtime", tu_src()), 0);
        ck_assert_ptr_nonnull(realpath(stub, T_stub));
        free(stub);
}

/* A bundle running args on the busybox rootfs as user 65534, no network;
 * pid_ns false leaves the process in the host pid namespace (so it is not
 * an init the kernel shields from its own signals). */
static char *make_bundle(const char *id, const char *const *args, bool pid_ns)
{
        json_t *ns = jnamespaces(pid_ns ? (const char *const[]){ "network", "ipc", "uts", "mount", "pid", NULL }
                                        : (const char *const[]){ "network", "ipc", "uts", "mount", NULL });
        return write_bundle(id, jargs(args), ns, NULL);
}

static char *log_text(const char *id)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s.log", T_dir, id), 0);
        char *t = read_file_tail(p, 65536);
        free(p);
        ck_assert_ptr_nonnull(t);
        return t;
}

/* create + start, or (run) `run --detach`: created and started by one
 * runtime call; returns the init. */
static struct pidref launch(const char *id, const char *const *args, bool pid_ns, int log_fd, bool run)
{
        char *bundle = make_bundle(id, args, pid_ns);
        struct err e = ERR_INIT;
        struct pidref init = PIDREF_NULL;
        if (run) {
                ck_assert_msg(runtime_run(&T_rt, id, bundle, log_fd, &init, &e) == 0, "%s", e.msg);
        } else {
                ck_assert_msg(runtime_create(&T_rt, id, bundle, log_fd, &init, &e) == 0, "%s", e.msg);
                ck_assert_msg(runtime_start(&T_rt, id, &e) == 0, "%s", e.msg);
        }
        ck_assert_int_gt(init.pid, 0);
        free(bundle);
        return init;
}

static struct pidref start_container(const char *id, const char *const *args, bool pid_ns, int log_fd)
{
        return launch(id, args, pid_ns, log_fd, false);
}

static void delete_container(const char *id)
{
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_delete(&T_rt, id, &e) == 0, "%s", e.msg);
        char *dir = NULL;
        ck_assert_int_ge(asprintf(&dir, "%s/%s", T_root, id), 0);
        ck_assert_int_eq(access(dir, F_OK), -1);
        free(dir);
}

/* ---- argv, output, versions ---- */

static void assert_argv(char **got, const char *const *want)
{
        ck_assert_ptr_nonnull(got);
        size_t i = 0;
        for (; want[i]; i++) {
                ck_assert_ptr_nonnull(got[i]);
                ck_assert_str_eq(got[i], want[i]);
        }
        ck_assert_ptr_null(got[i]);
        strv_free(got);
}

static const struct runtime ARGV_RT = { .ops = &runtime_cli_ops, .name = (char *)"youki",
                                        .path = (char *)"/usr/bin/youki", .root = (char *)"/run/edgecd/runtime" };

START_TEST(test_argv_create)
{
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_CREATE, "job-1", "/b/job-1", "/b/job-1/container.pid", NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "create", "--bundle",
                                           "/b/job-1", "--pid-file", "/b/job-1/container.pid", "job-1", NULL });
        ck_assert_ptr_null(runtime_cli_argv(&ARGV_RT, CLI_CREATE, "job-1", NULL, "/p", NULL));
        ck_assert_ptr_null(runtime_cli_argv(&ARGV_RT, CLI_CREATE, "job-1", "/b", NULL, NULL));
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_RUN, "job-1", "/b/job-1", "/b/job-1/container.pid", NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "run", "--detach",
                                           "--bundle", "/b/job-1", "--pid-file", "/b/job-1/container.pid", "job-1",
                                           NULL });
        ck_assert_ptr_null(runtime_cli_argv(&ARGV_RT, CLI_RUN, "job-1", NULL, "/p", NULL));
        /* In the foreground: no --detach. */
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_RUN_ATTACHED, "job-1", "/b/job-1", "/b/job-1/container.pid", NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "run", "--bundle",
                                           "/b/job-1", "--pid-file", "/b/job-1/container.pid", "job-1", NULL });
        ck_assert_ptr_null(runtime_cli_argv(&ARGV_RT, CLI_RUN_ATTACHED, "job-1", "/b", NULL, NULL));
}
END_TEST

START_TEST(test_argv_others)
{
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_START, "j", NULL, NULL, NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "start", "j", NULL });
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_STATE, "j", NULL, NULL, NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "state", "j", NULL });
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_KILL, "j", NULL, NULL, "TERM"),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "kill", "j", "TERM", NULL });
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_KILL, "j", NULL, NULL, NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "kill", "j", "KILL", NULL });
        /* delete is always forced: a container the daemon deletes is one it
         * is done with, running or not. */
        assert_argv(runtime_cli_argv(&ARGV_RT, CLI_DELETE, "j", NULL, NULL, NULL),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "delete", "--force", "j",
                                           NULL });
        ck_assert_ptr_null(runtime_cli_argv(&ARGV_RT, CLI_START, NULL, NULL, NULL, NULL));
}
END_TEST

START_TEST(test_error_text)
{
        char *t = runtime_cli_error_text(NULL);
        ck_assert_str_eq(t, "");
        free(t);
        t = runtime_cli_error_text("cgroups in hybrid mode not supported, drop all controllers from cgroupv2\n");
        ck_assert_str_eq(t, "cgroups in hybrid mode not supported, drop all controllers from cgroupv2");
        free(t);
        t = runtime_cli_error_text("time=\"a\" level=warning msg=\"w\"\ntime=\"b\" level=error msg=\"e1\"\n"
                                   "time=\"c\" level=error msg=\"path \\\"x\\\"\"\n");
        ck_assert_str_eq(t, "e1; path \"x\"");
        free(t);
        char big[2000];
        memset(big, 'a', sizeof big - 2);
        big[sizeof big - 2] = 'z';
        big[sizeof big - 1] = '\0';
        t = runtime_cli_error_text(big);
        ck_assert_int_lt(strlen(t), 600);
        ck_assert_int_eq(strncmp(t, "...", 3), 0);
        ck_assert_int_eq(t[strlen(t) - 1], 'z');
        free(t);
}
END_TEST

/* Which command lines are runtime calls on one of a state dir's roots. */
START_TEST(test_cmdline_root)
{
        static const struct {
                const char *argv[8];
                const char *want;
        } cases[] = {
                { { "/usr/sbin/runc", "--root", "/var/lib/edgecd/runtime/runc", "run", "--bundle", "/b", "x" },
                  "/var/lib/edgecd/runtime/runc" },
                { { "crun", "--root=/var/lib/edgecd/runtime/crun", "create", "x" }, "/var/lib/edgecd/runtime/crun" },
                { { "youki", "--root", "/var/lib/edgecd/runtime/youki/", "run", "x" }, "/var/lib/edgecd/runtime/youki/" },
                /* Another state dir, the roots' directory itself, a prefix. */
                { { "runc", "--root", "/var/lib/edgecd2/runtime/runc", "run", "x" }, NULL },
                { { "runc", "--root", "/var/lib/edgecd/runtime", "list" }, NULL },
                { { "runc", "--root", "/var/lib/edgecd/runtimes/runc", "list" }, NULL },
                { { "runc", "--root", "/var/lib/edgecd/runtime/", "list" }, NULL },
                /* The path not after --root. */
                { { "cat", "/var/lib/edgecd/runtime/runc/x/state.json" }, NULL },
                { { "runc", "--root" }, NULL },
                { { "runc", "init" }, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char buf[512];
                size_t n = 0;
                for (size_t k = 0; cases[i].argv[k]; k++) {
                        size_t l = strlen(cases[i].argv[k]) + 1;
                        memcpy(buf + n, cases[i].argv[k], l);
                        n += l;
                }
                for (int slash = 0; slash < 2; slash++) {
                        const char *got = runtime_cli_cmdline_root(buf, n, slash ? "/var/lib/edgecd/runtime/"
                                                                                 : "/var/lib/edgecd/runtime");
                        if (cases[i].want)
                                ck_assert_msg(got && !strcmp(got, cases[i].want), "case %zu", i);
                        else
                                ck_assert_msg(!got, "case %zu: %s", i, got);
                }
        }
        /* A last argument cut off (no NUL) is not taken for a path. */
        static const char cut[] = "runc\0--root\0/var/lib/edgecd/runtime/runc";
        ck_assert_ptr_null(runtime_cli_cmdline_root(cut, sizeof cut - 1, "/var/lib/edgecd/runtime"));
        ck_assert_ptr_nonnull(runtime_cli_cmdline_root(cut, sizeof cut, "/var/lib/edgecd/runtime"));
        /* Never "anything absolute". */
        static const char any[] = "runc\0--root\0/run/docker/runtime-runc/moby\0";
        ck_assert_ptr_null(runtime_cli_cmdline_root(any, sizeof any - 1, ""));
        ck_assert_ptr_null(runtime_cli_cmdline_root(any, sizeof any - 1, "/"));
        ck_assert_ptr_null(runtime_cli_cmdline_root(any, sizeof any - 1, "run"));
}
END_TEST

/* A stand-in for a runtime call: exe (a link to sh, for the process's
 * name) waiting in the shell's own `read` on a pipe whose other end is
 * the test's, so it ends when the test does, however that ends.  Returns
 * once it has exec'd (its command line is its own). */
static pid_t start_sleeper(const char *exe, const char *root, int *ret_pipe)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (dup2(p[0], 0) < 0)
                        _exit(127);
                execl(exe, "runc", "-c", "read x", "sh", "--root", root, "run", "x", (char *)NULL);
                _exit(127);
        }
        close(p[0]);
        *ret_pipe = p[1];
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        int64_t until = now_mono_ms() + 5000;
        for (;;) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
                if (fd >= 0)
                        close(fd);
                if (n > 0 && memmem(buf, (size_t)n, root, strlen(root)))
                        return pid;
                ck_assert_msg(now_mono_ms() < until, "the stand-in never showed its command line");
                usleep(10000);
        }
}

static bool ended_by_sigkill(pid_t pid)
{
        int st;
        return waitpid(pid, &st, WNOHANG) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* A runtime call left running on one of the roots is killed and waited
 * for; one on another state dir's root, and one under a name no runtime
 * of these roots has, are left alone. */
START_TEST(test_stop_strays)
{
        char *dir = tu_mkdtemp();
        char *roots = xasprintf("%s/runtime", dir);
        char *mine = xasprintf("%s/runc", roots);
        char *other = xasprintf("%s/other/runtime/runc", dir);
        char *runc = xasprintf("%s/runc", dir);   /* the name a process of `mine` runs under */
        char *sh = xasprintf("%s/shell", dir);
        ck_assert_int_eq(mkdir(roots, 0700), 0);
        ck_assert_int_eq(mkdir(mine, 0700), 0);
        ck_assert_int_eq(symlink("/bin/sh", runc), 0);
        ck_assert_int_eq(symlink("/bin/sh", sh), 0);
        int pa, pb, pc;
        pid_t a = start_sleeper(runc, mine, &pa), b = start_sleeper(runc, other, &pb), c = start_sleeper(sh, mine, &pc);
        struct runtime_strays r;
        runtime_cli_stop_strays(roots, 5000, &r);
        ck_assert_uint_eq(r.killed, 1);
        ck_assert_uint_eq(r.left, 0);
        ck_assert_uint_eq(r.skipped, 0);
        ck_assert(ended_by_sigkill(a));   /* ended before it returned */
        int st;
        ck_assert_int_eq(waitpid(b, &st, WNOHANG), 0);
        ck_assert_int_eq(waitpid(c, &st, WNOHANG), 0);
        runtime_cli_stop_strays(roots, 5000, &r);
        ck_assert_uint_eq(r.killed, 0);
        /* Their pipes closed: `read` ends, and so do they. */
        close(pa);
        close(pb);
        close(pc);
        ck_assert_int_eq(waitpid(b, &st, 0), b);
        ck_assert_int_eq(waitpid(c, &st, 0), c);
        /* No roots at all (a first start): nothing is looked at. */
        char *none = xasprintf("%s/none", dir);
        runtime_cli_stop_strays(none, 5000, &r);
        ck_assert_uint_eq(r.killed + r.left + r.skipped, 0);
        tu_rm_rf(dir);
        free(none);
        free(sh);
        free(runc);
        free(other);
        free(mine);
        free(roots);
        free(dir);
}
END_TEST

/* The first line of `--version` of each runtime, as they print it. */
START_TEST(test_parse_version)
{
        static const struct {
                const char *out, *want;
        } cases[] = {
                { "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n", "1.1.5+ds1" },
                { "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\n", "1.8.1" },
                { "youki version: 0.7.0\ncommit: 0.7.0-0-94ba653\nspec: 1.2.0\n", "0.7.0" },
                { "youki version 0.7.0\n", "0.7.0" },
                { "1.2.3\n", "1.2.3" },
                { "something else\n", NULL },
                { "", NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *v = runtime_cli_parse_version(cases[i].out);
                if (cases[i].want)
                        ck_assert_msg(v && !strcmp(v, cases[i].want), "%s -> %s", cases[i].out, v ? v : "NULL");
                else
                        ck_assert_msg(!v, "%s -> %s", cases[i].out, v);
                free(v);
        }
        ck_assert_ptr_null(runtime_cli_parse_version(NULL));
}
END_TEST

/* ---- the stub runtime ---- */

static char *T_stub_log;

/* A runtime on the stub whose environment is PATH, STUB_LOG and kvs. */
static struct runtime stub_rt(const char *const *kvs)
{
        free(T_stub_log);
        ck_assert_int_ge(asprintf(&T_stub_log, "%s/stub.log", T_dir), 0);
        unlink(T_stub_log);
        char **env = NULL;
        strv_push(&env, "PATH=/usr/bin:/bin");
        char *kv = NULL;
        ck_assert_int_ge(asprintf(&kv, "STUB_LOG=%s", T_stub_log), 0);
        strv_push(&env, kv);
        free(kv);
        for (size_t i = 0; kvs && kvs[i]; i++)
                strv_push(&env, kvs[i]);
        return (struct runtime){ .ops = &runtime_cli_ops, .name = (char *)"stub", .path = T_stub, .root = T_root,
                                 .env = env, .cli_timeout_ms = 10000 };
}

static void stub_done(struct runtime *rt)
{
        strv_free(rt->env);
        rt->env = NULL;
}

/* What the stub recorded: "$0\narg\n...\n\n" per call. */
static void assert_stub_log(const char *const *calls)
{
        char *want = strdup("");
        for (; *calls; calls++) {
                char *w = NULL;
                ck_assert_int_ge(asprintf(&w, "%s%s\n--root\n%s\n%s\n\n", want, T_stub, T_root, *calls), 0);
                free(want);
                want = w;
        }
        char *got = read_file_tail(T_stub_log, 65536);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want);
        free(got);
        free(want);
}

/* T_root/<id>: the state directory a runtime keeps while a container exists. */
static void make_state(const char *id, bool exists)
{
        char *dir = NULL;
        ck_assert_int_ge(asprintf(&dir, "%s/%s", T_root, id), 0);
        if (exists)
                ck_assert_int_eq(mkdir(dir, 0700), 0);
        else
                tu_rm_rf(dir);
        free(dir);
}

START_TEST(test_stub_start_kill_delete_argv)
{
        struct runtime rt = stub_rt((const char *const[]){ "STUB_DELETE_REMOVES=1", NULL });
        struct err e = ERR_INIT;
        make_state("job-7", true);
        ck_assert_msg(runtime_start(&rt, "job-7", &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_kill(&rt, "job-7", "TERM", &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_delete(&rt, "job-7", &e) == 0, "%s", e.msg);
        assert_stub_log((const char *const[]){ "start\njob-7", "kill\njob-7\nTERM", "delete\n--force\njob-7", NULL });
        stub_done(&rt);
}
END_TEST

/* A container the runtime keeps no state for (an attached run deleted its
 * own) needs no runtime process to delete. */
START_TEST(test_stub_delete_without_state_spawns_nothing)
{
        struct runtime rt = stub_rt(NULL);
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_delete(&rt, "job-8", &e) == 0, "%s", e.msg);
        ck_assert_int_eq(access(T_stub_log, F_OK), -1);
        stub_done(&rt);
}
END_TEST

/* An attached run: the runtime's process is returned, not waited for; its
 * end means the container's when the pid file says the container ran (a
 * status 128+N as signal N), and the runtime's failure when not. */
START_TEST(test_stub_run_attached)
{
        struct err e = ERR_INIT;
        int fd = open_log("c-att");
        struct { const char *exit; const char *pidfile; enum proc_wait_status status; int code; } cases[] = {
                { "0", "4242", WAIT_EXITED, 0 },
                { "3", "4242", WAIT_EXITED, 3 },
                { "137", "4242", WAIT_SIGNALED, SIGKILL },
                { "159", "4242", WAIT_SIGNALED, SIGSYS },
                { "1", NULL, WAIT_EXITED, -1 },     /* never ran: the runtime failed */
                { "0", NULL, WAIT_EXITED, -1 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char exit_kv[32], pid_kv[32];
                snprintf(exit_kv, sizeof exit_kv, "STUB_EXIT=%s", cases[i].exit);
                snprintf(pid_kv, sizeof pid_kv, "STUB_PIDFILE=%s", cases[i].pidfile ? cases[i].pidfile : "");
                struct runtime rt = stub_rt((const char *const[]){ exit_kv, pid_kv,
                                                                   "STUB_STDERR=level=error msg=\"no such image\"", NULL });
                struct pidref proc = PIDREF_NULL;
                int64_t t0 = now_real_ms();
                ck_assert_msg(runtime_run_attached(&rt, "c-att", T_dir, fd, &proc, &e) == 0, "%s", e.msg);
                ck_assert_int_gt(proc.pid, 0);
                struct proc_exit rx, cx;
                ck_assert_msg(pidref_wait(&proc, now_mono_ms() + 10000, -1, &rx, &e) == 0, "%s", e.msg);
                ck_assert_int_eq(rx.status, WAIT_EXITED);
                int64_t started;
                bool ran = runtime_attached_started(&rt, "c-att", T_dir, &started);
                ck_assert_int_eq(ran, cases[i].pidfile != NULL);
                int r = runtime_attached_end(&rt, "c-att", T_dir, &rx, &cx, &e);
                if (cases[i].code < 0) {
                        ck_assert_int_eq(r, -1);
                        ck_assert_int_eq(e.code, ERR_RUNTIME);
                        ck_assert_msg(strstr(e.msg, "stub run `c-att`") && strstr(e.msg, "before the container ran"),
                                      "%s", e.msg);
                } else {
                        ck_assert_msg(r == 0, "%s", e.msg);
                        ck_assert_int_ge(started, t0 - 1000);
                        ck_assert_int_le(started, now_real_ms() + 1000);
                        ck_assert_int_eq(cx.status, cases[i].status);
                        ck_assert_int_eq(cx.status == WAIT_EXITED ? cx.exit_code : cx.signal, cases[i].code);
                }
                stub_done(&rt);
        }
        /* Argv as runtime_cli_argv() says, output on the log fd. */
        char *log = log_text("c-att");
        ck_assert_msg(strstr(log, "no such image"), "%s", log);
        free(log);
        close(fd);
        char *pid_file = NULL;
        ck_assert_int_ge(asprintf(&pid_file, "%s/container.pid", T_dir), 0);
        char *calls = read_file_tail(T_stub_log, 65536);
        ck_assert_msg(calls && strstr(calls, "\nrun\n--bundle\n"), "no foreground run: %s", calls);
        free(calls);
        unlink(pid_file);
        free(pid_file);
}
END_TEST

/* Under systemd the daemon has NOTIFY_SOCKET (runc then proxies it and
 * `start` blocks) and LISTEN_FDS: no runtime process may see them, nor any
 * other variable of the daemon's. */
START_TEST(test_stub_environment_is_explicit)
{
        setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
        setenv("LISTEN_FDS", "1", 1);
        setenv("EDGECD_SECRET_OF_THE_DAEMON", "x", 1);
        char *envlog = NULL;
        ck_assert_int_ge(asprintf(&envlog, "STUB_ENV_LOG=%s/env.log", T_dir), 0);
        struct runtime rt = stub_rt((const char *const[]){ envlog, NULL });
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_start(&rt, "job-env", &e) == 0, "%s", e.msg);
        char *got = read_file_tail(envlog + strlen("STUB_ENV_LOG="), 65536);
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(!strstr(got, "NOTIFY_SOCKET"), "%s", got);
        ck_assert_msg(!strstr(got, "LISTEN_FDS"), "%s", got);
        ck_assert_msg(!strstr(got, "EDGECD_SECRET_OF_THE_DAEMON"), "%s", got);
        ck_assert_msg(strstr(got, "PATH=/usr/bin:/bin\n"), "%s", got);
        free(got);
        stub_done(&rt);
        free(envlog);

        /* A runtime made for the daemon gets PATH and nothing else. */
        struct runtime *real = runtime_cli_new("stub", T_stub, T_root, 1000);
        ck_assert_int_eq(strv_len(real->env), 1);
        ck_assert_int_eq(strncmp(real->env[0], "PATH=", 5), 0);
        ck_assert_msg(strstr(real->env[0], "/usr/sbin"), "%s", real->env[0]);
        runtime_free(real);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("LISTEN_FDS");
        unsetenv("EDGECD_SECRET_OF_THE_DAEMON");
}
END_TEST

START_TEST(test_stub_failure_is_surfaced)
{
        struct runtime rt = stub_rt((const char *const[]){
                "STUB_EXIT=1",
                "STUB_STDERR=time=\"2026-01-01T00:00:00Z\" level=warning msg=\"ignore me\"\n"
                "time=\"2026-01-01T00:00:00Z\" level=error msg=\"container \\\"job-7\\\" is paused\"",
                NULL });
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "job-7", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_str_eq(e.msg, "stub start `job-7`: exited with status 1: container \"job-7\" is paused");
        stub_done(&rt);

        /* Plain text (crun style) is kept as it is. */
        rt = stub_rt((const char *const[]){ "STUB_EXIT=2", "STUB_STDERR=boom: something broke", NULL });
        make_state("job-8", true);
        ck_assert_int_eq(runtime_delete(&rt, "job-8", &e), -1);
        ck_assert_str_eq(e.msg, "stub delete `job-8`: exited with status 2: boom: something broke");
        ck_assert_ptr_null(strstr(e.msg, "exec"));
        make_state("job-8", false);
        stub_done(&rt);
}
END_TEST

/* A delete is done when the container's state is gone, whatever the
 * runtime says: "does not exist" on a container that is still there is a
 * failure (a partial delete must not leak silently), and a failing status
 * on one that is gone is success. */
START_TEST(test_stub_delete_is_done_when_state_is_gone)
{
        struct err e = ERR_INIT;
        struct runtime rt = stub_rt((const char *const[]){
                "STUB_EXIT=1", "STUB_STDERR=time=\"x\" level=error msg=\"container does not exist\"", NULL });
        make_state("c-lies", true);
        ck_assert_int_eq(runtime_delete(&rt, "c-lies", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_msg(strstr(e.msg, "container does not exist"), "%s", e.msg);
        make_state("c-lies", false);
        ck_assert_msg(runtime_delete(&rt, "c-lies", &e) == 0, "%s", e.msg);
        stub_done(&rt);

        /* Exit 0 but the state stays: not done either. */
        rt = stub_rt(NULL);
        make_state("c-stays", true);
        ck_assert_int_eq(runtime_delete(&rt, "c-stays", &e), -1);
        ck_assert_msg(strstr(e.msg, "is still there"), "%s", e.msg);
        make_state("c-stays", false);
        stub_done(&rt);
}
END_TEST

/* youki once failed a delete with "failed to seal /proc/self/exe: Device
 * or resource busy": a retry finishes the job, and a delete that never
 * works says so after its attempts. */
START_TEST(test_stub_delete_retry)
{
        char *counter = NULL, *kv = NULL;
        ck_assert_int_ge(asprintf(&counter, "%s/counter", T_dir), 0);
        ck_assert_int_ge(asprintf(&kv, "STUB_COUNTER=%s", counter), 0);
        struct runtime rt = stub_rt((const char *const[]){ "STUB_FAIL_FIRST=2", "STUB_DELETE_REMOVES=1", kv, NULL });
        struct err e = ERR_INIT;
        make_state("c-busy", true);
        ck_assert_msg(runtime_delete_retry(&rt, "c-busy", 3, &e) == 0, "%s", e.msg);
        char *n = read_file_tail(counter, 64);
        ck_assert_str_eq(n, "3\n");
        free(n);
        stub_done(&rt);

        unlink(counter);
        rt = stub_rt((const char *const[]){ "STUB_FAIL_FIRST=9", "STUB_DELETE_REMOVES=1", kv, NULL });
        make_state("c-stuck", true);
        ck_assert_int_eq(runtime_delete_retry(&rt, "c-stuck", 3, &e), -1);
        ck_assert_msg(strstr(e.msg, "gave up after 3 attempts"), "%s", e.msg);
        ck_assert_msg(strstr(e.msg, "Device or resource busy"), "%s", e.msg);
        make_state("c-stuck", false);
        stub_done(&rt);
        free(kv);
        free(counter);
}
END_TEST

START_TEST(test_stub_kill_checks_state)
{
        struct err e = ERR_INIT;
        make_state("c1", true);
        struct runtime rt = stub_rt((const char *const[]){ "STUB_EXIT=1", "STUB_STDERR=kill: weird failure",
                                                           "STUB_STATE=stopped", NULL });
        ck_assert_msg(runtime_kill(&rt, "c1", "KILL", &e) == 0, "%s", e.msg);
        assert_stub_log((const char *const[]){ "kill\nc1\nKILL", "state\nc1", NULL });
        stub_done(&rt);
        rt = stub_rt((const char *const[]){ "STUB_EXIT=1", "STUB_STDERR=kill: weird failure", "STUB_STATE=running", NULL });
        ck_assert_int_eq(runtime_kill(&rt, "c1", "KILL", &e), -1);
        ck_assert_str_eq(e.msg, "stub kill `c1`: exited with status 1: kill: weird failure");
        stub_done(&rt);
        /* Gone altogether: killing it is what was wanted. */
        make_state("c1", false);
        rt = stub_rt((const char *const[]){ "STUB_EXIT=1", "STUB_STDERR=whatever it says", NULL });
        ck_assert_msg(runtime_kill(&rt, "c1", "KILL", &e) == 0, "%s", e.msg);
        stub_done(&rt);
}
END_TEST

/* create's stderr is the log fd: quoted from a file, left to the reader of
 * a pipe; the cause is never replaced. */
START_TEST(test_stub_create_failure_log_fd)
{
        struct runtime rt = stub_rt((const char *const[]){
                "STUB_EXIT=1", "STUB_STDERR=time=\"x\" level=error msg=\"runc create failed: no cgroup\"", NULL });
        struct err e = ERR_INIT;
        int fd = open_log("c-file");
        ck_assert_int_eq(write(fd, "earlier output\n", 15), 15);
        struct pidref init = PIDREF_NULL;
        ck_assert_int_eq(runtime_create(&rt, "c1", T_dir, fd, &init, &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_str_eq(e.msg, "stub create `c1`: exited with status 1: runc create failed: no cgroup");
        ck_assert_int_eq(init.pid, 0);
        close(fd);

        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(runtime_create(&rt, "c2", T_dir, p[1], &init, &e), -1);
        ck_assert_str_eq(e.msg, "stub create `c2`: exited with status 1");
        close(p[1]);
        char buf[256] = "";
        ck_assert_int_gt(read(p[0], buf, sizeof buf - 1), 0);
        close(p[0]);
        char *line = runtime_error_text(&rt, buf);
        ck_assert_str_eq(line, "runc create failed: no cgroup");
        free(line);
        stub_done(&rt);
}
END_TEST

/* What a pid file may say, and what each means. */
START_TEST(test_stub_pid_file)
{
        struct err e = ERR_INIT;
        struct pidref init = PIDREF_NULL;
        int fd = open_log("c-pid");
        struct runtime rt = stub_rt(NULL);   /* exits 0, writes no pid file */
        ck_assert_int_eq(runtime_create(&rt, "c1", T_dir, fd, &init, &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_msg(strstr(e.msg, "stub create `c1`: pid file"), "%s", e.msg);
        stub_done(&rt);

        rt = stub_rt((const char *const[]){ "STUB_PIDFILE=twelve", NULL });
        ck_assert_int_eq(runtime_create(&rt, "c1", T_dir, fd, &init, &e), -1);
        ck_assert_msg(strstr(e.msg, "bad pid file") && strstr(e.msg, "`twelve`"), "%s", e.msg);
        stub_done(&rt);

        /* A pid that is no child of ours: never waited for, never killed. */
        rt = stub_rt((const char *const[]){ "STUB_PIDFILE=1", NULL });
        ck_assert_int_eq(runtime_create(&rt, "c1", T_dir, fd, &init, &e), -1);
        ck_assert_msg(strstr(e.msg, "pid 1 is not a child of the daemon"), "%s", e.msg);
        ck_assert_int_eq(init.pid, 0);
        stub_done(&rt);
        close(fd);
}
END_TEST

START_TEST(test_stub_cli_timeout)
{
        struct runtime rt = stub_rt((const char *const[]){ "STUB_SLEEP=20", NULL });
        rt.cli_timeout_ms = 300;
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "c-slow", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_msg(strstr(e.msg, "stub start `c-slow`: ") && strstr(e.msg, "timed out after 300 ms and was killed"),
                      "%s", e.msg);
        /* create keeps that cause too. */
        int fd = open_log("c-slow");
        struct pidref init = PIDREF_NULL;
        ck_assert_int_eq(runtime_create(&rt, "c-slow", T_dir, fd, &init, &e), -1);
        ck_assert_msg(strstr(e.msg, "timed out after 300 ms"), "%s", e.msg);
        close(fd);
        stub_done(&rt);
}
END_TEST

START_TEST(test_exec_missing_binary)
{
        struct runtime rt = { .ops = &runtime_cli_ops, .name = (char *)"runc", .path = (char *)"/nonexistent/runc",
                              .root = T_root, .cli_timeout_ms = 10000 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "x", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_int_eq(e.errnum, ENOENT);
        ck_assert_str_eq(e.msg, "runc start `x`: exec `/nonexistent/runc`: No such file or directory");
        /* create says the same, and reports no init */
        struct pidref init = PIDREF_NULL;
        int fd = open_log("missing");
        ck_assert_int_eq(runtime_create(&rt, "x", T_dir, fd, &init, &e), -1);
        ck_assert_int_eq(init.pid, 0);
        ck_assert_str_eq(e.msg, "runc create `x`: exec `/nonexistent/runc`: No such file or directory");
        close(fd);
}
END_TEST

START_TEST(test_bad_id_rejected)
{
        struct runtime rt = stub_rt(NULL);
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "--force", &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_int_eq(runtime_delete(&rt, "a/b", &e), -1);
        ck_assert_int_eq(runtime_kill(&rt, "", "KILL", &e), -1);
        ck_assert_int_eq(access(T_stub_log, F_OK), -1);  /* the stub never ran */
        stub_done(&rt);
}
END_TEST

/* ---- choosing a runtime: the sandbox probe ---- */

struct report_lines {
        char *text;
};

static void collect(const char *msg, void *ctx)
{
        struct report_lines *r = ctx;
        char *n = NULL;
        ck_assert_int_ge(asprintf(&n, "%s%s\n", r->text ? r->text : "", msg), 0);
        free(r->text);
        r->text = n;
}

struct probe_fix {
        struct config cfg;
        struct seccomp_policy *policy;
        struct idpool *ids;
};

static void probe_fix_init(struct probe_fix *f, const char *preferred)
{
        config_init_defaults(&f->cfg);
        char *s = NULL;
        ck_assert_int_ge(asprintf(&s, "%s/state", T_dir), 0);
        config_set_string(&f->cfg.state_dir, s);
        free(s);
        ck_assert_int_ge(asprintf(&s, "%s/oci-templates", tu_src()), 0);
        char real[4096];
        ck_assert_ptr_nonnull(realpath(s, real));
        free(s);
        config_set_string(&f->cfg.templates_dir, real);
        config_set_string(&f->cfg.cgroup_parent, T_cg);
        config_set_string(&f->cfg.runtime, preferred);
        ck_assert_int_ge(asprintf(&s, "%s/seccomp.allow", real), 0);
        struct err e = ERR_INIT;
        ck_assert_msg(seccomp_policy_load(s, &f->policy, &e) == 0, "%s", e.msg);
        free(s);
        f->ids = idpool_new(2001000000, 2001000000, 16);
}

static void probe_fix_done(struct probe_fix *f)
{
        seccomp_policy_free(f->policy);
        idpool_free(f->ids);
        config_free(&f->cfg);
}

/* Probe with `preferred` first; returns the report lines (caller frees)
 * and the chosen runtime's name in *ret (caller frees). */
static char *probe_with(const char *preferred, char **ret_name)
{
        struct probe_fix f;
        probe_fix_init(&f, preferred);
        struct probe_env pe = { .cfg = &f.cfg, .policy = f.policy, .ids = f.ids };
        struct report_lines lines = { 0 };
        struct runtime *rt = NULL;
        struct err e = ERR_INIT;
        int r = probe_select_runtime(&pe, collect, &lines, &rt, &e);
        ck_assert_msg(r == 0, "%s\n%s", e.msg, lines.text ? lines.text : "");
        ck_assert_int_eq(idpool_in_use(f.ids), 0);   /* the probe gave its uid back */
        *ret_name = strdup(rt->name);
        char *root = NULL;
        ck_assert_int_ge(asprintf(&root, "%s/state/runtime/%s", T_dir, rt->name), 0);
        ck_assert_str_eq(rt->root, root);
        free(root);
        runtime_free(rt);
        /* The probe's workspaces and containers are gone. */
        char *left = run_cmd("find '%s/state/probe/work' -mindepth 1 -maxdepth 1; "
                             "find '%s/state/runtime' -mindepth 2 -maxdepth 2", T_dir, T_dir);
        ck_assert_msg(!*left, "probe leftovers: %s", left);
        free(left);
        ck_assert_int_eq(cgroup_count_children(T_cg), 0);
        probe_fix_done(&f);
        fprintf(stderr, "%s", lines.text);
        return lines.text;
}

START_TEST(test_probe_chooses_a_runtime)
{
        char *name = NULL;
        setenv("PATH", "/usr/bin:/bin", 1);  /* runc lives in sbin: found anyway */
        char *lines = probe_with("youki", &name);
        if (access("/usr/bin/youki", X_OK) && access("/usr/sbin/youki", X_OK) && access("/usr/local/bin/youki", X_OK))
                ck_assert_msg(strstr(lines, "runtime `youki`: not found in PATH\n"), "%s", lines);
        if (!pure_v2() && !strcmp(name, "runc"))
                ck_assert_msg(strstr(lines, "runtime `crun` (/usr/bin/crun, version ") && strstr(lines, "hybrid"),
                              "%s", lines);
        ck_assert_msg(strstr(lines, "runtime: using `"), "%s", lines);
        ck_assert_msg(strstr(lines, "the sandbox probe passed in "), "%s", lines);
        free(lines);
        free(name);
}
END_TEST

/* A wrapper runtime: a shell script named `name` that edits the bundle's
 * config.json with python (the code in `edit`, on a dict `c`) before every
 * create, then hands over to the real runtime.  Returns its path. */
static char *wrapper(const char *name, const char *edit)
{
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/%s", T_dir, name), 0);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "#!/bin/sh\n"
                "prev=\n"
                "for a in \"$@\"; do\n"
                "  if [ \"$prev\" = --bundle ]; then\n"
                "    /usr/bin/python3 - \"$a/config.json\" <<'PY'\n"
                "import json, sys\n"
                "p = sys.argv[1]\n"
                "c = json.load(open(p))\n"
                "%s\n"
                "json.dump(c, open(p, 'w'))\n"
                "PY\n"
                "  fi\n"
                "  prev=$a\n"
                "done\n"
                "exec %s \"$@\"\n",
                edit, T_rtpath);
        fclose(f);
        ck_assert_int_eq(chmod(path, 0755), 0);
        return path;
}

/* Runtimes under which a job would not be sandboxed are passed over, each
 * with the reason. */
START_TEST(test_probe_passes_over_leaky_runtimes)
{
        static const struct {
                const char *name, *edit, *reason;
        } leaks[] = {
                { "noseccomp", "del c['linux']['seccomp']", "no seccomp filter in the container" },
                { "hostnet", "c['linux']['namespaces'] = [n for n in c['linux']['namespaces'] if n['type'] != 'network']",
                  "the container's network is not empty" },
                /* youki 0.7.0 took valueTwo for the mask: with Docker's
                 * encoding of the clone rule that is an unconditional allow. */
                { "maskswap",
                  "r = [x for x in c['linux']['seccomp']['syscalls'] if x['names'] != ['clone']]\n"
                  "r.append({'names': ['clone'], 'action': 'SCMP_ACT_ALLOW', 'args': [{'index': 0, 'op': "
                  "'SCMP_CMP_MASKED_EQ', 'value': 0, 'valueTwo': 2114060288}]})\n"
                  "c['linux']['seccomp']['syscalls'] = r",
                  "clone(CLONE_NEWUSER) was not killed" },
                { "caps", "c['process']['capabilities'] = {k: ['CAP_SYS_ADMIN'] for k in ('bounding', 'effective', 'permitted')}",
                  "the probe holds capabilities" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(leaks); i++) {
                char *w = wrapper(leaks[i].name, leaks[i].edit);
                char *name = NULL;
                char *lines = probe_with(w, &name);
                ck_assert_str_ne(name, leaks[i].name);
                char *want = NULL;
                ck_assert_int_ge(asprintf(&want, "runtime `%s` (%s, version ", leaks[i].name, w), 0);
                ck_assert_msg(strstr(lines, want) && strstr(lines, "passed over: ") && strstr(lines, leaks[i].reason),
                              "%s", lines);
                free(want);
                free(lines);
                free(name);
                free(w);
        }
}
END_TEST

/* The same policy, read with value and valueTwo the other way round (as
 * youki 0.7.0 does), still holds: the probe passes and the wrapper runs. */
START_TEST(test_probe_policy_means_the_same_swapped)
{
        char *w = wrapper("swapper",
                          "for r in c['linux']['seccomp']['syscalls']:\n"
                          "    for a in r.get('args', []):\n"
                          "        if a['op'] == 'SCMP_CMP_MASKED_EQ':\n"
                          "            a['value'], a['valueTwo'] = a.get('valueTwo', 0), a['value']");
        char *name = NULL;
        char *lines = probe_with(w, &name);
        ck_assert_msg(!strcmp(name, "swapper"), "%s", lines);
        free(lines);
        free(name);
        free(w);
}
END_TEST

/* ---- real containers ---- */

START_TEST(test_exit_zero)
{
        int log = open_log("t-exit0");
        struct pidref init = start_container("t-exit0", (const char *const[]){ "/bin/busybox", "sh", "-c",
                                                                              "echo hello from $(busybox id -u)", NULL },
                                             true, log);
        struct proc_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 0);
        ck_assert_int_eq(init.pid, 0);   /* reaped: the pidref is done */
        delete_container("t-exit0");
        char *out = log_text("t-exit0");
        ck_assert_str_eq(out, "hello from 65534\n");
        free(out);
        close(log);
        assert_no_leftovers();
}
END_TEST

static atomic_bool reaper_stop;
static void *reaper_loop(void *arg)
{
        (void)arg;
        while (!atomic_load(&reaper_stop)) {
                reaper_reap_orphans();
                usleep(200);
        }
        return NULL;
}

/* With the orphan reaper hammering in another thread, neither the CLI
 * calls nor the waits lose their child's status, even for an init that
 * exits before anybody waits: after `create` + `start`, and after the cold
 * path's `run --detach` (the init may be gone before the runtime returns;
 * it is claimed in the window all the same), whose output reaches the log. */
START_TEST(test_exit_code_with_reaper_running)
{
        atomic_store(&reaper_stop, false);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, reaper_loop, NULL), 0);
        for (int i = 0; i < 6; i++) {
                bool run = i >= 3;
                char id[32];
                snprintf(id, sizeof id, "t-%s-exit7-%d", run ? "run" : "create", i);
                int log = open_log(id);
                const char *const args[] = { "/bin/busybox", "sh", "-c", "echo ran; exit 7", NULL };
                struct pidref init = launch(id, args, true, log, run);
                if (i % 3 == 1)
                        usleep(100000);  /* let it die first: claimed, so the reaper leaves it */
                struct proc_exit ex;
                struct err e = ERR_INIT;
                ck_assert_msg(pidref_wait(&init, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
                ck_assert_int_eq(ex.status, WAIT_EXITED);
                ck_assert_int_eq(ex.exit_code, 7);
                delete_container(id);
                close(log);
                _cleanup_free_ char *out = log_text(id);
                ck_assert_msg(strstr(out, "ran"), "the container's output reached the log: `%s`", out);
        }
        atomic_store(&reaper_stop, true);
        pthread_join(th, NULL);
        assert_no_leftovers();
}
END_TEST

struct worker {
        int n;
        char bundle[3][700];
        int fails;
        char msg[1100];
};

/* Create, start, wait, delete three containers; no ck_assert off the main
 * thread: count failures and keep the first message. */
static void *worker_run(void *arg)
{
        struct worker *w = arg;
        for (int i = 0; i < 3; i++) {
                char id[32];
                snprintf(id, sizeof id, "t-par-%d-%d", w->n, i);
                struct err e = ERR_INIT;
                struct proc_exit ex = { 0 };
                struct pidref init = PIDREF_NULL;
                int log = open(T_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                int r = log < 0 ? -1 : runtime_create(&T_rt, id, w->bundle[i], log, &init, &e);
                if (r == 0 && (r = runtime_start(&T_rt, id, &e)) == 0)
                        r = pidref_wait(&init, now_mono_ms() + 20000, -1, &ex, &e);
                if (r == 0 && !(ex.status == WAIT_EXITED && ex.exit_code == w->n + i))
                        r = err_set(&e, ERR_INTERNAL, 0, "%s: status %d code %d", id, ex.status, ex.exit_code);
                pidref_release(&init);
                struct err d = ERR_INIT;
                if (runtime_delete(&T_rt, id, &d) < 0 && r == 0) {
                        r = -1;
                        e = d;
                }
                if (r < 0 && !w->fails++)
                        snprintf(w->msg, sizeof w->msg, "%s", e.msg);
                if (log >= 0)
                        close(log);
        }
        return NULL;
}

START_TEST(test_concurrent_containers)
{
        enum { N = 4 };
        struct worker w[N];
        for (int i = 0; i < N; i++) {
                w[i] = (struct worker){ .n = i };
                for (int j = 0; j < 3; j++) {
                        char id[32], script[32];
                        snprintf(id, sizeof id, "t-par-%d-%d", i, j);
                        snprintf(script, sizeof script, "exit %d", i + j);
                        char *b = make_bundle(id, (const char *const[]){ "/bin/busybox", "sh", "-c", script, NULL }, true);
                        snprintf(w[i].bundle[j], sizeof w[i].bundle[j], "%s", b);
                        free(b);
                }
        }
        atomic_store(&reaper_stop, false);
        pthread_t reaper, th[N];
        ck_assert_int_eq(pthread_create(&reaper, NULL, reaper_loop, NULL), 0);
        for (int i = 0; i < N; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
        for (int i = 0; i < N; i++)
                pthread_join(th[i], NULL);
        atomic_store(&reaper_stop, true);
        pthread_join(reaper, NULL);
        for (int i = 0; i < N; i++)
                ck_assert_msg(w[i].fails == 0, "worker %d: %d failures: %s", i, w[i].fails, w[i].msg);
        assert_no_leftovers();
}
END_TEST

/* The cold path: `run` in the foreground.  The runtime's process ends with
 * its container, having deleted it; a container killed through the runtime
 * reads as killed by that signal. */
START_TEST(test_run_attached)
{
        struct err e = ERR_INIT;
        struct pidref proc = PIDREF_NULL;
        struct proc_exit rx, cx;
        int log = open_log("t-att");
        char *bundle = make_bundle("t-att", (const char *const[]){ "/bin/busybox", "sh", "-c",
                                                                  "echo attached; exit 7", NULL }, true);
        ck_assert_msg(runtime_run_attached(&T_rt, "t-att", bundle, log, &proc, &e) == 0, "%s", e.msg);
        ck_assert_msg(pidref_wait(&proc, now_mono_ms() + 20000, -1, &rx, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_attached_end(&T_rt, "t-att", bundle, &rx, &cx, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(cx.status, WAIT_EXITED);
        ck_assert_int_eq(cx.exit_code, 7);
        char *dir = NULL;
        ck_assert_int_ge(asprintf(&dir, "%s/t-att", T_root), 0);
        ck_assert_int_eq(access(dir, F_OK), -1);   /* deleted by its runtime */
        free(dir);
        char *out = log_text("t-att");
        ck_assert_msg(strstr(out, "attached\n"), "%s", out);
        free(out);
        free(bundle);

        bundle = make_bundle("t-att2", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL }, true);
        ck_assert_msg(runtime_run_attached(&T_rt, "t-att2", bundle, log, &proc, &e) == 0, "%s", e.msg);
        int64_t started = -1, until = now_mono_ms() + 20000;
        while (!runtime_attached_started(&T_rt, "t-att2", bundle, &started) && now_mono_ms() < until)
                usleep(10000);
        ck_assert_int_gt(started, 0);
        ck_assert_msg(pidref_wait(&proc, now_mono_ms() + 200, -1, &rx, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rx.status, WAIT_TIMEOUT);
        ck_assert_msg(runtime_kill(&T_rt, "t-att2", "KILL", &e) == 0, "%s", e.msg);
        ck_assert_msg(pidref_wait(&proc, now_mono_ms() + 10000, -1, &rx, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_attached_end(&T_rt, "t-att2", bundle, &rx, &cx, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(cx.status, WAIT_SIGNALED);
        ck_assert_int_eq(cx.signal, SIGKILL);
        free(bundle);
        close(log);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_killed_by_signal)
{
        int log = open_log("t-sig");
        /* Outside a pid namespace the shell is no init and dies of TERM. */
        struct pidref init = start_container("t-sig", (const char *const[]){ "/bin/busybox", "sh", "-c",
                                                                            "kill -TERM $$; sleep 5", NULL },
                                             false, log);
        struct proc_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGTERM);
        delete_container("t-sig");
        close(log);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_timeout_then_kill)
{
        int log = open_log("t-timeout");
        struct pidref init = start_container("t-timeout", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL },
                                             true, log);
        struct proc_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 300, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_TIMEOUT);
        ck_assert_int_gt(init.pid, 0);   /* still ours */
        ck_assert_int_eq(pidref_signal(&init, 0), 0);
        /* The init of a pid namespace: SIGKILL takes the namespace with it. */
        ck_assert_int_eq(pidref_signal(&init, SIGKILL), 0);
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGKILL);
        /* Killing it through the runtime now that it has exited is fine. */
        ck_assert_msg(runtime_kill(&T_rt, "t-timeout", "KILL", &e) == 0, "%s", e.msg);
        delete_container("t-timeout");
        /* Deleting what is gone is fine too. */
        ck_assert_msg(runtime_delete(&T_rt, "t-timeout", &e) == 0, "%s", e.msg);
        close(log);
        assert_no_leftovers();
}
END_TEST

static void *poke_later(void *arg)
{
        usleep(200000);
        uint64_t one = 1;
        ck_assert_int_eq(write(*(int *)arg, &one, sizeof one), (ssize_t)sizeof one);
        return NULL;
}

START_TEST(test_cancel_with_eventfd)
{
        int log = open_log("t-cancel");
        struct pidref init = start_container("t-cancel", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL },
                                             true, log);
        int efd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(efd, 0);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, poke_later, &efd), 0);
        struct proc_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 20000, efd, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_CANCELLED);
        pthread_join(th, NULL);
        /* A forced delete kills what runs. */
        ck_assert_msg(runtime_delete(&T_rt, "t-cancel", &e) == 0, "%s", e.msg);
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGKILL);
        close(efd);
        close(log);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_bad_command_message)
{
        int log = open_log("t-badcmd");
        char *bundle = make_bundle("t-badcmd", (const char *const[]){ "/bin/nonexistent-tool", NULL }, true);
        struct err e = ERR_INIT;
        struct pidref init = PIDREF_NULL;
        int r = runtime_create(&T_rt, "t-badcmd", bundle, log, &init, &e);
        if (r == 0)
                r = runtime_start(&T_rt, "t-badcmd", &e);
        ck_assert_int_eq(r, -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        char *create = NULL, *start = NULL;
        ck_assert_int_ge(asprintf(&create, "%s create `t-badcmd`: exited with status ", T_rtname), 0);
        ck_assert_int_ge(asprintf(&start, "%s start `t-badcmd`: exited with status ", T_rtname), 0);
        ck_assert_msg(strstr(e.msg, create) || strstr(e.msg, start), "%s", e.msg);
        free(create);
        free(start);
        ck_assert_msg(!strstr(e.msg, "time="), "%s", e.msg);
        ck_assert_msg(runtime_delete(&T_rt, "t-badcmd", &e) == 0, "%s", e.msg);
        if (init.pid > 0) {
                struct proc_exit ex;
                pidref_wait(&init, now_mono_ms() + 5000, -1, &ex, &e);
        }
        free(bundle);
        close(log);
        assert_no_leftovers();
}
END_TEST

static bool keep_first(const char *id, void *ctx)
{
        return !strcmp(id, ctx);
}

/* The collector's sweep: what is not kept goes, running or not. */
START_TEST(test_sweep_keeps_what_it_is_told)
{
        int log = open_log("t-sweep");
        struct pidref a = start_container("t-sweep-a", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL },
                                          true, log);
        struct pidref b = start_container("t-sweep-b", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL },
                                          true, log);
        size_t removed = 0;
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_sweep(&T_rt, keep_first, (void *)"t-sweep-a", &removed, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(removed, 1);
        struct proc_exit ex;
        ck_assert_msg(pidref_wait(&b, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(pidref_signal(&a, 0), 0);   /* the kept one runs on */
        ck_assert_msg(runtime_sweep(&T_rt, NULL, NULL, &removed, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(removed, 1);
        ck_assert_msg(pidref_wait(&a, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        close(log);
        assert_no_leftovers();
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("runtime");
        TCase *tc = tcase_create("argv");
        tcase_add_test(tc, test_argv_create);
        tcase_add_test(tc, test_argv_others);
        tcase_add_test(tc, test_error_text);
        tcase_add_test(tc, test_parse_version);
        tcase_add_test(tc, test_cmdline_root);
        suite_add_tcase(s, tc);

        tc = tcase_create("strays");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_stop_strays);
        suite_add_tcase(s, tc);

        tc = tcase_create("stub");
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_stub_start_kill_delete_argv);
        tcase_add_test(tc, test_stub_delete_without_state_spawns_nothing);
        tcase_add_test(tc, test_stub_run_attached);
        tcase_add_test(tc, test_stub_environment_is_explicit);
        tcase_add_test(tc, test_stub_failure_is_surfaced);
        tcase_add_test(tc, test_stub_delete_is_done_when_state_is_gone);
        tcase_add_test(tc, test_stub_delete_retry);
        tcase_add_test(tc, test_stub_kill_checks_state);
        tcase_add_test(tc, test_stub_create_failure_log_fd);
        tcase_add_test(tc, test_stub_pid_file);
        tcase_add_test(tc, test_stub_cli_timeout);
        tcase_add_test(tc, test_exec_missing_binary);
        tcase_add_test(tc, test_bad_id_rejected);
        suite_add_tcase(s, tc);

        tc = tcase_create("probe");
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_probe_chooses_a_runtime);
        tcase_add_test(tc, test_probe_passes_over_leaky_runtimes);
        tcase_add_test(tc, test_probe_policy_means_the_same_swapped);
        suite_add_tcase(s, tc);

        tc = tcase_create("real");
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_exit_zero);
        tcase_add_test(tc, test_exit_code_with_reaper_running);
        tcase_add_test(tc, test_concurrent_containers);
        tcase_add_test(tc, test_run_attached);
        tcase_add_test(tc, test_killed_by_signal);
        tcase_add_test(tc, test_timeout_then_kill);
        tcase_add_test(tc, test_cancel_with_eventfd);
        tcase_add_test(tc, test_bad_command_message);
        tcase_add_test(tc, test_sweep_keeps_what_it_is_told);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
