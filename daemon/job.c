/* job.c - the job object and its state machine (see job.h).
 * Any thread; each job's mutable state under its own mutex.  Waiters are
 * called outside the lock so they may take other locks (the HTTP layer's). */
#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "metrics.h"
#include "util.h"

struct job_waiter {
        void (*fn)(void *ctx);
        void *ctx;
        struct job_waiter *next;
};

struct job *job_new(struct manifest *m, const char *params, size_t len, enum job_priority prio,
                    int64_t timeout_seconds, const char *submitted_by)
{
        struct job *j = xcalloc(1, sizeof *j);
        j->refs = 1;
        pthread_mutex_init(&j->lock, NULL);
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, j->id);
        j->manifest = manifest_ref(m);
        j->params = xmalloc(len + 1);
        memcpy(j->params, params, len);
        j->params[len] = '\0';
        j->params_len = len;
        j->submitted_by = xstrdup(submitted_by);
        j->priority = prio;
        j->timeout_seconds = timeout_seconds;
        j->created_ms = now_real_ms();
        j->created_mono = now_mono_ms();
        j->status = JOB_QUEUED;
        j->cancel_fd = -1;
        j->exit_code = -1;
        j->metrics.peak_memory_bytes = -1;
        j->metrics.cpu_ms = -1;
        return j;
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
        manifest_unref(j->manifest);
        free(j->params);
        free(j->result);
        free(j->submitted_by);
        for (size_t i = 0; i < j->n_attempts; i++)
                free(j->attempts[i].message);
        free(j->attempts);
        free(j->error_message);
        free(j->runtime_name);
        pthread_mutex_destroy(&j->lock);
        free(j);
}

static const char *const status_names[] = {
        [JOB_QUEUED] = "queued", [JOB_RUNNING] = "running", [JOB_SUCCEEDED] = "succeeded",
        [JOB_FAILED] = "failed", [JOB_CANCELLED] = "cancelled",
};
static const char *const priority_names[] = {
        [PRIO_HIGH] = "high", [PRIO_NORMAL] = "normal", [PRIO_LOW] = "low",
};

const char *job_status_name(enum job_status s) { return status_names[s]; }
const char *job_priority_name(enum job_priority p) { return priority_names[p]; }

int job_priority_parse(const char *s)
{
        for (size_t i = 0; s && i < ARRAY_SIZE(priority_names); i++)
                if (!strcmp(s, priority_names[i]))
                        return (int)i;
        return -1;
}

int job_status_parse(const char *s)
{
        for (size_t i = 0; s && i < ARRAY_SIZE(status_names); i++)
                if (!strcmp(s, status_names[i]))
                        return (int)i;
        return -1;
}

bool job_status_is_final(enum job_status s)
{
        return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool job_start(struct job *j, const char *runtime_name)
{
        pthread_mutex_lock(&j->lock);
        bool ok = j->status == JOB_QUEUED && !j->cancel_requested;
        if (ok) {
                j->status = JOB_RUNNING;
                j->started_ms = now_real_ms();
                j->metrics.queue_ms = now_mono_ms() - j->created_mono;
                j->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                free(j->runtime_name);
                j->runtime_name = xstrdup(runtime_name);
        }
        pthread_mutex_unlock(&j->lock);
        return ok;
}

size_t job_attempt_begin(struct job *j, int64_t uid, int64_t gid, char *run_id)
{
        pthread_mutex_lock(&j->lock);
        j->attempts = xrealloc(j->attempts, (j->n_attempts + 1) * sizeof *j->attempts);
        struct job_attempt *a = &j->attempts[j->n_attempts++];
        *a = (struct job_attempt){ .uid = uid, .gid = gid, .started_ms = now_real_ms() };
        snprintf(a->run_id, sizeof a->run_id, "%s-%zu", j->id, j->n_attempts);
        memcpy(run_id, a->run_id, RUN_ID_MAX);
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

size_t job_attempt_count(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        size_t n = j->n_attempts;
        pthread_mutex_unlock(&j->lock);
        return n;
}

void job_last_run_id(struct job *j, char *buf)
{
        pthread_mutex_lock(&j->lock);
        snprintf(buf, RUN_ID_MAX, "%s", j->n_attempts ? j->attempts[j->n_attempts - 1].run_id : "");
        pthread_mutex_unlock(&j->lock);
}

bool job_finish(struct job *j, enum job_error error, const char *message, char *result, size_t len,
                int exit_code, const struct job_metrics *metrics)
{
        pthread_mutex_lock(&j->lock);
        if (job_status_is_final(j->status)) {
                pthread_mutex_unlock(&j->lock);
                free(result);
                return false;
        }
        j->result_bytes = result ? len : 0;
        /* Its workspace had its input.json: a kept record need not hold the
         * parameters too (they are up to max_body_bytes each). */
        free(j->params);
        j->params = NULL;
        j->params_len = 0;
        j->status = error == JOB_ERR_NONE ? JOB_SUCCEEDED
                    : error == JOB_ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
        j->finished_ms = now_real_ms();
        j->error = error;
        free(j->error_message);
        j->error_message = error != JOB_ERR_NONE ? xstrdup(message ? message : job_error_name(error)) : NULL;
        free(j->result);
        j->result = result;
        j->has_exit_code = exit_code >= 0;
        j->exit_code = exit_code;
        if (metrics) {
                int64_t queue_ms = j->metrics.queue_ms;
                j->metrics = *metrics;
                j->metrics.queue_ms = queue_ms;
        }
        if (j->started_ms == 0)
                j->metrics.queue_ms = now_mono_ms() - j->created_mono;
        j->metrics.total_ms = now_mono_ms() - j->created_mono;
        if (j->cancel_fd >= 0) {
                close(j->cancel_fd);
                j->cancel_fd = -1;
        }
        struct job_waiter *waiters = j->waiters;
        j->waiters = NULL;
        struct job_metrics m = j->metrics;
        pthread_mutex_unlock(&j->lock);

        metrics_job_finished(error, m.queue_ms, m.create_ms, m.run_ms, m.total_ms);

        for (struct job_waiter *w = waiters, *n; w; w = n) {
                n = w->next;
                w->fn(w->ctx);
                free(w);
        }
        return true;
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

bool job_log_truncated(struct job *j)
{
        pthread_mutex_lock(&j->lock);
        bool t = j->log_truncated;
        pthread_mutex_unlock(&j->lock);
        return t;
}

static json_t *time_or_null(int64_t ms)
{
        if (!ms)
                return json_null();
        char buf[40];
        format_rfc3339(ms, buf, sizeof buf);
        return json_string(buf);
}

static json_t *int_or_null(int64_t v)
{
        return v < 0 ? json_null() : json_integer(v);
}

static json_t *error_or_null(enum job_error e, const char *message)
{
        if (e == JOB_ERR_NONE)
                return json_null();
        return json_pack("{s:s, s:s}", "code", job_error_name(e), "message", message ? message : "");
}

/* The job object but its result (lock held). */
static json_t *to_json_locked(struct job *j)
{
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(j->id));
        json_object_set_new(o, "algorithm", json_string(j->manifest->name));
        json_object_set_new(o, "version", json_string(j->manifest->version));
        json_object_set_new(o, "status", json_string(status_names[j->status]));
        json_object_set_new(o, "priority", json_string(priority_names[j->priority]));
        json_object_set_new(o, "timeout_seconds", json_integer(j->timeout_seconds));
        json_object_set_new(o, "created_at", time_or_null(j->created_ms));
        json_object_set_new(o, "started_at", time_or_null(j->started_ms));
        json_object_set_new(o, "finished_at", time_or_null(j->finished_ms));
        json_object_set_new(o, "result", json_null());
        json_object_set_new(o, "error", error_or_null(j->error, j->error_message));
        json_object_set_new(o, "exit_code", j->has_exit_code ? json_integer(j->exit_code) : json_null());
        if (job_status_is_final(j->status)) {
                const struct job_metrics *m = &j->metrics;
                json_object_set_new(o, "metrics", json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                        "queue_ms", (json_int_t)m->queue_ms, "create_ms", (json_int_t)m->create_ms,
                        "run_ms", (json_int_t)m->run_ms, "collect_ms", (json_int_t)m->collect_ms,
                        "total_ms", (json_int_t)m->total_ms,
                        "peak_memory_bytes", int_or_null(m->peak_memory_bytes),
                        "cpu_ms", int_or_null(m->cpu_ms)));
        } else {
                json_object_set_new(o, "metrics", json_null());
        }
        json_object_set_new(o, "runtime", j->runtime_name ? json_string(j->runtime_name) : json_null());
        json_object_set_new(o, "submitted_by", j->submitted_by ? json_string(j->submitted_by) : json_null());
        json_t *attempts = json_array();
        for (size_t i = 0; i < j->n_attempts; i++) {
                const struct job_attempt *a = &j->attempts[i];
                json_array_append_new(attempts, json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}",
                        "run_id", a->run_id, "uid", (json_int_t)a->uid, "gid", (json_int_t)a->gid,
                        "started_at", time_or_null(a->started_ms),
                        "finished_at", time_or_null(a->finished_ms),
                        "error", a->finished_ms ? error_or_null(a->error, a->message) : json_null()));
        }
        json_object_set_new(o, "attempts", attempts);
        return o;
}

char *job_render(struct job *j, bool with_result, size_t *ret_len)
{
        pthread_mutex_lock(&j->lock);
        _cleanup_json_ json_t *o = to_json_locked(j);
        bool splice = with_result && j->result && j->status == JOB_SUCCEEDED;
        if (splice)
                json_object_del(o, "result");
        char *text = json_dumps(o, JSON_COMPACT);
        if (!text)
                abort();
        size_t n = strlen(text);
        if (splice) {
                /* {...} -> {...,"result":<text>}: the result is checked JSON
                 * text (jsontext.h), kept as the algorithm wrote it. */
                static const char key[] = ",\"result\":";
                size_t total = n - 1 + sizeof key - 1 + j->result_bytes + 1;
                text = xrealloc(text, total + 1);
                char *p = text + n - 1;
                memcpy(p, key, sizeof key - 1);
                p += sizeof key - 1;
                memcpy(p, j->result, j->result_bytes);
                p += j->result_bytes;
                *p++ = '}';
                *p = '\0';
                n = total;
        }
        pthread_mutex_unlock(&j->lock);
        if (ret_len)
                *ret_len = n;
        return text;
}

struct job_waiter *job_add_waiter(struct job *j, void (*fn)(void *ctx), void *ctx)
{
        pthread_mutex_lock(&j->lock);
        if (job_status_is_final(j->status)) {
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
