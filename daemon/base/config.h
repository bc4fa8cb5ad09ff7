/* config.h - the daemon's configuration: embedded defaults, then the YAML
 * file (libyaml), then command-line overrides.  Options are defined in one
 * table in config.c (name, type, field, default, bounds).  Loaded once by
 * main.c before any thread starts; read-only afterwards, so any thread may
 * read it without a lock. */
#ifndef EDGECD_CONFIG_H
#define EDGECD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Limits a job gets when its manifest does not name them. */
struct limits {
        double cpu_cores;         /* cpu quota in cores, e.g. 1.0 */
        int64_t memory_mb;
        int64_t pids;
        int64_t disk_mb;          /* size of the /output tmpfs */
        int64_t timeout_seconds;
};

struct config_marks;

struct config {
        char *path;               /* file it came from, or NULL for embedded defaults */
        struct config_marks *marks;   /* where in it each option was set (NULL: nowhere), for
                                       * config_validate()'s messages */

        char *listen;             /* "127.0.0.1:8080", "[::1]:8080" or "unix:/run/edgecd.sock" */
        char *plugins_dir;
        char *templates_dir;      /* holds default.json and seccomp.allow */
        char *state_dir;          /* edgecd.db, workspaces/, runtime/ (runtime --root), logs/ */
        char *runtime;            /* preferred runtime: "youki", "crun", "runc" or a path */
        char *cgroup_parent;      /* every job's cgroupsPath is under this, e.g. "/edgecd" */
        int64_t workers;          /* worker threads = global concurrency limit */
        int64_t memory_pool_mb;   /* running jobs' memory limits add up to at most this; 0 = auto */
        int64_t queue_capacity;   /* jobs waiting; a full queue answers 429 */
        int64_t max_batch;        /* jobs in one POST /v1/jobs/batch */
        int64_t drain_seconds;    /* on SIGTERM, running jobs may finish for this long */
        int64_t max_body_bytes;   /* request body limit (413 above) */
        int64_t max_result_bytes; /* /output/result.json limit */
        int64_t input_ceiling_bytes;   /* the most a manifest's max_input_bytes may be */
        int64_t result_ceiling_bytes;  /* the most a manifest's max_result_bytes may be */
        int64_t max_log_bytes;    /* per-job stdout+stderr log cap */
        int64_t max_timeout_seconds; /* ceiling for a request's timeout_seconds */
        int64_t max_pids;            /* ceiling for a job's pids (a manifest's or defaults.pids) */
        int64_t max_image_bytes;     /* of the state disk one image plugin's unpack may take */
        int64_t runtime_timeout_seconds; /* any one runtime CLI call */
        int64_t sweep_interval_seconds;  /* how often leftovers are collected */
        bool keep_bundles;        /* debug: keep each job's bundle after it ends */
        bool watch_plugins;       /* rescan plugins_dir when it changes (inotify) */
        int64_t max_algorithms;   /* plugin manifests (versions) loaded at most */
        char *log_level;          /* error, warn, info, debug */
        struct limits defaults;
        struct {
                int64_t first_uid, first_gid, count;   /* one pair per running container */
        } job_users;
        struct {
                int64_t max_attempts;     /* a job's runs in all, when the runtime fails */
                int64_t backoff_ms;       /* before the second run; doubles after */
                int64_t shortage_retries; /* runs failed for want of the daemon's own resources, not counted */
        } retry;
        struct {
                int64_t degrade_after, isolate_after;  /* consecutive runtime errors or violations */
                int64_t cooldown_seconds;              /* isolated this long before a probe job */
        } breaker;
        struct {
                int64_t retention_seconds;    /* final records (and their logs) older than this go */
                int64_t max_records;          /* ...and the oldest-finished past this many */
                int64_t cache_bytes;          /* renderings of final records kept for reads */
        } store;
        struct {
                int64_t max_containers;       /* warm containers of all plugins together (0: no pool) */
                int64_t idle_seconds;         /* a pool no job took from this long empties */
        } warm;
        struct {
                int64_t max_connections, max_connections_per_client;
                int64_t connection_timeout_seconds;
                int64_t max_header_bytes;
                int64_t max_response_bytes;   /* large replies held for slow readers */
                int64_t max_json_depth;
                char *unix_mode;          /* octal, for a unix: listen socket */
                char *unix_group;         /* "" for the daemon's own */
        } http;
        struct {
                char *tokens_file;        /* "" when auth is off */
                bool metrics_public;      /* /metrics without a token */
        } auth;
        struct {
                char **allow;             /* URL prefixes a callback_url must match (NULL-terminated); empty: none */
                char *secret_file;        /* the HMAC key; "" when callbacks are off */
                int64_t max_attempts;     /* deliveries of one job's callback at most */
                int64_t backoff_ms;       /* before the second attempt; doubles after (with jitter) */
                int64_t max_backoff_ms;   /* the most one wait between attempts grows to */
                int64_t connect_timeout_seconds;
                int64_t timeout_seconds;  /* one attempt, all in */
                int64_t concurrency;      /* deliveries in flight at once (each holds its body) */
                int64_t max_pending;      /* pending callbacks to one receiver: past it, submits to it are 429 */
        } callbacks;
};

/* Fill *cfg with the embedded defaults.  Never fails. */
void config_init_defaults(struct config *cfg);

/* Parse the YAML file at path over the values already in cfg.  Every problem
 * (unknown key, wrong type, value out of range, YAML syntax) is reported as
 * one line "FILE:LINE:COL: key: what is wrong" (LINE and COL 1-based) through
 * report(line, ctx); parsing goes on after a bad key.  Returns 0, or -1 when
 * anything was reported (err then holds the first problem and a count). */
int config_load_file(struct config *cfg, const char *path,
                     void (*report)(const char *line, void *ctx), void *ctx,
                     struct err *err);

/* Check cross-field consistency after overrides (listen address parses,
 * directories are absolute or relative, workers >= 1 ...).  Same reporting. */
int config_validate(const struct config *cfg,
                    void (*report)(const char *line, void *ctx), void *ctx,
                    struct err *err);

/* Replace a string option (for --listen and friends); takes a copy. */
void config_set_string(char **field, const char *value);
/* A command-line option: string option `name` (as in the file) set to
 * value, no longer where the file set it. */
void config_override(struct config *cfg, const char *name, const char *value);

/* Make plugins_dir, templates_dir and state_dir absolute against the
 * current directory, so that OCI bundles (which need absolute paths) and
 * the runtime (which runs elsewhere) see the same directories. */
int config_absolute_paths(struct config *cfg, struct err *err);

void config_free(struct config *cfg);   /* frees the members, not cfg itself */

#endif
