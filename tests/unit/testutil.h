/* testutil.h - shared by the Check unit tests in tests/unit/.
 * Each test file defines `static Suite *suite(void)` and ends with
 * TEST_MAIN(suite).  Paths: EDGECD_SRC (the checkout, default ".") lets a
 * test find oci-templates/, tests/data/ and ../shared/. */
#ifndef EDGECD_TESTUTIL_H
#define EDGECD_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline const char *tu_src(void)
{
        const char *s = getenv("EDGECD_SRC");
        return s && *s ? s : ".";
}

/* A fresh directory under /tmp; caller frees the string. */
static inline char *tu_mkdtemp(void)
{
        char *d = strdup("/tmp/edgecd-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

/* Write content to dir/name; returns the path (caller frees). */
static inline char *tu_write(const char *dir, const char *name, const char *content)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        fclose(f);
        return p;
}

/* start, n times s, then end; caller frees. */
static inline char *tu_repeat(const char *start, const char *s, size_t n, const char *end)
{
        size_t len = strlen(s);
        char *t = malloc(strlen(start) + n * len + strlen(end) + 1);
        ck_assert_ptr_nonnull(t);
        char *p = stpcpy(t, start);
        for (size_t i = 0; i < n; i++, p += len)
                memcpy(p, s, len);
        strcpy(p, end);
        return t;
}

static inline void tu_rm_rf(const char *dir)
{
        char *cmd = NULL;
        if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
                int rc = system(cmd);
                (void)rc;
        }
        free(cmd);
}

/* Per-test directories under one base dir.  The base is made and removed by
 * an unchecked fixture (tcase_add_unchecked_fixture(tc, tu_base_setup,
 * tu_base_teardown)), which runs in the parent process: a failed assertion
 * ends a forked test with _exit(), skipping its checked teardown, and the
 * base still goes. */
static char *tu_base __attribute__((unused));

static inline void tu_base_setup(void)
{
        tu_base = tu_mkdtemp();
}

static inline void tu_base_teardown(void)
{
        tu_rm_rf(tu_base);
        free(tu_base);
        tu_base = NULL;
}

/* A fresh directory under the base; caller frees the string. */
static inline char *tu_test_dir(void)
{
        char *d = NULL;
        ck_assert_int_ge(asprintf(&d, "%s/XXXXXX", tu_base), 0);
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

#define TEST_MAIN(suite_fn)                                          \
        int main(void)                                               \
        {                                                            \
                SRunner *sr = srunner_create(suite_fn());            \
                srunner_run_all(sr, CK_NORMAL);                      \
                int failed = srunner_ntests_failed(sr);              \
                srunner_free(sr);                                    \
                return failed ? EXIT_FAILURE : EXIT_SUCCESS;         \
        }

#endif
