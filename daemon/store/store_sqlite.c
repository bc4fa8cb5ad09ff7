/* store_sqlite.c - the embedded store backend: SQLite in STATE_DIR/edgecd.db.
 *
 * Durability: WAL journal, synchronous=FULL, so a commit is on disk when
 * COMMIT returns.  One writer thread owns the one writing connection and
 * commits every write waiting for it in one transaction (group commit: one
 * WAL fsync for many submitters).  Lazy writes (store.h) are answered at
 * once on the caller's thread and kept as copies in memory (an update
 * merged into its record's insert), which the next transaction applies
 * first: the next write that is not lazy, or the writer's own DEFER_MS
 * after the first of them.  A job waited for costs one commit, its last,
 * and no hand-off to the writer before it; readers see nothing before it is
 * on disk.  Copies in a transaction that is lost (a failed commit) go back
 * to be applied with the next.
 * Readers take a connection from a small pool; WAL lets them read while the
 * writer writes.
 *
 * Failure: a failed COMMIT (SQLITE_FULL, SQLITE_IOERR ...) makes the store
 * unhealthy with SQLite's words as the reason.  While unhealthy, inserts
 * fail at once (nothing is acknowledged that is not on disk), updates that
 * asked to be retried are held and tried again every second, and a small
 * probe transaction tells when writes work again.  Reads go on throughout.
 *
 * Schema versions live in PRAGMA user_version; migrations[] is applied in
 * order at open, each in its own transaction. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/magic.h>
#include <sqlite3.h>

#include "base/callbackurl.h"
#include "base/heartbeat.h"
#include "base/log.h"
#include "base/util.h"

#define DB_NAME "edgecd.db"
#define READERS 4
#define BATCH_MAX 512             /* writes in one transaction at most */
#define RETRY_MS 1000             /* held writes and the probe, while unhealthy */
#define BUSY_TIMEOUT_MS 5000
#define CHECKPOINT_PAGES 1000     /* SQLite's own threshold, taken when idle */
#define CHECKPOINT_FORCE_PAGES 4000  /* ...and when never idle */
/* SQLite's WAL format: a 32-byte header, then frames of a 24-byte header
 * and a page; the slack covers what a commit adds past the threshold. */
#define WAL_HEADER_BYTES 32
#define WAL_FRAME_HEADER_BYTES 24
#define WAL_SLACK_PAGES 100
#define WAL_SIZE_LIMIT 16777216   /* open_conn()'s PRAGMA journal_size_limit */
/* A lazy write is committed this soon at the latest: past a job's usual
 * length, so that a waited job commits once, as it ends (at 250 ms a cold
 * job in the QEMU VM, 200 to 250 ms, often paid a second commit near its
 * end); short enough that a listing soon names a long one running. */
#define DEFER_MS 1000

static const char *const migrations[] = {
        /* 1: jobs (the small, often updated part), their parameters and
         * results (written once each: a status change never rewrites
         * them), idempotency keys, a scratch row for the health probe. */
        "CREATE TABLE jobs ("
        "  seq INTEGER PRIMARY KEY,"
        "  id TEXT NOT NULL UNIQUE,"
        "  algorithm TEXT NOT NULL,"
        "  version TEXT NOT NULL,"
        "  status INTEGER NOT NULL,"
        "  priority INTEGER NOT NULL,"
        "  timeout_seconds INTEGER NOT NULL,"
        "  submitted_by TEXT,"
        "  error INTEGER NOT NULL DEFAULT 0,"
        "  error_message TEXT,"
        "  exit_code INTEGER,"
        "  queue_ms INTEGER, create_ms INTEGER, run_ms INTEGER, collect_ms INTEGER,"
        "  total_ms INTEGER, peak_memory_bytes INTEGER, cpu_ms INTEGER,"
        "  runtime TEXT,"
        "  log_truncated INTEGER NOT NULL DEFAULT 0,"
        "  attempts TEXT NOT NULL DEFAULT '[]',"
        "  recoveries INTEGER NOT NULL DEFAULT 0,"
        "  created_ms INTEGER NOT NULL,"
        "  started_ms INTEGER NOT NULL DEFAULT 0,"
        "  finished_ms INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX jobs_by_status ON jobs(status, seq);"
        "CREATE INDEX jobs_by_algorithm ON jobs(algorithm, seq);"
        "CREATE INDEX jobs_by_algorithm_status ON jobs(algorithm, status, seq);"
        "CREATE INDEX jobs_by_finish ON jobs(finished_ms) WHERE status >= 2;"
        "CREATE TABLE job_data ("
        "  seq INTEGER PRIMARY KEY,"
        "  params TEXT,"
        "  result TEXT"
        ");"
        "CREATE TABLE idempotency ("
        "  key TEXT PRIMARY KEY,"
        "  hash TEXT NOT NULL,"
        "  job_id TEXT NOT NULL,"
        "  created_ms INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE INDEX idempotency_by_age ON idempotency(created_ms);"
        "CREATE INDEX idempotency_by_job ON idempotency(job_id);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;",
        /* 2: the algorithm's last progress.json (normalised JSON text). */
        "ALTER TABLE jobs ADD COLUMN progress TEXT;",
        /* 3: a job's callback (callback.h) and its delivery state; the
         * pending ones by when they are due (the delivery queue). */
        "ALTER TABLE jobs ADD COLUMN callback_url TEXT;"
        "ALTER TABLE jobs ADD COLUMN cb_delivery TEXT;"
        "ALTER TABLE jobs ADD COLUMN cb_state INTEGER;"
        "ALTER TABLE jobs ADD COLUMN cb_attempts INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE jobs ADD COLUMN cb_last_status INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE jobs ADD COLUMN cb_last_error TEXT;"
        "ALTER TABLE jobs ADD COLUMN cb_delivered_ms INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE jobs ADD COLUMN cb_next_ms INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX jobs_callbacks_due ON jobs(cb_next_ms) WHERE cb_state = 0;",
        /* 4: the delivery queue by when each is due (a first attempt when
         * its job ended: after retries that came due before it), and by
         * receiver, so that a look at it passes over those of receivers
         * already at their cap without reading their rows. */
        "ALTER TABLE jobs ADD COLUMN cb_dest TEXT;"
        "UPDATE jobs SET cb_dest = edgecd_callback_dest(callback_url) WHERE cb_state = 0;"
        "DROP INDEX jobs_callbacks_due;"
        "CREATE INDEX jobs_callbacks_due ON jobs(max(cb_next_ms, finished_ms), cb_dest) "
        "WHERE cb_state = 0 AND status >= 2;",
        /* 5: idempotency keys are per API token ("NAME\x1fKEY", api.c
         * idempotency_key()): a key kept from before, of a job submitted
         * with a token, becomes its token's, so that a retry across the
         * upgrade is still the same job.  One whose new spelling is taken
         * already (a job made again since) stays as it was. */
        "UPDATE OR IGNORE idempotency SET key = "
        "(SELECT submitted_by FROM jobs WHERE jobs.id = idempotency.job_id) || char(31) || key "
        "WHERE instr(key, char(31)) = 0 AND "
        "(SELECT submitted_by FROM jobs WHERE jobs.id = idempotency.job_id) IS NOT NULL;",
        /* 6: the pending callbacks by receiver, queued and running jobs'
         * too: a submit counts its receiver's backlog against
         * callbacks.max_pending in the index alone. */
        "CREATE INDEX jobs_callbacks_by_dest ON jobs(cb_dest) WHERE cb_state = 0;",
};

/* Every column a read returns, in this order (see row_to_record). */
#define COLUMNS "id, algorithm, version, status, priority, timeout_seconds, submitted_by, error, " \
                "error_message, exit_code, queue_ms, create_ms, run_ms, collect_ms, total_ms, " \
                "peak_memory_bytes, cpu_ms, runtime, log_truncated, attempts, recoveries, " \
                "created_ms, started_ms, finished_ms, progress, callback_url, cb_delivery, cb_state, " \
                "cb_attempts, cb_last_status, cb_last_error, cb_delivered_ms, cb_next_ms"
#define NCOLUMNS 33

struct reader {
        sqlite3 *db;
        bool busy;
};

/* A lazy insert answered before its commit, with any update of its record
 * since merged in (a lazy one, or one that waits for this commit):
 * applied by the next transaction, as one row. */
struct deferred {
        struct deferred *next;
        struct store_write w;
        struct store_item item;
        struct job_record rec;
};

struct store_backend {
        char *path;
        char *dir;                     /* the state dir: large parameters are read into unnamed files there */
        sqlite3 *w;                    /* the writer thread's */
        pthread_t thread;
        bool thread_started;
        struct heartbeat hb;               /* the writer's, for the watchdog */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct store_write *head, *tail;   /* waiting to be written */
        struct store_write *held;          /* failed, to be retried */
        bool stopping;
        bool abandon;                      /* retries given up: held writes fail */
        char last_failure[512];            /* the writer's: why a held retry failed */
        bool healthy;
        char reason[512];
        /* Lazy writes answered and not yet committed, in their order; to
         * be committed by defer_until (mono ms).  None is answered while
         * the writer is in a transaction (committing): one that fails makes
         * the store refuse new jobs, these too.  Under lock. */
        struct deferred *deferred, **deferred_tail;
        int64_t defer_until;
        bool committing;
        int wal_pages;                     /* the writer's: the WAL's size after its last commit */
        struct store_stats stats;
        size_t count;

        pthread_mutex_t rlock;
        pthread_cond_t rcond;
        struct reader readers[READERS];
};

/* The errno behind a file SQLite could not open or use (it keeps the
 * last one it met), ENOMEM for its memory: what tells a daemon short of
 * descriptors (EMFILE: "unable to open database file") from a broken
 * store; 0 for any other failure. */
static int sql_errno(sqlite3 *db, int rc)
{
        switch (rc & 0xff) {
        case SQLITE_NOMEM:
                return ENOMEM;
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
                return db ? sqlite3_system_errno(db) : 0;
        default:
                return 0;
        }
}

static int sql_err(struct err *err, sqlite3 *db, int rc, const char *what)
{
        return err_set(err, rc == SQLITE_FULL ? ERR_UNAVAILABLE : ERR_IO, sql_errno(db, rc), "%s: %s", what,
                       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int exec(sqlite3 *db, const char *sql, struct err *err)
{
        char *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                err_set(err, rc == SQLITE_FULL ? ERR_UNAVAILABLE : ERR_IO, sql_errno(db, rc), "%s",
                        msg ? msg : sqlite3_errstr(rc));
                sqlite3_free(msg);
                return -1;
        }
        return 0;
}

/* edgecd_callback_dest(url): the receiver of a callback URL
 * (callback_url_dest), NULL for none or one that does not parse. */
static void sql_callback_dest(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
        (void)argc;
        const char *url = (const char *)sqlite3_value_text(argv[0]);
        char dest[CALLBACK_DEST_MAX];
        if (url && callback_url_dest(url, dest, sizeof dest))
                sqlite3_result_text(ctx, dest, -1, SQLITE_TRANSIENT);
        else
                sqlite3_result_null(ctx);
}

static int open_conn(const char *path, bool readonly, sqlite3 **ret, struct err *err)
{
        sqlite3 *db = NULL;
        int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
        int rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc != SQLITE_OK) {
                err_set(err, ERR_IO, sql_errno(db, rc), "open %s: %s", path,
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                sqlite3_close(db);
                return -1;
        }
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        sqlite3_extended_result_codes(db, 1);
        if (!readonly &&
            (exec(db, "PRAGMA journal_mode=WAL", err) < 0 || exec(db, "PRAGMA synchronous=FULL", err) < 0 ||
             exec(db, "PRAGMA journal_size_limit=16777216", err) < 0 ||   /* WAL_SIZE_LIMIT */
             exec(db, "PRAGMA foreign_keys=OFF", err) < 0 ||
             sqlite3_create_function(db, "edgecd_callback_dest", 1,
                                     SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                     sql_callback_dest, NULL, NULL) != SQLITE_OK)) {
                sqlite3_close(db);
                return err_wrap(err, "%s", path);
        }
        *ret = db;
        return 0;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
        sqlite3_stmt *st = NULL;
        int64_t v = -1;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

static int migrate(struct store_backend *b, struct err *err)
{
        int64_t have = pragma_int(b->w, "PRAGMA user_version");
        int64_t known = (int64_t)ARRAY_SIZE(migrations);
        if (have < 0)
                return err_set(err, ERR_IO, 0, "%s: cannot read the schema version: %s", b->path,
                               sqlite3_errmsg(b->w));
        if (have > known)
                return err_set(err, ERR_INVALID, 0, "%s: schema version %lld is newer than this edgecd "
                               "knows (%lld): was it written by a later release?", b->path,
                               (long long)have, (long long)known);
        for (int64_t v = have; v < known; v++) {
                _cleanup_free_ char *bump = xasprintf("PRAGMA user_version=%lld", (long long)v + 1);
                if (exec(b->w, "BEGIN IMMEDIATE", err) < 0 || exec(b->w, migrations[v], err) < 0 ||
                    exec(b->w, bump, err) < 0 || exec(b->w, "COMMIT", err) < 0) {
                        struct err ignored = ERR_INIT;
                        exec(b->w, "ROLLBACK", &ignored);
                        return err_wrap(err, "%s: migrate the schema to version %lld", b->path, (long long)v + 1);
                }
                log_info("store: %s: schema version %lld", b->path, (long long)v + 1);
        }
        return 0;
}

/* ---- statements ---- */

/* A prepared statement kept by its connection (SQLite caches nothing by
 * itself): looked up by its text's address. */
static sqlite3_stmt *stmt(sqlite3 *db, const char *sql, struct err *err)
{
        sqlite3_stmt *st = NULL;
        for (sqlite3_stmt *p = sqlite3_next_stmt(db, NULL); p; p = sqlite3_next_stmt(db, p)) {
                if (sqlite3_sql(p) == sql || !strcmp(sqlite3_sql(p), sql)) {
                        st = p;
                        break;
                }
        }
        if (!st && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
                sql_err(err, db, sqlite3_errcode(db), "prepare");
                return NULL;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
}

/* A statement without parameters or rows (BEGIN, COMMIT, a savepoint, a
 * pragma) run from the connection's kept ones: sqlite3_exec() parses its
 * text on every call (the four of a transaction: 2.0 us parsed, 0.4 kept,
 * on a VM; a pragma is parsed again at each step all the same, kept or
 * not).  Worded as exec()'s errors. */
static int exec_kept(sqlite3 *db, const char *sql, struct err *err)
{
        sqlite3_stmt *st = stmt(db, sql, err);
        if (!st)
                return -1;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
                sqlite3_reset(st);
                return 0;
        }
        err_set(err, rc == SQLITE_FULL ? ERR_UNAVAILABLE : ERR_IO, sql_errno(db, rc), "%s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        return -1;
}

/* What a failed stmt() means for the transaction: its own code (an I/O
 * error or out of memory there is as fatal as in a step). */
static int prepare_failed(sqlite3 *db)
{
        int rc = sqlite3_errcode(db);
        return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
        if (s)
                sqlite3_bind_text64(st, i, s, len, SQLITE_STATIC, SQLITE_UTF8);
        else
                sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
        bind_text(st, i, s, s ? strlen(s) : 0);
}

static void bind_opt(sqlite3_stmt *st, int i, bool present, int64_t v)
{
        if (present)
                sqlite3_bind_int64(st, i, v);
        else
                sqlite3_bind_null(st, i);
}

static char *column_dup(sqlite3_stmt *st, int i, size_t *ret_len)
{
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        const char *t = (const char *)sqlite3_column_text(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        char *s = xmemdup0(t ? t : "", n);
        if (ret_len)
                *ret_len = n;
        return s;
}

static void row_to_record(sqlite3_stmt *st, struct job_record *r)
{
        memset(r, 0, sizeof *r);
        const char *id = (const char *)sqlite3_column_text(st, 0);
        snprintf(r->id, sizeof r->id, "%s", id ? id : "");
        r->algorithm = column_dup(st, 1, NULL);
        r->version = column_dup(st, 2, NULL);
        r->status = (enum job_status)sqlite3_column_int(st, 3);
        r->priority = (enum job_priority)sqlite3_column_int(st, 4);
        r->timeout_seconds = sqlite3_column_int64(st, 5);
        r->submitted_by = column_dup(st, 6, NULL);
        r->error = (enum job_error)sqlite3_column_int(st, 7);
        r->error_message = column_dup(st, 8, NULL);
        r->has_exit_code = sqlite3_column_type(st, 9) != SQLITE_NULL;
        r->exit_code = sqlite3_column_int(st, 9);
        r->has_metrics = sqlite3_column_type(st, 14) != SQLITE_NULL;
        int64_t *m[] = { &r->metrics.queue_ms, &r->metrics.create_ms, &r->metrics.run_ms,
                         &r->metrics.collect_ms, &r->metrics.total_ms, &r->metrics.peak_memory_bytes,
                         &r->metrics.cpu_ms };
        for (int i = 0; i < 7; i++)
                *m[i] = sqlite3_column_type(st, 10 + i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 10 + i);
        r->runtime_name = column_dup(st, 17, NULL);
        r->log_truncated = sqlite3_column_int(st, 18) != 0;
        r->attempts = column_dup(st, 19, NULL);
        r->recoveries = sqlite3_column_int64(st, 20);
        r->created_ms = sqlite3_column_int64(st, 21);
        r->started_ms = sqlite3_column_int64(st, 22);
        r->finished_ms = sqlite3_column_int64(st, 23);
        r->progress = column_dup(st, 24, NULL);
        struct job_callback *cb = &r->callback;
        cb->url = column_dup(st, 25, NULL);
        if (cb->url) {
                const char *d = (const char *)sqlite3_column_text(st, 26);
                snprintf(cb->delivery, sizeof cb->delivery, "%s", d ? d : "");
                cb->state = (enum callback_state)sqlite3_column_int(st, 27);
                cb->attempts = sqlite3_column_int64(st, 28);
                cb->last_status = sqlite3_column_int(st, 29);
                cb->last_error = column_dup(st, 30, NULL);
                cb->delivered_ms = sqlite3_column_int64(st, 31);
                cb->next_ms = sqlite3_column_int64(st, 32);
        }
}

/* ---- the writer ---- */

static const char SQL_FIND_KEY[] = "SELECT hash, job_id FROM idempotency WHERE key = ?1";
static const char SQL_ADD_KEY[] = "INSERT INTO idempotency(key, hash, job_id, created_ms) VALUES (?1, ?2, ?3, ?4)";
/* A record as it stands: a new job, or one past queued (its insert kept
 * until it moved on, store.h `lazy`), in one row.  Numbered as
 * SQL_UPDATE where they meet (bind_state). */
static const char SQL_INSERT[] =
        "INSERT INTO jobs(id, status, error, error_message, exit_code, queue_ms, create_ms, run_ms, collect_ms, "
        "total_ms, peak_memory_bytes, cpu_ms, runtime, log_truncated, attempts, recoveries, started_ms, "
        "finished_ms, progress, algorithm, version, priority, timeout_seconds, submitted_by, created_ms, "
        "callback_url, cb_delivery, cb_state, cb_dest) "
        "VALUES (?1, ?2, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?21, "
        "?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, edgecd_callback_dest(?28))";
static const char SQL_INSERT_DATA[] = "INSERT INTO job_data(seq, params, result) VALUES (?1, ?2, ?3)";
static const char SQL_SET_RESULT[] =
        "UPDATE job_data SET result = ?2 WHERE seq = (SELECT seq FROM jobs WHERE id = ?1)";
static const char SQL_SET_RESULT_SIZED[] =
        "UPDATE job_data SET result = zeroblob(?2) WHERE seq = (SELECT seq FROM jobs WHERE id = ?1)";
static const char SQL_SEQ[] = "SELECT seq FROM jobs WHERE id = ?1";
static const char SQL_DELETE_DATA[] = "DELETE FROM job_data WHERE seq = (SELECT seq FROM jobs WHERE id = ?1)";
static const char SQL_UPDATE[] =
        "UPDATE jobs SET status = ?2, error = ?4, error_message = ?5, exit_code = ?6, "
        "queue_ms = ?7, create_ms = ?8, run_ms = ?9, collect_ms = ?10, total_ms = ?11, "
        "peak_memory_bytes = ?12, cpu_ms = ?13, runtime = ?14, log_truncated = ?15, attempts = ?16, "
        "recoveries = ?17, started_ms = ?18, finished_ms = ?19, progress = ?21 "
        "WHERE id = ?1 AND (?20 < 0 OR status = ?20)";
static const char SQL_CALLBACK[] =
        "UPDATE jobs SET cb_state = ?2, cb_attempts = ?3, cb_last_status = ?4, cb_last_error = ?5, "
        "cb_delivered_ms = ?6, cb_next_ms = ?7 WHERE id = ?1 AND callback_url IS NOT NULL";
/* What retention may delete: final jobs whose callback is not pending (a
 * pending one is the delivery queue: it goes once delivered or failed, a
 * time bounded by callbacks.max_attempts and the backoff). */
#define PRUNABLE "status >= 2 AND (cb_state IS NULL OR cb_state <> 0)"
static const char SQL_EXPIRED[] =
        "SELECT id, attempts FROM jobs WHERE " PRUNABLE " AND finished_ms < ?1 ORDER BY finished_ms LIMIT ?2";
static const char SQL_FINALS[] = "SELECT count(*) FROM jobs WHERE " PRUNABLE;
static const char SQL_OLDEST_FINALS[] =
        "SELECT id, attempts FROM jobs WHERE " PRUNABLE " ORDER BY finished_ms LIMIT ?1";
static const char SQL_DELETE[] = "DELETE FROM jobs WHERE id = ?1";
static const char SQL_DELETE_JOB_KEYS[] = "DELETE FROM idempotency WHERE job_id = ?1";
static const char SQL_DELETE_KEYS[] = "DELETE FROM idempotency WHERE created_ms < ?1";
static const char SQL_PROBE[] = "INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', zeroblob(16384))";
static const char SQL_UNPROBE[] = "DELETE FROM meta WHERE key = 'probe'";
/* Something to commit, so that the commit fsyncs the WAL. */
static const char SQL_SYNC[] = "INSERT OR REPLACE INTO meta(key, value) VALUES ('sync', 0); "
                               "DELETE FROM meta WHERE key = 'sync'";

/* A statement error that spoils the whole transaction (as opposed to one
 * write's own problem, such as a constraint). */
static bool fatal_rc(int rc)
{
        rc &= 0xff;
        return rc == SQLITE_FULL || rc == SQLITE_IOERR || rc == SQLITE_NOMEM || rc == SQLITE_CORRUPT ||
               rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY || rc == SQLITE_BUSY || rc == SQLITE_NOTADB;
}

/* Parameters larger than this are written and read a piece at a time. */
#define PARAMS_STREAM_MIN ((size_t)1 << 20)
#define PARAMS_PIECE ((size_t)1 << 20)

static int blob_write_all(sqlite3 *db, const char *column, sqlite3_int64 seq, const char *data, size_t len,
                          struct err *err)
{
        sqlite3_blob *blob = NULL;
        int rc = sqlite3_blob_open(db, "main", "job_data", column, seq, 1, &blob);
        for (size_t off = 0; rc == SQLITE_OK && off < len; off += PARAMS_PIECE) {
                size_t n = len - off < PARAMS_PIECE ? len - off : PARAMS_PIECE;
                rc = sqlite3_blob_write(blob, data + off, (int)n, (int)off);
        }
        int crc = sqlite3_blob_close(blob);
        if (rc == SQLITE_OK)
                rc = crc;
        if (rc != SQLITE_OK)
                return sql_err(err, db, rc, "write a large value"), rc;
        return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, struct err *err)
{
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return sql_err(err, db, rc, what), rc;
        return 0;
}

static int apply_update(struct store_backend *b, struct store_item *it, struct err *err);

/* What a job's progress changes (?2, ?4 to ?19, ?21 of SQL_UPDATE and
 * SQL_INSERT). */
static void bind_state(sqlite3_stmt *st, const struct job_record *r)
{
        sqlite3_bind_int(st, 2, (int)r->status);
        sqlite3_bind_int(st, 4, (int)r->error);
        bind_str(st, 5, r->error_message);
        bind_opt(st, 6, r->has_exit_code, r->exit_code);
        const int64_t m[] = { r->metrics.queue_ms, r->metrics.create_ms, r->metrics.run_ms,
                              r->metrics.collect_ms, r->metrics.total_ms, r->metrics.peak_memory_bytes,
                              r->metrics.cpu_ms };
        for (int i = 0; i < 7; i++)
                bind_opt(st, 7 + i, r->has_metrics && m[i] >= 0, m[i]);
        bind_str(st, 14, r->runtime_name);
        sqlite3_bind_int(st, 15, r->log_truncated);
        bind_str(st, 16, r->attempts ? r->attempts : "[]");
        sqlite3_bind_int64(st, 17, r->recoveries);
        sqlite3_bind_int64(st, 18, r->started_ms);
        sqlite3_bind_int64(st, 19, r->finished_ms);
        bind_str(st, 21, r->progress);
}

/* Parameters or a result: text, or when large a BLOB of its size to be
 * written a piece at a time (true): SQLite would otherwise build the whole
 * row in memory. */
static bool bind_data(sqlite3_stmt *st, int i, const char *data, size_t len)
{
        if (data && len > PARAMS_STREAM_MIN) {
                sqlite3_bind_zeroblob64(st, i, len);
                return true;
        }
        bind_text(st, i, data, len);
        return false;
}

static int apply_insert(struct store_backend *b, struct store_item *it, struct err *err)
{
        sqlite3 *db = b->w;
        struct job_record *r = it->rec;
        if (it->idem_key) {
                sqlite3_stmt *st = stmt(db, SQL_FIND_KEY, err);
                if (!st)
                        return prepare_failed(db);
                bind_str(st, 1, it->idem_key);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        const char *hash = (const char *)sqlite3_column_text(st, 0);
                        const char *id = (const char *)sqlite3_column_text(st, 1);
                        it->outcome = hash && it->idem_hash && !strcmp(hash, it->idem_hash)
                                              ? STORE_ITEM_REPLAYED : STORE_ITEM_CONFLICT;
                        snprintf(it->existing_id, sizeof it->existing_id, "%s", id ? id : "");
                        sqlite3_reset(st);
                        return 0;
                }
                sqlite3_reset(st);
                if (rc != SQLITE_DONE)
                        return sql_err(err, db, rc, "find idempotency key"), rc;
        }
        sqlite3_stmt *st = stmt(db, SQL_INSERT, err);
        if (!st)
                return prepare_failed(db);
        bind_str(st, 1, r->id);
        bind_state(st, r);
        bind_str(st, 22, r->algorithm);
        bind_str(st, 23, r->version);
        sqlite3_bind_int(st, 24, (int)r->priority);
        sqlite3_bind_int64(st, 25, r->timeout_seconds);
        bind_str(st, 26, r->submitted_by);
        sqlite3_bind_int64(st, 27, r->created_ms);
        bind_str(st, 28, r->callback.url);
        bind_str(st, 29, r->callback.url ? r->callback.delivery : NULL);
        if (r->callback.url)
                sqlite3_bind_int(st, 30, (int)r->callback.state);
        else
                sqlite3_bind_null(st, 30);
        int rc = step_done(db, st, "insert job", err);
        if (rc)
                return rc;
        sqlite3_int64 seq = sqlite3_last_insert_rowid(db);
        st = stmt(db, SQL_INSERT_DATA, err);
        if (!st)
                return prepare_failed(db);
        sqlite3_bind_int64(st, 1, seq);
        bool params_streamed = bind_data(st, 2, r->params, r->params_len);
        bool result_streamed = bind_data(st, 3, r->result, r->result_len);
        if ((rc = step_done(db, st, "insert job parameters", err)))
                return rc;
        if (params_streamed && (rc = blob_write_all(db, "params", seq, r->params, r->params_len, err)))
                return rc;
        if (result_streamed && (rc = blob_write_all(db, "result", seq, r->result, r->result_len, err)))
                return rc;
        if (it->idem_key) {
                st = stmt(db, SQL_ADD_KEY, err);
                if (!st)
                        return prepare_failed(db);
                bind_str(st, 1, it->idem_key);
                bind_str(st, 2, it->idem_hash);
                bind_str(st, 3, r->id);
                sqlite3_bind_int64(st, 4, r->created_ms);
                if ((rc = step_done(db, st, "insert idempotency key", err)))
                        return rc;
        }
        it->outcome = STORE_ITEM_OK;
        return 0;
}

static int apply_update(struct store_backend *b, struct store_item *it, struct err *err)
{
        sqlite3 *db = b->w;
        const struct job_record *r = it->rec;
        sqlite3_stmt *st = stmt(db, SQL_UPDATE, err);
        if (!st)
                return prepare_failed(db);
        bind_str(st, 1, r->id);
        bind_state(st, r);
        sqlite3_bind_int(st, 20, it->expect_status);
        int rc = step_done(db, st, "update job", err);
        if (rc)
                return rc;
        it->outcome = sqlite3_changes(db) > 0 ? STORE_ITEM_OK : STORE_ITEM_NOT_APPLIED;
        if (it->outcome == STORE_ITEM_OK && r->result) {
                /* A large one a piece at a time, as large parameters. */
                bool streamed = r->result_len > PARAMS_STREAM_MIN;
                st = stmt(db, streamed ? SQL_SET_RESULT_SIZED : SQL_SET_RESULT, err);
                if (!st)
                        return prepare_failed(db);
                bind_str(st, 1, r->id);
                if (streamed)
                        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->result_len);
                else
                        bind_text(st, 2, r->result, r->result_len);
                if ((rc = step_done(db, st, "store the result", err)))
                        return rc;
                if (streamed) {
                        st = stmt(db, SQL_SEQ, err);
                        if (!st)
                                return prepare_failed(db);
                        bind_str(st, 1, r->id);
                        sqlite3_int64 seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
                        sqlite3_reset(st);
                        if ((rc = blob_write_all(db, "result", seq, r->result, r->result_len, err)))
                                return rc;
                }
        }
        return 0;
}

static int apply_callback(struct store_backend *b, struct store_item *it, struct err *err)
{
        sqlite3 *db = b->w;
        const struct job_callback *cb = &it->rec->callback;
        sqlite3_stmt *st = stmt(db, SQL_CALLBACK, err);
        if (!st)
                return prepare_failed(db);
        bind_str(st, 1, it->rec->id);
        sqlite3_bind_int(st, 2, (int)cb->state);
        sqlite3_bind_int64(st, 3, cb->attempts);
        sqlite3_bind_int(st, 4, cb->last_status);
        bind_str(st, 5, cb->last_error);
        sqlite3_bind_int64(st, 6, cb->delivered_ms);
        sqlite3_bind_int64(st, 7, cb->next_ms);
        int rc = step_done(db, st, "record the callback's delivery", err);
        if (rc)
                return rc;
        it->outcome = sqlite3_changes(db) > 0 ? STORE_ITEM_OK : STORE_ITEM_NOT_APPLIED;
        return 0;
}

static size_t count_attempts(const char *text)
{
        _cleanup_json_ json_t *a = text ? json_loads(text, 0, NULL) : NULL;
        return json_is_array(a) ? json_array_size(a) : 0;
}

struct victim {
        char id[JOB_ID_LEN + 1];
        size_t attempts;
};

/* Collect up to `limit` (id, attempts) rows of st into *v. */
static int collect(sqlite3 *db, sqlite3_stmt *st, struct victim **v, size_t *n, size_t limit, struct err *err)
{
        int rc = SQLITE_DONE;
        while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                *v = xrealloc(*v, (*n + 1) * sizeof **v);
                const char *id = (const char *)sqlite3_column_text(st, 0);
                snprintf((*v)[*n].id, sizeof (*v)[*n].id, "%s", id ? id : "");
                (*v)[*n].attempts = count_attempts((const char *)sqlite3_column_text(st, 1));
                (*n)++;
        }
        sqlite3_reset(st);
        if (*n < limit && rc != SQLITE_DONE)
                return sql_err(err, db, rc, "select expired jobs"), rc;
        return 0;
}

/* The victims are reported after the commit (their logs go then). */
static int apply_prune(struct store_backend *b, struct store_write *w, struct victim **v, size_t *nv,
                       struct err *err)
{
        sqlite3 *db = b->w;
        size_t limit = w->prune_limit ? w->prune_limit : 1000;
        sqlite3_stmt *st = stmt(db, SQL_EXPIRED, err);
        if (!st)
                return prepare_failed(db);
        sqlite3_bind_int64(st, 1, w->prune_before_ms);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
        int rc = collect(db, st, v, nv, limit, err);
        if (rc)
                return rc;
        if (w->prune_max_records > 0 && *nv < limit) {
                st = stmt(db, SQL_FINALS, err);
                if (!st)
                        return prepare_failed(db);
                int64_t finals = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
                sqlite3_reset(st);
                finals -= (int64_t)*nv;
                if (finals > w->prune_max_records) {
                        /* The oldest-finished ones, past those already taken. */
                        /* The oldest-finished ones (those already taken
                         * come first: they are the oldest), at most `limit`
                         * in all: a step costs the same however far over. */
                        size_t extra = (size_t)(finals - w->prune_max_records);
                        if (extra > limit - *nv)
                                extra = limit - *nv;
                        st = stmt(db, SQL_OLDEST_FINALS, err);
                        if (!st)
                                return prepare_failed(db);
                        sqlite3_bind_int64(st, 1, (int64_t)(*nv + extra));
                        struct victim *all = NULL;
                        size_t nall = 0;
                        rc = collect(db, st, &all, &nall, *nv + extra, err);
                        for (size_t i = 0; !rc && i < nall && *nv < limit; i++) {
                                bool dup = false;
                                for (size_t k = 0; k < *nv && !dup; k++)
                                        dup = !strcmp((*v)[k].id, all[i].id);
                                if (!dup) {
                                        *v = xrealloc(*v, (*nv + 1) * sizeof **v);
                                        (*v)[(*nv)++] = all[i];
                                }
                        }
                        free(all);
                        if (rc)
                                return rc;
                }
        }
        /* A key goes with its job: a retry must never be answered with a
         * job that is gone. */
        static const struct {
                const char *sql, *what;
        } deletes[] = {
                { SQL_DELETE_DATA, "delete job data" },
                { SQL_DELETE, "delete job" },
                { SQL_DELETE_JOB_KEYS, "delete idempotency key" },
        };
        for (size_t i = 0; i < *nv; i++) {
                for (size_t k = 0; k < ARRAY_SIZE(deletes); k++) {
                        st = stmt(db, deletes[k].sql, err);
                        if (!st)
                                return prepare_failed(db);
                        bind_str(st, 1, (*v)[i].id);
                        if ((rc = step_done(db, st, deletes[k].what, err)))
                                return rc;
                }
        }
        st = stmt(db, SQL_DELETE_KEYS, err);
        if (!st)
                return prepare_failed(db);
        sqlite3_bind_int64(st, 1, w->prune_before_ms);
        return step_done(db, st, "delete idempotency keys", err);
}

static void set_health(struct store_backend *b, bool healthy, const char *reason)
{
        pthread_mutex_lock(&b->lock);
        bool was = b->healthy;
        b->healthy = healthy;
        if (!healthy)
                snprintf(b->reason, sizeof b->reason, "%s", reason);
        pthread_mutex_unlock(&b->lock);
        if (was && !healthy)
                log_error("store: %s: writes fail, new jobs are refused until they work again: %s", b->path, reason);
        else if (!was && healthy)
                log_info("store: %s: writes work again", b->path);
}

static void hold_or_fail(struct store_backend *b, struct store_write *w, const struct err *failure);

static void finish_write(struct store_write *w, const struct err *err)
{
        if (err)
                w->err = *err;
        else
                err_clear(&w->err);
        w->done(w);
}

/* Write a little and commit it, so the disk must take it.  true when it
 * worked. */
static bool probe(struct store_backend *b)
{
        struct err err = ERR_INIT;
        /* A probe that fsyncs: the disk is the question. */
        if (exec(b->w, "BEGIN IMMEDIATE", &err) == 0 &&
            exec(b->w, SQL_PROBE, &err) == 0 &&
            exec(b->w, SQL_UNPROBE, &err) == 0 && exec(b->w, "COMMIT", &err) == 0)
                return true;
        struct err ignored = ERR_INIT;
        if (!sqlite3_get_autocommit(b->w))
                exec(b->w, "ROLLBACK", &ignored);
        exec(b->w, "PRAGMA wal_checkpoint(TRUNCATE)", &ignored);
        set_health(b, false, err.msg);
        return false;
}

/* Commit a batch of writes in one transaction. */
/* One write, all or nothing: inside a savepoint, so that its own problem
 * (a constraint) undoes only it.  Returns a fatal SQLite code (the whole
 * transaction is lost), else 0 with w->err telling how it went. */
static int apply_write(struct store_backend *b, struct store_write *w, struct victim **v, size_t *nv,
                       long *inserted)
{
        struct err ignored = ERR_INIT;
        err_clear(&w->err);
        if (exec_kept(b->w, "SAVEPOINT one_write", &w->err) < 0)
                return SQLITE_IOERR;
        int rc = 0;
        long added = 0;
        if (w->carried) {
                /* Its change went in with its record's kept insert. */
        } else if (w->kind == STORE_PRUNE) {
                rc = apply_prune(b, w, v, nv, &w->err);
        } else if (w->kind == STORE_SYNC) {
                /* Always: a commit that changes nothing writes no frame
                 * and syncs nothing. */
                if (exec(b->w, SQL_SYNC, &w->err) < 0)
                        rc = SQLITE_IOERR;
        } else {
                for (size_t i = 0; i < w->n && !rc; i++) {
                        struct store_item *it = &w->items[i];
                        rc = w->kind == STORE_INSERT ? apply_insert(b, it, &w->err)
                             : w->kind == STORE_CALLBACK ? apply_callback(b, it, &w->err)
                             : apply_update(b, it, &w->err);
                        if (!rc && w->kind == STORE_INSERT && it->outcome == STORE_ITEM_OK)
                                added++;
                }
        }
        if (rc && fatal_rc(rc))
                return rc;
        if (rc) {
                /* Not this transaction's fault: undo this write only. */
                exec_kept(b->w, "ROLLBACK TO one_write", &ignored);
                exec_kept(b->w, "RELEASE one_write", &ignored);
                *nv = 0;
                if (w->err.code == ERR_OK)
                        err_set(&w->err, ERR_INTERNAL, 0, "%s", sqlite3_errstr(rc));
                return 0;
        }
        if (exec_kept(b->w, "RELEASE one_write", &w->err) < 0)
                return SQLITE_IOERR;
        *inserted += added;
        return 0;
}

/* Whether a write waiting for the writer names the record `id`. */
static bool queued_for(const struct store_backend *b, const char *id)
{
        for (const struct store_write *w = b->head; w; w = w->next)
                for (size_t i = 0; i < w->n; i++)
                        if (w->items && w->items[i].rec && !strcmp(w->items[i].rec->id, id))
                                return true;
        return false;
}

/* An update merged into its record's kept insert (under b->lock), when
 * that insert is kept and no earlier write waits to change the record,
 * with the outcome the SQL would have given (expect_status): 1 merged, 0
 * not applied, -1 not kept. */
static int merge_kept(struct store_backend *b, struct store_item *it)
{
        const struct job_record *r = it->rec;
        struct deferred *d = b->deferred;
        while (d && strcmp(d->rec.id, r->id))
                d = d->next;
        if (!d || queued_for(b, r->id))
                return -1;
        if (it->expect_status >= 0 && (int)d->rec.status != it->expect_status) {
                it->outcome = STORE_ITEM_NOT_APPLIED;
                return 0;
        }
        record_merge_update(&d->rec, r);
        it->outcome = STORE_ITEM_OK;
        return 1;
}

/* Answer w now if it is a lazy write the store can keep in memory until
 * the next transaction (under b->lock): one record, no idempotency key,
 * nothing too large to copy; an update only of a record whose insert is
 * kept too (no reader has seen it) and that no earlier write waits to
 * change, merged into it, with the outcome the SQL would have given
 * (expect_status). */
static bool defer_write(struct store_backend *b, struct store_write *w)
{
        if (!w->lazy || w->n != 1 || (w->kind != STORE_INSERT && w->kind != STORE_UPDATE) || b->committing)
                return false;
        struct store_item *it = &w->items[0];
        const struct job_record *r = it->rec;
        if (it->idem_key || r->params_len > STORE_LAZY_MAX_BYTES || r->result_len > STORE_LAZY_MAX_BYTES)
                return false;
        if (w->kind == STORE_UPDATE)
                return merge_kept(b, it) >= 0;
        struct deferred *d = xcalloc(1, sizeof *d);
        record_copy(&d->rec, r);
        d->item = (struct store_item){ .rec = &d->rec, .expect_status = -1 };
        d->w = (struct store_write){ .kind = STORE_INSERT, .items = &d->item, .n = 1, .lazy = true };
        if (!b->deferred) {
                b->defer_until = now_mono_ms() + DEFER_MS;
                pthread_cond_signal(&b->cond);   /* the writer keeps the deadline */
        }
        *b->deferred_tail = d;
        b->deferred_tail = &d->next;
        it->outcome = STORE_ITEM_OK;
        return true;
}

/* A job's final write, which must be committed before it is answered,
 * of a record whose insert is kept (under b->lock): merged into that
 * insert, as a lazy update is, so that the record goes to disk once, as it ends, and not
 * as inserted and then changed (the index entries of a status it no
 * longer has are pages the commit would write too).  It still waits for
 * the commit; true when it was merged.  One that would not apply is left
 * to the SQL, which says so once the kept insert is on disk. */
static bool carry_write(struct store_backend *b, struct store_write *w)
{
        /* Only a job's final record: a carried write that fails (a commit
         * lost, then given up at a stop) has its change kept with the
         * insert all the same, which for the last one is what happened
         * (the job ended), but for a run's start would say it began when
         * its caller was told it did not. */
        if (w->kind != STORE_UPDATE || w->n != 1 || b->committing ||
            !job_status_is_final(w->items[0].rec->status) ||
            w->items[0].rec->result_len > STORE_LAZY_MAX_BYTES)
                return false;
        return merge_kept(b, &w->items[0]) > 0;
}

static void defer_free(struct deferred *list)
{
        for (struct deferred *d = list, *next; d; d = next) {
                next = d->next;
                record_clear(&d->rec);
                free(d);
        }
}

/* The kept writes, for a transaction to apply (NULL when none); the
 * writer is committing from now on. */
static struct deferred *defer_take(struct store_backend *b)
{
        pthread_mutex_lock(&b->lock);
        b->committing = true;
        struct deferred *list = b->deferred;
        b->deferred = NULL;
        b->deferred_tail = &b->deferred;
        pthread_mutex_unlock(&b->lock);
        return list;
}

/* ...given back by a transaction that was lost: before those kept since. */
static void defer_give_back(struct store_backend *b, struct deferred *list)
{
        if (!list)
                return;
        struct deferred *last = list;
        while (last->next)
                last = last->next;
        pthread_mutex_lock(&b->lock);
        last->next = b->deferred;
        if (!b->deferred)
                b->deferred_tail = &last->next;
        b->deferred = list;
        pthread_mutex_unlock(&b->lock);
}

/* In a new transaction, first: the kept writes, in their order.  A fatal
 * SQLite code (err set), else 0. */
static int defer_apply(struct store_backend *b, struct deferred *list, long *inserted, struct err *err)
{
        for (struct deferred *d = list; d; d = d->next) {
                struct victim *v = NULL;
                size_t nv = 0;
                int rc = apply_write(b, &d->w, &v, &nv, inserted);
                if (rc) {
                        *err = d->w.err;
                        return rc;
                }
                if (d->w.err.code != ERR_OK)
                        log_warn("store: %s: job %s: a write answered before its commit did not apply: %s", b->path,
                                 d->rec.id, d->w.err.msg);
        }
        return 0;
}

/* Commit a batch of writes in one transaction, after the lazy writes kept
 * until now (a NULL batch: those alone). */
/* Returns whether it committed; the store's health follows only when
 * update_health (a retry of one held write does not speak for all).  With
 * `done` (a list's tail pointer), the writes that committed are appended
 * there instead of finished: the caller finishes them once it has set the
 * store's health, so no waiter sees a store still unhealthy after its own
 * write went through. */
static bool commit_batch(struct store_backend *b, struct store_write *batch, bool update_health,
                         struct store_write ***done)
{
        struct err err = ERR_INIT;
        size_t nwrites = 0;
        for (struct store_write *w = batch; w; w = w->next)
                nwrites++;
        /* What each prune deleted, reported to it after the commit. */
        struct victim **victims = xcalloc(nwrites, sizeof *victims);
        size_t *nvictims = xcalloc(nwrites, sizeof *nvictims);
        long inserted = 0, deleted = 0;
        struct deferred *kept = defer_take(b);
        bool failed = exec_kept(b->w, "BEGIN IMMEDIATE", &err) < 0 || defer_apply(b, kept, &inserted, &err) != 0;
        size_t k = 0;
        for (struct store_write *w = batch; w && !failed; w = w->next, k++) {
                if (apply_write(b, w, &victims[k], &nvictims[k], &inserted)) {
                        err = w->err;
                        failed = true;
                }
                w->pruned = nvictims[k];
                deleted += (long)nvictims[k];
        }
        if (!failed && exec_kept(b->w, "COMMIT", &err) < 0)
                failed = true;
        if (failed)
                defer_give_back(b, kept);   /* for the next transaction */
        else
                defer_free(kept);
        if (failed) {
                struct err ignored = ERR_INIT;
                if (!sqlite3_get_autocommit(b->w))
                        exec(b->w, "ROLLBACK", &ignored);
                if (update_health)
                        set_health(b, false, err.msg);
                else
                        snprintf(b->last_failure, sizeof b->last_failure, "%.500s", err.msg);
        } else if (update_health) {
                set_health(b, true, NULL);
        }

        pthread_mutex_lock(&b->lock);
        b->committing = false;   /* the store's health says how it went */
        if (failed) {
                b->stats.failures++;
        } else {
                b->stats.commits++;
                b->stats.writes += nwrites;
                b->count += (size_t)inserted;
                b->count -= (size_t)deleted <= b->count ? (size_t)deleted : b->count;
        }
        pthread_mutex_unlock(&b->lock);

        struct err failure;
        err_set(&failure, ERR_UNAVAILABLE, 0, "the job store cannot write: %s", err.msg);
        k = 0;
        for (struct store_write *w = batch, *next; w; w = next, k++) {
                next = w->next;
                w->next = NULL;
                if (!failed) {
                        if (w->kind == STORE_PRUNE && w->on_pruned)
                                for (size_t i = 0; i < nvictims[k]; i++) {
                                        heartbeat_beat();   /* each removes its logs */
                                        w->on_pruned(victims[k][i].id, victims[k][i].attempts, w->prune_ctx);
                                }
                        if (done) {
                                **done = w;
                                *done = &w->next;
                        } else {
                                finish_write(w, w->err.code ? &w->err : NULL);
                        }
                } else {
                        w->pruned = 0;
                        hold_or_fail(b, w, &failure);
                }
                free(victims[k]);
        }
        free(victims);
        free(nvictims);
        return !failed;
}

/* Hold w for a retry, or fail it (an insert, or once retries are given up). */
static void hold_or_fail(struct store_backend *b, struct store_write *w, const struct err *failure)
{
        w->next = NULL;
        pthread_mutex_lock(&b->lock);
        bool hold = w->retry && !b->abandon;
        if (hold) {
                w->next = b->held;
                b->held = w;
        }
        pthread_mutex_unlock(&b->lock);
        if (!hold)
                finish_write(w, failure);
}

static struct store_write *take_held(struct store_backend *b)
{
        pthread_mutex_lock(&b->lock);
        struct store_write *held = b->held;
        b->held = NULL;
        pthread_mutex_unlock(&b->lock);
        return held;
}

static void fail_all(struct store_write *list, const char *why)
{
        struct err failure;
        err_set(&failure, ERR_UNAVAILABLE, 0, "the job store %s", why);
        for (struct store_write *w = list, *next; w; w = next) {
                next = w->next;
                w->next = NULL;
                finish_write(w, &failure);
        }
}

/* After each commit of the writer's connection: how large the WAL is. */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
        (void)db;
        (void)name;
        ((struct store_backend *)ctx)->wal_pages = pages;
        return SQLITE_OK;
}

/* The WAL's pages copied back into the database (and both fsynced), which
 * SQLite would otherwise do inside whichever commit crossed its threshold,
 * holding up that job's answer by a checkpoint's writes and fsyncs. */
static void checkpoint(struct store_backend *b)
{
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(b->w, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        /* Retried after the next commit, which reports the WAL again. */
        b->wal_pages = 0;
        if (rc != SQLITE_OK) {
                /* BUSY: a reader held it back; the next one goes on. */
                if (rc != SQLITE_BUSY)
                        log_warn("store: %s: checkpoint: %s", b->path, sqlite3_errmsg(b->w));
                return;
        }
        pthread_mutex_lock(&b->lock);
        b->stats.checkpoints++;
        pthread_mutex_unlock(&b->lock);
}

/* Every few thousand steps of a statement on the writer's connection: a
 * long one (a retention step freeing large results, a big batch) is
 * progress, not a hung disk (heartbeat.h). */
static int beat_while_stepping(void *ctx)
{
        (void)ctx;
        heartbeat_beat();
        return 0;
}

static void *writer_main(void *arg)
{
        struct store_backend *b = arg;
        int64_t next_retry = 0;
        heartbeat_bind(&b->hb);
        pthread_mutex_lock(&b->lock);
        for (;;) {
                heartbeat_beat();
                /* Idle (or the WAL far past its size under steady load):
                 * the checkpoint delays only writes that come meanwhile. */
                if (b->healthy && !b->stopping &&
                    ((!b->head && !b->deferred && b->wal_pages >= CHECKPOINT_PAGES) ||
                     b->wal_pages >= CHECKPOINT_FORCE_PAGES)) {
                        pthread_mutex_unlock(&b->lock);
                        checkpoint(b);
                        heartbeat_beat();
                        pthread_mutex_lock(&b->lock);
                        continue;
                }
                heartbeat_idle(true);
                for (;;) {
                        if (b->head || b->stopping || (b->abandon && b->held))
                                break;
                        int64_t now = now_mono_ms();
                        bool deferred = b->deferred && b->healthy;
                        if ((deferred && now >= b->defer_until) || (!b->healthy && now >= next_retry))
                                break;
                        if (b->healthy && !deferred) {
                                pthread_cond_wait(&b->cond, &b->lock);
                        } else {
                                struct timespec ts = timespec_in(CLOCK_MONOTONIC, deferred ? b->defer_until - now : 200);
                                pthread_cond_timedwait(&b->cond, &b->lock, &ts);
                        }
                }
                heartbeat_idle(false);
                if (b->stopping && !b->head) {
                        /* What was answered lazily is kept across a stop. */
                        if (b->deferred) {
                                pthread_mutex_unlock(&b->lock);
                                commit_batch(b, NULL, true, NULL);
                                pthread_mutex_lock(&b->lock);
                        }
                        break;
                }
                bool abandon = b->abandon;
                /* Take what waits, up to BATCH_MAX writes. */
                struct store_write *batch = b->head, *last = b->head;
                size_t n = batch ? 1 : 0;
                while (last && last->next && n < BATCH_MAX) {
                        last = last->next;
                        n++;
                }
                if (last) {
                        b->head = last->next;
                        if (!b->head)
                                b->tail = NULL;
                        last->next = NULL;
                }
                bool healthy = b->healthy;
                /* From here the batch's writes are in no queue: nothing may
                 * be merged into a kept insert they come after (queued_for
                 * would not see them) until commit_batch() is done. */
                if (healthy && batch)
                        b->committing = true;
                bool deferred = b->deferred != NULL;
                bool retry_due = !healthy && now_mono_ms() >= next_retry;
                char reason[512];
                snprintf(reason, sizeof reason, "%s", b->reason);
                pthread_mutex_unlock(&b->lock);

                if (abandon) {
                        /* Stopping: no more waiting for another process's
                         * lock either. */
                        sqlite3_busy_timeout(b->w, 0);
                        char why[600];
                        snprintf(why, sizeof why, "gave up writing it: %s", reason);
                        fail_all(take_held(b), why);
                }
                if (!healthy && retry_due) {
                        /* Once a second: the held writes on their own (the
                         * store is healthy again only when they fit), else
                         * a probe. */
                        next_retry = now_mono_ms() + RETRY_MS;
                        struct store_write *held = take_held(b);
                        if (held) {
                                /* One transaction each: one that does not
                                 * fit (a large result) holds up no other. */
                                bool all = true;
                                struct store_write *committed = NULL, **tail = &committed;
                                for (struct store_write *w = held, *next; w; w = next) {
                                        heartbeat_beat();   /* each its own commit and fsync */
                                        next = w->next;
                                        w->next = NULL;
                                        if (w->kind == STORE_SYNC && !probe(b)) {
                                                /* Its small write says too little
                                                 * of a full disk: the probe's does. */
                                                struct err failure;
                                                err_set(&failure, ERR_UNAVAILABLE, 0,
                                                        "the job store cannot write (its probe failed)");
                                                hold_or_fail(b, w, &failure);
                                                all = false;
                                                continue;
                                        }
                                        all &= commit_batch(b, w, false, &tail);
                                }
                                if (all) {
                                        set_health(b, true, NULL);
                                } else {
                                        /* Give back what the failed ones
                                         * wrote to the WAL, if it can be. */
                                        struct err ignored = ERR_INIT;
                                        exec(b->w, "PRAGMA wal_checkpoint(TRUNCATE)", &ignored);
                                        set_health(b, false, b->last_failure);
                                }
                                for (struct store_write *w = committed, *next; w; w = next) {
                                        next = w->next;
                                        w->next = NULL;
                                        finish_write(w, w->err.code ? &w->err : NULL);
                                }
                        } else if (deferred) {
                                /* What was answered before the failure is
                                 * the probe: a smaller write could fit where
                                 * it does not. */
                                struct store_write *none = NULL, **tail = &none;
                                if (commit_batch(b, NULL, false, &tail))
                                        set_health(b, true, NULL);
                                else
                                        set_health(b, false, b->last_failure);
                        } else if (probe(b)) {
                                set_health(b, true, NULL);
                        }
                        pthread_mutex_lock(&b->lock);
                        healthy = b->healthy;
                        snprintf(reason, sizeof reason, "%s", b->reason);
                        pthread_mutex_unlock(&b->lock);
                }
                if (!healthy) {
                        /* Inserts are refused at once; transitions wait. */
                        struct err failure;
                        err_set(&failure, ERR_UNAVAILABLE, 0, "the job store cannot write: %s", reason);
                        for (struct store_write *w = batch, *next; w; w = next) {
                                next = w->next;
                                hold_or_fail(b, w, &failure);
                        }
                } else if (batch) {
                        commit_batch(b, batch, true, NULL);
                }
                /* Lazy writes at their deadline: committed now. */
                pthread_mutex_lock(&b->lock);
                bool due = b->healthy && b->deferred && now_mono_ms() >= b->defer_until;
                pthread_mutex_unlock(&b->lock);
                if (due)
                        commit_batch(b, NULL, true, NULL);
                pthread_mutex_lock(&b->lock);
        }
        /* Closing: what could not be written fails now. */
        pthread_mutex_unlock(&b->lock);
        struct deferred *lost = defer_take(b);
        size_t n_lost = 0;
        for (struct deferred *d = lost; d; d = d->next)
                n_lost++;
        if (n_lost)
                log_error("store: %s: %zu jobs submitted with ?wait could not be kept (the store cannot write)",
                          b->path, n_lost);
        defer_free(lost);
        fail_all(take_held(b), "closed before it could write");
        heartbeat_idle(true);   /* ended: not judged */
        return NULL;
}

static void sqlite_write(struct store_backend *b, struct store_write *w)
{
        w->next = NULL;
        pthread_mutex_lock(&b->lock);
        if (b->stopping) {
                pthread_mutex_unlock(&b->lock);
                struct err e;
                err_set(&e, ERR_UNAVAILABLE, 0, "the job store is closing");
                finish_write(w, &e);
                return;
        }
        if (w->kind == STORE_INSERT && !b->healthy) {
                char reason[512];
                snprintf(reason, sizeof reason, "%s", b->reason);
                pthread_mutex_unlock(&b->lock);
                struct err e;
                err_set(&e, ERR_UNAVAILABLE, 0, "the job store cannot write: %s", reason);
                finish_write(w, &e);
                return;
        }
        if (b->healthy && defer_write(b, w)) {
                b->stats.writes++;
                b->stats.deferred_writes += w->items[0].outcome == STORE_ITEM_OK;
                pthread_mutex_unlock(&b->lock);
                finish_write(w, NULL);
                return;
        }
        w->carried = b->healthy && carry_write(b, w);
        if (b->tail)
                b->tail->next = w;
        else
                b->head = w;
        b->tail = w;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
}

/* ---- readers ---- */

static struct reader *reader_take(struct store_backend *b, struct err *err)
{
        pthread_mutex_lock(&b->rlock);
        for (;;) {
                for (size_t i = 0; i < READERS; i++) {
                        struct reader *r = &b->readers[i];
                        if (r->busy)
                                continue;
                        if (!r->db) {
                                /* Read-write but query_only: a read-only
                                 * connection could not recover a WAL index. */
                                if (open_conn(b->path, false, &r->db, err) < 0 ||
                                    exec(r->db, "PRAGMA query_only=1", err) < 0) {
                                        sqlite3_close(r->db);
                                        r->db = NULL;
                                        pthread_mutex_unlock(&b->rlock);
                                        return NULL;
                                }
                        }
                        r->busy = true;
                        pthread_mutex_unlock(&b->rlock);
                        return r;
                }
                pthread_cond_wait(&b->rcond, &b->rlock);
        }
}

static void reader_give(struct store_backend *b, struct reader *r)
{
        pthread_mutex_lock(&b->rlock);
        r->busy = false;
        pthread_cond_signal(&b->rcond);
        pthread_mutex_unlock(&b->rlock);
}

/* One statement per `what`: SQLite reads every column a statement names,
 * so a plain get never touches the parameters or the result.  Parameters
 * written a piece at a time (a large BLOB) are not read as a column: NULL
 * there, and their seq and length say where to stream them from
 * (length() of a BLOB reads no content). */
#define PARAMS_COLUMNS \
        "CASE WHEN typeof(d.params) = 'blob' AND length(d.params) > 1048576 THEN NULL ELSE d.params END, " \
        "d.seq, length(d.params)"
static const char *const SQL_GET[4] = {
        "SELECT " COLUMNS " FROM jobs WHERE id = ?1",
        "SELECT " COLUMNS ", " PARAMS_COLUMNS " FROM jobs LEFT JOIN job_data d USING (seq) WHERE id = ?1",
        "SELECT " COLUMNS ", d.result FROM jobs LEFT JOIN job_data d USING (seq) WHERE id = ?1",
        "SELECT " COLUMNS ", " PARAMS_COLUMNS ", d.result FROM jobs LEFT JOIN job_data d USING (seq) WHERE id = ?1",
};

/* Large parameters (written a piece at a time: a BLOB) are read the same
 * way, into an unnamed file in dir, and handed over as a read-only
 * mapping of it: no heap copy of them, and the file is gone with the
 * mapping: the row's job_data `seq`, `len` bytes.  0, or -1 on error. */
static int params_mapped(sqlite3 *db, const char *dir, sqlite3_int64 seq, sqlite3_int64 len,
                         struct job_record *ret, struct err *err)
{
        int rc;
        _cleanup_close_ int fd = open_unnamed(dir);
        if (fd < 0)
                return err_errno(err, ERR_IO, "read job parameters: a file in `%s`", dir);
        sqlite3_blob *b = NULL;
        rc = sqlite3_blob_open(db, "main", "job_data", "params", seq, 0, &b);
        _cleanup_free_ char *piece = rc == SQLITE_OK ? xmalloc(PARAMS_PIECE) : NULL;
        for (sqlite3_int64 off = 0; rc == SQLITE_OK && off < len; off += (sqlite3_int64)PARAMS_PIECE) {
                int n = (int)(len - off < (sqlite3_int64)PARAMS_PIECE ? len - off : (sqlite3_int64)PARAMS_PIECE);
                rc = sqlite3_blob_read(b, piece, n, (int)off);
                if (rc == SQLITE_OK && !write_full(fd, piece, (size_t)n)) {
                        sqlite3_blob_close(b);
                        return err_errno(err, ERR_IO, "read job parameters: write `%s`", dir);
                }
        }
        int crc = sqlite3_blob_close(b);
        if (rc == SQLITE_OK)
                rc = crc;
        if (rc != SQLITE_OK)
                return sql_err(err, db, rc, "read job parameters");
        void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return err_errno(err, ERR_IO, "read job parameters: map them");
        ret->params = m;
        ret->params_len = (size_t)len;
        ret->params_mapped = true;
        return 0;
}

static int sqlite_get(struct store_backend *b, const char *id, unsigned what, struct job_record *ret,
                      struct err *err)
{
        struct reader *r = reader_take(b, err);
        if (!r)
                return -1;
        int rv = 0;
        what &= STORE_READ_PARAMS | STORE_READ_RESULT;
        sqlite3_int64 big_seq = 0, big_len = 0;
        sqlite3_stmt *st = stmt(r->db, SQL_GET[what], err);
        if (!st) {
                rv = -1;
        } else {
                bind_str(st, 1, id);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        row_to_record(st, ret);
                        int col = NCOLUMNS;
                        if (what & STORE_READ_PARAMS) {
                                ret->params = column_dup(st, col, &ret->params_len);
                                if (!ret->params && sqlite3_column_type(st, col + 2) != SQLITE_NULL) {
                                        big_seq = sqlite3_column_int64(st, col + 1);
                                        big_len = sqlite3_column_int64(st, col + 2);
                                }
                                col += 3;
                        }
                        if (what & STORE_READ_RESULT)
                                ret->result = column_dup(st, col, &ret->result_len);
                } else if (rc == SQLITE_DONE) {
                        rv = err_set(err, ERR_NOT_FOUND, 0, "no job `%.64s`", id);
                } else {
                        rv = sql_err(err, r->db, rc, "read job");
                }
                sqlite3_reset(st);
        }
        if (rv == 0 && big_len > 0 && params_mapped(r->db, b->dir, big_seq, big_len, ret, err) < 0) {
                record_clear(ret);
                rv = -1;
        }
        reader_give(b, r);
        return rv;
}

/* length() of a BLOB (a large result, streamed in) is read from the row
 * without its content; of a text (1 MiB at most) it counts characters,
 * at most its bytes. */
static int sqlite_result_size(struct store_backend *b, const char *id, size_t *ret_len, struct err *err)
{
        struct reader *r = reader_take(b, err);
        if (!r)
                return -1;
        int rv = 0;
        sqlite3_stmt *st = stmt(r->db, "SELECT length(d.result) FROM jobs LEFT JOIN job_data d USING (seq) "
                                "WHERE id = ?1", err);
        if (!st) {
                rv = -1;
        } else {
                bind_str(st, 1, id);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        *ret_len = (size_t)sqlite3_column_int64(st, 0);
                else if (rc == SQLITE_DONE)
                        rv = err_set(err, ERR_NOT_FOUND, 0, "no job `%.64s`", id);
                else
                        rv = sql_err(err, r->db, rc, "read the size of a job's result");
                sqlite3_reset(st);
        }
        reader_give(b, r);
        return rv;
}

/* A listed record's result, read once admitted by its size (the list's
 * statement reads length() alone): on the list's own connection, so from
 * the same snapshot while that statement is stepping. */
static int list_result(sqlite3 *db, sqlite3_int64 seq, struct job_record *rec, struct err *err)
{
        sqlite3_stmt *st = stmt(db, "SELECT result FROM job_data WHERE seq = ?1", err);
        if (!st)
                return -1;
        sqlite3_bind_int64(st, 1, seq);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                rec->result = column_dup(st, 0, &rec->result_len);
        sqlite3_reset(st);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_err(err, db, rc, "list jobs: read a result");
}

static int sqlite_list(struct store_backend *b, const struct store_filter *f,
                       bool (*admit)(size_t result_len, void *ctx),
                       bool (*fn)(const struct job_record *r, void *ctx), void *ctx, struct err *err)
{
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        int rv = 0;
        int64_t before = INT64_MAX;
        if (f->after) {
                sqlite3_stmt *st = stmt(rd->db, "SELECT seq FROM jobs WHERE id = ?1", err);
                if (!st) {
                        reader_give(b, rd);
                        return -1;
                }
                bind_str(st, 1, f->after);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        before = sqlite3_column_int64(st, 0);
                else
                        rv = err_set(err, ERR_NOT_FOUND, 0, "no job `%.64s` to list after", f->after);
                sqlite3_reset(st);
        }
        /* One statement per filter shape, so each uses its index.  With
         * results, a row carries its result's seq and length() (of a BLOB,
         * read without its content): the result itself is read after
         * admit(), not by the step (SQLite reads every column a statement
         * names, a page of large results all of them). */
#define RESULT_SIZE_COLUMNS ", seq, length(d.result) FROM jobs LEFT JOIN job_data d USING (seq) "
        static const char *const shapes[4] = {
                "SELECT " COLUMNS RESULT_SIZE_COLUMNS "WHERE seq < ?1 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS RESULT_SIZE_COLUMNS "WHERE seq < ?1 AND status = ?2 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS RESULT_SIZE_COLUMNS "WHERE seq < ?1 AND algorithm = ?3 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS RESULT_SIZE_COLUMNS "WHERE seq < ?1 AND status = ?2 AND algorithm = ?3 "
                "ORDER BY seq DESC LIMIT ?4",
        };
#undef RESULT_SIZE_COLUMNS
        static const char *const shapes_nores[4] = {
                "SELECT " COLUMNS " FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS " FROM jobs WHERE seq < ?1 AND status = ?2 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS " FROM jobs WHERE seq < ?1 AND algorithm = ?3 ORDER BY seq DESC LIMIT ?4",
                "SELECT " COLUMNS " FROM jobs WHERE seq < ?1 AND status = ?2 AND algorithm = ?3 "
                "ORDER BY seq DESC LIMIT ?4",
        };
        int shape = (f->status >= 0 ? 1 : 0) | (f->algorithm ? 2 : 0);
        sqlite3_stmt *st = rv ? NULL : stmt(rd->db, f->with_result ? shapes[shape] : shapes_nores[shape], err);
        if (!rv && !st)
                rv = -1;
        if (st) {
                sqlite3_bind_int64(st, 1, before);
                sqlite3_bind_int(st, 2, f->status);
                bind_str(st, 3, f->algorithm);
                sqlite3_bind_int64(st, 4, (int64_t)f->limit + 1);
                int rc;
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        struct job_record rec;
                        row_to_record(st, &rec);
                        /* Only a succeeded job's result is shown. */
                        bool go_on = true;
                        if (f->with_result && rec.status == JOB_SUCCEEDED &&
                            sqlite3_column_type(st, NCOLUMNS + 1) != SQLITE_NULL) {
                                sqlite3_int64 len = sqlite3_column_int64(st, NCOLUMNS + 1);
                                go_on = admit((size_t)(len > 0 ? len : 0), ctx);
                                if (go_on && list_result(rd->db, sqlite3_column_int64(st, NCOLUMNS), &rec, err) < 0)
                                        rv = -1;
                        }
                        if (go_on && rv == 0)
                                go_on = fn(&rec, ctx);
                        record_clear(&rec);
                        if (!go_on || rv < 0)
                                break;
                }
                if (rv == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
                        rv = sql_err(err, rd->db, rc, "list jobs");
                sqlite3_reset(st);
        }
        reader_give(b, rd);
        return rv;
}

static int sqlite_find_key(struct store_backend *b, const char *key, const char *hash,
                           enum store_item_outcome *ret_outcome, char ret_id[JOB_ID_LEN + 1], struct err *err)
{
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        int rv = 0;
        sqlite3_stmt *st = stmt(rd->db, SQL_FIND_KEY, err);
        if (!st) {
                rv = -1;
        } else {
                bind_str(st, 1, key);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        /* As apply_insert() decides it. */
                        const char *h = (const char *)sqlite3_column_text(st, 0);
                        const char *id = (const char *)sqlite3_column_text(st, 1);
                        *ret_outcome = h && hash && !strcmp(h, hash) ? STORE_ITEM_REPLAYED : STORE_ITEM_CONFLICT;
                        snprintf(ret_id, JOB_ID_LEN + 1, "%s", id ? id : "");
                        rv = 1;
                } else if (rc != SQLITE_DONE) {
                        rv = sql_err(err, rd->db, rc, "find idempotency key");
                }
                sqlite3_reset(st);
        }
        reader_give(b, rd);
        return rv;
}

static int sqlite_load_unfinished(struct store_backend *b, void (*fn)(struct job_record *r, void *ctx),
                                  void *ctx, struct err *err)
{
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        int rv = 0;
        sqlite3_stmt *st = stmt(rd->db, "SELECT " COLUMNS " FROM jobs WHERE status < 2 ORDER BY seq", err);
        if (!st) {
                rv = -1;
        } else {
                int rc;
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        struct job_record rec;
                        row_to_record(st, &rec);
                        fn(&rec, ctx);
                        record_clear(&rec);
                }
                if (rc != SQLITE_DONE)
                        rv = sql_err(err, rd->db, rc, "load unfinished jobs");
                sqlite3_reset(st);
        }
        reader_give(b, rd);
        return rv;
}

static void sqlite_abandon(struct store_backend *b)
{
        pthread_mutex_lock(&b->lock);
        b->abandon = true;
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
}

static size_t sqlite_count(struct store_backend *b)
{
        pthread_mutex_lock(&b->lock);
        size_t n = b->count;
        pthread_mutex_unlock(&b->lock);
        return n;
}

static bool sqlite_health(struct store_backend *b, char *reason, size_t len)
{
        pthread_mutex_lock(&b->lock);
        bool h = b->healthy;
        if (!h && reason)
                snprintf(reason, len, "%s", b->reason);
        pthread_mutex_unlock(&b->lock);
        return h;
}

static void sqlite_stats(struct store_backend *b, struct store_stats *ret)
{
        pthread_mutex_lock(&b->lock);
        *ret = b->stats;
        pthread_mutex_unlock(&b->lock);
}

static int sqlite_check(struct store_backend *b, struct err *err)
{
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        sqlite3_stmt *st = NULL;
        int rv = 0;
        if (sqlite3_prepare_v2(rd->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
                rv = sql_err(err, rd->db, sqlite3_errcode(rd->db), "integrity_check");
        } else if (sqlite3_step(st) != SQLITE_ROW) {
                rv = sql_err(err, rd->db, sqlite3_errcode(rd->db), "integrity_check");
        } else {
                const char *v = (const char *)sqlite3_column_text(st, 0);
                if (!v || strcmp(v, "ok"))
                        rv = err_set(err, ERR_IO, 0, "%s: integrity_check: %s", b->path, v ? v : "?");
        }
        sqlite3_finalize(st);
        reader_give(b, rd);
        return rv;
}

/* The receivers passed over, as a JSON array for json_each() (caller
 * frees); NULL if one is not UTF-8. */
static char *except_json(const char *const *except, size_t n_except, struct err *err)
{
        json_t *ex = json_array();
        for (size_t i = 0; i < n_except; i++)
                json_array_append_new(ex, json_string(except[i]));
        char *text = json_dumps(ex, JSON_COMPACT);
        json_decref(ex);
        if (!text)
                err_set(err, ERR_INVALID, 0, "read pending callbacks: a receiver that is not UTF-8");
        return text;
}

/* The rows (id, cb_next_ms, callback_url) of sql with ?1 = a1, ?2 = a2
 * and ?3 the receivers left out, into ret: at most max, *ret_n of them. */
static int read_due(struct store_backend *b, const char *sql, int64_t a1, int64_t a2, const char *const *except,
                    size_t n_except, struct store_due *ret, size_t max, size_t *ret_n, struct err *err)
{
        *ret_n = 0;
        _cleanup_free_ char *ex_text = except_json(except, n_except, err);
        if (!ex_text)
                return -1;
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        int rv = 0;
        sqlite3_stmt *st = stmt(rd->db, sql, err);
        if (!st) {
                rv = -1;
        } else {
                sqlite3_bind_int64(st, 1, a1);
                sqlite3_bind_int64(st, 2, a2);
                sqlite3_bind_text(st, 3, ex_text, -1, SQLITE_STATIC);
                int rc = SQLITE_DONE;
                while (*ret_n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                        const char *id = (const char *)sqlite3_column_text(st, 0);
                        snprintf(ret[*ret_n].id, sizeof ret[*ret_n].id, "%s", id ? id : "");
                        ret[*ret_n].next_ms = sqlite3_column_int64(st, 1);
                        const char *url = (const char *)sqlite3_column_text(st, 2);
                        snprintf(ret[*ret_n].url, sizeof ret[*ret_n].url, "%s", url ? url : "");
                        (*ret_n)++;
                }
                if (*ret_n < max && rc != SQLITE_DONE)
                        rv = sql_err(err, rd->db, rc, "read pending callbacks");
                sqlite3_reset(st);
        }
        reader_give(b, rd);
        return rv;
}

static int sqlite_callbacks_due(struct store_backend *b, struct store_due *ret, size_t max, size_t skip,
                                const char *const *except, size_t n_except, size_t *ret_n, struct err *err)
{
        /* In the index's order (jobs_callbacks_due): a receiver's rows
         * left out are passed over in the index alone.  A row from before
         * receivers were recorded (NULL) is not left out here; the caller
         * checks every row's receiver anyway. */
        return read_due(b,
                        "SELECT id, cb_next_ms, callback_url FROM jobs "
                        "WHERE cb_state = 0 AND status >= 2 "
                        "AND (cb_dest IS NULL OR cb_dest NOT IN (SELECT value FROM json_each(?3))) "
                        "ORDER BY max(cb_next_ms, finished_ms), cb_dest, seq LIMIT ?1 OFFSET ?2",
                        (int64_t)max, (int64_t)skip, except, n_except, ret, max, ret_n, err);
}

static int sqlite_callbacks_ended_ahead(struct store_backend *b, struct store_due *ret, size_t max, int64_t now_ms,
                                        int64_t ahead_ms, const char *const *except, size_t n_except,
                                        size_t *ret_n, struct err *err)
{
        /* By jobs_by_finish: past now, there is nothing but after a step. */
        if (read_due(b,
                     "SELECT id, cb_next_ms, callback_url FROM jobs "
                     "WHERE status >= 2 AND finished_ms > ?2 AND cb_state = 0 AND cb_attempts = 0 "
                     "AND (cb_dest IS NULL OR cb_dest NOT IN (SELECT value FROM json_each(?3))) "
                     "ORDER BY finished_ms LIMIT ?1",
                     (int64_t)max, now_ms, except, n_except, ret, max, ret_n, err) < 0)
                return -1;
        if (*ret_n == max)
                return 0;
        /* By jobs_callbacks_due, whose order is the retry's time here:
         * past the longest backoff, there is nothing but after a step. */
        size_t more = 0;
        int rv = read_due(b,
                          "SELECT id, cb_next_ms, callback_url FROM jobs "
                          "WHERE cb_state = 0 AND status >= 2 AND max(cb_next_ms, finished_ms) > ?2 "
                          "AND cb_next_ms > ?2 "
                          "AND (cb_dest IS NULL OR cb_dest NOT IN (SELECT value FROM json_each(?3))) "
                          "ORDER BY max(cb_next_ms, finished_ms), cb_dest, seq LIMIT ?1",
                          (int64_t)(max - *ret_n), ahead_ms, except, n_except, ret + *ret_n, max - *ret_n, &more,
                          err);
        *ret_n += more;
        return rv;
}

static int sqlite_callbacks_pending(struct store_backend *b, const char *dest, size_t max, size_t *ret_n,
                                   struct err *err)
{
        *ret_n = 0;
        struct reader *rd = reader_take(b, err);
        if (!rd)
                return -1;
        int rv = 0;
        /* By jobs_callbacks_by_dest, and no further than max: a dead
         * receiver's backlog is not counted whole at every submit. */
        sqlite3_stmt *st = stmt(rd->db, "SELECT count(*) FROM (SELECT 1 FROM jobs "
                                "WHERE cb_state = 0 AND cb_dest = ?1 LIMIT ?2)", err);
        if (!st) {
                rv = -1;
        } else {
                bind_str(st, 1, dest);
                sqlite3_bind_int64(st, 2, (int64_t)max);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        *ret_n = (size_t)sqlite3_column_int64(st, 0);
                else
                        rv = sql_err(err, rd->db, rc, "count pending callbacks");
                sqlite3_reset(st);
        }
        reader_give(b, rd);
        return rv;
}

static void close_conn(sqlite3 *db)
{
        if (!db)
                return;
        sqlite3_stmt *st;
        while ((st = sqlite3_next_stmt(db, NULL)))
                sqlite3_finalize(st);
        sqlite3_close(db);
}

static void sqlite_close(struct store_backend *b)
{
        if (!b)
                return;
        if (b->thread_started) {
                pthread_mutex_lock(&b->lock);
                b->stopping = true;
                pthread_cond_broadcast(&b->cond);
                pthread_mutex_unlock(&b->lock);
                pthread_join(b->thread, NULL);
        }
        heartbeat_unwatch(&b->hb);
        for (size_t i = 0; i < READERS; i++)
                close_conn(b->readers[i].db);
        if (b->w) {
                /* A clean close checkpoints and removes the WAL. */
                close_conn(b->w);
        }
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        pthread_mutex_destroy(&b->rlock);
        pthread_cond_destroy(&b->rcond);
        free(b->dir);
        free(b->path);
        free(b);
}

/* The WAL made as long as it grows between the writer's checkpoints, with
 * zeros past SQLite's frames (which it reads as the log's end), so that a
 * commit writes blocks the file has: an fdatasync that changes the file's
 * size commits the filesystem's journal too.  Measured in the QEMU VM, a
 * job's final commit took 8.8 ms (median) on a WAL that grew against 2.9
 * on one made so; SQLite deletes the WAL at each clean stop, and after a
 * start every commit grew it until the first checkpoint.  Only here, before
 * the writer's thread and any reader, and under the WAL's write lock.  Not
 * on a tmpfs (no disk, no journal) nor where the disk is short of room; a
 * failure is a warning, and the file gets its length back.  A full disk
 * is then told by the first commit past these blocks, not before it. */
static void wal_prefill(struct store_backend *b)
{
        int64_t page = pragma_int(b->w, "PRAGMA page_size");
        if (page <= 0)
                return;
        off_t want = WAL_HEADER_BYTES + (off_t)(CHECKPOINT_PAGES + WAL_SLACK_PAGES) * (page + WAL_FRAME_HEADER_BYTES);
        if (want > WAL_SIZE_LIMIT)
                want = WAL_SIZE_LIMIT;   /* SQLite would cut it back to this */
        /* The WAL's write lock: no other connection (a sqlite3 shell,
         * another process) appends frames under the zeros meanwhile. */
        struct err ignored = ERR_INIT;
        if (exec(b->w, "BEGIN IMMEDIATE", &ignored) < 0)
                return;
        const char *wal = sqlite3_filename_wal(sqlite3_db_filename(b->w, "main"));
        _cleanup_close_ int fd = wal ? open(wal, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
        struct stat st;
        struct statfs fs;
        struct statvfs vfs;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= want ||
            fstatfs(fd, &fs) < 0 || fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC ||
            fstatvfs(fd, &vfs) < 0 || (uint64_t)vfs.f_bavail * vfs.f_frsize < (uint64_t)want * 8) {
                exec(b->w, "ROLLBACK", &ignored);
                return;
        }
        static const char zeros[64 * 1024];
        int e = 0;
        for (off_t at = st.st_size; at < want && !e;) {
                size_t n = want - at < (off_t)sizeof zeros ? (size_t)(want - at) : sizeof zeros;
                ssize_t w = pwrite(fd, zeros, n, at);
                if (w < 0 && errno != EINTR)
                        e = errno;
                else if (w == 0)
                        e = EIO;
                else if (w > 0)
                        at += w;
        }
        if (!e && fdatasync(fd) < 0)
                e = errno;
        if (e) {
                log_warn("store: %s: could not make the WAL %lld bytes ahead (%s); commits grow it as they go",
                         wal, (long long)want, strerror(e));
                if (ftruncate(fd, st.st_size) < 0)
                        log_warn("store: %s: could not give it back its length: %s", wal, strerror(errno));
        }
        exec(b->w, "ROLLBACK", &ignored);
}

static int sqlite_open(const char *state_dir, struct store_backend **ret, struct err *err)
{
        struct store_backend *b = xcalloc(1, sizeof *b);
        b->path = xasprintf("%s/%s", state_dir, DB_NAME);
        b->dir = xstrdup(state_dir);
        b->healthy = true;
        b->deferred_tail = &b->deferred;
        pthread_mutex_init(&b->lock, NULL);
        cond_init_monotonic(&b->cond);   /* the writer's deadlines */
        pthread_mutex_init(&b->rlock, NULL);
        pthread_cond_init(&b->rcond, NULL);
        if (open_conn(b->path, false, &b->w, err) < 0 || migrate(b, err) < 0) {
                sqlite_close(b);
                return -1;
        }
        wal_prefill(b);
        int64_t n = pragma_int(b->w, "SELECT count(*) FROM jobs");
        b->count = n > 0 ? (size_t)n : 0;
        /* Checkpoints are the writer's, between commits (checkpoint()). */
        sqlite3_wal_autocheckpoint(b->w, 0);
        sqlite3_wal_hook(b->w, wal_hook, b);
        sqlite3_progress_handler(b->w, 4096, beat_while_stepping, NULL);
        /* A writer stuck in a write (a disk that hangs) holds every
         * submit and every job's end: the watchdog judges it too. */
        heartbeat_watch(&b->hb, "the store's writer");
        int e = thread_start(&b->thread, "edgecd-store", writer_main, b);
        if (e) {
                sqlite_close(b);
                return err_set(err, ERR_INTERNAL, e, "store: start the writer thread");
        }
        b->thread_started = true;
        *ret = b;
        return 0;
}

const struct store_ops store_sqlite_ops = {
        .name = "sqlite",
        .open = sqlite_open,
        .close = sqlite_close,
        .write = sqlite_write,
        .get = sqlite_get,
        .result_size = sqlite_result_size,
        .list = sqlite_list,
        .load_unfinished = sqlite_load_unfinished,
        .find_key = sqlite_find_key,
        .abandon = sqlite_abandon,
        .count = sqlite_count,
        .health = sqlite_health,
        .stats = sqlite_stats,
        .check = sqlite_check,
        .callbacks_due = sqlite_callbacks_due,
        .callbacks_ended_ahead = sqlite_callbacks_ended_ahead,
        .callbacks_pending = sqlite_callbacks_pending,
};
