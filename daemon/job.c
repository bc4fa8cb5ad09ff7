/* job.c - the job object and its state machine (see job.h).
 * Any thread; each job's mutable state under its own mutex.  Waiters are
 * called outside the lock so they may take other locks (the HTTP layer's). */
#include "job.h"

#include <errno.h>
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

struct job *job_new(struct manifest *m, json_t *parameters, enum job_priority prio,
                    int64_t timeout_seconds)
{
        struct job *j = xcalloc(1, sizeof *j);
        j->refs = 1;
        pthread_mutex_init(&j->lock, NULL);
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, j->id);
        j->manifest = manifest_ref(m);
        j->parameters = json_incref(parameters);
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
        json_decref(j->parameters);
        json_decref(j->result);
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

bool job_finish(struct job *j, enum job_error error, const char *message, json_t *result,
                int exit_code, const struct job_metrics *metrics)
{
        /* Measured outside the lock: a result may be a megabyte. */
        size_t result_bytes = result ? json_dumpb(result, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
        pthread_mutex_lock(&j->lock);
        if (job_status_is_final(j->status)) {
                pthread_mutex_unlock(&j->lock);
                json_decref(result);
                return false;
        }
        j->result_bytes = result_bytes;
        /* Its workspace has its input.json: a kept record need not hold the
         * parameters too (they are up to max_body_bytes each). */
        json_decref(j->parameters);
        j->parameters = NULL;
        j->status = error == JOB_ERR_NONE ? JOB_SUCCEEDED
                    : error == JOB_ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
        j->finished_ms = now_real_ms();
        j->error = error;
        free(j->error_message);
        j->error_message = error != JOB_ERR_NONE ? xstrdup(message ? message : job_error_name(error)) : NULL;
        json_decref(j->result);
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

json_t *job_to_json(struct job *j)
{
        pthread_mutex_lock(&j->lock);
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
        json_object_set(o, "result", j->result && j->status == JOB_SUCCEEDED ? j->result : json_null());
        if (j->error != JOB_ERR_NONE) {
                json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code", job_error_name(j->error),
                                                          "message", j->error_message ? j->error_message : ""));
        } else {
                json_object_set_new(o, "error", json_null());
        }
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
        pthread_mutex_unlock(&j->lock);
        return o;
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
