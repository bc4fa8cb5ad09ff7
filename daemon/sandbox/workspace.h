/* workspace.h - one run's directory under STATE_DIR/workspaces/<run-id>:
 *
 *   input/input.json   the accepted parameters (mode 0644), bind-mounted
 *                      read-only at /input
 *   output/            a tmpfs of disk_mb owned by uid:gid, bind-mounted
 *                      writable at /output; the size cap is the tmpfs size
 *   bundle/config.json the OCI bundle (the rootfs is the plugin's own,
 *                      referenced by absolute path)
 *
 * The root is a tmpfs of the daemon's own (workspace_root_mount).
 * Used by one worker thread at a time.  workspace_destroy() undoes all of it
 * (unmount, remove) whatever state creation reached. */
#ifndef EDGECD_WORKSPACE_H
#define EDGECD_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct workspace {
        char *dir;
        char *input_dir;
        char *output_dir;
        char *bundle_dir;
        bool output_mounted;
        bool input_dropped;   /* input.json is gone (workspace_drop_input) */
};

/* Make the workspace for run_id under root (STATE_DIR/workspaces), with
 * input (the parameters' JSON text, len bytes) as input.json; input NULL
 * leaves input/ empty for workspace_place_input() (a warm container's).
 * On error everything made so far is removed again. */
int workspace_create(const char *root, const char *run_id, const char *input, size_t len,
                     int64_t disk_mb, int64_t uid, int64_t gid,
                     struct workspace **ret, struct err *err);

/* Write input.json into input/ (which a created container already sees:
 * /input is a bind mount of the directory). */
int workspace_place_input(struct workspace *ws, const char *input, size_t len, struct err *err);

/* Remove input.json (the run is over; it is in memory).  Accepts NULL. */
void workspace_drop_input(struct workspace *ws);

/* Unmount and remove.  keep_bundle leaves bundle/ in place (debug).
 * Accepts NULL.  Frees ws even when removal fails (err says what is left). */
int workspace_destroy(struct workspace *ws, bool keep_bundle, struct err *err);

/* Remove the workspaces under root for which keep(run_id, ctx) is false
 * (keep NULL: all): unmount what is mounted below them, remove the
 * directories.  Leftovers of runs that ended without cleaning up, at start
 * and by the collector.  *ret_removed (may be NULL) counts them. */
int workspace_sweep(const char *root, bool (*keep)(const char *run_id, void *ctx), void *ctx,
                    size_t *ret_removed, struct err *err);

/* The workspaces' root: made, swept of what a killed daemon left, and
 * given a tmpfs of its own of size_bytes (replacing one a killed daemon
 * left mounted there).  Workspaces live in memory: creating and removing a
 * run's files and directories there costs none of a disk filesystem's
 * inode allocation, journal or discards, and outputs already do. */
int workspace_root_mount(const char *root, int64_t size_bytes, struct err *err);

/* Unmount the tmpfs a killed daemon left on the root (each one of ours on
 * top of it), not an operator's; a root that is not there is fine.  Done
 * again by workspace_root_mount(), and before the daemon leaves the mount
 * namespace it was started in (mountns.h), where a daemon that had none
 * of its own left them. */
int workspace_root_clear(const char *root, struct err *err);

/* Unmount the root's tmpfs (and all below it), if it is one. */
int workspace_root_unmount(const char *root, struct err *err);

#endif
