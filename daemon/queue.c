/* queue.c - bounded priority queue of jobs (see queue.h for the design).
 * Touched by HTTP threads (push, remove) and worker threads (pop). */
#include "queue.h"

#include <pthread.h>

#include "util.h"

struct fifo {
        struct job *head, *tail;
};

struct queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct fifo fifo[PRIO_COUNT];
        size_t length, capacity;
        bool closed;
};

struct queue *queue_new(size_t capacity)
{
        struct queue *q = xcalloc(1, sizeof *q);
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        q->capacity = capacity;
        return q;
}

static void unlink_job(struct queue *q, struct fifo *f, struct job *prev, struct job *j)
{
        if (prev)
                prev->qnext = j->qnext;
        else
                f->head = j->qnext;
        if (f->tail == j)
                f->tail = prev;
        j->qnext = NULL;
        j->queued = false;
        q->length--;
}

void queue_free(struct queue *q)
{
        if (!q)
                return;
        for (int p = 0; p < PRIO_COUNT; p++) {
                while (q->fifo[p].head) {
                        struct job *j = q->fifo[p].head;
                        unlink_job(q, &q->fifo[p], NULL, j);
                        job_unref(j);
                }
        }
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
}

int queue_push(struct queue *q, struct job *j, struct err *err)
{
        pthread_mutex_lock(&q->lock);
        int ret = 0;
        if (q->closed) {
                ret = err_set(err, ERR_UNAVAILABLE, 0, "the daemon is shutting down");
        } else if (q->length >= q->capacity) {
                ret = err_set(err, ERR_BUSY, 0, "the job queue is full (%zu jobs waiting)", q->length);
        } else {
                struct fifo *f = &q->fifo[j->priority];
                j->qnext = NULL;
                j->queued = true;
                if (f->tail)
                        f->tail->qnext = j;
                else
                        f->head = j;
                f->tail = job_ref(j);
                q->length++;
                pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return ret;
}

struct job *queue_pop(struct queue *q, bool (*eligible)(struct job *j, void *ctx), void *ctx)
{
        pthread_mutex_lock(&q->lock);
        struct job *found = NULL;
        while (!q->closed && !found) {
                for (int p = 0; p < PRIO_COUNT && !found; p++) {
                        struct fifo *f = &q->fifo[p];
                        for (struct job *prev = NULL, *j = f->head; j; prev = j, j = j->qnext) {
                                if (eligible && !eligible(j, ctx))
                                        continue;
                                unlink_job(q, f, prev, j);
                                found = j;
                                break;
                        }
                }
                if (!found)
                        pthread_cond_wait(&q->cond, &q->lock);
        }
        pthread_mutex_unlock(&q->lock);
        return found;
}

bool queue_remove(struct queue *q, struct job *j)
{
        pthread_mutex_lock(&q->lock);
        bool removed = false;
        if (j->queued) {
                struct fifo *f = &q->fifo[j->priority];
                for (struct job *prev = NULL, *it = f->head; it; prev = it, it = it->qnext) {
                        if (it == j) {
                                unlink_job(q, f, prev, it);
                                removed = true;
                                break;
                        }
                }
        }
        pthread_mutex_unlock(&q->lock);
        if (removed)
                job_unref(j);
        return removed;
}

void queue_kick(struct queue *q)
{
        pthread_mutex_lock(&q->lock);
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

void queue_close(struct queue *q, void (*fn)(struct job *j, void *ctx), void *ctx)
{
        pthread_mutex_lock(&q->lock);
        q->closed = true;
        struct job *list = NULL, **tail = &list;
        for (int p = 0; p < PRIO_COUNT; p++) {
                while (q->fifo[p].head) {
                        struct job *j = q->fifo[p].head;
                        unlink_job(q, &q->fifo[p], NULL, j);
                        *tail = j;
                        tail = &j->qnext;
                }
        }
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        for (struct job *j = list, *n; j; j = n) {
                n = j->qnext;
                j->qnext = NULL;
                if (fn)
                        fn(j, ctx);
                else
                        job_unref(j);
        }
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
