/* test-util.c - the state dir's lock (lock_file): a second process is
 * refused, and a process killed while it spawns children leaves the lock
 * free for the next one at once. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <uuid/uuid.h>

#include "base/error.h"
#include "base/util.h"

extern char **environ;

/* In a child process: 0 when it could take the lock, 1 when it was held
 * elsewhere (ERR_CONFLICT), 2 on any other error. */
static int lock_in_child(const char *path)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct err e = ERR_INIT;
                int fd = -1;
                if (lock_file(path, &fd, &e) == 0)
                        _exit(0);
                _exit(e.code == ERR_CONFLICT ? 1 : 2);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* READ_BENEATH judges the file as opened: a link out of its directory is
 * refused (nothing of it read), one within it is read. */
START_TEST(test_read_file_beneath)
{
        char *base = tu_test_dir();
        char *dir = xasprintf("%s/plugin", base);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        char *outside = tu_write(base, "outside.yaml", "name: Hunter2\n");
        free(tu_write(dir, "real.yaml", "ok\n"));
        char *out_link = xasprintf("%s/out.yaml", dir), *in_link = xasprintf("%s/in.yaml", dir);
        ck_assert_int_eq(symlink(outside, out_link), 0);
        ck_assert_int_eq(symlink("real.yaml", in_link), 0);
        /* A sibling whose name begins with the directory's is not in it. */
        char *sibling = xasprintf("%s/plugin2", base), *sib_link = xasprintf("%s/sib.yaml", dir);
        ck_assert_int_eq(mkdir(sibling, 0755), 0);
        char *sib_file = tu_write(sibling, "x.yaml", "name: Hunter2\n");
        ck_assert_int_eq(symlink(sib_file, sib_link), 0);
        char *data = NULL;
        size_t len = 0;
        struct err e = ERR_INIT;
        ck_assert_int_eq(read_file(out_link, 100, READ_FOLLOW_LINKS | READ_BENEATH, &data, &len, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_msg(strstr(e.msg, "outside its directory") && !strstr(e.msg, "Hunter2"), "%s", e.msg);
        ck_assert_ptr_null(data);
        err_clear(&e);
        ck_assert_int_eq(read_file(sib_link, 100, READ_FOLLOW_LINKS | READ_BENEATH, &data, &len, &e), -1);
        ck_assert_msg(strstr(e.msg, "outside its directory"), "%s", e.msg);
        err_clear(&e);
        ck_assert_msg(read_file(out_link, 100, READ_FOLLOW_LINKS, &data, &len, &e) == 0, "%s", e.msg);
        free(data);
        ck_assert_msg(read_file(in_link, 100, READ_FOLLOW_LINKS | READ_BENEATH, &data, &len, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(data, "ok\n");
        free(data);
        free(sibling);
        free(sib_link);
        free(sib_file);
        free(outside);
        free(out_link);
        free(in_link);
        free(dir);
        free(base);
}
END_TEST

/* xmemdup0: the bytes asked for, a NUL after them (not the source's
 * next byte), and NULL for NULL. */
START_TEST(test_xmemdup0)
{
        char *d = xmemdup0("abcdef", 3);
        ck_assert_str_eq(d, "abc");
        free(d);
        d = xmemdup0("a\0b", 3);
        ck_assert_mem_eq(d, "a\0b\0", 4);
        free(d);
        d = xmemdup0("", 0);
        ck_assert_str_eq(d, "");
        free(d);
        ck_assert_ptr_null(xmemdup0(NULL, 0));
}
END_TEST

/* uuid_random_text: lower-case RFC 4122 version 4 text that libuuid
 * parses back, and no two alike. */
START_TEST(test_uuid_random_text)
{
        enum { N = 500 };
        static char ids[N][UUID_TEXT_SIZE];
        unsigned byte_seen[16] = { 0 };
        for (int i = 0; i < N; i++) {
                uuid_random_text(ids[i]);
                ck_assert_uint_eq(strlen(ids[i]), 36);
                ck_assert_uint_eq(strspn(ids[i], "0123456789abcdef-"), 36);
                ck_assert_msg(ids[i][8] == '-' && ids[i][13] == '-' && ids[i][18] == '-' && ids[i][23] == '-', "%s", ids[i]);
                ck_assert_msg(ids[i][14] == '4', "not version 4: %s", ids[i]);
                ck_assert_msg(strchr("89ab", ids[i][19]), "not the RFC 4122 variant: %s", ids[i]);
                uuid_t u;
                ck_assert_int_eq(uuid_parse(ids[i], u), 0);
                for (int b = 0; b < 16; b++)
                        byte_seen[b] |= u[b];
                for (int k = 0; k < i; k++)
                        ck_assert_str_ne(ids[k], ids[i]);
        }
        /* Random bits everywhere but the version and variant ones. */
        for (int b = 0; b < 16; b++)
                ck_assert_uint_eq(byte_seen[b], b == 6 ? 0x4f : b == 8 ? 0xbf : 0xff);
}
END_TEST

/* Messages and fields cut to their room end on a whole character: what
 * is cut is still UTF-8 (a JSON answer can carry it). */
START_TEST(test_err_cut_whole_characters)
{
        char long_text[3000];
        for (int shift = 0; shift < 4; shift++) {
                size_t n = 0;
                for (int i = 0; i < shift; i++)
                        long_text[n++] = 'a';
                while (n + 4 < sizeof long_text) {
                        memcpy(long_text + n, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9);   /* é € 😀 */
                        n += 9;
                        if (n + 9 >= sizeof long_text)
                                break;
                }
                long_text[n] = '\0';
                struct err e = ERR_INIT;
                err_set(&e, ERR_INVALID, 0, "%s", long_text);
                ck_assert_msg(utf8_valid(e.msg, strlen(e.msg), NULL), "err_set, shift %d", shift);
                ck_assert_uint_gt(strlen(e.msg), sizeof e.msg - 5);
                err_set(&e, ERR_IO, ENOENT, "%s", long_text + 9 * 111 + (size_t)shift);   /* a character starts there */
                ck_assert_msg(utf8_valid(e.msg, strlen(e.msg), NULL), "err_set with errno, shift %d", shift);
                err_set(&e, ERR_INVALID, 0, "short");
                err_wrap(&e, "%s", long_text);
                ck_assert_msg(utf8_valid(e.msg, strlen(e.msg), NULL), "err_wrap prefix, shift %d", shift);
                err_set(&e, ERR_INVALID, 0, "%s", long_text);
                err_wrap(&e, "ctx%.*s", shift, "xyz");
                ck_assert_msg(utf8_valid(e.msg, strlen(e.msg), NULL), "err_wrap chain, shift %d", shift);
                ck_assert_str_eq(e.msg + strlen(e.msg) - 3, "...");
                err_set_field(&e, long_text);
                ck_assert_msg(utf8_valid(e.field, strlen(e.field), NULL), "err_set_field, shift %d", shift);
        }
}
END_TEST

START_TEST(test_json_string_lossy)
{
        json_t *j = json_string_lossy("caf\xE9 ok \xC3\xA9");
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(j), "caf\xEF\xBF\xBD ok \xC3\xA9");
        json_decref(j);
        j = json_string_lossy("plain");
        ck_assert_str_eq(json_string_value(j), "plain");
        json_decref(j);
        ck_assert_ptr_null(json_string_lossy(NULL));
        j = json_sprintf_lossy("dir %s: %d", "\xFF\xFE", 7);
        ck_assert_str_eq(json_string_value(j), "dir \xEF\xBF\xBD\xEF\xBF\xBD: 7");
        json_decref(j);
}
END_TEST

/* What strftime() and snprintf() made of a time, which format_rfc3339()
 * writes by hand: the same text (a time before 1970 too). */
static void rfc3339_by_libc(int64_t ms, char *buf, size_t len)
{
        time_t secs = (time_t)(ms / 1000);
        int frac = (int)(ms % 1000);
        if (frac < 0) {
                frac += 1000;
                secs--;
        }
        struct tm tm;
        gmtime_r(&secs, &tm);
        char base[40];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%s.%03dZ", base, frac);
}

START_TEST(test_format_rfc3339)
{
        char got[64], want[64];
        format_rfc3339(0, got, sizeof got);
        ck_assert_str_eq(got, "1970-01-01T00:00:00.000Z");
        format_rfc3339(1709251199999, got, sizeof got);
        ck_assert_str_eq(got, "2024-02-29T23:59:59.999Z");
        format_rfc3339(253402300799999, got, sizeof got);
        ck_assert_str_eq(got, "9999-12-31T23:59:59.999Z");
        /* Before 1970 (a damaged record, a clock far off): floored, not
         * "1970-01-01T00:00:00.-01Z". */
        format_rfc3339(-1, got, sizeof got);
        ck_assert_str_eq(got, "1969-12-31T23:59:59.999Z");
        format_rfc3339(-1000, got, sizeof got);
        ck_assert_str_eq(got, "1969-12-31T23:59:59.000Z");
        format_rfc3339(-1001, got, sizeof got);
        ck_assert_str_eq(got, "1969-12-31T23:59:58.999Z");
        format_rfc3339(-86400000LL * 365 - 1, got, sizeof got);
        ck_assert_str_eq(got, "1968-12-31T23:59:59.999Z");
        format_rfc3339(-62135596800001, got, sizeof got);   /* year 0: four digits, as RFC 3339 has them */
        ck_assert_str_eq(got, "0000-12-31T23:59:59.999Z");
        /* Past the four digits (a damaged record): the nearer end. */
        format_rfc3339(253402300800000, got, sizeof got);
        ck_assert_str_eq(got, "9999-12-31T23:59:59.999Z");
        format_rfc3339(INT64_MAX, got, sizeof got);
        ck_assert_str_eq(got, "9999-12-31T23:59:59.999Z");
        format_rfc3339(-62167219200001, got, sizeof got);
        ck_assert_str_eq(got, "0000-01-01T00:00:00.000Z");
        format_rfc3339(INT64_MIN, got, sizeof got);
        ck_assert_str_eq(got, "0000-01-01T00:00:00.000Z");
        const int64_t ms[] = { 1, 999, 1000, 86399999, 951782400000, 1798761600123, 4102444800007,
                               -1, -1000, -1001, -999 };
        for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
                format_rfc3339(ms[i], got, sizeof got);
                rfc3339_by_libc(ms[i], want, sizeof want);
                ck_assert_str_eq(got, want);
        }
        for (int64_t t = 1764979200000; t < 1764979200000 + 400LL * 86400000; t += 86400000 / 7 + 12345) {
                format_rfc3339(t, got, sizeof got);
                rfc3339_by_libc(t, want, sizeof want);
                ck_assert_str_eq(got, want);
        }
        format_rfc3339(1709251199999, got, 11);
        ck_assert_str_eq(got, "2024-02-29");
        /* At the edge of the hand-written path: 24 characters and a NUL. */
        char *exact = xmalloc(25);
        format_rfc3339(1709251199999, exact, 25);
        ck_assert_str_eq(exact, "2024-02-29T23:59:59.999Z");
        format_rfc3339(1709251199999, exact, 24);
        ck_assert_str_eq(exact, "2024-02-29T23:59:59.999");
        free(exact);
}
END_TEST

START_TEST(test_parse_int64_takes_digits_only)
{
        int64_t v = 0;
        ck_assert(parse_int64("42", 0, 100, &v) && v == 42);
        ck_assert(parse_int64("-7", -10, 10, &v) && v == -7);
        ck_assert(parse_int64("0", 0, 0, &v) && v == 0);
        const char *bad[] = { "", " 5", "\t5", "+5", "5 ", "5x", "-", "- 5", "0x10", "101", "99999999999999999999" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                ck_assert_msg(!parse_int64(bad[i], 0, 100, &v), "`%s` was taken", bad[i]);
        ck_assert(!parse_int64(NULL, 0, 100, &v));
}
END_TEST

START_TEST(test_hostname_valid_refuses_odd_ipv4)
{
        static const char *odd[] = { "0177.0.0.1", "0x7f.1", "127.1", "2130706433", "192.168.001.010", "0",
                                     "127.0.0.01", "0x7f000001", "10.0.0.0x1" };
        for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
                ck_assert_msg(ipv4_odd_spelling(odd[i], strlen(odd[i])), "`%s`", odd[i]);
                ck_assert_msg(!hostname_valid(odd[i], strlen(odd[i])), "`%s` was taken", odd[i]);
        }
        static const char *fine[] = { "127.0.0.1", "192.168.1.10", "0.0.0.0", "255.255.255.255", "h.example",
                                      "1.2.3.4.5", "0x7f.example", "123abc", "a1" };
        for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
                ck_assert_msg(!ipv4_odd_spelling(fine[i], strlen(fine[i])), "`%s`", fine[i]);
                ck_assert_msg(hostname_valid(fine[i], strlen(fine[i])), "`%s` was refused", fine[i]);
        }
        /* However many leading zeros (inet_aton and libcurl take them all). */
        char longer[80];
        snprintf(longer, sizeof longer, "%060d177.1", 0);
        ck_assert(ipv4_odd_spelling(longer, strlen(longer)));
        ck_assert(!hostname_valid(longer, strlen(longer)));
        /* Only the first len bytes count. */
        ck_assert(hostname_valid("127.0.0.1:80", 9));
        ck_assert(!hostname_valid("127.1:80", 5));
}
END_TEST

START_TEST(test_lock_file_second_process_refused)
{
        char *dir = tu_mkdtemp();
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/edgecd.lock", dir), 0);
        struct err e = ERR_INIT;
        int fd = -1;
        ck_assert_msg(lock_file(path, &fd, &e) == 0, "%s", e.msg);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(lock_in_child(path), 1);
        close(fd);
        ck_assert_int_eq(lock_in_child(path), 0);

        /* A path that cannot be opened is an I/O error naming it. */
        char *bad = NULL;
        ck_assert_int_ge(asprintf(&bad, "%s/no/such/dir/edgecd.lock", dir), 0);
        e = (struct err)ERR_INIT;
        ck_assert_int_eq(lock_file(bad, &fd, &e), -1);
        ck_assert_int_eq(e.code, ERR_IO);
        ck_assert_ptr_nonnull(strstr(e.msg, bad));
        unlink(path);
        rmdir(dir);
        free(bad);
        free(path);
        free(dir);
}
END_TEST

static void *spawn_forever(void *arg)
{
        (void)arg;
        for (;;) {
                char *argv[] = { "/bin/true", NULL };
                pid_t pid;
                if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) == 0)
                        waitpid(pid, NULL, 0);
        }
        return NULL;
}

/* The daemon spawns its runtime from several threads; SIGKILLed then, a
 * posix_spawn() child between its clone and its exec still held the lock
 * when it was a flock() (about 3 kills in 10 on this machine), and the
 * restarted daemon refused the state dir. */
START_TEST(test_lock_file_free_after_a_kill_while_spawning)
{
        char *dir = tu_mkdtemp();
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/edgecd.lock", dir), 0);
        int held = 0;
        for (int i = 0; i < 40; i++) {
                pid_t pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        struct err e = ERR_INIT;
                        int fd = -1;
                        if (lock_file(path, &fd, &e) < 0)
                                _exit(3);
                        for (int t = 0; t < 4; t++) {
                                pthread_t th;
                                pthread_create(&th, NULL, spawn_forever, NULL);
                        }
                        pause();
                        _exit(0);
                }
                usleep(20 * 1000);
                kill(pid, SIGKILL);
                int status;
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFSIGNALED(status), "the locking child could not take the lock");
                int r = lock_in_child(path);
                ck_assert_int_ne(r, 2);
                if (r == 1) {
                        held++;
                        usleep(200 * 1000);   /* let the straggler exec */
                }
        }
        ck_assert_msg(held == 0, "the lock outlived its SIGKILLed owner %d times in 40", held);
        unlink(path);
        rmdir(dir);
        free(path);
        free(dir);
}
END_TEST

/* The wall clock as the code under test sees it: CLOCK_REALTIME moved by
 * wall_shift_ms (a step of NTP's), everything else as it is. */
static int64_t wall_shift_ms;

int clock_gettime(clockid_t id, struct timespec *ts)
{
        int rc = (int)syscall(SYS_clock_gettime, id, ts);
        if (rc == 0 && id == CLOCK_REALTIME && wall_shift_ms) {
                int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + wall_shift_ms * 1000000;
                ts->tv_sec = (time_t)(ns / 1000000000);
                ts->tv_nsec = (long)(ns % 1000000000);
        }
        return rc;
}

START_TEST(test_wall_wait_after_a_step_too_small_to_note)
{
        /* A callback retry put off by the longest backoff (a Retry-After
         * past it is cut to it), recorded just after a step ahead of
         * 0.6 s, which is under the step that is noted: it still waits
         * the backoff.  (It read as further ahead than any backoff, as
         * if from before a step back, and went at once.) */
        const int64_t bound = 300000;
        (void)now_real_ms();          /* the offset noted */
        wall_shift_ms = 600;
        int64_t due = now_real_ms() + bound;
        int64_t wait = wall_wait_ms(due, bound);
        ck_assert_msg(wait > bound - 1000 && wait <= bound, "waits %lld ms of %lld", (long long)wait,
                      (long long)bound);
        wall_shift_ms = 0;
}
END_TEST

/* ASan's allocator reports a request past its largest and ends the
 * process; here it returns NULL as glibc's does, so that xmalloc's own
 * handling is what runs. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "allocator_may_return_null=1";
}

START_TEST(test_out_of_memory_says_so_before_it_aborts)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct rlimit none = { 0, 0 };
                setrlimit(RLIMIT_CORE, &none);
                dup2(p[1], STDERR_FILENO);
                free(xmalloc(SIZE_MAX / 2));
                _exit(0);
        }
        close(p[1]);
        char buf[256] = { 0 };
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1 && (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
                got += (size_t)n;
        close(p[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
        char want[128];
        snprintf(want, sizeof want, "edgecd: out of memory (allocating %zu bytes); aborting\n", SIZE_MAX / 2);
        /* (ASan warns first of the failed allocation.) */
        ck_assert_msg(strstr(buf, want), "stderr: %s", buf);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("lock");
        tcase_set_timeout(tc, 60);
        /* In the parent: a failed test's directory goes too. */
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_test(tc, test_xmemdup0);
        tcase_add_test(tc, test_read_file_beneath);
        tcase_add_test(tc, test_uuid_random_text);
        tcase_add_test(tc, test_err_cut_whole_characters);
        tcase_add_test(tc, test_json_string_lossy);
        tcase_add_test(tc, test_format_rfc3339);
        tcase_add_test(tc, test_parse_int64_takes_digits_only);
        tcase_add_test(tc, test_hostname_valid_refuses_odd_ipv4);
        tcase_add_test(tc, test_lock_file_second_process_refused);
        tcase_add_test(tc, test_lock_file_free_after_a_kill_while_spawning);
        tcase_add_test(tc, test_out_of_memory_says_so_before_it_aborts);
        tcase_add_test(tc, test_wall_wait_after_a_step_too_small_to_note);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
