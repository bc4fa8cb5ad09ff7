/* test-result.c - reading /output/result.json as text (the JSONTestSuite
 * corpus, hostile file types, size limits, a result far larger as a tree
 * than as text) and the error taxonomy. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>

#include <jansson.h>

#include "testutil.h"

#include "base/util.h"
#include "runtime/result.h"

#define MAX (1024 * 1024)

static char *corpus_dir(void)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/../shared/corpora/jsontestsuite/test_parsing", tu_src()), 0);
        return p;
}

/* Put src's bytes at outdir/result.json; returns them (caller frees). */
static char *copy_as_result(const char *src, const char *outdir, size_t *ret_len)
{
        char *data = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(read_file(src, 16 * 1024 * 1024, 0, &data, ret_len, &err) == 0, "%s", err.msg);
        _cleanup_free_ char *dst = xasprintf("%s/result.json", outdir);
        unlink(dst);
        ck_assert_msg(write_file(dst, data, *ret_len, 0644, &err) == 0, "%s", err.msg);
        return data;
}

/* What the daemon keeps is what the file holds: same bytes, same count,
 * and a NUL after them. */
static void assert_same_bytes(const char *name, const char *text, size_t len, const char *want, size_t want_len)
{
        ck_assert_msg(len == want_len, "%s: length %zu, file %zu", name, len, want_len);
        ck_assert_msg(memcmp(text, want, len) == 0, "%s: text differs from the file", name);
        ck_assert_msg(text[len] == '\0', "%s: not NUL-terminated", name);
}

START_TEST(test_corpus)
{
        _cleanup_free_ char *dir = corpus_dir();
        DIR *d = opendir(dir);
        if (!d) {
                /* The corpus lives beside the checkout, not in it. */
                fprintf(stderr, "test_corpus: skipped: corpus absent (`%s`)\n", dir);
                return;
        }
        _cleanup_free_ char *out = tu_mkdtemp();
        int ny = 0, nn = 0, ni = 0;
        bool formfeed = false;
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *name = de->d_name;
                if (!strstr(name, ".json") || (name[0] != 'y' && name[0] != 'n' && name[0] != 'i'))
                        continue;
                _cleanup_free_ char *src = xasprintf("%s/%s", dir, name);
                size_t flen = 0;
                _cleanup_free_ char *fdata = copy_as_result(src, out, &flen);
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                struct err err = ERR_INIT;
                int r = result_read(out, MAX, &text, &len, &err);
                if (name[0] == 'y') {
                        ny++;
                        ck_assert_msg(r == 0, "%s rejected: %s", name, err.msg);
                } else if (name[0] == 'n') {
                        nn++;
                        ck_assert_msg(r == -1, "%s accepted", name);
                        ck_assert_msg(err.code == ERR_INVALID, "%s: %s", name, err_code_name(err.code));
                        ck_assert_msg(strstr(err.msg, "result.json"), "%s", err.msg);
                        ck_assert_ptr_null(text);
                        /* yajl alone would take the form feed as whitespace. */
                        formfeed |= !strcmp(name, "n_structure_whitespace_formfeed.json");
                } else {
                        ni++;
                        ck_assert_msg(r == 0 || err.code == ERR_INVALID, "%s: %s", name, err.msg);
                }
                if (r == 0)
                        assert_same_bytes(name, text, len, fdata, flen);
        }
        closedir(d);
        ck_assert_int_gt(ny, 90);
        ck_assert_int_gt(nn, 180);
        ck_assert_int_gt(ni, 20);
        ck_assert_msg(formfeed, "n_structure_whitespace_formfeed.json not in the corpus");
        tu_rm_rf(out);
}
END_TEST

START_TEST(test_escaped_null_in_key)
{
        /* Valid JSON that jansson could not hold (its keys are C strings):
         * kept as text, it is an ordinary result now. */
        _cleanup_free_ char *out = tu_mkdtemp();
        static const char want[] = "{\"\\u0000\":1}";
        free(tu_write(out, "result.json", want));
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(result_read(out, MAX, &text, &len, &err) == 0, "%s", err.msg);
        assert_same_bytes("escaped NUL", text, len, want, strlen(want));
        tu_rm_rf(out);
}
END_TEST

/* result_read that must fail with code; nothing is handed back. */
static struct err read_fails(const char *out, int64_t max, enum err_code code)
{
        char *text = (char *)1;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_int_eq(result_read(out, max, &text, &len, &err), -1);
        ck_assert_msg(err.code == code, "got %s (%s), want %s", err_code_name(err.code), err.msg,
                      err_code_name(code));
        ck_assert_ptr_eq(text, (char *)1);   /* ret_ is written only on success */
        return err;
}

/* result_read of the file `want` (len bytes) must return exactly it. */
static void read_back(const char *out, int64_t max, const char *want, size_t want_len)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(result_read(out, max, &text, &len, &err) == 0, "%s", err.msg);
        assert_same_bytes("result.json", text, len, want, want_len);
}

START_TEST(test_read_kinds)
{
        _cleanup_free_ char *out = tu_mkdtemp();
        _cleanup_free_ char *path = xasprintf("%s/result.json", out);
        struct err err = ERR_INIT;

        /* missing */
        read_fails(out, MAX, ERR_NOT_FOUND);

        /* a valid object, a bare value: the text as written, spaces and all */
        static const char obj[] = "{\"c\": [[1,2],[3,4]],\n \"s\": \"\\u00e9\"}\n";
        free(tu_write(out, "result.json", obj));
        read_back(out, MAX, obj, strlen(obj));
        free(tu_write(out, "result.json", "42"));
        read_back(out, MAX, "42", 2);

        /* invalid JSON: line and column */
        free(tu_write(out, "result.json", "{\n  \"a\": 1,\n  oops\n}"));
        err = read_fails(out, MAX, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "result.json: line 3, column "), "%s", err.msg);

        /* a raw NUL byte after a valid value */
        unlink(path);
        ck_assert_int_eq(write_file(path, "123\0x", 5, 0644, &err), 0);
        err = read_fails(out, MAX, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "line 1, column 4: raw control character 0x00"), "%s", err.msg);

        /* an empty file is not a JSON text */
        unlink(path);
        free(tu_write(out, "result.json", ""));
        read_fails(out, MAX, ERR_INVALID);

        /* exactly at the limit is fine, one byte over is too large */
        unlink(path);
        free(tu_write(out, "result.json", "[1,2,3]"));   /* 7 bytes */
        read_back(out, 7, "[1,2,3]", 7);
        read_fails(out, 6, ERR_TOO_LARGE);

        /* a big sparse file is refused by its size, without reading it */
        unlink(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)4 << 30), 0);
        close(fd);
        read_fails(out, MAX, ERR_TOO_LARGE);

        /* a symlink, even to a valid file */
        unlink(path);
        _cleanup_free_ char *target = tu_write(out, "real.json", "{}");
        ck_assert_int_eq(symlink(target, path), 0);
        err = read_fails(out, MAX, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "symlink"), "%s", err.msg);

        /* a FIFO with no writer: must not hang */
        unlink(path);
        ck_assert_int_eq(mkfifo(path, 0644), 0);
        err = read_fails(out, MAX, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "FIFO"), "%s", err.msg);

        /* a directory */
        unlink(path);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        err = read_fails(out, MAX, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "directory"), "%s", err.msg);
        rmdir(path);

        /* the output directory itself is a symlink */
        _cleanup_free_ char *link = xasprintf("%s/outlink", out);
        _cleanup_free_ char *sub = xasprintf("%s/sub", out);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        free(tu_write(sub, "result.json", "{}"));
        ck_assert_int_eq(symlink(sub, link), 0);
        read_fails(link, MAX, ERR_IO);
        tu_rm_rf(out);
}
END_TEST

START_TEST(test_huge_parsed_result)
{
        /* 1 MiB of `{},`: some 70 MiB as a jansson tree, 1 MiB as text.  At
         * the limit exactly, so it must be read and kept whole. */
        _cleanup_free_ char *out = tu_mkdtemp();
        _cleanup_free_ char *path = xasprintf("%s/result.json", out);
        size_t n = MAX;
        ck_assert_uint_eq(n % 3, 1);   /* "[" + "{}," * k, the last ',' made ']' */
        _cleanup_free_ char *big = xmalloc(n);
        big[0] = '[';
        for (size_t i = 1; i < n; i += 3)
                memcpy(big + i, "{},", 3);
        big[n - 1] = ']';
        struct err err = ERR_INIT;
        ck_assert_int_eq(write_file(path, big, n, 0644, &err), 0);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_size, MAX);
        read_back(out, MAX, big, n);
        /* One byte more and it is over. */
        read_fails(out, MAX - 1, ERR_TOO_LARGE);
        tu_rm_rf(out);
}
END_TEST

static struct outcome exited(int code)
{
        return (struct outcome){ .exit = { .status = WAIT_EXITED, .exit_code = code } };
}

static struct outcome signaled(int sig)
{
        return (struct outcome){ .exit = { .status = WAIT_SIGNALED, .signal = sig } };
}

/* Classify o against out and return the message (caller frees). */
static char *classify(const struct outcome *o, const char *out, enum job_error want)
{
        char *res = (char *)1;
        size_t len = 99;
        char *msg = (char *)1;
        enum job_error e = result_classify(o, out, MAX, &res, &len, &msg, NULL);
        ck_assert_msg(e == want, "got %s, want %s (%s)", job_error_name(e), job_error_name(want),
                      msg ? msg : "");
        if (e == JOB_ERR_NONE) {
                ck_assert_ptr_nonnull(res);
                ck_assert_uint_eq(len, strlen(res));
                ck_assert_ptr_null(msg);
                free(res);
                return NULL;
        }
        ck_assert_ptr_null(res);
        ck_assert_uint_eq(len, 0);
        ck_assert_ptr_nonnull(msg);
        json_t *js = json_string(msg);   /* NULL unless valid UTF-8 */
        ck_assert_msg(js != NULL, "message is not valid UTF-8");
        json_decref(js);
        return msg;
}

static void expect(const struct outcome *o, const char *out, enum job_error want, const char *needle)
{
        _cleanup_free_ char *msg = classify(o, out, want);
        if (needle)
                ck_assert_msg(msg && strstr(msg, needle), "`%s` lacks `%s`", msg ? msg : "(null)", needle);
}

START_TEST(test_classify)
{
        _cleanup_free_ char *out = tu_mkdtemp();
        /* A valid result is present throughout: failures must win over it. */
        free(tu_write(out, "result.json", "{\"ok\":true}"));

        struct outcome o = { .exit = { .status = WAIT_CANCELLED } };
        expect(&o, out, JOB_ERR_CANCELLED, "cancel");
        o = (struct outcome){ .exit = { .status = WAIT_TIMEOUT }, .oom_killed = true };
        expect(&o, out, JOB_ERR_TIMEOUT, "time");

        o = signaled(SIGSYS);
        expect(&o, out, JOB_ERR_SANDBOX_VIOLATION, "killed by seccomp: forbidden system call");
        o = signaled(SIGKILL);
        o.oom_killed = true;
        expect(&o, out, JOB_ERR_OUT_OF_MEMORY, "out of memory");
        o = signaled(SIGKILL);
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "killed by signal SIGKILL");
        /* No OOM count (v1, the container's cgroup gone): a SIGKILL at the
         * memory limit is the OOM killer's; the limit alone is not. */
        o = signaled(SIGKILL);
        o.limit_hit = true;
        expect(&o, out, JOB_ERR_OUT_OF_MEMORY, "out of memory");
        o = signaled(SIGTERM);
        o.limit_hit = true;
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "killed by signal SIGTERM");
        /* Where the kernel's count was read and says none, the limit is
         * only a limit (v2 reclaims at it all the time). */
        o = signaled(SIGKILL);
        o.limit_hit = true;
        o.oom_known = true;
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "killed by signal SIGKILL");
        o = exited(137);
        o.limit_hit = true;
        expect(&o, out, JOB_ERR_OUT_OF_MEMORY, "status 137");
        o = exited(3);
        o.limit_hit = true;
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "exited with status 3");
        o = signaled(SIGSEGV);
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "killed by signal SIGSEGV");

        o = exited(137);
        o.oom_killed = true;
        expect(&o, out, JOB_ERR_OUT_OF_MEMORY, "status 137");

        o = exited(3);
        o.stderr_tail = "\n  matmul: dimension mismatch\n\n";
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "exited with status 3: matmul: dimension mismatch");
        {
                _cleanup_free_ char *msg = classify(&o, out, JOB_ERR_ALGORITHM_FAILED);
                ck_assert_str_eq(msg, "exited with status 3: matmul: dimension mismatch");
        }
        o.stderr_tail = NULL;
        {
                _cleanup_free_ char *msg = classify(&o, out, JOB_ERR_ALGORITHM_FAILED);
                ck_assert_str_eq(msg, "exited with status 3");
        }
        o = exited(159);
        expect(&o, out, JOB_ERR_ALGORITHM_FAILED, "seccomp?");

        /* A long stderr: only the last ~1 KiB, cut inside a UTF-8 character
         * and holding invalid bytes and control characters: still valid UTF-8. */
        char big[5000];
        for (size_t i = 0; i + 2 < sizeof big; i += 2) {
                big[i] = (char)0xC3;   /* "é" repeated */
                big[i + 1] = (char)0xA9;
        }
        memcpy(big + sizeof big - 12, "\xff\x01 THE END", 11);
        big[sizeof big - 1] = '\0';
        o = exited(1);
        o.stderr_tail = big + 1;   /* starts with a continuation byte */
        {
                _cleanup_free_ char *msg = classify(&o, out, JOB_ERR_ALGORITHM_FAILED);
                ck_assert_uint_lt(strlen(msg), 1100);
                ck_assert_msg(strstr(msg, "?? THE END"), "%s", msg);
        }

        /* exit 0: the result decides, and is handed back as the file's text */
        o = exited(0);
        expect(&o, out, JOB_ERR_NONE, NULL);
        {
                char *res = NULL;
                size_t len = 0;
                ck_assert_int_eq(result_classify(&o, out, MAX, &res, &len, NULL, NULL), JOB_ERR_NONE);
                ck_assert_uint_eq(len, 11);
                ck_assert_str_eq(res, "{\"ok\":true}");
                free(res);
        }
        free(tu_write(out, "result.json", "{\"ok\":"));
        expect(&o, out, JOB_ERR_INVALID_RESULT, "result.json: line 1, column ");
        free(tu_write(out, "result.json", "\"\xff\xfe\""));
        expect(&o, out, JOB_ERR_INVALID_RESULT, "result.json");
        _cleanup_free_ char *path = xasprintf("%s/result.json", out);
        unlink(path);
        expect(&o, out, JOB_ERR_NO_RESULT, "result.json");
        _cleanup_free_ char *large = xmalloc(MAX + 16);
        memset(large, ' ', MAX + 16);
        large[0] = '1';
        struct err err = ERR_INIT;
        ck_assert_int_eq(write_file(path, large, MAX + 16, 0644, &err), 0);
        expect(&o, out, JOB_ERR_RESULT_TOO_LARGE, "over the limit");
        unlink(path);
        ck_assert_int_eq(symlink("/etc/passwd", path), 0);
        expect(&o, out, JOB_ERR_INVALID_RESULT, "symlink");
        _cleanup_free_ char *gone = xasprintf("%s/nonexistent", out);
        expect(&o, gone, JOB_ERR_RUNTIME_ERROR, NULL);
        /* Why the daemon could not look is told (the scheduler does not
         * count its own shortage against the algorithm); 0 otherwise. */
        int errnum = -1;
        ck_assert_int_eq(result_classify(&o, gone, MAX, NULL, NULL, NULL, &errnum), JOB_ERR_RUNTIME_ERROR);
        ck_assert_int_eq(errnum, ENOENT);
        errnum = -1;
        ck_assert_int_eq(result_classify(&o, out, MAX, NULL, NULL, NULL, &errnum), JOB_ERR_INVALID_RESULT);
        ck_assert_int_eq(errnum, 0);

        /* Callers may pass NULL for what they do not want. */
        unlink(path);
        free(tu_write(out, "result.json", "[]"));
        ck_assert_int_eq(result_classify(&o, out, MAX, NULL, NULL, NULL, NULL), JOB_ERR_NONE);
        o = exited(2);
        ck_assert_int_eq(result_classify(&o, out, MAX, NULL, NULL, NULL, NULL), JOB_ERR_ALGORITHM_FAILED);
        tu_rm_rf(out);
}
END_TEST

START_TEST(test_names)
{
        static const char *const want[] = {
                [JOB_ERR_NONE] = "none",
                [JOB_ERR_TIMEOUT] = "timeout",
                [JOB_ERR_OUT_OF_MEMORY] = "out_of_memory",
                [JOB_ERR_SANDBOX_VIOLATION] = "sandbox_violation",
                [JOB_ERR_ALGORITHM_FAILED] = "algorithm_failed",
                [JOB_ERR_NO_RESULT] = "no_result",
                [JOB_ERR_INVALID_RESULT] = "invalid_result",
                [JOB_ERR_RESULT_TOO_LARGE] = "result_too_large",
                [JOB_ERR_RUNTIME_ERROR] = "runtime_error",
                [JOB_ERR_INTERRUPTED] = "interrupted",
                [JOB_ERR_CANCELLED] = "cancelled",
        };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                ck_assert_str_eq(job_error_name((enum job_error)i), want[i]);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("result");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_corpus);
        tcase_add_test(tc, test_escaped_null_in_key);
        tcase_add_test(tc, test_read_kinds);
        tcase_add_test(tc, test_huge_parsed_result);
        tcase_add_test(tc, test_classify);
        tcase_add_test(tc, test_names);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
