/* admission.c - the admission policy (see admission.h).  Per-plugin
 * running counts, the memory budget and the job that holds the line, under
 * one mutex. */
#include "admission.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "registry/oci.h"

struct slot {
        char *name;
        size_t running;
        struct slot *next;
};

struct admission {
        pthread_mutex_t lock;
        const struct limits *defaults;
        struct breaker *breaker;
        struct slot *slots;
        size_t running;
        int64_t pool_mb, used_mb;
        struct job *memory_waiter;   /* a reference: first in line for memory */
};

struct admission *admission_new(int64_t pool_mb, const struct limits *defaults, struct breaker *b)
{
        struct admission *a = xcalloc(1, sizeof *a);
        pthread_mutex_init(&a->lock, NULL);
        a->defaults = defaults;
        a->breaker = b;
        a->pool_mb = pool_mb;
        if (a->pool_mb == 0) {
                long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
                a->pool_mb = pages > 0 && page > 0 ? (int64_t)pages / 1024 * page / 1024 * 3 / 4 : 1024;
        }
        return a;
}

void admission_free(struct admission *a)
{
        if (!a)
                return;
        for (struct slot *s = a->slots, *n; s; s = n) {
                n = s->next;
                free(s->name);
                free(s);
        }
        job_unref(a->memory_waiter);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static struct slot *slot_for(struct admission *a, const char *name)
{
        for (struct slot *s = a->slots; s; s = s->next)
                if (!strcmp(s->name, name))
                        return s;
        struct slot *s = xcalloc(1, sizeof *s);
        s->name = xstrdup(name);
        s->next = a->slots;
        a->slots = s;
        return s;
}

static int64_t memory_mb(const struct admission *a, const struct job *j)
{
        return oci_effective_limits(j->manifest, a->defaults).memory_mb;
}

/* Could j start now but for memory: its plugin under max_concurrent and
 * its algorithm's breaker willing (lock held)? */
static bool may_run(struct admission *a, struct job *j)
{
        struct slot *s = slot_for(a, j->manifest->name);
        int64_t max = j->manifest->max_concurrent;
        return (max <= 0 || s->running < (size_t)max) &&
               breaker_would_admit(a->breaker, j->manifest->name, s->running);
}

/* Does x leave the queue before y: higher priority first, then older (the
 * queue's order; under the queue lock, which admission_try runs under)? */
static bool ahead_of(const struct job *x, const struct job *y)
{
        if (x->priority != y->priority)
                return x->priority < y->priority;
        return x->qseq < y->qseq;
}

bool admission_try(struct job *j, void *ctx)
{
        struct admission *a = ctx;
        int64_t need = memory_mb(a, j);
        pthread_mutex_lock(&a->lock);
        /* The line is held only by a job that waits for memory alone: one
         * cancelled, or held back by its plugin's limit or its breaker,
         * would block every other algorithm for as long. */
        if (a->memory_waiter && (!a->memory_waiter->queued || !may_run(a, a->memory_waiter))) {
                job_unref(a->memory_waiter);
                a->memory_waiter = NULL;
        }
        struct slot *s = slot_for(a, j->manifest->name);
        bool runnable = may_run(a, j);
        bool fits = a->running == 0 || a->used_mb + need <= a->pool_mb;
        /* The line holds back only the jobs behind its holder: a job
         * ahead of it (a higher priority that came later) is not made to
         * wait for a lower one's memory, and takes the line itself when
         * it does not fit either. */
        bool ahead = a->memory_waiter && ahead_of(j, a->memory_waiter);
        bool ok = runnable && fits && (!a->memory_waiter || a->memory_waiter == j || ahead);
        if (runnable && !fits && (!a->memory_waiter || ahead)) {
                job_unref(a->memory_waiter);
                a->memory_waiter = job_ref(j);
        }
        bool probe = false;
        if (ok)
                ok = breaker_admit(a->breaker, j->manifest->name, s->running, &probe);
        if (ok && a->memory_waiter == j) {
                job_unref(a->memory_waiter);
                a->memory_waiter = NULL;
        }
        if (ok) {
                s->running++;
                a->running++;
                a->used_mb += need;
                j->breaker_probe = probe;
        }
        pthread_mutex_unlock(&a->lock);
        return ok;
}

void admission_release(struct admission *a, struct job *j)
{
        int64_t need = memory_mb(a, j);
        pthread_mutex_lock(&a->lock);
        slot_for(a, j->manifest->name)->running--;
        a->running--;
        a->used_mb -= need;
        pthread_mutex_unlock(&a->lock);
}

size_t admission_running(struct admission *a)
{
        pthread_mutex_lock(&a->lock);
        size_t n = a->running;
        pthread_mutex_unlock(&a->lock);
        return n;
}

void admission_memory(struct admission *a, int64_t *ret_used_mb, int64_t *ret_pool_mb)
{
        pthread_mutex_lock(&a->lock);
        *ret_used_mb = a->used_mb;
        *ret_pool_mb = a->pool_mb;
        pthread_mutex_unlock(&a->lock);
}
