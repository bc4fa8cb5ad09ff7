/* store.h - where job records live.  For now in memory and bounded: at most
 * `jobs_kept` final jobs holding at most `kept_results_bytes` of results
 * are kept; past either, the ones that finished first are forgotten (their
 * log files removed).  Queued and running jobs are never evicted.  The durable
 * SQLite store replaces this behind the same functions.
 *
 * DESIGN: a hash table by id for lookups and a list in creation order for
 * listing newest first, and a list in the order jobs became final for
 * evicting the first-finished first, under one mutex.  Whoever
 * makes a job final tells the store (store_job_final), which keeps running
 * totals, so eviction costs nothing until a limit is passed.  The store
 * holds one reference per job; lookups return a new one.  Lock order: the
 * store's lock, then a job's. */
#ifndef EDGECD_STORE_H
#define EDGECD_STORE_H

#include <stddef.h>

#include "error.h"
#include "job.h"

struct store;

/* logs_dir: where job logs live (STATE_DIR/logs), removed with their job. */
struct store *store_new(size_t jobs_kept, size_t kept_results_bytes, const char *logs_dir);
void store_free(struct store *s);

/* Takes a new reference.  May evict the first-finished final jobs. */
void store_add(struct store *s, struct job *j);
/* Forget j (a job refused after it was added). */
void store_remove(struct store *s, struct job *j);
/* j has become final: count it (once) and evict past the limits, in the
 * order jobs became final.  The last one to finish is never evicted,
 * however large its result. */
void store_job_final(struct store *s, struct job *j);
/* A new reference, or NULL. */
struct job *store_get(struct store *s, const char *id);

struct store_filter {
        int status;               /* enum job_status, or -1 for any */
        const char *algorithm;    /* NULL for any */
        const char *after;        /* list jobs created before this id; NULL from the newest */
        size_t limit;
};
/* GET /v1/jobs as JSON text: {"jobs": [...newest first...], "next":
 * id-or-null}.  A page holds at most f->limit jobs, and stops early once it
 * holds max_bytes (at least one job): `next` then names the last job shown.
 * ERR_NOT_FOUND when `after` is not a known job.  Caller frees *ret_text. */
int store_list(struct store *s, const struct store_filter *f, size_t max_bytes, char **ret_text,
               size_t *ret_len, struct err *err);

/* Call fn on every job that is not final (for shutdown). */
void store_foreach_active(struct store *s, void (*fn)(struct job *j, void *ctx), void *ctx);

size_t store_count(struct store *s);

/* The log file of a run: LOGS_DIR/<run id>.log (caller frees).  A job's
 * runs are "<job id>-<n>"; all of them go when the job is evicted. */
char *store_log_path(struct store *s, const char *id);

#endif
