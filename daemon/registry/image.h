/* image.h - a plugin shipped as an OCI image layout (oci-layout,
 * index.json, blobs/sha256/...) as docker, buildah, podman or umoci write
 * it, instead of a rootfs directory.
 *
 * Reading a layout (image_read) is plain file reads, every blob checked
 * against its sha256 digest: the manifest the tag names, then its config,
 * whose Entrypoint, Cmd, Env and WorkingDir become the plugin's defaults.
 * Unpacking (image_unpack) is umoci's (Debian's `umoci` package): once per
 * image digest into a cache, so a restart or a second plugin of the same
 * image finds it done.  Any thread; one unpack of a digest at a time is
 * the caller's to keep (the registry scans on one thread). */
#ifndef EDGECD_IMAGE_H
#define EDGECD_IMAGE_H

#include <stdint.h>

#include <stdbool.h>

#include "base/error.h"

#define IMAGE_BLOB_MAX ((size_t)1 << 20)   /* index, manifest, config: larger is refused */
#define IMAGE_UNPACK_TIMEOUT_MS 300000
/* Files an unpack may make: a rootfs of more is not an algorithm's, and a
 * layer of empty files (512 bytes of tar each, less gzipped) would empty
 * the state filesystem's inodes. */
#define IMAGE_UNPACK_MAX_FILES 1000000
#define IMAGE_UNPACK_WATCH_MS 100

struct image_config {
        char *digest;        /* the image manifest's, "sha256:<64 hex>" */
        char *tag;           /* the ref name it was found by */
        char **entrypoint;   /* NULL-terminated, never NULL (may be empty) */
        char **cmd;          /* likewise */
        char **env;          /* "KEY=VALUE", likewise */
        char *cwd;           /* WorkingDir, or NULL */
};

/* Read the layout at dir: the manifest tagged `tag` (annotation
 * org.opencontainers.image.ref.name), or with tag NULL the only manifest
 * there is (it must have a tag: umoci unpacks by tag).  ERR_INVALID with
 * the reason (no such tag, several manifests and no tag named, a digest
 * that does not match its blob, a blob too large, bad JSON...); ERR_NOT_FOUND
 * when dir is not a layout. */
int image_read(const char *dir, const char *tag, struct image_config *ret, struct err *err);
void image_config_done(struct image_config *c);

/* The image's unpacked root filesystem, CACHE_DIR/<digest hex>/rootfs
 * (caller frees): unpacked with `UMOCI unpack --image DIR:TAG` first when
 * the cache lacks it, into a temporary directory renamed into place, so
 * a crash never leaves half an image that looks whole.  ERR_NOT_FOUND when
 * umoci is not installed, ERR_RUNTIME when it fails (its words), or when it
 * takes more than max_bytes (0: no limit) or IMAGE_UNPACK_MAX_FILES inodes
 * (watched while umoci runs, measured when it is done): a layer is
 * compressed, and a sparse tar entry of a few hundred bytes unpacks into
 * as many gigabytes of zeros as it says (umoci writes them), so a small
 * layout could fill the disk the store and the logs are on. */
/* Is the image of `digest` unpacked in cache_dir already (image_unpack()
 * would not run umoci)? */
bool image_cached(const char *digest, const char *cache_dir);
int image_unpack(const char *umoci, const char *dir, const char *tag, const char *digest, const char *cache_dir,
                 int64_t max_bytes,
                 char **ret_rootfs, struct err *err);

/* Remove what the cache holds but the digests in keep (NULL-terminated,
 * "sha256:HEX"), and temporary directories a crash left.  At start, before
 * any job runs. */
void image_cache_prune(const char *cache_dir, char *const *keep);
/* Remove digest's unpacked image from cache_dir (nothing if not there). */
void image_cache_drop(const char *cache_dir, const char *digest);

#endif
