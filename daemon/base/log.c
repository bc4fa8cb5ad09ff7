/* log.c - see log.h. */
#define SD_JOURNAL_SUPPRESS_LOCATION   /* we pass the caller's CODE_* fields */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "util.h"

static enum log_level max_level = LOG_LVL_INFO;
static pid_t self_pid;
static int journal;
static int (*journal_send)(const struct iovec *iov, int n) = sd_journal_sendv;

/* systemd's rule: stderr is the journal when JOURNAL_STREAM names its
 * device and inode (a daemon whose stderr was redirected inherits the
 * variable but not the stream). */
static int stderr_is_journal(void)
{
        const char *v = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        char tail;
        if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2)
                return 0;
        struct stat st;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(enum log_level level)
{
        max_level = level;
        /* The daemon never forks without an exec: its pid, once. */
        self_pid = getpid();
        journal = stderr_is_journal();
}

int log_to_journal(void)
{
        return journal;
}

void log_set_journal_sender(int (*send)(const struct iovec *iov, int n))
{
        journal_send = send ? send : sd_journal_sendv;
}

int log_level_parse(const char *s)
{
        static const struct { const char *name; enum log_level level; } names[] = {
                { "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN },
                { "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
        };
        for (size_t i = 0; s && i < ARRAY_SIZE(names); i++)
                if (!strcmp(s, names[i].name))
                        return (int)names[i].level;
        return -1;
}

/* One record per line: a message may quote an algorithm's output, and a
 * newline there must not forge a log line (or a journal priority prefix)
 * of its own.  Appends to line[*len], at most up to cap - 6. */
static void escape(char *line, size_t *len, size_t cap, const char *msg, size_t mlen)
{
        size_t n = *len;
        for (size_t i = 0; i < mlen && n < cap - 6; i++) {
                unsigned char c = (unsigned char)msg[i];
                if (c == '\\') {
                        /* Doubled, so a written "\n" never reads as an escaped newline. */
                        line[n++] = '\\';
                        line[n++] = '\\';
                } else if (c >= 0x20 && c != 0x7f) {
                        line[n++] = (char)c;
                } else if (c == '\n') {
                        line[n++] = '\\';
                        line[n++] = 'n';
                } else if (c == '\t') {
                        line[n++] = '\t';
                } else {
                        n += (size_t)snprintf(line + n, 5, "\\x%02x", c);
                }
        }
        *len = n;
}

/* A field "NAME=value" into buf, the value escaped like the message. */
static struct iovec field(char *buf, size_t cap, const char *name, const char *value)
{
        size_t n = (size_t)snprintf(buf, cap, "%s=", name);
        if (n >= cap)
                n = cap - 1;
        escape(buf, &n, cap, value, strlen(value));
        return (struct iovec){ .iov_base = buf, .iov_len = n };
}

static int send_journal(enum log_level level, const struct log_job *job, const char *file, int line,
                        const char *func, const char *text, size_t text_len)
{
        char prio[16], code_line[32], code_file[256], code_func[128], id[128], algo[160], run[160];
        char *msg = xasprintf("MESSAGE=%.*s", (int)text_len, text);
        struct iovec iov[9];
        int n = 0;
        iov[n++] = (struct iovec){ .iov_base = msg, .iov_len = strlen(msg) };
        iov[n++] = (struct iovec){ .iov_base = prio, .iov_len = (size_t)snprintf(prio, sizeof prio, "PRIORITY=%d", (int)level) };
        iov[n++] = (struct iovec){ .iov_base = "SYSLOG_IDENTIFIER=edgecd", .iov_len = strlen("SYSLOG_IDENTIFIER=edgecd") };
        iov[n++] = field(code_file, sizeof code_file, "CODE_FILE", file);
        iov[n++] = (struct iovec){ .iov_base = code_line,
                                   .iov_len = (size_t)snprintf(code_line, sizeof code_line, "CODE_LINE=%d", line) };
        iov[n++] = field(code_func, sizeof code_func, "CODE_FUNC", func);
        if (job && job->job_id)
                iov[n++] = field(id, sizeof id, "JOB_ID", job->job_id);
        if (job && job->algorithm)
                iov[n++] = field(algo, sizeof algo, "ALGORITHM", job->algorithm);
        if (job && job->run_id && *job->run_id)
                iov[n++] = field(run, sizeof run, "RUN_ID", job->run_id);
        int rc = journal_send(iov, n);
        free(msg);
        return rc;
}

void log_write(enum log_level level, const struct log_job *job, const char *file, int line, const char *func,
               const char *fmt, ...)
{
        if (level > max_level)
                return;
        static const char *tags[8] = { [3] = "error", [4] = "warn", [6] = "info", [7] = "debug" };
        char msg[3072];
        int m = 0;
        /* The plain log names the job (or run) in the text. */
        if (job && job->job_id)
                m = snprintf(msg, sizeof msg, "job %s: ", job->job_id);
        else if (job && job->run_id && *job->run_id)
                m = snprintf(msg, sizeof msg, "run %s: ", job->run_id);
        if (m < 0 || (size_t)m >= sizeof msg)
                m = 0;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(msg + m, sizeof msg - (size_t)m, fmt, ap);
        va_end(ap);
        size_t mlen = k < 0 ? (size_t)m : (size_t)m + (size_t)k < sizeof msg ? (size_t)m + (size_t)k : sizeof msg - 1;

        char text[4096];
        size_t len = 0;
        if (journal) {
                escape(text, &len, sizeof text, msg, mlen);
                if (send_journal(level, job, file, line, func, text, len) >= 0)
                        return;
                /* The journal's socket refused it: the stream still takes it. */
                len = (size_t)snprintf(text, sizeof text, "<%d>", (int)level);
        } else {
                char ts[32];
                format_rfc3339(now_real_ms(), ts, sizeof ts);
                len = (size_t)snprintf(text, sizeof text, "%s edgecd[%d] %s: ", ts,
                               (int)(self_pid ? self_pid : getpid()), tags[level]);
        }
        escape(text, &len, sizeof text, msg, mlen);
        text[len++] = '\n';
        ssize_t ignored = write(STDERR_FILENO, text, len);
        (void)ignored;
}
