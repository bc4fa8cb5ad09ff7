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

static inline void tu_rm_rf(const char *dir)
{
        char *cmd = NULL;
        if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
                int rc = system(cmd);
                (void)rc;
        }
        free(cmd);
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
