/* test-queue.c - the bounded priority queue, the job state machine and the
 * in-memory store: order across and within lanes, what the admission
 * predicate is shown, capacity, removal and the wake-ups it owes, close,
 * waiters, eviction and listing. */
#include "testutil.h"

#include <pthread.h>

#include <jansson.h>

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
        return job_new(m, "{}", 2, p, 5, NULL);
}

/* Pop with no predicate and check it is `want`. */
static void pop_expect(struct queue *q, struct job *want)
{
        struct job *got = queue_pop(q, NULL, NULL);
        ck_assert_ptr_eq(got, want);
        job_unref(got);
}

/* The job's API object, parsed (caller frees). */
static json_t *rendered(struct job *j, bool with_result)
{
        size_t len = 0;
        _cleanup_free_ char *text = job_render(j, with_result, &len);
        ck_assert_uint_eq(len, strlen(text));
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o != NULL, "job_render: %s: %s", jerr.text, text);
        return o;
}

/* finish j as succeeded with a copy of the JSON text `result` */
static bool finish_ok(struct job *j, const char *result)
{
        return job_finish(j, JOB_ERR_NONE, NULL, xstrdup(result), strlen(result), 0, NULL);
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
        for (size_t i = 0; i < 4; i++)
                pop_expect(q, want[i]);
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
        pop_expect(q, c);
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

/* A predicate that records what it was shown and accepts only jobs of one
 * algorithm (NULL: any).  Runs under the queue lock; `calls` is read by
 * other threads. */
struct offers {
        const char *accept;
        struct job *refuse;     /* refused whatever its algorithm */
        int calls;              /* atomic */
        struct job *seen[8];
};

static bool offered(struct job *j, void *ctx)
{
        struct offers *o = ctx;
        int n = __atomic_fetch_add(&o->calls, 1, __ATOMIC_SEQ_CST);
        if (n < 8)
                o->seen[n] = j;
        if (j == o->refuse)
                return false;
        return !o->accept || !strcmp(j->manifest->name, o->accept);
}

/* Push n jobs of m at priority p; returns a reference to the first. */
static struct job *push_n(struct queue *q, struct manifest *m, enum job_priority p, int n)
{
        struct job *first = NULL;
        struct err err = ERR_INIT;
        for (int i = 0; i < n; i++) {
                struct job *j = new_job(m, p);
                ck_assert_msg(queue_push(q, j, &err) == 0, "%s", err.msg);
                if (!first)
                        first = job_ref(j);
                job_unref(j);
        }
        return first;
}

START_TEST(test_only_lane_heads_are_offered)
{
        /* 1,000 jobs of one algorithm are one lane: a pop shows the
         * predicate its head, not the whole queue. */
        struct manifest *ma = fake_manifest("a", 0), *mb = fake_manifest("b", 0), *mc = fake_manifest("c", 0);
        struct queue *q = queue_new(3000);
        struct err err = ERR_INIT;
        struct job *first_a = push_n(q, ma, PRIO_NORMAL, 1000);
        struct offers o = { 0 };
        struct job *got = queue_pop(q, offered, &o);
        ck_assert_ptr_eq(got, first_a);
        ck_assert_int_eq(o.calls, 1);
        job_unref(got);
        job_unref(first_a);

        /* Three lanes, two of them long and refused: one offer per lane
         * head, in priority order, and only the heads. */
        struct job *first_b = push_n(q, mb, PRIO_HIGH, 1000);
        struct job *c = new_job(mc, PRIO_LOW);
        ck_assert_int_eq(queue_push(q, c, &err), 0);
        o = (struct offers){ .accept = "c" };
        got = queue_pop(q, offered, &o);
        ck_assert_ptr_eq(got, c);
        job_unref(got);
        ck_assert_int_eq(o.calls, 3);
        ck_assert_ptr_eq(o.seen[0], first_b);
        ck_assert_str_eq(o.seen[1]->manifest->name, "a");
        ck_assert_ptr_eq(o.seen[2], c);
        ck_assert_uint_eq(queue_length(q), 1999);
        job_unref(first_b), job_unref(c);
        queue_free(q);
        manifest_unref(ma), manifest_unref(mb), manifest_unref(mc);
}
END_TEST

START_TEST(test_refused_lane_does_not_block_others)
{
        /* Same priority, the refused lane first and long: the later lane's
         * jobs still come out, in their order. */
        struct manifest *ma = fake_manifest("a", 1), *mb = fake_manifest("b", 0);
        struct queue *q = queue_new(100);
        struct err err = ERR_INIT;
        struct job *a[10], *b[3];
        for (int i = 0; i < 10; i++)
                ck_assert_int_eq(queue_push(q, a[i] = new_job(ma, PRIO_NORMAL), &err), 0);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(queue_push(q, b[i] = new_job(mb, PRIO_NORMAL), &err), 0);
        for (int i = 0; i < 3; i++) {
                struct offers o = { .accept = "b" };
                struct job *got = queue_pop(q, offered, &o);
                ck_assert_ptr_eq(got, b[i]);
                ck_assert_int_eq(o.calls, 2);   /* a's head, then b's */
                ck_assert_ptr_eq(o.seen[0], a[0]);
                job_unref(got);
        }
        /* a waited, whole: once admitted it comes out from its head. */
        pop_expect(q, a[0]);
        ck_assert_uint_eq(queue_length(q), 9);
        for (int i = 0; i < 10; i++)
                job_unref(a[i]);
        for (int i = 0; i < 3; i++)
                job_unref(b[i]);
        queue_free(q);
        manifest_unref(ma), manifest_unref(mb);
}
END_TEST

static void record(struct job *j, void *ctx)
{
        struct job ***w = ctx;
        *(*w)++ = j;   /* keeps the reference handed over */
}

START_TEST(test_order_across_lanes)
{
        /* Priority first, then arrival, across lanes: as one queue would.
         * A lane's place moves with its head (a's normal lane sorts by
         * a1, then by a6 once a1 has gone). */
        struct manifest *ma = fake_manifest("a", 0), *mb = fake_manifest("b", 0), *mc = fake_manifest("c", 0);
        struct queue *q = queue_new(100);
        struct err err = ERR_INIT;
        struct job *a1 = new_job(ma, PRIO_NORMAL), *b2 = new_job(mb, PRIO_LOW), *b3 = new_job(mb, PRIO_NORMAL),
                   *a4 = new_job(ma, PRIO_HIGH), *c5 = new_job(mc, PRIO_NORMAL), *a6 = new_job(ma, PRIO_NORMAL),
                   *b7 = new_job(mb, PRIO_HIGH), *c8 = new_job(mc, PRIO_LOW);
        struct job *all[] = { a1, b2, b3, a4, c5, a6, b7, c8 };
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                ck_assert_int_eq(queue_push(q, all[i], &err), 0);
        struct job *want[] = { a4, b7, a1, b3, c5, a6, b2, c8 };
        for (size_t i = 0; i < 4; i++)
                pop_expect(q, want[i]);
        /* queue_close hands the rest over in the same order. */
        struct job *rest[8] = { NULL }, **w = rest;
        queue_close(q, record, &w);
        ck_assert_int_eq(w - rest, 4);
        for (size_t i = 0; i < 4; i++) {
                ck_assert_ptr_eq(rest[i], want[4 + i]);
                job_unref(rest[i]);
        }
        ck_assert_uint_eq(queue_length(q), 0);
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                job_unref(all[i]);
        queue_free(q);
        manifest_unref(ma), manifest_unref(mb), manifest_unref(mc);
}
END_TEST

START_TEST(test_remove_keeps_lane_order)
{
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(100);
        struct err err = ERR_INIT;
        struct job *j[7];
        for (int i = 0; i < 7; i++)
                ck_assert_int_eq(queue_push(q, j[i] = new_job(m, PRIO_NORMAL), &err), 0);
        /* the middle, the head, the tail */
        ck_assert(queue_remove(q, j[3]));
        ck_assert(queue_remove(q, j[0]));
        ck_assert(queue_remove(q, j[6]));
        ck_assert(!queue_remove(q, j[3]));
        ck_assert_uint_eq(queue_length(q), 4);
        /* A new arrival goes behind what is left. */
        struct job *late = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(queue_push(q, late, &err), 0);
        struct job *want[] = { j[1], j[2], j[4], j[5], late };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                pop_expect(q, want[i]);
        ck_assert_uint_eq(queue_length(q), 0);

        /* The only job of a lane: the lane goes, and comes back on a push. */
        struct job *solo = new_job(m, PRIO_LOW);
        ck_assert_int_eq(queue_push(q, solo, &err), 0);
        ck_assert(queue_remove(q, solo));
        ck_assert_int_eq(queue_push(q, solo, &err), 0);
        pop_expect(q, solo);
        for (int i = 0; i < 7; i++)
                job_unref(j[i]);
        job_unref(late), job_unref(solo);
        queue_free(q);
        manifest_unref(m);
}
END_TEST

struct refusing_popper {
        struct queue *q;
        struct offers o;
        struct job *got;
};

static void *refusing_pop_thread(void *arg)
{
        struct refusing_popper *p = arg;
        p->got = queue_pop(p->q, offered, &p->o);
        return NULL;
}

/* Wait (bounded) until *counter reaches n; false on time-out. */
static bool wait_for(int *counter, int n)
{
        for (int i = 0; i < 10000; i++) {
                if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= n)
                        return true;
                usleep(1000);
        }
        return false;
}

/* Join t within about ten seconds; false (thread left running) if not. */
static bool join_within(pthread_t t)
{
        for (int i = 0; i < 10000; i++) {
                if (pthread_tryjoin_np(t, NULL) == 0)
                        return true;
                usleep(1000);
        }
        return false;
}

START_TEST(test_remove_wakes_blocked_popper)
{
        /* The head a worker refuses holds its lane; taking it out of the
         * queue (a cancel) must wake the worker for the job behind it. */
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(10);
        struct err err = ERR_INIT;
        struct job *held = new_job(m, PRIO_NORMAL), *next = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(queue_push(q, held, &err), 0);
        ck_assert_int_eq(queue_push(q, next, &err), 0);
        struct refusing_popper p = { .q = q, .o = { .refuse = held } };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, refusing_pop_thread, &p), 0);
        /* Once it has refused the head it waits: `next` is never offered
         * while `held` is in front of it. */
        ck_assert(wait_for(&p.o.calls, 1));
        ck_assert(queue_remove(q, held));
        bool joined = join_within(t);
        if (!joined) {
                queue_close(q, NULL, NULL);   /* let the thread go before failing */
                pthread_join(t, NULL);
        }
        ck_assert_msg(joined, "queue_remove did not wake the popper");
        ck_assert_ptr_eq(p.got, next);
        /* held as often as the thread woke before the removal, next last. */
        int calls = p.o.calls;
        ck_assert_int_ge(calls, 2);
        ck_assert_int_le(calls, 8);
        for (int i = 0; i < calls - 1; i++)
                ck_assert_ptr_eq(p.o.seen[i], held);
        ck_assert_ptr_eq(p.o.seen[calls - 1], next);
        job_unref(p.got);
        job_unref(held), job_unref(next);
        queue_free(q);
        manifest_unref(m);
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
        ck_assert(job_finish(j, JOB_ERR_TIMEOUT, "took too long", NULL, 0, -1, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(removed_calls, 0);
        ck_assert(!job_remove_waiter(j, w));
        /* Final is final: a second finish changes nothing. */
        ck_assert(!finish_ok(j, "true"));   /* the result is freed */
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_ptr_null(job_add_waiter(j, count_call, &calls));
        ck_assert_ptr_null(j->result);
        json_t *o = rendered(j, true);
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

START_TEST(test_render_splices_result_text)
{
        /* The result is kept and shown as the text the algorithm wrote;
         * listings may leave it out. */
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = job_new(m, "{\"n\": 1}", 8, PRIO_HIGH, 7, "ci");
        ck_assert_str_eq(j->params, "{\"n\": 1}");
        ck_assert_uint_eq(j->params_len, 8);
        ck_assert(job_start(j, "runc"));
        static const char result[] = "{\"b\": 1.50, \"s\": \"\\u00e9\"}";
        ck_assert(finish_ok(j, result));
        ck_assert_uint_eq(j->result_bytes, strlen(result));
        /* A final job no longer holds its parameters. */
        ck_assert_ptr_null(j->params);

        _cleanup_free_ char *text = job_render(j, true, NULL);
        _cleanup_free_ char *want = xasprintf(",\"result\":%s}", result);
        ck_assert_msg(strlen(text) > strlen(want) && !strcmp(text + strlen(text) - strlen(want), want), "%s",
                      text);
        json_t *o = rendered(j, true);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "succeeded");
        ck_assert_str_eq(json_string_value(json_object_get(o, "priority")), "high");
        ck_assert_str_eq(json_string_value(json_object_get(o, "submitted_by")), "ci");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout_seconds")), 7);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "result"), "s")), "\xc3\xa9");
        ck_assert(json_is_null(json_object_get(o, "error")));
        json_decref(o);
        o = rendered(j, false);
        ck_assert(json_is_null(json_object_get(o, "result")));
        json_decref(o);
        job_unref(j);
        manifest_unref(m);
}
END_TEST

/* store_list's page, parsed (caller frees). */
static json_t *listed(struct store *s, const struct store_filter *f, size_t max_bytes)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(store_list(s, f, max_bytes, &text, &len, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(len, strlen(text));
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o != NULL, "store_list: %s: %s", jerr.text, text);
        return o;
}

START_TEST(test_store_evicts_oldest_final_and_lists)
{
        char *dir = tu_test_dir();   /* under the fixture's base: gone even if this fails */
        struct manifest *m = fake_manifest("a", 0), *m2 = fake_manifest("b", 0);
        struct store *s = store_new(2, 1 << 20, dir);
        struct job *jobs[4];
        char *logs[3][2] = { { NULL } };
        for (int i = 0; i < 4; i++) {
                jobs[i] = new_job(i == 3 ? m2 : m, PRIO_NORMAL);
                if (i < 3) {
                        /* Each run has its log, by run id; jobs[0] ran twice. */
                        ck_assert(job_start(jobs[i], "runc"));
                        for (int a = 0; a < (i == 0 ? 2 : 1); a++) {
                                char run_id[RUN_ID_MAX];
                                job_attempt_begin(jobs[i], 1000, 1000, run_id);
                                job_attempt_end(jobs[i], a == 0 && i == 0 ? JOB_ERR_RUNTIME_ERROR : JOB_ERR_NONE,
                                                NULL);
                                logs[i][a] = store_log_path(s, run_id);
                                free(tu_write(dir, strrchr(logs[i][a], '/') + 1, "x"));
                        }
                        finish_ok(jobs[i], "{}");
                }
                store_add(s, jobs[i]);
        }
        /* jobs[0] (oldest final) is gone with the logs of both its runs;
         * the others keep theirs; the active jobs[3] stays. */
        struct job *g = store_get(s, jobs[0]->id);
        ck_assert_ptr_null(g);
        ck_assert_int_ne(access(logs[0][0], F_OK), 0);
        ck_assert_int_ne(access(logs[0][1], F_OK), 0);
        ck_assert_int_eq(access(logs[1][0], F_OK), 0);
        ck_assert_int_eq(access(logs[2][0], F_OK), 0);
        for (int i = 0; i < 3; i++)
                free(logs[i][0]), free(logs[i][1]);
        for (int i = 1; i < 4; i++) {
                g = store_get(s, jobs[i]->id);
                ck_assert_ptr_eq(g, jobs[i]);
                job_unref(g);
        }
        struct store_filter f = { .status = -1, .limit = 2 };
        struct err err = ERR_INIT;
        json_t *list = listed(s, &f, SIZE_MAX);
        json_t *arr = json_object_get(list, "jobs");
        ck_assert_uint_eq(json_array_size(arr), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), jobs[3]->id);
        ck_assert_str_eq(json_string_value(json_object_get(list, "next")), jobs[2]->id);
        json_decref(list);
        f.after = jobs[2]->id;
        list = listed(s, &f, SIZE_MAX);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
        ck_assert(json_is_null(json_object_get(list, "next")));
        json_decref(list);
        f = (struct store_filter){ .status = JOB_QUEUED, .algorithm = "b", .limit = 10 };
        list = listed(s, &f, SIZE_MAX);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
        json_decref(list);
        /* A byte budget ends the page early (after at least one job), and
         * `next` goes on from the last job shown. */
        f = (struct store_filter){ .status = -1, .limit = 10 };
        list = listed(s, &f, 1);
        arr = json_object_get(list, "jobs");
        ck_assert_uint_eq(json_array_size(arr), 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), jobs[3]->id);
        ck_assert_str_eq(json_string_value(json_object_get(list, "next")), jobs[3]->id);
        json_decref(list);
        f = (struct store_filter){ .status = -1, .after = "nope", .limit = 10 };
        char *text = (char *)1;
        size_t len = 0;
        ck_assert_int_eq(store_list(s, &f, SIZE_MAX, &text, &len, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        ck_assert_ptr_eq(text, (char *)1);
        for (int i = 0; i < 4; i++)
                job_unref(jobs[i]);
        store_free(s);
        manifest_unref(m), manifest_unref(m2);
        free(dir);
}
END_TEST

START_TEST(test_store_bounds_kept_result_bytes)
{
        char *dir = tu_test_dir();
        struct manifest *m = fake_manifest("a", 0);
        /* Room for two results of ~400 bytes, not three. */
        struct store *s = store_new(100, 1000, dir);
        struct job *jobs[4];
        for (int i = 0; i < 4; i++) {
                jobs[i] = new_job(m, PRIO_NORMAL);
                store_add(s, jobs[i]);   /* queued: counted only when final */
        }
        char big[402];   /* a JSON string of 401 bytes */
        memset(big, 'x', sizeof big - 1);
        big[0] = big[sizeof big - 2] = '"';
        big[sizeof big - 1] = '\0';
        for (int i = 0; i < 3; i++) {
                ck_assert(finish_ok(jobs[i], big));
                ck_assert_uint_eq(jobs[i]->result_bytes, 401);   /* the text as kept, no NUL */
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
        free(dir);
}
END_TEST

START_TEST(test_store_evicts_in_finishing_order)
{
        /* A long job created first and finished last is the newest result. */
        char *dir = tu_test_dir();
        struct manifest *m = fake_manifest("a", 0);
        struct store *s = store_new(2, 1 << 20, dir);
        struct job *long_job = new_job(m, PRIO_NORMAL), *b = new_job(m, PRIO_NORMAL),
                   *c = new_job(m, PRIO_NORMAL);
        struct job *all[] = { long_job, b, c };
        for (int i = 0; i < 3; i++)
                store_add(s, all[i]);
        struct job *order[] = { b, c, long_job };
        for (int i = 0; i < 3; i++) {
                ck_assert(finish_ok(order[i], "{}"));
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
        free(dir);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("queue");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);   /* above the 10 s bounds of the thread tests */
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_test(tc, test_priority_order_and_fifo);
        tcase_add_test(tc, test_full_queue_is_busy_and_keeps_jobs);
        tcase_add_test(tc, test_admission_skips_ineligible);
        tcase_add_test(tc, test_only_lane_heads_are_offered);
        tcase_add_test(tc, test_refused_lane_does_not_block_others);
        tcase_add_test(tc, test_order_across_lanes);
        tcase_add_test(tc, test_remove_keeps_lane_order);
        tcase_add_test(tc, test_remove_wakes_blocked_popper);
        tcase_add_test(tc, test_close_wakes_workers_and_hands_back_jobs);
        tcase_add_test(tc, test_job_states_and_waiters);
        tcase_add_test(tc, test_render_splices_result_text);
        tcase_add_test(tc, test_store_evicts_oldest_final_and_lists);
        tcase_add_test(tc, test_store_bounds_kept_result_bytes);
        tcase_add_test(tc, test_store_evicts_in_finishing_order);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
