/* convolve2d - a 2-D convolution of an image with a kernel, output the
 * size of the image ("same").
 *
 * Parameters {"image": [[numbers]] (at most 2048 x 2048), "kernel":
 * [[numbers]] (odd sides, at most 31 x 31), "border"?: "zero" | "clamp" |
 * "wrap" | "reflect" | "symmetric"}.  Result {"image": [[...]], "rows",
 * "cols"}.
 *
 * A true convolution (the kernel flipped), centred: with kh x kw the
 * kernel, ch = (kh-1)/2 and cw = (kw-1)/2,
 *   out[i][j] = sum over u < kh, v < kw of kernel[u][v] * I(i+ch-u, j+cw-v)
 * where I is the image extended beyond its edges by the border mode (the
 * names of numpy.pad's modes in brackets; a row shown as a b c d):
 *   zero       0 outside (constant)
 *   clamp      the nearest edge pixel: a a | a b c d | d d (edge)
 *   wrap       periodic: c d | a b c d | a b (wrap)
 *   reflect    mirrored about the edge pixel: c b | a b c d | c b (reflect)
 *   symmetric  mirrored with the edge repeated: b a | a b c d | d c (symmetric)
 * applied again as often as a kernel wider than the image needs.
 *
 * Computed in double precision over an image padded once by the border
 * mode; integer images and kernels give exact integers while the sums stay
 * below 2^53.  A result beyond the range of a double is a bad input. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin.h"

#define MAX_SIDE 2048
#define MAX_KERNEL 31

enum border { ZERO, CLAMP, WRAP, REFLECT, SYMMETRIC };

/* The image index that t (any integer) reads under border b, or -1 for
 * zero.  n >= 1. */
static long source(long t, long n, enum border b)
{
        if (t >= 0 && t < n)
                return t;
        switch (b) {
        case ZERO:
                return -1;
        case CLAMP:
                return t < 0 ? 0 : n - 1;
        case WRAP:
                return ((t % n) + n) % n;
        case REFLECT: {
                if (n == 1)
                        return 0;
                long period = 2 * (n - 1);
                t = ((t % period) + period) % period;
                return t < n ? t : period - t;
        }
        case SYMMETRIC: {
                long period = 2 * n;
                t = ((t % period) + period) % period;
                return t < n ? t : period - 1 - t;
        }
        }
        return -1;
}

int main(void)
{
        static struct out out;
        static const char *const borders[] = { "zero", "clamp", "wrap", "reflect", "symmetric", NULL };
        struct grid img = { 0 }, ker = { 0 };

        plugin_init("convolve2d");
        json_t *params = plugin_read_params();
        param_grid(params, "image", MAX_SIDE, false, &img);
        param_grid(params, "kernel", MAX_KERNEL, false, &ker);
        enum border border = (enum border)param_choice(params, "border", "zero", borders);
        json_decref(params);
        if (ker.rows % 2 == 0 || ker.cols % 2 == 0)
                plugin_die(EXIT_BAD_INPUT, "kernel is %zux%zu: its sides must be odd (a centre pixel)",
                           ker.rows, ker.cols);

        long rows = (long)img.rows, cols = (long)img.cols;
        long kh = (long)ker.rows, kw = (long)ker.cols, ch = (kh - 1) / 2, cw = (kw - 1) / 2;
        long pw = cols + kw - 1, ph = rows + kh - 1;

        /* P[y][x] = I(y - ch, x - cw): every read of the sum below is inside. */
        double *pad = xcalloc((size_t)(ph * pw), sizeof(*pad));
        for (long y = 0; y < ph; y++) {
                long sy = source(y - ch, rows, border);
                for (long x = 0; x < pw; x++) {
                        long sx = source(x - cw, cols, border);
                        pad[y * pw + x] = sy < 0 || sx < 0 ? 0.0 : img.d[sy * cols + sx];
                }
        }
        grid_done(&img);

        /* out[i][j] = sum of kernel[kh-1-u][kw-1-v] * P[i+u][j+v]: with
         * the kernel flipped, the inner loop runs along a row of P. */
        double *res = xcalloc((size_t)(rows * cols), sizeof(*res));
        for (long i = 0; i < rows; i++) {
                double *acc = res + i * cols;
                for (long u = 0; u < kh; u++) {
                        for (long v = 0; v < kw; v++) {
                                double k = ker.d[(kh - 1 - u) * kw + (kw - 1 - v)];
                                const double *src = pad + (i + u) * pw + v;
                                if (k == 0)
                                        continue;
                                for (long j = 0; j < cols; j++)
                                        acc[j] += k * src[j];
                        }
                }
        }
        free(pad);
        grid_done(&ker);
        for (long i = 0; i < rows * cols; i++)
                if (!isfinite(res[i]))
                        plugin_die(EXIT_BAD_INPUT, "image[%ld][%ld] of the result is beyond the range "
                                   "of a double", i / cols, i % cols);

        out_open_result(&out);
        out_begin(&out, '{');
        out_key(&out, "image");
        out_begin(&out, '[');
        for (long i = 0; i < rows; i++) {
                out_begin(&out, '[');
                for (long j = 0; j < cols; j++)
                        out_double(&out, res[i * cols + j] + 0.0);   /* -0 -> 0 */
                out_end(&out, ']');
        }
        out_end(&out, ']');
        out_key(&out, "rows");
        out_int(&out, rows);
        out_key(&out, "cols");
        out_int(&out, cols);
        out_end(&out, '}');
        out_commit(&out);
        free(res);
        return 0;
}
