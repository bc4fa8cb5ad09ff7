/* callback.c - the delivery of callbacks (see callback.h; the URLs and
 * signature are callbackurl.c).
 *
 * Threads: one delivery thread owns the curl multi handle and every slot;
 * the store's writer thread only marks a slot's write done (under c->lock)
 * and wakes the multi handle.  callbacks_kick() may come from any thread. */
#include "callback.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "curlapi.h"

/* libcurl's calls, loaded by callbacks_start() (curlapi.h). */
static const struct curl_api *cu;

/* ---- admission ---- */

static struct callback_backlog *tally_find(struct callback_tally *t, const char *dest)
{
        for (size_t i = 0; t && i < t->n; i++)
                if (!strcmp(t->v[i].dest, dest))
                        return &t->v[i];
        return NULL;
}

int callbacks_admit(const struct config *cfg, struct store *store, const char *url, struct callback_tally *tally,
                    struct err *err)
{
        char dest[CALLBACK_DEST_MAX];
        if (!callback_url_dest(url, dest, sizeof dest))
                return 0;       /* the allowlist's check refuses it */
        size_t max = (size_t)cfg->callbacks.max_pending, n = 0;
        struct callback_backlog *known = tally_find(tally, dest);
        if (known) {
                n = known->pending;
        } else {
                struct err serr = ERR_INIT;
                if (store_callbacks_pending(store, dest, max, &n, &serr) < 0) {
                        log_warn("callbacks: the backlog of %s not counted: %s", dest, serr.msg);
                        n = 0;
                }
                if (tally) {
                        tally->v = xrealloc(tally->v, (tally->n + 1) * sizeof *tally->v);
                        known = &tally->v[tally->n++];
                        snprintf(known->dest, sizeof known->dest, "%s", dest);
                        known->pending = n;
                }
        }
        if (n >= max)
                return err_set(err, ERR_BUSY, 0, "%zu callbacks to %s are pending (callbacks.max_pending): "
                               "submit again once some are delivered or failed", n, dest);
        return 0;
}

void callbacks_taken(struct callback_tally *tally, const char *url)
{
        char dest[CALLBACK_DEST_MAX];
        struct callback_backlog *known;
        if (url && callback_url_dest(url, dest, sizeof dest) && (known = tally_find(tally, dest)))
                known->pending++;
}

void callback_tally_clear(struct callback_tally *tally)
{
        free(tally->v);
        *tally = (struct callback_tally){ 0 };
}

/* ---- delivery ---- */

enum slot_state {
        SLOT_FREE,
        SLOT_SENDING,        /* a POST in flight */
        SLOT_WRITING,        /* its outcome being committed */
        SLOT_WRITTEN,        /* committed, or failed (write.err): the delivery thread looks */
        SLOT_WRITE_AGAIN,    /* the commit failed: tried again at retry_at */
};

struct callbacks;

struct slot {
        struct callbacks *c;
        /* SLOT_WRITING -> SLOT_WRITTEN by the writer thread under c->lock;
         * the delivery thread reads it without: atomics (slot_state()). */
        enum slot_state state;
        char dest[CALLBACK_DEST_MAX];   /* scheme://host:port: the per-receiver cap */
        size_t got;                     /* response body bytes so far */
        bool truncated;                 /* ...and we stopped reading it */
        int64_t retry_after_ms;         /* a Retry-After: header in seconds, or -1 */
        bool head_done;                 /* the answer's header section ended (its empty line) */
        bool unanswering;               /* dest is noted unanswering (while the slot is held) */
        CURL *easy;
        struct curl_slist *headers;
        char *body;
        size_t body_len;
        char errbuf[CURL_ERROR_SIZE];
        struct job_record rec;          /* id and callback: what is written */
        struct store_item item;
        struct store_write write;
        int64_t retry_at;               /* now_mono_ms() */
};

#define KICK_DESTS 8                    /* receivers of kicks remembered; past that, a look whatever */
#define UNANSWERING_MAX 64              /* unanswering receivers remembered, the least recently noted go */

/* A receiver whose last attempt that ended got no answer (no status with
 * a whole header section: a timeout, a refused or dropped connection). */
struct unanswering {
        char dest[CALLBACK_DEST_MAX];   /* "" when the entry is free */
        int64_t noted_ms;               /* when noted last, now_mono_ms() */
};

struct callbacks {
        const struct config *cfg;
        struct store *store;
        char *secret;
        size_t secret_len;
        CURLM *multi;
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* a write done (for the stop) */
        bool stopping, kicked;
        /* Receivers of the callbacks kicked since the delivery thread last
         * looked (all of them: a look whatever, kick_any). */
        char kick_dests[KICK_DESTS][CALLBACK_DEST_MAX];
        size_t n_kick_dests;
        bool kick_any;
        size_t nslots;
        size_t per_dest;                /* in flight to one receiver at most */
        struct slot *slots;
        struct store_due *due;          /* 2 * nslots */
        const char **capped;            /* nslots + UNANSWERING_MAX: receivers at their cap (scan) */
        /* The delivery thread's alone (attempt_done() writes it, the slot
         * rules read it, all on that thread): no lock. */
        struct unanswering unanswering[UNANSWERING_MAX];
        uint64_t rnd;
};

#define RESCAN_IDLE_MS 60000            /* a look at the store when nothing is due */
#define RESCAN_ERROR_MS 1000
#define WRITE_AGAIN_MS 1000
_Static_assert(STORE_DUE_URL_MAX == CALLBACK_URL_MAX, "a due row holds a whole callback URL");

#define RESPONSE_MAX 4096               /* the receiver's answer body we read, at most */
#define SCAN_PAGES 8                    /* pages of due callbacks one scan looks at, at most */
#define SCAN_REST 9                     /* a look's cost, times this, before the next */

static enum slot_state slot_state(const struct slot *sl)
{
        return __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
}

static void slot_set_state(struct slot *sl, enum slot_state st)
{
        __atomic_store_n(&sl->state, st, __ATOMIC_RELEASE);
}

static double next_random(struct callbacks *c)
{
        /* xorshift64: jitter, nothing secret. */
        c->rnd ^= c->rnd << 13;
        c->rnd ^= c->rnd >> 7;
        c->rnd ^= c->rnd << 17;
        return (double)(c->rnd >> 11) / 9007199254740992.0;
}

/* The answer's body is not used: a few KiB are read, then the transfer is
 * ended (a 2xx status delivered the callback whatever the body does). */
static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
        (void)p;
        struct slot *sl = ctx;
        sl->got += size * n;
        if (sl->got > RESPONSE_MAX) {
                sl->truncated = true;
                return 0;
        }
        return size * n;
}

/* Retry-After: seconds, or an HTTP date (RFC 9110 10.2.3).  Anything
 * else, and a date not ahead of this clock (a receiver's clock behind,
 * a stale date), is ignored: the backoff then, never a burst of retries. */
static size_t header_line(char *p, size_t size, size_t n, void *ctx)
{
        struct slot *sl = ctx;
        size_t len = size * n;
        static const char name[] = "retry-after:";
        /* A new status line (after a 1xx): what an interim answer said
         * does not count. */
        if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
                sl->retry_after_ms = -1;
                sl->head_done = false;
        }
        if ((len == 2 && p[0] == '\r' && p[1] == '\n') || (len == 1 && p[0] == '\n'))
                sl->head_done = true;
        if (len > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
                size_t i = sizeof name - 1, end = len;
                while (i < end && (p[i] == ' ' || p[i] == '\t'))
                        i++;
                while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t' || p[end - 1] == '\r' ||
                                   p[end - 1] == '\n'))
                        end--;
                int64_t v = 0;
                size_t j = i;
                for (; j < end && p[j] >= '0' && p[j] <= '9' && j - i < 10; j++)
                        v = v * 10 + (p[j] - '0');
                if (j > i && j == end) {
                        sl->retry_after_ms = v * 1000;
                } else if (end - i >= 20 && end - i < 64) {
                        /* "Sun, 06 Nov 1994 08:49:37 GMT" and the older forms */
                        char date[64];
                        memcpy(date, p + i, end - i);
                        date[end - i] = '\0';
                        time_t t = cu->getdate(date, NULL);
                        int64_t now_ms = now_real_ms();
                        /* A year ahead is as good as any later date: the
                         * wait is capped at max_backoff_ms anyway, and
                         * seconds this far out would overflow as ms. */
                        int64_t year_ahead_s = now_ms / 1000 + 366 * 86400;
                        if (t != (time_t)-1 && (int64_t)t > now_ms / 1000) {
                                int64_t s = (int64_t)t < year_ahead_s ? (int64_t)t : year_ahead_s;
                                sl->retry_after_ms = s * 1000 - now_ms;
                        }
                }
        }
        return len;
}

/* The transfer's own parts: handle, headers, body (the record stays). */
static void slot_drop_transfer(struct slot *sl)
{
        if (sl->easy) {
                cu->multi_remove_handle(sl->c->multi, sl->easy);
                cu->easy_cleanup(sl->easy);
                sl->easy = NULL;
                metrics_callback_in_flight(-1);
        }
        cu->slist_free_all(sl->headers);
        sl->headers = NULL;
        free(sl->body);
        sl->body = NULL;
}

static void slot_release(struct slot *sl)
{
        slot_drop_transfer(sl);
        record_clear(&sl->rec);
        sl->dest[0] = '\0';
        sl->unanswering = false;
        slot_set_state(sl, SLOT_FREE);
}

static void write_done(struct store_write *w)
{
        struct slot *sl = w->ctx;
        struct callbacks *c = sl->c;
        /* A final record's rendering changed: a cached one goes. */
        if (w->err.code == ERR_OK)
                store_uncache(c->store, sl->rec.id);
        /* The wakeup under the lock too: once the delivery thread sees
         * SLOT_WRITTEN it may stop and free c. */
        pthread_mutex_lock(&c->lock);
        slot_set_state(sl, SLOT_WRITTEN);
        pthread_cond_broadcast(&c->cond);
        cu->multi_wakeup(c->multi);
        pthread_mutex_unlock(&c->lock);
}

static void slot_write(struct slot *sl)
{
        sl->item = (struct store_item){ .rec = &sl->rec, .expect_status = -1 };
        sl->write = (struct store_write){ .kind = STORE_CALLBACK, .items = &sl->item, .n = 1,
                                          .done = write_done, .ctx = sl };
        pthread_mutex_lock(&sl->c->lock);
        slot_set_state(sl, SLOT_WRITING);
        pthread_mutex_unlock(&sl->c->lock);
        store_write_async(sl->c->store, &sl->write);
}

static void set_error(struct job_callback *cb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct job_callback *cb, const char *fmt, ...)
{
        free(cb->last_error);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&cb->last_error, fmt, ap) < 0)
                abort();
        va_end(ap);
}

static struct unanswering *unanswering_find(struct callbacks *c, const char *dest)
{
        for (size_t i = 0; i < UNANSWERING_MAX; i++)
                if (*c->unanswering[i].dest && !strcmp(c->unanswering[i].dest, dest))
                        return &c->unanswering[i];
        return NULL;
}

/* Is dest held to the unanswering share now?  For max_backoff_ms after
 * its last attempt got no answer, no longer (the longest any retry waits):
 * then it may have the last slot again, for one attempt, and is noted
 * anew if that gets no answer either.  Else a receiver that missed once
 * queued behind a dead one's whole backlog, timeout_seconds a row, while
 * the last slot sat idle. */
static bool unanswering_now(struct callbacks *c, const char *dest)
{
        const struct unanswering *u = unanswering_find(c, dest);
        return u && now_mono_ms() - u->noted_ms < c->cfg->callbacks.max_backoff_ms;
}

/* The held slots to dest learn whether it is unanswering now. */
static void mark_slots(struct callbacks *c, const char *dest, bool unanswering)
{
        for (size_t i = 0; i < c->nslots; i++) {
                struct slot *sl = &c->slots[i];
                if (slot_state(sl) != SLOT_FREE && !strcmp(sl->dest, dest))
                        sl->unanswering = unanswering;
        }
}

/* An attempt to dest ended, answered or not: remembered for the share of
 * unanswering receivers (dest_capped()).  A full table forgets the one
 * noted longest ago (it counts as answering again: bounded memory). */
static void note_answer(struct callbacks *c, const char *dest, bool answered)
{
        if (!*dest)
                return;
        struct unanswering *u = unanswering_find(c, dest);
        if (answered) {
                if (u) {
                        u->dest[0] = '\0';
                        mark_slots(c, dest, false);
                }
                return;
        }
        if (!u) {
                for (size_t i = 0; i < UNANSWERING_MAX; i++) {
                        struct unanswering *e = &c->unanswering[i];
                        if (!*e->dest) {
                                u = e;
                                break;
                        }
                        if (!u || e->noted_ms < u->noted_ms)
                                u = e;
                }
                if (*u->dest)
                        mark_slots(c, u->dest, false);
                snprintf(u->dest, sizeof u->dest, "%s", dest);
        }
        u->noted_ms = now_mono_ms();
        mark_slots(c, dest, true);
}

/* The POST of sl ended with rc: what it means, then recorded. */
static void attempt_done(struct callbacks *c, struct slot *sl, CURLcode rc)
{
        long status = 0;
        cu->easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
        struct job_callback *cb = &sl->rec.callback;
        cb->attempts++;
        cb->last_status = (int)status;
        bool retry = false;
        /* The status decides once the answer's header section came whole:
         * a body that errs or never ends after it does not make the
         * receiver's yes a no, nor its no (a 3xx, a 4xx) something to try
         * again.  A status line whose headers broke off (a proxy that
         * died mid-answer) is no answer, though libcurl calls a close
         * there the end of a whole answer (CURLE_OK). */
        bool answered = status >= 200 && sl->head_done;
        note_answer(c, sl->dest, answered);
        if (answered && status >= 200 && status < 300) {
                cb->state = CALLBACK_DELIVERED;
                cb->delivered_ms = now_real_ms();
                free(cb->last_error);
                cb->last_error = NULL;
                metrics_callback("delivered");
                log_job(LOG_LVL_INFO, sl->rec.id, sl->rec.algorithm, NULL, "callback delivered (attempt %lld, HTTP %ld)",
                         (long long)cb->attempts, status);
        } else {
                if (!answered) {
                        const char *why = *sl->errbuf ? sl->errbuf
                                          : rc == CURLE_OK ? "the receiver closed the connection"
                                                           : cu->easy_strerror(rc);
                        if (status >= 200)
                                set_error(cb, "the answer broke off in its headers, after HTTP %ld: %s", status, why);
                        else
                                set_error(cb, "%s", why);
                        retry = true;
                } else if (status >= 300 && status < 400) {
                        set_error(cb, "the receiver answered %ld (redirects are not followed)", status);
                } else if (status >= 400 && status < 500 && status != 408 && status != 429) {
                        set_error(cb, "the receiver answered %ld", status);
                } else {
                        set_error(cb, "the receiver answered %ld", status);
                        retry = true;
                }
                if (retry && cb->attempts < c->cfg->callbacks.max_attempts) {
                        int64_t wait = callback_backoff_ms(c->cfg->callbacks.backoff_ms,
                                                           c->cfg->callbacks.max_backoff_ms, cb->attempts,
                                                           next_random(c));
                        /* The receiver says when (429, 503), within our bound. */
                        if (answered && (status == 429 || status == 503) && sl->retry_after_ms >= 0)
                                wait = sl->retry_after_ms < c->cfg->callbacks.max_backoff_ms
                                               ? sl->retry_after_ms
                                               : c->cfg->callbacks.max_backoff_ms;
                        cb->state = CALLBACK_PENDING;
                        cb->next_ms = now_real_ms() + wait;
                        metrics_callback("retried");
                        log_job(LOG_LVL_INFO, sl->rec.id, sl->rec.algorithm, NULL, "callback attempt %lld failed (%s); again in %lld ms",
                                 (long long)cb->attempts, cb->last_error, (long long)wait);
                } else {
                        cb->state = CALLBACK_FAILED;
                        metrics_callback("failed");
                        log_job(LOG_LVL_WARN, sl->rec.id, sl->rec.algorithm, NULL, "callback failed for good after %lld attempt(s): %s",
                                 (long long)cb->attempts, cb->last_error);
                }
        }
        slot_drop_transfer(sl);
        slot_write(sl);
}

static struct curl_slist *add_header(struct curl_slist *l, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static struct curl_slist *add_header(struct curl_slist *l, const char *fmt, ...)
{
        char line[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        struct curl_slist *n = cu->slist_append(l, line);
        if (!n)
                abort();
        return n;
}

/* Begin the delivery of id's callback in sl (free).  false when there was
 * nothing to send (gone, no longer pending, not allowed any more: then
 * recorded so). */
static bool slot_start(struct callbacks *c, struct slot *sl, const char *id)
{
        struct err err = ERR_INIT;
        struct job_record rec;
        if (store_get(c->store, id, STORE_READ_RESULT, &rec, &err) < 0) {
                if (err.code != ERR_NOT_FOUND)
                        log_job(LOG_LVL_WARN, id, NULL, NULL, "callback: %s", err.msg);
                return false;
        }
        if (!rec.callback.url || rec.callback.state != CALLBACK_PENDING || !job_status_is_final(rec.status)) {
                record_clear(&rec);
                return false;
        }
        slot_set_state(sl, SLOT_SENDING);
        sl->got = 0;
        sl->truncated = false;
        sl->retry_after_ms = -1;
        sl->head_done = false;
        callback_url_dest(rec.callback.url, sl->dest, sizeof sl->dest);
        sl->unanswering = *sl->dest && unanswering_now(c, sl->dest);
        sl->body = record_render(&rec, true, &sl->body_len);
        free(rec.result);
        rec.result = NULL;
        rec.result_len = 0;
        sl->rec = rec;
        struct job_callback *cb = &sl->rec.callback;
        /* The allowlist of this start, not the one the job was accepted
         * under: narrowing it stops what waits too. */
        if (callback_url_allowed(c->cfg->callbacks.allow, cb->url, &err) < 0) {
                cb->state = CALLBACK_FAILED;
                set_error(cb, "not sent: the URL %s", err.msg);
                metrics_callback("not_sent");
                log_job(LOG_LVL_WARN, id, sl->rec.algorithm, NULL, "callback not sent: the URL %s", err.msg);
                free(sl->body);
                sl->body = NULL;
                slot_write(sl);
                return true;
        }
        /* Attempts made under a larger callbacks.max_attempts count. */
        if (cb->attempts >= c->cfg->callbacks.max_attempts) {
                cb->state = CALLBACK_FAILED;
                set_error(cb, "not sent: %lld attempt(s) made, callbacks.max_attempts is %lld", (long long)cb->attempts,
                          (long long)c->cfg->callbacks.max_attempts);
                metrics_callback("not_sent");
                log_job(LOG_LVL_WARN, id, sl->rec.algorithm, NULL, "callback failed for good: %s", cb->last_error);
                free(sl->body);
                sl->body = NULL;
                slot_write(sl);
                return true;
        }
        char sig[128];
        /* The key copied under the lock (a reload may swap it), the body
         * (up to a whole result) hashed outside it. */
        char key[CALLBACK_SECRET_MAX];
        pthread_mutex_lock(&c->lock);
        size_t key_len = c->secret_len;
        memcpy(key, c->secret, key_len);
        pthread_mutex_unlock(&c->lock);
        callback_sign(key, key_len, now_real_ms() / 1000, sl->body, sl->body_len, sig, sizeof sig);
        explicit_bzero(key, key_len);
        struct curl_slist *h = NULL;
        h = add_header(h, "Content-Type: application/json");
        h = add_header(h, "X-Edgecd-Job-Id: %s", sl->rec.id);
        h = add_header(h, "X-Edgecd-Delivery: %s", cb->delivery);
        h = add_header(h, "X-Edgecd-Attempt: %lld", (long long)cb->attempts + 1);
        h = add_header(h, "X-Edgecd-Signature: %s", sig);
        h = add_header(h, "Expect:");   /* no 100-continue round trip */
        sl->headers = h;
        CURL *e = cu->easy_init();
        if (!e)
                abort();
        sl->easy = e;
        sl->errbuf[0] = '\0';
        const struct config *cfg = c->cfg;
        cu->easy_setopt(e, CURLOPT_URL, cb->url);
        cu->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        cu->easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        /* The allowlist names whom we call: no proxy from the environment
         * stands in between. */
        cu->easy_setopt(e, CURLOPT_PROXY, "");
        cu->easy_setopt(e, CURLOPT_NOPROXY, "*");
        cu->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        cu->easy_setopt(e, CURLOPT_POST, 1L);
        cu->easy_setopt(e, CURLOPT_POSTFIELDS, sl->body);
        cu->easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sl->body_len);
        cu->easy_setopt(e, CURLOPT_HTTPHEADER, h);
        cu->easy_setopt(e, CURLOPT_USERAGENT, "edgecd/" EDGECD_VERSION);
        cu->easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)cfg->callbacks.connect_timeout_seconds);
        cu->easy_setopt(e, CURLOPT_TIMEOUT, (long)cfg->callbacks.timeout_seconds);
        cu->easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        cu->easy_setopt(e, CURLOPT_WRITEDATA, sl);
        cu->easy_setopt(e, CURLOPT_HEADERFUNCTION, header_line);
        cu->easy_setopt(e, CURLOPT_HEADERDATA, sl);
        /* A name lookup still running when the handle goes (a connect
         * timeout, the stop) is left behind, not waited for: the threaded
         * resolver would block the delivery thread until it returns. */
        cu->easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
        cu->easy_setopt(e, CURLOPT_ERRORBUFFER, sl->errbuf);
        cu->easy_setopt(e, CURLOPT_PRIVATE, sl);
        if (cu->multi_add_handle(c->multi, e) != CURLM_OK)
                abort();
        metrics_callback_in_flight(1);
        log_job(LOG_LVL_DEBUG, sl->rec.id, sl->rec.algorithm, NULL, "callback attempt %lld", (long long)cb->attempts + 1);
        return true;
}

/* Only the delivery thread sets a slot's id and dest, and only while the
 * slot is free: reading them here needs no lock. */
static bool busy(struct callbacks *c, const char *id)
{
        for (size_t i = 0; i < c->nslots; i++)
                if (slot_state(&c->slots[i]) != SLOT_FREE && !strcmp(c->slots[i].rec.id, id))
                        return true;
        return false;
}

static size_t dest_in_flight(struct callbacks *c, const char *dest)
{
        size_t n = 0;
        for (size_t i = 0; i < c->nslots; i++)
                if (slot_state(&c->slots[i]) != SLOT_FREE && !strcmp(c->slots[i].dest, dest))
                        n++;
        return n;
}

static size_t free_slots(struct callbacks *c)
{
        size_t n = 0;
        for (size_t i = 0; i < c->nslots; i++)
                n += slot_state(&c->slots[i]) == SLOT_FREE;
        return n;
}

/* Slots held by receivers noted unanswering. */
static size_t unanswering_held(struct callbacks *c)
{
        size_t n = 0;
        for (size_t i = 0; i < c->nslots; i++)
                n += slot_state(&c->slots[i]) != SLOT_FREE && c->slots[i].unanswering;
        return n;
}

/* May no more attempts to dest start now?  Up to per_dest at once, and
 * not into the last free slot while one is in flight: two receivers that
 * take connections and never answer held every slot (half each) for
 * timeout_seconds at a time, and every other receiver waited.  And the
 * unanswering receivers (their last attempt got no answer) hold nslots - 1
 * slots together at most: four or more dead ones, one slot each, held
 * them all (for max_backoff_ms after each one's last miss: unanswering_now).
 * Not with one slot: it would never go to them. */
static bool dest_capped(struct callbacks *c, const char *dest)
{
        size_t n = dest_in_flight(c, dest);
        if (n >= c->per_dest || (n > 0 && free_slots(c) <= 1))
                return true;
        return c->nslots >= 2 && unanswering_held(c) >= c->nslots - 1 && unanswering_now(c, dest);
}

static struct slot *free_slot(struct callbacks *c)
{
        for (size_t i = 0; i < c->nslots; i++)
                if (slot_state(&c->slots[i]) == SLOT_FREE)
                        return &c->slots[i];
        return NULL;
}

static size_t add_capped(struct callbacks *c, size_t n, const char *dest)
{
        if (!*dest || !dest_capped(c, dest))
                return n;
        for (size_t j = 0; j < n; j++)
                if (!strcmp(c->capped[j], dest))
                        return n;
        c->capped[n] = dest;
        return n + 1;
}

/* The receivers at their cap, into c->capped; their number.  Those with
 * a slot, and the unanswering ones (all of them once their share is
 * full: else a look could read page after page of their rows). */
static size_t capped_dests(struct callbacks *c)
{
        size_t n = 0;
        for (size_t i = 0; i < c->nslots; i++)
                if (slot_state(&c->slots[i]) != SLOT_FREE)
                        n = add_capped(c, n, c->slots[i].dest);
        for (size_t i = 0; i < UNANSWERING_MAX; i++)
                n = add_capped(c, n, c->unanswering[i].dest);
        return n;
}

enum take { TAKEN, TAKE_CAPPED, TAKE_NO_SLOT };

/* Start d in a free slot, unless its receiver is at its cap. */
static enum take take(struct callbacks *c, const struct store_due *d)
{
        char dest[CALLBACK_DEST_MAX];
        callback_url_dest(d->url, dest, sizeof dest);
        if (*dest && dest_capped(c, dest))
                return TAKE_CAPPED;     /* looked at again when one of its slots frees */
        struct slot *sl = free_slot(c);
        if (!sl)
                return TAKE_NO_SLOT;    /* looked at again when one frees */
        slot_start(c, sl, d->id);
        return TAKEN;
}

/* First attempts of jobs recorded as ending after now, and retries
 * recorded as due later than any backoff waits: the wall clock was
 * stepped back since.  They are due (a retry once its wait by the clock
 * it was recorded by ends, wall_wait_ms(); *next, a now_mono_ms() time,
 * is the look for it), but the queue sorts them behind every retry due
 * before that time, where the look below stops. */
static int take_ended_ahead(struct callbacks *c, int64_t *next)
{
        size_t n = 0;
        struct err err = ERR_INIT;
        int64_t now = now_real_ms();
        if (store_callbacks_ended_ahead(c->store, c->due, 2 * c->nslots, now, now + c->cfg->callbacks.max_backoff_ms,
                                        c->capped, capped_dests(c), &n, &err) < 0) {
                log_warn("callbacks: %s", err.msg);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                if (busy(c, c->due[i].id))
                        continue;
                int64_t wait = !c->due[i].next_ms ? 0
                               : wall_wait_ms(c->due[i].next_ms, c->cfg->callbacks.max_backoff_ms);
                if (wait > 0) {
                        if (now_mono_ms() + wait < *next)
                                *next = now_mono_ms() + wait;
                        continue;
                }
                if (take(c, &c->due[i]) == TAKE_NO_SLOT)
                        break;
        }
        return 0;
}

/* Start what is due in free slots; the next look at the store is due at
 * the returned now_mono_ms() time. */
static int64_t scan(struct callbacks *c)
{
        int64_t mono = now_mono_ms();
        if (!free_slot(c))
                return mono + RESCAN_IDLE_MS;   /* a slot that frees looks again */
        int64_t next = mono + RESCAN_IDLE_MS;
        if (take_ended_ahead(c, &next) < 0)
                return mono + RESCAN_ERROR_MS;
        size_t max = 2 * c->nslots, skip = 0;
        /* Receivers at their cap are left out by the store: a long queue
         * for one dead receiver hides nobody's (the store passes over its
         * index entries: 10-20 ms a look per 100,000).  When one reaches its
         * cap in this look, the rest of its rows are passed over, and the
         * store is asked again without them.  Rows from before receivers
         * were recorded are paged through (a few pages, a bounded look). */
        for (int page = 0; page < SCAN_PAGES && free_slot(c); page++) {
                size_t n = 0, n_capped = capped_dests(c);
                struct err err = ERR_INIT;
                if (store_callbacks_due(c->store, c->due, max, skip, c->capped, n_capped, &n, &err) < 0) {
                        log_warn("callbacks: %s", err.msg);
                        return mono + RESCAN_ERROR_MS;
                }
                bool done = false, newly_capped = false;
                for (size_t i = 0; i < n && !done; i++) {
                        const struct store_due *d = &c->due[i];
                        if (busy(c, d->id))
                                continue;
                        /* By the offsets of the wall clock lately: a step
                         * ahead or back makes a retry neither early nor late. */
                        int64_t wait = wall_wait_ms(d->next_ms, c->cfg->callbacks.max_backoff_ms);
                        if (wait > 0) {
                                if (mono + wait < next)
                                        next = mono + wait;
                                /* Past by the clock now: recorded before a
                                 * step ahead, and those after it, recorded
                                 * since, may be due before it. */
                                if (d->next_ms <= now_real_ms())
                                        continue;
                                done = true;
                                break;
                        }
                        enum take t = take(c, d);
                        newly_capped |= t == TAKE_CAPPED;
                        done = t == TAKE_NO_SLOT;
                }
                if (done || n < max || !free_slot(c))
                        break;
                skip = newly_capped && capped_dests(c) > n_capped ? 0 : skip + n;
        }
        /* A receiver kept from the last slot for its miss may have it
         * once that mark runs out: a look then (nothing else wakes us
         * for its rows, left out of this look). */
        for (size_t i = 0; i < UNANSWERING_MAX; i++) {
                const struct unanswering *u = &c->unanswering[i];
                int64_t until = u->noted_ms + c->cfg->callbacks.max_backoff_ms;
                if (*u->dest && until > mono && until < next)
                        next = until;
        }
        return next;
}

/* Whether the callbacks kicked since the last look can start: a look for
 * a receiver at its cap finds nothing new, and passes over the index
 * entries of its whole backlog (a dead receiver's: 10-20 ms per 100,000).
 * Under c->lock. */
static bool kicks_can_start(struct callbacks *c)
{
        if (c->kick_any)
                return true;
        for (size_t i = 0; i < c->n_kick_dests; i++)
                if (!dest_capped(c, c->kick_dests[i]))
                        return true;
        return false;
}

static void *delivery_main(void *arg)
{
        struct callbacks *c = arg;
        int64_t next_scan = 0;
        int64_t rest_until = 0;         /* no look before (now_mono_ms()) */
        for (;;) {
                pthread_mutex_lock(&c->lock);
                bool stop = c->stopping;
                if (c->kicked && kicks_can_start(c))
                        next_scan = 0;
                c->kicked = c->kick_any = false;
                c->n_kick_dests = 0;
                /* Writes that ended: the slot is free, or its write is
                 * tried again (the row must not look pending meanwhile:
                 * it would be sent twice). */
                for (size_t i = 0; i < c->nslots; i++) {
                        struct slot *sl = &c->slots[i];
                        if (slot_state(sl) != SLOT_WRITTEN)
                                continue;
                        if (sl->write.err.code == ERR_OK) {
                                pthread_mutex_unlock(&c->lock);
                                slot_release(sl);
                                pthread_mutex_lock(&c->lock);
                                next_scan = 0;
                        } else {
                                log_job(LOG_LVL_WARN, sl->rec.id, sl->rec.algorithm, NULL, "callback outcome not recorded yet: %s",
                                         sl->write.err.msg);
                                slot_set_state(sl, SLOT_WRITE_AGAIN);
                                sl->retry_at = now_mono_ms() + WRITE_AGAIN_MS;
                        }
                }
                pthread_mutex_unlock(&c->lock);
                if (stop)
                        break;
                int64_t mono = now_mono_ms();
                int64_t wake = INT64_MAX;
                for (size_t i = 0; i < c->nslots; i++) {
                        struct slot *sl = &c->slots[i];
                        if (slot_state(sl) != SLOT_WRITE_AGAIN)
                                continue;
                        if (sl->retry_at <= mono)
                                slot_write(sl);
                        else if (sl->retry_at < wake)
                                wake = sl->retry_at;
                }
                if (next_scan <= mono && rest_until <= mono) {
                        /* A look that cost much (a long queue passed over)
                         * rests SCAN_REST times as long before the next:
                         * at most a tenth of a CPU, whatever the queue. */
                        int64_t t0 = now_mono_us();
                        next_scan = scan(c);
                        int64_t t1 = now_mono_us();
                        rest_until = t1 / 1000 + (t1 - t0) * SCAN_REST / 1000;
                }
                int64_t look_at = next_scan > rest_until ? next_scan : rest_until;
                if (look_at < wake)
                        wake = look_at;
                int running = 0;
                cu->multi_perform(c->multi, &running);
                CURLMsg *m;
                int left;
                while ((m = cu->multi_info_read(c->multi, &left))) {
                        if (m->msg != CURLMSG_DONE)
                                continue;
                        struct slot *sl = NULL;
                        cu->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
                        attempt_done(c, sl, m->data.result);
                }
                mono = now_mono_ms();
                int64_t t = wake - mono;
                if (t > 1000)
                        t = 1000;
                if (t < 0)
                        t = 0;
                cu->multi_poll(c->multi, NULL, 0, (int)t, NULL);
        }
        /* Stopping: what is in flight stays pending in the store (sent
         * again by the next start); writes in flight are waited for. */
        for (size_t i = 0; i < c->nslots; i++) {
                struct slot *sl = &c->slots[i];
                pthread_mutex_lock(&c->lock);
                while (slot_state(sl) == SLOT_WRITING)
                        pthread_cond_wait(&c->cond, &c->lock);
                pthread_mutex_unlock(&c->lock);
                if (slot_state(sl) != SLOT_FREE)
                        slot_release(sl);
        }
        return NULL;
}

/* Callbacks off (an empty callbacks.allow): those still pending from a
 * start that had them on fail now, as a narrowed list fails what it no
 * longer allows; else they would wait for ever and keep their jobs from
 * retention.  A page at a time, one commit each. */
void callbacks_fail_while_off(struct store *store)
{
        enum { PAGE = 64 };
        struct store_due *due = xcalloc(PAGE, sizeof *due);
        struct job_record *recs = xcalloc(PAGE, sizeof *recs);
        struct store_item *items = xcalloc(PAGE, sizeof *items);
        size_t failed = 0;
        for (;;) {
                size_t n = 0, k = 0;
                struct err err = ERR_INIT;
                if (store_callbacks_due(store, due, PAGE, 0, NULL, 0, &n, &err) < 0) {
                        log_warn("callbacks: %s", err.msg);
                        break;
                }
                for (size_t i = 0; i < n; i++) {
                        struct job_record *r = &recs[k];
                        struct err gerr = ERR_INIT;
                        if (store_get(store, due[i].id, 0, r, &gerr) < 0) {
                                /* Tried again at the next start (or the
                                 * next job recovered from disk to end). */
                                log_job(LOG_LVL_WARN, due[i].id, NULL, NULL, "callback not failed yet: %s", gerr.msg);
                                continue;
                        }
                        r->callback.state = CALLBACK_FAILED;
                        set_error(&r->callback, "not sent: callbacks are off (callbacks.allow is empty)");
                        items[k] = (struct store_item){ .rec = r, .expect_status = -1 };
                        k++;
                }
                struct store_write w = { .kind = STORE_CALLBACK, .items = items, .n = k };
                int rc = k ? store_write_sync(store, &w, &err) : 0;
                for (size_t i = 0; i < k; i++) {
                        if (rc == 0) {
                                store_uncache(store, recs[i].id);
                                metrics_callback("not_sent");
                        }
                        record_clear(&recs[i]);
                }
                if (rc < 0) {
                        log_warn("callbacks: pending callbacks not failed: %s", err.msg);
                        break;
                }
                failed += k;
                if (k == 0 || n < PAGE)
                        break;
        }
        if (failed)
                log_warn("callbacks: %zu pending callback(s) failed, not sent: callbacks are off", failed);
        free(items);
        free(recs);
        free(due);
}

int callbacks_start(const struct config *cfg, struct store *store, struct callbacks **ret, struct err *err)
{
        *ret = NULL;
        if (!cfg->callbacks.allow || !cfg->callbacks.allow[0]) {
                callbacks_fail_while_off(store);
                return 0;
        }
        struct callbacks *c = xcalloc(1, sizeof *c);
        c->cfg = cfg;
        c->store = store;
        if (callback_secret_load(cfg->callbacks.secret_file, &c->secret, &c->secret_len, err) < 0) {
                free(c);
                return -1;
        }
        if (curlapi_load(&cu, err) < 0) {
                explicit_bzero(c->secret, c->secret_len);
                free(c->secret);
                free(c);
                return err_wrap(err, "callbacks");
        }
        if (cu->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                explicit_bzero(c->secret, c->secret_len);
                free(c->secret);
                free(c);
                return err_set(err, ERR_INTERNAL, 0, "callbacks: libcurl would not initialise");
        }
        c->multi = cu->multi_init();
        if (!c->multi)
                abort();
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->nslots = (size_t)cfg->callbacks.concurrency;
        /* Half the slots for one receiver at most: a dead one leaves the
         * rest to the others. */
        c->per_dest = c->nslots / 2 ? c->nslots / 2 : 1;
        c->slots = xcalloc(c->nslots, sizeof *c->slots);
        for (size_t i = 0; i < c->nslots; i++)
                c->slots[i].c = c;
        c->due = xcalloc(2 * c->nslots, sizeof *c->due);
        c->capped = xcalloc(c->nslots + UNANSWERING_MAX, sizeof *c->capped);
        c->rnd = (uint64_t)now_real_ms() * 2654435761u ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
        int e = thread_start(&c->thread, "edgecd-callback", delivery_main, c);
        if (e) {
                callbacks_stop(c);
                return err_set(err, ERR_INTERNAL, e, "callbacks: start the delivery thread");
        }
        c->thread_started = true;
        log_info("callbacks: %zu allowed prefix(es), %zu deliveries at once, %zu to one receiver",
                 strv_len(cfg->callbacks.allow), c->nslots, c->per_dest);
        *ret = c;
        return 0;
}

int callbacks_reload_secret(struct callbacks *c, struct err *err)
{
        if (!c)
                return 0;
        char *secret = NULL;
        size_t len = 0;
        if (callback_secret_load(c->cfg->callbacks.secret_file, &secret, &len, err) < 0)
                return -1;
        pthread_mutex_lock(&c->lock);
        char *old = c->secret;
        size_t old_len = c->secret_len;
        c->secret = secret;
        c->secret_len = len;
        pthread_mutex_unlock(&c->lock);
        explicit_bzero(old, old_len);
        free(old);
        return 0;
}

void callbacks_kick(struct callbacks *c, const char *url)
{
        if (!c)
                return;
        char dest[CALLBACK_DEST_MAX] = "";
        if (url)
                callback_url_dest(url, dest, sizeof dest);
        pthread_mutex_lock(&c->lock);
        c->kicked = true;
        if (!*dest || c->n_kick_dests == KICK_DESTS)
                c->kick_any = true;
        else
                memcpy(c->kick_dests[c->n_kick_dests++], dest, sizeof dest);
        cu->multi_wakeup(c->multi);
        pthread_mutex_unlock(&c->lock);
}

void callbacks_stop(struct callbacks *c)
{
        if (!c)
                return;
        if (c->thread_started) {
                pthread_mutex_lock(&c->lock);
                c->stopping = true;
                pthread_mutex_unlock(&c->lock);
                cu->multi_wakeup(c->multi);
                pthread_join(c->thread, NULL);
        }
        cu->multi_cleanup(c->multi);
        cu->global_cleanup();
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        if (c->secret)
                explicit_bzero(c->secret, c->secret_len);
        free(c->secret);
        free(c->slots);
        free(c->due);
        free(c->capped);
        free(c);
}
