/* log.h - the daemon's log.  Writes to stderr; under systemd (JOURNAL_STREAM
 * set) each line carries an sd-daemon "<N>" priority prefix so the journal
 * keeps the level.  Thread-safe: one write(2) per line.
 *
 * Only main.c, api.c and scheduler.c log errors; other modules return them. */
#ifndef EDGECD_LOG_H
#define EDGECD_LOG_H

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(enum log_level level);
/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
