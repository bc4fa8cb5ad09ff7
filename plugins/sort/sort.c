/* sort - a stable sort of up to ten million numbers or strings.
 *
 * Parameters {"items": [numbers] or [strings], "order"?: "ascending" |
 * "descending"}.  Result {"items": [...sorted], "count": n}.
 *
 * Stable in both orders: items that compare equal keep their input order
 * (a descending sort is not an ascending one reversed).  Numbers compare by
 * value (1 and 1.0 are equal, and so are 0 and -0.0) and are written back as
 * they came: integers as integers, the others as the shortest decimal that
 * reads back as the same double (2.0 as "2.0").  Strings compare by their UTF-8 bytes,
 * which is the order of their Unicode code points (Python's sorted()).
 * A mix of numbers and strings, or any other kind of item, is a bad input.
 *
 * How: an LSD radix sort of 64-bit keys carrying each item's index (the
 * int64 or double bit pattern made order-preserving, or a string's first 8
 * bytes), then a stable merge sort within runs of strings whose first 8
 * bytes are equal, or of all items when integers beyond 2^53 (which a
 * double cannot tell apart) sit among fractions.  Memory: the parsed
 * parameters plus 24 bytes an item. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "sortkeys.h"

#define MAX_ITEMS 10000000

struct ctx {
        const json_t *items;
        int sign;                 /* 1 ascending, -1 descending */
};

static int cmp_str(uint32_t a, uint32_t b, void *arg)
{
        const struct ctx *c = arg;
        const json_t *x = json_array_get(c->items, a), *y = json_array_get(c->items, b);
        size_t lx = json_string_length(x), ly = json_string_length(y);
        int r = memcmp(json_string_value(x), json_string_value(y), lx < ly ? lx : ly);
        if (r == 0)
                r = (lx > ly) - (lx < ly);
        return c->sign * (r > 0 ? 1 : r < 0 ? -1 : 0);
}

/* long double holds every int64 and every double exactly (x86's 64-bit
 * significand), so mixed comparisons are exact. */
static long double exact_value(const json_t *v)
{
        return json_is_integer(v) ? (long double)json_integer_value(v) : (long double)json_real_value(v);
}

static int cmp_num(uint32_t a, uint32_t b, void *arg)
{
        const struct ctx *c = arg;
        long double x = exact_value(json_array_get(c->items, a));
        long double y = exact_value(json_array_get(c->items, b));
        return c->sign * ((x > y) - (x < y));
}

/* The first 8 bytes, big-endian, zero-padded: their unsigned order is the
 * byte order of the strings' prefixes (no string holds a NUL: jansson
 * refuses \u0000). */
static uint64_t prefix_key(const json_t *s)
{
        const unsigned char *p = (const unsigned char *)json_string_value(s);
        size_t n = json_string_length(s);
        uint64_t k = 0;
        for (size_t i = 0; i < 8; i++)
                k = (k << 8) | (i < n ? p[i] : 0);
        return k;
}

int main(void)
{
        static struct out out;
        static const char *const orders[] = { "ascending", "descending", NULL };

        plugin_init("sort");
        json_t *params = plugin_read_params();
        const json_t *items = param_get(params, "items", true);
        if (!json_is_array(items))
                plugin_die(EXIT_BAD_INPUT, "items must be an array of numbers or of strings, got %s",
                           json_kind(items));
        size_t n = json_array_size(items);
        if (n > MAX_ITEMS)
                plugin_die(EXIT_BAD_INPUT, "items has %zu entries, at most %d allowed", n, MAX_ITEMS);
        bool descending = param_choice(params, "order", "ascending", orders) == 1;

        /* One kind throughout; note what the keys can and cannot order. */
        bool strings = n > 0 && json_is_string(json_array_get(items, 0));
        bool all_int = true, big_int = false;
        for (size_t i = 0; i < n; i++) {
                const json_t *e = json_array_get(items, i);
                if (!json_is_number(e) && !json_is_string(e))
                        plugin_die(EXIT_BAD_INPUT, "items[%zu] must be a number or a string, got %s",
                                   i, json_kind(e));
                if (json_is_string(e) != strings)
                        plugin_die(EXIT_BAD_INPUT,
                                   "items must be all numbers or all strings: items[0] is a %s, "
                                   "items[%zu] a %s", strings ? "string" : "number", i,
                                   strings ? "number" : "string");
                if (json_is_integer(e)) {
                        json_int_t v = json_integer_value(e);
                        big_int = big_int || v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53);
                } else {
                        all_int = false;
                }
        }

        /* Keys alone when they say everything about the value (all
         * integers, or all fractions and no -0.0): the output is then
         * read back from the keys in order, instead of fetching each item
         * from the parsed tree by index, a cache miss apiece. */
        bool keys_say_all = !strings;
        for (size_t i = 0; i < n && !strings && !all_int && keys_say_all; i++) {
                const json_t *e = json_array_get(items, i);
                keys_say_all = json_is_real(e) && !(json_real_value(e) == 0 && signbit(json_real_value(e)));
        }
        if (keys_say_all) {
                uint64_t *keys = xcalloc(n, sizeof(*keys));
                for (size_t i = 0; i < n; i++) {
                        const json_t *e = json_array_get(items, i);
                        uint64_t k = all_int ? key_of_int(json_integer_value(e))
                                             : key_of_double(json_real_value(e));
                        keys[i] = descending ? ~k : k;
                }
                json_decref(params);
                radix_sort(keys, NULL, n);
                out_open_result(&out);
                out_begin(&out, '{');
                out_key(&out, "items");
                out_begin(&out, '[');
                for (size_t i = 0; i < n; i++) {
                        uint64_t k = descending ? ~keys[i] : keys[i];
                        if (all_int)
                                out_int(&out, int_of_key(k));
                        else
                                out_real(&out, double_of_key(k));
                }
                out_end(&out, ']');
                out_key(&out, "count");
                out_int(&out, (int64_t)n);
                out_end(&out, '}');
                out_commit(&out);
                free(keys);
                return 0;
        }

        struct ctx c = { items, descending ? -1 : 1 };
        uint32_t *idx = xcalloc(n, sizeof(*idx));
        for (size_t i = 0; i < n; i++)
                idx[i] = (uint32_t)i;
        if (!strings && !all_int && big_int) {
                merge_sort(idx, n, cmp_num, &c);
        } else {
                uint64_t *keys = xcalloc(n, sizeof(*keys));
                for (size_t i = 0; i < n; i++) {
                        const json_t *e = json_array_get(items, i);
                        uint64_t k = strings ? prefix_key(e)
                                     : all_int ? key_of_int(json_integer_value(e))
                                     : key_of_double(json_number_value(e));
                        keys[i] = descending ? ~k : k;
                }
                radix_sort(keys, idx, n);
                /* Strings that share their first 8 bytes: by all of them. */
                for (size_t lo = 0; strings && lo < n;) {
                        size_t hi = lo + 1;
                        bool longer = json_string_length(json_array_get(items, idx[lo])) > 8;
                        while (hi < n && keys[hi] == keys[lo]) {
                                longer = longer || json_string_length(json_array_get(items, idx[hi])) > 8;
                                hi++;
                        }
                        if (hi - lo > 1 && longer)
                                merge_sort(idx + lo, hi - lo, cmp_str, &c);
                        lo = hi;
                }
                free(keys);
        }

        out_open_result(&out);
        out_begin(&out, '{');
        out_key(&out, "items");
        out_begin(&out, '[');
        for (size_t i = 0; i < n; i++) {
                const json_t *e = json_array_get(items, idx[i]);
                if (strings)
                        out_string(&out, json_string_value(e), json_string_length(e));
                else if (json_is_integer(e))
                        out_int(&out, json_integer_value(e));
                else
                        out_real(&out, json_real_value(e));
        }
        out_end(&out, ']');
        out_key(&out, "count");
        out_int(&out, (int64_t)n);
        out_end(&out, '}');
        out_commit(&out);

        free(idx);
        json_decref(params);
        return 0;
}
