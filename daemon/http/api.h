/* api.h - the HTTP API v1 (README: HTTP API v1): routes, request validation, job
 * submission and waiting, and the mapping from error codes to HTTP statuses.
 * Handlers validate and enqueue; they never build argv or touch containers. */
#ifndef EDGECD_API_H
#define EDGECD_API_H

#include "auth.h"
#include "base/config.h"
#include "base/error.h"
#include "jobs/admission.h"
#include "jobs/breaker.h"
#include "jobs/jobtable.h"
#include "jobs/queue.h"
#include "jobs/scheduler.h"
#include "jobs/warmpool.h"
#include "registry/registry.h"
#include "runtime/runtime.h"
#include "sandbox/cleaner.h"
#include "sandbox/idpool.h"
#include "sandbox/runcgroup.h"
#include "store/store.h"

/* Everything the handlers use; borrowed, must outlive the api. */
struct api_deps {
        const struct config *cfg;
        struct registry *registry;
        struct queue *queue;
        struct store *store;
        struct jobtable *jobs;
        struct scheduler *scheduler;
        const struct runtime *runtime;
        struct breaker *breaker;
        struct admission *admission;
        struct idpool *ids;
        struct warmpool *warm;         /* NULL: no pool */
        struct cleaner *cleaner;
        struct runcgroups *cgroups;    /* the run cgroups (v1's reused slots) */
};

struct api;

/* Bind cfg->listen, or take listen_fd (socket activation) when >= 0,
 * before the daemon takes on any work: an address in use, or one other
 * hosts reach with auth off, stops the start before a stored job runs
 * again.  auth: the tokens (taken, also on failure; NULL when auth is
 * off: then only a local listener is allowed, ERR_INVALID otherwise).
 * Nothing is served, and connections are refused, until api_start();
 * api_stop() releases it. */
int api_bind(const struct config *cfg, int listen_fd, struct auth *auth, struct api **ret, struct err *err);
/* Serve on a's socket.  On failure a is still the caller's to api_stop(). */
int api_start(struct api *a, const struct api_deps *deps, struct err *err);
/* Swap in new tokens (SIGHUP); takes auth.  Requests already authorized go on. */
void api_set_auth(struct api *a, struct auth *auth);
/* The plugins changed: the largest submission the HTTP side spools follows
 * the largest max_input_bytes (under input_ceiling_bytes). */
void api_plugins_changed(struct api *a);
const char *api_address(const struct api *a);
/* The daemon is stopping and its running jobs drain: /readyz says so
 * (503); the API goes on serving (submissions get 503 shutting_down from the
 * closed queue; reads and cancels work). */
void api_drain(struct api *a);
/* Stop accepting connections; requests in flight go on. */
void api_quiesce(struct api *a);
/* Answer every waiting request with what its job has now, then close. */
void api_stop(struct api *a);

/* The route table, as served (for tests that check the OpenAPI document
 * against it). */
struct http_route;
const struct http_route *api_routes(size_t *ret_n);
/* daemon/http/openapi.json as built in (served at GET /v1/openapi.json), *ret_len
 * bytes, followed by a NUL. */
const char *api_openapi(size_t *ret_len);

#endif
