/* auth.c - bearer tokens (see auth.h).  The file is parsed with the YAML
 * plumbing config.c uses; hashes with nettle's SHA-256. */
#include "auth.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <nettle/sha2.h>

#include "base/util.h"
#include "base/yamldoc.h"

#define TOKENS_FILE_MAX (1024 * 1024)
#define TOKENS_MAX 1024
#define NAME_MAX_LEN 64

struct token {
        char *name;
        unsigned char hash[SHA256_DIGEST_SIZE];
        unsigned scopes;
};

struct auth {
        struct token *tokens;
        size_t n;
};

static const struct {
        const char *name;
        unsigned scope;
} scope_names[] = {
        { "read", SCOPE_READ }, { "submit", SCOPE_SUBMIT }, { "cancel", SCOPE_CANCEL }, { "admin", SCOPE_ADMIN },
};

const char *auth_scope_name(unsigned scope)
{
        for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
                if (scope_names[i].scope == scope)
                        return scope_names[i].name;
        return "none";
}

const char *auth_token_trim(const char *s, size_t *ret_len)
{
        while (*s == ' ')
                s++;
        size_t len = strlen(s);
        while (len && s[len - 1] == ' ')
                len--;
        *ret_len = len;
        return s;
}

void auth_hash(const char *token, size_t len, char out[65])
{
        struct sha256_ctx ctx;
        unsigned char d[SHA256_DIGEST_SIZE];
        sha256_init(&ctx);
        sha256_update(&ctx, len, (const uint8_t *)token);
        sha256_digest(&ctx, sizeof d, d);
        for (size_t i = 0; i < sizeof d; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void auth_free(struct auth *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                free(a->tokens[i].name);
        free(a->tokens);
        free(a);
}

size_t auth_count(const struct auth *a)
{
        return a ? a->n : 0;
}

static int hexval(int c)
{
        return isdigit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool name_ok(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > NAME_MAX_LEN)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && !strchr("_.@-", *s))
                        return false;
        return true;
}

/* One entry of the tokens list; problems reported under tokens[i].KEY. */
static void load_token(struct yamldoc *y, const yaml_node_t *map, size_t i, struct ydiag *d, struct auth *a)
{
        _cleanup_free_ char *prefix = xasprintf("tokens[%zu]", i);
        if (map->type != YAML_MAPPING_NODE) {
                ydiag_add(d, map, prefix, "expected a mapping with name, sha256 and scopes, got %s", ynode_kind(map));
                return;
        }
        if (yamldoc_check_keys(y, map, prefix, d) < 0)
                return;
        struct token t = { 0 };
        bool have_hash = false, ok = true;
        const yaml_node_t *hash_node = NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                const yaml_node_t *kn = yamldoc_node(y, p->key);
                const yaml_node_t *vn = yamldoc_node(y, p->value);
                const char *k = ynode_str(kn);
                if (!k || yamldoc_key_dup(y, map, p))
                        continue;
                _cleanup_free_ char *key = xasprintf("%s.%s", prefix, k);
                if (!strcmp(k, "name")) {
                        if (yget_string(vn, key, d, &t.name) < 0) {
                                ok = false;
                        } else if (!name_ok(t.name)) {
                                ydiag_add(d, vn, key, "`%s` must be 1 to %d characters of letters, digits, _ . @ -",
                                          t.name, NAME_MAX_LEN);
                                ok = false;
                        }
                } else if (!strcmp(k, "sha256")) {
                        const char *h = ynode_str(vn);
                        bool good = h && strlen(h) == 2 * SHA256_DIGEST_SIZE;
                        for (size_t b = 0; good && b < SHA256_DIGEST_SIZE; b++) {
                                int hi = hexval((unsigned char)h[2 * b]), lo = hexval((unsigned char)h[2 * b + 1]);
                                good = hi >= 0 && lo >= 0;
                                if (good)
                                        t.hash[b] = (unsigned char)((unsigned)hi << 4 | (unsigned)lo);
                        }
                        if (!good) {
                                ydiag_add(d, vn, key, "expected 64 hex digits (the token's SHA-256: edgecd --hash-token)");
                                ok = false;
                        }
                        have_hash = good;
                        hash_node = vn;
                } else if (!strcmp(k, "scopes")) {
                        _cleanup_strv_ char **v = NULL;
                        if (yget_strv(y, vn, key, d, &v) < 0) {
                                ok = false;
                                continue;
                        }
                        for (size_t s = 0; v && v[s]; s++) {
                                unsigned sc = 0;
                                for (size_t m = 0; m < ARRAY_SIZE(scope_names); m++)
                                        if (!strcmp(v[s], scope_names[m].name))
                                                sc = scope_names[m].scope;
                                if (!sc) {
                                        ydiag_add(d, yamldoc_node(y, vn->data.sequence.items.start[s]), key,
                                                  "unknown scope `%s` (read, submit, cancel, admin)", v[s]);
                                        ok = false;
                                }
                                t.scopes |= sc;
                        }
                } else {
                        ydiag_add(d, kn, key, "unknown key (expected name, sha256, scopes)");
                        ok = false;
                }
        }
        if (!t.name) {
                ydiag_add(d, map, prefix, "name is required");
                ok = false;
        }
        if (!have_hash && ok) {
                ydiag_add(d, map, prefix, "sha256 is required");
                ok = false;
        }
        if (ok && !t.scopes) {
                ydiag_add(d, map, prefix, "scopes must name at least one of read, submit, cancel, admin");
                ok = false;
        }
        for (size_t o = 0; ok && o < a->n; o++) {
                if (!strcmp(a->tokens[o].name, t.name)) {
                        ydiag_add(d, map, prefix, "name `%s` is used twice", t.name);
                        ok = false;
                } else if (!memcmp(a->tokens[o].hash, t.hash, sizeof t.hash)) {
                        /* One token would answer to both, with the scopes
                         * and name of whichever came last. */
                        _cleanup_free_ char *key = xasprintf("%s.sha256", prefix);
                        ydiag_add(d, hash_node, key, "the same as token `%s`'s: each token needs its own",
                                  a->tokens[o].name);
                        ok = false;
                }
        }
        if (!ok) {
                free(t.name);
                return;
        }
        a->tokens = xrealloc(a->tokens, (a->n + 1) * sizeof *a->tokens);
        a->tokens[a->n++] = t;
}

int auth_load(const char *path, void (*report)(const char *line, void *ctx), void *ctx,
              struct auth **ret, struct err *err)
{
        struct ydiag d;
        ydiag_init(&d, path, report, ctx);
        struct yamldoc *y = NULL;
        if (yamldoc_load(path, TOKENS_FILE_MAX, NULL, &y, err) < 0) {
                /* Not a line of the file: the key that named it, as every
                 * other configuration problem names its key. */
                _cleanup_free_ char *line = xasprintf("auth.tokens_file: %s", err->msg);
                ydiag_line(&d, line);
                int r = ydiag_result(&d, err->code, err);
                ydiag_done(&d);
                return r;
        }
        struct auth *a = xcalloc(1, sizeof *a);
        const yaml_node_t *root = yamldoc_root(y);
        const yaml_node_t *list = NULL;
        if (!root || root->type != YAML_MAPPING_NODE) {
                ydiag_add(&d, root, NULL, "expected a mapping with a `tokens` list");
        } else if (yamldoc_check_keys(y, root, NULL, &d) == 0) {
                for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                        const yaml_node_t *kn = yamldoc_node(y, p->key);
                        const char *k = ynode_str(kn);
                        if (!k || yamldoc_key_dup(y, root, p))
                                continue;
                        if (!strcmp(k, "tokens"))
                                list = yamldoc_node(y, p->value);
                        else
                                ydiag_add(&d, kn, k, "unknown key (expected tokens)");
                }
                if (!list)
                        ydiag_add(&d, root, "tokens", "is required");
                else if (list->type != YAML_SEQUENCE_NODE)
                        ydiag_add(&d, list, "tokens", "expected a list, got %s", ynode_kind(list));
        }
        if (list && list->type == YAML_SEQUENCE_NODE) {
                size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
                if (n > TOKENS_MAX)
                        ydiag_add(&d, list, "tokens", "%zu tokens, over the limit of %d", n, TOKENS_MAX);
                for (size_t i = 0; i < n && i < TOKENS_MAX; i++)
                        load_token(y, yamldoc_node(y, list->data.sequence.items.start[i]), i, &d, a);
                if (n == 0)
                        ydiag_add(&d, list, "tokens", "is empty: no client could reach the API");
        }
        int r = ydiag_result(&d, ERR_INVALID, err);
        ydiag_done(&d);
        yamldoc_free(y);
        if (r < 0) {
                auth_free(a);
                return -1;
        }
        *ret = a;
        return 0;
}

enum auth_result auth_check(const struct auth *a, const char *authorization, unsigned scope,
                            const char **ret_name)
{
        *ret_name = NULL;
        if (!authorization)
                return AUTH_MISSING;
        while (*authorization == ' ')
                authorization++;
        if (strncasecmp(authorization, "Bearer ", 7))
                return AUTH_MISSING;
        size_t len;
        const char *tok = auth_token_trim(authorization + 7, &len);
        if (len == 0)
                return AUTH_MISSING;
        struct sha256_ctx ctx;
        unsigned char h[SHA256_DIGEST_SIZE];
        sha256_init(&ctx);
        sha256_update(&ctx, len, (const uint8_t *)tok);
        sha256_digest(&ctx, sizeof h, h);
        /* Every entry is compared, every byte: the time says nothing of
         * which entry, or how much of it, matched. */
        const struct token *match = NULL;
        for (size_t i = 0; a && i < a->n; i++) {
                unsigned char diff = 0;
                for (size_t b = 0; b < SHA256_DIGEST_SIZE; b++)
                        diff |= (unsigned char)(h[b] ^ a->tokens[i].hash[b]);
                volatile bool eq = diff == 0;
                if (eq)
                        match = &a->tokens[i];
        }
        if (!match)
                return AUTH_INVALID;
        *ret_name = match->name;
        if (scope == SCOPE_NONE || (match->scopes & (scope | SCOPE_ADMIN)))
                return AUTH_OK;
        return AUTH_FORBIDDEN;
}
