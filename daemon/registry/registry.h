/* registry.h - the loaded plugins: every PLUGINS_DIR/<dir>/plugin.yaml.
 *
 * DESIGN: the registry owns one reference to each manifest.  Lookups return a
 * new reference the caller must manifest_unref().  A broken manifest never
 * stops the daemon: it is recorded with its error and listed as broken.  A
 * mutex guards the tables so a later hot reload (inotify) can swap entries
 * while HTTP and worker threads look them up. */
#ifndef EDGECD_REGISTRY_H
#define EDGECD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/error.h"
#include "manifest.h"

/* The default cap on loaded manifests (config max_algorithms). */
#define REGISTRY_MAX_PLUGINS 1000

struct registry;

/* What loading a plugin needs besides its directory; any member may be
 * NULL (tests, --check-config): then manifests are not checked against
 * templates (oci_check_manifest()), or image plugins are read but not
 * unpacked (their rootfs stays NULL). */
struct registry_env {
        const char *templates_dir;
        const char *images_dir;    /* the unpacked image cache (image.h) */
        const char *umoci;         /* its absolute path; NULL: not installed */
        int64_t max_image_bytes;   /* of the images dir's disk an unpack may take (0: no limit) */
        /* Called before an image is unpacked (it may take minutes): the
         * plugin's manifest path and the image's digest.  May be NULL. */
        void (*unpacking)(const char *path, const char *digest, void *ctx);
        void *unpacking_ctx;
};

/* Scan dir, loading at most max_plugins manifests (0: REGISTRY_MAX_PLUGINS;
 * those past it are listed broken, with the reason).  Each broken plugin is kept as a broken entry (and reported
 * through report(msg, ctx) if given).  A missing or unreadable dir is
 * reported too and gives an empty registry: the daemon still starts, and a
 * rescan picks the plugins up once the dir is there.  env (may be NULL)
 * says how manifests are checked and images unpacked; it is copied.  Never fails today; err
 * is kept for callers that may. */
int registry_load(const char *dir, const struct registry_env *env, size_t max_plugins,
                  void (*report)(const char *msg, void *ctx), void *ctx,
                  struct registry **ret, struct err *err);
void registry_free(struct registry *r);

/* The digests of the image plugins loaded ("sha256:HEX"), NULL-terminated
 * (caller frees with strv_free). */
char **registry_image_digests(struct registry *r);

/* The largest max_input_bytes of the plugins loaded (0: none sets one). */
int64_t registry_max_input_bytes(struct registry *r);

/* A plugin directory counts as written once nothing in it (ctime) has
 * changed for this long; at most this many entries of its tree are looked
 * at. */
#define REGISTRY_SETTLE_MS 1000
#define REGISTRY_SETTLE_ENTRIES 20000

struct registry_changes {
        size_t added, changed, removed;   /* manifests, by name and version */
        size_t broken;                    /* broken entries the previous scan did not have */
        size_t pending;                   /* plugins still being written: rescan later */
};

/* Rescan the directory registry_load() was given and swap the new tables in
 * atomically; lookups see either the old or the new set, never a mix.  Jobs
 * keep the manifest references they hold.  A plugin.yaml that is still the
 * same file, in the same directory, on the same rootfs, keeps its manifest
 * (and plugins loaded keep their places under max_algorithms).  Not forced
 * (the watch), a plugin new or changed is taken only once its directory
 * has settled (REGISTRY_SETTLE_MS; until then a changed one keeps its old
 * version while that is still on disk).  Forced (SIGHUP), every manifest is
 * read and checked anew, an unchanged one kept.  report() gets each broken
 * plugin (not forced: only those not already broken the same way), changed() each plugin added, changed or removed ("plugin added: NAME
 * VERSION (PATH)"), and *ret the counts.  On error (the dir itself cannot
 * be read) the old tables stay.  One thread at a time (main). */
int registry_reload(struct registry *r, bool force, void (*report)(const char *msg, void *ctx),
                    void (*changed)(const char *msg, void *ctx), void *ctx, struct registry_changes *ret,
                    struct err *err);

/* The version of name that `version` asks for: NULL, the newest (the
 * highest release; pre-releases count only when name has no release); a
 * version, exactly that one (build metadata ignored); a range ("^1.2",
 * "~1.2.3", ">=1.0.0 <2.0.0", "1.x", ...: semver.h), the newest in it, a
 * pre-release only when the range names it.  ERR_NOT_FOUND when there is
 * none (the message says whether the name or the version), ERR_INVALID
 * when `version` is neither a version nor a range.  Returns a new reference
 * in *ret. */
int registry_find(struct registry *r, const char *name, const char *version,
                  struct manifest **ret, struct err *err);

/* JSON for GET /v1/algorithms: {"algorithms":[...], "broken":[{"path","error"}]}.
 * Each algorithm: name, description, versions (newest first), latest, and for
 * the latest its input_schema, resources, timeout_seconds, max_concurrent. */
json_t *registry_list_json(struct registry *r);
/* JSON for GET /v1/algorithms/{name}; NULL when unknown. */
json_t *registry_algorithm_json(struct registry *r, const char *name);

/* fn for every loaded manifest, under the registry's lock (fn may take a
 * reference; it must not call the registry). */
void registry_foreach(struct registry *r, void (*fn)(struct manifest *m, void *ctx), void *ctx);

size_t registry_count(struct registry *r);         /* loaded manifests */
size_t registry_broken_count(struct registry *r);

/* Why `name` (at `version`, which may be NULL) is not loaded when a broken
 * plugin's manifest names it: that entry's error ("PATH:LINE:COL: key:
 * what"), newly allocated, *ret_exact true when its version is `version`
 * (else the first broken one of that name, *ret_exact false).  NULL when
 * no broken manifest names it (*ret_exact untouched). */
char *registry_broken_reason(struct registry *r, const char *name, const char *version, bool *ret_exact);

#endif
