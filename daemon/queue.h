/* queue.h - the bounded, prioritised queue of jobs waiting for a worker.
 *
 * DESIGN: one FIFO per priority (high, normal, low) under one mutex and one
 * condition variable.  Workers pop the first job, in priority order, that an
 * admission predicate accepts (the scheduler's per-plugin max_concurrent), so
 * a plugin at its limit does not block jobs of other plugins behind it.  A
 * push to a full queue fails with ERR_BUSY (the API answers 429): a job is
 * refused before it is accepted, never dropped after.  The queue holds a
 * job reference for every job in it.
 *
 * Lock order: queue lock, then a job's lock (the predicate may take it);
 * never the other way round. */
#ifndef EDGECD_QUEUE_H
#define EDGECD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "job.h"

struct queue;

struct queue *queue_new(size_t capacity);
void queue_free(struct queue *q);   /* drops the references of queued jobs */

/* Takes a new reference.  ERR_BUSY when full, ERR_UNAVAILABLE when closed. */
int queue_push(struct queue *q, struct job *j, struct err *err);

/* Block until a job that eligible(job, ctx) accepts is queued (eligible may be
 * NULL), or the queue is closed (then NULL).  Returns the queue's reference. */
struct job *queue_pop(struct queue *q, bool (*eligible)(struct job *j, void *ctx), void *ctx);

/* Take j out of the queue; true (and the queue's reference dropped) when it
 * was queued. */
bool queue_remove(struct queue *q, struct job *j);

/* Wake the workers to look again (a plugin slot freed up). */
void queue_kick(struct queue *q);

/* Refuse new pushes and wake every worker; queue_pop returns NULL from now
 * on.  The jobs still queued are handed to fn (a reference each, which fn
 * owns) so the caller can finish them. */
void queue_close(struct queue *q, void (*fn)(struct job *j, void *ctx), void *ctx);

size_t queue_length(struct queue *q);
size_t queue_capacity(struct queue *q);

#endif
