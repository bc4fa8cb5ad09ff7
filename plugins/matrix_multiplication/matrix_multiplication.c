/* matrix_multiplication - the reference job: the product of two matrices.
 *
 * Parameters {"matrix_a": [[...], ...], "matrix_b": [[...], ...],
 * "timing"?: bool}, an n x m and an m x p matrix of numbers, each side at
 * most 2048.  Result {"product": [[...]], "rows": n, "cols": p}, plus
 * "timing": {"parse_ms", "kernel_ms"} when asked for.
 *
 * Integers (every entry a JSON integer) give the exact product:
 *  - when no partial sum can pass 2^52 (the largest absolute row sum of a
 *    times the largest absolute entry of b is below it), OpenBLAS's dgemm
 *    computes it: every product and partial sum is then an integer a
 *    double holds exactly, in whatever order dgemm adds them;
 *  - otherwise a checked kernel of our own accumulates in 128 bits;
 * and an entry outside int64 (or a 128-bit partial sum overflowing) is a
 * bad input naming the entry, never a rounded or wrapped answer.
 * Anything else is computed in double precision by dgemm; an entry beyond
 * the range of a double is a bad input (JSON has no infinity).
 *
 * OpenBLAS is Debian's serial build, linked statically: one thread, which
 * is what the container's cpu and pids limits allow. */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin.h"

#define MAX_SIDE 2048

/* Largest absolute row sum of a times largest absolute entry of b: a bound
 * on every partial sum of the product.  Computed in double; the margin of
 * 2 below 2^53 covers its own rounding. */
static bool fits_double_exactly(const struct grid *a, const struct grid *b)
{
        double rowmax = 0, bmax = 0;
        for (size_t i = 0; i < a->rows; i++) {
                double s = 0;
                for (size_t k = 0; k < a->cols; k++)
                        s += fabs(a->d[i * a->cols + k]);
                if (s > rowmax)
                        rowmax = s;
        }
        for (size_t i = 0; i < b->rows * b->cols; i++)
                if (fabs(b->d[i]) > bmax)
                        bmax = fabs(b->d[i]);
        return rowmax * bmax <= 4503599627370496.0;   /* 2^52 */
}

static void dgemm(const struct grid *a, const struct grid *b, double *c)
{
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)a->rows, (int)b->cols,
                    (int)a->cols, 1.0, a->d, (int)a->cols, b->d, (int)b->cols, 0.0, c,
                    (int)b->cols);
}

/* Decimal digits of a 128-bit integer, for the overflow message. */
static const char *i128_str(__int128 v, char buf[static 48])
{
        char *p = buf + 47;
        unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
        *p = '\0';
        do {
                *--p = (char)('0' + (int)(u % 10));
                u /= 10;
        } while (u);
        if (v < 0)
                *--p = '-';
        return p;
}

_Noreturn static void overflow(size_t i, size_t j, const char *what)
{
        plugin_die(EXIT_BAD_INPUT,
                   "integer overflow: product[%zu][%zu] %s the 64-bit integer range "
                   "(-9223372036854775808..9223372036854775807); send the entries as "
                   "floating-point numbers (2.0) for a double-precision product", i, j, what);
}

/* Exact integer product, row by row: acc holds one row of c in 128 bits
 * (a product of two int64 always fits; the sums are checked). */
static void multiply_int(const struct grid *a, const struct grid *b, int64_t *c)
{
        size_t n = a->rows, m = a->cols, p = b->cols;
        __int128 *acc = xcalloc(p, sizeof(*acc));
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < p; j++)
                        acc[j] = 0;
                for (size_t k = 0; k < m; k++) {
                        __int128 aik = a->i[i * m + k];
                        const int64_t *brow = b->i + k * p;
                        if (aik == 0)
                                continue;
                        for (size_t j = 0; j < p; j++)
                                if (__builtin_add_overflow(acc[j], aik * brow[j], &acc[j]))
                                        overflow(i, j, "is far outside");
                }
                for (size_t j = 0; j < p; j++) {
                        if (acc[j] < INT64_MIN || acc[j] > INT64_MAX) {
                                char buf[48], what[96];
                                snprintf(what, sizeof(what), "= %s is outside", i128_str(acc[j], buf));
                                overflow(i, j, what);
                        }
                        c[i * p + j] = (int64_t)acc[j];
                }
        }
        free(acc);
}

int main(void)
{
        static struct out out;
        struct grid a = { 0 }, b = { 0 };

        plugin_init("matrix_multiplication");
        double t0 = plugin_now();
        json_t *params = plugin_read_params();
        param_grid(params, "matrix_a", MAX_SIDE, true, &a);
        param_grid(params, "matrix_b", MAX_SIDE, true, &b);
        const json_t *tj = param_get(params, "timing", false);
        if (tj && !json_is_boolean(tj))
                plugin_die(EXIT_BAD_INPUT, "timing must be true or false, got %s", json_kind(tj));
        bool timing = json_is_true(tj);
        /* The tree is several times the matrices; give it back first. */
        json_decref(params);

        if (a.cols != b.rows)
                plugin_die(EXIT_BAD_INPUT,
                           "matrix_a is %zux%zu but matrix_b is %zux%zu: columns of matrix_a (%zu) "
                           "must equal rows of matrix_b (%zu)",
                           a.rows, a.cols, b.rows, b.cols, a.cols, b.rows);
        size_t n = a.rows, p = b.cols;

        double t1 = plugin_now();
        bool exact = a.all_int && b.all_int;
        int64_t *ci = NULL;
        double *cd = NULL;
        if (exact) {
                ci = xcalloc(n * p, sizeof(*ci));
                if (fits_double_exactly(&a, &b)) {
                        cd = xcalloc(n * p, sizeof(*cd));
                        dgemm(&a, &b, cd);
                        for (size_t i = 0; i < n * p; i++)
                                ci[i] = (int64_t)cd[i];
                        free(cd);
                        cd = NULL;
                } else {
                        multiply_int(&a, &b, ci);
                }
        } else {
                cd = xcalloc(n * p, sizeof(*cd));
                dgemm(&a, &b, cd);
                for (size_t i = 0; i < n * p; i++)
                        if (!isfinite(cd[i]))
                                plugin_die(EXIT_BAD_INPUT,
                                           "product[%zu][%zu] is beyond the range of a double",
                                           i / p, i % p);
        }
        double t2 = plugin_now();
        grid_done(&a);
        grid_done(&b);

        out_open_result(&out);
        out_begin(&out, '{');
        out_key(&out, "product");
        out_begin(&out, '[');
        for (size_t i = 0; i < n; i++) {
                out_begin(&out, '[');
                for (size_t j = 0; j < p; j++) {
                        if (exact)
                                out_int(&out, ci[i * p + j]);
                        else
                                out_double(&out, cd[i * p + j]);
                }
                out_end(&out, ']');
        }
        out_end(&out, ']');
        out_key(&out, "rows");
        out_int(&out, (int64_t)n);
        out_key(&out, "cols");
        out_int(&out, (int64_t)p);
        if (timing) {
                out_key(&out, "timing");
                out_begin(&out, '{');
                out_key(&out, "parse_ms");
                out_double(&out, round((t1 - t0) * 1e6) / 1e3);
                out_key(&out, "kernel_ms");
                out_double(&out, round((t2 - t1) * 1e6) / 1e3);
                out_end(&out, '}');
        }
        out_end(&out, '}');
        out_commit(&out);

        free(ci);
        free(cd);
        return 0;
}
