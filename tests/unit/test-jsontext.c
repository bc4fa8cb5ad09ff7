/* test-jsontext.c - JSON checked as text with yajl (jsontext.h): every kind
 * of value, what is not one value, the control characters yajl would let
 * through, UTF-8, the depth cap and the position in messages. */
#include "testutil.h"

#include <jansson.h>

#include "base/jsontext.h"
#include "base/util.h"

/* Check the NUL-terminated s; returns what jsontext_check returned. */
static int check(const char *s, size_t max_depth, struct err *err)
{
        *err = (struct err)ERR_INIT;
        return jsontext_check(s, strlen(s), max_depth, err);
}

static void expect_ok(const char *s, size_t max_depth)
{
        struct err err;
        ck_assert_msg(check(s, max_depth, &err) == 0, "`%s` refused: %s", s, err.msg);
}

/* Refused as ERR_INVALID, the message starting with `prefix`. */
static void expect_bad(const char *s, size_t len, const char *prefix)
{
        struct err err = ERR_INIT;
        ck_assert_msg(jsontext_check(s, len, 0, &err) == -1, "`%s` accepted", s);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_msg(!strncmp(err.msg, prefix, strlen(prefix)), "`%s`: got `%s`, want `%s...`", s, err.msg,
                      prefix);
}

START_TEST(test_every_kind_of_value)
{
        /* RFC 8259: any value is a JSON text, scalars at the top too. */
        static const char *const ok[] = {
                "{}", "[]", "0", "-0", "42", "-1.5e3", "1E+2", "1e400", "\"\"", "\"a\\\"b\\u00e9\\n\"",
                "true", "false", "null", "{\"a\":[1,{\"b\":null}],\"c\":\"x\"}", "[[],{},\"\",0,true]",
                " \t\r\n[1]\n\t ", "\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\"",
                "{\"\\u0000\":1}",   /* an escaped NUL in a key is valid JSON */
        };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                expect_ok(ok[i], 0);
}
END_TEST

START_TEST(test_not_one_value)
{
        expect_bad("", 0, "line 1, column 1: ");
        expect_bad(" \n ", 3, "line ");
        expect_bad("[1] x", 5, "line 1, column ");
        expect_bad("{} {}", 5, "line 1, column ");
        expect_bad("1 2", 3, "line 1, column ");
        expect_bad("[1,]", 4, "line 1, column ");
        expect_bad("{\"a\" 1}", 7, "line 1, column ");
        expect_bad("01", 2, "line 1, column ");
        expect_bad("tru", 3, "line 1, column ");
        expect_bad("'x'", 3, "line 1, column ");
        expect_bad("[1", 2, "line 1, column ");
        /* Found at the end: the position is the end, not yajl's own count. */
        expect_bad("[\n1,\n2\n", 7, "line 4, column 1: ");
        expect_bad("{\n\"a\": 1\n}\n2", 13, "line 4, column 2: ");
        expect_bad("\"\\x\"", 4, "line 1, column ");
        expect_bad("\"\\u00\"", 6, "line 1, column ");
        /* An unterminated string after the value: yajl 2.1's complete
         * parse lets it through, and a result so written was spliced into
         * every reply of its job. */
        static const struct { const char *text, *msg; } trailing[] = {
                { "{} \"", "line 1, column 4: trailing garbage" },
                { "{}\"abc", "line 1, column 3: trailing garbage" },
                { "[1] \"x", "line 1, column 5: trailing garbage" },
                { "1 \"", "line 1, column 3: trailing garbage" },
                { "\"a\" \"", "line 1, column 5: trailing garbage" },
                { "null\"", "line 1, column 5: trailing garbage" },
                { "true \"", "line 1, column 6: trailing garbage" },
                { "{\"a\":{}}\n \"x", "line 2, column 2: trailing garbage" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(trailing); i++)
                expect_bad(trailing[i].text, strlen(trailing[i].text), trailing[i].msg);
        /* ...while whitespace after a value, a number ending the text and
         * a string with quotes inside are still whole values. */
        static const char *const whole[] = { "{} \n\t\r ", "123", "-0.5e-3 ", "\"a\\\"\" ", "[\"\\\"\"]",
                                             "{\"\\\"\":\"\\\\\"}" };
        for (size_t i = 0; i < ARRAY_SIZE(whole); i++)
                expect_ok(whole[i], 0);
}
END_TEST

START_TEST(test_raw_control_characters)
{
        /* A raw NUL: after a valid value, and inside a string. */
        expect_bad("123\0", 4, "line 1, column 4: raw control character 0x00");
        expect_bad("\"a\0b\"", 5, "line 1, column 3: raw control character 0x00");
        /* yajl takes a form feed as whitespace; JSON does not. */
        expect_bad("[1,\f2]", 6, "line 1, column 4: raw control character 0x0c");
        /* yajl takes a vertical tab for whitespace too; JSON does not, and
         * what is accepted is spliced into API replies as it is. */
        expect_bad("[1,\v2]", 6, "line 1, column 4: raw control character 0x0b");
        expect_bad("{\"a\":1}\v", 8, "line 1, column 8: raw control character 0x0b");
        expect_bad("[1,\x1b" "2]", 6, "line 1, column 4: raw control character 0x1b");
        /* The four whitespace characters JSON has are fine. */
        expect_ok(" \t\r\n[1,\t2]\r\n", 0);
        expect_bad("[1]\n\f", 5, "line 2, column 1: raw control character 0x0c");
        /* Other control characters inside a string are yajl's to refuse. */
        expect_bad("\"a\tb\"", 5, "line 1, column ");
        expect_bad("\"\x01\"", 3, "line 1, column ");
}
END_TEST

START_TEST(test_utf8)
{
        static const char *const bad[] = {
                "\"\xff\"",              /* never in UTF-8 */
                "\"\x80\"",              /* a lone continuation byte */
                "\"\xc3\"",              /* truncated */
                "\"\xc3\x28\"",          /* a lead byte without its continuation */
                "\"\xe2\x82\"",          /* truncated three-byte sequence */
                "\xef\xbb\xbf[]",        /* a byte order mark is not JSON */
                "[\xc3\xa9]",            /* UTF-8 outside a string */
                "\"\xc0\xaf\"",          /* an overlong '/' */
                "\"\xed\xa0\x80\"",      /* an encoded surrogate, U+D800 */
                "\"\xf4\x90\x80\x80\"",  /* past U+10FFFF */
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                expect_bad(bad[i], strlen(bad[i]), "line 1, column ");
        struct err err;
        check("\"\xff\"", 0, &err);
        ck_assert_str_eq(err.msg, "line 1, column 2: invalid UTF-8");
        /* Good multi-byte text passes: é, €, 𝄞. */
        ck_assert_int_eq(check("\"\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\"", 0, &err), 0);
}
END_TEST

START_TEST(test_surrogate_escapes)
{
        /* yajl checks an escape's syntax (\u and four hex digits), not what
         * it stands for: lone and inverted surrogates pass (JSONTestSuite
         * lists them as implementation-defined, i_string_*surrogate*). */
        static const char *const ok[] = {
                "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"", "\"\\udfff\\ud800\"",
                "\"\\ud834\\udd1e\"",   /* a proper pair, U+1D11E */
        };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                expect_ok(ok[i], 0);
        /* A broken escape after a high surrogate is still an error. */
        expect_bad("\"\\ud800\\u12\"", 12, "line 1, column ");
        expect_bad("\"\\ud800\\x\"", 10, "line 1, column ");
}
END_TEST

/* n levels: "[[[...]]]" with a value at the bottom; caller frees. */
static char *nested(size_t n, char open, char close)
{
        char *s = xmalloc(2 * n + 2);
        memset(s, open, n);
        s[n] = '1';
        memset(s + n + 1, close, n);
        s[2 * n + 1] = '\0';
        return s;
}

START_TEST(test_max_depth)
{
        _cleanup_free_ char *five = nested(5, '[', ']');
        _cleanup_free_ char *six = nested(6, '[', ']');
        expect_ok(five, 5);
        struct err err;
        ck_assert_int_eq(check(six, 5, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "nesting deeper than 5"), "%s", err.msg);
        ck_assert_msg(!strncmp(err.msg, "line 1, column ", 15), "%s", err.msg);

        /* Objects count as levels too, and a sibling does not add one. */
        expect_ok("{\"a\":{\"b\":[1]},\"c\":[[2]]}", 3);
        ck_assert_int_eq(check("{\"a\":{\"b\":[1]},\"c\":[[[2]]]}", 3, &err), -1);
        ck_assert_msg(strstr(err.msg, "nesting deeper than 3"), "%s", err.msg);
        ck_assert_int_eq(check("{\"a\":{\"b\":{\"c\":{}}}}", 3, &err), -1);
        ck_assert_msg(strstr(err.msg, "nesting deeper than 3"), "%s", err.msg);
        /* Depth 1 takes a flat array, and scalars need no level at all. */
        expect_ok("[1,2,3]", 1);
        expect_ok("7", 1);
        ck_assert_int_eq(check("[[]]", 1, &err), -1);

        /* 0 means no cap: yajl needs one bit per level, not a stack frame. */
        _cleanup_free_ char *deep = nested(100000, '[', ']');
        expect_ok(deep, 0);
        ck_assert_int_eq(check(deep, 99999, &err), -1);
        ck_assert_msg(strstr(err.msg, "nesting deeper than 99999"), "%s", err.msg);
        expect_ok(deep, 100000);
}
END_TEST

START_TEST(test_position)
{
        struct err err;
        ck_assert_int_eq(check("{\n  \"a\": 1,\n  oops\n}", 0, &err), -1);
        ck_assert_msg(!strncmp(err.msg, "line 3, column ", 15), "%s", err.msg);
        ck_assert_int_eq(check("[1,\n2,\n\n  ]", 0, &err), -1);
        ck_assert_msg(!strncmp(err.msg, "line 4, column ", 15), "%s", err.msg);
        ck_assert_int_eq(check("[\n\"\xff\"]", 0, &err), -1);
        ck_assert_msg(!strncmp(err.msg, "line 2, column ", 15), "%s", err.msg);
        /* The message is one line, whatever yajl's own looked like. */
        ck_assert_ptr_null(strchr(err.msg, '\n'));
        /* Not checked: errors yajl finds only at the end of the text
         * (trailing garbage after a number, "1 2", "01", an unclosed array)
         * get a position counted in yajl's last internal chunk, not in the
         * text; see the report that came with these tests. */
}
END_TEST

/* jsonbuf_string() writes what jansson's json_dumps() writes of
 * json_string_lossy(s), byte for byte: every byte value alone and among
 * others, UTF-8 of every length, bytes that are not UTF-8. */
static void same_as_jansson(const char *s)
{
        json_t *j = json_string_lossy(s);
        ck_assert_ptr_nonnull(j);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(j);
        struct jsonbuf b = JSONBUF_INIT;
        jsonbuf_lit(&b, "x");
        jsonbuf_string(&b, s);
        ck_assert_uint_eq(b.len, strlen(b.text));
        ck_assert_str_eq(b.text + 1, want);
        free(want);
        free(b.text);
}

START_TEST(test_jsonbuf_string_as_jansson_writes_it)
{
        char s[8];
        for (int c = 1; c < 256; c++) {
                snprintf(s, sizeof s, "%c", c);
                same_as_jansson(s);
                snprintf(s, sizeof s, "a%cb", c);
                same_as_jansson(s);
        }
        static const char *const texts[] = {
                "", "plain text", "say \"no\"", "C:\\dir\\", "a/b", "line\nnext\r\n\ttab\x01\x1f\x7f",
                "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8",   /* 2, 3, 4 bytes, U+2028 */
                "bad \xff byte", "cut \xe2\x82", "overlong \xc0\xaf", "surrogate \xed\xa0\x80",
                "runc: error: \"container_linux.go:380: starting container process caused: exec: \\\"/x\\\"\"",
        };
        for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
                same_as_jansson(texts[i]);
        /* Long, so the buffer grows more than once. */
        char *big = xmalloc(70001);
        for (size_t i = 0; i < 70000; i++)
                big[i] = (char)("a\"\\\n\x02\xc3\xa9z"[i % 8]);
        big[70000] = '\0';
        same_as_jansson(big);
        free(big);
}
END_TEST

START_TEST(test_length_not_nul)
{
        /* The length decides, not a NUL: a value cut short is an error,
         * bytes past len are never looked at. */
        struct err err = ERR_INIT;
        ck_assert_int_eq(jsontext_check("[1,2]garbage", 5, 0, &err), 0);
        ck_assert_int_eq(jsontext_check("[1,2]", 3, 0, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("jsontext");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_every_kind_of_value);
        tcase_add_test(tc, test_not_one_value);
        tcase_add_test(tc, test_raw_control_characters);
        tcase_add_test(tc, test_utf8);
        tcase_add_test(tc, test_surrogate_escapes);
        tcase_add_test(tc, test_max_depth);
        tcase_add_test(tc, test_position);
        tcase_add_test(tc, test_length_not_nul);
        tcase_add_test(tc, test_jsonbuf_string_as_jansson_writes_it);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
