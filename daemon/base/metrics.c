/* metrics.c - counters and their Prometheus text (see metrics.h).
 * Any thread: every counter is a relaxed atomic. */
#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define N_ERRORS JOB_ERR_COUNT

static const char *const reject_reasons[] = {
        "queue_full", "invalid", "unavailable", "algorithm_unavailable", "storage", "idempotency_conflict",
        "callback_backlog",
};
static const char *const http_reasons[] = {
        "unauthorized", "forbidden", "header_too_large", "json_too_deep", "replies_in_flight", "payload_too_large",
        "unsupported_media_type", "invalid_json", "bad_framing",
};
static const char *const kinds[] = { "container", "cgroup", "workspace" };
static const char *const plugin_changes[] = { "added", "changed", "removed", "broken" };
static const char *const reload_triggers[] = { "watch", "sighup" };
static const char *const callback_outcomes[] = { "delivered", "retried", "failed", "not_sent" };

static uint64_t submitted, retries, pruned;
static int64_t callbacks_in_flight;
static uint64_t callbacks[ARRAY_SIZE(callback_outcomes)];
static uint64_t rejected[ARRAY_SIZE(reject_reasons)];
static uint64_t http_rejected[ARRAY_SIZE(http_reasons)];
static uint64_t cleanup_failed[ARRAY_SIZE(kinds)], leftovers[ARRAY_SIZE(kinds)];
static uint64_t finished[N_ERRORS];
static uint64_t plugin_changed[ARRAY_SIZE(plugin_changes)], reloads[ARRAY_SIZE(reload_triggers)];
static uint64_t sum_queue_ms, sum_create_ms, sum_run_ms, sum_total_ms;

/* Histograms: one count per bucket (made cumulative when rendered), a
 * count and a sum, each a relaxed atomic. */
static const double bucket_le[] = {
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
};
#define N_BUCKETS ARRAY_SIZE(bucket_le)
struct hist {
        uint64_t b[N_BUCKETS + 1];   /* the last: above every bound (+Inf only) */
        uint64_t sum_us;
};

static const char *const phases[] = { "queue", "create", "run", "collect", "total" };
static struct hist phase_hist[ARRAY_SIZE(phases)];

/* Per algorithm and per HTTP route: small tables that only grow, behind a
 * lock taken once per job or request.  Past their size, one "other" row. */
#define ALGORITHMS_MAX 256
#define HTTP_ROWS_MAX 128
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        char name[65];
        struct hist h;
} algorithms[ALGORITHMS_MAX];
static size_t n_algorithms;
static struct {
        const char *route, *method;   /* static strings: the route table's, or "unmatched" */
        unsigned status;
        uint64_t n;
} http_rows[HTTP_ROWS_MAX];
static size_t n_http_rows;

static const char *const runtime_verbs[] = { "create", "run", "start", "kill", "delete", "other" };
static uint64_t runtime_calls[ARRAY_SIZE(runtime_verbs)], runtime_failures[ARRAY_SIZE(runtime_verbs)];
static int64_t start_time_s;

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

void metrics_callback(const char *outcome)
{
        add(&callbacks[index_of(callback_outcomes, ARRAY_SIZE(callback_outcomes), outcome)], 1);
}

void metrics_callback_in_flight(int delta)
{
        __atomic_add_fetch(&callbacks_in_flight, delta, __ATOMIC_RELAXED);
}

void metrics_records_pruned(size_t n)
{
        add(&pruned, (int64_t)n);
}

static void hist_add(struct hist *h, int64_t ms)
{
        if (ms < 0)
                ms = 0;
        double s = (double)ms / 1000.0;
        size_t i = 0;
        while (i < N_BUCKETS && s > bucket_le[i])
                i++;
        __atomic_add_fetch(&h->b[i], 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&h->sum_us, (uint64_t)ms * 1000, __ATOMIC_RELAXED);
}

void metrics_job_finished(const char *algorithm, enum job_error error, const struct job_metrics *m, bool ran)
{
        if ((int)error < 0 || error >= N_ERRORS)
                error = JOB_ERR_RUNTIME_ERROR;
        add(&finished[error], 1);
        add(&sum_queue_ms, m->queue_ms);
        add(&sum_create_ms, m->create_ms);
        add(&sum_run_ms, m->run_ms);
        add(&sum_total_ms, m->total_ms);
        const int64_t v[] = { m->queue_ms, m->create_ms, m->run_ms, m->collect_ms, m->total_ms };
        /* A job that never left the queue has no create, run or collect. */
        for (size_t i = 0; i < ARRAY_SIZE(phases); i++)
                if (ran || i == 0 || i == ARRAY_SIZE(phases) - 1)
                        hist_add(&phase_hist[i], v[i]);

        pthread_mutex_lock(&table_lock);
        size_t k = 0;
        while (k < n_algorithms && strcmp(algorithms[k].name, algorithm))
                k++;
        if (k == n_algorithms) {
                /* The last row takes the rest, under a name no plugin can have. */
                if (n_algorithms < ALGORITHMS_MAX - 1)
                        n_algorithms++;
                else
                        k = ALGORITHMS_MAX - 1, n_algorithms = ALGORITHMS_MAX;
                snprintf(algorithms[k].name, sizeof algorithms[k].name, "%s",
                         k == ALGORITHMS_MAX - 1 ? "(other)" : algorithm);
        }
        hist_add(&algorithms[k].h, m->total_ms);
        pthread_mutex_unlock(&table_lock);
}

void metrics_http_request(const char *route, const char *method, unsigned status)
{
        if (!route)
                route = "unmatched";
        /* Methods come from the client: only these are kept by name. */
        static const char *const known[] = { "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS" };
        const char *mk = "other";
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                if (method && !strcmp(method, known[i]))
                        mk = known[i];
        pthread_mutex_lock(&table_lock);
        size_t k = 0;
        while (k < n_http_rows && !(http_rows[k].status == status && !strcmp(http_rows[k].route, route) &&
                                    http_rows[k].method == mk))
                k++;
        if (k == n_http_rows) {
                if (n_http_rows == HTTP_ROWS_MAX - 1) {
                        /* The last row takes the rest. */
                        http_rows[k] = (typeof(http_rows[k])){ .route = "(other)", .method = "other", .status = 0 };
                        n_http_rows++;
                } else if (n_http_rows == HTTP_ROWS_MAX) {
                        k = HTTP_ROWS_MAX - 1;
                } else {
                        n_http_rows++;
                        http_rows[k].route = route;
                        http_rows[k].method = mk;
                        http_rows[k].status = status;
                }
        }
        http_rows[k].n++;
        pthread_mutex_unlock(&table_lock);
}

static __thread bool runtime_muted;

void metrics_runtime_mute(bool on)
{
        runtime_muted = on;
}

void metrics_runtime_call(const char *verb, bool failed)
{
        if (runtime_muted)
                return;
        size_t i = index_of(runtime_verbs, ARRAY_SIZE(runtime_verbs), verb);
        add(&runtime_calls[i], 1);
        if (failed)
                add(&runtime_failures[i], 1);
}

void metrics_runtime_failed(const char *verb)
{
        if (runtime_muted)
                return;
        add(&runtime_failures[index_of(runtime_verbs, ARRAY_SIZE(runtime_verbs), verb)], 1);
}

void metrics_set_start_time(void)
{
        start_time_s = (int64_t)time(NULL);
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

/* NAME_bucket{LABELS,le=...}, NAME_sum{LABELS}, NAME_count{LABELS}; labels
 * is `k="v"` or "". */
static void put_hist(struct buf *b, const char *name, const char *labels, const struct hist *h)
{
        const char *sep = *labels ? "," : "";
        uint64_t cum = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
                cum += get(&h->b[i]);
                put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bucket_le[i], (unsigned long long)cum);
        }
        cum += get(&h->b[N_BUCKETS]);
        put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
        put(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
            (double)get(&h->sum_us) / 1e6);
        /* The +Inf bucket: a count read apart from the buckets differed
         * from it in the same scrape while jobs finished. */
        put(b, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
            (unsigned long long)cum);
}

/* The process_* family every Prometheus client library exports. */
static void put_process(struct buf *b)
{
        long page = sysconf(_SC_PAGESIZE);
        unsigned long long vsz = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "re");
        if (f) {
                if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
                        vsz = rss = 0;
                fclose(f);
        }
        family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        put(b, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
        family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        put(b, "process_virtual_memory_bytes %llu\n", vsz * (unsigned long long)page);
        struct rusage ru;
        double cpu = 0;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
                cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                      (double)ru.ru_stime.tv_usec / 1e6;
        family(b, "process_cpu_seconds_total", "counter", "User and system CPU time of the daemon's own threads.");
        put(b, "process_cpu_seconds_total %.3f\n", cpu);
        size_t fds = 0;
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        fds += de->d_name[0] != '.';
                closedir(d);
                fds--;   /* the directory's own */
        }
        family(b, "process_open_fds", "gauge", "Open file descriptors.");
        put(b, "process_open_fds %zu\n", fds);
        struct rlimit rl;
        family(b, "process_max_fds", "gauge", "The file descriptor limit (RLIMIT_NOFILE).");
        put(b, "process_max_fds %llu\n",
            getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0ULL);
        family(b, "process_start_time_seconds", "gauge", "When the daemon started, in seconds since the epoch.");
        put(b, "process_start_time_seconds %lld\n", (long long)start_time_s);
}

/* One sample per label value: NAME{LABEL="names[i]"} counts[i]. */
static void put_labelled(struct buf *b, const char *name, const char *label, const char *const *names,
                         const uint64_t *counts, size_t n)
{
        for (size_t i = 0; i < n; i++)
                put(b, "%s{%s=\"%s\"} %llu\n", name, label, names[i], (unsigned long long)get(&counts[i]));
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
        family(&b, "edgecd_job_duration_seconds", "histogram",
               "Finished jobs' time by phase: queue, create (the container made), run, collect (result read), total.");
        for (size_t i = 0; i < ARRAY_SIZE(phases); i++) {
                char l[32];
                snprintf(l, sizeof l, "phase=\"%s\"", phases[i]);
                put_hist(&b, "edgecd_job_duration_seconds", l, &phase_hist[i]);
        }
        family(&b, "edgecd_algorithm_job_duration_seconds", "histogram",
               "Finished jobs' total time (submit to final), by algorithm.");
        pthread_mutex_lock(&table_lock);
        for (size_t i = 0; i < n_algorithms; i++) {
                /* Algorithm names are [a-z0-9_-]: nothing to escape. */
                _cleanup_free_ char *l = xasprintf("algorithm=\"%.64s\"", algorithms[i].name);
                put_hist(&b, "edgecd_algorithm_job_duration_seconds", l, &algorithms[i].h);
        }
        family(&b, "edgecd_http_requests_total", "counter", "Requests answered, by route pattern, method and status.");
        for (size_t i = 0; i < n_http_rows; i++)
                put(&b, "edgecd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%u\"} %llu\n",
                    http_rows[i].route, http_rows[i].method, http_rows[i].status, (unsigned long long)http_rows[i].n);
        pthread_mutex_unlock(&table_lock);
        family(&b, "edgecd_runtime_calls_total", "counter", "Calls to the OCI runtime, by verb.");
        put_labelled(&b, "edgecd_runtime_calls_total", "verb", runtime_verbs, runtime_calls, ARRAY_SIZE(runtime_calls));
        family(&b, "edgecd_runtime_failures_total", "counter", "Calls to the OCI runtime that failed, by verb.");
        put_labelled(&b, "edgecd_runtime_failures_total", "verb", runtime_verbs, runtime_failures,
                     ARRAY_SIZE(runtime_failures));
        put_process(&b);
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
        family(&b, "edgecd_run_cgroup_slots", "gauge", "Run cgroup slots: reused (cgroup v1), or made ahead for one run each (v2).");
        put(&b, "edgecd_run_cgroup_slots %zu\n", g->run_cgroup_slots);
        if (g->n_health) {
                family(&b, "edgecd_algorithms_by_health", "gauge",
                       "Algorithms by circuit-breaker state: healthy counts the loaded ones, the other states "
                       "every algorithm held there.");
                for (size_t i = 0; i < g->n_health; i++)
                        put(&b, "edgecd_algorithms_by_health{state=\"%s\"} %zu\n", g->health[i].state,
                            g->health[i].algorithms);
                family(&b, "edgecd_algorithm_unhealthy", "gauge", "1 for each algorithm that is not healthy, by state.");
                /* Algorithm names are [a-z0-9_-]: nothing to escape. */
                for (size_t i = 0; i < g->n_unhealthy; i++)
                        put(&b, "edgecd_algorithm_unhealthy{algorithm=\"%s\",state=\"%s\"} 1\n",
                            g->unhealthy[i].algorithm, g->unhealthy[i].state);
        }
        family(&b, "edgecd_store_commits_total", "counter",
               "Store transactions committed (each one WAL fsync).");
        put(&b, "edgecd_store_commits_total %llu\n", (unsigned long long)g->store.commits);
        family(&b, "edgecd_store_deferred_writes_total", "counter",
               "Lazy writes (a waited-for submit, its run's start) answered before their commit, "
               "which a later one carried.");
        put(&b, "edgecd_store_deferred_writes_total %llu\n", (unsigned long long)g->store.deferred_writes);
        family(&b, "edgecd_store_checkpoints_total", "counter",
               "WAL checkpoints, run by the store's writer when it has nothing to commit.");
        put(&b, "edgecd_store_checkpoints_total %llu\n", (unsigned long long)g->store.checkpoints);
        family(&b, "edgecd_store_writes_total", "counter", "Store writes (submissions, transitions) those commits carried.");
        put(&b, "edgecd_store_writes_total %llu\n", (unsigned long long)g->store.writes);
        family(&b, "edgecd_store_commit_failures_total", "counter", "Store commits that failed (disk full, I/O error).");
        put(&b, "edgecd_store_commit_failures_total %llu\n", (unsigned long long)g->store.failures);
        family(&b, "edgecd_store_healthy", "gauge", "1 while the job store can write.");
        put(&b, "edgecd_store_healthy %d\n", g->store_healthy ? 1 : 0);
        family(&b, "edgecd_store_records", "gauge", "Job records in the store.");
        put(&b, "edgecd_store_records %zu\n", g->store_records);
        family(&b, "edgecd_callback_attempts_total", "counter",
               "Callback attempts by outcome: delivered, retried (failed, tried again later), failed (for good), "
               "not_sent (no POST: the URL no longer allowed, callbacks off, max_attempts lowered).");
        put_labelled(&b, "edgecd_callback_attempts_total", "outcome", callback_outcomes, callbacks,
                     ARRAY_SIZE(callbacks));
        family(&b, "edgecd_callbacks_in_flight", "gauge", "Callback POSTs in flight (at most callbacks.concurrency).");
        put(&b, "edgecd_callbacks_in_flight %lld\n",
            (long long)__atomic_load_n(&callbacks_in_flight, __ATOMIC_RELAXED));
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
                for (size_t k = 0; k < g->n_warm_pools; k++) {
                        const struct metrics_warm_pool *w = &g->warm_pools[k];
                        unsigned long long v = i == 0 ? w->ready : i == 1 ? w->target : i == 2 ? w->hits : w->misses;
                        /* Names are [a-z0-9_-], versions semver
                         * ([0-9A-Za-z.+-]): no backslash, quote or newline
                         * to escape (test-manifest's
                         * test_name_and_version_are_label_safe tries
                         * every byte). */
                        put(&b, "%s{algorithm=\"%s\",version=\"%s\"} %llu\n", warm[i].name, w->algorithm,
                            w->version, v);
                }
        }
        family(&b, "edgecd_cleanups_pending", "gauge", "Finished runs whose container and workspace are still being removed.");
        put(&b, "edgecd_cleanups_pending %zu\n", g->cleanups_pending);
        family(&b, "edgecd_plugins", "gauge", "Plugin manifests, by state.");
        put(&b, "edgecd_plugins{state=\"loaded\"} %zu\n", g->plugins_loaded);
        put(&b, "edgecd_plugins{state=\"broken\"} %zu\n", g->plugins_broken);
        return b.s;
}
