/* http.h - the HTTP server: libmicrohttpd glue, listening sockets, request
 * bodies under a size limit, routing, JSON replies, and suspend/resume so a
 * request can wait for a job without holding a thread.
 *
 * Handlers run on libmicrohttpd's pool of polling threads (a few at once,
 * one per connection at a time) and must not block.
 * A handler either replies (http_reply_*) or suspends the request; a
 * suspended request is handed to its handler again after http_resume().
 * This file knows nothing of jobs: api.c does. */
#ifndef EDGECD_HTTP_H
#define EDGECD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

struct http_server;
struct http_request;

typedef void (*http_handler)(struct http_request *req, void *ctx);

/* pattern: "/v1/jobs/ * /logs" written without spaces; a "*" matches one
 * non-empty path segment, fetched with http_param(req, i).  scope is
 * opaque here: it is handed to the authorizer. */
struct http_route {
        const char *method;
        const char *pattern;
        http_handler fn;
        unsigned scope;
        /* A body over max_body may go up to spool_max, written to an
         * unnamed file in spool_dir as it arrives instead of memory
         * (http_body_spooled()). */
        bool spool;
        /* The query parameters it reads, space-separated (NULL: none):
         * any other, or one given twice, is refused with 400 before the
         * handler runs. */
        const char *query;
};

/* Called once per request when its headers are complete and its route is
 * known, before any of its body is read.  Returns true to go on; false
 * after replying (401, 403). */
typedef bool (*http_authorizer)(struct http_request *req, const struct http_route *route, void *ctx);

struct http_options {
        const char *listen;            /* "HOST:PORT", "[V6]:PORT" or "unix:/path" */
        int listen_fd;                 /* >= 0: a socket passed by systemd, used instead */
        size_t max_body;               /* larger: 413 (but on spool routes) */
        const char *spool_dir;         /* where spooled bodies go; NULL: none are */
        size_t spool_max;              /* a spooled body's limit: larger, 413 (http_set_spool_max()) */
        size_t spool_budget;           /* bodies being spooled at once, in all: past it, 503 */
        size_t max_header_bytes;       /* request line and headers; larger: 431 */
        size_t max_response_bytes;     /* large replies held at once; past it: 503 busy */
        unsigned max_connections;      /* in all */
        unsigned max_connections_per_client;   /* per client IP address (TCP only) */
        unsigned connection_timeout_seconds;   /* an idle connection is closed */
        unsigned unix_mode;            /* file mode of a unix socket */
        const char *unix_group;        /* its group; NULL or "" for the daemon's */
};

/* Bind where o says (the address is the daemon's from here), or take
 * o->listen_fd: connections are refused (a passed socket's wait) until
 * http_serve() listens.  An address in use is tried again for
 * HELD_GRACE_MS.  http_stop() releases it either way. */
int http_bind(const struct http_options *o, struct http_server **ret, struct err *err);
/* Start serving on srv.  routes, authorize and ctx are borrowed for the
 * server's life; authorize may be NULL.  On failure srv is still the
 * caller's to http_stop(). */
int http_serve(struct http_server *srv, const struct http_route *routes, size_t nroutes,
               http_authorizer authorize, void *ctx, struct err *err);
/* The address actually bound (for logs), e.g. "127.0.0.1:8080". */
const char *http_address(const struct http_server *srv);
/* Does the server listen only where no other host can reach it: a unix
 * socket or a loopback address (checked on the bound socket, so a socket
 * passed by systemd counts too)? */
bool http_is_local(const struct http_server *srv);
/* Stop accepting new connections (requests in flight go on). */
void http_quiesce(struct http_server *srv);
/* Close everything.  Every suspended request must be resumed first. */
void http_stop(struct http_server *srv);

/* ---- inside a handler ---- */
const char *http_method(const struct http_request *req);
const char *http_path(const struct http_request *req);
const char *http_param(const struct http_request *req, size_t i);
const char *http_query(struct http_request *req, const char *key);
const char *http_header(struct http_request *req, const char *name);
const char *http_body(const struct http_request *req, size_t *ret_len);
/* Was the body spooled (larger than max_body)?  Then http_body() is a
 * read-only mapping of its file, and http_body_take() hands it over with
 * its share of the spool budget: the caller gives both back with
 * http_body_drop() as soon as it is done (not when the request ends: a
 * waiting one may live for an hour), and http_body() is empty. */
bool http_body_spooled(const struct http_request *req);
/* A new limit for spooled bodies (the plugins changed); any thread. */
void http_set_spool_max(struct http_server *srv, size_t max);
void *http_body_take(struct http_request *req, size_t *ret_len);
void http_body_drop(struct http_server *srv, void *map, size_t len);

/* The client's name, once authorized (a token's name), or NULL. */
void http_set_user(struct http_request *req, const char *name);
const char *http_user(const struct http_request *req);
/* When the request's head was in (now_mono_us()). */
int64_t http_started_us(const struct http_request *req);

/* Per-request state of the handler, freed with free_fn when the request ends. */
void *http_state(const struct http_request *req);
void http_set_state(struct http_request *req, void *state, void (*free_fn)(void *));

/* Add a header to the coming reply. */
/* The answer tells of what the request made and holds no result (a
 * batch's jobs, bounded by max_batch): sent even past
 * http.max_response_bytes, never 503 "retry" (a retry would make them
 * again). */
void http_must_answer(struct http_request *req);
/* Take len more bytes of http.max_response_bytes for the answer about
 * to be built, before reading what it holds: false (nothing taken) when
 * an answer of all that the request reserved would be refused now, the
 * answers being built counted as those held (each handler thread's build
 * of a large result was not, and went on past the cap).  One over the cap
 * goes when nothing else is held or built.  The reply takes the
 * reservation over, counted as what it came to (it is not refused then);
 * the end of the request gives back one never used. */
bool http_reserve_large(struct http_request *req, size_t len);
/* http_reserve_large(), or when it says no, refuse the request (503
 * busy, or with location 303 see_other to it) and return true, before
 * the caller builds it. */
bool http_refuse_large(struct http_request *req, size_t len, const char *location);
void http_add_header(struct http_request *req, const char *name, const char *value);
/* Reply with JSON (takes the reference). */
void http_reply_json(struct http_request *req, unsigned status, json_t *body);
/* Reply with JSON text (takes ownership of text, len bytes, malloc'd). */
void http_reply_json_text(struct http_request *req, unsigned status, char *text, size_t len);
void http_reply_text(struct http_request *req, unsigned status, const char *content_type,
                     const char *text, size_t len);
/* {"error":{"code":code,"message":message[,"field":field]}}; field may be NULL or "". */
void http_reply_error(struct http_request *req, unsigned status, const char *code,
                      const char *message, const char *field);

/* Park the request: the server goes on with others.  Only from a handler. */
void http_suspend(struct http_request *req);
/* Hand a suspended request back to its handler.  Any thread, once per suspend. */
void http_resume(struct http_request *req);
/* Whether each of n suspended requests' client closed its connection (or
 * it broke), into ret_gone: then nothing waits for the answer, and the
 * connection, which counts against the client's limit, is best resumed
 * and let go.  Any thread, while the requests are suspended (a resumed
 * one may be gone). */
void http_clients_gone(struct http_request *const *reqs, size_t n, bool *ret_gone);

#endif
