/* test-queue.c - the bounded priority queue, the live job handle and a
 * job record's rendering: order across and within lanes, what the
 * admission predicate is shown, capacity and reserved places, removal and
 * the wake-ups it owes, close, restore; job states, waiters (called by
 * job_wake, not job_finish), requeue; job_snapshot + record_render with
 * the result spliced in; a record's attempts. */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "base/util.h"
#include "jobs/job.h"
#include "jobs/queue.h"
#include "store/record.h"

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
        return job_new(m, p, 5, NULL);
}

/* Pop with no predicate and check it is `want`. */
static void pop_expect(struct queue *q, struct job *want)
{
        struct job *got = queue_pop(q, NULL, NULL);
        ck_assert_ptr_eq(got, want);
        job_unref(got);
}

static int refs_of(struct job *j)
{
        return __atomic_load_n(&j->refs, __ATOMIC_SEQ_CST);
}

/* A record's API object, parsed (caller frees). */
static json_t *rendered_record(const struct job_record *rec, bool with_result)
{
        size_t len = 0;
        _cleanup_free_ char *text = record_render(rec, with_result, &len);
        ck_assert_uint_eq(len, strlen(text));
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o != NULL, "record_render: %s: %s", jerr.text, text);
        return o;
}

/* A live job's API object as it stands (its snapshot: no result), parsed
 * (caller frees). */
static json_t *rendered(struct job *j)
{
        struct job_record rec;
        job_snapshot(j, &rec);
        json_t *o = rendered_record(&rec, true);
        record_clear(&rec);
        return o;
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

START_TEST(test_reserve_counts_places)
{
        /* Reserved places count against the capacity as queued jobs do, so
         * that a job the store has accepted always fits when it is pushed. */
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(3);
        struct err err = ERR_INIT;
        struct job *a = new_job(m, PRIO_NORMAL), *b = new_job(m, PRIO_NORMAL), *c = new_job(m, PRIO_NORMAL),
                   *r = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(queue_reserve(q, 4, &err), -1);   /* more than the whole queue */
        ck_assert_int_eq(err.code, ERR_BUSY);
        ck_assert_int_eq(queue_reserve(q, 2, &err), 0);
        ck_assert_uint_eq(queue_length(q), 0);             /* held, not queued */
        ck_assert_int_eq(queue_push(q, a, &err), 0);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_push(q, b, &err), -1);      /* 1 queued + 2 reserved */
        ck_assert_int_eq(err.code, ERR_BUSY);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_reserve(q, 1, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        ck_assert_uint_eq(queue_length(q), 1);

        /* An unreserved place is free again. */
        queue_unreserve(q, 1);
        ck_assert_int_eq(queue_push(q, b, &err), 0);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_push(q, c, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);

        /* The last reserved place takes its job: full by jobs now. */
        queue_push_reserved(q, r);
        ck_assert_uint_eq(queue_length(q), 3);
        ck_assert(r->queued);
        ck_assert_int_eq(refs_of(r), 2);                   /* the queue's own */
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_reserve(q, 1, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);

        /* The push used the reservation up: a place freed is free. */
        pop_expect(q, a);
        ck_assert_int_eq(queue_push(q, c, &err), 0);

        /* Unreserving more than is held is harmless: the count does not
         * wrap (which would make the queue look full for ever). */
        queue_unreserve(q, 5);
        pop_expect(q, b);
        ck_assert_int_eq(queue_reserve(q, 1, &err), 0);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_push(q, a, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        queue_unreserve(q, 1);
        ck_assert_int_eq(queue_push(q, a, &err), 0);

        /* A reserved job queues in its arrival order at push time. */
        pop_expect(q, r);
        pop_expect(q, c);
        pop_expect(q, a);
        ck_assert_uint_eq(queue_length(q), 0);

        /* The whole capacity may be reserved at once, then nothing more. */
        ck_assert_int_eq(queue_reserve(q, 3, &err), 0);
        ck_assert_int_eq(queue_reserve(q, 1, &err), -1);
        queue_unreserve(q, 3);
        ck_assert_int_eq(queue_reserve(q, 3, &err), 0);
        queue_unreserve(q, 3);
        job_unref(a), job_unref(b), job_unref(c), job_unref(r);
        queue_free(q);
        manifest_unref(m);
}
END_TEST

START_TEST(test_push_reserved_into_closed_queue_drops)
{
        /* A shutdown between a commit and its push: the job stays queued on
         * disk for the next start; the queue neither keeps it nor a
         * reference to it (LeakSanitizer would see one). */
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(2);
        struct err err = ERR_INIT;
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(queue_reserve(q, 1, &err), 0);
        int handed = 0;
        queue_close(q, collect, &handed);
        ck_assert_int_eq(handed, 0);
        queue_push_reserved(q, j);
        ck_assert_uint_eq(queue_length(q), 0);
        ck_assert(!j->queued);
        ck_assert_int_eq(refs_of(j), 1);
        ck_assert_ptr_null(queue_pop(q, NULL, NULL));
        ck_assert_int_eq(queue_reserve(q, 1, &err), -1);
        ck_assert_int_eq(err.code, ERR_UNAVAILABLE);
        /* Recovery into a closed queue drops the job the same way. */
        queue_restore(q, j);
        ck_assert_uint_eq(queue_length(q), 0);
        ck_assert(!j->queued);
        ck_assert_int_eq(refs_of(j), 1);
        job_unref(j);
        queue_free(q);
        manifest_unref(m);
}
END_TEST

START_TEST(test_restore_pushes_past_capacity)
{
        /* Recovery: jobs accepted before a restart are queued again even
         * past a (smaller) capacity; new work waits until the queue is below
         * it again. */
        struct manifest *m = fake_manifest("a", 0);
        struct queue *q = queue_new(2);
        struct err err = ERR_INIT;
        struct job *j[4];
        for (int i = 0; i < 3; i++) {
                j[i] = new_job(m, i == 2 ? PRIO_HIGH : PRIO_NORMAL);
                queue_restore(q, j[i]);
                ck_assert(j[i]->queued);
                ck_assert_int_eq(refs_of(j[i]), 2);
        }
        ck_assert_uint_eq(queue_length(q), 3);
        struct job *extra = new_job(m, PRIO_HIGH);
        ck_assert_int_eq(queue_push(q, extra, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_reserve(q, 1, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        /* In priority, then arrival order, as pushed jobs are. */
        pop_expect(q, j[2]);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(queue_push(q, extra, &err), -1);   /* 2 of 2 */
        ck_assert_int_eq(err.code, ERR_BUSY);
        pop_expect(q, j[0]);
        ck_assert_int_eq(queue_push(q, extra, &err), 0);
        /* Past the capacity again, with the queue full. */
        j[3] = new_job(m, PRIO_LOW);
        queue_restore(q, j[3]);
        ck_assert_uint_eq(queue_length(q), 3);
        pop_expect(q, extra);
        /* queue_free drops the references of what is left. */
        queue_free(q);
        ck_assert_int_eq(refs_of(j[1]), 1);
        ck_assert_int_eq(refs_of(j[3]), 1);
        for (int i = 0; i < 4; i++)
                job_unref(j[i]);
        job_unref(extra);
        manifest_unref(m);
}
END_TEST

/* A waiter that records how often it was called and the job's status when
 * it was: a waiter must always find the job final. */
struct seen {
        struct job *j;
        int calls;
        int status;
};

static void saw(void *ctx)
{
        struct seen *s = ctx;
        s->calls++;
        s->status = (int)job_get_status(s->j);
}

START_TEST(test_job_states_and_waiters)
{
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert_int_eq(strlen(j->id), JOB_ID_LEN);
        ck_assert_int_eq(job_get_status(j), JOB_QUEUED);
        ck_assert_int_eq(job_cancel_fd(j), -1);
        struct seen first = { .j = j, .status = -1 }, removed = { .j = j }, late = { .j = j, .status = -1 };
        struct job_waiter *w = job_add_waiter(j, saw, &first);
        struct job_waiter *w2 = job_add_waiter(j, saw, &removed);
        ck_assert_ptr_nonnull(w);
        ck_assert_ptr_nonnull(w2);
        ck_assert(job_remove_waiter(j, w2));
        ck_assert(job_start(j, "runc"));
        ck_assert_int_eq(job_get_status(j), JOB_RUNNING);
        ck_assert_int_ge(job_cancel_fd(j), 0);
        ck_assert(!job_start(j, "runc"));
        struct job_metrics mt = { .queue_ms = 999999, .create_ms = 5, .run_ms = 6, .collect_ms = 7,
                                  .peak_memory_bytes = -1, .cpu_ms = 3 };
        ck_assert(job_finish(j, JOB_ERR_TIMEOUT, "took too long", -1, &mt));
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_int_eq(job_cancel_fd(j), -1);

        /* Final but not yet told (the final record is committed between
         * the two steps): nobody is called, and a waiter may still be
         * added. */
        ck_assert_int_eq(first.calls, 0);
        ck_assert_ptr_nonnull(job_add_waiter(j, saw, &late));
        /* Final is final: a second finish changes nothing and calls nobody. */
        ck_assert(!job_finish(j, JOB_ERR_NONE, NULL, 0, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_FAILED);
        ck_assert_int_eq(first.calls, 0);

        job_wake(j);
        ck_assert_int_eq(first.calls, 1);
        ck_assert_int_eq(first.status, JOB_FAILED);
        ck_assert_int_eq(late.calls, 1);
        ck_assert_int_eq(late.status, JOB_FAILED);
        ck_assert_int_eq(removed.calls, 0);
        /* Once: a second wake calls nobody, and no waiter can be added. */
        job_wake(j);
        ck_assert_int_eq(first.calls, 1);
        ck_assert_int_eq(late.calls, 1);
        ck_assert(!job_remove_waiter(j, w));
        ck_assert_ptr_null(job_add_waiter(j, saw, &late));
        ck_assert_int_eq(late.calls, 1);

        json_t *o = rendered(j);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "failed");
        json_t *e = json_object_get(o, "error");
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "timeout");
        ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "took too long");
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert(json_is_null(json_object_get(o, "exit_code")));
        ck_assert_str_eq(json_string_value(json_object_get(o, "runtime")), "runc");
        ck_assert(json_is_string(json_object_get(o, "started_at")));
        ck_assert(json_is_string(json_object_get(o, "finished_at")));
        json_t *mo = json_object_get(o, "metrics");
        ck_assert(json_is_integer(json_object_get(mo, "total_ms")));
        /* The queue time is the job's own, measured when it started. */
        ck_assert_int_lt(json_integer_value(json_object_get(mo, "queue_ms")), 999999);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "create_ms")), 5);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "run_ms")), 6);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "collect_ms")), 7);
        ck_assert(json_is_null(json_object_get(mo, "peak_memory_bytes")));
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "cpu_ms")), 3);
        json_decref(o);
        job_unref(j);

        /* Waiters never woken go with the job, uncalled (LeakSanitizer
         * checks they are freed). */
        j = new_job(m, PRIO_NORMAL);
        struct seen never = { .j = j };
        ck_assert_ptr_nonnull(job_add_waiter(j, saw, &never));
        job_unref(j);
        ck_assert_int_eq(never.calls, 0);
        manifest_unref(m);
}
END_TEST

START_TEST(test_queued_job_cancelled)
{
        /* A queued job that is cancelled never starts; finishing it makes it
         * cancelled, with the time it spent queued. */
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert(!job_request_cancel(j));   /* not running: nothing to signal */
        ck_assert(job_cancel_requested(j));
        ck_assert(!job_start(j, "runc"));
        ck_assert_int_eq(job_get_status(j), JOB_QUEUED);
        ck_assert_int_eq(job_cancel_fd(j), -1);
        ck_assert(job_finish(j, JOB_ERR_CANCELLED, NULL, -1, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_CANCELLED);
        json_t *o = rendered(j);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "cancelled");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "error"), "code")), "cancelled");
        ck_assert(json_is_null(json_object_get(o, "started_at")));
        ck_assert(json_is_null(json_object_get(o, "runtime")));
        ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(o, "metrics"), "queue_ms")), 0);
        ck_assert_uint_eq(json_array_size(json_object_get(o, "attempts")), 0);
        json_decref(o);
        job_wake(j);
        job_unref(j);

        /* A running one is signalled through its eventfd. */
        j = new_job(m, PRIO_NORMAL);
        ck_assert(job_start(j, "runc"));
        int fd = job_cancel_fd(j);
        ck_assert_int_ge(fd, 0);
        ck_assert(job_request_cancel(j));
        uint64_t v = 0;
        ck_assert_int_eq(read(fd, &v, sizeof v), (ssize_t)sizeof v);
        ck_assert_uint_eq(v, 1);
        ck_assert(job_finish(j, JOB_ERR_CANCELLED, "cancelled by ci", -1, NULL));
        ck_assert_int_eq(job_get_status(j), JOB_CANCELLED);
        ck_assert_int_eq(job_cancel_fd(j), -1);
        ck_assert(!job_request_cancel(j));
        job_wake(j);
        job_unref(j);
        manifest_unref(m);
}
END_TEST

START_TEST(test_job_requeue)
{
        /* A planned stop interrupts a run: the job is queued again, its
         * attempt kept, its waiters still waiting; the next start runs it
         * under the next run id. */
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        struct seen s = { .j = j, .status = -1 };
        ck_assert_ptr_nonnull(job_add_waiter(j, saw, &s));
        bool ran = true;
        ck_assert(job_requeue(j, &ran));   /* queued already: nothing to do */
        ck_assert(!ran);
        ck_assert_int_eq(job_get_status(j), JOB_QUEUED);
        ck_assert(job_start(j, "runc"));
        ck_assert_int_ge(job_cancel_fd(j), 0);
        char run_id[RUN_ID_MAX] = "", want[RUN_ID_MAX];
        ck_assert_uint_eq(job_attempt_begin(j, 1000, 1000, run_id), 1);
        job_attempt_end(j, JOB_ERR_INTERRUPTED, "stopped by the daemon");

        ck_assert(job_requeue(j, &ran));
        ck_assert(ran);
        ck_assert_int_eq(job_get_status(j), JOB_QUEUED);
        ck_assert_int_eq(job_cancel_fd(j), -1);
        ck_assert_uint_eq(j->n_attempts, 1);
        ck_assert_int_eq(s.calls, 0);
        ck_assert_ptr_nonnull(job_add_waiter(j, saw, &s));   /* not woken: still accepts */
        json_t *o = rendered(j);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "queued");
        ck_assert(json_is_null(json_object_get(o, "started_at")));
        ck_assert(json_is_null(json_object_get(o, "finished_at")));
        ck_assert(json_is_null(json_object_get(o, "metrics")));
        ck_assert(json_is_null(json_object_get(o, "error")));
        json_t *attempts = json_object_get(o, "attempts");
        ck_assert_uint_eq(json_array_size(attempts), 1);
        json_t *a0 = json_array_get(attempts, 0);
        ck_assert_str_eq(json_string_value(json_object_get(a0, "run_id")), run_id);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a0, "error"), "code")), "interrupted");
        json_decref(o);

        /* Started again: a new eventfd, the next run id. */
        ck_assert(job_start(j, "crun"));
        ck_assert_int_eq(job_get_status(j), JOB_RUNNING);
        ck_assert_int_ge(job_cancel_fd(j), 0);
        run_id[0] = '\0';
        ck_assert_uint_eq(job_attempt_begin(j, 1001, 1001, run_id), 2);
        snprintf(want, sizeof want, "%s-2", j->id);
        ck_assert_str_eq(run_id, want);
        ck_assert_str_eq(j->attempts[j->n_attempts - 1].run_id, want);
        job_attempt_end(j, JOB_ERR_NONE, NULL);
        o = rendered(j);
        ck_assert_str_eq(json_string_value(json_object_get(o, "runtime")), "crun");
        ck_assert(json_is_string(json_object_get(o, "started_at")));
        json_decref(o);
        ck_assert(job_finish(j, JOB_ERR_NONE, NULL, 0, NULL));
        /* Final is final: requeue leaves it alone. */
        ck_assert(job_requeue(j, &ran));
        ck_assert_int_eq(job_get_status(j), JOB_SUCCEEDED);
        ck_assert_int_eq(s.calls, 0);
        job_wake(j);
        ck_assert_int_eq(s.calls, 2);   /* both waiters, once each */
        ck_assert_int_eq(s.status, JOB_SUCCEEDED);
        job_unref(j);
        manifest_unref(m);
}
END_TEST

/* A client's cancel that finds the job running only asks; a requeue
 * after it (the daemon's stop) must not put it back in the queue. */
START_TEST(test_requeue_after_a_cancel_is_refused)
{
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert(job_start(j, "runc"));
        ck_assert(job_request_cancel(j));   /* running: asked */
        bool ran = true;
        ck_assert(!job_requeue(j, &ran));
        ck_assert(!ran);
        ck_assert_int_eq(job_get_status(j), JOB_RUNNING);
        ck_assert(job_finish(j, JOB_ERR_CANCELLED, "cancelled on request before it ran", -1, NULL));
        job_unref(j);
        manifest_unref(m);
}
END_TEST

/* A cancel asked for while the job had no eventfd (the daemon out of
 * descriptors at its start) is seen on the eventfd made later. */
START_TEST(test_cancel_before_the_eventfd_is_made_is_not_lost)
{
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        struct rlimit old;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        int lowest = dup(0);   /* every descriptor below it is open */
        ck_assert_int_ge(lowest, 0);
        close(lowest);
        struct rlimit tight = { .rlim_cur = (rlim_t)lowest, .rlim_max = old.rlim_max };
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
        bool started = job_start(j, "runc");
        int start_errno = errno;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        ck_assert(started);
        ck_assert_int_eq(job_cancel_fd(j), -1);
        ck_assert_int_eq(start_errno, EMFILE);
        ck_assert(job_request_cancel(j));
        ck_assert_int_eq(job_retry_cancel_fd(j), 0);
        struct pollfd pfd = { .fd = job_cancel_fd(j), .events = POLLIN };
        ck_assert_int_ge(pfd.fd, 0);
        ck_assert_int_eq(poll(&pfd, 1, 0), 1);
        ck_assert(job_finish(j, JOB_ERR_CANCELLED, "cancelled on request before it ran", -1, NULL));
        job_unref(j);
        manifest_unref(m);
}
END_TEST

/* A job's attempts as the record keeps them: what a jansson tree of
 * record_time_json() and record_error_json() dumped, as they were made
 * before, byte for byte (a message with quotes, a new line, UTF-8 and a
 * byte that is not UTF-8, now shown as U+FFFD where the tree lost the
 * whole attempt; a warm run; one still running). */
START_TEST(test_attempts_text_as_the_tree_had_it)
{
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = job_new(m, PRIO_NORMAL, 7, "ci");
        ck_assert(job_start(j, "runc"));
        char run_id[RUN_ID_MAX] = "";
        job_attempt_begin(j, 1000, 1001, run_id);
        job_attempt_end(j, JOB_ERR_RUNTIME_ERROR, "runc: \"exec\" failed:\n\tcaf\xc3\xa9 \x01");
        snprintf(run_id, sizeof run_id, "warm-%s", "0123");
        job_attempt_begin(j, 1002, 1003, run_id);
        job_attempt_end(j, JOB_ERR_NONE, NULL);
        run_id[0] = '\0';
        job_attempt_begin(j, 1004, 1005, run_id);
        job_attempt_end(j, JOB_ERR_TIMEOUT, NULL);
        run_id[0] = '\0';
        job_attempt_begin(j, 1006, 1007, run_id);
        struct job_record rec;
        job_snapshot(j, &rec);
        json_t *want = json_array();
        for (size_t i = 0; i < j->n_attempts; i++) {
                const struct job_attempt *a = &j->attempts[i];
                json_array_append_new(want, json_pack("{s:s, s:b, s:I, s:I, s:o, s:o, s:o}",
                        "run_id", a->run_id, "warm", a->warm, "uid", (json_int_t)a->uid, "gid", (json_int_t)a->gid,
                        "started_at", record_time_json(a->started_ms),
                        "finished_at", record_time_json(a->finished_ms),
                        "error", a->finished_ms ? record_error_json(a->error, a->message) : json_null()));
        }
        ck_assert_uint_eq(json_array_size(want), 4);
        char *text = json_dumps(want, JSON_COMPACT);
        ck_assert_str_eq(rec.attempts, text);
        free(text);
        json_decref(want);
        /* Not UTF-8: U+FFFD, the attempt kept. */
        job_attempt_end(j, JOB_ERR_RUNTIME_ERROR, "bad \xff byte");
        record_clear(&rec);
        job_snapshot(j, &rec);
        json_error_t jerr;
        json_t *got = json_loads(rec.attempts, 0, &jerr);
        ck_assert_msg(got != NULL, "%s: %s", jerr.text, rec.attempts);
        ck_assert_uint_eq(json_array_size(got), 4);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(got, 3), "error"),
                                                            "message")), "bad \xef\xbf\xbd byte");
        ck_assert(json_is_true(json_object_get(json_array_get(got, 1), "warm")));
        json_decref(got);
        record_clear(&rec);
        ck_assert(job_finish(j, JOB_ERR_RUNTIME_ERROR, "x", -1, NULL));
        job_unref(j);
        manifest_unref(m);
}
END_TEST

/* record_render() as it was: a jansson tree of the job object, dumped,
 * the attempts and the result spliced after. */
static char *render_by_tree(const struct job_record *r, bool with_result)
{
        static const char *const status[] = { "queued", "running", "succeeded", "failed", "cancelled" };
        static const char *const prio[] = { "high", "normal", "low" };
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(r->id));
        json_object_set_new(o, "algorithm", r->algorithm ? json_string(r->algorithm) : json_null());
        json_object_set_new(o, "version", r->version ? json_string(r->version) : json_null());
        json_object_set_new(o, "status", json_string(status[r->status]));
        json_object_set_new(o, "priority", json_string(prio[r->priority]));
        json_object_set_new(o, "timeout_seconds", json_integer(r->timeout_seconds));
        json_object_set_new(o, "created_at", record_time_json(r->created_ms));
        json_object_set_new(o, "started_at", record_time_json(r->started_ms));
        json_object_set_new(o, "finished_at", record_time_json(r->finished_ms));
        json_object_set_new(o, "error", record_error_json(r->error, r->error_message));
        json_object_set_new(o, "exit_code", r->has_exit_code ? json_integer(r->exit_code) : json_null());
        const struct job_metrics *m = &r->metrics;
        json_object_set_new(o, "metrics", !r->has_metrics ? json_null() :
                json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "queue_ms", (json_int_t)m->queue_ms,
                          "create_ms", (json_int_t)m->create_ms, "run_ms", (json_int_t)m->run_ms,
                          "collect_ms", (json_int_t)m->collect_ms, "total_ms", (json_int_t)m->total_ms,
                          "peak_memory_bytes", m->peak_memory_bytes < 0 ? json_null() : json_integer(m->peak_memory_bytes),
                          "cpu_ms", m->cpu_ms < 0 ? json_null() : json_integer(m->cpu_ms)));
        json_object_set_new(o, "runtime", r->runtime_name ? json_string(r->runtime_name) : json_null());
        json_object_set_new(o, "submitted_by", r->submitted_by ? json_string(r->submitted_by) : json_null());
        json_t *p = r->progress ? json_loads(r->progress, 0, NULL) : NULL;
        json_object_set_new(o, "progress", p ? p : json_null());
        const struct job_callback *cb = &r->callback;
        json_object_set_new(o, "callback", !cb->url ? json_null() :
                json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "url", cb->url, "delivery_id", cb->delivery,
                          "state", callback_state_name(cb->state), "attempts", (json_int_t)cb->attempts,
                          "last_status", cb->last_status ? json_integer(cb->last_status) : json_null(),
                          "last_error", cb->last_error ? json_string(cb->last_error) : json_null(),
                          "delivered_at", record_time_json(cb->delivered_ms)));
        char *head = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(o);
        bool splice = with_result && r->result && r->status == JOB_SUCCEEDED;
        char *text = xasprintf("%.*s,\"attempts\":%s,\"result\":%.*s}", (int)strlen(head) - 1, head,
                               r->attempts && *r->attempts ? r->attempts : "[]", splice ? (int)r->result_len : 4,
                               splice ? r->result : "null");
        free(head);
        return text;
}

static void renders_as_the_tree_did(const struct job_record *r)
{
        for (int with = 0; with < 2; with++) {
                size_t len = 0;
                char *got = record_render(r, with, &len), *want = render_by_tree(r, with);
                ck_assert_uint_eq(len, strlen(got));
                ck_assert_str_eq(got, want);
                free(got);
                free(want);
        }
}

/* record_render() writes the text itself now: the same bytes as the tree
 * gave, for a record at each stage, with and without each part. */
START_TEST(test_render_as_the_tree_did)
{
        struct job_record r = { .status = JOB_QUEUED, .priority = PRIO_NORMAL, .timeout_seconds = 30,
                                .created_ms = 1764979200123 };
        snprintf(r.id, sizeof r.id, "%s", "0b6e4a5c-1f1e-4d8e-9a4b-6f0e2c1d3b7a");
        r.algorithm = xstrdup("matrix_multiplication");
        r.version = xstrdup("1.2.0");
        renders_as_the_tree_did(&r);
        r.submitted_by = xstrdup("ci \"bot\"");
        r.attempts = xstrdup("[{\"run_id\":\"x-1\",\"warm\":false}]");
        r.status = JOB_RUNNING;
        r.started_ms = 1764979200456;
        r.runtime_name = xstrdup("runc");
        r.progress = xstrdup("{\"fraction\":0.333333333333333,\"message\":\"caf\u00e9 \\\"x\\\"\"}");
        renders_as_the_tree_did(&r);
        r.status = JOB_SUCCEEDED;
        r.finished_ms = 1764979201999;
        r.has_exit_code = true;
        r.exit_code = 0;
        r.has_metrics = true;
        r.metrics = (struct job_metrics){ .queue_ms = 1, .create_ms = 2, .run_ms = 3, .collect_ms = 4,
                                          .total_ms = 10, .peak_memory_bytes = 123456789012, .cpu_ms = -1 };
        r.result = xstrdup("{\"product\":[[30,24,18]]}");
        r.result_len = strlen(r.result);
        r.callback.url = xstrdup("http://example.test/hook?a=1&b=\u00e9");
        snprintf(r.callback.delivery, sizeof r.callback.delivery, "%s", "5d9b3c1e-2a4f-4b6d-8e7f-0a1b2c3d4e5f");
        renders_as_the_tree_did(&r);
        r.callback.state = CALLBACK_FAILED;
        r.callback.attempts = 3;
        r.callback.last_status = 503;
        r.callback.last_error = xstrdup("HTTP 503\nretry");
        r.callback.delivered_ms = 1764979209000;
        r.status = JOB_FAILED;
        r.error = JOB_ERR_TIMEOUT;
        r.error_message = xstrdup("ran past its 30 s\t(killed)");
        r.has_exit_code = false;
        r.metrics.cpu_ms = 7;
        r.metrics.peak_memory_bytes = -1;
        renders_as_the_tree_did(&r);
        r.status = JOB_CANCELLED;
        r.priority = PRIO_LOW;
        free(r.progress);
        r.progress = xstrdup("not json");   /* null, as the tree had it */
        r.metrics.cpu_ms = 0;
        r.metrics.peak_memory_bytes = 0;
        r.timeout_seconds = INT64_MAX;
        r.metrics.total_ms = INT64_MIN;
        renders_as_the_tree_did(&r);
        /* Text that is not UTF-8: the tree dropped it with its key (the
         * whole callback for its error); here it is U+FFFD. */
        free(r.error_message);
        r.error_message = xstrdup("bad \xff byte");
        free(r.callback.last_error);
        r.callback.last_error = xstrdup("\xc0 reset");
        json_t *o = rendered_record(&r, true);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "error"), "message")),
                         "bad \xef\xbf\xbd byte");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "callback"), "last_error")),
                         "\xef\xbf\xbd reset");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout_seconds")), INT64_MAX);
        json_decref(o);
        /* An attempt a crash ended (recovery, record_end_last_attempt):
         * the same, not "error": null. */
        free(r.attempts);
        r.attempts = xstrdup("[{\"run_id\":\"x-1\",\"warm\":false,\"finished_at\":null,\"error\":null}]");
        record_end_last_attempt(&r, JOB_ERR_RUNTIME_ERROR, "lost \xfe here");
        o = json_loads(r.attempts, 0, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(o, 0), "error"), "message")),
                         "lost \xef\xbf\xbd here");
        json_decref(o);
        record_clear(&r);
}
END_TEST

START_TEST(test_render_splices_result_text)
{
        /* The result is stored and shown as the text the algorithm wrote,
         * spliced into the record's rendering; listings may leave it out.
         * A live job holds neither parameters nor result: its snapshot has
         * none. */
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = job_new(m, PRIO_HIGH, 7, "ci");
        ck_assert(job_start(j, "runc"));
        char run_id[RUN_ID_MAX] = "", want_run[RUN_ID_MAX];
        job_attempt_begin(j, 1000, 1001, run_id);
        job_attempt_end(j, JOB_ERR_NONE, NULL);
        struct job_metrics mt = { .create_ms = 11, .run_ms = 22, .collect_ms = 33, .peak_memory_bytes = 4096,
                                  .cpu_ms = -1 };
        ck_assert(job_finish(j, JOB_ERR_NONE, NULL, 0, &mt));
        struct job_record rec;
        job_snapshot(j, &rec);
        ck_assert_str_eq(rec.id, j->id);
        ck_assert_int_eq(rec.status, JOB_SUCCEEDED);
        ck_assert_ptr_null(rec.params);
        ck_assert_ptr_null(rec.result);
        ck_assert_uint_eq(rec.result_len, 0);
        ck_assert(rec.has_metrics);
        ck_assert_int_eq(rec.metrics.create_ms, 11);

        /* No result in the record: null even when asked for. */
        json_t *o = rendered_record(&rec, true);
        ck_assert(json_is_null(json_object_get(o, "result")));
        json_decref(o);

        /* The result as the store gives it: its length is what counts, not
         * a NUL (here text follows it in the buffer). */
        static const char result[] = "{\"b\": 1.50, \"s\": \"\\u00e9\"}";
        rec.result = xasprintf("%s, \"garbage\"", result);
        rec.result_len = strlen(result);
        size_t len = 0;
        _cleanup_free_ char *text = record_render(&rec, true, &len);
        ck_assert_uint_eq(len, strlen(text));
        _cleanup_free_ char *want = xasprintf(",\"result\":%s}", result);
        ck_assert_msg(strlen(text) > strlen(want) && !strcmp(text + strlen(text) - strlen(want), want), "%s",
                      text);
        o = rendered_record(&rec, true);
        ck_assert_str_eq(json_string_value(json_object_get(o, "id")), j->id);
        ck_assert_str_eq(json_string_value(json_object_get(o, "algorithm")), "a");
        ck_assert_str_eq(json_string_value(json_object_get(o, "version")), "1.0.0");
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "succeeded");
        ck_assert_str_eq(json_string_value(json_object_get(o, "priority")), "high");
        ck_assert_str_eq(json_string_value(json_object_get(o, "submitted_by")), "ci");
        ck_assert_str_eq(json_string_value(json_object_get(o, "runtime")), "runc");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout_seconds")), 7);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")), 0);
        ck_assert(json_is_null(json_object_get(o, "error")));
        ck_assert(json_is_string(json_object_get(o, "created_at")));
        ck_assert(json_is_string(json_object_get(o, "started_at")));
        ck_assert(json_is_string(json_object_get(o, "finished_at")));
        json_t *res = json_object_get(o, "result");
        ck_assert_str_eq(json_string_value(json_object_get(res, "s")), "\xc3\xa9");
        ck_assert_double_eq(json_real_value(json_object_get(res, "b")), 1.5);
        ck_assert_uint_eq(json_object_size(res), 2);
        json_t *mo = json_object_get(o, "metrics");
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "create_ms")), 11);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "run_ms")), 22);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "collect_ms")), 33);
        ck_assert_int_eq(json_integer_value(json_object_get(mo, "peak_memory_bytes")), 4096);
        ck_assert(json_is_null(json_object_get(mo, "cpu_ms")));
        json_t *attempts = json_object_get(o, "attempts");
        ck_assert_uint_eq(json_array_size(attempts), 1);
        json_t *a0 = json_array_get(attempts, 0);
        snprintf(want_run, sizeof want_run, "%s-1", j->id);
        ck_assert_str_eq(json_string_value(json_object_get(a0, "run_id")), want_run);
        ck_assert_int_eq(json_integer_value(json_object_get(a0, "uid")), 1000);
        ck_assert_int_eq(json_integer_value(json_object_get(a0, "gid")), 1001);
        ck_assert(json_is_string(json_object_get(a0, "finished_at")));
        ck_assert(json_is_null(json_object_get(a0, "error")));
        json_decref(o);

        o = rendered_record(&rec, false);
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert_uint_eq(json_array_size(json_object_get(o, "attempts")), 1);
        json_decref(o);
        /* Only a succeeded job shows a result. */
        rec.status = JOB_FAILED;
        o = rendered_record(&rec, true);
        ck_assert(json_is_null(json_object_get(o, "result")));
        json_decref(o);
        record_clear(&rec);
        ck_assert_ptr_null(rec.result);
        ck_assert_ptr_null(rec.algorithm);
        ck_assert_ptr_null(rec.attempts);
        record_clear(&rec);   /* a cleared record clears again */

        /* A bare record: null where nothing is known, no attempts. */
        struct job_record bare = { .status = JOB_QUEUED, .priority = PRIO_LOW, .timeout_seconds = 1 };
        memcpy(bare.id, j->id, sizeof bare.id);
        o = rendered_record(&bare, true);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "queued");
        ck_assert_str_eq(json_string_value(json_object_get(o, "priority")), "low");
        ck_assert(json_is_null(json_object_get(o, "algorithm")));
        ck_assert(json_is_null(json_object_get(o, "submitted_by")));
        ck_assert(json_is_null(json_object_get(o, "created_at")));
        ck_assert(json_is_null(json_object_get(o, "metrics")));
        ck_assert(json_is_null(json_object_get(o, "exit_code")));
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert(json_is_array(json_object_get(o, "attempts")));
        ck_assert_uint_eq(json_array_size(json_object_get(o, "attempts")), 0);
        json_decref(o);
        job_unref(j);
        manifest_unref(m);
}
END_TEST

START_TEST(test_record_attempts)
{
        /* No attempts, or none that parse: none to count or end. */
        struct job_record rec = { 0 };
        ck_assert_uint_eq(record_attempt_count(&rec, NULL, 0), 0);
        record_end_last_attempt(&rec, JOB_ERR_INTERRUPTED, "x");
        ck_assert_ptr_null(rec.attempts);
        rec.attempts = xstrdup("[]");
        ck_assert_uint_eq(record_attempt_count(&rec, NULL, 0), 0);
        record_end_last_attempt(&rec, JOB_ERR_INTERRUPTED, "x");
        ck_assert_str_eq(rec.attempts, "[]");
        free(rec.attempts);
        rec.attempts = xstrdup("not json");
        ck_assert_uint_eq(record_attempt_count(&rec, NULL, 0), 0);
        record_end_last_attempt(&rec, JOB_ERR_INTERRUPTED, "x");
        ck_assert_str_eq(rec.attempts, "not json");
        record_clear(&rec);

        /* A job that ran twice, its first run failed, its record taken
         * while the second was in progress (what a crash leaves). */
        struct manifest *m = fake_manifest("a", 0);
        struct job *j = new_job(m, PRIO_NORMAL);
        ck_assert(job_start(j, "runc"));
        char run_id[RUN_ID_MAX] = "", want[RUN_ID_MAX], last_id[RUN_ID_MAX];
        ck_assert_uint_eq(job_attempt_begin(j, 1000, 1000, run_id), 1);
        job_attempt_end(j, JOB_ERR_RUNTIME_ERROR, "create failed");
        run_id[0] = '\0';   /* "": the attempt is named after the job */
        ck_assert_uint_eq(job_attempt_begin(j, 1001, 1001, run_id), 2);
        snprintf(want, sizeof want, "%s-2", j->id);
        ck_assert_str_eq(run_id, want);
        job_snapshot(j, &rec);
        ck_assert_uint_eq(record_attempt_count(&rec, last_id, sizeof last_id), 2);
        ck_assert_str_eq(last_id, want);
        json_t *a = json_loads(rec.attempts, 0, NULL);
        ck_assert(json_is_null(json_object_get(json_array_get(a, 1), "finished_at")));
        json_decref(a);

        record_end_last_attempt(&rec, JOB_ERR_INTERRUPTED, "the daemon stopped");
        ck_assert_uint_eq(record_attempt_count(&rec, NULL, 0), 2);
        a = json_loads(rec.attempts, 0, NULL);
        ck_assert(json_is_array(a));
        json_t *first = json_array_get(a, 0), *last = json_array_get(a, 1);
        /* The first is left as it was. */
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(first, "error"), "code")),
                         "runtime_error");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(first, "error"), "message")),
                         "create failed");
        /* The last is finished now, with the reason. */
        snprintf(want, sizeof want, "%s-2", j->id);
        ck_assert_str_eq(json_string_value(json_object_get(last, "run_id")), want);
        ck_assert_int_eq(json_integer_value(json_object_get(last, "uid")), 1001);
        ck_assert(json_is_string(json_object_get(last, "started_at")));
        ck_assert(json_is_string(json_object_get(last, "finished_at")));
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(last, "error"), "code")),
                         "interrupted");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(last, "error"), "message")),
                         "the daemon stopped");
        json_decref(a);
        /* Ended once: another call changes nothing. */
        _cleanup_free_ char *before = xstrdup(rec.attempts);
        record_end_last_attempt(&rec, JOB_ERR_RUNTIME_ERROR, "again");
        ck_assert_str_eq(rec.attempts, before);
        /* ...and the rendering shows them as they are now. */
        json_t *o = rendered_record(&rec, false);
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_array_get(json_object_get(o, "attempts"), 1), "error"), "code")),
                         "interrupted");
        json_decref(o);

        /* The handle made again from the record (recovery) has both
         * attempts, and its next run is the third. */
        struct job *back = job_from_record(&rec, m);
        ck_assert_ptr_nonnull(back);
        ck_assert_str_eq(back->id, j->id);
        ck_assert_int_eq(job_get_status(back), JOB_QUEUED);
        ck_assert_uint_eq(back->n_attempts, 2);
        ck_assert_str_eq(back->attempts[back->n_attempts - 1].run_id, want);
        ck_assert(job_start(back, "runc"));
        /* A warm container's run id is the attempt's, kept through the
         * record. */
        snprintf(run_id, sizeof run_id, "%s", "0f0e0d0c-0b0a-4908-8706-050403020100-0");
        ck_assert_uint_eq(job_attempt_begin(back, 1002, 1002, run_id), 3);
        ck_assert_str_eq(run_id, "0f0e0d0c-0b0a-4908-8706-050403020100-0");
        struct job_record rec2;
        job_snapshot(back, &rec2);
        ck_assert_uint_eq(record_attempt_count(&rec2, last_id, sizeof last_id), 3);
        ck_assert_str_eq(last_id, run_id);
        a = json_loads(rec2.attempts, 0, NULL);
        ck_assert(json_is_true(json_object_get(json_array_get(a, 2), "warm")));
        ck_assert(json_is_false(json_object_get(json_array_get(a, 1), "warm")));
        json_decref(a);
        struct job *again = job_from_record(&rec2, m);
        ck_assert_str_eq(again->attempts[2].run_id, run_id);
        ck_assert(again->attempts[2].warm);
        job_unref(again);
        record_clear(&rec2);
        job_unref(back);
        record_clear(&rec);
        job_unref(j);
        manifest_unref(m);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("queue");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);   /* above the 10 s bounds of the thread tests */
        tcase_add_test(tc, test_priority_order_and_fifo);
        tcase_add_test(tc, test_full_queue_is_busy_and_keeps_jobs);
        tcase_add_test(tc, test_admission_skips_ineligible);
        tcase_add_test(tc, test_only_lane_heads_are_offered);
        tcase_add_test(tc, test_refused_lane_does_not_block_others);
        tcase_add_test(tc, test_order_across_lanes);
        tcase_add_test(tc, test_remove_keeps_lane_order);
        tcase_add_test(tc, test_remove_wakes_blocked_popper);
        tcase_add_test(tc, test_close_wakes_workers_and_hands_back_jobs);
        tcase_add_test(tc, test_reserve_counts_places);
        tcase_add_test(tc, test_push_reserved_into_closed_queue_drops);
        tcase_add_test(tc, test_restore_pushes_past_capacity);
        tcase_add_test(tc, test_job_states_and_waiters);
        tcase_add_test(tc, test_queued_job_cancelled);
        tcase_add_test(tc, test_job_requeue);
        tcase_add_test(tc, test_requeue_after_a_cancel_is_refused);
        tcase_add_test(tc, test_cancel_before_the_eventfd_is_made_is_not_lost);
        tcase_add_test(tc, test_render_splices_result_text);
        tcase_add_test(tc, test_attempts_text_as_the_tree_had_it);
        tcase_add_test(tc, test_render_as_the_tree_did);
        tcase_add_test(tc, test_record_attempts);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
