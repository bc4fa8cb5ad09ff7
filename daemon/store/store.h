/* store.h - where job records live: the durable centre of the daemon.
 *
 * One interface, many backends (an operations table, as crun's cgroup
 * managers are).  SQLite in the state dir is the embedded default
 * (store_sqlite.c); a PostgreSQL backend for a fleet can be added behind
 * the same table without touching the API, the scheduler or the runtime
 * driver.  Nothing outside a backend writes SQL.
 *
 * Writes are asynchronous requests (struct store_write) so that the HTTP
 * thread never waits for a disk: the backend calls w->done(w) once, from
 * any thread, when the write is committed or has failed.  A backend may
 * commit many writes in one transaction (SQLite: one writer thread, one
 * fsync for every write waiting, "group commit").  store_write_sync()
 * waits, for worker threads.  A write that is answered `ok` is on disk.
 *
 * Failure is fail-stop for new work: once a commit fails (a full disk, an
 * I/O error) the store is unhealthy with a reason (store_health), inserts
 * fail with ERR_UNAVAILABLE at once, other writes are held and retried,
 * and reads go on.  The backend probes and becomes healthy again when a
 * write succeeds.
 *
 * Taking the next runnable job is a store operation too: the queue (queue.h)
 * is this daemon's index of what is runnable, and a worker turns the head
 * it was offered into its job with a conditional update (expect_status
 * JOB_QUEUED): a job cancelled meanwhile is not taken.  (On PostgreSQL
 * that is SELECT ... FOR UPDATE SKIP LOCKED.) */
#ifndef EDGECD_STORE_H
#define EDGECD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "record.h"

struct store;
struct store_backend;

enum store_write_kind {
        /* Insert n records (with parameters).  Per item: ok, or an
         * idempotency replay (existing_id), or a conflict.  A write is all
         * or nothing: one that fails (err set) leaves nothing behind,
         * while the others in the same commit go on. */
        STORE_INSERT,
        /* Replace the mutable part of records (status, result, error,
         * metrics, attempts, times ...; never id, parameters, created).
         * With expect_status >= 0 only when the stored status is that one:
         * the item's outcome is STORE_ITEM_NOT_APPLIED when it was not. */
        STORE_UPDATE,
        /* Delete final records finished before prune_before_ms, then the
         * oldest-finished final ones past prune_max_records, and
         * idempotency keys older than prune_before_ms (and those of the
         * deleted records); at most prune_limit records; prune_max_records
         * <= 0 means no cap.  The deleted ones are reported through
         * on_pruned(id, attempts, ctx) (their logs go with them). */
        STORE_PRUNE,
        /* Set the callback delivery state (rec->callback: state, attempts,
         * last_status, last_error, delivered_ms, next_ms) of records
         * that have a callback; nothing else.  STORE_ITEM_NOT_APPLIED when
         * the record is gone. */
        STORE_CALLBACK,
        /* Nothing of its own: done once every lazy write committed before
         * it is on disk (see `lazy`). */
        STORE_SYNC,
};

enum store_item_outcome {
        STORE_ITEM_OK,
        STORE_ITEM_REPLAYED,        /* the key was used with the same body: existing_id */
        STORE_ITEM_CONFLICT,        /* the key was used with another body */
        STORE_ITEM_NOT_APPLIED,     /* STORE_UPDATE: the status was not expect_status */
};

struct store_item {
        struct job_record *rec;     /* borrowed */
        /* STORE_INSERT: an Idempotency-Key and the SHA-256 of the request
         * body (hex), or NULL. */
        const char *idem_key;
        const char *idem_hash;
        int expect_status;          /* STORE_UPDATE: -1 for any */
        /* Out. */
        enum store_item_outcome outcome;
        char existing_id[JOB_ID_LEN + 1];
};

struct store_write {
        enum store_write_kind kind;
        struct store_item *items;
        size_t n;
        /* STORE_UPDATE only: keep retrying while the store is unhealthy
         * (a transition must not be lost); inserts never retry. */
        bool retry;
        /* May be answered before it is committed: applied, and carried
         * to disk by the next write that is not lazy (a STORE_SYNC is
         * one), or within a second (SQLite: DEFER_MS).
         * Until then no read shows it, and a crash of the daemon loses it.
         * For what no one has been told of yet (a waited-for submit, its
         * first run).  An update waits only while its record's insert does
         * (no reader has seen the record); one with parameters or a result
         * over STORE_LAZY_MAX_BYTES is committed as any other. */
        bool lazy;
        int64_t prune_before_ms;
        int64_t prune_max_records;
        size_t prune_limit;
        void (*on_pruned)(const char *id, size_t attempts, void *ctx);
        void *prune_ctx;
        size_t pruned;              /* out */
        /* Called once when committed (err.code == ERR_OK) or failed. */
        void (*done)(struct store_write *w);
        void *ctx;
        struct err err;
        /* The backend's. */
        struct store_write *next;
        bool carried;               /* merged into its record's kept insert: only waits for its commit */
};

/* The largest parameters or result a lazy write may carry (its backend
 * keeps a copy until it is committed). */
#define STORE_LAZY_MAX_BYTES ((size_t)64 << 10)

struct store_filter {
        int status;               /* enum job_status, or -1 for any */
        const char *algorithm;    /* NULL for any */
        const char *after;        /* list jobs created before this id; NULL from the newest */
        size_t limit;
        bool with_result;
};

/* What a read returns beyond the always-present fields. */
#define STORE_READ_PARAMS 1u
#define STORE_READ_RESULT 2u

/* A callback due for delivery (store_callbacks_due). */
#define STORE_DUE_URL_MAX 2048     /* CALLBACK_URL_MAX */
struct store_due {
        char id[JOB_ID_LEN + 1];
        int64_t next_ms;                   /* a retry's time (wall clock); 0: a first attempt */
        char url[STORE_DUE_URL_MAX + 1];   /* its callback_url (truncated past the max) */
};

struct store_stats {
        uint64_t commits;         /* transactions committed (SQLite: WAL fsyncs, but lazy ones) */
        uint64_t deferred_writes; /* lazy writes answered before their commit (a later one carried them) */
        uint64_t checkpoints;     /* WAL checkpoints run (SQLite), between commits */
        uint64_t writes;          /* writes they carried */
        uint64_t failures;        /* commits that failed */
};

struct store_ops {
        const char *name;
        int (*open)(const char *state_dir, struct store_backend **ret, struct err *err);
        /* Waits for writes in flight; writes still held fail. */
        void (*close)(struct store_backend *b);
        /* Take w (see store_write_async). */
        void (*write)(struct store_backend *b, struct store_write *w);
        /* ERR_NOT_FOUND when there is no such record. */
        int (*get)(struct store_backend *b, const char *id, unsigned what, struct job_record *ret,
                   struct err *err);
        /* At least the size in bytes of a record's result (0: none),
         * without reading a large one.  ERR_NOT_FOUND as get. */
        int (*result_size)(struct store_backend *b, const char *id, size_t *ret_len, struct err *err);
        /* Newest first in the order the records were inserted (a sequence,
         * not created_ms); fn gets each record (borrowed, without
         * parameters) and returns false to stop.  With f->with_result a
         * succeeded record's result is read only after admit(len, ctx)
         * said yes to its size as result_size gives it, asked before any
         * of it is read; false stops the list before that record (fn
         * does not get it).  ERR_NOT_FOUND when f->after names no
         * record. */
        int (*list)(struct store_backend *b, const struct store_filter *f,
                    bool (*admit)(size_t result_len, void *ctx),
                    bool (*fn)(const struct job_record *r, void *ctx), void *ctx, struct err *err);
        /* Queued and running records in insertion order, without
         * parameters (recovery at start). */
        int (*load_unfinished)(struct store_backend *b, void (*fn)(struct job_record *r, void *ctx),
                               void *ctx, struct err *err);
        /* An Idempotency-Key (as stored) and the request body's hash: 1
         * when the key was used (*ret_outcome STORE_ITEM_REPLAYED for the
         * same hash, else STORE_ITEM_CONFLICT; ret_id its job), 0 when not,
         * -1 on error.  A read: a key whose insert is not committed yet is
         * not seen (the insert then finds it). */
        int (*find_key)(struct store_backend *b, const char *key, const char *hash,
                        enum store_item_outcome *ret_outcome, char ret_id[JOB_ID_LEN + 1], struct err *err);
        /* Give up retrying: held writes fail now, and later ones that fail
         * are not held (a stop that must not wait for the disk). */
        void (*abandon)(struct store_backend *b);
        size_t (*count)(struct store_backend *b);
        /* false with a reason while commits fail. */
        bool (*health)(struct store_backend *b, char *reason, size_t len);
        void (*stats)(struct store_backend *b, struct store_stats *ret);
        /* A consistency check of the stored data (SQLite: integrity_check). */
        int (*check)(struct store_backend *b, struct err *err);
        /* Final records whose callback is pending, soonest due first, at
         * most max of them into ret; their number.  Those to a receiver
         * in except (callback_url_dest) are left out. */
        int (*callbacks_due)(struct store_backend *b, struct store_due *ret, size_t max, size_t skip,
                             const char *const *except, size_t n_except, size_t *ret_n, struct err *err);
        /* First attempts of final records that ended after now_ms, and
         * retries due after ahead_ms (the wall clock was stepped back
         * since), but those to a receiver in except: at most max into
         * ret; their number. */
        int (*callbacks_ended_ahead)(struct store_backend *b, struct store_due *ret, size_t max, int64_t now_ms,
                                     int64_t ahead_ms, const char *const *except, size_t n_except, size_t *ret_n,
                                     struct err *err);
        /* Records, whatever their status, whose callback to the receiver
         * dest (callback_url_dest) is pending: counted up to max. */
        int (*callbacks_pending)(struct store_backend *b, const char *dest, size_t max, size_t *ret_n,
                                 struct err *err);
};

extern const struct store_ops store_sqlite_ops;

/* Open the backend named `backend` ("sqlite") in state_dir.  logs_dir is
 * where run logs live (removed with their record). */
int store_open(const char *backend, const char *state_dir, const char *logs_dir, struct store **ret,
               struct err *err);
void store_close(struct store *s);

/* Hand w to the backend; w->done(w) is called exactly once, possibly before
 * this returns.  w and its items must live until then. */
void store_write_async(struct store *s, struct store_write *w);
/* Hand w over and wait for it; returns 0 or -1 with w->err copied to err. */
int store_write_sync(struct store *s, struct store_write *w, struct err *err);
/* One record's update, waited for; retried while the store is unhealthy
 * (until the store closes).  Returns 1 when applied, 0 when the stored
 * status was not expect_status, -1 on error. */
int store_update(struct store *s, struct job_record *rec, int expect_status, struct err *err);
/* store_update() of a final record, expect_status -1, which also keeps
 * its rendering in the cache of final ones, made while the commit is in
 * flight: its waiters' answers and the GETs after are read from memory.
 * A record with a callback is not kept (its state changes from now on).
 * then(ctx), if given, is called once the commit is done (or has failed)
 * and the rendering kept, before this returns, on whichever thread gets
 * there last, most often the store's writer: a job's waiters are told
 * without waiting for the caller's thread to be woken.  It must not wait
 * for the store or for the caller's thread, nor take a lock the caller
 * holds across this call. */
int store_update_final(struct store *s, struct job_record *rec, void (*then)(void *ctx), void *ctx,
                       struct err *err);
/* Wait until every lazy write committed so far is on disk (a STORE_SYNC,
 * held while the store cannot write, until it gives up). */
int store_sync(struct store *s, struct err *err);
/* store_update() in two halves, for a caller with work to do while the
 * commit is in flight: begin takes rec (left empty), end waits and returns
 * as store_update, and frees the pending write.  With lazy, a lazy write
 * (struct store_write). */
struct store_pending;
struct store_pending *store_update_begin(struct store *s, struct job_record *rec, int expect_status, bool lazy);
int store_update_end(struct store_pending *p, struct err *err);

int store_get(struct store *s, const char *id, unsigned what, struct job_record *ret, struct err *err);
/* At least the size of id's result in bytes (struct store_ops result_size):
 * of a cached final record, its whole rendering's, without a store read
 * (the hottest GET would pay one for each answer). */
int store_result_size(struct store *s, const char *id, size_t *ret_len, struct err *err);
/* Whether an Idempotency-Key was used, before a submit is tried (struct
 * store_ops find_key): a retry is its job's replay whatever a new job
 * would be told (a full queue, a stop, an algorithm gone). */
int store_find_key(struct store *s, const char *key, const char *hash, enum store_item_outcome *ret_outcome,
                   char ret_id[JOB_ID_LEN + 1], struct err *err);
/* GET /v1/jobs as JSON text: {"jobs": [...newest first...], "next":
 * id-or-null}; a page stops early once it holds max_bytes, or before a
 * result that would take it past them (at least one job), `next` then
 * naming the last job shown.  With f->with_result, admit(len, first, ctx)
 * (may be NULL) is asked before each result is read, with its size and
 * whether the page is empty yet: false ends the page before its job.
 * Caller frees *ret_text. */
int store_list(struct store *s, const struct store_filter *f, size_t max_bytes,
               bool (*admit)(size_t len, bool first, void *ctx), void *admit_ctx, char **ret_text,
               size_t *ret_len, struct err *err);
int store_load_unfinished(struct store *s, void (*fn)(struct job_record *r, void *ctx), void *ctx,
                          struct err *err);
/* Delete expired records and their logs (the collector's): one bounded
 * step of at most STORE_PRUNE_STEP records; call again while it removed
 * that many.  *ret_removed counts them. */
#define STORE_PRUNE_STEP 1000
int store_prune(struct store *s, int64_t before_ms, int64_t max_records, size_t *ret_removed,
                struct err *err);
/* The drain is over: transitions still held (a full disk) fail, so the
 * workers can stop; what is on disk is what recovery expects. */
void store_abandon(struct store *s);
size_t store_count(struct store *s);
bool store_health(struct store *s, char *reason, size_t len);
void store_stats(struct store *s, struct store_stats *ret);
int store_check(struct store *s, struct err *err);

/* Keep renderings of final records, up to max_bytes (0: none); before
 * serving. */
void store_set_cache(struct store *s, size_t max_bytes);
/* id's record rendered as the API shows it (with its result; caller
 * frees), and whether it is final: from the cache when it is there, and
 * (with cache) cached when final.  ERR_NOT_FOUND as store_get. */
int store_render(struct store *s, const char *id, bool cache, char **ret_text, size_t *ret_len, bool *ret_final,
                 struct err *err);

/* Final records whose callback is pending, soonest due first (a first
 * attempt is due when its job ended), past the first `skip` of them (at
 * most max; *ret_n of them), but those to a receiver in except (n_except
 * "scheme://host:port" of callback_url_dest). */
int store_callbacks_due(struct store *s, struct store_due *ret, size_t max, size_t skip, const char *const *except,
                        size_t n_except, size_t *ret_n, struct err *err);
/* First attempts whose job's recorded end is after now_ms, and retries
 * recorded as due after ahead_ms (further than any backoff): due, though
 * store_callbacks_due() sorts them behind every retry due before that
 * (the wall clock was stepped back since they were recorded).  Normally
 * none. */
int store_callbacks_ended_ahead(struct store *s, struct store_due *ret, size_t max, int64_t now_ms,
                                int64_t ahead_ms, const char *const *except, size_t n_except, size_t *ret_n,
                                struct err *err);
/* The records whose callback to the receiver dest ("scheme://host:port")
 * is pending, queued, running and final alike, as committed so far:
 * *ret_n, counted up to max (a receiver's backlog is not read whole). */
int store_callbacks_pending(struct store *s, const char *dest, size_t max, size_t *ret_n, struct err *err);
/* id's record changed after it was final (its callback's state): a cached
 * rendering of it goes. */
void store_uncache(struct store *s, const char *id);

/* The log file of attempt n of job id: LOGS_DIR/<id>-<n>.log, whatever
 * container ran it (caller frees). */
char *store_log_path(struct store *s, const char *id, size_t n);
/* At start, before any run: remove the logs of jobs the store has no
 * record of (a crash between a prune's commit and its unlinks leaves
 * them).  Their number. */
size_t store_sweep_logs(struct store *s);

#endif
