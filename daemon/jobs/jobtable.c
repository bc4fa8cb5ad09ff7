/* jobtable.c - live job handles by id (see jobtable.h). */
#include "jobtable.h"

#include <pthread.h>
#include <string.h>

#include "base/util.h"

#define BUCKETS 4096

struct entry {
        struct job *job;
        struct entry *next;
};

struct jobtable {
        pthread_mutex_t lock;
        struct entry *buckets[BUCKETS];
        size_t count;
};

static size_t hash_id(const char *id)
{
        size_t h = 5381;
        for (const unsigned char *p = (const unsigned char *)id; *p; p++)
                h = h * 33 + *p;
        return h % BUCKETS;
}

struct jobtable *jobtable_new(void)
{
        struct jobtable *t = xcalloc(1, sizeof *t);
        pthread_mutex_init(&t->lock, NULL);
        return t;
}

void jobtable_free(struct jobtable *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < BUCKETS; i++) {
                for (struct entry *e = t->buckets[i], *n; e; e = n) {
                        n = e->next;
                        job_unref(e->job);
                        free(e);
                }
        }
        pthread_mutex_destroy(&t->lock);
        free(t);
}

void jobtable_add(struct jobtable *t, struct job *j)
{
        struct entry *e = xmalloc(sizeof *e);
        e->job = job_ref(j);
        pthread_mutex_lock(&t->lock);
        size_t h = hash_id(j->id);
        e->next = t->buckets[h];
        t->buckets[h] = e;
        t->count++;
        pthread_mutex_unlock(&t->lock);
}

void jobtable_remove(struct jobtable *t, struct job *j)
{
        struct entry *found = NULL;
        pthread_mutex_lock(&t->lock);
        for (struct entry **pp = &t->buckets[hash_id(j->id)]; *pp; pp = &(*pp)->next) {
                if ((*pp)->job == j) {
                        found = *pp;
                        *pp = found->next;
                        t->count--;
                        break;
                }
        }
        pthread_mutex_unlock(&t->lock);
        if (found) {
                job_unref(found->job);
                free(found);
        }
}

struct job *jobtable_get(struct jobtable *t, const char *id)
{
        struct job *j = NULL;
        pthread_mutex_lock(&t->lock);
        for (struct entry *e = t->buckets[hash_id(id)]; e && !j; e = e->next)
                if (!strcmp(e->job->id, id))
                        j = job_ref(e->job);
        pthread_mutex_unlock(&t->lock);
        return j;
}

void jobtable_foreach(struct jobtable *t, void (*fn)(struct job *j, void *ctx), void *ctx)
{
        pthread_mutex_lock(&t->lock);
        struct job **list = xcalloc(t->count + 1, sizeof *list);
        size_t n = 0;
        for (size_t i = 0; i < BUCKETS; i++)
                for (struct entry *e = t->buckets[i]; e; e = e->next)
                        list[n++] = job_ref(e->job);
        pthread_mutex_unlock(&t->lock);
        for (size_t i = 0; i < n; i++) {
                fn(list[i], ctx);
                job_unref(list[i]);
        }
        free(list);
}
