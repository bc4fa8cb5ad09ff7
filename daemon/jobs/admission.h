/* admission.h - whether a queued job may start now.
 *
 * A job starts only while (1) its plugin runs fewer than its manifest's
 * max_concurrent jobs (and one at a time when its algorithm is degraded,
 * none while isolated: breaker.h), and (2) its memory limit fits the pool
 * next to the running jobs' (a job alone always fits).  The first job, in
 * queue order (priority, then age), that waits for memory holds the line:
 * no job behind it starts until it has, or a stream of small jobs could
 * keep a big one waiting for ever; if it leaves the queue (cancelled), the
 * line is free.  A job ahead of it (a higher priority, come later) is not
 * held, and takes the line when it waits for memory too.
 * The global concurrency limit is the number of workers.
 *
 * admission_try() is the queue's predicate: it runs under the queue lock
 * and, when it says yes, reserves the slot and the memory, which
 * admission_release() gives back.  Lock order: queue, admission, breaker,
 * a job's. */
#ifndef EDGECD_ADMISSION_H
#define EDGECD_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "breaker.h"
#include "job.h"

struct admission;

/* pool_mb 0: three quarters of the host's memory. */
struct admission *admission_new(int64_t pool_mb, const struct limits *defaults, struct breaker *b);
void admission_free(struct admission *a);

/* The queue predicate (ctx: the admission).  A job admitted as its
 * algorithm's breaker probe has j->breaker_probe set. */
bool admission_try(struct job *j, void *ctx);
void admission_release(struct admission *a, struct job *j);

size_t admission_running(struct admission *a);
void admission_memory(struct admission *a, int64_t *ret_used_mb, int64_t *ret_pool_mb);

#endif
