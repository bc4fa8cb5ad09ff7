/* json.h - a small, careful JSON reader and writer for testkit (the test
 * plugins' binary), a static musl binary with no libraries.  The example
 * plugins use jansson (plugins/common/plugin.h).
 *
 * Reader: RFC 8259, strict.  Nesting is capped at JSON_MAX_DEPTH, strings
 * must be valid UTF-8 (escapes included: a lone surrogate is an error),
 * numbers are kept as a double plus, for integer literals that fit, an exact
 * int64.  Memory use is bounded by the input size (every value needs at
 * least one byte of input).  Bad input is an error with line and column,
 * never a crash.
 *
 * Writer: emits compact JSON to a struct out (plugin.h), inserting commas
 * itself.  Strings are escaped; invalid UTF-8 becomes U+FFFD so the output
 * is always valid JSON.  Write errors end the process (plugin.h).
 *
 * Single-threaded, like the plugins. */
#ifndef PLUGIN_JSON_H
#define PLUGIN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 256

enum json_type {
        JSON_NULL,
        JSON_FALSE,
        JSON_TRUE,
        JSON_NUMBER,
        JSON_STRING,
        JSON_ARRAY,
        JSON_OBJECT,
};

struct json_member;

struct json_value {
        enum json_type type;
        /* JSON_NUMBER only: the literal had no fraction or exponent and fits
         * int64, so u.num.i holds it exactly (u.num.d holds it rounded). */
        bool is_int;
        union {
                struct { double d; int64_t i; } num;
                struct { char *s; size_t len; } str;   /* NUL-terminated, may hold NULs */
                struct { struct json_value *items; size_t n; } arr;
                struct { struct json_member *members; size_t n; } obj;
        } u;
};

struct json_member {
        char *key;                /* NUL-terminated, may hold NULs */
        size_t key_len;
        struct json_value value;
};

struct json_error {
        size_t line, column;      /* 1-based, column in bytes */
        char text[160];           /* "invalid JSON at line 1, column 7: ..." */
};

/* Parse buf[0..len) (need not be NUL-terminated) into *ret.  0 on success
 * (*ret owns everything; release with json_value_done), -1 on error with
 * err filled (*ret untouched). */
int json_parse(const char *buf, size_t len, struct json_value *ret, struct json_error *err);

/* Release what v owns; v becomes JSON_NULL.  NULL is fine. */
void json_value_done(struct json_value *v);

/* The member named key (last one wins, like jansson), or NULL.  obj may be
 * any value; NULL when it is not an object. */
const struct json_value *json_object_get(const struct json_value *obj, const char *key);

/* "null", "boolean", "number", "string", "array", "object". */
const char *json_type_name(enum json_type t);

/* Shortest of %.15g, %.16g, %.17g that reads back as d.  buf needs 32 bytes.
 * Only for finite d. */
void json_format_double(double d, char buf[static 32]);

/* ---- writer ---- */

struct out;

struct jw {
        struct out *o;
        int depth;
        bool after_key;
        bool first[JSON_MAX_DEPTH + 1];
};

void jw_init(struct jw *w, struct out *o);
void jw_object_begin(struct jw *w);
void jw_object_end(struct jw *w);
void jw_array_begin(struct jw *w);
void jw_array_end(struct jw *w);
void jw_key(struct jw *w, const char *key);
void jw_string(struct jw *w, const char *s, size_t len);
void jw_str(struct jw *w, const char *s);            /* NUL-terminated */
void jw_int(struct jw *w, int64_t v);
void jw_double(struct jw *w, double v);               /* non-finite -> null */
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* A parsed value, re-serialized compactly. */
void jw_value(struct jw *w, const struct json_value *v);
/* Raw bytes as the next value: the caller vouches that they are JSON. */
void jw_raw(struct jw *w, const char *s, size_t len);

#endif
