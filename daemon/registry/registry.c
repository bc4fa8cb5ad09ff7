/* registry.c - the table of loaded plugins (see registry.h).
 *
 * DESIGN: the registry is a pointer to a `struct table` (manifests and broken
 * entries) behind a mutex.  A scan builds a whole new table without the lock
 * held (parsing manifests and statting rootfs files is slow), then
 * registry_reload() swaps it in under the lock and frees the old one after
 * unlocking.  Manifests are reference-counted, so a job that already holds
 * one keeps running the version it started with.
 *
 * A rescan keeps the manifest of every plugin.yaml that is still the same
 * file (so warm pools and caches keyed by it live on), and loads a plugin
 * new or changed since only once nothing in its directory has been written
 * for REGISTRY_SETTLE_MS: a directory being copied in is never loaded half
 * done.  A forced rescan (SIGHUP) reads every manifest anew.
 *
 * Threads: registry_load() on main before the other threads start;
 * registry_reload() on main only (SIGHUP, or the watch's wake-up); lookups and
 * the JSON listings on HTTP and worker threads.  The lock is held only for
 * in-memory work and is a leaf: nothing is called with it held that takes
 * another lock. */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "image.h"
#include "oci.h"

struct broken {
        char *path;
        char *error;
        /* Its manifest's `name` and `version` as written, when they could
         * be read (manifest_peek()), else NULL: a job of it is told why it
         * is not loaded. */
        char *name, *version;
};

/* What a plugin.yaml was when it was loaded: a rescan keeps the manifest
 * of a file still the same (ctime moves on any write, rename or chmod). */
struct file_id {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        dev_t dir_dev;            /* and the plugin directory it was in */
        ino_t dir_ino;
};

struct table {
        struct manifest **items;
        struct file_id *ids;      /* one per item */
        size_t n;
        struct broken *broken;
        size_t nbroken;
        size_t newly_broken;      /* broken entries the previous table did not have */
        size_t pending;           /* plugins not settled yet, left for a later rescan */
};

/* An image unpack that failed (umoci ran and failed, or ran out of time).
 * A watch's rescan does not run it again until something in the layout
 * has changed since, or its backoff ran out: a corrupt layer was unpacked
 * anew at every retry of the broken plugins (every 30 s for ever, minutes
 * each for a large image, on the thread that handles signals).  The
 * backoff (10 min doubling to an hour) heals what was not the layout's
 * fault (a full disk).  SIGHUP tries again. */
#define UNPACK_BACKOFF_FIRST_MS (10 * 60 * 1000)
#define UNPACK_BACKOFF_MAX_MS (60 * 60 * 1000)
struct unpack_failure {
        char *image;              /* the layout, resolved */
        char *digest;
        struct timespec at;       /* when the failed unpack began */
        int64_t again_ms;         /* now_mono_ms() when it is run again whatever */
        int64_t backoff_ms;       /* the wait before again_ms, doubling */
        char *error;
        bool seen;                /* looked up in the scan under way */
};

struct unpack_failures {
        struct unpack_failure *v;
        size_t n;
};

struct registry {
        pthread_mutex_t lock;
        char *dir;
        char *templates_dir, *images_dir, *umoci;   /* struct registry_env, copied */
        int64_t max_image_bytes;
        void (*unpacking)(const char *path, const char *digest, void *ctx);
        void *unpacking_ctx;
        size_t max;               /* manifests loaded at most */
        struct table *t;          /* guarded by lock */
        struct unpack_failures fails;   /* the reload thread's only */
        /* Image plugins no longer in the table whose jobs or warm
         * containers may still use their unpacked image: it goes from the
         * cache once nothing else holds them (the reload thread's only). */
        struct manifest **retired;
        size_t nretired;
};

static void table_free(struct table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                manifest_unref(t->items[i]);
        for (size_t i = 0; i < t->nbroken; i++) {
                free(t->broken[i].path);
                free(t->broken[i].error);
                free(t->broken[i].name);
                free(t->broken[i].version);
        }
        free(t->items);
        free(t->ids);
        free(t->broken);
        free(t);
}

static void table_freep(struct table **t)
{
        table_free(*t);
}

static bool same_file(const struct file_id *a, const struct file_id *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static struct file_id file_id_of(const struct stat *st, const struct stat *dir)
{
        return (struct file_id){ .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                                 .mtime = st->st_mtim, .ctime = st->st_ctim,
                                 .dir_dev = dir->st_dev, .dir_ino = dir->st_ino };
}

/* Report a broken plugin unless the previous table had it broken the same
 * way (a rescan does not repeat itself). */
static void add_broken(struct table *t, const struct table *old, const char *path, const char *error,
                       void (*report)(const char *msg, void *ctx), void *ctx)
{
        t->broken = xrealloc(t->broken, (t->nbroken + 1) * sizeof *t->broken);
        struct broken *b = &t->broken[t->nbroken++];
        *b = (struct broken){ .path = xstrdup(path), .error = xstrdup(error) };
        if (manifest_peek(path, &b->name, &b->version) < 0)
                b->name = b->version = NULL;
        for (size_t i = 0; old && i < old->nbroken; i++)
                if (!strcmp(old->broken[i].path, path) && !strcmp(old->broken[i].error, error))
                        return;
        t->newly_broken++;
        if (report)
                report(error, ctx);
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

struct settle_ctx {
        struct timespec since;    /* changed at or after this: not settled */
        int64_t until;            /* ...but not after this (the clock was stepped back since) */
        bool busy;
        size_t left;              /* entries still to look at */
};

static bool changed_since(const struct stat *st, const struct settle_ctx *c)
{
        return (st->st_ctim.tv_sec > c->since.tv_sec ||
                (st->st_ctim.tv_sec == c->since.tv_sec && st->st_ctim.tv_nsec >= c->since.tv_nsec)) &&
               (int64_t)st->st_ctim.tv_sec <= c->until;
}

/* Has nothing in dir's tree been created or written for REGISTRY_SETTLE_MS?
 * ctime, which a copy cannot set back (`cp -a` keeps mtimes).  A tree past
 * the entry budget counts as settled once the part looked at is. */
static bool walk_settled(int dirfd, struct settle_ctx *c, int depth)
{
        DIR *d = fdopendir(dirfd);
        if (!d) {
                close(dirfd);
                return true;
        }
        struct dirent *de;
        while (!c->busy && c->left && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                c->left--;
                struct stat st;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (changed_since(&st, c)) {
                        c->busy = true;
                        break;
                }
                if (S_ISDIR(st.st_mode) && depth < 64) {
                        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                walk_settled(sub, c, depth + 1);
                }
        }
        closedir(d);
        return !c->busy;
}

/* Has anything in dir's tree been created or written at or after since? */
static bool tree_changed_since(const char *dir, const struct timespec *since, int64_t until)
{
        struct settle_ctx c = { .since = *since, .until = until, .left = REGISTRY_SETTLE_ENTRIES };
        struct stat st;
        if (stat(dir, &st) < 0)
                return false;
        if (changed_since(&st, &c))
                return true;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd >= 0 && !walk_settled(fd, &c, 0);
}

static bool tree_settled(const char *dir)
{
        struct timespec since;
        clock_gettime(CLOCK_REALTIME, &since);
        int64_t ns = (int64_t)since.tv_sec * 1000000000 + since.tv_nsec - (int64_t)REGISTRY_SETTLE_MS * 1000000;
        int64_t now_s = since.tv_sec;
        since.tv_sec = (time_t)(ns / 1000000000);
        since.tv_nsec = (long)(ns % 1000000000);
        /* A time ahead of the clock is of a write before it was stepped
         * back, not a recent one: else the tree waits as long as the step. */
        return !tree_changed_since(dir, &since, now_s + 1);
}

/* Is old manifest m (loaded from a file that was `id`) still on disk: its
 * plugin directory the same directory (not a new copy renamed over it),
 * its rootfs link leading where it led, and (yaml_too) its plugin.yaml the
 * same file? */
static bool still_current(const struct manifest *m, const struct file_id *id, bool yaml_too)
{
        struct stat st;
        if (stat(m->dir, &st) < 0 || st.st_dev != id->dir_dev || st.st_ino != id->dir_ino)
                return false;
        if (yaml_too) {
                struct stat dst = st;
                if (stat(m->path, &st) < 0)
                        return false;
                struct file_id now = file_id_of(&st, &dst);
                if (!same_file(&now, id))
                        return false;
        }
        if (m->image) {
                /* The link may point elsewhere, the tag name another image. */
                _cleanup_free_ char *real = m->image_link ? realpath(m->image_link, NULL) : NULL;
                if (!real || strcmp(real, m->image))
                        return false;
                /* Its unpacked rootfs removed from the cache (space freed
                 * by hand): unpacked again, or every job would fail. */
                if (m->rootfs && (stat(m->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
                        return false;
                struct image_config c = { 0 };
                struct err e = ERR_INIT;
                bool same = image_read(m->image, m->image_ref, &c, &e) == 0 && !strcmp(c.digest, m->image_digest);
                image_config_done(&c);
                return same;
        }
        if (!m->rootfs_link)
                return true;
        _cleanup_free_ char *real = realpath(m->rootfs_link, NULL);
        return real && !strcmp(real, m->rootfs);
}

static void unpack_failures_done(struct unpack_failures *f)
{
        for (size_t i = 0; i < f->n; i++) {
                free(f->v[i].image);
                free(f->v[i].digest);
                free(f->v[i].error);
        }
        free(f->v);
        *f = (struct unpack_failures){ 0 };
}

/* Those not looked up by the scan just made go (their plugin went, or
 * now names another image); the rest are marked unseen for the next. */
static void unpack_failures_sweep(struct unpack_failures *f)
{
        size_t k = 0;
        for (size_t i = 0; i < f->n; i++) {
                if (f->v[i].seen) {
                        f->v[i].seen = false;
                        f->v[k++] = f->v[i];
                } else {
                        free(f->v[i].image);
                        free(f->v[i].digest);
                        free(f->v[i].error);
                }
        }
        f->n = k;
}

static struct unpack_failure *unpack_failure_of(struct unpack_failures *f, const struct manifest *m)
{
        for (size_t i = 0; f && i < f->n; i++)
                if (!strcmp(f->v[i].image, m->image) && !strcmp(f->v[i].digest, m->image_digest))
                        return &f->v[i];
        return NULL;
}

/* An image plugin's rootfs: unpacked (or found in the cache), then its
 * command checked in it.  The manifest is not shared yet.  fails: the
 * unpacks that failed (NULL: none kept); retry: run one again even if
 * nothing in its layout changed since (a start, a SIGHUP). */
static int unpack(const struct registry_env *env, struct unpack_failures *fails, bool retry, struct manifest *m,
                  struct err *err)
{
        struct unpack_failure *f = unpack_failure_of(fails, m);
        if (f) {
                f->seen = true;
                if (!retry && now_mono_ms() < f->again_ms && !tree_changed_since(m->image, &f->at, INT64_MAX)) {
                        err_set(err, ERR_RUNTIME, 0, "%s", f->error);
                        err_set_field(err, "image");
                        return -1;
                }
        }
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        char *rootfs = NULL;
        if (env->unpacking && !image_cached(m->image_digest, env->images_dir))
                env->unpacking(m->path, m->image_digest, env->unpacking_ctx);
        if (image_unpack(env->umoci, m->image, m->image_tag, m->image_digest, env->images_dir, env->max_image_bytes,
                         &rootfs, err) < 0) {
                err_wrap(err, "image");
                /* umoci ran and failed: the same layout fails the same way. */
                if (fails && err->code == ERR_RUNTIME) {
                        if (!f) {
                                fails->v = xrealloc(fails->v, (fails->n + 1) * sizeof *fails->v);
                                f = &fails->v[fails->n++];
                                *f = (struct unpack_failure){ .image = xstrdup(m->image),
                                                              .digest = xstrdup(m->image_digest) };
                        }
                        f->seen = true;
                        f->at = at;
                        f->backoff_ms = !f->backoff_ms ? UNPACK_BACKOFF_FIRST_MS
                                        : f->backoff_ms >= UNPACK_BACKOFF_MAX_MS / 2 ? UNPACK_BACKOFF_MAX_MS
                                                                                     : 2 * f->backoff_ms;
                        f->again_ms = now_mono_ms() + f->backoff_ms;
                        free(f->error);
                        f->error = xasprintf("%s (tried again once its layout changes, on SIGHUP, or in %lld min)",
                                             err->msg, (long long)(f->backoff_ms / 60000));
                        err_set(err, ERR_RUNTIME, 0, "%s", f->error);
                }
                err_set_field(err, "image");
                return -1;
        }
        if (f)
                f->seen = false;   /* unpacked: swept at the end of the scan */
        free(m->rootfs);
        m->rootfs = rootfs;
        return manifest_check_command(m, err);
}

struct scan_ctx {
        const char *dir;
        struct registry_env env;
        size_t max;
        const struct table *old;   /* the table being replaced; NULL at the first load */
        bool settle;               /* a watch's rescan: new or changed plugins wait until settled */
        struct unpack_failures *fails;   /* the image unpacks that failed */
        void (*report)(const char *msg, void *ctx);
        void *ctx;
};

/* A manifest that loaded but failed a check made after the load:
 * "PATH:LINE: key: what", as manifest_load() says its own. */
static void broken_at_key(const struct scan_ctx *c, struct table *t, const struct table *old, const char *yaml,
                          const struct manifest *m, const struct err *e)
{
        unsigned line = manifest_key_line(m, e->field);
        _cleanup_free_ char *msg = line ? xasprintf("%s:%u: %s", yaml, line, e->msg) : xasprintf("%s: %s", yaml, e->msg);
        add_broken(t, c->settle ? old : NULL, yaml, msg, c->report, c->ctx);
}

/* The old manifest loaded from plugin directory real (its index), if any. */
static size_t old_index(const struct table *old, const char *real)
{
        size_t k = 0;
        while (old && real && k < old->n && strcmp(old->items[k]->dir, real))
                k++;
        return old && real ? k : 0;
}

/* Take the plugin in directory `name` into t.  reuse_only: only when its
 * old manifest is still current (a first pass, so that plugins already
 * loaded keep their places under max_algorithms).  true when it was
 * dealt with (taken, pending, broken, or no plugin). */
static bool scan_one(const struct scan_ctx *c, const char *name, bool reuse_only, struct table *t)
{
        _cleanup_free_ char *pdir = xasprintf("%s/%s", c->dir, name);
        _cleanup_free_ char *yaml = xasprintf("%s/plugin.yaml", pdir);
        struct stat st, yst;
        if (stat(pdir, &st) < 0 || !S_ISDIR(st.st_mode))
                return true;
        bool have_yaml = stat(yaml, &yst) == 0;
        if (!have_yaml && errno != ENOENT) {
                memset(&yst, 0, sizeof yst);
                have_yaml = true;   /* unreadable: manifest_load says why */
        }
        _cleanup_free_ char *real = realpath(pdir, NULL);
        const struct table *old = c->old;
        size_t k = old_index(old, real);
        bool had = old && real && k < old->n;
        struct file_id id = file_id_of(&yst, &st);
        struct manifest *m = NULL;

        /* Unchanged: the same file, in the same place, on the same rootfs. */
        if (had && have_yaml && same_file(&old->ids[k], &id) && still_current(old->items[k], &old->ids[k], true))
                m = manifest_ref(old->items[k]);
        if (reuse_only && !m)
                return false;
        if (!m && c->settle && !tree_settled(pdir)) {
                /* Being written: it waits; the version it replaces serves
                 * meanwhile if it is being changed in place (not a new
                 * copy renamed over it: its manifest is not that tree's). */
                t->pending++;
                if (!had || !still_current(old->items[k], &old->ids[k], false)) {
                        /* Broken before: it stays listed so until it is read again. */
                        for (size_t b = 0; old && b < old->nbroken; b++)
                                if (!strcmp(old->broken[b].path, yaml))
                                        add_broken(t, old, yaml, old->broken[b].error, c->report, c->ctx);
                        return true;
                }
                m = manifest_ref(old->items[k]);
                id = old->ids[k];
        }
        if (!m && !have_yaml)
                return true;   /* not a plugin (yet): a copy may be under way */
        if (t->n >= c->max) {
                manifest_unref(m);
                _cleanup_free_ char *msg = xasprintf("%s: not loaded: %zu plugins are loaded already, "
                                                     "the most max_algorithms allows", yaml, c->max);
                add_broken(t, c->settle ? old : NULL, yaml, msg, c->report, c->ctx);
                return true;
        }
        struct err e = ERR_INIT;
        if (!m) {
                if (manifest_load(yaml, &m, &e) < 0) {
                        add_broken(t, c->settle ? old : NULL, yaml, e.msg, c->report, c->ctx);
                        return true;
                }
                if ((c->env.templates_dir && oci_check_manifest(c->env.templates_dir, m, &e) < 0) ||
                    (m->image && c->env.images_dir && unpack(&c->env, c->fails, !c->settle, m, &e) < 0)) {
                        broken_at_key(c, t, old, yaml, m, &e);
                        manifest_unref(m);
                        return true;
                }
                /* Read anew and the same as before (a SIGHUP, a touch): the
                 * old manifest stays, and what hangs on it (warm pools). */
                if (had && same_file(&old->ids[k], &id) && !strcmp(old->items[k]->name, m->name) &&
                    !strcmp(old->items[k]->version, m->version) &&
                    !strcmp(old->items[k]->rootfs ? old->items[k]->rootfs : "", m->rootfs ? m->rootfs : "")) {
                        manifest_unref(m);
                        m = manifest_ref(old->items[k]);
                }
        } else if (!c->settle && c->env.templates_dir && oci_check_manifest(c->env.templates_dir, m, &e) < 0) {
                /* SIGHUP: an unchanged plugin is checked again, against
                 * templates that may have changed. */
                broken_at_key(c, t, old, yaml, m, &e);
                manifest_unref(m);
                return true;
        }
        const struct manifest *dup = NULL;
        for (size_t j = 0; j < t->n && !dup; j++)
                if (!strcmp(t->items[j]->name, m->name) && semver_compare(&t->items[j]->semver, &m->semver) == 0)
                        dup = t->items[j];
        if (dup) {
                _cleanup_free_ char *msg = xasprintf("%s:%u: version: `%s` %s is a duplicate of %s/plugin.yaml",
                                                     yaml, manifest_key_line(m, "version"), m->name, m->version,
                                                     dup->dir);
                add_broken(t, c->settle ? old : NULL, yaml, msg, c->report, c->ctx);
                manifest_unref(m);
                return true;
        }
        t->items = xrealloc(t->items, (t->n + 1) * sizeof *t->items);
        t->ids = xrealloc(t->ids, (t->n + 1) * sizeof *t->ids);
        t->ids[t->n] = id;
        t->items[t->n++] = m;
        return true;
}

/* Scan dir into a new table.  Directories are taken in name order (so
 * which of two duplicates counts as "the second" does not depend on
 * readdir), those whose manifest is unchanged first.  With old, a
 * plugin.yaml still the same file (same place, same rootfs) keeps its
 * manifest; with settle (the watch's rescans), a plugin new or changed is
 * taken only once its directory has settled (until then the version it
 * replaces stays, or it waits: t->pending).  A start and a SIGHUP take
 * what is there. */
static int scan(const struct scan_ctx *c, struct table **ret, struct err *err)
{
        DIR *d = opendir(c->dir);
        if (!d)
                return err_errno(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO,
                                 "registry: open `%s`", c->dir);
        _cleanup_strv_ char **names = xcalloc(1, sizeof *names);
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        strv_push(&names, de->d_name);
        closedir(d);
        size_t count = strv_len(names);
        qsort(names, count, sizeof *names, cmp_names);

        _cleanup_(table_freep) struct table *t = xcalloc(1, sizeof *t);
        _cleanup_free_ bool *done = xcalloc(count + 1, sizeof *done);
        for (size_t i = 0; c->old && i < count; i++)
                done[i] = scan_one(c, names[i], true, t);
        for (size_t i = 0; i < count; i++)
                if (!done[i])
                        scan_one(c, names[i], false, t);
        *ret = TAKE_PTR(t);
        return 0;
}

int registry_load(const char *dir, const struct registry_env *env, size_t max_plugins,
                  void (*report)(const char *msg, void *ctx), void *ctx, struct registry **ret, struct err *err)
{
        size_t max = max_plugins ? max_plugins : REGISTRY_MAX_PLUGINS;
        (void)err;
        struct table *t = NULL;
        struct err e = ERR_INIT;
        struct registry_env none = { 0 };
        if (!env)
                env = &none;
        struct unpack_failures fails = { 0 };
        struct scan_ctx c = { .dir = dir, .env = *env, .max = max, .report = report, .ctx = ctx,
                              .fails = &fails };
        if (scan(&c, &t, &e) < 0) {
                /* The directory may appear later (SIGHUP rescans): serve an
                 * empty registry, and /readyz says no plugin is loaded. */
                if (report)
                        report(e.msg, ctx);
                t = xcalloc(1, sizeof *t);
        }
        struct registry *r = xcalloc(1, sizeof *r);
        pthread_mutex_init(&r->lock, NULL);
        r->dir = xstrdup(dir);
        r->templates_dir = xstrdup(env->templates_dir);
        r->images_dir = xstrdup(env->images_dir);
        r->unpacking = env->unpacking;
        r->unpacking_ctx = env->unpacking_ctx;
        r->umoci = xstrdup(env->umoci);
        r->max_image_bytes = env->max_image_bytes;
        r->max = max;
        r->t = t;
        unpack_failures_sweep(&fails);
        r->fails = fails;
        *ret = r;
        return 0;
}

static bool holds(const struct table *t, const struct manifest *m)
{
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i] == m)
                        return true;
        return false;
}

static const struct manifest *same_version(const struct table *t, const struct manifest *m)
{
        for (size_t i = 0; i < t->n; i++)
                if (!strcmp(t->items[i]->name, m->name) && semver_compare(&t->items[i]->semver, &m->semver) == 0)
                        return t->items[i];
        return NULL;
}

/* What changed from old to t, told to `changed` and counted. */
static void diff(const struct table *old, const struct table *t, void (*changed)(const char *msg, void *ctx),
                 void *ctx, struct registry_changes *c)
{
        for (size_t i = 0; i < t->n; i++) {
                const struct manifest *m = t->items[i];
                if (holds(old, m))
                        continue;
                bool was = same_version(old, m) != NULL;
                if (was)
                        c->changed++;
                else
                        c->added++;
                if (changed) {
                        _cleanup_free_ char *msg = xasprintf("plugin %s: %s %s (%s)", was ? "changed" : "added",
                                                             m->name, m->version, m->path);
                        changed(msg, ctx);
                }
        }
        for (size_t i = 0; i < old->n; i++) {
                const struct manifest *m = old->items[i];
                if (holds(t, m) || same_version(t, m))
                        continue;
                c->removed++;
                if (changed) {
                        _cleanup_free_ char *msg = xasprintf("plugin removed: %s %s (%s)", m->name, m->version,
                                                             m->path);
                        changed(msg, ctx);
                }
        }
}

static bool table_uses_digest(const struct table *t, const char *digest)
{
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->image_digest && !strcmp(t->items[i]->image_digest, digest))
                        return true;
        return false;
}

/* Unpacked images of retired plugins that nothing runs any more go from
 * the cache: a re-tagged image left every earlier one on disk until the
 * next start.  An image the table uses (again), or another retired
 * manifest still held, stays. */
static void release_images(struct registry *r)
{
        size_t k = 0;
        for (size_t i = 0; i < r->nretired; i++) {
                struct manifest *m = r->retired[i];
                if (manifest_shared(m)) {
                        r->retired[k++] = m;
                        continue;
                }
                bool used = table_uses_digest(r->t, m->image_digest);
                for (size_t j = 0; j < r->nretired && !used; j++)
                        used = j != i && r->retired[j] && !strcmp(r->retired[j]->image_digest, m->image_digest);
                if (!used && r->images_dir)
                        image_cache_drop(r->images_dir, m->image_digest);
                manifest_unref(m);
                r->retired[i] = NULL;
        }
        r->nretired = k;
}

int registry_reload(struct registry *r, bool force, void (*report)(const char *msg, void *ctx),
                    void (*changed)(const char *msg, void *ctx), void *ctx, struct registry_changes *ret,
                    struct err *err)
{
        *ret = (struct registry_changes){ 0 };
        /* Reloads come from one thread, which alone swaps r->t: the old
         * table stays valid while it is read here without the lock. */
        pthread_mutex_lock(&r->lock);
        const struct table *cur = r->t;
        pthread_mutex_unlock(&r->lock);
        struct table *t = NULL;
        struct scan_ctx sc = { .dir = r->dir,
                               .env = { .templates_dir = r->templates_dir, .images_dir = r->images_dir,
                                        .umoci = r->umoci, .max_image_bytes = r->max_image_bytes,
                                        .unpacking = r->unpacking,
                                        .unpacking_ctx = r->unpacking_ctx },
                               .max = r->max, .old = cur, .settle = !force, .report = report,
                               .ctx = ctx, .fails = &r->fails };
        if (scan(&sc, &t, err) < 0)
                return -1;   /* keep serving the old table */
        unpack_failures_sweep(&r->fails);
        diff(cur, t, changed, ctx, ret);
        ret->broken = t->newly_broken;
        ret->pending = t->pending;
        pthread_mutex_lock(&r->lock);
        struct table *old = r->t;
        r->t = t;
        pthread_mutex_unlock(&r->lock);
        /* Every image manifest that left the table, its image still used
         * by the new one or not: a job of an edited plugin.yaml runs from
         * the same image, which must stay while it does even once a later
         * reload drops the manifest that replaced it. */
        for (size_t i = 0; i < old->n; i++)
                if (old->items[i]->image_digest && !holds(t, old->items[i])) {
                        r->retired = xrealloc(r->retired, (r->nretired + 1) * sizeof *r->retired);
                        r->retired[r->nretired++] = manifest_ref(old->items[i]);
                }
        table_free(old);
        release_images(r);
        return 0;
}

void registry_free(struct registry *r)
{
        if (!r)
                return;
        table_free(r->t);
        for (size_t i = 0; i < r->nretired; i++)
                manifest_unref(r->retired[i]);
        free(r->retired);
        unpack_failures_done(&r->fails);
        pthread_mutex_destroy(&r->lock);
        free(r->templates_dir);
        free(r->images_dir);
        free(r->umoci);
        free(r->dir);
        free(r);
}

/* The version registry_find() picks without one named: the newest release,
 * or, when name has only pre-releases, the newest of those.  Lock held. */
static struct manifest *latest(const struct table *t, const char *name)
{
        struct manifest *best = NULL;
        for (size_t i = 0; i < t->n; i++) {
                struct manifest *m = t->items[i];
                if (strcmp(m->name, name))
                        continue;
                if (!best) {
                        best = m;
                        continue;
                }
                bool m_rel = !m->semver.prerelease, b_rel = !best->semver.prerelease;
                if (m_rel != b_rel) {
                        if (m_rel)
                                best = m;
                } else if (semver_compare(&m->semver, &best->semver) > 0) {
                        best = m;
                }
        }
        return best;
}

/* The newest version of name in range, a pre-release only when the range
 * names it.  Lock held. */
static struct manifest *newest_in(const struct table *t, const char *name, const struct semver_range *range)
{
        struct manifest *best = NULL;
        for (size_t i = 0; i < t->n; i++) {
                struct manifest *m = t->items[i];
                if (!strcmp(m->name, name) && semver_range_match(range, &m->semver) &&
                    (!best || semver_compare(&m->semver, &best->semver) > 0))
                        best = m;
        }
        return best;
}

int registry_find(struct registry *r, const char *name, const char *version,
                  struct manifest **ret, struct err *err)
{
        /* A version, or else a range of them. */
        struct semver want = { 0 };
        struct semver_range *range = NULL;
        bool exact = version && semver_parse(version, &want, NULL) == 0;
        if (version && !exact && semver_range_parse(version, &range, err) < 0)
                return err_wrap(err, "algorithm `%s`: version", name);

        pthread_mutex_lock(&r->lock);
        struct manifest *found = NULL;
        bool known = latest(r->t, name) != NULL;
        if (!version) {
                found = latest(r->t, name);
        } else if (range) {
                found = newest_in(r->t, name, range);
        } else {
                for (size_t i = 0; i < r->t->n && !found; i++)
                        if (!strcmp(r->t->items[i]->name, name) &&
                            semver_compare(&r->t->items[i]->semver, &want) == 0)
                                found = r->t->items[i];
        }
        manifest_ref(found);
        pthread_mutex_unlock(&r->lock);
        semver_done(&want);
        semver_range_free(range);

        if (!found) {
                if (!known)
                        return err_set(err, ERR_NOT_FOUND, 0, "algorithm `%s` not found", name);
                if (range)
                        return err_set(err, ERR_NOT_FOUND, 0, "algorithm `%s`: no version matches `%s` "
                                       "(GET /v1/algorithms/%s lists them)", name, version, name);
                return err_set(err, ERR_NOT_FOUND, 0, "algorithm `%s` version `%s` not found", name, version);
        }
        *ret = found;
        return 0;
}

static int cmp_newest_first(const void *a, const void *b)
{
        const struct manifest *x = *(struct manifest *const *)a, *y = *(struct manifest *const *)b;
        return semver_compare(&y->semver, &x->semver);
}

/* By name, then newest first. */
static int cmp_name_newest_first(const void *a, const void *b)
{
        const struct manifest *x = *(struct manifest *const *)a, *y = *(struct manifest *const *)b;
        int c = strcmp(x->name, y->name);
        return c ? c : semver_compare(&y->semver, &x->semver);
}

/* One algorithm's object from its n (>= 1) versions, newest first.  The
 * one shown is latest()'s: the newest release, or the newest pre-release
 * when there is no release. */
static json_t *versions_json(struct manifest *const *mine, size_t n)
{
        const struct manifest *l = mine[0];
        for (size_t i = 0; i < n; i++)
                if (!mine[i]->semver.prerelease) {
                        l = mine[i];
                        break;
                }
        json_t *versions = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(versions, json_string(mine[i]->version));

        return json_pack("{s:s, s:s, s:s, s:o, s:O, s:{s:f, s:I, s:I, s:I}, s:I, s:I, s:s}",
                         "name", l->name,
                         "description", l->description,
                         "latest", l->version,
                         "versions", versions,
                         "input_schema", l->input_schema,
                         "resources",
                         "cpu_cores", l->resources.cpu_cores,
                         "memory_mb", (json_int_t)l->resources.memory_mb,
                         "pids", (json_int_t)l->resources.pids,
                         "disk_mb", (json_int_t)l->resources.disk_mb,
                         "timeout_seconds", (json_int_t)l->timeout_seconds,
                         "max_concurrent", (json_int_t)l->max_concurrent,
                         /* The circuit breaker (a later issue) will set this. */
                         "health", "healthy");
}

/* One algorithm's object; NULL when name has no loaded version.  Lock held. */
static json_t *algorithm_json(const struct table *t, const char *name)
{
        _cleanup_free_ struct manifest **mine = xcalloc(t->n + 1, sizeof *mine);
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
                if (!strcmp(t->items[i]->name, name))
                        mine[n++] = t->items[i];
        if (!n)
                return NULL;
        qsort(mine, n, sizeof *mine, cmp_newest_first);
        return versions_json(mine, n);
}

json_t *registry_list_json(struct registry *r)
{
        json_t *algs = json_array(), *broken = json_array();
        pthread_mutex_lock(&r->lock);
        const struct table *t = r->t;
        /* Sorted once by name, then newest first: each algorithm's versions
         * are a run.  (A lookup of every name in the whole table was
         * quadratic: 1,000 plugins held the lock, and every submit's
         * lookup, for some 50 ms per listing.) */
        _cleanup_free_ struct manifest **all = xcalloc(t->n + 1, sizeof *all);
        if (t->n)
                memcpy(all, t->items, t->n * sizeof *all);
        qsort(all, t->n, sizeof *all, cmp_name_newest_first);
        for (size_t i = 0, j; i < t->n; i = j) {
                for (j = i + 1; j < t->n && !strcmp(all[j]->name, all[i]->name); j++)
                        ;
                json_array_append_new(algs, versions_json(all + i, j - i));
        }
        for (size_t i = 0; i < t->nbroken; i++)
                json_array_append_new(broken, json_pack("{s:o, s:o}", "path", json_string_lossy(t->broken[i].path),
                                                        "error", json_string_lossy(t->broken[i].error)));
        pthread_mutex_unlock(&r->lock);
        return json_pack("{s:o, s:o}", "algorithms", algs, "broken", broken);
}

json_t *registry_algorithm_json(struct registry *r, const char *name)
{
        pthread_mutex_lock(&r->lock);
        json_t *j = algorithm_json(r->t, name);
        pthread_mutex_unlock(&r->lock);
        return j;
}

void registry_foreach(struct registry *r, void (*fn)(struct manifest *m, void *ctx), void *ctx)
{
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->t->n; i++)
                fn(r->t->items[i], ctx);
        pthread_mutex_unlock(&r->lock);
}

size_t registry_count(struct registry *r)
{
        pthread_mutex_lock(&r->lock);
        size_t n = r->t->n;
        pthread_mutex_unlock(&r->lock);
        return n;
}

char *registry_broken_reason(struct registry *r, const char *name, const char *version, bool *ret_exact)
{
        struct semver want = { 0 };
        bool have = version && semver_parse(version, &want, NULL) == 0;
        char *why = NULL;
        bool exact = false;
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->t->nbroken && !exact; i++) {
                const struct broken *b = &r->t->broken[i];
                if (!b->name || strcmp(b->name, name))
                        continue;
                struct semver v = { 0 };
                bool same = have && b->version && semver_parse(b->version, &v, NULL) == 0 &&
                            semver_compare(&v, &want) == 0;
                semver_done(&v);
                if (same || !why) {
                        free(why);
                        why = xstrdup(b->error);
                        exact = same;
                }
        }
        pthread_mutex_unlock(&r->lock);
        semver_done(&want);
        if (why)
                *ret_exact = exact;
        return why;
}

size_t registry_broken_count(struct registry *r)
{
        pthread_mutex_lock(&r->lock);
        size_t n = r->t->nbroken;
        pthread_mutex_unlock(&r->lock);
        return n;
}

char **registry_image_digests(struct registry *r)
{
        char **v = xcalloc(1, sizeof *v);
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->t->n; i++)
                if (r->t->items[i]->image_digest)
                        strv_push(&v, r->t->items[i]->image_digest);
        pthread_mutex_unlock(&r->lock);
        return v;
}

int64_t registry_max_input_bytes(struct registry *r)
{
        int64_t most = 0;
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->t->n; i++)
                if (r->t->items[i]->max_input_bytes > most)
                        most = r->t->items[i]->max_input_bytes;
        pthread_mutex_unlock(&r->lock);
        return most;
}
