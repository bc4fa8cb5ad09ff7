/* json.c - the plugins' JSON reader and writer (see json.h).
 *
 * The reader is a recursive-descent parser over a byte buffer.  Recursion is
 * bounded by JSON_MAX_DEPTH, so hostile nesting cannot exhaust the stack;
 * every container grows by doubling with overflow checks, and every value
 * consumes at least one input byte, so memory is bounded by the input size.
 * On the first error the partial tree is released and the error says where.
 *
 * The writer sits on struct out (plugin.c), which exits on write errors, so
 * none of the jw_* functions can fail.  Single-threaded. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct parser {
        const unsigned char *p;   /* next byte */
        const unsigned char *start;
        const unsigned char *end;
        struct json_error *err;
        bool failed;
};

__attribute__((format(printf, 3, 4)))
static int fail_at(struct parser *ps, const unsigned char *at, const char *fmt, ...)
{
        if (ps->failed)
                return -1;
        ps->failed = true;

        size_t line = 1, col = 1;
        for (const unsigned char *q = ps->start; q < at && q < ps->end; q++) {
                if (*q == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        ps->err->line = line;
        ps->err->column = col;

        char what[120];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        snprintf(ps->err->text, sizeof(ps->err->text),
                 "invalid JSON at line %zu, column %zu: %s", line, col, what);
        return -1;
}

static void skip_ws(struct parser *ps)
{
        while (ps->p < ps->end &&
               (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
                ps->p++;
}

/* A printable description of the byte at p for messages. */
static const char *describe(const struct parser *ps, const unsigned char *p, char buf[16])
{
        if (p >= ps->end)
                return "end of input";
        if (*p >= 0x21 && *p < 0x7f)
                snprintf(buf, 16, "'%c'", *p);
        else
                snprintf(buf, 16, "byte 0x%02x", *p);
        return buf;
}

/* Grow *items (each elem bytes) so that index n fits. */
static int grow(void **items, size_t *cap, size_t n, size_t elem)
{
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap : 4;
        while (ncap <= n) {
                if (ncap > SIZE_MAX / 2 / elem)
                        return -1;
                ncap *= 2;
        }
        void *q = realloc(*items, ncap * elem);
        if (!q)
                return -1;
        *items = q;
        *cap = ncap;
        return 0;
}

static int parse_value(struct parser *ps, int depth, struct json_value *ret);

static int hex4(const unsigned char *p, unsigned *ret)
{
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
                unsigned c = p[i], d;
                if (c >= '0' && c <= '9')
                        d = c - '0';
                else if (c >= 'a' && c <= 'f')
                        d = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        d = c - 'A' + 10;
                else
                        return -1;
                v = v << 4 | d;
        }
        *ret = v;
        return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
        if (cp < 0x80) {
                o[0] = (unsigned char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (unsigned char)(0xc0 | cp >> 6);
                o[1] = (unsigned char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (unsigned char)(0xe0 | cp >> 12);
                o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                o[2] = (unsigned char)(0x80 | (cp & 0x3f));
                return 3;
        }
        o[0] = (unsigned char)(0xf0 | cp >> 18);
        o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[3] = (unsigned char)(0x80 | (cp & 0x3f));
        return 4;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid:
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF are
 * rejected, as are sequences cut off by end. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
        unsigned c = p[0];
        size_t n;
        unsigned min;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                n = 2;
                min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                min = 0x10000;
        } else {
                return 0;
        }
        if ((size_t)(end - p) < n)
                return 0;
        unsigned cp = c & (0xff >> (n + 1));
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* At the opening quote.  The decoded string is never longer than its
 * source (an escape of 6 or 12 bytes yields at most 4), so one allocation of
 * the source length suffices. */
static int parse_string(struct parser *ps, char **ret, size_t *ret_len)
{
        const unsigned char *open = ps->p++;
        const unsigned char *q = ps->p;
        /* Find the closing quote first, to size the buffer. */
        while (q < ps->end && *q != '"') {
                if (*q == '\\' && q + 1 < ps->end)
                        q++;
                q++;
        }
        if (q >= ps->end)
                return fail_at(ps, open, "unterminated string");

        unsigned char *buf = malloc((size_t)(q - ps->p) + 1);
        if (!buf)
                return fail_at(ps, open, "out of memory");
        size_t n = 0;

        while (ps->p < q) {
                const unsigned char *at = ps->p;
                unsigned c = *at;
                if (c < 0x20) {
                        free(buf);
                        return fail_at(ps, at, "control character 0x%02x in string (must be escaped)", c);
                }
                if (c != '\\') {
                        size_t l = utf8_len(at, q);
                        if (l == 0) {
                                free(buf);
                                return fail_at(ps, at, "invalid UTF-8 in string");
                        }
                        memcpy(buf + n, at, l);
                        n += l;
                        ps->p += l;
                        continue;
                }
                /* An escape; the scan above guarantees at + 1 < q. */
                unsigned e = at[1];
                ps->p += 2;
                switch (e) {
                case '"': buf[n++] = '"'; continue;
                case '\\': buf[n++] = '\\'; continue;
                case '/': buf[n++] = '/'; continue;
                case 'b': buf[n++] = '\b'; continue;
                case 'f': buf[n++] = '\f'; continue;
                case 'n': buf[n++] = '\n'; continue;
                case 'r': buf[n++] = '\r'; continue;
                case 't': buf[n++] = '\t'; continue;
                case 'u': break;
                default:
                        free(buf);
                        if (e >= 0x21 && e < 0x7f)
                                return fail_at(ps, at, "invalid escape '\\%c' in string", e);
                        return fail_at(ps, at, "invalid escape: backslash before byte 0x%02x", e);
                }
                unsigned cp;
                if (q - ps->p < 4 || hex4(ps->p, &cp) < 0) {
                        free(buf);
                        return fail_at(ps, at, "invalid \\u escape (needs 4 hex digits)");
                }
                ps->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                        free(buf);
                        return fail_at(ps, at, "invalid \\u escape: lone low surrogate");
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                        unsigned lo;
                        if (q - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                            hex4(ps->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                                free(buf);
                                return fail_at(ps, at, "invalid \\u escape: high surrogate without low surrogate");
                        }
                        ps->p += 6;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                n += put_utf8(buf + n, cp);
        }
        ps->p = q + 1;
        buf[n] = '\0';
        *ret = (char *)buf;
        *ret_len = n;
        return 0;
}

static bool is_digit(unsigned c)
{
        return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, struct json_value *ret)
{
        const unsigned char *s = ps->p, *p = s;
        char tmp[16];
        bool integral = true;

        if (p < ps->end && *p == '-')
                p++;
        if (p >= ps->end || !is_digit(*p))
                return fail_at(ps, p, "expected a digit, got %s", describe(ps, p, tmp));
        if (*p == '0') {
                p++;
                if (p < ps->end && is_digit(*p))
                        return fail_at(ps, p, "leading zero in number");
        } else {
                while (p < ps->end && is_digit(*p))
                        p++;
        }
        if (p < ps->end && *p == '.') {
                integral = false;
                p++;
                if (p >= ps->end || !is_digit(*p))
                        return fail_at(ps, p, "expected a digit after '.', got %s", describe(ps, p, tmp));
                while (p < ps->end && is_digit(*p))
                        p++;
        }
        if (p < ps->end && (*p == 'e' || *p == 'E')) {
                integral = false;
                p++;
                if (p < ps->end && (*p == '+' || *p == '-'))
                        p++;
                if (p >= ps->end || !is_digit(*p))
                        return fail_at(ps, p, "expected a digit in exponent, got %s", describe(ps, p, tmp));
                while (p < ps->end && is_digit(*p))
                        p++;
        }

        /* strtod needs a NUL-terminated copy; the grammar above has already
         * fixed what it will see, so its only possible complaint is range. */
        size_t len = (size_t)(p - s);
        char small[64];
        char *copy = len < sizeof(small) ? small : malloc(len + 1);
        if (!copy)
                return fail_at(ps, s, "out of memory");
        memcpy(copy, s, len);
        copy[len] = '\0';
        errno = 0;
        double d = strtod(copy, NULL);
        int64_t iv = 0;
        bool fits = false;
        if (integral) {
                errno = 0;
                long long ll = strtoll(copy, NULL, 10);
                fits = errno == 0;
                iv = ll;
        }
        if (copy != small)
                free(copy);
        if (isinf(d))
                return fail_at(ps, s, "number out of range");

        ret->type = JSON_NUMBER;
        ret->is_int = integral && fits;
        ret->u.num.d = d;
        ret->u.num.i = ret->is_int ? iv : 0;
        ps->p = p;
        return 0;
}

static int parse_literal(struct parser *ps, const char *word, enum json_type type,
                         struct json_value *ret)
{
        size_t n = strlen(word);
        if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
                return fail_at(ps, ps->p, "invalid literal (expected %s)", word);
        ps->p += n;
        ret->type = type;
        return 0;
}

static int parse_array(struct parser *ps, int depth, struct json_value *ret)
{
        const unsigned char *open = ps->p++;
        struct json_value *items = NULL;
        size_t n = 0, cap = 0;
        char tmp[16];

        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                goto done;
        }
        for (;;) {
                if (grow((void **)&items, &cap, n, sizeof(*items)) < 0) {
                        fail_at(ps, open, "out of memory");
                        break;
                }
                skip_ws(ps);
                if (parse_value(ps, depth + 1, &items[n]) < 0)
                        break;
                n++;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (ps->p < ps->end && *ps->p == ']') {
                        ps->p++;
                        goto done;
                }
                fail_at(ps, ps->p, "expected ',' or ']' in array, got %s", describe(ps, ps->p, tmp));
                break;
        }
        for (size_t i = 0; i < n; i++)
                json_value_done(&items[i]);
        free(items);
        return -1;

done:
        if (n && n < cap) {
                struct json_value *shrunk = realloc(items, n * sizeof(*items));
                if (shrunk)
                        items = shrunk;
        }
        ret->type = JSON_ARRAY;
        ret->u.arr.items = items;
        ret->u.arr.n = n;
        return 0;
}

static int parse_object(struct parser *ps, int depth, struct json_value *ret)
{
        const unsigned char *open = ps->p++;
        struct json_member *members = NULL;
        size_t n = 0, cap = 0;
        char tmp[16];

        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                goto done;
        }
        for (;;) {
                if (grow((void **)&members, &cap, n, sizeof(*members)) < 0) {
                        fail_at(ps, open, "out of memory");
                        break;
                }
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') {
                        fail_at(ps, ps->p, "expected a string key, got %s", describe(ps, ps->p, tmp));
                        break;
                }
                struct json_member *m = &members[n];
                if (parse_string(ps, &m->key, &m->key_len) < 0)
                        break;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') {
                        fail_at(ps, ps->p, "expected ':' after key, got %s", describe(ps, ps->p, tmp));
                        free(m->key);
                        break;
                }
                ps->p++;
                skip_ws(ps);
                if (parse_value(ps, depth + 1, &m->value) < 0) {
                        free(m->key);
                        break;
                }
                n++;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (ps->p < ps->end && *ps->p == '}') {
                        ps->p++;
                        goto done;
                }
                fail_at(ps, ps->p, "expected ',' or '}' in object, got %s", describe(ps, ps->p, tmp));
                break;
        }
        for (size_t i = 0; i < n; i++) {
                free(members[i].key);
                json_value_done(&members[i].value);
        }
        free(members);
        return -1;

done:
        if (n && n < cap) {
                struct json_member *shrunk = realloc(members, n * sizeof(*members));
                if (shrunk)
                        members = shrunk;
        }
        ret->type = JSON_OBJECT;
        ret->u.obj.members = members;
        ret->u.obj.n = n;
        return 0;
}

static int parse_value(struct parser *ps, int depth, struct json_value *ret)
{
        char tmp[16];

        memset(ret, 0, sizeof(*ret));
        if (depth > JSON_MAX_DEPTH)
                return fail_at(ps, ps->p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        if (ps->p >= ps->end)
                return fail_at(ps, ps->p, "unexpected end of input, expected a value");
        switch (*ps->p) {
        case '{':
                return parse_object(ps, depth, ret);
        case '[':
                return parse_array(ps, depth, ret);
        case '"':
                ret->type = JSON_STRING;
                return parse_string(ps, &ret->u.str.s, &ret->u.str.len);
        case 't':
                return parse_literal(ps, "true", JSON_TRUE, ret);
        case 'f':
                return parse_literal(ps, "false", JSON_FALSE, ret);
        case 'n':
                return parse_literal(ps, "null", JSON_NULL, ret);
        default:
                if (*ps->p == '-' || is_digit(*ps->p))
                        return parse_number(ps, ret);
                return fail_at(ps, ps->p, "expected a value, got %s", describe(ps, ps->p, tmp));
        }
}

int json_parse(const char *buf, size_t len, struct json_value *ret, struct json_error *err)
{
        struct parser ps = {
                .p = (const unsigned char *)buf,
                .start = (const unsigned char *)buf,
                .end = (const unsigned char *)buf + len,
                .err = err,
        };
        struct json_value v;
        char tmp[16];

        skip_ws(&ps);
        if (ps.p >= ps.end)
                return fail_at(&ps, ps.p, "empty input");
        if (parse_value(&ps, 1, &v) < 0)
                return -1;
        skip_ws(&ps);
        if (ps.p < ps.end) {
                json_value_done(&v);
                return fail_at(&ps, ps.p, "unexpected %s after the value", describe(&ps, ps.p, tmp));
        }
        *ret = v;
        return 0;
}

void json_value_done(struct json_value *v)
{
        if (!v)
                return;
        switch (v->type) {
        case JSON_STRING:
                free(v->u.str.s);
                break;
        case JSON_ARRAY:
                for (size_t i = 0; i < v->u.arr.n; i++)
                        json_value_done(&v->u.arr.items[i]);
                free(v->u.arr.items);
                break;
        case JSON_OBJECT:
                for (size_t i = 0; i < v->u.obj.n; i++) {
                        free(v->u.obj.members[i].key);
                        json_value_done(&v->u.obj.members[i].value);
                }
                free(v->u.obj.members);
                break;
        default:
                break;
        }
        memset(v, 0, sizeof(*v));
        v->type = JSON_NULL;
}

const struct json_value *json_object_get(const struct json_value *obj, const char *key)
{
        if (!obj || obj->type != JSON_OBJECT)
                return NULL;
        size_t klen = strlen(key);
        for (size_t i = obj->u.obj.n; i-- > 0;) {
                const struct json_member *m = &obj->u.obj.members[i];
                if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
                        return &m->value;
        }
        return NULL;
}

const char *json_type_name(enum json_type t)
{
        switch (t) {
        case JSON_NULL: return "null";
        case JSON_FALSE:
        case JSON_TRUE: return "boolean";
        case JSON_NUMBER: return "number";
        case JSON_STRING: return "string";
        case JSON_ARRAY: return "array";
        case JSON_OBJECT: return "object";
        }
        return "unknown";
}

void json_format_double(double d, char buf[static 32])
{
        /* 17 significant digits always round-trip; fewer read better. */
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, 32, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        return;
        }
}

/* ---- writer ---- */

void jw_init(struct jw *w, struct out *o)
{
        memset(w, 0, sizeof(*w));
        w->o = o;
        w->first[0] = true;
}

/* Before a value or a key: the comma, unless first in its container or the
 * value of a key just written. */
static void sep(struct jw *w)
{
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (!w->first[w->depth])
                out_write(w->o, ",", 1);
        w->first[w->depth] = false;
}

static void open_container(struct jw *w, char c)
{
        sep(w);
        if (w->depth >= JSON_MAX_DEPTH)
                plugin_die(EXIT_INTERNAL, "json writer: nesting deeper than %d levels", JSON_MAX_DEPTH);
        out_write(w->o, &c, 1);
        w->first[++w->depth] = true;
}

static void close_container(struct jw *w, char c)
{
        if (w->depth > 0)
                w->depth--;
        out_write(w->o, &c, 1);
}

void jw_object_begin(struct jw *w) { open_container(w, '{'); }
void jw_object_end(struct jw *w) { close_container(w, '}'); }
void jw_array_begin(struct jw *w) { open_container(w, '['); }
void jw_array_end(struct jw *w) { close_container(w, ']'); }

static void put_escaped(struct out *o, const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s, *end = p + len;
        const unsigned char *run = p;   /* start of bytes not yet written */

        out_write(o, "\"", 1);
        while (p < end) {
                unsigned c = *p;
                const char *esc = NULL;
                char ubuf[8];
                size_t l = 1;

                if (c == '"')
                        esc = "\\\"";
                else if (c == '\\')
                        esc = "\\\\";
                else if (c == '\n')
                        esc = "\\n";
                else if (c == '\r')
                        esc = "\\r";
                else if (c == '\t')
                        esc = "\\t";
                else if (c == '\b')
                        esc = "\\b";
                else if (c == '\f')
                        esc = "\\f";
                else if (c < 0x20) {
                        snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                        esc = ubuf;
                } else if (c >= 0x80) {
                        l = utf8_len(p, end);
                        if (l == 0) {
                                esc = "\xef\xbf\xbd";   /* U+FFFD for an invalid byte */
                                l = 1;
                        }
                }
                if (esc) {
                        out_write(o, run, (size_t)(p - run));
                        out_puts(o, esc);
                        p += l;
                        run = p;
                } else {
                        p += l;
                }
        }
        out_write(o, run, (size_t)(p - run));
        out_write(o, "\"", 1);
}

void jw_key(struct jw *w, const char *key)
{
        sep(w);
        put_escaped(w->o, key, strlen(key));
        out_write(w->o, ":", 1);
        w->after_key = true;
}

void jw_string(struct jw *w, const char *s, size_t len)
{
        sep(w);
        put_escaped(w->o, s, len);
}

void jw_str(struct jw *w, const char *s)
{
        jw_string(w, s, strlen(s));
}

void jw_int(struct jw *w, int64_t v)
{
        char buf[32];
        sep(w);
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        out_puts(w->o, buf);
}

void jw_double(struct jw *w, double v)
{
        char buf[32];
        sep(w);
        if (!isfinite(v)) {
                out_puts(w->o, "null");
                return;
        }
        json_format_double(v, buf);
        out_puts(w->o, buf);
}

void jw_bool(struct jw *w, bool v)
{
        sep(w);
        out_puts(w->o, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
        sep(w);
        out_puts(w->o, "null");
}

void jw_raw(struct jw *w, const char *s, size_t len)
{
        sep(w);
        out_write(w->o, s, len);
}

void jw_value(struct jw *w, const struct json_value *v)
{
        switch (v->type) {
        case JSON_NULL:
                jw_null(w);
                break;
        case JSON_FALSE:
        case JSON_TRUE:
                jw_bool(w, v->type == JSON_TRUE);
                break;
        case JSON_NUMBER:
                if (v->is_int)
                        jw_int(w, v->u.num.i);
                else
                        jw_double(w, v->u.num.d);
                break;
        case JSON_STRING:
                jw_string(w, v->u.str.s, v->u.str.len);
                break;
        case JSON_ARRAY:
                jw_array_begin(w);
                for (size_t i = 0; i < v->u.arr.n; i++)
                        jw_value(w, &v->u.arr.items[i]);
                jw_array_end(w);
                break;
        case JSON_OBJECT:
                jw_object_begin(w);
                for (size_t i = 0; i < v->u.obj.n; i++) {
                        const struct json_member *m = &v->u.obj.members[i];
                        sep(w);
                        put_escaped(w->o, m->key, m->key_len);
                        out_write(w->o, ":", 1);
                        w->after_key = true;
                        jw_value(w, &m->value);
                }
                jw_object_end(w);
                break;
        }
}
