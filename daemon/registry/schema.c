/* schema.c - the JSON Schema subset of schema.h: schema_check() and
 * schema_index_new() when a manifest is loaded, schema_validate() for every
 * submitted job.
 *
 * Owns no state but a schema's index; any thread (HTTP threads validate
 * concurrently against the same schema and index, which nothing modifies
 * after load).
 *
 * Both walks carry a JSON pointer (RFC 6901: "~" -> "~0", "/" -> "~1") in a
 * fixed buffer and recurse at most SCHEMA_MAX_DEPTH levels, so a hostile
 * schema or parameter object cannot exhaust the stack. */
#include "schema.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/util.h"

#define SCHEMA_MAX_DEPTH 64

/* jansson's object iterator takes a non-const object; nothing here writes. */
static inline json_t *mut(const json_t *j)
{
        return (json_t *)(uintptr_t)j;
}

struct ptr {
        char buf[ERR_FIELD_MAX];
        size_t len;
};

/* Append s (escaped when asked) as far as it fits, whole characters
 * only: a cut through one would leave bytes that are not UTF-8, and the
 * field would be dropped from the answer.  Cut, it still names the right
 * subtree. */
static void ptr_put(struct ptr *p, const char *s, bool escape)
{
        size_t n = p->len;
        while (*s) {
                size_t len = utf8_seq_len(s, strnlen(s, 4)), room = len;
                if (len == 0)
                        len = room = 1;   /* not UTF-8: as it is (jansson and yajl let none through) */
                else if (escape && (*s == '~' || *s == '/'))
                        room = 2;
                if (n + room >= sizeof p->buf)
                        break;
                if (room == 2 && len == 1) {
                        p->buf[n++] = '~';
                        p->buf[n++] = *s == '~' ? '0' : '1';
                } else {
                        memcpy(p->buf + n, s, len);
                        n += len;
                }
                s += len;
        }
        p->buf[n] = '\0';
        p->len = n;
}

static void ptr_init(struct ptr *p, const char *base)
{
        p->len = 0;
        ptr_put(p, base ? base : "", false);
}

/* Append "/seg", escaped; returns the old length for ptr_pop(). */
static size_t ptr_push(struct ptr *p, const char *seg)
{
        size_t old = p->len;
        ptr_put(p, "/", false);
        ptr_put(p, seg, true);
        return old;
}

static size_t ptr_push_index(struct ptr *p, size_t i)
{
        /* Digits by hand: one per array item checked, and snprintf() was
         * a third of the checking of a matrix of numbers. */
        char idx[24];
        char *d = idx + sizeof idx;
        *--d = '\0';
        do
                *--d = (char)('0' + i % 10);
        while ((i /= 10) != 0);
        return ptr_push(p, d);
}

static void ptr_pop(struct ptr *p, size_t old)
{
        p->len = old;
        p->buf[old] = '\0';
}

/* err_set() clears the field, so the field goes in afterwards. */
static int fail(struct err *err, const struct ptr *p, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail(struct err *err, const struct ptr *p, const char *fmt, ...)
{
        char msg[ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof msg) {
                /* Cut (a long key in it): end on a whole character, or the
                 * message is not UTF-8 and a JSON answer cannot carry it. */
                size_t len = strlen(msg), i = len;
                while (i > 0 && len - i < 3 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80)
                        i--;
                if (i > 0 && utf8_seq_len(msg + i - 1, len - i + 1) == 0)
                        msg[i - 1] = '\0';
        }
        err_set(err, ERR_INVALID, 0, "%s", msg);
        err_set_field(err, p->buf);
        return -1;
}

static const char *const type_names[] = {
        "object", "array", "string", "number", "integer", "boolean", "null",
};

static bool type_name_known(const char *s)
{
        for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
                if (!strcmp(s, type_names[i]))
                        return true;
        return false;
}

/* The JSON Schema name of a value's type; a real is a "number". */
static const char *kind(const json_t *j)
{
        switch (json_typeof(j)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        case JSON_NULL: return "null";
        }
        return "unknown";
}

/* x against d, exactly: x as a double rounds past 2^53 (9007199254740993
 * would equal 9007199254740992.0).  JSON has no NaN (nor does jansson). */
static int int_real_cmp(json_int_t x, double d)
{
        if (d >= 0x1p63)
                return -1;
        if (d < -0x1p63)
                return 1;
        double f = floor(d);   /* in [-2^63, 2^63): exact as an integer */
        json_int_t fi = (json_int_t)f;
        if (x != fi)
                return x < fi ? -1 : 1;
        return d > f ? -1 : 0;   /* x == floor(d): below d when d has a fraction */
}

/* Compare two numbers exactly, whatever their kinds. */
static int num_cmp(const json_t *a, const json_t *b)
{
        if (json_is_integer(a) && json_is_integer(b)) {
                json_int_t x = json_integer_value(a), y = json_integer_value(b);
                return x < y ? -1 : x > y;
        }
        if (json_is_integer(a))
                return int_real_cmp(json_integer_value(a), json_real_value(b));
        if (json_is_integer(b))
                return -int_real_cmp(json_integer_value(b), json_real_value(a));
        double x = json_real_value(a), y = json_real_value(b);
        return x < y ? -1 : x > y;
}

/* JSON Schema equality: like json_equal(), but 1 equals 1.0. */
static bool value_equal(const json_t *a, const json_t *b, int depth)
{
        if (depth > SCHEMA_MAX_DEPTH)
                return false;
        if (json_is_number(a) && json_is_number(b))
                return num_cmp(a, b) == 0;
        if (json_typeof(a) != json_typeof(b))
                return false;
        if (json_is_array(a)) {
                if (json_array_size(a) != json_array_size(b))
                        return false;
                for (size_t i = 0; i < json_array_size(a); i++)
                        if (!value_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
                                return false;
                return true;
        }
        if (json_is_object(a)) {
                if (json_object_size(a) != json_object_size(b))
                        return false;
                const char *k;
                const json_t *v;
                json_object_foreach(mut(a), k, v) {
                        const json_t *w = json_object_get(b, k);
                        if (!w || !value_equal(v, w, depth + 1))
                                return false;
                }
                return true;
        }
        return json_equal(a, b);
}

/* ---- hash sets of values: enum members, required names ---- */

/* Keys are told apart by a 64-bit hash; seeded once per process from
 * getrandom(), so a client cannot craft two keys that collide (and get a
 * valid object refused as holding a duplicate). */
static uint64_t key_seed;
static pthread_once_t key_seed_once = PTHREAD_ONCE_INIT;

static void seed_keys(void)
{
        if (getrandom(&key_seed, sizeof key_seed, 0) != sizeof key_seed)
                key_seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL;
}

static uint64_t seed(void)
{
        pthread_once(&key_seed_once, seed_keys);
        return key_seed;
}

static uint64_t key_hash(const unsigned char *s, size_t n)
{
        uint64_t h = 1469598103934665603ULL ^ seed();
        for (size_t i = 0; i < n; i++)
                h = (h ^ s[i]) * 1099511628211ULL;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 32;
        return h ? h : 1;
}

static uint64_t mix64(uint64_t h)
{
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53ULL;
        h ^= h >> 33;
        return h;
}

/* What a value costs to hold or hash: its nodes and its string bytes (keys
 * included).  value_equal() values have the same size, so a value larger
 * than every member of an enum is none of them. */
struct size {
        size_t nodes, bytes;
};

/* A real that is an integer in int64 range: that integer.  1.0 and 1 are
 * one value to value_equal(), so they must hash the same. */
static bool real_integer(double d, json_int_t *ret)
{
        if (!(d >= -0x1p63 && d < 0x1p63) || d != floor(d))
                return false;
        *ret = (json_int_t)d;
        return true;
}

/* A hash of v that value_equal() keeps (equal values hash the same),
 * seeded like key_hash().  Takes v's size from *left; false, with no
 * hash, once v turns out larger. */
static bool value_hash(const json_t *v, int depth, struct size *left, uint64_t *ret)
{
        if (left->nodes == 0)
                return false;
        left->nodes--;
        uint64_t h;
        json_int_t i;
        switch (json_typeof(v)) {
        case JSON_STRING: {
                size_t n = json_string_length(v);
                if (n > left->bytes)
                        return false;
                left->bytes -= n;
                h = key_hash((const unsigned char *)json_string_value(v), n);
                break;
        }
        case JSON_INTEGER:
                h = mix64(seed() ^ 0x1000 ^ (uint64_t)json_integer_value(v));
                break;
        case JSON_REAL: {
                double d = json_real_value(v);
                if (real_integer(d, &i)) {
                        h = mix64(seed() ^ 0x1000 ^ (uint64_t)i);
                } else {
                        uint64_t bits;
                        memcpy(&bits, &d, sizeof bits);
                        h = mix64(seed() ^ 0x2000 ^ mix64(bits));
                }
                break;
        }
        case JSON_TRUE: h = mix64(seed() ^ 0x3001); break;
        case JSON_FALSE: h = mix64(seed() ^ 0x3002); break;
        case JSON_NULL: h = mix64(seed() ^ 0x3003); break;
        case JSON_ARRAY:
                h = mix64(seed() ^ 0x4000 ^ json_array_size(v));
                /* Past the depth value_equal() takes nothing is equal: no
                 * need to look further (nor to recurse without end). */
                for (size_t k = 0; k < json_array_size(v) && depth < SCHEMA_MAX_DEPTH; k++) {
                        uint64_t c;
                        if (!value_hash(json_array_get(v, k), depth + 1, left, &c))
                                return false;
                        h = mix64(h + c);
                }
                break;
        case JSON_OBJECT: {
                /* A sum: the same whatever order the members come in. */
                uint64_t sum = 0;
                const char *k;
                const json_t *m;
                json_object_foreach(mut(v), k, m) {
                        if (depth >= SCHEMA_MAX_DEPTH)
                                break;
                        size_t n = strlen(k);
                        uint64_t c;
                        if (n > left->bytes)
                                return false;
                        left->bytes -= n;
                        if (!value_hash(m, depth + 1, left, &c))
                                return false;
                        sum += mix64(key_hash((const unsigned char *)k, n) + c);
                }
                h = mix64(seed() ^ 0x5000 ^ json_object_size(v) ^ mix64(sum));
                break;
        }
        default:
                h = 0;
        }
        *ret = h ? h : 1;
        return true;
}

struct vslot {
        uint32_t tag;              /* the hash's high half, never 0; 0: empty */
        uint32_t at;               /* the member's index in the list */
};

static uint32_t vtag(uint64_t h)
{
        return (uint32_t)(h >> 32) ? (uint32_t)(h >> 32) : 1;
}

/* The members of one list by value_hash(): a lookup compares a value
 * with the members of its hash only (one, but for a collision). */
struct vset {
        const json_t *list;        /* an enum or a required; in an index, NULL: an empty entry */
        struct vslot *slots;
        size_t cap;                /* a power of two, over twice the members */
        struct size max;           /* the largest member's nodes and bytes (each its own max) */
        bool dups;                 /* a member equal to one before it (not in a checked required) */
};

static void vset_init(struct vset *vs, const json_t *list)
{
        size_t cap = 4;
        while (cap < 2 * json_array_size(list) + 2)
                cap *= 2;
        *vs = (struct vset){ .list = list, .slots = xcalloc(cap, sizeof *vs->slots), .cap = cap };
}

static void vset_done(struct vset *vs)
{
        free(vs->slots);
        vs->slots = NULL;
}

/* v's hash, and its size made the larger of *max and it. */
static uint64_t member_hash(const json_t *v, struct size *max)
{
        struct size left = { SIZE_MAX, SIZE_MAX };
        uint64_t h = 0;
        value_hash(v, 0, &left, &h);   /* no bound: true */
        if (SIZE_MAX - left.nodes > max->nodes)
                max->nodes = SIZE_MAX - left.nodes;
        if (SIZE_MAX - left.bytes > max->bytes)
                max->bytes = SIZE_MAX - left.bytes;
        return h;
}

/* Add member i of the list; the index of an equal member added before
 * (which stays), or SIZE_MAX. */
static size_t vset_add(struct vset *vs, size_t i)
{
        const json_t *v = json_array_get(vs->list, i);
        uint64_t h = member_hash(v, &vs->max);
        size_t j = h & (vs->cap - 1);
        for (; vs->slots[j].tag; j = (j + 1) & (vs->cap - 1))
                if (vs->slots[j].tag == vtag(h) && value_equal(json_array_get(vs->list, vs->slots[j].at), v, 0))
                        return vs->slots[j].at;
        vs->slots[j] = (struct vslot){ .tag = vtag(h), .at = (uint32_t)i };
        return SIZE_MAX;
}

/* The index of the member equal to v, or SIZE_MAX.  Costs v's size, at
 * most the largest member's. */
static size_t vset_find(const struct vset *vs, const json_t *v)
{
        struct size left = vs->max;
        uint64_t h;
        if (!value_hash(v, 0, &left, &h))
                return SIZE_MAX;
        for (size_t j = h & (vs->cap - 1); vs->slots[j].tag; j = (j + 1) & (vs->cap - 1))
                if (vs->slots[j].tag == vtag(h) && value_equal(json_array_get(vs->list, vs->slots[j].at), v, 0))
                        return vs->slots[j].at;
        return SIZE_MAX;
}

/* The index of the string member key[0..len), or SIZE_MAX. */
static size_t vset_find_key(const struct vset *vs, const char *key, size_t len)
{
        uint64_t h = key_hash((const unsigned char *)key, len);
        for (size_t j = h & (vs->cap - 1); vs->slots[j].tag; j = (j + 1) & (vs->cap - 1)) {
                const json_t *m = json_array_get(vs->list, vs->slots[j].at);
                if (vs->slots[j].tag == vtag(h) && json_is_string(m) && json_string_length(m) == len &&
                    !memcmp(json_string_value(m), key, len))
                        return vs->slots[j].at;
        }
        return SIZE_MAX;
}

/* ---- schema_check ---- */

static bool is_count(const json_t *j)
{
        return json_is_integer(j) && json_integer_value(j) >= 0;
}

static int check_type(const json_t *t, struct ptr *p, struct err *err)
{
        if (json_is_string(t)) {
                if (!type_name_known(json_string_value(t)))
                        return fail(err, p, "unknown type `%s`", json_string_value(t));
                return 0;
        }
        if (!json_is_array(t) || json_array_size(t) == 0)
                return fail(err, p, "must be a type name or a non-empty list of them");
        size_t i;
        const json_t *v;
        json_array_foreach(t, i, v) {
                size_t old = ptr_push_index(p, i);
                if (!json_is_string(v))
                        return fail(err, p, "must be a type name");
                if (!type_name_known(json_string_value(v)))
                        return fail(err, p, "unknown type `%s`", json_string_value(v));
                for (size_t k = 0; k < i; k++)
                        if (json_equal(json_array_get(t, k), v))
                                return fail(err, p, "type `%s` listed twice", json_string_value(v));
                ptr_pop(p, old);
        }
        return 0;
}

static int check_node(const json_t *s, struct ptr *p, int depth, struct err *err);

/* Keywords we implement, and annotations we accept and ignore. */
static const char *const keywords[] = {
        "type", "properties", "required", "additionalProperties", "items", "enum",
        "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength",
        "title", "description", "default", "examples", "$comment", "$schema",
};

static int check_keyword(const char *key, const json_t *v, struct ptr *p, int depth,
                         struct err *err)
{
        if (!strcmp(key, "type"))
                return check_type(v, p, err);
        if (!strcmp(key, "properties")) {
                if (!json_is_object(v))
                        return fail(err, p, "must be an object");
                const char *name;
                const json_t *sub;
                json_object_foreach(mut(v), name, sub) {
                        size_t old = ptr_push(p, name);
                        if (check_node(sub, p, depth + 1, err) < 0)
                                return -1;
                        ptr_pop(p, old);
                }
                return 0;
        }
        if (!strcmp(key, "required")) {
                if (!json_is_array(v))
                        return fail(err, p, "must be a list of property names");
                /* By hash: a list of 50,000 names compared pairwise took 14 s. */
                _cleanup_(vset_done) struct vset names;
                vset_init(&names, v);
                size_t i;
                const json_t *name;
                json_array_foreach(v, i, name) {
                        size_t old = ptr_push_index(p, i);
                        if (!json_is_string(name))
                                return fail(err, p, "must be a property name");
                        if (vset_add(&names, i) != SIZE_MAX)
                                return fail(err, p, "`%s` listed twice", json_string_value(name));
                        ptr_pop(p, old);
                }
                return 0;
        }
        if (!strcmp(key, "additionalProperties"))
                return json_is_boolean(v) ? 0 : fail(err, p, "must be true or false");
        if (!strcmp(key, "items"))
                return check_node(v, p, depth + 1, err);
        if (!strcmp(key, "enum"))
                return json_is_array(v) && json_array_size(v) > 0
                               ? 0 : fail(err, p, "must be a non-empty list");
        if (!strcmp(key, "minimum") || !strcmp(key, "maximum"))
                return json_is_number(v) ? 0 : fail(err, p, "must be a number");
        if (!strcmp(key, "minItems") || !strcmp(key, "maxItems") || !strcmp(key, "minLength") ||
            !strcmp(key, "maxLength"))
                return is_count(v) ? 0 : fail(err, p, "must be an integer >= 0");
        if (!strcmp(key, "title") || !strcmp(key, "description") || !strcmp(key, "$comment") ||
            !strcmp(key, "$schema"))
                return json_is_string(v) ? 0 : fail(err, p, "must be a string");
        return 0;   /* default, examples: any value */
}

static int check_pair(const json_t *s, const char *lo, const char *hi, struct ptr *p,
                      struct err *err)
{
        const json_t *a = json_object_get(s, lo), *b = json_object_get(s, hi);
        if (!a || !b || num_cmp(a, b) <= 0)
                return 0;
        size_t old = ptr_push(p, hi);
        fail(err, p, "must not be below %s", lo);
        ptr_pop(p, old);
        return -1;
}

static int check_node(const json_t *s, struct ptr *p, int depth, struct err *err)
{
        if (depth > SCHEMA_MAX_DEPTH)
                return fail(err, p, "schema nested too deeply (over %d levels)", SCHEMA_MAX_DEPTH);
        if (!json_is_object(s))
                return fail(err, p, "a schema must be an object, got %s", kind(s));
        const char *key;
        const json_t *v;
        json_object_foreach(mut(s), key, v) {
                bool known = false;
                for (size_t i = 0; i < ARRAY_SIZE(keywords) && !known; i++)
                        known = !strcmp(key, keywords[i]);
                size_t old = ptr_push(p, key);
                if (!known)
                        return fail(err, p, "unsupported keyword `%s`", key);
                if (check_keyword(key, v, p, depth, err) < 0)
                        return -1;
                ptr_pop(p, old);
        }
        if (check_pair(s, "minimum", "maximum", p, err) < 0 ||
            check_pair(s, "minItems", "maxItems", p, err) < 0 ||
            check_pair(s, "minLength", "maxLength", p, err) < 0)
                return -1;
        return 0;
}

int schema_check(const json_t *schema, struct err *err)
{
        struct ptr p;
        ptr_init(&p, "");
        return check_node(schema, &p, 0, err);
}

/* ---- schema_index ---- */

struct schema_index {
        json_t *schema;            /* held: the sets point into it */
        struct vset *sets;         /* open addressing by the list's address */
        size_t cap;                /* a power of two; 0: no sets */
        size_t n;
};

static size_t ix_slot(const struct schema_index *ix, const json_t *list)
{
        return mix64((uint64_t)(uintptr_t)list) & (ix->cap - 1);
}

static const struct vset *ix_find(const struct schema_index *ix, const json_t *list)
{
        if (!ix || !ix->cap)
                return NULL;
        for (size_t j = ix_slot(ix, list); ix->sets[j].list; j = (j + 1) & (ix->cap - 1))
                if (ix->sets[j].list == list)
                        return &ix->sets[j];
        return NULL;
}

static void ix_add(struct schema_index *ix, const json_t *list)
{
        if (!json_is_array(list) || json_array_size(list) > UINT32_MAX)
                return;   /* (a manifest is far smaller) */
        if (!ix->cap) {   /* counting */
                ix->n++;
                return;
        }
        size_t j = ix_slot(ix, list);
        for (; ix->sets[j].list; j = (j + 1) & (ix->cap - 1))
                if (ix->sets[j].list == list)
                        return;   /* one list in two places */
        vset_init(&ix->sets[j], list);
        for (size_t i = 0; i < json_array_size(list); i++)
                if (vset_add(&ix->sets[j], i) != SIZE_MAX)
                        ix->sets[j].dups = true;
}

/* The lists of every schema validate_node() can reach. */
static void ix_walk(struct schema_index *ix, const json_t *s, int depth)
{
        if (depth > SCHEMA_MAX_DEPTH || !json_is_object(s))
                return;
        ix_add(ix, json_object_get(s, "enum"));
        ix_add(ix, json_object_get(s, "required"));
        const json_t *props = json_object_get(s, "properties");
        const char *k;
        const json_t *sub;
        if (json_is_object(props))
                json_object_foreach(mut(props), k, sub)
                        ix_walk(ix, sub, depth + 1);
        ix_walk(ix, json_object_get(s, "items"), depth + 1);
}

struct schema_index *schema_index_new(const json_t *schema)
{
        struct schema_index *ix = xcalloc(1, sizeof *ix);
        ix->schema = json_incref(mut(schema));
        ix_walk(ix, schema, 0);
        if (!ix->n)
                return ix;
        ix->cap = 4;
        while (ix->cap < 2 * ix->n)
                ix->cap *= 2;
        ix->sets = xcalloc(ix->cap, sizeof *ix->sets);
        ix_walk(ix, schema, 0);
        return ix;
}

void schema_index_free(struct schema_index *ix)
{
        if (!ix)
                return;
        for (size_t j = 0; j < ix->cap; j++)
                vset_done(&ix->sets[j]);
        free(ix->sets);
        json_decref(ix->schema);
        free(ix);
}

/* ---- schema_validate ---- */

static bool type_matches(const char *type, const json_t *j)
{
        if (!strcmp(type, "integer")) {
                if (json_is_integer(j))
                        return true;
                /* JSON Schema: 2.0 is an integer, being a number with no fraction. */
                double v = json_is_real(j) ? json_real_value(j) : NAN;
                return isfinite(v) && v == floor(v);
        }
        if (!strcmp(type, "number"))
                return json_is_number(j);
        if (!strcmp(type, "boolean"))
                return json_is_boolean(j);
        return !strcmp(type, kind(j));
}

static int validate_type(const json_t *t, const json_t *j, struct ptr *p, struct err *err)
{
        if (json_is_string(t)) {
                if (type_matches(json_string_value(t), j))
                        return 0;
                return fail(err, p, "expected %s, got %s", json_string_value(t), kind(j));
        }
        if (!json_is_array(t))
                return 0;
        size_t i, n = json_array_size(t);
        const json_t *v;
        json_array_foreach(t, i, v)
                if (json_is_string(v) && type_matches(json_string_value(v), j))
                        return 0;
        /* "expected string, integer or null, got array" */
        char list[256] = "";
        size_t len = 0;
        json_array_foreach(t, i, v) {
                const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
                int w = snprintf(list + len, sizeof list - len, "%s%s", sep,
                                 json_is_string(v) ? json_string_value(v) : "?");
                if (w < 0 || (size_t)w >= sizeof list - len)
                        break;
                len += (size_t)w;
        }
        return fail(err, p, "expected %s, got %s", list, kind(j));
}

/* A bound as written: the shortest form that reads back as the same
 * double (%.15g alone shows 9007199254740992.0 as 9.00719925474099e+15). */
static void format_number(const json_t *n, char *buf, size_t len)
{
        if (json_is_integer(n)) {
                snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
                return;
        }
        double d = json_real_value(n);
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, len, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        return;
        }
}

/* Unicode code points, as JSON Schema counts string length. */
static size_t utf8_length(const char *s, size_t bytes)
{
        size_t n = 0;
        for (size_t i = 0; i < bytes; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80)
                        n++;
        return n;
}

static int validate_node(const struct schema_index *ix, const json_t *s, const json_t *j, struct ptr *p,
                         int depth, struct err *err);

static int validate_object(const struct schema_index *ix, const json_t *s, const json_t *j, struct ptr *p,
                           int depth, struct err *err)
{
        const json_t *required = json_object_get(s, "required");
        size_t i;
        const json_t *name;
        json_array_foreach(required, i, name) {
                const char *k = json_string_value(name);
                if (k && !json_object_get(j, k)) {
                        /* The field names the missing property itself, so a
                         * client sees which one without parsing the message. */
                        size_t old = ptr_push(p, k);
                        fail(err, p, "missing required property `%s`", k);
                        ptr_pop(p, old);
                        return -1;
                }
        }
        const json_t *props = json_object_get(s, "properties");
        const json_t *extra = json_object_get(s, "additionalProperties");
        const char *k;
        const json_t *v;
        json_object_foreach(mut(j), k, v) {
                const json_t *sub = json_object_get(props, k);
                size_t old = ptr_push(p, k);
                if (!sub && json_is_false(extra))
                        return fail(err, p, "unexpected property `%s`", k);
                if (sub && validate_node(ix, sub, v, p, depth + 1, err) < 0)
                        return -1;
                ptr_pop(p, old);
        }
        return 0;
}

static int validate_node(const struct schema_index *ix, const json_t *s, const json_t *j, struct ptr *p,
                         int depth, struct err *err)
{
        if (depth > SCHEMA_MAX_DEPTH)
                return fail(err, p, "nested too deeply (over %d levels)", SCHEMA_MAX_DEPTH);
        if (!json_is_object(s))
                return 0;   /* schema_check() refuses these; stay harmless */

        const json_t *t = json_object_get(s, "type");
        if (t && validate_type(t, j, p, err) < 0)
                return -1;

        const json_t *e = json_object_get(s, "enum");
        if (json_is_array(e)) {
                /* By hash when the index has it: an enum of thousands
                 * against thousands of items must not cost their product. */
                const struct vset *vs = ix_find(ix, e);
                bool found = false;
                if (vs)
                        found = vset_find(vs, j) != SIZE_MAX;
                else
                        for (size_t i = 0; i < json_array_size(e) && !found; i++)
                                found = value_equal(json_array_get(e, i), j, 0);
                if (!found)
                        return fail(err, p, "must be one of the enum values");
        }

        if (json_is_number(j)) {
                const json_t *min = json_object_get(s, "minimum"), *max = json_object_get(s, "maximum");
                char b[64];
                if (json_is_number(min) && num_cmp(j, min) < 0) {
                        format_number(min, b, sizeof b);
                        return fail(err, p, "must be >= %s", b);
                }
                if (json_is_number(max) && num_cmp(j, max) > 0) {
                        format_number(max, b, sizeof b);
                        return fail(err, p, "must be <= %s", b);
                }
        }

        if (json_is_string(j)) {
                size_t n = utf8_length(json_string_value(j), json_string_length(j));
                const json_t *min = json_object_get(s, "minLength"), *max = json_object_get(s, "maxLength");
                if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
                        return fail(err, p, "must be at least %" JSON_INTEGER_FORMAT " character%s long",
                                    json_integer_value(min), json_integer_value(min) == 1 ? "" : "s");
                if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
                        return fail(err, p, "must be at most %" JSON_INTEGER_FORMAT " character%s long",
                                    json_integer_value(max), json_integer_value(max) == 1 ? "" : "s");
        }

        if (json_is_array(j)) {
                json_int_t n = (json_int_t)json_array_size(j);
                const json_t *min = json_object_get(s, "minItems"), *max = json_object_get(s, "maxItems");
                if (json_is_integer(min) && n < json_integer_value(min))
                        return fail(err, p, "must have at least %" JSON_INTEGER_FORMAT " item%s",
                                    json_integer_value(min), json_integer_value(min) == 1 ? "" : "s");
                if (json_is_integer(max) && n > json_integer_value(max))
                        return fail(err, p, "must have at most %" JSON_INTEGER_FORMAT " item%s",
                                    json_integer_value(max), json_integer_value(max) == 1 ? "" : "s");
                const json_t *items = json_object_get(s, "items");
                if (items) {
                        size_t i;
                        const json_t *v;
                        json_array_foreach(j, i, v) {
                                size_t old = ptr_push_index(p, i);
                                if (validate_node(ix, items, v, p, depth + 1, err) < 0)
                                        return -1;
                                ptr_pop(p, old);
                        }
                }
        }

        if (json_is_object(j))
                return validate_object(ix, s, j, p, depth, err);
        return 0;
}

int schema_validate(const json_t *schema, const struct schema_index *ix, const json_t *instance,
                    const char *base, struct err *err)
{
        struct ptr p;
        ptr_init(&p, base);
        return validate_node(ix, schema, instance, &p, 0, err);
}

/* ---- schema_validate_text: the same rules, streamed ----
 *
 * For parameters too large to hold as a tree.  yajl hands over one token
 * at a time; containers keep a frame each (their schema, their count, the
 * required properties seen, the hashes of their keys), and each scalar is
 * checked by validate_node() as a one-value tree, so scalars mean exactly
 * what they mean above.  A container whose schema has `enum` is built as a
 * tree and checked whole; the tree stops (refused) once it is larger than
 * the enum's largest member, so it never holds more than the schema. */

#include <yajl/yajl_parse.h>

#define STREAM_MEMBERS_MAX 65536   /* members of one object: its key hashes are kept */

struct frame {
        const json_t *schema;      /* NULL: anything goes */
        bool map;
        size_t count;              /* items or members so far */
        size_t ptr_len;            /* the pointer's length at this container */
        const json_t *next;        /* a map's: the schema of the member being read */
        bool *required_seen;       /* a map's: one per entry of schema.required */
        size_t n_required;
        uint64_t *keys;            /* a map's: open-addressed hashes (0: empty) */
        size_t keys_cap;
};

struct stream {
        struct ptr p;
        struct frame *f;
        size_t n, cap, max_depth;
        const json_t *root;
        const struct schema_index *ix;
        bool root_seen;
        struct err *err;
        bool failed;
        bool json_error;           /* a number jansson would not take: invalid JSON, not a schema miss */
        /* Building one value as a tree (a container with `enum`). */
        json_t *build_stack[SCHEMA_MAX_DEPTH + 2];
        size_t build_n;
        const json_t *build_schema;
        char *build_key;
        struct size build_room;    /* the enum's largest member */
        struct size build_left;    /* what it may grow by before it is larger than every member */
};

static void frame_done(struct frame *f)
{
        free(f->required_seen);
        free(f->keys);
}

/* Remember key h in f; false when it was there already. */
static bool key_add(struct frame *f, uint64_t h)
{
        if (f->count * 2 >= f->keys_cap) {
                size_t cap = f->keys_cap ? f->keys_cap * 2 : 16;
                uint64_t *k = xcalloc(cap, sizeof *k);
                for (size_t i = 0; i < f->keys_cap; i++) {
                        if (!f->keys[i])
                                continue;
                        size_t j = f->keys[i] & (cap - 1);
                        while (k[j])
                                j = (j + 1) & (cap - 1);
                        k[j] = f->keys[i];
                }
                free(f->keys);
                f->keys = k;
                f->keys_cap = cap;
        }
        size_t j = h & (f->keys_cap - 1);
        while (f->keys[j]) {
                if (f->keys[j] == h)
                        return false;
                j = (j + 1) & (f->keys_cap - 1);
        }
        f->keys[j] = h;
        return true;
}

static int stream_fail(struct stream *s)
{
        s->failed = true;
        return 0;   /* cancels the parse */
}

/* The schema of the value about to start, with the pointer pushed to it. */
static const json_t *value_schema(struct stream *s)
{
        if (s->n == 0) {
                s->root_seen = true;
                return s->root;
        }
        struct frame *f = &s->f[s->n - 1];
        if (f->map)
                return f->next;   /* map_key pushed the pointer */
        ptr_push_index(&s->p, f->count);
        const json_t *items = f->schema ? json_object_get(f->schema, "items") : NULL;
        f->count++;
        if (f->schema) {
                const json_t *max = json_object_get(f->schema, "maxItems");
                if (json_is_integer(max) && (json_int_t)f->count > json_integer_value(max)) {
                        ptr_pop(&s->p, f->ptr_len);
                        fail(s->err, &s->p, "must have at most %" JSON_INTEGER_FORMAT " item%s",
                             json_integer_value(max), json_integer_value(max) == 1 ? "" : "s");
                        return NULL;
                }
        }
        return items;
}

/* After a value: the pointer back to its container. */
static void value_done(struct stream *s)
{
        if (s->n)
                ptr_pop(&s->p, s->f[s->n - 1].ptr_len);
}

static int building(struct stream *s)
{
        return s->build_n > 0;
}

/* Make room in the tree being built for that many nodes and bytes.  Past
 * the largest enum member's size it equals none of them: refused then, as
 * the tree path would, before the client's array is held whole. */
static int build_take(struct stream *s, size_t nodes, size_t bytes)
{
        if (s->build_left.nodes < nodes || s->build_left.bytes < bytes) {
                fail(s->err, &s->p, "must be one of the enum values");
                return stream_fail(s);
        }
        s->build_left.nodes -= nodes;
        s->build_left.bytes -= bytes;
        return 1;
}

/* The size of an enum's largest member. */
static struct size enum_room(const struct schema_index *ix, const json_t *e)
{
        const struct vset *vs = ix_find(ix, e);
        if (vs)
                return vs->max;
        struct size max = { 0, 0 };
        for (size_t i = 0; i < json_array_size(e); i++)
                member_hash(json_array_get(e, i), &max);
        return max;
}

/* Add v (a new reference) to the tree being built; at its end, check it. */
static int build_add(struct stream *s, json_t *v, bool open)
{
        if (!v)
                return stream_fail(s);
        if (!build_take(s, 1, 0)) {
                json_decref(v);
                return 0;
        }
        json_t *top = s->build_n ? s->build_stack[s->build_n - 1] : NULL;
        if (top && json_is_array(top))
                json_array_append(top, v);
        else if (top)
                json_object_set(top, s->build_key ? s->build_key : "", v);
        free(s->build_key);
        s->build_key = NULL;
        if (open) {
                if (s->build_n >= ARRAY_SIZE(s->build_stack)) {
                        json_decref(v);
                        fail(s->err, &s->p, "nested too deeply (over %d levels)", SCHEMA_MAX_DEPTH);
                        return stream_fail(s);
                }
                s->build_stack[s->build_n++] = v;
                return 1;
        }
        json_decref(v);   /* held by its parent now */
        return 1;
}

static int build_close(struct stream *s)
{
        json_t *v = s->build_stack[--s->build_n];
        if (s->build_n) {
                json_decref(v);   /* its parent holds it */
                return 1;
        }
        int rc = validate_node(s->ix, s->build_schema, v, &s->p, (int)s->n, s->err);
        json_decref(v);
        value_done(s);
        return rc < 0 ? stream_fail(s) : 1;
}

/* One scalar: checked as a one-value tree (v: a new reference). */
static int scalar(struct stream *s, json_t *v)
{
        if (!v) {
                s->json_error = true;
                return stream_fail(s);
        }
        if (building(s))
                return build_add(s, v, false);
        const json_t *sch = value_schema(s);
        if (s->err->code != ERR_OK) {
                json_decref(v);
                return stream_fail(s);
        }
        int rc = sch ? validate_node(s->ix, sch, v, &s->p, (int)s->n, s->err) : 0;
        json_decref(v);
        if (rc < 0)
                return stream_fail(s);
        value_done(s);
        return 1;
}

static int on_null(void *ctx)
{
        return scalar(ctx, json_null());
}

static int on_boolean(void *ctx, int b)
{
        return scalar(ctx, json_boolean(b));
}

/* As jansson reads it: an integer unless it has a fraction or exponent;
 * one out of range is invalid JSON there, so here too. */
static int on_number(void *ctx, const char *text, size_t len)
{
        _cleanup_free_ char *buf = xasprintf("%.*s", (int)len, text);
        char *end;
        errno = 0;
        if (!strpbrk(buf, ".eE")) {
                long long v = strtoll(buf, &end, 10);
                return scalar(ctx, errno || *end ? NULL : json_integer(v));
        }
        double d = strtod(buf, &end);
        return scalar(ctx, (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) || *end ? NULL : json_real(d));
}

static int on_string(void *ctx, const unsigned char *str, size_t len)
{
        if (building(ctx) && !build_take(ctx, 0, len))
                return 0;
        return scalar(ctx, json_stringn((const char *)str, len));
}

static int open_container(struct stream *s, bool map)
{
        if (building(s))
                return build_add(s, map ? json_object() : json_array(), true);
        /* The caller's cap (http.max_json_depth), as jsontext_check() has
         * it: past the schema's own depth (SCHEMA_MAX_DEPTH) a value is
         * not looked into, in the tree as here.  And jansson's parser's:
         * deeper, the tree is not made (malformed, not a schema miss). */
        if (s->n >= s->max_depth || s->n >= JSON_PARSER_MAX_DEPTH) {
                s->json_error = s->n >= JSON_PARSER_MAX_DEPTH;
                fail(s->err, &s->p, "nested too deeply (over %zu levels)",
                     s->max_depth < JSON_PARSER_MAX_DEPTH ? s->max_depth : (size_t)JSON_PARSER_MAX_DEPTH);
                return stream_fail(s);
        }
        const json_t *sch = value_schema(s);
        if (s->err->code != ERR_OK)
                return stream_fail(s);
        if (sch && json_is_object(sch)) {
                json_t *probe = map ? json_object() : json_array();
                const json_t *t = json_object_get(sch, "type");
                int rc = t ? validate_type(t, probe, &s->p, s->err) : 0;
                json_decref(probe);
                if (rc < 0)
                        return stream_fail(s);
                const json_t *e = json_object_get(sch, "enum");
                if (json_is_array(e)) {
                        s->build_schema = sch;
                        s->build_room = s->build_left = enum_room(s->ix, e);
                        return build_add(s, map ? json_object() : json_array(), true);
                }
        }
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 16;
                s->f = xrealloc(s->f, s->cap * sizeof *s->f);
        }
        struct frame *f = &s->f[s->n++];
        *f = (struct frame){ .schema = json_is_object(sch) ? sch : NULL, .map = map, .ptr_len = s->p.len };
        if (map && f->schema) {
                f->n_required = json_array_size(json_object_get(f->schema, "required"));
                f->required_seen = f->n_required ? xcalloc(f->n_required, sizeof *f->required_seen) : NULL;
        }
        return 1;
}

static int on_start_map(void *ctx)
{
        return open_container(ctx, true);
}

static int on_start_array(void *ctx)
{
        return open_container(ctx, false);
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
        struct stream *s = ctx;
        if (building(s)) {
                /* Longer than the whole room: in no member, nor in the tree
                 * (so no duplicate), and not worth a copy. */
                if (len > s->build_room.bytes)
                        return build_take(s, 0, len);
                free(s->build_key);
                s->build_key = xasprintf("%.*s", (int)len, (const char *)key);
                /* A duplicate is malformed JSON, whatever the enum. */
                if (json_object_get(s->build_stack[s->build_n - 1], s->build_key)) {
                        s->json_error = true;
                        fail(s->err, &s->p, "duplicate object key `%s`", s->build_key);
                        return stream_fail(s);
                }
                return build_take(s, 0, len);
        }
        struct frame *f = &s->f[s->n - 1];
        _cleanup_free_ char *k = xasprintf("%.*s", (int)len, (const char *)key);
        ptr_push(&s->p, k);
        if (++f->count > STREAM_MEMBERS_MAX) {
                ptr_pop(&s->p, f->ptr_len);
                fail(s->err, &s->p, "an object of more than %d members", STREAM_MEMBERS_MAX);
                return stream_fail(s);
        }
        if (!key_add(f, key_hash(key, len))) {
                s->json_error = true;
                fail(s->err, &s->p, "duplicate object key `%s`", k);
                return stream_fail(s);
        }
        f->next = NULL;
        if (!f->schema)
                return 1;
        const json_t *required = json_object_get(f->schema, "required");
        const struct vset *vs = f->n_required ? ix_find(s->ix, required) : NULL;
        if (vs && !vs->dups) {
                /* By hash: name by name, 50,000 keys against 50,000
                 * required names were 2.5e9 comparisons.  (A list naming
                 * one twice, which schema_check() refuses, goes name by
                 * name: each copy must be marked.) */
                size_t i = vset_find_key(vs, (const char *)key, len);
                if (i < f->n_required)
                        f->required_seen[i] = true;
        } else {
                for (size_t i = 0; i < f->n_required; i++) {
                        const char *r = json_string_value(json_array_get(required, i));
                        if (r && strlen(r) == len && !memcmp(r, key, len))
                                f->required_seen[i] = true;
                }
        }
        f->next = json_object_get(json_object_get(f->schema, "properties"), k);
        if (!f->next && json_is_false(json_object_get(f->schema, "additionalProperties"))) {
                fail(s->err, &s->p, "unexpected property `%s`", k);
                return stream_fail(s);
        }
        return 1;
}

static int close_container(struct stream *s)
{
        if (building(s))
                return build_close(s);
        struct frame *f = &s->f[s->n - 1];
        int rc = 1;
        if (f->schema && f->map) {
                const json_t *required = json_object_get(f->schema, "required");
                for (size_t i = 0; i < f->n_required && rc; i++) {
                        const char *k = json_string_value(json_array_get(required, i));
                        if (k && !f->required_seen[i]) {
                                ptr_push(&s->p, k);
                                fail(s->err, &s->p, "missing required property `%s`", k);
                                rc = stream_fail(s);
                        }
                }
        } else if (f->schema) {
                const json_t *min = json_object_get(f->schema, "minItems");
                if (json_is_integer(min) && (json_int_t)f->count < json_integer_value(min)) {
                        fail(s->err, &s->p, "must have at least %" JSON_INTEGER_FORMAT " item%s",
                             json_integer_value(min), json_integer_value(min) == 1 ? "" : "s");
                        rc = stream_fail(s);
                }
        }
        frame_done(f);
        s->n--;
        if (rc)
                value_done(s);
        return rc;
}

static int on_end(void *ctx)
{
        return close_container(ctx);
}

static const yajl_callbacks stream_callbacks = {
        .yajl_null = on_null,
        .yajl_boolean = on_boolean,
        .yajl_number = on_number,
        .yajl_string = on_string,
        .yajl_start_map = on_start_map,
        .yajl_map_key = on_map_key,
        .yajl_end_map = on_end,
        .yajl_start_array = on_start_array,
        .yajl_end_array = on_end,
};

static int hex4(const char *s, size_t left)
{
        if (left < 4)
                return -1;
        int v = 0;
        for (int i = 0; i < 4; i++) {
                char c = s[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

/* What jansson refuses in strings and yajl lets through: \u0000, and a
 * surrogate escape that is not one half of a pair.  Both paths must take
 * the same text.  Byte offset of the first such escape, or -1. */
static long bad_escape(const char *t, size_t len)
{
        bool in = false;
        for (size_t i = 0; i < len; i++) {
                if (t[i] == '"') {
                        in = !in;
                } else if (in && t[i] == '\\' && i + 1 < len) {
                        if (t[i + 1] != 'u') {
                                i++;
                                continue;
                        }
                        int v = hex4(t + i + 2, len - i - 2);
                        if (v == 0)
                                return (long)i;
                        if (v >= 0xDC00 && v <= 0xDFFF)
                                return (long)i;
                        if (v >= 0xD800 && v <= 0xDBFF) {
                                int lo = i + 11 < len && t[i + 6] == '\\' && t[i + 7] == 'u'
                                                 ? hex4(t + i + 8, len - i - 8) : -1;
                                if (lo < 0xDC00 || lo > 0xDFFF)
                                        return (long)i;
                                i += 6;
                        }
                        i += 5;
                }
        }
        return -1;
}

int schema_validate_text(const json_t *schema, const struct schema_index *ix, const char *text, size_t len,
                         const char *base, size_t max_depth, bool *ret_malformed, struct err *err)
{
        *ret_malformed = false;
        long bad = bad_escape(text, len);
        if (bad >= 0) {
                *ret_malformed = true;
                return err_set(err, ERR_INVALID, 0, "malformed JSON: \\u0000 or an unpaired surrogate escape at byte %ld "
                               "of the parameters", bad);
        }
        struct stream s = { .root = schema, .ix = ix, .err = err, .max_depth = max_depth ? max_depth : SCHEMA_MAX_DEPTH };
        ptr_init(&s.p, base);
        yajl_handle h = yajl_alloc(&stream_callbacks, NULL, &s);
        if (!h)
                abort();
        yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
        if (st == yajl_status_ok)
                st = yajl_complete_parse(h);
        if (st != yajl_status_ok && !s.failed) {
                unsigned char *m = yajl_get_error(h, 0, (const unsigned char *)text, len);
                err_set(err, ERR_INVALID, 0, "malformed JSON: %s", m ? (const char *)m : "?");
                if (m)
                        yajl_free_error(h, m);
                s.json_error = true;
        } else if (s.failed && err->code == ERR_OK) {
                err_set(err, ERR_INVALID, 0, "malformed JSON: a number out of range");
        }
        yajl_free(h);
        for (size_t i = 0; i < s.n; i++)
                frame_done(&s.f[i]);
        free(s.f);
        for (size_t i = 0; i < s.build_n; i++)
                json_decref(s.build_stack[i]);
        free(s.build_key);
        if (st == yajl_status_ok && !s.failed)
                return 0;
        *ret_malformed = s.json_error;
        return -1;
}
