/* metrics.h - daemon-wide counters for GET /metrics (Prometheus text
 * exposition 0.0.4).  Counters are process-global atomics, so any thread may
 * bump them without a lock and the exporter reads a consistent-enough
 * snapshot; gauges (queue, workers, plugins) are passed in when rendering. */
#ifndef EDGECD_METRICS_H
#define EDGECD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "result.h"
#include "store.h"
#include "warmpool.h"

void metrics_job_submitted(void);
/* "queue_full", "invalid", "unavailable", "algorithm_unavailable", "storage",
 * "idempotency_conflict" */
void metrics_job_rejected(const char *reason);
/* A request refused before its handler: "unauthorized", "forbidden",
 * "header_too_large", "json_too_deep", "replies_in_flight". */
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
/* A job became final: error JOB_ERR_NONE is a success.  Durations in ms. */
void metrics_job_finished(enum job_error error, int64_t queue_ms, int64_t create_ms,
                          int64_t run_ms, int64_t total_ms);

struct metrics_gauges {
        const char *runtime;
        size_t queue_length, queue_capacity, running, workers;
        size_t plugins_loaded, plugins_broken;
        int64_t memory_reserved_mb, memory_pool_mb;
        size_t ids_in_use;
        struct breaker *breaker;      /* algorithm health */
        struct store_stats store;
        bool store_healthy;
        size_t store_records;
        struct warmpool *warm;        /* NULL: no pool */
        size_t cleanups_pending;
};

/* The exposition text; caller frees. */
char *metrics_render(const struct metrics_gauges *g);

#endif
