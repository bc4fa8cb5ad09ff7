/* seccomp.h - the default-deny syscall allowlist, kept as data in
 * TEMPLATES_DIR/seccomp.allow (one syscall name per line, '#' comments).
 * Every name is checked with libseccomp's seccomp_syscall_resolve_name() at
 * load, so a typo is a startup error naming the file and line, not a
 * container that dies mysteriously.  The policy is immutable once loaded and
 * shared read-only by all worker threads. */
#ifndef EDGECD_SECCOMP_H
#define EDGECD_SECCOMP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

struct seccomp_policy;

int seccomp_policy_load(const char *path, struct seccomp_policy **ret, struct err *err);
void seccomp_policy_free(struct seccomp_policy *p);
size_t seccomp_policy_count(const struct seccomp_policy *p);
/* Unique among the policies this process has loaded (0: p NULL). */
uint64_t seccomp_policy_id(const struct seccomp_policy *p);
/* Is name in p's list?  (p NULL: no.) */
bool seccomp_policy_has(const struct seccomp_policy *p, const char *name);

/* Check names (a manifest's extra syscalls); ERR_INVALID naming the first
 * unknown one, or one that seccomp_never_allowed() refuses. */
int seccomp_check_names(char *const *names, struct err *err);

/* The floor under every plugin: system calls a manifest's `syscalls` may
 * never add, because each one lets a process leave or weaken its sandbox
 * (namespaces, mounts, kernel modules and keys, bpf, io_uring, clock and
 * host state, 32-bit escape hatches).  NULL when name may be added, else a
 * short reason. */
const char *seccomp_never_allowed(const char *name);

/* The OCI `linux.seccomp` object: defaultAction SCMP_ACT_KILL_PROCESS (so a
 * violation is a SIGSYS the daemon can name), the native architectures, and
 * one SCMP_ACT_ALLOW rule with the allowlist plus `extra` (may be NULL),
 * sorted and without duplicates, keeping only the names `within` lists
 * when it is not NULL (a template's own, narrower list: it can take
 * system calls away, never add them).  Three rules besides:
 *  - `clone`, when listed, is allowed only without namespace flags
 *    (CLONE_NEWUSER and friends get SIGSYS, SCMP_ACT_TRAP), else
 *    unshare's ban could be bypassed with clone(CLONE_NEWUSER).  Written so
 *    that it means the same whichever of value and valueTwo a runtime takes
 *    for the mask (seccomp.c);
 *  - `socket`, when listed, is allowed for every family but AF_VSOCK (not
 *    namespaced: it would reach the hypervisor of a VM host);
 *  - `clone3`, unless listed, fails with ENOSYS (Docker's answer) instead of
 *    killing: glibc >= 2.34 tries clone3 for every thread and posix_spawn
 *    and falls back to clone on ENOSYS.
 * New reference. */
json_t *seccomp_policy_oci(const struct seccomp_policy *p, const struct seccomp_policy *within,
                           char *const *extra);

#endif
