/* job.c - the job object and its state machine (see job.h).
 * Any thread; each job's mutable state under its own mutex.  Waiters are
 * called outside the lock so they may take other locks (the HTTP layer's). */
#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/jsontext.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "progress.h"

struct job_waiter {
        void (*fn)(void *ctx);
        void *ctx;
        struct job_waiter *next;
};

static struct job *job_alloc(struct manifest *m, enum job_priority prio, int64_t timeout_seconds,
                             const char *submitted_by)
{
        struct job *j = xcalloc(1, sizeof *j);
        j->refs = 1;
        pthread_mutex_init(&j->lock, NULL);
        j->manifest = manifest_ref(m);
        j->submitted_by = xstrdup(submitted_by);
        j->priority = prio;
        j->timeout_seconds = timeout_seconds;
        j->status = JOB_QUEUED;
        j->cancel_fd = -1;
        j->exit_code = -1;
        j->metrics.peak_memory_bytes = -1;
        j->metrics.cpu_ms = -1;
        return j;
}

struct job *job_new(struct manifest *m, enum job_priority prio, int64_t timeout_seconds,
                    const char *submitted_by)
{
        struct job *j = job_alloc(m, prio, timeout_seconds, submitted_by);
        uuid_random_text(j->id);
        j->created_ms = now_real_ms();
        /* One clock read: Server-Timing's job phase and total_ms agree. */
        j->created_us = now_mono_us();
        j->created_mono = j->created_us / 1000;
        return j;
}

static int64_t parse_time_or_zero(json_t *v)
{
        const char *s = json_string_value(v);
        struct tm tm = { 0 };
        int ms = 0;
        if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                         &tm.tm_min, &tm.tm_sec, &ms) != 7)
                return 0;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * 1000 + ms;
}

struct job *job_from_record(const struct job_record *r, struct manifest *m)
{
        _cleanup_json_ json_t *attempts = json_loads(r->attempts ? r->attempts : "[]", 0, NULL);
        if (!json_is_array(attempts))
                return NULL;
        struct job *j = job_alloc(m, r->priority, r->timeout_seconds, r->submitted_by);
        memcpy(j->id, r->id, sizeof j->id);
        j->created_ms = r->created_ms;
        /* Across a restart only the wall clock tells the time queued; a
         * record ahead of it (the clock stepped back since) is as if just
         * made, not a negative time queued (stored as none at all). */
        int64_t since = now_real_ms() - r->created_ms;
        j->created_mono = now_mono_ms() - (since > 0 ? since : 0);
        j->recoveries = r->recoveries;
        j->from_disk = true;
        if (r->callback.url) {
                j->callback_url = xstrdup(r->callback.url);
                memcpy(j->callback_delivery, r->callback.delivery, sizeof j->callback_delivery);
        }
        size_t n = json_array_size(attempts);
        j->attempts = xcalloc(n + 1, sizeof *j->attempts);
        for (size_t i = 0; i < n; i++) {
                json_t *a = json_array_get(attempts, i);
                struct job_attempt *at = &j->attempts[j->n_attempts++];
                const char *rid = json_string_value(json_object_get(a, "run_id"));
                if (rid && strlen(rid) < sizeof at->run_id)
                        snprintf(at->run_id, sizeof at->run_id, "%s", rid);
                else
                        snprintf(at->run_id, sizeof at->run_id, "%.36s-%u", j->id, (unsigned)(i + 1));
                at->warm = json_is_true(json_object_get(a, "warm"));
                at->uid = json_integer_value(json_object_get(a, "uid"));
                at->gid = json_integer_value(json_object_get(a, "gid"));
                at->started_ms = parse_time_or_zero(json_object_get(a, "started_at"));
                at->finished_ms = parse_time_or_zero(json_object_get(a, "finished_at"));
                json_t *e = json_object_get(a, "error");
                if (json_is_object(e)) {
                        at->error = job_error_parse(json_string_value(json_object_get(e, "code")));
                        at->message = xstrdup(json_string_value(json_object_get(e, "message")));
                }
        }
        return j;
}

void job_set_callback(struct job *j, const char *url)
{
        free(j->callback_url);
        j->callback_url = xstrdup(url);
        uuid_random_text(j->callback_delivery);
}

/* Bytes of parameters held by jobs (job_hold_params), all of them. */
static size_t params_held;

bool job_hold_params(struct job *j, const char *params, size_t len)
{
        size_t held = __atomic_load_n(&params_held, __ATOMIC_RELAXED);
        do {
                if (len > JOB_PARAMS_HELD_MAX - held)
                        return false;
        } while (!__atomic_compare_exchange_n(&params_held, &held, held + len, true, __ATOMIC_RELAXED,
                                              __ATOMIC_RELAXED));
        j->params = xmemdup0(params, len);
        j->params_len = len;
        return true;
}

struct job *job_ref(struct job *j)
{
        if (j)
                __atomic_add_fetch(&j->refs, 1, __ATOMIC_RELAXED);
        return j;
}

void job_unref(struct job *j)
{
        if (!j || __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        /* Waiters hold no job reference, and a final job has none left. */
        for (struct job_waiter *w = j->waiters, *n; w; w = n) {
                n = w->next;
                free(w);
        }
        if (j->cancel_fd >= 0)
                close(j->cancel_fd);
        if (j->params) {
                free(j->params);
                __atomic_sub_fetch(&params_held, j->params_len, __ATOMIC_RELAXED);
        }
        manifest_unref(j->manifest);
        free(j->submitted_by);
        free(j->callback_url);
        for (size_t i = 0; i < j->n_attempts; i++)
                free(j->attempts[i].message);
        free(j->attempts);
        free(j->error_message);
        free(j->runtime_name);
        free(j->progress_dir);
        free(j->progress);
        free(j->progress_complaint);
        pthread_mutex_destroy(&j->lock);
        free(j);
}

bool job_start(struct job *j, const char *runtime_name)
{
        int e = 0;
        pthread_mutex_lock(&j->lock);
        bool ok = j->status == JOB_QUEUED && !j->cancel_requested;
        if (ok) {
                j->status = JOB_RUNNING;
                j->started_ms = now_real_ms();
                j->metrics.queue_ms = now_mono_ms() - j->created_mono;
                j->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                e = errno;
                free(j->runtime_name);
                j->runtime_name = xstrdup(runtime_name);
        }
        pthread_mutex_unlock(&j->lock);
        errno = e;   /* eventfd's, for the caller that finds no cancel_fd */
        return ok;
}

int job_retry_cancel_fd(struct job *j)
{
        int e = 0;
        pthread_mutex_lock(&j->lock);
        if (j->cancel_fd < 0) {
                j->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                e = j->cancel_fd < 0 ? errno : 0;
                /* A cancel or interrupt that came while there was none
                 * wrote to nothing: the new one says so at once. */
                uint64_t one = 1;
                if (j->cancel_fd >= 0 && (j->cancel_requested || j->interrupt_requested) &&
                    write(j->cancel_fd, &one, sizeof one) < 0) {
                        /* A fresh eventfd takes a write. */
                }
        }
        pthread_mutex_unlock(&j->lock);
        return e;
}

/* A run begins or the job goes back to the queue: what an earlier run
 * said of its progress is not this one's (lock held). */
static void forget_progress_locked(struct job *j)
{
        free(j->progress);
        j->progress = NULL;
        free(j->progress_complaint);
        j->progress_complaint = NULL;
        j->progress_read_mono = 0;
        j->progress_applied = j->progress_reads;   /* reads under way do not count */
}

bool job_requeue(struct job *j, bool *ret_ran)
{
        pthread_mutex_lock(&j->lock);
        /* A client's cancel that came meanwhile (it found the job running
         * and only asked) is answered by the caller, not lost in the queue. */
        bool ok = !j->cancel_requested;
        *ret_ran = j->n_attempts > 0;
        if (ok && j->status == JOB_RUNNING) {
                j->status = JOB_QUEUED;
                j->started_ms = 0;
                if (j->cancel_fd >= 0) {
                        close(j->cancel_fd);
                        j->cancel_fd = -1;
                }
                forget_progress_locked(j);
        }
        pthread_mutex_unlock(&j->lock);
        return ok;
}

size_t job_attempt_begin(struct job *j, int64_t uid, int64_t gid, char *run_id)
{
        pthread_mutex_lock(&j->lock);
        j->attempts = xrealloc(j->attempts, (j->n_attempts + 1) * sizeof *j->attempts);
        struct job_attempt *a = &j->attempts[j->n_attempts++];
        *a = (struct job_attempt){ .uid = uid, .gid = gid, .started_ms = now_real_ms(), .warm = *run_id != '\0' };
        if (a->warm)
                snprintf(a->run_id, sizeof a->run_id, "%s", run_id);
        else
                snprintf(a->run_id, sizeof a->run_id, "%s-%zu", j->id, j->n_attempts);
        memcpy(run_id, a->run_id, RUN_ID_MAX);
        size_t n = j->n_attempts;
        forget_progress_locked(j);
        pthread_mutex_unlock(&j->lock);
        return n;
}

size_t job_attempt_count(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        size_t n = j->n_attempts;
        pthread_mutex_unlock(&j->lock);
        return n;
}

void job_attempt_end(struct job *j, enum job_error e, const char *message)
{
        pthread_mutex_lock(&j->lock);
        if (j->n_attempts > 0) {
                struct job_attempt *a = &j->attempts[j->n_attempts - 1];
                a->finished_ms = now_real_ms();
                a->error = e;
                free(a->message);
                a->message = e != JOB_ERR_NONE ? xstrdup(message ? message : job_error_name(e)) : NULL;
        }
        pthread_mutex_unlock(&j->lock);
}

bool job_finish(struct job *j, enum job_error error, const char *message, int exit_code,
                const struct job_metrics *metrics)
{
        pthread_mutex_lock(&j->lock);
        if (job_status_is_final(j->status)) {
                pthread_mutex_unlock(&j->lock);
                return false;
        }
        j->status = error == JOB_ERR_NONE ? JOB_SUCCEEDED
                    : error == JOB_ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
        j->finished_ms = now_real_ms();
        j->error = error;
        free(j->error_message);
        j->error_message = error != JOB_ERR_NONE ? xstrdup(message ? message : job_error_name(error)) : NULL;
        j->has_exit_code = exit_code >= 0;
        j->exit_code = exit_code;
        if (metrics) {
                int64_t queue_ms = j->metrics.queue_ms;
                j->metrics = *metrics;
                j->metrics.queue_ms = queue_ms;
        }
        j->finished_us = now_mono_us();
        if (j->started_ms == 0)
                j->metrics.queue_ms = j->finished_us / 1000 - j->created_mono;
        j->metrics.total_ms = j->finished_us / 1000 - j->created_mono;
        if (j->cancel_fd >= 0) {
                close(j->cancel_fd);
                j->cancel_fd = -1;
        }
        struct job_metrics m = j->metrics;
        bool ran = j->started_ms != 0;
        pthread_mutex_unlock(&j->lock);
        metrics_job_finished(j->manifest->name, error, &m, ran);
        return true;
}

void job_wake(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        struct job_waiter *waiters = j->woken ? NULL : j->waiters;
        j->waiters = NULL;
        if (!j->woken)
                j->woken_us = now_mono_us();
        j->woken = true;
        pthread_mutex_unlock(&j->lock);
        for (struct job_waiter *w = waiters, *n; w; w = n) {
                n = w->next;
                w->fn(w->ctx);
                free(w);
        }
}

bool job_final_recorded(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        bool told = j->woken;
        pthread_mutex_unlock(&j->lock);
        return told;
}

bool job_timing(struct job *j, struct job_timing *ret)
{
        pthread_mutex_lock(&j->lock);
        *ret = (struct job_timing){ j->created_us, j->finished_us, j->woken ? j->woken_us : 0 };
        pthread_mutex_unlock(&j->lock);
        return ret->created_us > 0 && ret->finished_us >= ret->created_us && ret->woken_us >= ret->finished_us;
}

bool job_request_cancel(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        bool running = j->status == JOB_RUNNING;
        j->cancel_requested = true;
        if (running && j->cancel_fd >= 0) {
                uint64_t one = 1;
                ssize_t n = write(j->cancel_fd, &one, sizeof one);
                (void)n;   /* EAGAIN means it is signalled already */
        }
        pthread_mutex_unlock(&j->lock);
        return running;
}

void job_request_interrupt(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        j->interrupt_requested = true;
        if (j->status == JOB_RUNNING && j->cancel_fd >= 0) {
                uint64_t one = 1;
                ssize_t n = write(j->cancel_fd, &one, sizeof one);
                (void)n;
        }
        pthread_mutex_unlock(&j->lock);
}

bool job_stop_requested(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        bool r = j->cancel_requested || j->interrupt_requested;
        pthread_mutex_unlock(&j->lock);
        return r;
}

bool job_cancel_requested(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        bool r = j->cancel_requested;
        pthread_mutex_unlock(&j->lock);
        return r;
}

int job_cancel_fd(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        int fd = j->cancel_fd;
        pthread_mutex_unlock(&j->lock);
        return fd;
}

enum job_status job_get_status(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        enum job_status s = j->status;
        pthread_mutex_unlock(&j->lock);
        return s;
}

void job_set_log_truncated(struct job *j, bool truncated)
{
        pthread_mutex_lock(&j->lock);
        j->log_truncated = truncated;
        pthread_mutex_unlock(&j->lock);
}

/* The attempts as the record keeps them (lock held), written as text:
 * rendered twice a job (its run's start and end), a jansson tree of them
 * was most of what the job's records cost the worker. */
static char *attempts_text_locked(struct job *j)
{
        struct jsonbuf b = JSONBUF_INIT;
        jsonbuf_lit(&b, "[");
        for (size_t i = 0; i < j->n_attempts; i++) {
                const struct job_attempt *a = &j->attempts[i];
                char ids[96];
                if (i)
                        jsonbuf_lit(&b, ",");
                jsonbuf_lit(&b, "{\"run_id\":");
                jsonbuf_string(&b, a->run_id);
                int n = snprintf(ids, sizeof ids, ",\"warm\":%s,\"uid\":%lld,\"gid\":%lld,\"started_at\":",
                                 a->warm ? "true" : "false", (long long)a->uid, (long long)a->gid);
                jsonbuf_put(&b, ids, (size_t)n);
                record_time_text(&b, a->started_ms);
                jsonbuf_lit(&b, ",\"finished_at\":");
                record_time_text(&b, a->finished_ms);
                jsonbuf_lit(&b, ",\"error\":");
                record_error_text(&b, a->finished_ms ? a->error : JOB_ERR_NONE, a->message);
                jsonbuf_lit(&b, "}");
        }
        jsonbuf_lit(&b, "]");
        return b.text;
}

void job_snapshot(struct job *j, struct job_record *r)
{
        memset(r, 0, sizeof *r);
        memcpy(r->id, j->id, sizeof r->id);
        r->algorithm = xstrdup(j->manifest->name);
        r->version = xstrdup(j->manifest->version);
        r->priority = j->priority;
        r->timeout_seconds = j->timeout_seconds;
        r->submitted_by = xstrdup(j->submitted_by);
        r->created_ms = j->created_ms;
        if (j->callback_url) {
                /* As inserted; the delivery thread keeps the store's up
                 * to date from there. */
                r->callback.url = xstrdup(j->callback_url);
                memcpy(r->callback.delivery, j->callback_delivery, sizeof r->callback.delivery);
                r->callback.state = CALLBACK_PENDING;
        }
        pthread_mutex_lock(&j->lock);
        r->status = j->status;
        r->started_ms = j->started_ms;
        r->finished_ms = j->finished_ms;
        r->error = j->error;
        r->error_message = xstrdup(j->error_message);
        r->has_exit_code = j->has_exit_code;
        r->exit_code = j->exit_code;
        r->has_metrics = job_status_is_final(j->status);
        r->metrics = j->metrics;
        r->runtime_name = xstrdup(j->runtime_name);
        r->log_truncated = j->log_truncated;
        r->attempts = attempts_text_locked(j);
        r->recoveries = j->recoveries;
        r->progress = xstrdup(j->progress);
        pthread_mutex_unlock(&j->lock);
}

void job_progress_watch(struct job *j, const char *output_dir)
{
        pthread_mutex_lock(&j->lock);
        free(j->progress_dir);
        j->progress_dir = xstrdup(output_dir);
        if (output_dir)
                forget_progress_locked(j);
        else
                j->progress_applied = j->progress_reads;   /* a read begun before this does not count */
        pthread_mutex_unlock(&j->lock);
}

void job_progress_refresh(struct job *j, bool force)
{
        pthread_mutex_lock(&j->lock);
        int64_t now = now_mono_ms();
        if (!j->progress_dir || (!force && j->progress_read_mono &&
                                 now - j->progress_read_mono < PROGRESS_INTERVAL_MS)) {
                pthread_mutex_unlock(&j->lock);
                return;
        }
        /* Read outside the lock: the file is the algorithm's. */
        j->progress_read_mono = now;
        uint64_t seq = ++j->progress_reads;
        _cleanup_free_ char *dir = xstrdup(j->progress_dir);
        pthread_mutex_unlock(&j->lock);

        _cleanup_free_ char *text = NULL;
        struct err err = ERR_INIT;
        if (progress_read(dir, &text, &err) < 0 && err.code != ERR_NOT_FOUND) {
                /* Once per run: the file is the algorithm's to vary, and is
                 * read every PROGRESS_INTERVAL_MS. */
                pthread_mutex_lock(&j->lock);
                bool again = j->progress_complaint != NULL;
                if (!again)
                        j->progress_complaint = xstrdup(err.msg);
                pthread_mutex_unlock(&j->lock);
                if (!again)
                        log_job(LOG_LVL_INFO, j->id, j->manifest->name, NULL, "progress ignored (said once per run): %s",
                                err.msg);
        }
        if (!text)
                return;
        pthread_mutex_lock(&j->lock);
        /* Not when a later read, or a new run, got there first. */
        if (seq > j->progress_applied) {
                j->progress_applied = seq;
                free(j->progress);
                j->progress = TAKE_PTR(text);
        }
        pthread_mutex_unlock(&j->lock);
}

char *job_progress(struct job *j)
{
        job_progress_refresh(j, false);
        pthread_mutex_lock(&j->lock);
        char *p = xstrdup(j->progress);
        pthread_mutex_unlock(&j->lock);
        return p;
}

struct job_waiter *job_add_waiter(struct job *j, void (*fn)(void *ctx), void *ctx)
{
        pthread_mutex_lock(&j->lock);
        if (j->woken) {
                pthread_mutex_unlock(&j->lock);
                return NULL;
        }
        struct job_waiter *w = xmalloc(sizeof *w);
        *w = (struct job_waiter){ .fn = fn, .ctx = ctx, .next = j->waiters };
        j->waiters = w;
        pthread_mutex_unlock(&j->lock);
        return w;
}

bool job_remove_waiter(struct job *j, struct job_waiter *w)
{
        pthread_mutex_lock(&j->lock);
        bool found = false;
        for (struct job_waiter **p = &j->waiters; *p; p = &(*p)->next) {
                if (*p == w) {
                        *p = w->next;
                        found = true;
                        break;
                }
        }
        pthread_mutex_unlock(&j->lock);
        if (found)
                free(w);
        return found;
}
