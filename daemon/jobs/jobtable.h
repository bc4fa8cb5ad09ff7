/* jobtable.h - this daemon's live job handles (queued and running here),
 * by id: what a cancel or a waiting request needs beyond the record.
 * Bounded by queue_capacity + workers.  Holds one reference per job;
 * lookups return a new one.  One mutex, a leaf lock. */
#ifndef EDGECD_JOBTABLE_H
#define EDGECD_JOBTABLE_H

#include <stddef.h>

#include "job.h"

struct jobtable;

struct jobtable *jobtable_new(void);
void jobtable_free(struct jobtable *t);   /* drops its references */

void jobtable_add(struct jobtable *t, struct job *j);
void jobtable_remove(struct jobtable *t, struct job *j);
/* A new reference, or NULL. */
struct job *jobtable_get(struct jobtable *t, const char *id);
/* fn on every job (references taken under the lock, fn called outside). */
void jobtable_foreach(struct jobtable *t, void (*fn)(struct job *j, void *ctx), void *ctx);

#endif
