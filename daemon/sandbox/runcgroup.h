/* runcgroup.h - the cgroup a run's container sits in, and where it comes
 * from.  The container's own cgroup (its cgroupsPath) is the runtime's to
 * make and delete; it sits in a run cgroup of ours that keeps the run's
 * totals after it is gone.  Two ways to get one, an operations table each:
 *
 *   - slots (cgroup v1): a run cgroup is a slot "<parent>/slot-N", made
 *     once in every hierarchy and used again by run after run, its
 *     counters restarted for each (removing a cgroup from the ten v1
 *     hierarchies of a host like this one was the largest part of the
 *     daemon's own CPU per job).  A slot keeps its counter files open
 *     while it is in use or free (struct cgroup_files).  A slot something
 *     was left in is not used again: it stays where it is, its files
 *     closed, and is left to the collector.
 *   - made ahead (cgroup v2, which cannot restart a cgroup's memory
 *     peak): a slot serves one run, is removed after it and made again
 *     at once with its controllers, empty, for the next run, its
 *     counter files opened; so making a cgroup is not on a job's path (a
 *     take makes one itself only for a number not made yet: the first
 *     runs at once, or after a failure or a collection).  One that
 *     something ran in after it was made is left to the collector.
 *
 * Either way the container's cgroup is "<parent>/slot-N/<run id>".  Every
 * slot goes at runcgroups_free(); after a crash the next start's
 * collector removes them, as any cgroup under the parent no run owns.
 * Thread-safe. */
#ifndef EDGECD_RUNCGROUP_H
#define EDGECD_RUNCGROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "cgroup.h"

struct runcgroup {
        char *dir;                 /* the run cgroup: its totals ("<parent>/slot-3") */
        char *leaf;                /* its container's, the runtime's cgroupsPath, under dir */
        struct cgroup_base base;   /* a reused slot's counters when taken (v1), and its kept files */
        struct cgroup_files *files;  /* the slot's counter files, kept open by it (v1: while it is reused;
                                      * v2: from the cgroup's making to its removal; not open where they
                                      * could not be) */
        long slot;                 /* its number, -1 when none is held */
};

struct runcgroups;

/* Reused slots on a v1 host, made ahead on v2; parent is the resolved
 * cgroup_parent. */
struct runcgroups *runcgroups_new(const char *parent);

/* The same with the kind chosen (the tests run both on one host). */
enum runcgroup_kind { RUNCG_REUSED, RUNCG_FRESH };
struct runcgroups *runcgroups_new_kind(const char *parent, enum runcgroup_kind kind);

/* The daemon stops: a v2 run cgroup given back is removed and no other
 * made ahead in its place (a take still makes its own). */
void runcgroups_stopping(struct runcgroups *rcs);

/* Removes the free slots (every run has given its back by now). */
void runcgroups_free(struct runcgroups *rcs);

/* A run cgroup for run_id, ready for its container. */
int runcgroup_take(struct runcgroups *rcs, const char *run_id, struct runcgroup *ret, struct err *err);

/* The run's peak memory and CPU (see cgroup_read_stats), a slot's base
 * taken off. */
int runcgroup_stats(const struct runcgroup *rc, int64_t memory_limit_bytes, struct cgroup_stats *ret,
                    struct err *err);

/* What became of a run's container when its cgroup is given back. */
enum runcgroup_end {
        RUNCG_NOT_DELETED,   /* the runtime could not delete it */
        RUNCG_DELETED,       /* deleted by a `delete` (or never made) */
        RUNCG_ENDED,         /* an attached `run` ended on its own, deleting it */
};

/* Done with rc.  0 when its cgroups are gone or the slot is free again;
 * -1 with err when something stays, left to the collector (a slot
 * remembers run_id: runcgroups_holds_left, runcgroups_collected).  rc is
 * released either way. */
int runcgroup_give(struct runcgroups *rcs, struct runcgroup *rc, const char *run_id, enum runcgroup_end end,
                   struct err *err);

/* Is name one we give slots ("slot-N", *ret = N; ret may be NULL)? */
bool runcgroup_slot_name(const char *name, size_t *ret);

/* Is name, a cgroup right under the parent, one of this daemon's slots
 * now (the collector's question)? */
bool runcgroups_owns(struct runcgroups *rcs, const char *name);

/* Is a slot run_id left something in still to be collected (so its ids
 * are not free yet, though its container may be gone)? */
bool runcgroups_holds_left(struct runcgroups *rcs, const char *run_id);

/* The collector removed the cgroup `name` right under the parent: when it
 * was a slot a run left something in, the slot's number serves again and
 * that run's id is returned (the caller frees it), whose ids are now free;
 * else NULL. */
char *runcgroups_collected(struct runcgroups *rcs, const char *name);

/* How many slots exist now (the tests' and /metrics' figure). */
size_t runcgroups_count(struct runcgroups *rcs);

#endif
