/* test-store.c - the job store through its interface (store.h), so that
 * every backend passes the same cases: `backends` lists them (for now
 * SQLite; a PostgreSQL backend adds a row with its own hooks for the
 * schema-version and fail-stop cases) and each backend gets a TCase of its
 * own, named after it, running every case.
 *
 * Cases: open creates the database and a reopen sees the same records;
 * schema versions (opening twice is fine, a newer schema is refused and
 * left alone); insert and get return every field as written (also for a
 * record inserted final), a duplicate id is refused; many records in one
 * write; idempotency keys (replay, conflict, within one write, concurrent,
 * after a reopen, never a replay to a pruned record); conditional updates
 * (expect_status), several in one write, and what an update never changes;
 * results byte-exact; store_list (newest first, filters, limit, max_bytes
 * and `after` pages, equal creation times, an unknown `after`, results
 * spliced or null); load_unfinished; prune by finish time and by count,
 * with the logs of the pruned records only, in bounded steps, two prune
 * writes in one commit; a failed write leaves nothing; async writes from 8
 * threads and the group-commit counters; store_close waiting for writes in
 * flight; fail-stop (a commit that fails: unhealthy, inserts refused,
 * reads go on, updates held and applied later or failed at close); check
 * and health; the backend's operations table used directly; callbacks (their
 * state written apart from the job's, what is due) and the migration of a
 * version 2 database.  Then the
 * record helpers (record_render, record_attempt_count,
 * record_end_last_attempt, the name tables).
 *
 * Each case gets a fresh state dir (with a logs dir inside) under a base
 * dir that an unchecked fixture makes and removes. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>
#include <uuid/uuid.h>

#include "base/util.h"
#include "store/record.h"
#include "store/store.h"

#define T0 1700000000000LL   /* 2023-11-14T22:13:20Z: creation times count from here */

/* ---- backends ---- */

struct backend {
        const char *name;                 /* store_open's */
        const struct store_ops *ops;
        /* Is there a database for state_dir (after an open)? */
        bool (*db_exists)(const char *state_dir);
        /* The schema version the database records. */
        int64_t (*schema_version)(const char *state_dir);
        /* Record `version` as the schema version, as a newer edgecd would
         * leave it. */
        void (*set_schema_version)(const char *state_dir, int64_t version);
        /* Make commits fail as a full disk would, and work again (NULL:
         * the fail-stop cases are skipped).  No Check assertion may run
         * between the two (see sqlite_break_writes). */
        bool (*break_writes)(const char *state_dir);
        bool (*mend_writes)(const char *state_dir);
};

/* The SQLite database of a state dir: the file that starts with SQLite's
 * header, found in state_dir or a directory below it (caller frees; NULL
 * when none). */
static char *sqlite_find_db(const char *dir, int depth)
{
        DIR *d = opendir(dir);
        if (!d)
                return NULL;
        char *found = NULL;
        struct dirent *e;
        while (!found && (e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char *p = xasprintf("%s/%s", dir, e->d_name);
                struct stat st;
                if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth > 0) {
                        found = sqlite_find_db(p, depth - 1);
                } else if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                        char head[16] = { 0 };
                        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd >= 0) {
                                if (read(fd, head, sizeof head) == (ssize_t)sizeof head &&
                                    !memcmp(head, "SQLite format 3", 16))
                                        found = TAKE_PTR(p);
                                close(fd);
                        }
                }
                free(p);
        }
        closedir(d);
        return found;
}

static bool sqlite_db_exists(const char *state_dir)
{
        char *p = sqlite_find_db(state_dir, 2);
        free(p);
        return p != NULL;
}

static sqlite3 *sqlite_open_db(const char *state_dir)
{
        char *p = sqlite_find_db(state_dir, 2);
        ck_assert_msg(p, "no SQLite database under %s", state_dir);
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE, NULL);
        ck_assert_msg(rc == SQLITE_OK, "sqlite3_open_v2 %s: %s", p, sqlite3_errstr(rc));
        free(p);
        sqlite3_busy_timeout(db, 5000);
        return db;
}

static int64_t sqlite_schema_version(const char *state_dir)
{
        sqlite3 *db = sqlite_open_db(state_dir);
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static void sqlite_set_schema_version(const char *state_dir, int64_t version)
{
        sqlite3 *db = sqlite_open_db(state_dir);
        char *sql = xasprintf("PRAGMA user_version = %lld", (long long)version);
        char *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        free(sql);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* EXPLAIN QUERY PLAN of sql, its details one a line. */
static char *sqlite_plan(const char *state_dir, const char *sql)
{
        sqlite3 *db = sqlite_open_db(state_dir);
        char *q = xasprintf("EXPLAIN QUERY PLAN %s", sql), *plan = xstrdup("");
        sqlite3_stmt *st = NULL;
        ck_assert_msg(sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK, "%s: %s", q, sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW) {
                char *more = xasprintf("%s%s\n", plan, (const char *)sqlite3_column_text(st, 3));
                free(plan);
                plan = more;
        }
        sqlite3_finalize(st);
        free(q);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        return plan;
}

/* A file size limit of 4 kB: every commit fails with EFBIG as on a full
 * disk (a WAL frame never fits below it).  Check's assertions write to a
 * message file too, so none may run until writes are mended: these hooks
 * report instead (false on failure), and callers assert afterwards.  The
 * forked test process has the limit alone. */
static bool sqlite_break_writes(const char *state_dir)
{
        (void)state_dir;
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
                return false;
        rl.rlim_cur = 4096;
        return setrlimit(RLIMIT_FSIZE, &rl) == 0;
}

static bool sqlite_mend_writes(const char *state_dir)
{
        (void)state_dir;
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
                return false;
        rl.rlim_cur = rl.rlim_max;
        return setrlimit(RLIMIT_FSIZE, &rl) == 0;
}

static const struct backend backends[] = {
        { "sqlite", &store_sqlite_ops, sqlite_db_exists, sqlite_schema_version, sqlite_set_schema_version,
          sqlite_break_writes, sqlite_mend_writes },
};

/* ---- fixture: a state dir with logs/ and an open store ---- */

struct fx {
        const struct backend *be;
        char *dir, *logs;
        struct store *s;
};

static void fx_open_store(struct fx *f)
{
        struct err err = ERR_INIT;
        f->s = NULL;
        ck_assert_msg(store_open(f->be->name, f->dir, f->logs, &f->s, &err) == 0,
                      "%s: store_open %s: %s", f->be->name, f->dir, err.msg);
        ck_assert_ptr_nonnull(f->s);
}

static void fx_setup(struct fx *f, int backend)
{
        ck_assert_int_lt(backend, (int)ARRAY_SIZE(backends));
        f->be = &backends[backend];
        f->dir = tu_test_dir();
        f->logs = xasprintf("%s/logs", f->dir);
        ck_assert_int_eq(mkdir(f->logs, 0700), 0);
        fx_open_store(f);
}

static void fx_close_store(struct fx *f)
{
        store_close(f->s);
        f->s = NULL;
}

static void fx_reopen(struct fx *f)
{
        fx_close_store(f);
        fx_open_store(f);
}

static void fx_teardown(struct fx *f)
{
        if (f->s)
                store_close(f->s);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f->logs);
        memset(f, 0, sizeof *f);
}

/* ---- records ---- */

static void new_id(char id[JOB_ID_LEN + 1])
{
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, id);
}

/* attempts JSON text: n attempts of run ids <id>-1..<id>-n, all finished
 * but the last when last_finished_ms is 0. */
static char *attempts_text(const char *id, size_t n, int64_t started_ms, int64_t last_finished_ms)
{
        char *acc = xstrdup("[");
        for (size_t i = 1; i <= n; i++) {
                char st[40];
                format_rfc3339(started_ms + (int64_t)i, st, sizeof st);
                int64_t f = i < n ? started_ms + (int64_t)i + 1 : last_finished_ms;
                char finbuf[48];
                if (f) {
                        char t[40];
                        format_rfc3339(f, t, sizeof t);
                        snprintf(finbuf, sizeof finbuf, "\"%s\"", t);
                } else {
                        snprintf(finbuf, sizeof finbuf, "null");
                }
                const char *err = (f && i < n)
                        ? "{\"code\":\"interrupted\",\"message\":\"the daemon stopped\"}" : "null";
                char *next = xasprintf("%s%s{\"run_id\":\"%s-%zu\",\"uid\":%lld,\"gid\":%lld,"
                                       "\"started_at\":\"%s\",\"finished_at\":%s,\"error\":%s}",
                                       acc, i > 1 ? "," : "", id, i, 3000000000LL + (long long)i,
                                       3100000000LL + (long long)i, st, finbuf, err);
                free(acc);
                acc = next;
        }
        char *out = xasprintf("%s]", acc);
        free(acc);
        return out;
}

/* A queued record as a submission makes it (members owned: record_clear). */
static void rec_queued(struct job_record *r, const char *algorithm, int64_t created_ms)
{
        memset(r, 0, sizeof *r);
        new_id(r->id);
        r->algorithm = xstrdup(algorithm);
        r->version = xstrdup("1.4.2");
        r->status = JOB_QUEUED;
        r->priority = PRIO_LOW;
        r->timeout_seconds = 45;
        r->submitted_by = xstrdup("ci-bot");
        /* Whitespace, escapes and UTF-8 kept as written. */
        r->params = xasprintf("{ \"n\" : 3,\n\t\"text\": \"h\\u00e9llo \\\"w\\\" \xc3\xa9\",  \"for\": \"%s\" }",
                              r->id);
        r->params_len = strlen(r->params);
        r->error = JOB_ERR_NONE;
        r->metrics.peak_memory_bytes = -1;
        r->metrics.cpu_ms = -1;
        r->attempts = xstrdup("[]");
        r->created_ms = created_ms;
}

/* Deep copy (dst's members are overwritten, not freed). */
static void rec_copy(struct job_record *dst, const struct job_record *src)
{
        record_copy(dst, src);
}

/* A pending callback to url. */
static void rec_callback(struct job_record *r, const char *url)
{
        r->callback.url = xstrdup(url);
        new_id(r->callback.delivery);
        r->callback.state = CALLBACK_PENDING;
}

/* Queued -> running: one attempt, started. */
static void rec_set_running(struct job_record *r, int64_t started_ms)
{
        r->status = JOB_RUNNING;
        r->started_ms = started_ms;
        free(r->runtime_name);
        r->runtime_name = xstrdup("runc");
        free(r->attempts);
        r->attempts = attempts_text(r->id, 1, started_ms, 0);
}

/* -> final st, finished at finished_ms, with n_attempts attempts (0: it
 * never ran, as a job cancelled while queued); result for succeeded. */
static void rec_set_final(struct job_record *r, enum job_status st, int64_t finished_ms, size_t n_attempts,
                          const char *result)
{
        r->status = st;
        r->finished_ms = finished_ms;
        free(r->attempts);
        free(r->runtime_name);
        r->runtime_name = NULL;
        if (n_attempts) {
                if (!r->started_ms)
                        r->started_ms = finished_ms - 300;
                r->attempts = attempts_text(r->id, n_attempts, r->started_ms, finished_ms);
                r->runtime_name = xstrdup("crun");
        } else {
                r->started_ms = 0;
                r->attempts = xstrdup("[]");
        }
        r->has_metrics = true;
        r->metrics = (struct job_metrics){ .queue_ms = 5, .create_ms = 21, .run_ms = 300, .collect_ms = 4,
                                           .total_ms = 330, .peak_memory_bytes = 12345678, .cpu_ms = -1 };
        free(r->error_message);
        r->error_message = NULL;
        free(r->result);
        r->result = NULL;
        r->result_len = 0;
        switch (st) {
        case JOB_SUCCEEDED:
                r->error = JOB_ERR_NONE;
                r->has_exit_code = true;
                r->exit_code = 0;
                if (result) {
                        r->result = xstrdup(result);
                        r->result_len = strlen(result);
                }
                break;
        case JOB_FAILED:
                r->error = JOB_ERR_ALGORITHM_FAILED;
                r->error_message = xstrdup("exit status 3: \"bad input\" \xe2\x80\x94 see the log");
                r->has_exit_code = true;
                r->exit_code = 3;
                r->log_truncated = true;
                break;
        default:
                r->error = JOB_ERR_CANCELLED;
                r->error_message = xstrdup("cancelled by the client");
                r->has_exit_code = false;
                break;
        }
}

#define STR_EQ_NULLABLE(what, got, want)                                                       \
        do {                                                                                   \
                const char *g_ = (got), *w_ = (want);                                          \
                if (!w_)                                                                       \
                        ck_assert_msg(!g_, "%s: %s is \"%s\", wanted NULL", ctx, what, g_);    \
                else                                                                           \
                        ck_assert_msg(g_ && !strcmp(g_, w_), "%s: %s is %s%s%s, wanted \"%s\"", \
                                      ctx, what, g_ ? "\"" : "", g_ ? g_ : "NULL", g_ ? "\"" : "", w_); \
        } while (0)

#define INT_EQ(what, got, want)                                                               \
        ck_assert_msg((int64_t)(got) == (int64_t)(want), "%s: %s is %lld, wanted %lld", ctx, what, \
                      (long long)(got), (long long)(want))

static void text_eq(const char *ctx, const char *what, const char *got, size_t got_len, const char *want,
                    size_t want_len)
{
        if (!want) {
                ck_assert_msg(!got, "%s: %s is \"%.200s\", wanted NULL", ctx, what, got);
                return;
        }
        ck_assert_msg(got, "%s: %s is NULL, wanted \"%.200s\"", ctx, what, want);
        ck_assert_msg(got_len == want_len && !memcmp(got, want, want_len),
                      "%s: %s is \"%.200s\" (%zu bytes), wanted \"%.200s\" (%zu bytes)", ctx, what, got,
                      got_len, want, want_len);
        ck_assert_msg(got[got_len] == '\0', "%s: %s is not NUL-terminated", ctx, what);
}

/* Every field of got as want has it; params and result only when `what`
 * asked for them (NULL otherwise). */
static void rec_assert_eq(const char *ctx, const struct job_record *got, const struct job_record *want,
                          unsigned what)
{
        STR_EQ_NULLABLE("id", got->id, want->id);
        STR_EQ_NULLABLE("algorithm", got->algorithm, want->algorithm);
        STR_EQ_NULLABLE("version", got->version, want->version);
        INT_EQ("status", got->status, want->status);
        INT_EQ("priority", got->priority, want->priority);
        INT_EQ("timeout_seconds", got->timeout_seconds, want->timeout_seconds);
        STR_EQ_NULLABLE("submitted_by", got->submitted_by, want->submitted_by);
        if (what & STORE_READ_PARAMS)
                text_eq(ctx, "params", got->params, got->params_len, want->params, want->params_len);
        else
                ck_assert_msg(!got->params, "%s: params read without STORE_READ_PARAMS", ctx);
        if (what & STORE_READ_RESULT)
                text_eq(ctx, "result", got->result, got->result_len, want->result, want->result_len);
        else
                ck_assert_msg(!got->result, "%s: result read without STORE_READ_RESULT", ctx);
        INT_EQ("error", got->error, want->error);
        STR_EQ_NULLABLE("error_message", got->error_message, want->error_message);
        INT_EQ("has_exit_code", got->has_exit_code, want->has_exit_code);
        if (want->has_exit_code)
                INT_EQ("exit_code", got->exit_code, want->exit_code);
        INT_EQ("has_metrics", got->has_metrics, want->has_metrics);
        if (want->has_metrics) {
                INT_EQ("metrics.queue_ms", got->metrics.queue_ms, want->metrics.queue_ms);
                INT_EQ("metrics.create_ms", got->metrics.create_ms, want->metrics.create_ms);
                INT_EQ("metrics.run_ms", got->metrics.run_ms, want->metrics.run_ms);
                INT_EQ("metrics.collect_ms", got->metrics.collect_ms, want->metrics.collect_ms);
                INT_EQ("metrics.total_ms", got->metrics.total_ms, want->metrics.total_ms);
                INT_EQ("metrics.peak_memory_bytes", got->metrics.peak_memory_bytes,
                       want->metrics.peak_memory_bytes);
                INT_EQ("metrics.cpu_ms", got->metrics.cpu_ms, want->metrics.cpu_ms);
        }
        STR_EQ_NULLABLE("runtime_name", got->runtime_name, want->runtime_name);
        INT_EQ("log_truncated", got->log_truncated, want->log_truncated);
        STR_EQ_NULLABLE("attempts", got->attempts, want->attempts);
        STR_EQ_NULLABLE("progress", got->progress, want->progress);
        INT_EQ("recoveries", got->recoveries, want->recoveries);
        INT_EQ("created_ms", got->created_ms, want->created_ms);
        INT_EQ("started_ms", got->started_ms, want->started_ms);
        INT_EQ("finished_ms", got->finished_ms, want->finished_ms);
        STR_EQ_NULLABLE("callback.url", got->callback.url, want->callback.url);
        if (want->callback.url) {
                STR_EQ_NULLABLE("callback.delivery", got->callback.delivery, want->callback.delivery);
                INT_EQ("callback.state", got->callback.state, want->callback.state);
                INT_EQ("callback.attempts", got->callback.attempts, want->callback.attempts);
                INT_EQ("callback.last_status", got->callback.last_status, want->callback.last_status);
                STR_EQ_NULLABLE("callback.last_error", got->callback.last_error, want->callback.last_error);
                INT_EQ("callback.delivered_ms", got->callback.delivered_ms, want->callback.delivered_ms);
                INT_EQ("callback.next_ms", got->callback.next_ms, want->callback.next_ms);
        }
}

/* ---- store calls ---- */

/* Insert r (idempotency key and hash may be NULL); the item's outcome, and
 * existing_id copied out when `existing` is not NULL. */
static enum store_item_outcome insert_keyed(struct fx *f, struct job_record *r, const char *key, const char *hash,
                                            char *existing)
{
        struct store_item it = { .rec = r, .idem_key = key, .idem_hash = hash, .expect_status = -1 };
        struct store_write w = { .kind = STORE_INSERT, .items = &it, .n = 1 };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f->s, &w, &err) == 0, "%s: insert %s: %s", f->be->name, r->id, err.msg);
        if (existing)
                memcpy(existing, it.existing_id, JOB_ID_LEN + 1);
        return it.outcome;
}

static void insert(struct fx *f, struct job_record *r)
{
        enum store_item_outcome o = insert_keyed(f, r, NULL, NULL, NULL);
        ck_assert_msg(o == STORE_ITEM_OK, "insert %s: outcome %d", r->id, (int)o);
}

static int update(struct fx *f, struct job_record *r, int expect_status)
{
        struct err err = ERR_INIT;
        int rc = store_update(f->s, r, expect_status, &err);
        ck_assert_msg(rc >= 0, "%s: store_update %s: %s", f->be->name, r->id, err.msg);
        return rc;
}

static void update_applied(struct fx *f, struct job_record *r, int expect_status)
{
        ck_assert_msg(update(f, r, expect_status) == 1, "store_update %s (expect_status %d) not applied", r->id,
                      expect_status);
}

static void get_ok(struct fx *f, const char *id, unsigned what, struct job_record *ret)
{
        struct err err = ERR_INIT;
        memset(ret, 0, sizeof *ret);
        ck_assert_msg(store_get(f->s, id, what, ret, &err) == 0, "%s: store_get %s: %s", f->be->name, id, err.msg);
}

/* store_get's error code for id (ERR_OK when it is there). */
static enum err_code get_code(struct fx *f, const char *id)
{
        struct job_record r = { 0 };
        struct err err = ERR_INIT;
        if (store_get(f->s, id, 0, &r, &err) == 0) {
                record_clear(&r);
                return ERR_OK;
        }
        ck_assert_msg(err.code != ERR_OK, "store_get %s failed with ERR_OK", id);
        return err.code;
}

static void assert_present(struct fx *f, const char *id)
{
        enum err_code c = get_code(f, id);
        ck_assert_msg(c == ERR_OK, "%s: record %s missing (%s)", f->be->name, id, err_code_name(c));
}

static void assert_gone(struct fx *f, const char *id)
{
        enum err_code c = get_code(f, id);
        ck_assert_msg(c == ERR_NOT_FOUND, "%s: record %s: store_get gave %s, wanted ERR_NOT_FOUND", f->be->name,
                      id, c == ERR_OK ? "the record" : err_code_name(c));
}

/* Records sorted newest first (created_ms descending). */
static int newest_first(const void *a, const void *b)
{
        const struct job_record *x = *(const struct job_record *const *)a, *y = *(const struct job_record *const *)b;
        return x->created_ms < y->created_ms ? 1 : x->created_ms > y->created_ms ? -1 : 0;
}

/* One store_list page, parsed and checked for shape: {"jobs": [...],
 * "next": null or an id} (caller json_decrefs). */
static json_t *list_page(struct fx *f, const struct store_filter *flt, size_t max_bytes)
{
        char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(store_list(f->s, flt, max_bytes, NULL, NULL, &text, &len, &err) == 0, "%s: store_list: %s", f->be->name,
                      err.msg);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_eq(strlen(text), len);
        json_error_t jerr;
        json_t *doc = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(doc, "store_list text is not JSON (%s at %d:%d): %.300s", jerr.text, jerr.line, jerr.column,
                      text);
        free(text);
        ck_assert(json_is_object(doc));
        ck_assert_msg(json_is_array(json_object_get(doc, "jobs")), "no \"jobs\" array");
        json_t *next = json_object_get(doc, "next");
        ck_assert_msg(next && (json_is_null(next) || json_is_string(next)), "\"next\" missing or not id/null");
        if (json_is_string(next))
                ck_assert_uint_eq(strlen(json_string_value(next)), JOB_ID_LEN);
        return doc;
}

static const char *job_id_at(json_t *doc, size_t i)
{
        json_t *job = json_array_get(json_object_get(doc, "jobs"), i);
        ck_assert(json_is_object(job));
        const char *id = json_string_value(json_object_get(job, "id"));
        ck_assert_ptr_nonnull(id);
        return id;
}

/* Every page of a listing (flt->after from NULL on): the ids in order into
 * ids (at most max); their count.  Checks the paging rules on the way: a
 * page holds at most flt->limit jobs (exactly one with max_bytes 1), `next`
 * names its last job, and only the last page can be empty. */
static size_t list_all(struct fx *f, struct store_filter flt, size_t max_bytes, char (*ids)[JOB_ID_LEN + 1],
                       size_t max)
{
        size_t n = 0;
        char after[JOB_ID_LEN + 1];
        flt.after = NULL;
        for (size_t pages = 0;; pages++) {
                ck_assert_msg(pages <= max + 1, "store_list pages do not end");
                json_t *doc = list_page(f, &flt, max_bytes);
                json_t *jobs = json_object_get(doc, "jobs");
                size_t k = json_array_size(jobs);
                ck_assert_msg(k <= flt.limit, "a page of %zu jobs with limit %zu", k, flt.limit);
                if (max_bytes == 1)
                        ck_assert_msg(k <= 1, "a page of %zu jobs with max_bytes 1", k);
                for (size_t i = 0; i < k; i++) {
                        ck_assert_msg(n < max, "more jobs listed than there are");
                        snprintf(ids[n++], JOB_ID_LEN + 1, "%s", job_id_at(doc, i));
                }
                json_t *next = json_object_get(doc, "next");
                if (json_is_null(next)) {
                        json_decref(doc);
                        return n;
                }
                ck_assert_msg(k > 0, "an empty page with a next cursor");
                ck_assert_str_eq(json_string_value(next), job_id_at(doc, k - 1));
                snprintf(after, sizeof after, "%s", json_string_value(next));
                flt.after = after;
                json_decref(doc);
        }
}

/* The listing of flt (every page) is exactly want[0..n) in that order. */
static void assert_listing(struct fx *f, const struct store_filter *flt, size_t max_bytes,
                           struct job_record *const *want, size_t n, const char *what)
{
        char(*ids)[JOB_ID_LEN + 1] = xcalloc(n + 4, sizeof *ids);
        size_t got = list_all(f, *flt, max_bytes, ids, n + 4);
        for (size_t i = 0; i < got && i < n; i++)
                ck_assert_msg(!strcmp(ids[i], want[i]->id), "%s: job %zu is %s, wanted %s (created %lld)", what, i,
                              ids[i], want[i]->id, (long long)want[i]->created_ms);
        ck_assert_msg(got == n, "%s: %zu jobs listed, wanted %zu", what, got, n);
        free(ids);
}

static char *log_file(struct fx *f, const char *id, int attempt)
{
        return xasprintf("%s/%s-%d.log", f->logs, id, attempt);
}

static void make_log(struct fx *f, const char *id, int attempt)
{
        char *p = log_file(f, id, attempt);
        FILE *fp = fopen(p, "w");
        ck_assert_msg(fp, "%s: %s", p, strerror(errno));
        fputs("some output\n", fp);
        fclose(fp);
        free(p);
}

static bool log_exists(struct fx *f, const char *id, int attempt)
{
        char *p = log_file(f, id, attempt);
        bool ok = access(p, F_OK) == 0;
        free(p);
        return ok;
}

/* store_prune in steps, as the collector calls it: each step removes at
 * most STORE_PRUNE_STEP records, and a short step is the last. */
static size_t prune(struct fx *f, int64_t before_ms, int64_t max_records)
{
        size_t total = 0, removed;
        do {
                removed = (size_t)-1;
                struct err err = ERR_INIT;
                ck_assert_msg(store_prune(f->s, before_ms, max_records, &removed, &err) == 0,
                              "%s: store_prune: %s", f->be->name, err.msg);
                ck_assert_uint_le(removed, STORE_PRUNE_STEP);
                total += removed;
        } while (removed == STORE_PRUNE_STEP);
        return total;
}

/* A write's done callbacks, counted; waits are bounded. */
struct waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int calls;
};

static void waiter_init(struct waiter *w)
{
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->calls = 0;
}

static void waiter_destroy(struct waiter *w)
{
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
}

static void on_done(struct store_write *w)
{
        struct waiter *wt = w->ctx;
        pthread_mutex_lock(&wt->lock);
        wt->calls++;
        pthread_cond_broadcast(&wt->cond);
        pthread_mutex_unlock(&wt->lock);
}

/* Wait until wt has seen n calls (60 s at most); false on timeout. */
static bool waiter_wait(struct waiter *wt, int n)
{
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 60;
        pthread_mutex_lock(&wt->lock);
        int rc = 0;
        while (wt->calls < n && rc == 0)
                rc = pthread_cond_timedwait(&wt->cond, &wt->lock, &until);
        bool ok = wt->calls >= n;
        pthread_mutex_unlock(&wt->lock);
        return ok;
}

static int waiter_calls(struct waiter *wt)
{
        pthread_mutex_lock(&wt->lock);
        int n = wt->calls;
        pthread_mutex_unlock(&wt->lock);
        return n;
}

/* ---- open, reopen, schema versions ---- */

START_TEST(test_open_reopen)
{
        struct fx f;
        fx_setup(&f, _i);
        ck_assert_msg(f.be->db_exists(f.dir), "%s: store_open made no database in %s", f.be->name, f.dir);
        ck_assert_uint_eq(store_count(f.s), 0);

        struct job_record q, r, d;
        rec_queued(&q, "alpha", T0 + 1);
        rec_queued(&r, "beta", T0 + 2);
        rec_queued(&d, "alpha", T0 + 3);
        insert(&f, &q);
        insert(&f, &r);
        insert(&f, &d);
        rec_set_running(&r, T0 + 10);
        update_applied(&f, &r, JOB_QUEUED);
        rec_set_running(&d, T0 + 11);
        update_applied(&f, &d, JOB_QUEUED);
        rec_set_final(&d, JOB_SUCCEEDED, T0 + 500, 1, "{\"answer\": 42}");
        update_applied(&f, &d, JOB_RUNNING);

        /* What was answered ok is there after a close and an open. */
        fx_reopen(&f);
        ck_assert_uint_eq(store_count(f.s), 3);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record *want[] = { &q, &r, &d };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                struct job_record got;
                get_ok(&f, want[i]->id, all, &got);
                rec_assert_eq("after a reopen", &got, want[i], all);
                record_clear(&got);
        }
        /* And once more: opening an up-to-date database changes nothing. */
        fx_reopen(&f);
        ck_assert_uint_eq(store_count(f.s), 3);
        struct job_record got;
        get_ok(&f, d.id, all, &got);
        rec_assert_eq("after a second reopen", &got, &d, all);
        record_clear(&got);
        char reason[256] = "";
        ck_assert_msg(store_health(f.s, reason, sizeof reason), "unhealthy after reopen: %s", reason);

        record_clear(&q);
        record_clear(&r);
        record_clear(&d);
        fx_teardown(&f);
}
END_TEST

/* A store holding one queued record, q, closed. */
static void fx_setup_one_closed(struct fx *f, int backend, struct job_record *q)
{
        fx_setup(f, backend);
        rec_queued(q, "alpha", T0);
        insert(f, q);
        fx_close_store(f);
}

START_TEST(test_schema_versions)
{
        struct fx f;
        struct job_record q;
        fx_setup_one_closed(&f, _i, &q);

        /* The schema is versioned, and opening twice keeps the version. */
        int64_t v = f.be->schema_version(f.dir);
        ck_assert_msg(v >= 1, "%s: schema version %lld after open", f.be->name, (long long)v);
        fx_open_store(&f);
        fx_close_store(&f);
        ck_assert_int_eq(f.be->schema_version(f.dir), v);

        /* A database a newer edgecd left: refused with a clear error, and
         * left as it was. */
        f.be->set_schema_version(f.dir, v + 1);
        struct store *s = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_open(f.be->name, f.dir, f.logs, &s, &err), -1);
        ck_assert_ptr_null(s);
        ck_assert_int_ne(err.code, ERR_OK);
        ck_assert_msg(strcasestr(err.msg, "version") || strcasestr(err.msg, "schema"),
                      "%s: unclear error for a newer schema: \"%s\"", f.be->name, err.msg);
        struct err refused = err;
        ck_assert_int_eq(f.be->schema_version(f.dir), v + 1);

        /* Back to the version this code knows: open again, data intact. */
        f.be->set_schema_version(f.dir, v);
        fx_open_store(&f);
        assert_present(&f, q.id);
        record_clear(&q);
        fx_teardown(&f);

        /* Clear: the error names the version the database has. */
        char vbuf[32];
        snprintf(vbuf, sizeof vbuf, "%lld", (long long)(v + 1));
        ck_assert_msg(strstr(refused.msg, vbuf), "the error does not name the database's version %s: \"%s\"",
                      vbuf, refused.msg);
}
END_TEST

START_TEST(test_open_unknown_backend)
{
        char *dir = tu_test_dir();
        char *logs = xasprintf("%s/logs", dir);
        struct store *s = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_open("no-such-backend", dir, logs, &s, &err), -1);
        ck_assert_ptr_null(s);
        ck_assert_int_ne(err.code, ERR_OK);
        ck_assert_msg(strstr(err.msg, "no-such-backend"), "\"%s\"", err.msg);
        for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
                ck_assert_str_eq(backends[i].ops->name, backends[i].name);
        tu_rm_rf(dir);
        free(dir);
        free(logs);
}
END_TEST

/* ---- insert and get ---- */

START_TEST(test_insert_get)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record q;
        rec_queued(&q, "image-resize", T0 + 123);
        q.priority = PRIO_HIGH;
        q.timeout_seconds = 86400;
        insert(&f, &q);
        ck_assert_uint_eq(store_count(f.s), 1);

        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record got;
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("insert, get all", &got, &q, all);
        ck_assert_str_eq(got.attempts, "[]");
        ck_assert_ptr_null(got.result);   /* none yet */
        record_clear(&got);

        /* Without STORE_READ_PARAMS: no parameters. */
        get_ok(&f, q.id, 0, &got);
        rec_assert_eq("insert, get 0", &got, &q, 0);
        record_clear(&got);
        get_ok(&f, q.id, STORE_READ_PARAMS, &got);
        rec_assert_eq("insert, get params", &got, &q, STORE_READ_PARAMS);
        record_clear(&got);

        /* No token: submitted_by NULL; a large parameters text. */
        struct job_record big;
        rec_queued(&big, "image-resize", T0 + 124);
        free(big.submitted_by);
        big.submitted_by = NULL;
        big.priority = PRIO_NORMAL;
        free(big.params);
        big.params_len = 300000;
        big.params = xmalloc(big.params_len + 1);
        memcpy(big.params, "{\"blob\": \"", 10);
        for (size_t i = 10; i < big.params_len - 2; i++)
                big.params[i] = (char)('a' + i % 26);
        memcpy(big.params + big.params_len - 2, "\"}", 3);
        insert(&f, &big);
        get_ok(&f, big.id, all, &got);
        rec_assert_eq("insert without token, 300 kB params", &got, &big, all);
        record_clear(&got);

        /* An unknown id. */
        char unknown[JOB_ID_LEN + 1];
        new_id(unknown);
        memset(&got, 0, sizeof got);
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_get(f.s, unknown, all, &got, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        ck_assert_uint_eq(store_count(f.s), 2);

        /* The same id again (no key): refused, the first one unchanged, and
         * the store still healthy (that is not a disk failure). */
        struct job_record dup;
        rec_queued(&dup, "other-algorithm", T0 + 999);
        memcpy(dup.id, q.id, sizeof dup.id);
        struct store_item it = { .rec = &dup, .expect_status = -1, .outcome = STORE_ITEM_NOT_APPLIED };
        struct store_write w = { .kind = STORE_INSERT, .items = &it, .n = 1 };
        err = (struct err)ERR_INIT;
        int rc = store_write_sync(f.s, &w, &err);
        ck_assert_msg(rc == -1 || it.outcome != STORE_ITEM_OK, "%s: a second record with id %s was accepted",
                      f.be->name, q.id);
        ck_assert_uint_eq(store_count(f.s), 2);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after a duplicate id", &got, &q, all);
        record_clear(&got);
        char reason[256] = "";
        ck_assert_msg(store_health(f.s, reason, sizeof reason), "%s: unhealthy after a duplicate id: %s",
                      f.be->name, reason);

        record_clear(&q);
        record_clear(&big);
        record_clear(&dup);
        fx_teardown(&f);
}
END_TEST

/* A read for which the process has no descriptor left (a reader
 * connection is opened on first need) says so by its errno, which the API
 * answers 503 busy rather than 500: SQLite's own words ("unable to open
 * database file") do not tell it from a broken store. */
START_TEST(test_read_out_of_descriptors)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record q;
        rec_queued(&q, "image-resize", T0 + 1);
        insert(&f, &q);
        /* Every descriptor taken (each test runs in a child of its own). */
        struct rlimit old, rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        rl = old;
        rl.rlim_cur = 256;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        int fds[256];
        size_t n = 0;
        int fd;
        while (n < ARRAY_SIZE(fds) && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
                fds[n++] = fd;
        ck_assert_int_eq(errno, EMFILE);
        struct job_record got = { 0 };
        struct err err = ERR_INIT;
        int rc = store_get(f.s, q.id, 0, &got, &err);
        while (n)
                close(fds[--n]);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        ck_assert_msg(rc == -1, "%s: a read with no descriptor left succeeded", f.be->name);
        ck_assert_msg(err.errnum == EMFILE, "%s: errno %d, not EMFILE: %s", f.be->name, err.errnum, err.msg);
        /* Descriptors back: it reads. */
        get_ok(&f, q.id, 0, &got);
        record_clear(&got);
        record_clear(&q);
        fx_teardown(&f);
}
END_TEST

/* A record inserted as it is (here final, as an import or a test would
 * write it) keeps every field: an insert stores the whole record. */
START_TEST(test_insert_final_record)
{
        struct fx f;
        fx_setup(&f, _i);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record fin, ok;
        rec_queued(&fin, "alpha", T0 + 125);
        fin.recoveries = 2;
        rec_set_final(&fin, JOB_FAILED, T0 + 900, 2, NULL);
        rec_queued(&ok, "alpha", T0 + 126);
        rec_set_final(&ok, JOB_SUCCEEDED, T0 + 901, 1, "[1, 2]");
        insert(&f, &fin);
        insert(&f, &ok);
        struct job_record got;
        get_ok(&f, fin.id, all, &got);
        rec_assert_eq("insert of a failed record", &got, &fin, all);
        record_clear(&got);
        get_ok(&f, ok.id, all, &got);
        rec_assert_eq("insert of a succeeded record", &got, &ok, all);
        record_clear(&got);
        record_clear(&fin);
        record_clear(&ok);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_insert_many)
{
        enum { N = 50 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record first;
        rec_queued(&first, "alpha", T0);
        insert(&f, &first);
        ck_assert_uint_eq(store_count(f.s), 1);

        struct job_record *recs = xcalloc(N, sizeof *recs);
        struct store_item *items = xcalloc(N, sizeof *items);
        for (size_t i = 0; i < N; i++) {
                rec_queued(&recs[i], i % 2 ? "alpha" : "beta", T0 + 1 + (int64_t)i);
                items[i] = (struct store_item){ .rec = &recs[i], .expect_status = -1 };
        }
        struct store_write w = { .kind = STORE_INSERT, .items = items, .n = N };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f.s, &w, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < N; i++)
                ck_assert_msg(items[i].outcome == STORE_ITEM_OK, "item %zu: outcome %d", i, (int)items[i].outcome);
        ck_assert_uint_eq(store_count(f.s), 1 + N);
        for (size_t i = 0; i < N; i++) {
                struct job_record got;
                get_ok(&f, recs[i].id, STORE_READ_PARAMS, &got);
                rec_assert_eq("one of many", &got, &recs[i], STORE_READ_PARAMS);
                record_clear(&got);
        }
        for (size_t i = 0; i < N; i++)
                record_clear(&recs[i]);
        free(recs);
        free(items);
        record_clear(&first);
        fx_teardown(&f);
}
END_TEST

/* ---- idempotency ---- */

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

START_TEST(test_idempotency)
{
        struct fx f;
        fx_setup(&f, _i);
        char existing[JOB_ID_LEN + 1];
        struct job_record r1, r2, r3, r4, r5;
        rec_queued(&r1, "alpha", T0 + 1);
        rec_queued(&r2, "alpha", T0 + 2);
        rec_queued(&r3, "alpha", T0 + 3);
        rec_queued(&r4, "alpha", T0 + 4);
        rec_queued(&r5, "alpha", T0 + 5);

        ck_assert_int_eq(insert_keyed(&f, &r1, "key-1", HASH_A, NULL), STORE_ITEM_OK);
        /* The same key and body: the first job, and no new record. */
        memset(existing, 0, sizeof existing);
        ck_assert_int_eq(insert_keyed(&f, &r2, "key-1", HASH_A, existing), STORE_ITEM_REPLAYED);
        ck_assert_str_eq(existing, r1.id);
        assert_gone(&f, r2.id);
        /* The same key, another body: a conflict, and no new record. */
        ck_assert_int_eq(insert_keyed(&f, &r3, "key-1", HASH_B, NULL), STORE_ITEM_CONFLICT);
        assert_gone(&f, r3.id);
        ck_assert_uint_eq(store_count(f.s), 1);
        /* Another key with the same body is another job; no key, too. */
        ck_assert_int_eq(insert_keyed(&f, &r4, "key-2", HASH_A, NULL), STORE_ITEM_OK);
        ck_assert_int_eq(insert_keyed(&f, &r5, NULL, NULL, NULL), STORE_ITEM_OK);
        ck_assert_uint_eq(store_count(f.s), 3);

        /* Keys are durable. */
        fx_reopen(&f);
        struct job_record r6;
        rec_queued(&r6, "alpha", T0 + 6);
        memset(existing, 0, sizeof existing);
        ck_assert_int_eq(insert_keyed(&f, &r6, "key-1", HASH_A, existing), STORE_ITEM_REPLAYED);
        ck_assert_str_eq(existing, r1.id);
        ck_assert_int_eq(insert_keyed(&f, &r6, "key-2", HASH_B, NULL), STORE_ITEM_CONFLICT);
        assert_gone(&f, r6.id);

        /* Two items of one write with one key: the second replays the first. */
        struct job_record a, b, c;
        rec_queued(&a, "alpha", T0 + 7);
        rec_queued(&b, "alpha", T0 + 8);
        rec_queued(&c, "alpha", T0 + 9);
        struct store_item items[3] = {
                { .rec = &a, .idem_key = "key-3", .idem_hash = HASH_A, .expect_status = -1 },
                { .rec = &b, .idem_key = "key-3", .idem_hash = HASH_A, .expect_status = -1 },
                { .rec = &c, .idem_key = "key-3", .idem_hash = HASH_B, .expect_status = -1 },
        };
        struct store_write w = { .kind = STORE_INSERT, .items = items, .n = 3 };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f.s, &w, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(items[0].outcome, STORE_ITEM_OK);
        ck_assert_int_eq(items[1].outcome, STORE_ITEM_REPLAYED);
        ck_assert_str_eq(items[1].existing_id, a.id);
        ck_assert_int_eq(items[2].outcome, STORE_ITEM_CONFLICT);
        assert_present(&f, a.id);
        assert_gone(&f, b.id);
        assert_gone(&f, c.id);
        ck_assert_uint_eq(store_count(f.s), 4);

        record_clear(&r1);
        record_clear(&r2);
        record_clear(&r3);
        record_clear(&r4);
        record_clear(&r5);
        record_clear(&r6);
        record_clear(&a);
        record_clear(&b);
        record_clear(&c);
        fx_teardown(&f);
}
END_TEST

/* Two async inserts with one key in flight at once (one group commit,
 * likely): exactly one record, the other replays it. */
START_TEST(test_idempotency_concurrent)
{
        enum { N = 16 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record recs[N];
        struct store_item items[N];
        struct store_write ws[N];
        struct waiter wt[N];
        for (size_t i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + (int64_t)i);
                items[i] = (struct store_item){ .rec = &recs[i], .idem_key = "same-key", .idem_hash = HASH_A,
                                                .expect_status = -1 };
                waiter_init(&wt[i]);
                ws[i] = (struct store_write){ .kind = STORE_INSERT, .items = &items[i], .n = 1, .done = on_done,
                                              .ctx = &wt[i] };
        }
        for (size_t i = 0; i < N; i++)
                store_write_async(f.s, &ws[i]);
        size_t ok = 0;
        const char *winner = NULL;
        for (size_t i = 0; i < N; i++) {
                ck_assert_msg(waiter_wait(&wt[i], 1), "write %zu: no done callback in 60 s", i);
                ck_assert_msg(ws[i].err.code == ERR_OK, "write %zu: %s", i, ws[i].err.msg);
                if (items[i].outcome == STORE_ITEM_OK) {
                        ok++;
                        winner = recs[i].id;
                }
        }
        ck_assert_uint_eq(ok, 1);
        for (size_t i = 0; i < N; i++) {
                if (items[i].outcome == STORE_ITEM_OK)
                        continue;
                ck_assert_msg(items[i].outcome == STORE_ITEM_REPLAYED, "write %zu: outcome %d", i,
                              (int)items[i].outcome);
                ck_assert_str_eq(items[i].existing_id, winner);
        }
        ck_assert_uint_eq(store_count(f.s), 1);
        fx_close_store(&f);
        for (size_t i = 0; i < N; i++) {
                ck_assert_int_eq(waiter_calls(&wt[i]), 1);
                waiter_destroy(&wt[i]);
                record_clear(&recs[i]);
        }
        fx_teardown(&f);
}
END_TEST

/* A key never replays to a record that is gone: once its record is pruned
 * the key makes a new job (or replays to a record that is there). */
START_TEST(test_idempotency_after_prune)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record k1, k2, n1, n2;
        rec_queued(&k1, "alpha", T0 + 1);
        rec_queued(&n1, "alpha", T0 + 3);
        rec_queued(&n2, "alpha", T0 + 4);
        rec_queued(&k2, "alpha", T0 + 160);   /* after the first cutoff: its key stays then */
        ck_assert_int_eq(insert_keyed(&f, &k1, "key-old", HASH_A, NULL), STORE_ITEM_OK);
        insert(&f, &n1);
        insert(&f, &n2);
        ck_assert_int_eq(insert_keyed(&f, &k2, "key-count", HASH_A, NULL), STORE_ITEM_OK);
        rec_set_final(&k1, JOB_SUCCEEDED, T0 + 100, 1, "1");
        update_applied(&f, &k1, -1);
        rec_set_final(&k2, JOB_SUCCEEDED, T0 + 200, 1, "2");
        update_applied(&f, &k2, -1);
        rec_set_final(&n1, JOB_SUCCEEDED, T0 + 300, 1, "3");
        update_applied(&f, &n1, -1);
        rec_set_final(&n2, JOB_SUCCEEDED, T0 + 400, 1, "4");
        update_applied(&f, &n2, -1);

        /* k1 goes by its finish time, then k2 by count (two kept); after
         * each, its key with the same body. */
        const char *keys[] = { "key-old", "key-count" };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                if (i == 0) {
                        ck_assert_uint_eq(prune(&f, T0 + 150, 1000), 1);
                        assert_gone(&f, k1.id);
                } else {
                        ck_assert_uint_eq(prune(&f, 0, 2), 1);
                        assert_gone(&f, k2.id);
                }
                assert_present(&f, n1.id);
                assert_present(&f, n2.id);
                struct job_record again;
                rec_queued(&again, "alpha", T0 + 1000 + (int64_t)i);
                char existing[JOB_ID_LEN + 1] = "";
                enum store_item_outcome o = insert_keyed(&f, &again, keys[i], HASH_A, existing);
                ck_assert_msg(o == STORE_ITEM_OK || o == STORE_ITEM_REPLAYED,
                              "%s: key %s of a pruned record, same body: outcome %d", f.be->name, keys[i], (int)o);
                if (o == STORE_ITEM_REPLAYED) {
                        enum err_code c = get_code(&f, existing);
                        ck_assert_msg(c == ERR_OK, "%s: key %s replays to %s, a record that is gone (%s)",
                                      f.be->name, keys[i], existing, err_code_name(c));
                } else {
                        assert_present(&f, again.id);
                }
                record_clear(&again);
        }
        record_clear(&k1);
        record_clear(&k2);
        record_clear(&n1);
        record_clear(&n2);
        fx_teardown(&f);
}
END_TEST

/* ---- updates ---- */

START_TEST(test_update_conditional)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record q;
        rec_queued(&q, "alpha", T0 + 1);
        insert(&f, &q);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;

        /* queued -> running, on condition it is queued: applied. */
        struct job_record run;
        rec_copy(&run, &q);
        rec_set_running(&run, T0 + 50);
        ck_assert_int_eq(update(&f, &run, JOB_QUEUED), 1);
        struct job_record got;
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after queued -> running", &got, &run, all);
        record_clear(&got);

        /* Again on condition it is queued: it is running now, so nothing. */
        struct job_record again;
        rec_copy(&again, &run);
        again.recoveries = 5;
        again.started_ms = T0 + 77;
        free(again.runtime_name);
        again.runtime_name = xstrdup("youki");
        ck_assert_int_eq(update(&f, &again, JOB_QUEUED), 0);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after an update not applied", &got, &run, all);
        record_clear(&got);

        /* The same through a STORE_UPDATE write: NOT_APPLIED. */
        struct store_item it = { .rec = &again, .expect_status = JOB_QUEUED };
        struct store_write w = { .kind = STORE_UPDATE, .items = &it, .n = 1 };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f.s, &w, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(it.outcome, STORE_ITEM_NOT_APPLIED);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after a STORE_UPDATE not applied", &got, &run, all);
        record_clear(&got);

        /* The same in two halves (a worker's claim): begin takes the
         * record, end says not applied, and the store is unchanged. */
        struct job_record half;
        rec_copy(&half, &again);
        struct store_pending *p = store_update_begin(f.s, &half, JOB_QUEUED, false);
        ck_assert_ptr_null(half.runtime_name);   /* taken */
        ck_assert_int_eq(store_update_end(p, &err), 0);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after a two-half update not applied", &got, &run, all);
        record_clear(&got);
        /* ... and applied, when the condition holds. */
        rec_copy(&half, &again);
        half.recoveries = 9;
        p = store_update_begin(f.s, &half, JOB_RUNNING, true);
        ck_assert_int_eq(store_update_end(p, &err), 1);
        struct store_write sync = { .kind = STORE_SYNC };   /* a lazy one is read once committed */
        ck_assert_msg(store_write_sync(f.s, &sync, &err) == 0, "%s", err.msg);
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 9);
        record_clear(&got);

        /* On condition it is running: applied; expect_status -1: any. */
        ck_assert_int_eq(update(&f, &again, JOB_RUNNING), 1);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("after running -> running", &got, &again, all);
        record_clear(&got);
        again.recoveries = 6;
        ck_assert_int_eq(update(&f, &again, -1), 1);
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 6);
        record_clear(&got);

        /* An update never changes the id's parameters or creation time: a
         * worker's copy may not have read them. */
        struct job_record partial;
        rec_copy(&partial, &again);
        free(partial.params);
        partial.params = NULL;
        partial.params_len = 0;
        partial.created_ms = T0 + 999999;
        ck_assert_int_eq(update(&f, &partial, JOB_RUNNING), 1);
        get_ok(&f, q.id, all, &got);
        text_eq("update without params", "params", got.params, got.params_len, q.params, q.params_len);
        ck_assert_int_eq(got.created_ms, q.created_ms);
        record_clear(&got);
        struct job_record other_params;
        rec_copy(&other_params, &again);
        free(other_params.params);
        other_params.params = xstrdup("{\"changed\": true}");
        other_params.params_len = strlen(other_params.params);
        ck_assert_int_eq(update(&f, &other_params, -1), 1);
        get_ok(&f, q.id, all, &got);
        text_eq("update with other params", "params", got.params, got.params_len, q.params, q.params_len);
        record_clear(&got);

        /* Updating a record that is not there creates nothing. */
        struct job_record ghost;
        rec_queued(&ghost, "alpha", T0 + 2);
        err = (struct err)ERR_INIT;
        int rc = store_update(f.s, &ghost, -1, &err);
        ck_assert_msg(rc != 1, "%s: store_update of an unknown record applied", f.be->name);
        assert_gone(&f, ghost.id);
        ck_assert_uint_eq(store_count(f.s), 1);

        record_clear(&q);
        record_clear(&run);
        record_clear(&again);
        record_clear(&partial);
        record_clear(&other_params);
        record_clear(&ghost);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_update_final_result)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record q, g;
        rec_queued(&q, "alpha", T0 + 1);
        rec_queued(&g, "alpha", T0 + 2);
        insert(&f, &q);
        insert(&f, &g);
        rec_set_running(&q, T0 + 10);
        update_applied(&f, &q, JOB_QUEUED);
        rec_set_running(&g, T0 + 11);
        update_applied(&f, &g, JOB_QUEUED);

        /* Whitespace, escapes, UTF-8, numbers as written: byte-exact. */
        const char *result = "{ \"sum\" : 1.50e3 ,\n  \"names\": [\"\xc3\xa9t\xc3\xa9\", \"a\\\"b\\u0000c\"],"
                             "\t\"nested\": {\"x\": [1, 2, {\"y\": null}]} }\n";
        rec_set_final(&q, JOB_SUCCEEDED, T0 + 400, 1, result);
        q.progress = xstrdup("{\"fraction\":1.0,\"message\":\"done\"}");
        update_applied(&f, &q, JOB_RUNNING);
        rec_set_final(&g, JOB_FAILED, T0 + 401, 1, NULL);
        g.recoveries = 1;
        update_applied(&f, &g, JOB_RUNNING);

        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record got;
        get_ok(&f, q.id, STORE_READ_RESULT, &got);
        rec_assert_eq("succeeded, with result", &got, &q, STORE_READ_RESULT);
        ck_assert_uint_eq(got.result_len, strlen(result));
        ck_assert(!memcmp(got.result, result, got.result_len));
        record_clear(&got);
        get_ok(&f, q.id, STORE_READ_PARAMS, &got);
        ck_assert_ptr_null(got.result);
        ck_assert_uint_eq(got.result_len, 0);
        rec_assert_eq("succeeded, without result", &got, &q, STORE_READ_PARAMS);
        record_clear(&got);
        get_ok(&f, g.id, all, &got);
        rec_assert_eq("failed", &got, &g, all);
        ck_assert_ptr_null(got.result);
        record_clear(&got);

        /* The same after a reopen. */
        fx_reopen(&f);
        get_ok(&f, q.id, all, &got);
        rec_assert_eq("succeeded, after a reopen", &got, &q, all);
        record_clear(&got);
        record_clear(&q);
        record_clear(&g);
        fx_teardown(&f);
}
END_TEST

/* Large parameters and results go in and out a piece at a time: the
 * parameters come back as a read-only mapping (no heap copy), byte for
 * byte, and both survive a reopen. */
START_TEST(test_large_values)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record q;
        rec_queued(&q, "alpha", T0 + 1);
        size_t n = (3 << 20) + 17;
        char *big = xmalloc(n + 1);
        for (size_t k = 0; k < n; k++)
                big[k] = (char)('a' + k % 26);
        big[0] = '{';
        big[n - 1] = '}';
        big[n] = '\0';
        free(q.params);
        q.params = big;
        q.params_len = n;
        insert(&f, &q);
        for (int round = 0; round < 2; round++) {
                struct job_record got;
                get_ok(&f, q.id, STORE_READ_PARAMS, &got);
                ck_assert(got.params_mapped);
                ck_assert_uint_eq(got.params_len, n);
                ck_assert(!memcmp(got.params, big, n));
                record_clear(&got);
                fx_reopen(&f);
        }
        rec_set_running(&q, T0 + 10);
        update_applied(&f, &q, JOB_QUEUED);
        char *result = xmalloc(n + 1);
        memcpy(result, big, n + 1);
        result[5] = 'Z';
        rec_set_final(&q, JOB_SUCCEEDED, T0 + 400, 1, NULL);
        q.result = result;
        q.result_len = n;
        update_applied(&f, &q, JOB_RUNNING);
        struct job_record got;
        get_ok(&f, q.id, STORE_READ_RESULT | STORE_READ_PARAMS, &got);
        ck_assert_uint_eq(got.result_len, n);
        ck_assert(!memcmp(got.result, result, n));
        ck_assert(!memcmp(got.params, big, n));
        record_clear(&got);
        /* Its size, without reading it. */
        struct err err = ERR_INIT;
        size_t size = 0;
        ck_assert_msg(store_result_size(f.s, q.id, &size, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(size, n);
        /* A small one stays a plain column. */
        struct job_record s;
        rec_queued(&s, "alpha", T0 + 2);
        insert(&f, &s);
        get_ok(&f, s.id, STORE_READ_PARAMS, &got);
        ck_assert(!got.params_mapped);
        ck_assert_str_eq(got.params, s.params);
        record_clear(&got);
        /* No result yet: 0; no such job: ERR_NOT_FOUND. */
        size = 1;
        ck_assert_msg(store_result_size(f.s, s.id, &size, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(size, 0);
        ck_assert_int_eq(store_result_size(f.s, "no-such-job", &size, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        rec_set_running(&s, T0 + 11);
        update_applied(&f, &s, JOB_QUEUED);
        rec_set_final(&s, JOB_SUCCEEDED, T0 + 401, 1, "[1, 2]");
        update_applied(&f, &s, JOB_RUNNING);
        err_clear(&err);
        ck_assert_msg(store_result_size(f.s, s.id, &size, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(size, 6);
        record_clear(&s);
        record_clear(&q);
        fx_teardown(&f);
}
END_TEST

/* Several updates in one write (as recovery does): each its own outcome. */
START_TEST(test_update_many)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record a, b, c;
        rec_queued(&a, "alpha", T0 + 1);
        rec_queued(&b, "alpha", T0 + 2);
        rec_queued(&c, "alpha", T0 + 3);
        insert(&f, &a);
        insert(&f, &b);
        insert(&f, &c);
        rec_set_running(&a, T0 + 10);
        rec_set_running(&b, T0 + 11);
        rec_set_final(&c, JOB_CANCELLED, T0 + 12, 0, NULL);
        struct store_item items[3] = {
                { .rec = &a, .expect_status = JOB_QUEUED },
                { .rec = &b, .expect_status = JOB_RUNNING },   /* it is queued: not applied */
                { .rec = &c, .expect_status = -1 },
        };
        struct store_write w = { .kind = STORE_UPDATE, .items = items, .n = 3 };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f.s, &w, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(items[0].outcome, STORE_ITEM_OK);
        ck_assert_int_eq(items[1].outcome, STORE_ITEM_NOT_APPLIED);
        ck_assert_int_eq(items[2].outcome, STORE_ITEM_OK);
        struct job_record got;
        get_ok(&f, a.id, 0, &got);
        rec_assert_eq("update many, a", &got, &a, 0);
        record_clear(&got);
        get_ok(&f, b.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_QUEUED);
        ck_assert_str_eq(got.attempts, "[]");
        record_clear(&got);
        get_ok(&f, c.id, 0, &got);
        rec_assert_eq("update many, c", &got, &c, 0);
        record_clear(&got);
        record_clear(&a);
        record_clear(&b);
        record_clear(&c);
        fx_teardown(&f);
}
END_TEST

/* ---- store_list ---- */

/* Seven records: alpha/beta, every status, created T0+1..7; two final with
 * a result. */
struct listing {
        struct job_record r[7];
        struct job_record *by_age[7];   /* newest first */
};

static void listing_make(struct fx *f, struct listing *L)
{
        static const struct {
                const char *alg;
                enum job_status st;
        } spec[7] = {
                { "alpha", JOB_QUEUED }, { "beta", JOB_SUCCEEDED }, { "alpha", JOB_RUNNING },
                { "alpha", JOB_SUCCEEDED }, { "beta", JOB_FAILED }, { "beta", JOB_QUEUED },
                { "alpha", JOB_CANCELLED },
        };
        for (int i = 0; i < 7; i++) {
                struct job_record *r = &L->r[i];
                rec_queued(r, spec[i].alg, T0 + 1 + i);
                insert(f, r);
                if (spec[i].st == JOB_QUEUED)
                        continue;
                if (spec[i].st == JOB_CANCELLED) {
                        rec_set_final(r, JOB_CANCELLED, T0 + 100 + i, 0, NULL);
                        update_applied(f, r, JOB_QUEUED);
                        continue;
                }
                rec_set_running(r, T0 + 50 + i);
                update_applied(f, r, JOB_QUEUED);
                if (spec[i].st == JOB_RUNNING)
                        continue;
                char *res = xasprintf("{\"index\": %d,  \"of\": \"%s\"}", i, r->id);
                rec_set_final(r, spec[i].st, T0 + 100 + i, 1, res);
                free(res);
                update_applied(f, r, JOB_RUNNING);
        }
        for (int i = 0; i < 7; i++)
                L->by_age[i] = &L->r[i];
        qsort(L->by_age, 7, sizeof L->by_age[0], newest_first);
}

static void listing_clear(struct listing *L)
{
        for (int i = 0; i < 7; i++)
                record_clear(&L->r[i]);
}

/* want := the records of L matching status/algorithm, newest first. */
static size_t listing_select(struct listing *L, int status, const char *alg, struct job_record **want)
{
        size_t n = 0;
        for (int i = 0; i < 7; i++) {
                struct job_record *r = L->by_age[i];
                if ((status < 0 || (int)r->status == status) && (!alg || !strcmp(alg, r->algorithm)))
                        want[n++] = r;
        }
        return n;
}

START_TEST(test_list_order_filters_pages)
{
        struct fx f;
        fx_setup(&f, _i);
        struct listing L;
        listing_make(&f, &L);
        struct job_record *want[7];

        static const struct {
                int status;
                const char *alg;
        } filters[] = {
                { -1, NULL }, { JOB_QUEUED, NULL }, { JOB_SUCCEEDED, NULL }, { JOB_RUNNING, NULL },
                { -1, "alpha" }, { -1, "beta" }, { JOB_SUCCEEDED, "beta" }, { JOB_QUEUED, "alpha" },
                { JOB_FAILED, "alpha" }, { -1, "gamma" },
        };
        static const size_t limits[] = { 100, 7, 3, 2, 1 };
        for (size_t k = 0; k < ARRAY_SIZE(filters); k++) {
                size_t n = listing_select(&L, filters[k].status, filters[k].alg, want);
                for (size_t l = 0; l < ARRAY_SIZE(limits); l++) {
                        struct store_filter flt = { .status = filters[k].status, .algorithm = filters[k].alg,
                                                    .limit = limits[l] };
                        char what[128];
                        snprintf(what, sizeof what, "status %d, algorithm %s, limit %zu", filters[k].status,
                                 filters[k].alg ? filters[k].alg : "any", limits[l]);
                        assert_listing(&f, &flt, SIZE_MAX, want, n, what);
                        /* max_bytes 1: a job a page. */
                        snprintf(what, sizeof what, "status %d, algorithm %s, limit %zu, max_bytes 1",
                                 filters[k].status, filters[k].alg ? filters[k].alg : "any", limits[l]);
                        assert_listing(&f, &flt, 1, want, n, what);
                }
        }

        /* The first page of 3 names its last job as next; a page short of
         * the limit has next null. */
        struct store_filter flt = { .status = -1, .limit = 3 };
        json_t *doc = list_page(&f, &flt, SIZE_MAX);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 3);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "next")), L.by_age[2]->id);
        json_decref(doc);
        flt.after = L.by_age[4]->id;
        doc = list_page(&f, &flt, SIZE_MAX);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 2);
        ck_assert_str_eq(job_id_at(doc, 0), L.by_age[5]->id);
        ck_assert_str_eq(job_id_at(doc, 1), L.by_age[6]->id);
        ck_assert(json_is_null(json_object_get(doc, "next")));
        json_decref(doc);
        /* After the oldest: nothing. */
        flt.after = L.by_age[6]->id;
        doc = list_page(&f, &flt, SIZE_MAX);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 0);
        ck_assert(json_is_null(json_object_get(doc, "next")));
        json_decref(doc);
        /* `after` names a job the filter does not show: still its place. */
        flt = (struct store_filter){ .status = JOB_QUEUED, .after = L.by_age[3]->id, .limit = 100 };
        size_t n = listing_select(&L, JOB_QUEUED, NULL, want);
        doc = list_page(&f, &flt, SIZE_MAX);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (want[i]->created_ms < L.by_age[3]->created_ms)
                        ck_assert_str_eq(job_id_at(doc, k++), want[i]->id);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), k);
        json_decref(doc);

        /* An unknown `after`. */
        char unknown[JOB_ID_LEN + 1];
        new_id(unknown);
        flt = (struct store_filter){ .status = -1, .after = unknown, .limit = 10 };
        char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_list(f.s, &flt, SIZE_MAX, NULL, NULL, &text, &len, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        free(text);

        listing_clear(&L);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_list_results)
{
        struct fx f;
        fx_setup(&f, _i);
        struct listing L;
        listing_make(&f, &L);

        for (int with = 0; with < 2; with++) {
                struct store_filter flt = { .status = -1, .limit = 100, .with_result = with };
                json_t *doc = list_page(&f, &flt, SIZE_MAX);
                json_t *jobs = json_object_get(doc, "jobs");
                ck_assert_uint_eq(json_array_size(jobs), 7);
                for (size_t i = 0; i < 7; i++) {
                        const struct job_record *r = L.by_age[i];
                        json_t *job = json_array_get(jobs, i);
                        ck_assert_str_eq(json_string_value(json_object_get(job, "id")), r->id);
                        ck_assert_str_eq(json_string_value(json_object_get(job, "algorithm")), r->algorithm);
                        ck_assert_str_eq(json_string_value(json_object_get(job, "status")),
                                         job_status_name(r->status));
                        json_t *res = json_object_get(job, "result");
                        ck_assert_msg(res, "job %s: no \"result\" member", r->id);
                        if (!with || !r->result) {
                                ck_assert_msg(json_is_null(res), "job %s (%s): result not null with_result %d",
                                              r->id, job_status_name(r->status), with);
                        } else {
                                json_t *want = json_loadb(r->result, r->result_len, 0, NULL);
                                ck_assert_ptr_nonnull(want);
                                ck_assert_msg(json_equal(res, want), "job %s: another result", r->id);
                                json_decref(want);
                        }
                }
                json_decref(doc);
        }
        /* The result is spliced in as the text it is. */
        struct store_filter flt = { .status = JOB_SUCCEEDED, .limit = 100, .with_result = true };
        char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(store_list(f.s, &flt, SIZE_MAX, NULL, NULL, &text, &len, &err) == 0, "%s", err.msg);
        for (int i = 0; i < 7; i++)
                if (L.r[i].result)
                        ck_assert_msg(strstr(text, L.r[i].result), "result text of %s not spliced as is: %s",
                                      L.r[i].id, text);
        free(text);
        listing_clear(&L);
        fx_teardown(&f);
}
END_TEST

/* What store_list asked its admit hook: each result's size and whether
 * the page was empty yet, before any of it was read. */
struct admit_log {
        size_t n, yes;          /* calls; the first `yes` are admitted */
        size_t len[8];
        bool first[8];
};

static bool admit_logged(size_t len, bool first, void *ctx)
{
        struct admit_log *a = ctx;
        ck_assert_uint_lt(a->n, 8);
        a->len[a->n] = len;
        a->first[a->n] = first;
        return a->n++ < a->yes;
}

static char *list_text(struct fx *f, const struct store_filter *flt, size_t max_bytes, struct admit_log *a)
{
        char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(store_list(f->s, flt, max_bytes, admit_logged, a, &text, &len, &err) == 0, "%s: %s",
                      f->be->name, err.msg);
        return text;
}

/* Results are admitted by their size before they are read: a no ends
 * the page before its job, `next` going on from the last shown; a result
 * past max_bytes ends it before admit is asked; only succeeded jobs'. */
START_TEST(test_list_admit)
{
        struct fx f;
        fx_setup(&f, _i);
        struct listing L;
        listing_make(&f, &L);
        /* Newest first: 6 cancelled, 5 queued, 4 failed, 3 succeeded, 2
         * running, 1 succeeded, 0 queued. */
        struct store_filter flt = { .status = -1, .limit = 100, .with_result = true };
        struct admit_log a = { .yes = 1 };
        char *text = list_text(&f, &flt, SIZE_MAX, &a);
        ck_assert_uint_eq(a.n, 2);
        ck_assert_uint_eq(a.len[0], L.r[3].result_len);
        ck_assert_uint_eq(a.len[1], L.r[1].result_len);
        ck_assert(!a.first[0] && !a.first[1]);
        json_t *doc = json_loads(text, 0, NULL);
        free(text);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 5);
        ck_assert_str_eq(job_id_at(doc, 3), L.r[3].id);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "next")), L.r[2].id);
        json_decref(doc);

        /* The first refused: an empty page, nothing read. */
        flt.status = JOB_SUCCEEDED;
        a = (struct admit_log){ .yes = 0 };
        text = list_text(&f, &flt, SIZE_MAX, &a);
        ck_assert_uint_eq(a.n, 1);
        ck_assert(a.first[0]);
        doc = json_loads(text, 0, NULL);
        free(text);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 0);
        json_decref(doc);

        /* A page of 1 byte: the first goes whatever its size, the next
         * result is past the page and not asked for. */
        a = (struct admit_log){ .yes = 8 };
        text = list_text(&f, &flt, 1, &a);
        ck_assert_uint_eq(a.n, 1);
        doc = json_loads(text, 0, NULL);
        free(text);
        ck_assert_uint_eq(json_array_size(json_object_get(doc, "jobs")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "next")), L.r[3].id);
        json_decref(doc);

        listing_clear(&L);
        fx_teardown(&f);
}
END_TEST

/* Jobs created in the same millisecond: pages neither skip nor repeat. */
START_TEST(test_list_same_created_ms)
{
        enum { N = 9 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record recs[N];
        for (int i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + 10 * (i / 3));   /* three each in three ms */
                insert(&f, &recs[i]);
        }
        static const size_t limits[] = { 1, 2, 4 };
        for (size_t l = 0; l < ARRAY_SIZE(limits); l++) {
                char ids[N + 4][JOB_ID_LEN + 1];
                struct store_filter flt = { .status = -1, .limit = limits[l] };
                size_t n = list_all(&f, flt, SIZE_MAX, ids, N + 4);
                ck_assert_msg(n == N, "limit %zu: %zu jobs listed, wanted %d", limits[l], n, N);
                int64_t last = INT64_MAX;
                for (int i = 0; i < N; i++) {
                        int times = 0;
                        for (size_t j = 0; j < n; j++)
                                times += !strcmp(ids[j], recs[i].id);
                        ck_assert_msg(times == 1, "limit %zu: %s listed %d times", limits[l], recs[i].id, times);
                }
                for (size_t j = 0; j < n; j++) {
                        for (int i = 0; i < N; i++) {
                                if (strcmp(ids[j], recs[i].id))
                                        continue;
                                ck_assert_msg(recs[i].created_ms <= last, "not newest first");
                                last = recs[i].created_ms;
                        }
                }
        }
        for (int i = 0; i < N; i++)
                record_clear(&recs[i]);
        fx_teardown(&f);
}
END_TEST

/* ---- load_unfinished ---- */

struct seen {
        size_t n;
        char ids[16][JOB_ID_LEN + 1];
        int status[16];
        int64_t created[16];
        bool params[16];
};

static void collect(struct job_record *r, void *ctx)
{
        struct seen *s = ctx;
        if (s->n < 16) {
                snprintf(s->ids[s->n], JOB_ID_LEN + 1, "%s", r->id);
                s->status[s->n] = r->status;
                s->created[s->n] = r->created_ms;
                s->params[s->n] = r->params != NULL;
        }
        s->n++;
}

START_TEST(test_load_unfinished)
{
        struct fx f;
        fx_setup(&f, _i);
        struct listing L;
        listing_make(&f, &L);
        /* One more running record, the newest. */
        struct job_record late;
        rec_queued(&late, "beta", T0 + 5000);
        insert(&f, &late);
        rec_set_running(&late, T0 + 6000);
        update_applied(&f, &late, JOB_QUEUED);

        struct job_record *want[8];
        size_t n = 0;
        for (int i = 6; i >= 0; i--)
                if (!job_status_is_final(L.by_age[i]->status))
                        want[n++] = L.by_age[i];
        want[n++] = &late;

        for (int round = 0; round < 2; round++) {
                struct seen s = { 0 };
                struct err err = ERR_INIT;
                ck_assert_msg(store_load_unfinished(f.s, collect, &s, &err) == 0, "%s", err.msg);
                ck_assert_msg(s.n == n, "round %d: %zu unfinished records, wanted %zu", round, s.n, n);
                for (size_t i = 0; i < n; i++) {
                        ck_assert_msg(!strcmp(s.ids[i], want[i]->id),
                                      "round %d: unfinished %zu is %s (created %lld), wanted %s (created %lld)",
                                      round, i, s.ids[i], (long long)s.created[i], want[i]->id,
                                      (long long)want[i]->created_ms);
                        ck_assert_int_eq(s.status[i], want[i]->status);
                        ck_assert(!job_status_is_final(s.status[i]));
                }
                fx_reopen(&f);   /* the same after a restart */
        }
        record_clear(&late);
        listing_clear(&L);
        fx_teardown(&f);
}
END_TEST

/* ---- prune ---- */

START_TEST(test_prune_by_time)
{
        struct fx f;
        fx_setup(&f, _i);
        const int64_t cutoff = T0 + 100000;
        struct job_record A, B, D, C, Q, R;
        rec_queued(&A, "alpha", T0 + 1);
        rec_queued(&B, "alpha", T0 + 2);
        rec_queued(&D, "beta", T0 + 3);
        rec_queued(&C, "alpha", T0 + 4);
        rec_queued(&Q, "alpha", T0 + 5);
        rec_queued(&R, "beta", T0 + 6);
        struct job_record *all[] = { &A, &B, &D, &C, &Q, &R };
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                insert(&f, all[i]);
        /* A: succeeded long ago, two attempts (two logs). */
        rec_set_running(&A, T0 + 10);
        update_applied(&f, &A, JOB_QUEUED);
        rec_set_final(&A, JOB_SUCCEEDED, T0 + 1000, 2, "true");
        update_applied(&f, &A, JOB_RUNNING);
        /* B: failed long ago. */
        rec_set_running(&B, T0 + 11);
        update_applied(&f, &B, JOB_QUEUED);
        rec_set_final(&B, JOB_FAILED, T0 + 2000, 1, NULL);
        update_applied(&f, &B, JOB_RUNNING);
        /* D: cancelled while queued long ago: no attempt, no log. */
        rec_set_final(&D, JOB_CANCELLED, T0 + 3000, 0, NULL);
        update_applied(&f, &D, JOB_QUEUED);
        /* C: succeeded after the cutoff. */
        rec_set_running(&C, T0 + 12);
        update_applied(&f, &C, JOB_QUEUED);
        rec_set_final(&C, JOB_SUCCEEDED, cutoff + 5000, 1, "false");
        update_applied(&f, &C, JOB_RUNNING);
        /* Q: queued again after a crash interrupted its first attempt. */
        free(Q.attempts);
        Q.attempts = attempts_text(Q.id, 1, T0 + 13, T0 + 14);
        Q.recoveries = 1;
        update_applied(&f, &Q, JOB_QUEUED);
        /* R: running since long ago. */
        rec_set_running(&R, T0 + 15);
        update_applied(&f, &R, JOB_QUEUED);

        make_log(&f, A.id, 1);
        make_log(&f, A.id, 2);
        make_log(&f, B.id, 1);
        make_log(&f, C.id, 1);
        make_log(&f, Q.id, 1);
        make_log(&f, R.id, 1);
        char *other = tu_write(f.logs, "unrelated.log", "x\n");

        ck_assert_uint_eq(prune(&f, cutoff, 1000), 3);
        assert_gone(&f, A.id);
        assert_gone(&f, B.id);
        assert_gone(&f, D.id);
        assert_present(&f, C.id);
        assert_present(&f, Q.id);
        assert_present(&f, R.id);
        ck_assert_uint_eq(store_count(f.s), 3);
        ck_assert_msg(!log_exists(&f, A.id, 1), "log A-1 of a pruned record left");
        ck_assert_msg(!log_exists(&f, A.id, 2), "log A-2 of a pruned record left");
        ck_assert_msg(!log_exists(&f, B.id, 1), "log B-1 of a pruned record left");
        ck_assert_msg(log_exists(&f, C.id, 1), "log of a kept final record removed");
        ck_assert_msg(log_exists(&f, Q.id, 1), "log of a queued record removed");
        ck_assert_msg(log_exists(&f, R.id, 1), "log of a running record removed");
        ck_assert_int_eq(access(other, F_OK), 0);

        /* Nothing more to do; and queued/running records are never pruned,
         * however old the cutoff makes them look. */
        ck_assert_uint_eq(prune(&f, cutoff, 1000), 0);
        ck_assert_uint_eq(prune(&f, INT64_MAX, 1000), 1);   /* C */
        assert_gone(&f, C.id);
        ck_assert_msg(!log_exists(&f, C.id, 1), "log of C left");
        assert_present(&f, Q.id);
        assert_present(&f, R.id);
        ck_assert_msg(log_exists(&f, Q.id, 1) && log_exists(&f, R.id, 1), "logs of unfinished records removed");

        /* The deletions are durable. */
        fx_reopen(&f);
        ck_assert_uint_eq(store_count(f.s), 2);
        assert_gone(&f, A.id);

        free(other);
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                record_clear(all[i]);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_prune_by_count)
{
        enum { NF = 5 };
        struct fx f;
        fx_setup(&f, _i);
        /* Finished in another order than created: F0 last. */
        static const int64_t finished[NF] = { 500, 100, 200, 300, 400 };
        struct job_record F[NF], Q, R;
        for (int i = 0; i < NF; i++) {
                rec_queued(&F[i], "alpha", T0 + 1 + i);
                insert(&f, &F[i]);
                rec_set_running(&F[i], T0 + 20 + i);
                update_applied(&f, &F[i], JOB_QUEUED);
                rec_set_final(&F[i], i == 2 ? JOB_FAILED : JOB_SUCCEEDED, T0 + finished[i], 1, "0");
                update_applied(&f, &F[i], JOB_RUNNING);
                make_log(&f, F[i].id, 1);
        }
        rec_queued(&Q, "alpha", T0);
        insert(&f, &Q);
        rec_queued(&R, "alpha", T0 + 10);
        insert(&f, &R);
        rec_set_running(&R, T0 + 11);
        update_applied(&f, &R, JOB_QUEUED);
        make_log(&f, R.id, 1);

        /* Keep the two newest-finished: F0 (500) and F4 (400). */
        ck_assert_uint_eq(prune(&f, 0, 2), 3);
        assert_present(&f, F[0].id);
        assert_present(&f, F[4].id);
        for (int i = 1; i <= 3; i++) {
                assert_gone(&f, F[i].id);
                ck_assert_msg(!log_exists(&f, F[i].id, 1), "log of pruned F%d left", i);
        }
        ck_assert_msg(log_exists(&f, F[0].id, 1) && log_exists(&f, F[4].id, 1), "log of a kept record removed");
        assert_present(&f, Q.id);
        assert_present(&f, R.id);
        ck_assert_msg(log_exists(&f, R.id, 1), "log of the running record removed");
        ck_assert_uint_eq(store_count(f.s), 4);
        /* Already within the limit. */
        ck_assert_uint_eq(prune(&f, 0, 2), 0);
        /* One: F0 stays; unfinished ones do not count. */
        ck_assert_uint_eq(prune(&f, 0, 1), 1);
        assert_present(&f, F[0].id);
        assert_gone(&f, F[4].id);
        ck_assert_uint_eq(store_count(f.s), 3);

        for (int i = 0; i < NF; i++)
                record_clear(&F[i]);
        record_clear(&Q);
        record_clear(&R);
        fx_teardown(&f);
}
END_TEST

/* More than one bounded step's worth: store_prune goes on until done. */
START_TEST(test_prune_many)
{
        enum { N = 1500 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record *recs = xcalloc(N, sizeof *recs);
        struct store_item *items = xcalloc(N, sizeof *items);
        for (size_t i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + (int64_t)i);
                items[i] = (struct store_item){ .rec = &recs[i], .expect_status = -1 };
        }
        struct store_write ins = { .kind = STORE_INSERT, .items = items, .n = N };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f.s, &ins, &err) == 0, "%s", err.msg);
        /* Finished through async updates, all in flight at once. */
        struct store_write *ws = xcalloc(N, sizeof *ws);
        struct store_item *uitems = xcalloc(N, sizeof *uitems);
        struct waiter wt;
        waiter_init(&wt);
        for (size_t i = 0; i < N; i++) {
                rec_set_final(&recs[i], JOB_SUCCEEDED, T0 + 10000 + (int64_t)i, i % 7 == 0 ? 1 : 0, "{}");
                uitems[i] = (struct store_item){ .rec = &recs[i], .expect_status = JOB_QUEUED };
                ws[i] = (struct store_write){ .kind = STORE_UPDATE, .items = &uitems[i], .n = 1, .done = on_done,
                                              .ctx = &wt };
                if (i % 7 == 0)
                        make_log(&f, recs[i].id, 1);
        }
        for (size_t i = 0; i < N; i++)
                store_write_async(f.s, &ws[i]);
        ck_assert_msg(waiter_wait(&wt, N), "%d of %d updates done in 60 s", waiter_calls(&wt), N);
        for (size_t i = 0; i < N; i++) {
                ck_assert_msg(ws[i].err.code == ERR_OK, "update %zu: %s", i, ws[i].err.msg);
                ck_assert_int_eq(uitems[i].outcome, STORE_ITEM_OK);
        }
        struct job_record q;
        rec_queued(&q, "alpha", T0);
        insert(&f, &q);
        ck_assert_uint_eq(store_count(f.s), N + 1);

        ck_assert_uint_eq(prune(&f, T0 + 10000 + N, 1000000), N);
        ck_assert_uint_eq(store_count(f.s), 1);
        assert_present(&f, q.id);
        for (size_t i = 0; i < N; i += 7)
                ck_assert_msg(!log_exists(&f, recs[i].id, 1), "log of pruned record %zu left", i);
        ck_assert_int_eq(waiter_calls(&wt), N);

        for (size_t i = 0; i < N; i++)
                record_clear(&recs[i]);
        record_clear(&q);
        free(recs);
        free(items);
        free(uitems);
        free(ws);
        fx_teardown(&f);
        waiter_destroy(&wt);
}
END_TEST

/* ---- async writes ---- */

#define THREADS 8
#define PER_THREAD 25

struct worker {
        struct store *s;
        int index;
        char ids[PER_THREAD][JOB_ID_LEN + 1];
        struct waiter wt[PER_THREAD];
        int failures;
        char why[ERR_MSG_MAX + 64];
};

static void *worker_main(void *arg)
{
        struct worker *wk = arg;
        for (int i = 0; i < PER_THREAD; i++) {
                /* Heap-allocated, freed once done: a backend that touched
                 * them after done() would be caught by ASan. */
                struct job_record *r = xcalloc(1, sizeof *r);
                rec_queued(r, wk->index % 2 ? "alpha" : "beta", T0 + wk->index * 1000 + i);
                snprintf(wk->ids[i], JOB_ID_LEN + 1, "%s", r->id);
                struct store_item *it = xcalloc(1, sizeof *it);
                *it = (struct store_item){ .rec = r, .expect_status = -1 };
                struct store_write *w = xcalloc(1, sizeof *w);
                *w = (struct store_write){ .kind = STORE_INSERT, .items = it, .n = 1, .done = on_done,
                                           .ctx = &wk->wt[i] };
                store_write_async(wk->s, w);
                if (!waiter_wait(&wk->wt[i], 1)) {
                        wk->failures++;
                        snprintf(wk->why, sizeof wk->why, "thread %d write %d: no done in 60 s", wk->index, i);
                        return NULL;   /* leaks w: it may still be in use */
                }
                if (w->err.code != ERR_OK || it->outcome != STORE_ITEM_OK) {
                        wk->failures++;
                        snprintf(wk->why, sizeof wk->why, "thread %d write %d: %s (outcome %d)", wk->index, i,
                                 w->err.msg, (int)it->outcome);
                }
                record_clear(r);
                free(r);
                free(it);
                free(w);
        }
        return NULL;
}

START_TEST(test_async_threads)
{
        struct fx f;
        fx_setup(&f, _i);
        struct store_stats st0 = { 0 }, st1 = { 0 };
        store_stats(f.s, &st0);
        struct worker *wk = xcalloc(THREADS, sizeof *wk);
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++) {
                wk[t].s = f.s;
                wk[t].index = t;
                for (int i = 0; i < PER_THREAD; i++)
                        waiter_init(&wk[t].wt[i]);
                ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &wk[t]), 0);
        }
        for (int t = 0; t < THREADS; t++)
                pthread_join(th[t], NULL);
        for (int t = 0; t < THREADS; t++)
                ck_assert_msg(wk[t].failures == 0, "%s", wk[t].why);
        ck_assert_uint_eq(store_count(f.s), THREADS * PER_THREAD);
        for (int t = 0; t < THREADS; t++)
                for (int i = 0; i < PER_THREAD; i++)
                        assert_present(&f, wk[t].ids[i]);

        store_stats(f.s, &st1);
        ck_assert_msg(st1.writes >= THREADS * PER_THREAD, "stats: %llu writes", (unsigned long long)st1.writes);
        ck_assert_msg(st1.writes - st0.writes >= THREADS * PER_THREAD, "stats: %llu writes during the test",
                      (unsigned long long)(st1.writes - st0.writes));
        ck_assert_msg(st1.commits >= 1 && st1.commits <= st1.writes, "stats: %llu commits for %llu writes",
                      (unsigned long long)st1.commits, (unsigned long long)st1.writes);
        ck_assert_msg(st1.commits - st0.commits <= st1.writes - st0.writes, "stats: more commits than writes");
        ck_assert_uint_eq(st1.failures, 0);

        fx_close_store(&f);
        /* Each done exactly once, also counting any late call. */
        for (int t = 0; t < THREADS; t++)
                for (int i = 0; i < PER_THREAD; i++) {
                        ck_assert_int_eq(waiter_calls(&wk[t].wt[i]), 1);
                        waiter_destroy(&wk[t].wt[i]);
                }
        fx_open_store(&f);
        ck_assert_uint_eq(store_count(f.s), THREADS * PER_THREAD);
        free(wk);
        fx_teardown(&f);
}
END_TEST

/* store_close waits for the writes in flight: each is answered once, and
 * each answered ok is there after a reopen. */
START_TEST(test_close_waits)
{
        enum { N = 100 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record *recs = xcalloc(N, sizeof *recs);
        struct store_item *items = xcalloc(N, sizeof *items);
        struct store_write *ws = xcalloc(N, sizeof *ws);
        struct waiter *wt = xcalloc(N, sizeof *wt);
        for (size_t i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + (int64_t)i);
                items[i] = (struct store_item){ .rec = &recs[i], .expect_status = -1 };
                waiter_init(&wt[i]);
                ws[i] = (struct store_write){ .kind = STORE_INSERT, .items = &items[i], .n = 1, .done = on_done,
                                              .ctx = &wt[i] };
        }
        for (size_t i = 0; i < N; i++)
                store_write_async(f.s, &ws[i]);
        fx_close_store(&f);
        size_t ok = 0;
        for (size_t i = 0; i < N; i++) {
                ck_assert_msg(waiter_calls(&wt[i]) == 1, "write %zu: done called %d times by store_close's end", i,
                              waiter_calls(&wt[i]));
                if (ws[i].err.code == ERR_OK)
                        ok++;
        }
        fx_open_store(&f);
        ck_assert_uint_eq(store_count(f.s), ok);
        for (size_t i = 0; i < N; i++)
                if (ws[i].err.code == ERR_OK)
                        assert_present(&f, recs[i].id);
        for (size_t i = 0; i < N; i++) {
                record_clear(&recs[i]);
                waiter_destroy(&wt[i]);
        }
        free(recs);
        free(items);
        free(ws);
        free(wt);
        fx_teardown(&f);
}
END_TEST

/* ---- check, health, paths ---- */

START_TEST(test_check_health)
{
        struct fx f;
        fx_setup(&f, _i);
        struct err err = ERR_INIT;
        ck_assert_msg(store_check(f.s, &err) == 0, "%s: store_check on an empty store: %s", f.be->name, err.msg);
        struct listing L;
        listing_make(&f, &L);
        ck_assert_msg(store_check(f.s, &err) == 0, "%s: store_check: %s", f.be->name, err.msg);
        char reason[256] = "";
        ck_assert_msg(store_health(f.s, reason, sizeof reason), "%s: unhealthy: %s", f.be->name, reason);
        struct store_stats st = { 0 };
        store_stats(f.s, &st);
        ck_assert_uint_eq(st.failures, 0);
        ck_assert_msg(st.commits >= 1 && st.commits <= st.writes, "%llu commits, %llu writes",
                      (unsigned long long)st.commits, (unsigned long long)st.writes);

        char *p = store_log_path(f.s, "abc", 1);
        char *want = xasprintf("%s/abc-1.log", f.logs);
        ck_assert_str_eq(p, want);
        free(p);
        free(want);
        listing_clear(&L);
        fx_teardown(&f);
}
END_TEST

/* Two prune writes committed together (the writer held up by a done
 * callback meanwhile): each write reports the records it deleted, once. */
struct gate {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool entered, open;
};

static void gate_done(struct store_write *w)
{
        struct gate *g = w->ctx;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;   /* never a deadlock, should done run in the caller */
        pthread_mutex_lock(&g->lock);
        g->entered = true;
        pthread_cond_broadcast(&g->cond);
        while (!g->open && pthread_cond_timedwait(&g->cond, &g->lock, &until) == 0)
                ;
        pthread_mutex_unlock(&g->lock);
}

struct pruned_seen {
        size_t calls;
        char ids[16][JOB_ID_LEN + 1];
};

static void note_pruned(const char *id, size_t attempts, void *ctx)
{
        (void)attempts;
        struct pruned_seen *p = ctx;
        if (p->calls < 16)
                snprintf(p->ids[p->calls], JOB_ID_LEN + 1, "%s", id);
        p->calls++;
}

START_TEST(test_prune_writes_together)
{
        enum { N = 10 };
        struct fx f;
        fx_setup(&f, _i);
        struct job_record recs[N], x;
        for (int i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + i);
                insert(&f, &recs[i]);
                rec_set_final(&recs[i], JOB_SUCCEEDED, T0 + 100 + i, 0, "0");
                update_applied(&f, &recs[i], JOB_QUEUED);
        }
        /* Hold the writer in x's done callback, queue two prunes, let go. */
        struct gate g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        rec_queued(&x, "alpha", T0 + 1000);
        struct store_item xi = { .rec = &x, .expect_status = -1 };
        struct store_write xw = { .kind = STORE_INSERT, .items = &xi, .n = 1, .done = gate_done, .ctx = &g };
        store_write_async(f.s, &xw);
        pthread_mutex_lock(&g.lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (!g.entered && pthread_cond_timedwait(&g.cond, &g.lock, &until) == 0)
                ;
        pthread_mutex_unlock(&g.lock);
        struct pruned_seen seen[2] = { 0 };
        struct waiter wt;
        waiter_init(&wt);
        struct store_write pw[2];
        for (int k = 0; k < 2; k++) {
                pw[k] = (struct store_write){ .kind = STORE_PRUNE, .prune_before_ms = T0 + 100000,
                                              .prune_max_records = 1000000, .prune_limit = N / 2,
                                              .on_pruned = note_pruned, .prune_ctx = &seen[k], .done = on_done,
                                              .ctx = &wt };
                store_write_async(f.s, &pw[k]);
        }
        pthread_mutex_lock(&g.lock);
        g.open = true;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.lock);
        ck_assert_msg(waiter_wait(&wt, 2), "prune writes not done in 60 s");
        for (int k = 0; k < 2; k++) {
                ck_assert_msg(pw[k].err.code == ERR_OK, "prune %d: %s", k, pw[k].err.msg);
                ck_assert_msg(seen[k].calls == pw[k].pruned,
                              "%s: prune write %d deleted %zu records but on_pruned was called %zu times",
                              f.be->name, k, pw[k].pruned, seen[k].calls);
        }
        ck_assert_uint_eq(pw[0].pruned + pw[1].pruned, N);
        for (int i = 0; i < N; i++) {
                int times = 0;
                for (int k = 0; k < 2; k++)
                        for (size_t j = 0; j < seen[k].calls && j < 16; j++)
                                times += !strcmp(seen[k].ids[j], recs[i].id);
                ck_assert_msg(times == 1, "%s: %s reported %d times", f.be->name, recs[i].id, times);
                assert_gone(&f, recs[i].id);
        }
        assert_present(&f, x.id);
        ck_assert_uint_eq(store_count(f.s), 1);
        waiter_destroy(&wt);
        for (int i = 0; i < N; i++)
                record_clear(&recs[i]);
        record_clear(&x);
        fx_teardown(&f);
}
END_TEST

/* A write that fails leaves none of its items behind: here an insert of
 * three records whose second reuses an id. */
START_TEST(test_failed_write_leaves_nothing)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record old, a, dup, b;
        rec_queued(&old, "alpha", T0);
        insert(&f, &old);
        rec_queued(&a, "alpha", T0 + 1);
        rec_queued(&dup, "beta", T0 + 2);
        memcpy(dup.id, old.id, sizeof dup.id);
        rec_queued(&b, "alpha", T0 + 3);
        struct store_item items[3] = {
                { .rec = &a, .expect_status = -1 },
                { .rec = &dup, .expect_status = -1, .outcome = STORE_ITEM_NOT_APPLIED },
                { .rec = &b, .expect_status = -1 },
        };
        struct store_write w = { .kind = STORE_INSERT, .items = items, .n = 3 };
        struct err err = ERR_INIT;
        int rc = store_write_sync(f.s, &w, &err);
        ck_assert_msg(rc == -1 || items[1].outcome != STORE_ITEM_OK, "%s: a duplicate id was inserted", f.be->name);
        if (rc == -1) {
                enum err_code ca = get_code(&f, a.id), cb = get_code(&f, b.id);
                ck_assert_msg(ca == ERR_NOT_FOUND && cb == ERR_NOT_FOUND,
                              "%s: the insert failed (%s) yet stored %s%s%s", f.be->name, err.msg,
                              ca == ERR_OK ? "item 0 " : "", cb == ERR_OK ? "item 2" : "", "");
                ck_assert_uint_eq(store_count(f.s), 1);
        } else {
                /* Answered per item: those ok are there. */
                for (int i = 0; i < 3; i += 2)
                        if (items[i].outcome == STORE_ITEM_OK)
                                assert_present(&f, items[i].rec->id);
        }
        struct job_record got;
        get_ok(&f, old.id, STORE_READ_PARAMS, &got);
        rec_assert_eq("the record whose id was reused", &got, &old, STORE_READ_PARAMS);
        record_clear(&got);
        record_clear(&old);
        record_clear(&a);
        record_clear(&dup);
        record_clear(&b);
        fx_teardown(&f);
}
END_TEST

/* ---- fail-stop ---- */

struct bg_update {
        struct store *s;
        struct job_record *rec;
        int expect_status;
        int rc;
        struct err err;
        struct waiter wt;   /* one call when store_update returned */
};

static void *bg_update_main(void *arg)
{
        struct bg_update *u = arg;
        u->rc = store_update(u->s, u->rec, u->expect_status, &u->err);
        pthread_mutex_lock(&u->wt.lock);
        u->wt.calls++;
        pthread_cond_broadcast(&u->wt.cond);
        pthread_mutex_unlock(&u->wt.lock);
        return NULL;
}

/* A failed commit: unhealthy with a reason, inserts refused at once
 * (ERR_UNAVAILABLE), reads go on, an update is held and retried, and once
 * writes work the store is healthy again and the held update applied.
 * Between break_writes and mend_writes results are only noted. */
START_TEST(test_fail_stop)
{
        struct fx f;
        fx_setup(&f, _i);
        if (!f.be->break_writes) {
                fx_teardown(&f);
                return;
        }
        struct job_record q, a, b, later, run, got, got2;
        rec_queued(&q, "alpha", T0 + 1);
        insert(&f, &q);
        get_ok(&f, q.id, STORE_READ_PARAMS, &got);   /* a reader is open */
        record_clear(&got);
        struct store_stats st0, st1;
        store_stats(f.s, &st0);
        rec_queued(&a, "alpha", T0 + 2);
        rec_queued(&b, "alpha", T0 + 3);
        rec_copy(&run, &q);
        rec_set_running(&run, T0 + 50);
        struct store_item ia = { .rec = &a, .expect_status = -1 }, ib = { .rec = &b, .expect_status = -1 };
        struct store_write wa = { .kind = STORE_INSERT, .items = &ia, .n = 1 };
        struct store_write wb = { .kind = STORE_INSERT, .items = &ib, .n = 1 };
        struct err ea = ERR_INIT, eb = ERR_INIT, eg = ERR_INIT, el = ERR_INIT;
        char reason[512] = "";
        struct store_filter flt = { .status = -1, .limit = 10 };
        char *text = NULL;
        size_t len = 0;
        struct bg_update u = { .s = f.s, .rec = &run, .expect_status = JOB_QUEUED };
        waiter_init(&u.wt);
        memset(&got2, 0, sizeof got2);
        pthread_t th;

        /* ---- writes fail: no assertions ---- */
        bool broken = f.be->break_writes(f.dir);
        int rca = store_write_sync(f.s, &wa, &ea);
        bool healthy1 = store_health(f.s, reason, sizeof reason);
        store_stats(f.s, &st1);
        int rcb = store_write_sync(f.s, &wb, &eb);   /* refused at once */
        int rcg = store_get(f.s, q.id, STORE_READ_PARAMS, &got2, &eg);
        int rcl = store_list(f.s, &flt, SIZE_MAX, NULL, NULL, &text, &len, &el);
        int rct = pthread_create(&th, NULL, bg_update_main, &u);
        usleep(1500 * 1000);   /* past a retry */
        int calls_while_broken = waiter_calls(&u.wt);
        bool healthy2 = store_health(f.s, NULL, 0);
        bool mended = f.be->mend_writes(f.dir);
        /* ---- writes work again ---- */

        ck_assert(broken && mended);
        ck_assert_int_eq(rct, 0);
        ck_assert_msg(rca == -1, "%s: an insert was answered ok while commits fail", f.be->name);
        ck_assert_msg(ea.code == ERR_UNAVAILABLE, "%s: failed insert: %s: %s", f.be->name, err_code_name(ea.code),
                      ea.msg);
        ck_assert_msg(!healthy1, "%s: healthy after a failed commit", f.be->name);
        ck_assert_msg(reason[0], "%s: unhealthy without a reason", f.be->name);
        ck_assert_uint_ge(st1.failures, st0.failures + 1);
        ck_assert_msg(rcb == -1 && eb.code == ERR_UNAVAILABLE, "%s: insert while unhealthy: %d %s: %s", f.be->name,
                      rcb, err_code_name(eb.code), eb.msg);
        ck_assert_msg(rcg == 0, "%s: store_get while unhealthy: %s", f.be->name, eg.msg);
        ck_assert_int_eq(got2.status, JOB_QUEUED);
        text_eq("get while unhealthy", "params", got2.params, got2.params_len, q.params, q.params_len);
        record_clear(&got2);
        ck_assert_msg(rcl == 0, "%s: store_list while unhealthy: %s", f.be->name, el.msg);
        ck_assert_ptr_nonnull(strstr(text, q.id));
        free(text);
        ck_assert_msg(calls_while_broken == 0, "%s: store_update returned (%d: %s) while commits fail", f.be->name,
                      u.rc, u.err.msg);
        ck_assert(!healthy2);

        /* The held update is applied once writes work again. */
        ck_assert_msg(waiter_wait(&u.wt, 1), "%s: the held update never finished", f.be->name);
        pthread_join(th, NULL);
        ck_assert_msg(u.rc == 1, "%s: held update: %d (%s)", f.be->name, u.rc, u.err.msg);
        ck_assert_msg(store_health(f.s, reason, sizeof reason), "%s: still unhealthy: %s", f.be->name, reason);
        get_ok(&f, q.id, STORE_READ_PARAMS, &got);
        rec_assert_eq("held update", &got, &run, STORE_READ_PARAMS);
        record_clear(&got);
        assert_gone(&f, a.id);
        assert_gone(&f, b.id);
        rec_queued(&later, "alpha", T0 + 4);
        insert(&f, &later);
        ck_assert_uint_eq(store_count(f.s), 2);
        struct err err = ERR_INIT;
        ck_assert_msg(store_check(f.s, &err) == 0, "%s", err.msg);
        fx_reopen(&f);
        ck_assert_uint_eq(store_count(f.s), 2);
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_RUNNING);
        record_clear(&got);

        waiter_destroy(&u.wt);
        record_clear(&q);
        record_clear(&a);
        record_clear(&b);
        record_clear(&later);
        record_clear(&run);
        fx_teardown(&f);
}
END_TEST

/* Closing while writes fail: a held update fails (done once, not ok) and
 * is not applied. */
/* store_abandon (the drain is over): a held update fails at once instead
 * of holding the stop, and a later failing one is not held either. */
START_TEST(test_fail_stop_abandon)
{
        struct fx f;
        fx_setup(&f, _i);
        if (!f.be->break_writes) {
                fx_teardown(&f);
                return;
        }
        struct job_record q, run;
        rec_queued(&q, "alpha", T0 + 1);
        insert(&f, &q);
        rec_copy(&run, &q);
        rec_set_running(&run, T0 + 50);
        struct store_item uit = { .rec = &run, .expect_status = JOB_QUEUED };
        struct waiter wt;
        waiter_init(&wt);
        struct store_write uw = { .kind = STORE_UPDATE, .items = &uit, .n = 1, .retry = true, .done = on_done,
                                  .ctx = &wt };

        /* ---- writes fail: no assertions ---- */
        bool broken = f.be->break_writes(f.dir);
        store_write_async(f.s, &uw);
        usleep(300 * 1000);
        int calls_held = waiter_calls(&wt);
        store_abandon(f.s);
        bool answered = waiter_wait(&wt, 1);
        struct err e2 = ERR_INIT;
        int rc2 = store_update(f.s, &run, -1, &e2);   /* not held: fails, does not block */
        bool mended = f.be->mend_writes(f.dir);
        /* ---- writes work again ---- */

        ck_assert(broken && mended);
        ck_assert_int_eq(calls_held, 0);
        ck_assert_msg(answered, "%s: a held update was not answered after store_abandon", f.be->name);
        ck_assert_int_ne(uw.err.code, ERR_OK);
        ck_assert_int_eq(rc2, -1);
        struct job_record got;
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_QUEUED);
        record_clear(&got);
        waiter_destroy(&wt);
        record_clear(&q);
        record_clear(&run);
        fx_teardown(&f);
}
END_TEST

static off_t file_size(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The WAL goes back into the database between commits, by the writer when
 * it is idle, not inside the commit that crossed the threshold. */
START_TEST(test_checkpoints_when_idle)
{
        struct fx f;
        fx_setup(&f, _i);
        _cleanup_free_ char *db = xasprintf("%s/edgecd.db", f.dir);
        off_t before = file_size(db);
        struct store_stats st0, st1;
        store_stats(f.s, &st0);
        /* About 5 pages each: past SQLite's 1000-page threshold. */
        for (int i = 0; i < 300; i++) {
                struct job_record r;
                rec_queued(&r, "ckpt", 1000 + i);
                free(r.params);
                r.params = xmalloc(16385);
                memset(r.params, ' ', 16384);
                r.params[0] = '{';
                r.params[16383] = '}';
                r.params[16384] = '\0';
                r.params_len = 16384;
                insert(&f, &r);
                record_clear(&r);
        }
        int64_t until = now_mono_ms() + 10000;
        do {
                store_stats(f.s, &st1);
                if (st1.checkpoints > st0.checkpoints)
                        break;
                usleep(10000);
        } while (now_mono_ms() < until);
        ck_assert_msg(st1.checkpoints > st0.checkpoints, "no checkpoint after 300 commits");
        ck_assert_msg(file_size(db) > before + 100 * 16384, "the database did not take the WAL's pages: %lld -> %lld",
                      (long long)before, (long long)file_size(db));
        fx_teardown(&f);
}
END_TEST

/* A lazy write is answered before its commit: no reader sees it, and a
 * crash of the process before any commit loses it.  A later write that is
 * not lazy (here a STORE_SYNC) carries it in its own commit, else the
 * writer commits it on its own within a second (DEFER_MS).  A lazy
 * update waits only with its record's insert: once that is on disk (a
 * reader may have seen the record) the update is committed at once. */
static int lazy_update(struct store *s, const struct job_record *of, enum job_status status, int64_t recoveries,
                       struct err *err)
{
        struct job_record r;
        rec_copy(&r, of);   /* taken by the update */
        r.status = status;
        r.recoveries = recoveries;
        return store_update_end(store_update_begin(s, &r, -1, true), err);
}

static int lazy_insert(struct store *s, struct job_record *r, struct err *err)
{
        struct store_item it = { .rec = r, .expect_status = -1 };
        struct store_write w = { .kind = STORE_INSERT, .items = &it, .n = 1, .lazy = true };
        return store_write_sync(s, &w, err) < 0 || it.outcome != STORE_ITEM_OK ? -1 : 0;
}

START_TEST(test_lazy_writes)
{
        struct fx f;
        struct job_record q, a, b, c, got;
        fx_setup_one_closed(&f, _i, &q);
        rec_queued(&a, "alpha", T0 + 1);
        rec_queued(&b, "alpha", T0 + 2);
        rec_queued(&c, "alpha", T0 + 3);

        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* The crash: a lazy insert and update, then _exit without
                 * a close. */
                struct store *s = NULL;
                struct err err = ERR_INIT;
                if (store_open(f.be->name, f.dir, f.logs, &s, &err) < 0)
                        _exit(2);
                struct store_stats st0, st1;
                store_stats(s, &st0);
                if (lazy_insert(s, &a, &err) < 0 || lazy_update(s, &a, JOB_RUNNING, 3, &err) != 1)
                        _exit(3);
                store_stats(s, &st1);
                if (st1.commits != st0.commits || st1.deferred_writes != st0.deferred_writes + 2)
                        _exit(4);
                if (store_get(s, a.id, 0, &got, &err) == 0 || err.code != ERR_NOT_FOUND)
                        _exit(5);
                _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child: status %#x", status);

        fx_open_store(&f);
        assert_gone(&f, a.id);
        struct err err = ERR_INIT;
        struct store_stats st0, st1;

        /* A lazy update of a record on disk: committed at once. */
        store_stats(f.s, &st0);
        ck_assert_int_eq(lazy_update(f.s, &q, JOB_RUNNING, 4, &err), 1);
        store_stats(f.s, &st1);
        ck_assert_uint_eq(st1.commits - st0.commits, 1);
        ck_assert_uint_eq(st1.deferred_writes, st0.deferred_writes);
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 4);
        record_clear(&got);

        /* A lazy insert and update, then a sync: one commit for all, and
         * only then seen. */
        store_stats(f.s, &st0);
        ck_assert_int_eq(lazy_insert(f.s, &b, &err), 0);
        ck_assert_int_eq(lazy_update(f.s, &b, JOB_RUNNING, 1, &err), 1);
        assert_gone(&f, b.id);
        struct store_write sync = { .kind = STORE_SYNC };
        ck_assert_msg(store_write_sync(f.s, &sync, &err) == 0, "%s", err.msg);
        store_stats(f.s, &st1);
        ck_assert_uint_eq(st1.commits - st0.commits, 1);
        ck_assert_uint_eq(st1.deferred_writes - st0.deferred_writes, 2);
        get_ok(&f, b.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_RUNNING);
        record_clear(&got);

        /* A lazy insert alone: committed by the writer itself; an update
         * after that is not deferred. */
        ck_assert_int_eq(lazy_insert(f.s, &c, &err), 0);
        int64_t until = now_mono_ms() + 10000;
        bool seen = false;
        while (!seen && now_mono_ms() < until) {
                seen = store_get(f.s, c.id, 0, &got, &err) == 0;
                record_clear(&got);
                usleep(20000);
        }
        ck_assert_msg(seen, "a lazy insert was never committed on its own");
        store_stats(f.s, &st0);
        ck_assert_uint_eq(st0.commits - st1.commits, 1);
        ck_assert_int_eq(lazy_update(f.s, &c, JOB_RUNNING, 2, &err), 1);
        get_ok(&f, c.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 2);
        record_clear(&got);
        store_stats(f.s, &st1);
        ck_assert_uint_eq(st1.deferred_writes, st0.deferred_writes);

        /* A lazy update that leaves its kept insert queued: written all
         * the same. */
        struct job_record g;
        rec_queued(&g, "alpha", T0 + 5);
        ck_assert_int_eq(lazy_insert(f.s, &g, &err), 0);
        ck_assert_int_eq(lazy_update(f.s, &g, JOB_QUEUED, 6, &err), 1);
        ck_assert_msg(store_write_sync(f.s, &sync, &err) == 0, "%s", err.msg);
        get_ok(&f, g.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 6);
        record_clear(&got);
        record_clear(&g);

        /* Lazy updates of a kept insert: the condition as the SQL's,
         * every field an update writes, and a final one (not lazy) after
         * them, in one commit. */
        struct job_record e, run, fin, want;
        rec_queued(&e, "beta", T0 + 4);
        ck_assert_int_eq(lazy_insert(f.s, &e, &err), 0);
        rec_copy(&run, &e);
        rec_set_running(&run, T0 + 40);
        ck_assert_int_eq(store_update_end(store_update_begin(f.s, &run, JOB_RUNNING, true), &err), 0);
        rec_copy(&run, &e);
        rec_set_running(&run, T0 + 40);
        run.recoveries = 2;
        ck_assert_int_eq(store_update_end(store_update_begin(f.s, &run, JOB_QUEUED, true), &err), 1);
        assert_gone(&f, e.id);
        rec_copy(&fin, &e);
        rec_set_running(&fin, T0 + 40);
        fin.recoveries = 2;
        rec_set_final(&fin, JOB_SUCCEEDED, T0 + 400, 1, "{\"x\": [1, 2]}");
        rec_copy(&want, &fin);   /* with e's parameters */
        store_stats(f.s, &st0);
        update_applied(&f, &fin, JOB_RUNNING);
        store_stats(f.s, &st1);
        ck_assert_uint_eq(st1.commits - st0.commits, 1);
        get_ok(&f, e.id, STORE_READ_PARAMS | STORE_READ_RESULT, &got);
        rec_assert_eq("lazy insert, lazy update, final update", &got, &want, STORE_READ_PARAMS | STORE_READ_RESULT);
        record_clear(&got);

        fx_reopen(&f);
        get_ok(&f, b.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 1);
        record_clear(&got);
        get_ok(&f, c.id, 0, &got);
        ck_assert_int_eq(got.recoveries, 2);
        record_clear(&got);
        get_ok(&f, e.id, STORE_READ_PARAMS | STORE_READ_RESULT, &got);
        rec_assert_eq("after a reopen", &got, &want, STORE_READ_PARAMS | STORE_READ_RESULT);
        record_clear(&got);
        record_clear(&want);
        record_clear(&fin);
        record_clear(&q);
        record_clear(&a);
        record_clear(&b);
        record_clear(&c);
        record_clear(&e);
        fx_teardown(&f);
}
END_TEST

/* Lazy writes answered in a transaction whose commit then fails (a full
 * disk) are not lost: applied again with the held write that failed, once
 * writes work, and on disk with it.  Between break_writes and mend_writes
 * results are only noted. */
START_TEST(test_lazy_writes_outlive_a_failed_commit)
{
        struct fx f;
        fx_setup(&f, _i);
        if (!f.be->break_writes) {
                fx_teardown(&f);
                return;
        }
        struct job_record other, a, got;
        rec_queued(&other, "alpha", T0 + 2);
        insert(&f, &other);
        rec_queued(&a, "beta", T0 + 3);
        struct err ea = ERR_INIT, er = ERR_INIT;
        struct job_record done_other;
        rec_copy(&done_other, &other);
        rec_set_running(&done_other, T0 + 60);
        struct bg_update u = { .s = f.s, .rec = &done_other, .expect_status = JOB_QUEUED };
        waiter_init(&u.wt);
        pthread_t th;

        /* ---- writes fail: no assertions ---- */
        bool broken = f.be->break_writes(f.dir);
        int rca = lazy_insert(f.s, &a, &ea);
        int rcr = lazy_update(f.s, &a, JOB_RUNNING, 7, &er);
        int rct = pthread_create(&th, NULL, bg_update_main, &u);
        usleep(1500 * 1000);   /* its commit failed, and a retry */
        int calls_while_broken = waiter_calls(&u.wt);
        bool healthy = store_health(f.s, NULL, 0);
        bool mended = f.be->mend_writes(f.dir);
        /* ---- writes work again ---- */

        ck_assert(broken && mended);
        ck_assert_int_eq(rct, 0);
        ck_assert_msg(rca == 0, "%s: a lazy insert: %s", f.be->name, ea.msg);
        ck_assert_msg(rcr == 1, "%s: a lazy update: %d: %s", f.be->name, rcr, er.msg);
        ck_assert_msg(calls_while_broken == 0, "%s: an update returned (%d: %s) while commits fail", f.be->name,
                      u.rc, u.err.msg);
        ck_assert_msg(!healthy, "%s: healthy while commits fail", f.be->name);
        ck_assert_msg(waiter_wait(&u.wt, 1), "%s: the held update never finished", f.be->name);
        pthread_join(th, NULL);
        ck_assert_msg(u.rc == 1, "%s: held update: %d (%s)", f.be->name, u.rc, u.err.msg);

        /* All on disk: the two answered before the failure too. */
        fx_reopen(&f);
        get_ok(&f, a.id, STORE_READ_PARAMS, &got);
        text_eq("lazy insert", "params", got.params, got.params_len, a.params, a.params_len);
        ck_assert_int_eq(got.status, JOB_RUNNING);
        ck_assert_int_eq(got.recoveries, 7);
        record_clear(&got);
        get_ok(&f, other.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_RUNNING);
        record_clear(&got);
        ck_assert_uint_eq(store_count(f.s), 2);

        waiter_destroy(&u.wt);
        record_clear(&a);
        record_clear(&other);
        record_clear(&done_other);
        fx_teardown(&f);
}
END_TEST

/* Lazy writes too large for the room a full disk leaves stay unhealthy:
 * the retry commits them (a probe's small write would fit and call the
 * store healthy, only for their next commit to fail again). */
START_TEST(test_lazy_writes_too_large_keep_it_unhealthy)
{
        struct fx f;
        fx_setup(&f, _i);
        if (!f.be->break_writes || strcmp(f.be->name, "sqlite")) {
                fx_teardown(&f);
                return;
        }
        /* More than the WAL has room for past what it holds: the store
         * makes it about 4.5 MB long at open (wal_prefill()), and writes
         * inside a file's length are not held back by RLIMIT_FSIZE. */
        char *wal = xasprintf("%s/edgecd.db-wal", f.dir);
        off_t wal_len = file_size(wal);
        free(wal);
        int n = (int)((wal_len + 200 * 1024) / (60 * 1024)) + 1;
        struct job_record *r = xcalloc((size_t)n, sizeof *r);
        struct err *err = xcalloc((size_t)n, sizeof *err);
        int *rc = xcalloc((size_t)n, sizeof *rc);
        for (int i = 0; i < n; i++) {
                rec_queued(&r[i], "alpha", T0 + i);
                free(r[i].params);
                r[i].params_len = 60 * 1024;
                r[i].params = xmalloc(r[i].params_len + 1);
                memset(r[i].params, ' ', r[i].params_len);
                r[i].params[0] = '{';
                r[i].params[r[i].params_len - 1] = '}';
                r[i].params[r[i].params_len] = '\0';
                err[i] = (struct err)ERR_INIT;
        }
        /* Room for a probe, not for them (kept in memory, they write
         * nothing before their commit). */
        off_t room = wal_len + 100 * 1024;

        /* ---- writes fail: no assertions ---- */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        bool broken = getrlimit(RLIMIT_FSIZE, &rl) == 0;
        rl.rlim_cur = (rlim_t)room;
        broken = broken && setrlimit(RLIMIT_FSIZE, &rl) == 0;
        for (int i = 0; i < n; i++)
                rc[i] = lazy_insert(f.s, &r[i], &err[i]);
        /* The writer tries them at its deadline (a second after the
         * first), then holds them: watched from then on for 2 s. */
        int healthy_seen = 0, unhealthy_seen = 0;
        int64_t until = now_mono_ms() + 10000;
        while (now_mono_ms() < until) {
                if (store_health(f.s, NULL, 0)) {
                        healthy_seen += unhealthy_seen > 0;
                } else if (!unhealthy_seen++) {
                        until = now_mono_ms() + 2000;
                }
                usleep(2000);
        }
        bool mended = f.be->mend_writes(f.dir);
        /* ---- writes work again ---- */

        ck_assert(broken && mended);
        for (int i = 0; i < n; i++)
                ck_assert_msg(rc[i] == 0, "lazy insert %d: %s", i, err[i].msg);
        ck_assert_msg(unhealthy_seen > 0, "healthy although its lazy writes could not be committed");
        ck_assert_msg(healthy_seen == 0, "healthy again %d times while its lazy writes still did not fit",
                      healthy_seen);
        until = now_mono_ms() + 10000;
        while (!store_health(f.s, NULL, 0) && now_mono_ms() < until)
                usleep(20000);
        ck_assert_msg(store_health(f.s, NULL, 0), "still unhealthy with room again");
        fx_reopen(&f);
        for (int i = 0; i < n; i++) {
                struct job_record got;
                get_ok(&f, r[i].id, STORE_READ_PARAMS, &got);
                ck_assert_uint_eq(got.params_len, r[i].params_len);
                record_clear(&got);
                record_clear(&r[i]);
        }
        free(r);
        free(err);
        free(rc);
        fx_teardown(&f);
}
END_TEST

/* A lazy write is not answered from memory while the writer is in a
 * transaction (one that fails refuses new jobs, this one too): it waits
 * for the writer, which commits it in its next transaction. */
START_TEST(test_lazy_write_waits_while_the_writer_commits)
{
        struct fx f;
        fx_setup(&f, _i);
        if (strcmp(f.be->name, "sqlite")) {
                fx_teardown(&f);
                return;
        }
        struct job_record q, k, run, got;
        rec_queued(&q, "alpha", T0 + 1);
        insert(&f, &q);
        sqlite3 *db = sqlite_open_db(f.dir);
        ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        /* The writer, in a transaction, waits for that lock. */
        rec_copy(&run, &q);
        rec_set_running(&run, T0 + 50);
        struct bg_update u = { .s = f.s, .rec = &run, .expect_status = JOB_QUEUED };
        waiter_init(&u.wt);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, bg_update_main, &u), 0);
        usleep(500 * 1000);   /* well inside its 5 s busy timeout */
        rec_queued(&k, "beta", T0 + 2);
        struct store_item it = { .rec = &k, .expect_status = -1 };
        struct waiter wk;
        waiter_init(&wk);
        struct store_write w = { .kind = STORE_INSERT, .items = &it, .n = 1, .lazy = true, .done = on_done,
                                 .ctx = &wk };
        store_write_async(f.s, &w);
        usleep(300 * 1000);
        int early = waiter_calls(&wk);
        ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        ck_assert_msg(early == 0, "a lazy insert was answered while the writer was in a transaction");
        ck_assert_msg(waiter_wait(&wk, 1), "the lazy insert was never answered");
        ck_assert_msg(w.err.code == ERR_OK && it.outcome == STORE_ITEM_OK, "lazy insert: %s", w.err.msg);
        ck_assert_msg(waiter_wait(&u.wt, 1), "the update was never answered");
        pthread_join(th, NULL);
        ck_assert_int_eq(u.rc, 1);
        get_ok(&f, k.id, 0, &got);   /* committed, not kept */
        record_clear(&got);
        waiter_destroy(&wk);
        waiter_destroy(&u.wt);
        record_clear(&q);
        record_clear(&k);
        record_clear(&run);
        fx_teardown(&f);
}
END_TEST

START_TEST(test_fail_stop_close)
{
        struct fx f;
        fx_setup(&f, _i);
        if (!f.be->break_writes) {
                fx_teardown(&f);
                return;
        }
        struct job_record q, a, run;
        rec_queued(&q, "alpha", T0 + 1);
        insert(&f, &q);
        rec_queued(&a, "alpha", T0 + 2);
        rec_copy(&run, &q);
        rec_set_running(&run, T0 + 50);
        struct store_item ia = { .rec = &a, .expect_status = -1 };
        struct store_write wa = { .kind = STORE_INSERT, .items = &ia, .n = 1 };
        struct store_item uit = { .rec = &run, .expect_status = JOB_QUEUED };
        struct waiter wt;
        waiter_init(&wt);
        struct store_write uw = { .kind = STORE_UPDATE, .items = &uit, .n = 1, .retry = true, .done = on_done,
                                  .ctx = &wt };
        struct err ea = ERR_INIT;

        /* ---- writes fail: no assertions ---- */
        bool broken = f.be->break_writes(f.dir);
        int rca = store_write_sync(f.s, &wa, &ea);
        bool healthy = store_health(f.s, NULL, 0);
        store_write_async(f.s, &uw);
        usleep(300 * 1000);
        int calls_before_close = waiter_calls(&wt);
        store_close(f.s);
        f.s = NULL;
        int calls_after_close = waiter_calls(&wt);
        bool mended = f.be->mend_writes(f.dir);
        /* ---- writes work again ---- */

        ck_assert(broken && mended);
        ck_assert_int_eq(rca, -1);
        ck_assert(!healthy);
        ck_assert_msg(calls_before_close == 0, "%s: held update answered before close: %s", f.be->name,
                      uw.err.msg);
        ck_assert_int_eq(calls_after_close, 1);
        ck_assert_msg(uw.err.code != ERR_OK, "%s: a held update answered ok at close", f.be->name);

        fx_open_store(&f);
        struct job_record got;
        get_ok(&f, q.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_QUEUED);
        record_clear(&got);
        assert_gone(&f, a.id);
        ck_assert_uint_eq(store_count(f.s), 1);
        waiter_destroy(&wt);
        record_clear(&q);
        record_clear(&a);
        record_clear(&run);
        fx_teardown(&f);
}
END_TEST

/* ---- the operations table, without store.c ---- */

struct first_n {
        size_t seen, stop_after;
        char first[JOB_ID_LEN + 1];
};

static bool take_first_n(const struct job_record *r, void *ctx)
{
        struct first_n *c = ctx;
        if (c->seen == 0)
                snprintf(c->first, sizeof c->first, "%s", r->id);
        c->seen++;
        return c->seen < c->stop_after;
}

START_TEST(test_ops_direct)
{
        const struct backend *be = &backends[_i];
        const struct store_ops *ops = be->ops;
        ck_assert_str_eq(ops->name, be->name);
        char *dir = tu_test_dir();
        struct store_backend *b = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(ops->open(dir, &b, &err) == 0, "%s: open: %s", be->name, err.msg);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(ops->count(b), 0);

        enum { N = 5 };
        struct job_record recs[N];
        struct store_item items[N];
        for (int i = 0; i < N; i++) {
                rec_queued(&recs[i], "alpha", T0 + i);
                items[i] = (struct store_item){ .rec = &recs[i], .expect_status = -1 };
        }
        struct waiter wt;
        waiter_init(&wt);
        struct store_write w = { .kind = STORE_INSERT, .items = items, .n = N, .done = on_done, .ctx = &wt };
        ops->write(b, &w);
        ck_assert_msg(waiter_wait(&wt, 1), "no done in 60 s");
        ck_assert_msg(w.err.code == ERR_OK, "%s", w.err.msg);
        ck_assert_uint_eq(ops->count(b), N);

        struct job_record got = { 0 };
        ck_assert_msg(ops->get(b, recs[2].id, STORE_READ_PARAMS, &got, &err) == 0, "%s", err.msg);
        rec_assert_eq("ops->get", &got, &recs[2], STORE_READ_PARAMS);
        record_clear(&got);
        char unknown[JOB_ID_LEN + 1];
        new_id(unknown);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(ops->get(b, unknown, 0, &got, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);

        /* list: newest first, and fn returning false stops it. */
        struct first_n c = { .stop_after = 2 };
        struct store_filter flt = { .status = -1, .limit = 100 };
        ck_assert_msg(ops->list(b, &flt, NULL, take_first_n, &c, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(c.seen, 2);
        ck_assert_str_eq(c.first, recs[N - 1].id);
        flt.after = unknown;
        c = (struct first_n){ .stop_after = 100 };
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(ops->list(b, &flt, NULL, take_first_n, &c, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);

        char reason[256] = "";
        ck_assert_msg(ops->health(b, reason, sizeof reason), "%s", reason);
        struct store_stats st = { 0 };
        ops->stats(b, &st);
        ck_assert_msg(st.writes >= 1 && st.commits >= 1 && st.commits <= st.writes, "%llu commits, %llu writes",
                      (unsigned long long)st.commits, (unsigned long long)st.writes);
        ck_assert_msg(ops->check(b, &err) == 0, "%s", err.msg);
        ops->close(b);
        ck_assert_int_eq(waiter_calls(&wt), 1);
        waiter_destroy(&wt);

        b = NULL;
        ck_assert_msg(ops->open(dir, &b, &err) == 0, "%s: reopen: %s", be->name, err.msg);
        ck_assert_uint_eq(ops->count(b), N);
        ops->close(b);

        for (int i = 0; i < N; i++)
                record_clear(&recs[i]);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

/* ---- record helpers ---- */

START_TEST(test_record_render)
{
        struct job_record r;
        rec_queued(&r, "image-resize", T0 + 123);
        size_t len = 0;
        char *text = record_render(&r, true, &len);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_eq(strlen(text), len);
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o, "not JSON (%s): %s", jerr.text, text);
        ck_assert_str_eq(json_string_value(json_object_get(o, "id")), r.id);
        ck_assert_str_eq(json_string_value(json_object_get(o, "algorithm")), "image-resize");
        ck_assert_str_eq(json_string_value(json_object_get(o, "version")), "1.4.2");
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "queued");
        ck_assert_str_eq(json_string_value(json_object_get(o, "priority")), "low");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "timeout_seconds")), 45);
        char ts[40];
        format_rfc3339(T0 + 123, ts, sizeof ts);
        ck_assert_str_eq(json_string_value(json_object_get(o, "created_at")), ts);
        ck_assert_str_eq(json_string_value(json_object_get(o, "created_at")), "2023-11-14T22:13:20.123Z");
        ck_assert(json_is_null(json_object_get(o, "started_at")));
        ck_assert(json_is_null(json_object_get(o, "finished_at")));
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert(json_is_array(json_object_get(o, "attempts")));
        ck_assert_uint_eq(json_array_size(json_object_get(o, "attempts")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(o, "submitted_by")), "ci-bot");
        json_decref(o);
        free(text);

        /* Succeeded: the result spliced in as the text it is. */
        const char *result = "{ \"w\" : 640,\n \"h\":480, \"name\": \"\xc3\xa9\" }";
        rec_set_running(&r, T0 + 200);
        rec_set_final(&r, JOB_SUCCEEDED, T0 + 900, 2, result);
        text = record_render(&r, true, &len);
        ck_assert_uint_eq(strlen(text), len);
        o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o, "not JSON (%s): %s", jerr.text, text);
        ck_assert_msg(strstr(text, result), "result not spliced as is: %s", text);
        json_t *want = json_loads(result, 0, NULL);
        ck_assert(json_equal(json_object_get(o, "result"), want));
        json_decref(want);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "succeeded");
        format_rfc3339(T0 + 900, ts, sizeof ts);
        ck_assert_str_eq(json_string_value(json_object_get(o, "finished_at")), ts);
        json_t *att = json_object_get(o, "attempts");
        ck_assert(json_is_array(att));
        ck_assert_uint_eq(json_array_size(att), 2);
        char *run1 = xasprintf("%s-1", r.id);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(att, 0), "run_id")), run1);
        free(run1);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")), 0);
        ck_assert(json_is_object(json_object_get(o, "metrics")));
        ck_assert_str_eq(json_string_value(json_object_get(o, "runtime")), "crun");
        json_decref(o);
        free(text);

        /* with_result false: null. */
        text = record_render(&r, false, &len);
        o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o, "not JSON (%s): %s", jerr.text, text);
        ck_assert(json_is_null(json_object_get(o, "result")));
        ck_assert_ptr_null(strstr(text, "\"w\""));   /* the result's member: not the id's digits */
        json_decref(o);
        free(text);

        /* Failed: an error object. */
        rec_set_final(&r, JOB_FAILED, T0 + 950, 1, NULL);
        text = record_render(&r, true, &len);
        o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o, "not JSON (%s): %s", jerr.text, text);
        ck_assert(json_is_null(json_object_get(o, "result")));
        json_t *e = json_object_get(o, "error");
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "algorithm_failed");
        ck_assert_str_eq(json_string_value(json_object_get(e, "message")), r.error_message);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")), 3);
        ck_assert(json_is_null(json_object_get(o, "callback")));
        json_decref(o);
        free(text);

        /* A callback: its URL, delivery id and how its delivery went. */
        rec_callback(&r, "https://hooks.example.com/x?a=\"b\"");
        text = record_render(&r, true, &len);
        o = json_loadb(text, len, 0, &jerr);
        ck_assert_msg(o, "not JSON (%s): %s", jerr.text, text);
        json_t *cb = json_object_get(o, "callback");
        ck_assert_str_eq(json_string_value(json_object_get(cb, "url")), r.callback.url);
        ck_assert_str_eq(json_string_value(json_object_get(cb, "delivery_id")), r.callback.delivery);
        ck_assert_str_eq(json_string_value(json_object_get(cb, "state")), "pending");
        ck_assert_int_eq(json_integer_value(json_object_get(cb, "attempts")), 0);
        ck_assert(json_is_null(json_object_get(cb, "last_status")));
        ck_assert(json_is_null(json_object_get(cb, "last_error")));
        ck_assert(json_is_null(json_object_get(cb, "delivered_at")));
        ck_assert_uint_eq(json_object_size(cb), 7);
        json_decref(o);
        free(text);
        r.callback.state = CALLBACK_DELIVERED;
        r.callback.attempts = 2;
        r.callback.last_status = 200;
        r.callback.delivered_ms = T0;
        text = record_render(&r, true, &len);
        o = json_loadb(text, len, 0, &jerr);
        cb = json_object_get(o, "callback");
        ck_assert_str_eq(json_string_value(json_object_get(cb, "state")), "delivered");
        ck_assert_int_eq(json_integer_value(json_object_get(cb, "attempts")), 2);
        ck_assert_int_eq(json_integer_value(json_object_get(cb, "last_status")), 200);
        ck_assert_str_eq(json_string_value(json_object_get(cb, "delivered_at")), "2023-11-14T22:13:20.000Z");
        json_decref(o);
        free(text);
        ck_assert_str_eq(callback_state_name(CALLBACK_FAILED), "failed");
        record_clear(&r);
        /* record_clear zeroes. */
        ck_assert_ptr_null(r.algorithm);
        ck_assert_ptr_null(r.attempts);
}
END_TEST

START_TEST(test_record_helpers)
{
        struct job_record r;
        rec_queued(&r, "alpha", T0);
        ck_assert_uint_eq(record_attempt_count(&r, NULL, 0), 0);
        rec_set_running(&r, T0 + 5);
        ck_assert_uint_eq(record_attempt_count(&r, NULL, 0), 1);
        free(r.attempts);
        r.attempts = attempts_text(r.id, 3, T0 + 5, 0);
        ck_assert_uint_eq(record_attempt_count(&r, NULL, 0), 3);

        /* The last attempt, unfinished, ends now with the error. */
        record_end_last_attempt(&r, JOB_ERR_INTERRUPTED, "the daemon stopped");
        json_t *a = json_loads(r.attempts, 0, NULL);
        ck_assert_msg(json_is_array(a), "attempts no longer an array: %s", r.attempts);
        ck_assert_uint_eq(json_array_size(a), 3);
        json_t *last = json_array_get(a, 2);
        ck_assert_msg(!json_is_null(json_object_get(last, "finished_at")), "last attempt not finished: %s",
                      r.attempts);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(last, "error"), "code")), "interrupted");
        json_decref(a);

        ck_assert(!job_status_is_final(JOB_QUEUED));
        ck_assert(!job_status_is_final(JOB_RUNNING));
        ck_assert(job_status_is_final(JOB_SUCCEEDED));
        ck_assert(job_status_is_final(JOB_FAILED));
        ck_assert(job_status_is_final(JOB_CANCELLED));
        for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++)
                ck_assert_int_eq(job_status_parse(job_status_name(s)), s);
        for (int p = PRIO_HIGH; p <= PRIO_LOW; p++)
                ck_assert_int_eq(job_priority_parse(job_priority_name(p)), p);
        ck_assert_int_eq(job_status_parse("done"), -1);
        ck_assert_int_eq(job_priority_parse("urgent"), -1);
        record_clear(&r);
}
END_TEST

/* ---- callbacks ---- */

static enum store_item_outcome write_callback(struct fx *f, struct job_record *r)
{
        struct store_item it = { .rec = r, .expect_status = -1 };
        struct store_write w = { .kind = STORE_CALLBACK, .items = &it, .n = 1, .retry = true };
        struct err err = ERR_INIT;
        ck_assert_msg(store_write_sync(f->s, &w, &err) == 0, "%s", err.msg);
        return it.outcome;
}

static size_t due(struct fx *f, struct store_due *d, size_t max)
{
        size_t n = 99;
        struct err err = ERR_INIT;
        ck_assert_msg(store_callbacks_due(f->s, d, max, 0, NULL, 0, &n, &err) == 0, "%s", err.msg);
        return n;
}

START_TEST(test_callbacks)
{
        struct fx f;
        fx_setup(&f, _i);
        struct job_record a, b, plain;
        rec_queued(&a, "alpha", T0 + 1);
        rec_callback(&a, "https://hooks.example.com/edgecd/a");
        rec_queued(&b, "alpha", T0 + 2);
        rec_callback(&b, "http://10.0.0.1:8081/b?x=1");
        rec_queued(&plain, "alpha", T0 + 3);
        insert(&f, &a);
        insert(&f, &b);
        insert(&f, &plain);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record got;
        get_ok(&f, a.id, all, &got);
        rec_assert_eq("a callback inserted", &got, &a, all);
        record_clear(&got);
        get_ok(&f, plain.id, 0, &got);
        ck_assert_ptr_null(got.callback.url);
        record_clear(&got);

        /* Pending but not final: not due. */
        struct store_due d[8];
        ck_assert_uint_eq(due(&f, d, 8), 0);
        rec_set_final(&a, JOB_SUCCEEDED, T0 + 100, 1, "{\"r\":1}");
        update_applied(&f, &a, -1);
        rec_set_final(&b, JOB_FAILED, T0 + 101, 1, NULL);
        update_applied(&f, &b, -1);
        rec_set_final(&plain, JOB_SUCCEEDED, T0 + 102, 1, "{}");
        update_applied(&f, &plain, -1);
        ck_assert_uint_eq(due(&f, d, 8), 2);

        /* First attempts in the order their jobs ended. */
        ck_assert_str_eq(d[0].id, a.id);
        ck_assert_str_eq(d[1].id, b.id);

        /* An attempt failed: a's next one is due later, so b comes first. */
        a.callback.attempts = 1;
        a.callback.last_status = 503;
        a.callback.last_error = xstrdup("the receiver answered 503");
        a.callback.next_ms = T0 + 5000;
        ck_assert_int_eq(write_callback(&f, &a), STORE_ITEM_OK);
        ck_assert_uint_eq(due(&f, d, 8), 2);
        ck_assert_str_eq(d[0].id, b.id);
        ck_assert_int_eq(d[0].next_ms, 0);
        ck_assert_str_eq(d[1].id, a.id);
        ck_assert_int_eq(d[1].next_ms, T0 + 5000);
        ck_assert_uint_eq(due(&f, d, 1), 1);
        ck_assert_str_eq(d[0].id, b.id);
        ck_assert_str_eq(d[0].url, "http://10.0.0.1:8081/b?x=1");
        size_t n = 0;
        struct err err = ERR_INIT;
        ck_assert_int_eq(store_callbacks_due(f.s, d, 8, 1, NULL, 0, &n, &err), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(d[0].id, a.id);
        ck_assert_str_eq(d[0].url, "https://hooks.example.com/edgecd/a");

        /* Retention spares a pending callback: by age (a and b finished
         * before T0 + 102) and by count (three finals, max 1). */
        ck_assert_uint_eq(prune(&f, T0 + 102, 1), 0);
        ck_assert_uint_eq(due(&f, d, 8), 2);

        /* A job's own update never touches its callback's state. */
        a.recoveries = 1;
        struct job_record stale;
        rec_copy(&stale, &a);
        stale.callback.attempts = 0;
        update_applied(&f, &stale, -1);
        record_clear(&stale);
        get_ok(&f, a.id, all, &got);
        rec_assert_eq("after a job update", &got, &a, all);
        record_clear(&got);

        /* Delivered and failed are no longer due; they stay on the record
         * across a reopen. */
        b.callback.state = CALLBACK_DELIVERED;
        b.callback.attempts = 1;
        b.callback.last_status = 204;
        b.callback.delivered_ms = T0 + 200;
        ck_assert_int_eq(write_callback(&f, &b), STORE_ITEM_OK);
        a.callback.state = CALLBACK_FAILED;
        a.callback.attempts = 2;
        a.callback.last_status = 404;
        ck_assert_int_eq(write_callback(&f, &a), STORE_ITEM_OK);
        ck_assert_uint_eq(due(&f, d, 8), 0);
        fx_reopen(&f);
        get_ok(&f, b.id, all, &got);
        rec_assert_eq("delivered, reopened", &got, &b, all);
        record_clear(&got);
        get_ok(&f, a.id, all, &got);
        rec_assert_eq("failed, reopened", &got, &a, all);
        record_clear(&got);

        /* A record without a callback (or none at all) is not written. */
        plain.callback.state = CALLBACK_DELIVERED;
        ck_assert_int_eq(write_callback(&f, &plain), STORE_ITEM_NOT_APPLIED);
        get_ok(&f, plain.id, 0, &got);
        ck_assert_ptr_null(got.callback.url);
        record_clear(&got);
        struct job_record ghost;
        rec_queued(&ghost, "alpha", T0);
        rec_callback(&ghost, "http://x.example/");
        ck_assert_int_eq(write_callback(&f, &ghost), STORE_ITEM_NOT_APPLIED);
        /* No longer pending: retention takes them. */
        ck_assert_uint_eq(prune(&f, T0 + 1000, 1), 3);

        record_clear(&ghost);
        record_clear(&a);
        record_clear(&b);
        record_clear(&plain);
        fx_teardown(&f);
}
END_TEST

/* Run sql[] in the closed store's database, each statement asserted:
 * how a test makes an older schema out of the current one. */
static void run_sql(const char *state_dir, const char *const *sql, size_t n)
{
        sqlite3 *db = sqlite_open_db(state_dir);
        for (size_t i = 0; i < n; i++) {
                char *msg = NULL;
                int rc = sqlite3_exec(db, sql[i], NULL, NULL, &msg);
                ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql[i], msg ? msg : sqlite3_errstr(rc));
        }
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* A version 2 database (before callbacks) is migrated: its records read
 * back without a callback, new ones take one. */
START_TEST(test_migrate_v2)
{
        struct fx f;
        fx_setup(&f, 0);
        struct job_record old;
        rec_queued(&old, "alpha", T0);
        insert(&f, &old);
        fx_close_store(&f);
        static const char *const back[] = {
                "DROP INDEX jobs_callbacks_by_dest",
                "DROP INDEX jobs_callbacks_due",
                "ALTER TABLE jobs DROP COLUMN callback_url", "ALTER TABLE jobs DROP COLUMN cb_delivery",
                "ALTER TABLE jobs DROP COLUMN cb_state", "ALTER TABLE jobs DROP COLUMN cb_attempts",
                "ALTER TABLE jobs DROP COLUMN cb_last_status", "ALTER TABLE jobs DROP COLUMN cb_last_error",
                "ALTER TABLE jobs DROP COLUMN cb_delivered_ms", "ALTER TABLE jobs DROP COLUMN cb_next_ms",
                "ALTER TABLE jobs DROP COLUMN cb_dest",
                "PRAGMA user_version = 2",
        };
        run_sql(f.dir, back, ARRAY_SIZE(back));
        ck_assert_int_eq(sqlite_schema_version(f.dir), 2);

        fx_open_store(&f);
        ck_assert_int_eq(sqlite_schema_version(f.dir), 6);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct job_record got;
        get_ok(&f, old.id, all, &got);
        rec_assert_eq("migrated", &got, &old, all);
        record_clear(&got);
        struct job_record fresh;
        rec_queued(&fresh, "alpha", T0 + 1);
        rec_callback(&fresh, "https://hooks.example.com/x");
        insert(&f, &fresh);
        get_ok(&f, fresh.id, all, &got);
        rec_assert_eq("inserted after the migration", &got, &fresh, all);
        record_clear(&got);
        record_clear(&fresh);
        record_clear(&old);
        fx_teardown(&f);
}
END_TEST

static size_t due_except(struct fx *f, struct store_due *d, size_t max, const char *const *except,
                         size_t n_except)
{
        size_t n = 99;
        struct err err = ERR_INIT;
        ck_assert_msg(store_callbacks_due(f->s, d, max, 0, except, n_except, &n, &err) == 0, "%s", err.msg);
        return n;
}

/* Callbacks of one receiver (scheme, host and port, however the URL
 * spells them) are left out when asked, wherever they stand in the queue;
 * those of others keep their order. */
START_TEST(test_callbacks_by_receiver)
{
        struct fx f;
        fx_setup(&f, _i);
        static const char *const urls[] = {
                "http://dead.example:8080/a", "http://DEAD.example:8080/b", "http://dead.example:8080/c?x=1",
                "https://live.example/x", "http://dead.example/", "https://live.example:443/y",
        };
        struct job_record r[ARRAY_SIZE(urls)];
        for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
                rec_queued(&r[i], "alpha", T0 + (int64_t)i);
                rec_callback(&r[i], urls[i]);
                insert(&f, &r[i]);
        }
        /* They end in reverse: the last submitted is due first. */
        for (size_t i = ARRAY_SIZE(urls); i-- > 0;) {
                rec_set_final(&r[i], JOB_SUCCEEDED, T0 + 100 - (int64_t)i, 1, "{}");
                update_applied(&f, &r[i], -1);
        }
        struct store_due d[8];
        ck_assert_uint_eq(due(&f, d, 8), 6);
        for (size_t i = 0; i < 6; i++)
                ck_assert_str_eq(d[i].id, r[5 - i].id);

        const char *dead[] = { "http://dead.example:8080" };
        ck_assert_uint_eq(due_except(&f, d, 8, dead, 1), 3);
        ck_assert_str_eq(d[0].id, r[5].id);
        ck_assert_str_eq(d[1].id, r[4].id);
        ck_assert_str_eq(d[2].id, r[3].id);
        /* A page of one is the first of the others. */
        ck_assert_uint_eq(due_except(&f, d, 1, dead, 1), 1);
        ck_assert_str_eq(d[0].id, r[5].id);

        const char *both[] = { "https://live.example:443", "http://dead.example:8080", "http://nobody:1" };
        ck_assert_uint_eq(due_except(&f, d, 8, both, 3), 1);
        ck_assert_str_eq(d[0].id, r[4].id);
        ck_assert_str_eq(d[0].url, "http://dead.example/");

        /* A retry due later goes behind first attempts due now. */
        r[5].callback.attempts = 1;
        r[5].callback.next_ms = T0 + 5000;
        ck_assert_int_eq(write_callback(&f, &r[5]), STORE_ITEM_OK);
        ck_assert_uint_eq(due_except(&f, d, 8, dead, 1), 3);
        ck_assert_str_eq(d[0].id, r[4].id);
        ck_assert_str_eq(d[2].id, r[5].id);
        ck_assert_int_eq(d[2].next_ms, T0 + 5000);
        ck_assert_int_eq(d[0].next_ms, 0);

        for (size_t i = 0; i < ARRAY_SIZE(urls); i++)
                record_clear(&r[i]);
        fx_teardown(&f);
}
END_TEST

static size_t pending_to(struct fx *f, const char *dest, size_t max)
{
        size_t n = 99;
        struct err err = ERR_INIT;
        ck_assert_msg(store_callbacks_pending(f->s, dest, max, &n, &err) == 0, "%s", err.msg);
        return n;
}

/* A receiver's pending callbacks count whatever their job's status
 * (queued, running, ended), however the URL spells the receiver; not
 * those delivered or failed, not other receivers', and no more than max. */
START_TEST(test_callbacks_pending_by_receiver)
{
        struct fx f;
        fx_setup(&f, _i);
        static const char *const urls[] = {
                "http://dead.example:8080/a", "http://DEAD.example:8080/b", "http://dead.example:8080/c?x=1",
                "http://dead.example:8080/d", "https://live.example/x", "http://dead.example/",
        };
        struct job_record r[ARRAY_SIZE(urls)];
        for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
                rec_queued(&r[i], "alpha", T0 + (int64_t)i);
                rec_callback(&r[i], urls[i]);
                insert(&f, &r[i]);
        }
        const char *dead = "http://dead.example:8080";
        ck_assert_uint_eq(pending_to(&f, dead, 100), 4);
        ck_assert_uint_eq(pending_to(&f, dead, 3), 3);
        ck_assert_uint_eq(pending_to(&f, "https://live.example:443", 100), 1);
        ck_assert_uint_eq(pending_to(&f, "http://dead.example:80", 100), 1);
        ck_assert_uint_eq(pending_to(&f, "http://nobody:1", 100), 0);
        /* Running and ended still count; delivered and failed do not. */
        rec_set_running(&r[0], T0 + 10);
        update_applied(&f, &r[0], JOB_QUEUED);
        rec_set_final(&r[1], JOB_SUCCEEDED, T0 + 20, 1, "{}");
        update_applied(&f, &r[1], -1);
        ck_assert_uint_eq(pending_to(&f, dead, 100), 4);
        rec_set_final(&r[2], JOB_SUCCEEDED, T0 + 30, 1, "{}");
        update_applied(&f, &r[2], -1);
        r[2].callback.state = CALLBACK_DELIVERED;
        r[2].callback.attempts = 1;
        ck_assert_int_eq(write_callback(&f, &r[2]), STORE_ITEM_OK);
        r[1].callback.state = CALLBACK_FAILED;
        r[1].callback.attempts = 8;
        ck_assert_int_eq(write_callback(&f, &r[1]), STORE_ITEM_OK);
        ck_assert_uint_eq(pending_to(&f, dead, 100), 2);
        for (size_t i = 0; i < ARRAY_SIZE(urls); i++)
                record_clear(&r[i]);
        fx_teardown(&f);
}
END_TEST

/* ...and retries due past the longest backoff (300 s), or past ahead. */
#define MAX_BACKOFF_MS (300 * 1000)
static size_t ended_ahead_of(struct fx *f, struct store_due *d, size_t max, int64_t now, int64_t ahead,
                             const char *const *except, size_t n_except)
{
        size_t n = 99;
        struct err err = ERR_INIT;
        ck_assert_msg(store_callbacks_ended_ahead(f->s, d, max, now, ahead, except, n_except, &n, &err) == 0, "%s",
                      err.msg);
        return n;
}

static size_t ended_ahead(struct fx *f, struct store_due *d, size_t max, int64_t now, const char *const *except,
                          size_t n_except)
{
        return ended_ahead_of(f, d, max, now, now + MAX_BACKOFF_MS, except, n_except);
}

/* A job recorded as ending after now (the wall clock was stepped back
 * since): the queue sorts its first attempt behind a retry due before
 * then, so it is asked for on its own.  Only first attempts, not those
 * of receivers left out, and none once the clock has caught up. */
START_TEST(test_callbacks_after_clock_step)
{
        struct fx f;
        fx_setup(&f, _i);
        int64_t now = now_real_ms();
        struct job_record r[3];
        for (size_t i = 0; i < 3; i++) {
                rec_queued(&r[i], "alpha", T0 + (int64_t)i);
                rec_callback(&r[i], "https://hooks.example.com/x");
                insert(&f, &r[i]);
        }
        rec_set_final(&r[0], JOB_SUCCEEDED, now + 3600 * 1000, 1, "{}");
        rec_set_final(&r[1], JOB_SUCCEEDED, T0 + 10, 1, "{}");
        rec_set_final(&r[2], JOB_SUCCEEDED, T0 + 20, 1, "{}");
        for (size_t i = 0; i < 3; i++)
                update_applied(&f, &r[i], -1);
        r[1].callback.attempts = 1;
        r[1].callback.next_ms = now + 60 * 1000;
        ck_assert_int_eq(write_callback(&f, &r[1]), STORE_ITEM_OK);
        struct store_due d[8];
        /* The queue: the retry (not yet due) before the first attempt. */
        ck_assert_uint_eq(due(&f, d, 8), 3);
        ck_assert_str_eq(d[0].id, r[2].id);
        ck_assert_str_eq(d[1].id, r[1].id);
        ck_assert_str_eq(d[2].id, r[0].id);
        ck_assert_uint_eq(ended_ahead(&f, d, 8, now, NULL, 0), 1);
        ck_assert_str_eq(d[0].id, r[0].id);
        ck_assert_int_eq(d[0].next_ms, 0);
        ck_assert_str_eq(d[0].url, "https://hooks.example.com/x");
        const char *hooks[] = { "https://hooks.example.com:443" };
        ck_assert_uint_eq(ended_ahead(&f, d, 8, now, hooks, 1), 0);
        ck_assert_uint_eq(ended_ahead(&f, d, 8, now + 3600 * 1000, NULL, 0), 0);
        /* Once tried, it is a retry, ordered by its own time. */
        r[0].callback.attempts = 1;
        r[0].callback.next_ms = now + 1000;
        ck_assert_int_eq(write_callback(&f, &r[0]), STORE_ITEM_OK);
        ck_assert_uint_eq(ended_ahead(&f, d, 8, now, NULL, 0), 0);
        /* A retry due further ahead than any backoff (60 s, past a 30 s
         * bound) was recorded before a step back: it is asked for too. */
        ck_assert_uint_eq(ended_ahead_of(&f, d, 8, now, now + 30 * 1000, NULL, 0), 1);
        ck_assert_str_eq(d[0].id, r[1].id);
        ck_assert_int_eq(d[0].next_ms, now + 60 * 1000);
        ck_assert_uint_eq(ended_ahead_of(&f, d, 8, now, now + 30 * 1000, hooks, 1), 0);
        for (size_t i = 0; i < 3; i++)
                record_clear(&r[i]);
        fx_teardown(&f);
}
END_TEST

/* A version 3 database: its pending callbacks get their receivers, and
 * the queue its new order (first attempts by when their jobs ended). */
START_TEST(test_migrate_v3)
{
        struct fx f;
        fx_setup(&f, 0);
        struct job_record a, b, q;
        rec_queued(&a, "alpha", T0);
        rec_callback(&a, "http://dead.example:8080/a");
        rec_queued(&b, "alpha", T0 + 1);
        rec_callback(&b, "https://live.example/b");
        rec_queued(&q, "alpha", T0 + 2);
        rec_callback(&q, "https://live.example/q");
        insert(&f, &a);
        insert(&f, &b);
        insert(&f, &q);
        rec_set_final(&b, JOB_SUCCEEDED, T0 + 10, 1, "{}");
        update_applied(&f, &b, -1);
        rec_set_final(&a, JOB_SUCCEEDED, T0 + 20, 1, "{}");
        update_applied(&f, &a, -1);
        fx_close_store(&f);
        static const char *const back[] = {
                "DROP INDEX jobs_callbacks_by_dest",
                "DROP INDEX jobs_callbacks_due",
                "ALTER TABLE jobs DROP COLUMN cb_dest",
                "CREATE INDEX jobs_callbacks_due ON jobs(cb_next_ms) WHERE cb_state = 0",
                "PRAGMA user_version = 3",
        };
        run_sql(f.dir, back, ARRAY_SIZE(back));

        fx_open_store(&f);
        ck_assert_int_eq(sqlite_schema_version(f.dir), 6);
        struct store_due d[8];
        ck_assert_uint_eq(due(&f, d, 8), 2);
        ck_assert_str_eq(d[0].id, b.id);
        ck_assert_str_eq(d[1].id, a.id);
        const char *dead[] = { "http://dead.example:8080" };
        ck_assert_uint_eq(due_except(&f, d, 8, dead, 1), 1);
        ck_assert_str_eq(d[0].id, b.id);
        /* The one queued at the migration got its receiver too. */
        rec_set_final(&q, JOB_SUCCEEDED, T0 + 5, 1, "{}");
        update_applied(&f, &q, -1);
        const char *live[] = { "https://live.example:443" };
        ck_assert_uint_eq(due_except(&f, d, 8, live, 1), 1);
        ck_assert_str_eq(d[0].id, a.id);
        /* Schema 6: the pending callbacks kept from version 3, whatever
         * their job's status, count against their receiver's cap, by the
         * index the migration made (a submit runs this count). */
        ck_assert_uint_eq(pending_to(&f, "http://dead.example:8080", 100), 1);
        ck_assert_uint_eq(pending_to(&f, "https://live.example:443", 100), 2);
        char *plan = sqlite_plan(f.dir, "SELECT count(*) FROM (SELECT 1 FROM jobs "
                                 "WHERE cb_state = 0 AND cb_dest = ?1 LIMIT ?2)");
        ck_assert_msg(strstr(plan, "USING INDEX jobs_callbacks_by_dest (cb_dest=?)"), "%s", plan);
        free(plan);
        record_clear(&a);
        record_clear(&b);
        record_clear(&q);
        fx_teardown(&f);
}
END_TEST

/* A version 4 database: keys were kept as the client sent them; a job's
 * submitted with a token is its token's now ("NAME\x1fKEY", as api.c
 * asks), so that a retry across the upgrade replays it; one without a
 * token (auth off) stays as it was. */
START_TEST(test_migrate_v4)
{
        struct fx f;
        fx_setup(&f, 0);
        struct job_record a, b, c;
        rec_queued(&a, "alpha", T0);
        rec_queued(&b, "alpha", T0 + 1);
        free(b.submitted_by);
        b.submitted_by = NULL;
        rec_queued(&c, "alpha", T0 + 2);
        ck_assert_int_eq(insert_keyed(&f, &a, "order-42", HASH_A, NULL), STORE_ITEM_OK);
        ck_assert_int_eq(insert_keyed(&f, &b, "order-43", HASH_A, NULL), STORE_ITEM_OK);
        /* Made again since under its new spelling: that one stays. */
        ck_assert_int_eq(insert_keyed(&f, &c, "order-44", HASH_A, NULL), STORE_ITEM_OK);
        fx_close_store(&f);
        sqlite3 *db = sqlite_open_db(f.dir);
        char *sql = sqlite3_mprintf("INSERT INTO idempotency(key, hash, job_id, created_ms) "
                                    "VALUES ('ci-bot' || char(31) || 'order-44', '%q', '%q', 1); "
                                    "DROP INDEX jobs_callbacks_by_dest; PRAGMA user_version = 4", HASH_B, b.id);
        char *msg = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        ck_assert_msg(rc == SQLITE_OK, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(sql);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

        fx_open_store(&f);
        ck_assert_int_eq(sqlite_schema_version(f.dir), 6);
        char existing[JOB_ID_LEN + 1] = "";
        struct job_record r;
        rec_queued(&r, "alpha", T0 + 3);
        ck_assert_int_eq(insert_keyed(&f, &r, "ci-bot\x1forder-42", HASH_A, existing), STORE_ITEM_REPLAYED);
        ck_assert_str_eq(existing, a.id);
        ck_assert_int_eq(insert_keyed(&f, &r, "order-43", HASH_A, existing), STORE_ITEM_REPLAYED);
        ck_assert_str_eq(existing, b.id);
        ck_assert_int_eq(insert_keyed(&f, &r, "ci-bot\x1forder-44", HASH_B, existing), STORE_ITEM_REPLAYED);
        ck_assert_str_eq(existing, b.id);
        record_clear(&r);
        record_clear(&a);
        record_clear(&b);
        record_clear(&c);
        fx_teardown(&f);
}
END_TEST

/* Rows the store's writer changed in place since the triggers went in
 * (sqlite_watch_updates). */
static int64_t sqlite_updates_seen(const char *state_dir)
{
        sqlite3 *db = sqlite_open_db(state_dir);
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM t_updates", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        int64_t n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return n;
}

/* A job whose insert is kept (a waited-for submit, its run's start) and
 * whose final record must be on disk before its answer: one row written
 * as it ended, never an insert then changed (the index entries of the
 * status it passed through would be pages of the same commit).  Counted
 * by triggers the test adds to the database. */
START_TEST(test_kept_insert_written_once)
{
        struct fx f;
        fx_setup(&f, 0);
        fx_close_store(&f);
        sqlite3 *db = sqlite_open_db(f.dir);
        char *msg = NULL;
        int rc = sqlite3_exec(db,
                              "CREATE TABLE t_updates(what TEXT);"
                              "CREATE TRIGGER t_jobs AFTER UPDATE ON jobs BEGIN INSERT INTO t_updates VALUES ('jobs'); END;"
                              "CREATE TRIGGER t_data AFTER UPDATE ON job_data BEGIN INSERT INTO t_updates VALUES ('data'); END;",
                              NULL, NULL, &msg);
        ck_assert_msg(rc == SQLITE_OK, "triggers: %s", msg ? msg : sqlite3_errstr(rc));
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        fx_open_store(&f);
        const unsigned all = STORE_READ_PARAMS | STORE_READ_RESULT;
        struct err err = ERR_INIT;
        struct job_record e, run, fin, got;
        struct store_stats st0, st1;

        /* Kept insert, lazy start, final update: one commit, one row. */
        rec_queued(&e, "alpha", T0 + 1);
        store_stats(f.s, &st0);
        ck_assert_int_eq(lazy_insert(f.s, &e, &err), 0);
        rec_copy(&run, &e);
        rec_set_running(&run, T0 + 10);
        ck_assert_int_eq(store_update_end(store_update_begin(f.s, &run, JOB_QUEUED, true), &err), 1);
        assert_gone(&f, e.id);
        rec_copy(&fin, &e);
        rec_set_running(&fin, T0 + 10);
        rec_set_final(&fin, JOB_SUCCEEDED, T0 + 90, 1, "{\"sum\": 3}");
        update_applied(&f, &fin, JOB_RUNNING);
        store_stats(f.s, &st1);
        ck_assert_uint_eq(st1.commits - st0.commits, 1);
        get_ok(&f, e.id, all, &got);
        rec_assert_eq("kept insert and its final update", &got, &fin, all);
        record_clear(&got);
        ck_assert_int_eq(sqlite_updates_seen(f.dir), 0);

        /* A final update that would not apply (the kept record is not in
         * the status it expects): not merged; said once the kept insert
         * is on disk, which it is then. */
        struct job_record k, bad;
        rec_queued(&k, "alpha", T0 + 2);
        ck_assert_int_eq(lazy_insert(f.s, &k, &err), 0);
        rec_copy(&bad, &k);
        rec_set_final(&bad, JOB_SUCCEEDED, T0 + 95, 1, "{}");
        ck_assert_int_eq(update(&f, &bad, JOB_RUNNING), 0);
        get_ok(&f, k.id, all, &got);
        rec_assert_eq("kept insert, an update that did not apply", &got, &k, all);
        record_clear(&got);

        /* Only a final write is merged: a run's start, not lazy, waits
         * for a commit of its own (a carried write given up at a stop
         * would be written all the same), after the kept insert. */
        struct job_record s1, s1run;
        rec_queued(&s1, "alpha", T0 + 3);
        ck_assert_int_eq(lazy_insert(f.s, &s1, &err), 0);
        int64_t seen = sqlite_updates_seen(f.dir);
        rec_copy(&s1run, &s1);
        rec_set_running(&s1run, T0 + 30);
        update_applied(&f, &s1run, JOB_QUEUED);
        ck_assert_int_eq(sqlite_updates_seen(f.dir), seen + 1);
        get_ok(&f, s1.id, 0, &got);
        ck_assert_int_eq(got.status, JOB_RUNNING);
        record_clear(&got);
        record_clear(&s1run);
        record_clear(&s1);

        /* The triggers see an update of a record already on disk. */
        update_applied(&f, &bad, JOB_QUEUED);
        ck_assert_int_ge(sqlite_updates_seen(f.dir), 2);

        fx_reopen(&f);
        get_ok(&f, e.id, all, &got);
        rec_assert_eq("after a reopen", &got, &fin, all);
        record_clear(&got);
        record_clear(&bad);
        record_clear(&k);
        record_clear(&fin);
        record_clear(&e);
        fx_teardown(&f);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("store");
        /* Every backend runs every case: one TCase each, named after it. */
        for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
                TCase *tc = tcase_create(backends[i].name);
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
                int a = (int)i, z = (int)i + 1;
                tcase_add_loop_test(tc, test_open_reopen, a, z);
                tcase_add_loop_test(tc, test_schema_versions, a, z);
                tcase_add_loop_test(tc, test_insert_get, a, z);
                tcase_add_loop_test(tc, test_read_out_of_descriptors, a, z);
                tcase_add_loop_test(tc, test_large_values, a, z);
                tcase_add_loop_test(tc, test_insert_final_record, a, z);
                tcase_add_loop_test(tc, test_insert_many, a, z);
                tcase_add_loop_test(tc, test_idempotency, a, z);
                tcase_add_loop_test(tc, test_idempotency_concurrent, a, z);
                tcase_add_loop_test(tc, test_idempotency_after_prune, a, z);
                tcase_add_loop_test(tc, test_update_conditional, a, z);
                tcase_add_loop_test(tc, test_update_final_result, a, z);
                tcase_add_loop_test(tc, test_update_many, a, z);
                tcase_add_loop_test(tc, test_list_order_filters_pages, a, z);
                tcase_add_loop_test(tc, test_list_results, a, z);
                tcase_add_loop_test(tc, test_list_admit, a, z);
                tcase_add_loop_test(tc, test_list_same_created_ms, a, z);
                tcase_add_loop_test(tc, test_load_unfinished, a, z);
                tcase_add_loop_test(tc, test_prune_by_time, a, z);
                tcase_add_loop_test(tc, test_prune_by_count, a, z);
                tcase_add_loop_test(tc, test_prune_many, a, z);
                tcase_add_loop_test(tc, test_prune_writes_together, a, z);
                tcase_add_loop_test(tc, test_failed_write_leaves_nothing, a, z);
                tcase_add_loop_test(tc, test_async_threads, a, z);
                tcase_add_loop_test(tc, test_close_waits, a, z);
                tcase_add_loop_test(tc, test_check_health, a, z);
                tcase_add_loop_test(tc, test_fail_stop, a, z);
                tcase_add_loop_test(tc, test_fail_stop_abandon, a, z);
                tcase_add_loop_test(tc, test_fail_stop_close, a, z);
                tcase_add_loop_test(tc, test_lazy_writes, a, z);
                tcase_add_loop_test(tc, test_lazy_writes_outlive_a_failed_commit, a, z);
                tcase_add_loop_test(tc, test_lazy_writes_too_large_keep_it_unhealthy, a, z);
                tcase_add_loop_test(tc, test_lazy_write_waits_while_the_writer_commits, a, z);
                tcase_add_loop_test(tc, test_checkpoints_when_idle, a, z);
                tcase_add_loop_test(tc, test_ops_direct, a, z);
                tcase_add_loop_test(tc, test_callbacks, a, z);
                tcase_add_loop_test(tc, test_callbacks_by_receiver, a, z);
                tcase_add_loop_test(tc, test_callbacks_pending_by_receiver, a, z);
                tcase_add_loop_test(tc, test_callbacks_after_clock_step, a, z);
                suite_add_tcase(s, tc);
        }
        TCase *front = tcase_create("front");
        tcase_add_unchecked_fixture(front, tu_base_setup, tu_base_teardown);
        tcase_add_test(front, test_open_unknown_backend);
        tcase_add_test(front, test_migrate_v2);
        tcase_add_test(front, test_migrate_v3);
        tcase_add_test(front, test_migrate_v4);
        tcase_add_test(front, test_kept_insert_written_once);
        suite_add_tcase(s, front);
        TCase *rec = tcase_create("record");
        tcase_add_test(rec, test_record_render);
        tcase_add_test(rec, test_record_helpers);
        suite_add_tcase(s, rec);
        return s;
}

TEST_MAIN(suite)
