/* callbackurl.h - the pure parts of callbacks (callback.h): callback URLs
 * and the allowlist they must match, the signature, the secret file and
 * the backoff.  No threads, no I/O but the secret's read: the config
 * loader uses it to check callbacks.allow, the API to check a submission.
 *
 * The rules: a URL is http or https, at most CALLBACK_URL_MAX bytes of
 * printable ASCII, with no user info, fragment, backslash, `.`/`..` path
 * segment (also percent-encoded) or encoded slash or backslash.  It
 * matches an allowlist entry when the scheme, the lower-cased host and the
 * port (its default when left out) are equal and the entry's path is a
 * prefix of its path on a segment boundary. */
#ifndef EDGECD_CALLBACKURL_H
#define EDGECD_CALLBACKURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CALLBACK_URL_MAX 2048
/* "scheme://host:port" of a parsed URL, with its NUL. */
#define CALLBACK_DEST_MAX 300
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

/* The receiver url goes to, "scheme://host:port" (what the per-receiver
 * cap counts), into out (size >= CALLBACK_DEST_MAX); false and "" when
 * url does not parse. */
bool callback_url_dest(const char *url, char *out, size_t size);

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

/* The wait before attempt n+1 after n failed ones: backoff_ms * 2^(n-1),
 * at most max_backoff_ms, then a random part of its second half taken off
 * (jitter).  rnd in [0, 1). */
int64_t callback_backoff_ms(int64_t backoff_ms, int64_t max_backoff_ms, int64_t n, double rnd);

#endif
