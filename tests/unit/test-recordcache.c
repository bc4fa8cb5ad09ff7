/* test-recordcache.c - renderings of final records: a hit is a copy of what
 * was put, the least recently used go first past the byte bound, a drop
 * removes the entry and makes any put read before it a no-op, a cache of
 * 0 bytes keeps nothing, and threads may use it at once. */
#include "testutil.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/recordcache.h"

static void put(struct recordcache *c, const char *id, const char *text)
{
        recordcache_put(c, recordcache_generation(c), id, text, strlen(text));
}

static bool has(struct recordcache *c, const char *id, const char *want)
{
        size_t len = 0;
        char *t = recordcache_get(c, id, &len);
        bool ok = t && (!want || (len == strlen(want) && !strcmp(t, want)));
        free(t);
        return ok;
}

START_TEST(test_get_is_a_copy_of_put)
{
        struct recordcache *c = recordcache_new(64 * 1024);
        ck_assert(!has(c, "a", NULL));
        put(c, "a", "{\"id\":\"a\"}");
        size_t len = 0;
        char *t = recordcache_get(c, "a", &len);
        ck_assert_str_eq(t, "{\"id\":\"a\"}");
        ck_assert_uint_eq(len, 10);
        t[0] = 'X';   /* the caller's own */
        free(t);
        ck_assert(has(c, "a", "{\"id\":\"a\"}"));
        /* Its length without a copy (a GET reserves it before the copy). */
        len = 0;
        ck_assert(recordcache_len(c, "a", &len));
        ck_assert_uint_eq(len, 10);
        ck_assert(!recordcache_len(c, "b", &len));
        /* A second put of the same id keeps the first (final is final). */
        put(c, "a", "other");
        ck_assert(has(c, "a", "{\"id\":\"a\"}"));
        recordcache_free(c);
}
END_TEST

START_TEST(test_lru_past_the_bound)
{
        /* Entries cost their text plus some overhead: room for a few. */
        char text[1000];
        memset(text, 'x', sizeof text - 1);
        text[sizeof text - 1] = '\0';
        struct recordcache *c = recordcache_new(5000);
        put(c, "a", text);
        put(c, "b", text);
        put(c, "c", text);
        put(c, "d", text);
        ck_assert(has(c, "a", text));   /* a is now the newest */
        put(c, "e", text);              /* over the bound: b (the oldest) goes */
        ck_assert(!has(c, "b", NULL));
        ck_assert(has(c, "a", text));
        ck_assert(has(c, "e", text));
        ck_assert_uint_le(recordcache_bytes(c), 5000);
        /* Too big to be worth it: not kept. */
        char big[2000];
        memset(big, 'y', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        put(c, "big", big);
        ck_assert(!has(c, "big", NULL));
        recordcache_free(c);
}
END_TEST

START_TEST(test_drop_beats_a_stale_put)
{
        struct recordcache *c = recordcache_new(64 * 1024);
        put(c, "a", "A");
        /* A reader takes the generation, reads "b"; retention deletes "b"
         * meanwhile; the reader's put must not bring it back. */
        uint64_t g = recordcache_generation(c);
        recordcache_drop(c, "b");
        recordcache_put(c, g, "b", "B", 1);
        ck_assert(!has(c, "b", NULL));
        recordcache_drop(c, "a");
        ck_assert(!has(c, "a", NULL));
        ck_assert_uint_eq(recordcache_bytes(c), 0);
        put(c, "b", "B");   /* read after the drop: fine */
        ck_assert(has(c, "b", "B"));
        recordcache_free(c);
}
END_TEST

START_TEST(test_zero_keeps_nothing)
{
        struct recordcache *c = recordcache_new(0);
        put(c, "a", "A");
        ck_assert(!has(c, "a", NULL));
        ck_assert_uint_eq(recordcache_entry_max(c), 0);
        recordcache_free(c);
        recordcache_free(NULL);
}
END_TEST

/* entry_max is what put keeps: that long is kept, one byte more is not. */
START_TEST(test_entry_max)
{
        struct recordcache *c = recordcache_new(64 * 1024);
        size_t max = recordcache_entry_max(c);
        ck_assert(max > 0 && max < 16 * 1024);
        char *text = malloc(max + 2);
        ck_assert_ptr_nonnull(text);
        memset(text, 'x', max + 1);
        recordcache_put(c, recordcache_generation(c), "fits", text, max);
        recordcache_put(c, recordcache_generation(c), "over", text, max + 1);
        ck_assert(has(c, "fits", NULL));
        ck_assert(!has(c, "over", NULL));
        free(text);
        recordcache_free(c);
}
END_TEST

static void *hammer(void *arg)
{
        struct recordcache *c = arg;
        char id[16], text[64];
        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof id, "j%d", i % 300);
                snprintf(text, sizeof text, "{\"id\":\"%s\"}", id);
                if (i % 7 == 0) {
                        recordcache_drop(c, id);
                        continue;
                }
                size_t len = 0;
                char *got = recordcache_get(c, id, &len);
                if (!got)
                        put(c, id, text);
                else
                        ck_assert_str_eq(got, text);   /* never another id's, never torn */
                free(got);
        }
        return NULL;
}

START_TEST(test_threads)
{
        struct recordcache *c = recordcache_new(8 * 1024);
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, c), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        ck_assert_uint_le(recordcache_bytes(c), 8 * 1024);
        recordcache_free(c);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("recordcache");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_get_is_a_copy_of_put);
        tcase_add_test(tc, test_lru_past_the_bound);
        tcase_add_test(tc, test_drop_beats_a_stale_put);
        tcase_add_test(tc, test_zero_keeps_nothing);
        tcase_add_test(tc, test_entry_max);
        tcase_add_test(tc, test_threads);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
