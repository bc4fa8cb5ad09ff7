/* oci.h - builds a job's OCI runtime config.json from a template in
 * TEMPLATES_DIR (default.json), the plugin's manifest and the job.
 * Pure: no files are touched except reading the template and writing the
 * bundle.  Any thread. */
#ifndef EDGECD_OCI_H
#define EDGECD_OCI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/config.h"
#include "base/error.h"
#include "manifest.h"
#include "seccomp.h"

struct oci_job {
        const char *container_id;   /* also the hostname */
        const struct manifest *manifest;
        struct limits limits;       /* effective: manifest values, else config defaults */
        const char *input_dir;      /* host path bound read-only at /input */
        const char *output_dir;     /* host path bound writable at /output */
        int64_t uid, gid;
        const char *cgroups_path;   /* "<cgroup_parent>/<container_id>" */
        /* A warm container's: the host path of the gate binary
         * (STATE_DIR/warm-gate, sandbox_install_gate()), bound read-only
         * (exec allowed) at OCI_GATE_BIN, and the process is
         * `OCI_GATE_BIN OCI_GATE_FIFO COMMAND...`; NULL: the command. */
        const char *gate_path;
        /* The template's files as oci_job_limits() read the limits from
         * them: built and rendered from that same version while it is
         * cached (the files not stat'ed again), else from the files as they
         * stand.  NULL: as they stand. */
        const struct oci_template_stamp *tmpl;
};

/* A warm container's gate in its input directory: the mount point of the
 * gate binary and the FIFO it waits on (sandbox.c makes them, and removes
 * them when the job's input is placed); then where they are, inside. */
#define OCI_GATE_BIN_NAME ".edgecd-gate"
#define OCI_GATE_FIFO_NAME ".edgecd-go"
#define OCI_GATE_BIN "/input/" OCI_GATE_BIN_NAME
#define OCI_GATE_FIFO "/input/" OCI_GATE_FIFO_NAME

/* Build config.json.  What the template says is kept unless the job decides
 * it; the job always decides: process.args/env/user/cwd, root (the plugin
 * rootfs, readonly), the /input and /output mounts, linux.resources
 * (memory limit and swap equal to it, cpu quota/period, pids), namespaces
 * (pid, mount, ipc, uts, network: new and empty), capabilities (every set
 * empty), noNewPrivileges, rlimits (RLIMIT_CORE 0, RLIMIT_NOFILE),
 * maskedPaths/readonlyPaths (the template's plus the `runc spec` defaults
 * it lacks), linux.seccomp and cgroupsPath.  process.env is
 * PATH=/bin:/usr/bin, then the manifest's env, then EDGECD_INPUT and
 * EDGECD_OUTPUT; a later entry replaces an earlier one with the same key.
 * process.oomScoreAdj is 1000.  The template is TEMPLATES_DIR/NAME.json with
 * NAME the manifest's oci_template (default "default"; a NAME with '/' or
 * ".." is ERR_INVALID); bad JSON is ERR_INVALID "template `PATH`:LINE:COL:
 * text".  New reference. */
int oci_build(const char *templates_dir, const struct oci_job *job,
              const struct seccomp_policy *policy, json_t **ret, struct err *err);

/* Load TEMPLATES_DIR/NAME.json and check what it says: only the pseudo
 * filesystems (proc, sysfs, devpts, mqueue at their places, tmpfs
 * anywhere) with restricting options, no hooks, devices, sysctls,
 * scheduler, personality, rlimits that raise priority...  ERR_INVALID
 * "template `PATH`: /JSON/POINTER: why".  oci_build() checks the same. */
int oci_check_template(const char *templates_dir, const char *name, struct err *err);

/* The limits a job of m runs with: oci_effective_limits() under the
 * ceilings its template sets in linux.resources (memory.limit, cpu.quota /
 * cpu.period, pids.limit): a template lowers limits, never raises them.
 * ERR_INVALID when the template cannot be used.  And pids at most max_pids
 * (the config's; 0: no ceiling): the host's pid space is every job's and
 * the host's own, and a manifest may ask for more than the host has.
 * With ret_stamp: the template's files as they were when read (see struct
 * oci_job's tmpl and oci_template_same()). */
int oci_job_limits(const char *templates_dir, const struct manifest *m, const struct limits *defaults,
                   int64_t max_pids, struct limits *ret, struct oci_template_stamp *ret_stamp, struct err *err);

/* At load: m's template (oci_template, default "default") exists and is
 * valid, m's resources stay under its ceilings, and m's extra syscalls are
 * in its own allowlist TEMPLATES_DIR/NAME.seccomp.allow when it has one (a
 * template's list can only take system calls away from seccomp.allow).
 * ERR_INVALID "oci_template: ...", "resources: ..." or "syscalls: ...". */
int oci_check_manifest(const char *templates_dir, const struct manifest *m, struct err *err);

/* What a manifest's template files (NAME.json, NAME.seccomp.allow) are
 * now: a container built under them keeps this, and is of the template as
 * it stands while oci_template_same() says so (a template edited since: a
 * cold run would get other limits, mounts or system calls). */
struct oci_template_stamp {
        struct stat st, ast;
        bool there;
};
void oci_template_stamp(const char *templates_dir, const struct manifest *m, struct oci_template_stamp *ret);
bool oci_template_same(const char *templates_dir, const struct manifest *m, const struct oci_template_stamp *s);

/* Forget the templates oci_build() keeps parsed and checked (they are
 * reloaded when their file changes anyway); at exit. */
void oci_template_cache_clear(void);

/* Write config into bundle_dir/config.json (mode 0600; not fsynced: a
 * bundle does not outlive a crash). */
int oci_write_bundle(const char *bundle_dir, const json_t *config, struct err *err);

/* oci_build()'s config.json as compact text, byte for byte what
 * json_dumps(config, JSON_COMPACT) gives, in *ret (NUL-terminated, *ret_len
 * bytes, the caller's).  The first job of a kind (manifest, template files
 * as they stand, limits, policy, gate or none) is built so; its text is
 * kept with the job's own values cut out, and the next job of that kind is
 * a copy with its values put in. */
int oci_render(const char *templates_dir, const struct oci_job *job, const struct seccomp_policy *policy,
               char **ret, size_t *ret_len, struct err *err);

/* How many renderings were copies (for the tests). */
uint64_t oci_render_copies(void);

/* oci_render() into bundle_dir/config.json, as oci_write_bundle() writes. */
int oci_write_config(const char *templates_dir, const char *bundle_dir, const struct oci_job *job,
                     const struct seccomp_policy *policy, struct err *err);

/* Effective limits: each manifest value, or the default where it is 0. */
struct limits oci_effective_limits(const struct manifest *m, const struct limits *defaults);

#endif
