/* callback.h - a job's callback: when it is final, its job object is
 * POSTed to the callback_url it was submitted with.
 *
 * Who may be called: only URLs that match an entry of callbacks.allow,
 * compared on parsed, normalised parts (scheme, lower-case host, port with
 * its default, path prefix on segment boundaries), never as raw strings.
 * URLs with user info, fragments, backslashes, dot segments or encoded
 * slashes and dots are refused outright; redirects are never followed.
 *
 * What is sent: the body is the job object as GET /v1/jobs/{id} shows it,
 * signed: `X-Edgecd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>">` with the key in callbacks.secret_file; `X-Edgecd-Job-Id`,
 * `X-Edgecd-Delivery` (the same on every attempt: receivers dedupe on it)
 * and `X-Edgecd-Attempt`.
 *
 * How: one delivery thread (libcurl's multi interface) keeps at most
 * callbacks.concurrency deliveries in flight; the store is the queue (the
 * jobs whose callback is pending, with when each is due), so memory holds
 * those few deliveries only, however many wait, and a restart (even after
 * SIGKILL) picks up what was pending.  2xx: delivered.  3xx and 4xx other
 * than 408 and 429: failed for good.  Anything else (5xx, 408, 429, no
 * connection, a timeout) is tried again after backoff_ms, doubling up to
 * max_backoff_ms with jitter, up to max_attempts in all.  At least once:
 * a delivery whose outcome was not yet recorded when the daemon stopped is
 * sent again. */
#ifndef EDGECD_CALLBACK_H
#define EDGECD_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "store.h"

#define CALLBACK_URL_MAX 2048
#define CALLBACK_SECRET_MIN 16
#define CALLBACK_SECRET_MAX 4096

/* A URL's parts, normalised: scheme "http" or "https", host lower-case
 * (an IPv6 address without brackets), port with the scheme's default,
 * path (at least "/", no query). */
struct callback_url {
        char scheme[6];
        char host[256];
        unsigned port;
        char path[CALLBACK_URL_MAX + 1];
        bool has_query;
};

/* Parse and check url (rules above).  ERR_INVALID with why. */
int callback_url_parse(const char *url, struct callback_url *ret, struct err *err);

/* Whether url may be called: it parses and matches an entry of allow
 * (NULL-terminated; entries are checked by the config loader).  0, or -1
 * with ERR_INVALID saying why not. */
int callback_url_allowed(char *const *allow, const char *url, struct err *err);

/* Why an allowlist entry is unusable, or NULL when it is fine. */
const char *callback_allow_problem(const char *entry);

/* The signature header's value for a body sent at unix time t:
 * "t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>" into out (size >= 96). */
void callback_sign(const void *key, size_t key_len, int64_t t, const void *body, size_t len, char *out,
                   size_t size);

/* Read the HMAC key: a regular file, neither group- nor world-accessible,
 * CALLBACK_SECRET_MIN to CALLBACK_SECRET_MAX bytes once trailing newlines
 * are cut.  Caller frees *ret. */
int callback_secret_load(const char *path, char **ret, size_t *ret_len, struct err *err);

/* ---- delivery ---- */

struct callbacks;

/* Start the delivery thread (nothing when callbacks.allow is empty: *ret
 * NULL).  Reads the secret.  The store must outlive callbacks_stop(). */
int callbacks_start(const struct config *cfg, struct store *store, struct callbacks **ret, struct err *err);
/* A job with a callback became final (its record is committed): look at
 * the store again now.  Any thread; NULL is fine. */
void callbacks_kick(struct callbacks *c);
/* Stop: deliveries in flight are abandoned (they stay pending in the
 * store, sent again by the next start), writes in flight are waited for.
 * Frees c; NULL is fine. */
void callbacks_stop(struct callbacks *c);

/* The wait before attempt n+1 after n failed ones: backoff_ms * 2^(n-1),
 * at most max_backoff_ms, then a random part of its second half taken off
 * (jitter).  rnd in [0, 1). */
int64_t callback_backoff_ms(int64_t backoff_ms, int64_t max_backoff_ms, int64_t n, double rnd);

#endif
