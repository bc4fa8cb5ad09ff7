/* breaker.h - per-algorithm health: a circuit breaker (the seed's health
 * check: healthy -> degraded -> isolated -> recovery).
 *
 * Runs of an algorithm that end in a runtime error or a sandbox violation
 * are counted in a row; any other outcome (success, the algorithm's own
 * failure, a timeout) ends the row.  After `degrade_after` in a row the
 * algorithm is degraded: one of its jobs runs at a time.  After
 * `isolate_after` it is isolated: submissions get 503
 * algorithm_unavailable with the reason, and its queued jobs wait.  Once
 * `cooldown` has passed, one job (the next queued, or the next submitted)
 * runs as a probe: if it ends the row the algorithm is healthy again, if not
 * it is isolated for another cool-down.  Cancelled and interrupted runs
 * count neither way.
 *
 * State is kept by algorithm name, apart from the registry, so a rescan (or
 * a new version) does not reset it.  Any thread; one mutex, taken after the
 * queue's and the scheduler's. */
#ifndef EDGECD_BREAKER_H
#define EDGECD_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"
#include "base/joberror.h"

enum health { HEALTH_HEALTHY, HEALTH_DEGRADED, HEALTH_ISOLATED, HEALTH_PROBING };

struct breaker;

struct breaker *breaker_new(int64_t degrade_after, int64_t isolate_after, int64_t cooldown_ms);
void breaker_free(struct breaker *b);

const char *health_name(enum health h);

/* May a job of `name` start, with `running` of its jobs running now?
 * Degraded allows one at a time; isolated none, until the cool-down is
 * over: then exactly one, and *ret_probe says this job is the probe. */
bool breaker_admit(struct breaker *b, const char *name, size_t running, bool *ret_probe);
/* The same question without taking the probe's place. */
bool breaker_would_admit(struct breaker *b, const char *name, size_t running);

/* At submit: ERR_UNAVAILABLE with the reason while `name` is isolated and
 * its cool-down is not over. */
int breaker_check_submit(struct breaker *b, const char *name, struct err *err);

/* A run of `name` ended with e (message: why, for the record).  probe:
 * it was the probe job. */
void breaker_record(struct breaker *b, const char *name, enum job_error e, const char *message, bool probe);

/* A probe job that ended before it ran (cancelled in the queue or before
 * its container started): another job may probe. */
void breaker_probe_abandoned(struct breaker *b, const char *name);

enum health breaker_state(struct breaker *b, const char *name);

/* {"state":..., "consecutive_failures":N, "reason":..., "since":..., "retry_at":...}
 * for `name` (healthy when never seen). */
json_t *breaker_json(struct breaker *b, const char *name);

/* fn for every algorithm that is not healthy (for /readyz and /metrics). */
void breaker_foreach_unhealthy(struct breaker *b,
                               void (*fn)(const char *name, enum health h, const char *reason, void *ctx),
                               void *ctx);
/* How many algorithms are in each state (indexed by enum health). */
void breaker_counts(struct breaker *b, size_t counts[4]);

#endif
