/* metrics.c - counters and their Prometheus text (see metrics.h).
 * Any thread: every counter is a relaxed atomic. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define N_ERRORS (JOB_ERR_CANCELLED + 1)

static const char *const reject_reasons[] = {
        "queue_full", "invalid", "unavailable", "algorithm_unavailable", "storage", "idempotency_conflict",
};
static const char *const http_reasons[] = {
        "unauthorized", "forbidden", "header_too_large", "json_too_deep", "replies_in_flight",
};
static const char *const kinds[] = { "container", "cgroup", "workspace" };
static const char *const plugin_changes[] = { "added", "changed", "removed", "broken" };
static const char *const reload_triggers[] = { "watch", "sighup" };

static uint64_t submitted, retries, pruned;
static uint64_t rejected[ARRAY_SIZE(reject_reasons)];
static uint64_t http_rejected[ARRAY_SIZE(http_reasons)];
static uint64_t cleanup_failed[ARRAY_SIZE(kinds)], leftovers[ARRAY_SIZE(kinds)];
static uint64_t finished[N_ERRORS];
static uint64_t plugin_changed[ARRAY_SIZE(plugin_changes)], reloads[ARRAY_SIZE(reload_triggers)];
static uint64_t sum_queue_ms, sum_create_ms, sum_run_ms, sum_total_ms;

static void add(uint64_t *c, int64_t v)
{
        if (v > 0)
                __atomic_add_fetch(c, (uint64_t)v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
        return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void metrics_job_submitted(void)
{
        add(&submitted, 1);
}

/* The counter of `name` in table (names, n), or the last one. */
static size_t index_of(const char *const *names, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(names[i], name))
                        return i;
        return n - 1;
}

void metrics_job_rejected(const char *reason)
{
        add(&rejected[index_of(reject_reasons, ARRAY_SIZE(reject_reasons), reason)], 1);
}

void metrics_http_rejected(const char *reason)
{
        add(&http_rejected[index_of(http_reasons, ARRAY_SIZE(http_reasons), reason)], 1);
}

void metrics_retry(void)
{
        add(&retries, 1);
}

void metrics_cleanup_failed(const char *kind)
{
        add(&cleanup_failed[index_of(kinds, ARRAY_SIZE(kinds), kind)], 1);
}

void metrics_leftovers_removed(const char *kind, size_t n)
{
        add(&leftovers[index_of(kinds, ARRAY_SIZE(kinds), kind)], (int64_t)n);
}

void metrics_plugin_changes(const char *change, size_t n)
{
        add(&plugin_changed[index_of(plugin_changes, ARRAY_SIZE(plugin_changes), change)], (int64_t)n);
}

void metrics_plugin_reload(const char *trigger)
{
        add(&reloads[index_of(reload_triggers, ARRAY_SIZE(reload_triggers), trigger)], 1);
}

void metrics_records_pruned(size_t n)
{
        add(&pruned, (int64_t)n);
}

void metrics_job_finished(enum job_error error, int64_t queue_ms, int64_t create_ms,
                          int64_t run_ms, int64_t total_ms)
{
        if ((int)error < 0 || error >= N_ERRORS)
                error = JOB_ERR_RUNTIME_ERROR;
        add(&finished[error], 1);
        add(&sum_queue_ms, queue_ms);
        add(&sum_create_ms, create_ms);
        add(&sum_run_ms, run_ms);
        add(&sum_total_ms, total_ms);
}

/* A growing text buffer; allocation failure aborts (xrealloc). */
struct buf {
        char *s;
        size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
        for (;;) {
                va_list ap;
                va_start(ap, fmt);
                int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
                va_end(ap);
                if (n >= 0 && (size_t)n < b->cap - b->len) {
                        b->len += (size_t)n;
                        return;
                }
                b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
                b->s = xrealloc(b->s, b->cap);
        }
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
        put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per label value: NAME{LABEL="names[i]"} counts[i]. */
static void put_labelled(struct buf *b, const char *name, const char *label, const char *const *names,
                         const uint64_t *counts, size_t n)
{
        for (size_t i = 0; i < n; i++)
                put(b, "%s{%s=\"%s\"} %llu\n", name, label, names[i], (unsigned long long)get(&counts[i]));
}

static void put_unhealthy(const char *name, enum health h, const char *reason, void *ctx)
{
        (void)reason;
        /* Algorithm names are [a-z0-9_-]: nothing to escape. */
        put(ctx, "edgecd_algorithm_unhealthy{algorithm=\"%s\",state=\"%s\"} 1\n", name, health_name(h));
}

struct warm_family {
        struct buf *b;
        const char *name;
        int which;                     /* 0 ready, 1 target, 2 hits, 3 misses */
};

static void put_warm(const struct warmpool_stats *st, void *ctx)
{
        struct warm_family *f = ctx;
        unsigned long long v = f->which == 0 ? st->ready : f->which == 1 ? st->target
                               : f->which == 2 ? st->hits : st->misses;
        put(f->b, "%s{algorithm=\"%s\",version=\"%s\"} %llu\n", f->name, st->algorithm, st->version, v);
}

char *metrics_render(const struct metrics_gauges *g)
{
        struct buf b = { .cap = 4096 };
        b.s = xmalloc(b.cap);
        b.s[0] = '\0';

        family(&b, "edgecd_build_info", "gauge", "Version and OCI runtime in use.");
        put(&b, "edgecd_build_info{version=\"%s\",runtime=\"%s\"} 1\n", EDGECD_VERSION, g->runtime);
        family(&b, "edgecd_jobs_submitted_total", "counter", "Jobs accepted into the queue.");
        put(&b, "edgecd_jobs_submitted_total %llu\n", (unsigned long long)get(&submitted));
        family(&b, "edgecd_jobs_rejected_total", "counter", "Submissions refused before they were accepted.");
        put_labelled(&b, "edgecd_jobs_rejected_total", "reason", reject_reasons, rejected, ARRAY_SIZE(rejected));
        family(&b, "edgecd_http_rejected_total", "counter", "Requests refused before their handler ran.");
        put_labelled(&b, "edgecd_http_rejected_total", "reason", http_reasons, http_rejected,
                     ARRAY_SIZE(http_rejected));
        family(&b, "edgecd_job_retries_total", "counter", "Runs the runtime failed that were tried again.");
        put(&b, "edgecd_job_retries_total %llu\n", (unsigned long long)get(&retries));
        family(&b, "edgecd_cleanup_failures_total", "counter", "Runs whose own cleanup failed (left to the collector).");
        put_labelled(&b, "edgecd_cleanup_failures_total", "kind", kinds, cleanup_failed, ARRAY_SIZE(cleanup_failed));
        family(&b, "edgecd_leftovers_removed_total", "counter", "Leftovers the collector removed.");
        put_labelled(&b, "edgecd_leftovers_removed_total", "kind", kinds, leftovers, ARRAY_SIZE(leftovers));
        family(&b, "edgecd_plugin_changes_total", "counter",
               "Plugins the rescans of the plugins directory found added, changed, removed or newly broken.");
        put_labelled(&b, "edgecd_plugin_changes_total", "change", plugin_changes, plugin_changed,
                     ARRAY_SIZE(plugin_changed));
        family(&b, "edgecd_plugin_rescans_total", "counter",
               "Rescans of the plugins directory, by what asked (the watch on it, SIGHUP).");
        put_labelled(&b, "edgecd_plugin_rescans_total", "trigger", reload_triggers, reloads, ARRAY_SIZE(reloads));
        family(&b, "edgecd_jobs_finished_total", "counter", "Jobs that became final, by outcome.");
        for (int e = 0; e < N_ERRORS; e++) {
                const char *status = e == JOB_ERR_NONE ? "succeeded" : e == JOB_ERR_CANCELLED ? "cancelled" : "failed";
                put(&b, "edgecd_jobs_finished_total{status=\"%s\",error=\"%s\"} %llu\n", status,
                    e == JOB_ERR_NONE ? "" : job_error_name((enum job_error)e),
                    (unsigned long long)get(&finished[e]));
        }
        family(&b, "edgecd_job_phase_seconds_total", "counter", "Time spent by finished jobs, by phase.");
        put(&b, "edgecd_job_phase_seconds_total{phase=\"queue\"} %.3f\n", get(&sum_queue_ms) / 1000.0);
        put(&b, "edgecd_job_phase_seconds_total{phase=\"create\"} %.3f\n", get(&sum_create_ms) / 1000.0);
        put(&b, "edgecd_job_phase_seconds_total{phase=\"run\"} %.3f\n", get(&sum_run_ms) / 1000.0);
        put(&b, "edgecd_job_phase_seconds_total{phase=\"total\"} %.3f\n", get(&sum_total_ms) / 1000.0);
        family(&b, "edgecd_queue_length", "gauge", "Jobs waiting for a worker.");
        put(&b, "edgecd_queue_length %zu\n", g->queue_length);
        family(&b, "edgecd_queue_capacity", "gauge", "Queue capacity (queue_capacity).");
        put(&b, "edgecd_queue_capacity %zu\n", g->queue_capacity);
        family(&b, "edgecd_jobs_running", "gauge", "Jobs running now.");
        put(&b, "edgecd_jobs_running %zu\n", g->running);
        family(&b, "edgecd_workers", "gauge", "Worker threads (the concurrency limit).");
        put(&b, "edgecd_workers %zu\n", g->workers);
        family(&b, "edgecd_memory_reserved_bytes", "gauge", "Memory limits of the running jobs, in all.");
        put(&b, "edgecd_memory_reserved_bytes %lld\n", (long long)g->memory_reserved_mb * 1024 * 1024);
        family(&b, "edgecd_memory_pool_bytes", "gauge", "The memory budget jobs are admitted against.");
        put(&b, "edgecd_memory_pool_bytes %lld\n", (long long)g->memory_pool_mb * 1024 * 1024);
        family(&b, "edgecd_job_users_in_use", "gauge", "Job user ids held by runs.");
        put(&b, "edgecd_job_users_in_use %zu\n", g->ids_in_use);
        if (g->breaker) {
                size_t c[4];
                breaker_counts(g->breaker, c);
                family(&b, "edgecd_algorithms_by_health", "gauge", "Algorithms that have run, by circuit-breaker state.");
                for (int h = 0; h < 4; h++)
                        put(&b, "edgecd_algorithms_by_health{state=\"%s\"} %zu\n", health_name((enum health)h), c[h]);
                family(&b, "edgecd_algorithm_unhealthy", "gauge", "1 for each algorithm that is not healthy, by state.");
                breaker_foreach_unhealthy(g->breaker, put_unhealthy, &b);
        }
        family(&b, "edgecd_store_commits_total", "counter", "Store transactions committed (each one WAL fsync).");
        put(&b, "edgecd_store_commits_total %llu\n", (unsigned long long)g->store.commits);
        family(&b, "edgecd_store_writes_total", "counter", "Store writes (submissions, transitions) those commits carried.");
        put(&b, "edgecd_store_writes_total %llu\n", (unsigned long long)g->store.writes);
        family(&b, "edgecd_store_commit_failures_total", "counter", "Store commits that failed (disk full, I/O error).");
        put(&b, "edgecd_store_commit_failures_total %llu\n", (unsigned long long)g->store.failures);
        family(&b, "edgecd_store_healthy", "gauge", "1 while the job store can write.");
        put(&b, "edgecd_store_healthy %d\n", g->store_healthy ? 1 : 0);
        family(&b, "edgecd_store_records", "gauge", "Job records in the store.");
        put(&b, "edgecd_store_records %zu\n", g->store_records);
        family(&b, "edgecd_store_records_pruned_total", "counter", "Finished records deleted past retention.");
        put(&b, "edgecd_store_records_pruned_total %llu\n", (unsigned long long)get(&pruned));
        static const struct {
                const char *name, *type, *help;
        } warm[] = {
                { "edgecd_warm_pool_size", "gauge", "Warm containers ready, by plugin version." },
                { "edgecd_warm_pool_target", "gauge", "Warm containers each pool keeps (the manifest's warm)." },
                { "edgecd_warm_pool_hits_total", "counter", "Jobs that found a warm container." },
                { "edgecd_warm_pool_misses_total", "counter", "Jobs of a warm plugin that found the pool empty and ran cold." },
        };
        for (int i = 0; i < 4; i++) {
                family(&b, warm[i].name, warm[i].type, warm[i].help);
                struct warm_family f = { .b = &b, .name = warm[i].name, .which = i };
                warmpool_each(g->warm, put_warm, &f);
        }
        family(&b, "edgecd_cleanups_pending", "gauge", "Finished runs whose container and workspace are still being removed.");
        put(&b, "edgecd_cleanups_pending %zu\n", g->cleanups_pending);
        family(&b, "edgecd_plugins", "gauge", "Plugin manifests, by state.");
        put(&b, "edgecd_plugins{state=\"loaded\"} %zu\n", g->plugins_loaded);
        put(&b, "edgecd_plugins{state=\"broken\"} %zu\n", g->plugins_broken);
        return b.s;
}
