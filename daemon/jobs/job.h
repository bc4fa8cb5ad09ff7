/* job.h - the live handle of a job this daemon has queued or is running:
 * references, waiters, the cancel eventfd, queue links, and the job's
 * state while it changes.  What a job *is* (its record, what the API shows)
 * is struct job_record (record.h), written to the store at every
 * transition; job_snapshot() makes one.  Parameters and result are never
 * held here: the worker reads the parameters from the store when it runs
 * the job, and the result goes from the output file to the store.
 *
 * A job is shared by the HTTP thread, the queue, the job table and one
 * worker, so it is reference-counted (job_ref/job_unref, atomic) and its
 * mutable state is guarded by its own mutex.  Immutable after job_new():
 * id, manifest, priority, timeout, submitter.
 *
 * Life: queued -> running -> succeeded | failed | cancelled, or queued ->
 * cancelled; running -> queued when a planned stop interrupts it.  A running
 * job is run one or more times (attempts: a run the runtime failed is
 * retried under a new run id); each attempt is recorded.  Becoming final
 * (job_finish) and telling the waiters (job_wake) are two steps: the
 * final record is committed between them, so a waiter always finds it. */
#ifndef EDGECD_JOB_H
#define EDGECD_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "registry/manifest.h"
#include "runtime/result.h"
#include "store/record.h"

#define JOB_ATTEMPTS_MAX 100

/* One run of the job: its own container, cgroup, workspace, log and user. */
struct job_attempt {
        char run_id[RUN_ID_MAX];
        int64_t uid, gid;
        bool warm;                           /* in a container made ahead (warmpool.h) */
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
        int64_t created_us;             /* now_mono_us(); 0: recovered from disk */
        char *submitted_by;             /* the API token's name, or NULL */
        /* Set before the job is shared (job_set_callback), then immutable. */
        char *callback_url;             /* NULL: none (callback.h) */
        char callback_delivery[CALLBACK_DELIVERY_LEN + 1];
        /* Its submit was a lazy commit (store.h) and nobody has been told
         * of it: set before the job is shared, cleared (atomically) before
         * its id is first given; see record_attempt_begin(). */
        bool submit_lazy;
        /* Read back from the store at start (immutable). */
        bool from_disk;
        /* A lazily submitted job's parameters (job_hold_params), which
         * the store shows no reader before its insert is committed: set
         * before the job is shared, then immutable; NULL otherwise. */
        char *params;
        size_t params_len;

        /* Guarded by lock. */
        enum job_status status;
        int64_t started_ms, finished_ms;    /* wall clock, 0 = not yet */
        enum job_error error;
        char *error_message;
        bool has_exit_code;
        int exit_code;
        struct job_metrics metrics;
        char *runtime_name;
        bool cancel_requested;          /* by a client */
        bool interrupt_requested;       /* by the daemon's stop */
        bool log_truncated;
        int cancel_fd;                  /* eventfd while running, else -1 */
        struct job_attempt *attempts;
        size_t n_attempts;
        int64_t recoveries;
        struct job_waiter *waiters;
        bool woken;                     /* waiters called: none may be added */
        int64_t finished_us, woken_us;  /* now_mono_us() at job_finish(), job_wake() */
        /* Progress (progress.h): the current run's output directory while
         * its algorithm may write there, the last valid progress read
         * from it (JSON text, kept when the job ends) and when and in
         * which order the file was read. */
        char *progress_dir;
        char *progress;
        int64_t progress_read_mono;
        char *progress_complaint;       /* the run's first invalid file's reason, logged once */
        uint64_t progress_reads, progress_applied;

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
 * and copies submitted_by (may be NULL). */
struct job *job_new(struct manifest *m, enum job_priority prio, int64_t timeout_seconds,
                    const char *submitted_by);
/* The live handle of a stored queued job (recovery): id, times, attempts
 * and recoveries from the record.  NULL when its attempts do not parse. */
struct job *job_from_record(const struct job_record *r, struct manifest *m);
/* Give a new job (not yet shared) a callback: url copied, a fresh
 * delivery id. */
void job_set_callback(struct job *j, const char *url);
/* Give a new job (not yet shared) a copy of its parameters, if all jobs
 * together hold no more than JOB_PARAMS_HELD_MAX bytes of them with these;
 * false (nothing held) when they would not fit. */
#define JOB_PARAMS_HELD_MAX ((size_t)16 << 20)
bool job_hold_params(struct job *j, const char *params, size_t len);
struct job *job_ref(struct job *j);
void job_unref(struct job *j);   /* NULL is fine */

/* The job's record as it stands, without parameters and result (rec is
 * overwritten; record_clear() it). */
void job_snapshot(struct job *j, struct job_record *rec);

/* queued -> running; false when the job was cancelled first.  Creates the
 * cancel eventfd (job_cancel_fd() < 0 when that failed, errno saying why). */
bool job_start(struct job *j, const char *runtime_name);
/* Another try at the cancel eventfd job_start() could not create: 0, or
 * the errno that failed it. */
int job_retry_cancel_fd(struct job *j);
/* running -> queued: a planned stop interrupted it, the next start runs it
 * again (the attempt stays recorded).  False, and still running, when a
 * cancel was asked for first; *ret_ran says whether it has an attempt. */
bool job_requeue(struct job *j, bool *ret_ran);

/* A new attempt begins (running jobs only), n counting from 1.  Its run id
 * is run_id when that is not "" (a warm container's), else "<id>-<n>",
 * written to run_id (RUN_ID_MAX bytes).  Returns n. */
size_t job_attempt_begin(struct job *j, int64_t uid, int64_t gid, char *run_id);
/* How many attempts it has (from before a restart too). */
size_t job_attempt_count(struct job *j);
/* The current attempt ended (message copied; may be NULL). */
void job_attempt_end(struct job *j, enum job_error e, const char *message);

/* Make the job final (status from error: NONE succeeded, CANCELLED
 * cancelled, else failed) and copy message.  exit_code < 0 means none.
 * Waiters are not called yet (job_wake).  A job already final is left
 * alone: false then, true when this call made it final. */
bool job_finish(struct job *j, enum job_error error, const char *message, int exit_code,
                const struct job_metrics *metrics);
/* Call the waiters, once (after the final record is committed). */
void job_wake(struct job *j);
/* Final with its final commit done (or failed, and logged): job_wake()
 * has run. */
bool job_final_recorded(struct job *j);

/* Where a job's time went on the daemon's clock (now_mono_us()), for a
 * client's Server-Timing: made, made final, its final commit done (the
 * waiters told).  false unless all three are known in this process. */
struct job_timing {
        int64_t created_us, finished_us, woken_us;
};
bool job_timing(struct job *j, struct job_timing *ret);

/* Ask a running job to stop (writes its eventfd); true when it was running. */
bool job_request_cancel(struct job *j);
bool job_cancel_requested(struct job *j);
/* The daemon's stop asks a running job to stop (the eventfd too), without
 * it counting as a client's cancel. */
void job_request_interrupt(struct job *j);
/* Either of the two. */
bool job_stop_requested(struct job *j);
/* The cancel eventfd, or -1.  Valid while running. */
int job_cancel_fd(struct job *j);

/* The run's algorithm may write progress in output_dir from now on (a run
 * begins: the last run's progress is forgotten); NULL: no longer, and what
 * was read last is kept (call job_progress_refresh(j, true) first). */
void job_progress_watch(struct job *j, const char *output_dir);
/* Read the progress file again, when PROGRESS_INTERVAL_MS have passed
 * since the last read or with force.  An invalid file keeps what was read
 * before. */
void job_progress_refresh(struct job *j, bool force);
/* The last valid progress after a refresh when one is due: JSON text
 * (caller frees), or NULL. */
char *job_progress(struct job *j);

enum job_status job_get_status(struct job *j);
void job_set_log_truncated(struct job *j, bool truncated);

/* Call fn(ctx) once when the job is final and recorded.  Returns NULL (and
 * does not call fn) when that happened already.  The handle is for
 * job_remove_waiter(): it returns true when the waiter was removed before
 * it was called, false when it has been or is being called (then fn owns
 * ctx's reference). */
struct job_waiter *job_add_waiter(struct job *j, void (*fn)(void *ctx), void *ctx);
bool job_remove_waiter(struct job *j, struct job_waiter *w);

#endif
