/* cleaner.h - takes sandboxes apart after their job's answer is out.
 *
 * DESIGN: one thread, so a warm container's deletion, the run cgroup's
 * removal and the workspace's unmount cost a job no time and a worker goes straight to
 * the next job.  A sandbox handed over stays in the live set (liveset.h)
 * until it is gone, so the collector never races it; its job ids go back
 * to the idpool when the container is gone, or stay out of use (parked)
 * until the collector has removed a container the runtime would not
 * delete.  A daemon killed with cleanups pending leaves containers no
 * record owns: the start-up sweep removes them.  Any thread. */
#ifndef EDGECD_CLEANER_H
#define EDGECD_CLEANER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "idpool.h"
#include "liveset.h"
#include "sandbox.h"

/* Sandboxes waiting beyond this hold up the one handing over the next (a
 * runtime that deletes slower than jobs end). */
#define CLEANER_BACKLOG 64

struct cleaner;

int cleaner_start(const struct sandbox_env *env, struct idpool *ids, struct liveset *live,
                  struct cleaner **ret, struct err *err);
/* Take sb apart in the background (sb may be NULL: nothing). */
void cleaner_push(struct cleaner *c, struct sandbox *sb);
/* cleaner_push(), held until cleaner_go(c, the ticket returned): for a
 * sandbox whose job's final commit comes next, so that its unlinks and
 * rmdirs do not share that commit's ext4 journal commit (which made the
 * fsync up to 4 ms slower).  Counted pending at once; a stop takes it apart
 * held or not (cleaner_go then finds nothing).  0 for a NULL sb. */
uint64_t cleaner_push_held(struct cleaner *c, struct sandbox *sb);
void cleaner_go(struct cleaner *c, uint64_t ticket);
/* The collector removed run_id's container: its ids are free again. */
void cleaner_released(struct cleaner *c, const char *run_id);
size_t cleaner_pending(struct cleaner *c);
/* Finish what is pending, end the thread, free.  NULL is fine. */
void cleaner_free(struct cleaner *c);

#endif
