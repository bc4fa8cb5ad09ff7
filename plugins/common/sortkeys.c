/* sortkeys.c - see sortkeys.h. */
#include "sortkeys.h"

#include <stdlib.h>
#include <string.h>

#include "plugin.h"

uint64_t key_of_double(double d)
{
        uint64_t u;
        if (d == 0)
                d = 0.0;        /* -0.0 sorts as 0.0 */
        memcpy(&u, &d, sizeof(u));
        /* Negative: all bits flipped (larger magnitude sorts first);
         * positive: the sign bit set, so they follow every negative. */
        return (u >> 63) ? ~u : u | (UINT64_C(1) << 63);
}

double double_of_key(uint64_t k)
{
        uint64_t u = (k >> 63) ? k & ~(UINT64_C(1) << 63) : ~k;
        double d;
        memcpy(&d, &u, sizeof(d));
        return d;
}

uint64_t key_of_int(int64_t v)
{
        return (uint64_t)v ^ (UINT64_C(1) << 63);
}

int64_t int_of_key(uint64_t k)
{
        return (int64_t)(k ^ (UINT64_C(1) << 63));
}

#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)
#define RADIX_PASSES 6          /* 6 x 11 bits >= 64 */

void radix_sort(uint64_t *keys, uint32_t *idx, size_t n)
{
        if (n < 2)
                return;
        /* One pass counts every digit; a digit all keys share is skipped. */
        size_t (*count)[RADIX_SIZE] = xcalloc(RADIX_PASSES, sizeof(*count));
        for (size_t i = 0; i < n; i++)
                for (unsigned p = 0; p < RADIX_PASSES; p++)
                        count[p][(keys[i] >> (p * RADIX_BITS)) & (RADIX_SIZE - 1)]++;

        uint64_t *k2 = xcalloc(n, sizeof(*k2));
        uint32_t *i2 = idx ? xcalloc(n, sizeof(*i2)) : NULL;
        uint64_t *ks = keys, *kd = k2;
        uint32_t *is = idx, *id = i2;
        for (unsigned p = 0; p < RADIX_PASSES; p++) {
                unsigned shift = p * RADIX_BITS;
                if (count[p][(ks[0] >> shift) & (RADIX_SIZE - 1)] == n)
                        continue;
                size_t pos = 0;
                for (unsigned b = 0; b < RADIX_SIZE; b++) {
                        size_t c = count[p][b];
                        count[p][b] = pos;
                        pos += c;
                }
                for (size_t i = 0; i < n; i++) {
                        size_t at = count[p][(ks[i] >> shift) & (RADIX_SIZE - 1)]++;
                        kd[at] = ks[i];
                        if (is)
                                id[at] = is[i];
                }
                uint64_t *kt = ks; ks = kd; kd = kt;
                uint32_t *it = is; is = id; id = it;
        }
        if (ks != keys) {
                memcpy(keys, ks, n * sizeof(*keys));
                if (idx)
                        memcpy(idx, is, n * sizeof(*idx));
        }
        free(k2);
        free(i2);
        free(count);
}

/* Bottom-up: insertion-sorted runs of 32, then merges that take from the
 * left run on ties (stability). */
void merge_sort(uint32_t *idx, size_t n, idx_cmp cmp, void *ctx)
{
        enum { RUN = 32 };
        for (size_t lo = 0; lo < n; lo += RUN) {
                size_t hi = lo + RUN < n ? lo + RUN : n;
                for (size_t i = lo + 1; i < hi; i++) {
                        uint32_t v = idx[i];
                        size_t j = i;
                        while (j > lo && cmp(idx[j - 1], v, ctx) > 0) {
                                idx[j] = idx[j - 1];
                                j--;
                        }
                        idx[j] = v;
                }
        }
        if (n <= RUN)
                return;
        uint32_t *tmp = xcalloc(n, sizeof(*tmp));
        uint32_t *src = idx, *dst = tmp;
        for (size_t width = RUN; width < n; width *= 2) {
                for (size_t lo = 0; lo < n; lo += 2 * width) {
                        size_t mid = lo + width < n ? lo + width : n;
                        size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
                        size_t a = lo, b = mid, o = lo;
                        while (a < mid && b < hi)
                                dst[o++] = cmp(src[b], src[a], ctx) < 0 ? src[b++] : src[a++];
                        while (a < mid)
                                dst[o++] = src[a++];
                        while (b < hi)
                                dst[o++] = src[b++];
                }
                uint32_t *t = src; src = dst; dst = t;
        }
        if (src != idx)
                memcpy(idx, src, n * sizeof(*idx));
        free(tmp);
}
