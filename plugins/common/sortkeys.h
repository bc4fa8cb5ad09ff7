/* sortkeys.h - stable sorting for the sort and statistics plugins: an LSD
 * radix sort of 64-bit keys that carries a 32-bit payload (the item's
 * index), the order-preserving keys of doubles and int64, and a stable
 * merge sort of indices for what keys cannot order (long strings, integers
 * beyond 2^53 among doubles).  Single-threaded; memory is what the caller
 * passes plus, for radix_sort, one copy of keys and payload. */
#ifndef PLUGIN_SORTKEYS_H
#define PLUGIN_SORTKEYS_H

#include <stddef.h>
#include <stdint.h>

/* Keys whose unsigned order is the numeric order.  -0.0 gets the key of
 * 0.0 (they compare equal); NaN never reaches here (JSON has none). */
uint64_t key_of_double(double d);
double double_of_key(uint64_t k);
uint64_t key_of_int(int64_t v);
int64_t int_of_key(uint64_t k);

/* Stable sort of keys[0..n) ascending; idx (NULL for none) moves along. */
void radix_sort(uint64_t *keys, uint32_t *idx, size_t n);

/* Stable merge sort of idx[0..n) by cmp (negative, 0, positive). */
typedef int (*idx_cmp)(uint32_t a, uint32_t b, void *ctx);
void merge_sort(uint32_t *idx, size_t n, idx_cmp cmp, void *ctx);

#endif
