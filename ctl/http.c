/* http.c - requests to the daemon over libcurl (see http.h). */
#include "http.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static char *dup_trimmed_url(const char *url)
{
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
                n--;
        return strndup(url, n);
}

int conn_open(struct conn *c, const char *url, const char *unix_path, const char *token)
{
        memset(c, 0, sizeof *c);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "edgecdctl: curl_global_init failed\n");
                return -1;
        }
        c->curl = curl_easy_init();
        c->base = dup_trimmed_url(url);
        c->unix_path = unix_path ? strdup(unix_path) : NULL;
        if (token && asprintf(&c->auth, "Authorization: Bearer %s", token) < 0)
                c->auth = NULL, token = NULL;
        if (!c->curl || !c->base || (unix_path && !c->unix_path) || (token && !c->auth)) {
                fprintf(stderr, "edgecdctl: out of memory\n");
                conn_close(c);
                return -1;
        }
        return 0;
}

void conn_close(struct conn *c)
{
        if (c->curl)
                curl_easy_cleanup(c->curl);
        curl_slist_free_all(c->headers);
        free(c->base);
        free(c->unix_path);
        free(c->auth);
        memset(c, 0, sizeof *c);
        curl_global_cleanup();
}

/* curl's write callback: appends to the reply, growing it up to
 * REPLY_MAX (the daemon's own answers are capped well below it). */
static size_t on_data(char *data, size_t size, size_t nmemb, void *userp)
{
        struct reply *r = userp;
        size_t n = size * nmemb;
        if (n > REPLY_MAX - r->len) {
                snprintf(r->errbuf, sizeof r->errbuf, "the answer is larger than %zu bytes", (size_t)REPLY_MAX);
                return 0;
        }
        char *p = realloc(r->body, r->len + n + 1);
        if (!p)
                return 0;
        memcpy(p + r->len, data, n);
        r->body = p;
        r->len += n;
        r->body[r->len] = '\0';
        return n;
}

static int set_headers(struct conn *c, const char *body)
{
        curl_slist_free_all(c->headers);
        c->headers = NULL;
        const char *h[] = {"Accept: application/json",
                           body ? "Content-Type: application/json" : NULL, c->auth};
        for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
                if (!h[i])
                        continue;
                struct curl_slist *l = curl_slist_append(c->headers, h[i]);
                if (!l)
                        return -1;
                c->headers = l;
        }
        return 0;
}

static int set_options(struct conn *c, const char *method, const char *url, const char *body,
                       struct reply *r)
{
        CURL *h = c->curl;
        curl_easy_reset(h);
        if (set_headers(c, body) < 0)
                return -1;
        int bad = 0;
        bad |= curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)c->headers) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, r) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L) != CURLE_OK;
        /* A server that accepts and then says nothing must not hang us. */
        bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms > 0 ? c->timeout_ms : 60000L) != CURLE_OK;
        /* The daemon, not whatever http_proxy names: the token goes nowhere else. */
        bad |= curl_easy_setopt(h, CURLOPT_NOPROXY, "*") != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
        /* "." and ".." are names here, never path steps. */
        bad |= curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "edgecdctl/" EDGECD_VERSION) != CURLE_OK;
        if (c->unix_path)
                bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path) != CURLE_OK;
        if (body) {
                bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK;
                bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) != CURLE_OK;
        }
        if (strcmp(method, "GET") != 0)
                bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
        return bad ? -1 : 0;
}

int conn_request(struct conn *c, const char *method, const char *path, const char *body,
                 struct reply *r)
{
        memset(r, 0, sizeof *r);
        r->body = calloc(1, 1);
        char *url = NULL;
        if (!r->body || asprintf(&url, "%s%s", c->base, path) < 0) {
                snprintf(r->errbuf, sizeof r->errbuf, "out of memory");
                return -1;
        }
        int rc = -1;
        if (set_options(c, method, url, body, r) < 0) {
                snprintf(r->errbuf, sizeof r->errbuf, "could not set up the request");
        } else {
                CURLcode e = curl_easy_perform(c->curl);
                if (e == CURLE_OK) {
                        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
                        rc = 0;
                } else if (!r->errbuf[0]) {
                        snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(e));
                }
        }
        /* The error buffer must not outlive r: curl keeps the pointer. */
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        free(url);
        return rc;
}

void reply_free(struct reply *r)
{
        free(r->body);
        r->body = NULL;
        r->len = 0;
}

/* C0, DEL and C1 (U+0080..U+009F, C2 80..C2 9F in UTF-8) to '?'. */
static void defang(json_t *s)
{
        const char *v = json_string_value(s);
        size_t n = json_string_length(s);
        char *copy = NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)v[i];
                bool c1 = c == 0xC2 && i + 1 < n && (unsigned char)v[i + 1] >= 0x80 && (unsigned char)v[i + 1] <= 0x9F;
                if (c >= 0x20 && c != 0x7F && !c1)
                        continue;
                if (!copy && !(copy = malloc(n)))
                        return;
                memcpy(copy, v, n);
                for (size_t k = i; k < n; k++) {
                        unsigned char d = (unsigned char)copy[k];
                        if (d < 0x20 || d == 0x7F)
                                copy[k] = '?';
                        else if (d == 0xC2 && k + 1 < n && (unsigned char)copy[k + 1] >= 0x80 &&
                                 (unsigned char)copy[k + 1] <= 0x9F)
                                copy[k] = '?', copy[k + 1] = '?', k++;
                }
                json_string_setn_nocheck(s, copy, n);
                free(copy);
                return;
        }
}

static void defang_tree(json_t *j, int depth)
{
        if (depth > 64)
                return;
        if (json_is_string(j)) {
                defang(j);
        } else if (json_is_array(j)) {
                size_t i;
                json_t *v;
                json_array_foreach(j, i, v)
                        defang_tree(v, depth + 1);
        } else if (json_is_object(j)) {
                const char *k;
                json_t *v;
                json_object_foreach(j, k, v)
                        defang_tree(v, depth + 1);
        }
}

static int hex4(const char *s, size_t left)
{
        if (left < 4)
                return -1;
        int v = 0;
        for (int i = 0; i < 4; i++) {
                char c = s[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

/* jansson's parser refuses arrays and objects nested deeper than
 * JSON_PARSER_MAX_DEPTH (2048); the daemon keeps a result of any depth. */
#define HOLDABLE_DEPTH 2000

/* Just past the array or object that opens at t[i] (len if it never closes). */
static size_t skip_nested(const char *t, size_t len, size_t i)
{
        size_t depth = 0;
        bool in = false;
        for (; i < len; i++) {
                char c = t[i];
                if (in) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in = false;
                } else if (c == '"') {
                        in = true;
                } else if (c == '[' || c == '{') {
                        depth++;
                } else if ((c == ']' || c == '}') && --depth == 0) {
                        return i + 1;
                }
        }
        return len;
}

static void put(char *out, size_t *o, const char *s, size_t n)
{
        memcpy(out + *o, s, n);
        *o += n;
}

/* A copy of JSON text with what the daemon passes on from a result (any
 * valid JSON) but jansson cannot hold made holdable: \u0000 and an
 * unpaired surrogate escape become \ufffd, an integer past 64 bits a real,
 * a number past a double's range null, and an array or object nested
 * past HOLDABLE_DEPTH null.  NULL when nothing needed it (or out of
 * memory).  The copy is at most twice as long ("[]" -> "null"). */
static char *holdable_copy(const char *t, size_t len, size_t *ret_len)
{
        char *out = malloc(len * 2 + 8);
        if (!out)
                return NULL;
        size_t o = 0;
        bool in = false, changed = false;
        size_t depth = 0;
        for (size_t i = 0; i < len;) {
                char c = t[i];
                if (!in && (c == '[' || c == '{') && depth == HOLDABLE_DEPTH) {
                        put(out, &o, "null", 4);
                        changed = true;
                        i = skip_nested(t, len, i);
                        continue;
                }
                if (!in && (c == '[' || c == '{'))
                        depth++;
                else if (!in && (c == ']' || c == '}') && depth > 0)
                        depth--;
                if (in && c == '\\' && i + 1 < len) {
                        int v = t[i + 1] == 'u' ? hex4(t + i + 2, len - i - 2) : -1;
                        int low = v >= 0xD800 && v <= 0xDBFF && i + 11 < len && t[i + 6] == '\\' &&
                                  t[i + 7] == 'u' ? hex4(t + i + 8, len - i - 8) : -1;
                        bool pair = low >= 0xDC00 && low <= 0xDFFF;
                        size_t n = v < 0 ? 2 : pair ? 12 : 6;
                        if (v == 0 || (v >= 0xD800 && v <= 0xDFFF && !pair)) {
                                put(out, &o, "\\ufffd", 6);
                                changed = true;
                        } else {
                                put(out, &o, t + i, n);
                        }
                        i += n;
                        continue;
                }
                if (c == '"')
                        in = !in;
                if (!in && (c == '-' || (c >= '0' && c <= '9'))) {
                        size_t n = strspn(t + i, "+-0123456789.eE");
                        if (n > len - i)
                                n = len - i;
                        char *num = strndup(t + i, n);
                        if (!num) {
                                free(out);
                                return NULL;
                        }
                        bool real = strpbrk(num, ".eE") != NULL;
                        errno = 0;
                        if (!real)
                                (void)strtoll(num, NULL, 10);
                        bool int_over = !real && errno == ERANGE;
                        errno = 0;
                        double d = strtod(num, NULL);
                        bool over = errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL);
                        free(num);
                        if (over) {
                                put(out, &o, "null", 4);
                                changed = true;
                        } else {
                                put(out, &o, t + i, n);
                                if (int_over) {
                                        put(out, &o, ".0", 2);
                                        changed = true;
                                }
                        }
                        i += n;
                        continue;
                }
                out[o++] = c;
                i++;
        }
        if (!changed) {
                free(out);
                return NULL;
        }
        *ret_len = o;
        return out;
}

/* json_loadb of a daemon's answer; one holding what jansson cannot hold is
 * read from holdable_copy, saying so on stderr. */
static json_t *load_answer(const char *text, size_t len, json_error_t *e)
{
        json_t *j = json_loadb(text, len, JSON_DECODE_ANY, e);
        if (j)
                return j;
        size_t n = 0;
        char *copy = holdable_copy(text, len, &n);
        if (!copy)
                return NULL;
        j = json_loadb(copy, n, JSON_DECODE_ANY, NULL);
        free(copy);
        if (j)
                fprintf(stderr, "edgecdctl: the answer holds values this client cannot hold as they are "
                                "(\\u0000, an unpaired surrogate, a number out of range, nesting too deep): "
                                "it reads them replaced; the daemon's text is unchanged, and --json "
                                "prints it as it is\n");
        return j;
}

json_t *json_defanged(const char *text, size_t len)
{
        json_t *j = load_answer(text, len, NULL);
        defang_tree(j, 0);
        return j;
}

json_t *reply_json(const struct reply *r)
{
        json_error_t e;
        json_t *j = load_answer(r->body ? r->body : "", r->len, &e);
        if (!j)
                fprintf(stderr, "edgecdctl: the server's answer (HTTP %ld) is not JSON (line %d, column %d)\n",
                        r->status, e.line, e.column);
        defang_tree(j, 0);
        return j;
}

char *conn_escape(struct conn *c, const char *s)
{
        char *e = curl_easy_escape(c->curl, s, 0);
        if (!e)
                return NULL;
        char *copy = strdup(e);
        curl_free(e);
        return copy;
}
