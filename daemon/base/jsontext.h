/* jsontext.h - JSON kept as text: checked without building a tree.
 *
 * A parsed tree costs far more than its text (1 MiB of `{},` is about 70 MiB
 * of jansson objects), so what the daemon keeps - results, queued
 * parameters - stays text, and what it only needs to vouch for is checked
 * with yajl's streaming parser, whose memory is one byte per nesting level.
 * Any thread. */
#ifndef EDGECD_JSONTEXT_H
#define EDGECD_JSONTEXT_H

#include <stddef.h>

#include "error.h"

/* Is text[0..len) one complete JSON value (RFC 8259: any value, UTF-8,
 * nothing but whitespace after it)?  max_depth > 0 also caps the nesting of
 * arrays and objects.  ERR_INVALID "line L, column C: what", with "nesting
 * deeper than N" for the depth. */
int jsontext_check(const char *text, size_t len, size_t max_depth, struct err *err);

/* JSON text written piece by piece, for what is rendered on every job's
 * way (a jansson tree of it, then dumped, costs several times as much).
 * Start from JSONBUF_INIT; text is NUL-terminated, the caller's to free. */
struct jsonbuf {
        char *text;
        size_t len, cap;
};

#define JSONBUF_INIT { .text = NULL }

void jsonbuf_put(struct jsonbuf *b, const char *s, size_t n);
#define jsonbuf_lit(b, s) jsonbuf_put((b), "" s, sizeof(s) - 1)
/* s as a JSON string, byte for byte as jansson's json_dumps() writes it
 * (", \ and control characters escaped, \u00XX for those without a short
 * form, the rest as it is), any byte that is not UTF-8 as U+FFFD, as
 * json_string_lossy() takes it. */
void jsonbuf_string(struct jsonbuf *b, const char *s);

#endif
