/* main.c - edgecd: command line, start-up order, signals, shut-down order.
 *
 * Start: config (file, then flags) -> log -> state dirs -> runtime probe ->
 * seccomp policy -> plugin registry -> queue, store, workers -> HTTP ->
 * READY=1.  Stop (SIGTERM/SIGINT): STOPPING=1 -> stop accepting -> workers
 * interrupt running jobs and fail queued ones -> waiting clients answered ->
 * everything freed, the parent cgroup removed.
 *
 * The main thread owns every object and only waits for signals; all other
 * threads are started with every signal blocked. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "api.h"
#include "cgroup.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "registry.h"
#include "runtime.h"
#include "scheduler.h"
#include "seccomp.h"
#include "store.h"
#include "util.h"

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

struct options {
        const char *config, *listen, *plugins_dir, *templates_dir, *state_dir, *log_level;
        bool check_only;
};

/* 0 to go on, 1 to exit 0 (help, version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct options *o)
{
        enum { OPT_CHECK = 256, OPT_LOG_LEVEL };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                { "plugins-dir", required_argument, NULL, 'p' },
                { "templates-dir", required_argument, NULL, 't' },
                { "state-dir", required_argument, NULL, 's' },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "check-config", no_argument, NULL, OPT_CHECK },
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

/* Load and check the configuration; prints each problem.  Problem count. */
static int load_config(const struct options *o, struct config *cfg)
{
        int problems = 0;
        struct err err = ERR_INIT;
        config_init_defaults(cfg);
        const char *path = o->config;
        struct stat st;
        if (!path && stat(DEFAULT_CONFIG, &st) == 0)
                path = DEFAULT_CONFIG;
        if (path)
                config_load_file(cfg, path, print_problem, &problems, &err);
        if (o->listen) config_set_string(&cfg->listen, o->listen);
        if (o->plugins_dir) config_set_string(&cfg->plugins_dir, o->plugins_dir);
        if (o->templates_dir) config_set_string(&cfg->templates_dir, o->templates_dir);
        if (o->state_dir) config_set_string(&cfg->state_dir, o->state_dir);
        if (o->log_level) config_set_string(&cfg->log_level, o->log_level);
        config_validate(cfg, print_problem, &problems, &err);
        if (config_absolute_paths(cfg, &err) < 0)
                print_problem(err.msg, &problems);
        return problems;
}

/* The parts of --check-config beyond the file itself: the templates. */
static int check_templates(const struct config *cfg)
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
        _cleanup_free_ char *tmpl = xasprintf("%s/default.json", cfg->templates_dir);
        json_error_t jerr;
        json_t *t = json_load_file(tmpl, 0, &jerr);
        if (!t) {
                fprintf(stderr, "%s:%d:%d: %s\n", tmpl, jerr.line, jerr.column, jerr.text);
                problems++;
        }
        json_decref(t);
        return problems;
}

static void print_plugin_warning(const char *msg, void *ctx)
{
        (void)ctx;
        fprintf(stderr, "warning: plugin skipped: %s\n", msg);
}

/* Broken plugins do not stop the daemon, so they are warnings here, not
 * problems: an ExecStartPre check must not keep it from starting. */
static void check_plugins(const struct config *cfg)
{
        struct registry *r = NULL;
        struct err err = ERR_INIT;
        if (registry_load(cfg->plugins_dir, print_plugin_warning, NULL, &r, &err) == 0)
                printf("plugins: %zu loaded, %zu broken, from %s\n", registry_count(r),
                       registry_broken_count(r), cfg->plugins_dir);
        registry_free(r);
}

struct daemon {
        struct config cfg;
        struct runtime *runtime;
        struct seccomp_policy *policy;
        struct registry *registry;
        struct queue *queue;
        struct store *store;
        struct scheduler *scheduler;
        struct api *api;
};

static int start(struct daemon *d, struct err *err)
{
        const struct config *cfg = &d->cfg;
        _cleanup_free_ char *runtime_root = xasprintf("%s/runtime", cfg->state_dir);
        _cleanup_free_ char *probe_dir = xasprintf("%s/probe", cfg->state_dir);
        _cleanup_free_ char *logs_dir = xasprintf("%s/logs", cfg->state_dir);
        _cleanup_free_ char *allow = xasprintf("%s/seccomp.allow", cfg->templates_dir);

        if (mkdir_p(cfg->state_dir, 0700, err) < 0)
                return err_wrap(err, "state dir");
        if (runtime_setup_reaper(err) < 0)
                return -1;
        if (runtime_resolve(cfg->runtime, runtime_root, probe_dir, cfg->cgroup_parent, log_report, NULL,
                            &d->runtime, err) < 0)
                return -1;
        size_t swept = 0;
        struct err serr = ERR_INIT;
        if (runtime_sweep(d->runtime, &swept, &serr) < 0)
                log_warn("runtime: leftover containers: %s", serr.msg);
        if (swept)
                log_warn("runtime: removed %zu container(s) left by a previous run", swept);
        if (seccomp_policy_load(allow, &d->policy, err) < 0)
                return -1;
        log_info("seccomp: %zu system calls allowed by %s", seccomp_policy_count(d->policy), allow);
        if (registry_load(cfg->plugins_dir, log_broken, NULL, &d->registry, err) < 0)
                return -1;
        log_info("plugins: %zu loaded, %zu broken, from %s", registry_count(d->registry),
                 registry_broken_count(d->registry), cfg->plugins_dir);

        d->queue = queue_new((size_t)cfg->queue_capacity);
        d->store = store_new((size_t)cfg->jobs_kept, (size_t)cfg->kept_results_bytes, logs_dir);
        if (scheduler_start(cfg, d->runtime, d->policy, d->queue, d->store, &d->scheduler, err) < 0)
                return -1;

        int listen_fd = -1;
        int n = sd_listen_fds(1);
        if (n > 1)
                return err_set(err, ERR_INVALID, 0, "socket activation passed %d sockets, expected 1", n);
        if (n == 1)
                listen_fd = SD_LISTEN_FDS_START;
        struct api_deps deps = {
                .cfg = cfg, .registry = d->registry, .queue = d->queue, .store = d->store,
                .scheduler = d->scheduler, .runtime = d->runtime,
        };
        if (api_start(&deps, listen_fd, &d->api, err) < 0)
                return -1;
        return 0;
}

static void stop(struct daemon *d)
{
        if (d->api)
                api_quiesce(d->api);
        scheduler_stop(d->scheduler);   /* every job final: no waiter fires after this */
        api_stop(d->api);               /* no handler runs after this */
        scheduler_free(d->scheduler);
        store_free(d->store);
        queue_free(d->queue);
        registry_free(d->registry);
        seccomp_policy_free(d->policy);
        if (d->runtime) {
                struct err err = ERR_INIT;
                if (cgroup_remove_parent(d->cfg.cgroup_parent, &err) < 0)
                        log_warn("cgroup: %s", err.msg);
        }
        runtime_free(d->runtime);
        config_free(&d->cfg);
}

int main(int argc, char **argv)
{
        struct options o = { 0 };
        int rc = parse_args(argc, argv, &o);
        if (rc)
                return rc == 1 ? EXIT_SUCCESS : 2;

        struct daemon d = { 0 };
        int problems = load_config(&o, &d.cfg);
        if (o.check_only) {
                if (!problems)
                        problems += check_templates(&d.cfg);
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
        sigaddset(&set, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        struct err err = ERR_INIT;
        if (start(&d, &err) < 0) {
                log_error("cannot start: %s", err.msg);
                stop(&d);
                return EXIT_FAILURE;
        }
        log_info("edgecd %s listening on %s, runtime %s (%s), %lld workers",
                 EDGECD_VERSION, api_address(d.api), d.runtime->name, d.runtime->path,
                 (long long)d.cfg.workers);
        sd_notify(0, "READY=1");

        for (;;) {
                struct timespec tick = { .tv_sec = 1 };
                int sig = sigtimedwait(&set, NULL, &tick);
                if (sig == SIGTERM || sig == SIGINT) {
                        log_info("signal %s: stopping", strsignal(sig));
                        break;
                }
                if (sig == SIGHUP) {
                        struct err rerr = ERR_INIT;
                        if (registry_reload(d.registry, log_broken, NULL, &rerr) < 0)
                                log_error("SIGHUP: plugins not reloaded: %s", rerr.msg);
                        else
                                log_info("SIGHUP: plugins reloaded: %zu loaded, %zu broken",
                                         registry_count(d.registry), registry_broken_count(d.registry));
                }
                /* SIGCHLD or the tick: containers whose init we subreaped
                 * but nobody waits for any more. */
                runtime_reap_orphans();
        }
        sd_notify(0, "STOPPING=1");
        stop(&d);
        log_info("stopped");
        return EXIT_SUCCESS;
}
