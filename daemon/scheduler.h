/* scheduler.h - the worker pool that runs jobs.
 *
 * DESIGN: `workers` threads (the global concurrency limit) each pop a job
 * from the queue that its plugin's max_concurrent and the memory pool (the
 * running jobs' memory limits add up to at most memory_pool_mb) allow, and
 * run the whole
 * job path: workspace, OCI bundle, runtime create/start, wait with the
 * job's deadline (or a cancel), kill and delete, cgroup accounting, result
 * collection, cleanup, final record.  A per-job log pump thread copies the
 * container's stdout and stderr into a size-capped log file.  The scheduler
 * is the only place a job goes from running to final; cancel of a running
 * job is a request the worker acts on. */
#ifndef EDGECD_SCHEDULER_H
#define EDGECD_SCHEDULER_H

#include <stddef.h>

#include "config.h"
#include "error.h"
#include "job.h"
#include "queue.h"
#include "runtime.h"
#include "seccomp.h"
#include "store.h"

struct scheduler;

/* Borrowed: cfg, rt, policy, q and st must outlive the scheduler. */
int scheduler_start(const struct config *cfg, const struct runtime *rt,
                    const struct seccomp_policy *policy, struct queue *q, struct store *st,
                    struct scheduler **ret, struct err *err);

/* Stop taking jobs, interrupt the running ones (error `interrupted`), fail
 * the queued ones the same way, join the workers.  The scheduler stays
 * valid (HTTP handlers may still ask it things) until scheduler_free().
 * NULL is fine; a second call does nothing. */
void scheduler_stop(struct scheduler *s);
/* Stop if not yet, then free.  NULL is fine. */
void scheduler_free(struct scheduler *s);

/* DELETE /v1/jobs/{id}: a queued job leaves the queue and is cancelled at
 * once; a running one is killed by its worker and ends cancelled.
 * ERR_CONFLICT when the job is final already. */
int scheduler_cancel(struct scheduler *s, struct job *j, struct err *err);

size_t scheduler_running(struct scheduler *s);
size_t scheduler_workers(struct scheduler *s);
/* The memory budget: limits of the running jobs, and the pool (MiB). */
void scheduler_memory(struct scheduler *s, int64_t *ret_used_mb, int64_t *ret_pool_mb);

#endif
