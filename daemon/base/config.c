/* config.c - the daemon's configuration (see config.h).
 *
 * Every option lives in one table, options[] below: its name as written in
 * the YAML file, its type, where it goes in struct config, its bounds and
 * its default.  config_init_defaults(), the loader and config_validate() all
 * walk that table, so adding an option is one row (and a line in
 * config/edgecd.yaml, which tests/unit/test-config.c keeps in step).
 *
 * Only main.c calls this, once, before any thread starts; the result is
 * read-only afterwards. */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "callbackurl.h"
#include "log.h"
#include "util.h"
#include "yamldoc.h"

/* A config file is a few hundred bytes; this only stops a wrong path (a log,
 * a disk image) from being read whole. */
#define CONFIG_MAX_BYTES (1024 * 1024)

#define KiB (1024.0)
#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * 1024.0 * 1024.0)

enum opt_type {
        OPT_STRING,   /* char *: any non-null scalar */
        OPT_INT,      /* int64_t: decimal integer in [min,max] */
        OPT_BYTES,    /* int64_t: integer or "64KiB" in [min,max] bytes */
        OPT_BOOL,     /* bool */
        OPT_DOUBLE,   /* double in [min,max] */
        OPT_SECTION,  /* a mapping whose keys are the rows named "NAME.key" */
        OPT_STRV,     /* char **: a list of strings, NULL-terminated; default empty */
};

struct option {
        const char *name;        /* "workers", or "defaults.memory_mb" inside a section */
        enum opt_type type;
        size_t offset;           /* into struct config */
        double min, max;         /* bounds for numbers (all exact in a double) */
        double def;              /* default for numbers and bools */
        const char *def_str;     /* default for strings */
};

#define OFF(field) offsetof(struct config, field)

static const struct option options[] = {
        { "listen",              OPT_STRING, OFF(listen),        0, 0, 0, "127.0.0.1:8080" },
        { "plugins_dir",         OPT_STRING, OFF(plugins_dir),   0, 0, 0, "/usr/lib/edgecd/plugins" },
        { "templates_dir",       OPT_STRING, OFF(templates_dir), 0, 0, 0, "/usr/share/edgecd/oci-templates" },
        { "state_dir",           OPT_STRING, OFF(state_dir),     0, 0, 0, "/var/lib/edgecd" },
        { "runtime",             OPT_STRING, OFF(runtime),       0, 0, 0, "youki" },
        { "cgroup_parent",       OPT_STRING, OFF(cgroup_parent), 0, 0, 0, "/edgecd" },
        { "workers",             OPT_INT,    OFF(workers),             1, 1024,       2,     NULL },
        { "queue_capacity",      OPT_INT,    OFF(queue_capacity),      1, 1000000,    256,   NULL },
        { "memory_pool_mb",      OPT_INT,    OFF(memory_pool_mb),      0, 16777216,   0,     NULL },
        { "max_batch",           OPT_INT,    OFF(max_batch),           1, 10000,      100,   NULL },
        { "drain_seconds",       OPT_INT,    OFF(drain_seconds),       0, 86400,      30,    NULL },
        { "max_body_bytes",      OPT_BYTES,  OFF(max_body_bytes),      KiB, GiB,      MiB,   NULL },
        { "max_result_bytes",    OPT_BYTES,  OFF(max_result_bytes),    KiB, GiB,      MiB,   NULL },
        /* At most 512 MiB: the store (SQLite) keeps no value over 1e9 bytes. */
        { "input_ceiling_bytes", OPT_BYTES,  OFF(input_ceiling_bytes), KiB, 512 * MiB, 256 * MiB, NULL },
        { "result_ceiling_bytes", OPT_BYTES, OFF(result_ceiling_bytes), KiB, 512 * MiB, 256 * MiB, NULL },
        { "max_log_bytes",       OPT_BYTES,  OFF(max_log_bytes),       KiB, GiB,      64 * KiB, NULL },
        { "max_timeout_seconds", OPT_INT,    OFF(max_timeout_seconds), 1, 86400,      600,   NULL },
        /* Every job shares the host's pid space (kernel.pid_max, 32768 on
         * many hosts) with the host itself: a manifest may ask for 65536. */
        { "max_pids",            OPT_INT,    OFF(max_pids),            1, 65536,      4096,  NULL },
        /* A small layer unpacks into as much as it says (gzip, sparse tar
         * entries): the store and the logs share that disk. */
        { "max_image_bytes",     OPT_BYTES,  OFF(max_image_bytes),     MiB, 1024 * GiB, 4 * GiB, NULL },
        { "runtime_timeout_seconds", OPT_INT, OFF(runtime_timeout_seconds), 1, 3600,  30,    NULL },
        { "sweep_interval_seconds", OPT_INT, OFF(sweep_interval_seconds), 1, 86400,   60,    NULL },
        { "keep_bundles",        OPT_BOOL,   OFF(keep_bundles),        0, 0,          0,     NULL },
        { "watch_plugins",       OPT_BOOL,   OFF(watch_plugins),       0, 0,          1,     NULL },
        { "max_algorithms",      OPT_INT,    OFF(max_algorithms),      1, 100000,     1000,  NULL },
        { "log_level",           OPT_STRING, OFF(log_level),           0, 0,          0,     "info" },
        { "defaults",            OPT_SECTION, 0,                       0, 0,          0,     NULL },
        /* A cpu quota below 1 ms per 100 ms period is refused by the kernel. */
        { "defaults.cpu_cores",  OPT_DOUBLE, OFF(defaults.cpu_cores),  0.01, 1024,    1.0,   NULL },
        { "defaults.memory_mb",  OPT_INT,    OFF(defaults.memory_mb),  4, 1048576,    256,   NULL },
        { "defaults.pids",       OPT_INT,    OFF(defaults.pids),       1, 65536,      64,    NULL },
        { "defaults.disk_mb",    OPT_INT,    OFF(defaults.disk_mb),    1, 1048576,    16,    NULL },
        { "defaults.timeout_seconds", OPT_INT, OFF(defaults.timeout_seconds), 1, 86400, 30,  NULL },
        /* Above the ranges systemd gives users, dynamic users and nspawn
         * containers, and sssd's default ID map; at most 2^31 - 1, which
         * is as far as runc goes ("uids and gids must be in range
         * 0-2147483647"; the kernel's end, (uid_t)-1, means "no change"). */
        { "job_users",           OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "job_users.first_uid", OPT_INT,    OFF(job_users.first_uid), 1, 2147483647, 2001000000, NULL },
        { "job_users.first_gid", OPT_INT,    OFF(job_users.first_gid), 1, 2147483647, 2001000000, NULL },
        { "job_users.count",     OPT_INT,    OFF(job_users.count),     1, 1048576,    65536, NULL },
        { "retry",               OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "retry.max_attempts",  OPT_INT,    OFF(retry.max_attempts),  1, 100,        3,     NULL },
        { "retry.backoff_ms",    OPT_INT,    OFF(retry.backoff_ms),    0, 600000,     250,   NULL },
        { "retry.shortage_retries", OPT_INT, OFF(retry.shortage_retries), 0, 50,      8,     NULL },
        { "breaker",             OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "breaker.degrade_after", OPT_INT,  OFF(breaker.degrade_after), 1, 1000000,  3,     NULL },
        { "breaker.isolate_after", OPT_INT,  OFF(breaker.isolate_after), 1, 1000000,  5,     NULL },
        { "breaker.cooldown_seconds", OPT_INT, OFF(breaker.cooldown_seconds), 1, 86400, 30,  NULL },
        { "store",               OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "store.retention_seconds", OPT_INT, OFF(store.retention_seconds), 1, 315360000, 604800, NULL },
        { "store.max_records",   OPT_INT,    OFF(store.max_records),   1, 100000000,  100000, NULL },
        { "store.cache_bytes",   OPT_BYTES,  OFF(store.cache_bytes),   0, GiB,        8 * MiB, NULL },
        { "warm",                OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "warm.max_containers", OPT_INT,    OFF(warm.max_containers), 0, 4096,       32,    NULL },
        { "warm.idle_seconds",   OPT_INT,    OFF(warm.idle_seconds),   1, 86400,      300,   NULL },
        { "http",                OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "http.max_connections", OPT_INT,   OFF(http.max_connections), 1, 65536,     512,   NULL },
        { "http.max_connections_per_client", OPT_INT, OFF(http.max_connections_per_client), 1, 65536, 32, NULL },
        { "http.connection_timeout_seconds", OPT_INT, OFF(http.connection_timeout_seconds), 1, 3600, 15, NULL },
        { "http.max_header_bytes", OPT_BYTES, OFF(http.max_header_bytes), KiB, MiB,    16 * KiB, NULL },
        { "http.max_response_bytes", OPT_BYTES, OFF(http.max_response_bytes), MiB, 64 * GiB, 64 * MiB, NULL },
        { "http.max_json_depth", OPT_INT,    OFF(http.max_json_depth), 1, 10000,      64,    NULL },
        { "http.unix_mode",      OPT_STRING, OFF(http.unix_mode),      0, 0,          0,     "0660" },
        { "http.unix_group",     OPT_STRING, OFF(http.unix_group),     0, 0,          0,     "" },
        { "auth",                OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "auth.tokens_file",    OPT_STRING, OFF(auth.tokens_file),    0, 0,          0,     "" },
        { "auth.metrics_public", OPT_BOOL,   OFF(auth.metrics_public), 0, 0,          0,     NULL },
        { "callbacks",           OPT_SECTION, 0,                       0, 0,          0,     NULL },
        { "callbacks.allow",     OPT_STRV,   OFF(callbacks.allow),     0, 0,          0,     NULL },
        { "callbacks.secret_file", OPT_STRING, OFF(callbacks.secret_file), 0, 0,      0,     "" },
        { "callbacks.max_attempts", OPT_INT, OFF(callbacks.max_attempts), 1, 100,     8,     NULL },
        { "callbacks.backoff_ms", OPT_INT,   OFF(callbacks.backoff_ms), 10, 3600000,  1000,  NULL },
        { "callbacks.max_backoff_ms", OPT_INT, OFF(callbacks.max_backoff_ms), 10, 86400000, 300000, NULL },
        { "callbacks.connect_timeout_seconds", OPT_INT, OFF(callbacks.connect_timeout_seconds), 1, 300, 5, NULL },
        { "callbacks.timeout_seconds", OPT_INT, OFF(callbacks.timeout_seconds), 1, 3600, 30,  NULL },
        { "callbacks.concurrency", OPT_INT,  OFF(callbacks.concurrency), 1, 256,      4,     NULL },
        { "callbacks.max_pending", OPT_INT,  OFF(callbacks.max_pending), 1, 10000000, 10000, NULL },
};

#define FIELD(cfg, opt, type) ((type *)(void *)((char *)(cfg) + (opt)->offset))
#define CFIELD(cfg, opt, type) ((const type *)(const void *)((const char *)(cfg) + (opt)->offset))

/* Where the file set each option (options[] order): config_validate()
 * names the line of what it refuses, as the loader does. */
struct config_marks {
        bool set[ARRAY_SIZE(options)];
        yaml_mark_t at[ARRAY_SIZE(options)];
};

static const struct option *option_find(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(options); i++)
                if (!strcmp(options[i].name, name))
                        return &options[i];
        return NULL;
}

void config_init_defaults(struct config *cfg)
{
        memset(cfg, 0, sizeof *cfg);
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const struct option *o = &options[i];
                switch (o->type) {
                case OPT_STRING:
                        *FIELD(cfg, o, char *) = xstrdup(o->def_str);
                        break;
                case OPT_INT:
                case OPT_BYTES:
                        *FIELD(cfg, o, int64_t) = (int64_t)o->def;
                        break;
                case OPT_BOOL:
                        *FIELD(cfg, o, bool) = o->def != 0;
                        break;
                case OPT_DOUBLE:
                        *FIELD(cfg, o, double) = o->def;
                        break;
                case OPT_STRV:
                        *FIELD(cfg, o, char **) = xcalloc(1, sizeof(char *));
                        break;
                case OPT_SECTION:
                        break;
                }
        }
}

void config_set_string(char **field, const char *value)
{
        char *copy = xstrdup(value);
        free(*field);
        *field = copy;
}

void config_override(struct config *cfg, const char *name, const char *value)
{
        const struct option *o = option_find(name);
        if (!o || o->type != OPT_STRING)
                abort();   /* a caller's mistake */
        config_set_string(FIELD(cfg, o, char *), value);
        if (cfg->marks)
                cfg->marks->set[o - options] = false;
}

int config_absolute_paths(struct config *cfg, struct err *err)
{
        char *const dirs[] = { cfg->plugins_dir, cfg->templates_dir, cfg->state_dir };
        char **fields[] = { &cfg->plugins_dir, &cfg->templates_dir, &cfg->state_dir };
        _cleanup_free_ char *cwd = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                if (!dirs[i] || dirs[i][0] == '/')
                        continue;
                if (!cwd && !(cwd = getcwd(NULL, 0)))
                        return err_errno(err, ERR_IO, "getcwd");
                char *abs = xasprintf("%s/%s", cwd, dirs[i]);
                free(*fields[i]);
                *fields[i] = abs;
        }
        return 0;
}

void config_free(struct config *cfg)
{
        if (!cfg)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                if (options[i].type == OPT_STRING) {
                        char **s = FIELD(cfg, &options[i], char *);
                        free(*s);
                        *s = NULL;
                } else if (options[i].type == OPT_STRV) {
                        char ***v = FIELD(cfg, &options[i], char **);
                        strv_free(*v);
                        *v = NULL;
                }
        }
        free(cfg->path);
        cfg->path = NULL;
        free(cfg->marks);
        cfg->marks = NULL;
}

static void load_mapping(struct config *cfg, struct yamldoc *y, const yaml_node_t *map,
                         const char *prefix, struct ydiag *d);

/* Parse one value into its field.  The getters write only on success, so a
 * bad value leaves the default in place (the load fails anyway). */
static void load_option(struct config *cfg, struct yamldoc *y, const struct option *o,
                        const yaml_node_t *v, struct ydiag *d)
{
        if (!cfg->marks)
                cfg->marks = xcalloc(1, sizeof *cfg->marks);
        cfg->marks->set[o - options] = true;
        cfg->marks->at[o - options] = v->start_mark;
        switch (o->type) {
        case OPT_STRING:
                yget_string(v, o->name, d, FIELD(cfg, o, char *));
                break;
        case OPT_INT:
                yget_int(v, o->name, (int64_t)o->min, (int64_t)o->max, d, FIELD(cfg, o, int64_t));
                break;
        case OPT_BYTES:
                yget_bytes(v, o->name, (int64_t)o->min, (int64_t)o->max, d, FIELD(cfg, o, int64_t));
                break;
        case OPT_BOOL:
                yget_bool(v, o->name, d, FIELD(cfg, o, bool));
                break;
        case OPT_DOUBLE:
                yget_double(v, o->name, o->min, o->max, d, FIELD(cfg, o, double));
                break;
        case OPT_STRV:
                if (yget_strv(y, v, o->name, d, FIELD(cfg, o, char **)) == 0 &&
                    !strcmp(o->name, "callbacks.allow")) {
                        /* Each entry parsed as callback URLs are: a typo
                         * must not silently allow nothing (or too much). */
                        size_t i = 0;
                        for (yaml_node_item_t *it = v->data.sequence.items.start;
                             it < v->data.sequence.items.top; it++, i++) {
                                const yaml_node_t *item = yamldoc_node(y, *it);
                                const char *why = callback_allow_problem(ynode_str(item));
                                if (why) {
                                        _cleanup_free_ char *key = xasprintf("%s[%zu]", o->name, i);
                                        ydiag_add(d, item, key, "`%.200s`: %s", ynode_str(item), why);
                                }
                        }
                }
                break;
        case OPT_SECTION:
                if (v->type != YAML_MAPPING_NODE) {
                        /* "defaults:" with nothing under it is an empty section. */
                        if (!ynode_is_null(v))
                                ydiag_add(d, v, o->name, "expected a mapping, got %s", ynode_kind(v));
                        break;
                }
                load_mapping(cfg, y, v, o->name, d);
                break;
        }
}

static void load_mapping(struct config *cfg, struct yamldoc *y, const yaml_node_t *map,
                         const char *prefix, struct ydiag *d)
{
        if (yamldoc_check_keys(y, map, prefix, d) < 0)
                return;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                const yaml_node_t *kn = yamldoc_node(y, p->key);
                const char *k = ynode_str(kn);
                if (!k || yamldoc_key_dup(y, map, p))
                        continue;   /* already reported */
                _cleanup_free_ char *name = prefix ? xasprintf("%s.%s", prefix, k) : xstrdup(k);
                /* `defaults.pids:` is the name of an option, not a key of the
                 * file: taken, it would override `defaults: {pids: }` unseen. */
                const struct option *o = strchr(k, '.') ? NULL : option_find(name);
                if (!o) {
                        ydiag_add(d, kn, name, "unknown key");
                        continue;
                }
                load_option(cfg, y, o, yamldoc_node(y, p->value), d);
        }
}

int config_load_file(struct config *cfg, const char *path,
                     void (*report)(const char *line, void *ctx), void *ctx,
                     struct err *err)
{
        struct ydiag d;
        ydiag_init(&d, path, report, ctx);

        struct yamldoc *y = NULL;
        if (yamldoc_load(path, CONFIG_MAX_BYTES, NULL, &y, err) < 0) {
                /* err->msg is already "FILE:LINE:COL: ..." or "FILE: ...". */
                ydiag_line(&d, err->msg);
                ydiag_done(&d);
                return -1;
        }
        config_set_string(&cfg->path, path);

        const yaml_node_t *root = yamldoc_root(y);
        if (root && root->type != YAML_MAPPING_NODE)
                ydiag_add(&d, root, NULL, "the top level must be a mapping, got %s",
                          ynode_kind(root));
        else if (root)
                load_mapping(cfg, y, root, NULL, &d);

        int r = ydiag_result(&d, ERR_INVALID, err);
        ydiag_done(&d);
        yamldoc_free(y);
        return r;
}

/* ---- config_validate ---- */

/* A problem with option `key`, at its line in the file; when the file
 * does not set it, at the line of `also` (the option it is judged
 * against; NULL: none), else with no line (a default, or a command-line
 * option). */
static void __attribute__((format(printf, 5, 6)))
bad(struct ydiag *d, const struct config *cfg, const char *key, const char *also, const char *fmt, ...)
{
        const yaml_mark_t *at = NULL;
        const char *keys[] = { key, also };
        for (size_t i = 0; i < ARRAY_SIZE(keys) && !at && cfg->marks; i++) {
                const struct option *o = keys[i] ? option_find(keys[i]) : NULL;
                if (o && cfg->marks->set[o - options])
                        at = &cfg->marks->at[o - options];
        }
        va_list ap;
        va_start(ap, fmt);
        ydiag_vadd_at(d, at, key, fmt, ap);
        va_end(ap);
}

/* "/a/b": no empty component (`//`, a trailing '/'), none starting with
 * '.' (`.`, and cgroups systemd keeps for itself such as `.control`), so
 * that comparing paths as strings compares cgroups. */
static bool cgroup_parent_plain(const char *p)
{
        if (!strcmp(p, "/"))
                return false;
        for (const char *c = p; *c; ) {
                if (*c != '/' || c[1] == '\0' || c[1] == '/' || c[1] == '.')
                        return false;
                c = strchrnul(c + 1, '/');
        }
        return true;
}

static bool valid_port(const char *s)
{
        int64_t port;
        if (!*s || strspn(s, "0123456789") != strlen(s))
                return false;
        return parse_int64(s, 1, 65535, &port);
}

/* NULL when fine, else why not. */
static const char *listen_problem(const char *l)
{
        if (!strncmp(l, "unix:", 5)) {
                const char *p = l + 5;
                if (p[0] != '/')
                        return "a unix socket path must be absolute (unix:/run/edgecd.sock)";
                if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                        return "the unix socket path is too long";
                return NULL;
        }
        const char *host, *port;
        size_t host_len;
        if (l[0] == '[') {
                const char *close = strchr(l, ']');
                if (!close || close[1] != ':')
                        return "expected [IPV6]:PORT";
                host = l + 1;
                host_len = (size_t)(close - host);
                port = close + 2;
                char buf[INET6_ADDRSTRLEN + 1];
                struct in6_addr a6;
                if (host_len >= sizeof buf)
                        return "not an IPv6 address in brackets";
                memcpy(buf, host, host_len);
                buf[host_len] = '\0';
                if (inet_pton(AF_INET6, buf, &a6) != 1)
                        return "not an IPv6 address in brackets";
        } else {
                const char *colon = strrchr(l, ':');
                if (!colon)
                        return "expected HOST:PORT or unix:/PATH";
                host = l;
                host_len = (size_t)(colon - l);
                port = colon + 1;
                if (memchr(host, ':', host_len))
                        return "an IPv6 address needs brackets: [::1]:8080";
                char buf[256];
                if (host_len == 0 || host_len >= sizeof buf)
                        return "expected HOST:PORT with a host";
                memcpy(buf, host, host_len);
                buf[host_len] = '\0';
                struct in_addr a4;
                if (strspn(buf, "0123456789.") == host_len) {
                        if (inet_pton(AF_INET, buf, &a4) != 1)
                                return "not an IPv4 address";
                } else if (ipv4_odd_spelling(buf, host_len)) {
                        return "an IPv4 address must be a.b.c.d in decimal";
                } else if (!hostname_valid(buf, host_len)) {
                        return "not a valid host name";
                }
        }
        if (!valid_port(port))
                return "the port must be between 1 and 65535";
        return NULL;
}

int config_validate(const struct config *cfg,
                    void (*report)(const char *line, void *ctx), void *ctx,
                    struct err *err)
{
        struct ydiag d;
        ydiag_init(&d, cfg->path, report, ctx);

        /* Bounds again: command-line overrides bypass the loader. */
        for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
                const struct option *o = &options[i];
                if (o->type == OPT_INT || o->type == OPT_BYTES) {
                        int64_t v = *CFIELD(cfg, o, int64_t);
                        if (v < (int64_t)o->min || v > (int64_t)o->max)
                                bad(&d, cfg, o->name, NULL, "must be between %lld and %lld, got %lld",
                                          (long long)o->min, (long long)o->max, (long long)v);
                } else if (o->type == OPT_DOUBLE) {
                        double v = *CFIELD(cfg, o, double);
                        if (!(v >= o->min && v <= o->max))
                                bad(&d, cfg, o->name, NULL, "must be between %g and %g, got %g",
                                          o->min, o->max, v);
                } else if (o->type == OPT_STRING && !*(char *const *)(const void *)((const char *)cfg + o->offset)) {
                        bad(&d, cfg, o->name, NULL, "not set");
                }
        }
        if (cfg->listen) {
                const char *why = listen_problem(cfg->listen);
                if (why)
                        bad(&d, cfg, "listen", NULL, "`%s`: %s", cfg->listen, why);
        }
        if (cfg->cgroup_parent) {
                if (cfg->cgroup_parent[0] != '/')
                        bad(&d, cfg, "cgroup_parent", NULL, "`%s` must start with '/'",
                                  cfg->cgroup_parent);
                else if (path_has_dotdot(cfg->cgroup_parent))
                        bad(&d, cfg, "cgroup_parent", NULL, "`%s` must not contain `..`",
                                  cfg->cgroup_parent);
                else if (!cgroup_parent_plain(cfg->cgroup_parent))
                        bad(&d, cfg, "cgroup_parent", NULL,
                                  "`%s` must be names joined by single '/', none empty or starting with '.' "
                                  "(`.`, `//`, a trailing '/' and systemd's `.control` are not cgroups of ours)",
                                  cfg->cgroup_parent);
        }
        if (cfg->runtime && !*cfg->runtime)
                bad(&d, cfg, "runtime", NULL, "must not be empty");
        if (cfg->plugins_dir && !*cfg->plugins_dir)
                bad(&d, cfg, "plugins_dir", NULL, "must not be empty");
        if (cfg->templates_dir && !*cfg->templates_dir)
                bad(&d, cfg, "templates_dir", NULL, "must not be empty");
        if (cfg->state_dir && !*cfg->state_dir)
                bad(&d, cfg, "state_dir", NULL, "must not be empty");
        if (cfg->log_level && log_level_parse(cfg->log_level) < 0)
                bad(&d, cfg, "log_level", NULL, "`%s` is not one of error, warn, info, debug",
                          cfg->log_level);
        if (cfg->http.unix_mode) {
                size_t n = strlen(cfg->http.unix_mode);
                if (n == 0 || n > 4 || strspn(cfg->http.unix_mode, "01234567") != n ||
                    strtoul(cfg->http.unix_mode, NULL, 8) > 0777)
                        bad(&d, cfg, "http.unix_mode", NULL, "`%s` is not an octal file mode (0000..0777)",
                                  cfg->http.unix_mode);
        }
        if (cfg->breaker.isolate_after < cfg->breaker.degrade_after)
                bad(&d, cfg, "breaker.isolate_after", "breaker.degrade_after", "%lld is below breaker.degrade_after (%lld)",
                          (long long)cfg->breaker.isolate_after, (long long)cfg->breaker.degrade_after);
        if (cfg->job_users.count < cfg->workers + 1)
                bad(&d, cfg, "job_users.count", "workers", "%lld is too few: each worker's run and the start-up probe "
                          "need one (workers + 1 = %lld)", (long long)cfg->job_users.count,
                          (long long)cfg->workers + 1);
        if (cfg->job_users.first_uid + cfg->job_users.count - 1 > 2147483647LL ||
            cfg->job_users.first_gid + cfg->job_users.count - 1 > 2147483647LL)
                bad(&d, cfg, "job_users.count", "job_users.first_uid", "the range ends past 2147483647");
        if (cfg->callbacks.allow && cfg->callbacks.allow[0] && cfg->callbacks.secret_file &&
            !*cfg->callbacks.secret_file)
                bad(&d, cfg, "callbacks.secret_file", "callbacks.allow", "must be set when callbacks.allow is not empty "
                          "(every callback is signed with it)");
        if (cfg->callbacks.max_backoff_ms < cfg->callbacks.backoff_ms)
                bad(&d, cfg, "callbacks.max_backoff_ms", "callbacks.backoff_ms", "%lld is below callbacks.backoff_ms (%lld)",
                          (long long)cfg->callbacks.max_backoff_ms, (long long)cfg->callbacks.backoff_ms);
        if (cfg->defaults.timeout_seconds > cfg->max_timeout_seconds)
                bad(&d, cfg, "defaults.timeout_seconds", "max_timeout_seconds",
                          "%lld is over max_timeout_seconds (%lld)",
                          (long long)cfg->defaults.timeout_seconds,
                          (long long)cfg->max_timeout_seconds);
        if (cfg->defaults.pids > cfg->max_pids)
                bad(&d, cfg, "defaults.pids", "max_pids", "%lld is over max_pids (%lld)",
                          (long long)cfg->defaults.pids, (long long)cfg->max_pids);

        int r = ydiag_result(&d, ERR_INVALID, err);
        ydiag_done(&d);
        return r;
}
