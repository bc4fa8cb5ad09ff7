/* auth.h - API access: bearer tokens from a file the operator names
 * (auth.tokens_file), each stored as the SHA-256 of the token, with a name
 * and scopes.
 *
 *   # /etc/edgecd/tokens.yaml
 *   tokens:
 *     - name: ci
 *       sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
 *       scopes: [submit, read]
 *
 * `edgecd --hash-token` prints the sha256 of a token read from stdin.  A
 * request carries `Authorization: Bearer TOKEN`; the token is hashed and
 * compared with every entry in constant time.  Scopes: read (GET of jobs,
 * logs, algorithms, metrics), submit (POST /v1/jobs), cancel (DELETE), admin
 * (all of them).  Immutable once loaded: any thread may check. */
#ifndef EDGECD_AUTH_H
#define EDGECD_AUTH_H

#include <stddef.h>

#include "base/error.h"

enum auth_scope {
        SCOPE_NONE = 0,       /* open to all: /healthz, /readyz */
        SCOPE_READ = 1u << 0,
        SCOPE_SUBMIT = 1u << 1,
        SCOPE_CANCEL = 1u << 2,
        SCOPE_ADMIN = 1u << 3,
};

enum auth_result {
        AUTH_OK,
        AUTH_MISSING,      /* no Authorization: Bearer header: 401 */
        AUTH_INVALID,      /* no token has that hash: 401 */
        AUTH_FORBIDDEN,    /* a valid token without the scope: 403 */
};

#define AUTH_TOKEN_MIN 16  /* characters: a shorter token is refused by --hash-token */

struct auth;

/* Load the tokens file.  Every problem is reported as
 * "FILE:LINE:COL: tokens[I].KEY: what" through report (may be NULL); err
 * holds the first.  An empty list is an error: with auth on, nothing could
 * reach the API. */
int auth_load(const char *path, void (*report)(const char *line, void *ctx), void *ctx,
              struct auth **ret, struct err *err);
void auth_free(struct auth *a);
size_t auth_count(const struct auth *a);

/* Check an Authorization header value (may be NULL) for `scope`.  On
 * AUTH_OK and AUTH_FORBIDDEN *ret_name is the token's name (borrowed from
 * a, valid while a is). */
enum auth_result auth_check(const struct auth *a, const char *authorization, unsigned scope,
                            const char **ret_name);

/* "read", "submit"... for messages. */
const char *auth_scope_name(unsigned scope);

/* A token as auth_check() compares it: spaces around it are not part of
 * it (tabs are: an entry hashed with one still matches the same header).
 * Points into s; *ret_len its length. */
const char *auth_token_trim(const char *s, size_t *ret_len);

/* The lower-case hex SHA-256 of token (65 bytes with the NUL). */
void auth_hash(const char *token, size_t len, char out[65]);

#endif
