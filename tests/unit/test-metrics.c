/* test-metrics.c - the Prometheus text while other threads count: in one
 * scrape a histogram's _count is its +Inf bucket, as the format requires. */
#include "testutil.h"

#include <pthread.h>

#include "base/metrics.h"

static volatile int stop;

static void *finisher(void *arg)
{
        (void)arg;
        struct job_metrics m = { .queue_ms = 3, .create_ms = 1, .run_ms = 7, .collect_ms = 1, .total_ms = 12 };
        while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
                metrics_job_finished("alg", JOB_ERR_NONE, &m, true);
        return NULL;
}

/* The value of the first line that starts with prefix. */
static unsigned long long value_of(const char *text, const char *prefix)
{
        const char *p = strstr(text, prefix);
        ck_assert_ptr_nonnull(p);
        return strtoull(p + strlen(prefix), NULL, 10);
}

START_TEST(count_is_the_inf_bucket)
{
        pthread_t t[4];
        for (size_t i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, finisher, NULL), 0);
        struct metrics_gauges g = { .runtime = "runc" };
        int mismatches = 0;
        for (int i = 0; i < 300; i++) {
                char *s = metrics_render(&g);
                if (value_of(s, "edgecd_job_duration_seconds_bucket{phase=\"queue\",le=\"+Inf\"} ") !=
                    value_of(s, "edgecd_job_duration_seconds_count{phase=\"queue\"} "))
                        mismatches++;
                free(s);
        }
        __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
        for (size_t i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        ck_assert_int_eq(mismatches, 0);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("metrics");
        TCase *tc = tcase_create("render");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, count_is_the_inf_bucket);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
