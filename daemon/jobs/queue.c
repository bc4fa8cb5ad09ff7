/* queue.c - bounded priority queue of jobs in lanes (see queue.h).
 * Touched by HTTP threads (push, remove) and worker threads (pop). */
#include "queue.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/util.h"

struct lane {
        enum job_priority prio;
        char *algorithm;
        struct job *head, *tail;
        struct lane *next;
};

struct queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct lane *lanes;      /* the non-empty ones */
        size_t nlanes;
        size_t length, capacity;
        size_t reserved;          /* places held for jobs being committed */
        uint64_t seq;
        bool closed;
};

struct queue *queue_new(size_t capacity)
{
        struct queue *q = xcalloc(1, sizeof *q);
        pthread_mutex_init(&q->lock, NULL);
        cond_init_monotonic(&q->cond);
        q->capacity = capacity;
        return q;
}

static struct lane *lane_find(struct queue *q, enum job_priority prio, const char *algorithm)
{
        for (struct lane *l = q->lanes; l; l = l->next)
                if (l->prio == prio && !strcmp(l->algorithm, algorithm))
                        return l;
        return NULL;
}

static void lane_drop(struct queue *q, struct lane *l)
{
        for (struct lane **pp = &q->lanes; *pp; pp = &(*pp)->next) {
                if (*pp == l) {
                        *pp = l->next;
                        break;
                }
        }
        q->nlanes--;
        free(l->algorithm);
        free(l);
}

/* Unlink j from its lane (lock held); the lane goes when it empties. */
static void unlink_job(struct queue *q, struct job *j)
{
        struct lane *l = j->qlane;
        if (j->qprev)
                j->qprev->qnext = j->qnext;
        else
                l->head = j->qnext;
        if (j->qnext)
                j->qnext->qprev = j->qprev;
        else
                l->tail = j->qprev;
        j->qnext = j->qprev = NULL;
        j->qlane = NULL;
        j->queued = false;
        q->length--;
        if (!l->head)
                lane_drop(q, l);
}

void queue_free(struct queue *q)
{
        if (!q)
                return;
        while (q->lanes) {
                struct job *j = q->lanes->head;
                unlink_job(q, j);
                job_unref(j);
        }
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
}

/* Under q->lock. */
static void push_locked(struct queue *q, struct job *j)
{
        struct lane *l = lane_find(q, j->priority, j->manifest->name);
        if (!l) {
                l = xcalloc(1, sizeof *l);
                l->prio = j->priority;
                l->algorithm = xstrdup(j->manifest->name);
                l->next = q->lanes;
                q->lanes = l;
                q->nlanes++;
        }
        j->qseq = ++q->seq;
        j->qlane = l;
        j->qnext = NULL;
        j->qprev = l->tail;
        if (l->tail)
                l->tail->qnext = j;
        else
                l->head = j;
        l->tail = job_ref(j);
        j->queued = true;
        q->length++;
        /* Any one worker can take it: one wake-up is enough. */
        pthread_cond_signal(&q->cond);
}

int queue_push(struct queue *q, struct job *j, struct err *err)
{
        pthread_mutex_lock(&q->lock);
        int ret = 0;
        if (q->closed)
                ret = err_set(err, ERR_UNAVAILABLE, 0, "the daemon is shutting down");
        else if (q->length + q->reserved >= q->capacity)
                ret = err_set(err, ERR_BUSY, 0, "the job queue is full (%zu jobs waiting)", q->length);
        else
                push_locked(q, j);
        pthread_mutex_unlock(&q->lock);
        return ret;
}

int queue_reserve(struct queue *q, size_t n, struct err *err)
{
        pthread_mutex_lock(&q->lock);
        int ret = 0;
        if (q->closed)
                ret = err_set(err, ERR_UNAVAILABLE, 0, "the daemon is shutting down");
        else if (q->length + q->reserved + n > q->capacity)
                ret = err_set(err, ERR_BUSY, 0, "the job queue is full (%zu jobs waiting)", q->length);
        else
                q->reserved += n;
        pthread_mutex_unlock(&q->lock);
        return ret;
}

void queue_unreserve(struct queue *q, size_t n)
{
        pthread_mutex_lock(&q->lock);
        q->reserved -= n <= q->reserved ? n : q->reserved;
        pthread_mutex_unlock(&q->lock);
}

void queue_push_reserved(struct queue *q, struct job *j)
{
        pthread_mutex_lock(&q->lock);
        q->reserved -= q->reserved ? 1 : 0;
        if (!q->closed)
                push_locked(q, j);
        pthread_mutex_unlock(&q->lock);
}

void queue_restore(struct queue *q, struct job *j)
{
        pthread_mutex_lock(&q->lock);
        if (!q->closed)
                push_locked(q, j);
        pthread_mutex_unlock(&q->lock);
}

static int head_order(const void *a, const void *b)
{
        const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
        if (x->priority != y->priority)
                return x->priority < y->priority ? -1 : 1;
        return x->qseq < y->qseq ? -1 : x->qseq > y->qseq;
}

struct job *queue_pop(struct queue *q, bool (*eligible)(struct job *j, void *ctx), void *ctx)
{
        pthread_mutex_lock(&q->lock);
        struct job *found = NULL;
        struct job **heads = NULL;
        size_t cap = 0;
        while (!q->closed && !found) {
                if (q->nlanes > cap) {
                        cap = q->nlanes * 2;
                        heads = xrealloc(heads, cap * sizeof *heads);
                }
                size_t n = 0;
                for (struct lane *l = q->lanes; l; l = l->next)
                        heads[n++] = l->head;
                /* The order jobs would leave a single queue in. */
                if (n > 1)
                        qsort(heads, n, sizeof *heads, head_order);
                for (size_t i = 0; i < n && !found; i++) {
                        if (eligible && !eligible(heads[i], ctx))
                                continue;
                        found = heads[i];
                        unlink_job(q, found);
                }
                if (!found) {
                        /* A refusal can end without an event in the queue
                         * (a breaker's cool-down): look again each second. */
                        struct timespec ts;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec += 1;
                        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
                }
        }
        pthread_mutex_unlock(&q->lock);
        free(heads);
        return found;
}

bool queue_remove(struct queue *q, struct job *j)
{
        pthread_mutex_lock(&q->lock);
        bool removed = j->queued;
        if (removed)
                unlink_job(q, j);
        /* The job may have held the memory-budget line: let the workers
         * look again. */
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        if (removed)
                job_unref(j);
        return removed;
}

void queue_kick(struct queue *q)
{
        pthread_mutex_lock(&q->lock);
        /* Nothing queued, nothing that could have become eligible: an idle
         * worker woken for it only goes back to sleep (a context switch
         * per job, on the job's path). */
        if (q->length)
                pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

void queue_close(struct queue *q, void (*fn)(struct job *j, void *ctx), void *ctx)
{
        pthread_mutex_lock(&q->lock);
        q->closed = true;
        size_t n = q->length, k = 0;
        struct job **list = xcalloc(n + 1, sizeof *list);
        /* In the order they would have run. */
        while (q->lanes) {
                struct job *first = NULL;
                for (struct lane *l = q->lanes; l; l = l->next)
                        if (!first || head_order(&l->head, &first) < 0)
                                first = l->head;
                unlink_job(q, first);
                list[k++] = first;
        }
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        for (size_t i = 0; i < k; i++) {
                if (fn)
                        fn(list[i], ctx);
                else
                        job_unref(list[i]);
        }
        free(list);
}

size_t queue_length(struct queue *q)
{
        pthread_mutex_lock(&q->lock);
        size_t n = q->length;
        pthread_mutex_unlock(&q->lock);
        return n;
}

size_t queue_capacity(struct queue *q)
{
        return q->capacity;
}

bool queue_full(struct queue *q)
{
        pthread_mutex_lock(&q->lock);
        bool full = q->length + q->reserved >= q->capacity;
        pthread_mutex_unlock(&q->lock);
        return full;
}
