/* sandbox.h - one run's container with everything it stands on: its job
 * identity (idpool.h), workspace (input, output tmpfs, bundle), cgroups
 * (the run's, and its container's inside it), log pump, and the running
 * container (ours to wait for).
 *
 * DESIGN: a cold run makes a sandbox whose command runs at once on its
 * input, through one runtime process in the foreground that creates,
 * starts, waits for and deletes the container (as `runc run` by hand
 * does: the cheapest the CLI offers); the run's cgroup above the
 * container's keeps its figures.  The warm pool (warmpool.h) makes them
 * ahead with `run --detach`, without input, their process the gate, so a
 * job only places its input and opens the gate.  Either way the same code
 * makes it and the same code takes it apart, and the owner calls
 * sandbox_destroy() after the job's answer is out: a warm container's
 * deletion, the run cgroup's removal and the workspace's are not on the
 * job's path.  A sandbox is used by one thread at a time; the run id names
 * its container, cgroup and workspace. */
#ifndef EDGECD_SANDBOX_H
#define EDGECD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/error.h"
#include "idpool.h"
#include "logpump.h"
#include "registry/manifest.h"
#include "registry/oci.h"
#include "registry/seccomp.h"
#include "runcgroup.h"
#include "runtime/reaper.h"
#include "runtime/runtime.h"
#include "store/record.h"
#include "workspace.h"

/* What preparing and removing a sandbox uses; borrowed. */
struct sandbox_env {
        const struct config *cfg;
        const struct runtime *rt;
        const struct seccomp_policy *policy;
        const char *workspaces_dir;
        const char *warm_logs_dir;   /* a warm container's log until a job takes it */
        const char *gate_path;       /* the warm gate binary (sandbox_install_gate) */
        struct runcgroups *cgroups;  /* where each run's cgroup comes from */
};

/* Write the embedded warm gate (daemon/inside/warm-gate.c) to path, 0755. */
int sandbox_install_gate(const char *path, struct err *err);

struct sandbox {
        char run_id[RUN_ID_MAX];
        struct job_ids ids;          /* the caller's; sandbox_destroy() says when free */
        struct limits limits;
        struct runcgroup cg;         /* the run's cgroup (its totals) and its container's in it */
        char *log_path;              /* where the pump writes */
        bool log_truncated;          /* output was dropped, once stopped */
        int log_errno;               /* its first failed write's, once stopped */
        char *log_tail;              /* the end of its output (logpump.h), once stopped */
        struct workspace *ws;
        struct logpump *lp;
        struct pidref init;          /* the container's init (attached: the runtime's
                                      * process), while ours */
        bool attached;               /* run in the foreground (cold) */
        bool asked;                  /* the runtime was called: delete needed */
        bool ended;                  /* attached: the runtime ended on its own (and deleted
                                      * the container) */
        int64_t spawned_ms;          /* attached: when the runtime started, CLOCK_REALTIME */
        int64_t spawned_mono_ms;     /* and CLOCK_MONOTONIC */
        int64_t create_ms;           /* attached: until its process ran, once known */
        bool warm;                   /* built for the pool (the gate waits for input) */
        bool own_log;                /* log_path is the sandbox's (warm, not yet a job's):
                                      * removed with it */
        struct oci_template_stamp tmpl;  /* its template's files when built (before its limits and
                                          * config were read from them) */
};

/* Make the workspace, the bundle, the log pump into log_path, and run the
 * container run_id as ids for manifest m.  Cold (input non-NULL): the
 * runtime runs it in the foreground (one runtime process creates, starts,
 * waits for and deletes it) and the command runs at once on that input.
 * Warm (input NULL): `run --detach`; the container's process is the gate,
 * which waits in the sandbox until sandbox_adopt() and then becomes the
 * command.  0, or -1 with err and *ret_retryable (the host or runtime
 * failed, not the request); *ret is set either way, and the caller
 * destroys it. */
int sandbox_prepare(const struct sandbox_env *env, const struct manifest *m, const char *run_id,
                    struct job_ids ids, const char *log_path, const char *input, size_t input_len,
                    struct sandbox **ret, bool *ret_retryable, struct err *err);
/* sandbox_prepare() in two halves: everything up to the bundle (no process
 * yet), then the log pump and the runtime.  A cold run builds while its
 * start is being committed, and starts once it is. */
int sandbox_build(const struct sandbox_env *env, const struct manifest *m, const char *run_id,
                  struct job_ids ids, const char *log_path, const char *input, size_t input_len,
                  struct sandbox **ret, bool *ret_retryable, struct err *err);
int sandbox_start(const struct sandbox_env *env, struct sandbox *sb, bool *ret_retryable, struct err *err);

/* A warm sandbox's job: place its input in /input, move the log to log_path
 * (the job's; the warm container's log was its own), remove the gate's
 * files and open the gate: the command runs. */
int sandbox_adopt(struct sandbox *sb, const char *input, size_t input_len, const char *log_path,
                  struct err *err);
/* A warm sandbox's gate still waits: false once its process ended (killed
 * from outside, out of memory) and it can serve no job. */
bool sandbox_waiting(const struct sandbox *sb);

/* Wait for the container's end, for timeout_ms of its running (an attached
 * run's from when its container ran) or until cancel_fd (as pidref_wait):
 * 0 with *ret how it ended (WAIT_TIMEOUT, WAIT_CANCELLED: it may still run,
 * sandbox_kill_init() it).  -1 with err when the runtime failed (before
 * the container ran: *ret_retryable) or the wait itself failed.  Sets an
 * attached run's create_ms. */
int sandbox_wait(const struct sandbox_env *env, struct sandbox *sb, int64_t timeout_ms, int cancel_fd,
                 struct proc_exit *ret, bool *ret_retryable, struct err *err);

/* Stop the log pump (after the container's end); *ret_truncated says
 * whether output was dropped.  Idempotent. */
void sandbox_stop_log(struct sandbox *sb, bool *ret_truncated);

/* Kill and reap the init if still ours, delete the container (retried;
 * an attached run's is gone already), stop the log, unmount and remove the
 * workspace, remove the run's cgroup, free.  true when the
 * container is gone (its ids may be reused); false leaves them to the
 * collector, which removes the container later.  NULL: true. */
bool sandbox_destroy(const struct sandbox_env *env, struct sandbox *sb);

/* Kill the container and reap what is ours.  Detached: the init (SIGKILL,
 * its pid namespace goes with it), through the runtime only when the pidref
 * cannot.  Attached: through the runtime, whose process then ends; killed
 * itself only when it does not. */
void sandbox_kill_init(const struct sandbox_env *env, struct sandbox *sb);

#endif
