/* monte_carlo_pi - estimates pi from random points in the unit square, and
 * reports its progress in /output/progress.json as it goes (the example of
 * plugin_progress).
 *
 * Parameters {"samples"?: 1..10^10 (default 10^7), "seed"?: 0..2^53
 * (default 1), "seconds"?: 0..60 (default 0)}.  Result {"pi", "samples",
 * "inside", "seed", "std_error", "abs_error"}.
 *
 * Deterministic: the points come from splitmix64 started at the seed; each
 * point takes two outputs r1, r2, x = (r1 >> 11) 2^-53, y = (r2 >> 11)
 * 2^-53, and is inside when x*x + y*y <= 1 (plain IEEE double arithmetic,
 * no fused multiply-add).  pi = 4 inside / samples; std_error is the
 * binomial standard error 4 sqrt(q (1-q) / samples), q = inside / samples;
 * abs_error is |pi - M_PI|.
 *
 * The work runs in 20 equal slices; after each, progress.json gets the
 * fraction done and a message.  "seconds" spreads the slices over at least
 * that long (sleeping between them when the work is quicker), so a caller
 * can watch the progress of a run of known length; it does not change the
 * result. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "plugin.h"

#define SLICES 20

static uint64_t splitmix64(uint64_t *state)
{
        uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

static uint64_t whole(const json_t *params, const char *key, double def, double max)
{
        double v = param_number(params, key, def, 0, max);
        if (v != floor(v))
                plugin_die(EXIT_BAD_INPUT, "%s is %.17g, must be a whole number", key, v);
        return (uint64_t)v;
}

static void sleep_until(double t)
{
        double left = t - plugin_now();
        if (left <= 0)
                return;
        struct timespec ts = { (time_t)left, (long)((left - floor(left)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int main(void)
{
        static struct out out;

        plugin_init("monte_carlo_pi");
        json_t *params = plugin_read_params();
        uint64_t samples = whole(params, "samples", 1e7, 1e10);
        uint64_t seed = whole(params, "seed", 1, 9007199254740992.0);
        double seconds = param_number(params, "seconds", 0, 0, 60);
        json_decref(params);
        if (samples == 0)
                plugin_die(EXIT_BAD_INPUT, "samples must be at least 1");

        double start = plugin_now();
        uint64_t state = seed, inside = 0, done = 0;
        plugin_progress(0, "0 of %llu samples", (unsigned long long)samples);
        for (int s = 1; s <= SLICES; s++) {
                uint64_t end = samples / SLICES * (uint64_t)s + samples % SLICES * (uint64_t)s / SLICES;
                for (; done < end; done++) {
                        double x = (double)(splitmix64(&state) >> 11) * 0x1p-53;
                        double y = (double)(splitmix64(&state) >> 11) * 0x1p-53;
                        inside += x * x + y * y <= 1.0;
                }
                sleep_until(start + seconds * s / SLICES);
                plugin_progress((double)s / SLICES, "%llu of %llu samples, pi ~ %.6f",
                                (unsigned long long)done, (unsigned long long)samples,
                                done ? 4.0 * (double)inside / (double)done : 0.0);
        }

        double q = (double)inside / (double)samples;
        double pi = 4.0 * q;
        out_open_result(&out);
        out_begin(&out, '{');
        out_key(&out, "pi");
        out_double(&out, pi);
        out_key(&out, "samples");
        out_int(&out, (int64_t)samples);
        out_key(&out, "inside");
        out_int(&out, (int64_t)inside);
        out_key(&out, "seed");
        out_int(&out, (int64_t)seed);
        out_key(&out, "std_error");
        out_double(&out, 4.0 * sqrt(q * (1 - q) / (double)samples));
        out_key(&out, "abs_error");
        out_double(&out, fabs(pi - M_PI));
        out_end(&out, '}');
        out_commit(&out);
        return 0;
}
