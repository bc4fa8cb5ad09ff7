/* test-queue.c - the bounded priority queue, the job state machine and the
 * in-memory store: order, capacity, removal, admission, close, waiters,
 * eviction and listing. */
#include "testutil.h"

#include <pthread.h>

#include "job.h"
#include "queue.h"
#include "store.h"
#include "util.h"

static struct manifest *fake_manifest(const char *name, int64_t max_concurrent)
{
        struct manifest *m = xcalloc(1, sizeof *m);
        m->refs = 1;
        m->name = xstrdup(name);
        m->version = xstrdup("1.0.0");
        m->max_concurrent = max_concurrent;
        return m;
}

static struct job *new_job(struct manifest *m, enum job_priority p)
{
        json_t *params = json_object();
        struct job *j = job_new(m, params, p, 5);
        json_decref(params);
        return j;
}

START_TEST(test_priority_order_and_fifo)
{
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(10);
        struct job *low = new_job(m, PRIO_LOW), *n1 = new_job(m, PRIO_NORMAL),
                   *n2 = new_job(m, PRIO_NORMAL), *high = new_job(m, PRIO_HIGH);
        struct err err = ERR_INIT;
        ck_assert_int_eq(queue_push(q, low, &err), 0);
        ck_assert_int_eq(queue_push(q, n1, &err), 0);
        ck_assert_int_eq(queue_push(q, n2, &err), 0);
        ck_assert_int_eq(queue_push(q, high, &err), 0);
        ck_assert_uint_eq(queue_length(q), 4);
        struct job *want[] = { high, n1, n2, low };
        for (size_t i = 0; i < 4; i++) {
                struct job *got = queue_pop(q, NULL, NULL);
                ck_assert_ptr_eq(got, want[i]);
                job_unref(got);
        }
        ck_assert_uint_eq(queue_length(q), 0);
        job_unref(low), job_unref(n1), job_unref(n2), job_unref(high);
        queue_free(q);
        manifest_unref(m);
}
END_TEST

START_TEST(test_full_queue_is_busy_and_keeps_jobs)
{
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(2);
        struct job *a = new_job(m, PRIO_NORMAL), *b = new_job(m, PRIO_NORMAL), *c = new_job(m, PRIO_HIGH);
        struct err err = ERR_INIT;
        ck_assert_int_eq(queue_push(q, a, &err), 0);
        ck_assert_int_eq(queue_push(q, b, &err), 0);
        ck_assert_int_eq(queue_push(q, c, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        ck_assert_uint_eq(queue_length(q), 2);
        /* Removing one makes room again; the removed one is not popped. */
        ck_assert(queue_remove(q, a));
        ck_assert(!queue_remove(q, a));
        ck_assert_int_eq(queue_push(q, c, &err), 0);
        struct job *first = queue_pop(q, NULL, NULL);
        ck_assert_ptr_eq(first, c);
        job_unref(first);
        job_unref(a), job_unref(b), job_unref(c);
        queue_free(q);   /* drops b's queue reference */
        manifest_unref(m);
}
END_TEST

static bool only_b(struct job *j, void *ctx)
{
        return !strcmp(j->manifest->name, ctx);
}

START_TEST(test_admission_skips_ineligible)
{
        struct manifest *ma = fake_manifest("a", 1), *mb = fake_manifest("b", 0);
        struct queue *q = queue_new(10);
        struct job *a = new_job(ma, PRIO_HIGH), *b = new_job(mb, PRIO_LOW);
        struct err err = ERR_INIT;
        queue_push(q, a, &err);
        queue_push(q, b, &err);
        /* A plugin at its limit must not block other plugins behind it. */
        struct job *got = queue_pop(q, only_b, (void *)"b");
        ck_assert_ptr_eq(got, b);
        job_unref(got);
        ck_assert_uint_eq(queue_length(q), 1);
        job_unref(a), job_unref(b);
        queue_free(q);
        manifest_unref(ma), manifest_unref(mb);
}
END_TEST

struct popper {
        struct queue *q;
        struct job *got;
};

static void *pop_thread(void *arg)
{
        struct popper *p = arg;
        p->got = queue_pop(p->q, NULL, NULL);
        return NULL;
}

static void collect(struct job *j, void *ctx)
{
        (*(int *)ctx)++;
        job_unref(j);
}

START_TEST(test_close_wakes_workers_and_hands_back_jobs)
{
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(10);
        struct popper p = { .q = q };
        pthread_t t;
        pthread_create(&t, NULL, pop_thread, &p);
        usleep(50 * 1000);
        int handed = 0;
        queue_close(q, collect, &handed);
        pthread_join(t, NULL);
        ck_assert_ptr_null(p.got);
        struct job *j = new_job(m, PRIO_NORMAL);
        struct err err = ERR_INIT;
        ck_assert_int_eq(queue_push(q, j, &err), -1);
        ck_assert_int_eq(err.code, ERR_UNAVAILABLE);
        ck_assert_int_eq(handed, 0);
        job_unref(j);
        queue_free(q);

        q = queue_new(10);
        j = new_job(m, PRIO_NORMAL);
        queue_push(q, j, &err);
        queue_close(q, collect, &handed);
        ck_assert_int_eq(handed, 1);
        job_unref(j);
        queue_free(q);
        manifest_unref(m);
}
END_TEST

static void count_call(void *ctx)
{
        (*(int *)ctx)++;
}

START_TEST(test_job_states_and_waiters)
{
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(strlen(j->id), JOB_ID_LEN);
        ck_assert_int_eq(job_get_status(j), JOB_QUEUED);
        int calls = 0, removed_calls = 0;
        struct job_waiter *w = job_add_waiter(j, count_call, &calls);
        struct job_waiter *w2 = job_add_waiter(j, count_call, &removed_calls);
        ck_assert_ptr_nonnull(w);
        ck_assert(job_remove_waiter(j, w2));
        ck_assert(job_start(j, "runc"));
        ck_assert_int_ge(job_cancel_fd(j), 0);
        ck_assert(!job_start(j, "runc"));
        ck_assert(job_finish(j, JOB_ERR_TIMEOUT, "took too long", NULL, -1, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(removed_calls, 0);
        ck_assert(!job_remove_waiter(j, w));
        /* Final is final: a second finish changes nothing. */
        ck_assert(!job_finish(j, JOB_ERR_NONE, NULL, json_true(), 0, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_ptr_null(job_add_waiter(j, count_call, &calls));
        json_t *o = job_to_json(j);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "failed");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "error"), "code")), "timeout");
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert(json_is_integer(json_object_get(json_object_get(o, "metrics"), "total_ms")));
        json_decref(o);
        job_unref(j);

        /* A queued job that is cancelled never starts. */
        j = new_job(m, PRIO_NORMAL);
        ck_assert(!job_request_cancel(j));
        ck_assert(!job_start(j, "runc"));
        job_unref(j);
        manifest_unref(m);
}
END_TEST

START_TEST(test_store_evicts_oldest_final_and_lists)
{
        char *dir = tu_mkdtemp();
        struct manifest *m = fake_manifest("a", 0), *m2 = fake_manifest("b", 0);
        struct store *s = store_new(2, 1 << 20, dir);
        struct job *jobs[4];
        for (int i = 0; i < 4; i++) {
                jobs[i] = new_job(i == 3 ? m2 : m, PRIO_NORMAL);
                if (i < 3)
                        job_finish(jobs[i], JOB_ERR_NONE, NULL, json_object(), 0, NULL);
                char *log = store_log_path(s, jobs[i]->id);
                free(tu_write(dir, strrchr(log, '/') + 1, "x"));
                free(log);
                store_add(s, jobs[i]);
        }
        /* jobs[0] (oldest final) is gone with its log; the active jobs[3] stays. */
        struct job *g = store_get(s, jobs[0]->id);
        ck_assert_ptr_null(g);
        char *log0 = store_log_path(s, jobs[0]->id);
        ck_assert_int_ne(access(log0, F_OK), 0);
        free(log0);
        for (int i = 1; i < 4; i++) {
                g = store_get(s, jobs[i]->id);
                ck_assert_ptr_eq(g, jobs[i]);
                job_unref(g);
        }
        struct store_filter f = { .status = -1, .limit = 2 };
        json_t *list = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_list_json(s, &f, &list, &err), 0);
        json_t *arr = json_object_get(list, "jobs");
        ck_assert_uint_eq(json_array_size(arr), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), jobs[3]->id);
        ck_assert_str_eq(json_string_value(json_object_get(list, "next")), jobs[2]->id);
        json_decref(list);
        f.after = jobs[2]->id;
        ck_assert_int_eq(store_list_json(s, &f, &list, &err), 0);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
        ck_assert(json_is_null(json_object_get(list, "next")));
        json_decref(list);
        f = (struct store_filter){ .status = JOB_QUEUED, .algorithm = "b", .limit = 10 };
        ck_assert_int_eq(store_list_json(s, &f, &list, &err), 0);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
        json_decref(list);
        f = (struct store_filter){ .status = -1, .after = "nope", .limit = 10 };
        ck_assert_int_eq(store_list_json(s, &f, &list, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        for (int i = 0; i < 4; i++)
                job_unref(jobs[i]);
        store_free(s);
        manifest_unref(m), manifest_unref(m2);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

START_TEST(test_store_bounds_kept_result_bytes)
{
        char *dir = tu_mkdtemp();
        struct manifest *m = fake_manifest("a", 0);
        /* Room for two results of ~400 bytes, not three. */
        struct store *s = store_new(100, 1000, dir);
        struct job *jobs[4];
        for (int i = 0; i < 4; i++) {
                jobs[i] = new_job(m, PRIO_NORMAL);
                store_add(s, jobs[i]);   /* queued: counted only when final */
        }
        char big[400];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        for (int i = 0; i < 3; i++) {
                ck_assert(job_finish(jobs[i], JOB_ERR_NONE, NULL, json_string(big), 0, NULL));
                ck_assert_uint_eq(jobs[i]->result_bytes, sizeof big + 1);   /* quotes, no NUL */
                store_job_final(s, jobs[i]);
                store_job_final(s, jobs[i]);   /* counted once */
        }
        struct job *g = store_get(s, jobs[0]->id);
        ck_assert_ptr_null(g);
        for (int i = 1; i < 4; i++) {
                g = store_get(s, jobs[i]->id);
                ck_assert_ptr_eq(g, jobs[i]);
                job_unref(g);
        }
        /* One result over the whole budget still stays: the newest final job. */
        struct store *tiny = store_new(100, 10, dir);
        store_add(tiny, jobs[1]);
        g = store_get(tiny, jobs[1]->id);
        ck_assert_ptr_eq(g, jobs[1]);
        job_unref(g);
        store_remove(tiny, jobs[1]);
        ck_assert_ptr_null(store_get(tiny, jobs[1]->id));
        ck_assert_uint_eq(store_count(tiny), 0);
        store_free(tiny);
        for (int i = 0; i < 4; i++)
                job_unref(jobs[i]);
        store_free(s);
        manifest_unref(m);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

START_TEST(test_store_evicts_in_finishing_order)
{
        /* A long job created first and finished last is the newest result. */
        char *dir = tu_mkdtemp();
        struct manifest *m = fake_manifest("a", 0);
        struct store *s = store_new(2, 1 << 20, dir);
        struct job *long_job = new_job(m, PRIO_NORMAL), *b = new_job(m, PRIO_NORMAL),
                   *c = new_job(m, PRIO_NORMAL);
        struct job *all[] = { long_job, b, c };
        for (int i = 0; i < 3; i++)
                store_add(s, all[i]);
        struct job *order[] = { b, c, long_job };
        for (int i = 0; i < 3; i++) {
                ck_assert(job_finish(order[i], JOB_ERR_NONE, NULL, json_object(), 0, NULL));
                store_job_final(s, order[i]);
        }
        struct job *g = store_get(s, long_job->id);
        ck_assert_ptr_eq(g, long_job);
        job_unref(g);
        ck_assert_ptr_null(store_get(s, b->id));
        g = store_get(s, c->id);
        ck_assert_ptr_eq(g, c);
        job_unref(g);
        for (int i = 0; i < 3; i++)
                job_unref(all[i]);
        store_free(s);
        manifest_unref(m);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("queue");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_priority_order_and_fifo);
        tcase_add_test(tc, test_full_queue_is_busy_and_keeps_jobs);
        tcase_add_test(tc, test_admission_skips_ineligible);
        tcase_add_test(tc, test_close_wakes_workers_and_hands_back_jobs);
        tcase_add_test(tc, test_job_states_and_waiters);
        tcase_add_test(tc, test_store_evicts_oldest_final_and_lists);
        tcase_add_test(tc, test_store_bounds_kept_result_bytes);
        tcase_add_test(tc, test_store_evicts_in_finishing_order);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
