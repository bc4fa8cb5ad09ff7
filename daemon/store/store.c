/* store.c - the store's front: picks a backend, waits for writes that a
 * caller must wait for, renders listings, removes the logs of pruned
 * records, and those a crash left without a record (see store.h).  Any
 * thread. */
#include "store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/heartbeat.h"
#include "base/log.h"
#include "base/util.h"
#include "recordcache.h"

struct store {
        const struct store_ops *ops;
        struct store_backend *b;
        char *logs_dir;
        struct recordcache *cache;   /* renderings of final records */
};

static const struct store_ops *const backends[] = { &store_sqlite_ops };

int store_open(const char *backend, const char *state_dir, const char *logs_dir, struct store **ret,
               struct err *err)
{
        const struct store_ops *ops = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
                if (!strcmp(backends[i]->name, backend))
                        ops = backends[i];
        if (!ops)
                return err_set(err, ERR_INVALID, 0, "store: no backend `%s` (known: sqlite)", backend);
        struct store *s = xcalloc(1, sizeof *s);
        s->ops = ops;
        s->logs_dir = xstrdup(logs_dir);
        s->cache = recordcache_new(0);
        if (ops->open(state_dir, &s->b, err) < 0) {
                recordcache_free(s->cache);
                free(s->logs_dir);
                free(s);
                return err_wrap(err, "store");
        }
        *ret = s;
        return 0;
}

void store_close(struct store *s)
{
        if (!s)
                return;
        s->ops->close(s->b);
        recordcache_free(s->cache);
        free(s->logs_dir);
        free(s);
}

void store_set_cache(struct store *s, size_t max_bytes)
{
        recordcache_free(s->cache);
        s->cache = recordcache_new(max_bytes);
}

int store_render(struct store *s, const char *id, bool cache, char **ret_text, size_t *ret_len, bool *ret_final,
                 struct err *err)
{
        *ret_text = recordcache_get(s->cache, id, ret_len);
        if (*ret_text) {
                *ret_final = true;   /* only final records are cached */
                return 0;
        }
        uint64_t gen = recordcache_generation(s->cache);
        struct job_record rec;
        if (store_get(s, id, STORE_READ_RESULT, &rec, err) < 0)
                return -1;
        *ret_final = job_status_is_final(rec.status);
        *ret_text = record_render(&rec, true, ret_len);
        if (*ret_final && cache)
                recordcache_put(s->cache, gen, rec.id, *ret_text, *ret_len);
        record_clear(&rec);
        return 0;
}

void store_write_async(struct store *s, struct store_write *w)
{
        s->ops->write(s->b, w);
}

/* ---- waiting for a write ---- */

struct waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
};

static void wake(struct store_write *w)
{
        struct waiter *wt = w->ctx;
        pthread_mutex_lock(&wt->lock);
        wt->done = true;
        pthread_cond_signal(&wt->cond);
        pthread_mutex_unlock(&wt->lock);
}

static void write_begin(struct store *s, struct store_write *w, struct waiter *wt)
{
        pthread_mutex_init(&wt->lock, NULL);
        cond_init_monotonic(&wt->cond);
        wt->done = false;
        w->done = wake;
        w->ctx = wt;
        s->ops->write(s->b, w);
}

static int write_end(struct store_write *w, struct waiter *wt, struct err *err)
{
        pthread_mutex_lock(&wt->lock);
        /* A worker waiting for its write is alive, also while a full disk
         * holds the write (heartbeat.h): the watchdog must not restart
         * the daemon for that. */
        while (!wt->done) {
                struct timespec ts = timespec_in(CLOCK_MONOTONIC, HEARTBEAT_SLICE_MS);
                pthread_cond_timedwait(&wt->cond, &wt->lock, &ts);
                heartbeat_beat();
        }
        pthread_mutex_unlock(&wt->lock);
        pthread_mutex_destroy(&wt->lock);
        pthread_cond_destroy(&wt->cond);
        if (w->err.code != ERR_OK) {
                if (err)
                        *err = w->err;
                return -1;
        }
        return 0;
}

int store_write_sync(struct store *s, struct store_write *w, struct err *err)
{
        struct waiter wt;
        write_begin(s, w, &wt);
        return write_end(w, &wt, err);
}

struct store_pending {
        struct waiter wt;
        struct store_item it;
        struct store_write w;
        struct job_record rec;
};

struct store_pending *store_update_begin(struct store *s, struct job_record *rec, int expect_status, bool lazy)
{
        struct store_pending *p = xcalloc(1, sizeof *p);
        p->rec = *rec;
        *rec = (struct job_record){ 0 };
        p->it = (struct store_item){ .rec = &p->rec, .expect_status = expect_status };
        p->w = (struct store_write){ .kind = STORE_UPDATE, .items = &p->it, .n = 1, .retry = true, .lazy = lazy };
        write_begin(s, &p->w, &p->wt);
        return p;
}

int store_update_end(struct store_pending *p, struct err *err)
{
        int rc = write_end(&p->w, &p->wt, err);
        if (rc == 0)
                rc = p->it.outcome == STORE_ITEM_OK ? 1 : 0;
        record_clear(&p->rec);
        free(p);
        return rc;
}

/* A final record's write, and what its commit lets happen at once on the
 * writer's thread: its rendering kept in the cache, then `then` (the
 * job's waiters told), without waiting for the worker to be woken first.
 * Which thread does those two depends on who is ready first (under
 * wt.lock): the writer, if the rendering was made before the commit was
 * done (the usual case: a rendering takes microseconds, a commit an
 * fsync); else the caller, once it has made it. */
struct final_write {
        struct waiter wt;
        struct store *s;
        uint64_t gen;
        const char *id;
        const struct store_item *it;
        bool rendered, told;
        bool writer_tells;   /* the writer may tell: the copy is small */
        char *text;     /* NULL: not to be kept */
        size_t len;
        void (*then)(void *ctx);
        void *ctx;
};

#define WRITER_TELLS_MAX (64 * 1024)

/* Under f->wt.lock (or once the writer is done with f), once the write is
 * done and the rendering made. */
static void final_tell(struct final_write *f, const struct store_write *w)
{
        if (f->told)
                return;
        f->told = true;
        if (f->text && w->err.code == ERR_OK && f->it->outcome == STORE_ITEM_OK)
                recordcache_put(f->s->cache, f->gen, f->id, f->text, f->len);
        if (f->then)
                f->then(f->ctx);
}

static void final_done(struct store_write *w)
{
        struct final_write *f = w->ctx;
        pthread_mutex_lock(&f->wt.lock);
        f->wt.done = true;
        if (f->rendered && f->writer_tells)
                final_tell(f, w);
        pthread_cond_signal(&f->wt.cond);
        pthread_mutex_unlock(&f->wt.lock);
}

/* store_update(); with `final`, rec's rendering made while the commit is in
 * flight (the writer only reads rec meanwhile, as this does) and kept once
 * it applied, and then(ctx) called as soon as both are done
 * (struct final_write). */
static int update(struct store *s, struct job_record *rec, int expect_status, bool final,
                  void (*then)(void *ctx), void *ctx, struct err *err)
{
        struct store_item it = { .rec = rec, .expect_status = expect_status };
        struct store_write w = { .kind = STORE_UPDATE, .items = &it, .n = 1, .retry = true };
        if (!final) {
                struct waiter wt;
                write_begin(s, &w, &wt);
                if (write_end(&w, &wt, err) < 0)
                        return -1;
                return it.outcome == STORE_ITEM_OK ? 1 : 0;
        }
        struct final_write f = {
                .s = s, .gen = recordcache_generation(s->cache), .id = rec->id, .it = &it,
                .then = then, .ctx = ctx,
        };
        pthread_mutex_init(&f.wt.lock, NULL);
        cond_init_monotonic(&f.wt.cond);
        w.done = final_done;
        w.ctx = &f;
        s->ops->write(s->b, &w);
        bool keep = rec->result_len < recordcache_entry_max(s->cache) && !rec->callback.url &&
                    job_status_is_final(rec->status);
        _cleanup_free_ char *text = keep ? record_render(rec, true, &f.len) : NULL;
        pthread_mutex_lock(&f.wt.lock);
        f.text = text;
        f.rendered = true;
        /* A large rendering is copied into the cache here, not on the
         * writer's thread, where the next commit would wait for it. */
        f.writer_tells = !text || f.len <= WRITER_TELLS_MAX;
        if (f.wt.done)
                final_tell(&f, &w);
        pthread_mutex_unlock(&f.wt.lock);
        /* final_done() has run or is under way; write_end() waits for it
         * to let go of f. */
        int rc = write_end(&w, &f.wt, err);
        final_tell(&f, &w);   /* if the writer did not */
        if (rc < 0)
                return -1;
        return it.outcome == STORE_ITEM_OK ? 1 : 0;
}

int store_update_final(struct store *s, struct job_record *rec, void (*then)(void *ctx), void *ctx,
                       struct err *err)
{
        return update(s, rec, -1, true, then, ctx, err);
}

int store_update(struct store *s, struct job_record *rec, int expect_status, struct err *err)
{
        return update(s, rec, expect_status, false, NULL, NULL, err);
}

int store_sync(struct store *s, struct err *err)
{
        struct store_write w = { .kind = STORE_SYNC, .retry = true };
        return store_write_sync(s, &w, err);
}

/* ---- reads ---- */

int store_get(struct store *s, const char *id, unsigned what, struct job_record *ret, struct err *err)
{
        return s->ops->get(s->b, id, what, ret, err);
}

int store_result_size(struct store *s, const char *id, size_t *ret_len, struct err *err)
{
        if (recordcache_len(s->cache, id, ret_len))
                return 0;
        return s->ops->result_size(s->b, id, ret_len, err);
}

int store_find_key(struct store *s, const char *key, const char *hash, enum store_item_outcome *ret_outcome,
                   char ret_id[JOB_ID_LEN + 1], struct err *err)
{
        return s->ops->find_key(s->b, key, hash, ret_outcome, ret_id, err);
}

struct page {
        char *out;
        size_t len, cap, shown, limit, max_bytes;
        bool more;
        char last_id[JOB_ID_LEN + 1];
        bool with_result;
        bool (*admit)(size_t len, bool first, void *ctx);
        void *admit_ctx;
};

/* Before a result is read: a page that could not take it ends here, so
 * no result is read only to be left out (a page of large ones read the
 * next one whole, up to result_ceiling_bytes, to find it was full). */
static bool admit_to_page(size_t len, void *ctx)
{
        struct page *p = ctx;
        bool go = p->shown < p->limit && (p->shown == 0 || p->len + len <= p->max_bytes) &&
                  (!p->admit || p->admit(len, p->shown == 0, p->admit_ctx));
        if (!go)
                p->more = true;
        return go;
}

static bool add_to_page(const struct job_record *r, void *ctx)
{
        struct page *p = ctx;
        if (p->shown == p->limit || (p->shown > 0 && p->len >= p->max_bytes)) {
                p->more = true;
                return false;
        }
        size_t jl;
        _cleanup_free_ char *jt = record_render(r, p->with_result, &jl);
        if (p->len + jl + 128 > p->cap) {
                while (p->len + jl + 128 > p->cap)
                        p->cap *= 2;
                p->out = xrealloc(p->out, p->cap);
        }
        if (p->shown)
                p->out[p->len++] = ',';
        memcpy(p->out + p->len, jt, jl);
        p->len += jl;
        p->shown++;
        memcpy(p->last_id, r->id, sizeof p->last_id);
        return true;
}

int store_list(struct store *s, const struct store_filter *f, size_t max_bytes,
               bool (*admit)(size_t len, bool first, void *ctx), void *admit_ctx, char **ret_text,
               size_t *ret_len, struct err *err)
{
        /* {"jobs":[...],"next":"<id>"|null}; a page ends early once it
         * holds max_bytes, and `next` goes on from there. */
        struct page p = { .cap = 4096, .limit = f->limit, .max_bytes = max_bytes, .with_result = f->with_result,
                          .admit = admit, .admit_ctx = admit_ctx };
        p.out = xmalloc(p.cap);
        p.len = (size_t)snprintf(p.out, p.cap, "{\"jobs\":[");
        if (s->ops->list(s->b, f, admit_to_page, add_to_page, &p, err) < 0) {
                free(p.out);
                return -1;
        }
        if (p.more && p.shown)
                p.len += (size_t)snprintf(p.out + p.len, p.cap - p.len, "],\"next\":\"%s\"}", p.last_id);
        else
                p.len += (size_t)snprintf(p.out + p.len, p.cap - p.len, "],\"next\":null}");
        *ret_text = p.out;
        *ret_len = p.len;
        return 0;
}

int store_load_unfinished(struct store *s, void (*fn)(struct job_record *r, void *ctx), void *ctx,
                          struct err *err)
{
        return s->ops->load_unfinished(s->b, fn, ctx, err);
}

/* ---- retention ---- */

static void remove_logs(const char *id, size_t attempts, void *ctx)
{
        struct store *s = ctx;
        recordcache_drop(s->cache, id);
        for (size_t i = 1; i <= attempts; i++) {
                _cleanup_free_ char *log = store_log_path(s, id, i);
                unlink(log);
        }
}

/* A run's log name: "<job id>-<n>.log"; the job id into id. */
static bool log_name(const char *name, char id[JOB_ID_LEN + 1])
{
        size_t len = strlen(name);
        if (len < JOB_ID_LEN + 6 || name[JOB_ID_LEN] != '-' || strcmp(name + len - 4, ".log"))
                return false;
        for (size_t i = JOB_ID_LEN + 1; i < len - 4; i++)
                if (!isdigit((unsigned char)name[i]))
                        return false;
        for (size_t i = 0; i < JOB_ID_LEN; i++)
                if (!isxdigit((unsigned char)name[i]) && name[i] != '-')
                        return false;
        memcpy(id, name, JOB_ID_LEN);
        id[JOB_ID_LEN] = '\0';
        return true;
}

size_t store_sweep_logs(struct store *s)
{
        DIR *dir = opendir(s->logs_dir);
        if (!dir) {
                if (errno != ENOENT)
                        log_warn("store: logs `%s`: %s", s->logs_dir, strerror(errno));
                return 0;
        }
        size_t removed = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                char id[JOB_ID_LEN + 1];
                if (!log_name(de->d_name, id))
                        continue;   /* not a run's log: not ours to judge */
                struct job_record rec;
                struct err err = ERR_INIT;
                if (store_get(s, id, 0, &rec, &err) == 0) {
                        record_clear(&rec);
                        continue;
                }
                if (err.code != ERR_NOT_FOUND)
                        continue;   /* cannot tell: kept */
                if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
                        removed++;
                else
                        log_warn("store: remove `%s/%s`: %s", s->logs_dir, de->d_name, strerror(errno));
        }
        closedir(dir);
        return removed;
}

int store_prune(struct store *s, int64_t before_ms, int64_t max_records, size_t *ret_removed, struct err *err)
{
        struct store_write w = {
                .kind = STORE_PRUNE, .prune_before_ms = before_ms, .prune_max_records = max_records,
                .prune_limit = STORE_PRUNE_STEP, .on_pruned = remove_logs, .prune_ctx = s,
        };
        int rc = store_write_sync(s, &w, err);
        if (ret_removed)
                *ret_removed = rc < 0 ? 0 : w.pruned;
        return rc;
}

void store_abandon(struct store *s)
{
        s->ops->abandon(s->b);
}

size_t store_count(struct store *s)
{
        return s->ops->count(s->b);
}

bool store_health(struct store *s, char *reason, size_t len)
{
        return s->ops->health(s->b, reason, len);
}

void store_stats(struct store *s, struct store_stats *ret)
{
        s->ops->stats(s->b, ret);
}

int store_check(struct store *s, struct err *err)
{
        return s->ops->check(s->b, err);
}

int store_callbacks_due(struct store *s, struct store_due *ret, size_t max, size_t skip, const char *const *except,
                        size_t n_except, size_t *ret_n, struct err *err)
{
        return s->ops->callbacks_due(s->b, ret, max, skip, except, n_except, ret_n, err);
}

int store_callbacks_ended_ahead(struct store *s, struct store_due *ret, size_t max, int64_t now_ms,
                                int64_t ahead_ms, const char *const *except, size_t n_except, size_t *ret_n,
                                struct err *err)
{
        return s->ops->callbacks_ended_ahead(s->b, ret, max, now_ms, ahead_ms, except, n_except, ret_n, err);
}

int store_callbacks_pending(struct store *s, const char *dest, size_t max, size_t *ret_n, struct err *err)
{
        return s->ops->callbacks_pending(s->b, dest, max, ret_n, err);
}

void store_uncache(struct store *s, const char *id)
{
        recordcache_drop(s->cache, id);
}

char *store_log_path(struct store *s, const char *id, size_t n)
{
        return xasprintf("%s/%s-%zu.log", s->logs_dir, id, n);
}
