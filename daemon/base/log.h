/* log.h - the daemon's log.  Thread-safe.
 *
 * Outside the journal: one line per record on stderr, "TIME edgecd[PID]
 * LEVEL: message", one write(2) each.  When stderr is the journal
 * (JOURNAL_STREAM names stderr's device and inode, as systemd sets it for a
 * service's stdio): each record goes to the journal with sd_journal_sendv,
 * with PRIORITY, MESSAGE, SYSLOG_IDENTIFIER, CODE_FILE, CODE_LINE and
 * CODE_FUNC, and for a record about a job JOB_ID, ALGORITHM and RUN_ID
 * (those known); should the journal's socket refuse it, the line goes to
 * stderr with an sd-daemon "<N>" priority prefix instead.
 *
 * A record about a job is written with log_job(): its message is prefixed
 * "job ID: " (or "run RUN_ID: " when only the run is known), so that the
 * plain log reads as before.
 *
 * Only main.c, api.c and scheduler.c log errors; other modules return them. */
#ifndef EDGECD_LOG_H
#define EDGECD_LOG_H

#include <sys/uio.h>

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* What a record is about; any member may be NULL. */
struct log_job {
        const char *job_id, *algorithm, *run_id;
};

void log_init(enum log_level level);
/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *s);
/* True when log_init() found stderr to be the journal. */
int log_to_journal(void);
void log_write(enum log_level level, const struct log_job *job, const char *file, int line, const char *func,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* For tests: what sends a record to the journal (sd_journal_sendv by
 * default; NULL restores it).  A negative return sends the line to stderr. */
void log_set_journal_sender(int (*send)(const struct iovec *iov, int n));

#define log_at(level, job, ...) log_write(level, job, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, NULL, __VA_ARGS__)
/* A record about a job: log_job(LOG_LVL_INFO, j->id, j->manifest->name,
 * run_id, "succeeded in %lld ms", ms). */
#define log_job(level, job_id, algorithm, run_id, ...) \
        log_at(level, (&(const struct log_job){ (job_id), (algorithm), (run_id) }), __VA_ARGS__)

#endif
