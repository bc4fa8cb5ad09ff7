/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static enum log_level max_level = LOG_LVL_INFO;
static int journal_prefix;

void log_init(enum log_level level)
{
        max_level = level;
        journal_prefix = getenv("JOURNAL_STREAM") != NULL;
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

void log_msg(enum log_level level, const char *fmt, ...)
{
        if (level > max_level)
                return;
        static const char *tags[8] = { [3] = "error", [4] = "warn", [6] = "info", [7] = "debug" };
        char line[4096];
        int n;
        if (journal_prefix) {
                n = snprintf(line, sizeof line, "<%d>", (int)level);
        } else {
                char ts[32];
                format_rfc3339(now_real_ms(), ts, sizeof ts);
                n = snprintf(line, sizeof line, "%s edgecd[%d] %s: ", ts, (int)getpid(), tags[level]);
        }
        char msg[3072];
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
        /* One record per line: a message may quote an algorithm's output,
         * and a newline there must not forge a log line (or a journal
         * priority prefix) of its own. */
        size_t len = (size_t)n;
        for (size_t i = 0; i < mlen && len < sizeof line - 6; i++) {
                unsigned char c = (unsigned char)msg[i];
                if (c == '\\') {
                        /* Doubled, so a written "\n" never reads as an escaped newline. */
                        line[len++] = '\\';
                        line[len++] = '\\';
                } else if (c >= 0x20 && c != 0x7f) {
                        line[len++] = (char)c;
                } else if (c == '\n') {
                        line[len++] = '\\';
                        line[len++] = 'n';
                } else if (c == '\t') {
                        line[len++] = '\t';
                } else {
                        len += (size_t)snprintf(line + len, 5, "\\x%02x", c);
                }
        }
        line[len++] = '\n';
        ssize_t ignored = write(STDERR_FILENO, line, len);
        (void)ignored;
}
