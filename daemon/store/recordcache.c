/* recordcache.c - renderings of final records (see recordcache.h): a hash
 * of chained entries and an LRU list, under one mutex. */
#include "recordcache.h"

#include <pthread.h>
#include <string.h>

#include "base/util.h"

#define ID_MAX 64
#define ENTRY_OVERHEAD 128   /* what an entry costs beyond its text */

struct entry {
        char id[ID_MAX];
        char *text;
        size_t len;
        struct entry *hnext;             /* bucket chain */
        struct entry *newer, *older;     /* LRU list */
};

struct recordcache {
        pthread_mutex_t lock;
        size_t max_bytes, bytes;
        uint64_t gen;
        struct entry **buckets;
        size_t nbuckets;                 /* a power of two */
        struct entry *newest, *oldest;
};

static size_t hash(const char *id)
{
        size_t h = 1469598103934665603ULL;
        for (; *id; id++)
                h = (h ^ (unsigned char)*id) * 1099511628211ULL;
        return h;
}

struct recordcache *recordcache_new(size_t max_bytes)
{
        struct recordcache *c = xcalloc(1, sizeof *c);
        pthread_mutex_init(&c->lock, NULL);
        c->max_bytes = max_bytes;
        /* About one bucket per 1 KiB rendering the cache can hold. */
        c->nbuckets = 64;
        while (c->nbuckets < max_bytes / 1024 && c->nbuckets < (1u << 20))
                c->nbuckets *= 2;
        c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
        return c;
}

static void unlink_lru(struct recordcache *c, struct entry *e)
{
        if (e->newer)
                e->newer->older = e->older;
        else
                c->newest = e->older;
        if (e->older)
                e->older->newer = e->newer;
        else
                c->oldest = e->newer;
        e->newer = e->older = NULL;
}

static void push_newest(struct recordcache *c, struct entry *e)
{
        e->older = c->newest;
        e->newer = NULL;
        if (c->newest)
                c->newest->newer = e;
        c->newest = e;
        if (!c->oldest)
                c->oldest = e;
}

static struct entry **slot(struct recordcache *c, const char *id)
{
        struct entry **pp = &c->buckets[hash(id) & (c->nbuckets - 1)];
        while (*pp && strcmp((*pp)->id, id))
                pp = &(*pp)->hnext;
        return pp;
}

static void remove_entry(struct recordcache *c, struct entry **pp)
{
        struct entry *e = *pp;
        *pp = e->hnext;
        unlink_lru(c, e);
        c->bytes -= e->len + ENTRY_OVERHEAD;
        free(e->text);
        free(e);
}

void recordcache_free(struct recordcache *c)
{
        if (!c)
                return;
        while (c->oldest)
                remove_entry(c, slot(c, c->oldest->id));
        free(c->buckets);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

char *recordcache_get(struct recordcache *c, const char *id, size_t *ret_len)
{
        char *copy = NULL;
        pthread_mutex_lock(&c->lock);
        struct entry *e = *slot(c, id);
        if (e) {
                unlink_lru(c, e);
                push_newest(c, e);
                copy = xmalloc(e->len + 1);
                memcpy(copy, e->text, e->len + 1);
                *ret_len = e->len;
        }
        pthread_mutex_unlock(&c->lock);
        return copy;
}

bool recordcache_len(struct recordcache *c, const char *id, size_t *ret_len)
{
        pthread_mutex_lock(&c->lock);
        struct entry *e = *slot(c, id);
        if (e)
                *ret_len = e->len;
        pthread_mutex_unlock(&c->lock);
        return e != NULL;
}

uint64_t recordcache_generation(struct recordcache *c)
{
        pthread_mutex_lock(&c->lock);
        uint64_t g = c->gen;
        pthread_mutex_unlock(&c->lock);
        return g;
}

size_t recordcache_entry_max(struct recordcache *c)
{
        /* Nothing worth evicting a quarter of the cache for. */
        return c->max_bytes / 4 > ENTRY_OVERHEAD ? c->max_bytes / 4 - ENTRY_OVERHEAD : 0;
}

void recordcache_put(struct recordcache *c, uint64_t gen, const char *id, const char *text, size_t len)
{
        if (strlen(id) >= ID_MAX || len > recordcache_entry_max(c))
                return;
        pthread_mutex_lock(&c->lock);
        struct entry **pp = slot(c, id);
        if (gen == c->gen && !*pp) {
                struct entry *e = xcalloc(1, sizeof *e);
                snprintf(e->id, sizeof e->id, "%s", id);
                e->text = xmemdup0(text, len);
                e->len = len;
                *pp = e;
                push_newest(c, e);
                c->bytes += len + ENTRY_OVERHEAD;
                while (c->bytes > c->max_bytes && c->oldest)
                        remove_entry(c, slot(c, c->oldest->id));
        }
        pthread_mutex_unlock(&c->lock);
}

void recordcache_drop(struct recordcache *c, const char *id)
{
        pthread_mutex_lock(&c->lock);
        c->gen++;
        struct entry **pp = slot(c, id);
        if (*pp)
                remove_entry(c, pp);
        pthread_mutex_unlock(&c->lock);
}

size_t recordcache_bytes(struct recordcache *c)
{
        pthread_mutex_lock(&c->lock);
        size_t n = c->bytes;
        pthread_mutex_unlock(&c->lock);
        return n;
}
