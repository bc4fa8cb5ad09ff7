/* main.c - edgecd: command line, start-up order, signals, shut-down order.
 *
 * Start: config (file, then flags) -> log -> state dir (locked) -> a mount
 * namespace of the daemon's own where / is shared -> job identities
 * checked against the host's accounts -> seccomp policy -> leftovers of a
 * previous run removed (every runtime's state root, cgroups, workspaces) ->
 * runtime chosen by the sandbox probe -> plugin registry -> job store
 * (STATE/edgecd.db, schema migrated) -> queue, breaker, workers -> recovery
 * (stored queued jobs queued again, interrupted runs run again once) ->
 * collector -> tokens -> HTTP -> READY=1.  Stop (SIGTERM/SIGINT):
 * STOPPING=1 -> stop accepting -> running jobs drain for up to
 * drain_seconds, then are stopped and recorded queued; queued ones stay
 * queued on disk -> waiting clients answered -> everything freed, the
 * parent cgroup removed.
 *
 * The main thread owns every object and only waits for signals; all other
 * threads are started with every signal blocked. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <systemd/sd-daemon.h>

#include "base/config.h"
#include "base/heartbeat.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "callbacks/callback.h"
#include "callbacks/curlapi.h"
#include "http/api.h"
#include "http/auth.h"
#include "jobs/admission.h"
#include "jobs/breaker.h"
#include "jobs/jobtable.h"
#include "jobs/queue.h"
#include "jobs/scheduler.h"
#include "registry/image.h"
#include "registry/oci.h"
#include "registry/plugwatch.h"
#include "registry/registry.h"
#include "registry/seccomp.h"
#include "runtime/reaper.h"
#include "runtime/runtime.h"
#include "runtime/runtime_cli.h"
#include "sandbox/cgroup.h"
#include "sandbox/collector.h"
#include "sandbox/idpool.h"
#include "sandbox/mountns.h"
#include "sandbox/probe.h"
#include "sandbox/runcgroup.h"
#include "sandbox/workspace.h"
#include "store/store.h"

#define DEFAULT_CONFIG "/etc/edgecd/edgecd.yaml"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: edgecd [--config FILE] [options]\n"
                "\n"
                "Runs compute jobs submitted over HTTP in locked-down OCI containers.\n"
                "\n"
                "  -c, --config FILE        configuration file (default " DEFAULT_CONFIG
                " when it exists,\n"
                "                           else the embedded defaults)\n"
                "  -l, --listen ADDR        HOST:PORT, [V6]:PORT or unix:/path (overrides `listen`)\n"
                "  -p, --plugins-dir DIR    plugin directory (overrides `plugins_dir`)\n"
                "  -t, --templates-dir DIR  OCI templates and seccomp.allow (overrides `templates_dir`)\n"
                "  -s, --state-dir DIR      workspaces, logs, runtime state (overrides `state_dir`)\n"
                "      --log-level LEVEL    error, warn, info or debug (overrides `log_level`)\n"
                "      --check-config       check the configuration, print every problem, exit 0 or 2\n"
                "      --hash-token         read an API token on stdin, print its line for the tokens file\n"
                "  -V, --version            print the version\n"
                "  -h, --help               this help\n");
}

static void print_problem(const char *line, void *ctx)
{
        int *count = ctx;
        fprintf(stderr, "%s\n", line);
        (*count)++;
}

static void log_report(const char *msg, void *ctx)
{
        (void)ctx;
        log_info("%s", msg);
}

static void log_broken(const char *msg, void *ctx)
{
        (void)ctx;
        log_warn("plugin skipped: %s", msg);
}

static void log_change(const char *msg, void *ctx)
{
        (void)ctx;
        log_info("%s", msg);
}

struct options {
        const char *config, *listen, *plugins_dir, *templates_dir, *state_dir, *log_level;
        bool check_only, hash_token;
};

/* 0 to go on, 1 to exit 0 (help, version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct options *o)
{
        enum { OPT_CHECK = 256, OPT_LOG_LEVEL, OPT_HASH_TOKEN };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                { "plugins-dir", required_argument, NULL, 'p' },
                { "templates-dir", required_argument, NULL, 't' },
                { "state-dir", required_argument, NULL, 's' },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "check-config", no_argument, NULL, OPT_CHECK },
                { "hash-token", no_argument, NULL, OPT_HASH_TOKEN },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int c;
        while ((c = getopt_long(argc, argv, "c:l:p:t:s:Vh", longopts, NULL)) != -1) {
                switch (c) {
                case 'c': o->config = optarg; break;
                case 'l': o->listen = optarg; break;
                case 'p': o->plugins_dir = optarg; break;
                case 't': o->templates_dir = optarg; break;
                case 's': o->state_dir = optarg; break;
                case OPT_LOG_LEVEL: o->log_level = optarg; break;
                case OPT_CHECK: o->check_only = true; break;
                case OPT_HASH_TOKEN: o->hash_token = true; break;
                case 'V': printf("edgecd %s\n", EDGECD_VERSION); return 1;
                case 'h': usage(stdout); return 1;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "edgecd: unexpected argument `%s`\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        return 0;
}

/* The file's change time at the start: SIGHUP compares it. */
static struct timespec config_ctime;

static void log_problem(const char *line, void *ctx)
{
        int *count = ctx;
        log_error("%s", line);
        (*count)++;
}

/* Load and check the configuration; reports each problem through report.
 * Problem count. */
static int load_config_with(const struct options *o, struct config *cfg,
                            void (*report)(const char *line, void *ctx))
{
        int problems = 0;
        struct err err = ERR_INIT;
        config_init_defaults(cfg);
        const char *path = o->config;
        struct stat st;
        if (!path && stat(DEFAULT_CONFIG, &st) == 0)
                path = DEFAULT_CONFIG;
        if (path && stat(path, &st) == 0)
                config_ctime = st.st_ctim;
        if (path)
                config_load_file(cfg, path, report, &problems, &err);
        if (o->listen) config_override(cfg, "listen", o->listen);
        if (o->plugins_dir) config_override(cfg, "plugins_dir", o->plugins_dir);
        if (o->templates_dir) config_override(cfg, "templates_dir", o->templates_dir);
        if (o->state_dir) config_override(cfg, "state_dir", o->state_dir);
        if (o->log_level) config_override(cfg, "log_level", o->log_level);
        config_validate(cfg, report, &problems, &err);
        if (config_absolute_paths(cfg, &err) < 0)
                report(err.msg, &problems);
        return problems;
}

static int load_config(const struct options *o, struct config *cfg)
{
        return load_config_with(o, cfg, print_problem);
}

/* SIGHUP does not apply the configuration file (only the plugins, the
 * tokens file and the callbacks' secret): a file changed since the start
 * is read again so that the operator hears that its keys wait for a
 * restart, or which file, line and key are wrong, not silence. */
static void recheck_config(const struct options *o)
{
        const char *path = o->config;
        struct stat st;
        if (!path && stat(DEFAULT_CONFIG, &st) == 0)
                path = DEFAULT_CONFIG;
        if (!path || stat(path, &st) < 0 ||
            (st.st_ctim.tv_sec == config_ctime.tv_sec && st.st_ctim.tv_nsec == config_ctime.tv_nsec))
                return;
        struct config cfg;
        struct timespec start = config_ctime;   /* compared with the start's, each time */
        int problems = load_config_with(o, &cfg, log_problem);
        config_ctime = start;
        config_free(&cfg);
        if (problems)
                log_error("SIGHUP: %s has %d problem(s) (above); the running configuration stays", path, problems);
        else
                log_warn("SIGHUP: %s changed since the start; SIGHUP does not apply it (only the plugins, the "
                         "tokens file and the callbacks' secret): restart to take it", path);
}

/* The parts of --check-config beyond the file itself: the templates, the
 * job users against the host's accounts, the tokens file. */
static int check_beyond_file(const struct config *cfg)
{
        int problems = 0;
        struct err err = ERR_INIT;
        _cleanup_free_ char *allow = xasprintf("%s/seccomp.allow", cfg->templates_dir);
        struct seccomp_policy *p = NULL;
        if (seccomp_policy_load(allow, &p, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                problems++;
        }
        seccomp_policy_free(p);
        err_clear(&err);
        if (oci_check_template(cfg->templates_dir, "default", &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                problems++;
        }
        err_clear(&err);
        if (idpool_check_host(cfg->job_users.first_uid, cfg->job_users.first_gid, cfg->job_users.count, &err) < 0) {
                fprintf(stderr, "job_users: %s\n", err.msg);
                problems++;
        }
        if (cfg->callbacks.allow && cfg->callbacks.allow[0]) {
                char *secret = NULL;
                size_t len = 0;
                err_clear(&err);
                if (callback_secret_load(cfg->callbacks.secret_file, &secret, &len, &err) < 0) {
                        fprintf(stderr, "%s\n", err.msg);
                        problems++;
                } else {
                        explicit_bzero(secret, len);
                        free(secret);
                }
                const struct curl_api *cu;
                err_clear(&err);
                if (curlapi_load(&cu, &err) < 0) {
                        fprintf(stderr, "callbacks: %s\n", err.msg);
                        problems++;
                }
        }
        if (*cfg->auth.tokens_file) {
                struct auth *a = NULL;
                err_clear(&err);
                if (auth_load(cfg->auth.tokens_file, print_problem, &problems, &a, &err) == 0)
                        printf("auth: %zu token(s) from %s\n", auth_count(a), cfg->auth.tokens_file);
                auth_free(a);
        }
        return problems;
}

static void print_plugin_warning(const char *msg, void *ctx)
{
        (void)ctx;
        fprintf(stderr, "warning: plugin skipped: %s\n", msg);
}

/* systemd's watchdog (WatchdogSec=): WATCHDOG=1 every half interval while
 * the main loop turns and no watched thread (a worker with a job, the
 * store's writer, the cleaner at work) has gone without a
 * heartbeat (heartbeat.h) for longer than the interval (10 s at least). */
#define WATCHDOG_STALL_MIN_MS 10000
static uint64_t watchdog_usec;         /* 0: no watchdog */
static bool watchdog_stalled;          /* a thread is silent: nothing may feed the watchdog */

/* An image is about to be unpacked, maybe for minutes, by the main thread:
 * under systemd, the start (or a reload) gets that much more time and says
 * why, and the watchdog as long (restored by unpacked()). */
static void unpacking(const char *path, const char *digest, void *ctx)
{
        bool *said = ctx;
        *said = true;
        log_info("plugins: unpacking %s for %s", digest, path);
        unsigned long long extra = (unsigned long long)IMAGE_UNPACK_TIMEOUT_MS * 1000ULL + 10000000ULL;
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=unpacking the image of %s", extra, path);
        if (watchdog_usec && !watchdog_stalled)
                sd_notifyf(0, "WATCHDOG=1\nWATCHDOG_USEC=%llu", extra + (unsigned long long)watchdog_usec);
}

/* After an unpack: the watchdog's own interval again. */
static void unpacked(void)
{
        if (watchdog_usec && !watchdog_stalled)
                sd_notifyf(0, "WATCHDOG=1\nWATCHDOG_USEC=%llu", (unsigned long long)watchdog_usec);
}

/* Broken plugins do not stop the daemon, so they are warnings here, not
 * problems: an ExecStartPre check must not keep it from starting. */
static void check_plugins(const struct config *cfg)
{
        struct registry *r = NULL;
        struct err err = ERR_INIT;
        /* Templates checked; images read but not unpacked (no state dir
         * is written by a check). */
        struct registry_env renv = { .templates_dir = cfg->templates_dir };
        if (registry_load(cfg->plugins_dir, &renv, (size_t)cfg->max_algorithms, print_plugin_warning, NULL, &r, &err) == 0)
                printf("plugins: %zu loaded, %zu broken, from %s\n", registry_count(r),
                       registry_broken_count(r), cfg->plugins_dir);
        registry_free(r);
}

struct daemon {
        struct config cfg;
        int lock_fd;                 /* STATE_DIR/edgecd.lock, held while we run */
        int parent_lock_fd;          /* the cgroup parent, held while we run */
        int ids_lock_fd;             /* the job_users ranges, claimed while we run */
        struct idpool *ids;
        struct runtime *runtime;
        struct seccomp_policy *policy;
        struct registry *registry;
        struct queue *queue;
        struct store *store;
        struct jobtable *jobs;
        struct breaker *breaker;
        struct admission *admission;
        char *workspaces_dir;
        bool workspaces_mounted;       /* its tmpfs is ours to unmount */
        char *warm_logs_dir;
        char *gate_path;
        char *images_dir;
        bool said_unpacking;       /* STATUS= says an image is being unpacked */
        struct sandbox_env env;
        struct runcgroups *cgroups;
        struct liveset *live;
        struct cleaner *cleaner;
        struct warmpool *warm;
        struct scheduler *scheduler;
        struct callbacks *callbacks;    /* NULL: callbacks off */
        struct collector *collector;
        struct api *api;
        struct plugwatch *watch;     /* NULL when watch_plugins is off */
        pthread_t main_thread;       /* the watch wakes it with SIGUSR1 */
        int64_t broken_retry_ms;     /* the next look at broken plugins, backing off */
        /* STATUS=: the counts last sent, and when. */
        size_t status_running, status_queued;
        int64_t status_ms;
        /* The watchdog: the last WATCHDOG=1, and whether it is held back. */
        int64_t watchdog_ms;
        bool watchdog_held;
};

#define STATUS_MIN_INTERVAL_MS 1000

/* STATUS=serving: N running, M queued, when the counts changed (at most
 * once a second unless forced), not while an unpack says what it does. */
static void notify_status(struct daemon *d, bool force, const char *also)
{
        if (d->said_unpacking || !d->scheduler) {
                if (*also)
                        sd_notify(0, also);
                return;
        }
        size_t running = scheduler_running(d->scheduler), queued = queue_length(d->queue);
        int64_t now = now_mono_ms();
        if (!force && ((running == d->status_running && queued == d->status_queued) ||
                       now - d->status_ms < STATUS_MIN_INTERVAL_MS))
                return;
        sd_notifyf(0, "%s%sSTATUS=serving: %zu running, %zu queued", also, *also ? "\n" : "", running, queued);
        d->status_running = running;
        d->status_queued = queued;
        d->status_ms = now;
}

/* Each turn of the main loop: WATCHDOG=1 when half the interval has
 * passed and every worker is healthy; the reason logged when not. */
static void watchdog_tick(struct daemon *d)
{
        if (!watchdog_usec)
                return;
        int64_t interval = (int64_t)(watchdog_usec / 1000);
        int64_t now = now_mono_ms();
        if (now - d->watchdog_ms < interval / 2)
                return;
        int64_t bound = interval > WATCHDOG_STALL_MIN_MS ? interval : WATCHDOG_STALL_MIN_MS;
        char who[40] = "";
        int64_t silent = heartbeat_most_silent(now, who, sizeof who);
        if (silent > bound) {
                if (!d->watchdog_held)
                        log_error("watchdog: %s has had no heartbeat for %lld ms (more than %lld ms): "
                                  "WATCHDOG=1 is no longer sent, so systemd restarts the daemon",
                                  who, (long long)silent, (long long)bound);
                d->watchdog_held = watchdog_stalled = true;
                return;
        }
        if (d->watchdog_held)
                log_warn("watchdog: every watched thread beats again; WATCHDOG=1 is sent again");
        d->watchdog_held = watchdog_stalled = false;
        sd_notify(0, "WATCHDOG=1");
        d->watchdog_ms = now;
}

static uint64_t monotonic_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

#define STRAY_WAIT_MS 5000

/* A SIGKILLed edgecd's runtime calls go on without it; one that saves its
 * container after the sweeps below would leave it running for nobody. */
static void stop_stray_runtimes(const struct config *cfg)
{
        _cleanup_free_ char *roots = xasprintf("%s/runtime", cfg->state_dir);
        struct runtime_strays r;
        runtime_cli_stop_strays(roots, STRAY_WAIT_MS, &r);
        if (r.skipped)
                log_warn("runtime: %zu runtime process(es) on `%s` that a previous edgecd left running were not "
                         "ended: no pidfd for them (%s)", r.skipped, roots, strerror(r.pidfd_errno));
        if (r.left)
                log_error("runtime: %zu of %zu runtime process(es) on `%s` that a previous edgecd left running "
                          "did not end within %d ms of SIGKILL; a container one of them makes later is left for "
                          "the collector or the next start", r.left, r.killed, roots, STRAY_WAIT_MS);
        else if (r.killed)
                log_warn("runtime: ended %zu runtime process(es) on `%s` that a previous edgecd left running",
                         r.killed, roots);
}

/* Containers a previous run left in any runtime's state root
 * (STATE/runtime/<name>), each removed with its own runtime: the binary
 * that root was last used with (STATE/runtime/<name>.path, written when a
 * runtime is chosen), else the configured one of that name, else one found
 * by name. */
static void sweep_runtime_roots(const struct config *cfg)
{
        _cleanup_free_ char *base = xasprintf("%s/runtime", cfg->state_dir);
        DIR *d = opendir(base);
        if (!d)
                return;
        _cleanup_strv_ char **names = NULL;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && runtime_id_ok(de->d_name) && de->d_type == DT_DIR)
                        strv_push(&names, de->d_name);
        closedir(d);
        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_free_ char *root = xasprintf("%s/%s", base, names[i]);
                _cleanup_strv_ char **ids = NULL;
                struct err err = ERR_INIT;
                struct runtime probe_rt = { .ops = &runtime_cli_ops, .root = root };
                if (runtime_list(&probe_rt, &ids, &err) < 0 || !ids)
                        continue;
                _cleanup_free_ char *record = xasprintf("%s.path", root);
                _cleanup_free_ char *recorded = NULL;
                if (read_file(record, PATH_MAX, 0, &recorded, NULL, &err) == 0)
                        recorded[strcspn(recorded, "\n")] = '\0';
                const char *cfgbase = strrchr(cfg->runtime, '/') ? strrchr(cfg->runtime, '/') + 1 : cfg->runtime;
                const char *want = !strcmp(cfgbase, names[i]) ? cfg->runtime : names[i];
                _cleanup_free_ char *path = recorded && recorded[0] == '/' ? probe_find_binary(recorded) : NULL;
                if (!path)
                        path = probe_find_binary(want);
                if (!path) {
                        log_error("runtime `%s`: %zu container(s) left in `%s`, but `%s` is not installed to remove them",
                                  names[i], strv_len(ids), root, names[i]);
                        continue;
                }
                struct runtime *rt = runtime_cli_new(names[i], path, root, cfg->runtime_timeout_seconds * 1000);
                size_t removed = 0;
                if (runtime_sweep(rt, NULL, NULL, &removed, &err) < 0)
                        log_warn("runtime `%s`: leftover containers: %s", names[i], err.msg);
                if (removed)
                        log_warn("runtime `%s`: removed %zu container(s) left by a previous run", names[i], removed);
                runtime_free(rt);
        }
}

static bool run_is_live(const char *run_id, void *ctx)
{
        struct daemon *d = ctx;
        return liveset_contains(d->live, run_id) || runcgroups_owns(d->cgroups, run_id);
}

/* name: a run's container or cgroup the collector removed.  A run's ids
 * are free once nothing of it is left: a slot it left something in (which
 * the collector removes after the containers) holds them. */
static void run_released(const char *name, void *ctx)
{
        struct daemon *d = ctx;
        _cleanup_free_ char *left_by = runcgroups_collected(d->cgroups, name);
        if (left_by)
                cleaner_released(d->cleaner, left_by);
        else if (!runcgroups_holds_left(d->cgroups, name))
                cleaner_released(d->cleaner, name);
}

static void print_token_problem(const char *line, void *ctx)
{
        (void)ctx;
        log_error("%s", line);
}

static int load_tokens(const struct config *cfg, struct auth **ret, struct err *err)
{
        *ret = NULL;
        if (!*cfg->auth.tokens_file)
                return 0;
        if (auth_load(cfg->auth.tokens_file, print_token_problem, NULL, ret, err) < 0)
                return err_wrap(err, "auth");
        log_info("auth: %zu token(s) from %s", auth_count(*ret), cfg->auth.tokens_file);
        return 0;
}

/* The watch's thread: the main thread rescans. */
static void wake_main(void *ctx)
{
        struct daemon *d = ctx;
        pthread_kill(d->main_thread, SIGUSR1);
}

#define BROKEN_RETRY_MIN_MS 1000
#define BROKEN_RETRY_MAX_MS 30000
#define PENDING_RETRY_MS 500
#define PERIODIC_RESCAN_MS 60000

/* Rescan the plugins (forced by SIGHUP: every manifest read anew), log and
 * count what changed, bring the warm pools in line, and ask the watch to
 * look again while a plugin is still being written or is broken (what it
 * waits for may happen deeper than the watch sees). */
static void reload_plugins(struct daemon *d, const char *trigger, bool force)
{
        struct registry_changes c;
        struct err err = ERR_INIT;
        metrics_plugin_reload(trigger);
        int reloaded = registry_reload(d->registry, force, log_broken, log_change, NULL, &c, &err);
        if (d->said_unpacking) {
                d->said_unpacking = false;
                unpacked();
                notify_status(d, true, "");
        }
        if (reloaded < 0) {
                /* The watch has said what changed already and will not say
                 * it again: without a retry of its own a rescan that failed
                 * for want of descriptors or memory was never made. */
                if (!d->watch) {
                        log_error("plugins not reloaded (%s): %s", trigger, err.msg);
                        return;
                }
                if (!d->broken_retry_ms)
                        d->broken_retry_ms = BROKEN_RETRY_MIN_MS;
                else if (d->broken_retry_ms < BROKEN_RETRY_MAX_MS)
                        d->broken_retry_ms *= 2;
                log_error("plugins not reloaded (%s): %s; trying again in %lld ms", trigger, err.msg,
                          (long long)d->broken_retry_ms);
                plugwatch_again(d->watch, d->broken_retry_ms);
                return;
        }
        metrics_plugin_changes("added", c.added);
        metrics_plugin_changes("changed", c.changed);
        metrics_plugin_changes("removed", c.removed);
        metrics_plugin_changes("broken", c.broken);
        bool any = c.added || c.changed || c.removed || c.broken;
        if (force || any)
                log_info("plugins reloaded (%s): %zu added, %zu changed, %zu removed, %zu newly broken; "
                         "%zu loaded, %zu broken%s", trigger, c.added, c.changed, c.removed, c.broken,
                         registry_count(d->registry), registry_broken_count(d->registry),
                         c.pending ? "; some still being written" : "");
        if (force || any) {
                warmpool_sync(d->warm, d->registry);
                api_plugins_changed(d->api);
        }
        if (c.pending) {
                plugwatch_again(d->watch, PENDING_RETRY_MS);
        } else if (registry_broken_count(d->registry)) {
                if (any || force || !d->broken_retry_ms)
                        d->broken_retry_ms = BROKEN_RETRY_MIN_MS;
                else if (d->broken_retry_ms < BROKEN_RETRY_MAX_MS)
                        d->broken_retry_ms *= 2;
                plugwatch_again(d->watch, d->broken_retry_ms);
        } else {
                d->broken_retry_ms = 0;
                /* What the watch cannot see (deeper than a plugin's own
                 * directory, a link re-pointed, a network filesystem):
                 * unchanged manifests make this nearly free. */
                plugwatch_again(d->watch, PERIODIC_RESCAN_MS);
        }
}

/* The workspaces' tmpfs: a running job's input (at most
 * input_ceiling_bytes), twice over for runs that failed before they ran
 * (their input goes with their cleanup, not when a container ends), and a
 * MiB for each sandbox's bundle and small files. */
static int64_t workspaces_size(const struct config *cfg)
{
        return 2 * cfg->workers * cfg->input_ceiling_bytes + (cfg->workers + cfg->warm.max_containers + 8) * (int64_t)1024 * 1024;
}

static int start(struct daemon *d, struct err *err)
{
        const struct config *cfg = &d->cfg;
        _cleanup_free_ char *logs_dir = xasprintf("%s/logs", cfg->state_dir);
        _cleanup_free_ char *allow = xasprintf("%s/seccomp.allow", cfg->templates_dir);

        if (mkdir_p(cfg->state_dir, 0700, err) < 0)
                return err_wrap(err, "state dir");
        /* One daemon per state dir: two would both recover, and run, the
         * same stored jobs. */
        _cleanup_free_ char *lock = xasprintf("%s/edgecd.lock", cfg->state_dir);
        if (lock_file(lock, &d->lock_fd, err) < 0) {
                if (err->code == ERR_CONFLICT)
                        return err_wrap(err, "state dir %s is in use by another edgecd", cfg->state_dir);
                return err_wrap(err, "state dir");
        }
        /* Our own mount namespace (mountns.h), before the first mount and
         * the first thread; first, what a killed daemon without one left
         * here, which a copy could not take away. */
        _cleanup_free_ char *workspaces = xasprintf("%s/workspaces", cfg->state_dir);
        struct err me = ERR_INIT;
        int moved = workspace_root_clear(workspaces, &me) < 0 ? -1 : mountns_own(&me);
        if (moved < 0)
                log_warn("%s: the daemon's mounts stay in the mount namespace it was started in", me.msg);
        else
                log_info("mounts: %s", moved ? "in a mount namespace of the daemon's own, a slave of the one it was "
                                               "started in"
                                             : "in the mount namespace the daemon was started in (its / is not "
                                               "shared: nothing propagates from them)");
        if (reaper_setup(err) < 0)
                return -1;
        if (idpool_check_host(cfg->job_users.first_uid, cfg->job_users.first_gid, cfg->job_users.count, err) < 0)
                return err_wrap(err, "job_users");
        struct err ce = ERR_INIT;
        if (idpool_claim(IDPOOL_CLAIMS_PATH, cfg->job_users.first_uid, cfg->job_users.first_gid,
                         cfg->job_users.count, HELD_GRACE_MS, &d->ids_lock_fd, &ce) < 0) {
                if (ce.code == ERR_CONFLICT) {
                        *err = ce;
                        return err_wrap(err, "job_users");
                }
                log_warn("job_users: cannot tell whether another edgecd on this host uses the same ids: %s", ce.msg);
        }
        d->ids = idpool_new(cfg->job_users.first_uid, cfg->job_users.first_gid, cfg->job_users.count);
        if (seccomp_policy_load(allow, &d->policy, err) < 0)
                return -1;
        log_info("seccomp: %zu system calls allowed by %s", seccomp_policy_count(d->policy), allow);
        if (oci_check_template(cfg->templates_dir, "default", err) < 0)
                return -1;

        /* On cgroup v2 the parent may move into our delegated cgroup (and
         * we into a leaf of our own): from here on cfg->cgroup_parent is
         * the resolved path, which every subsystem uses. */
        _cleanup_free_ char *parent = NULL;
        if (cgroup_setup_parent(cfg->cgroup_parent, &parent, err) < 0)
                return -1;
        if (strcmp(parent, cfg->cgroup_parent))
                log_info("cgroup: job cgroups under `%s` (cgroup_parent `%s` in the cgroup delegated to the daemon)",
                         parent, cfg->cgroup_parent);
        else
                log_info("cgroup: job cgroups under `%s` (from the top of the hierarchy: %s)", parent,
                         cgroup_is_v2() ? "cgroup v2, but no cgroup delegated to the daemon (Delegate=yes)"
                                        : "cgroup v1");
        config_set_string(&d->cfg.cgroup_parent, parent);
        if (cgroup_check_parent(cfg->cgroup_parent, err) < 0)
                return -1;
        /* Before anything sweeps the parent: another daemon's jobs are not leftovers. */
        if (cgroup_lock_parent(cfg->cgroup_parent, &d->parent_lock_fd, err) < 0)
                return -1;
        /* The address bound before any work is taken on: one in use, or
         * open to other hosts with no tokens, stops the start before a
         * stored job runs again (listened on and served from api_start()). */
        struct auth *auth = NULL;
        if (load_tokens(cfg, &auth, err) < 0)
                return -1;
        int listen_fd = -1;
        int n = sd_listen_fds(1);
        if (n > 1) {
                auth_free(auth);
                return err_set(err, ERR_INVALID, 0, "socket activation passed %d sockets, expected 1", n);
        }
        if (n == 1)
                listen_fd = SD_LISTEN_FDS_START;
        if (api_bind(cfg, listen_fd, auth, &d->api, err) < 0)
                return -1;
        stop_stray_runtimes(cfg);
        sweep_runtime_roots(cfg);
        struct probe_env pe = { .cfg = cfg, .policy = d->policy, .ids = d->ids };
        if (probe_select_runtime(&pe, log_report, NULL, &d->runtime, err) < 0)
                return -1;
        /* Which binary this state root belongs to, for a later start that
         * is configured with another runtime. */
        _cleanup_free_ char *record = xasprintf("%s.path", d->runtime->root);
        if (write_file(record, d->runtime->path, strlen(d->runtime->path), 0600, err) < 0)
                return err_wrap(err, "runtime");
        /* Nothing runs yet: whatever is under our cgroup parent or in the
         * workspaces is a leftover. */
        struct collector_deps cd = { .cfg = cfg, .rt = d->runtime };
        collector_run(&cd);

        _cleanup_free_ char *umoci = probe_find_binary("umoci");
        d->images_dir = xasprintf("%s/images", cfg->state_dir);
        struct registry_env renv = { .templates_dir = cfg->templates_dir, .images_dir = d->images_dir,
                                     .umoci = umoci, .max_image_bytes = cfg->max_image_bytes,
                                     .unpacking = unpacking,
                                     .unpacking_ctx = &d->said_unpacking };
        if (registry_load(cfg->plugins_dir, &renv, (size_t)cfg->max_algorithms, log_broken, NULL, &d->registry, err) < 0)
                return -1;
        /* Nothing runs yet: unpacked images no plugin uses any more go. */
        _cleanup_strv_ char **digests = registry_image_digests(d->registry);
        image_cache_prune(d->images_dir, digests);
        log_info("plugins: %zu loaded, %zu broken, from %s", registry_count(d->registry),
                 registry_broken_count(d->registry), cfg->plugins_dir);

        if (store_open("sqlite", cfg->state_dir, logs_dir, &d->store, err) < 0)
                return -1;
        log_info("store: %zu job record(s) in %s/edgecd.db", store_count(d->store), cfg->state_dir);
        size_t orphans = store_sweep_logs(d->store);
        if (orphans)
                log_info("store: %zu log(s) of jobs with no record removed", orphans);
        store_set_cache(d->store, (size_t)cfg->store.cache_bytes);
        d->queue = queue_new((size_t)cfg->queue_capacity);
        d->jobs = jobtable_new();
        d->breaker = breaker_new(cfg->breaker.degrade_after, cfg->breaker.isolate_after,
                                 cfg->breaker.cooldown_seconds * 1000);
        d->admission = admission_new(cfg->memory_pool_mb, &cfg->defaults, d->breaker);
        d->env = (struct sandbox_env){
                .cfg = cfg, .rt = d->runtime, .policy = d->policy,
                .workspaces_dir = d->workspaces_dir = xasprintf("%s/workspaces", cfg->state_dir),
                .gate_path = d->gate_path = xasprintf("%s/warm-gate", cfg->state_dir),
                .warm_logs_dir = d->warm_logs_dir = xasprintf("%s/warm-logs", cfg->state_dir),
                .cgroups = d->cgroups = runcgroups_new(cfg->cgroup_parent),
        };
        if (sandbox_install_gate(d->gate_path, err) < 0)
                return -1;
        if (workspace_root_mount(d->workspaces_dir, workspaces_size(cfg), err) < 0)
                return -1;
        d->workspaces_mounted = true;
        /* Warm containers' logs a killed daemon left (none is live yet). */
        if (rm_rf(d->warm_logs_dir, err) < 0 || mkdir_p(d->warm_logs_dir, 0700, err) < 0)
                return err_wrap(err, "warm logs");
        d->live = liveset_new();
        if (cleaner_start(&d->env, d->ids, d->live, &d->cleaner, err) < 0)
                return -1;
        if (cfg->warm.max_containers > 0) {
                struct warmpool_deps wd = {
                        .cfg = cfg, .env = &d->env, .ids = d->ids, .live = d->live, .cleaner = d->cleaner,
                        .admission = d->admission,
                };
                if (warmpool_start(&wd, &d->warm, err) < 0)
                        return -1;
        }
        /* Before the scheduler, which tells it of final jobs; what the
         * last daemon left pending is sent from the start. */
        if (callbacks_start(cfg, d->store, &d->callbacks, err) < 0)
                return -1;
        struct scheduler_deps sd = {
                .cfg = cfg, .rt = d->runtime, .env = &d->env, .queue = d->queue, .store = d->store,
                .jobs = d->jobs, .ids = d->ids, .breaker = d->breaker, .admission = d->admission,
                .live = d->live, .cleaner = d->cleaner, .warm = d->warm, .callbacks = d->callbacks,
                .registry = d->registry,
        };
        if (scheduler_start(&sd, &d->scheduler, err) < 0)
                return -1;
        /* Before serving: what the last daemon accepted runs again. */
        if (scheduler_recover(d->scheduler, d->registry, err) < 0)
                return -1;
        /* Containers made ahead only once the leftovers are gone. */
        warmpool_sync(d->warm, d->registry);
        cd.store = d->store;
        cd.is_live = run_is_live;
        cd.released = run_released;
        cd.ctx = d;
        if (collector_start(&cd, &d->collector, err) < 0)
                return -1;

        struct api_deps deps = {
                .cfg = cfg, .registry = d->registry, .queue = d->queue, .store = d->store, .jobs = d->jobs,
                .scheduler = d->scheduler, .runtime = d->runtime, .breaker = d->breaker,
                .admission = d->admission, .ids = d->ids, .warm = d->warm, .cleaner = d->cleaner,
                .cgroups = d->cgroups,
        };
        if (api_start(d->api, &deps, err) < 0)
                return -1;
        if (cfg->watch_plugins) {
                /* Without inotify (an instance limit reached), SIGHUP still
                 * rescans. */
                struct err werr = ERR_INIT;
                if (plugwatch_start(cfg->plugins_dir, wake_main, d, &d->watch, &werr) < 0)
                        log_warn("%s; plugins are rescanned on SIGHUP only", werr.msg);
                /* What changed since the first scan, and what was broken
                 * then: looked at once now. */
                plugwatch_again(d->watch, 0);
        }
        return 0;
}

static void stop(struct daemon *d)
{
        /* No run cgroup made ahead from now on, for the runs given back
         * as the jobs drain and the warm pool empties: a run that still
         * comes makes its own. */
        runcgroups_stopping(d->cgroups);
        plugwatch_stop(d->watch);
        api_drain(d->api);
        collector_stop(d->collector);
        /* Running jobs drain while the API still answers (reads, cancels,
         * 503 to submissions); no waiter fires after this. */
        warmpool_stop(d->warm);
        scheduler_stop(d->scheduler, d->cfg.drain_seconds * 1000);
        if (d->api)
                api_quiesce(d->api);
        api_stop(d->api);               /* no handler runs after this */
        scheduler_free(d->scheduler);
        /* No job becomes final any more; deliveries in flight stay
         * pending on disk. */
        callbacks_stop(d->callbacks);
        warmpool_free(d->warm);
        /* Every sandbox is handed over by now: take them apart. */
        cleaner_free(d->cleaner);
        runcgroups_free(d->cgroups);
        if (d->workspaces_mounted) {
                struct err err = ERR_INIT;
                if (workspace_root_unmount(d->workspaces_dir, &err) < 0)
                        log_warn("%s", err.msg);
        }
        liveset_free(d->live);
        logpump_shutdown();
        oci_template_cache_clear();
        free(d->workspaces_dir);
        free(d->warm_logs_dir);
        free(d->gate_path);
        free(d->images_dir);
        jobtable_free(d->jobs);
        queue_free(d->queue);
        store_close(d->store);
        admission_free(d->admission);
        breaker_free(d->breaker);
        registry_free(d->registry);
        seccomp_policy_free(d->policy);
        /* The parent is ours while we hold its lock, made by us at start
         * if it was not there: it goes when empty, after a start that
         * failed before the runtime was chosen too (said only when there
         * was one: before, leftovers may still be in it). */
        if (d->parent_lock_fd >= 0) {
                struct err err = ERR_INIT;
                if (cgroup_remove(d->cfg.cgroup_parent, &err) < 0 && d->runtime)
                        log_warn("cgroup: %s", err.msg);
        }
        runtime_free(d->runtime);
        idpool_free(d->ids);
        if (d->lock_fd >= 0)
                close(d->lock_fd);
        if (d->parent_lock_fd >= 0)
                close(d->parent_lock_fd);
        if (d->ids_lock_fd >= 0)
                close(d->ids_lock_fd);
        config_free(&d->cfg);
}

/* --hash-token: the token on stdin (one line), its tokens-file entry out. */
static int hash_token(void)
{
        char buf[4096];
        if (!fgets(buf, sizeof buf, stdin)) {
                fprintf(stderr, "edgecd: --hash-token: no token on stdin\n");
                return 2;
        }
        buf[strcspn(buf, "\r\n")] = '\0';
        /* Hashed as a request's token is: `echo "$T "` makes an entry
         * that the token matches. */
        size_t len;
        const char *tok = auth_token_trim(buf, &len);
        if (len < AUTH_TOKEN_MIN) {
                fprintf(stderr, "edgecd: --hash-token: a token needs at least %d characters "
                        "(try: head -c 32 /dev/urandom | base64)\n", AUTH_TOKEN_MIN);
                return 2;
        }
        char hex[65];
        auth_hash(tok, len, hex);
        printf("  - name: NAME\n    sha256: %s\n    scopes: [read, submit, cancel]\n", hex);
        return 0;
}

/* Blocks of 4 MiB or more (a result read, its rendering, a reply held
 * for a slow reader: up to result_ceiling_bytes each) are mapped for
 * themselves and go back to the system when freed, and a heap keeps at
 * most 8 MiB free at its top.  Left to itself, glibc raises both to the
 * largest block freed (up to 32 MiB, 64 at the top) and keeps such blocks
 * in its heaps, one per thread that freed one: two 16 MiB results read a
 * few times left the daemon 70 MiB larger for good.  Smaller blocks (a
 * default 1 MiB result's) are still reused without faulting their pages
 * in again.  An operator's own malloc tuning wins. */
static void bound_malloc(void)
{
        const char *tunables = getenv("GLIBC_TUNABLES");
        if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") ||
            (tunables && strstr(tunables, "glibc.malloc.")))
                return;
        mallopt(M_MMAP_THRESHOLD, 4 << 20);
        mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

int main(int argc, char **argv)
{
        bound_malloc();
        metrics_set_start_time();
        struct options o = { 0 };
        int rc = parse_args(argc, argv, &o);
        if (rc)
                return rc == 1 ? EXIT_SUCCESS : 2;

        if (o.hash_token)
                return hash_token();
        struct daemon d = { .lock_fd = -1, .parent_lock_fd = -1, .ids_lock_fd = -1, .main_thread = pthread_self() };
        int problems = load_config(&o, &d.cfg);
        if (o.check_only) {
                if (!problems)
                        problems += check_beyond_file(&d.cfg);
                if (!problems) {
                        check_plugins(&d.cfg);
                        printf("configuration OK\n");
                }
                config_free(&d.cfg);
                return problems ? 2 : EXIT_SUCCESS;
        }
        if (problems) {
                fprintf(stderr, "edgecd: %d configuration problem(s), not starting\n", problems);
                config_free(&d.cfg);
                return 2;
        }
        log_init((enum log_level)log_level_parse(d.cfg.log_level));

        /* Block the signals before any thread starts so all inherit the mask
         * and only this thread takes them, synchronously. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        /* SIGCHLD stays blocked but is not waited for: every job's runtime
         * sends one, whose owner reaps it through its pidfd, and waking
         * this thread for each was a switch and three system calls per
         * job.  Orphans are reaped on the tick, a second at most. */
        sigset_t wait_set = set;
        sigdelset(&wait_set, SIGCHLD);

        /* WATCHDOG_USEC (and WATCHDOG_PID, when set, naming us). */
        if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
                watchdog_usec = 0;
        struct err err = ERR_INIT;
        if (start(&d, &err) < 0) {
                log_error("cannot start: %s", err.msg);
                /* A full state disk fails the runtime's own state first,
                 * in words that blame the runtime ("no usable OCI
                 * runtime"): the cause is named.  Root may use the
                 * blocks reserved for it; no inode left is full too. */
                struct statvfs vfs;
                if (d.cfg.state_dir && statvfs(d.cfg.state_dir, &vfs) == 0 &&
                    ((geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail) == 0 || (vfs.f_files && vfs.f_ffree == 0)))
                        log_error("the state dir %s is full (the runtime's state, the store and the logs are "
                                  "there): make room, then start again", d.cfg.state_dir);
                stop(&d);
                return EXIT_FAILURE;
        }
        log_info("edgecd %s listening on %s, runtime %s (%s), %lld workers",
                 EDGECD_VERSION, api_address(d.api), d.runtime->name, d.runtime->path,
                 (long long)d.cfg.workers);
        if (d.said_unpacking)
                unpacked();
        d.said_unpacking = false;
        notify_status(&d, true, "READY=1");
        int64_t tick_ms = 1000;
        if (watchdog_usec) {
                int64_t interval = (int64_t)(watchdog_usec / 1000);
                if (interval / 4 < tick_ms)
                        tick_ms = interval / 4 > 10 ? interval / 4 : 10;
                log_info("watchdog: WATCHDOG=1 every %lld ms while the workers beat", (long long)interval / 2);
                watchdog_tick(&d);
        }
        /* What ran only to start (library initialisers, the probe, the
         * parsers) need not stay resident. */
        release_code_pages();

        for (;;) {
                struct timespec tick = { .tv_sec = tick_ms / 1000, .tv_nsec = (tick_ms % 1000) * 1000000 };
                int sig = sigtimedwait(&wait_set, NULL, &tick);
                if (sig == SIGTERM || sig == SIGINT) {
                        log_info("signal %s: stopping", strsignal(sig));
                        break;
                }
                if (sig == SIGUSR1)
                        reload_plugins(&d, "watch", false);
                if (sig == SIGHUP) {
                        /* `systemctl reload` waits for READY=1 after this. */
                        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                                   (unsigned long long)monotonic_usec());
                        struct err rerr = ERR_INIT;
                        reload_plugins(&d, "sighup", true);
                        recheck_config(&o);
                        struct auth *auth = NULL;
                        err_clear(&rerr);
                        if (load_tokens(&d.cfg, &auth, &rerr) < 0)
                                log_error("SIGHUP: tokens not reloaded, the old ones stay: %s", rerr.msg);
                        else if (auth)
                                api_set_auth(d.api, auth);
                        err_clear(&rerr);
                        if (callbacks_reload_secret(d.callbacks, &rerr) < 0)
                                log_error("SIGHUP: the callbacks' secret not reloaded, the old one stays: %s",
                                          rerr.msg);
                        else if (d.callbacks)
                                log_info("callbacks: secret reloaded from %s", d.cfg.callbacks.secret_file);
                        notify_status(&d, true, "READY=1");
                }
                /* Containers whose init we subreaped but nobody waits for
                 * any more. */
                reaper_reap_orphans();
                notify_status(&d, false, "");
                watchdog_tick(&d);
        }
        /* The unit's TimeoutStopSec= knows nothing of drain_seconds: without
         * more time, a drain longer than it ends in SIGKILL, the stop failed
         * and the running containers (in cgroups of the daemon's, outside
         * the unit's) left running with nobody to take them apart.  The
         * drain, then a kill and a delete of each container, each a runtime
         * call bounded by runtime_timeout_seconds; this never shortens the
         * unit's own timeout. */
        unsigned long long stop_usec = (unsigned long long)(d.cfg.drain_seconds + 2 * d.cfg.runtime_timeout_seconds) *
                                       1000000ULL;
        sd_notifyf(0, "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=stopping: %zu running job(s) drain", stop_usec,
                   scheduler_running(d.scheduler));
        stop(&d);
        log_info("stopped");
        return EXIT_SUCCESS;
}
