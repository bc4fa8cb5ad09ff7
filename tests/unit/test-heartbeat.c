/* test-heartbeat.c - the watched slots: the most silent one is named, an
 * idle one is not judged, a beat makes a slot young again, and a slot no
 * longer watched is never judged. */
#include "testutil.h"

#include "base/heartbeat.h"
#include "base/util.h"

/* Make hb look as if it last beat ago_ms before now. */
static void aged(struct heartbeat *hb, int64_t now, int64_t ago_ms)
{
        atomic_store(&hb->mono_ms, now - ago_ms);
}

START_TEST(test_most_silent_is_named)
{
        struct heartbeat a = { 0 }, b = { 0 };
        heartbeat_watch(&a, "worker 0");
        heartbeat_watch(&b, "the store's writer");
        int64_t now = now_mono_ms();
        char who[40] = "";
        ck_assert_int_lt(heartbeat_most_silent(now, who, sizeof who), 1000);

        aged(&a, now, 3000);
        aged(&b, now, 12000);
        ck_assert_int_eq(heartbeat_most_silent(now, who, sizeof who), 12000);
        ck_assert_str_eq(who, "the store's writer");

        /* This thread takes b's slot: its beat makes b young again. */
        heartbeat_bind(&b);
        heartbeat_beat();
        ck_assert_int_eq(heartbeat_most_silent(now + 1, who, sizeof who), 3001);
        ck_assert_str_eq(who, "worker 0");

        /* Idle: not judged, however long ago it beat. */
        heartbeat_idle(true);
        aged(&a, now, 0);
        ck_assert_int_eq(heartbeat_most_silent(now + 100000, who, sizeof who), 100000);
        ck_assert_str_eq(who, "worker 0");
        heartbeat_bind(NULL);

        /* No longer watched: gone from the judging. */
        heartbeat_unwatch(&a);
        who[0] = '\0';
        ck_assert_int_eq(heartbeat_most_silent(now + 100000, who, sizeof who), 0);
        ck_assert_str_eq(who, "");
        heartbeat_unwatch(&b);
        heartbeat_unwatch(&b);   /* twice: harmless */
}
END_TEST

START_TEST(test_watched_twice_listed_once)
{
        struct heartbeat a = { 0 }, b = { 0 };
        heartbeat_watch(&a, "worker 0");
        heartbeat_watch(&b, "worker 1");
        heartbeat_watch(&a, "worker 0");   /* no loop in the list */
        int64_t now = now_mono_ms();
        aged(&a, now, 5000);
        aged(&b, now, 7000);
        char who[40] = "";
        ck_assert_int_eq(heartbeat_most_silent(now, who, sizeof who), 7000);
        /* Once out, out: a second watch did not leave a second entry. */
        heartbeat_unwatch(&b);
        ck_assert_int_eq(heartbeat_most_silent(now, who, sizeof who), 5000);
        ck_assert_str_eq(who, "worker 0");
        heartbeat_unwatch(&a);
        ck_assert_int_eq(heartbeat_most_silent(now, who, sizeof who), 0);
}
END_TEST

START_TEST(test_unwatched_thread_beats_nothing)
{
        struct heartbeat a = { 0 };
        heartbeat_watch(&a, "the cleaner");
        int64_t now = now_mono_ms();
        aged(&a, now, 20000);
        /* A thread with no slot of its own: beating changes no slot. */
        heartbeat_bind(NULL);
        heartbeat_beat();
        char who[40] = "";
        ck_assert_int_eq(heartbeat_most_silent(now, who, sizeof who), 20000);
        ck_assert_str_eq(who, "the cleaner");
        heartbeat_unwatch(&a);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("heartbeat");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_most_silent_is_named);
        tcase_add_test(tc, test_watched_twice_listed_once);
        tcase_add_test(tc, test_unwatched_thread_beats_nothing);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
