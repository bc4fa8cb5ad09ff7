/* cgroup.h - the daemon's parent cgroup and per-job accounting, on cgroup v1
 * (hybrid hosts like this one), or v2.  Uses libcgroup where it helps.
 * A run's container cgroup sits in a run cgroup (runcgroup.h: a reused
 * slot on v1, one made ahead for the run on v2): the runtime deletes the container's,
 * the run's keeps the totals.  This module makes, reads and removes them
 * (the cleaner, the collector). */
#ifndef EDGECD_CGROUP_H
#define EDGECD_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

struct cgroup_stats {
        int64_t peak_memory_bytes;  /* -1 when unknown (v2 before Linux 5.19 has no
                                     * memory.peak): never a 0 the kernel did not say */
        int64_t cpu_ms;             /* -1 when unknown */
        bool oom_killed;            /* the kernel OOM-killed a task in it */
        bool oom_known;             /* the kernel kept a count of OOM kills that was read (v2; v1 while
                                     * the container's own cgroup is there): else oom_killed is
                                     * false for want of it */
        bool limit_hit;             /* the memory limit was reached (v1 failcnt or a peak at the limit,
                                     * v2 memory.events `max`); a hint only: reclaim
                                     * may have coped, so not an OOM kill by itself */
};

/* A run cgroup's counter files, kept open by its owner: a pread or pwrite
 * each time instead of an open, a read and a close (some 7 us against 1.4
 * on a VM; a run reads them seven times).  A reused v1 slot keeps them as
 * long as it is reused; a v2 run cgroup from when it is made ahead (after
 * the answer before it) to its removal.  -1: not open. */
struct cgroup_files {
        int peak;       /* v1 memory.max_usage_in_bytes, read and write; v2 memory.peak (-1 before Linux 5.19) */
        int usage;      /* v1 memory.usage_in_bytes */
        int cpu;        /* v1 cpuacct.usage; v2 cpu.stat */
        int events;     /* v2 memory.events */
        int populated;  /* v2 cgroup.events */
};

#define CGROUP_FILES_NONE ((struct cgroup_files){ .peak = -1, .usage = -1, .cpu = -1, .events = -1, .populated = -1 })

/* Open the counter files of the cgroup at path into *ret (all or none;
 * on v2 memory.peak where the kernel has it); ERR_NOT_FOUND when it is
 * gone.  Close them with cgroup_files_close(), which leaves *f
 * CGROUP_FILES_NONE. */
int cgroup_files_open(const char *path, struct cgroup_files *ret, struct err *err);
void cgroup_files_close(struct cgroup_files *f);

/* The same for the v2 cgroup directory dir; for the unit tests. */
int cgroup_files_open_v2_dir(const char *dir, struct cgroup_files *ret, struct err *err);

/* Are f open (for cgroup_read_stats)?  false for NULL. */
bool cgroup_files_kept(const struct cgroup_files *f);

/* Has nothing run in the v2 cgroup of f since it was made: no process in
 * it or below (cgroup.events `populated 0`), no CPU time (cpu.stat
 * `usage_usec 0`) and a memory peak of 0 (where the kernel keeps one)?
 * 1 yes, 0 no, -1 with errno set when a file cannot be read (ENODEV: its
 * cgroup was removed from under us). */
int cgroup_files_untouched(const struct cgroup_files *f);

/* What the cgroup of f holds now, in bytes (memory.usage_in_bytes); -1
 * with errno set when it cannot be read. */
int64_t cgroup_files_usage(const struct cgroup_files *f);

/* A reused cgroup's counters when a run took it (cgroup_restart_counters):
 * what the run's figures do not count. */
struct cgroup_base {
        int64_t memory_bytes;              /* its memory usage then, which the restarted peak starts from */
        int64_t cpu_ns;                    /* cpuacct.usage then */
        const struct cgroup_files *files;  /* where they were read, or NULL: by name */
};

/* Resolve cgroup_parent and make it ready, once at start (main thread).
 * On cgroup v1 and hybrid hosts: *resolved is configured, nothing else
 * (the runtime makes the cgroups).  On a unified cgroup v2 host:
 *   - when the daemon's own cgroup was delegated to it (systemd marks a
 *     Delegate=yes unit's cgroup with the trusted.delegate xattr), the
 *     daemon moves itself into the leaf `<own>/daemon` (v2 lets a cgroup
 *     with controllers enabled for its children hold no process), and the
 *     parent is configured taken inside its own cgroup:
 *     "/edgecd" -> "/system.slice/edgecd.service/edgecd";
 *   - else it is configured as it is, from the top of the hierarchy;
 * and either way the daemon enables memory, pids and cpu in every cgroup
 * from the top of what it may write (its delegated cgroup, or the root)
 * down to the parent itself, so that they do not depend on which runtime
 * runs first.  ERR_UNAVAILABLE when one of them is not offered. */
int cgroup_setup_parent(const char *configured, char **resolved, struct err *err);

/* Is this host's hierarchy unified (cgroup v2 only)? */
bool cgroup_is_v2(void);

/* The v2 part of cgroup_setup_parent on a tree at root (the unit tests'
 * stand-in for /sys/fs/cgroup), for a daemon whose cgroup is self (as in
 * /proc/self/cgroup's "0::" line) and whose pid is pid. */
int cgroup_setup_parent_at(const char *root, const char *self, pid_t pid, const char *configured, char **resolved,
                           struct err *err);

/* The v2 stats of the cgroup directory dir (memory and cpu in one
 * hierarchy), by name or (files not NULL) from its kept files: what
 * cgroup_read_stats reads there; for the unit tests.  -1 with errno set
 * when a kept file says the cgroup was removed (ENODEV); a figure that
 * cannot be read otherwise is unknown. */
int cgroup_read_v2_dir(const char *dir, const struct cgroup_files *files, struct cgroup_stats *ret);

/* A new run cgroup at path (under the parent), ready for its container's
 * inside it: on v2 with memory, pids and cpu enabled for its children (a
 * partly made one is removed), on v1 in every hierarchy (cgroup_make).
 * ERR_CONFLICT when one was there already (a leftover: never used). */
int cgroup_make_run(const char *path, struct err *err);

/* Read stats of a run's cgroup at `path` (a cgroupsPath like
 * "/edgecd/<run>"): peak memory and CPU of everything in it and below it,
 * so they outlive the container's own cgroup under it, which the runtime
 * deletes.  leaf (may be NULL) is that container cgroup, read too while it
 * is there: cgroup v1 counts an OOM kill only in the cgroup of the process
 * killed.  memory_limit_bytes (0: none known) is the container's limit, for
 * limit_hit.  base (may be NULL: read by name) is what a reused one held
 * before the run, taken off, and its kept files (a v2 cgroup's hold
 * nothing before its run).  A value the kernel does not offer is -1;
 * ERR_NOT_FOUND when the cgroup is gone.  Thread-safe. */
int cgroup_read_stats(const char *path, const char *leaf, int64_t memory_limit_bytes,
                      const struct cgroup_base *base, struct cgroup_stats *ret, struct err *err);


/* Make the cgroup at path in every hierarchy (v1), for runs to reuse.
 * ERR_CONFLICT when one already had it (a leftover: never reused). */
int cgroup_make(const char *path, struct err *err);

/* A v1 cgroup at path made ready for another run through its counter
 * files (cgroup_files_open): its memory peak restarted from its usage now,
 * and what it counts now in *ret, which keeps files for cgroup_read_stats:
 * they must stay open as long as ret is used.  Thread-safe. */
int cgroup_restart_counters(const char *path, const struct cgroup_files *files, struct cgroup_base *ret,
                            struct err *err);

/* The most an empty reused cgroup may still hold for the next run to
 * start in it: what reclaim can take from it while the run goes on, so
 * what the run's peak can be short by, and the slack within which a peak
 * counts as its limit reached. */
#define CGROUP_REUSE_MAX_BYTES (1 << 20)

/* An empty reused cgroup (v1, its counter files) made fit for the next
 * run: holding more than max_bytes, kernel memory of the runs before is
 * reclaimed; ERR_BUSY when it holds page cache (not evicted: remove the
 * cgroup and make it anew) or still more than max_bytes, ERR_NOT_FOUND
 * when the files' cgroup is gone.  Without reclaim, 1 instead of the
 * reclaim: the kernel frees most of that memory itself within
 * milliseconds of the run's end (after RCU), and v1's reclaim of a
 * cgroup costs the caller about 0.1 ms of CPU when it has nothing to take.
 * 0 when it holds at most max_bytes. */
int cgroup_settle(const char *path, const struct cgroup_files *files, int64_t max_bytes, bool reclaim,
                  struct err *err);

/* Remove the (empty) cgroup at path from every hierarchy: a run's after its
 * container's is gone, the parent at exit.  Absent is done; ERR_BUSY when
 * something is still in it or below it (then cgroup_destroy()). */
int cgroup_remove(const char *path, struct err *err);

/* cgroup_remove() of a container's cgroup its runtime deleted when it
 * ended on its own (an attached `run`): on v1 the memory hierarchy, where
 * every task of the container is charged, is looked at first, and gone
 * from there is taken as gone (one rmdir, not one per hierarchy; what an
 * interrupted delete leaves in another hierarchy holds no task, and the
 * collector removes it, cgroup_sweep_children). */
int cgroup_remove_ended(const char *path, struct err *err);

/* Destroy each cgroup right below path (any hierarchy) for which keep(name)
 * is false; how many went in *ret_removed.  0, or -1 with err naming the
 * first that would not go (the others are tried). */
int cgroup_sweep_children(const char *path, bool (*keep)(const char *name, void *ctx), void *ctx,
                          size_t *ret_removed, struct err *err);

/* Does any hierarchy hold a cgroup under path?  Count of leftovers: the
 * direct sub-directories of path, summed over every hierarchy (so one
 * leftover container cgroup on a v1 host counts once per hierarchy). */
int cgroup_count_children(const char *path);

/* The names of the cgroups directly under path, in any hierarchy, each
 * once (caller frees, strv; NULL when none). */
char **cgroup_list_children(const char *path);

/* ERR_INVALID when the daemon's own cgroup (in any hierarchy, as
 * /proc/self/cgroup says) is parent or below it: leftovers under the parent
 * are killed, and the daemon must not be among them. */
int cgroup_check_parent(const char *parent, struct err *err);
/* An exclusive lock on the parent, held in *ret_fd for the daemon's life,
 * so two daemons never sweep each other's jobs; ERR_CONFLICT if taken
 * for HELD_GRACE_MS (a flock(): see held_retry_wait()). */
int cgroup_lock_parent(const char *parent, int *ret_fd, struct err *err);

/* SIGKILL every process in the cgroup at path (not below it), in every
 * hierarchy, each through a pidfd after its membership is checked; the
 * cgroup stays.  The number signalled. */
int cgroup_kill(const char *path);

/* Kill every process in the cgroup at path (and below it), in every
 * hierarchy, and remove it: for leftovers no runtime will delete.  A
 * process is signalled through a pidfd after its membership is checked, so
 * a recycled pid is never hit.  0 when nothing is left. */
int cgroup_destroy(const char *path, struct err *err);

#endif
