/* matrix_multiplication - the reference job: the product of two matrices.
 *
 * Parameters {"matrix_a": [[...], ...], "matrix_b": [[...], ...]}, an n x m
 * and an m x p matrix of numbers.  Result {"product": [[...]], "rows": n,
 * "cols": p}.
 *
 * When every entry is an integer literal that fits int64, the product is
 * computed in int64 with overflow checks and printed exactly; on the first
 * overflow, or when any entry is a fraction, it is computed in double and
 * printed with the shortest of %.15g/%.17g that reads back the same.
 * A product entry beyond the range of double is a bad input (JSON has no
 * infinity).  Bad shapes exit 2 with one line on stderr.
 *
 * Single-threaded; memory is the two input trees plus three flat matrices. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "plugin.h"

/* The schema allows 1000 x 1000; this is the same bound on the product,
 * checked here so a run outside the daemon fails cleanly, not by OOM. */
#define MAX_PRODUCT_ENTRIES ((size_t)1000 * 1000)

struct matrix {
        size_t rows, cols;
        double *d;                /* rows * cols, row-major */
        int64_t *i;               /* the same entries, exact; valid when all_int */
        bool all_int;
};

static void matrix_done(struct matrix *m)
{
        free(m->d);
        free(m->i);
}

static void matrix_from_json(const struct json_value *params, const char *name, struct matrix *m)
{
        const struct json_value *v = json_object_get(params, name);
        if (!v)
                plugin_die(EXIT_BAD_INPUT, "%s is missing", name);
        if (v->type != JSON_ARRAY)
                plugin_die(EXIT_BAD_INPUT, "%s must be an array of rows, got %s",
                           name, json_type_name(v->type));
        if (v->u.arr.n == 0)
                plugin_die(EXIT_BAD_INPUT, "%s is empty (it needs at least one row)", name);

        const struct json_value *rows = v->u.arr.items;
        m->rows = v->u.arr.n;
        for (size_t r = 0; r < m->rows; r++) {
                if (rows[r].type != JSON_ARRAY)
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu must be an array of numbers, got %s",
                                   name, r, json_type_name(rows[r].type));
                if (rows[r].u.arr.n == 0)
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu is empty", name, r);
                if (rows[r].u.arr.n != rows[0].u.arr.n)
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu has %zu entries, row 0 has %zu",
                                   name, r, rows[r].u.arr.n, rows[0].u.arr.n);
        }
        m->cols = rows[0].u.arr.n;

        /* Every entry took at least two input bytes, so this cannot
         * overflow; xcalloc checks anyway. */
        m->d = xcalloc(m->rows * m->cols, sizeof(*m->d));
        m->i = xcalloc(m->rows * m->cols, sizeof(*m->i));
        m->all_int = true;
        for (size_t r = 0; r < m->rows; r++) {
                for (size_t c = 0; c < m->cols; c++) {
                        const struct json_value *e = &rows[r].u.arr.items[c];
                        if (e->type != JSON_NUMBER)
                                plugin_die(EXIT_BAD_INPUT, "%s[%zu][%zu] must be a number, got %s",
                                           name, r, c, json_type_name(e->type));
                        m->d[r * m->cols + c] = e->u.num.d;
                        m->i[r * m->cols + c] = e->u.num.i;
                        if (!e->is_int)
                                m->all_int = false;
                }
        }
}

/* Exact product; false on the first int64 overflow.  Loop order i-k-j keeps
 * the inner loop on contiguous rows of b and c. */
static bool multiply_int(const struct matrix *a, const struct matrix *b, int64_t *c)
{
        size_t n = a->rows, m = a->cols, p = b->cols;
        for (size_t i = 0; i < n; i++) {
                int64_t *crow = c + i * p;
                for (size_t k = 0; k < m; k++) {
                        int64_t aik = a->i[i * m + k];
                        const int64_t *brow = b->i + k * p;
                        if (aik == 0)
                                continue;
                        for (size_t j = 0; j < p; j++) {
                                int64_t t;
                                if (__builtin_mul_overflow(aik, brow[j], &t) ||
                                    __builtin_add_overflow(crow[j], t, &crow[j]))
                                        return false;
                        }
                }
        }
        return true;
}

static void multiply_double(const struct matrix *a, const struct matrix *b, double *c)
{
        size_t n = a->rows, m = a->cols, p = b->cols;
        for (size_t i = 0; i < n; i++) {
                double *crow = c + i * p;
                for (size_t k = 0; k < m; k++) {
                        double aik = a->d[i * m + k];
                        const double *brow = b->d + k * p;
                        for (size_t j = 0; j < p; j++)
                                crow[j] += aik * brow[j];
                }
        }
}

int main(void)
{
        static struct out out;
        struct json_value params;
        struct matrix a = { 0 }, b = { 0 };

        plugin_init("matrix_multiplication");
        plugin_read_params(&params);
        matrix_from_json(&params, "matrix_a", &a);
        matrix_from_json(&params, "matrix_b", &b);
        json_value_done(&params);

        if (a.cols != b.rows)
                plugin_die(EXIT_BAD_INPUT,
                           "matrix_a is %zux%zu but matrix_b is %zux%zu: columns of matrix_a (%zu) "
                           "must equal rows of matrix_b (%zu)",
                           a.rows, a.cols, b.rows, b.cols, a.cols, b.rows);
        size_t n = a.rows, p = b.cols;
        if (n > MAX_PRODUCT_ENTRIES / p)
                plugin_die(EXIT_BAD_INPUT, "the product would be %zux%zu, more than %zu entries",
                           n, p, MAX_PRODUCT_ENTRIES);

        bool exact = false;
        int64_t *ci = NULL;
        double *cd = NULL;
        if (a.all_int && b.all_int) {
                ci = xcalloc(n * p, sizeof(*ci));
                exact = multiply_int(&a, &b, ci);
                if (!exact) {
                        free(ci);
                        ci = NULL;
                }
        }
        if (!exact) {
                cd = xcalloc(n * p, sizeof(*cd));
                multiply_double(&a, &b, cd);
                for (size_t i = 0; i < n * p; i++)
                        if (!isfinite(cd[i]))
                                plugin_die(EXIT_BAD_INPUT,
                                           "product[%zu][%zu] is beyond the range of a double",
                                           i / p, i % p);
        }
        matrix_done(&a);
        matrix_done(&b);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "product");
        jw_array_begin(&w);
        for (size_t i = 0; i < n; i++) {
                jw_array_begin(&w);
                for (size_t j = 0; j < p; j++) {
                        if (exact)
                                jw_int(&w, ci[i * p + j]);
                        else
                                jw_double(&w, cd[i * p + j]);
                }
                jw_array_end(&w);
        }
        jw_array_end(&w);
        jw_key(&w, "rows");
        jw_int(&w, (int64_t)n);
        jw_key(&w, "cols");
        jw_int(&w, (int64_t)p);
        jw_object_end(&w);
        out_puts(&out, "\n");
        out_commit(&out);

        free(ci);
        free(cd);
        return 0;
}
