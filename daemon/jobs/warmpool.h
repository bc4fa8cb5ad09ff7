/* warmpool.h - containers made ahead of their jobs.
 *
 * DESIGN: a plugin whose manifest says `warm: N` gets a pool of N sandboxes
 * (sandbox.h) made without input: running, their process the gate that
 * waits in the sandbox, each with its own run id "<uuid>-0", workspace,
 * cgroup, job ids and log.  A job of that exact manifest takes one
 * (warmpool_take), places its input and opens the gate (sandbox_adopt); a
 * warm container serves that one job and is then taken apart like any
 * other.  The pool leaves `workers` job users free for cold runs.  One thread refills the pools in the background, one container at
 * a time, and only while the memory the running jobs and the warm
 * containers reserve fits the admission pool (warm containers count
 * against the budget, and are given up first when jobs need it).  A pool no
 * job took from for warm.idle_seconds empties until the next job of its
 * plugin; a plugin changed or removed (warmpool_sync after a registry
 * reload) drains its pool; warmpool_free() drains them all.  A pool whose
 * containers fail to start tries again after 5 s, the pause doubling up to
 * 5 min until one starts; one whose gate died while it waited is removed
 * (by the refill thread, or at the take) and made again after such a
 * pause.  Warm
 * containers are in the live set while they wait; after a crash nothing
 * owns them and the start-up sweep removes them.  Any thread. */
#ifndef EDGECD_WARMPOOL_H
#define EDGECD_WARMPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "admission.h"
#include "base/config.h"
#include "base/error.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "sandbox/cleaner.h"
#include "sandbox/idpool.h"
#include "sandbox/liveset.h"
#include "sandbox/sandbox.h"

struct warmpool;

struct warmpool_deps {
        const struct config *cfg;
        const struct sandbox_env *env;
        struct idpool *ids;
        struct liveset *live;
        struct cleaner *cleaner;
        struct admission *admission;
};

int warmpool_start(const struct warmpool_deps *deps, struct warmpool **ret, struct err *err);
/* The registry's manifests with `warm` > 0 get pools (up to
 * warm.max_containers in all); pools of manifests no longer in it drain. */
void warmpool_sync(struct warmpool *wp, struct registry *r);
/* A ready sandbox of exactly manifest m, made under m's template files as
 * they stand (one made before they were edited is given to the cleaner),
 * now the caller's; NULL when there is none (a miss, counted, when m has a
 * pool) or wp is NULL. */
struct sandbox *warmpool_take(struct warmpool *wp, const struct manifest *m);

struct warmpool_stats {
        const char *algorithm, *version;
        size_t ready, target;
        uint64_t hits, misses;
};
/* fn for each pool, under the pool's lock (fn must not call back). */
void warmpool_each(struct warmpool *wp, void (*fn)(const struct warmpool_stats *st, void *ctx), void *ctx);

/* Drain every pool (to the cleaner) and end the thread; afterwards take
 * finds nothing and each shows nothing, so workers and handlers may still
 * call them.  NULL is fine; a second call does nothing. */
void warmpool_stop(struct warmpool *wp);
/* Stop if not yet, then free (after every user of wp is gone). */
void warmpool_free(struct warmpool *wp);

#endif
