/* test-reaper.c - the daemon's children (reaper.h) and helper programs
 * (spawn.h), with plain forks and /bin programs, no containers:
 *   - an init that dies before it is claimed keeps its status while a claim
 *     window that saw it is open, and is reaped once none is;
 *   - a claimed child is never reaped by the orphan reaper; a released one
 *     is; a pid that is not our child cannot be claimed;
 *   - waiting with a deadline and a cancel fd;
 *   - a helper gets exactly the environment it is given, its output's tail,
 *     a time limit, and a clear error when it cannot be started. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <seccomp.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "base/util.h"
#include "runtime/reaper.h"
#include "runtime/spawn.h"
#include "testutil.h"

static void setup(void)
{
        struct err e = ERR_INIT;
        ck_assert_msg(reaper_setup(&e) == 0, "%s", e.msg);
}

/* A child that exits with code at once; returns its pid (not reaped). */
static pid_t child_exiting(int code)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(code);
        /* Until it is a zombie: peek without reaping. */
        for (;;) {
                siginfo_t si = { 0 };
                ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
                if (si.si_pid == pid)
                        return pid;
        }
}

static bool is_zombie_of_ours(pid_t pid)
{
        siginfo_t si = { 0 };
        return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static void reap_a_while(void)
{
        for (int i = 0; i < 20; i++) {
                reaper_reap_orphans();
                usleep(1000);
        }
}

START_TEST(test_window_keeps_an_unclaimed_init)
{
        uint64_t w = reaper_window_open();
        pid_t pid = child_exiting(5);
        reap_a_while();
        ck_assert(is_zombie_of_ours(pid));   /* not reaped: its status is kept */
        struct pidref p = PIDREF_NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_claim(pid, &p, &e) == 0, "%s", e.msg);
        reaper_window_close(w);
        reap_a_while();                      /* claimed: still left alone */
        struct proc_exit ex;
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 5);
        ck_assert_int_eq(p.pid, 0);
        ck_assert_int_eq(p.fd, -1);
}
END_TEST

START_TEST(test_zombie_reaped_once_its_windows_close)
{
        uint64_t a = reaper_window_open();
        pid_t pid = child_exiting(1);
        reap_a_while();                      /* seen while `a` is open */
        ck_assert(is_zombie_of_ours(pid));
        uint64_t b = reaper_window_open();   /* opened after it was seen */
        reaper_window_close(a);
        reap_a_while();
        ck_assert(!is_zombie_of_ours(pid));  /* `b` does not protect it */
        ck_assert_int_eq(kill(pid, 0), -1);
        reaper_window_close(b);
}
END_TEST

START_TEST(test_unclaimed_orphan_reaped_without_windows)
{
        pid_t pid = child_exiting(0);
        reap_a_while();
        ck_assert(!is_zombie_of_ours(pid));
}
END_TEST

/* The reaper looks at the first zombie only, and skips the scan while that
 * one has an owner about to reap it: an orphan behind it must still go,
 * within a second or two, and the owned one must stay its owner's. */
START_TEST(test_orphan_behind_an_owned_zombie)
{
        uint64_t w = reaper_window_open();
        pid_t owned = child_exiting(7);          /* older: first in the list */
        struct pidref p = PIDREF_NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_claim(owned, &p, &e) == 0, "%s", e.msg);
        reaper_window_close(w);
        pid_t orphan = child_exiting(0);
        int64_t deadline = now_mono_ms() + 5000;
        while (is_zombie_of_ours(orphan) && now_mono_ms() < deadline) {
                reaper_reap_orphans();
                usleep(50 * 1000);
        }
        ck_assert(!is_zombie_of_ours(orphan));
        ck_assert(is_zombie_of_ours(owned));
        struct proc_exit ex;
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.exit_code, 7);
}
END_TEST

START_TEST(test_claim_checks)
{
        struct pidref p = PIDREF_NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(pidref_claim(1, &p, &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_msg(strstr(e.msg, "pid 1 is not a child of the daemon"), "%s", e.msg);
        ck_assert_int_eq(pidref_claim(0, &p, &e), -1);

        uint64_t w = reaper_window_open();
        pid_t pid = child_exiting(3);
        ck_assert_msg(pidref_claim(pid, &p, &e) == 0, "%s", e.msg);
        struct pidref q = PIDREF_NULL;
        ck_assert_int_eq(pidref_claim(pid, &q, &e), -1);   /* once only */
        reaper_window_close(w);
        struct proc_exit ex;
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.exit_code, 3);
}
END_TEST

/* A pid whose parent is a child of ours becomes ours when that parent
 * exits (crun's `run --detach` leaves its last process a moment after the
 * command): the claim waits for it. */
START_TEST(test_claim_waits_for_the_parent_to_go)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        uint64_t w = reaper_window_open();
        pid_t c = fork();
        ck_assert_int_ge(c, 0);
        if (c == 0) {
                pid_t g = fork();
                if (g == 0) {
                        signal(SIGTERM, SIG_DFL);
                        pause();
                        _exit(0);
                }
                if (write(p[1], &g, sizeof g) != sizeof g)
                        _exit(1);
                usleep(200000);
                _exit(0);
        }
        close(p[1]);
        pid_t g;
        ck_assert_int_eq(read(p[0], &g, sizeof g), sizeof g);
        close(p[0]);
        struct pidref ref = PIDREF_NULL;
        struct err e = ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_msg(pidref_claim(g, &ref, &e) == 0, "%s", e.msg);
        ck_assert_int_ge(now_mono_ms() - t0, 100);   /* it waited for c */
        reaper_window_close(w);
        ck_assert_int_eq(waitpid(c, NULL, 0), c);
        struct proc_exit ex;
        ck_assert_int_eq(pidref_signal(&ref, SIGTERM), 0);
        ck_assert_msg(pidref_wait(&ref, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGTERM);
}
END_TEST

/* Released before it ended: the orphan reaper takes it afterwards. */
START_TEST(test_released_child_is_reaped)
{
        uint64_t w = reaper_window_open();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                usleep(50000);
                _exit(0);
        }
        struct pidref p = PIDREF_NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_claim(pid, &p, &e) == 0, "%s", e.msg);
        reaper_window_close(w);
        pidref_release(&p);
        ck_assert_int_eq(p.pid, 0);
        pidref_release(&p);   /* twice is fine */
        for (int i = 0; i < 200 && (kill(pid, 0) == 0 || errno != ESRCH); i++) {
                reaper_reap_orphans();
                usleep(5000);
        }
        ck_assert_int_eq(kill(pid, 0), -1);
        ck_assert_int_eq(errno, ESRCH);
}
END_TEST

/* Run 0 with the pidfd, run 1 without (a kernel or valgrind without
 * pidfds): the 10 ms polling fallback must time out, cancel, signal and
 * reap alike. */
START_TEST(test_wait_deadline_and_cancel)
{
        uint64_t w = reaper_window_open();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* Check's handler would take the whole test down with us. */
                signal(SIGTERM, SIG_DFL);
                pause();
                _exit(0);
        }
        struct pidref p = PIDREF_NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(pidref_claim(pid, &p, &e) == 0, "%s", e.msg);
        reaper_window_close(w);
        ck_assert_int_ge(p.fd, 0);
        if (_i == 1) {
                close(p.fd);
                p.fd = -1;
        }
        struct proc_exit ex;
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 100, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_TIMEOUT);
        int efd = eventfd(1, EFD_CLOEXEC);
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 10000, efd, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_CANCELLED);
        close(efd);
        ck_assert_int_gt(p.pid, 0);   /* still ours after both */
        ck_assert_int_eq(pidref_signal(&p, SIGTERM), 0);
        ck_assert_msg(pidref_wait(&p, now_mono_ms() + 5000, -1, &ex, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGTERM);
        ck_assert_int_eq(pidref_signal(&p, SIGTERM), ESRCH);   /* done: nothing to hit */
}
END_TEST

/* ---- spawn ---- */

static int run(char *const *argv, char *const *envp, int64_t timeout_ms, struct spawn_result *res, struct err *e)
{
        struct spawn_request req = { .argv = argv, .envp = envp, .out_fd = -1, .timeout_ms = timeout_ms };
        return spawn_run(&req, res, e);
}

START_TEST(test_spawn_environment_is_exactly_the_given_one)
{
        setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
        char *argv[] = { (char *)"/usr/bin/env", NULL };
        char *envp[] = { (char *)"A=1", (char *)"PATH=/usr/bin", NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(run(argv, envp, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(res.exit.status, WAIT_EXITED);
        ck_assert_int_eq(res.exit.exit_code, 0);
        ck_assert_str_eq(res.output, "A=1\nPATH=/usr/bin\n");
        spawn_result_done(&res);
        /* NULL: an empty environment. */
        ck_assert_msg(run(argv, NULL, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(res.output, "");
        spawn_result_done(&res);
        unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(test_spawn_status_and_output_tail)
{
        char *argv[] = { (char *)"/bin/sh", (char *)"-c",
                         (char *)"i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo end >&2; exit 3",
                         NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(run(argv, NULL, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(res.exit.status, WAIT_EXITED);
        ck_assert_int_eq(res.exit.exit_code, 3);
        ck_assert_int_le(strlen(res.output), SPAWN_OUTPUT_MAX);
        size_t n = strlen(res.output);
        ck_assert_str_eq(res.output + n - strlen("line 1999\nend\n"), "line 1999\nend\n");
        char *t = spawn_exit_text(&res.exit);
        ck_assert_str_eq(t, "exited with status 3");
        free(t);
        spawn_result_done(&res);
}
END_TEST

START_TEST(test_spawn_time_limit)
{
        char *argv[] = { (char *)"/bin/sleep", (char *)"30", NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(run(argv, NULL, 200, &res, &e), -1);
        ck_assert_int_eq(e.code, ERR_RUNTIME);
        ck_assert_str_eq(e.msg, "`/bin/sleep` timed out after 200 ms and was killed");
}
END_TEST

static int watch_third(void *ctx, struct err *err)
{
        int *calls = ctx;
        if (++*calls < 3)
                return 0;
        return err_set(err, ERR_RUNTIME, 0, "it took too much");
}

/* A watch that says no kills the helper at once, in its own words, with
 * and without captured output. */
START_TEST(test_spawn_watch_kills)
{
        char *argv[] = { (char *)"/bin/sleep", (char *)"30", NULL };
        for (int captured = 0; captured < 2; captured++) {
                int calls = 0;
                int fd = captured ? -1 : open("/dev/null", O_WRONLY | O_CLOEXEC);
                struct spawn_request req = { .argv = argv, .out_fd = fd, .timeout_ms = 20000,
                                             .watch = watch_third, .watch_ctx = &calls, .watch_ms = 20 };
                struct spawn_result res = { 0 };
                struct err e = ERR_INIT;
                int64_t t0 = now_mono_ms();
                ck_assert_int_eq(spawn_run(&req, &res, &e), -1);
                ck_assert_int_lt(now_mono_ms() - t0, 5000);
                ck_assert_int_eq(calls, 3);
                ck_assert_int_eq(e.code, ERR_RUNTIME);
                ck_assert_str_eq(e.msg, "`/bin/sleep` was killed: it took too much");
                if (fd >= 0)
                        close(fd);
        }
}
END_TEST

/* A grandchild that keeps the output pipe open must not hold the caller
 * once the helper itself has ended. */
START_TEST(test_spawn_grandchild_holding_the_pipe)
{
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"sleep 30 & echo started", NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_msg(run(argv, NULL, 20000, &res, &e) == 0, "%s", e.msg);
        ck_assert_int_lt(now_mono_ms() - t0, 15000);
        ck_assert_str_eq(res.output, "started\n");
        spawn_result_done(&res);
}
END_TEST

/* A descriptor the daemon left open without close-on-exec (a library's,
 * say) does not reach the helper: only 0, 1 and 2 do. */
START_TEST(test_spawn_passes_only_stdio)
{
        int fd = open("/dev/null", O_RDONLY);   /* no O_CLOEXEC on purpose */
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(dup2(fd, 77), 0);
        char *argv[] = { (char *)"/bin/sh", (char *)"-c",
                         (char *)"for f in 3 4 5 77; do [ -e /proc/$$/fd/$f ] && echo open $f; done; echo done",
                         NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(run(argv, NULL, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(res.output, "done\n");
        spawn_result_done(&res);
        close(77);
        close(fd);
}
END_TEST

/* The helper starts in a session of its own, stdin /dev/null, with every
 * signal at its default and none blocked, whatever the spawning thread
 * ignores (the daemon: SIGPIPE) or blocks (the daemon: all it waits for). */
START_TEST(test_spawn_child_state)
{
        signal(SIGPIPE, SIG_IGN);
        signal(SIGUSR2, SIG_IGN);
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        char *argv[] = { (char *)"/bin/cat", (char *)"/proc/self/stat", (char *)"/proc/self/status", NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        int rc = run(argv, NULL, 10000, &res, &e);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        signal(SIGUSR2, SIG_DFL);
        ck_assert_msg(rc == 0, "%s", e.msg);
        ck_assert_int_eq(res.exit.status, WAIT_EXITED);
        ck_assert_int_eq(res.exit.exit_code, 0);
        /* "pid (cat) S ppid pgrp session ..." */
        long pid = 0, pgrp = 0, session = 0;
        char *nl = strchr(res.output, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';   /* the stat line; status has parentheses of its own */
        const char *rp = strrchr(res.output, ')');
        ck_assert_ptr_nonnull(rp);
        int got = sscanf(res.output, "%ld", &pid);
        ck_assert_int_eq(got, 1);
        got = sscanf(rp + 1, " %*c %*d %ld %ld", &pgrp, &session);
        ck_assert_int_eq(got, 2);
        *nl = '\n';
        ck_assert_int_eq(session, pid);
        ck_assert_int_eq(pgrp, pid);
        ck_assert_msg(strstr(res.output, "\nSigBlk:\t0000000000000000\n"), "blocked: %s", res.output);
        ck_assert_msg(strstr(res.output, "\nSigIgn:\t0000000000000000\n"), "ignored: %s", res.output);
        spawn_result_done(&res);

        char *link[] = { (char *)"/bin/readlink", (char *)"/proc/self/fd/0", NULL };
        ck_assert_msg(run(link, NULL, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(res.output, "/dev/null\n");
        spawn_result_done(&res);
}
END_TEST

/* Many at once from several threads: each child its own stack, each
 * output its own, every child reaped. */
struct many {
        int id;
        int ok;
};

static void *spawn_many(void *arg)
{
        struct many *m = arg;
        char text[32];
        snprintf(text, sizeof text, "thread %d", m->id);
        char *argv[] = { (char *)"/bin/echo", text, NULL };
        for (int i = 0; i < 40; i++) {
                struct spawn_result res = { 0 };
                struct err e = ERR_INIT;
                char want[40];
                snprintf(want, sizeof want, "%s\n", text);
                if (run(argv, NULL, 10000, &res, &e) == 0 && res.exit.status == WAIT_EXITED &&
                    res.exit.exit_code == 0 && strcmp(res.output, want) == 0)
                        m->ok++;
                spawn_result_done(&res);
        }
        return NULL;
}

START_TEST(test_spawn_from_many_threads)
{
        pthread_t t[6];
        struct many m[6];
        for (int i = 0; i < 6; i++) {
                m[i] = (struct many){ .id = i };
                ck_assert_int_eq(pthread_create(&t[i], NULL, spawn_many, &m[i]), 0);
        }
        for (int i = 0; i < 6; i++) {
                pthread_join(t[i], NULL);
                ck_assert_int_eq(m[i].ok, 40);
        }
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);   /* no child left to reap */
        ck_assert_int_eq(errno, ECHILD);
}
END_TEST

/* close_range refused (Linux before 5.9, a container runtime's seccomp
 * policy): the child closes what /proc/self/fd lists instead.  This test
 * runs in a process of its own (check forks each test), so the filter
 * goes with it. */
START_TEST(test_spawn_without_close_range)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        ck_assert_ptr_nonnull(ctx);
        ck_assert_int_eq(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(close_range), 0), 0);
        ck_assert_int_eq(seccomp_load(ctx), 0);
        seccomp_release(ctx);
        ck_assert_int_eq(syscall(SYS_close_range, 100U, 100U, 0U), -1);   /* the filter holds */
        ck_assert_int_eq(errno, ENOSYS);

        int fd = open("/dev/null", O_RDONLY);   /* no O_CLOEXEC on purpose */
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(dup2(fd, 77), 0);
        ck_assert_int_ge(dup2(fd, 1000), 0);
        /* Every fd above 2 this process has now, looked for in the child
         * by stat (no pipeline: sh holds a pipe's fds for a moment while it
         * starts one, which a listing of its fds may catch). */
        char script[4096] = "for n in";
        DIR *dir = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(dir);
        int n_fds = 0;
        for (struct dirent *de; (de = readdir(dir));) {
                int n = atoi(de->d_name);
                if (n > 2 && n != dirfd(dir)) {
                        size_t len = strlen(script);
                        snprintf(script + len, sizeof script - len, " %d", n);
                        n_fds++;
                }
        }
        closedir(dir);
        ck_assert_int_ge(n_fds, 3);   /* fd, 77 and 1000 at least */
        size_t len = strlen(script);
        snprintf(script + len, sizeof script - len, "; do [ -e /proc/$$/fd/$n ] && echo \"open $n\"; done; echo done");
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(run(argv, NULL, 10000, &res, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(res.exit.status, WAIT_EXITED);
        ck_assert_str_eq(res.output, "done\n");
        spawn_result_done(&res);
        close(1000);
        close(77);
        close(fd);
}
END_TEST

START_TEST(test_spawn_exec_failure)
{
        char *argv[] = { (char *)"/nonexistent/tool", NULL };
        struct spawn_result res = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(run(argv, NULL, 1000, &res, &e), -1);
        ck_assert_int_eq(e.errnum, ENOENT);
        ck_assert_str_eq(e.msg, "exec `/nonexistent/tool`: No such file or directory");
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("reaper");
        TCase *tc = tcase_create("children");
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, test_window_keeps_an_unclaimed_init);
        tcase_add_test(tc, test_zombie_reaped_once_its_windows_close);
        tcase_add_test(tc, test_unclaimed_orphan_reaped_without_windows);
        tcase_add_test(tc, test_orphan_behind_an_owned_zombie);
        tcase_add_test(tc, test_claim_checks);
        tcase_add_test(tc, test_claim_waits_for_the_parent_to_go);
        tcase_add_test(tc, test_released_child_is_reaped);
        tcase_add_loop_test(tc, test_wait_deadline_and_cancel, 0, 2);
        suite_add_tcase(s, tc);
        tc = tcase_create("spawn");
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, test_spawn_environment_is_exactly_the_given_one);
        tcase_add_test(tc, test_spawn_status_and_output_tail);
        tcase_add_test(tc, test_spawn_time_limit);
        tcase_add_test(tc, test_spawn_watch_kills);
        tcase_add_test(tc, test_spawn_grandchild_holding_the_pipe);
        tcase_add_test(tc, test_spawn_passes_only_stdio);
        tcase_add_test(tc, test_spawn_exec_failure);
        tcase_add_test(tc, test_spawn_child_state);
        tcase_add_test(tc, test_spawn_from_many_threads);
        tcase_add_test(tc, test_spawn_without_close_range);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
