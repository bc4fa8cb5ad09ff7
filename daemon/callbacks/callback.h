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
 * callbacks.concurrency deliveries in flight, at most half of them (at
 * least one) to one scheme://host:port, the last free one never to a
 * receiver with one in flight, and (with two or more) all but one at most
 * to unanswering receivers: those whose last attempt that ended got no
 * answer (a timeout, no connection; the 64 noted last are remembered,
 * until one answers), each for max_backoff_ms after its last miss.  The
 * store is the queue (the
 * jobs whose callback is pending, with when each is due), so memory holds
 * those few deliveries only, however many wait, and a restart (even after
 * SIGKILL) picks up what was pending.  2xx: delivered (whatever the body
 * does after; at most a few KiB of it are read).  3xx and 4xx other
 * than 408 and 429: failed for good.  Anything else (5xx, 408, 429, no
 * connection, a timeout) is tried again after backoff_ms, doubling up to
 * max_backoff_ms with jitter (a 429/503 Retry-After in seconds instead, at
 * most max_backoff_ms), up to max_attempts in all.  At least once:
 * a delivery whose outcome was not yet recorded when the daemon stopped is
 * sent again. */
#ifndef EDGECD_CALLBACK_H
#define EDGECD_CALLBACK_H

#include "base/callbackurl.h"
#include "base/config.h"
#include "base/error.h"
#include "store/store.h"

/* ---- admission ---- */

/* A batch's receivers' backlogs: each counted from the store once, at its
 * first item, then kept up to date with the batch's own items as they are
 * taken (callbacks_taken).  Its items are not in the store before the
 * batch is committed: counted there alone, every item to a receiver one
 * short of its cap was accepted, and each item read that receiver's
 * backlog again (up to max_pending index entries). */
struct callback_tally {
        size_t n;
        struct callback_backlog {
                char dest[CALLBACK_DEST_MAX];
                size_t pending;
        } *v;
};

/* May a job with a callback to url be accepted?  Not when
 * callbacks.max_pending callbacks to its receiver are pending already
 * (jobs queued, running or ended; with tally, a batch's items taken
 * before it too): -1 with ERR_BUSY.  A receiver that never answers would
 * otherwise grow the store without end, since a job whose callback is
 * pending is never pruned.  A store that cannot be read admits (logged).
 * tally may be NULL (a single submit). */
int callbacks_admit(const struct config *cfg, struct store *store, const char *url, struct callback_tally *tally,
                    struct err *err);
/* A job with a callback to url, admitted with tally, was taken. */
void callbacks_taken(struct callback_tally *tally, const char *url);
void callback_tally_clear(struct callback_tally *tally);

/* ---- delivery ---- */

struct callbacks;

/* Start the delivery thread (nothing when callbacks.allow is empty: *ret
 * NULL).  Reads the secret.  The store must outlive callbacks_stop(). */
int callbacks_start(const struct config *cfg, struct store *store, struct callbacks **ret, struct err *err);
/* Read callbacks.secret_file again (SIGHUP): callbacks signed from now on
 * use what it holds.  A file that fails the checks leaves the secret in
 * force (-1, err says why).  0 and nothing done when c is NULL. */
int callbacks_reload_secret(struct callbacks *c, struct err *err);
/* Callbacks off (no struct callbacks): fail the pending ones that are
 * due, "not sent" (at the start, and whenever a job with a callback_url
 * recovered from disk becomes final).  On the caller's thread. */
void callbacks_fail_while_off(struct store *store);
/* A job with a callback to url became final (its record is committed):
 * look at the store again now, unless url's receiver is at its cap (its
 * callback goes when a slot frees).  NULL url: look
 * whatever (jobs to several receivers).  Any thread; NULL c is fine. */
void callbacks_kick(struct callbacks *c, const char *url);
/* Stop: deliveries in flight are abandoned (they stay pending in the
 * store, sent again by the next start), writes in flight are waited for.
 * Frees c; NULL is fine. */
void callbacks_stop(struct callbacks *c);

#endif
