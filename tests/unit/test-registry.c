/* test-registry.c - registry.c: scanning a plugins directory, versions side
 * by side, broken manifests, lookups, the JSON listings and reload. */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "registry/registry.h"
#include "testutil.h"

static char *plugins;


static void setup(void)
{
        plugins = tu_test_dir();
}

static void teardown(void)
{
        tu_rm_rf(plugins);
        free(plugins);
        plugins = NULL;
}

/* plugins/<sub>/plugin.yaml for name@version, with a rootfs holding /bin/run. */
static void add_plugin_text(const char *sub, const char *text)
{
        char *d = NULL;
        ck_assert_int_ge(asprintf(&d, "%s/%s/rootfs/bin", plugins, sub), 0);
        struct err e = ERR_INIT;
        ck_assert_int_eq(mkdir_p(d, 0755, &e), 0);
        char *exe = tu_write(d, "run", "#!/bin/sh\n");
        ck_assert_int_eq(chmod(exe, 0755), 0);
        free(exe);
        free(d);
        ck_assert_int_ge(asprintf(&d, "%s/%s", plugins, sub), 0);
        free(tu_write(d, "plugin.yaml", text));
        free(d);
}

static void add_plugin(const char *sub, const char *name, const char *version, const char *extra)
{
        char *text = NULL;
        ck_assert_int_ge(asprintf(&text,
                                  "name: %s\n"
                                  "version: %s\n"
                                  "description: %s at %s\n"
                                  "command: [/bin/run]\n"
                                  "input_schema:\n"
                                  "  type: object\n"
                                  "  properties: {n: {type: integer, maximum: 10}}\n"
                                  "%s",
                                  name, version, name, version, extra ? extra : ""), 0);
        add_plugin_text(sub, text);
        free(text);
}

struct msgs {
        size_t n;
        char last[2048];
};

static void collect(const char *msg, void *ctx)
{
        struct msgs *m = ctx;
        m->n++;
        snprintf(m->last, sizeof m->last, "%s", msg);
}

static struct registry *load(struct msgs *m)
{
        struct registry *r = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(registry_load(plugins, NULL, 0, collect, m, &r, &e) == 0, "%s", e.msg);
        return r;
}

START_TEST(test_versions_side_by_side)
{
        add_plugin("matmul-1.0.0", "matmul", "1.0.0", NULL);
        add_plugin("matmul-1.10.0", "matmul", "1.10.0", "timeout_seconds: 20\n");
        add_plugin("matmul-1.9.0", "matmul", "1.9.0", NULL);
        add_plugin("matmul-2.0.0-rc.1", "matmul", "2.0.0-rc.1", NULL);
        add_plugin("other", "other", "0.1.0", NULL);
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_count(r), 5);
        ck_assert_uint_eq(registry_broken_count(r), 0);
        ck_assert_uint_eq(msgs.n, 0);

        /* Newest release by semver precedence (1.10.0 > 1.9.0), not the rc. */
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(registry_find(r, "matmul", NULL, &m, &e), 0);
        ck_assert_str_eq(m->version, "1.10.0");
        ck_assert_int_eq(m->timeout_seconds, 20);
        ck_assert_int_eq(m->refs, 2);   /* the registry's and ours */
        manifest_unref(m);

        /* Exact versions, the pre-release included. */
        ck_assert_int_eq(registry_find(r, "matmul", "1.0.0", &m, &e), 0);
        ck_assert_str_eq(m->version, "1.0.0");
        manifest_unref(m);
        ck_assert_int_eq(registry_find(r, "matmul", "2.0.0-rc.1", &m, &e), 0);
        ck_assert_str_eq(m->version, "2.0.0-rc.1");
        manifest_unref(m);
        ck_assert_int_eq(registry_find(r, "matmul", "1.9.0+build7", &m, &e), 0);   /* build ignored */
        ck_assert_str_eq(m->version, "1.9.0");
        manifest_unref(m);

        m = NULL;
        ck_assert_int_eq(registry_find(r, "matmul", "3.0.0", &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        ck_assert_str_eq(e.msg, "algorithm `matmul` version `3.0.0` not found");
        ck_assert_int_eq(registry_find(r, "matmul", "latest", &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_ptr_null(m);
        registry_free(r);
}
END_TEST

START_TEST(test_only_prereleases)
{
        add_plugin("a", "beta", "1.0.0-beta.2", NULL);
        add_plugin("b", "beta", "1.0.0-beta.11", NULL);
        add_plugin("c", "beta", "0.9.0-rc.1", NULL);
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(registry_find(r, "beta", NULL, &m, &e), 0);
        ck_assert_str_eq(m->version, "1.0.0-beta.11");
        manifest_unref(m);
        registry_free(r);
}
END_TEST

START_TEST(test_unknown_name)
{
        add_plugin("x", "x", "1.0.0", NULL);
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        struct manifest *m = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(registry_find(r, "nope", NULL, &m, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        ck_assert_str_eq(e.msg, "algorithm `nope` not found");
        ck_assert_ptr_null(m);
        ck_assert_ptr_null(registry_algorithm_json(r, "nope"));
        registry_free(r);
}
END_TEST

START_TEST(test_broken_and_skipped)
{
        add_plugin("good", "good", "1.0.0", NULL);
        add_plugin_text("typo", "name: typo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/run]\n"
                                "input_schema: {type: object}\nresources: {memroy_mb: 5}\n");
        add_plugin("dup-a", "dup", "1.0.0+a", NULL);
        add_plugin("dup-b", "dup", "1.0.0+b", NULL);   /* same precedence: a duplicate */
        /* Skipped silently: a dir without plugin.yaml, a dot dir, a plain file. */
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/empty", plugins), 0);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        free(p);
        add_plugin(".hidden", "hidden", "1.0.0", NULL);
        free(tu_write(plugins, "README", "not a plugin\n"));

        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_count(r), 2);
        ck_assert_uint_eq(registry_broken_count(r), 2);
        ck_assert_uint_eq(msgs.n, 2);

        json_t *list = registry_list_json(r);
        json_t *broken = json_object_get(list, "broken");
        ck_assert_uint_eq(json_array_size(broken), 2);
        char want[2048];
        /* dup-b sorts after dup-a, so it is the duplicate. */
        snprintf(want, sizeof want, "%s/dup-b/plugin.yaml", plugins);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(broken, 0), "path")), want);
        /* Named by its file, the version's line and key, and the other file. */
        snprintf(want, sizeof want, "%s/dup-b/plugin.yaml:2: version: `dup` 1.0.0+b is a duplicate of %s/dup-a/plugin.yaml",
                 plugins, plugins);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(broken, 0), "error")), want);
        snprintf(want, sizeof want, "%s/typo/plugin.yaml", plugins);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(broken, 1), "path")), want);
        snprintf(want, sizeof want,
                 "%s/typo/plugin.yaml:6:13: resources.memroy_mb: unknown key (expected cpu_cores, memory_mb, pids, disk_mb)",
                 plugins);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(broken, 1), "error")), want);
        ck_assert_str_eq(msgs.last, want);

        json_t *algs = json_object_get(list, "algorithms");
        ck_assert_uint_eq(json_array_size(algs), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(algs, 0), "name")), "dup");
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(algs, 1), "name")), "good");
        json_decref(list);
        registry_free(r);
}
END_TEST

/* Which broken manifest names an algorithm that is not loaded (a job of
 * it is told why at the next start): the one of its version first. */
START_TEST(test_broken_reason)
{
        add_plugin_text("typo", "name: typo\nversion: 1.0.0\ndescription: x\ncommand: [/bin/run]\n"
                                "input_schema: {type: object}\nmemroy_mb: 5\n");
        add_plugin_text("typo2", "name: typo\nversion: 2.0.0\ndescription: x\ncommand: [/bin/run]\n"
                                 "input_schema: {type: object}\ntimeout_seconds: -1\n");
        add_plugin_text("syntax", "name: [unclosed\n");
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_broken_count(r), 3);
        bool exact = true;
        char want[2048];
        char *why = registry_broken_reason(r, "typo", "2.0.0", &exact);
        ck_assert_ptr_nonnull(why);
        ck_assert(exact);
        snprintf(want, sizeof want, "%s/typo2/plugin.yaml:6:", plugins);
        ck_assert_msg(!strncmp(why, want, strlen(want)), "%s", why);
        free(why);
        why = registry_broken_reason(r, "typo", "1.0.0+build", &exact);
        ck_assert(exact);
        snprintf(want, sizeof want, "%s/typo/plugin.yaml:6:1: memroy_mb: unknown key", plugins);
        ck_assert_str_eq(why, want);
        free(why);
        why = registry_broken_reason(r, "typo", "3.0.0", &exact);
        ck_assert_ptr_nonnull(why);
        ck_assert(!exact);
        free(why);
        ck_assert_ptr_null(registry_broken_reason(r, "nope", NULL, &exact));
        registry_free(r);
}
END_TEST

/* A broken plugin in a directory whose name is not UTF-8 (Latin-1 from an
 * old system): listed all the same, the bad byte shown as U+FFFD. */
START_TEST(test_broken_with_a_name_not_utf8)
{
        add_plugin_text("caf\xE9", "name: cafe\nversion: 1.0.0\ndescription: x\ncommand: [/bin/run]\n"
                                    "input_schema: {type: object}\nresources: {memroy_mb: 5}\n");
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_broken_count(r), 1);
        json_t *list = registry_list_json(r);
        json_t *broken = json_object_get(list, "broken");
        ck_assert_uint_eq(json_array_size(broken), 1);
        const char *path = json_string_value(json_object_get(json_array_get(broken, 0), "path"));
        const char *error = json_string_value(json_object_get(json_array_get(broken, 0), "error"));
        ck_assert_ptr_nonnull(path);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(path, "/caf\xEF\xBF\xBD/plugin.yaml"), "%s", path);
        ck_assert_msg(strstr(error, "memroy_mb: unknown key"), "%s", error);
        json_decref(list);
        registry_free(r);
}
END_TEST

START_TEST(test_list_json_shape)
{
        add_plugin("m1", "matmul", "1.0.0", NULL);
        add_plugin("m2", "matmul", "1.2.0",
                   "resources: {cpu_cores: 1.5, memory_mb: 128}\ntimeout_seconds: 30\nmax_concurrent: 2\n");
        add_plugin("m3", "matmul", "1.3.0-rc.1", NULL);
        add_plugin("a", "adder", "0.1.0", NULL);
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        json_t *list = registry_list_json(r);
        char *text = json_dumps(list, JSON_SORT_KEYS | JSON_COMPACT);
        /* The whole shape, pinned: clients rely on it. */
        const char *want =
                "{\"algorithms\":["
                "{\"description\":\"adder at 0.1.0\",\"health\":\"healthy\",\"input_schema\":"
                "{\"properties\":{\"n\":{\"maximum\":10,\"type\":\"integer\"}},\"type\":\"object\"},"
                "\"latest\":\"0.1.0\",\"max_concurrent\":0,\"name\":\"adder\","
                "\"resources\":{\"cpu_cores\":0.0,\"disk_mb\":0,\"memory_mb\":0,\"pids\":0},"
                "\"timeout_seconds\":0,\"versions\":[\"0.1.0\"]},"
                "{\"description\":\"matmul at 1.2.0\",\"health\":\"healthy\",\"input_schema\":"
                "{\"properties\":{\"n\":{\"maximum\":10,\"type\":\"integer\"}},\"type\":\"object\"},"
                "\"latest\":\"1.2.0\",\"max_concurrent\":2,\"name\":\"matmul\","
                "\"resources\":{\"cpu_cores\":1.5,\"disk_mb\":0,\"memory_mb\":128,\"pids\":0},"
                "\"timeout_seconds\":30,\"versions\":[\"1.3.0-rc.1\",\"1.2.0\",\"1.0.0\"]}"
                "],\"broken\":[]}";
        ck_assert_str_eq(text, want);
        free(text);
        json_decref(list);

        json_t *one = registry_algorithm_json(r, "matmul");
        ck_assert_ptr_nonnull(one);
        ck_assert_str_eq(json_string_value(json_object_get(one, "latest")), "1.2.0");
        ck_assert_uint_eq(json_array_size(json_object_get(one, "versions")), 3);
        json_decref(one);
        registry_free(r);
}
END_TEST

START_TEST(test_empty_and_missing_dir)
{
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_count(r), 0);
        json_t *list = registry_list_json(r);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "algorithms")), 0);
        json_decref(list);
        registry_free(r);
        registry_free(NULL);

        char *missing = NULL;
        ck_assert_int_ge(asprintf(&missing, "%s/nope", plugins), 0);
        struct err e = ERR_INIT;
        r = NULL;
        /* A missing dir is reported and gives an empty registry: the daemon
         * still starts and a rescan finds the plugins once the dir is there. */
        ck_assert_int_eq(registry_load(missing, NULL, 0, collect, &msgs, &r, &e), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(registry_count(r), 0);
        ck_assert_int_ge(msgs.n, 1);
        ck_assert_ptr_nonnull(strstr(msgs.last, "nope"));
        registry_free(r);
        free(missing);
}
END_TEST

START_TEST(test_reload_swaps)
{
        add_plugin("v1", "algo", "1.0.0", NULL);
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        struct manifest *held = NULL;
        struct err e = ERR_INIT;
        struct registry_changes ch;
        ck_assert_int_eq(registry_find(r, "algo", NULL, &held, &e), 0);

        /* Drop in 2.0.0, remove 1.0.0, and break nothing else. */
        add_plugin("v2", "algo", "2.0.0", NULL);
        char *old = NULL;
        ck_assert_int_ge(asprintf(&old, "%s/v1", plugins), 0);
        tu_rm_rf(old);
        free(old);
        ck_assert_int_eq(registry_reload(r, true, NULL, NULL, NULL, &ch, &e), 0);

        struct manifest *m = NULL;
        ck_assert_int_eq(registry_find(r, "algo", NULL, &m, &e), 0);
        ck_assert_str_eq(m->version, "2.0.0");
        manifest_unref(m);
        ck_assert_int_eq(registry_find(r, "algo", "1.0.0", &m, &e), -1);
        /* A job holding the old manifest keeps a valid one. */
        ck_assert_str_eq(held->version, "1.0.0");
        ck_assert_int_eq(held->refs, 1);
        manifest_unref(held);
        registry_free(r);
}
END_TEST

START_TEST(test_registry_full)
{
        /* REGISTRY_MAX_PLUGINS + 2 tiny plugins (a rootfs must sit inside its
         * own plugin dir, so each gets one). */
        add_plugin("p0000", "p0000", "1.0.0", NULL);
        for (int i = 1; i < REGISTRY_MAX_PLUGINS + 2; i++) {
                char *d = NULL, *link = NULL, *text = NULL;
                ck_assert_int_ge(asprintf(&d, "%s/p%04d", plugins, i), 0);
                ck_assert_int_eq(mkdir(d, 0755), 0);
                ck_assert_int_ge(asprintf(&link, "%s/rootfs", d), 0);
                ck_assert_int_eq(mkdir(link, 0755), 0);
                free(link);
                ck_assert_int_ge(asprintf(&link, "%s/rootfs/bin", d), 0);
                ck_assert_int_eq(mkdir(link, 0755), 0);
                char *run = tu_write(link, "run", "#!/bin/sh\n");
                ck_assert_int_eq(chmod(run, 0755), 0);
                free(run);
                ck_assert_int_ge(asprintf(&text, "name: p%04d\nversion: 1.0.0\ndescription: x\n"
                                                 "command: [/bin/run]\ninput_schema: {}\n", i), 0);
                free(tu_write(d, "plugin.yaml", text));
                free(d);
                free(link);
                free(text);
        }
        struct msgs msgs = { 0 };
        struct registry *r = load(&msgs);
        ck_assert_uint_eq(registry_count(r), REGISTRY_MAX_PLUGINS);
        ck_assert_uint_eq(registry_broken_count(r), 2);
        ck_assert_ptr_nonnull(strstr(msgs.last, "p1001/plugin.yaml: not loaded: 1000 plugins are loaded already, "
                                                "the most max_algorithms allows"));
        registry_free(r);

        /* A cap of the operator's: the rest waits, with the reason. */
        struct err e = ERR_INIT;
        msgs = (struct msgs){ 0 };
        ck_assert_int_eq(registry_load(plugins, NULL, 10, collect, &msgs, &r, &e), 0);
        ck_assert_uint_eq(registry_count(r), 10);
        ck_assert_uint_eq(registry_broken_count(r), REGISTRY_MAX_PLUGINS + 2 - 10);
        ck_assert_ptr_nonnull(strstr(msgs.last, "not loaded: 10 plugins are loaded already"));
        registry_free(r);
}
END_TEST

/* Lookups on several threads while another reloads: ASan/TSan-style smoke
 * test that references stay valid across swaps. */
struct race {
        struct registry *r;
        int stop;
};

static void *finder(void *arg)
{
        struct race *x = arg;
        while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
                struct manifest *m = NULL;
                struct err e = ERR_INIT;
                if (registry_find(x->r, "algo", NULL, &m, &e) == 0) {
                        if (strcmp(m->name, "algo"))
                                abort();
                        manifest_unref(m);
                }
                json_decref(registry_list_json(x->r));
        }
        return NULL;
}

/* A rescan that is not forced (the watch's): an unchanged plugin.yaml keeps
 * its manifest, a plugin still being written waits (a changed one keeps its
 * old version meanwhile), changes are told once each, and a broken plugin
 * is not reported again while it stays broken the same way. */
START_TEST(test_incremental_reload)
{
        add_plugin("a", "alpha", "1.0.0", NULL);
        add_plugin("b", "beta", "1.0.0", NULL);
        struct msgs msgs = { 0 }, changes = { 0 };
        struct registry *r = load(&msgs);
        struct manifest *a0 = NULL, *b0 = NULL, *m = NULL;
        struct err e = ERR_INIT;
        struct registry_changes ch;
        ck_assert_int_eq(registry_find(r, "alpha", NULL, &a0, &e), 0);
        ck_assert_int_eq(registry_find(r, "beta", NULL, &b0, &e), 0);
        usleep((REGISTRY_SETTLE_MS + 100) * 1000);

        /* Nothing changed: the same manifests, nothing told. */
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.added + ch.changed + ch.removed + ch.broken + ch.pending, 0);
        ck_assert_uint_eq(changes.n, 0);
        ck_assert_int_eq(registry_find(r, "alpha", NULL, &m, &e), 0);
        ck_assert_ptr_eq(m, a0);
        manifest_unref(m);

        /* beta rewritten, gamma new, both just now: they wait, beta's old
         * version serves meanwhile. */
        add_plugin("b", "beta", "1.0.0", "timeout_seconds: 9\n");
        add_plugin("c", "gamma", "1.0.0", NULL);
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.pending, 2);
        ck_assert_uint_eq(ch.added + ch.changed + ch.removed, 0);
        ck_assert_int_eq(registry_find(r, "gamma", NULL, &m, &e), -1);
        ck_assert_int_eq(registry_find(r, "beta", NULL, &m, &e), 0);
        ck_assert_ptr_eq(m, b0);
        manifest_unref(m);

        /* Settled: taken. */
        usleep((REGISTRY_SETTLE_MS + 100) * 1000);
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.pending, 0);
        ck_assert_uint_eq(ch.added, 1);
        ck_assert_uint_eq(ch.changed, 1);
        ck_assert_uint_eq(changes.n, 2);
        ck_assert_int_eq(registry_find(r, "beta", NULL, &m, &e), 0);
        ck_assert_ptr_ne(m, b0);
        ck_assert_int_eq(m->timeout_seconds, 9);
        manifest_unref(m);
        ck_assert_int_eq(registry_find(r, "alpha", NULL, &m, &e), 0);
        ck_assert_ptr_eq(m, a0);
        manifest_unref(m);

        /* Removed, and one broken: each told once. */
        char *dir = NULL;
        ck_assert_int_ge(asprintf(&dir, "%s/a", plugins), 0);
        tu_rm_rf(dir);
        free(dir);
        add_plugin_text("d", "name: delta\nversion: 1.0.0\nbogus: 1\n");
        usleep((REGISTRY_SETTLE_MS + 100) * 1000);
        changes.n = 0;
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.removed, 1);
        ck_assert_uint_eq(ch.broken, 1);
        ck_assert_uint_eq(changes.n, 2);   /* "plugin removed: alpha 1.0.0 (...)" and delta's error */
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.broken, 0);
        ck_assert_uint_eq(registry_broken_count(r), 1);
        /* A forced rescan reads and checks every manifest and reports the
         * broken again; what reads the same is kept. */
        ck_assert_int_eq(registry_find(r, "gamma", NULL, &m, &e), 0);
        ck_assert_int_eq(registry_reload(r, true, collect, collect, &changes, &ch, &e), 0);
        ck_assert_uint_eq(ch.broken, 1);
        ck_assert_uint_eq(ch.changed + ch.added + ch.removed, 0);
        struct manifest *again = NULL;
        ck_assert_int_eq(registry_find(r, "gamma", NULL, &again, &e), 0);
        ck_assert_ptr_eq(again, m);
        manifest_unref(again);
        manifest_unref(m);

        /* Renamed: the same file elsewhere is that plugin in its new place. */
        char *from = NULL, *to = NULL;
        ck_assert_int_ge(asprintf(&from, "%s/c", plugins), 0);
        ck_assert_int_ge(asprintf(&to, "%s/c2", plugins), 0);
        ck_assert_int_eq(rename(from, to), 0);
        usleep((REGISTRY_SETTLE_MS + 100) * 1000);
        ck_assert_int_eq(registry_reload(r, false, collect, collect, &changes, &ch, &e), 0);
        ck_assert_int_eq(registry_find(r, "gamma", NULL, &m, &e), 0);
        ck_assert_msg(strstr(m->rootfs, "/c2/rootfs"), "%s", m->rootfs);
        manifest_unref(m);
        free(from);
        free(to);
        ck_assert_int_eq(registry_find(r, "alpha", NULL, &m, &e), -1);
        manifest_unref(a0);
        manifest_unref(b0);
        registry_free(r);
}
END_TEST

START_TEST(test_concurrent_reload)
{
        add_plugin("v1", "algo", "1.0.0", NULL);
        add_plugin("v2", "algo", "2.0.0", NULL);
        struct msgs msgs = { 0 };
        struct race x = { .r = load(&msgs) };
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, finder, &x), 0);
        for (int i = 0; i < 30; i++) {
                struct err e = ERR_INIT;
                struct registry_changes ch;
                ck_assert_int_eq(registry_reload(x.r, true, NULL, NULL, NULL, &ch, &e), 0);
        }
        __atomic_store_n(&x.stop, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 3; i++)
                pthread_join(t[i], NULL);
        ck_assert_uint_eq(registry_count(x.r), 2);
        registry_free(x.r);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("registry");
        TCase *tc = tcase_create("registry");
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_versions_side_by_side);
        tcase_add_test(tc, test_only_prereleases);
        tcase_add_test(tc, test_unknown_name);
        tcase_add_test(tc, test_broken_and_skipped);
        tcase_add_test(tc, test_broken_with_a_name_not_utf8);
        tcase_add_test(tc, test_broken_reason);
        tcase_add_test(tc, test_list_json_shape);
        tcase_add_test(tc, test_empty_and_missing_dir);
        tcase_add_test(tc, test_reload_swaps);
        tcase_add_test(tc, test_registry_full);
        tcase_add_test(tc, test_incremental_reload);
        tcase_add_test(tc, test_concurrent_reload);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
