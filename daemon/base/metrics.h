/* metrics.h - daemon-wide counters for GET /metrics (Prometheus text
 * exposition 0.0.4).  Counters are process-global atomics, so any thread may
 * bump them without a lock and the exporter reads a consistent-enough
 * snapshot; gauges (queue, workers, plugins) are passed in when rendering. */
#ifndef EDGECD_METRICS_H
#define EDGECD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "joberror.h"

/* A job's phase timings and accounting, as its record keeps them
 * (record.h) and /metrics counts them. */
struct job_metrics {
        int64_t queue_ms, create_ms, run_ms, collect_ms, total_ms;
        int64_t peak_memory_bytes, cpu_ms;   /* -1 when unknown */
};

void metrics_job_submitted(void);
/* "queue_full", "invalid", "unavailable", "algorithm_unavailable", "storage",
 * "idempotency_conflict" */
void metrics_job_rejected(const char *reason);
/* A request refused before its handler or for its body: "unauthorized",
 * "forbidden", "header_too_large", "json_too_deep", "replies_in_flight",
 * "payload_too_large", "unsupported_media_type", "invalid_json". */
void metrics_http_rejected(const char *reason);
/* A run the runtime failed, retried. */
void metrics_retry(void);
/* A run's own cleanup failed: "container", "workspace" (the collector takes over). */
void metrics_cleanup_failed(const char *kind);
/* The collector removed n leftovers: "container", "cgroup", "workspace". */
void metrics_leftovers_removed(const char *kind, size_t n);
/* Retention deleted n finished records. */
void metrics_records_pruned(size_t n);
/* Plugins a rescan found: change "added", "changed", "removed", "broken". */
void metrics_plugin_changes(const char *change, size_t n);
/* A rescan of the plugins directory; trigger "watch" or "sighup". */
void metrics_plugin_reload(const char *trigger);
/* A job of `algorithm` became final: error JOB_ERR_NONE is a success.
 * Its phases go into histograms (edgecd_job_duration_seconds, by phase
 * and, for the total, by algorithm). */
void metrics_job_finished(const char *algorithm, enum job_error error, const struct job_metrics *m, bool ran);
/* A request answered: its route's pattern ("/v1/jobs/ *", NULL when none
 * matched), method and status. */
void metrics_http_request(const char *route, const char *method, unsigned status);
/* A call to the OCI runtime ("create", "run", "start", "kill", "delete"),
 * and whether it failed. */
void metrics_runtime_call(const char *verb, bool failed);
/* Calls made on this thread are not counted while muted (the start-up
 * probe's). */
void metrics_runtime_mute(bool on);
/* A call already counted turned out to have failed (a foreground run). */
void metrics_runtime_failed(const char *verb);
/* A callback attempt's outcome: "delivered", "retried" (failed, tried
 * again later), "failed" (for good), "not_sent" (its URL no longer
 * allowed: no POST). */
void metrics_callback(const char *outcome);
/* A callback POST began (+1) or ended (-1). */
void metrics_callback_in_flight(int delta);
/* When the process started (for process_start_time_seconds); once, early. */
void metrics_set_start_time(void);

/* One warm pool's figures, copied out of the pool for the exposition (the
 * caller's to free: metrics reads the pools only through these). */
struct metrics_warm_pool {
        char *algorithm, *version;
        size_t ready, target;
        uint64_t hits, misses;
};

/* An algorithm's circuit-breaker state, copied out of the breaker
 * (breaker.h): "healthy", "degraded", ... */
struct metrics_health {
        const char *state;
        size_t algorithms;
};
struct metrics_unhealthy {
        char *algorithm;
        const char *state;
};

/* The store's counters (store.h's store_stats), copied. */
struct metrics_store {
        uint64_t commits, deferred_writes, checkpoints, writes, failures;
};

struct metrics_gauges {
        const char *runtime;
        size_t queue_length, queue_capacity, running, workers;
        size_t plugins_loaded, plugins_broken;
        int64_t memory_reserved_mb, memory_pool_mb;
        size_t ids_in_use;
        /* Algorithms by breaker state (healthy: the loaded ones it calls
         * so); none: the families are left out. */
        const struct metrics_health *health;
        size_t n_health;
        const struct metrics_unhealthy *unhealthy;
        size_t n_unhealthy;
        struct metrics_store store;
        bool store_healthy;
        size_t store_records;
        const struct metrics_warm_pool *warm_pools;
        size_t n_warm_pools;
        size_t cleanups_pending;
        size_t run_cgroup_slots;
};

/* The exposition text; caller frees. */
char *metrics_render(const struct metrics_gauges *g);

#endif
