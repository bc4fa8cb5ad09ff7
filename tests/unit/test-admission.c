/* test-admission.c - who may start: per-plugin limits, the memory budget
 * and the job that holds its line, the circuit breaker; and that a job held
 * back by its plugin or its breaker never holds the line for everybody. */
#include "base/util.h"
#include "jobs/admission.h"
#include "jobs/breaker.h"
#include "jobs/job.h"
#include "testutil.h"

static struct limits DEFAULTS = { .cpu_cores = 1, .memory_mb = 256, .pids = 64, .disk_mb = 16, .timeout_seconds = 30 };

/* A manifest on the stack for jobs of `name`: jobs hold references, the
 * test's own keeps it alive. */
static struct manifest plugin(const char *name, int64_t memory_mb, int64_t max_concurrent)
{
        static char *cmd[] = { (char *)"/bin/x", NULL };
        return (struct manifest){ .refs = 1, .name = (char *)(uintptr_t)name, .version = (char *)"1.0.0", .command = cmd,
                                  .resources = { .memory_mb = memory_mb }, .max_concurrent = max_concurrent };
}

/* A job as the queue offers it (queued). */
static struct job *queued(struct manifest *m)
{
        struct job *j = job_new(m, PRIO_NORMAL, 10, NULL);
        j->queued = true;
        return j;
}

START_TEST(test_plugin_limit_and_memory)
{
        struct breaker *b = breaker_new(3, 5, 60000);
        struct admission *a = admission_new(100, &DEFAULTS, b);
        struct manifest one = plugin("one", 10, 1), big = plugin("big", 80, 0);
        struct job *o1 = queued(&one), *o2 = queued(&one), *b1 = queued(&big), *b2 = queued(&big);
        ck_assert(admission_try(o1, a));
        ck_assert(!admission_try(o2, a));   /* max_concurrent 1 */
        ck_assert(admission_try(b1, a));    /* 90 of 100 */
        ck_assert(!admission_try(b2, a));   /* does not fit: waits, holds the line */
        ck_assert_uint_eq(admission_running(a), 2);
        int64_t used, pool;
        admission_memory(a, &used, &pool);
        ck_assert_int_eq(used, 90);
        ck_assert_int_eq(pool, 100);
        admission_release(a, o1);
        /* o2's plugin is free now, and it fits, but b2 holds the line. */
        ck_assert(!admission_try(o2, a));
        admission_release(a, b1);
        ck_assert(admission_try(b2, a));
        ck_assert(admission_try(o2, a));
        admission_release(a, b2);
        admission_release(a, o2);
        ck_assert_uint_eq(admission_running(a), 0);
        job_unref(o1);
        job_unref(o2);
        job_unref(b1);
        job_unref(b2);
        admission_free(a);
        breaker_free(b);
}
END_TEST

/* A job as the queue offers it, at place seq of its order (qseq; the
 * others here all have 0 and tie, each behind a waiter). */
static struct job *queued_at(struct manifest *m, enum job_priority prio, uint64_t seq)
{
        struct job *j = job_new(m, prio, 10, NULL);
        j->queued = true;
        j->qseq = seq;
        return j;
}

/* The line holds back only the jobs behind its holder in queue order
 * (priority, then age): a higher-priority job that came later and fits
 * starts; one that does not fit takes the line. */
START_TEST(test_line_is_held_in_queue_order)
{
        struct breaker *b = breaker_new(3, 5, 60000);
        struct admission *a = admission_new(100, &DEFAULTS, b);
        struct manifest big = plugin("big", 60, 0), small = plugin("small", 20, 0), mid = plugin("mid", 30, 0),
                        tiny = plugin("tiny", 10, 0);
        struct job *r1 = queued_at(&big, PRIO_NORMAL, 1), *w = queued_at(&big, PRIO_LOW, 2),
                   *h = queued_at(&small, PRIO_HIGH, 3), *l = queued_at(&tiny, PRIO_LOW, 4),
                   *h2 = queued_at(&mid, PRIO_HIGH, 5);
        ck_assert(admission_try(r1, a));    /* 60 of 100 */
        ck_assert(!admission_try(w, a));    /* 120: waits, holds the line */
        ck_assert(admission_try(h, a));     /* ahead of w: 80 of 100 */
        ck_assert(!admission_try(l, a));    /* fits (90), but behind w */
        ck_assert(!admission_try(h2, a));   /* 110: ahead of w, takes the line */
        admission_release(a, r1);           /* 20 of 100 */
        ck_assert(!admission_try(w, a));    /* fits (80), but behind h2 now */
        ck_assert(!admission_try(l, a));
        ck_assert(admission_try(h2, a));    /* 50 of 100 */
        ck_assert(!admission_try(w, a));    /* 110: holds the line again */
        ck_assert(!admission_try(l, a));    /* fits (60), but behind w */
        admission_release(a, h);            /* 30 of 100 */
        ck_assert(admission_try(w, a));     /* 90 of 100 */
        ck_assert(admission_try(l, a));     /* 100 of 100 */
        admission_release(a, h2);
        admission_release(a, w);
        admission_release(a, l);
        ck_assert_uint_eq(admission_running(a), 0);
        job_unref(r1);
        job_unref(w);
        job_unref(h);
        job_unref(l);
        job_unref(h2);
        admission_free(a);
        breaker_free(b);
}
END_TEST

/* A cancelled waiter frees the line. */
START_TEST(test_cancelled_waiter_frees_the_line)
{
        struct breaker *b = breaker_new(3, 5, 60000);
        struct admission *a = admission_new(100, &DEFAULTS, b);
        struct manifest big = plugin("big", 80, 0), small = plugin("small", 10, 0);
        struct job *b1 = queued(&big), *b2 = queued(&big), *s1 = queued(&small);
        ck_assert(admission_try(b1, a));
        ck_assert(!admission_try(b2, a));
        ck_assert(!admission_try(s1, a));   /* it fits, but behind the line */
        b2->queued = false;                 /* what queue_remove does */
        ck_assert(admission_try(s1, a));
        admission_release(a, b1);
        admission_release(a, s1);
        job_unref(b1);
        job_unref(b2);
        job_unref(s1);
        admission_free(a);
        breaker_free(b);
}
END_TEST

/* The reviewer's case: pool 100; `a` degraded with a1 running; c1 running;
 * a2 does not fit and could not run anyway (degraded, a1 busy): it must not
 * hold the line, or b1 (which fits once c1 ends) waits for a1 too. */
START_TEST(test_breaker_held_job_does_not_hold_the_line)
{
        struct breaker *b = breaker_new(2, 10, 60000);
        struct admission *a = admission_new(100, &DEFAULTS, b);
        for (int i = 0; i < 2; i++)
                breaker_record(b, "a", JOB_ERR_RUNTIME_ERROR, "injected", false);
        ck_assert_int_eq(breaker_state(b, "a"), HEALTH_DEGRADED);
        struct manifest ma = plugin("a", 30, 0), mb = plugin("b", 30, 0), mc = plugin("c", 60, 0);
        struct job *a1 = queued(&ma), *a2 = queued(&ma), *b1 = queued(&mb), *c1 = queued(&mc);
        ck_assert(admission_try(a1, a));
        ck_assert(admission_try(c1, a));     /* 90 of 100 */
        ck_assert(!admission_try(a2, a));    /* degraded: one at a time */
        ck_assert(!admission_try(b1, a));    /* does not fit yet */
        admission_release(a, c1);            /* 30 of 100 */
        ck_assert(!admission_try(a2, a));
        ck_assert(admission_try(b1, a));
        admission_release(a, a1);
        admission_release(a, b1);
        ck_assert(admission_try(a2, a));
        admission_release(a, a2);
        job_unref(a1);
        job_unref(a2);
        job_unref(b1);
        job_unref(c1);
        admission_free(a);
        breaker_free(b);
}
END_TEST

/* An isolated algorithm's jobs wait; once probing, exactly one is the
 * probe. */
START_TEST(test_isolated_then_probe)
{
        struct breaker *b = breaker_new(1, 1, 30);
        struct admission *a = admission_new(1000, &DEFAULTS, b);
        breaker_record(b, "x", JOB_ERR_SANDBOX_VIOLATION, "killed by seccomp", false);
        struct manifest mx = plugin("x", 10, 0);
        struct job *x1 = queued(&mx), *x2 = queued(&mx);
        ck_assert(!admission_try(x1, a));
        for (int i = 0; i < 200 && breaker_state(b, "x") != HEALTH_PROBING; i++)
                usleep(10000);
        ck_assert_int_eq(breaker_state(b, "x"), HEALTH_PROBING);
        ck_assert(admission_try(x1, a));
        ck_assert(x1->breaker_probe);
        ck_assert(!admission_try(x2, a));    /* one probe only */
        admission_release(a, x1);
        breaker_record(b, "x", JOB_ERR_NONE, NULL, true);
        ck_assert(admission_try(x2, a));
        ck_assert(!x2->breaker_probe);
        admission_release(a, x2);
        job_unref(x1);
        job_unref(x2);
        admission_free(a);
        breaker_free(b);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("admission");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_plugin_limit_and_memory);
        tcase_add_test(tc, test_line_is_held_in_queue_order);
        tcase_add_test(tc, test_cancelled_waiter_frees_the_line);
        tcase_add_test(tc, test_breaker_held_job_does_not_hold_the_line);
        tcase_add_test(tc, test_isolated_then_probe);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
