/* api.c - HTTP API v1 handlers (see api.h).
 *
 * Threads: handlers run on the HTTP threads (http.h); what they share with
 * other threads is locked where it lives.  A request that waits for its job
 * (?wait=) is suspended; the job's completion (a worker thread) or the wait
 * thread here (deadlines) resumes it, and the handler runs again to answer.
 * Waits are tracked under a->lock; see struct wait for who holds what. */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <strings.h>
#include <time.h>

#include "base/jsontext.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "callbacks/callback.h"
#include "http.h"
#include "jobs/job.h"
#include "registry/manifest.h"
#include "registry/schema.h"

#define WAIT_MAX_SECONDS 3600
#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 1000
#define RETRY_AFTER_SECONDS 2         /* every 429 and 503 but queue_full (retry_after()) */
#define IDEMPOTENCY_KEY_MAX 128
/* How long a running job's cancel waits for the job's end to be on disk
 * before it is answered with the job as it is then. */
#define CANCEL_WAIT_SECONDS 10
/* How long a cancel looks for a job whose submit is committed but not yet
 * handed to the scheduler (microseconds, unless the writer thread is held
 * up by a long batch). */
#define ACCEPT_WAIT_MS 2000
/* A page of GET /v1/jobs stops once it holds this much: a page of 1,000
 * jobs with megabyte results would be a gigabyte on the HTTP threads. */
#define LIST_PAGE_BYTES (4 * 1024 * 1024)

/* A request waiting for its job.  References: the request's state, the
 * wait list (until resumed), and the job's waiter callback (until called or
 * removed).  `req` may be used only while suspended && !resumed. */
struct wait {
        int refs;
        struct api *api;
        struct http_request *req;
        struct job *job;
        bool made;               /* job is the one this request made (not a replay's) */
        struct job_waiter *waiter;
        int64_t deadline;        /* now_mono_ms() clock */
        bool suspended, resumed, done;
        bool cancel_ending;      /* a cancel waiting for its running job's end */
        struct wait *next;

        /* The commit before the answer (submit): the write in flight and
         * what it carries.  committing: handed to the store, not done. */
        bool committing, committed;
        enum { COMMIT_SUBMIT, COMMIT_BATCH, COMMIT_CANCEL, COMMIT_SYNC } kind;
        bool refused;            /* never handed to the store: the api is stopping */
        struct store_write write;
        struct store_item item;
        struct job_record rec;
        int64_t wait_seconds;
        char *idem_key;          /* as the client sent it */
        char *idem_stored;       /* ...and as stored: per API token (idempotency_key()) */
        char idem_hash[65];
        struct batch *batch;     /* POST /v1/jobs/batch: its items */
        void *body_map;          /* a spooled body, taken from the request: rec.params points into it */
        size_t body_map_len;
};

/* POST /v1/jobs/batch: its items. */
struct batch {
        size_t n;
        json_t *answers;              /* per item: {"status":..., "job"|"error":...} */
        struct job **jobs;            /* NULL where refused */
        struct job_record *recs;
        struct store_item *items;     /* the accepted ones */
        size_t *item_of;              /* items[k] is answers[item_of[k]] */
        size_t nitems;
        int retry_after;              /* an item refused for now (429, 503): when to try again, s; 0 none */
};

static void batch_free(struct batch *b)
{
        if (!b)
                return;
        for (size_t i = 0; i < b->n; i++) {
                job_unref(b->jobs[i]);
                record_clear(&b->recs[i]);
        }
        free(b->jobs);
        free(b->recs);
        free(b->items);
        free(b->item_of);
        json_decref(b->answers);
        free(b);
}


struct api {
        struct api_deps d;
        struct http_server *http;
        char *spool_dir;

        pthread_mutex_t lock;
        pthread_cond_t cond;    /* the wait thread's: a sooner deadline, the stop */
        pthread_cond_t idle;    /* api_stop's: a commit or a wait request done, while stopping */
        int64_t wait_wake_ms;   /* when the wait thread looks at the deadlines next */
        struct wait *waits;
        size_t waits_open;      /* wait requests not yet answered and closed */
        size_t commits_open;    /* store writes in flight for requests */
        bool stopping;
        bool draining;          /* the daemon is stopping: running jobs finish */
        pthread_t wait_thread;
        bool wait_thread_started;

        pthread_mutex_t auth_lock;
        struct auth *auth;       /* NULL: auth off */
        int64_t accept_delay_ms; /* EDGECD_TEST_ACCEPT_DELAY_MS: a committed submit's window */
};

/* ---- errors ---- */

/* The one table from error codes to HTTP statuses and API codes. */
static const struct {
        enum err_code code;
        unsigned status;
        const char *name;
} status_table[] = {
        { ERR_INVALID, 400, "invalid_request" },
        { ERR_NOT_FOUND, 404, "not_found" },
        { ERR_CONFLICT, 409, "conflict" },
        { ERR_TOO_LARGE, 413, "payload_too_large" },
        { ERR_BUSY, 429, "queue_full" },
        { ERR_UNAVAILABLE, 503, "unavailable" },
};

static void add_retry_after(struct http_request *req, int seconds)
{
        char v[16];
        snprintf(v, sizeof v, "%d", seconds);
        http_add_header(req, "Retry-After", v);
}

/* Why a request, or one submission of a batch, was refused: an HTTP
 * status and API code. */
struct reject {
        unsigned status;
        const char *code;
        struct err err;
};

static void reject_err(struct reject *rj, const struct err *err, const char *code_override)
{
        rj->status = 500;
        rj->code = "internal";
        for (size_t i = 0; i < ARRAY_SIZE(status_table); i++) {
                if (status_table[i].code == err->code) {
                        rj->status = status_table[i].status;
                        rj->code = status_table[i].name;
                }
        }
        if (code_override)
                rj->code = code_override;
        rj->err = *err;
}

/* Answer a refusal, with Retry-After when retry_secs > 0. */
static void send_reject(struct http_request *req, const struct reject *rj, int retry_secs)
{
        if (retry_secs)
                add_retry_after(req, retry_secs);
        if (rj->status == 500)
                log_error("%s %s: %s", http_method(req), http_path(req), rj->err.msg);
        http_reply_error(req, rj->status, rj->code, rj->err.msg, rj->err.field);
}

static void reply_err(struct http_request *req, const struct err *err, const char *code_override)
{
        struct reject rj;
        reject_err(&rj, err, code_override);
        /* The daemon itself short of descriptors or memory (a store
         * connection it could not open: SQLite's "unable to open database
         * file"): a moment's shortage, answered as a connection it cannot
         * take is, not a fault. */
        if (rj.status == 500 && errno_is_shortage(err->errnum)) {
                rj.status = 503;
                rj.code = "busy";
        }
        send_reject(req, &rj, rj.status == 429 || rj.status == 503 ? RETRY_AFTER_SECONDS : 0);
}

static void reply_invalid(struct http_request *req, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void reply_invalid(struct http_request *req, const char *field, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        http_reply_error(req, 400, "invalid_request", msg, field);
}

/* ---- waiting ---- */

static struct wait *wait_ref(struct wait *w)
{
        __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
        return w;
}

static void wait_unref(void *p)
{
        struct wait *w = p;
        if (!w || __atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        job_unref(w->job);
        record_clear(&w->rec);
        free(w->idem_key);
        free(w->idem_stored);
        batch_free(w->batch);
        if (w->body_map)   /* never at a stop: after_commit() gave it back */
                http_body_drop(w->api->http, w->body_map, w->body_map_len);
        free(w);
}

/* The request's reference, dropped when libmicrohttpd is done with it.
 * A request resumed after its client left ends without a second dispatch
 * (finish_wait): its waiter comes off the job here, else it would stay
 * there, with this, until the job ends (a queued job: any number). */
static void wait_request_done(void *p)
{
        struct wait *w = p;
        struct api *a = w->api;
        if (w->waiter && job_remove_waiter(w->job, w->waiter))
                wait_unref(w);   /* the callback's: it will not run now */
        w->waiter = NULL;
        pthread_mutex_lock(&a->lock);
        a->waits_open--;
        if (a->stopping)
                pthread_cond_broadcast(&a->idle);
        pthread_mutex_unlock(&a->lock);
        wait_unref(w);
}

/* Under a->lock. */
static void wait_resume_locked(struct wait *w)
{
        if (w->suspended && !w->resumed) {
                w->resumed = true;
                http_resume(w->req);
        }
}

/* The job became final (a worker thread, or an HTTP thread on cancel).
 * It leaves the wait list here, not waking the wait thread for it. */
static void on_job_done(void *ctx)
{
        struct wait *w = ctx;
        struct api *a = w->api;
        pthread_mutex_lock(&a->lock);
        w->done = true;
        wait_resume_locked(w);
        for (struct wait **pp = &a->waits; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        wait_unref(w);   /* the list's; the callback's is held */
                        break;
                }
        }
        pthread_mutex_unlock(&a->lock);
        wait_unref(w);
}

/* Resumes waits whose deadline passed or whose client left (checked about
 * once a second: the answer then goes nowhere and the connection is let
 * go, rather than held against the client's connection limit until the
 * job ends), and drops resumed ones from the list. */
static void *wait_thread_main(void *arg)
{
        struct api *a = arg;
        /* The suspended requests, and whether their clients left. */
        struct http_request **reqs = NULL;
        bool *gone = NULL;
        size_t cap = 0;
        pthread_mutex_lock(&a->lock);
        for (;;) {
                int64_t now = now_mono_ms(), next = now + 1000;
                size_t n = 0;
                for (struct wait *w = a->waits; w; w = w->next) {
                        if (!w->suspended || w->resumed)
                                continue;
                        if (n == cap) {
                                cap = cap ? 2 * cap : 64;
                                reqs = xrealloc(reqs, cap * sizeof *reqs);
                                gone = xrealloc(gone, cap * sizeof *gone);
                        }
                        reqs[n++] = w->req;
                }
                http_clients_gone(reqs, n, gone);
                size_t i = 0;
                for (struct wait **pp = &a->waits; *pp;) {
                        struct wait *w = *pp;
                        bool left = w->suspended && !w->resumed && gone[i++];
                        if (a->stopping || now >= w->deadline || left)
                                wait_resume_locked(w);
                        /* Stopping: off the list whatever its state, so
                         * that this thread ends. */
                        if (w->resumed || a->stopping) {
                                *pp = w->next;
                                wait_unref(w);
                                continue;
                        }
                        if (w->deadline < next)
                                next = w->deadline;
                        pp = &w->next;
                }
                if (a->stopping && !a->waits)
                        break;
                int64_t delay = next - now;
                a->wait_wake_ms = now + (delay < 1 ? 1 : delay);
                struct timespec ts = timespec_in(CLOCK_MONOTONIC, delay < 1 ? 1 : delay);
                pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
        pthread_mutex_unlock(&a->lock);
        free(reqs);
        free(gone);
        return NULL;
}

/* Answer with the job's record as stored.  Only reads (GET) fill the
 * cache of final renderings: a cancel's or a submit's answer is seldom
 * asked for again. */
/* A job queued or running here: its record with the progress read now
 * (the store has it only once the job is final).  False (nothing
 * rendered) otherwise: the store's text is the answer. */
static bool render_live(struct api *a, const char *id, char **ret_text, size_t *ret_len)
{
        struct job *j = jobtable_get(a->d.jobs, id);
        if (!j)
                return false;
        /* Final and told (a waiter being answered): the store has it all.
         * Final but not told, its final commit is under way and the store
         * still says running: the progress shown stays until then. */
        if (job_final_recorded(j)) {
                job_unref(j);
                return false;
        }
        char *progress = job_progress(j);
        job_unref(j);
        /* The store's record, as every other answer; only its progress is
         * the live one (what the store has is an earlier run's, or none). */
        struct job_record rec;
        struct err err = ERR_INIT;
        if (store_get(a->d.store, id, 0, &rec, &err) < 0) {
                free(progress);
                return false;   /* store_render says why */
        }
        bool done = !job_status_is_final(rec.status);
        if (done) {
                free(rec.progress);
                rec.progress = TAKE_PTR(progress);
                *ret_text = record_render(&rec, false, ret_len);
        }
        free(progress);
        record_clear(&rec);
        return done;
}

/* An answer's result is reserved against http.max_response_bytes before
 * its record is read and rendered, and one past the cap refused unread: a
 * refused request took two or three copies of its result (up to
 * result_ceiling_bytes) first, and answers being built were not counted,
 * so each HTTP thread could build one past the cap at the same time. */
static bool refused_unread(struct api *a, struct http_request *req, const char *id, bool location)
{
        size_t len = 0;
        struct err err = ERR_INIT;
        if (store_result_size(a->d.store, id, &len, &err) < 0)
                return false;   /* a missing record is told by the render */
        char where[64];
        snprintf(where, sizeof where, "/v1/jobs/%s", id);
        return http_refuse_large(req, len, location ? where : NULL);
}

/* Server-Timing (W3C) on the answer to the job this request made: where the
 * request's time went on the daemon's clock, in milliseconds.  admit: its
 * head in to the job made (body, parsing, validation, admission); then,
 * answered final, job: made to final (the job's total_ms), commit: final
 * to its final commit done, reply: to this answer (its rendering
 * included); or, answered before the job's end, submit: made to this
 * answer (its record on disk, and any wait). */
static void add_timing(struct http_request *req, struct job *j)
{
        struct job_timing t;
        bool told = job_timing(j, &t);
        int64_t head = http_started_us(req), now = now_mono_us();
        char v[160];
        if (told)
                snprintf(v, sizeof v, "admit;dur=%.3f, job;dur=%.3f, commit;dur=%.3f, reply;dur=%.3f",
                         (t.created_us - head) / 1000.0, (t.finished_us - t.created_us) / 1000.0,
                         (t.woken_us - t.finished_us) / 1000.0, (now - t.woken_us) / 1000.0);
        else
                snprintf(v, sizeof v, "admit;dur=%.3f, submit;dur=%.3f", (j->created_us - head) / 1000.0,
                         (now - j->created_us) / 1000.0);
        http_add_header(req, "Server-Timing", v);
}

/* timed: the job this request made (its answer says where the time went,
 * add_timing()), or NULL. */
static void reply_record(struct api *a, struct http_request *req, unsigned status, const char *id,
                         bool location, bool read, struct job *timed)
{
        char *text;
        size_t len;
        bool final;
        struct err err = ERR_INIT;
        if (render_live(a, id, &text, &len)) {
                final = false;
        } else if (refused_unread(a, req, id, location)) {
                return;
        } else if (store_render(a->d.store, id, read, &text, &len, &final, &err) < 0) {
                reply_err(req, &err, err.code == ERR_UNAVAILABLE ? "storage_unavailable" : NULL);
                return;
        }
        if (location) {
                char where[64];
                snprintf(where, sizeof where, "/v1/jobs/%s", id);
                http_add_header(req, "Location", where);
        }
        if (status == 0)
                status = final ? 200 : 202;
        if (timed)
                add_timing(req, timed);
        http_reply_json_text(req, status, text, len);
}

static bool commit(struct api *a, struct http_request *req, struct wait *w);

/* After the sync a lazy submit needs before its job is named (below). */
static void finish_synced(struct http_request *req, struct wait *w)
{
        w->committing = false;
        if (w->refused) {
                /* The daemon is stopping: no more commits through the
                 * api, but the store stays open until the HTTP threads
                 * are done.  This one waits for the disk itself. */
                err_clear(&w->write.err);
                store_sync(w->api->d.store, &w->write.err);
        }
        if (w->write.err.code != ERR_OK) {
                reply_err(req, &w->write.err, "storage_unavailable");
                return;
        }
        reply_record(w->api, req, 0, w->job->id, true, false, w->made ? w->job : NULL);
}

/* Second dispatch of a waiting submit: answer with what the job has now.
 * A lazy submit (one nobody was told of) is on disk before its job is
 * named; a final job is, with its final commit. */
static void finish_wait(struct http_request *req, struct wait *w)
{
        /* Told (the callback ran, or runs now): its final commit, which
         * made all before it durable, came first.  Not told: the callback
         * never runs now, and nothing else resumes the request. */
        bool told = true;
        if (w->waiter && job_remove_waiter(w->job, w->waiter)) {
                told = false;
                wait_unref(w);   /* the callback's reference: it will not run now */
        }
        w->waiter = NULL;
        if (w->kind == COMMIT_SUBMIT && w->write.lazy && !told) {
                /* From now on its runs are on disk before they start
                 * (record_attempt_end() syncs one begun before this).
                 * Held while the store cannot write, as transitions are:
                 * the job was taken, and its id is given once on disk. */
                __atomic_store_n(&w->job->submit_lazy, false, __ATOMIC_SEQ_CST);
                w->kind = COMMIT_SYNC;
                w->write = (struct store_write){ .kind = STORE_SYNC, .retry = true };
                /* Under the lock: the wait thread that resumed this request
                 * reads `resumed` to take it off its list. */
                pthread_mutex_lock(&w->api->lock);
                w->committed = w->suspended = w->resumed = false;
                pthread_mutex_unlock(&w->api->lock);
                if (commit(w->api, req, w))
                        finish_synced(req, w);
                return;
        }
        reply_record(w->api, req, 0, w->job->id, true, false, w->made ? w->job : NULL);
}

/* The request's state: one struct wait for its whole life (the commit,
 * then the wait for the job). */
static struct wait *wait_for(struct api *a, struct http_request *req)
{
        struct wait *w = http_state(req);
        if (w)
                return w;
        w = xcalloc(1, sizeof *w);
        w->refs = 1;   /* the request's */
        w->api = a;
        w->req = req;
        http_set_state(req, w, wait_request_done);
        pthread_mutex_lock(&a->lock);
        a->waits_open++;
        pthread_mutex_unlock(&a->lock);
        return w;
}

static void finish_cancel_wait(struct api *a, struct http_request *req, struct wait *w);

/* The second dispatch of a wait, or its answer at once. */
static void wait_answer(struct http_request *req, struct wait *w)
{
        if (w->cancel_ending)
                finish_cancel_wait(w->api, req, w);
        else
                finish_wait(req, w);
}

/* Park req until j is final or `seconds` pass. */
static void start_wait(struct api *a, struct http_request *req, struct job *j, int64_t seconds)
{
        struct wait *w = wait_for(a, req);
        struct job *old = w->job;
        w->job = job_ref(j);      /* before the old one goes: j may be it */
        w->made &= j == old;
        job_unref(old);
        w->deadline = now_mono_ms() + seconds * 1000;
        w->suspended = w->resumed = w->done = false;

        wait_ref(w);   /* the callback's */
        w->waiter = job_add_waiter(j, on_job_done, w);
        if (!w->waiter) {
                /* Told already: final and on disk. */
                wait_unref(w);
                wait_answer(req, w);
                return;
        }
        pthread_mutex_lock(&a->lock);
        if (w->done || a->stopping) {
                pthread_mutex_unlock(&a->lock);
                wait_answer(req, w);
                return;
        }
        http_suspend(req);
        w->suspended = true;
        w->next = a->waits;
        a->waits = wait_ref(w);   /* the list's */
        if (w->deadline < a->wait_wake_ms)
                pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->lock);
}

/* ---- committing before answering ---- */

static void after_commit(struct api *a, struct wait *w);

/* The store's answer (its writer thread, or this one).  What the commit
 * means for the daemon happens here, whatever becomes of the request (its
 * client may be gone); the second dispatch only answers. */
static void on_committed(struct store_write *sw)
{
        struct wait *w = sw->ctx;
        struct api *a = w->api;
        after_commit(a, w);
        pthread_mutex_lock(&a->lock);
        w->committed = true;
        if (w->suspended && !w->resumed) {
                w->resumed = true;
                http_resume(w->req);
        }
        a->commits_open--;
        if (a->stopping)
                pthread_cond_broadcast(&a->idle);
        pthread_mutex_unlock(&a->lock);
        wait_unref(w);
}

/* Hand w's write to the store and park the request until it is done.
 * true when it is done already (answer now). */
static bool commit(struct api *a, struct http_request *req, struct wait *w)
{
        w->committing = true;
        w->write.done = on_committed;
        pthread_mutex_lock(&a->lock);
        if (a->stopping) {
                /* api_stop waits for no more writes. */
                pthread_mutex_unlock(&a->lock);
                err_set(&w->write.err, ERR_UNAVAILABLE, 0, "the daemon is shutting down");
                w->refused = true;
                after_commit(a, w);
                return true;
        }
        w->write.ctx = wait_ref(w);   /* the write's */
        a->commits_open++;
        pthread_mutex_unlock(&a->lock);
        store_write_async(a->d.store, &w->write);
        pthread_mutex_lock(&a->lock);
        bool done = w->committed;
        if (!done) {
                http_suspend(req);
                w->suspended = true;
        }
        pthread_mutex_unlock(&a->lock);
        return done;
}

/* ---- POST /v1/jobs ---- */

static bool is_json_content_type(const char *ct)
{
        if (!ct)
                return false;
        while (*ct == ' ')
                ct++;
        size_t n = strlen("application/json");
        if (strncasecmp(ct, "application/json", n))
                return false;
        ct += n;
        while (*ct == ' ')
                ct++;
        return *ct == '\0' || *ct == ';';
}

static bool valid_name(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 64)
                return false;
        for (; *s; s++)
                if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_' && *s != '-')
                        return false;
        return true;
}

/* ?wait=true|false|SECONDS -> seconds to wait (0: do not).  "1" is one
 * second, not true.  -1 when bad. */
static int64_t parse_wait(const char *v)
{
        if (!v)
                return 0;
        if (!strcmp(v, "true") || !*v)
                return WAIT_MAX_SECONDS;
        if (!strcmp(v, "false"))
                return 0;
        int64_t n;
        return parse_int64(v, 0, WAIT_MAX_SECONDS, &n) ? n : -1;
}

/* A submit body, checked for shape; borrowed from the parsed document. */
struct submit {
        const char *algorithm;
        const char *version;        /* NULL: the newest */
        json_t *parameters;         /* NULL: {} */
        enum job_priority priority;
        int64_t timeout_seconds;    /* 0: the manifest's, else the default */
        const char *callback_url;   /* NULL: none; checked against callbacks.allow */
};

/* Check the body's shape (not the parameters: the plugin's schema does
 * that).  ERR_INVALID with err->field the JSON pointer of the bad member. */
static int parse_submit(const json_t *doc, const struct config *cfg, struct submit *ret, struct err *err)
{
        static const char *const known[] = { "algorithm", "version", "parameters", "priority", "timeout_seconds",
                                             "callback_url" };
        int64_t max_timeout = cfg->max_timeout_seconds;
        struct submit s = { .priority = PRIO_NORMAL };
        int rc = 0;
        if (!json_is_object(doc)) {
                rc = err_set(err, ERR_INVALID, 0, "the request body must be a JSON object");
                err_set_field(err, "");
                return rc;
        }
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)(uintptr_t)doc, key, value) {
                bool ok = false;
                for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                        ok |= !strcmp(key, known[i]);
                if (!ok) {
                        int cut = (int)utf8_cut(key, strlen(key), 64);
                        rc = err_set(err, ERR_INVALID, 0, "unknown field `%.*s` (known: algorithm, version, "
                                     "parameters, priority, timeout_seconds, callback_url)", cut, key);
                        _cleanup_free_ char *field = xasprintf("/%.*s", cut, key);
                        err_set_field(err, field);
                        return rc;
                }
        }
        json_t *jalg = json_object_get(doc, "algorithm");
        if (!json_is_string(jalg) || !valid_name(json_string_value(jalg))) {
                rc = err_set(err, ERR_INVALID, 0, "%s", jalg ? "algorithm must be a plugin name ([a-z0-9_-], "
                             "1 to 64 characters)" : "algorithm is required");
                err_set_field(err, "/algorithm");
                return rc;
        }
        s.algorithm = json_string_value(jalg);
        json_t *jver = json_object_get(doc, "version");
        if (jver) {
                struct semver sv;
                struct semver_range *range = NULL;
                struct err verr = ERR_INIT;
                const char *v = json_string_value(jver);
                if (v && semver_parse(v, &sv, NULL) == 0) {
                        semver_done(&sv);
                } else if (!v || semver_range_parse(v, &range, &verr) < 0) {
                        rc = err_set(err, ERR_INVALID, 0, "version must be a semantic version like \"1.2.0\" "
                                     "or a range of them like \"^1.2\", \"~1.2.3\" or \">=1.0.0 <2.0.0\"");
                        err_set_field(err, "/version");
                        return rc;
                }
                semver_range_free(range);
                s.version = v;
        }
        s.parameters = json_object_get(doc, "parameters");
        if (s.parameters && !json_is_object(s.parameters)) {
                rc = err_set(err, ERR_INVALID, 0, "parameters must be a JSON object");
                err_set_field(err, "/parameters");
                return rc;
        }
        json_t *jprio = json_object_get(doc, "priority");
        if (jprio) {
                int p = json_is_string(jprio) ? job_priority_parse(json_string_value(jprio)) : -1;
                if (p < 0) {
                        rc = err_set(err, ERR_INVALID, 0, "priority must be \"high\", \"normal\" or \"low\"");
                        err_set_field(err, "/priority");
                        return rc;
                }
                s.priority = (enum job_priority)p;
        }
        json_t *jtimeout = json_object_get(doc, "timeout_seconds");
        if (jtimeout) {
                if (!json_is_integer(jtimeout) || json_integer_value(jtimeout) < 1 ||
                    json_integer_value(jtimeout) > max_timeout) {
                        rc = err_set(err, ERR_INVALID, 0, "timeout_seconds must be an integer from 1 to %lld",
                                     (long long)max_timeout);
                        err_set_field(err, "/timeout_seconds");
                        return rc;
                }
                s.timeout_seconds = json_integer_value(jtimeout);
        }
        json_t *jcb = json_object_get(doc, "callback_url");
        if (jcb && !json_is_null(jcb)) {
                struct err uerr = ERR_INIT;
                if (callback_url_allowed(cfg->callbacks.allow, json_string_value(jcb), &uerr) < 0) {
                        rc = err_set(err, ERR_INVALID, 0, "callback_url %s", uerr.msg);
                        err_set_field(err, "/callback_url");
                        return rc;
                }
                s.callback_url = json_string_value(jcb);
        }
        *ret = s;
        return 0;
}

/* When a client refused rj should try again (seconds; 0: no Retry-After):
 * for a full queue, about when a worker takes the next queued job (it may
 * be minutes for long jobs, and well under the old fixed 2 s for short
 * ones); for the rest, a moment. */
static int retry_after(struct api *a, const struct reject *rj)
{
        if (rj->status != 429 && rj->status != 503)
                return 0;
        return !strcmp(rj->code, "queue_full") ? scheduler_retry_after(a->d.scheduler) : RETRY_AFTER_SECONDS;
}

static void reply_reject(struct api *a, struct http_request *req, const struct reject *rj)
{
        send_reject(req, rj, retry_after(a, rj));
}

/* http.max_json_depth as the checks apply it: jansson's parser refuses a
 * body past 2048 levels, a scalar counted as one, so a cap past 2046 would
 * let through, as text or spooled, what it then refuses in memory. */
static size_t json_depth_cap(const struct config *cfg)
{
        return cfg->http.max_json_depth > 2046 ? 2046 : (size_t)cfg->http.max_json_depth;
}

/* Check one submission and make its live job and record (queued, with its
 * parameters as compact text).  0, or -1 with *rj filled. */
static int prepare_job(struct api *a, const json_t *doc, const char *raw, size_t raw_len, const char *user,
                       struct callback_tally *tally, struct job **ret_job, struct job_record *rec,
                       struct reject *rj)
{
        const struct config *cfg = a->d.cfg;
        struct submit sub = { 0 };
        struct err err = ERR_INIT;
        if (parse_submit(doc, cfg, &sub, &err) < 0) {
                metrics_job_rejected("invalid");
                reject_err(rj, &err, NULL);
                return -1;
        }
        struct manifest *m = NULL;
        if (registry_find(a->d.registry, sub.algorithm, sub.version, &m, &err) < 0) {
                metrics_job_rejected("invalid");
                if (err.code == ERR_NOT_FOUND) {
                        /* The version, or the name itself? */
                        struct manifest *any = NULL;
                        bool named = sub.version && registry_find(a->d.registry, sub.algorithm, NULL, &any, NULL) == 0;
                        manifest_unref(any);
                        err_set_field(&err, named ? "/version" : "/algorithm");
                }
                reject_err(rj, &err, err.code == ERR_NOT_FOUND ? "unknown_algorithm" : NULL);
                return -1;
        }
        int64_t limit = manifest_input_limit(m, cfg);
        if (raw && (int64_t)raw_len > limit) {
                err_set(&err, ERR_TOO_LARGE, 0, "the parameters are %zu bytes, over the limit of %lld for `%s` %s "
                        "(its max_input_bytes, else max_body_bytes; at most input_ceiling_bytes)", raw_len, (long long)limit, m->name, m->version);
                err_set_field(&err, "/parameters");
                manifest_unref(m);
                metrics_job_rejected("invalid");
                reject_err(rj, &err, NULL);
                return -1;
        }
        _cleanup_json_ json_t *parameters = raw ? NULL : sub.parameters ? json_incref(sub.parameters) : json_object();
        bool malformed = false;
        if (raw ? schema_validate_text(m->input_schema, m->input_index, raw, raw_len, "/parameters",
                                       json_depth_cap(cfg), &malformed, &err) < 0
                : schema_validate(m->input_schema, m->input_index, parameters, "/parameters", &err) < 0) {
                manifest_unref(m);
                metrics_job_rejected("invalid");
                err.code = ERR_INVALID;
                reject_err(rj, &err, malformed ? "invalid_json" : "invalid_parameters");
                return -1;
        }
        if (breaker_check_submit(a->d.breaker, m->name, &err) < 0) {
                manifest_unref(m);
                metrics_job_rejected("algorithm_unavailable");
                reject_err(rj, &err, "algorithm_unavailable");
                return -1;
        }
        if (sub.callback_url && callbacks_admit(cfg, a->d.store, sub.callback_url, tally, &err) < 0) {
                manifest_unref(m);
                metrics_job_rejected("callback_backlog");
                err_set_field(&err, "/callback_url");
                reject_err(rj, &err, "callback_backlog");
                return -1;
        }
        /* Kept as text, on disk: a parsed tree costs many times its size
         * (jsontext.h), and a queued job holds nothing of it in memory.  A
         * spooled body's are its own bytes, read from the mapping. */
        char *params = raw ? (char *)(uintptr_t)raw : json_dumps(parameters, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!params) {
                manifest_unref(m);
                err_set(&err, ERR_INTERNAL, 0, "cannot encode the parameters");
                reject_err(rj, &err, NULL);
                return -1;
        }
        int64_t timeout = sub.timeout_seconds;
        if (!timeout)
                timeout = m->timeout_seconds ? m->timeout_seconds : cfg->defaults.timeout_seconds;
        if (timeout > cfg->max_timeout_seconds)
                timeout = cfg->max_timeout_seconds;
        struct job *j = job_new(m, sub.priority, timeout, user);
        manifest_unref(m);
        if (sub.callback_url)
                job_set_callback(j, sub.callback_url);
        job_snapshot(j, rec);
        rec->params = params;
        rec->params_len = raw ? raw_len : strlen(params);
        rec->params_external = raw != NULL;
        if (!raw && (int64_t)rec->params_len > limit) {
                err_set(&err, ERR_TOO_LARGE, 0, "the parameters are %zu bytes, over the limit of %lld for `%s` %s "
                        "(its max_input_bytes, else max_body_bytes; at most input_ceiling_bytes)", rec->params_len, (long long)limit,
                        j->manifest->name, j->manifest->version);
                err_set_field(&err, "/parameters");
                record_clear(rec);
                job_unref(j);
                metrics_job_rejected("invalid");
                reject_err(rj, &err, NULL);
                return -1;
        }
        *ret_job = j;
        return 0;
}

/* The body, when it is JSON text (content type, syntax, depth; checked
 * as a stream, never a tree); NULL after replying. */
static const char *json_body(struct api *a, struct http_request *req, size_t *ret_len)
{
        if (!is_json_content_type(http_header(req, "Content-Type"))) {
                metrics_http_rejected("unsupported_media_type");
                http_reply_error(req, 415, "unsupported_media_type",
                                 "the request body must be JSON: send Content-Type: application/json", NULL);
                return NULL;
        }
        const char *body = http_body(req, ret_len);
        struct err derr = ERR_INIT;
        if (jsontext_check(body, *ret_len, json_depth_cap(a->d.cfg), &derr) < 0) {
                metrics_http_rejected(strstr(derr.msg, "nesting deeper") ? "json_too_deep" : "invalid_json");
                char msg[ERR_MSG_MAX + 32];
                snprintf(msg, sizeof msg, "malformed JSON at %s", derr.msg);
                http_reply_error(req, 400, "invalid_json", msg, NULL);
                return NULL;
        }
        return body;
}

/* Parse and check a request body as JSON.  NULL after replying. */
static json_t *parse_body(struct api *a, struct http_request *req)
{
        size_t len;
        const char *body = json_body(a, req, &len);
        if (!body)
                return NULL;
        json_error_t jerr;
        json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!doc) {
                char msg[512];
                snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
                metrics_http_rejected("invalid_json");
                http_reply_error(req, 400, "invalid_json", msg, NULL);
        }
        return doc;
}

/* ---- a spooled body (larger than max_body_bytes) ---- */

#define ENVELOPE_MEMBER_MAX (64 * 1024)

/* The largest submission worth spooling: the largest plugin limit, plus
 * room for the rest of the submission object. */
static size_t spool_max(struct api *a)
{
        const struct config *cfg = a->d.cfg;
        int64_t most = registry_max_input_bytes(a->d.registry);
        if (most < cfg->max_body_bytes)
                most = cfg->max_body_bytes;
        if (most > cfg->input_ceiling_bytes)
                most = cfg->input_ceiling_bytes;
        return (size_t)most + ENVELOPE_MEMBER_MAX;
}

void api_plugins_changed(struct api *a)
{
        if (a && a->http)
                http_set_spool_max(a->http, spool_max(a));
}

/* The end of the JSON value at text[i] (text is valid JSON: jsontext.h
 * checked it). */
static size_t skip_value(const char *text, size_t len, size_t i)
{
        size_t depth = 0;
        do {
                char c = text[i];
                if (c == '"') {
                        for (i++; i < len && text[i] != '"'; i++)
                                if (text[i] == '\\')
                                        i++;
                        i++;
                } else if (c == '{' || c == '[') {
                        depth++;
                        i++;
                } else if (c == '}' || c == ']') {
                        depth--;
                        i++;
                } else if (depth) {
                        i++;
                } else {
                        while (i < len && !strchr(",}] \t\r\n", text[i]))
                                i++;
                }
        } while (depth && i < len);
        return i;
}

static size_t skip_ws(const char *text, size_t len, size_t i)
{
        while (i < len && strchr(" \t\r\n", text[i]))
                i++;
        return i;
}

/* The submit object of a spooled body without its parameters as a tree:
 * every other member (each small) parsed, the parameters' bytes found in
 * place.  NULL after replying. */
static json_t *parse_spooled(struct api *a, struct http_request *req, const char **ret_params, size_t *ret_len)
{
        size_t len;
        const char *text = json_body(a, req, &len);
        if (!text)
                return NULL;
        size_t i = skip_ws(text, len, 0);
        if (i >= len || text[i] != '{') {
                reply_invalid(req, "", "the request body must be a JSON object");
                return NULL;
        }
        _cleanup_json_ json_t *doc = json_object();
        *ret_params = NULL;
        for (i = skip_ws(text, len, i + 1); i < len && text[i] != '}';) {
                size_t k0 = i, k1 = skip_value(text, len, i);
                json_error_t kerr;
                json_t *jk = json_loadb(text + k0, k1 - k0, JSON_DECODE_ANY, &kerr);
                _cleanup_free_ char *key = xstrdup(json_string_value(jk));
                json_decref(jk);
                i = skip_ws(text, len, skip_ws(text, len, k1) + 1);   /* past ':' */
                size_t v0 = i, v1 = skip_value(text, len, i);
                i = skip_ws(text, len, v1);
                if (i < len && text[i] == ',')
                        i = skip_ws(text, len, i + 1);
                if (!key) {
                        /* A key the in-memory parser refuses (`\u0000`):
                         * refused here too, not passed over. */
                        metrics_http_rejected("invalid_json");
                        _cleanup_free_ char *msg = xasprintf("malformed JSON: object key: %s", jk ? "not a string" : kerr.text);
                        http_reply_error(req, 400, "invalid_json", msg, NULL);
                        return NULL;
                }
                if (json_object_get(doc, key) || (!strcmp(key, "parameters") && *ret_params)) {
                        metrics_http_rejected("invalid_json");
                        _cleanup_free_ char *msg = xasprintf("malformed JSON: duplicate object key `%.64s`", key);
                        http_reply_error(req, 400, "invalid_json", msg, NULL);
                        return NULL;
                }
                if (!strcmp(key, "parameters")) {
                        if (text[v0] != '{') {
                                reply_invalid(req, "/parameters", "parameters must be an object");
                                return NULL;
                        }
                        *ret_params = text + v0;
                        *ret_len = v1 - v0;
                        continue;
                }
                if (v1 - v0 > ENVELOPE_MEMBER_MAX) {
                        _cleanup_free_ char *field = xasprintf("/%.64s", key);
                        reply_invalid(req, field, "`%.64s` is %zu bytes: only `parameters` may be large", key, v1 - v0);
                        return NULL;
                }
                json_error_t jerr;
                json_t *v = json_loadb(text + v0, v1 - v0, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
                if (!v) {
                        metrics_http_rejected("invalid_json");
                        _cleanup_free_ char *msg = xasprintf("malformed JSON in `%.64s`: %s", key, jerr.text);
                        http_reply_error(req, 400, "invalid_json", msg, NULL);
                        return NULL;
                }
                json_object_set_new(doc, key, v);
        }
        if (!*ret_params) {
                *ret_params = "{}";
                *ret_len = 2;
        }
        return TAKE_PTR(doc);
}

/* An Idempotency-Key: 1 to 128 printable ASCII characters. */
static bool valid_idempotency_key(const char *k)
{
        size_t n = strlen(k);
        if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
                return false;
        for (; *k; k++)
                if ((unsigned char)*k < 0x21 || (unsigned char)*k > 0x7e)
                        return false;
        return true;
}

/* A key as stored: one client's key is not another's (two clients'
 * `order-42` are two jobs), so with auth on it is the token's name, a
 * unit separator and the key (a key is printable ASCII: never the
 * separator); with auth off, the key alone. */
static char *idempotency_key(const char *user, const char *key)
{
        return user ? xasprintf("%s\x1f%s", user, key) : xstrdup(key);
}

/* A place in the queue for a job about to be committed; none once the
 * daemon is stopping (from the moment /readyz says so). */
static int reserve(struct api *a, struct err *err)
{
        pthread_mutex_lock(&a->lock);
        bool draining = a->draining || a->stopping;
        pthread_mutex_unlock(&a->lock);
        if (draining)
                return err_set(err, ERR_UNAVAILABLE, 0, "the daemon is shutting down");
        return queue_reserve(a->d.queue, 1, err);
}

/* After the commit (second dispatch): answer, queue, maybe wait. */
/* What a committed (or failed) submit, batch or cancel means; once per
 * write, on whichever thread the store answered.  Takes no api lock. */
static void after_commit(struct api *a, struct wait *w)
{
        bool ok = w->write.err.code == ERR_OK;
        /* The parameters are on disk now (or refused): a request that goes
         * on waiting for its job holds nothing of them, nor of its spooled
         * body's file. */
        record_clear_params(&w->rec);
        http_body_drop(a->http, w->body_map, w->body_map_len);
        w->body_map = NULL;
        switch (w->kind) {
        case COMMIT_SUBMIT:
                if (ok && w->item.outcome == STORE_ITEM_OK) {
                        struct job *j = w->job;
                        if (a->accept_delay_ms > 0)
                                sleep_ms(a->accept_delay_ms);   /* the tests' window */
                        scheduler_accept(a->d.scheduler, j);
                        metrics_job_submitted();
                        log_job(LOG_LVL_DEBUG, j->id, j->manifest->name, NULL, "%s %s accepted (%s priority)",
                                j->manifest->name, j->manifest->version, job_priority_name(j->priority));
                } else {
                        queue_unreserve(a->d.queue, 1);
                        if (!ok)
                                metrics_job_rejected(w->refused ? "unavailable" : "storage");
                        else if (w->item.outcome == STORE_ITEM_CONFLICT)
                                metrics_job_rejected("idempotency_conflict");
                }
                break;
        case COMMIT_BATCH: {
                struct batch *b = w->batch;
                for (size_t k = 0; k < b->nitems; k++) {
                        record_clear_params(&b->recs[b->item_of[k]]);
                        if (ok) {
                                scheduler_accept(a->d.scheduler, b->jobs[b->item_of[k]]);
                                metrics_job_submitted();
                        }
                }
                if (!ok) {
                        queue_unreserve(a->d.queue, b->nitems);
                        metrics_job_rejected(w->refused ? "unavailable" : "storage");
                }
                break;
        }
        case COMMIT_CANCEL:
                if (ok)
                        scheduler_cancel_end(a->d.scheduler, w->job, w->item.outcome == STORE_ITEM_OK);
                break;
        case COMMIT_SYNC:
                break;
        }
}

/* The second dispatch after a commit: answer when the write failed (true). */
static bool reply_if_not_written(struct http_request *req, struct wait *w)
{
        w->committing = false;
        if (w->write.err.code == ERR_OK)
                return false;
        struct reject rj;
        reject_err(&rj, &w->write.err, w->refused ? "shutting_down" : "storage_unavailable");
        reply_reject(w->api, req, &rj);
        return true;
}

/* The answer to a submit whose Idempotency-Key was used before: 409 for
 * another body, else the first job as it is now (waited for, with ?wait). */
static void reply_keyed(struct api *a, struct http_request *req, const char *key, enum store_item_outcome outcome,
                        const char *existing_id, int64_t wait_seconds)
{
        if (outcome == STORE_ITEM_CONFLICT) {
                char msg[512];
                snprintf(msg, sizeof msg, "Idempotency-Key `%.128s` was used for job %s with another request body",
                         key, existing_id);
                http_reply_error(req, 409, "idempotency_conflict", msg, "Idempotency-Key");
                return;
        }
        http_add_header(req, "Idempotent-Replayed", "true");
        struct job *live = wait_seconds > 0 ? jobtable_get(a->d.jobs, existing_id) : NULL;
        if (live) {
                start_wait(a, req, live, wait_seconds);
                job_unref(live);
        } else {
                reply_record(a, req, 200, existing_id, true, false, NULL);
        }
}

static void finish_submit(struct api *a, struct http_request *req, struct wait *w)
{
        struct store_item *it = &w->item;
        if (reply_if_not_written(req, w))
                return;
        if (it->outcome == STORE_ITEM_CONFLICT || it->outcome == STORE_ITEM_REPLAYED) {
                reply_keyed(a, req, w->idem_key, it->outcome, it->existing_id, w->wait_seconds);
                return;
        }
        struct job *j = w->job;
        if (w->wait_seconds > 0) {
                start_wait(a, req, j, w->wait_seconds);
                return;
        }
        char location[64];
        snprintf(location, sizeof location, "/v1/jobs/%s", j->id);
        http_add_header(req, "Location", location);
        size_t len;
        char *text = record_render(&w->rec, false, &len);
        add_timing(req, j);
        http_reply_json_text(req, 202, text, len);
}

static void handle_submit(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        struct wait *w = http_state(req);
        if (w) {
                if (w->committing && w->kind == COMMIT_SYNC)
                        finish_synced(req, w);
                else if (w->committing)
                        finish_submit(a, req, w);
                else
                        finish_wait(req, w);
                return;
        }
        int64_t wait_seconds = parse_wait(http_query(req, "wait"));
        if (wait_seconds < 0) {
                reply_invalid(req, "?wait", "wait must be true, false or a number of seconds up to %d",
                              WAIT_MAX_SECONDS);
                return;
        }
        const char *key = http_header(req, "Idempotency-Key");
        if (key && !valid_idempotency_key(key)) {
                reply_invalid(req, "Idempotency-Key", "Idempotency-Key must be 1 to %d printable ASCII characters",
                              IDEMPOTENCY_KEY_MAX);
                return;
        }
        /* A key used before is looked up first: a retry is its job (or a
         * conflict) whatever a new job would be told now (a full queue, a
         * stop, its algorithm gone or unavailable).  The insert looks again
         * (a first submit still being committed is not seen here). */
        _cleanup_free_ char *idem_stored = NULL;
        char idem_hash[65];
        if (key) {
                size_t len;
                const char *body = http_body(req, &len);
                idem_stored = idempotency_key(http_user(req), key);
                auth_hash(body, len, idem_hash);
                enum store_item_outcome seen;
                char existing_id[JOB_ID_LEN + 1];
                struct err ferr = ERR_INIT;
                int found = store_find_key(a->d.store, idem_stored, idem_hash, &seen, existing_id, &ferr);
                if (found > 0) {
                        if (seen == STORE_ITEM_CONFLICT)
                                metrics_job_rejected("idempotency_conflict");
                        reply_keyed(a, req, key, seen, existing_id, wait_seconds);
                        return;
                }
                if (found < 0)
                        log_debug("POST /v1/jobs: Idempotency-Key look-up (the insert looks again): %s", ferr.msg);
        }
        const char *raw = NULL;
        size_t raw_len = 0;
        _cleanup_json_ json_t *doc = http_body_spooled(req) ? parse_spooled(a, req, &raw, &raw_len) : parse_body(a, req);
        if (!doc)
                return;
        struct reject rj;
        struct job *j = NULL;
        struct job_record rec;
        if (prepare_job(a, doc, raw, raw_len, http_user(req), NULL, &j, &rec, &rj) < 0) {
                reply_reject(a, req, &rj);
                return;
        }
        /* A place in the queue before the commit: what the store accepts
         * always fits. */
        struct err err = ERR_INIT;
        if (reserve(a, &err) < 0) {
                record_clear(&rec);
                job_unref(j);
                metrics_job_rejected(err.code == ERR_BUSY ? "queue_full" : "unavailable");
                reject_err(&rj, &err, err.code == ERR_UNAVAILABLE ? "shutting_down" : NULL);
                reply_reject(a, req, &rj);
                return;
        }
        w = wait_for(a, req);
        w->job = j;
        w->made = true;
        w->rec = rec;
        w->wait_seconds = wait_seconds;
        w->item = (struct store_item){ .rec = &w->rec };
        if (key) {
                w->idem_key = xstrdup(key);
                w->idem_stored = TAKE_PTR(idem_stored);
                memcpy(w->idem_hash, idem_hash, sizeof w->idem_hash);
                w->item.idem_key = w->idem_stored;
                w->item.idem_hash = w->idem_hash;
        }
        /* The parameters point into the spooled body: it lives as long as
         * the record does, not the request (a client may go away while the
         * store writes them). */
        if (raw)
                w->body_map = http_body_take(req, &w->body_map_len);
        w->kind = COMMIT_SUBMIT;
        /* Never acknowledge what is not on disk.  A submit that waits for
         * its job, without an Idempotency-Key, tells no one of the job
         * before its answer: lazy, and on disk by then (finish_wait).
         * No reader sees it before, so its run takes the parameters from
         * the job (small ones, a bounded sum of them). */
        bool lazy = wait_seconds > 0 && !key && !raw && w->rec.params_len <= STORE_LAZY_MAX_BYTES &&
                    job_hold_params(j, w->rec.params, w->rec.params_len);
        w->write = (struct store_write){ .kind = STORE_INSERT, .items = &w->item, .n = 1, .lazy = lazy };
        j->submit_lazy = w->write.lazy;
        if (commit(a, req, w))
                finish_submit(a, req, w);
}

/* ---- POST /v1/jobs/batch ---- */

static json_t *reject_json(const struct reject *rj)
{
        json_t *e = json_pack("{s:s, s:o}", "code", rj->code, "message", json_string_lossy(rj->err.msg));
        if (*rj->err.field)
                json_object_set_new(e, "field", json_string_lossy(rj->err.field));
        return json_pack("{s:i, s:o}", "status", (int)rj->status, "error", e);
}

static void finish_batch(struct http_request *req, struct wait *w)
{
        struct batch *b = w->batch;
        if (reply_if_not_written(req, w))
                return;
        for (size_t k = 0; k < b->nitems; k++) {
                size_t i = b->item_of[k];
                size_t len;
                _cleanup_free_ char *text = record_render(&b->recs[i], false, &len);
                json_t *job = json_loadb(text, len, 0, NULL);
                json_array_set_new(b->answers, i, json_pack("{s:i, s:o}", "status", 202, "job",
                                                            job ? job : json_null()));
        }
        json_t *o = json_pack("{s:O}", "jobs", b->answers);
        if (b->retry_after)
                add_retry_after(req, b->retry_after);
        http_must_answer(req);
        http_reply_json(req, 200, o);
}

static void handle_batch(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        struct wait *w = http_state(req);
        if (w) {
                finish_batch(req, w);
                return;
        }
        if (http_header(req, "Idempotency-Key")) {
                reply_invalid(req, "Idempotency-Key", "Idempotency-Key is not supported on a batch: "
                              "submit the jobs one by one to use it");
                return;
        }
        _cleanup_json_ json_t *doc = parse_body(a, req);
        if (!doc)
                return;
        json_t *list = json_object_get(doc, "jobs");
        if (!json_is_object(doc) || !json_is_array(list) || json_object_size(doc) != 1) {
                reply_invalid(req, "/jobs", "the body must be {\"jobs\": [submission, ...]}");
                return;
        }
        size_t n = json_array_size(list);
        if (n == 0 || n > (size_t)a->d.cfg->max_batch) {
                reply_invalid(req, "/jobs", "a batch holds 1 to %lld jobs (max_batch); this one has %zu",
                              (long long)a->d.cfg->max_batch, n);
                return;
        }
        struct batch *b = xcalloc(1, sizeof *b);
        b->n = n;
        b->answers = json_array();
        b->jobs = xcalloc(n, sizeof *b->jobs);
        b->recs = xcalloc(n, sizeof *b->recs);
        b->items = xcalloc(n, sizeof *b->items);
        b->item_of = xcalloc(n, sizeof *b->item_of);
        w = wait_for(a, req);
        w->batch = b;
        /* Each item on its own; the good ones share one transaction.  A
         * receiver's backlog counts the items taken before (none is in the
         * store yet), read from the store once per receiver. */
        struct callback_tally tally = { 0 };
        for (size_t i = 0; i < n; i++) {
                struct reject rj;
                struct err err = ERR_INIT;
                json_array_append_new(b->answers, json_null());
                if (prepare_job(a, json_array_get(list, i), NULL, 0, http_user(req), &tally, &b->jobs[i],
                                &b->recs[i], &rj) == 0 &&
                    reserve(a, &err) < 0) {
                        metrics_job_rejected(err.code == ERR_BUSY ? "queue_full" : "unavailable");
                        reject_err(&rj, &err, err.code == ERR_UNAVAILABLE ? "shutting_down" : NULL);
                        job_unref(TAKE_PTR(b->jobs[i]));
                        record_clear(&b->recs[i]);
                }
                if (!b->jobs[i]) {
                        /* As a single submit's 429 or 503 carries it. */
                        int secs = retry_after(a, &rj);
                        if (secs > b->retry_after)
                                b->retry_after = secs;
                        /* The item's own pointer, not the batch's. */
                        _cleanup_free_ char *field = xasprintf("/jobs/%zu%s", i, rj.err.field);
                        err_set_field(&rj.err, field);
                        json_array_set_new(b->answers, i, reject_json(&rj));
                        continue;
                }
                callbacks_taken(&tally, b->jobs[i]->callback_url);
                b->items[b->nitems] = (struct store_item){ .rec = &b->recs[i] };
                b->item_of[b->nitems++] = i;
        }
        callback_tally_clear(&tally);
        if (!b->nitems) {
                json_t *o = json_pack("{s:O}", "jobs", b->answers);
                if (b->retry_after)
                        add_retry_after(req, b->retry_after);
                http_reply_json(req, 200, o);
                return;
        }
        w->kind = COMMIT_BATCH;
        w->write = (struct store_write){ .kind = STORE_INSERT, .items = b->items, .n = b->nitems };
        if (commit(a, req, w))
                finish_batch(req, w);
}

/* ---- other job routes ---- */

static void handle_get_job(struct http_request *req, void *ctx)
{
        reply_record(ctx, req, 200, http_param(req, 0), false, true, NULL);
}

/* A running job's cancel is answered once the job's end is on disk:
 * answered while the store still said `running`, a crash would run the
 * cancelled job again.  Its worker ends it within milliseconds; past
 * CANCEL_WAIT_SECONDS the answer is the job as it is then, or 503 when
 * that is because the store cannot write (the cancel is not on disk: ask
 * again). */
static void wait_for_cancel_end(struct api *a, struct http_request *req, struct job *j)
{
        struct wait *w = wait_for(a, req);
        w->cancel_ending = true;
        start_wait(a, req, j, CANCEL_WAIT_SECONDS);
}

static void finish_cancel_wait(struct api *a, struct http_request *req, struct wait *w)
{
        if (w->waiter && job_remove_waiter(w->job, w->waiter))
                wait_unref(w);   /* the callback's reference: it will not run now */
        w->waiter = NULL;
        char why[256];
        if (!job_final_recorded(w->job) && !store_health(a->d.store, why, sizeof why)) {
                char msg[512];
                snprintf(msg, sizeof msg, "job `%s` is being cancelled, but the store cannot record it: %s",
                         w->job->id, why);
                add_retry_after(req, RETRY_AFTER_SECONDS);
                http_reply_error(req, 503, "storage_unavailable", msg, NULL);
                return;
        }
        /* Ended on its own before the kill: 200, as when it ended before
         * the cancel came. */
        bool own_end = job_final_recorded(w->job) && job_get_status(w->job) != JOB_CANCELLED;
        reply_record(a, req, own_end ? 200 : 202, w->job->id, false, false, NULL);
}

/* After the cancel's commit (second dispatch), or after its wait. */
static void finish_cancel(struct api *a, struct http_request *req, struct wait *w)
{
        if (w->cancel_ending) {
                finish_cancel_wait(a, req, w);
                return;
        }
        if (reply_if_not_written(req, w))
                return;
        if (w->item.outcome != STORE_ITEM_OK) {
                /* A worker took it first: it is cancelled running. */
                wait_for_cancel_end(a, req, w->job);
                return;
        }
        reply_record(a, req, 202, w->job->id, false, false, NULL);
}

static void handle_cancel(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        struct wait *w = http_state(req);
        if (w) {
                finish_cancel(a, req, w);
                return;
        }
        const char *id = http_param(req, 0);
        struct job_record rec;
        struct err err = ERR_INIT;
        if (store_get(a->d.store, id, 0, &rec, &err) < 0) {
                reply_err(req, &err, NULL);
                return;
        }
        enum job_status status = rec.status;
        record_clear(&rec);
        if (job_status_is_final(status)) {
                err_set(&err, ERR_CONFLICT, 0, "job `%s` is %s already", id, job_status_name(status));
                reply_err(req, &err, NULL);
                return;
        }
        struct job *j = jobtable_get(a->d.jobs, id);
        /* Queued on disk and not in the table: final since the read, or
         * its submit's commit is done and the job not yet handed to the
         * scheduler (after_commit, on the store's writer thread: a moment
         * later).  Looked at again until it is one or the other: answered
         * as not live, the cancel was not applied and the job ran. */
        for (int64_t until = now_mono_ms() + ACCEPT_WAIT_MS; !j && now_mono_ms() < until;) {
                sleep_ms(1);
                if (store_get(a->d.store, id, 0, &rec, &err) < 0) {
                        reply_err(req, &err, NULL);
                        return;
                }
                status = rec.status;
                record_clear(&rec);
                if (job_status_is_final(status))
                        break;
                j = jobtable_get(a->d.jobs, id);
        }
        if (!j) {
                /* It became final between the two reads. */
                reply_record(a, req, 0, id, false, false, NULL);
                return;
        }
        if (scheduler_cancel_begin(a->d.scheduler, j, &rec) == 0) {
                /* Running: its worker ends it. */
                wait_for_cancel_end(a, req, j);
                job_unref(j);
                return;
        }
        /* A queued job: on disk before the answer, as a submit; the HTTP
         * thread does not wait for the disk meanwhile. */
        w = wait_for(a, req);
        w->job = j;
        w->rec = rec;
        w->item = (struct store_item){ .rec = &w->rec, .expect_status = JOB_QUEUED };
        w->kind = COMMIT_CANCEL;
        w->write = (struct store_write){ .kind = STORE_UPDATE, .items = &w->item, .n = 1 };
        if (commit(a, req, w))
                finish_cancel(a, req, w);
}

static void handle_logs(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        const char *id = http_param(req, 0);
        struct job_record rec;
        struct err err = ERR_INIT;
        if (store_get(a->d.store, id, 0, &rec, &err) < 0) {
                reply_err(req, &err, NULL);
                return;
        }
        char run_id[RUN_ID_MAX];
        size_t n = record_attempt_count(&rec, run_id, sizeof run_id);
        bool truncated = rec.log_truncated;
        record_clear(&rec);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (n) {
                _cleanup_free_ char *path = store_log_path(a->d.store, id, n);
                /* Reserved against http.max_response_bytes before it is
                 * read, or refused (max_log_bytes raised). */
                struct stat st;
                if (stat(path, &st) == 0) {
                        size_t size = (size_t)st.st_size, cap = (size_t)a->d.cfg->max_log_bytes;
                        if (http_refuse_large(req, size < cap ? size : cap, NULL))
                                return;
                }
                /* A log over today's max_log_bytes (lowered since the
                 * run) is served cut, as the pump would have cut it. */
                int rc = read_file(path, (size_t)a->d.cfg->max_log_bytes, READ_PREFIX, &text, &len, &err);
                if (rc < 0 && err.code != ERR_NOT_FOUND) {
                        reply_err(req, &err, NULL);
                        return;
                }
                if (rc == 1)
                        truncated = true;
        }
        http_add_header(req, "X-Edgecd-Log-Truncated", truncated ? "true" : "false");
        if (n)
                http_add_header(req, "X-Edgecd-Run-Id", run_id);
        http_reply_text(req, 200, "text/plain; charset=utf-8", text ? text : "", len);
}

/* A listing's results count against http.max_response_bytes as they are
 * admitted, before each is read: the first one past it is refused (503
 * busy, as a GET of its job), a later one ends the page early, `next`
 * going on from there.  A page was read and rendered whole first, a
 * result more than it showed, and only then refused. */
struct list_admit {
        struct http_request *req;
        bool refused;
};

static bool admit_result(size_t len, bool first, void *ctx)
{
        struct list_admit *la = ctx;
        if (!first)
                return http_reserve_large(la->req, len);
        la->refused = http_refuse_large(la->req, len, NULL);
        return !la->refused;
}

static void handle_list(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        struct store_filter f = { .status = -1, .limit = LIST_DEFAULT_LIMIT };
        const char *status = http_query(req, "status");
        if (status && (f.status = job_status_parse(status)) < 0) {
                reply_invalid(req, "?status", "status must be queued, running, succeeded, failed or cancelled");
                return;
        }
        const char *limit = http_query(req, "limit");
        int64_t n;
        if (limit) {
                if (!parse_int64(limit, 1, LIST_MAX_LIMIT, &n)) {
                        reply_invalid(req, "?limit", "limit must be an integer from 1 to %d", LIST_MAX_LIMIT);
                        return;
                }
                f.limit = (size_t)n;
        }
        const char *with_result = http_query(req, "result");
        if (with_result && strcmp(with_result, "true") && strcmp(with_result, "false")) {
                reply_invalid(req, "?result", "result must be true or false");
                return;
        }
        f.with_result = with_result && !strcmp(with_result, "true");
        f.algorithm = http_query(req, "algorithm");
        f.after = http_query(req, "after");
        char *text = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        struct list_admit la = { .req = req };
        if (store_list(a->d.store, &f, LIST_PAGE_BYTES, admit_result, &la, &text, &len, &err) < 0) {
                /* An unknown `after` is a bad query, not a missing resource. */
                if (err.code == ERR_NOT_FOUND) {
                        err.code = ERR_INVALID;
                        err_set_field(&err, "?after");
                }
                /* Refused first: the reply is given. */
                if (!la.refused)
                        reply_err(req, &err, NULL);
                return;
        }
        if (la.refused) {
                free(text);
                return;
        }
        http_reply_json_text(req, 200, text, len);
}

/* ---- registry and health ---- */

static void add_health(struct api *a, json_t *alg)
{
        const char *name = json_string_value(json_object_get(alg, "name"));
        if (name)
                json_object_set_new(alg, "health", breaker_json(a->d.breaker, name));
}

static void handle_algorithms(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        json_t *list = registry_list_json(a->d.registry);
        size_t i;
        json_t *alg;
        json_array_foreach(json_object_get(list, "algorithms"), i, alg)
                add_health(a, alg);
        http_reply_json(req, 200, list);
}

static void handle_algorithm(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        json_t *o = registry_algorithm_json(a->d.registry, http_param(req, 0));
        if (!o) {
                struct err err;
                err_set(&err, ERR_NOT_FOUND, 0, "no algorithm `%.64s`", http_param(req, 0));
                reply_err(req, &err, "unknown_algorithm");
                return;
        }
        add_health(a, o);
        http_reply_json(req, 200, o);
}

static void handle_healthz(struct http_request *req, void *ctx)
{
        (void)ctx;
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void add_unhealthy_reason(const char *name, enum health h, const char *reason, void *ctx)
{
        json_t *reasons = ctx;
        json_array_append_new(reasons, json_sprintf_lossy("algorithm `%s` is %s: %s", name, health_name(h), reason));
}

static void handle_readyz(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        json_t *reasons = json_array();
        size_t loaded = registry_count(a->d.registry), broken = registry_broken_count(a->d.registry);
        pthread_mutex_lock(&a->lock);
        bool stopping = a->stopping || a->draining;
        pthread_mutex_unlock(&a->lock);
        const char *status = "healthy";
        if (stopping) {
                status = "unhealthy";
                json_array_append_new(reasons, json_string("the daemon is shutting down"));
        }
        char why[512];
        bool store_ok = store_health(a->d.store, why, sizeof why);
        if (!store_ok) {
                status = "unhealthy";
                json_array_append_new(reasons, json_sprintf_lossy("the job store cannot write, new jobs are refused: %s", why));
        }
        if (loaded == 0) {
                if (!stopping && store_ok)
                        status = "degraded";
                json_array_append_new(reasons, json_sprintf_lossy("no plugin is loaded from %s", a->d.cfg->plugins_dir));
        }
        if (broken > 0) {
                if (!stopping && store_ok)
                        status = "degraded";
                json_t *list = registry_list_json(a->d.registry);
                size_t i;
                json_t *b;
                json_array_foreach(json_object_get(list, "broken"), i, b)
                        json_array_append_new(reasons, json_sprintf_lossy("broken plugin manifest: %s",
                                              json_string_value(json_object_get(b, "error"))));
                json_decref(list);
        }
        size_t queued = queue_length(a->d.queue), cap = queue_capacity(a->d.queue);
        /* As a submit is told: places held for jobs being committed count. */
        if (queue_full(a->d.queue)) {
                if (!stopping && store_ok)
                        status = "degraded";
                json_array_append_new(reasons, json_string("the job queue is full"));
        }
        size_t health[4];
        breaker_counts(a->d.breaker, health);
        if (health[HEALTH_DEGRADED] + health[HEALTH_ISOLATED] + health[HEALTH_PROBING] > 0) {
                if (!stopping && store_ok)
                        status = "degraded";
                breaker_foreach_unhealthy(a->d.breaker, add_unhealthy_reason, reasons);
        }
        const struct runtime *rt = a->d.runtime;
        int64_t mem_used, mem_pool;
        admission_memory(a->d.admission, &mem_used, &mem_pool);
        json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s?}, s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o}",
                              "status", status,
                              "runtime", "name", rt->name, "path", rt->path, "version", rt->version,
                              "plugins", "loaded", (json_int_t)loaded, "broken", (json_int_t)broken,
                              "jobs", "queued", (json_int_t)queued, "queue_capacity", (json_int_t)cap,
                              "running", (json_int_t)admission_running(a->d.admission),
                              "workers", (json_int_t)scheduler_workers(a->d.scheduler),
                              "memory_reserved_mb", (json_int_t)mem_used, "memory_pool_mb", (json_int_t)mem_pool,
                              "reasons", reasons);
        http_reply_json(req, stopping || !store_ok ? 503 : 200, o);
}

struct names {
        char **v;
        size_t n;
};

static void add_name(struct manifest *m, void *ctx)
{
        struct names *ns = ctx;
        for (size_t i = 0; i < ns->n; i++)
                if (!strcmp(ns->v[i], m->name))
                        return;
        ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
        ns->v[ns->n++] = xstrdup(m->name);
}

/* Loaded algorithms (by name, all versions one) the breaker calls healthy;
 * the names are copied out first, so no lock of the registry's is held
 * while the breaker's is taken. */
static size_t algorithms_healthy(const struct api *a)
{
        struct names ns = { 0 };
        registry_foreach(a->d.registry, add_name, &ns);
        size_t healthy = 0;
        for (size_t i = 0; i < ns.n; i++) {
                healthy += breaker_state(a->d.breaker, ns.v[i]) == HEALTH_HEALTHY;
                free(ns.v[i]);
        }
        free(ns.v);
        return healthy;
}

struct warm_copies {
        struct metrics_warm_pool *v;
        size_t n;
};

/* Under the pool's lock: its names are copied, as the manifest they point
 * into may go with its pool once the lock is let go. */
static void copy_warm(const struct warmpool_stats *st, void *ctx)
{
        struct warm_copies *c = ctx;
        c->v = xrealloc(c->v, (c->n + 1) * sizeof *c->v);
        c->v[c->n++] = (struct metrics_warm_pool){
                .algorithm = xstrdup(st->algorithm), .version = xstrdup(st->version),
                .ready = st->ready, .target = st->target, .hits = st->hits, .misses = st->misses,
        };
}

struct unhealthy_copies {
        struct metrics_unhealthy *v;
        size_t n;
};

/* Under the breaker's lock: the name is copied, the state's is static. */
static void copy_unhealthy(const char *name, enum health h, const char *reason, void *ctx)
{
        (void)reason;
        struct unhealthy_copies *c = ctx;
        c->v = xrealloc(c->v, (c->n + 1) * sizeof *c->v);
        c->v[c->n++] = (struct metrics_unhealthy){ .algorithm = xstrdup(name), .state = health_name(h) };
}

static void handle_metrics(struct http_request *req, void *ctx)
{
        struct api *a = ctx;
        int64_t mem_used, mem_pool;
        admission_memory(a->d.admission, &mem_used, &mem_pool);
        struct metrics_gauges g = {
                .runtime = a->d.runtime->name,
                .memory_reserved_mb = mem_used, .memory_pool_mb = mem_pool,
                .queue_length = queue_length(a->d.queue), .queue_capacity = queue_capacity(a->d.queue),
                .running = admission_running(a->d.admission), .workers = scheduler_workers(a->d.scheduler),
                .ids_in_use = idpool_in_use(a->d.ids),
                .plugins_loaded = registry_count(a->d.registry),
                .plugins_broken = registry_broken_count(a->d.registry),
                .store_healthy = store_health(a->d.store, NULL, 0),
                .store_records = store_count(a->d.store),
                .cleanups_pending = cleaner_pending(a->d.cleaner),
                .run_cgroup_slots = a->d.cgroups ? runcgroups_count(a->d.cgroups) : 0,
        };
        struct store_stats st;
        store_stats(a->d.store, &st);
        g.store = (struct metrics_store){ .commits = st.commits, .deferred_writes = st.deferred_writes,
                                          .checkpoints = st.checkpoints, .writes = st.writes,
                                          .failures = st.failures };
        /* The breaker holds only algorithms that failed once: a loaded one
         * it never saw is healthy too. */
        size_t counts[4];
        breaker_counts(a->d.breaker, counts);
        counts[HEALTH_HEALTHY] = algorithms_healthy(a);
        struct metrics_health health[4];
        for (int h = 0; h < 4; h++)
                health[h] = (struct metrics_health){ .state = health_name((enum health)h), .algorithms = counts[h] };
        g.health = health;
        g.n_health = 4;
        struct unhealthy_copies sick = { 0 };
        breaker_foreach_unhealthy(a->d.breaker, copy_unhealthy, &sick);
        g.unhealthy = sick.v;
        g.n_unhealthy = sick.n;
        struct warm_copies warm = { 0 };
        warmpool_each(a->d.warm, copy_warm, &warm);
        g.warm_pools = warm.v;
        g.n_warm_pools = warm.n;
        _cleanup_free_ char *text = metrics_render(&g);
        for (size_t i = 0; i < warm.n; i++) {
                free(warm.v[i].algorithm);
                free(warm.v[i].version);
        }
        free(warm.v);
        for (size_t i = 0; i < sick.n; i++)
                free(sick.v[i].algorithm);
        free(sick.v);
        http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

/* ---- the OpenAPI document ---- */

/* daemon/http/openapi.json as built in (openapi_doc.S). */
extern const char openapi_doc[], openapi_doc_end[];

const char *api_openapi(size_t *ret_len)
{
        *ret_len = (size_t)(openapi_doc_end - openapi_doc);
        return openapi_doc;
}

/* Its ETag: the quoted SHA-256 of the bytes, computed once. */
static char openapi_etag[68];
static pthread_once_t openapi_etag_once = PTHREAD_ONCE_INIT;

static void openapi_etag_init(void)
{
        size_t len;
        const char *doc = api_openapi(&len);
        char hex[65];
        auth_hash(doc, len, hex);
        snprintf(openapi_etag, sizeof openapi_etag, "\"%s\"", hex);
}

/* Does If-None-Match (a list of entity tags, or "*") name etag?  Each
 * item whole: "\"TAG\"xyz" or "*x" is no match. */
static bool etag_matches(const char *inm, const char *etag)
{
        size_t n = strlen(etag);
        for (const char *p = inm; p && *p;) {
                p += strspn(p, " \t,");
                size_t len = strcspn(p, ",");
                const char *next = p + len;
                while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                if (len == 1 && *p == '*')
                        return true;
                if (len >= 2 && !strncmp(p, "W/", 2)) {
                        p += 2;
                        len -= 2;
                }
                if (len == n && !memcmp(p, etag, n))
                        return true;
                p = next;
        }
        return false;
}

static void handle_openapi(struct http_request *req, void *ctx)
{
        (void)ctx;
        pthread_once(&openapi_etag_once, openapi_etag_init);
        size_t len;
        const char *doc = api_openapi(&len);
        http_add_header(req, "ETag", openapi_etag);
        /* The same for a daemon's life; a new build may change it. */
        http_add_header(req, "Cache-Control", "no-cache");
        if (etag_matches(http_header(req, "If-None-Match"), openapi_etag)) {
                http_reply_text(req, 304, "application/json", "", 0);
                return;
        }
        http_reply_text(req, 200, "application/json", doc, len);
}

static const struct http_route routes[] = {
        { "POST", "/v1/jobs", handle_submit, SCOPE_SUBMIT, true, "wait" },
        { "POST", "/v1/jobs/batch", handle_batch, SCOPE_SUBMIT, false, NULL },
        { "GET", "/v1/jobs", handle_list, SCOPE_READ, false, "status algorithm limit after result" },
        { "GET", "/v1/jobs/*", handle_get_job, SCOPE_READ, false, NULL },
        { "DELETE", "/v1/jobs/*", handle_cancel, SCOPE_CANCEL, false, NULL },
        { "GET", "/v1/jobs/*/logs", handle_logs, SCOPE_READ, false, NULL },
        { "GET", "/v1/algorithms", handle_algorithms, SCOPE_READ, false, NULL },
        { "GET", "/v1/algorithms/*", handle_algorithm, SCOPE_READ, false, NULL },
        { "GET", "/healthz", handle_healthz, SCOPE_NONE, false, NULL },
        { "GET", "/readyz", handle_readyz, SCOPE_NONE, false, NULL },
        { "GET", "/metrics", handle_metrics, SCOPE_READ, false, NULL },
        /* Open like /healthz: the same for every daemon of a version, it
         * tells nothing of this one's jobs, plugins or configuration. */
        { "GET", "/v1/openapi.json", handle_openapi, SCOPE_NONE, false, NULL },
};

const struct http_route *api_routes(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(routes);
        return routes;
}

/* Before a request's body is read: who is it, and may they. */
static bool authorize(struct http_request *req, const struct http_route *route, void *ctx)
{
        struct api *a = ctx;
        if (route->scope == SCOPE_NONE || (route->fn == handle_metrics && a->d.cfg->auth.metrics_public))
                return true;
        pthread_mutex_lock(&a->auth_lock);
        if (!a->auth) {
                pthread_mutex_unlock(&a->auth_lock);
                return true;
        }
        const char *name = NULL;
        enum auth_result r = auth_check(a->auth, http_header(req, "Authorization"), route->scope, &name);
        if (name)
                http_set_user(req, name);
        pthread_mutex_unlock(&a->auth_lock);
        switch (r) {
        case AUTH_OK:
                return true;
        case AUTH_MISSING:
                metrics_http_rejected("unauthorized");
                http_add_header(req, "WWW-Authenticate", "Bearer realm=\"edgecd\"");
                http_reply_error(req, 401, "unauthorized", "this endpoint needs a token: Authorization: Bearer TOKEN",
                                 NULL);
                return false;
        case AUTH_INVALID:
                metrics_http_rejected("unauthorized");
                http_add_header(req, "WWW-Authenticate", "Bearer realm=\"edgecd\", error=\"invalid_token\"");
                http_reply_error(req, 401, "unauthorized", "the token is not valid", NULL);
                return false;
        case AUTH_FORBIDDEN: {
                metrics_http_rejected("forbidden");
                _cleanup_free_ char *msg = xasprintf("token `%s` lacks the `%s` scope for %s %s", http_user(req),
                                                     auth_scope_name(route->scope), http_method(req),
                                                     route->pattern);
                http_reply_error(req, 403, "forbidden", msg, NULL);
                return false;
        }
        }
        return false;
}

int api_bind(const struct config *cfg, int listen_fd, struct auth *auth, struct api **ret, struct err *err)
{
        struct api *a = xcalloc(1, sizeof *a);
        a->d.cfg = cfg;
        a->auth = auth;
        pthread_mutex_init(&a->lock, NULL);
        pthread_mutex_init(&a->auth_lock, NULL);
        cond_init_monotonic(&a->cond);
        cond_init_monotonic(&a->idle);
        /* Submissions over max_body_bytes go to unnamed files here. */
        a->spool_dir = xasprintf("%s/spool", cfg->state_dir);
        if (mkdir_p(a->spool_dir, 0700, err) < 0) {
                api_stop(a);
                return err_wrap(err, "spool");
        }
        struct http_options o = {
                .listen = cfg->listen, .listen_fd = listen_fd,
                .max_body = (size_t)cfg->max_body_bytes, .max_header_bytes = (size_t)cfg->http.max_header_bytes,
                .spool_dir = a->spool_dir,      /* .spool_max: api_start() sets it from the plugins */
                /* Bodies being spooled at once, in all: room for two of the largest. */
                .spool_budget = 2 * ((size_t)cfg->input_ceiling_bytes + ENVELOPE_MEMBER_MAX),
                .max_response_bytes = (size_t)cfg->http.max_response_bytes,
                .max_connections = (unsigned)cfg->http.max_connections,
                .max_connections_per_client = (unsigned)cfg->http.max_connections_per_client,
                .connection_timeout_seconds = (unsigned)cfg->http.connection_timeout_seconds,
                .unix_mode = (unsigned)strtoul(cfg->http.unix_mode, NULL, 8), .unix_group = cfg->http.unix_group,
        };
        if (http_bind(&o, &a->http, err) < 0) {
                api_stop(a);
                return -1;
        }
        if (!a->auth && !http_is_local(a->http)) {
                err_set(err, ERR_INVALID, 0, "refusing to serve `%s` without authentication: it is reachable from "
                        "other hosts; set auth.tokens_file, or listen on a loopback address or a unix socket",
                        http_address(a->http));
                api_stop(a);
                return -1;
        }
        *ret = a;
        return 0;
}

int api_start(struct api *a, const struct api_deps *deps, struct err *err)
{
        a->d = *deps;
        const char *delay = getenv("EDGECD_TEST_ACCEPT_DELAY_MS");
        a->accept_delay_ms = delay ? strtoll(delay, NULL, 10) : 0;
        if (a->accept_delay_ms > 0)
                log_warn("each submit handed to the scheduler %lld ms after its commit "
                         "(EDGECD_TEST_ACCEPT_DELAY_MS, for tests)", (long long)a->accept_delay_ms);
        if (thread_start(&a->wait_thread, "edgecd-waits", wait_thread_main, a) != 0)
                return err_set(err, ERR_INTERNAL, 0, "cannot start the wait thread");
        a->wait_thread_started = true;
        http_set_spool_max(a->http, spool_max(a));
        return http_serve(a->http, routes, ARRAY_SIZE(routes), authorize, a, err);
}

void api_set_auth(struct api *a, struct auth *auth)
{
        pthread_mutex_lock(&a->auth_lock);
        struct auth *old = a->auth;
        a->auth = auth;
        pthread_mutex_unlock(&a->auth_lock);
        auth_free(old);
}

const char *api_address(const struct api *a)
{
        return http_address(a->http);
}

void api_drain(struct api *a)
{
        if (!a)
                return;
        pthread_mutex_lock(&a->lock);
        a->draining = true;
        pthread_mutex_unlock(&a->lock);
}

void api_quiesce(struct api *a)
{
        http_quiesce(a->http);
}

void api_stop(struct api *a)
{
        if (!a)
                return;
        pthread_mutex_lock(&a->lock);
        a->stopping = true;
        pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->lock);
        if (a->wait_thread_started)
                pthread_join(a->wait_thread, NULL);
        /* A write in flight calls back into this api: wait for it (the
         * store answers every write, soon). */
        pthread_mutex_lock(&a->lock);
        while (a->commits_open > 0)
                pthread_cond_wait(&a->idle, &a->lock);
        pthread_mutex_unlock(&a->lock);
        /* Every wait is resumed now; let the HTTP threads send those answers
         * before the server closes their connections (bounded). */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 2;
        pthread_mutex_lock(&a->lock);
        while (a->waits_open > 0 && pthread_cond_timedwait(&a->idle, &a->lock, &until) == 0)
                ;
        pthread_mutex_unlock(&a->lock);
        http_stop(a->http);
        pthread_cond_destroy(&a->cond);
        pthread_cond_destroy(&a->idle);
        pthread_mutex_destroy(&a->lock);
        pthread_mutex_destroy(&a->auth_lock);
        auth_free(a->auth);
        free(a->spool_dir);
        free(a);
}
