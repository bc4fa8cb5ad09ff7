/* test-auth.c - API tokens: the tokens file (every problem named
 * FILE:LINE:COL and tokens[I].KEY), and checking an Authorization header:
 * missing, unknown, lacking the scope, admin, the spelling of "Bearer". */
#include "testutil.h"

#include "base/util.h"
#include "http/auth.h"

/* sha256 of "password", as `edgecd --hash-token` prints it. */
#define PASSWORD_SHA256 "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
#define ADMIN_TOKEN "correct-horse-battery-staple"

/* Collects reported lines. */
struct lines {
        char *v[8];
        size_t n;
};

static void collect(const char *line, void *ctx)
{
        struct lines *l = ctx;
        if (l->n < 8)
                l->v[l->n] = xstrdup(line);
        l->n++;
}

static void lines_free(struct lines *l)
{
        for (size_t i = 0; i < l->n && i < 8; i++)
                free(l->v[i]);
        l->n = 0;
}

static char *dir;

static void setup(void)
{
        dir = tu_test_dir();
}

static void teardown(void)
{
        free(dir);
        dir = NULL;
}

/* A good file: ci may submit and read, ops is admin. */
static char *good_file(void)
{
        char admin[65];
        auth_hash(ADMIN_TOKEN, strlen(ADMIN_TOKEN), admin);
        _cleanup_free_ char *text = xasprintf("# API tokens\n"
                                              "tokens:\n"
                                              "  - name: ci\n"
                                              "    sha256: " PASSWORD_SHA256 "\n"
                                              "    scopes: [submit, read]\n"
                                              "  - name: ops@example.com\n"
                                              "    sha256: %s\n"
                                              "    scopes:\n"
                                              "      - admin\n",
                                              admin);
        return tu_write(dir, "tokens.yaml", text);
}

static struct auth *load_good(void)
{
        _cleanup_free_ char *path = good_file();
        struct auth *a = NULL;
        struct lines l = { 0 };
        struct err err = ERR_INIT;
        ck_assert_msg(auth_load(path, collect, &l, &a, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_ptr_nonnull(a);
        return a;
}

/* Loading content fails with exactly one problem, "FILE:" + rest. */
static void expect_load_error(const char *content, const char *rest)
{
        _cleanup_free_ char *path = tu_write(dir, "tokens.yaml", content);
        _cleanup_free_ char *want = xasprintf("%s:%s", path, rest);
        struct auth *a = (struct auth *)1;
        struct lines l = { 0 };
        struct err err = ERR_INIT;
        ck_assert_int_eq(auth_load(path, collect, &l, &a, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_ptr_eq(a, (struct auth *)1);   /* ret_ untouched */
        ck_assert_msg(l.n == 1, "%zu problems reported for `%s`", l.n, content);
        ck_assert_str_eq(l.v[0], want);
        ck_assert_str_eq(err.msg, want);
        lines_free(&l);
}

START_TEST(test_hash)
{
        char out[65];
        auth_hash("password", 8, out);
        ck_assert_str_eq(out, PASSWORD_SHA256);
        /* The length decides, not a NUL. */
        auth_hash("password!", 8, out);
        ck_assert_str_eq(out, PASSWORD_SHA256);
        auth_hash("", 0, out);
        ck_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        ck_assert_str_eq(auth_scope_name(SCOPE_READ), "read");
        ck_assert_str_eq(auth_scope_name(SCOPE_SUBMIT), "submit");
        ck_assert_str_eq(auth_scope_name(SCOPE_CANCEL), "cancel");
        ck_assert_str_eq(auth_scope_name(SCOPE_ADMIN), "admin");
}
END_TEST

START_TEST(test_load_good)
{
        struct auth *a = load_good();
        ck_assert_uint_eq(auth_count(a), 2);
        auth_free(a);
        auth_free(NULL);
        ck_assert_uint_eq(auth_count(NULL), 0);
}
END_TEST

START_TEST(test_load_errors)
{
        /* The position is the offending value's (or the entry's). */
        expect_load_error("tokens:\n"
                          "  - name: ci\n"
                          "    sha256: " PASSWORD_SHA256 "\n"
                          "    scopes: [read]\n"
                          "  - name: ops\n"
                          "    sha256: 5z884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\n"
                          "    scopes: [admin]\n",
                          "6:13: tokens[1].sha256: expected 64 hex digits (the token's SHA-256: edgecd --hash-token)");
        expect_load_error("tokens:\n  - name: ci\n    sha256: 5e884898\n    scopes: [read]\n",
                          "3:13: tokens[0].sha256: expected 64 hex digits (the token's SHA-256: edgecd --hash-token)");
        expect_load_error("tokens:\n  - name: ci\n    sha256: " PASSWORD_SHA256 "00\n    scopes: [read]\n",
                          "3:13: tokens[0].sha256: expected 64 hex digits (the token's SHA-256: edgecd --hash-token)");
        /* A sha256 that is the token itself, not its hash: wrong length. */
        expect_load_error("tokens:\n  - name: ci\n    sha256: password\n    scopes: [read]\n",
                          "3:13: tokens[0].sha256: expected 64 hex digits (the token's SHA-256: edgecd --hash-token)");
        expect_load_error("tokens:\n  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: [read, write]\n",
                          "4:20: tokens[0].scopes: unknown scope `write` (read, submit, cancel, admin)");
        expect_load_error("tokens:\n  - sha256: " PASSWORD_SHA256 "\n    scopes: [read]\n",
                          "2:5: tokens[0]: name is required");
        expect_load_error("tokens:\n"
                          "  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: [read]\n"
                          "  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: [admin]\n",
                          "5:5: tokens[1]: name `ci` is used twice");
        /* Two entries for one token (hex case aside): it would get the
         * last one's scopes and name. */
        expect_load_error("tokens:\n"
                          "  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: [read]\n"
                          "  - name: ops\n    sha256: 5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8\n"
                          "    scopes: [admin]\n",
                          "6:13: tokens[1].sha256: the same as token `ci`'s: each token needs its own");
        expect_load_error("tokens:\n  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    secret: x\n    scopes: [read]\n",
                          "4:5: tokens[0].secret: unknown key (expected name, sha256, scopes)");
        expect_load_error("tokens:\n  - name: ci\n    scopes: [read]\n", "2:5: tokens[0]: sha256 is required");
        expect_load_error("tokens:\n  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: []\n",
                          "2:5: tokens[0]: scopes must name at least one of read, submit, cancel, admin");
        expect_load_error("tokens:\n  - name: \"c i\"\n    sha256: " PASSWORD_SHA256 "\n    scopes: [read]\n",
                          "2:11: tokens[0].name: `c i` must be 1 to 64 characters of letters, digits, _ . @ -");
        expect_load_error("tokens: []\n", "1:9: tokens: is empty: no client could reach the API");
        expect_load_error("tokens: {}\n", "1:9: tokens: expected a list, got a mapping");
        expect_load_error("tokens:\n  - ci\n",
                          "2:5: tokens[0]: expected a mapping with name, sha256 and scopes, got a scalar");
        expect_load_error("- name: ci\n", "1:1: expected a mapping with a `tokens` list");
        expect_load_error("tokens:\n  - name: ci\n    sha256: " PASSWORD_SHA256 "\n    scopes: [read]\nextra: 1\n",
                          "5:1: extra: unknown key (expected tokens)");
}
END_TEST

START_TEST(test_load_reports_every_problem)
{
        _cleanup_free_ char *path = tu_write(dir, "tokens.yaml",
                                             "tokens:\n"
                                             "  - name: a\n    sha256: nothex\n    scopes: [read]\n"
                                             "  - name: b\n    sha256: " PASSWORD_SHA256 "\n    scopes: [root]\n");
        struct auth *a = NULL;
        struct lines l = { 0 };
        struct err err = ERR_INIT;
        ck_assert_int_eq(auth_load(path, collect, &l, &a, &err), -1);
        ck_assert_uint_eq(l.n, 2);
        ck_assert_msg(strstr(l.v[0], ":3:13: tokens[0].sha256: "), "%s", l.v[0]);
        ck_assert_msg(strstr(l.v[1], ":7:14: tokens[1].scopes: unknown scope `root`"), "%s", l.v[1]);
        ck_assert_msg(strstr(err.msg, "(and 1 more problem)"), "%s", err.msg);
        ck_assert_ptr_null(a);
        lines_free(&l);

        /* A missing file: no list, and no report callback needed. */
        _cleanup_free_ char *missing = xasprintf("%s/nope.yaml", dir);
        ck_assert_int_eq(auth_load(missing, NULL, NULL, &a, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        ck_assert_ptr_null(a);
        /* Its report names the configuration key that named the file, as
         * every other --check-config problem does. */
        err_clear(&err);
        ck_assert_int_eq(auth_load(missing, collect, &l, &a, &err), -1);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_msg(!strncmp(l.v[0], "auth.tokens_file: ", 18) && strstr(l.v[0], "nope.yaml"), "%s", l.v[0]);
        ck_assert_msg(!strncmp(err.msg, "auth.tokens_file: ", 18), "%s", err.msg);
        lines_free(&l);
}
END_TEST

/* auth_check's result and the name it reports. */
static enum auth_result check(const struct auth *a, const char *header, unsigned scope, const char **name)
{
        *name = (const char *)1;
        return auth_check(a, header, scope, name);
}

START_TEST(test_check)
{
        struct auth *a = load_good();
        const char *name;

        /* No credentials at all: 401. */
        static const char *const missing[] = { NULL, "", "Basic cGFzc3dvcmQ=", "Bearer", "Bearer ", "Bearer    ",
                                               "Bearerpassword", "password" };
        for (size_t i = 0; i < ARRAY_SIZE(missing); i++) {
                ck_assert_msg(check(a, missing[i], SCOPE_READ, &name) == AUTH_MISSING, "`%s`",
                              missing[i] ? missing[i] : "(null)");
                ck_assert_ptr_null(name);
        }
        /* A token nobody has: 401 too, but a different one. */
        ck_assert_int_eq(check(a, "Bearer passw0rd", SCOPE_READ, &name), AUTH_INVALID);
        ck_assert_ptr_null(name);
        ck_assert_int_eq(check(a, "Bearer " PASSWORD_SHA256, SCOPE_READ, &name), AUTH_INVALID);
        ck_assert_int_eq(check(a, "Bearer password password", SCOPE_READ, &name), AUTH_INVALID);

        /* ci: submit and read, not cancel nor admin. */
        ck_assert_int_eq(check(a, "Bearer password", SCOPE_READ, &name), AUTH_OK);
        ck_assert_str_eq(name, "ci");
        ck_assert_int_eq(check(a, "Bearer password", SCOPE_SUBMIT, &name), AUTH_OK);
        ck_assert_int_eq(check(a, "Bearer password", SCOPE_CANCEL, &name), AUTH_FORBIDDEN);
        ck_assert_str_eq(name, "ci");   /* who was refused, for the log */
        ck_assert_int_eq(check(a, "Bearer password", SCOPE_ADMIN, &name), AUTH_FORBIDDEN);
        ck_assert_str_eq(name, "ci");

        /* admin grants every scope. */
        static const unsigned scopes[] = { SCOPE_READ, SCOPE_SUBMIT, SCOPE_CANCEL, SCOPE_ADMIN };
        for (size_t i = 0; i < ARRAY_SIZE(scopes); i++) {
                ck_assert_int_eq(check(a, "Bearer " ADMIN_TOKEN, scopes[i], &name), AUTH_OK);
                ck_assert_str_eq(name, "ops@example.com");
        }

        /* The scheme is case-insensitive (RFC 7235); spaces around do not count. */
        static const char *const spellings[] = { "bearer password", "BEARER password", "bEaReR password",
                                                  "  Bearer password", "Bearer   password   ",
                                                  " bearer  password " };
        for (size_t i = 0; i < ARRAY_SIZE(spellings); i++) {
                ck_assert_msg(check(a, spellings[i], SCOPE_READ, &name) == AUTH_OK, "`%s`", spellings[i]);
                ck_assert_str_eq(name, "ci");
        }
        /* Spaces around it, as --hash-token reads it; a tab is part of it. */
        ck_assert_int_eq(check(a, "Bearer password\t", SCOPE_READ, &name), AUTH_INVALID);
        size_t len;
        const char *t = auth_token_trim("   to ken  ", &len);
        ck_assert_uint_eq(len, 6);
        ck_assert(!strncmp(t, "to ken", len));
        t = auth_token_trim(" \tto ken\t ", &len);
        ck_assert_uint_eq(len, 8);
        ck_assert(!strncmp(t, "\tto ken\t", len));
        auth_token_trim("   ", &len);
        ck_assert_uint_eq(len, 0);
        /* The token itself is case-sensitive. */
        ck_assert_int_eq(check(a, "Bearer PASSWORD", SCOPE_READ, &name), AUTH_INVALID);
        auth_free(a);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("auth");
        TCase *tc = tcase_create("core");
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_hash);
        tcase_add_test(tc, test_load_good);
        tcase_add_test(tc, test_load_errors);
        tcase_add_test(tc, test_load_reports_every_problem);
        tcase_add_test(tc, test_check);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
