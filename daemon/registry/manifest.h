/* manifest.h - one plugin's plugin.yaml, parsed with libyaml.
 *
 * A manifest is immutable once loaded and reference-counted: the registry
 * holds one reference, and every job that runs the plugin holds another, so
 * a hot reload can replace it while jobs still run the old one.
 * manifest_ref/unref are atomic and may be called from any thread. */
#ifndef EDGECD_MANIFEST_H
#define EDGECD_MANIFEST_H

#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/config.h"
#include "base/error.h"
#include "base/semver.h"
#include "schema.h"

#define MANIFEST_WARM_MAX 64

struct manifest {
        int refs;

        char *path;               /* absolute path of plugin.yaml */
        struct stat dir_st;       /* dir when path was read (all 0: unknown): a copy renamed over it is another */
        int64_t missing_since_ms; /* atomic; the scheduler's: when a job first found its files missing (0: not) */
        int64_t missing_seen_ms;  /* atomic; the scheduler's: when a job last found them missing (0: not) */
        char *dir;                /* absolute plugin directory */
        char *rootfs;             /* absolute path of the rootfs (default DIR/rootfs), resolved;
                                   * an image plugin's is set once unpacked (NULL before) */
        char *rootfs_link;        /* the same as written (DIR/rootfs): a rescan sees it re-pointed */
        /* An image plugin (image.h): the layout directory (resolved), the
         * tag as written (NULL: the layout's only one), the tag found and
         * the image manifest's digest.  NULL for a rootfs plugin. */
        char *image, *image_ref, *image_tag, *image_digest;
        char *image_link;         /* the layout as written (DIR/image): a rescan sees it re-pointed */
        char *cwd;                /* the process's working directory: the image's WorkingDir; NULL: "/" */

        char *name;               /* [a-z0-9_-]{1,64}, the algorithm name */
        char *version;            /* as written */
        struct semver semver;
        char *description;
        char **command;           /* argv inside the container, NULL-terminated, >= 1 */
        char **env;               /* "KEY=VALUE", NULL-terminated, never NULL, may be empty */
        json_t *input_schema;     /* JSON Schema subset (schema.h), owned */
        struct schema_index *input_index;   /* its lookup tables, owned; NULL while not checked */

        /* 0 (or 0.0) means "not set: use the config default". */
        struct limits resources;  /* cpu_cores, memory_mb, pids, disk_mb; its
                                   * timeout_seconds mirrors the one below */
        int64_t timeout_seconds;
        int64_t max_concurrent;   /* 0 = no per-plugin limit */
        bool rerun;               /* run again once when a daemon crash interrupted it (default true) */
        int64_t warm;             /* containers kept created ahead (warmpool.h); 0 = none */
        int64_t max_input_bytes;  /* parameters accepted, at most; 0: the config's max_body_bytes */
        int64_t max_result_bytes; /* result.json accepted, at most; 0: the config's max_result_bytes */

        char *oci_template;       /* template name, file TEMPLATES_DIR/NAME.json; default "default" */
        char **extra_syscalls;    /* added to the seccomp allowlist; names checked at load;
                                   * never NULL, may be empty */
        struct {
                unsigned version, resources, syscalls, oci_template, command, image, max_input_bytes,
                        max_result_bytes;   /* 0: not in the file */
        } lines;                  /* of these keys: checks made after the load name them */
};

/* The line of key (version, resources, syscalls, oci_template, command,
 * image, max_input_bytes, max_result_bytes) in m's file; 0 when not there or not
 * one of those. */
unsigned manifest_key_line(const struct manifest *m, const char *key);

/* Is m's command[0] an executable file (or a link) in m->rootfs?  For an
 * image plugin, checked once it is unpacked.  ERR_INVALID "command[0]:
 * ..." with err->field "command". */
int manifest_check_command(const struct manifest *m, struct err *err);

/* Parse path (a plugin.yaml).  On error, err->msg reads
 * "PATH:LINE:COL: key: what is wrong" and *ret is untouched.  All problems of
 * the file are collected into the message, separated by "; ". */
int manifest_load(const char *path, struct manifest **ret, struct err *err);

/* The top-level `name` and `version` strings of the manifest at path, as
 * written, whether or not the manifest is valid (a broken plugin's jobs
 * are told why it is not loaded): 0 with *ret_name set (*ret_version may
 * be NULL), -1 when the file cannot be parsed or has no string `name`.
 * Caller frees both. */
int manifest_peek(const char *path, char **ret_name, char **ret_version);

/* A plugin's limits on its parameters and its result: its own, else the
 * config's defaults, never above the config's ceilings. */
int64_t manifest_input_limit(const struct manifest *m, const struct config *cfg);
int64_t manifest_result_limit(const struct manifest *m, const struct config *cfg);

struct manifest *manifest_ref(struct manifest *m);
void manifest_unref(struct manifest *m);   /* NULL is fine */
/* Whether anyone but the caller (one reference) holds m. */
bool manifest_shared(const struct manifest *m);

#endif
