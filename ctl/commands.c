/* commands.c - jobs, show, logs, cancel, algorithms, health. */
#include "edgecdctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *str(const json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "-";
}

/* "/v1/jobs/<escaped id><suffix>"; NULL when out of memory. */
static char *job_path(struct conn *c, const char *id, const char *suffix)
{
        char *e = conn_escape(c, id), *p = NULL;
        if (e && asprintf(&p, "/v1/jobs/%s%s", e, suffix) < 0)
                p = NULL;
        free(e);
        if (!p)
                fprintf(stderr, "edgecdctl: out of memory\n");
        return p;
}

/* Appends "&key=<escaped value>" to *q (the first one with '?'). */
static int add_query(struct conn *c, char **q, const char *key, const char *value)
{
        if (!value)
                return 0;
        char *e = conn_escape(c, value), *n = NULL;
        if (!e || asprintf(&n, "%s%c%s=%s", *q, strchr(*q, '?') ? '&' : '?', key, e) < 0)
                n = NULL;
        free(e);
        if (!n)
                return -1;
        free(*q);
        *q = n;
        return 0;
}

static char *jobs_path(struct conn *c, const struct opts *o)
{
        char limit[32];
        snprintf(limit, sizeof limit, "%ld", o->limit);
        char *q = strdup("/v1/jobs");
        if (!q || add_query(c, &q, "status", o->status) < 0
            || add_query(c, &q, "algorithm", o->algorithm) < 0
            || add_query(c, &q, "limit", o->limit > 0 ? limit : NULL) < 0) {
                free(q);
                fprintf(stderr, "edgecdctl: out of memory\n");
                return NULL;
        }
        return q;
}

static void print_jobs_table(const json_t *jobs)
{
        size_t i, w = strlen("ALGORITHM");
        json_t *j;
        json_array_foreach(jobs, i, j) {
                size_t n = strlen(str(j, "algorithm"));
                w = n > w ? n : w;
        }
        printf("%-36s  %-*s  %-9s  %s\n", "ID", (int)w, "ALGORITHM", "STATUS", "CREATED");
        json_array_foreach(jobs, i, j)
                printf("%-36s  %-*s  %-9s  %s\n", str(j, "id"), (int)w, str(j, "algorithm"),
                       str(j, "status"), str(j, "created_at"));
}

/* GET path (taken) and print the answer: as it came with --json, else
 * through show(). */
static int get_and_show(struct conn *c, const struct opts *o, char *path, void (*show)(const json_t *j))
{
        if (!path)
                return CTL_UNREACHABLE;
        json_t *j;
        struct reply raw;
        int rc = get_json(c, path, &j, &raw);
        free(path);
        if (rc != CTL_OK)
                return rc;
        if (o->json)
                print_raw(&raw);
        else
                show(j);
        reply_free(&raw);
        json_decref(j);
        return CTL_OK;
}

static void show_jobs(const json_t *j)
{
        print_jobs_table(json_object_get(j, "jobs"));
}

int cmd_jobs(struct conn *c, const struct opts *o)
{
        return get_and_show(c, o, jobs_path(c, o), show_jobs);
}

static void print_line(const char *label, const char *value)
{
        if (value)
                printf("%-10s %s\n", label, value);
}

static void print_json_line(const char *label, const json_t *v)
{
        if (!v || json_is_null(v))
                return;
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        print_line(label, s);
        free(s);
}

void show_job(const json_t *j)
{
        print_line("id:", str(j, "id"));
        printf("%-10s %s %s\n", "algorithm:", str(j, "algorithm"), str(j, "version"));
        print_line("status:", str(j, "status"));
        const json_t *p = json_object_get(j, "progress");
        if (json_is_object(p))
                printf("%-10s %.0f%% %s\n", "progress:",
                       json_number_value(json_object_get(p, "fraction")) * 100.0,
                       json_string_value(json_object_get(p, "message")) ?: "");
        print_line("priority:", str(j, "priority"));
        print_line("created:", json_string_value(json_object_get(j, "created_at")));
        print_line("started:", json_string_value(json_object_get(j, "started_at")));
        print_line("finished:", json_string_value(json_object_get(j, "finished_at")));
        print_json_line("exit code:", json_object_get(j, "exit_code"));
        const json_t *e = json_object_get(j, "error");
        if (json_is_object(e))
                printf("%-10s %s: %s\n", "error:", str(e, "code"), str(e, "message"));
        const json_t *cb = json_object_get(j, "callback");
        if (json_is_object(cb)) {
                print_line("callback:", str(cb, "url"));
                const char *err = json_string_value(json_object_get(cb, "last_error"));
                char line[160];
                snprintf(line, sizeof line, "%s after %lld attempt(s)", str(cb, "state"),
                         (long long)json_integer_value(json_object_get(cb, "attempts")));
                print_line("delivery:", line);
                if (err)
                        print_line("          ", err);
        }
        print_json_line("result:", json_object_get(j, "result"));
}

int cmd_show(struct conn *c, const struct opts *o)
{
        return get_and_show(c, o, job_path(c, o->pos[0], ""), show_job);
}

int cmd_logs(struct conn *c, const struct opts *o)
{
        char *path = job_path(c, o->pos[0], "/logs");
        if (!path)
                return CTL_UNREACHABLE;
        struct reply r;
        int rc = reply_check(c, conn_request(c, "GET", path, NULL, &r), &r);
        free(path);
        if (rc == CTL_OK)
                write_to_terminal(r.body, r.len);
        reply_free(&r);
        return rc;
}

int cmd_cancel(struct conn *c, const struct opts *o)
{
        char *path = job_path(c, o->pos[0], "");
        if (!path)
                return CTL_UNREACHABLE;
        struct reply r;
        int rc = reply_check(c, conn_request(c, "DELETE", path, NULL, &r), &r);
        free(path);
        json_t *j = rc == CTL_OK ? json_defanged(r.body, r.len) : NULL;
        if (rc == CTL_OK && !json_is_string(json_object_get(j, "id"))) {
                fprintf(stderr, "edgecdctl: the server's answer names no job\n");
                rc = CTL_UNREACHABLE;
        }
        if (rc == CTL_OK && o->json)
                print_raw(&r);
        else if (rc == CTL_OK)
                printf("%s %s\n", str(j, "id"), str(j, "status"));
        json_decref(j);
        reply_free(&r);
        return rc;
}

static char *joined_versions(const json_t *alg)
{
        size_t i;
        json_t *v;
        char *s = strdup("");
        json_array_foreach(json_object_get(alg, "versions"), i, v) {
                char *n = NULL;
                if (!s || asprintf(&n, "%s%s%s", s, i ? ", " : "", json_string_value(v) ?: "?") < 0)
                        n = NULL;
                free(s);
                s = n;
        }
        return s;
}

static const char *health_of(const json_t *alg)
{
        const json_t *h = json_object_get(alg, "health");
        if (json_is_string(h))
                return json_string_value(h);
        const char *s = json_string_value(json_object_get(h, "state"));
        return s ? s : "-";
}

static void print_algorithm_list(const json_t *list)
{
        size_t i, w = strlen("NAME");
        json_t *a;
        json_t *algs = json_object_get(list, "algorithms");
        json_array_foreach(algs, i, a) {
                size_t n = strlen(str(a, "name"));
                w = n > w ? n : w;
        }
        printf("%-*s  %s\n", (int)w, "NAME", "VERSIONS");
        json_array_foreach(algs, i, a) {
                char *v = joined_versions(a);
                printf("%-*s  %s\n", (int)w, str(a, "name"), v ? v : "?");
                free(v);
        }
        json_array_foreach(json_object_get(list, "broken"), i, a)
                fprintf(stderr, "broken manifest: %s\n", str(a, "error"));
}

static void print_algorithm(const json_t *a)
{
        char *v = joined_versions(a);
        print_line("name:", str(a, "name"));
        print_line("about:", str(a, "description"));
        print_line("versions:", v ? v : "?");
        print_line("latest:", str(a, "latest"));
        print_json_line("timeout:", json_object_get(a, "timeout_seconds"));
        print_line("health:", health_of(a));
        free(v);
}

int cmd_algorithms(struct conn *c, const struct opts *o)
{
        char *path = NULL;
        if (o->npos == 0) {
                path = strdup("/v1/algorithms");
        } else {
                char *e = conn_escape(c, o->pos[0]);
                if (e && asprintf(&path, "/v1/algorithms/%s", e) < 0)
                        path = NULL;
                free(e);
        }
        return get_and_show(c, o, path, o->npos == 0 ? print_algorithm_list : print_algorithm);
}

/* GET path: its JSON in *out (a 503 from /readyz still has one), exit code. */
static int health_get(struct conn *c, const char *path, json_t **out)
{
        struct reply r;
        *out = NULL;
        int sent = conn_request(c, "GET", path, NULL, &r);
        int rc;
        if (sent == 0 && r.status == 503 && (*out = json_loadb(r.body, r.len, 0, NULL))
            && json_object_get(*out, "status") && !json_object_get(*out, "error"))
                rc = CTL_UNREACHABLE;
        else if ((rc = reply_check(c, sent, &r)) == CTL_OK && !(*out = reply_json(&r)))
                rc = CTL_UNREACHABLE;
        reply_free(&r);
        if (rc != CTL_OK && *out && !json_object_get(*out, "status")) {
                json_decref(*out);
                *out = NULL;
        }
        return rc;
}

static void print_health(const json_t *live, const json_t *ready)
{
        size_t i;
        json_t *r;
        printf("healthz: %s\n", live ? str(live, "status") : "no answer");
        if (!ready) {
                printf("readyz:  no answer\n");
                return;
        }
        const json_t *rt = json_object_get(ready, "runtime");
        printf("readyz:  %s (runtime %s %s)\n", str(ready, "status"), str(rt, "name"), str(rt, "version"));
        json_array_foreach(json_object_get(ready, "reasons"), i, r) {
                char *s = json_is_string(r) ? strdup(json_string_value(r)) : json_dumps(r, JSON_COMPACT);
                printf("  - %s\n", s ? s : "?");
                free(s);
        }
}

int cmd_health(struct conn *c, const struct opts *o)
{
        json_t *live = NULL, *ready = NULL;
        int rc = health_get(c, "/healthz", &live);
        int rc2 = rc == CTL_OK || live ? health_get(c, "/readyz", &ready) : rc;
        if (o->json) {
                json_t *both = json_pack("{s:O?, s:O?}", "healthz", live, "readyz", ready);
                char *s = both ? json_dumps(both, JSON_COMPACT) : NULL;
                if (s)
                        puts(s);
                free(s);
                json_decref(both);
        } else if (live || ready) {
                print_health(live, ready);
        }
        json_decref(live);
        json_decref(ready);
        return rc != CTL_OK ? rc : rc2;
}
