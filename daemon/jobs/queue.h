/* queue.h - the bounded, prioritised queue of jobs waiting for a worker.
 *
 * DESIGN: one lane per (priority, algorithm), each a FIFO, under one mutex
 * and one condition variable.  A worker takes, in priority order and then
 * in order of arrival, the first lane head that an admission predicate
 * accepts (the scheduler's per-plugin limit, memory budget and circuit
 * breaker).  Only lane heads are ever offered: every job of a lane has the
 * same plugin, so when its head must wait the whole lane waits, and a pop
 * costs O(lanes log lanes), never O(jobs) - a long queue does not slow down
 * submits, which take the same lock.  A push to a full queue fails with
 * ERR_BUSY (the API answers 429): a job is refused before it is accepted,
 * never dropped after.  The queue holds a job reference for every job in
 * it.
 *
 * Lock order: queue lock, then the predicate's locks (the scheduler's, then
 * a job's); never the other way round. */
#ifndef EDGECD_QUEUE_H
#define EDGECD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "job.h"

struct queue;

struct queue *queue_new(size_t capacity);
void queue_free(struct queue *q);   /* drops the references of queued jobs */

/* Takes a new reference.  ERR_BUSY when full, ERR_UNAVAILABLE when closed. */
int queue_push(struct queue *q, struct job *j, struct err *err);

/* Hold n places for jobs about to be committed, so that a job the store
 * has accepted always fits.  ERR_BUSY when they do not fit, ERR_UNAVAILABLE
 * when closed. */
int queue_reserve(struct queue *q, size_t n, struct err *err);
void queue_unreserve(struct queue *q, size_t n);
/* Push into a reserved place (takes a reference).  Into a closed queue the
 * job is dropped: it stays queued on disk. */
void queue_push_reserved(struct queue *q, struct job *j);
/* Recovery: push past the capacity if need be (the jobs were accepted
 * before). */
void queue_restore(struct queue *q, struct job *j);

/* Block until a lane head that eligible(job, ctx) accepts is queued
 * (eligible may be NULL), or the queue is closed (then NULL).  Returns the
 * queue's reference.  eligible runs under the queue lock and must not
 * block; it is asked again on every push, remove and kick, and at least
 * once a second (what it refuses may change with time alone). */
struct job *queue_pop(struct queue *q, bool (*eligible)(struct job *j, void *ctx), void *ctx);

/* Take j out of the queue and wake the workers (j may have been what held
 * others back); true (and the queue's reference dropped) when it was
 * queued. */
bool queue_remove(struct queue *q, struct job *j);

/* Wake the workers to look again (a slot or memory freed up). */
void queue_kick(struct queue *q);

/* Refuse new pushes and wake every worker; queue_pop returns NULL from now
 * on.  The jobs still queued are handed to fn (a reference each, which fn
 * owns) so the caller can finish them. */
void queue_close(struct queue *q, void (*fn)(struct job *j, void *ctx), void *ctx);

size_t queue_length(struct queue *q);
size_t queue_capacity(struct queue *q);
/* No place for one more job, as queue_reserve() and queue_push() count
 * (the queued jobs and the places held for jobs being committed): what a
 * submit is told (429), and what /readyz says. */
bool queue_full(struct queue *q);

#endif
