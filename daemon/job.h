/* job.h - one compute job: what was asked, where it is, how it ended.
 *
 * A job is shared by the HTTP threads, the queue, the store and one worker,
 * so it is reference-counted (job_ref/job_unref, atomic) and its mutable
 * state is guarded by its own mutex.  Immutable after job_new(): id,
 * algorithm, version, manifest, parameters, priority, timeout.  Everything
 * else changes only through the functions below, which take the lock.
 *
 * Life: queued -> running -> succeeded | failed | cancelled, or queued ->
 * cancelled.  When a job becomes final its waiters are called once, outside
 * the lock, from the thread that finished it. */
#ifndef EDGECD_JOB_H
#define EDGECD_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "manifest.h"
#include "result.h"

enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
enum job_priority { PRIO_HIGH = 0, PRIO_NORMAL = 1, PRIO_LOW = 2 };
#define PRIO_COUNT 3

#define JOB_ID_LEN 36   /* a lower-case UUID */

struct job_metrics {
        int64_t queue_ms, create_ms, run_ms, collect_ms, total_ms;
        int64_t peak_memory_bytes, cpu_ms;   /* -1 when unknown */
};

struct job_waiter;

struct job {
        int refs;                       /* atomic */
        pthread_mutex_t lock;

        /* Immutable after job_new(). */
        char id[JOB_ID_LEN + 1];
        struct manifest *manifest;      /* a reference, for the job's whole life */
        json_t *parameters;             /* owned, never modified; released (NULL)
                                         * when the job becomes final: only its
                                         * worker reads it, before that */
        enum job_priority priority;
        int64_t timeout_seconds;        /* effective */
        int64_t created_ms;             /* wall clock */
        int64_t created_mono;

        /* Guarded by lock. */
        enum job_status status;
        int64_t started_ms, finished_ms;    /* wall clock, 0 = not yet */
        json_t *result;
        size_t result_bytes;            /* compact JSON size of result */
        enum job_error error;
        char *error_message;
        bool has_exit_code;
        int exit_code;
        struct job_metrics metrics;
        char *runtime_name;
        bool cancel_requested;
        bool log_truncated;
        int cancel_fd;                  /* eventfd while running, else -1 */
        struct job_waiter *waiters;

        /* Used by the queue only, under the queue's lock. */
        struct job *qnext;
        bool queued;
};

/* A new queued job with a fresh UUID.  Takes a manifest reference of its own
 * and a reference to parameters. */
struct job *job_new(struct manifest *m, json_t *parameters, enum job_priority prio,
                    int64_t timeout_seconds);
struct job *job_ref(struct job *j);
void job_unref(struct job *j);   /* NULL is fine */

const char *job_status_name(enum job_status s);
const char *job_priority_name(enum job_priority p);
/* -1 when s is not a priority name. */
int job_priority_parse(const char *s);
bool job_status_is_final(enum job_status s);
/* -1 when not a status name. */
int job_status_parse(const char *s);

/* queued -> running; false when the job was cancelled first.  Creates the
 * cancel eventfd. */
bool job_start(struct job *j, const char *runtime_name);
/* Make the job final (status from error: NONE succeeded, CANCELLED cancelled,
 * else failed).  Takes ownership of result (may be NULL) and copies message.
 * exit_code < 0 means none.  Calls the waiters.  A job already final is left
 * alone (and result is released): false then, true when this call made it
 * final. */
bool job_finish(struct job *j, enum job_error error, const char *message, json_t *result,
                int exit_code, const struct job_metrics *metrics);

/* Ask a running job to stop (writes its eventfd); true when it was running. */
bool job_request_cancel(struct job *j);
bool job_cancel_requested(struct job *j);
/* The cancel eventfd for runtime_wait, or -1.  Valid while running. */
int job_cancel_fd(struct job *j);

enum job_status job_get_status(struct job *j);
void job_set_log_truncated(struct job *j, bool truncated);
bool job_log_truncated(struct job *j);

/* The API's job object (a new reference). */
json_t *job_to_json(struct job *j);

/* Call fn(ctx) once when the job is final.  Returns NULL (and does not call
 * fn) when it is final already.  The handle is for job_remove_waiter(): it
 * returns true when the waiter was removed before it was called, false when
 * it has been or is being called (then fn owns ctx's reference). */
struct job_waiter *job_add_waiter(struct job *j, void (*fn)(void *ctx), void *ctx);
bool job_remove_waiter(struct job *j, struct job_waiter *w);

#endif
