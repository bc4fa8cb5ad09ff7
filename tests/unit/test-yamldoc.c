/* test-yamldoc.c - yamldoc.c: YAML to JSON under aliases and the collected
 * diagnostics.  The alias inputs are the ones tests/fuzz/fuzz-manifest.c
 * timed out on: aliases repeat one subtree many times, and neither the
 * problems they repeat nor the duplicate-key check may grow quadratically. */
#include <string.h>

#include "base/util.h"
#include "base/yamldoc.h"
#include "testutil.h"

/* yamldoc.c's YAML_JSON_MAX_NODES: nodes and mapping pairs converted. */
#define MAX_NODES 100000

struct lines {
        size_t n;
        size_t too_many;   /* lines saying "too many nodes" */
};

static void count_line(const char *line, void *ctx)
{
        struct lines *l = ctx;
        l->n++;
        if (strstr(line, "too many nodes"))
                l->too_many++;
}

/* Convert the value of key "x" in the YAML text; returns yamldoc_to_json()'s
 * result.  *d is initialised here and left for the caller to inspect. */
static int convert(const char *text, struct ydiag *d, struct lines *l, json_t **ret)
{
        char *path = tu_write(tu_base, "doc.yaml", text);
        struct yamldoc *y = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(yamldoc_load(path, 1 << 20, "x", &y, &e) == 0, "%s", e.msg);
        ydiag_init(d, NULL, count_line, l);
        yaml_node_t *x = yamldoc_get(y, yamldoc_root(y), "x");
        ck_assert_ptr_nonnull(x);
        int r = yamldoc_to_json(y, x, "x", d, ret);
        yamldoc_free(y);
        free(path);
        return r;
}

/* "x: [&a [ITEM, ITEM, ...], *a, *a, ...]": one anchored list of n items,
 * then m aliases of it.  Caller frees. */
static char *aliased(const char *open, const char *item, const char *close, size_t n, size_t m)
{
        size_t cap = 64 + n * (strlen(item) + 2) + m * 4;
        char *s = xmalloc(cap);
        strcpy(s, "x: [&a ");
        strcat(s, open);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        strcat(s, ", ");
                strcat(s, item);
        }
        strcat(s, close);
        char *p = s + strlen(s);
        for (size_t i = 0; i < m; i++, p += 4)
                memcpy(p, ", *a", 4);
        strcpy(p, "]\n");
        return s;
}

START_TEST(test_convert)
{
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert("x: {a: 1, b: [true, ~, '2', 2.5], c: {d: x}}\n", &d, &l, &j), 0);
        char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        ck_assert_str_eq(s, "{\"a\":1,\"b\":[true,null,\"2\",2.5],\"c\":{\"d\":\"x\"}}");
        free(s);
        json_decref(j);
        ck_assert_uint_eq(d.count, 0);
        ydiag_done(&d);
}
END_TEST

/* A duplicate is caught even when the first occurrence failed to convert. */
START_TEST(test_duplicate_after_bad_value)
{
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert("x: {a: \"\\0\", b: 1, a: 2, b: 3}\n", &d, &l, &j), -1);
        ck_assert_ptr_null(j);
        ck_assert_uint_eq(d.count, 3);
        ck_assert_str_eq(d.joined, "x/a: contains a NUL byte; x/a: duplicate key; x/b: duplicate key");
        ydiag_done(&d);
}
END_TEST

/* Every alias repeats the problems of its subtree: 200 NUL scalars seen 51
 * times are 10200 problems.  They are all counted, but the joined message
 * stays a few KiB (it was every line, copied once per line: 38 s for a
 * 13 KB manifest) and the result is still cut with "; ...". */
START_TEST(test_alias_problems_bounded)
{
        char *text = aliased("[", "\"\\0\"", "]", 200, 50);
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert(text, &d, &l, &j), -1);
        ck_assert_uint_eq(d.count, 200 * 51);
        ck_assert_uint_eq(l.n, 200 * 51);
        ck_assert_uint_lt(strlen(d.joined), 8 * 1024);
        ck_assert_str_eq(d.first, "x/0/0: contains a NUL byte");
        struct err e = ERR_INIT;
        ck_assert_int_eq(ydiag_result_all(&d, ERR_INVALID, &e), -1);
        size_t n = strlen(e.msg);
        ck_assert_str_eq(e.msg + n - 5, "; ...");
        ydiag_done(&d);
        free(text);
}
END_TEST

/* Duplicate keys count against the node budget: 99 duplicates in a mapping
 * aliased 2000 times were 198000 problems that no budget stopped. */
START_TEST(test_alias_duplicates_budget)
{
        char *text = aliased("{", "a: 0", "}", 100, 2000);
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert(text, &d, &l, &j), -1);
        ck_assert_uint_le(d.count, MAX_NODES + 1);
        ck_assert_uint_eq(l.too_many, 1);
        ydiag_done(&d);
        free(text);
}
END_TEST

/* A big mapping aliased many times: the duplicate-key check is a hash
 * lookup, not a scan of the earlier keys (which made this quadratic: 9 s
 * under the fuzzer for 16 KB).  Bounded by the budget, reported once. */
START_TEST(test_alias_big_mapping)
{
        char keys[6000][4];
        size_t n = 0;
        for (char a = 'a'; a <= 'z'; a++)
                for (char b = 'a'; b <= 'z'; b++)
                        for (char c = 'a'; c <= 'z' && n < 6000; c++) {
                                keys[n][0] = a, keys[n][1] = b, keys[n][2] = c, keys[n][3] = '\0';
                                n++;
                        }
        size_t cap = 64 + n * 8 + 200 * 4;
        char *text = xmalloc(cap);
        char *p = text + sprintf(text, "x: [&a {");
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "%s%s: 0", i ? ", " : "", keys[i]);
        p += sprintf(p, "}");
        for (int i = 0; i < 200; i++)
                p += sprintf(p, ", *a");
        sprintf(p, "]\n");

        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(convert(text, &d, &l, &j), -1);
        int64_t ms = now_mono_ms() - t0;
        ck_assert_uint_eq(d.count, 1);
        ck_assert_uint_eq(l.too_many, 1);
        /* Milliseconds now, seconds before; a wide margin for ASan and a
         * busy machine. */
        ck_assert_msg(ms < 2000, "took %lld ms", (long long)ms);
        ydiag_done(&d);
        free(text);
}
END_TEST

/* Load text as doc.yaml with aliases allowed under "x"; 0, or -1 with *e
 * set.  The document is freed at once. */
static int load_text(const char *text, struct err *e)
{
        char *path = tu_write(tu_base, "doc.yaml", text);
        struct yamldoc *y = NULL;
        int r = yamldoc_load(path, 1 << 20, "x", &y, e);
        yamldoc_free(y);
        free(path);
        return r;
}

/* e->msg, less the "DIR/doc.yaml:" it starts with. */
static const char *after_path(const struct err *e)
{
        const char *p = strstr(e->msg, "/doc.yaml:");
        ck_assert_msg(p, "%s", e->msg);
        return p + strlen("/doc.yaml:");
}

/* An alias to a big string, used many times: each use is converted afresh,
 * so the text is budgeted, not only the nodes (a 200 KB file was 4.1 GB
 * and 24 s).  The problem names the line, and the key by JSON pointer. */
START_TEST(test_alias_text_budget)
{
        char *big = tu_repeat("x: [&s \"", "A", 200000, "\", *s, *s, *s, *s, *s]\n");
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert(big, &d, &l, &j), -1);
        ck_assert_ptr_null(j);
        ck_assert_uint_eq(d.count, 1);
        ck_assert_str_eq(d.first, "x/5: more than 1 MiB of text (aliases?)");
        ydiag_done(&d);
        free(big);

        /* Four uses are 1,000,000 bytes: under the limit. */
        big = tu_repeat("x: [&s \"", "A", 200000, "\", *s, *s, *s, *s]\n");
        ck_assert_int_eq(convert(big, &d, &l, &j), 0);
        ck_assert_uint_eq(json_array_size(j), 5);
        json_decref(j);
        ydiag_done(&d);
        free(big);

        /* The whole bomb: aliases of aliases, 10,000 uses of the string. */
        char *s = tu_repeat("x: {type: object, default: [&s \"", "A", 200000,
                         "\", &a [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]"
                         ", &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]"
                         ", &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]"
                         ", &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], [*d]]}\n");
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(convert(s, &d, &l, &j), -1);
        int64_t ms = now_mono_ms() - t0;
        ck_assert_uint_eq(d.count, 1);
        ck_assert_str_eq(d.first, "x/default/1/4: more than 1 MiB of text (aliases?)");
        ck_assert_msg(ms < 5000, "took %lld ms", (long long)ms);   /* a backstop */
        ydiag_done(&d);
        free(s);
}
END_TEST

/* Nesting is refused before libyaml builds the tree, at the level past the
 * limit: its scanner is quadratic in the flow depth (120,000 "[" took
 * 40 s, 250,000 unclosed ones 92 s before the syntax error). */
START_TEST(test_nesting_limit)
{
        struct err e = ERR_INIT;
        /* The root mapping and 127 lists: 128 levels, the most there may be. */
        char *t = tu_repeat("x: ", "[", 127, "");
        char *u = tu_repeat(t, "]", 127, "\n");
        ck_assert_msg(load_text(u, &e) == 0, "%s", e.msg);
        free(t);
        free(u);
        t = tu_repeat("x: ", "[", 128, "");
        u = tu_repeat(t, "]", 128, "\n");
        ck_assert_int_eq(load_text(u, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_str_eq(after_path(&e), "1:131: x/0/0/0...: nested more than 128 levels deep");
        free(t);
        free(u);

        /* The reviewer's inputs: stopped at once, not after the whole file. */
        t = tu_repeat("y: ", "[", 120000, "");
        u = tu_repeat(t, "]", 120000, "\n");
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(load_text(u, &e), -1);
        ck_assert_str_eq(after_path(&e), "1:131: y[0][0][0]...: nested more than 128 levels deep");
        free(t);
        free(u);
        u = tu_repeat("y: ", "[", 250000, "\n");
        ck_assert_int_eq(load_text(u, &e), -1);
        ck_assert_str_eq(after_path(&e), "1:131: y[0][0][0]...: nested more than 128 levels deep");
        int64_t ms = now_mono_ms() - t0;
        ck_assert_msg(ms < 5000, "took %lld ms", (long long)ms);   /* a backstop */
        free(u);

        /* Block nesting counts too. */
        struct err e2 = ERR_INIT;
        char *b = xstrdup("");
        for (int i = 0; i < 130; i++) {
                char *n = xasprintf("%s%*sk:\n", b, i, "");
                free(b);
                b = n;
        }
        ck_assert_int_eq(load_text(b, &e2), -1);
        ck_assert_str_eq(after_path(&e2), "129:129: k.k.k.k...: nested more than 128 levels deep");
        free(b);
}
END_TEST

/* Anchors and aliases only under the key the caller names: elsewhere each
 * check would report an aliased node at the anchor's line.  The alias's own
 * line and key are named. */
START_TEST(test_aliases_only_where_allowed)
{
        struct err e = ERR_INIT;
        ck_assert_msg(load_text("x: {a: &t {type: number}, b: [*t, *t]}\n", &e) == 0, "%s", e.msg);
        ck_assert_int_eq(load_text("x: {a: &t {type: number}}\nn: 1\nm: {k: [1, *t]}\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "3:12: m.k[1]: alias *t: YAML anchors and aliases are allowed "
                                         "only inside x");
        ck_assert_int_eq(load_text("a: &d [1]\nx: *d\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "1:4: a: anchor &d: YAML anchors and aliases are allowed only "
                                         "inside x");
        /* An anchored key of the top level is not inside x. */
        ck_assert_int_eq(load_text("&k x: 1\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "1:1: x: anchor &k: YAML anchors and aliases are allowed only "
                                         "inside x");

        /* No key given: nowhere. */
        char *path = tu_write(tu_base, "doc.yaml", "x: {a: &t 1}\n");
        struct yamldoc *y = NULL;
        ck_assert_int_eq(yamldoc_load(path, 1 << 20, NULL, &y, &e), -1);
        ck_assert_ptr_null(y);
        ck_assert_str_eq(after_path(&e), "1:8: x.a: anchor &t: YAML anchors and aliases are not allowed "
                                         "in this file");
        free(path);
}
END_TEST

/* libyaml resolves no tags: "!!str 1" would load as the integer 1. */
START_TEST(test_tags_refused)
{
        struct err e = ERR_INIT;
        ck_assert_int_eq(load_text("x: {enum: [!!str 1, !!str yes]}\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "1:12: x/enum/0: tag !!str: YAML tags are not supported (quote "
                                         "a value to make it a string)");
        ck_assert_int_eq(load_text("a:\n  b: !!map {}\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "2:6: a.b: tag !!map: YAML tags are not supported (quote a value "
                                         "to make it a string)");
        ck_assert_int_eq(load_text("a: [! x]\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "1:5: a[0]: tag !: YAML tags are not supported (quote a value "
                                         "to make it a string)");
        ck_assert_int_eq(load_text("!foo\na: 1\n", &e), -1);
        ck_assert_str_eq(after_path(&e), "1:1: (top level): tag !foo: YAML tags are not supported (quote "
                                         "a value to make it a string)");
        /* Quoting is the way, and is kept as a string. */
        struct ydiag d;
        struct lines l = { 0 };
        json_t *j = NULL;
        ck_assert_int_eq(convert("x: ['1', \"yes\"]\n", &d, &l, &j), 0);
        char *s = json_dumps(j, JSON_COMPACT);
        ck_assert_str_eq(s, "[\"1\",\"yes\"]");
        free(s);
        json_decref(j);
        ydiag_done(&d);
}
END_TEST

/* err->msg is cut to fit, and only between characters: a split UTF-8
 * sequence makes the message unrenderable in JSON, and it disappeared. */
START_TEST(test_message_cut_utf8)
{
        char *long_e = tu_repeat("", "\xc3\xa9", 600, "");
        /* "k: " then 600 "é": byte 1018, where the cut fell, is the second
         * of one. */
        struct ydiag d;
        ydiag_init(&d, NULL, NULL, NULL);
        ydiag_add(&d, NULL, "k", "%s", long_e);
        struct err e = ERR_INIT;
        ck_assert_int_eq(ydiag_result_all(&d, ERR_INVALID, &e), -1);
        size_t n = strlen(e.msg);
        ck_assert_msg(utf8_valid(e.msg, n, NULL), "cut inside a character");
        ck_assert_str_eq(e.msg + n - 5, "; ...");
        ck_assert_uint_eq(n, 1017 + 5);
        json_t *j = json_string(e.msg);
        ck_assert_ptr_nonnull(j);
        json_decref(j);
        ydiag_done(&d);

        /* ydiag_result: the first problem is cut, between characters
         * ("kk: " puts byte 999 inside one), and the count is kept. */
        ydiag_init(&d, NULL, NULL, NULL);
        ydiag_add(&d, NULL, "kk", "%s", long_e);
        ydiag_add(&d, NULL, "b", "second");
        ck_assert_int_eq(ydiag_result(&d, ERR_INVALID, &e), -1);
        n = strlen(e.msg);
        ck_assert_msg(utf8_valid(e.msg, n, NULL), "cut inside a character");
        ck_assert_str_eq(e.msg + n - 24, "... (and 1 more problem)");
        ck_assert_uint_eq(n, 998 + 24);
        j = json_string(e.msg);
        ck_assert_ptr_nonnull(j);
        json_decref(j);
        ydiag_done(&d);

        /* A message that fits is left whole. */
        ydiag_init(&d, NULL, NULL, NULL);
        ydiag_add(&d, NULL, "k", "\xc3\xa9");
        ck_assert_int_eq(ydiag_result_all(&d, ERR_INVALID, &e), -1);
        ck_assert_str_eq(e.msg, "k: \xc3\xa9");
        ydiag_done(&d);
        free(long_e);
}
END_TEST

/* A list of many strings (a manifest's command, the config's
 * callbacks.allow) is read in linear time: 300,000 items took 30 s under
 * ASan when each was appended by counting the list so far. */
START_TEST(test_long_list_linear)
{
        size_t n = 300000;
        char *text = xmalloc(16 + n * 3);
        char *p = text + sprintf(text, "x: [");
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "%sa", i ? "," : "");
        strcpy(p, "]\n");
        char *path = tu_write(tu_base, "doc.yaml", text);
        struct yamldoc *y = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(yamldoc_load(path, 1 << 20, NULL, &y, &e) == 0, "%s", e.msg);
        struct ydiag d;
        ydiag_init(&d, NULL, NULL, NULL);
        char **v = NULL;
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(yget_strv(y, yamldoc_get(y, yamldoc_root(y), "x"), "x", &d, &v), 0);
        int64_t ms = now_mono_ms() - t0;
        ck_assert_uint_eq(strv_len(v), n);
        ck_assert_str_eq(v[n - 1], "a");
        ck_assert_msg(ms < 2000, "took %lld ms", (long long)ms);
        strv_free(v);
        ydiag_done(&d);
        yamldoc_free(y);
        free(path);
        free(text);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("yamldoc");
        TCase *tc = tcase_create("to_json");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_test(tc, test_convert);
        tcase_add_test(tc, test_duplicate_after_bad_value);
        tcase_add_test(tc, test_alias_problems_bounded);
        tcase_add_test(tc, test_alias_duplicates_budget);
        tcase_add_test(tc, test_alias_big_mapping);
        tcase_add_test(tc, test_alias_text_budget);
        tcase_add_test(tc, test_nesting_limit);
        tcase_add_test(tc, test_aliases_only_where_allowed);
        tcase_add_test(tc, test_tags_refused);
        tcase_add_test(tc, test_message_cut_utf8);
        tcase_add_test(tc, test_long_list_linear);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
