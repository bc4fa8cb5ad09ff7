/* workspace.h - one job's directory under STATE_DIR/workspaces/<job-id>:
 *
 *   input/input.json   the accepted parameters (mode 0644), bind-mounted
 *                      read-only at /input
 *   output/            a tmpfs of disk_mb owned by uid:gid, bind-mounted
 *                      writable at /output; the size cap is the tmpfs size
 *   bundle/config.json the OCI bundle (the rootfs is the plugin's own,
 *                      referenced by absolute path)
 *
 * Used by one worker thread at a time.  workspace_destroy() undoes all of it
 * (unmount, remove) whatever state creation reached. */
#ifndef EDGECD_WORKSPACE_H
#define EDGECD_WORKSPACE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

struct workspace {
        char *dir;
        char *input_dir;
        char *output_dir;
        char *bundle_dir;
        bool output_mounted;
};

/* Make the workspace for job_id under root (STATE_DIR/workspaces).  On error
 * everything made so far is removed again. */
int workspace_create(const char *root, const char *job_id, const json_t *parameters,
                     int64_t disk_mb, int64_t uid, int64_t gid,
                     struct workspace **ret, struct err *err);

/* Unmount and remove.  keep_bundle leaves bundle/ in place (debug).
 * Accepts NULL.  Frees ws even when removal fails (err says what is left). */
int workspace_destroy(struct workspace *ws, bool keep_bundle, struct err *err);

/* Remove leftovers of a previous run under root (unmount output tmpfs
 * mounts, remove directories).  Called at startup. */
int workspace_sweep(const char *root, struct err *err);

#endif
