/* collector.h - the garbage collector: what a run left behind when its own
 * cleanup failed (a runtime that would not delete, a busy mount), or what a
 * daemon that died left, is found and removed.
 *
 * Every sweep_interval_seconds, and once at start before any job runs: the
 * containers in the runtime's state root, the cgroups under cgroup_parent
 * and the workspaces under STATE_DIR/workspaces whose run is not live
 * (scheduler_run_is_live) are removed - containers with `delete --force`,
 * cgroups by killing what is in them, workspaces by unmounting and removing
 * them; and job records finished longer ago than store.retention_seconds,
 * or past store.max_records, are deleted with their logs (store_prune).
 * Only names edgecd gives are touched (a run id "<uuid>-<n>", a
 * probe's "...probe-<pid>-<runtime>"): whatever else lives under the cgroup
 * parent is not ours to kill.  Each removal is logged and counted in
 * /metrics.  One thread. */
#ifndef EDGECD_COLLECTOR_H
#define EDGECD_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "base/config.h"
#include "base/error.h"
#include "runtime/runtime.h"
#include "store/store.h"

struct collector;

struct collector_deps {
        const struct config *cfg;
        const struct runtime *rt;
        /* Where records expire (retention); NULL: none (the start-up pass). */
        struct store *store;
        /* Is run_id in progress?  NULL: nothing is (at start). */
        bool (*is_live)(const char *run_id, void *ctx);
        /* run_id's container, or its cgroup, is gone now (may be NULL):
         * what the run held until then (its job user) can be given back. */
        void (*released)(const char *run_id, void *ctx);
        void *ctx;
        /* Set by collector_start: a pass stops early once this is true. */
        const bool *stop;
};


/* One pass now, on this thread.  *ret_removed counts what went. */
size_t collector_run(const struct collector_deps *deps);

/* Start the periodic thread. */
int collector_start(const struct collector_deps *deps, struct collector **ret, struct err *err);
/* Stop and join it.  NULL is fine. */
void collector_stop(struct collector *c);

#endif
