/* image.c - OCI image layouts as plugins: read and checked here, unpacked
 * by umoci into a cache by digest. */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <search.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <jansson.h>
#include <nettle/sha2.h>

#include "base/log.h"
#include "base/util.h"
#include "runtime/spawn.h"

#define REF_NAME "org.opencontainers.image.ref.name"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

void image_config_done(struct image_config *c)
{
        free(c->digest);
        free(c->tag);
        strv_free(c->entrypoint);
        strv_free(c->cmd);
        strv_free(c->env);
        free(c->cwd);
        *c = (struct image_config){ 0 };
}

/* "sha256:<64 lower-case hex>": the hex part, else NULL. */
static const char *digest_hex(const char *digest)
{
        if (!digest || strncmp(digest, "sha256:", 7))
                return NULL;
        const char *h = digest + 7;
        if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
                return NULL;
        return h;
}

/* A file of the layout at dir/rel, opened without following a link
 * anywhere on the way (a layout's files are its own, never the host's),
 * regular and not too large; *ret_fd open for reading. */
static int open_in_layout(const char *dir, const char *rel, const char *what, int *ret_fd, struct stat *ret_st,
                          struct err *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return err_errno(err, ERR_IO, "%s: open the layout", what);
        struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
        if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
                /* Before openat2: each directory on the way, then the file. */
                _cleanup_free_ char *copy = xstrdup(rel);
                int cur = dup(dfd);
                char *save = NULL;
                for (char *part = strtok_r(copy, "/", &save); part && cur >= 0;) {
                        char *next = strtok_r(NULL, "/", &save);
                        int nfd = openat(cur, part, (next ? O_DIRECTORY : O_NONBLOCK | O_NOCTTY) | O_RDONLY | O_NOFOLLOW |
                                                    O_CLOEXEC);
                        int e = errno;
                        close(cur);
                        errno = e;
                        cur = nfd;
                        part = next;
                }
                fd = cur;
        }
        if (fd < 0)
                return err_set(err, errno == ENOENT ? ERR_INVALID : ERR_IO, 0, "%s: %s%s", what,
                               errno == ELOOP || errno == EXDEV ? "a symbolic link on the way to " : "",
                               errno == ELOOP || errno == EXDEV ? rel : strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return err_set(err, ERR_INVALID, 0, "%s: `%s` is not a regular file", what, rel);
        }
        *ret_fd = fd;
        if (ret_st)
                *ret_st = st;
        return 0;
}

/* A JSON file of the layout, parsed; an object. */
static int read_json(const char *dir, const char *rel, const char *what, const char *want_hex, json_t **ret,
                     struct err *err)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        if (open_in_layout(dir, rel, what, &fd, &st, err) < 0)
                return -1;
        if ((uint64_t)st.st_size > IMAGE_BLOB_MAX)
                return err_set(err, ERR_INVALID, 0, "%s: %lld bytes, over the limit of %zu", what,
                               (long long)st.st_size, IMAGE_BLOB_MAX);
        size_t len = (size_t)st.st_size;
        _cleanup_free_ char *data = xmalloc(len + 1);
        ssize_t got = read_full(fd, data, len);
        if (got < 0)
                return err_errno(err, ERR_IO, "%s: read", what);
        if ((size_t)got < len)
                return err_set(err, ERR_IO, 0, "%s: read %zd of its %zu bytes", what, got, len);
        if (want_hex) {
                /* A blob is named by its content's digest: one that does
                 * not match is corrupt or tampered with. */
                uint8_t d[SHA256_DIGEST_SIZE];
                struct sha256_ctx ctx;
                sha256_init(&ctx);
                sha256_update(&ctx, len, (const uint8_t *)data);
                sha256_digest(&ctx, sizeof d, d);
                char hex[2 * SHA256_DIGEST_SIZE + 1];
                for (size_t i = 0; i < sizeof d; i++)
                        snprintf(hex + 2 * i, 3, "%02x", d[i]);
                if (strcmp(hex, want_hex))
                        return err_set(err, ERR_INVALID, 0, "%s: the blob does not match its digest sha256:%s", what,
                                       want_hex);
        }
        /* Not jansson's words: they quote the text, and a layout is not
         * ours to quote into /readyz. */
        json_error_t jerr;
        json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return err_set(err, ERR_INVALID, 0, "%s: not valid JSON (line %d, column %d)", what, jerr.line,
                               jerr.column);
        if (!json_is_object(j)) {
                json_decref(j);
                return err_set(err, ERR_INVALID, 0, "%s: not a JSON object", what);
        }
        *ret = j;
        return 0;
}

static int read_blob(const char *dir, const char *digest, const char *what, json_t **ret, struct err *err)
{
        const char *hex = digest_hex(digest);
        if (!hex)
                return err_set(err, ERR_INVALID, 0, "%s: digest `%s` is not sha256:<64 hex digits>", what,
                               digest ? digest : "(none)");
        _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
        return read_json(dir, rel, what, hex, ret, err);
}

/* The pseudo filesystem the runtime mounts that an absolute path lies on,
 * or NULL.  A working directory there is never the image's own: with runc
 * before 1.1.12, /proc/self/fd/N was a descriptor the runtime leaked into
 * the container, and a process started there stood in the host's mount
 * tree (CVE-2024-21626).  Empty components are skipped ("//proc" is
 * "/proc"); `..` is refused by the caller. */
static const char *pseudo_fs_of(const char *path)
{
        static const char *const pseudo[] = { "proc", "sys", "dev" };
        const char *p = path + strspn(path, "/");
        size_t n = strcspn(p, "/");
        for (size_t i = 0; i < ARRAY_SIZE(pseudo); i++)
                if (n == strlen(pseudo[i]) && !strncmp(p, pseudo[i], n))
                        return pseudo[i];
        return NULL;
}

/* A JSON array of strings as a NULL-terminated vector (absent or null:
 * empty).  -1 when it is something else. */
static int strings(const json_t *a, char ***ret)
{
        /* Sized once: strv_push() counts the vector at each push, and a
         * config blob of 1 MiB holds some 200,000 strings. */
        *ret = xcalloc((json_is_array(a) ? json_array_size(a) : 0) + 1, sizeof **ret);
        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return -1;
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v))
                        return -1;
                (*ret)[i] = xstrdup(json_string_value(v));
        }
        return 0;
}

/* The index entry for tag (NULL: the only one). */
static int pick_manifest(const json_t *index, const char *tag, const json_t **ret, struct err *err)
{
        const json_t *list = json_object_get(index, "manifests");
        if (!json_is_array(list) || json_array_size(list) == 0)
                return err_set(err, ERR_INVALID, 0, "index.json lists no manifests");
        const json_t *found = NULL;
        size_t i, n = 0;
        json_t *e;
        json_array_foreach(list, i, e) {
                const char *ref = json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
                if (tag ? ref && !strcmp(ref, tag) : true) {
                        found = e;
                        n++;
                }
        }
        if (tag && !found)
                return err_set(err, ERR_INVALID, 0, "index.json has no manifest tagged `%s`", tag);
        if (!tag && n > 1)
                return err_set(err, ERR_INVALID, 0, "index.json lists %zu manifests: name one with image_tag", n);
        const char *mt = json_string_value(json_object_get(found, "mediaType"));
        if (mt && !strcmp(mt, MT_INDEX))
                return err_set(err, ERR_INVALID, 0, "the manifest is an index of several platforms: export the image "
                               "for one platform");
        if (mt && strcmp(mt, MT_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST))
                return err_set(err, ERR_INVALID, 0, "unsupported manifest media type `%s`", mt);
        if (!json_string_value(json_object_get(json_object_get(found, "annotations"), REF_NAME)))
                return err_set(err, ERR_INVALID, 0, "the manifest has no tag (%s): umoci unpacks by tag", REF_NAME);
        *ret = found;
        return 0;
}

int image_read(const char *dir, const char *tag, struct image_config *ret, struct err *err)
{
        _cleanup_close_ int mfd = -1;
        if (open_in_layout(dir, "oci-layout", "oci-layout", &mfd, NULL, err) < 0) {
                char why[ERR_MSG_MAX];
                snprintf(why, sizeof why, "%s", err->msg);
                return err_set(err, ERR_NOT_FOUND, 0, "`%s` is not an OCI image layout (%s)", dir, why);
        }
        _cleanup_json_ json_t *index = NULL, *manifest = NULL, *config = NULL;
        if (read_json(dir, "index.json", "index.json", NULL, &index, err) < 0)
                return -1;
        const json_t *entry = NULL;
        if (pick_manifest(index, tag, &entry, err) < 0)
                return -1;
        const char *digest = json_string_value(json_object_get(entry, "digest"));
        if (read_blob(dir, digest, "image manifest", &manifest, err) < 0)
                return -1;
        const char *cdigest = json_string_value(json_object_get(json_object_get(manifest, "config"), "digest"));
        if (read_blob(dir, cdigest, "image config", &config, err) < 0)
                return -1;
        /* umoci reads the layers: they too must be the layout's own files. */
        size_t li;
        json_t *layer;
        json_array_foreach(json_object_get(manifest, "layers"), li, layer) {
                const char *hex = digest_hex(json_string_value(json_object_get(layer, "digest")));
                if (!hex)
                        return err_set(err, ERR_INVALID, 0, "image manifest: layer %zu has no sha256 digest", li);
                _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
                _cleanup_free_ char *what = xasprintf("layer %zu", li);
                _cleanup_close_ int lfd = -1;
                if (open_in_layout(dir, rel, what, &lfd, NULL, err) < 0)
                        return -1;
        }

        struct image_config c = { 0 };
        const json_t *cc = json_object_get(config, "config");
        const char *cwd = json_string_value(json_object_get(cc, "WorkingDir"));
        c.digest = xstrdup(digest);
        c.tag = xstrdup(json_string_value(json_object_get(json_object_get(entry, "annotations"), REF_NAME)));
        c.cwd = cwd && *cwd ? xstrdup(cwd) : NULL;
        if (strings(json_object_get(cc, "Entrypoint"), &c.entrypoint) < 0 ||
            strings(json_object_get(cc, "Cmd"), &c.cmd) < 0 || strings(json_object_get(cc, "Env"), &c.env) < 0) {
                image_config_done(&c);
                return err_set(err, ERR_INVALID, 0, "image config: Entrypoint, Cmd and Env must be arrays of strings");
        }
        if (c.cwd && c.cwd[0] != '/') {
                image_config_done(&c);
                return err_set(err, ERR_INVALID, 0, "image config: WorkingDir `%s` is not an absolute path", cwd);
        }
        if (c.cwd && path_has_dotdot(c.cwd)) {
                image_config_done(&c);
                return err_set(err, ERR_INVALID, 0, "image config: WorkingDir `%s` has a `..`", cwd);
        }
        const char *fs = c.cwd ? pseudo_fs_of(c.cwd) : NULL;
        if (fs) {
                image_config_done(&c);
                return err_set(err, ERR_INVALID, 0, "image config: WorkingDir `%s` is on /%s, which the runtime mounts "
                               "(a working directory there may reach the host's files)", cwd, fs);
        }
        *ret = c;
        return 0;
}

/* Did umoci unpack the manifest `digest` into bundle?  Its umoci.json
 * records the descriptors it walked, the manifest last. */
static int unpacked_digest_is(const char *bundle, const char *digest)
{
        _cleanup_free_ char *path = xasprintf("%s/umoci.json", bundle);
        _cleanup_json_ json_t *u = json_load_file(path, 0, NULL);
        json_t *walk = json_object_get(json_object_get(u, "from_descriptor_path"), "descriptor_walk");
        size_t n = json_array_size(walk);
        const char *last = n ? json_string_value(json_object_get(json_array_get(walk, n - 1), "digest")) : NULL;
        return last && !strcmp(last, digest) ? 0 : -1;
}

bool image_cached(const char *digest, const char *cache_dir)
{
        const char *hex = digest_hex(digest);
        if (!hex)
                return false;
        _cleanup_free_ char *rootfs = xasprintf("%s/%s/rootfs", cache_dir, hex);
        struct stat st;
        return stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode);
}

struct inode_key {
        dev_t dev;
        ino_t ino;
};

static int inode_cmp(const void *a, const void *b)
{
        const struct inode_key *x = a, *y = b;
        if (x->dev != y->dev)
                return x->dev < y->dev ? -1 : 1;
        return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* What the tree at path takes: bytes allocated (st_blocks) and inodes, a
 * file with several names counted once (a busybox image names one binary
 * hundreds of times).  A path that is not there yet takes nothing. */
static int tree_usage(const char *path, uint64_t *ret_bytes, uint64_t *ret_files, struct err *err)
{
        *ret_bytes = *ret_files = 0;
        char *const paths[] = { (char *)(uintptr_t)path, NULL };
        FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
        if (!fts)
                return err_errno(err, ERR_IO, "fts_open `%s`", path);
        void *seen = NULL;
        int ret = 0;
        FTSENT *e;
        errno = 0;
        while ((e = fts_read(fts))) {
                if (e->fts_info == FTS_DP)
                        continue;       /* a directory, after its contents: counted before them */
                if (e->fts_info == FTS_NS || e->fts_info == FTS_DNR || e->fts_info == FTS_ERR) {
                        /* Not there yet (the root), or removed since it
                         * was listed (umoci applies whiteouts, and
                         * replaces files, while it is watched). */
                        if (e->fts_errno == ENOENT)
                                continue;
                        errno = e->fts_errno;
                        ret = err_errno(err, ERR_IO, "read `%s`", e->fts_path);
                        break;
                }
                const struct stat *st = e->fts_statp;
                if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
                        struct inode_key *k = xmalloc(sizeof *k);
                        *k = (struct inode_key){ .dev = st->st_dev, .ino = st->st_ino };
                        struct inode_key **found = tsearch(k, &seen, inode_cmp);
                        if (!found)
                                abort();   /* out of memory, as xmalloc */
                        if (*found != k) {
                                free(k);
                                continue;
                        }
                }
                *ret_bytes += (uint64_t)st->st_blocks * 512;
                (*ret_files)++;
                errno = 0;
        }
        if (!ret && errno)
                ret = err_errno(err, ERR_IO, "walk `%s`", path);
        tdestroy(seen, free);
        fts_close(fts);
        return ret;
}

/* An unpack is held to max_bytes and IMAGE_UNPACK_MAX_FILES of its own.
 * Watched cheaply: the blocks free on the cache's filesystem when it
 * started less those free now, and the inodes in use now less those in
 * use then (not the free ones: XFS counts fewer free inodes as its free
 * blocks go), less what others were seen to write meanwhile.  That is
 * never less than the unpack's own (unless others free space), so only
 * past a limit is the tree itself measured: within it, the rest is
 * others' (the logs, the store, another unpack), and is not counted
 * again.  Its size at the end is measured too (space freed meanwhile
 * hides an unpack from the watch). */
struct unpack_watch {
        const char *dir, *tree;
        int64_t max_bytes;
        struct statvfs at;
        uint64_t others_bytes, others_files;
        uint64_t walked_bytes;   /* the filesystem's count when others_* were set */
};

static uint64_t less(uint64_t a, uint64_t b)
{
        return a > b ? a - b : 0;
}

static int over_limits(const struct unpack_watch *w, uint64_t bytes, uint64_t files, struct err *err)
{
        if (w->max_bytes > 0 && bytes > (uint64_t)w->max_bytes)
                return err_set(err, ERR_RUNTIME, 0, "the unpacked image took more than max_image_bytes (%lld bytes)",
                               (long long)w->max_bytes);
        if (files > IMAGE_UNPACK_MAX_FILES)
                return err_set(err, ERR_RUNTIME, 0, "the unpacked image made more than %d files",
                               IMAGE_UNPACK_MAX_FILES);
        return 0;
}

static int unpack_watch(void *ctx, struct err *err)
{
        struct unpack_watch *w = ctx;
        struct statvfs now;
        if (statvfs(w->dir, &now) < 0)
                return 0;   /* not known now: the time limit still holds */
        uint64_t bytes = less(w->at.f_bfree, now.f_bfree) * now.f_frsize;
        uint64_t files = less(now.f_files - now.f_ffree, w->at.f_files - w->at.f_ffree);
        if (bytes < w->walked_bytes) {
                /* Some of what others wrote is freed: how much is not
                 * known, and counting it still would let the unpack take
                 * that much more unseen.  Measured again when over. */
                w->others_bytes = w->others_files = w->walked_bytes = 0;
        }
        struct err e = ERR_INIT;
        if (over_limits(w, less(bytes, w->others_bytes), less(files, w->others_files), &e) == 0)
                return 0;
        uint64_t own_bytes, own_files;
        if (tree_usage(w->tree, &own_bytes, &own_files, &e) < 0)
                return over_limits(w, bytes, files, err);   /* cannot tell whose: all of it */
        w->others_bytes = less(bytes, own_bytes);
        w->others_files = less(files, own_files);
        w->walked_bytes = bytes;
        return over_limits(w, own_bytes, own_files, err);
}

int image_unpack(const char *umoci, const char *dir, const char *tag, const char *digest, const char *cache_dir,
                 int64_t max_bytes, char **ret_rootfs, struct err *err)
{
        const char *hex = digest_hex(digest);
        if (!hex)
                return err_set(err, ERR_INVALID, 0, "image digest `%s` is not sha256", digest);
        _cleanup_free_ char *final = xasprintf("%s/%s", cache_dir, hex);
        _cleanup_free_ char *rootfs = xasprintf("%s/rootfs", final);
        struct stat st;
        if (stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
                *ret_rootfs = TAKE_PTR(rootfs);
                return 0;
        }
        if (!umoci)
                return err_set(err, ERR_NOT_FOUND, 0, "umoci is not installed (apt-get install umoci): "
                               "an image plugin cannot be unpacked");
        if (cache_dir[0] != '/')   /* umoci runs in the layout */
                return err_set(err, ERR_INVALID, 0, "image cache `%s` is not an absolute path", cache_dir);
        if (mkdir_p(cache_dir, 0700, err) < 0)
                return err_wrap(err, "image cache");
        /* A directory left by an earlier attempt with the same name goes
         * first: umoci wants to create the bundle itself. */
        _cleanup_free_ char *tmp = xasprintf("%s/.tmp-%s-%d", cache_dir, hex, (int)getpid());
        struct err ignored = ERR_INIT;
        rm_rf(tmp, &ignored);
        /* umoci cuts --image at its first ':' (and refuses a layout path
         * holding one): the layout is named as ".", from inside it, so a
         * plugin directory such as "algo:v2" still unpacks. */
        _cleanup_free_ char *image = xasprintf("%s:%s", dir, tag);
        _cleanup_free_ char *here = xasprintf(".:%s", tag);
        _cleanup_free_ char *bin = xstrdup(umoci);
        char *argv[] = { bin, "unpack", "--image", here, tmp, NULL };
        char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        struct unpack_watch w = { .dir = cache_dir, .tree = tmp, .max_bytes = max_bytes };
        if (statvfs(cache_dir, &w.at) < 0)
                return err_errno(err, ERR_IO, "image cache: statvfs `%s`", cache_dir);
        struct spawn_request req = { .argv = argv, .envp = envp, .out_fd = -1,
                                     .timeout_ms = IMAGE_UNPACK_TIMEOUT_MS, .cwd = dir,
                                     .watch = unpack_watch, .watch_ctx = &w, .watch_ms = IMAGE_UNPACK_WATCH_MS };
        struct spawn_result res = { 0 };
        if (spawn_run(&req, &res, err) < 0) {
                spawn_result_done(&res);
                rm_rf(tmp, &ignored);
                return err_wrap(err, "umoci unpack");
        }
        if (res.exit.status != WAIT_EXITED || res.exit.exit_code != 0) {
                _cleanup_free_ char *how = spawn_exit_text(&res.exit);
                const char *out = res.output ? res.output : "";
                size_t n = strlen(out);
                while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
                        n--;
                err_set(err, ERR_RUNTIME, 0, "umoci unpack --image %s: %s: %.*s", image, how, (int)(n > 400 ? 400 : n),
                        out + (n > 400 ? n - 400 : 0));
                spawn_result_done(&res);
                rm_rf(tmp, &ignored);
                return -1;
        }
        spawn_result_done(&res);
        uint64_t bytes, files;
        if (tree_usage(tmp, &bytes, &files, err) < 0 || over_limits(&w, bytes, files, err) < 0) {
                rm_rf(tmp, &ignored);
                return err_wrap(err, "umoci unpack");
        }
        /* umoci looked the tag up again: it must have found the image
         * read before, or the cache entry would hold another one. */
        if (unpacked_digest_is(tmp, digest) < 0) {
                rm_rf(tmp, &ignored);
                return err_set(err, ERR_INVALID, 0, "the tag `%s` named another image while it was unpacked; "
                               "try again (SIGHUP)", tag);
        }
        if (rename(tmp, final) < 0) {
                int e = errno;
                rm_rf(tmp, &ignored);
                /* Another unpack of the same digest got there first. */
                if ((e == EEXIST || e == ENOTEMPTY) && stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
                        *ret_rootfs = TAKE_PTR(rootfs);
                        return 0;
                }
                errno = e;
                return err_errno(err, ERR_IO, "image cache: rename `%s`", tmp);
        }
        *ret_rootfs = TAKE_PTR(rootfs);
        return 0;
}

void image_cache_drop(const char *cache_dir, const char *digest)
{
        const char *hex = digest_hex(digest);
        if (!hex)
                return;
        _cleanup_free_ char *path = xasprintf("%s/%s", cache_dir, hex);
        struct stat st;
        if (lstat(path, &st) < 0)
                return;
        struct err e = ERR_INIT;
        if (rm_rf(path, &e) < 0)
                log_warn("image cache: %s", e.msg);
        else
                log_info("image cache: %s removed (no plugin uses it any more)", digest);
}

void image_cache_prune(const char *cache_dir, char *const *keep)
{
        DIR *d = opendir(cache_dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                bool kept = false;
                for (size_t i = 0; keep && keep[i] && !kept; i++) {
                        const char *hex = digest_hex(keep[i]);
                        kept = hex && !strcmp(hex, de->d_name);
                }
                if (kept)
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", cache_dir, de->d_name);
                struct err e = ERR_INIT;
                rm_rf(path, &e);
        }
        closedir(d);
}
