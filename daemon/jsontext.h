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

#endif
