/* test-log.c - one log record is one line: control characters in a message
 * (an algorithm's output quoted in a failure) are escaped, so they cannot
 * forge log lines, journal priority prefixes or journal fields; levels
 * filter; when stderr is the journal (JOURNAL_STREAM names it) records go
 * to the journal with their fields (JOB_ID, ALGORITHM, RUN_ID, CODE_*),
 * and to the stream with a priority prefix when the journal refuses. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/util.h"

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

/* JOURNAL_STREAM naming what stderr is now (the capture file). */
static void stderr_as_journal(void)
{
        struct stat st;
        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        char v[64];
        snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", v, 1);
}

static char sent[12][512];
static int nsent, sends;

static int fake_send(const struct iovec *iov, int n)
{
        sends++;
        nsent = n < 12 ? n : 12;
        for (int i = 0; i < nsent; i++)
                snprintf(sent[i], sizeof sent[i], "%.*s", (int)iov[i].iov_len, (const char *)iov[i].iov_base);
        return 0;
}

static int failing_send(const struct iovec *iov, int n)
{
        (void)iov;
        (void)n;
        return -1;
}

static const char *sent_field(const char *name)
{
        size_t len = strlen(name);
        for (int i = 0; i < nsent; i++)
                if (!strncmp(sent[i], name, len) && sent[i][len] == '=')
                        return sent[i] + len + 1;
        return NULL;
}

static void log_journal_fields(void)
{
        stderr_as_journal();
        log_init(LOG_LVL_INFO);
        log_set_journal_sender(fake_send);
        log_job(LOG_LVL_WARN, "j-1", "matrix", "j-1-2", "failed: %s", "boom\nFORGED=1");
        log_set_journal_sender(NULL);
        unsetenv("JOURNAL_STREAM");
}

START_TEST(test_journal_fields)
{
        sends = 0;
        char *text = capture_stderr(log_journal_fields);
        ck_assert_str_eq(text, "");      /* nothing on the stream itself */
        ck_assert_int_eq(sends, 1);
        ck_assert_str_eq(sent_field("MESSAGE"), "job j-1: failed: boom\\nFORGED=1");
        ck_assert_str_eq(sent_field("PRIORITY"), "4");
        ck_assert_str_eq(sent_field("JOB_ID"), "j-1");
        ck_assert_str_eq(sent_field("ALGORITHM"), "matrix");
        ck_assert_str_eq(sent_field("RUN_ID"), "j-1-2");
        ck_assert_str_eq(sent_field("SYSLOG_IDENTIFIER"), "edgecd");
        ck_assert_ptr_nonnull(strstr(sent_field("CODE_FILE"), "test-log.c"));
        ck_assert_str_eq(sent_field("CODE_FUNC"), "log_journal_fields");
        ck_assert_ptr_nonnull(sent_field("CODE_LINE"));
        ck_assert_ptr_null(sent_field("FORGED"));
        free(text);
}
END_TEST

static void log_journal_plain_and_fallback(void)
{
        stderr_as_journal();
        log_init(LOG_LVL_DEBUG);
        log_set_journal_sender(fake_send);
        log_info("no job here");
        log_set_journal_sender(failing_send);
        log_warn("careful");
        log_debug("detail");
        log_set_journal_sender(NULL);
        unsetenv("JOURNAL_STREAM");
}

START_TEST(test_journal_without_job_and_fallback)
{
        sends = 0;
        char *text = capture_stderr(log_journal_plain_and_fallback);
        /* A line about no job: no job fields. */
        ck_assert_int_eq(sends, 1);
        ck_assert_str_eq(sent_field("MESSAGE"), "no job here");
        ck_assert_ptr_null(sent_field("JOB_ID"));
        /* The journal's socket refused: the stream, with priority prefixes. */
        ck_assert_str_eq(text, "<4>careful\n<7>detail\n");
        free(text);
}
END_TEST

static void log_other_stream(void)
{
        /* Inherited from a parent whose stderr was the journal: not ours. */
        setenv("JOURNAL_STREAM", "8:1234", 1);
        log_init(LOG_LVL_DEBUG);
        log_set_journal_sender(fake_send);
        log_job(LOG_LVL_WARN, "j-2", "sort", NULL, "careful");
        log_set_journal_sender(NULL);
        unsetenv("JOURNAL_STREAM");
}

START_TEST(test_journal_stream_of_another_file)
{
        sends = 0;
        char *text = capture_stderr(log_other_stream);
        ck_assert_int_eq(sends, 0);
        ck_assert_ptr_nonnull(strstr(text, " warn: job j-2: careful\n"));
        free(text);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_one_record_one_line);
        tcase_add_test(tc, test_journal_fields);
        tcase_add_test(tc, test_journal_without_job_and_fallback);
        tcase_add_test(tc, test_journal_stream_of_another_file);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
