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
        size_t depth, max, reached_at;
        bool too_deep;
};

static int open_level(void *ctx)
{
        struct depth *d = ctx;
        if (d->max && ++d->depth > d->max) {
                d->too_deep = true;
                return 0;   /* cancels the parse */
        }
        return 1;
}

static int close_level(void *ctx)
{
        struct depth *d = ctx;
        if (d->max)
                d->depth--;
        return 1;
}

static const yajl_callbacks callbacks = {
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
        yajl_status s = yajl_parse(h, (const unsigned char *)text, len);
        bool at_end = false;
        if (s == yajl_status_ok) {
                s = yajl_complete_parse(h);
                at_end = true;
        }
        int ret = 0;
        if (s != yajl_status_ok) {
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
