/* test-openapi.c - the OpenAPI document built into the daemon
 * (daemon/http/openapi.json, served at GET /v1/openapi.json) against the route
 * table the daemon serves (api_routes()), both ways: every route is
 * documented with its method and scope, and every documented operation is
 * a route.  The check is run on broken copies of the document too, so it
 * cannot pass by finding nothing.  (tests/integration/test_openapi.py
 * validates the document with an OpenAPI validator and checks real answers
 * against it.) */
#include "testutil.h"

#include <ctype.h>
#include <jansson.h>

#include "http/api.h"
#include "http/auth.h"
#include "http/http.h"

static const char *const http_methods[] = { "get", "put", "post", "delete", "options", "head", "patch", "trace" };

/* "/v1/jobs/{id}/logs" -> "/v1/jobs/(*)/logs", as the route table writes it. */
static void to_pattern(const char *path, char *out, size_t size)
{
        size_t n = 0;
        for (const char *p = path; *p && n + 2 < size; p++) {
                if (*p == '{') {
                        const char *close = strchr(p, '}');
                        if (close) {
                                out[n++] = '*';
                                p = close;
                                continue;
                        }
                }
                out[n++] = *p;
        }
        out[n] = '\0';
}

static void lower(const char *s, char *out, size_t size)
{
        size_t n = 0;
        for (; *s && n + 1 < size; s++)
                out[n++] = (char)tolower((unsigned char)*s);
        out[n] = '\0';
}

/* The document's path item for a route pattern, or NULL. */
static json_t *path_item(json_t *doc, const char *pattern)
{
        const char *path;
        json_t *item;
        json_object_foreach(json_object_get(doc, "paths"), path, item) {
                char pat[256];
                to_pattern(path, pat, sizeof pat);
                if (!strcmp(pat, pattern))
                        return item;
        }
        return NULL;
}

/* Does an operation need no token (its `security` is [] or allows {})? */
static bool open_to_all(json_t *doc, json_t *op)
{
        json_t *sec = json_object_get(op, "security");
        if (!sec)
                sec = json_object_get(doc, "security");
        if (!sec || json_array_size(sec) == 0)
                return true;
        size_t i;
        json_t *req;
        json_array_foreach(sec, i, req)
                if (json_object_size(req) == 0)
                        return true;
        return false;
}

/* Every problem between doc and routes, one line each into out (may be
 * NULL); returns how many. */
static size_t compare(json_t *doc, const struct http_route *routes, size_t n, char *out, size_t size)
{
        size_t problems = 0, used = 0;
#define PROBLEM(...)                                                                   \
        do {                                                                           \
                problems++;                                                            \
                if (out && used < size) {                                              \
                        int w = snprintf(out + used, size - used, __VA_ARGS__);        \
                        used += w > 0 ? (size_t)w : 0;                                 \
                        if (used < size)                                               \
                                out[used++] = '\n', out[used] = '\0';                  \
                }                                                                      \
        } while (0)
        if (out && size)
                *out = '\0';
        /* Every route, documented. */
        for (size_t i = 0; i < n; i++) {
                const struct http_route *r = &routes[i];
                char m[16];
                lower(r->method, m, sizeof m);
                json_t *item = path_item(doc, r->pattern);
                json_t *op = json_object_get(item, m);
                if (!op) {
                        PROBLEM("%s %s is served but not documented", r->method, r->pattern);
                        continue;
                }
                const char *scope = json_string_value(json_object_get(op, "x-edgecd-scope"));
                const char *want = auth_scope_name(r->scope);
                if (!scope || strcmp(scope, want))
                        PROBLEM("%s %s: x-edgecd-scope is %s, the route's scope is %s", r->method, r->pattern,
                                scope ? scope : "(none given)", want);
                /* /metrics may be public (auth.metrics_public): it allows {} too. */
                bool open = r->scope == SCOPE_NONE;
                if (open != open_to_all(doc, op) && strcmp(r->pattern, "/metrics"))
                        PROBLEM("%s %s: the document says it %s a token, the route %s", r->method, r->pattern,
                                open ? "needs" : "needs no", open ? "does not" : "does");
                if (!json_object_get(op, "responses") || !json_object_size(json_object_get(op, "responses")))
                        PROBLEM("%s %s: no responses documented", r->method, r->pattern);
                /* The query parameters it takes (others are refused): the
                 * documented ones, of the operation and of its path. */
                char documented[256] = "";
                json_t *lists[] = { json_object_get(item, "parameters"), json_object_get(op, "parameters") };
                for (size_t l = 0; l < 2; l++) {
                        size_t k;
                        json_t *prm;
                        json_array_foreach(lists[l], k, prm) {
                                if (strcmp(json_string_value(json_object_get(prm, "in")) ?: "", "query"))
                                        continue;
                                size_t at = strlen(documented);
                                snprintf(documented + at, sizeof documented - at, "%s%s", at ? " " : "",
                                         json_string_value(json_object_get(prm, "name")) ?: "?");
                        }
                }
                if (strcmp(documented, r->query ? r->query : ""))
                        PROBLEM("%s %s: the query parameters documented are `%s`, the route takes `%s`", r->method,
                                r->pattern, documented, r->query ? r->query : "");
        }
        /* Every documented operation, served. */
        const char *path;
        json_t *item;
        json_object_foreach(json_object_get(doc, "paths"), path, item) {
                char pat[256];
                to_pattern(path, pat, sizeof pat);
                const char *key;
                json_t *op;
                json_object_foreach(item, key, op) {
                        bool method = false;
                        for (size_t k = 0; k < sizeof http_methods / sizeof *http_methods; k++)
                                method |= !strcmp(key, http_methods[k]);
                        if (!method)
                                continue;
                        bool served = false;
                        for (size_t i = 0; i < n && !served; i++) {
                                char m[16];
                                lower(routes[i].method, m, sizeof m);
                                served = !strcmp(m, key) && !strcmp(routes[i].pattern, pat);
                        }
                        if (!served)
                                PROBLEM("%s %s is documented but not served", key, path);
                }
        }
#undef PROBLEM
        return problems;
}

static json_t *load_doc(void)
{
        size_t len;
        const char *text = api_openapi(&len);
        ck_assert_uint_gt(len, 0);
        ck_assert_int_eq(text[len], '\0');
        json_error_t e;
        json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
        ck_assert_msg(doc, "the built-in document is not JSON: line %d: %s", e.line, e.text);
        return doc;
}

START_TEST(test_same_as_source)
{
        /* What the daemon has built in is daemon/http/openapi.json as it is. */
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/daemon/http/openapi.json", tu_src()), 0);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f, "%s", path);
        size_t len;
        const char *doc = api_openapi(&len);
        char *buf = malloc(len + 2);
        size_t got = fread(buf, 1, len + 1, f);
        fclose(f);
        ck_assert_uint_eq(got, len);
        ck_assert(!memcmp(buf, doc, len));
        free(buf);
        free(path);
}
END_TEST

START_TEST(test_routes_match)
{
        json_t *doc = load_doc();
        ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "info"), "version")), EDGECD_VERSION);
        size_t n;
        const struct http_route *routes = api_routes(&n);
        ck_assert_uint_ge(n, 12);
        char why[4096];
        size_t problems = compare(doc, routes, n, why, sizeof why);
        ck_assert_msg(problems == 0, "the document and the routes differ:\n%s", why);
        json_decref(doc);
}
END_TEST

/* The check finds what it is for: a route missing from the document, an
 * operation no route serves, a wrong scope, a public route made private. */
START_TEST(test_compare_catches)
{
        size_t n;
        const struct http_route *routes = api_routes(&n);
        char why[4096];

        json_t *doc = load_doc();
        ck_assert_int_eq(json_object_del(json_object_get(json_object_get(doc, "paths"), "/v1/jobs/{id}"), "delete"), 0);
        ck_assert_uint_eq(compare(doc, routes, n, why, sizeof why), 1);
        ck_assert_ptr_nonnull(strstr(why, "DELETE /v1/jobs/* is served but not documented"));
        json_decref(doc);

        doc = load_doc();
        json_object_set_new(json_object_get(doc, "paths"), "/v1/jobs/{id}/result",
                            json_pack("{s:{s:s, s:{}}}", "get", "x-edgecd-scope", "read", "responses"));
        ck_assert_uint_eq(compare(doc, routes, n, why, sizeof why), 1);
        ck_assert_ptr_nonnull(strstr(why, "get /v1/jobs/{id}/result is documented but not served"));
        json_decref(doc);

        doc = load_doc();
        json_t *get = json_object_get(json_object_get(json_object_get(doc, "paths"), "/v1/jobs"), "get");
        json_object_set_new(get, "x-edgecd-scope", json_string("submit"));
        ck_assert_uint_eq(compare(doc, routes, n, why, sizeof why), 1);
        ck_assert_ptr_nonnull(strstr(why, "x-edgecd-scope is submit, the route's scope is read"));
        json_decref(doc);

        doc = load_doc();
        get = json_object_get(json_object_get(json_object_get(doc, "paths"), "/healthz"), "get");
        json_object_del(get, "security");
        ck_assert_uint_eq(compare(doc, routes, n, why, sizeof why), 1);
        json_decref(doc);

        /* A query parameter the route takes that the document does not
         * name (the order of the names is the document's). */
        doc = load_doc();
        struct http_route fewer[64];
        ck_assert_uint_lt(n, 64);
        memcpy(fewer, routes, n * sizeof *routes);
        for (size_t i = 0; i < n; i++)
                if (!strcmp(fewer[i].method, "GET") && !strcmp(fewer[i].pattern, "/v1/jobs"))
                        fewer[i].query = "status algorithm limit after";
        ck_assert_uint_eq(compare(doc, fewer, n, why, sizeof why), 1);
        ck_assert_ptr_nonnull(strstr(why, "GET /v1/jobs: the query parameters documented are "
                                          "`status algorithm limit after result`"));
        json_decref(doc);

        /* And a route the table had but the document does not know. */
        doc = load_doc();
        struct http_route more[64];
        ck_assert_uint_lt(n, 64);
        memcpy(more, routes, n * sizeof *routes);
        more[n] = (struct http_route){ "PUT", "/v1/algorithms/*", NULL, SCOPE_ADMIN, false, NULL };
        ck_assert_uint_eq(compare(doc, more, n + 1, why, sizeof why), 1);
        ck_assert_ptr_nonnull(strstr(why, "PUT /v1/algorithms/* is served but not documented"));
        json_decref(doc);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("openapi");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_same_as_source);
        tcase_add_test(tc, test_routes_match);
        tcase_add_test(tc, test_compare_catches);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
