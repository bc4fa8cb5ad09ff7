/* scheduler.h - the worker pool that runs jobs.
 *
 * DESIGN: `workers` threads (the global concurrency limit) each take from
 * the queue a job that admission.h allows and run it: one or more runs
 * (attempts), each with its own run id ("<job id>-<n>", or a warm
 * container's), job identity (idpool.h), workspace, OCI bundle, container,
 * cgroup (sandbox.h) and log.  A run the
 * runtime or host failed before the algorithm ran (workspace, bundle,
 * `create`, `start`) is retried with backoff, up to retry.max_attempts runs
 * in all, while the algorithm is not isolated; the algorithm's own failures
 * (a non-zero exit, a timeout, no result...) never are.  Each run's outcome
 * goes to the circuit breaker (breaker.h).  The scheduler is the only place
 * a job goes from running to final; cancel of a running job is a request
 * the worker acts on.  Every transition is committed to the store (store.h)
 * before anyone is told: the start of each attempt (the first one takes the
 * job from queued, so a cancel and a worker never both win), and the end. */
#ifndef EDGECD_SCHEDULER_H
#define EDGECD_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#include "admission.h"
#include "base/config.h"
#include "base/error.h"
#include "breaker.h"
#include "callbacks/callback.h"
#include "job.h"
#include "jobtable.h"
#include "queue.h"
#include "registry/registry.h"
#include "runtime/runtime.h"
#include "sandbox/cleaner.h"
#include "sandbox/idpool.h"
#include "sandbox/liveset.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "warmpool.h"

struct scheduler;

/* Everything the workers use; borrowed, must outlive the scheduler. */
struct scheduler_deps {
        const struct config *cfg;
        const struct runtime *rt;
        const struct sandbox_env *env;
        struct queue *queue;
        struct store *store;
        struct jobtable *jobs;
        struct idpool *ids;
        struct breaker *breaker;
        struct admission *admission;
        struct liveset *live;
        struct cleaner *cleaner;       /* takes each run's sandbox after the answer */
        struct warmpool *warm;         /* may be NULL: every run cold */
        struct callbacks *callbacks;   /* may be NULL: callbacks off; told of final jobs with one */
        struct registry *registry;     /* may be NULL: a plugin found missing is not waited for */
};

/* How long jobs wait for a plugin found missing to be installed again
 * (removed, then copied in: a reinstall), and how often they look. */
#define PLUGIN_BACK_WAIT_MS 5000
#define PLUGIN_BACK_POLL_MS 100

int scheduler_start(const struct scheduler_deps *deps, struct scheduler **ret, struct err *err);

/* Recovery, at start before serving: queued records are queued again in
 * their order; a record left running by a daemon that died is run again
 * once (a new run id) or fails `interrupted` when it was run again once
 * already, its manifest says `rerun: false`, or its plugin is gone (or
 * broken: the message then quotes the manifest's file, line and key). */
int scheduler_recover(struct scheduler *s, struct registry *registry, struct err *err);

/* A job whose record is committed: into the job table and the queue (a
 * slot reserved with queue_reserve()). */
void scheduler_accept(struct scheduler *s, struct job *j);

/* Stop taking jobs (queued ones stay queued on disk), let the running ones
 * finish for up to drain_ms, then stop them and record them queued again
 * (the next start runs them; a planned stop fails nothing), join the
 * workers.  The scheduler stays valid (HTTP handlers may still ask it
 * things) until scheduler_free().  NULL is fine; a second call does
 * nothing. */
void scheduler_stop(struct scheduler *s, int64_t drain_ms);
/* Stop if not yet, then free.  NULL is fine. */
void scheduler_free(struct scheduler *s);

/* DELETE /v1/jobs/{id} of a job that is not final on disk, in two steps
 * around a commit the caller makes.  begin: a running job is asked to stop
 * (its worker ends it cancelled): 0.  A queued job: *rec is filled with its
 * cancelled record, to be written with expect_status JOB_QUEUED, and 1 is
 * returned.  end: after that write, `applied` as the store said: the job
 * leaves the queue and is final; not applied (a worker took it first) it
 * is cancelled running. */
int scheduler_cancel_begin(struct scheduler *s, struct job *j, struct job_record *rec);
void scheduler_cancel_end(struct scheduler *s, struct job *j, bool applied);

size_t scheduler_workers(struct scheduler *s);
/* Workers with a job now. */
size_t scheduler_running(struct scheduler *s);

/* When a client refused for a full queue should try again, in seconds
 * (a Retry-After): about how soon a worker takes the next queued job,
 * from how long jobs that ran have held their workers lately and how
 * many are busy, 1 to SCHEDULER_RETRY_AFTER_MAX; UNKNOWN before any job
 * ran to its end (one cancelled or stopped, or that never began a run,
 * does not count). */
#define SCHEDULER_RETRY_AFTER_UNKNOWN 2
#define SCHEDULER_RETRY_AFTER_MAX 60
int scheduler_retry_after(struct scheduler *s);

#endif
