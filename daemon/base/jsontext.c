/* jsontext.c - JSON checked as text (see jsontext.h), with yajl.
 *
 * yajl 2.1 is stricter than jansson where it matters here (it takes
 * "\u0000" in object keys, which is valid JSON) and looser in two places:
 * it takes a form feed and a vertical tab as whitespace, and it checks
 * UTF-8 only for its byte structure (overlong forms, encoded surrogates and
 * code points past U+10FFFF pass).  JSON allows no raw control character
 * but the whitespace tab, newline and carriage return anywhere (in strings
 * they must be escaped) and bytes above 0x7f only inside strings, so any
 * other raw control character and any invalid UTF-8 are refused before yajl
 * sees the text: what is accepted here is spliced into API replies as it
 * is. */
#include "jsontext.h"

#include <string.h>

#include <yajl/yajl_parse.h>

#include "util.h"

struct depth {
        size_t depth, max;
        bool too_deep;
        /* Where the top-level value ends: yajl 2.1 lets an unterminated
         * string after it through (`{} "`), so the rest is looked at here. */
        yajl_handle h;
        bool flushing;             /* in yajl_complete_parse(): its offsets are not the text's */
        bool ended;
        size_t end;                /* just past the value (the whole text when it ended in the flush) */
};

static void value_done(struct depth *d)
{
        if (d->depth == 0 && !d->ended) {
                d->ended = true;
                d->end = d->flushing ? SIZE_MAX : yajl_get_bytes_consumed(d->h);
        }
}

static int on_scalar(void *ctx)
{
        value_done(ctx);
        return 1;
}

static int on_boolean(void *ctx, int b)
{
        (void)b;
        return on_scalar(ctx);
}

static int on_number(void *ctx, const char *s, size_t n)
{
        (void)s, (void)n;
        return on_scalar(ctx);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
        (void)s, (void)n;
        return on_scalar(ctx);
}

static int open_level(void *ctx)
{
        struct depth *d = ctx;
        if (++d->depth > d->max && d->max) {
                d->too_deep = true;
                return 0;   /* cancels the parse */
        }
        return 1;
}

static int close_level(void *ctx)
{
        struct depth *d = ctx;
        d->depth--;
        value_done(d);
        return 1;
}

static const yajl_callbacks callbacks = {
        .yajl_null = on_scalar,
        .yajl_boolean = on_boolean,
        .yajl_number = on_number,
        .yajl_string = on_string,
        .yajl_start_map = open_level,
        .yajl_end_map = close_level,
        .yajl_start_array = open_level,
        .yajl_end_array = close_level,
};

/* 1-based line and column of byte offset off. */
static void position(const char *text, size_t off, size_t *line, size_t *col)
{
        *line = 1;
        *col = 1;
        for (size_t i = 0; i < off; i++) {
                if (text[i] == '\n') {
                        (*line)++;
                        *col = 1;
                } else {
                        (*col)++;
                }
        }
}

int jsontext_check(const char *text, size_t len, size_t max_depth, struct err *err)
{
        size_t line, col, bad;
        if (!utf8_valid(text, len, &bad)) {
                position(text, bad, &line, &col);
                return err_set(err, ERR_INVALID, 0, "line %zu, column %zu: invalid UTF-8", line, col);
        }
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)text[i];
                if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                        position(text, i, &line, &col);
                        return err_set(err, ERR_INVALID, 0, "line %zu, column %zu: raw control character 0x%02x",
                                       line, col, (unsigned)text[i]);
                }
        }
        struct depth d = { .max = max_depth };
        yajl_handle h = yajl_alloc(&callbacks, NULL, &d);
        if (!h)
                abort();
        d.h = h;
        yajl_status s = yajl_parse(h, (const unsigned char *)text, len);
        bool at_end = false;
        if (s == yajl_status_ok) {
                d.flushing = true;
                s = yajl_complete_parse(h);
                at_end = true;
        }
        int ret = 0;
        size_t rest = d.ended && d.end < len ? d.end : len;
        while (rest < len && (text[rest] == ' ' || text[rest] == '\t' || text[rest] == '\n' || text[rest] == '\r'))
                rest++;
        if (s == yajl_status_ok && rest < len) {
                position(text, rest, &line, &col);
                ret = err_set(err, ERR_INVALID, 0, "line %zu, column %zu: trailing garbage after the value", line, col);
        } else if (s != yajl_status_ok) {
                /* After complete_parse yajl counts a chunk of its own, not
                 * the text: the problem is at the end. */
                size_t off = at_end ? len : yajl_get_bytes_consumed(h);
                if (off > len)
                        off = len;
                position(text, off, &line, &col);
                if (d.too_deep) {
                        ret = err_set(err, ERR_INVALID, 0, "line %zu, column %zu: nesting deeper than %zu levels",
                                      line, col, max_depth);
                } else {
                        unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text, len);
                        char what[256];
                        snprintf(what, sizeof what, "%s", msg ? (const char *)msg : "not JSON");
                        yajl_free_error(h, msg);
                        what[strcspn(what, "\n")] = '\0';
                        ret = err_set(err, ERR_INVALID, 0, "line %zu, column %zu: %s", line, col, what);
                }
        }
        yajl_free(h);
        return ret;
}

void jsonbuf_put(struct jsonbuf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                b->cap = 2 * (b->len + n + 1) < 256 ? 256 : 2 * (b->len + n + 1);
                b->text = xrealloc(b->text, b->cap);
        }
        memcpy(b->text + b->len, s, n);
        b->len += n;
        b->text[b->len] = '\0';
}

void jsonbuf_string(struct jsonbuf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(s);
        jsonbuf_lit(b, "\"");
        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80) {
                        size_t n = utf8_seq_len(s + i, len - i);
                        if (n)
                                jsonbuf_put(b, s + i, n);
                        else
                                jsonbuf_lit(b, "\xEF\xBF\xBD");
                        i += n ? n : 1;
                        continue;
                }
                if (c >= 0x20 && c != '"' && c != '\\') {
                        size_t run = i + 1;
                        while (run < len && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x80 &&
                               s[run] != '"' && s[run] != '\\')
                                run++;
                        jsonbuf_put(b, s + i, run - i);
                        i = run;
                        continue;
                }
                char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                size_t n = 2;
                switch (c) {
                case '"':  esc[1] = '"'; break;
                case '\\': esc[1] = '\\'; break;
                case '\b': esc[1] = 'b'; break;
                case '\f': esc[1] = 'f'; break;
                case '\n': esc[1] = 'n'; break;
                case '\r': esc[1] = 'r'; break;
                case '\t': esc[1] = 't'; break;
                default:   n = 6; break;
                }
                jsonbuf_put(b, esc, n);
                i++;
        }
        jsonbuf_lit(b, "\"");
}
