/* runtime.h - an OCI runtime, as the rest of the daemon sees it: run a
 * container from a bundle in the foreground (the runtime's process ours to
 * wait for), or create it (its init then ours to wait for, as a pidref) and
 * start it, signal it, delete it, list what is left in its state root.
 *
 * DESIGN: one interface, a table of operations per kind of driver (as
 * crun's cgroup managers are).  Today there is one driver, the OCI command
 * line that youki, crun and runc share (runtime_cli.c); another (a library
 * runtime, a remote one) slots in behind the same table.  Which runtime is
 * used, and whether it really sandboxes a job here, is decided at start by
 * probe.c.  A `struct runtime` is read-only once made, so any worker thread
 * may use it without a lock. */
#ifndef EDGECD_RUNTIME_H
#define EDGECD_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "reaper.h"

struct runtime;

struct runtime_ops {
        const char *kind;
        /* Create the container `id` from bundle (config.json there), with
         * stdin /dev/null and stdout and stderr on log_fd (the container
         * inherits them).  *ret is its init, claimed.  On failure the caller
         * still deletes the id: a runtime may leave half a container. */
        int (*create)(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                      struct pidref *ret, struct err *err);
        /* Create and start in one go (the cold path: one runtime process
         * instead of two); otherwise as create. */
        int (*run)(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                   struct pidref *ret, struct err *err);
        /* Run in the foreground: one runtime process creates and starts the
         * container, stays while it runs, and deletes it when it ends.  *ret
         * is that process (ours to wait for); attached_end reads its end.
         * No runtime call is needed after it, and the container's cgroup is
         * gone when it ends: account in a parent cgroup. */
        int (*run_attached)(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                            struct pidref *ret, struct err *err);
        /* Has an attached run's container process started?  *ret_ms: when
         * (CLOCK_REALTIME ms).  Until it has, the runtime is creating it
         * (and may hang there); afterwards the container runs. */
        bool (*attached_started)(const struct runtime *rt, const char *id, const char *bundle, int64_t *ret_ms);
        /* How an attached run ended, given its runtime process's end: 0 and
         * the container's own end in *ret (a container killed by signal N,
         * which the runtimes report as status 128+N, as killed by N), or -1
         * when the runtime failed before the container's process ran. */
        int (*attached_end)(const struct runtime *rt, const char *id, const char *bundle,
                            const struct proc_exit *runtime_exit, struct proc_exit *ret, struct err *err);
        int (*start)(const struct runtime *rt, const char *id, struct err *err);
        /* sig a name as in signal(7) without SIG: "KILL", "TERM". */
        int (*kill)(const struct runtime *rt, const char *id, const char *sig, struct err *err);
        /* Delete with force (its processes killed first).  0 only when the
         * container is gone from the runtime's state afterwards; one already
         * gone is success. */
        int (*delete)(const struct runtime *rt, const char *id, struct err *err);
        /* Every container id in the state root (caller frees, strv). */
        int (*list)(const struct runtime *rt, char ***ret, struct err *err);
        /* What the runtime printed (to a container's log, when `create`
         * failed) made one line fit for an error message; "" for nothing. */
        char *(*error_text)(const char *output);
};

struct runtime {
        const struct runtime_ops *ops;
        char *name;      /* "youki", "crun", "runc" */
        char *path;      /* absolute path of the binary */
        char *root;      /* our own state root for it: STATE_DIR/runtime/<name> */
        char *version;   /* as the runtime says, e.g. "1.1.5+ds1"; NULL when unknown */
        char **env;      /* the environment its processes get (never the daemon's) */
        /* Its foreground `run` writes the pid file once the container runs
         * and reports a container killed by signal N as status 128+N (runc,
         * crun); so cold runs use it (run_attached).  youki writes the pid
         * file at create and exits N: cold runs use `run --detach` there,
         * and with any runtime not known to behave. */
        bool attached_ok;
        int64_t cli_timeout_ms;   /* any one call */
};

/* A runtime of the OCI command-line driver; env NULL means the default
 * minimal environment (PATH only).  Asks the binary its version. */
struct runtime *runtime_cli_new(const char *name, const char *path, const char *root,
                                int64_t cli_timeout_ms);
void runtime_free(struct runtime *rt);   /* NULL is fine */

/* The operations, checked: a container id must be [A-Za-z0-9_.-], not
 * starting with '-' or '.', at most 200 bytes (it lands in argv and paths). */
bool runtime_id_ok(const char *id);
int runtime_create(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                   struct pidref *ret, struct err *err);
int runtime_run(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                struct pidref *ret, struct err *err);
int runtime_run_attached(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                         struct pidref *ret, struct err *err);
bool runtime_attached_started(const struct runtime *rt, const char *id, const char *bundle, int64_t *ret_ms);
int runtime_attached_end(const struct runtime *rt, const char *id, const char *bundle,
                         const struct proc_exit *runtime_exit, struct proc_exit *ret, struct err *err);
int runtime_start(const struct runtime *rt, const char *id, struct err *err);
int runtime_kill(const struct runtime *rt, const char *id, const char *sig, struct err *err);
int runtime_delete(const struct runtime *rt, const char *id, struct err *err);
int runtime_list(const struct runtime *rt, char ***ret, struct err *err);
/* Caller frees. */
char *runtime_error_text(const struct runtime *rt, const char *output);

/* Delete, retried with backoff (attempts in all, the first at once) until
 * the container is gone: a runtime can fail a delete transiently (youki:
 * "failed to seal /proc/self/exe: Device or resource busy").  The last
 * error when it never went. */
int runtime_delete_retry(const struct runtime *rt, const char *id, int attempts, struct err *err);

/* Delete every container in rt's state root for which keep(id, ctx) is
 * false (keep may be NULL: all go).  *ret_removed counts those removed.
 * Goes on after a failure and returns the first one. */
int runtime_sweep(const struct runtime *rt, bool (*keep)(const char *id, void *ctx), void *ctx,
                  size_t *ret_removed, struct err *err);

#endif
