/* test-progress.c - a running algorithm's progress.json, read as hostile
 * input: shapes kept and refused, links, FIFOs, size, a long message cut
 * on a character boundary. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "jobs/progress.h"

static char *dir;

static void put(const char *text)
{
        _cleanup_free_ char *p = xasprintf("%s/" PROGRESS_NAME, dir);
        unlink(p);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void expect(const char *text, const char *want)
{
        put(text);
        char *got = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(progress_read(dir, &got, &e) == 0, "%s: %s", text, e.msg);
        ck_assert_str_eq(got, want);
        free(got);
}

static void refuse(const char *text, const char *why)
{
        if (text)
                put(text);
        char *got = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(progress_read(dir, &got, &e) == -1, "accepted %s", text ? text : "(file as is)");
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_msg(strstr(e.msg, why), "`%s` does not say `%s`", e.msg, why);
        ck_assert_ptr_null(got);
}

START_TEST(test_shapes)
{
        dir = tu_mkdtemp();
        char *got = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(progress_read(dir, &got, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);

        expect("{\"fraction\": 0.42, \"message\": \"half\", \"eta\": 3}", "{\"fraction\":0.42,\"message\":\"half\"}");
        expect("{\"fraction\": 1}", "{\"fraction\":1.0,\"message\":null}");
        expect("{\"fraction\": 0, \"message\": null}", "{\"fraction\":0.0,\"message\":null}");
        expect("{\"message\": \"warming up\"}", "{\"fraction\":null,\"message\":\"warming up\"}");

        refuse("{\"fraction\": 1.5}", "outside");
        refuse("{\"fraction\": -0.1}", "outside");
        refuse("{\"fraction\": \"0.5\"}", "not a number");
        refuse("{\"message\": 3}", "not a string");
        refuse("{}", "neither");
        refuse("{\"fraction\": null}", "neither");
        refuse("[0.5]", "not a JSON object");
        refuse("{\"fraction\": 0.5", PROGRESS_NAME ":");
        refuse("{\"fraction\": 0.5, \"fraction\": 0.6}", PROGRESS_NAME ":");
        refuse("", PROGRESS_NAME ":");
        refuse("{\"message\": \"a\\u0000b\"}", PROGRESS_NAME ":");
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

START_TEST(test_message_cut_on_a_character)
{
        dir = tu_mkdtemp();
        /* 255 ASCII bytes, then a 2-byte character that would end at 257. */
        char msg[300] = "";
        memset(msg, 'a', 255);
        strcat(msg, "\xc3\xa9tail");
        _cleanup_free_ char *text = xasprintf("{\"message\": \"%s\"}", msg);
        put(text);
        char *got = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(progress_read(dir, &got, &e), 0);
        char want[300] = "{\"fraction\":null,\"message\":\"";
        strncat(want, msg, 255);
        strcat(want, "\"}");
        ck_assert_str_eq(got, want);
        free(got);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

START_TEST(test_hostile_files)
{
        dir = tu_mkdtemp();
        _cleanup_free_ char *p = xasprintf("%s/" PROGRESS_NAME, dir);
        _cleanup_free_ char *target = xasprintf("%s/elsewhere.json", dir);
        FILE *f = fopen(target, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"fraction\": 0.5}", f);
        fclose(f);

        /* A link, even to a valid file: never followed. */
        ck_assert_int_eq(symlink(target, p), 0);
        refuse(NULL, "symbolic link");
        unlink(p);

        /* A FIFO with no writer: refused at once, not waited on. */
        ck_assert_int_eq(mkfifo(p, 0644), 0);
        refuse(NULL, "not a regular file");
        unlink(p);

        /* A directory. */
        ck_assert_int_eq(mkdir(p, 0755), 0);
        refuse(NULL, "not a regular file");
        rmdir(p);

        /* Valid JSON, but over the size cap. */
        size_t n = PROGRESS_MAX_BYTES + 1;
        char *big = xmalloc(n + 1);
        memset(big, ' ', n);
        memcpy(big, "{\"fraction\": 0.5}", 17);
        big[n] = '\0';
        refuse(big, "over the limit");
        free(big);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("progress");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_shapes);
        tcase_add_test(tc, test_message_cut_on_a_character);
        tcase_add_test(tc, test_hostile_files);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
