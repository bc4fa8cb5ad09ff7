/* test-breaker.c - the per-algorithm circuit breaker: which outcomes count,
 * degraded (one job at a time), isolated (submissions refused), the single
 * probe after the cool-down and what its outcome does, and the reports for
 * /readyz and /metrics.  The cool-down is 50 ms; waits for it poll with a
 * bound, nothing asserts how long anything took. */
#include "testutil.h"

#include "base/util.h"
#include "jobs/breaker.h"

#define DEGRADE 2
#define ISOLATE 4
#define COOLDOWN_MS 50

static struct breaker *new_breaker(void)
{
        return breaker_new(DEGRADE, ISOLATE, COOLDOWN_MS);
}

static void fail_n(struct breaker *b, const char *name, int n, enum job_error e, const char *why)
{
        for (int i = 0; i < n; i++)
                breaker_record(b, name, e, why, false);
}

/* breaker_json's consecutive_failures for name. */
static json_int_t row(struct breaker *b, const char *name)
{
        json_t *o = breaker_json(b, name);
        json_t *n = json_object_get(o, "consecutive_failures");
        ck_assert(json_is_integer(n));
        json_int_t v = json_integer_value(n);
        json_decref(o);
        return v;
}

/* breaker_json for name, checked for state and row (caller frees). */
static json_t *json_of(struct breaker *b, const char *name, const char *state, json_int_t failures)
{
        json_t *o = breaker_json(b, name);
        ck_assert_str_eq(json_string_value(json_object_get(o, "state")), state);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "consecutive_failures")), failures);
        return o;
}

/* admit with `running` jobs of name running; *probe as admitted. */
static bool admit(struct breaker *b, const char *name, size_t running, bool *probe)
{
        bool p = true;
        bool ok = breaker_admit(b, name, running, &p);
        if (probe)
                *probe = p;
        else
                ck_assert_msg(!p, "admitted as a probe");
        return ok;
}

/* Poll until name is probing (the cool-down is over); bounded. */
static void wait_probing(struct breaker *b, const char *name)
{
        for (int i = 0; i < 2000 && breaker_state(b, name) != HEALTH_PROBING; i++)
                usleep(5000);
        ck_assert_str_eq(health_name(breaker_state(b, name)), "probing");
}

/* Once probing: exactly one job is admitted, as the probe. */
static void take_probe(struct breaker *b, const char *name)
{
        wait_probing(b, name);
        bool probe = false;
        ck_assert(admit(b, name, 0, &probe));
        ck_assert(probe);
        ck_assert(!admit(b, name, 0, &probe));
        ck_assert(!probe);
}

START_TEST(test_names)
{
        ck_assert_str_eq(health_name(HEALTH_HEALTHY), "healthy");
        ck_assert_str_eq(health_name(HEALTH_DEGRADED), "degraded");
        ck_assert_str_eq(health_name(HEALTH_ISOLATED), "isolated");
        ck_assert_str_eq(health_name(HEALTH_PROBING), "probing");
}
END_TEST

START_TEST(test_degraded_after_failures_in_a_row)
{
        struct breaker *b = new_breaker();
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_HEALTHY);
        breaker_record(b, "a", JOB_ERR_RUNTIME_ERROR, "create failed", false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_HEALTHY);
        ck_assert(admit(b, "a", 3, NULL));
        /* Sandbox violations count the same. */
        breaker_record(b, "a", JOB_ERR_SANDBOX_VIOLATION, "killed by seccomp", false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
        ck_assert_int_eq(row(b, "a"), 2);
        /* Degraded: one job at a time. */
        ck_assert(admit(b, "a", 0, NULL));
        ck_assert(!admit(b, "a", 1, NULL));
        ck_assert(!admit(b, "a", 5, NULL));
        /* Still below isolate_after: degraded, submissions accepted. */
        breaker_record(b, "a", JOB_ERR_RUNTIME_ERROR, "start failed", false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
        struct err err = ERR_INIT;
        ck_assert_int_eq(breaker_check_submit(b, "a", &err), 0);
        breaker_free(b);
}
END_TEST

START_TEST(test_other_outcomes_end_the_row)
{
        /* The algorithm's own failures say nothing about the sandbox. */
        static const enum job_error resets[] = {
                JOB_ERR_NONE, JOB_ERR_ALGORITHM_FAILED, JOB_ERR_TIMEOUT, JOB_ERR_OUT_OF_MEMORY,
                JOB_ERR_NO_RESULT, JOB_ERR_INVALID_RESULT, JOB_ERR_RESULT_TOO_LARGE,
        };
        struct breaker *b = new_breaker();
        for (size_t i = 0; i < ARRAY_SIZE(resets); i++) {
                fail_n(b, "a", DEGRADE, JOB_ERR_RUNTIME_ERROR, "boom");
                ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
                breaker_record(b, "a", resets[i], NULL, false);
                ck_assert_msg(breaker_state(b, "a") == HEALTH_HEALTHY, "%s did not reset",
                              job_error_name(resets[i]));
                ck_assert_int_eq(row(b, "a"), 0);
                ck_assert(admit(b, "a", 7, NULL));
        }
        /* A reset in the middle of a row starts the count again. */
        fail_n(b, "a", DEGRADE - 1, JOB_ERR_RUNTIME_ERROR, "boom");
        breaker_record(b, "a", JOB_ERR_TIMEOUT, NULL, false);
        fail_n(b, "a", DEGRADE - 1, JOB_ERR_RUNTIME_ERROR, "boom");
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_HEALTHY);
        breaker_free(b);
}
END_TEST

START_TEST(test_cancelled_and_interrupted_count_neither_way)
{
        struct breaker *b = new_breaker();
        fail_n(b, "a", DEGRADE - 1, JOB_ERR_RUNTIME_ERROR, "boom");
        for (int i = 0; i < 10; i++) {
                breaker_record(b, "a", JOB_ERR_CANCELLED, NULL, false);
                breaker_record(b, "a", JOB_ERR_INTERRUPTED, NULL, false);
        }
        ck_assert_int_eq(row(b, "a"), DEGRADE - 1);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_HEALTHY);
        breaker_record(b, "a", JOB_ERR_RUNTIME_ERROR, "again", false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
        /* Nor do they take a degraded algorithm back to healthy. */
        breaker_record(b, "a", JOB_ERR_CANCELLED, NULL, false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
        breaker_free(b);
}
END_TEST

START_TEST(test_isolated_refuses)
{
        /* A cool-down of an hour: nothing here can outlast it. */
        struct breaker *b = breaker_new(DEGRADE, ISOLATE, 3600 * 1000);
        fail_n(b, "algo", ISOLATE - 1, JOB_ERR_RUNTIME_ERROR, "create failed");
        ck_assert_int_eq(breaker_state(b, "algo"), HEALTH_DEGRADED);
        breaker_record(b, "algo", JOB_ERR_SANDBOX_VIOLATION, "killed by seccomp: forbidden system call", false);
        ck_assert_int_eq(breaker_state(b, "algo"), HEALTH_ISOLATED);

        /* Submissions are refused with the reason; queued jobs wait. */
        struct err err = ERR_INIT;
        ck_assert_int_eq(breaker_check_submit(b, "algo", &err), -1);
        ck_assert_int_eq(err.code, ERR_UNAVAILABLE);
        ck_assert_msg(strstr(err.msg, "`algo`"), "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "sandbox_violation: killed by seccomp: forbidden system call"), "%s", err.msg);
        bool probe = true;
        ck_assert(!admit(b, "algo", 0, &probe));
        ck_assert(!probe);
        json_t *o = json_of(b, "algo", "isolated", ISOLATE);
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "reason")), "killed by seccomp"));
        ck_assert(json_is_string(json_object_get(o, "since")));
        ck_assert(json_is_string(json_object_get(o, "retry_at")));
        json_decref(o);
        breaker_free(b);
}
END_TEST

START_TEST(test_one_probe_after_cooldown)
{
        struct breaker *b = new_breaker();
        fail_n(b, "algo", ISOLATE, JOB_ERR_RUNTIME_ERROR, "create failed");

        /* After the cool-down: submissions again, and exactly one probe. */
        wait_probing(b, "algo");
        struct err err = ERR_INIT;
        ck_assert_int_eq(breaker_check_submit(b, "algo", &err), 0);
        take_probe(b, "algo");
        bool probe = false;
        ck_assert(!admit(b, "algo", 1, &probe));

        /* The probe fails: isolated again for another cool-down.  (Checked
         * only while that cool-down cannot be over yet.) */
        int64_t t0 = now_mono_ms();
        breaker_record(b, "algo", JOB_ERR_RUNTIME_ERROR, "still broken", true);
        enum health h = breaker_state(b, "algo");
        int rc = breaker_check_submit(b, "algo", &err);
        if (now_mono_ms() - t0 < COOLDOWN_MS) {
                ck_assert_str_eq(health_name(h), "isolated");
                ck_assert_int_eq(rc, -1);
                ck_assert_msg(strstr(err.msg, "runtime_error: still broken"), "%s", err.msg);
        }
        ck_assert_int_eq(row(b, "algo"), ISOLATE + 1);

        /* The next probe succeeds: healthy, the row forgotten. */
        take_probe(b, "algo");
        breaker_record(b, "algo", JOB_ERR_NONE, NULL, true);
        ck_assert_int_eq(breaker_state(b, "algo"), HEALTH_HEALTHY);
        json_t *o = json_of(b, "algo", "healthy", 0);
        ck_assert(json_is_null(json_object_get(o, "reason")));
        ck_assert_ptr_null(json_object_get(o, "retry_at"));
        json_decref(o);
        ck_assert(admit(b, "algo", 3, &probe));
        ck_assert(!probe);
        breaker_free(b);
}
END_TEST

START_TEST(test_probe_abandoned)
{
        struct breaker *b = new_breaker();
        fail_n(b, "a", ISOLATE, JOB_ERR_RUNTIME_ERROR, "boom");
        take_probe(b, "a");
        /* Cancelled in the queue: another job may probe. */
        breaker_probe_abandoned(b, "a");
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_PROBING);
        take_probe(b, "a");
        /* A probe cancelled or interrupted while running is abandoned too,
         * nothing more. */
        breaker_record(b, "a", JOB_ERR_CANCELLED, NULL, true);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_PROBING);
        take_probe(b, "a");
        breaker_record(b, "a", JOB_ERR_INTERRUPTED, NULL, true);
        take_probe(b, "a");
        ck_assert_int_eq(row(b, "a"), ISOLATE);
        breaker_probe_abandoned(b, "never-seen");   /* harmless */
        breaker_free(b);
}
END_TEST

START_TEST(test_isolate_at_once)
{
        /* degrade_after == isolate_after: straight to isolated. */
        struct breaker *b = breaker_new(3, 3, 3600 * 1000);
        fail_n(b, "a", 2, JOB_ERR_RUNTIME_ERROR, "boom");
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_HEALTHY);
        fail_n(b, "a", 1, JOB_ERR_RUNTIME_ERROR, "boom");
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_ISOLATED);
        breaker_free(b);
}
END_TEST

struct seen {
        char names[8][16];
        enum health h[8];
        char reasons[8][64];
        size_t n;
};

static void collect(const char *name, enum health h, const char *reason, void *ctx)
{
        struct seen *s = ctx;
        ck_assert_uint_lt(s->n, 8);
        snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
        snprintf(s->reasons[s->n], sizeof s->reasons[0], "%s", reason);
        s->h[s->n++] = h;
}

/* Index of name in s, or -1. */
static int find_seen(const struct seen *s, const char *name)
{
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->names[i], name))
                        return (int)i;
        return -1;
}

START_TEST(test_per_name_counts_and_reports)
{
        struct breaker *b = breaker_new(DEGRADE, ISOLATE, 3600 * 1000);
        fail_n(b, "deg", DEGRADE, JOB_ERR_RUNTIME_ERROR, "create failed");
        fail_n(b, "iso", ISOLATE, JOB_ERR_SANDBOX_VIOLATION, "seccomp");
        fail_n(b, "ok", DEGRADE, JOB_ERR_RUNTIME_ERROR, "blip");
        breaker_record(b, "ok", JOB_ERR_NONE, NULL, false);
        breaker_record(b, "fine", JOB_ERR_ALGORITHM_FAILED, "exit 1", false);

        /* One algorithm's failures are its own. */
        ck_assert_int_eq(breaker_state(b, "ok"), HEALTH_HEALTHY);
        ck_assert_int_eq(breaker_state(b, "never"), HEALTH_HEALTHY);
        ck_assert(admit(b, "never", 9, NULL));
        struct err err = ERR_INIT;
        ck_assert_int_eq(breaker_check_submit(b, "never", &err), 0);
        json_t *o = json_of(b, "never", "healthy", 0);
        ck_assert(json_is_null(json_object_get(o, "reason")));
        json_decref(o);

        size_t c[4];
        breaker_counts(b, c);
        ck_assert_uint_eq(c[HEALTH_DEGRADED], 1);
        ck_assert_uint_eq(c[HEALTH_ISOLATED], 1);
        ck_assert_uint_eq(c[HEALTH_PROBING], 0);
        /* "ok", and "fine" if an algorithm that never failed is counted */
        ck_assert_uint_ge(c[HEALTH_HEALTHY], 1);
        ck_assert_uint_le(c[HEALTH_HEALTHY], 2);

        struct seen s = { .n = 0 };
        breaker_foreach_unhealthy(b, collect, &s);
        ck_assert_uint_eq(s.n, 2);
        int d = find_seen(&s, "deg"), i = find_seen(&s, "iso");
        ck_assert_int_ge(d, 0);
        ck_assert_int_ge(i, 0);
        ck_assert_int_eq(s.h[d], HEALTH_DEGRADED);
        ck_assert_str_eq(s.reasons[d], "runtime_error: create failed");
        ck_assert_int_eq(s.h[i], HEALTH_ISOLATED);
        ck_assert_str_eq(s.reasons[i], "sandbox_violation: seccomp");

        breaker_free(b);

        /* Once the cool-down is over an isolated one reports as probing. */
        b = new_breaker();
        fail_n(b, "iso", ISOLATE, JOB_ERR_SANDBOX_VIOLATION, "seccomp");
        wait_probing(b, "iso");
        breaker_counts(b, c);
        ck_assert_uint_eq(c[HEALTH_ISOLATED], 0);
        ck_assert_uint_eq(c[HEALTH_PROBING], 1);
        s.n = 0;
        breaker_foreach_unhealthy(b, collect, &s);
        ck_assert_uint_eq(s.n, 1);
        ck_assert_str_eq(s.names[0], "iso");
        ck_assert_int_eq(s.h[0], HEALTH_PROBING);
        breaker_free(b);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("breaker");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);   /* above the bounded waits for the cool-down */
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_degraded_after_failures_in_a_row);
        tcase_add_test(tc, test_other_outcomes_end_the_row);
        tcase_add_test(tc, test_cancelled_and_interrupted_count_neither_way);
        tcase_add_test(tc, test_isolated_refuses);
        tcase_add_test(tc, test_one_probe_after_cooldown);
        tcase_add_test(tc, test_probe_abandoned);
        tcase_add_test(tc, test_isolate_at_once);
        tcase_add_test(tc, test_per_name_counts_and_reports);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
