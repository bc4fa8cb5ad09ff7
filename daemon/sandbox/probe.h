/* probe.h - choosing the runtime that runs jobs, by trying each one.
 *
 * At start the daemon tries the configured runtime (youki by default), then
 * crun, then runc.  A runtime is used only when it runs the sandbox probe
 * (inside/sandbox-probe.c) in a container built exactly as a job's is - the
 * operator's template, the seccomp policy, a job identity from the pool,
 * the limits, a workspace - and the probe's report shows the sandbox holds:
 * not root, no capability, no_new_privs and a seccomp filter, only `lo`, a
 * forbidden call killed, clone() with a namespace flag killed, AF_VSOCK
 * killed, a plain fork working.  A runtime that is absent, cannot run a
 * container here, or runs one whose sandbox leaks is passed over with the
 * reason, and the log says which was chosen. */
#ifndef EDGECD_PROBE_H
#define EDGECD_PROBE_H

#include <stdint.h>

#include "base/config.h"
#include "base/error.h"
#include "idpool.h"
#include "registry/seccomp.h"
#include "runtime/runtime.h"

struct probe_env {
        const struct config *cfg;             /* runtime, state_dir, templates_dir, cgroup_parent */
        const struct seccomp_policy *policy;
        struct idpool *ids;                   /* the probe takes a job identity too */
};

/* The runtime to use, after probing the candidates in order.  report(msg,
 * ctx) hears one line per candidate passed over and one for the choice.
 * ERR_RUNTIME "no usable OCI runtime: youki: not found; crun: ...; runc: ..."
 * when none works. */
int probe_select_runtime(const struct probe_env *pe, void (*report)(const char *msg, void *ctx),
                         void *ctx, struct runtime **ret, struct err *err);

/* The path of a runtime named `name` (PATH, then the usual sbin and bin
 * directories), or of the file `name` when it holds a '/'; NULL when there
 * is none.  Caller frees. */
char *probe_find_binary(const char *name);

#endif
