/* submit.c - submit, and --wait: poll the job until it ends. */
#include "edgecdctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "progress.h"

#define POLL_MS 250
/* Polls that fail in a row (no answer, 5xx) are retried this long. */
#define POLL_RETRY_S 30.0

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
        (void)sig;
        interrupted = 1;
}

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* --params FILE or - (stdin): a JSON object, or NULL (message printed). */
static json_t *load_params_file(const char *file)
{
        json_error_t e;
        json_t *j = strcmp(file, "-") ? json_load_file(file, JSON_REJECT_DUPLICATES, &e)
                                      : json_loadf(stdin, JSON_REJECT_DUPLICATES, &e);
        if (!j && e.line < 0) {
                fprintf(stderr, "edgecdctl: --params %s: %s\n", file, e.text);
                return NULL;
        }
        if (!j) {
                fprintf(stderr, "edgecdctl: --params %s: %s (line %d, column %d)\n",
                        file, e.text, e.line, e.column);
                return NULL;
        }
        if (!json_is_object(j)) {
                fprintf(stderr, "edgecdctl: --params %s: not a JSON object\n", file);
                json_decref(j);
                return NULL;
        }
        return j;
}

/* KEY=VALUE: VALUE as JSON when it parses as JSON, else as a string. */
static int set_pair(json_t *params, const char *kv)
{
        const char *eq = strchr(kv, '=');
        char *key = strndup(kv, (size_t)(eq - kv));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (!v)
                v = json_string(eq + 1);
        int rc = key && v && *key ? json_object_set_new(params, key, v) : -1;
        if (rc < 0) {
                if (key && !*key)
                        fprintf(stderr, "edgecdctl: -p %s: empty key\n", kv);
                else
                        fprintf(stderr, "edgecdctl: -p %s: not valid UTF-8\n", kv);
                if (!key || !*key)
                        json_decref(v);
        }
        free(key);
        return rc;
}

/* The parameters, or NULL with *rc set; *rc CTL_OK and NULL: none given. */
static json_t *build_params(const struct opts *o, int *rc)
{
        *rc = CTL_OK;
        if (!o->params_file && o->npairs == 0)
                return NULL;
        json_t *p = o->params_file ? load_params_file(o->params_file) : json_object();
        if (!p) {
                *rc = CTL_USAGE;
                return NULL;
        }
        for (size_t i = 0; i < o->npairs; i++) {
                if (set_pair(p, o->pairs[i]) < 0) {
                        json_decref(p);
                        *rc = CTL_USAGE;
                        return NULL;
                }
        }
        return p;
}

/* The request's body text (free it), or NULL with *rc set. */
static char *build_body(const struct opts *o, int *rc)
{
        json_t *params = build_params(o, rc);
        if (*rc != CTL_OK)
                return NULL;
        json_t *b = json_pack("{s:s, s:o*, s:s*, s:s*, s:s*}", "algorithm", o->pos[0], "parameters", params,
                              "version", o->version, "priority", o->priority, "callback_url", o->callback_url);
        if (b && o->timeout > 0)
                json_object_set_new(b, "timeout_seconds", json_integer(o->timeout));
        char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        if (!s) {
                fprintf(stderr, "edgecdctl: cannot make the request (not valid UTF-8?)\n");
                *rc = CTL_USAGE;
        }
        return s;
}

static bool is_final(const json_t *job)
{
        const char *s = json_string_value(json_object_get(job, "status"));
        return s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled"));
}

/* GET the job again, quietly (the progress line is on the terminal):
 * CTL_OK with *job replaced (and *raw); CTL_REFUSED for a 4xx (*why
 * says it); CTL_UNREACHABLE for no answer or a 5xx, worth a retry. */
static int refresh(struct conn *c, const char *path, json_t **job, struct reply *raw, char *why, size_t size)
{
        struct reply r;
        int rc = conn_request(c, "GET", path, NULL, &r);
        json_t *j = rc == 0 && r.status == 200 ? json_defanged(r.body, r.len) : NULL;
        if (j && json_is_object(j)) {
                json_decref(*job);
                *job = j;
                reply_free(raw);
                *raw = r;
                return CTL_OK;
        }
        json_decref(j);
        if (rc < 0)
                snprintf(why, size, "no answer: %s", r.errbuf);
        else
                snprintf(why, size, "HTTP %ld", r.status);
        rc = rc == 0 && r.status >= 400 && r.status < 500 ? CTL_REFUSED : CTL_UNREACHABLE;
        reply_free(&r);
        return rc;
}

/* The end of a wait: the result (or the job with --json) on stdout. */
static int report_final(const struct opts *o, const json_t *job, const struct reply *raw)
{
        const char *status = json_string_value(json_object_get(job, "status"));
        bool ok = status && !strcmp(status, "succeeded");
        if (o->json)
                print_raw(raw);
        else if (ok)
                print_json(json_object_get(job, "result"));
        if (!ok) {
                const json_t *e = json_object_get(job, "error");
                fprintf(stderr, "edgecdctl: job %s %s: %s: %s\n",
                        json_string_value(json_object_get(job, "id")) ?: "?", status ? status : "?",
                        json_string_value(json_object_get(e, "code")) ?: "-",
                        json_string_value(json_object_get(e, "message")) ?: "-");
        }
        return ok ? CTL_OK : CTL_JOB;
}

static char *poll_path(struct conn *c, const json_t *job)
{
        const char *id = json_string_value(json_object_get(job, "id"));
        char *e = id ? conn_escape(c, id) : NULL, *p = NULL;
        if (e && asprintf(&p, "/v1/jobs/%s", e) < 0)
                p = NULL;
        free(e);
        if (!p)
                fprintf(stderr, "edgecdctl: the server's answer has no job id\n");
        return p;
}

/* Polls until the job is final or --wait-timeout passes. */
static int wait_job(struct conn *c, const struct opts *o, json_t **job, struct reply *raw,
                    double start)
{
        char *path = poll_path(c, *job);
        if (!path)
                return CTL_UNREACHABLE;
        struct progress p;
        progress_init(&p, stderr);
        /* Ctrl-C stops the wait, not the job: the line is ended and the id said. */
        struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        int rc = CTL_OK;
        char why[512] = "";
        double failing_since = 0;
        for (;;) {
                progress_show(&p, *job, now() - start);
                if (is_final(*job))
                        break;
                long ms = POLL_MS;
                if (o->wait_timeout > 0) {
                        double left = o->wait_timeout - (now() - start);
                        if (left <= 0) {
                                rc = CTL_WAIT;
                                break;
                        }
                        ms = left * 1000 < POLL_MS ? (long)(left * 1000) + 1 : POLL_MS;
                        /* No request outlives the wait. */
                        c->timeout_ms = (long)(left * 1000) + 100;
                }
                sleep_ms(ms);
                if (interrupted) {
                        rc = CTL_INTERRUPTED;
                        break;
                }
                rc = refresh(c, path, job, raw, why, sizeof why);
                if (rc == CTL_OK) {
                        failing_since = 0;
                        continue;
                }
                if (rc == CTL_REFUSED)
                        break;
                /* The daemon restarting, a 503: try again for a while. */
                if (!failing_since)
                        failing_since = now();
                if (now() - failing_since > POLL_RETRY_S)
                        break;
                rc = CTL_OK;
        }
        progress_done(&p);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        free(path);
        const char *id = json_string_value(json_object_get(*job, "id"));
        const char *status = json_string_value(json_object_get(*job, "status"));
        if (rc == CTL_WAIT)
                fprintf(stderr, "edgecdctl: job %s still %s after %g s\n", id, status ?: "?", o->wait_timeout);
        else if (rc == CTL_INTERRUPTED)
                fprintf(stderr, "edgecdctl: stopped waiting; job %s goes on (%s)\n", id, status ?: "?");
        else if (rc != CTL_OK)
                fprintf(stderr, "edgecdctl: job %s: cannot follow it: %s\n", id, why);
        return rc == CTL_OK ? report_final(o, *job, raw) : rc;
}

int cmd_submit(struct conn *c, const struct opts *o)
{
        int rc;
        char *body = build_body(o, &rc);
        if (!body)
                return rc;
        double start = now();
        if (o->wait && o->wait_timeout > 0 && o->wait_timeout < 60)
                c->timeout_ms = (long)(o->wait_timeout * 1000) + 100;
        struct reply r;
        rc = reply_check(c, conn_request(c, "POST", "/v1/jobs", body, &r), &r);
        free(body);
        json_t *job = rc == CTL_OK ? reply_json(&r) : NULL;
        if (rc == CTL_OK && !json_is_string(json_object_get(job, "id"))) {
                fprintf(stderr, "edgecdctl: the server's answer names no job\n");
                rc = CTL_UNREACHABLE;
        }
        if (rc == CTL_OK && o->wait)
                rc = wait_job(c, o, &job, &r, start);
        else if (rc == CTL_OK && o->json)
                print_raw(&r);
        else if (rc == CTL_OK)
                puts(json_string_value(json_object_get(job, "id")));
        json_decref(job);
        reply_free(&r);
        return rc;
}
