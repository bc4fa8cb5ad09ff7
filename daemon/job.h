/* job.h - one compute job: what was asked, where it is, how each run of it
 * went, how it ended.
 *
 * A job is shared by the HTTP threads, the queue, the store and one worker,
 * so it is reference-counted (job_ref/job_unref, atomic) and its mutable
 * state is guarded by its own mutex.  Immutable after job_new(): id,
 * manifest, priority, timeout, submitter.  The parameters are JSON text,
 * kept until the job is final; the result is JSON text too: what the
 * daemon holds of a job is what it counts (result_bytes), never a parsed
 * tree many times that size.
 *
 * Life: queued -> running -> succeeded | failed | cancelled, or queued ->
 * cancelled.  A running job is run one or more times (attempts: a run the
 * runtime failed is retried under a new run id); each attempt is recorded.
 * When a job becomes final its waiters are called once, outside the lock,
 * from the thread that finished it. */
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

#define JOB_ID_LEN 36       /* a lower-case UUID */
#define RUN_ID_MAX 48       /* "<job id>-<attempt>" */
#define JOB_ATTEMPTS_MAX 100

struct job_metrics {
        int64_t queue_ms, create_ms, run_ms, collect_ms, total_ms;
        int64_t peak_memory_bytes, cpu_ms;   /* -1 when unknown */
};

/* One run of the job: its own container, cgroup, workspace, log and user. */
struct job_attempt {
        char run_id[RUN_ID_MAX];
        int64_t uid, gid;
        int64_t started_ms, finished_ms;     /* wall clock, 0 = not yet */
        enum job_error error;                /* JOB_ERR_NONE while running or when it succeeded */
        char *message;
};

struct job_waiter;
struct lane;

struct job {
        int refs;                       /* atomic */
        pthread_mutex_t lock;

        /* Immutable after job_new(). */
        char id[JOB_ID_LEN + 1];
        struct manifest *manifest;      /* a reference, for the job's whole life */
        enum job_priority priority;
        int64_t timeout_seconds;        /* effective */
        int64_t created_ms;             /* wall clock */
        int64_t created_mono;
        char *submitted_by;             /* the API token's name, or NULL */

        /* The parameters as JSON text.  Set by job_new(), read by the
         * worker, released when the job becomes final (its input.json had
         * them). */
        char *params;
        size_t params_len;

        /* Guarded by lock. */
        enum job_status status;
        int64_t started_ms, finished_ms;    /* wall clock, 0 = not yet */
        char *result;                   /* JSON text, when succeeded */
        size_t result_bytes;
        enum job_error error;
        char *error_message;
        bool has_exit_code;
        int exit_code;
        struct job_metrics metrics;
        char *runtime_name;
        bool cancel_requested;
        bool log_truncated;
        int cancel_fd;                  /* eventfd while running, else -1 */
        struct job_attempt *attempts;
        size_t n_attempts;
        struct job_waiter *waiters;

        /* Used by the queue only, under the queue's lock. */
        struct job *qnext, *qprev;
        struct lane *qlane;
        uint64_t qseq;
        bool queued;
        /* Set under the queue lock when admitted as its algorithm's breaker
         * probe; read by the worker that popped it. */
        bool breaker_probe;
};

/* A new queued job with a fresh UUID.  Takes a manifest reference of its own
 * and copies params (len bytes of JSON text) and submitted_by (may be NULL). */
struct job *job_new(struct manifest *m, const char *params, size_t len, enum job_priority prio,
                    int64_t timeout_seconds, const char *submitted_by);
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

/* A new attempt begins (running jobs only): its run id is "<id>-<n>", n
 * counting from 1, written to run_id (RUN_ID_MAX bytes).  Returns n. */
size_t job_attempt_begin(struct job *j, int64_t uid, int64_t gid, char *run_id);
/* The current attempt ended (message copied; may be NULL). */
void job_attempt_end(struct job *j, enum job_error e, const char *message);
size_t job_attempt_count(struct job *j);

/* Make the job final (status from error: NONE succeeded, CANCELLED
 * cancelled, else failed).  Takes ownership of result (JSON text of len
 * bytes, may be NULL) and copies message.  exit_code < 0 means none.  Calls
 * the waiters.  A job already final is left alone (and result is freed):
 * false then, true when this call made it final. */
bool job_finish(struct job *j, enum job_error error, const char *message, char *result, size_t len,
                int exit_code, const struct job_metrics *metrics);

/* Ask a running job to stop (writes its eventfd); true when it was running. */
bool job_request_cancel(struct job *j);
bool job_cancel_requested(struct job *j);
/* The cancel eventfd, or -1.  Valid while running. */
int job_cancel_fd(struct job *j);

enum job_status job_get_status(struct job *j);
void job_set_log_truncated(struct job *j, bool truncated);
bool job_log_truncated(struct job *j);
/* The run id of the latest attempt ("" before the first); buf RUN_ID_MAX. */
void job_last_run_id(struct job *j, char *buf);

/* The API's job object as JSON text (caller frees), with the result spliced
 * in as the text it is.  with_result false leaves "result" null (listings
 * that would otherwise carry many large results). */
char *job_render(struct job *j, bool with_result, size_t *ret_len);

/* Call fn(ctx) once when the job is final.  Returns NULL (and does not call
 * fn) when it is final already.  The handle is for job_remove_waiter(): it
 * returns true when the waiter was removed before it was called, false when
 * it has been or is being called (then fn owns ctx's reference). */
struct job_waiter *job_add_waiter(struct job *j, void (*fn)(void *ctx), void *ctx);
bool job_remove_waiter(struct job *j, struct job_waiter *w);

#endif
