/* progress.c - see progress.h. */
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void progress_init(struct progress *p, FILE *out)
{
        memset(p, 0, sizeof *p);
        p->out = out;
        p->tty = isatty(fileno(out));
}

static size_t columns(FILE *out)
{
        struct winsize ws;
        if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
                return ws.ws_col;
        return 80;
}

/* "running 45% message" (no elapsed time): what a plain line compares. */
static char *describe(const json_t *job)
{
        const char *status = json_string_value(json_object_get(job, "status"));
        const json_t *prog = json_object_get(job, "progress");
        const json_t *frac = json_object_get(prog, "fraction");
        const char *msg = json_string_value(json_object_get(prog, "message"));
        char pct[32] = "";
        if (json_is_number(frac))
                snprintf(pct, sizeof pct, " %3.0f%%", json_number_value(frac) * 100.0);
        char *s = NULL;
        bool more = pct[0] || msg;
        if (asprintf(&s, "%-*s%s%s%s", more ? 9 : 0, status ? status : "?", pct, msg ? "  " : "",
                     msg ? msg : "") < 0)
                return NULL;
        return s;
}

/* Cuts s to at most max bytes, not inside a UTF-8 sequence. */
static void cut(char *s, size_t max)
{
        size_t n = strlen(s);
        if (n <= max)
                return;
        while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
                max--;
        s[max] = '\0';
}

static void draw_tty(struct progress *p, const char *what, double elapsed)
{
        char *line = NULL;
        if (asprintf(&line, "[%6.1fs] %s", elapsed, what) < 0)
                return;
        cut(line, columns(p->out) - 1);
        fprintf(p->out, "\r\033[K%s", line);
        fflush(p->out);
        p->drawn = true;
        free(line);
}

static void draw_plain(struct progress *p, char *what, double elapsed)
{
        if (p->last && !strcmp(p->last, what)) {
                free(what);
                return;
        }
        fprintf(p->out, "[%6.1fs] %s\n", elapsed, what);
        fflush(p->out);
        free(p->last);
        p->last = what;
}

void progress_show(struct progress *p, const json_t *job, double elapsed)
{
        char *what = describe(job);
        if (!what)
                return;
        if (p->tty) {
                draw_tty(p, what, elapsed);
                free(what);
        } else {
                draw_plain(p, what, elapsed);
        }
}

void progress_done(struct progress *p)
{
        if (p->tty && p->drawn) {
                fputc('\n', p->out);
                fflush(p->out);
        }
        free(p->last);
        p->last = NULL;
}
