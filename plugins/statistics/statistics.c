/* statistics - descriptive statistics of a list of numbers.
 *
 * Parameters {"values": [numbers, 1..1000000], "percentiles"?: [0..100, ...]}.
 * Result {"count", "sum", "mean", "min", "max", "variance", "stddev",
 * "median", "percentiles": {"p25": ..., ...}}.
 *
 * sum and the squared deviations are Neumaier-compensated sums (two
 * passes), so a large offset does not swamp a small spread.  variance is the
 * population variance (divided by count).  median and percentiles sort a
 * copy and interpolate linearly between the two closest ranks
 * (rank = p/100 * (count-1), numpy's default).  Keys are "p" + the percentile as written
 * by %.15g ("p99.9"); duplicates are reported once.  Without "percentiles",
 * 25, 50, 75, 90, 95 and 99 are reported.
 *
 * Single-threaded. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "plugin.h"

#define MAX_PERCENTILES 1000

/* Neumaier's compensated sum: the running error of each addition is
 * collected in comp and added back at the end. */
struct ksum {
        double sum, comp;
};

static void ksum_add(struct ksum *k, double v)
{
        double t = k->sum + v;
        if (fabs(k->sum) >= fabs(v))
                k->comp += (k->sum - t) + v;
        else
                k->comp += (v - t) + k->sum;
        k->sum = t;
}

static double ksum_value(const struct ksum *k)
{
        return k->sum + k->comp;
}

static int cmp_double(const void *x, const void *y)
{
        double a = *(const double *)x, b = *(const double *)y;
        return (a > b) - (a < b);
}

/* Linear interpolation between the closest ranks of sorted x[0..n). */
static double percentile(const double *x, size_t n, double p)
{
        double rank = p / 100.0 * (double)(n - 1);
        size_t lo = (size_t)floor(rank);
        if (lo >= n - 1)
                return x[n - 1];
        double f = rank - (double)lo;
        if (f == 0.0)
                return x[lo];
        double v = x[lo] + f * (x[lo + 1] - x[lo]);
        if (!isfinite(v))   /* the difference overflowed; this form cannot */
                v = x[lo] * (1.0 - f) + x[lo + 1] * f;
        return v;
}

static void check_finite(const char *what, double v)
{
        if (!isfinite(v))
                plugin_die(EXIT_BAD_INPUT, "values too large: %s is beyond the range of a double", what);
}

int main(void)
{
        static struct out out;
        static const double default_pcts[] = { 25, 50, 75, 90, 95, 99 };
        struct json_value params;

        plugin_init("statistics");
        plugin_read_params(&params);

        const struct json_value *values = json_object_get(&params, "values");
        if (!values)
                plugin_die(EXIT_BAD_INPUT, "values is missing");
        if (values->type != JSON_ARRAY)
                plugin_die(EXIT_BAD_INPUT, "values must be an array of numbers, got %s",
                           json_type_name(values->type));
        size_t n = values->u.arr.n;
        if (n == 0)
                plugin_die(EXIT_BAD_INPUT, "values is empty (it needs at least one number)");

        double *x = xcalloc(n, sizeof(*x));
        for (size_t i = 0; i < n; i++) {
                const struct json_value *e = &values->u.arr.items[i];
                if (e->type != JSON_NUMBER)
                        plugin_die(EXIT_BAD_INPUT, "values[%zu] must be a number, got %s",
                                   i, json_type_name(e->type));
                x[i] = e->u.num.d;
        }

        const struct json_value *pj = json_object_get(&params, "percentiles");
        size_t npct = sizeof(default_pcts) / sizeof(default_pcts[0]);
        double *pcts;
        if (pj) {
                if (pj->type != JSON_ARRAY)
                        plugin_die(EXIT_BAD_INPUT, "percentiles must be an array of numbers, got %s",
                                   json_type_name(pj->type));
                if (pj->u.arr.n > MAX_PERCENTILES)
                        plugin_die(EXIT_BAD_INPUT, "percentiles has %zu entries, at most %d allowed",
                                   pj->u.arr.n, MAX_PERCENTILES);
                npct = pj->u.arr.n;
                pcts = xcalloc(npct, sizeof(*pcts));
                for (size_t i = 0; i < npct; i++) {
                        const struct json_value *e = &pj->u.arr.items[i];
                        if (e->type != JSON_NUMBER)
                                plugin_die(EXIT_BAD_INPUT, "percentiles[%zu] must be a number, got %s",
                                           i, json_type_name(e->type));
                        if (!(e->u.num.d >= 0.0 && e->u.num.d <= 100.0))
                                plugin_die(EXIT_BAD_INPUT, "percentiles[%zu] is %g, must be within 0..100",
                                           i, e->u.num.d);
                        pcts[i] = e->u.num.d;
                }
        } else {
                pcts = xcalloc(npct, sizeof(*pcts));
                memcpy(pcts, default_pcts, sizeof(default_pcts));
        }
        json_value_done(&params);

        /* Two passes with Neumaier-compensated sums: the sum (and min, max),
         * then the squared deviations from mean = sum / n.  More accurate
         * than Welford's one-pass update when values cancel (1e16, 1,
         * -1e16 has mean 1/3, which a running mean loses). */
        struct ksum total = { 0 }, sq = { 0 };
        double min = x[0], max = x[0];
        for (size_t i = 0; i < n; i++) {
                ksum_add(&total, x[i]);
                if (x[i] < min)
                        min = x[i];
                if (x[i] > max)
                        max = x[i];
        }
        double sum = ksum_value(&total);
        double mean = sum / (double)n;
        for (size_t i = 0; i < n; i++) {
                double d = x[i] - mean;
                ksum_add(&sq, d * d);
        }
        double variance = ksum_value(&sq) / (double)n;
        double stddev = sqrt(variance);
        check_finite("the sum", sum);
        check_finite("the mean", mean);
        check_finite("the variance", variance);

        qsort(x, n, sizeof(*x), cmp_double);
        double median = percentile(x, n, 50.0);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "count");
        jw_int(&w, (int64_t)n);
        jw_key(&w, "sum");
        jw_double(&w, sum);
        jw_key(&w, "mean");
        jw_double(&w, mean);
        jw_key(&w, "min");
        jw_double(&w, min);
        jw_key(&w, "max");
        jw_double(&w, max);
        jw_key(&w, "variance");
        jw_double(&w, variance);
        jw_key(&w, "stddev");
        jw_double(&w, stddev);
        jw_key(&w, "median");
        jw_double(&w, median);
        jw_key(&w, "percentiles");
        jw_object_begin(&w);
        char (*keys)[40] = xcalloc(npct, sizeof(*keys));
        for (size_t i = 0; i < npct; i++) {
                char num[32];
                bool dup = false;
                json_format_double(pcts[i], num);
                snprintf(keys[i], sizeof(keys[i]), "p%s", num);
                for (size_t j = 0; j < i && !dup; j++)
                        dup = strcmp(keys[i], keys[j]) == 0;
                if (dup)
                        continue;
                jw_key(&w, keys[i]);
                jw_double(&w, percentile(x, n, pcts[i]));
        }
        jw_object_end(&w);
        jw_object_end(&w);
        out_puts(&out, "\n");
        out_commit(&out);

        free(keys);
        free(pcts);
        free(x);
        return 0;
}
