/* test-semver.c - semantic versions (parsing, precedence) and npm-style
 * ranges: carets, tildes, x-ranges, hyphens, comparators, unions, and
 * pre-releases taken only when a range names them. */
#include "testutil.h"

#include "base/semver.h"

START_TEST(test_semver)
{
        static const char *const good[] = {
                "0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
                "1.0.0-x.7.z.92", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0+001",
        };
        static const char *const bad[] = {
                "", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-",
                "1.2.3+", "1.2.3-01", "1.2.3-a..b", "1.2.3-a_b", " 1.2.3", "1.2.3 ", "-1.2.3",
                "99999999999999999999.0.0",
        };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                struct semver v;
                struct err e = ERR_INIT;
                ck_assert_msg(semver_parse(good[i], &v, &e) == 0, "%s: %s", good[i], e.msg);
                semver_done(&v);
        }
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct semver v = { .major = 42 };
                struct err e = ERR_INIT;
                ck_assert_msg(semver_parse(bad[i], &v, &e) == -1, "accepted `%s`", bad[i]);
                ck_assert_int_eq(e.code, ERR_INVALID);
                ck_assert_int_eq(v.major, 42);   /* untouched on error */
        }
        /* semver.org's precedence example, in ascending order. */
        static const char *const order[] = {
                "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
        };
        size_t n = sizeof order / sizeof *order;
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < n; k++) {
                        struct semver a, b;
                        struct err e = ERR_INIT;
                        ck_assert_int_eq(semver_parse(order[i], &a, &e), 0);
                        ck_assert_int_eq(semver_parse(order[k], &b, &e), 0);
                        int want = i < k ? -1 : i > k ? 1 : 0;
                        ck_assert_msg(semver_compare(&a, &b) == want, "%s vs %s: got %d", order[i],
                                      order[k], semver_compare(&a, &b));
                        semver_done(&a);
                        semver_done(&b);
                }
        }
        /* Build metadata does not count. */
        struct semver a, b;
        struct err e = ERR_INIT;
        ck_assert_int_eq(semver_parse("1.0.0+a", &a, &e), 0);
        ck_assert_int_eq(semver_parse("1.0.0+b", &b, &e), 0);
        ck_assert_int_eq(semver_compare(&a, &b), 0);
        semver_done(&a);
        semver_done(&b);
        semver_done(NULL);
}
END_TEST

static bool match(const char *range, const char *version)
{
        struct semver_range *r = NULL;
        struct semver v;
        struct err e = ERR_INIT;
        ck_assert_msg(semver_range_parse(range, &r, &e) == 0, "`%s`: %s", range, e.msg);
        ck_assert_msg(semver_parse(version, &v, &e) == 0, "`%s`: %s", version, e.msg);
        bool m = semver_range_match(r, &v);
        semver_done(&v);
        semver_range_free(r);
        return m;
}

START_TEST(test_ranges)
{
        static const struct { const char *range, *yes, *no; } cases[] = {
                /* exact */
                { "1.2.3", "1.2.3", "1.2.4" },
                { "=1.2.3", "1.2.3+build", "1.2.3-rc.1" },
                { "v1.2.3", "1.2.3", "1.2.2" },
                /* carets: the first non-zero part stays */
                { "^1.2.3", "1.9.0", "2.0.0" },
                { "^1.2.3", "1.2.3", "1.2.2" },
                { "^1.2", "1.2.0", "1.1.9" },
                { "^1", "1.99.99", "2.0.0-rc.1" },
                { "^0.2.3", "0.2.9", "0.3.0" },
                { "^0.0.3", "0.0.3", "0.0.4" },
                { "^0.0", "0.0.9", "0.1.0" },
                { "^0", "0.9.9", "1.0.0" },
                { "^1.2.3-beta.2", "1.2.3-beta.4", "1.2.3-alpha" },
                { "^1.2.3-beta.2", "1.2.4", "1.2.4-beta.3" },   /* another tuple's pre-release: not named */
                /* tildes: the minor stays */
                { "~1.2.3", "1.2.9", "1.3.0" },
                { "~1.2", "1.2.0", "1.3.0" },
                { "~1", "1.9.0", "2.0.0" },
                { "~0.2.3", "0.2.4", "0.3.0" },
                /* x-ranges */
                { "1.x", "1.5.0", "2.0.0" },
                { "1.2.X", "1.2.7", "1.3.0" },
                { "*", "3.4.5", "3.4.5-rc.1" },
                { "1", "1.0.0", "0.9.9" },
                /* comparators, intersections */
                { ">=1.0.0 <2.0.0", "1.5.0", "2.0.0" },
                { ">=1.0.0 <2.0.0", "1.0.0", "0.9.9" },
                { ">= 1.0.0 < 2.0.0", "1.9.9", "2.0.0-rc.1" },
                { ">1.2.3", "1.2.4", "1.2.3" },
                { ">1.2", "1.3.0", "1.2.9" },
                { "<=1.2", "1.2.9", "1.3.0" },
                { "<1.2", "1.1.9", "1.2.0" },
                { ">=1.3.0-rc.1", "1.3.0-rc.2", "1.3.0-beta" },
                { ">=1.3.0-rc.1", "1.4.0", "1.4.0-rc.1" },
                /* hyphens: both ends in, as far as written */
                { "1.2.3 - 2.3.4", "2.3.4", "2.3.5" },
                { "1.2.3 - 2.3", "2.3.9", "2.4.0" },
                { "1.2 - 2", "2.9.9", "3.0.0" },
                { "1.2 - 2", "1.2.0", "1.1.9" },
                /* unions */
                { "^1.2 || ^3", "3.1.0", "2.0.0" },
                { "^1.2 || ^3", "1.3.0", "4.0.0" },
                { "<1.0.0 || >=2.0.0", "2.0.0", "1.0.0" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                ck_assert_msg(match(cases[i].range, cases[i].yes), "`%s` does not match %s", cases[i].range,
                              cases[i].yes);
                ck_assert_msg(!match(cases[i].range, cases[i].no), "`%s` matches %s", cases[i].range, cases[i].no);
        }
        /* Nothing is below 0.0.0. */
        ck_assert(!match(">*", "0.0.0"));
        ck_assert(!match("<0.0.0", "0.0.0"));
        ck_assert(match(">=0.0.0", "0.0.0"));
}
END_TEST

START_TEST(test_bad_ranges)
{
        static const char *const bad[] = {
                "", " ", "^", ">=", "1.2.3.4", "^1.x.3", "01.2", "1.2.3-", "1.2-rc.1", "abc", "1.2.3 -",
                "- 1.2.3", "1.2.3 - 2 - 3", "=>1.2.3", "<<1", "1.2.3 ||", "|| 1.2.3", "^^1", "~>1.2", "V1.2.3", "^V1",
                "1.2.3 -2.0.0", "1.", "1.2.", "^1.",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct semver_range *r = (struct semver_range *)1;
                struct err e = ERR_INIT;
                ck_assert_msg(semver_range_parse(bad[i], &r, &e) == -1, "accepted `%s`", bad[i]);
                ck_assert_int_eq(e.code, ERR_INVALID);
                ck_assert_ptr_null(r);
        }
        char big[SEMVER_RANGE_MAX + 2];
        memset(big, '1', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        struct semver_range *r = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(semver_range_parse(big, &r, &e), -1);
        semver_range_free(NULL);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("semver");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_semver);
        tcase_add_test(tc, test_ranges);
        tcase_add_test(tc, test_bad_ranges);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
