/* test-runtime.c - the OCI runtime driver: argv building (exact vectors),
 * a recording stub runtime for what reaches the binary and how failures are
 * surfaced, and real containers on the host's runtime (runc here): runtime
 * resolution with a real probe, exit codes, signals, timeout, cancel and
 * orphan reaping.  Every real-container test ends with no container in the
 * runtime root and no cgroup under the test's parent; the tcase teardown
 * cleans up after a failed test too (the fixture: containerfix.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <jansson.h>

#include "testutil.h"
#include "containerfix.h"
#include "runtime.h"
#include "util.h"

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
static char *make_bundle(const char *id, const char *const *args, bool pid_ns, int64_t mem_limit)
{
        json_t *ns = jnamespaces(pid_ns ? (const char *const[]){ "network", "ipc", "uts", "mount", "pid", NULL }
                                        : (const char *const[]){ "network", "ipc", "uts", "mount", NULL });
        json_t *mem = mem_limit > 0 ? json_pack("{s:I}", "limit", (json_int_t)mem_limit) : NULL;
        return write_bundle(id, jargs(args), ns, mem);
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

/* create + start; returns the init's pid. */
static pid_t start_container(const char *id, const char *const *args, bool pid_ns, int log_fd)
{
        char *bundle = make_bundle(id, args, pid_ns, 0);
        struct err e = ERR_INIT;
        pid_t pid = -1;
        ck_assert_msg(runtime_create(&T_rt, id, bundle, log_fd, &pid, &e) == 0, "%s", e.msg);
        ck_assert_int_gt(pid, 0);
        ck_assert_msg(runtime_start(&T_rt, id, &e) == 0, "%s", e.msg);
        free(bundle);
        return pid;
}

static void delete_container(const char *id)
{
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_delete(&T_rt, id, false, &e) == 0, "%s", e.msg);
}

/* ---- argv ---- */

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

static const struct runtime ARGV_RT = { .name = (char *)"youki", .path = (char *)"/usr/bin/youki",
                                        .root = (char *)"/run/edgecd/runtime" };

START_TEST(test_argv_create)
{
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_CREATE, "job-1", "/b/job-1", "/b/job-1/container.pid", NULL, false),
                    (const char *const[]){ "/usr/bin/youki", "--root", "/run/edgecd/runtime", "create", "--bundle",
                                           "/b/job-1", "--pid-file", "/b/job-1/container.pid", "job-1", NULL });
        ck_assert_ptr_null(runtime_argv(&ARGV_RT, RUNTIME_CREATE, "job-1", NULL, "/p", NULL, false));
        ck_assert_ptr_null(runtime_argv(&ARGV_RT, RUNTIME_CREATE, "job-1", "/b", NULL, NULL, false));
}
END_TEST

START_TEST(test_argv_others)
{
        const char *r = "/run/edgecd/runtime";
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_START, "j", NULL, NULL, NULL, false),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "start", "j", NULL });
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_STATE, "j", NULL, NULL, NULL, false),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "state", "j", NULL });
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_KILL, "j", NULL, NULL, "TERM", false),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "kill", "j", "TERM", NULL });
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_KILL, "j", NULL, NULL, NULL, false),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "kill", "j", "KILL", NULL });
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_DELETE, "j", NULL, NULL, NULL, false),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "delete", "j", NULL });
        assert_argv(runtime_argv(&ARGV_RT, RUNTIME_DELETE, "j", NULL, NULL, NULL, true),
                    (const char *const[]){ "/usr/bin/youki", "--root", r, "delete", "--force", "j", NULL });
        ck_assert_ptr_null(runtime_argv(&ARGV_RT, RUNTIME_START, NULL, NULL, NULL, NULL, false));
}
END_TEST

/* ---- the stub runtime ---- */

static struct runtime stub_rt(void)
{
        return (struct runtime){ .name = (char *)"stub", .path = T_stub, .root = T_root };
}

static char *stub_log_path(void)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/stub.log", T_dir), 0);
        unlink(p);
        setenv("STUB_LOG", p, 1);
        unsetenv("STUB_EXIT");
        unsetenv("STUB_STDERR");
        unsetenv("STUB_STATE");
        return p;
}

/* What the stub recorded: "$0\narg\n...\n\n" per call. */
static void assert_stub_log(const char *path, const char *const *calls)
{
        char *want = strdup("");
        for (; *calls; calls++) {
                char *w = NULL;
                ck_assert_int_ge(asprintf(&w, "%s%s\n--root\n%s\n%s\n\n", want, T_stub, T_root, *calls), 0);
                free(want);
                want = w;
        }
        char *got = read_file_tail(path, 65536);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want);
        free(got);
        free(want);
}

START_TEST(test_stub_start_kill_delete_argv)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_start(&rt, "job-7", &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_kill(&rt, "job-7", "TERM", &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_delete(&rt, "job-7", true, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_delete(&rt, "job-7", false, &e) == 0, "%s", e.msg);
        assert_stub_log(log, (const char *const[]){ "start\njob-7", "kill\njob-7\nTERM", "delete\n--force\njob-7",
                                                    "delete\njob-7", NULL });
        free(log);
}
END_TEST

START_TEST(test_stub_failure_is_surfaced)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        setenv("STUB_EXIT", "1", 1);
        setenv("STUB_STDERR",
               "time=\"2026-01-01T00:00:00Z\" level=warning msg=\"ignore me\"\n"
               "time=\"2026-01-01T00:00:00Z\" level=error msg=\"container \\\"job-7\\\" is paused\"", 1);
        ck_assert_int_eq(runtime_start(&rt, "job-7", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_str_eq(e.msg, "stub start `job-7`: exited with status 1: container \"job-7\" is paused");

        /* Among other output, runc's error line is the one quoted. */
        setenv("STUB_STDERR", "some noise\ntime=\"x\" level=error msg=\"the real error\"", 1);
        ck_assert_int_eq(runtime_start(&rt, "job-7", &e), -1);
        ck_assert_str_eq(e.msg, "stub start `job-7`: exited with status 1: the real error");

        /* Plain text (crun style) is kept as it is. */
        setenv("STUB_EXIT", "2", 1);
        setenv("STUB_STDERR", "boom: something broke", 1);
        ck_assert_int_eq(runtime_delete(&rt, "job-8", true, &e), -1);
        ck_assert_str_eq(e.msg, "stub delete `job-8`: exited with status 2: boom: something broke");
        /* delete asked `state` whether the container is gone before failing. */
        assert_stub_log(log, (const char *const[]){ "start\njob-7", "start\njob-7", "delete\n--force\njob-8", "state\njob-8",
                                                    NULL });
        ck_assert_ptr_null(strstr(e.msg, "exec"));
        free(log);
}
END_TEST

START_TEST(test_stub_gone_is_success)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        setenv("STUB_EXIT", "1", 1);
        setenv("STUB_STDERR", "time=\"x\" level=error msg=\"container does not exist\"", 1);
        ck_assert_msg(runtime_delete(&rt, "gone", true, &e) == 0, "%s", e.msg);
        setenv("STUB_STDERR", "error opening file `/run/crun/gone/status`: No such file or directory", 1);
        ck_assert_msg(runtime_delete(&rt, "gone", false, &e) == 0, "%s", e.msg);
        setenv("STUB_STDERR", "time=\"x\" level=error msg=\"container not running\"", 1);
        ck_assert_msg(runtime_kill(&rt, "gone", "KILL", &e) == 0, "%s", e.msg);
        assert_stub_log(log, (const char *const[]){ "delete\n--force\ngone", "delete\ngone", "kill\ngone\nKILL", NULL });
        free(log);
}
END_TEST

START_TEST(test_stub_kill_checks_state)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        setenv("STUB_EXIT", "1", 1);
        setenv("STUB_STDERR", "kill: weird failure", 1);
        setenv("STUB_STATE", "stopped", 1);
        ck_assert_msg(runtime_kill(&rt, "c1", "KILL", &e) == 0, "%s", e.msg);
        setenv("STUB_STATE", "running", 1);
        ck_assert_int_eq(runtime_kill(&rt, "c1", "KILL", &e), -1);
        ck_assert_str_eq(e.msg, "stub kill `c1`: exited with status 1: kill: weird failure");
        assert_stub_log(log, (const char *const[]){ "kill\nc1\nKILL", "state\nc1", "kill\nc1\nKILL", "state\nc1", NULL });
        free(log);
}
END_TEST

/* create's stderr is the log fd: read back from a file, not from a pipe. */
START_TEST(test_stub_create_failure_log_fd)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        setenv("STUB_EXIT", "1", 1);
        setenv("STUB_STDERR", "time=\"x\" level=error msg=\"runc create failed: no cgroup\"", 1);
        int fd = open_log("c-file");
        ck_assert_int_eq(write(fd, "earlier output\n", 15), 15);
        pid_t pid = 4242;
        ck_assert_int_eq(runtime_create(&rt, "c1", T_dir, fd, &pid, &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_str_eq(e.msg, "stub create `c1`: exited with status 1: runc create failed: no cgroup");
        ck_assert_int_eq(pid, 4242);
        close(fd);

        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(runtime_create(&rt, "c2", T_dir, p[1], &pid, &e), -1);
        ck_assert_str_eq(e.msg, "stub create `c2`: exited with status 1: its message is in the container log");
        close(p[1]);
        char buf[256] = "";
        ck_assert_int_gt(read(p[0], buf, sizeof buf - 1), 0);
        close(p[0]);
        char *line = runtime_error_text(buf);
        ck_assert_str_eq(line, "runc create failed: no cgroup");
        free(line);

        char *pidf = NULL;
        ck_assert_int_ge(asprintf(&pidf, "%s/container.pid", T_dir), 0);
        char *want = NULL;
        ck_assert_int_ge(asprintf(&want, "create\n--bundle\n%s\n--pid-file\n%s\nc1", T_dir, pidf), 0);
        char *want2 = NULL;
        ck_assert_int_ge(asprintf(&want2, "create\n--bundle\n%s\n--pid-file\n%s\nc2", T_dir, pidf), 0);
        assert_stub_log(log, (const char *const[]){ want, want2, NULL });
        free(want);
        free(want2);
        free(pidf);
        free(log);
}
END_TEST

START_TEST(test_error_text)
{
        char *t = runtime_error_text(NULL);
        ck_assert_str_eq(t, "(no output)");
        free(t);
        t = runtime_error_text("cgroups in hybrid mode not supported, drop all controllers from cgroupv2\n");
        ck_assert_str_eq(t, "cgroups in hybrid mode not supported, drop all controllers from cgroupv2");
        free(t);
        t = runtime_error_text("time=\"a\" level=warning msg=\"w\"\ntime=\"b\" level=error msg=\"e1\"\n"
                               "time=\"c\" level=error msg=\"path \\\"x\\\"\"\n");
        ck_assert_str_eq(t, "e1; path \"x\"");
        free(t);
        char big[2000];
        memset(big, 'a', sizeof big - 2);
        big[sizeof big - 2] = 'z';
        big[sizeof big - 1] = '\0';
        t = runtime_error_text(big);
        ck_assert_int_lt(strlen(t), 600);
        ck_assert_int_eq(strncmp(t, "...", 3), 0);
        ck_assert_int_eq(t[strlen(t) - 1], 'z');
        free(t);
}
END_TEST

START_TEST(test_exec_missing_binary)
{
        struct runtime rt = { .name = (char *)"runc", .path = (char *)"/nonexistent/runc", .root = T_root };
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "x", &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_int_eq(e.errnum, ENOENT);
        ck_assert_str_eq(e.msg, "runc start `x`: exec `/nonexistent/runc`: No such file or directory");
        /* create says the same, and reports no pid */
        pid_t pid = 12345;
        int fd = open_log("missing");
        ck_assert_int_eq(runtime_create(&rt, "x", T_dir, fd, &pid, &e), -1);
        ck_assert_int_eq(pid, 12345);
        ck_assert_ptr_nonnull(strstr(e.msg, "exec `/nonexistent/runc`: No such file or directory"));
        close(fd);
}
END_TEST

START_TEST(test_bad_id_rejected)
{
        char *log = stub_log_path();
        struct runtime rt = stub_rt();
        struct err e = ERR_INIT;
        ck_assert_int_eq(runtime_start(&rt, "--force", &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_int_eq(runtime_delete(&rt, "a/b", true, &e), -1);
        ck_assert_int_eq(runtime_kill(&rt, "", "KILL", &e), -1);
        ck_assert_int_eq(access(log, F_OK), -1);  /* the stub never ran */
        free(log);
}
END_TEST

/* ---- real containers ---- */

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

START_TEST(test_resolve_real_probe)
{
        struct report_lines lines = { 0 };
        struct runtime *rt = NULL;
        struct err e = ERR_INIT;
        char probe_dir[600];
        snprintf(probe_dir, sizeof probe_dir, "%s/probe", T_dir);
        setenv("PATH", "/usr/bin:/bin", 1);  /* runc lives in sbin: found anyway */
        int r = runtime_resolve("youki", T_root, probe_dir, T_cg, collect, &lines, &rt, &e);
        ck_assert_msg(r == 0, "%s", e.msg);
        ck_assert_ptr_nonnull(lines.text);
        ck_assert_msg(strstr(lines.text, "runtime `youki`: not found in PATH\n"), "%s", lines.text);
        if (!pure_v2()) {
                /* This host: hybrid cgroups, crun refuses, runc works. */
                ck_assert_str_eq(rt->name, "runc");
                ck_assert_msg(strstr(lines.text, "runtime `crun` (/usr/bin/crun): cannot run a container here: "),
                              "%s", lines.text);
                ck_assert_msg(strstr(lines.text, "hybrid"), "%s", lines.text);
        }
        ck_assert_msg(strstr(lines.text, "runtime: using `"), "%s", lines.text);
        ck_assert_msg(strstr(lines.text, "probe container ran in "), "%s", lines.text);
        ck_assert_str_eq(rt->root, T_root);
        ck_assert_int_eq(rt->path[0], '/');
        fprintf(stderr, "%s", lines.text);
        free(lines.text);

        /* Probe cleaned up: bundle, container, cgroup. */
        char *left = run_cmd("ls -A '%s'", probe_dir);
        ck_assert_str_eq(left, "");
        free(left);
        assert_no_leftovers();
        runtime_free(rt);
}
END_TEST

/* A candidate that runs but cannot make a container is passed over. */
START_TEST(test_resolve_skips_broken_runtime)
{
        struct report_lines lines = { 0 };
        struct runtime *rt = NULL;
        struct err e = ERR_INIT;
        char probe_dir[600];
        snprintf(probe_dir, sizeof probe_dir, "%s/probe", T_dir);
        /* The stub exits 0 for `create` but writes no pid file. */
        int r = runtime_resolve(T_stub, T_root, probe_dir, T_cg, collect, &lines, &rt, &e);
        ck_assert_msg(r == 0, "%s", e.msg);
        ck_assert_str_ne(rt->name, "stub-runtime");
        char *want = NULL;
        ck_assert_int_ge(asprintf(&want, "runtime `stub-runtime` (%s): cannot run a container here: ", T_stub), 0);
        ck_assert_msg(strstr(lines.text, want), "%s", lines.text);
        ck_assert_msg(strstr(lines.text, "container.pid"), "%s", lines.text);
        free(want);
        free(lines.text);
        runtime_free(rt);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_exit_zero)
{
        int log = open_log("t-exit0");
        pid_t pid = start_container("t-exit0", (const char *const[]){ "/bin/busybox", "sh", "-c",
                                                                      "echo hello from $(busybox id -u)", NULL },
                                    true, log);
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_wait(pid, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 0);
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
                runtime_reap_orphans();
                usleep(200);
        }
        return NULL;
}

/* With runtime_reap_orphans() hammering in another thread, neither the CLI
 * calls nor runtime_wait lose their child's status. */
START_TEST(test_exit_code_with_reaper_running)
{
        atomic_store(&reaper_stop, false);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, reaper_loop, NULL), 0);
        for (int i = 0; i < 3; i++) {
                char id[32];
                snprintf(id, sizeof id, "t-exit7-%d", i);
                int log = open_log(id);
                pid_t pid = start_container(id, (const char *const[]){ "/bin/busybox", "sh", "-c", "exit 7", NULL },
                                            true, log);
                if (i == 1)
                        usleep(100000);  /* let it die first: the reaper keeps the status */
                struct runtime_exit ex;
                struct err e = ERR_INIT;
                ck_assert_msg(runtime_wait(pid, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
                ck_assert_int_eq(ex.status, WAIT_EXITED);
                ck_assert_int_eq(ex.exit_code, 7);
                delete_container(id);
                close(log);
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
                struct runtime_exit ex = { 0 };
                pid_t pid;
                int log = open(T_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                int r = log < 0 ? -1 : runtime_create(&T_rt, id, w->bundle[i], log, &pid, &e);
                if (r == 0 && (r = runtime_start(&T_rt, id, &e)) == 0)
                        r = runtime_wait(pid, now_mono_ms() + 20000, -1, &ex, &e);
                if (r == 0 && !(ex.status == WAIT_EXITED && ex.exit_code == w->n + i))
                        r = err_set(&e, ERR_INTERNAL, 0, "%s: status %d code %d", id, ex.status, ex.exit_code);
                struct err d = ERR_INIT;
                if (runtime_delete(&T_rt, id, true, &d) < 0 && r == 0) {
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
                        char *b = make_bundle(id, (const char *const[]){ "/bin/busybox", "sh", "-c", script, NULL },
                                              true, 0);
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

START_TEST(test_killed_by_signal)
{
        int log = open_log("t-sig");
        /* Outside a pid namespace the shell is no init and dies of TERM. */
        pid_t pid = start_container("t-sig", (const char *const[]){ "/bin/busybox", "sh", "-c", "kill -TERM $$; sleep 5", NULL },
                                    false, log);
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_wait(pid, now_mono_ms() + 10000, -1, &ex, &e) == 0, "%s", e.msg);
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
        pid_t pid = start_container("t-timeout", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL }, true, log);
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_msg(runtime_wait(pid, t0 + 300, -1, &ex, &e) == 0, "%s", e.msg);
        int64_t waited = now_mono_ms() - t0;
        ck_assert_int_eq(ex.status, WAIT_TIMEOUT);
        ck_assert_int_ge(waited, 290);
        ck_assert_int_lt(waited, 2000);
        ck_assert_int_eq(kill(pid, 0), 0);  /* still there */
        ck_assert_msg(runtime_kill(&T_rt, "t-timeout", "KILL", &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_wait(pid, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGKILL);
        /* Killing it again, now that it has exited, is fine. */
        ck_assert_msg(runtime_kill(&T_rt, "t-timeout", "KILL", &e) == 0, "%s", e.msg);
        delete_container("t-timeout");
        /* Deleting what is gone is fine too. */
        ck_assert_msg(runtime_delete(&T_rt, "t-timeout", true, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_delete(&T_rt, "t-timeout", false, &e) == 0, "%s", e.msg);
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
        pid_t pid = start_container("t-cancel", (const char *const[]){ "/bin/busybox", "sleep", "60", NULL }, true, log);
        int efd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(efd, 0);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, poke_later, &efd), 0);
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_msg(runtime_wait(pid, t0 + 20000, efd, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_CANCELLED);
        ck_assert_int_lt(now_mono_ms() - t0, 5000);
        pthread_join(th, NULL);
        ck_assert_msg(runtime_delete(&T_rt, "t-cancel", true, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_wait(pid, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
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
        char *bundle = make_bundle("t-badcmd", (const char *const[]){ "/bin/nonexistent-tool", NULL }, true, 0);
        struct err e = ERR_INIT;
        pid_t pid = -1;
        int r = runtime_create(&T_rt, "t-badcmd", bundle, log, &pid, &e);
        if (r == 0)
                r = runtime_start(&T_rt, "t-badcmd", &e);
        ck_assert_int_eq(r, -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_msg(strstr(e.msg, "runc create `t-badcmd`: exited with status 1: ") ||
                      strstr(e.msg, "runc start `t-badcmd`: exited with status 1: "), "%s", e.msg);
        ck_assert_msg(strstr(e.msg, "/bin/nonexistent-tool"), "%s", e.msg);
        ck_assert_msg(!strstr(e.msg, "time="), "%s", e.msg);
        ck_assert_msg(runtime_delete(&T_rt, "t-badcmd", true, &e) == 0, "%s", e.msg);
        if (pid > 0) {
                struct runtime_exit ex;
                runtime_wait(pid, now_mono_ms() + 5000, -1, &ex, &e);
        }
        free(bundle);
        close(log);
        assert_no_leftovers();
}
END_TEST

/* A container whose init died before anyone waited: the reaper reaps it
 * and keeps the status for runtime_wait. */
START_TEST(test_reaped_status_is_kept)
{
        int log = open_log("t-kept");
        pid_t pid = start_container("t-kept", (const char *const[]){ "/bin/busybox", "sh", "-c", "exit 3", NULL }, true, log);
        for (int i = 0; i < 100; i++) {
                runtime_reap_orphans();
                if (kill(pid, 0) < 0 && errno == ESRCH)
                        break;
                usleep(20000);
        }
        ck_assert_int_eq(kill(pid, 0), -1);  /* reaped: the pid is gone */
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        ck_assert_msg(runtime_wait(pid, now_mono_ms() + 1000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 3);
        delete_container("t-kept");
        close(log);
        assert_no_leftovers();
}
END_TEST

/* A stray grandchild re-parented to us (the subreaper) is reaped. */
START_TEST(test_reap_stray_orphan)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t mid = fork();
        ck_assert_int_ge(mid, 0);
        if (mid == 0) {
                pid_t g = fork();
                if (g == 0) {
                        usleep(100000);
                        _exit(0);
                }
                ssize_t w = write(p[1], &g, sizeof g);
                _exit(w == sizeof g ? 0 : 1);
        }
        pid_t g = 0;
        ck_assert_int_eq(read(p[0], &g, sizeof g), (ssize_t)sizeof g);
        int st;
        ck_assert_int_eq(waitpid(mid, &st, 0), mid);
        close(p[0]);
        close(p[1]);
        for (int i = 0; i < 100; i++) {
                runtime_reap_orphans();
                if (kill(g, 0) < 0 && errno == ESRCH)
                        break;
                usleep(20000);
        }
        ck_assert_int_eq(kill(g, 0), -1);
        ck_assert_int_eq(errno, ESRCH);
}
END_TEST

START_TEST(test_wait_not_our_child)
{
        struct runtime_exit ex;
        struct err e = ERR_INIT;
        /* pid 1 is nobody's child of ours and never exits: a timeout... */
        ck_assert_int_eq(runtime_wait(1, now_mono_ms() + 50, -1, &ex, &e), 0);
        ck_assert_int_eq(ex.status, WAIT_TIMEOUT);
        /* ...and a pid that does not exist is an error, not a hang. */
        ck_assert_int_eq(runtime_wait(4194303, now_mono_ms() + 50, -1, &ex, &e), -1);
        ck_assert_int_eq(runtime_wait(0, now_mono_ms() + 50, -1, &ex, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("runtime");
        TCase *tc = tcase_create("argv");
        tcase_add_test(tc, test_argv_create);
        tcase_add_test(tc, test_argv_others);
        tcase_add_test(tc, test_error_text);
        suite_add_tcase(s, tc);

        tc = tcase_create("stub");
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_stub_start_kill_delete_argv);
        tcase_add_test(tc, test_stub_failure_is_surfaced);
        tcase_add_test(tc, test_stub_gone_is_success);
        tcase_add_test(tc, test_stub_kill_checks_state);
        tcase_add_test(tc, test_stub_create_failure_log_fd);
        tcase_add_test(tc, test_exec_missing_binary);
        tcase_add_test(tc, test_bad_id_rejected);
        suite_add_tcase(s, tc);

        tc = tcase_create("real");
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_resolve_real_probe);
        tcase_add_test(tc, test_resolve_skips_broken_runtime);
        tcase_add_test(tc, test_exit_zero);
        tcase_add_test(tc, test_exit_code_with_reaper_running);
        tcase_add_test(tc, test_concurrent_containers);
        tcase_add_test(tc, test_killed_by_signal);
        tcase_add_test(tc, test_timeout_then_kill);
        tcase_add_test(tc, test_cancel_with_eventfd);
        tcase_add_test(tc, test_bad_command_message);
        tcase_add_test(tc, test_reaped_status_is_kept);
        tcase_add_test(tc, test_reap_stray_orphan);
        tcase_add_test(tc, test_wait_not_our_child);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
