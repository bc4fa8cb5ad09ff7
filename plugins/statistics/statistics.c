/* statistics - descriptive statistics of up to ten million numbers.
 *
 * Parameters {"values": [numbers], "percentiles"?: [0..100, ...],
 * "percentile_method"?: "linear" | "nearest_rank", "bins"?: 1..10000}.
 * Result {"count", "sum", "mean", "min", "max", "variance", "stddev",
 * "median", "percentiles": {"p25": ..., ...}, "histogram": {"edges": [...],
 * "counts": [...]}}.
 *
 * sum and the squared deviations are Neumaier-compensated sums (two
 * passes), so a large offset does not swamp a small spread.  variance is the
 * population variance (divided by count).
 *
 * Percentiles are exact: the values are sorted (a radix sort of their
 * bits), and with x(1) <= ... <= x(n) the sorted values,
 *   linear (default; numpy's "linear", Hyndman-Fan type 7): h = (n-1)p/100,
 *     x(floor h + 1) + (h - floor h) (x(floor h + 2) - x(floor h + 1));
 *   nearest_rank (numpy's "inverted_cdf", type 1): x(k), k = ceil(pn/100),
 *     at least 1, where pn/100 within 1e-9 of an integer counts as it (so
 *     99.9 of 1000 values is x(999), whatever the binary of 99.9).
 * median is the linear 50th percentile.  Keys are "p" + the percentile as
 * %.15g writes it ("p99.9"); duplicates are reported once.  Without
 * "percentiles", 25, 50, 75, 90, 95 and 99 are reported.
 *
 * The histogram has "bins" (default 10) equal-width bins from min to max,
 * numpy.histogram's: edges[i] = min + i (max - min)/bins, the last edge max
 * itself; bin i counts edges[i] <= x < edges[i+1], the last bin also x = max.
 * When min == max the range is min - 0.5 .. max + 0.5.
 *
 * Memory: the parsed parameters (about 40 bytes a value) until the values
 * are copied out, then 16 bytes a value. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "sortkeys.h"

#define MAX_VALUES 10000000
#define MAX_PERCENTILES 1000
#define MAX_BINS 10000

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

/* Type 7 on sorted x[0..n). */
static double pct_linear(const double *x, size_t n, double p)
{
        double h = p / 100.0 * (double)(n - 1);
        size_t lo = (size_t)floor(h);
        if (lo >= n - 1)
                return x[n - 1];
        double f = h - (double)lo;
        if (f == 0.0)
                return x[lo];
        double v = x[lo] + f * (x[lo + 1] - x[lo]);
        if (!isfinite(v))   /* the difference overflowed; this form cannot */
                v = x[lo] * (1.0 - f) + x[lo + 1] * f;
        return v;
}

/* Type 1 on sorted x[0..n). */
static double pct_nearest_rank(const double *x, size_t n, double p)
{
        double r = p * (double)n / 100.0;
        double near = round(r);
        double k = fabs(r - near) <= 1e-9 * (near > 1 ? near : 1) ? near : ceil(r);
        if (k < 1)
                k = 1;
        if (k > (double)n)
                k = (double)n;
        return x[(size_t)k - 1];
}

static void check_finite(const char *what, double v)
{
        if (!isfinite(v))
                plugin_die(EXIT_BAD_INPUT, "values too large: %s is beyond the range of a double", what);
}

/* numpy.histogram's uniform bins, counted with its index corrections so
 * that every value lands between the edges it is reported under. */
static void histogram(const double *x, size_t n, double min, double max, size_t bins,
                      double *edges, int64_t *counts)
{
        double first = min, last = max;
        if (first == last) {
                first -= 0.5;
                last += 0.5;
        }
        double step = (last - first) / (double)bins;
        for (size_t i = 0; i < bins; i++)
                edges[i] = (double)i * step + first;
        edges[bins] = last;
        double norm = (double)bins / (last - first);
        for (size_t i = 0; i < n; i++) {
                double f = (x[i] - first) * norm;
                size_t b = f <= 0 ? 0 : f >= (double)bins ? bins - 1 : (size_t)f;
                if (b > 0 && x[i] < edges[b])
                        b--;
                else if (b < bins - 1 && x[i] >= edges[b + 1])
                        b++;
                counts[b]++;
        }
}

int main(void)
{
        static struct out out;
        static const double default_pcts[] = { 25, 50, 75, 90, 95, 99 };
        static const char *const methods[] = { "linear", "nearest_rank", NULL };

        plugin_init("statistics");
        json_t *params = plugin_read_params();

        const json_t *values = param_get(params, "values", true);
        if (!json_is_array(values))
                plugin_die(EXIT_BAD_INPUT, "values must be an array of numbers, got %s",
                           json_kind(values));
        size_t n = json_array_size(values);
        if (n == 0)
                plugin_die(EXIT_BAD_INPUT, "values is empty (it needs at least one number)");
        if (n > MAX_VALUES)
                plugin_die(EXIT_BAD_INPUT, "values has %zu numbers, at most %d allowed", n, MAX_VALUES);

        double *x = xcalloc(n, sizeof(*x));
        for (size_t i = 0; i < n; i++) {
                const json_t *e = json_array_get(values, i);
                if (!json_is_number(e))
                        plugin_die(EXIT_BAD_INPUT, "values[%zu] must be a number, got %s",
                                   i, json_kind(e));
                x[i] = json_number_value(e);
        }

        const json_t *pj = param_get(params, "percentiles", false);
        size_t npct = sizeof(default_pcts) / sizeof(default_pcts[0]);
        double *pcts;
        if (pj) {
                if (!json_is_array(pj))
                        plugin_die(EXIT_BAD_INPUT, "percentiles must be an array of numbers, got %s",
                                   json_kind(pj));
                if (json_array_size(pj) > MAX_PERCENTILES)
                        plugin_die(EXIT_BAD_INPUT, "percentiles has %zu entries, at most %d allowed",
                                   json_array_size(pj), MAX_PERCENTILES);
                npct = json_array_size(pj);
                pcts = xcalloc(npct, sizeof(*pcts));
                for (size_t i = 0; i < npct; i++) {
                        const json_t *e = json_array_get(pj, i);
                        if (!json_is_number(e))
                                plugin_die(EXIT_BAD_INPUT, "percentiles[%zu] must be a number, got %s",
                                           i, json_kind(e));
                        double p = json_number_value(e);
                        if (!(p >= 0.0 && p <= 100.0))
                                plugin_die(EXIT_BAD_INPUT, "percentiles[%zu] is %g, must be within 0..100",
                                           i, p);
                        pcts[i] = p;
                }
        } else {
                pcts = xcalloc(npct, sizeof(*pcts));
                memcpy(pcts, default_pcts, sizeof(default_pcts));
        }
        bool nearest = param_choice(params, "percentile_method", "linear", methods) == 1;
        double nb = param_number(params, "bins", 10, 1, MAX_BINS);
        if (nb != floor(nb))
                plugin_die(EXIT_BAD_INPUT, "bins is %g, must be a whole number", nb);
        size_t bins = (size_t)nb;
        /* The tree is most of the memory; the values are copied out. */
        json_decref(params);

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
        if (!isfinite(max - min))
                plugin_die(EXIT_BAD_INPUT, "values too large: max - min is beyond the range of a double");

        double *edges = xcalloc(bins + 1, sizeof(*edges));
        int64_t *counts = xcalloc(bins, sizeof(*counts));
        histogram(x, n, min, max, bins, edges, counts);

        /* Sort in place through the keys' bit patterns (memcpy keeps the
         * element's effective type right for each view). */
        uint64_t *keys = (uint64_t *)(void *)x;
        for (size_t i = 0; i < n; i++) {
                uint64_t k = key_of_double(x[i]);
                memcpy(&keys[i], &k, sizeof(k));
        }
        radix_sort(keys, NULL, n);
        for (size_t i = 0; i < n; i++) {
                double d = double_of_key(keys[i]);
                memcpy(&x[i], &d, sizeof(d));
        }

        out_open_result(&out);
        out_begin(&out, '{');
        out_key(&out, "count");
        out_int(&out, (int64_t)n);
        out_key(&out, "sum");
        out_double(&out, sum);
        out_key(&out, "mean");
        out_double(&out, mean);
        out_key(&out, "min");
        out_double(&out, min);
        out_key(&out, "max");
        out_double(&out, max);
        out_key(&out, "variance");
        out_double(&out, variance);
        out_key(&out, "stddev");
        out_double(&out, stddev);
        out_key(&out, "median");
        out_double(&out, pct_linear(x, n, 50.0));
        out_key(&out, "percentiles");
        out_begin(&out, '{');
        char (*keynames)[40] = xcalloc(npct, sizeof(*keynames));
        for (size_t i = 0; i < npct; i++) {
                bool dup = false;
                snprintf(keynames[i], sizeof(keynames[i]), "p%.15g", pcts[i]);
                for (size_t j = 0; j < i && !dup; j++)
                        dup = strcmp(keynames[i], keynames[j]) == 0;
                if (dup)
                        continue;
                out_key(&out, keynames[i]);
                out_double(&out, nearest ? pct_nearest_rank(x, n, pcts[i]) : pct_linear(x, n, pcts[i]));
        }
        out_end(&out, '}');
        out_key(&out, "histogram");
        out_begin(&out, '{');
        out_key(&out, "edges");
        out_begin(&out, '[');
        for (size_t i = 0; i <= bins; i++)
                out_double(&out, edges[i]);
        out_end(&out, ']');
        out_key(&out, "counts");
        out_begin(&out, '[');
        for (size_t i = 0; i < bins; i++)
                out_int(&out, counts[i]);
        out_end(&out, ']');
        out_end(&out, '}');
        out_end(&out, '}');
        out_commit(&out);

        free(keynames);
        free(edges);
        free(counts);
        free(pcts);
        free(x);
        return 0;
}
