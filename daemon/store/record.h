/* record.h - a job's persisted record: everything the API shows of a job,
 * as plain data a process that did not run the job can read back.
 *
 * The live handle (job.h: references, waiters, cancel eventfd, queue links)
 * is a running daemon's; the record is the store's (store.h).  Parameters
 * and result are JSON text, never parsed trees; attempts are JSON text too
 * (an array of {run_id, uid, gid, started_at, finished_at, error}), so a
 * store backend keeps them as one column. */
#ifndef EDGECD_RECORD_H
#define EDGECD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/joberror.h"
#include "base/metrics.h"

enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
enum job_priority { PRIO_HIGH = 0, PRIO_NORMAL = 1, PRIO_LOW = 2 };
#define PRIO_COUNT 3

#define JOB_ID_LEN 36       /* a lower-case UUID */
#define RUN_ID_MAX 48       /* "<job id>-<attempt>", a warm container's "<uuid>-0" */

/* A job's callback (callback.h) and how its delivery went. */
enum callback_state { CALLBACK_PENDING, CALLBACK_DELIVERED, CALLBACK_FAILED };
#define CALLBACK_DELIVERY_LEN 36   /* a lower-case UUID, the same on every attempt */

struct job_callback {
        char *url;                     /* NULL: the job has no callback (nothing below is set) */
        char delivery[CALLBACK_DELIVERY_LEN + 1];
        enum callback_state state;
        int64_t attempts;              /* POSTs made */
        int last_status;               /* the last answer's HTTP status, 0: none */
        char *last_error;              /* why the last attempt failed, NULL when it did not */
        int64_t delivered_ms;          /* wall clock, 0: not delivered */
        int64_t next_ms;               /* pending: the next attempt is due then (wall clock) */
};

struct job_record {
        char id[JOB_ID_LEN + 1];
        char *algorithm, *version;
        enum job_status status;
        enum job_priority priority;
        int64_t timeout_seconds;
        char *submitted_by;            /* NULL: no token */
        char *params;                  /* JSON text; NULL when not read */
        size_t params_len;
        bool params_external;          /* params is someone else's memory (a spooled body): never freed here */
        bool params_mapped;            /* params is a read-only mapping (large ones): munmap()ed here */
        char *result;                  /* JSON text; NULL when none or not read */
        size_t result_len;
        enum job_error error;
        char *error_message;           /* NULL with JOB_ERR_NONE */
        bool has_exit_code;
        int exit_code;
        bool has_metrics;              /* final jobs only */
        struct job_metrics metrics;
        char *runtime_name;            /* NULL before it ran */
        bool log_truncated;
        char *attempts;                /* JSON array text, never NULL once filled */
        char *progress;                /* the algorithm's last progress.json (progress.h), or NULL */
        int64_t recoveries;            /* times a crash interrupted it and it was queued again */
        int64_t created_ms, started_ms, finished_ms;   /* wall clock; 0 = not yet */
        /* Written by STORE_INSERT and STORE_CALLBACK only (a job's own
         * transitions never touch it). */
        struct job_callback callback;
};

/* Free the members (not r itself) and zero it. */
void record_clear(struct job_record *r);
/* Free just the parameters. */
void record_clear_params(struct job_record *r);
/* dst as a copy of src that owns all its memory (its parameters and
 * result too, whoever's src's were). */
void record_copy(struct job_record *dst, const struct job_record *src);
/* What a STORE_UPDATE of src writes (store.h: its status and the rest
 * of the mutable part; the result only when src has one), copied into dst. */
void record_merge_update(struct job_record *dst, const struct job_record *src);

const char *job_status_name(enum job_status s);
const char *job_priority_name(enum job_priority p);
bool job_status_is_final(enum job_status s);
/* -1 when not a name. */
int job_status_parse(const char *s);
int job_priority_parse(const char *s);

const char *callback_state_name(enum callback_state s);

/* The API's job object as JSON text (caller frees, *ret_len its length),
 * the result spliced in as the text it is; with_result false (or no
 * result) shows "result": null. */
char *record_render(const struct job_record *r, bool with_result, size_t *ret_len);

/* JSON pieces of the job object, shared with job.c's attempts: an RFC 3339
 * time or null for 0; {"code","message"} or null for JOB_ERR_NONE.  As
 * jansson values (record_end_last_attempt) and as text (record_render,
 * the attempts), the same. */
struct json_t;
struct json_t *record_time_json(int64_t ms);
struct json_t *record_error_json(enum job_error e, const char *message);
struct jsonbuf;
void record_time_text(struct jsonbuf *b, int64_t ms);
void record_error_text(struct jsonbuf *b, enum job_error e, const char *message);

/* The last attempt of r->attempts, if it has not finished, marked finished
 * now with error e and message (a crash or a stop interrupted it). */
void record_end_last_attempt(struct job_record *r, enum job_error e, const char *message);
/* How many attempts r->attempts holds; the last one's run id into
 * ret_last_run_id (size bytes; "" when none) unless NULL. */
size_t record_attempt_count(const struct job_record *r, char *ret_last_run_id, size_t size);

#endif
