/* recordcache.h - renderings of final job records, ready to send.
 *
 * Why: a final record never changes (until retention deletes it), and
 * `GET /v1/jobs/{id}` of one is the hottest read; from here it costs a
 * lookup and a copy instead of a store read and a JSON rendering.  Bounded
 * in bytes (store.cache_bytes); least recently used goes first.  A deletion
 * (recordcache_drop) also bumps a generation, and a put made with an older
 * generation is ignored, so a rendering read before a deletion can never be
 * cached after it.  Any thread. */
#ifndef EDGECD_RECORDCACHE_H
#define EDGECD_RECORDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recordcache;

/* max_bytes 0: caches nothing. */
struct recordcache *recordcache_new(size_t max_bytes);
void recordcache_free(struct recordcache *c);   /* NULL is fine */

/* A copy of id's rendering (caller frees), NULL when not cached. */
char *recordcache_get(struct recordcache *c, const char *id, size_t *ret_len);
/* The length of id's rendering, without copying it: false when not cached. */
bool recordcache_len(struct recordcache *c, const char *id, size_t *ret_len);
/* The generation to pass to put, taken before reading the record. */
uint64_t recordcache_generation(struct recordcache *c);
/* Keep a copy of text as id's rendering, unless a drop came after gen. */
void recordcache_put(struct recordcache *c, uint64_t gen, const char *id, const char *text, size_t len);
/* The longest rendering put keeps (0: none). */
size_t recordcache_entry_max(struct recordcache *c);
/* id's record is being deleted. */
void recordcache_drop(struct recordcache *c, const char *id);

size_t recordcache_bytes(struct recordcache *c);

#endif
