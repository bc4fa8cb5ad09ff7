/* test-log.c - one log record is one line: control characters in a message
 * (an algorithm's output quoted in a failure) are escaped, so they cannot
 * forge log lines or journal priority prefixes; levels filter. */
#include "testutil.h"

#include <fcntl.h>

#include "log.h"
#include "util.h"

/* Run fn with stderr sent to a file; return what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
        char *dir = tu_mkdtemp();
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/err", dir), 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        int saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        fn();
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        char *text = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(read_file(path, 1 << 20, 0, &text, NULL, &err), 0);
        tu_rm_rf(dir);
        free(dir);
        free(path);
        return text;
}

static void log_hostile(void)
{
        unsetenv("JOURNAL_STREAM");
        log_init(LOG_LVL_INFO);
        log_info("job x failed: %s", "boom\n2026-01-01T00:00:00.000Z edgecd[1] error: FORGED\r\n<2>crit\x1b[31m a\\nb");
        log_debug("not shown at info");
}

START_TEST(test_one_record_one_line)
{
        char *text = capture_stderr(log_hostile);
        size_t lines = 0;
        for (char *p = text; *p; p++)
                lines += *p == '\n';
        ck_assert_uint_eq(lines, 1);
        ck_assert_ptr_nonnull(strstr(text, "info: job x failed: boom\\n2026-01-01"));
        ck_assert_ptr_nonnull(strstr(text, "FORGED\\x0d\\n<2>crit\\x1b[31m a\\\\nb\n"));
        ck_assert_ptr_null(strstr(text, "not shown"));
        free(text);
}
END_TEST

static void log_journal(void)
{
        setenv("JOURNAL_STREAM", "8:1234", 1);
        log_init(LOG_LVL_DEBUG);
        log_warn("careful");
        log_debug("detail");
        unsetenv("JOURNAL_STREAM");
}

START_TEST(test_journal_priority_prefix)
{
        char *text = capture_stderr(log_journal);
        ck_assert_str_eq(text, "<4>careful\n<7>detail\n");
        free(text);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_one_record_one_line);
        tcase_add_test(tc, test_journal_priority_prefix);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
