/* test-schema.c - schema.c: schema_check() on good and bad schemas,
 * schema_validate() per keyword with its field pointer and message, and the
 * depth cap. */
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/jsontext.h"
#include "base/util.h"
#include "registry/schema.h"
#include "testutil.h"

static json_t *J(const char *text)
{
        json_error_t je;
        json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
        ck_assert_msg(j != NULL, "bad test JSON `%s`: %s", text, je.text);
        return j;
}

/* Validate instance against schema (both JSON text) under base "/parameters". */
static int run(const char *schema, const char *instance, struct err *e)
{
        json_t *s = J(schema), *i = J(instance);
        struct err ce = ERR_INIT;
        ck_assert_msg(schema_check(s, &ce) == 0, "schema `%s` refused: %s at %s", schema, ce.msg,
                      ce.field);
        struct schema_index *ix = schema_index_new(s);
        err_clear(e);
        int r = schema_validate(s, ix, i, "/parameters", e);
        /* Without the index (enums searched member by member), and streamed,
         * with and without: the same answer, for the same reason (instance
         * as the client would send it). */
        for (int k = 0; k < 3; k++) {
                struct err se = ERR_INIT;
                bool malformed = false;
                int rs = k == 0 ? schema_validate(s, NULL, i, "/parameters", &se)
                        : schema_validate_text(s, k == 1 ? ix : NULL, instance, strlen(instance), "/parameters", 0,
                                               &malformed, &se);
                ck_assert_msg(rs == r, "`%s` against `%s`: tree %d (%s), way %d: %d (%s)", instance, schema, r,
                              e->msg, k, rs, se.msg);
                ck_assert(!malformed);
                if (r < 0) {
                        ck_assert_msg(!strcmp(se.field, e->field) && !strcmp(se.msg, e->msg),
                                      "`%s` against `%s`: tree `%s` at %s, way %d: `%s` at %s", instance, schema,
                                      e->msg, e->field, k, se.msg, se.field);
                }
        }
        schema_index_free(ix);
        json_decref(s);
        json_decref(i);
        return r;
}

static void pass(const char *schema, const char *instance)
{
        struct err e = ERR_INIT;
        ck_assert_msg(run(schema, instance, &e) == 0, "`%s` against `%s`: %s at %s", instance, schema,
                      e.msg, e.field);
}

static void fail_with(const char *schema, const char *instance, const char *field, const char *msg)
{
        struct err e = ERR_INIT;
        ck_assert_msg(run(schema, instance, &e) == -1, "`%s` passed `%s`", instance, schema);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_str_eq(e.field, field);
        ck_assert_str_eq(e.msg, msg);
}

static void check_fails(const char *schema, const char *field, const char *msg)
{
        json_t *s = J(schema);
        struct err e = ERR_INIT;
        ck_assert_msg(schema_check(s, &e) == -1, "schema `%s` accepted", schema);
        ck_assert_str_eq(e.field, field);
        ck_assert_str_eq(e.msg, msg);
        json_decref(s);
}

START_TEST(test_type)
{
        pass("{\"type\":\"object\"}", "{}");
        pass("{\"type\":\"array\"}", "[]");
        pass("{\"type\":\"string\"}", "\"x\"");
        pass("{\"type\":\"number\"}", "1");
        pass("{\"type\":\"number\"}", "1.5");
        pass("{\"type\":\"integer\"}", "7");
        pass("{\"type\":\"integer\"}", "2.0");   /* JSON Schema: no fraction is an integer */
        pass("{\"type\":\"boolean\"}", "false");
        pass("{\"type\":\"null\"}", "null");
        pass("{\"type\":[\"string\",\"null\"]}", "null");
        pass("{}", "{\"anything\": [1]}");
        fail_with("{\"type\":\"number\"}", "\"7\"", "/parameters", "expected number, got string");
        fail_with("{\"type\":\"integer\"}", "2.5", "/parameters", "expected integer, got number");
        fail_with("{\"type\":\"object\"}", "[]", "/parameters", "expected object, got array");
        fail_with("{\"type\":\"boolean\"}", "0", "/parameters", "expected boolean, got integer");
        fail_with("{\"type\":\"null\"}", "false", "/parameters", "expected null, got boolean");
        fail_with("{\"type\":[\"string\",\"integer\",\"null\"]}", "[1]", "/parameters",
                  "expected string, integer or null, got array");
        fail_with("{\"type\":[\"string\",\"null\"]}", "1", "/parameters",
                  "expected string or null, got integer");
}
END_TEST

START_TEST(test_properties_required_additional)
{
        const char *s = "{\"type\":\"object\",\"required\":[\"a\",\"b\"],"
                        "\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}}}";
        pass(s, "{\"a\":1,\"b\":\"x\"}");
        pass(s, "{\"a\":1,\"b\":\"x\",\"extra\":true}");   /* additionalProperties defaults to true */
        fail_with(s, "{\"a\":1}", "/parameters/b", "missing required property `b`");
        fail_with(s, "{\"a\":\"1\",\"b\":\"x\"}", "/parameters/a", "expected integer, got string");
        const char *closed = "{\"type\":\"object\",\"additionalProperties\":false,"
                             "\"properties\":{\"a\":{}}}";
        pass(closed, "{\"a\":[1]}");
        fail_with(closed, "{\"a\":1,\"x\":2}", "/parameters/x", "unexpected property `x`");
        pass("{\"type\":\"object\",\"additionalProperties\":true}", "{\"q\":1}");
        /* Keywords for objects ignore other types (type is what restricts). */
        pass("{\"required\":[\"a\"]}", "5");
}
END_TEST

START_TEST(test_items_and_pointer)
{
        const char *matrix = "{\"type\":\"object\",\"properties\":{\"matrix_a\":{\"type\":\"array\","
                             "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}}}}";
        pass(matrix, "{\"matrix_a\":[[1,2],[3,4.5]]}");
        fail_with(matrix, "{\"matrix_a\":[[1,2],[\"x\",4]]}", "/parameters/matrix_a/1/0",
                  "expected number, got string");
        /* RFC 6901 escaping of ~ and / in property names. */
        const char *odd = "{\"properties\":{\"a/b\":{\"properties\":{\"c~d\":{\"type\":\"string\"}}}}}";
        fail_with(odd, "{\"a/b\":{\"c~d\":1}}", "/parameters/a~1b/c~0d", "expected string, got integer");
        /* No base: the pointer starts at the root. */
        json_t *s = J("{\"items\":{\"type\":\"string\"}}"), *i = J("[\"a\", 2]");
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_validate(s, NULL, i, NULL, &e), -1);
        ck_assert_str_eq(e.field, "/1");
        ck_assert_int_eq(schema_validate(s, NULL, i, "", &e), -1);
        ck_assert_str_eq(e.field, "/1");
        json_decref(s);
        json_decref(i);
}
END_TEST

/* A pointer longer than the field's room is cut at a whole character:
 * "/parameters/" and then 3-byte characters used to be cut through one,
 * and the field, not UTF-8, was dropped from the answer. */
START_TEST(test_pointer_cut_utf8)
{
        char key[400] = "";
        for (int i = 0; i < 100; i++)
                strcat(key, "\xE2\x82\xAC");   /* U+20AC, the euro sign */
        char *typed = xasprintf("{\"properties\": {\"%s\": {\"type\": \"string\"}}}", key);
        char *required = xasprintf("{\"required\": [\"%s~\"]}", key);
        char *wrong = xasprintf("{\"%s\": 1}", key);
        char *full = xasprintf("/parameters/%s~0", key);
        struct err e = ERR_INIT;
        for (int k = 0; k < 2; k++) {
                /* Both paths, the same field (run() compares them). */
                ck_assert_int_eq(run(k ? required : typed, k ? "{}" : wrong, &e), -1);
                const char *msg = k ? "missing required property `\xE2\x82\xAC" : "expected string, got integer";
                ck_assert_int_eq(strncmp(e.msg, msg, strlen(msg)), 0);
                size_t len = strlen(e.field);
                ck_assert_msg(utf8_valid(e.field, len, NULL), "a field cut through a character: %s", e.field);
                ck_assert_int_ge(len, ERR_FIELD_MAX - 4);   /* as much as fits */
                ck_assert_int_eq(strncmp(e.field, full, len), 0);
                json_t *j = json_string(e.field);
                ck_assert_ptr_nonnull(j);
                json_decref(j);
        }
        free(typed);
        free(required);
        free(wrong);
        free(full);
        /* Nor a message naming a long key. */
        char *many = xmalloc(1300);
        strcpy(many, "a");   /* the cut then falls inside a character */
        for (int i = 0; i < 400; i++)
                strcat(many, "\xE2\x82\xAC");
        char *inst = xasprintf("{\"%s\": 1}", many);
        ck_assert_int_eq(run("{\"additionalProperties\": false}", inst, &e), -1);
        ck_assert_int_eq(strncmp(e.msg, "unexpected property `a\xE2\x82\xAC", 25), 0);
        ck_assert_int_ge(strlen(e.msg), ERR_MSG_MAX - 4);
        ck_assert_msg(utf8_valid(e.msg, strlen(e.msg), NULL), "a message cut through a character");
        ck_assert_msg(utf8_valid(e.field, strlen(e.field), NULL), "a field cut through a character");
        free(inst);
        free(many);
        /* An escape is not cut in two either: "~0" whole or not at all. */
        char tildes[300];
        memset(tildes, '~', 290);
        tildes[290] = '\0';
        json_t *s = json_pack("{s:[s]}", "required", tildes), *i = json_object();
        ck_assert_int_eq(schema_validate(s, NULL, i, "/p", &e), -1);
        ck_assert_uint_eq((strlen(e.field) - 3) % 2, 0);   /* "/p/" and pairs */
        ck_assert_int_eq(strncmp(e.field, "/p/~0~0", 7), 0);
        ck_assert_int_ne(e.field[strlen(e.field) - 1], '~');
        json_decref(s);
        json_decref(i);
}
END_TEST

START_TEST(test_enum)
{
        const char *s = "{\"enum\":[\"fast\",\"exact\",1,null,[1,2],{\"k\":1}]}";
        pass(s, "\"fast\"");
        pass(s, "1");
        pass(s, "1.0");   /* 1 and 1.0 are the same number */
        pass(s, "null");
        pass(s, "[1,2]");
        pass(s, "{\"k\":1.0}");
        fail_with(s, "\"slow\"", "/parameters", "must be one of the enum values");
        fail_with(s, "[2,1]", "/parameters", "must be one of the enum values");
        fail_with(s, "{\"k\":2}", "/parameters", "must be one of the enum values");
        fail_with(s, "true", "/parameters", "must be one of the enum values");
}
END_TEST

/* The index's hash sets say what value_equal() says: run() checks every
 * case with and without them. */
START_TEST(test_enum_hashed)
{
        const char *s = "{\"enum\":[1, 2.5, \"a\", \"\", true, false, null, 9007199254740993, -0.0, 1e300,"
                        " -9223372036854775808, 18446744073709551616.0, [1, 2], {\"a\": [1.0], \"b\": {}}, [],"
                        " {}, \"a\", 1.0]}";
        static const char *const in[] = {
                "1", "1.0", "1e0", "2.5", "\"a\"", "\"\"", "true", "false", "null", "9007199254740993", "0",
                "-0.0", "0.0", "1e300", "-9223372036854775808", "-9223372036854775808.0", "18446744073709551616.0",
                "[1, 2]", "[1.0, 2e0]", "{\"b\": {}, \"a\": [1]}", "[]", "{}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(in); i++)
                pass(s, in[i]);
        static const char *const out[] = {
                "2", "1.5", "\"b\"", "\"A\"", "9007199254740992", "9007199254740992.0", "1e299",
                "-9223372036854775807", "9223372036854775807", "[2, 1]", "[1, 2, 3]", "[1]", "[[]]",
                "{\"a\": [1]}", "{\"a\": [1], \"b\": {}, \"c\": 1}", "{\"a\": [2], \"b\": {}}", "{\"b\": {}}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(out); i++)
                fail_with(s, out[i], "/parameters", "must be one of the enum values");
        /* Enums below items and properties, and one list in two places. */
        const char *nested = "{\"properties\": {\"m\": {\"items\": {\"enum\": [\"x\", 3]}},"
                             " \"n\": {\"enum\": [\"y\"]}}}";
        pass(nested, "{\"m\": [\"x\", 3.0, 3], \"n\": \"y\"}");
        fail_with(nested, "{\"m\": [\"x\", 4]}", "/parameters/m/1", "must be one of the enum values");
        fail_with(nested, "{\"n\": \"x\"}", "/parameters/n", "must be one of the enum values");
        json_t *shared = J("{\"properties\": {}}"), *list = J("[\"p\", \"q\"]");
        for (int k = 0; k < 2; k++) {
                json_t *sub = json_object();
                json_object_set(sub, "enum", list);
                json_object_set_new(json_object_get(shared, "properties"), k ? "b" : "a", sub);
        }
        struct schema_index *ix = schema_index_new(shared);
        json_t *ok = J("{\"a\": \"q\", \"b\": \"p\"}"), *bad = J("{\"a\": \"q\", \"b\": \"r\"}");
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_validate(shared, ix, ok, "", &e), 0);
        ck_assert_int_eq(schema_validate(shared, ix, bad, "", &e), -1);
        ck_assert_str_eq(e.field, "/b");
        schema_index_free(ix);
        json_decref(ok);
        json_decref(bad);
        json_decref(list);
        json_decref(shared);
}
END_TEST

/* CPU seconds this process has used. */
static double cpu_seconds(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An enum of 40,000 members on the items of a 20,000-item array: by hash,
 * each item costs its own size; searched member by member it was the
 * product, 8e8 comparisons (9 s a request). */
START_TEST(test_enum_large)
{
        size_t members = 40000, items = 20000;
        json_t *en = json_array();
        for (size_t i = 0; i < members; i++)
                json_array_append_new(en, i % 2 ? json_sprintf("member-%zu", i) : json_integer((json_int_t)i));
        json_t *s = json_pack("{s:s, s:{s:o}}", "type", "array", "items", "enum", en);
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_check(s, &e), 0);
        struct schema_index *ix = schema_index_new(s);
        /* The last members: the worst case of a search in order. */
        char *text = xmalloc(items * 24 + 16), *p = text;
        *p++ = '[';
        for (size_t i = 0; i < items; i++) {
                size_t m = members - 1 - i % 1000;
                p += m % 2 ? sprintf(p, "%s\"member-%zu\"", i ? "," : "", m)
                           : sprintf(p, "%s%zu.0", i ? "," : "", m);
        }
        strcpy(p, "]");
        json_t *inst = J(text);
        double t0 = cpu_seconds();
        ck_assert_msg(schema_validate(s, ix, inst, "/p", &e) == 0, "%s at %s", e.msg, e.field);
        bool malformed = false;
        ck_assert_msg(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e) == 0, "%s", e.msg);
        /* The last item no member. */
        strcpy(strrchr(text, ',') + 1, "\"member-\"]");
        json_decref(inst);
        inst = J(text);
        ck_assert_int_eq(schema_validate(s, ix, inst, "/p", &e), -1);
        ck_assert_str_eq(e.field, "/p/19999");
        ck_assert_str_eq(e.msg, "must be one of the enum values");
        ck_assert_int_eq(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/p/19999");
        ck_assert_str_eq(e.msg, "must be one of the enum values");
        double spent = cpu_seconds() - t0;
        /* Some milliseconds by hash (ASan build); over 10 s member by member. */
        ck_assert_msg(spent < 1.5, "4 validations of %zu items against %zu members took %.2f s of CPU", items,
                      members, spent);
        free(text);
        json_decref(inst);
        schema_index_free(ix);
        json_decref(s);
}
END_TEST

START_TEST(test_minimum_maximum)
{
        const char *s = "{\"type\":\"number\",\"minimum\":1,\"maximum\":100}";
        pass(s, "1");
        pass(s, "100");
        pass(s, "50.5");
        fail_with(s, "0", "/parameters", "must be >= 1");
        fail_with(s, "0.999", "/parameters", "must be >= 1");
        fail_with(s, "101", "/parameters", "must be <= 100");
        fail_with(s, "100.01", "/parameters", "must be <= 100");
        fail_with("{\"maximum\":0.5}", "0.75", "/parameters", "must be <= 0.5");
        /* Exact for large integers (a double would round them equal). */
        fail_with("{\"maximum\":9007199254740992}", "9007199254740993", "/parameters",
                  "must be <= 9007199254740992");
        pass("{\"minimum\":5}", "\"strings are not numbers\"");
}
END_TEST

/* An integer against a real, exactly: through a double, integers past 2^53
 * round (9007199254740993 -> ...992) and 2^63 - 1 rounds up to 2^63. */
START_TEST(test_exact_numbers)
{
        const char *max53 = "{\"type\":\"integer\",\"maximum\":9007199254740992.0}";
        pass(max53, "9007199254740992");
        fail_with(max53, "9007199254740993", "/parameters", "must be <= 9007199254740992");
        const char *en = "{\"enum\":[9007199254740993]}";
        pass(en, "9007199254740993");
        fail_with(en, "9007199254740992.0", "/parameters", "must be one of the enum values");
        fail_with(en, "9007199254740992", "/parameters", "must be one of the enum values");
        pass("{\"enum\":[9007199254740992.0]}", "9007199254740992");
        const char *min63 = "{\"minimum\":9223372036854775808.0}";
        fail_with(min63, "9223372036854775807", "/parameters", "must be >= 9.223372036854776e+18");
        pass(min63, "9223372036854775808.0");
        pass(min63, "1e300");
        const char *max63 = "{\"maximum\":-9223372036854775808.0}";
        pass(max63, "-9223372036854775808");
        fail_with(max63, "-9223372036854775807", "/parameters", "must be <= -9.223372036854776e+18");
        pass("{\"maximum\":9223372036854775808.0}", "9223372036854775807");
        fail_with("{\"minimum\":-9223372036854775808.0}", "-1e19", "/parameters", "must be >= -9.223372036854776e+18");
        /* Fractions: 2 < 2.5 < 3, -3 < -2.5 < -2. */
        pass("{\"maximum\":2.5}", "2");
        fail_with("{\"maximum\":2.5}", "3", "/parameters", "must be <= 2.5");
        pass("{\"minimum\":-2.5}", "-2");
        fail_with("{\"minimum\":-2.5}", "-3", "/parameters", "must be >= -2.5");
        fail_with("{\"enum\":[1.5]}", "1", "/parameters", "must be one of the enum values");
        pass("{\"enum\":[-0.0]}", "0");
        /* The same exactness when a schema is checked. */
        check_fails("{\"minimum\":9007199254740993,\"maximum\":9007199254740992.0}", "/maximum",
                    "must not be below minimum");
        json_t *s = J("{\"minimum\":9007199254740992,\"maximum\":9007199254740992.0}");
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_check(s, &e), 0);
        json_decref(s);
}
END_TEST

START_TEST(test_items_count)
{
        const char *s = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":3}";
        pass(s, "[1]");
        pass(s, "[1,2,3]");
        fail_with(s, "[]", "/parameters", "must have at least 1 item");
        fail_with(s, "[1,2,3,4]", "/parameters", "must have at most 3 items");
        fail_with("{\"minItems\":2}", "[1]", "/parameters", "must have at least 2 items");
}
END_TEST

START_TEST(test_length)
{
        const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":4}";
        pass(s, "\"ab\"");
        pass(s, "\"abcd\"");
        pass(s, "\"\\u00e9\\u00e9\\u00e9\\u00e9\"");   /* 4 characters, 8 bytes */
        fail_with(s, "\"a\"", "/parameters", "must be at least 2 characters long");
        fail_with(s, "\"abcde\"", "/parameters", "must be at most 4 characters long");
        fail_with("{\"maxLength\":1}", "\"ab\"", "/parameters", "must be at most 1 character long");
}
END_TEST

START_TEST(test_check_bad_schemas)
{
        check_fails("[]", "", "a schema must be an object, got array");
        check_fails("{\"type\":\"strin\"}", "/type", "unknown type `strin`");
        check_fails("{\"type\":[]}", "/type", "must be a type name or a non-empty list of them");
        check_fails("{\"type\":[\"string\",\"string\"]}", "/type/1", "type `string` listed twice");
        check_fails("{\"type\":[\"string\",5]}", "/type/1", "must be a type name");
        check_fails("{\"requird\":[\"a\"]}", "/requird", "unsupported keyword `requird`");
        check_fails("{\"pattern\":\"x\"}", "/pattern", "unsupported keyword `pattern`");
        check_fails("{\"properties\":[]}", "/properties", "must be an object");
        check_fails("{\"properties\":{\"a\":{\"type\":\"int\"}}}", "/properties/a/type",
                    "unknown type `int`");
        check_fails("{\"properties\":{\"a/b\":{\"maxLength\":-1}}}", "/properties/a~1b/maxLength",
                    "must be an integer >= 0");
        check_fails("{\"required\":\"a\"}", "/required", "must be a list of property names");
        check_fails("{\"required\":[\"a\",1]}", "/required/1", "must be a property name");
        check_fails("{\"required\":[\"a\",\"a\"]}", "/required/1", "`a` listed twice");
        check_fails("{\"additionalProperties\":{}}", "/additionalProperties", "must be true or false");
        check_fails("{\"items\":[{}]}", "/items", "a schema must be an object, got array");
        check_fails("{\"items\":{\"items\":{\"type\":1}}}", "/items/items/type",
                    "must be a type name or a non-empty list of them");
        check_fails("{\"enum\":[]}", "/enum", "must be a non-empty list");
        check_fails("{\"minimum\":\"1\"}", "/minimum", "must be a number");
        check_fails("{\"minItems\":1.5}", "/minItems", "must be an integer >= 0");
        check_fails("{\"minimum\":5,\"maximum\":1}", "/maximum", "must not be below minimum");
        check_fails("{\"minLength\":5,\"maxLength\":1}", "/maxLength", "must not be below minLength");
        check_fails("{\"description\":5}", "/description", "must be a string");

        /* Annotations are accepted and ignored. */
        json_t *s = J("{\"title\":\"t\",\"description\":\"d\",\"default\":[1],\"examples\":[2],"
                      "\"$comment\":\"c\",\"$schema\":\"http://json-schema.org/draft-07/schema#\"}");
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_check(s, &e), 0);
        json_decref(s);
}
END_TEST

/* A long required list is checked for duplicates by hash: pairwise,
 * 50,000 names took 13.6 s at load. */
START_TEST(test_required_long)
{
        size_t n = 100000;
        json_t *names = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(names, json_sprintf("property_%zu", i));
        json_t *s = json_pack("{s:s, s:O}", "type", "object", "required", names);
        struct err e = ERR_INIT;
        double t0 = cpu_seconds();
        ck_assert_msg(schema_check(s, &e) == 0, "%s at %s", e.msg, e.field);
        json_array_append_new(names, json_string("property_77"));
        json_object_set(s, "required", names);
        ck_assert_int_eq(schema_check(s, &e), -1);
        ck_assert_str_eq(e.field, "/required/100000");
        ck_assert_str_eq(e.msg, "`property_77` listed twice");
        double spent = cpu_seconds() - t0;
        ck_assert_msg(spent < 1.0, "two checks of %zu required names took %.2f s of CPU", n, spent);
        json_decref(names);
        json_decref(s);
}
END_TEST

/* Streamed, each member's key is looked up in the required list by hash:
 * compared name by name, an object of 50,000 members against as many
 * required names cost 2.5e9 comparisons. */
START_TEST(test_required_streamed)
{
        size_t n = 50000;
        json_t *names = json_array();
        char *text = xmalloc(n * 24 + 16), *p = text;
        *p++ = '{';
        for (size_t i = 0; i < n; i++) {
                json_array_append_new(names, json_sprintf("property_%zu", i));
                p += sprintf(p, "%s\"property_%zu\": %zu", i ? "," : "", n - 1 - i, i);
        }
        strcpy(p, "}");
        json_t *s = json_pack("{s:s, s:o}", "type", "object", "required", names);
        struct err e = ERR_INIT;
        ck_assert_int_eq(schema_check(s, &e), 0);
        struct schema_index *ix = schema_index_new(s);
        bool malformed = false;
        /* What streaming the object costs with no required list at all. */
        json_t *plain = J("{\"type\": \"object\"}");
        double t0 = cpu_seconds();
        ck_assert_int_eq(schema_validate_text(plain, NULL, text, strlen(text), "/p", 0, &malformed, &e), 0);
        double t1 = cpu_seconds();
        ck_assert_msg(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e) == 0, "%s at %s",
                      e.msg, e.field);
        double t2 = cpu_seconds();
        /* A few times that (it was 50,000 comparisons a key). */
        ck_assert_msg(t2 - t1 < 3 * (t1 - t0) + 0.1, "an object of %zu members took %.2f s of CPU, %.2f s with no "
                      "required", n, t2 - t1, t1 - t0);
        json_decref(plain);
        /* One missing, named. */
        char *last = strrchr(text, ',');
        strcpy(last, "}");
        ck_assert_int_eq(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/p/property_0");
        ck_assert_str_eq(e.msg, "missing required property `property_0`");
        schema_index_free(ix);
        json_decref(s);
        free(text);
        /* An unchecked list naming one twice: its index stays harmless. */
        s = J("{\"required\": [\"a\", \"b\", \"a\"]}");
        ix = schema_index_new(s);
        err_clear(&e);
        ck_assert_int_eq(schema_validate_text(s, ix, "{\"b\": 1, \"a\": 2}", 16, "/p", 0, &malformed, &e), 0);
        ck_assert_int_eq(schema_validate_text(s, ix, "{\"b\": 1, \"c\": 2}", 16, "/p", 0, &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/p/a");
        schema_index_free(ix);
        json_decref(s);
}
END_TEST

/* Build {"items":{"items":...{}}} n levels deep, and [[[...]]] to match. */
static json_t *deep_schema(int n)
{
        json_t *s = json_object();
        for (int i = 0; i < n; i++) {
                json_t *outer = json_object();
                json_object_set_new(outer, "items", s);
                s = outer;
        }
        return s;
}

static json_t *deep_array(int n)
{
        json_t *a = json_array();
        for (int i = 0; i < n; i++) {
                json_t *outer = json_array();
                json_array_append_new(outer, a);
                a = outer;
        }
        return a;
}

START_TEST(test_depth_cap)
{
        struct err e = ERR_INIT;
        json_t *ok = deep_schema(60), *too_deep = deep_schema(200);
        ck_assert_int_eq(schema_check(ok, &e), 0);
        ck_assert_int_eq(schema_check(too_deep, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "nested too deeply"));
        ck_assert_int_eq(strncmp(e.field, "/items/items/items", 18), 0);

        json_t *arr = deep_array(60);
        struct schema_index *ix = schema_index_new(ok);
        ck_assert_int_eq(schema_validate(ok, ix, arr, "/p", &e), 0);
        schema_index_free(ix);
        json_decref(arr);
        /* An unchecked deep schema and a deep instance: refused, not a crash
         * (and its index, made anyway, no harm either). */
        arr = deep_array(200);
        ck_assert_int_eq(schema_validate(too_deep, NULL, arr, "/p", &e), -1);
        ix = schema_index_new(too_deep);
        ck_assert_int_eq(schema_validate(too_deep, ix, arr, "/p", &e), -1);
        schema_index_free(ix);
        ck_assert_ptr_nonnull(strstr(e.msg, "nested too deeply"));
        ck_assert_int_eq(strncmp(e.field, "/p/0/0/0", 8), 0);
        json_decref(arr);
        json_decref(ok);
        json_decref(too_deep);
}
END_TEST

START_TEST(test_matrix_schema)
{
        /* The reference job's schema, as manifests in plugins/ write it. */
        const char *s =
                "{\"type\":\"object\",\"required\":[\"matrix_a\",\"matrix_b\"],"
                "\"additionalProperties\":false,\"properties\":{"
                "\"matrix_a\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":100,"
                "\"items\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"number\"}}},"
                "\"matrix_b\":{\"type\":\"array\",\"minItems\":1,"
                "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}}}}";
        pass(s, "{\"matrix_a\":[[1,2],[3,4]],\"matrix_b\":[[5],[6]]}");
        fail_with(s, "{\"matrix_a\":[[1,2]]}", "/parameters/matrix_b",
                  "missing required property `matrix_b`");
        fail_with(s, "{\"matrix_a\":[],\"matrix_b\":[[1]]}", "/parameters/matrix_a",
                  "must have at least 1 item");
        fail_with(s, "{\"matrix_a\":[[1]],\"matrix_b\":[[1]],\"c\":1}", "/parameters/c",
                  "unexpected property `c`");
        fail_with(s, "[1]", "/parameters", "expected object, got array");
}
END_TEST

/* What only the streamed validator meets: text jansson would not take,
 * containers under enum, long arrays, and its memory staying flat. */
static int streamed(const char *schema, const char *text, bool *malformed, struct err *e)
{
        json_t *s = J(schema);
        struct schema_index *ix = schema_index_new(s);
        err_clear(e);
        int r = schema_validate_text(s, ix, text, strlen(text), "/parameters", 0, malformed, e);
        schema_index_free(ix);
        json_decref(s);
        return r;
}

START_TEST(test_streamed)
{
        struct err e = ERR_INIT;
        bool malformed = false;
        /* Not JSON as jansson reads it: not a schema miss. */
        ck_assert_int_eq(streamed("{}", "{\"a\": 1, \"a\": 2}", &malformed, &e), -1);
        ck_assert(malformed);
        ck_assert_int_eq(streamed("{}", "[99999999999999999999]", &malformed, &e), -1);
        ck_assert(malformed);
        ck_assert_int_eq(streamed("{}", "[1e999]", &malformed, &e), -1);
        ck_assert(malformed);
        ck_assert_int_eq(streamed("{}", "{\"a\": [1, 2", &malformed, &e), -1);
        ck_assert(malformed);
        /* What jansson refuses in strings, refused here too (the small path
         * says invalid_json for them). */
        static const char *const bad_text[] = {
                "{\"a\\u0000evil\": 1}", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800x\"]",
                "[\"\\ud800\\u0041\"]",
        };
        for (size_t k = 0; k < sizeof bad_text / sizeof *bad_text; k++) {
                malformed = false;
                ck_assert_msg(streamed("{}", bad_text[k], &malformed, &e) == -1, "took %s", bad_text[k]);
                ck_assert_msg(malformed, "%s: %s", bad_text[k], e.msg);
                json_t *j = json_loads(bad_text[k], 0, NULL);
                ck_assert_msg(j == NULL, "jansson took %s", bad_text[k]);
        }
        ck_assert_int_eq(streamed("{}", "[\"\\ud83d\\ude00 \\\\u0000 \\\" \"]", &malformed, &e), 0);
        /* A duplicate inside an enum's tree. */
        ck_assert_int_eq(streamed("{\"properties\": {\"m\": {\"enum\": [{\"k\": 1}]}}}",
                                  "{\"m\": {\"k\": 2, \"k\": 1}}", &malformed, &e), -1);
        ck_assert(malformed);
        /* A number of any length, as jansson reads it. */
        char num[700] = "[0.";
        memset(num + 3, '0', 600);
        strcpy(num + 603, "1]");
        ck_assert_msg(streamed("{\"items\": {\"type\": \"number\"}}", num, &malformed, &e) == 0, "%s", e.msg);
        /* Duplicate keys in different objects are fine. */
        ck_assert_int_eq(streamed("{}", "{\"a\": {\"a\": 1}, \"b\": {\"a\": 2}}", &malformed, &e), 0);

        /* Nesting deeper than a schema can be (64) but within the caller's
         * cap (http.max_json_depth past its default): taken, as the tree
         * takes it; past the cap, refused; past jansson's own 2048 levels,
         * malformed, as the tree is never made. */
        static const size_t depths[] = { 65, 100, 2048, 2049 };
        for (size_t di = 0; di < ARRAY_SIZE(depths); di++) {
                size_t depth = depths[di];
                char *text = xmalloc(2 * depth + 1);
                memset(text, '[', depth);
                memset(text + depth, ']', depth);
                text[2 * depth] = '\0';
                json_t *sch = J("{}");
                for (size_t cap = depth - 1; cap <= depth; cap++) {
                        malformed = false;
                        err_clear(&e);
                        int r = schema_validate_text(sch, NULL, text, 2 * depth, "/p", cap, &malformed, &e);
                        bool want = depth <= cap && depth <= 2048;
                        ck_assert_msg(want ? r == 0 : r == -1, "depth %zu, cap %zu: %d %s", depth, cap, r, e.msg);
                        if (!want)
                                ck_assert_ptr_nonnull(strstr(e.msg, "nested too deeply"));
                        ck_assert_msg(malformed == (!want && depth > 2048), "depth %zu: malformed %d", depth, malformed);
                        struct err je = ERR_INIT;
                        json_error_t jerr;
                        json_t *tree = json_loads(text, 0, &jerr);
                        if (want)
                                ck_assert_msg(jsontext_check(text, 2 * depth, cap, &je) == 0 && tree &&
                                              schema_validate(sch, NULL, tree, "/p", &je) == 0, "%s", je.msg);
                        json_decref(tree);
                }
                json_decref(sch);
                free(text);
        }

        /* enum of a container: built and compared whole. */
        const char *en = "{\"type\": \"object\", \"properties\": {\"m\": {\"enum\": [[1, 2], {\"k\": [true]}]}}}";
        ck_assert_int_eq(streamed(en, "{\"m\": [1, 2.0]}", &malformed, &e), 0);
        ck_assert_int_eq(streamed(en, "{\"m\": {\"k\": [true]}}", &malformed, &e), 0);
        ck_assert_int_eq(streamed(en, "{\"m\": [1, 2, 3]}", &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/parameters/m");
        ck_assert(!malformed);

        /* A long array: refused at its first bad item, pointer and all. */
        const char *mat = "{\"type\": \"object\", \"required\": [\"v\"], \"properties\": {\"v\": {\"type\": \"array\", "
                          "\"maxItems\": 300000, \"items\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}}}";
        size_t n = 200000;
        char *big = xmalloc(n * 12 + 64);
        char *p = big + sprintf(big, "{\"v\": [");
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "%s[%zu]", i ? "," : "", i);
        strcpy(p, "]}");
        ck_assert_msg(streamed(mat, big, &malformed, &e) == 0, "%s at %s", e.msg, e.field);
        char *bad = strstr(big, "[123456]");
        ck_assert_ptr_nonnull(bad);
        memcpy(bad, "[12.5e0]", 8);
        ck_assert_int_eq(streamed(mat, big, &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/parameters/v/123456/0");
        ck_assert_str_eq(e.msg, "expected integer, got number");
        free(big);
        /* maxItems: refused once one too many has come. */
        ck_assert_int_eq(streamed("{\"type\": \"array\", \"maxItems\": 2}", "[1, 2, 3, 4]", &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/parameters");
        ck_assert_str_eq(e.msg, "must have at most 2 items");
        /* A missing required property, named by its pointer. */
        ck_assert_int_eq(streamed("{\"type\": \"object\", \"properties\": {\"o\": {\"required\": [\"x\"]}}}",
                                  "{\"o\": {\"y\": 1}}", &malformed, &e), -1);
        ck_assert_str_eq(e.field, "/parameters/o/x");
}
END_TEST

/* An enum of containers, streamed: the tree built stops once it is larger
 * than the largest member, with the tree path's answer. */
START_TEST(test_enum_containers)
{
        const char *pairs = "{\"enum\": [[1, 2], [3, 4]]}";
        pass(pairs, "[3, 4.0]");
        fail_with(pairs, "[1, 2, 3]", "/parameters", "must be one of the enum values");
        fail_with(pairs, "[[1, 2]]", "/parameters", "must be one of the enum values");
        fail_with(pairs, "[1, [2]]", "/parameters", "must be one of the enum values");
        fail_with(pairs, "{\"a\": 1}", "/parameters", "must be one of the enum values");
        const char *obj = "{\"type\": \"object\", \"enum\": [{\"k\": \"ab\"}, {\"kk\": [true]}]}";
        pass(obj, "{\"k\": \"ab\"}");
        pass(obj, "{\"kk\": [true]}");
        fail_with(obj, "{\"k\": \"abc\"}", "/parameters", "must be one of the enum values");
        fail_with(obj, "{\"kkk\": 1}", "/parameters", "must be one of the enum values");
        fail_with(obj, "{\"kk\": [true, false]}", "/parameters", "must be one of the enum values");
        fail_with(obj, "{\"k\": \"ab\", \"kk\": [true]}", "/parameters", "must be one of the enum values");
        fail_with(obj, "[1, 2, 3, 4, 5]", "/parameters", "expected object, got array");   /* type first */
        const char *items = "{\"items\": {\"enum\": [[1], [2], \"a string member\"]}}";
        pass(items, "[[1], [2], \"a string member\"]");
        fail_with(items, "[[1], [2, 3]]", "/parameters/1", "must be one of the enum values");
        fail_with(items, "[[1], {\"a string member\": 1}]", "/parameters/1", "must be one of the enum values");
        fail_with(items, "[[1], [\"a string member!\"]]", "/parameters/1", "must be one of the enum values");
}
END_TEST

/* jansson's allocations, counted (the streamed path's trees are jansson's),
 * and refused past a cap so that a failing test does not take the box. */
static size_t jn_now, jn_peak, jn_cap;

static void *jn_malloc(size_t n)
{
        if (n > jn_cap || jn_now > jn_cap - n)
                return NULL;
        size_t *p = malloc(n + 16);
        if (!p)
                return NULL;
        p[0] = n;
        jn_now += n;
        if (jn_now > jn_peak)
                jn_peak = jn_now;
        return (char *)p + 16;
}

static void jn_free(void *q)
{
        if (!q)
                return;
        size_t *p = (size_t *)(void *)((char *)q - 16);
        jn_now -= p[0];
        free(p);
}

/* The streamed path holds the tree of an enum's container only up to the
 * size of its largest member: a 20 MB array against [[1,2],[3,4]] used to
 * be built whole (415 MB). */
START_TEST(test_enum_stream_bounded)
{
        json_malloc_t old_malloc;
        json_free_t old_free;
        json_get_alloc_funcs(&old_malloc, &old_free);
        jn_now = jn_peak = 0;
        jn_cap = 16 << 20;
        json_set_alloc_funcs(jn_malloc, jn_free);

        json_t *s = J("{\"properties\": {\"m\": {\"enum\": [[1, 2], [3, 4], {\"key\": \"value\"}]}}}");
        struct schema_index *ix = schema_index_new(s);
        size_t n = 2 << 20;   /* items: 4 MB of text */
        char *text = xmalloc(2 * n + 64), *p = text;
        p += sprintf(p, "{\"m\": [");
        for (size_t i = 0; i < n; i++) {
                *p++ = i % 2 ? '2' : '1';
                *p++ = ',';
        }
        strcpy(p - 1, "]}");
        struct err e = ERR_INIT;
        bool malformed = true;
        size_t base = jn_now;
        jn_peak = base;
        for (int k = 0; k < 2; k++) {
                ck_assert_int_eq(schema_validate_text(s, k ? ix : NULL, text, strlen(text), "/p", 0, &malformed,
                                                      &e), -1);
                ck_assert_str_eq(e.msg, "must be one of the enum values");
                ck_assert_str_eq(e.field, "/p/m");
                ck_assert(!malformed);
        }
        /* A long string and a long key: refused before they are copied. */
        memset(text, 'x', 2 * n);
        memcpy(text, "{\"m\": {\"key\": \"", 15);
        strcpy(text + 2 * n, "\"}}");
        ck_assert_int_eq(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e), -1);
        ck_assert_str_eq(e.msg, "must be one of the enum values");
        ck_assert_str_eq(e.field, "/p/m");
        memcpy(text, "{\"m\": {\"", 8);
        strcpy(text + 2 * n, "\": 1}}");
        ck_assert_int_eq(schema_validate_text(s, ix, text, strlen(text), "/p", 0, &malformed, &e), -1);
        ck_assert_str_eq(e.msg, "must be one of the enum values");
        ck_assert_str_eq(e.field, "/p/m");
        /* A tree of a few nodes at most, whatever came in. */
        ck_assert_msg(jn_peak - base < 4096, "jansson held %zu bytes", jn_peak - base);
        ck_assert_uint_eq(jn_now, base);

        free(text);
        schema_index_free(ix);
        json_decref(s);
        ck_assert_uint_eq(jn_now, 0);
        json_set_alloc_funcs(old_malloc, old_free);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("schema");
        TCase *tc = tcase_create("schema");
        tcase_set_timeout(tc, 60);   /* the streamed tests parse megabytes: seconds on a loaded host */
        tcase_add_test(tc, test_type);
        tcase_add_test(tc, test_properties_required_additional);
        tcase_add_test(tc, test_items_and_pointer);
        tcase_add_test(tc, test_pointer_cut_utf8);
        tcase_add_test(tc, test_enum);
        tcase_add_test(tc, test_enum_hashed);
        tcase_add_test(tc, test_enum_large);
        tcase_add_test(tc, test_minimum_maximum);
        tcase_add_test(tc, test_exact_numbers);
        tcase_add_test(tc, test_items_count);
        tcase_add_test(tc, test_length);
        tcase_add_test(tc, test_check_bad_schemas);
        tcase_add_test(tc, test_required_long);
        tcase_add_test(tc, test_required_streamed);
        tcase_add_test(tc, test_depth_cap);
        tcase_add_test(tc, test_matrix_schema);
        tcase_add_test(tc, test_streamed);
        tcase_add_test(tc, test_enum_containers);
        tcase_add_test(tc, test_enum_stream_bounded);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
