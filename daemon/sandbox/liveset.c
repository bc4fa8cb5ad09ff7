/* liveset.c - run ids in use (see liveset.h): a short array under a mutex;
 * it holds at most workers + warm containers + cleanups in flight. */
#include "liveset.h"

#include <pthread.h>
#include <string.h>

#include "base/util.h"

struct liveset {
        pthread_mutex_t lock;
        char **ids;
        size_t n, cap;
};

struct liveset *liveset_new(void)
{
        struct liveset *l = xcalloc(1, sizeof *l);
        pthread_mutex_init(&l->lock, NULL);
        return l;
}

void liveset_free(struct liveset *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                free(l->ids[i]);
        free(l->ids);
        pthread_mutex_destroy(&l->lock);
        free(l);
}

void liveset_add(struct liveset *l, const char *run_id)
{
        pthread_mutex_lock(&l->lock);
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 8;
                l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
        }
        l->ids[l->n++] = xstrdup(run_id);
        pthread_mutex_unlock(&l->lock);
}

void liveset_remove(struct liveset *l, const char *run_id)
{
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < l->n; i++) {
                if (!strcmp(l->ids[i], run_id)) {
                        free(l->ids[i]);
                        l->ids[i] = l->ids[--l->n];
                        break;
                }
        }
        pthread_mutex_unlock(&l->lock);
}

bool liveset_contains(struct liveset *l, const char *run_id)
{
        pthread_mutex_lock(&l->lock);
        bool found = false;
        for (size_t i = 0; i < l->n && !found; i++)
                found = !strcmp(l->ids[i], run_id);
        pthread_mutex_unlock(&l->lock);
        return found;
}
