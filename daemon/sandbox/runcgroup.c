/* runcgroup.c - run cgroups: reused slots on v1, made ahead for one run
 * each on v2 (see runcgroup.h). */
#include "runcgroup.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define SLOT_PREFIX "slot-"

/* SLOT_UNMADE: free, with no cgroup of ours under its name (v1: removed,
 * it held too much to reuse; v2: not made yet, or removed at a failure, a
 * collection or the stop), made when next taken. */
enum slot_state { SLOT_FREE, SLOT_UNMADE, SLOT_BUSY, SLOT_GONE };

struct runcgroup_ops {
        const char *name;
        int (*take)(struct runcgroups *rcs, const char *run_id, struct runcgroup *rc, struct err *err);
        int (*give)(struct runcgroups *rcs, struct runcgroup *rc, const char *run_id, enum runcgroup_end end,
                    struct err *err);
};

struct runcgroups {
        const struct runcgroup_ops *ops;
        char *parent;
        pthread_mutex_t lock;
        enum slot_state *slots;   /* by number: slot-0, slot-1, ... (never renumbered) */
        char **left_by;           /* a SLOT_GONE slot's run, whose ids wait for it; else NULL */
        struct cgroup_files **files;  /* a slot's counter files: open while it is FREE (v2: where they
                                       * could be opened), or BUSY once taken */
        bool *unsettled;          /* FREE, given back holding its runs' kernel memory (pick_slot) */
        unsigned *eager;          /* gives left that reclaim at once: that memory outlasted a wait */
        size_t n_slots;
        size_t *free;             /* in the order given back: the last one ready is used first */
        size_t n_free;
        bool stopping;            /* no take any more: nothing made ahead (under lock) */
};

static void release(struct runcgroup *rc)
{
        free(rc->dir);
        free(rc->leaf);
        *rc = (struct runcgroup){ .slot = -1 };
}

/* The slot's cgroup goes (removed, or left to the collector): no file of
 * it kept. */
static void drop_files(struct runcgroup *rc)
{
        if (rc->files)
                cgroup_files_close(rc->files);
}

/* -- slots: their state (both kinds), reused (v1) ---------------------------- */

static void set_state(struct runcgroups *rcs, size_t slot, enum slot_state st, bool unsettled, const char *left_by)
{
        pthread_mutex_lock(&rcs->lock);
        rcs->slots[slot] = st;
        rcs->unsettled[slot] = unsettled;
        free(rcs->left_by[slot]);
        rcs->left_by[slot] = left_by ? xstrdup(left_by) : NULL;
        if (st == SLOT_FREE || st == SLOT_UNMADE)
                rcs->free[rcs->n_free++] = slot;
        pthread_mutex_unlock(&rcs->lock);
}

/* The most free slots passed over while they still hold their runs'
 * kernel memory (unsettled) before a take reclaims one: a new slot is
 * made instead until then. */
#define SLOTS_UNSETTLED_SPARE 2

/* A slot whose runs' kernel memory outlasted the wait (settled when
 * taken, on a job's way to its start) has it reclaimed as it is given
 * back, in the cleaner, for this many gives; then it is waited for again. */
#define SLOTS_EAGER_GIVES 8

/* Under rcs->lock: may the free slot be taken as it is?  One given back
 * holding more than the next run may start on (a container's kernel
 * memory, which the kernel frees within about 10 ms of its end, after
 * RCU) is, once it holds little enough. */
static bool slot_ready(struct runcgroups *rcs, size_t slot)
{
        if (!rcs->unsettled[slot] || rcs->slots[slot] == SLOT_UNMADE)
                return true;
        /* Unreadable (its cgroup removed from under us): taken, and found
         * so (slots_take). */
        int64_t held = cgroup_files_usage(rcs->files[slot]);
        if (held > CGROUP_REUSE_MAX_BYTES)
                return false;
        rcs->unsettled[slot] = false;
        return true;
}

/* A free slot, or the number of a new one or an unmade one (*fresh: its
 * cgroup is to be made), whether it is to be settled first, and where its
 * counter files are kept (read here: the arrays move as slots are added).
 * The free slot given back last that is ready is taken; while fewer than
 * SLOTS_UNSETTLED_SPARE are not, a new one rather than v1's reclaim of
 * one of them (about 0.1 ms of CPU, mostly for nothing: the kernel is
 * freeing that memory itself); past that, the one given back first. */
static size_t pick_slot(struct runcgroups *rcs, bool *fresh, bool *settle, struct cgroup_files **files)
{
        pthread_mutex_lock(&rcs->lock);
        size_t slot, waiting = 0, at = rcs->n_free;
        for (size_t i = rcs->n_free; i-- > 0;) {
                if (slot_ready(rcs, rcs->free[i])) {
                        at = i;
                        break;
                }
                waiting++;
        }
        if (at == rcs->n_free && waiting >= SLOTS_UNSETTLED_SPARE)
                at = 0;
        *fresh = at == rcs->n_free;
        *settle = false;
        if (!*fresh) {
                slot = rcs->free[at];
                memmove(rcs->free + at, rcs->free + at + 1, (rcs->n_free - at - 1) * sizeof *rcs->free);
                rcs->n_free--;
                *fresh = rcs->slots[slot] == SLOT_UNMADE;
                *settle = rcs->unsettled[slot];
                if (*settle)
                        rcs->eager[slot] = SLOTS_EAGER_GIVES;
        } else {
                slot = rcs->n_slots++;
                rcs->slots = xrealloc(rcs->slots, rcs->n_slots * sizeof *rcs->slots);
                rcs->free = xrealloc(rcs->free, rcs->n_slots * sizeof *rcs->free);
                rcs->left_by = xrealloc(rcs->left_by, rcs->n_slots * sizeof *rcs->left_by);
                rcs->left_by[slot] = NULL;
                rcs->unsettled = xrealloc(rcs->unsettled, rcs->n_slots * sizeof *rcs->unsettled);
                rcs->eager = xrealloc(rcs->eager, rcs->n_slots * sizeof *rcs->eager);
                rcs->eager[slot] = 0;
                rcs->files = xrealloc(rcs->files, rcs->n_slots * sizeof *rcs->files);
                rcs->files[slot] = xmalloc(sizeof **rcs->files);
                *rcs->files[slot] = CGROUP_FILES_NONE;
        }
        rcs->slots[slot] = SLOT_BUSY;
        rcs->unsettled[slot] = false;
        *files = rcs->files[slot];
        pthread_mutex_unlock(&rcs->lock);
        return slot;
}

static int slots_take(struct runcgroups *rcs, const char *run_id, struct runcgroup *rc, struct err *err)
{
        /* A slot that cannot be made ready (gone from under us) is dropped
         * and the next one tried, once. */
        for (int attempt = 0;; attempt++) {
                bool fresh, settle;
                size_t slot = pick_slot(rcs, &fresh, &settle, &rc->files);
                rc->slot = (long)slot;
                rc->dir = xasprintf("%s/" SLOT_PREFIX "%zu", rcs->parent, slot);
                rc->leaf = xasprintf("%s/%s", rc->dir, run_id);
                struct err e = ERR_INIT;
                if (fresh)
                        drop_files(rc);   /* none of a cgroup made anew are its */
                /* Given back holding more than the next run may start on,
                 * and still: what it holds is reclaimed, or the cgroup is
                 * made anew (one that cannot be removed goes to the
                 * collector, below). */
                if (settle && cgroup_settle(rc->dir, rc->files, CGROUP_REUSE_MAX_BYTES, true, &e) < 0) {
                        struct err why = e;
                        err_clear(&e);
                        drop_files(rc);
                        fresh = cgroup_remove(rc->dir, &e) == 0;
                        if (fresh)
                                log_debug("run cgroup: %s: made anew", why.msg);
                }
                bool made = !fresh;
                if (e.code == ERR_OK && (made || (made = cgroup_make(rc->dir, &e) == 0)) &&
                    (rc->files->peak >= 0 || cgroup_files_open(rc->dir, rc->files, &e) == 0) &&
                    cgroup_restart_counters(rc->dir, rc->files, &rc->base, &e) == 0)
                        return 0;
                drop_files(rc);
                if (e.errnum == EMFILE || e.errnum == ENFILE || e.errnum == ENOMEM) {
                        /* The slot is sound, the daemon short of descriptors
                         * or memory: it serves again (its files opened when
                         * next taken; one not all made, made anew).  Given
                         * to the collector, it stayed until the next sweep,
                         * after the daemon's stop too.  Another slot would
                         * fail the same way. */
                        struct err re = ERR_INIT;
                        set_state(rcs, slot, made ? SLOT_FREE : cgroup_remove(rc->dir, &re) == 0 ? SLOT_UNMADE : SLOT_GONE,
                                  false, NULL);
                        release(rc);
                        *err = e;
                        return err_wrap(err, "run cgroup");
                }
                /* Not ours to reuse now: the collector removes what is there. */
                set_state(rcs, slot, SLOT_GONE, false, NULL);
                release(rc);
                if (attempt == 1) {
                        *err = e;
                        return err_wrap(err, "run cgroup");
                }
                log_warn("run cgroup: %s (trying another slot)", e.msg);
        }
}

/* Is the slot's give to reclaim at once (SLOTS_EAGER_GIVES)?  Counts
 * one such give. */
static bool eager_give(struct runcgroups *rcs, size_t slot)
{
        pthread_mutex_lock(&rcs->lock);
        bool eager = rcs->eager[slot] > 0;
        if (eager)
                rcs->eager[slot]--;
        pthread_mutex_unlock(&rcs->lock);
        return eager;
}

static int slots_give(struct runcgroups *rcs, struct runcgroup *rc, const char *run_id, enum runcgroup_end end,
                      struct err *err)
{
        size_t slot = (size_t)rc->slot;
        /* The runtime deleted its container's cgroup: this finds it gone
         * in every hierarchy (one per hierarchy: a runtime killed while it
         * created the container may have made the cpuset one and not yet
         * the memory one, and deletes nothing it does not know of).
         * Anything left in the slot (a container the runtime could not
         * delete, a process stuck in the kernel) would count in the next
         * run's figures: the slot goes to the collector, and the run's ids
         * stay out of use until it has removed it (runcgroups_collected).
         * Not renamed: the runtime still finds its container's cgroup where
         * it made it when the collector deletes the container.  A runtime
         * that ended on its own finished its delete: the memory hierarchy
         * alone is looked at (cgroup_remove_ended). */
        bool deleted = end != RUNCG_NOT_DELETED;
        if (deleted && ((end == RUNCG_ENDED ? cgroup_remove_ended(rc->leaf, err) : cgroup_remove(rc->leaf, err)) == 0 ||
                        cgroup_destroy(rc->leaf, err) == 0)) {
                /* What the slot still holds (page cache the runs charged
                 * to it) is the next run's base, which reclaim may shrink
                 * under that run: kept small, so is what its figures can
                 * be short by.  One that holds page cache, or will not
                 * shrink, is made anew (its charges go to the parent; see
                 * cgroup_settle).  Kernel memory is left to the kernel,
                 * which frees most of it within milliseconds (pick_slot
                 * waits for that), unless the slot's runs' did not. */
                struct err se = ERR_INIT;
                enum slot_state next = SLOT_FREE;
                int settled = cgroup_settle(rc->dir, rc->files, CGROUP_REUSE_MAX_BYTES, eager_give(rcs, slot), &se);
                if (settled < 0) {
                        log_debug("run cgroup: %s: made anew", se.msg);
                        drop_files(rc);
                        if (cgroup_remove(rc->dir, err) < 0)
                                goto left;
                        next = SLOT_UNMADE;
                }
                set_state(rcs, slot, next, settled == 1, NULL);
                release(rc);
                return 0;
        }
left:
        drop_files(rc);
        if (!deleted)
                err_set(err, ERR_BUSY, 0, "cgroup `%s`: its container was not deleted", rc->leaf);
        set_state(rcs, slot, SLOT_GONE, false, run_id);
        release(rc);
        return -1;
}

static const struct runcgroup_ops slot_ops = {
        .name = "slots",
        .take = slots_take,
        .give = slots_give,
};

/* -- made ahead, each for one run (v2) ------------------------------------ */

/* The slot's cgroup could not be made or used for a take (e).  A
 * leftover under its name, or one something ran in (ERR_CONFLICT), is the
 * collector's, never removed here: the collector may have found it
 * unowned already and be about to destroy whatever is there, and the
 * number serves again once it has (runcgroups_collected).  Anything else
 * (nothing made, or a part the make could not undo) is removed now, so a
 * host that keeps failing does not add a number per take.  -1 with err
 * (short of descriptors or memory, or the last try), or 0 to try again. */
static int fresh_failed(struct runcgroups *rcs, struct runcgroup *rc, size_t slot, bool last, struct err *e,
                        struct err *err)
{
        drop_files(rc);
        struct err re = ERR_INIT;
        bool gone = e->code != ERR_CONFLICT && cgroup_remove(rc->dir, &re) == 0;
        set_state(rcs, slot, gone ? SLOT_UNMADE : SLOT_GONE, false, NULL);
        release(rc);
        if (errno_is_shortage(e->errnum) || last) {
                *err = *e;
                return err_wrap(err, "run cgroup");
        }
        log_warn("run cgroup: %s (trying another)", e->msg);
        return 0;
}

/* The counter files of a run cgroup just made, kept from now to its
 * removal (rc->files: its slot's); left closed when they cannot be opened
 * (then tried again when it is taken). */
static int open_files(struct runcgroup *rc, struct err *err)
{
        if (!cgroup_is_v2() || cgroup_files_kept(rc->files))
                return 0;
        return cgroup_files_open(rc->dir, rc->files, err);
}

/* A take tries a second slot after a failure, and passes over up to this
 * many in use (leftovers, or entered since made ahead: each out of use
 * until collected, so the free ones run out first); the bound is against
 * leftovers made as fast as it goes. */
#define FRESH_CONFLICTS_MAX 64

/* v2 cannot reset a cgroup's memory.peak (before Linux 6.12), so a run's
 * cgroup serves that run only; but it is made ahead, when the one before
 * it under the same slot number is removed after its answer (in the
 * cleaner), so that making it and enabling its controllers (1.2 ms of a
 * job's path in the QEMU VM), and opening its counter files, are not on
 * the job's path.  A take makes one only for a number not made yet: the
 * first runs at once, or after a failure or a collection.  One made ahead
 * that something has run in since (a process put in a cgroup below it:
 * its figures would count in the run's) is not used: the collector's, as
 * a leftover is. */
static int fresh_take(struct runcgroups *rcs, const char *run_id, struct runcgroup *rc, struct err *err)
{
        int failures = 0, conflicts = 0;
        for (;;) {
                bool unmade, settle;
                size_t slot = pick_slot(rcs, &unmade, &settle, &rc->files);
                rc->slot = (long)slot;
                rc->dir = xasprintf("%s/" SLOT_PREFIX "%zu", rcs->parent, slot);
                rc->leaf = xasprintf("%s/%s", rc->dir, run_id);
                rc->base = (struct cgroup_base){ .files = rc->files };
                struct err e = ERR_INIT;
                if (!unmade) {
                        /* Made ahead: used if nothing ran in it since. */
                        int untouched = open_files(rc, &e) < 0 ? -1
                                        : cgroup_files_kept(rc->files) ? cgroup_files_untouched(rc->files)
                                                                       : 1;   /* v1 (the tests): nothing kept */
                        if (untouched == 1)
                                return 0;
                        if (untouched == 0)
                                err_set(&e, ERR_CONFLICT, 0, "cgroup `%s`: something ran in it, or runs in it, "
                                        "after it was made", rc->dir);
                        else if (e.code == ERR_OK)
                                err_errno(&e, ERR_IO, "cgroup `%s`: read its counters", rc->dir);
                        /* Unreadable (removed from under us, or not whole):
                         * made anew here, where one found under its name
                         * is a leftover, the collector's.  Short of
                         * descriptors or memory: the take fails. */
                        unmade = untouched < 0 && !errno_is_shortage(e.errnum);
                        if (unmade) {
                                log_debug("run cgroup: %s (made anew)", e.msg);
                                drop_files(rc);
                                err_clear(&e);
                        }
                }
                if (unmade) {
                        if (cgroup_make_run(rc->dir, &e) == 0 && open_files(rc, &e) == 0)
                                return 0;
                        if (e.code == ERR_NOT_FOUND)
                                e.code = ERR_IO;   /* made here: ours to remove */
                }
                bool last = e.code == ERR_CONFLICT ? ++conflicts == FRESH_CONFLICTS_MAX : ++failures == 2;
                if (fresh_failed(rcs, rc, slot, last, &e, err) < 0)
                        return -1;
        }
}

static int fresh_give(struct runcgroups *rcs, struct runcgroup *rc, const char *run_id, enum runcgroup_end end,
                      struct err *err)
{
        size_t slot = (size_t)rc->slot;
        drop_files(rc);
        /* Empty once the runtime is done with its container; else what is
         * in it is killed.  Not deleted, or not removable: the collector
         * removes it, and the run's ids wait for that
         * (runcgroups_collected). */
        struct err e = ERR_INIT;
        if (end == RUNCG_NOT_DELETED)
                err_set(&e, ERR_BUSY, 0, "cgroup `%s`: its container was not deleted", rc->leaf);
        else if (cgroup_remove(rc->dir, &e) < 0) {
                /* Only the destroy's error, when it fails too, is the caller's. */
                err_clear(&e);
                cgroup_destroy(rc->dir, &e);
        }
        if (e.code != ERR_OK) {
                *err = e;
                set_state(rcs, slot, SLOT_GONE, false, run_id);
                release(rc);
                return -1;
        }
        /* The next run's, made now, after this one's answer; none once
         * the daemon stops. */
        enum slot_state next = SLOT_FREE;
        pthread_mutex_lock(&rcs->lock);
        bool stopping = rcs->stopping;
        pthread_mutex_unlock(&rcs->lock);
        if (stopping) {
                next = SLOT_UNMADE;
        } else if (cgroup_make_run(rc->dir, &e) == 0) {
                if (open_files(rc, &e) < 0) {
                        log_warn("run cgroup: %s (opened when taken)", e.msg);
                        err_clear(&e);
                }
        } else {
                log_warn("run cgroup: %s (to be made when taken)", e.msg);
                err_clear(&e);
                next = cgroup_remove(rc->dir, &e) == 0 ? SLOT_UNMADE : SLOT_GONE;
        }
        set_state(rcs, slot, next, false, NULL);
        release(rc);
        return 0;
}

static const struct runcgroup_ops fresh_ops = {
        .name = "made ahead",
        .take = fresh_take,
        .give = fresh_give,
};

/* -- the table's users --------------------------------------------------- */

struct runcgroups *runcgroups_new_kind(const char *parent, enum runcgroup_kind kind)
{
        struct runcgroups *rcs = xcalloc(1, sizeof *rcs);
        rcs->ops = kind == RUNCG_FRESH ? &fresh_ops : &slot_ops;
        rcs->parent = xstrdup(parent);
        pthread_mutex_init(&rcs->lock, NULL);
        return rcs;
}

struct runcgroups *runcgroups_new(const char *parent)
{
        return runcgroups_new_kind(parent, cgroup_is_v2() ? RUNCG_FRESH : RUNCG_REUSED);
}

void runcgroups_stopping(struct runcgroups *rcs)
{
        if (!rcs)
                return;
        pthread_mutex_lock(&rcs->lock);
        rcs->stopping = true;
        pthread_mutex_unlock(&rcs->lock);
}

void runcgroups_free(struct runcgroups *rcs)
{
        if (!rcs)
                return;
        for (size_t i = 0; i < rcs->n_slots; i++) {
                if (rcs->slots[i] != SLOT_FREE)
                        continue;   /* unmade: nothing to remove */
                _cleanup_free_ char *dir = xasprintf("%s/" SLOT_PREFIX "%zu", rcs->parent, i);
                struct err err = ERR_INIT;
                if (cgroup_remove(dir, &err) < 0 && cgroup_destroy(dir, &err) < 0)
                        log_warn("run cgroup: %s", err.msg);
        }
        pthread_mutex_destroy(&rcs->lock);
        for (size_t i = 0; i < rcs->n_slots; i++) {
                free(rcs->left_by[i]);
                cgroup_files_close(rcs->files[i]);
                free(rcs->files[i]);
        }
        free(rcs->left_by);
        free(rcs->unsettled);
        free(rcs->eager);
        free(rcs->files);
        free(rcs->slots);
        free(rcs->free);
        free(rcs->parent);
        free(rcs);
}

int runcgroup_take(struct runcgroups *rcs, const char *run_id, struct runcgroup *ret, struct err *err)
{
        *ret = (struct runcgroup){ .slot = -1 };
        return rcs->ops->take(rcs, run_id, ret, err);
}

int runcgroup_stats(const struct runcgroup *rc, int64_t memory_limit_bytes, struct cgroup_stats *ret,
                    struct err *err)
{
        return cgroup_read_stats(rc->dir, rc->leaf, memory_limit_bytes, cgroup_files_kept(rc->files) ? &rc->base : NULL,
                                 ret, err);
}

int runcgroup_give(struct runcgroups *rcs, struct runcgroup *rc, const char *run_id, enum runcgroup_end end,
                   struct err *err)
{
        if (!rc->dir)
                return 0;   /* never taken */
        return rcs->ops->give(rcs, rc, run_id, end, err);
}

bool runcgroup_slot_name(const char *name, size_t *ret)
{
        if (strncmp(name, SLOT_PREFIX, strlen(SLOT_PREFIX)))
                return false;
        const char *num = name + strlen(SLOT_PREFIX);
        int64_t n;
        /* Only as we write them: "slot-07" is not slot 7. */
        if (!*num || (num[0] == '0' && num[1]) || strspn(num, "0123456789") != strlen(num) ||
            !parse_int64(num, 0, INT64_MAX, &n))
                return false;
        if (ret)
                *ret = (size_t)n;
        return true;
}

bool runcgroups_owns(struct runcgroups *rcs, const char *name)
{
        size_t n;
        if (!runcgroup_slot_name(name, &n))
                return false;
        pthread_mutex_lock(&rcs->lock);
        bool ours = n < rcs->n_slots && rcs->slots[n] != SLOT_GONE;
        pthread_mutex_unlock(&rcs->lock);
        return ours;
}

size_t runcgroups_count(struct runcgroups *rcs)
{
        pthread_mutex_lock(&rcs->lock);
        size_t n = 0;
        for (size_t i = 0; i < rcs->n_slots; i++)
                n += rcs->slots[i] != SLOT_GONE && rcs->slots[i] != SLOT_UNMADE;
        pthread_mutex_unlock(&rcs->lock);
        return n;
}

bool runcgroups_holds_left(struct runcgroups *rcs, const char *run_id)
{
        pthread_mutex_lock(&rcs->lock);
        bool held = false;
        for (size_t i = 0; i < rcs->n_slots && !held; i++)
                held = rcs->left_by[i] && !strcmp(rcs->left_by[i], run_id);
        pthread_mutex_unlock(&rcs->lock);
        return held;
}

char *runcgroups_collected(struct runcgroups *rcs, const char *name)
{
        size_t n;
        if (!runcgroup_slot_name(name, &n))
                return NULL;
        pthread_mutex_lock(&rcs->lock);
        char *run_id = NULL;
        if (n < rcs->n_slots && rcs->slots[n] == SLOT_GONE) {
                run_id = TAKE_PTR(rcs->left_by[n]);
                /* Its number serves again, its cgroup made when taken. */
                rcs->slots[n] = SLOT_UNMADE;
                rcs->free[rcs->n_free++] = n;
        }
        pthread_mutex_unlock(&rcs->lock);
        return run_id;
}
