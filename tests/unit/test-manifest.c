/* test-manifest.c - manifest.c: plugin.yaml fields, every kind of error
 * with its PATH:LINE:COL prefix, the rootfs/command check. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "registry/manifest.h"
#include "testutil.h"

static char *dir;    /* the plugin directory */
static char *yaml;   /* dir/plugin.yaml */

static void mkdirs(const char *rel)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
        struct err e = ERR_INIT;
        ck_assert_int_eq(mkdir_p(p, 0755, &e), 0);
        free(p);
}

static void put_file(const char *rel, const char *content, mode_t mode)
{
        char *p = tu_write(dir, rel, content);
        ck_assert_int_eq(chmod(p, mode), 0);
        free(p);
}

static void put_link(const char *target, const char *rel)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
        ck_assert_int_eq(symlink(target, p), 0);
        free(p);
}

/* A plugin dir with a fake rootfs holding an executable /bin/algo. */

static void setup(void)
{
        dir = tu_test_dir();
        ck_assert_int_ge(asprintf(&yaml, "%s/plugin.yaml", dir), 0);
        mkdirs("rootfs/bin");
        put_file("rootfs/bin/algo", "#!/bin/sh\n", 0755);
}

static void teardown(void)
{
        tu_rm_rf(dir);
        free(dir);
        dir = NULL;
        free(yaml);
}

static void write_yaml(const char *content)
{
        free(tu_write(dir, "plugin.yaml", content));
}

#define MINIMAL                                        \
        "name: algo\n"                                 \
        "version: 1.0.0\n"                             \
        "description: Does a thing.\n"                 \
        "command: [/bin/algo]\n"                       \
        "input_schema:\n"                              \
        "  type: object\n"

static struct manifest *load_ok(const char *content)
{
        write_yaml(content);
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(manifest_load(yaml, &m, &e) == 0, "%s", e.msg);
        ck_assert_ptr_nonnull(m);
        return m;
}

/* Load content, expect failure; err->msg must equal "YAML:" + rest. */
static void expect_error(const char *content, const char *rest)
{
        write_yaml(content);
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_ptr_null(m);
        ck_assert_int_eq(e.code, ERR_INVALID);
        char want[2048];
        snprintf(want, sizeof want, "%s:%s", yaml, rest);
        ck_assert_str_eq(e.msg, want);
}

START_TEST(test_valid)
{
        struct manifest *m = load_ok(
                "name: matrix_multiplication\n"
                "version: 1.2.3-rc.1+build.5\n"
                "description: Multiplies two matrices.\n"
                "command: [\"/bin/algo\", \"--fast\"]\n"
                "env:\n"
                "  LC_ALL: C\n"
                "  EMPTY:\n"
                "  _X1: \"a=b\"\n"
                "input_schema:\n"
                "  type: object\n"
                "  required: [matrix_a]\n"
                "  properties:\n"
                "    matrix_a: {type: array, minItems: 1, items: {type: array, items: {type: number}}}\n"
                "    mode: {enum: [fast, \"1\", 1, 2.5, true, null]}\n"
                "resources:\n"
                "  cpu_cores: 1.5\n"
                "  memory_mb: 128\n"
                "  pids: 32\n"
                "  disk_mb: 8\n"
                "timeout_seconds: 45\n"
                "max_concurrent: 2\n"
                "oci_template: strict-1\n"
                "syscalls: [ptrace, membarrier]\n"
                "rootfs: rootfs\n");
        ck_assert_str_eq(m->name, "matrix_multiplication");
        ck_assert_str_eq(m->version, "1.2.3-rc.1+build.5");
        ck_assert_int_eq(m->semver.major, 1);
        ck_assert_int_eq(m->semver.minor, 2);
        ck_assert_int_eq(m->semver.patch, 3);
        ck_assert_str_eq(m->semver.prerelease, "rc.1");
        ck_assert_str_eq(m->description, "Multiplies two matrices.");
        ck_assert_uint_eq(strv_len(m->command), 2);
        ck_assert_str_eq(m->command[0], "/bin/algo");
        ck_assert_str_eq(m->command[1], "--fast");
        ck_assert_uint_eq(strv_len(m->env), 3);
        ck_assert_str_eq(m->env[0], "LC_ALL=C");
        ck_assert_str_eq(m->env[1], "EMPTY=");
        ck_assert_str_eq(m->env[2], "_X1=a=b");
        ck_assert_double_eq(m->resources.cpu_cores, 1.5);
        ck_assert_int_eq(m->resources.memory_mb, 128);
        ck_assert_int_eq(m->resources.pids, 32);
        ck_assert_int_eq(m->resources.disk_mb, 8);
        ck_assert_int_eq(m->timeout_seconds, 45);
        ck_assert_int_eq(m->resources.timeout_seconds, 45);
        ck_assert_int_eq(m->max_concurrent, 2);
        ck_assert_str_eq(m->oci_template, "strict-1");
        ck_assert_uint_eq(strv_len(m->extra_syscalls), 2);
        ck_assert_str_eq(m->extra_syscalls[0], "ptrace");

        char *real = realpath(dir, NULL);
        char *want = NULL;
        ck_assert_str_eq(m->dir, real);
        ck_assert_int_ge(asprintf(&want, "%s/plugin.yaml", real), 0);
        ck_assert_str_eq(m->path, want);
        free(want);
        ck_assert_int_ge(asprintf(&want, "%s/rootfs", real), 0);
        ck_assert_str_eq(m->rootfs, want);
        free(want);
        free(real);

        /* YAML scalars as JSON: plain numbers, booleans and null are typed,
         * quoted scalars stay strings. */
        json_t *e = json_object_get(json_object_get(json_object_get(m->input_schema, "properties"),
                                                    "mode"), "enum");
        ck_assert_uint_eq(json_array_size(e), 6);
        ck_assert_str_eq(json_string_value(json_array_get(e, 0)), "fast");
        ck_assert_str_eq(json_string_value(json_array_get(e, 1)), "1");
        ck_assert(json_is_integer(json_array_get(e, 2)));
        ck_assert(json_is_real(json_array_get(e, 3)));
        ck_assert(json_is_true(json_array_get(e, 4)));
        ck_assert(json_is_null(json_array_get(e, 5)));
        json_t *ma = json_object_get(json_object_get(m->input_schema, "properties"), "matrix_a");
        ck_assert_int_eq(json_integer_value(json_object_get(ma, "minItems")), 1);

        /* Reference counting: the last unref frees (ASan checks). */
        ck_assert_ptr_eq(manifest_ref(m), m);
        ck_assert_int_eq(m->refs, 2);
        manifest_unref(m);
        manifest_unref(m);
        manifest_unref(NULL);
}
END_TEST

START_TEST(test_minimal_defaults)
{
        struct manifest *m = load_ok(MINIMAL);
        ck_assert_uint_eq(strv_len(m->env), 0);
        ck_assert_ptr_nonnull(m->env);
        ck_assert_uint_eq(strv_len(m->extra_syscalls), 0);
        ck_assert_ptr_null(m->semver.prerelease);
        ck_assert_str_eq(m->oci_template, "default");
        ck_assert_double_eq(m->resources.cpu_cores, 0);
        ck_assert_int_eq(m->resources.memory_mb, 0);
        ck_assert_int_eq(m->timeout_seconds, 0);
        ck_assert_int_eq(m->max_concurrent, 0);
        manifest_unref(m);
}
END_TEST

START_TEST(test_missing_required)
{
        expect_error("name: algo\n"
                     "description: x\n"
                     "command: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "1:1: version: missing required key");
        /* Several missing: all listed, "; "-separated, in key order. */
        write_yaml("name: algo\n");
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        char want[2048];
        snprintf(want, sizeof want,
                 "%1$s:1:1: version: missing required key; %1$s:1:1: description: missing required key; "
                 "%1$s:1:1: command: missing required key; %1$s:1:1: input_schema: missing required key",
                 yaml);
        ck_assert_str_eq(e.msg, want);
}
END_TEST

START_TEST(test_wrong_types)
{
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\n"
                     "command: /bin/algo\n"
                     "input_schema: {type: object}\n",
                     "4:10: command: expected a list, got a scalar");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\n"
                     "command: []\n"
                     "input_schema: {type: object}\n",
                     "4:10: command: must not be empty");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\n"
                     "command: [/bin/algo, {a: 1}]\n"
                     "input_schema: {type: object}\n",
                     "4:22: command[1]: expected a string, got a mapping");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\n"
                     "command: [bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "4:11: command[0]: `bin/algo` must be an absolute path inside the rootfs");
        expect_error(MINIMAL "timeout_seconds: soon\n",
                     "7:18: timeout_seconds: `soon` is not an integer");
        expect_error(MINIMAL "timeout_seconds: 0\n",
                     "7:18: timeout_seconds: must be between 1 and 86400, got 0");
        expect_error(MINIMAL "max_concurrent: 1001\n",
                     "7:17: max_concurrent: must be between 0 and 1000, got 1001");
        expect_error(MINIMAL "input_schema: [1]\n", "7:1: input_schema: duplicate key");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: [1]\n",
                     "5:15: input_schema: expected a mapping (a JSON Schema), got a list");
        expect_error(MINIMAL "resources: 5\n", "7:12: resources: expected a mapping, got a scalar");
        expect_error(MINIMAL "resources:\n  memory_mb: 2\n",
                     "8:14: resources.memory_mb: must be between 4 and 1048576 (or 0 for the default), got 2");
        expect_error(MINIMAL "resources:\n  cpu_cores: 2000\n",
                     "8:14: resources.cpu_cores: must be between 0 and 1024, got 2000");
        expect_error(MINIMAL "env: [A]\n", "7:6: env: expected a mapping of NAME: value, got a list");
        expect_error(MINIMAL "env:\n  1BAD: x\n",
                     "8:3: env.1BAD: not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
        expect_error(MINIMAL "env:\n  A: [x]\n", "8:6: env.A: expected a string, got a list");
        expect_error(MINIMAL "description: again\n", "7:1: description: duplicate key");
        expect_error("name: algo\nversion: 1.0.0\ndescription: \"\"\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "3:14: description: must not be empty");
        expect_error(MINIMAL "oci_template: ../etc\n",
                     "7:15: oci_template: `../etc` must be 1 to 64 characters of a-z, 0-9, _ and -");

        /* 0 means "the config default" for resources. */
        struct manifest *m = load_ok(MINIMAL "resources: {memory_mb: 0, cpu_cores: 0}\n");
        ck_assert_int_eq(m->resources.memory_mb, 0);
        manifest_unref(m);
}
END_TEST

START_TEST(test_bad_semver)
{
        expect_error("name: algo\nversion: 1.02.3\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "2:10: version: `1.02.3` is not a semantic version (MAJOR.MINOR.PATCH, no leading zeros)");
        expect_error("name: algo\nversion: 1.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "2:10: version: `1.0` is not a semantic version (MAJOR.MINOR.PATCH)");
        expect_error("name: algo\nversion: 1.0.0-rc..1\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "2:10: version: `1.0.0-rc..1`: bad pre-release `rc..1`");
}
END_TEST

START_TEST(test_bad_name)
{
        expect_error("name: Matrix\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "1:7: name: `Matrix` must be 1 to 64 characters of a-z, 0-9, _ and -");
        expect_error("name: \"\"\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "1:7: name: `` must be 1 to 64 characters of a-z, 0-9, _ and -");
        expect_error("name: a/b\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n",
                     "1:7: name: `a/b` must be 1 to 64 characters of a-z, 0-9, _ and -");
}
END_TEST

/* A plugin's name and version become Prometheus label values as they are
 * (edgecd_warm_pool_*{algorithm,version}, edgecd_algorithm_*{algorithm}),
 * unescaped: that is safe only because no manifest that loads can carry a
 * backslash, a double quote or a line feed in either.  Every byte value
 * is tried in both, written as a YAML escape. */
START_TEST(test_name_and_version_are_label_safe)
{
        static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._+";
        for (int i = 0; i < 3 * 255; i++) {
                int c = i % 255 + 1;
                /* In the name, in a pre-release, in build metadata. */
                char head[128], text[512];
                if (i < 255)
                        snprintf(head, sizeof head, "name: \"a\\x%02xb\"\nversion: 1.0.0\n", c);
                else
                        snprintf(head, sizeof head, "name: algo\nversion: \"1.0.0%ca\\x%02xb\"\n",
                                 i < 510 ? '-' : '+', c);
                snprintf(text, sizeof text, "%sdescription: x\ncommand: [/bin/algo]\ninput_schema: {type: object}\n",
                         head);
                write_yaml(text);
                struct manifest *m = NULL;
                struct err e = ERR_INIT;
                if (manifest_load(yaml, &m, &e) < 0)
                        continue;
                /* Only what the names and semver allow got through. */
                ck_assert_msg(c < 128 && strchr(plain, c), "byte 0x%02x loaded", (unsigned)c);
                ck_assert_ptr_null(strpbrk(m->name, "\"\\\n"));
                ck_assert_ptr_null(strpbrk(m->version, "\"\\\n"));
                manifest_unref(m);
        }
        /* The three by name, and a version's build metadata too. */
        const char *bad[] = { "\"1.0.0-a\\\"b\"", "\"1.0.0+a\\\\b\"", "\"1.0.0\\n\"", "\"1.0.0+b\\nx\"" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char text[512];
                snprintf(text, sizeof text,
                         "name: algo\nversion: %s\ndescription: x\ncommand: [/bin/algo]\n"
                         "input_schema: {type: object}\n", bad[i]);
                write_yaml(text);
                struct manifest *m = NULL;
                struct err e = ERR_INIT;
                ck_assert_msg(manifest_load(yaml, &m, &e) < 0, "%s loaded", bad[i]);
                ck_assert_msg(strstr(e.msg, ":2:10: version: "), "%s", e.msg);
        }
}
END_TEST

START_TEST(test_unknown_syscall)
{
        expect_error(MINIMAL "syscalls:\n  - read\n  - nosuchcall\n",
                     "9:5: syscalls[1]: unknown syscall `nosuchcall`");
        /* The floor no manifest can lower. */
        expect_error(MINIMAL "syscalls: [read, unshare]\n",
                     "7:18: syscalls[1]: syscall `unshare` can never be allowed: it makes namespaces");
        expect_error(MINIMAL "syscalls: [clone3]\n",
                     "7:12: syscalls[0]: syscall `clone3` can never be allowed: its namespace flags cannot be filtered");
        expect_error(MINIMAL "syscalls: read\n", "7:11: syscalls: expected a list, got a scalar");
}
END_TEST

START_TEST(test_unknown_key)
{
        expect_error(MINIMAL "timeout: 5\n", "7:1: timeout: unknown key");
        expect_error(MINIMAL "resources:\n  memroy_mb: 5\n",
                     "8:3: resources.memroy_mb: unknown key (expected cpu_cores, memory_mb, pids, disk_mb)");
}
END_TEST

START_TEST(test_syntax_error)
{
        write_yaml("name: algo\nversion: 1.0.0\n  description: x\n");
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        char want[1024];
        snprintf(want, sizeof want, "%s:3:14: syntax error: ", yaml);
        ck_assert_msg(!strncmp(e.msg, want, strlen(want)), "got `%s`", e.msg);

        expect_error("- a\n- b\n", "1:1: the top level must be a mapping, got a list");
        expect_error("", " the manifest is empty");
}
END_TEST

START_TEST(test_input_schema_errors)
{
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema:\n"
                     "  type: object\n"
                     "  properties:\n"
                     "    a:\n"
                     "      type: strin\n",
                     "9:13: input_schema/properties/a/type: unknown type `strin`");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema:\n"
                     "  type: object\n"
                     "  requird: [a]\n",
                     "7:12: input_schema/requird: unsupported keyword `requird`");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                     "input_schema:\n"
                     "  type: object\n"
                     "  properties: {a: {}, a: {}}\n",
                     "7:23: input_schema/properties/a: duplicate key");
        /* An alias cycle is caught by the depth cap, not the stack. */
        write_yaml("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                   "input_schema: &s\n  type: object\n  items: *s\n");
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "nested too deeply"));
}
END_TEST

#define HEAD "name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"

/* A hostile manifest gets a clear FILE:LINE:COL: KEY: error, soon (Check's
 * timeout is the backstop), in little memory.  Aliases of aliases of a
 * 200,000-byte string: 10,000 copies were 4.1 GB and 24 s.  The converted
 * text is budgeted. */
START_TEST(test_yaml_alias_bomb)
{
        char *bomb = tu_repeat(HEAD "input_schema: {type: object, default: [&s \"", "A", 200000,
                            "\", &a [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]"
                            ", &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]"
                            ", &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]"
                            ", &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], [*d]]}\n");
        expect_error(bomb, "5:40: input_schema/default/1/4: more than 1 MiB of text (aliases?)");
        free(bomb);
}
END_TEST

/* 120,000 nested lists took 40 s in libyaml's scanner; 250,000 unclosed
 * ones 92 s before their syntax error.  Refused at the first level past
 * 128, before the tree is built. */
START_TEST(test_yaml_nesting)
{
        char *open = tu_repeat(HEAD "env: ", "[", 120000, "");
        char *deep = tu_repeat(open, "]", 120000, "\n");
        expect_error(deep, "5:133: env[0][0][0]...: nested more than 128 levels deep");
        free(open);
        free(deep);
        open = tu_repeat(HEAD "env: ", "[", 250000, "\n");
        expect_error(open, "5:133: env[0][0][0]...: nested more than 128 levels deep");
        free(open);
}
END_TEST

/* An error on an aliased node named the anchor's line ("3:14:
 * timeout_seconds: expected an integer"): outside input_schema, anchors
 * and aliases are refused where they stand. */
START_TEST(test_yaml_aliases)
{
        expect_error("name: algo\nversion: 1.0.0\ndescription: &d [x]\ncommand: [/bin/algo]\n"
                     "input_schema: {type: object}\n\n\n\ntimeout_seconds: *d\n",
                     "3:14: description: anchor &d: YAML anchors and aliases are allowed only "
                     "inside input_schema");
        expect_error(HEAD "input_schema: {type: object, properties: {a: &n {type: number}}}\n"
                     "\n\n\ntimeout_seconds: *n\n",
                     "9:18: timeout_seconds: alias *n: YAML anchors and aliases are allowed only "
                     "inside input_schema");
        expect_error(HEAD "input_schema: {type: object, properties: {a: &n {type: number}}}\n"
                     "syscalls: [ptrace, *n]\n",
                     "6:20: syscalls[1]: alias *n: YAML anchors and aliases are allowed only "
                     "inside input_schema");
        /* A schema may reuse its own parts. */
        struct manifest *m = load_ok(HEAD "input_schema:\n  type: object\n"
                                     "  properties: {a: &n {type: number}, b: *n}\n");
        char *s = json_dumps(m->input_schema, JSON_SORT_KEYS | JSON_COMPACT);
        ck_assert_str_eq(s, "{\"properties\":{\"a\":{\"type\":\"number\"},\"b\":{\"type\":\"number\"}},"
                            "\"type\":\"object\"}");
        free(s);
        manifest_unref(m);
}
END_TEST

/* libyaml drops explicit tags: "!!str 1" loaded as 1, "!!str yes" as "yes"
 * (PyYAML reads '1' and 'yes').  Refused rather than misread. */
START_TEST(test_yaml_tags)
{
        expect_error(HEAD "input_schema:\n  type: object\n  properties:\n"
                     "    a: {enum: [!!str 1, !!str yes]}\n",
                     "8:16: input_schema/properties/a/enum/0: tag !!str: YAML tags are not "
                     "supported (quote a value to make it a string)");
        expect_error(HEAD "input_schema: {type: object}\ntimeout_seconds: !!int 5\n",
                     "6:18: timeout_seconds: tag !!int: YAML tags are not supported (quote a "
                     "value to make it a string)");
}
END_TEST

START_TEST(test_rootfs_and_command)
{
        /* Missing command binary. */
        char want[2048];
        write_yaml("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/nothere]\n"
                   "input_schema: {type: object}\n");
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        snprintf(want, sizeof want, "%s:4:11: command[0]: `/bin/nothere` not found in the rootfs `", yaml);
        ck_assert_msg(!strncmp(e.msg, want, strlen(want)), "got `%s`", e.msg);

        /* Not executable, not a regular file. */
        put_file("rootfs/bin/data", "x", 0644);
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/data]\n"
                     "input_schema: {type: object}\n",
                     "4:11: command[0]: `/bin/data` is not executable");
        expect_error("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin]\n"
                     "input_schema: {type: object}\n",
                     "4:11: command[0]: `/bin` is not a regular file");

        /* A symlink is accepted (busybox applets). */
        put_link("algo", "rootfs/bin/sh");
        m = load_ok("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/sh, -c, x]\n"
                    "input_schema: {type: object}\n");
        manifest_unref(m);

        /* Merged /usr: /bin -> /usr/bin resolves inside the rootfs, never on the host. */
        mkdirs("merged/usr/bin");
        put_file("merged/usr/bin/tool", "#!/bin/sh\n", 0755);
        put_link("/usr/bin", "merged/bin");
        m = load_ok("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/tool]\n"
                    "input_schema: {type: object}\nrootfs: merged\n");
        manifest_unref(m);
        ck_assert_int_eq(access("/usr/bin/env", X_OK), 0);   /* on the host, not in the rootfs */
        write_yaml("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/env]\n"
                   "input_schema: {type: object}\nrootfs: merged\n");
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "command[0]: `/bin/env` not found in the rootfs"));
}
END_TEST

/* Missing rootfs: named at the rootfs key, or at the top without one. */
START_TEST(test_rootfs_missing)
{
        char *real = realpath(dir, NULL);
        char want[2048];
        struct manifest *m = NULL;
        struct err e = ERR_INIT;

        write_yaml("name: algo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/algo]\n"
                   "input_schema: {type: object}\nrootfs: other\n");
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        snprintf(want, sizeof want, "%s:6:9: rootfs: `%s/other`: no such directory", yaml, real);
        ck_assert_str_eq(e.msg, want);

        tu_rm_rf(dir);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        write_yaml(MINIMAL);
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        snprintf(want, sizeof want, "%s:1:1: rootfs: `%s/rootfs`: no such directory", yaml, real);
        ck_assert_str_eq(e.msg, want);

        expect_error(MINIMAL "rootfs: ../x\n",
                     "7:9: rootfs: `../x` must be a relative path inside the plugin directory without `..`");
        expect_error(MINIMAL "rootfs: /abs\n",
                     "7:9: rootfs: `/abs` must be a relative path inside the plugin directory without `..`");
        free(real);
}
END_TEST

START_TEST(test_many_problems_collected)
{
        write_yaml("name: Bad\n"
                   "version: one\n"
                   "description: x\n"
                   "command: [/bin/algo]\n"
                   "input_schema: {type: object}\n"
                   "bogus: 1\n"
                   "syscalls: [nosuch]\n");
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        char want[2048];
        snprintf(want, sizeof want,
                 "%1$s:1:7: name: `Bad` must be 1 to 64 characters of a-z, 0-9, _ and -; "
                 "%1$s:2:10: version: `one` is not a semantic version (MAJOR.MINOR.PATCH, no leading zeros); "
                 "%1$s:6:1: bogus: unknown key; "
                 "%1$s:7:12: syscalls[0]: unknown syscall `nosuch`",
                 yaml);
        ck_assert_str_eq(e.msg, want);

        /* Too many to fit: cut at a whole problem, marked "; ...". */
        char big[16384] = MINIMAL;
        for (int i = 0; i < 60; i++) {
                char line[64];
                snprintf(line, sizeof line, "unknown_key_%02d: 1\n", i);
                strcat(big, line);
        }
        write_yaml(big);
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        size_t n = strlen(e.msg);
        ck_assert_uint_lt(n, sizeof e.msg);
        ck_assert_str_eq(e.msg + n - 5, "; ...");
}
END_TEST

START_TEST(test_file_limits)
{
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        /* No plugin.yaml: not found. */
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        /* Bigger than 256 KiB: refused before parsing. */
        char *big = malloc(300 * 1024);
        memset(big, '#', 300 * 1024 - 1);
        big[300 * 1024 - 1] = '\0';
        write_yaml(big);
        free(big);
        ck_assert_int_eq(manifest_load(yaml, &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_TOO_LARGE);
        ck_assert_ptr_nonnull(strstr(e.msg, "over the limit"));
        ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_rootfs_must_stay_in_the_plugin_dir)
{
        /* A rootfs that is a link out of the plugin dir (here to /) is refused. */
        put_link("/", "hostroot");
        write_yaml(MINIMAL "rootfs: hostroot\n");
        struct manifest *bad = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &bad, &e), -1);
        ck_assert_ptr_null(bad);
        ck_assert_msg(strstr(e.msg, ":7:9: rootfs: `") && strstr(e.msg, "/hostroot` resolves to `/`, outside the "
                                                                   "plugin directory"), "%s", e.msg);
        /* A link that stays inside is fine, and the resolved path is kept. */
        put_link("rootfs", "current");
        struct manifest *m = load_ok(MINIMAL "rootfs: current\n");
        ck_assert_ptr_null(strstr(m->rootfs, "current"));
        ck_assert_ptr_nonnull(strstr(m->rootfs, "/rootfs"));
        manifest_unref(m);
}
END_TEST

START_TEST(test_manifest_must_stay_in_the_plugin_dir)
{
        /* plugin.yaml a link to a file elsewhere: refused before it is
         * read, so nothing of that file is quoted (it was read as root and
         * its values shown in GET /v1/algorithms's broken list). */
        char *secret = tu_write(tu_base, "secret.yaml", "name: Hunter2.Secret\n");
        ck_assert_int_eq(symlink(secret, yaml), 0);
        struct manifest *bad = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(manifest_load(yaml, &bad, &e), -1);
        ck_assert_ptr_null(bad);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_msg(strstr(e.msg, "outside the plugin directory"), "%s", e.msg);
        ck_assert_msg(!strstr(e.msg, "Hunter2"), "%s", e.msg);
        /* Nor is it peeked at (a broken plugin's name and version, a
         * replaced directory's). */
        char *name = NULL, *version = NULL;
        ck_assert_int_eq(manifest_peek(yaml, &name, &version), -1);
        ck_assert_ptr_null(name);
        ck_assert_int_eq(unlink(yaml), 0);
        /* A link inside the plugin directory is fine. */
        mkdirs("manifests");
        put_file("manifests/v1.yaml", MINIMAL, 0644);
        put_link("manifests/v1.yaml", "plugin.yaml");
        struct manifest *m = NULL;
        ck_assert_msg(manifest_load(yaml, &m, &e) == 0, "%s", e.msg);
        manifest_unref(m);
        free(secret);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("manifest");
        TCase *tc = tcase_create("manifest");
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_valid);
        tcase_add_test(tc, test_minimal_defaults);
        tcase_add_test(tc, test_missing_required);
        tcase_add_test(tc, test_wrong_types);
        tcase_add_test(tc, test_bad_semver);
        tcase_add_test(tc, test_bad_name);
        tcase_add_test(tc, test_name_and_version_are_label_safe);
        tcase_add_test(tc, test_unknown_syscall);
        tcase_add_test(tc, test_rootfs_must_stay_in_the_plugin_dir);
        tcase_add_test(tc, test_manifest_must_stay_in_the_plugin_dir);
        tcase_add_test(tc, test_unknown_key);
        tcase_add_test(tc, test_syntax_error);
        tcase_add_test(tc, test_input_schema_errors);
        tcase_add_test(tc, test_yaml_alias_bomb);
        tcase_add_test(tc, test_yaml_nesting);
        tcase_add_test(tc, test_yaml_aliases);
        tcase_add_test(tc, test_yaml_tags);
        tcase_add_test(tc, test_rootfs_and_command);
        tcase_add_test(tc, test_rootfs_missing);
        tcase_add_test(tc, test_many_problems_collected);
        tcase_add_test(tc, test_file_limits);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
