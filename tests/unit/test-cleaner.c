/* test-cleaner.c - the cleaner's queue: sandboxes taken apart in order off
 * the caller's thread, a held one only after its go (or at the stop), held
 * ones taking no room in the backlog, a full backlog holding up the one
 * handing over the next, ids back in the pool once a container is gone and
 * kept out of it (parked) until the collector removed one that was not.
 *
 * sandbox_destroy() is this file's: it records what it was given and can be
 * made to wait (the runtime's delete), so nothing here runs a container. */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#include "sandbox/cleaner.h"

#define FIRST_UID 3000000000LL
#define FIRST_GID 3100000000LL
#define MAX_DONE (CLEANER_BACKLOG + 16)

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool blocked;                   /* destroy waits while set */
        bool failing;                   /* destroy says the container stays */
        size_t n;
        char done[MAX_DONE][RUN_ID_MAX];
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

bool sandbox_destroy(const struct sandbox_env *env, struct sandbox *sb)
{
        (void)env;
        pthread_mutex_lock(&fake.lock);
        while (fake.blocked)
                pthread_cond_wait(&fake.cond, &fake.lock);
        ck_assert_uint_lt(fake.n, MAX_DONE);
        snprintf(fake.done[fake.n++], RUN_ID_MAX, "%s", sb->run_id);
        bool gone = !fake.failing;
        pthread_cond_broadcast(&fake.cond);
        pthread_mutex_unlock(&fake.lock);
        free(sb);
        return gone;
}

static void fake_reset(void)
{
        pthread_mutex_lock(&fake.lock);
        fake.blocked = fake.failing = false;
        fake.n = 0;
        pthread_mutex_unlock(&fake.lock);
}

static void fake_block(bool on)
{
        pthread_mutex_lock(&fake.lock);
        fake.blocked = on;
        pthread_cond_broadcast(&fake.cond);
        pthread_mutex_unlock(&fake.lock);
}

static size_t fake_done(void)
{
        pthread_mutex_lock(&fake.lock);
        size_t n = fake.n;
        pthread_mutex_unlock(&fake.lock);
        return n;
}

/* Until n sandboxes are destroyed (5 s at most). */
static void wait_done(size_t n)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_mutex_lock(&fake.lock);
        while (fake.n < n)
                ck_assert_msg(pthread_cond_timedwait(&fake.cond, &fake.lock, &ts) == 0,
                              "%zu of %zu sandboxes taken apart", fake.n, n);
        pthread_mutex_unlock(&fake.lock);
}

static void sleep_ms(long ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

struct fx {
        struct idpool *ids;
        struct liveset *live;
        struct cleaner *c;
        size_t made;
};

static void fx_setup(struct fx *f)
{
        fake_reset();
        f->ids = idpool_new(FIRST_UID, FIRST_GID, MAX_DONE);
        f->live = liveset_new();
        f->made = 0;
        struct sandbox_env env = { 0 };
        struct err err = ERR_INIT;
        ck_assert_msg(cleaner_start(&env, f->ids, f->live, &f->c, &err) == 0, "%s", err.msg);
}

static void fx_teardown(struct fx *f)
{
        cleaner_free(f->c);
        liveset_free(f->live);
        idpool_free(f->ids);
}

/* A sandbox as a run leaves it: its ids taken, its run live. */
static struct sandbox *sandbox(struct fx *f)
{
        struct sandbox *sb = calloc(1, sizeof *sb);
        ck_assert_ptr_nonnull(sb);
        snprintf(sb->run_id, sizeof sb->run_id, "run-%zu", f->made++);
        struct err err = ERR_INIT;
        ck_assert_msg(idpool_take(f->ids, &sb->ids, &err) == 0, "%s", err.msg);
        liveset_add(f->live, sb->run_id);
        return sb;
}

START_TEST(test_in_order_and_released)
{
        struct fx f;
        fx_setup(&f);
        for (int i = 0; i < 5; i++)
                cleaner_push(f.c, sandbox(&f));
        cleaner_push(f.c, NULL);   /* nothing */
        wait_done(5);
        /* Pending counts the one in hand until it is out of the live set. */
        for (int i = 0; i < 100 && cleaner_pending(f.c); i++)
                sleep_ms(10);
        ck_assert_uint_eq(cleaner_pending(f.c), 0);
        for (size_t i = 0; i < 5; i++) {
                char id[RUN_ID_MAX];
                snprintf(id, sizeof id, "run-%zu", i);
                ck_assert_str_eq(fake.done[i], id);
                ck_assert(!liveset_contains(f.live, id));
        }
        ck_assert_uint_eq(idpool_in_use(f.ids), 0);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_held_until_go)
{
        struct fx f;
        fx_setup(&f);
        ck_assert_uint_eq(cleaner_push_held(f.c, NULL), 0);
        uint64_t t = cleaner_push_held(f.c, sandbox(&f));   /* run-0 */
        ck_assert_uint_ne(t, 0);
        cleaner_push(f.c, sandbox(&f));                      /* run-1 */
        wait_done(1);
        ck_assert_str_eq(fake.done[0], "run-1");
        sleep_ms(100);
        ck_assert_uint_eq(fake_done(), 1);
        ck_assert(liveset_contains(f.live, "run-0"));
        ck_assert(!liveset_contains(f.live, "run-1"));
        ck_assert_uint_eq(cleaner_pending(f.c), 1);
        cleaner_go(f.c, t);
        wait_done(2);
        ck_assert_str_eq(fake.done[1], "run-0");
        cleaner_go(f.c, t);        /* again: nothing */
        cleaner_go(f.c, t + 99);   /* unknown: nothing */
        fx_teardown(&f);
}
END_TEST

/* A stop takes apart what is held too: nothing is left behind. */
START_TEST(test_stop_takes_held)
{
        struct fx f;
        fx_setup(&f);
        cleaner_push_held(f.c, sandbox(&f));
        cleaner_push_held(f.c, sandbox(&f));
        cleaner_free(f.c);
        ck_assert_uint_eq(fake_done(), 2);
        ck_assert(!liveset_contains(f.live, "run-0"));
        ck_assert(!liveset_contains(f.live, "run-1"));
        ck_assert_uint_eq(idpool_in_use(f.ids), 0);
        liveset_free(f.live);
        idpool_free(f.ids);
}
END_TEST

struct pusher {
        struct cleaner *c;
        struct sandbox *sb;
        bool held;
        bool returned;
        pthread_mutex_t lock;
};

static void *push_thread(void *arg)
{
        struct pusher *p = arg;
        if (p->held)
                cleaner_push_held(p->c, p->sb);
        else
                cleaner_push(p->c, p->sb);
        pthread_mutex_lock(&p->lock);
        p->returned = true;
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static bool returned(struct pusher *p)
{
        pthread_mutex_lock(&p->lock);
        bool r = p->returned;
        pthread_mutex_unlock(&p->lock);
        return r;
}

/* Past CLEANER_BACKLOG waiting, the next hand-over waits for room; a held
 * one does not (it waits for its job's commit, which may wait for the
 * stop) and takes no room. */
START_TEST(test_backlog_holds_up_the_next)
{
        struct fx f;
        fx_setup(&f);
        fake_block(true);
        cleaner_push(f.c, sandbox(&f));   /* in hand, destroy waiting */
        for (int i = 0; i < CLEANER_BACKLOG - 1; i++)
                cleaner_push(f.c, sandbox(&f));
        uint64_t t = cleaner_push_held(f.c, sandbox(&f));
        ck_assert_uint_ne(t, 0);
        ck_assert_uint_eq(cleaner_pending(f.c), CLEANER_BACKLOG + 1);
        struct pusher p = { .c = f.c, .sb = sandbox(&f), .lock = PTHREAD_MUTEX_INITIALIZER };
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, push_thread, &p), 0);
        sleep_ms(200);
        ck_assert_msg(!returned(&p), "a hand-over past the backlog did not wait");
        fake_block(false);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert(returned(&p));
        wait_done(CLEANER_BACKLOG + 1);   /* all but the held one */
        sleep_ms(50);
        ck_assert_uint_eq(fake_done(), CLEANER_BACKLOG + 1);
        cleaner_go(f.c, t);
        wait_done(CLEANER_BACKLOG + 2);
        pthread_mutex_destroy(&p.lock);
        fx_teardown(&f);
}
END_TEST

/* A container the runtime would not delete: its ids stay out of the pool
 * until the collector has removed it (cleaner_released). */
START_TEST(test_parked_until_released)
{
        struct fx f;
        fx_setup(&f);
        pthread_mutex_lock(&fake.lock);
        fake.failing = true;
        pthread_mutex_unlock(&fake.lock);
        cleaner_push(f.c, sandbox(&f));
        cleaner_push(f.c, sandbox(&f));
        wait_done(2);
        for (int i = 0; i < 100 && cleaner_pending(f.c); i++)
                sleep_ms(10);
        ck_assert_uint_eq(idpool_in_use(f.ids), 2);
        ck_assert(!liveset_contains(f.live, "run-0"));   /* the collector's now */
        cleaner_released(f.c, "run-1");
        ck_assert_uint_eq(idpool_in_use(f.ids), 1);
        cleaner_released(f.c, "run-1");   /* again: nothing */
        cleaner_released(f.c, "no-such-run");
        ck_assert_uint_eq(idpool_in_use(f.ids), 1);
        cleaner_released(f.c, "run-0");
        ck_assert_uint_eq(idpool_in_use(f.ids), 0);
        fx_teardown(&f);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("cleaner");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_in_order_and_released);
        tcase_add_test(tc, test_held_until_go);
        tcase_add_test(tc, test_stop_takes_held);
        tcase_add_test(tc, test_backlog_holds_up_the_next);
        tcase_add_test(tc, test_parked_until_released);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
