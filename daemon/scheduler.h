/* scheduler.h - the worker pool that runs jobs.
 *
 * DESIGN: `workers` threads (the global concurrency limit) each take from
 * the queue a job that admission.h allows and run it: one or more runs
 * (attempts), each with its own run id "<job id>-<n>", job identity
 * (idpool.h), workspace, OCI bundle, container, cgroup and log.  A run the
 * runtime or host failed before the algorithm ran (workspace, bundle,
 * `create`, `start`) is retried with backoff, up to retry.max_attempts runs
 * in all, while the algorithm is not isolated; the algorithm's own failures
 * (a non-zero exit, a timeout, no result...) never are.  Each run's outcome
 * goes to the circuit breaker (breaker.h).  The scheduler is the only place
 * a job goes from running to final; cancel of a running job is a request
 * the worker acts on. */
#ifndef EDGECD_SCHEDULER_H
#define EDGECD_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#include "admission.h"
#include "breaker.h"
#include "config.h"
#include "error.h"
#include "idpool.h"
#include "job.h"
#include "queue.h"
#include "runtime.h"
#include "seccomp.h"
#include "store.h"

struct scheduler;

/* Everything the workers use; borrowed, must outlive the scheduler. */
struct scheduler_deps {
        const struct config *cfg;
        const struct runtime *rt;
        const struct seccomp_policy *policy;
        struct queue *queue;
        struct store *store;
        struct idpool *ids;
        struct breaker *breaker;
        struct admission *admission;
};

int scheduler_start(const struct scheduler_deps *deps, struct scheduler **ret, struct err *err);

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

/* Is run_id (a container, cgroup or workspace name) a run in progress?
 * For the collector: what is not live is a leftover. */
bool scheduler_run_is_live(struct scheduler *s, const char *run_id);

/* The collector removed run_id's container: the job user that run held is
 * free again. */
void scheduler_run_released(struct scheduler *s, const char *run_id);

size_t scheduler_workers(struct scheduler *s);

#endif
