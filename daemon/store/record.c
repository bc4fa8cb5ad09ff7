/* record.c - a job's persisted record and its API rendering (see record.h).
 * Plain data; no locks. */
#include "record.h"

#include <string.h>
#include <sys/mman.h>

#include <jansson.h>

#include "base/jsontext.h"
#include "base/util.h"

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

json_t *record_error_json(enum job_error e, const char *message)
{
        if (e == JOB_ERR_NONE)
                return json_null();
        /* Lossy, as record_error_text(): a message that is not UTF-8 is
         * shown with U+FFFD, not dropped with the whole object. */
        return json_pack("{s:s, s:o}", "code", job_error_name(e), "message", json_string_lossy(message ? message : ""));
}

void record_time_text(struct jsonbuf *b, int64_t ms)
{
        if (!ms) {
                jsonbuf_lit(b, "null");
                return;
        }
        char buf[40];
        format_rfc3339(ms, buf, sizeof buf);
        jsonbuf_string(b, buf);
}

void record_error_text(struct jsonbuf *b, enum job_error e, const char *message)
{
        if (e == JOB_ERR_NONE) {
                jsonbuf_lit(b, "null");
                return;
        }
        jsonbuf_lit(b, "{\"code\":");
        jsonbuf_string(b, job_error_name(e));
        jsonbuf_lit(b, ",\"message\":");
        jsonbuf_string(b, message ? message : "");
        jsonbuf_lit(b, "}");
}

static void put_string_or_null(struct jsonbuf *b, const char *s)
{
        if (s)
                jsonbuf_string(b, s);
        else
                jsonbuf_lit(b, "null");
}

static void put_int(struct jsonbuf *b, int64_t v)
{
        char n[24];
        int len = snprintf(n, sizeof n, "%lld", (long long)v);
        jsonbuf_put(b, n, (size_t)len);
}

static void put_int_or_null(struct jsonbuf *b, int64_t v)
{
        if (v < 0)
                jsonbuf_lit(b, "null");
        else
                put_int(b, v);
}

/* progress.json's text as jansson writes it back (15 digits: the only
 * real in a record is its fraction, normalised so, progress.h), or null. */
static void put_progress(struct jsonbuf *b, const char *progress)
{
        _cleanup_json_ json_t *p = progress ? json_loads(progress, 0, NULL) : NULL;
        _cleanup_free_ char *text = p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) : NULL;
        if (text)
                jsonbuf_put(b, text, strlen(text));
        else
                jsonbuf_lit(b, "null");
}

/* Written as text, not as a jansson tree dumped: every record is rendered
 * on a job's way (twice), and the tree cost several times the text.  The
 * same bytes as the tree gave (tests/unit/test-queue.c keeps it), but for
 * text that is not UTF-8, which the tree dropped with its key (a required
 * one) and which is U+FFFD here. */
char *record_render(const struct job_record *r, bool with_result, size_t *ret_len)
{
        struct jsonbuf b = JSONBUF_INIT;
        jsonbuf_lit(&b, "{\"id\":");
        jsonbuf_string(&b, r->id);
        jsonbuf_lit(&b, ",\"algorithm\":");
        put_string_or_null(&b, r->algorithm);
        jsonbuf_lit(&b, ",\"version\":");
        put_string_or_null(&b, r->version);
        /* Out of range only from a damaged store: null, not a crash. */
        jsonbuf_lit(&b, ",\"status\":");
        put_string_or_null(&b, (unsigned)r->status < ARRAY_SIZE(status_names) ? status_names[r->status] : NULL);
        jsonbuf_lit(&b, ",\"priority\":");
        put_string_or_null(&b, (unsigned)r->priority < ARRAY_SIZE(priority_names) ? priority_names[r->priority] : NULL);
        jsonbuf_lit(&b, ",\"timeout_seconds\":");
        put_int(&b, r->timeout_seconds);
        jsonbuf_lit(&b, ",\"created_at\":");
        record_time_text(&b, r->created_ms);
        jsonbuf_lit(&b, ",\"started_at\":");
        record_time_text(&b, r->started_ms);
        jsonbuf_lit(&b, ",\"finished_at\":");
        record_time_text(&b, r->finished_ms);
        jsonbuf_lit(&b, ",\"error\":");
        record_error_text(&b, r->error, r->error_message);
        jsonbuf_lit(&b, ",\"exit_code\":");
        if (r->has_exit_code)
                put_int(&b, r->exit_code);
        else
                jsonbuf_lit(&b, "null");
        jsonbuf_lit(&b, ",\"metrics\":");
        if (r->has_metrics) {
                const struct job_metrics *m = &r->metrics;
                jsonbuf_lit(&b, "{\"queue_ms\":");
                put_int(&b, m->queue_ms);
                jsonbuf_lit(&b, ",\"create_ms\":");
                put_int(&b, m->create_ms);
                jsonbuf_lit(&b, ",\"run_ms\":");
                put_int(&b, m->run_ms);
                jsonbuf_lit(&b, ",\"collect_ms\":");
                put_int(&b, m->collect_ms);
                jsonbuf_lit(&b, ",\"total_ms\":");
                put_int(&b, m->total_ms);
                jsonbuf_lit(&b, ",\"peak_memory_bytes\":");
                put_int_or_null(&b, m->peak_memory_bytes);
                jsonbuf_lit(&b, ",\"cpu_ms\":");
                put_int_or_null(&b, m->cpu_ms);
                jsonbuf_lit(&b, "}");
        } else {
                jsonbuf_lit(&b, "null");
        }
        jsonbuf_lit(&b, ",\"runtime\":");
        put_string_or_null(&b, r->runtime_name);
        jsonbuf_lit(&b, ",\"submitted_by\":");
        put_string_or_null(&b, r->submitted_by);
        jsonbuf_lit(&b, ",\"progress\":");
        put_progress(&b, r->progress);
        jsonbuf_lit(&b, ",\"callback\":");
        const struct job_callback *cb = &r->callback;
        if (cb->url) {
                jsonbuf_lit(&b, "{\"url\":");
                jsonbuf_string(&b, cb->url);
                jsonbuf_lit(&b, ",\"delivery_id\":");
                jsonbuf_string(&b, cb->delivery);
                jsonbuf_lit(&b, ",\"state\":");
                jsonbuf_string(&b, callback_state_name(cb->state));
                jsonbuf_lit(&b, ",\"attempts\":");
                put_int(&b, cb->attempts);
                jsonbuf_lit(&b, ",\"last_status\":");
                if (cb->last_status)
                        put_int(&b, cb->last_status);
                else
                        jsonbuf_lit(&b, "null");
                jsonbuf_lit(&b, ",\"last_error\":");
                put_string_or_null(&b, cb->last_error);
                jsonbuf_lit(&b, ",\"delivered_at\":");
                record_time_text(&b, cb->delivered_ms);
                jsonbuf_lit(&b, "}");
        } else {
                jsonbuf_lit(&b, "null");
        }
        /* Both are JSON text already (the result checked by jsontext.h
         * when it was read). */
        jsonbuf_lit(&b, ",\"attempts\":");
        if (r->attempts && *r->attempts)
                jsonbuf_put(&b, r->attempts, strlen(r->attempts));
        else
                jsonbuf_lit(&b, "[]");
        jsonbuf_lit(&b, ",\"result\":");
        if (with_result && r->result && r->status == JOB_SUCCEEDED)
                jsonbuf_put(&b, r->result, r->result_len);
        else
                jsonbuf_lit(&b, "null");
        jsonbuf_lit(&b, "}");
        if (ret_len)
                *ret_len = b.len;
        return b.text;
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
