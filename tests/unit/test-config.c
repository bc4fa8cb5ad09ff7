/* test-config.c - config.c: defaults, the YAML loader's messages, byte sizes,
 * config_validate, and the shipped config/edgecd.yaml. */
#include <math.h>
#include <string.h>

#include "base/config.h"
#include "base/util.h"
#include "testutil.h"

/* Collects reported lines. */
struct lines {
        char *v[32];
        size_t n;
};

static void collect(const char *line, void *ctx)
{
        struct lines *l = ctx;
        if (l->n < 32)
                l->v[l->n] = strdup(line);
        l->n++;
}

static void lines_free(struct lines *l)
{
        for (size_t i = 0; i < l->n && i < 32; i++)
                free(l->v[i]);
        l->n = 0;
}

/* A temp dir with one config file; path and dir freed by fixture_done. */
static char *dir, *path;


static void setup(void)
{
        dir = tu_test_dir();
        path = NULL;
}

static void teardown(void)
{
        tu_rm_rf(dir);
        free(dir);
        dir = NULL;
        free(path);
}

static const char *write_cfg(const char *content)
{
        free(path);
        path = tu_write(dir, "edgecd.yaml", content);
        return path;
}

/* Load content over the defaults; returns the load's result. */
static int load(const char *content, struct config *cfg, struct lines *l, struct err *e)
{
        config_init_defaults(cfg);
        return config_load_file(cfg, write_cfg(content), collect, l, e);
}

/* Assert exactly one line was reported and it equals "PATH:" + rest. */
static void expect_one(const struct lines *l, const char *rest)
{
        char want[1024];
        snprintf(want, sizeof want, "%s:%s", path, rest);
        ck_assert_uint_eq(l->n, 1);
        ck_assert_str_eq(l->v[0], want);
}

static void expect_load_error(const char *content, const char *rest)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(load(content, &cfg, &l, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        expect_one(&l, rest);
        char want[1024];
        snprintf(want, sizeof want, "%s:%s", path, rest);
        ck_assert_str_eq(e.msg, want);
        lines_free(&l);
        config_free(&cfg);
}

static void assert_defaults(const struct config *c)
{
        ck_assert_str_eq(c->listen, "127.0.0.1:8080");
        ck_assert_str_eq(c->plugins_dir, "/usr/lib/edgecd/plugins");
        ck_assert_str_eq(c->templates_dir, "/usr/share/edgecd/oci-templates");
        ck_assert_str_eq(c->state_dir, "/var/lib/edgecd");
        ck_assert_str_eq(c->runtime, "youki");
        ck_assert_str_eq(c->cgroup_parent, "/edgecd");
        ck_assert_int_eq(c->workers, 2);
        ck_assert_int_eq(c->queue_capacity, 256);
        ck_assert_int_eq(c->memory_pool_mb, 0);
        ck_assert_int_eq(c->max_batch, 100);
        ck_assert_int_eq(c->drain_seconds, 30);
        ck_assert_int_eq(c->max_body_bytes, 1024 * 1024);
        ck_assert_int_eq(c->max_result_bytes, 1024 * 1024);
        ck_assert_int_eq(c->input_ceiling_bytes, 256 * 1024 * 1024);
        ck_assert_int_eq(c->result_ceiling_bytes, 256 * 1024 * 1024);
        ck_assert_int_eq(c->max_log_bytes, 64 * 1024);
        ck_assert_int_eq(c->max_timeout_seconds, 600);
        ck_assert_int_eq(c->max_pids, 4096);
        ck_assert_int_eq(c->max_image_bytes, 4LL * 1024 * 1024 * 1024);
        ck_assert_int_eq(c->runtime_timeout_seconds, 30);
        ck_assert_int_eq(c->sweep_interval_seconds, 60);
        ck_assert(!c->keep_bundles);
        ck_assert(c->watch_plugins);
        ck_assert_int_eq(c->max_algorithms, 1000);
        ck_assert_str_eq(c->log_level, "info");
        ck_assert_double_eq(c->defaults.cpu_cores, 1.0);
        ck_assert_int_eq(c->defaults.memory_mb, 256);
        ck_assert_int_eq(c->defaults.pids, 64);
        ck_assert_int_eq(c->defaults.disk_mb, 16);
        ck_assert_int_eq(c->defaults.timeout_seconds, 30);
        ck_assert_int_eq(c->job_users.first_uid, 2001000000);
        ck_assert_int_eq(c->job_users.first_gid, 2001000000);
        ck_assert_int_eq(c->job_users.count, 65536);
        ck_assert_int_eq(c->retry.max_attempts, 3);
        ck_assert_int_eq(c->retry.backoff_ms, 250);
        ck_assert_int_eq(c->retry.shortage_retries, 8);
        ck_assert_int_eq(c->breaker.degrade_after, 3);
        ck_assert_int_eq(c->breaker.isolate_after, 5);
        ck_assert_int_eq(c->breaker.cooldown_seconds, 30);
        ck_assert_int_eq(c->store.retention_seconds, 604800);
        ck_assert_int_eq(c->store.max_records, 100000);
        ck_assert_int_eq(c->store.cache_bytes, 8 * 1024 * 1024);
        ck_assert_int_eq(c->warm.max_containers, 32);
        ck_assert_int_eq(c->warm.idle_seconds, 300);
        ck_assert_int_eq(c->http.max_connections, 512);
        ck_assert_int_eq(c->http.max_connections_per_client, 32);
        ck_assert_int_eq(c->http.connection_timeout_seconds, 15);
        ck_assert_int_eq(c->http.max_header_bytes, 16 * 1024);
        ck_assert_int_eq(c->http.max_response_bytes, 64 * 1024 * 1024);
        ck_assert_int_eq(c->http.max_json_depth, 64);
        ck_assert_str_eq(c->http.unix_mode, "0660");
        ck_assert_str_eq(c->http.unix_group, "");
        ck_assert_str_eq(c->auth.tokens_file, "");
        ck_assert(!c->auth.metrics_public);
        ck_assert_ptr_nonnull(c->callbacks.allow);
        ck_assert_ptr_null(c->callbacks.allow[0]);
        ck_assert_str_eq(c->callbacks.secret_file, "");
        ck_assert_int_eq(c->callbacks.max_attempts, 8);
        ck_assert_int_eq(c->callbacks.backoff_ms, 1000);
        ck_assert_int_eq(c->callbacks.max_backoff_ms, 300000);
        ck_assert_int_eq(c->callbacks.connect_timeout_seconds, 5);
        ck_assert_int_eq(c->callbacks.timeout_seconds, 30);
        ck_assert_int_eq(c->callbacks.concurrency, 4);
        ck_assert_int_eq(c->callbacks.max_pending, 10000);
}

START_TEST(test_defaults)
{
        struct config cfg;
        config_init_defaults(&cfg);
        ck_assert_ptr_null(cfg.path);
        assert_defaults(&cfg);
        struct err e = ERR_INIT;
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        config_free(&cfg);
        config_free(&cfg);   /* idempotent */
}
END_TEST

START_TEST(test_full_file)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        int r = load("listen: \"[::1]:9090\"\n"
                     "plugins_dir: /srv/plugins\n"
                     "templates_dir: /srv/templates\n"
                     "state_dir: /srv/state\n"
                     "runtime: runc\n"
                     "cgroup_parent: /system.slice/edgecd\n"
                     "workers: 8\n"
                     "queue_capacity: 1000\n"
                     "max_batch: 10000\n"
                     "drain_seconds: 0\n"
                     "max_body_bytes: 2MiB\n"
                     "max_result_bytes: \"512KiB\"\n"
                     "max_log_bytes: 4096\n"
                     "max_timeout_seconds: 3600\n"
                     "runtime_timeout_seconds: 45\n"
                     "sweep_interval_seconds: 5\n"
                     "keep_bundles: yes\n"
                     "log_level: debug\n"
                     "defaults:\n"
                     "  cpu_cores: 0.5\n"
                     "  memory_mb: 512\n"
                     "  pids: 128\n"
                     "  disk_mb: 32\n"
                     "  timeout_seconds: 120\n"
                     "job_users:\n"
                     "  first_uid: 2100000000\n"
                     "  first_gid: 2100000100\n"
                     "  count: 16\n"
                     "retry:\n"
                     "  max_attempts: 1\n"
                     "  backoff_ms: 0\n"
                     "  shortage_retries: 0\n"
                     "breaker:\n"
                     "  degrade_after: 2\n"
                     "  isolate_after: 2\n"
                     "  cooldown_seconds: 600\n"
                     "store:\n"
                     "  retention_seconds: 3600\n"
                     "  max_records: 5\n"
                     "http:\n"
                     "  max_connections: 64\n"
                     "  max_connections_per_client: 4\n"
                     "  connection_timeout_seconds: 60\n"
                     "  max_header_bytes: 8KiB\n"
                     "  max_response_bytes: 2MiB\n"
                     "  max_json_depth: 16\n"
                     "  unix_mode: \"0600\"\n"
                     "  unix_group: edgecd\n"
                     "auth:\n"
                     "  tokens_file: /etc/edgecd/tokens.yaml\n"
                     "  metrics_public: true\n"
                     "callbacks:\n"
                     "  allow: [\"https://hooks.example.com/edgecd/\", \"http://10.0.0.1:8081\"]\n"
                     "  secret_file: /etc/edgecd/callback.secret\n"
                     "  max_attempts: 3\n"
                     "  backoff_ms: 50\n"
                     "  max_backoff_ms: 60000\n"
                     "  connect_timeout_seconds: 2\n"
                     "  timeout_seconds: 9\n"
                     "  concurrency: 16\n",
                     &cfg, &l, &e);
        ck_assert_msg(r == 0, "%s", e.msg);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_str_eq(cfg.path, path);
        ck_assert_str_eq(cfg.listen, "[::1]:9090");
        ck_assert_str_eq(cfg.plugins_dir, "/srv/plugins");
        ck_assert_str_eq(cfg.templates_dir, "/srv/templates");
        ck_assert_str_eq(cfg.state_dir, "/srv/state");
        ck_assert_str_eq(cfg.runtime, "runc");
        ck_assert_str_eq(cfg.cgroup_parent, "/system.slice/edgecd");
        ck_assert_int_eq(cfg.workers, 8);
        ck_assert_int_eq(cfg.queue_capacity, 1000);
        ck_assert_int_eq(cfg.max_batch, 10000);
        ck_assert_int_eq(cfg.drain_seconds, 0);
        ck_assert_int_eq(cfg.max_body_bytes, 2 * 1024 * 1024);
        ck_assert_int_eq(cfg.max_result_bytes, 512 * 1024);
        ck_assert_int_eq(cfg.max_log_bytes, 4096);
        ck_assert_int_eq(cfg.max_timeout_seconds, 3600);
        ck_assert_int_eq(cfg.runtime_timeout_seconds, 45);
        ck_assert_int_eq(cfg.sweep_interval_seconds, 5);
        ck_assert(cfg.keep_bundles);
        ck_assert_str_eq(cfg.log_level, "debug");
        ck_assert_double_eq(cfg.defaults.cpu_cores, 0.5);
        ck_assert_int_eq(cfg.defaults.memory_mb, 512);
        ck_assert_int_eq(cfg.defaults.pids, 128);
        ck_assert_int_eq(cfg.defaults.disk_mb, 32);
        ck_assert_int_eq(cfg.defaults.timeout_seconds, 120);
        ck_assert_int_eq(cfg.job_users.first_uid, 2100000000LL);
        ck_assert_int_eq(cfg.job_users.first_gid, 2100000100LL);
        ck_assert_int_eq(cfg.job_users.count, 16);
        ck_assert_int_eq(cfg.retry.max_attempts, 1);
        ck_assert_int_eq(cfg.retry.backoff_ms, 0);
        ck_assert_int_eq(cfg.retry.shortage_retries, 0);
        ck_assert_int_eq(cfg.breaker.degrade_after, 2);
        ck_assert_int_eq(cfg.breaker.isolate_after, 2);
        ck_assert_int_eq(cfg.breaker.cooldown_seconds, 600);
        ck_assert_int_eq(cfg.store.retention_seconds, 3600);
        ck_assert_int_eq(cfg.store.max_records, 5);
        ck_assert_int_eq(cfg.http.max_connections, 64);
        ck_assert_int_eq(cfg.http.max_connections_per_client, 4);
        ck_assert_int_eq(cfg.http.connection_timeout_seconds, 60);
        ck_assert_int_eq(cfg.http.max_header_bytes, 8192);
        ck_assert_int_eq(cfg.http.max_response_bytes, 2 * 1024 * 1024);
        ck_assert_int_eq(cfg.http.max_json_depth, 16);
        ck_assert_str_eq(cfg.http.unix_mode, "0600");
        ck_assert_str_eq(cfg.http.unix_group, "edgecd");
        ck_assert_str_eq(cfg.auth.tokens_file, "/etc/edgecd/tokens.yaml");
        ck_assert(cfg.auth.metrics_public);
        ck_assert_uint_eq(strv_len(cfg.callbacks.allow), 2);
        ck_assert_str_eq(cfg.callbacks.allow[0], "https://hooks.example.com/edgecd/");
        ck_assert_str_eq(cfg.callbacks.allow[1], "http://10.0.0.1:8081");
        ck_assert_str_eq(cfg.callbacks.secret_file, "/etc/edgecd/callback.secret");
        ck_assert_int_eq(cfg.callbacks.max_attempts, 3);
        ck_assert_int_eq(cfg.callbacks.backoff_ms, 50);
        ck_assert_int_eq(cfg.callbacks.max_backoff_ms, 60000);
        ck_assert_int_eq(cfg.callbacks.connect_timeout_seconds, 2);
        ck_assert_int_eq(cfg.callbacks.timeout_seconds, 9);
        ck_assert_int_eq(cfg.callbacks.concurrency, 16);
        ck_assert_int_eq(config_validate(&cfg, collect, &l, &e), 0);
        ck_assert_uint_eq(l.n, 0);
        config_free(&cfg);
}
END_TEST

START_TEST(test_partial_file_keeps_defaults)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(load("# only one key\nworkers: 5\ndefaults:\n  pids: 9\n", &cfg, &l, &e), 0);
        ck_assert_int_eq(cfg.workers, 5);
        ck_assert_int_eq(cfg.defaults.pids, 9);
        ck_assert_int_eq(cfg.defaults.memory_mb, 256);
        ck_assert_str_eq(cfg.listen, "127.0.0.1:8080");
        config_free(&cfg);
}
END_TEST

START_TEST(test_empty_file)
{
        static const char *const empties[] = { "", "# nothing but a comment\n", "---\n", "\n\n" };
        for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
                struct config cfg;
                struct lines l = { 0 };
                struct err e = ERR_INIT;
                ck_assert_int_eq(load(empties[i], &cfg, &l, &e), 0);
                ck_assert_uint_eq(l.n, 0);
                assert_defaults(&cfg);
                config_free(&cfg);
        }
}
END_TEST

START_TEST(test_unknown_key)
{
        expect_load_error("workers: 2\nworkerz: 3\n", "2:1: workerz: unknown key");
        expect_load_error("defaults:\n  memroy_mb: 3\n", "2:3: defaults.memroy_mb: unknown key");
        expect_load_error("http:\n  max_conections: 3\n", "2:3: http.max_conections: unknown key");
        expect_load_error("store:\n  max_record: 3\n", "2:3: store.max_record: unknown key");
        /* An option's dotted name is not a key of the file: it would
         * override the nested one unseen. */
        expect_load_error("defaults:\n  pids: 10\ndefaults.pids: 20\n", "3:1: defaults.pids: unknown key");
        expect_load_error("http.unix_mode: \"0600\"\n", "1:1: http.unix_mode: unknown key");
        expect_load_error("http:\n  tls.cert: x\n", "2:3: http.tls.cert: unknown key");
        /* A key quoted back is one line, its control characters escaped. */
        expect_load_error("\"a\\nb\\e[2J\\x7f\\u009b1m\\u00a0\": 1\n",
                          "1:1: a\\nb\\x1b[2J\\x7f\\u009b1m\xc2\xa0: unknown key");
}
END_TEST

START_TEST(test_removed_keys)
{
        /* uid and gid gave way to job_users: an old file says so at once
         * instead of running jobs as someone it did not mean. */
        expect_load_error("workers: 2\nuid: 65534\n", "2:1: uid: unknown key");
        expect_load_error("gid: 65534\n", "1:1: gid: unknown key");
        /* The in-memory store's bounds gave way to store.retention_seconds
         * and store.max_records. */
        expect_load_error("jobs_kept: 10000\n", "1:1: jobs_kept: unknown key");
        expect_load_error("kept_results_bytes: 64MiB\n", "1:1: kept_results_bytes: unknown key");
}
END_TEST

START_TEST(test_wrong_type)
{
        expect_load_error("workers: [1, 2]\n", "1:10: workers: expected an integer, got a list");
        expect_load_error("workers: abc\n", "1:10: workers: `abc` is not an integer");
        expect_load_error("workers: 1.5\n", "1:10: workers: `1.5` is not an integer");
        expect_load_error("keep_bundles: maybe\n",
                          "1:15: keep_bundles: `maybe` is not a boolean (true or false)");
        expect_load_error("listen: {a: 1}\n", "1:9: listen: expected a string, got a mapping");
        expect_load_error("listen:\n", "1:8: listen: expected a string, got null");
        expect_load_error("defaults: [1]\n", "1:11: defaults: expected a mapping, got a list");
        expect_load_error("defaults:\n  cpu_cores: lots\n",
                          "2:14: defaults.cpu_cores: `lots` is not a number");
}
END_TEST

START_TEST(test_out_of_range)
{
        expect_load_error("workers: 0\n", "1:10: workers: must be between 1 and 1024, got 0");
        expect_load_error("job_users:\n  first_uid: -1\n",
                          "2:14: job_users.first_uid: must be between 1 and 2147483647, got -1");
        expect_load_error("job_users:\n  first_gid: 99999999999999999999999\n",
                          "2:14: job_users.first_gid: must be between 1 and 2147483647, got 99999999999999999999999");
        expect_load_error("job_users:\n  first_uid: 0\n",
                          "2:14: job_users.first_uid: must be between 1 and 2147483647, got 0");
        expect_load_error("http:\n  max_json_depth: 0\n",
                          "2:19: http.max_json_depth: must be between 1 and 10000, got 0");
        expect_load_error("retry:\n  max_attempts: 101\n",
                          "2:17: retry.max_attempts: must be between 1 and 100, got 101");
        expect_load_error("defaults:\n  memory_mb: 2\n",
                          "2:14: defaults.memory_mb: must be between 4 and 1048576, got 2");
        expect_load_error("defaults:\n  cpu_cores: 0\n",
                          "2:14: defaults.cpu_cores: must be between 0.01 and 1024, got 0");
        expect_load_error("max_batch: 0\n", "1:12: max_batch: must be between 1 and 10000, got 0");
        expect_load_error("max_batch: 10001\n", "1:12: max_batch: must be between 1 and 10000, got 10001");
        expect_load_error("drain_seconds: -1\n", "1:16: drain_seconds: must be between 0 and 86400, got -1");
        expect_load_error("drain_seconds: 86401\n",
                          "1:16: drain_seconds: must be between 0 and 86400, got 86401");
        expect_load_error("store:\n  retention_seconds: 0\n",
                          "2:22: store.retention_seconds: must be between 1 and 315360000, got 0");
        expect_load_error("store:\n  retention_seconds: 315360001\n",
                          "2:22: store.retention_seconds: must be between 1 and 315360000, got 315360001");
        expect_load_error("store:\n  max_records: 0\n",
                          "2:16: store.max_records: must be between 1 and 100000000, got 0");
        expect_load_error("store:\n  max_records: 100000001\n",
                          "2:16: store.max_records: must be between 1 and 100000000, got 100000001");
}
END_TEST

START_TEST(test_duplicate_key)
{
        expect_load_error("workers: 2\nlisten: x:1\nworkers: 3\n", "3:1: workers: duplicate key");
        expect_load_error("defaults:\n  pids: 2\n  pids: 3\n", "3:3: defaults.pids: duplicate key");
}
END_TEST

START_TEST(test_syntax_error)
{
        /* The parser's problem mark: the second line's stray indentation. */
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(load("workers: 2\n  listen: x\n", &cfg, &l, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_uint_eq(l.n, 1);
        char want[512];
        snprintf(want, sizeof want, "%s:2:9: syntax error: ", path);
        ck_assert_msg(!strncmp(l.v[0], want, strlen(want)), "got `%s`", l.v[0]);
        lines_free(&l);
        config_free(&cfg);

        ck_assert_int_eq(load("workers: [1, 2\n", &cfg, &l, &e), -1);
        ck_assert_uint_eq(l.n, 1);
        snprintf(want, sizeof want, "%s:2:1: syntax error: ", path);
        ck_assert_msg(!strncmp(l.v[0], want, strlen(want)), "got `%s`", l.v[0]);
        lines_free(&l);
        config_free(&cfg);

        /* A second document would be silently ignored: refuse it. */
        expect_load_error("workers: 2\n---\nworkers: 3\n", "3:1: more than one yaml document");

        /* No anchors or aliases (a problem on an aliased node would name
         * the anchor's line), no tags (libyaml drops them). */
        expect_load_error("listen: &l \"[::1]:8080\"\nruntime: *l\n",
                          "1:9: listen: anchor &l: YAML anchors and aliases are not allowed in this "
                          "file");
        expect_load_error("workers: !!int 2\n",
                          "1:10: workers: tag !!int: YAML tags are not supported (quote a value to "
                          "make it a string)");
}
END_TEST

START_TEST(test_top_level_not_mapping)
{
        expect_load_error("- workers: 2\n", "1:1: the top level must be a mapping, got a list");
        expect_load_error("hello\n", "1:1: the top level must be a mapping, got a scalar");
}
END_TEST

START_TEST(test_huge_mapping_refused_at_once)
{
        /* 20000 distinct keys: checking each for duplicates against every
         * other would take minutes; the mapping is refused whole instead. */
        size_t cap = 20000 * 16 + 64;
        char *text = malloc(cap);
        size_t n = 0;
        for (int i = 0; i < 20000; i++)
                n += (size_t)snprintf(text + n, cap - n, "k%06d: 1\n", i);
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(load(text, &cfg, &l, &e), -1);
        ck_assert_int_lt(now_mono_ms() - t0, 2000);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_msg(strstr(l.v[0], "1:1: (top level): 20000 keys, more than the 256 allowed"), "%s", l.v[0]);
        lines_free(&l);
        config_free(&cfg);
        free(text);
}
END_TEST

START_TEST(test_missing_file)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        config_init_defaults(&cfg);
        char *missing = NULL;
        ck_assert_int_ge(asprintf(&missing, "%s/nope.yaml", dir), 0);
        ck_assert_int_eq(config_load_file(&cfg, missing, collect, &l, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        char want[512];
        snprintf(want, sizeof want, "open `%s`: No such file or directory", missing);
        ck_assert_str_eq(e.msg, want);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_str_eq(l.v[0], want);
        assert_defaults(&cfg);
        lines_free(&l);
        config_free(&cfg);
        free(missing);
}
END_TEST

START_TEST(test_several_errors)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(load("workers: 0\n"
                              "bogus: 1\n"
                              "queue_capacity: 10\n"
                              "keep_bundles: maybe\n"
                              "defaults:\n"
                              "  pids: x\n"
                              "  disk_mb: 2\n",
                              &cfg, &l, &e), -1);
        ck_assert_uint_eq(l.n, 4);
        char want[512];
        snprintf(want, sizeof want, "%s:1:10: workers: must be between 1 and 1024, got 0", path);
        ck_assert_str_eq(l.v[0], want);
        snprintf(want, sizeof want, "%s:2:1: bogus: unknown key", path);
        ck_assert_str_eq(l.v[1], want);
        snprintf(want, sizeof want, "%s:4:15: keep_bundles: `maybe` is not a boolean (true or false)", path);
        ck_assert_str_eq(l.v[2], want);
        snprintf(want, sizeof want, "%s:6:9: defaults.pids: `x` is not an integer", path);
        ck_assert_str_eq(l.v[3], want);
        /* Good keys after bad ones still load. */
        ck_assert_int_eq(cfg.queue_capacity, 10);
        ck_assert_int_eq(cfg.defaults.disk_mb, 2);
        snprintf(want, sizeof want, "%s:1:10: workers: must be between 1 and 1024, got 0 (and 3 more problems)",
                 path);
        ck_assert_str_eq(e.msg, want);
        lines_free(&l);
        config_free(&cfg);
}
END_TEST

START_TEST(test_sizes)
{
        static const struct { const char *text; int64_t bytes; } ok[] = {
                { "4096", 4096 }, { "64KiB", 65536 }, { "\"64KiB\"", 65536 }, { "2 MiB", 2097152 },
                { "1GiB", 1073741824 }, { "1024B", 1024 },
        };
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
                struct config cfg;
                struct lines l = { 0 };
                struct err e = ERR_INIT;
                char text[128];
                snprintf(text, sizeof text, "max_log_bytes: %s\n", ok[i].text);
                ck_assert_msg(load(text, &cfg, &l, &e) == 0, "%s: %s", ok[i].text, e.msg);
                ck_assert_int_eq(cfg.max_log_bytes, ok[i].bytes);
                config_free(&cfg);
        }
        expect_load_error("max_log_bytes: 1.5MiB\n",
                          "1:16: max_log_bytes: `1.5MiB` is not a byte size (an integer, or one with KiB, MiB or GiB)");
        expect_load_error("max_log_bytes: 10KB\n",
                          "1:16: max_log_bytes: `10KB` is not a byte size (an integer, or one with KiB, MiB or GiB)");
        expect_load_error("max_log_bytes: 2GiB\n",
                          "1:16: max_log_bytes: must be between 1024 and 1073741824 bytes, got 2GiB");
        expect_load_error("max_log_bytes: 100\n",
                          "1:16: max_log_bytes: must be between 1024 and 1073741824 bytes, got 100");
        expect_load_error("max_log_bytes: 99999999999999999999GiB\n",
                          "1:16: max_log_bytes: must be between 1024 and 1073741824 bytes, got 99999999999999999999GiB");
        expect_load_error("max_log_bytes: -5\n",
                          "1:16: max_log_bytes: `-5` is not a byte size (an integer, or one with KiB, MiB or GiB)");
}
END_TEST

static void expect_invalid(struct config *cfg, const char *want)
{
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_int_eq(config_validate(cfg, collect, &l, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_str_eq(l.v[0], want);
        ck_assert_str_eq(e.msg, want);
        lines_free(&l);
}

/* As expect_invalid, the message "PATH:" + rest. */
static void expect_invalid_at(struct config *cfg, const char *rest)
{
        char want[1024];
        snprintf(want, sizeof want, "%s:%s", path, rest);
        expect_invalid(cfg, want);
}

START_TEST(test_validate_listen)
{
        static const char *const good[] = {
                "127.0.0.1:8080", "0.0.0.0:1", "[::1]:65535", "[::]:80", "localhost:8080",
                "edge-01.example.com:443", "unix:/run/edgecd.sock",
        };
        static const char *const bad[] = {
                "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "::1:8080",
                "[::1]8080", "[nope]:80", "300.1.1.1:80", ":8080", "-bad-.com:80", "unix:rel.sock",
                "127.0.0.1:+80", "",
        };
        struct config cfg;
        config_init_defaults(&cfg);
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                struct err e = ERR_INIT;
                config_set_string(&cfg.listen, good[i]);
                ck_assert_msg(config_validate(&cfg, NULL, NULL, &e) == 0, "%s: %s", good[i], e.msg);
        }
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct err e = ERR_INIT;
                config_set_string(&cfg.listen, bad[i]);
                ck_assert_msg(config_validate(&cfg, NULL, NULL, &e) == -1, "accepted `%s`", bad[i]);
                char prefix[128];
                snprintf(prefix, sizeof prefix, "listen: `%s`: ", bad[i]);
                ck_assert_msg(!strncmp(e.msg, prefix, strlen(prefix)), "got `%s`", e.msg);
        }
        config_set_string(&cfg.listen, "127.0.0.1:0");
        expect_invalid(&cfg, "listen: `127.0.0.1:0`: the port must be between 1 and 65535");
        config_free(&cfg);
}
END_TEST

START_TEST(test_validate_fields)
{
        struct config cfg;
        config_init_defaults(&cfg);

        config_set_string(&cfg.cgroup_parent, "edgecd");
        expect_invalid(&cfg, "cgroup_parent: `edgecd` must start with '/'");
        config_set_string(&cfg.cgroup_parent, "/edgecd/../escape");
        expect_invalid(&cfg, "cgroup_parent: `/edgecd/../escape` must not contain `..`");
        config_set_string(&cfg.cgroup_parent, "/edgecd/x..y");   /* a name, not a parent */
        struct err e = ERR_INIT;
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        /* Compared as strings, so one spelling per cgroup; and none of
         * systemd's hidden ones. */
        static const char *const unplain[] = { "/", "/.", "//edgecd", "/edgecd/", "/edgecd//x", "/./edgecd",
                                               "/.control", "/edgecd/..x" };
        for (size_t i = 0; i < sizeof unplain / sizeof *unplain; i++) {
                config_set_string(&cfg.cgroup_parent, unplain[i]);
                err_clear(&e);
                ck_assert_msg(config_validate(&cfg, NULL, NULL, &e) < 0, "`%s` accepted", unplain[i]);
                ck_assert_msg(strstr(e.msg, "cgroup_parent"), "%s", e.msg);
        }
        config_set_string(&cfg.cgroup_parent, "/edgecd");

        config_set_string(&cfg.runtime, "");
        expect_invalid(&cfg, "runtime: must not be empty");
        config_set_string(&cfg.runtime, "runc");

        config_set_string(&cfg.log_level, "verbose");
        expect_invalid(&cfg, "log_level: `verbose` is not one of error, warn, info, debug");
        config_set_string(&cfg.log_level, "warn");

        /* Command-line overrides bypass the loader: bounds are checked again. */
        cfg.workers = 0;
        expect_invalid(&cfg, "workers: must be between 1 and 1024, got 0");
        cfg.workers = 2;
        cfg.store.max_records = 0;
        expect_invalid(&cfg, "store.max_records: must be between 1 and 100000000, got 0");
        cfg.store.max_records = 100000;
        cfg.drain_seconds = 86401;
        expect_invalid(&cfg, "drain_seconds: must be between 0 and 86400, got 86401");
        cfg.drain_seconds = 0;   /* no drain at all is allowed */
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        cfg.drain_seconds = 30;

        cfg.defaults.timeout_seconds = 700;
        expect_invalid(&cfg, "defaults.timeout_seconds: 700 is over max_timeout_seconds (600)");
        cfg.defaults.timeout_seconds = 30;
        cfg.defaults.pids = 5000;
        expect_invalid(&cfg, "defaults.pids: 5000 is over max_pids (4096)");
        cfg.defaults.pids = 64;

        cfg.breaker.isolate_after = 2;   /* below degrade_after 3 */
        expect_invalid(&cfg, "breaker.isolate_after: 2 is below breaker.degrade_after (3)");
        cfg.breaker.isolate_after = 3;   /* equal: isolated at once, never degraded first */
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        cfg.breaker.isolate_after = 5;

        /* The job id ranges must end at 2147483647: runc refuses ids above. */
        cfg.job_users.first_uid = 2147483647LL - 11;
        cfg.job_users.count = 12;   /* ends at 2147483647 exactly */
        cfg.job_users.first_gid = 2147483647LL - 11;
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        cfg.job_users.first_uid++;
        expect_invalid(&cfg, "job_users.count: the range ends past 2147483647");
        cfg.job_users.first_uid--;
        cfg.job_users.first_gid++;
        expect_invalid(&cfg, "job_users.count: the range ends past 2147483647");
        cfg.job_users.first_gid = cfg.job_users.first_uid = 2001000000;
        /* Each worker's run and the start-up probe take a pair. */
        cfg.workers = 8;
        cfg.job_users.count = 9;
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        cfg.job_users.count = 8;
        expect_invalid(&cfg, "job_users.count: 8 is too few: each worker's run and the start-up probe need one "
                             "(workers + 1 = 9)");
        cfg.workers = 2;
        cfg.job_users.count = 65536;

        /* With a file that did not set the key, messages name it but
         * no line. */
        config_set_string(&cfg.path, "/etc/edgecd/edgecd.yaml");
        config_set_string(&cfg.runtime, "");
        expect_invalid(&cfg, "/etc/edgecd/edgecd.yaml: runtime: must not be empty");

        /* Several problems: all reported, the error says how many. */
        config_set_string(&cfg.log_level, "loud");
        struct lines l = { 0 };
        ck_assert_int_eq(config_validate(&cfg, collect, &l, &e), -1);
        ck_assert_uint_eq(l.n, 2);
        ck_assert_ptr_nonnull(strstr(e.msg, "(and 1 more problem)"));
        lines_free(&l);
        config_free(&cfg);
}
END_TEST

/* Loaded from a file, what validation refuses names the line that set it
 * (or, when the file does not set the key, the line of the one it is
 * judged against); a command-line option's value has no line. */
static void expect_validate_error(const char *content, const char *rest)
{
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(load(content, &cfg, &l, &e) == 0, "%s", e.msg);
        expect_invalid_at(&cfg, rest);
        config_free(&cfg);
}

START_TEST(test_validate_names_the_line)
{
        expect_validate_error("workers: 2\nlisten: nowhere\n",
                              "2:9: listen: `nowhere`: expected HOST:PORT or unix:/PATH");
        expect_validate_error("\n\ncgroup_parent: edgecd\n", "3:16: cgroup_parent: `edgecd` must start with '/'");
        expect_validate_error("log_level: loud\n", "1:12: log_level: `loud` is not one of error, warn, info, debug");
        expect_validate_error("http:\n  unix_mode: \"999\"\n",
                              "2:14: http.unix_mode: `999` is not an octal file mode (0000..0777)");
        expect_validate_error("breaker:\n  degrade_after: 5\n  isolate_after: 3\n",
                              "3:18: breaker.isolate_after: 3 is below breaker.degrade_after (5)");
        /* Not set in the file: the line of the key it is judged against. */
        expect_validate_error("breaker:\n  degrade_after: 50\n",
                              "2:18: breaker.isolate_after: 5 is below breaker.degrade_after (50)");
        expect_validate_error("callbacks:\n  allow: [\"http://x.example/\"]\n",
                              "2:10: callbacks.secret_file: must be set when callbacks.allow is not empty "
                              "(every callback is signed with it)");
        expect_validate_error("workers: 100\njob_users:\n  count: 50\n",
                              "3:10: job_users.count: 50 is too few: each worker's run and the start-up "
                              "probe need one (workers + 1 = 101)");
        expect_validate_error("job_users:\n  first_uid: 2147480000\n",
                              "2:14: job_users.count: the range ends past 2147483647");
        expect_validate_error("max_timeout_seconds: 10\n",
                              "1:22: defaults.timeout_seconds: 30 is over max_timeout_seconds (10)");
        expect_validate_error("max_pids: 10\n", "1:11: defaults.pids: 64 is over max_pids (10)");
        /* A command-line option replaces the file's value: no line. */
        struct config cfg;
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        ck_assert_msg(load("listen: 127.0.0.1:1\n", &cfg, &l, &e) == 0, "%s", e.msg);
        config_override(&cfg, "listen", "nowhere");
        expect_invalid_at(&cfg, " listen: `nowhere`: expected HOST:PORT or unix:/PATH");
        config_free(&cfg);
}
END_TEST

START_TEST(test_validate_unix_mode)
{
        struct config cfg;
        config_init_defaults(&cfg);
        static const char *const good[] = { "0600", "0660", "0777", "0000", "600", "0" };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                struct err e = ERR_INIT;
                config_set_string(&cfg.http.unix_mode, good[i]);
                ck_assert_msg(config_validate(&cfg, NULL, NULL, &e) == 0, "%s: %s", good[i], e.msg);
        }
        /* Not octal, too long, empty, a sign, setuid bits: all refused. */
        static const char *const bad[] = { "0999", "12345", "", "-600", "0x1ff", "4755", "rw-rw----", " 0600" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char want[128];
                snprintf(want, sizeof want, "http.unix_mode: `%s` is not an octal file mode (0000..0777)", bad[i]);
                config_set_string(&cfg.http.unix_mode, bad[i]);
                expect_invalid(&cfg, want);
        }
        config_free(&cfg);
}
END_TEST

/* config/edgecd.yaml documents every key at its default.  Load it over a
 * config where every field differs from the defaults: a key missing from the
 * file, or set to anything else, makes this fail. */
#if __SIZEOF_POINTER__ == 8
/* A new field changes the size: poison it below and check it in
 * assert_defaults(), then update the number. */
_Static_assert(sizeof(struct config) == 512, "struct config changed: extend the poison and assert_defaults");
#endif
START_TEST(test_callbacks)
{
        /* Each allowlist entry is parsed: file, line and key of a bad one. */
        expect_load_error("callbacks:\n  allow:\n    - http://ok.example/\n    - http://u@x.example/\n",
                          "4:7: callbacks.allow[1]: `http://u@x.example/`: must not carry user info (user@host)");
        expect_load_error("callbacks:\n  allow: [\"ftp://x.example/\"]\n",
                          "2:11: callbacks.allow[0]: `ftp://x.example/`: must be an http:// or https:// URL");
        expect_load_error("callbacks:\n  allow: [\"http://x.example/?q=1\"]\n",
                          "2:11: callbacks.allow[0]: `http://x.example/?q=1`: must not have a query (an entry is "
                          "a scheme, host, port and path prefix)");
        expect_load_error("callbacks:\n  allow: http://x.example/\n",
                          "2:10: callbacks.allow: expected a list, got a scalar");
        expect_load_error("callbacks:\n  concurrency: 0\n",
                          "2:16: callbacks.concurrency: must be between 1 and 256, got 0");
        /* An allowlist needs a secret; a cap below the first wait is wrong. */
        struct config cfg;
        config_init_defaults(&cfg);
        strv_push(&cfg.callbacks.allow, "http://x.example/");
        expect_invalid(&cfg, "callbacks.secret_file: must be set when callbacks.allow is not empty "
                       "(every callback is signed with it)");
        config_set_string(&cfg.callbacks.secret_file, "/etc/edgecd/callback.secret");
        struct err e = ERR_INIT;
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        cfg.callbacks.max_backoff_ms = 500;
        expect_invalid(&cfg, "callbacks.max_backoff_ms: 500 is below callbacks.backoff_ms (1000)");
        config_free(&cfg);
}
END_TEST

START_TEST(test_shipped_file_equals_defaults)
{
        struct config cfg;
        config_init_defaults(&cfg);
        config_set_string(&cfg.listen, "poison:1");
        config_set_string(&cfg.plugins_dir, "/poison");
        config_set_string(&cfg.templates_dir, "/poison");
        config_set_string(&cfg.state_dir, "/poison");
        config_set_string(&cfg.runtime, "poison");
        config_set_string(&cfg.cgroup_parent, "/poison");
        config_set_string(&cfg.log_level, "poison");
        config_set_string(&cfg.http.unix_mode, "poison");
        config_set_string(&cfg.http.unix_group, "poison");
        config_set_string(&cfg.auth.tokens_file, "poison");
        cfg.workers = cfg.queue_capacity = cfg.memory_pool_mb = cfg.max_batch = cfg.drain_seconds = 7;
        cfg.max_body_bytes = cfg.max_result_bytes = cfg.max_log_bytes = 7;
        cfg.input_ceiling_bytes = cfg.result_ceiling_bytes = 7;
        cfg.max_timeout_seconds = cfg.runtime_timeout_seconds = cfg.sweep_interval_seconds = 7;
        cfg.max_pids = 7;
        cfg.max_image_bytes = 7;
        cfg.keep_bundles = true;
        cfg.watch_plugins = false;
        cfg.max_algorithms = 7;
        cfg.defaults = (struct limits){ 7.5, 7, 7, 7, 7 };
        cfg.job_users.first_uid = cfg.job_users.first_gid = cfg.job_users.count = 7;
        cfg.retry.max_attempts = cfg.retry.backoff_ms = cfg.retry.shortage_retries = 7;
        cfg.breaker.degrade_after = cfg.breaker.isolate_after = cfg.breaker.cooldown_seconds = 7;
        cfg.store.retention_seconds = cfg.store.max_records = 7;
        cfg.warm.max_containers = cfg.warm.idle_seconds = 7;
        cfg.store.cache_bytes = 7;
        cfg.http.max_connections = cfg.http.max_connections_per_client = 7;
        cfg.http.connection_timeout_seconds = cfg.http.max_header_bytes = cfg.http.max_json_depth = 7;
        cfg.http.max_response_bytes = 7;
        cfg.auth.metrics_public = true;
        strv_push(&cfg.callbacks.allow, "http://poison/");
        config_set_string(&cfg.callbacks.secret_file, "/poison");
        cfg.callbacks.max_attempts = cfg.callbacks.backoff_ms = cfg.callbacks.max_backoff_ms = 7;
        cfg.callbacks.connect_timeout_seconds = cfg.callbacks.timeout_seconds = cfg.callbacks.concurrency = 7;
        cfg.callbacks.max_pending = 7;

        char *file = NULL;
        ck_assert_int_ge(asprintf(&file, "%s/config/edgecd.yaml", tu_src()), 0);
        struct lines l = { 0 };
        struct err e = ERR_INIT;
        int r = config_load_file(&cfg, file, collect, &l, &e);
        ck_assert_msg(r == 0, "%s", e.msg);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_str_eq(cfg.path, file);
        assert_defaults(&cfg);
        ck_assert_int_eq(config_validate(&cfg, NULL, NULL, &e), 0);
        config_free(&cfg);
        free(file);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("config");
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_full_file);
        tcase_add_test(tc, test_partial_file_keeps_defaults);
        tcase_add_test(tc, test_empty_file);
        tcase_add_test(tc, test_unknown_key);
        tcase_add_test(tc, test_removed_keys);
        tcase_add_test(tc, test_wrong_type);
        tcase_add_test(tc, test_out_of_range);
        tcase_add_test(tc, test_duplicate_key);
        tcase_add_test(tc, test_syntax_error);
        tcase_add_test(tc, test_top_level_not_mapping);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_huge_mapping_refused_at_once);
        tcase_add_test(tc, test_several_errors);
        tcase_add_test(tc, test_sizes);
        tcase_add_test(tc, test_validate_listen);
        tcase_add_test(tc, test_validate_fields);
        tcase_add_test(tc, test_validate_unix_mode);
        tcase_add_test(tc, test_validate_names_the_line);
        tcase_add_test(tc, test_callbacks);
        tcase_add_test(tc, test_shipped_file_equals_defaults);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
