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
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
        if (len > sizeof line - 2)
                len = sizeof line - 2;
        line[len++] = '\n';
        ssize_t ignored = write(STDERR_FILENO, line, len);
        (void)ignored;
}
