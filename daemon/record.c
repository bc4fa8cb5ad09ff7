/* record.c - a job's persisted record and its API rendering (see record.h).
 * Plain data; no locks. */
#include "record.h"

#include <string.h>
#include <sys/mman.h>

#include <jansson.h>

#include "util.h"

static const char *const status_names[] = {
        [JOB_QUEUED] = "queued", [JOB_RUNNING] = "running", [JOB_SUCCEEDED] = "succeeded",
        [JOB_FAILED] = "failed", [JOB_CANCELLED] = "cancelled",
};
static const char *const priority_names[] = {
        [PRIO_HIGH] = "high", [PRIO_NORMAL] = "normal", [PRIO_LOW] = "low",
};

const char *job_status_name(enum job_status s) { return status_names[s]; }
const char *job_priority_name(enum job_priority p) { return priority_names[p]; }

static int name_index(const char *const *names, size_t n, const char *s)
{
        for (size_t i = 0; s && i < n; i++)
                if (!strcmp(s, names[i]))
                        return (int)i;
        return -1;
}

int job_priority_parse(const char *s) { return name_index(priority_names, ARRAY_SIZE(priority_names), s); }
int job_status_parse(const char *s) { return name_index(status_names, ARRAY_SIZE(status_names), s); }

static const char *const callback_state_names[] = {
        [CALLBACK_PENDING] = "pending", [CALLBACK_DELIVERED] = "delivered", [CALLBACK_FAILED] = "failed",
};

const char *callback_state_name(enum callback_state s)
{
        return (unsigned)s < ARRAY_SIZE(callback_state_names) ? callback_state_names[s] : "pending";
}

bool job_status_is_final(enum job_status s)
{
        return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

void record_clear(struct job_record *r)
{
        free(r->algorithm);
        free(r->version);
        free(r->submitted_by);
        record_clear_params(r);
        free(r->result);
        free(r->error_message);
        free(r->runtime_name);
        free(r->attempts);
        free(r->progress);
        free(r->callback.url);
        free(r->callback.last_error);
        memset(r, 0, sizeof *r);
}

void record_copy(struct job_record *dst, const struct job_record *src)
{
        *dst = *src;
        dst->algorithm = xstrdup(src->algorithm);
        dst->version = xstrdup(src->version);
        dst->submitted_by = xstrdup(src->submitted_by);
        dst->params = xmemdup0(src->params, src->params_len);
        dst->params_external = dst->params_mapped = false;
        dst->result = xmemdup0(src->result, src->result_len);
        dst->error_message = xstrdup(src->error_message);
        dst->runtime_name = xstrdup(src->runtime_name);
        dst->attempts = xstrdup(src->attempts);
        dst->progress = xstrdup(src->progress);
        dst->callback.url = xstrdup(src->callback.url);
        dst->callback.last_error = xstrdup(src->callback.last_error);
}

static void replace_str(char **dst, const char *src)
{
        free(*dst);
        *dst = xstrdup(src);
}

void record_merge_update(struct job_record *dst, const struct job_record *src)
{
        dst->status = src->status;
        dst->error = src->error;
        replace_str(&dst->error_message, src->error_message);
        dst->has_exit_code = src->has_exit_code;
        dst->exit_code = src->exit_code;
        dst->has_metrics = src->has_metrics;
        dst->metrics = src->metrics;
        replace_str(&dst->runtime_name, src->runtime_name);
        dst->log_truncated = src->log_truncated;
        replace_str(&dst->attempts, src->attempts);
        dst->recoveries = src->recoveries;
        dst->started_ms = src->started_ms;
        dst->finished_ms = src->finished_ms;
        replace_str(&dst->progress, src->progress);
        if (src->result) {
                free(dst->result);
                dst->result = xmemdup0(src->result, src->result_len);
                dst->result_len = src->result_len;
        }
}

json_t *record_time_json(int64_t ms)
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

void record_clear_params(struct job_record *r)
{
        if (r->params_mapped)
                munmap(r->params, r->params_len);
        else if (!r->params_external)
                free(r->params);
        r->params = NULL;
        r->params_len = 0;
        r->params_external = r->params_mapped = false;
}

static json_t *string_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

json_t *record_error_json(enum job_error e, const char *message)
{
        if (e == JOB_ERR_NONE)
                return json_null();
        return json_pack("{s:s, s:s}", "code", job_error_name(e), "message", message ? message : "");
}

/* The job object but its attempts and result. */
static json_t *to_json(const struct job_record *r)
{
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(r->id));
        json_object_set_new(o, "algorithm", string_or_null(r->algorithm));
        json_object_set_new(o, "version", string_or_null(r->version));
        json_object_set_new(o, "status", json_string(status_names[r->status]));
        json_object_set_new(o, "priority", json_string(priority_names[r->priority]));
        json_object_set_new(o, "timeout_seconds", json_integer(r->timeout_seconds));
        json_object_set_new(o, "created_at", record_time_json(r->created_ms));
        json_object_set_new(o, "started_at", record_time_json(r->started_ms));
        json_object_set_new(o, "finished_at", record_time_json(r->finished_ms));
        json_object_set_new(o, "error", record_error_json(r->error, r->error_message));
        json_object_set_new(o, "exit_code", r->has_exit_code ? json_integer(r->exit_code) : json_null());
        if (r->has_metrics) {
                const struct job_metrics *m = &r->metrics;
                json_object_set_new(o, "metrics", json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                        "queue_ms", (json_int_t)m->queue_ms, "create_ms", (json_int_t)m->create_ms,
                        "run_ms", (json_int_t)m->run_ms, "collect_ms", (json_int_t)m->collect_ms,
                        "total_ms", (json_int_t)m->total_ms,
                        "peak_memory_bytes", int_or_null(m->peak_memory_bytes),
                        "cpu_ms", int_or_null(m->cpu_ms)));
        } else {
                json_object_set_new(o, "metrics", json_null());
        }
        json_object_set_new(o, "runtime", string_or_null(r->runtime_name));
        json_object_set_new(o, "submitted_by", string_or_null(r->submitted_by));
        json_t *p = r->progress ? json_loads(r->progress, 0, NULL) : NULL;
        json_object_set_new(o, "progress", p ? p : json_null());
        const struct job_callback *cb = &r->callback;
        if (cb->url)
                json_object_set_new(o, "callback", json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:o}",
                        "url", cb->url, "delivery_id", cb->delivery, "state", callback_state_name(cb->state),
                        "attempts", (json_int_t)cb->attempts,
                        "last_status", cb->last_status ? json_integer(cb->last_status) : json_null(),
                        "last_error", string_or_null(cb->last_error),
                        "delivered_at", record_time_json(cb->delivered_ms)));
        else
                json_object_set_new(o, "callback", json_null());
        return o;
}

char *record_render(const struct job_record *r, bool with_result, size_t *ret_len)
{
        _cleanup_json_ json_t *o = to_json(r);
        /* 15 digits: the only real in a record is progress.json's fraction,
         * normalised so (progress.h). */
        char *head = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
        if (!head)
                abort();
        size_t n = strlen(head);
        /* {...} -> {...,"attempts":<text>,"result":<text>}: both are JSON
         * text already (the result checked by jsontext.h when it was read). */
        const char *attempts = r->attempts && *r->attempts ? r->attempts : "[]";
        bool splice = with_result && r->result && r->status == JOB_SUCCEEDED;
        const char *result = splice ? r->result : "null";
        size_t alen = strlen(attempts), rlen = splice ? r->result_len : 4;
        static const char k1[] = ",\"attempts\":", k2[] = ",\"result\":";
        size_t total = n - 1 + sizeof k1 - 1 + alen + sizeof k2 - 1 + rlen + 1;
        char *text = xrealloc(head, total + 1);
        char *p = text + n - 1;
        memcpy(p, k1, sizeof k1 - 1);
        p += sizeof k1 - 1;
        memcpy(p, attempts, alen);
        p += alen;
        memcpy(p, k2, sizeof k2 - 1);
        p += sizeof k2 - 1;
        memcpy(p, result, rlen);
        p += rlen;
        *p++ = '}';
        *p = '\0';
        if (ret_len)
                *ret_len = total;
        return text;
}

size_t record_attempt_count(const struct job_record *r, char *ret_last_run_id, size_t size)
{
        _cleanup_json_ json_t *a = r->attempts ? json_loads(r->attempts, 0, NULL) : NULL;
        size_t n = json_is_array(a) ? json_array_size(a) : 0;
        if (ret_last_run_id && size) {
                const char *rid = n ? json_string_value(json_object_get(json_array_get(a, n - 1), "run_id")) : NULL;
                snprintf(ret_last_run_id, size, "%s", rid ? rid : "");
        }
        return n;
}

void record_end_last_attempt(struct job_record *r, enum job_error e, const char *message)
{
        _cleanup_json_ json_t *a = r->attempts ? json_loads(r->attempts, 0, NULL) : NULL;
        size_t n = json_is_array(a) ? json_array_size(a) : 0;
        if (!n)
                return;
        json_t *last = json_array_get(a, n - 1);
        json_t *finished = json_object_get(last, "finished_at");
        if (finished && !json_is_null(finished))
                return;
        json_object_set_new(last, "finished_at", record_time_json(now_real_ms()));
        json_object_set_new(last, "error", record_error_json(e, message));
        char *text = json_dumps(a, JSON_COMPACT);
        if (!text)
                abort();
        free(r->attempts);
        r->attempts = text;
}
