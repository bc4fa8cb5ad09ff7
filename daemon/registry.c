/* registry.c - the table of loaded plugins (see registry.h).
 *
 * DESIGN: the registry is a pointer to a `struct table` (manifests and broken
 * entries) behind a mutex.  A scan builds a whole new table without the lock
 * held (parsing manifests and statting rootfs files is slow), then
 * registry_reload() swaps it in under the lock and frees the old one after
 * unlocking.  Manifests are reference-counted, so a job that already holds
 * one keeps running the version it started with.
 *
 * Threads: registry_load() on main before the other threads start;
 * registry_reload() on whichever thread watches the directory; lookups and
 * the JSON listings on HTTP and worker threads.  The lock is held only for
 * in-memory work and is a leaf: nothing is called with it held that takes
 * another lock. */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

struct broken {
        char *path;
        char *error;
};

struct table {
        struct manifest **items;
        size_t n;
        struct broken *broken;
        size_t nbroken;
};

struct registry {
        pthread_mutex_t lock;
        char *dir;
        struct table *t;          /* guarded by lock */
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
        }
        free(t->items);
        free(t->broken);
        free(t);
}

static void table_freep(struct table **t)
{
        table_free(*t);
}

static void add_broken(struct table *t, const char *path, const char *error,
                       void (*report)(const char *msg, void *ctx), void *ctx)
{
        t->broken = xrealloc(t->broken, (t->nbroken + 1) * sizeof *t->broken);
        t->broken[t->nbroken++] = (struct broken){ .path = xstrdup(path), .error = xstrdup(error) };
        if (report)
                report(error, ctx);
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Scan dir into a new table.  Directories are taken in name order so which
 * of two duplicates counts as "the second" does not depend on readdir. */
static int scan(const char *dir, void (*report)(const char *msg, void *ctx), void *ctx,
                struct table **ret, struct err *err)
{
        DIR *d = opendir(dir);
        if (!d)
                return err_errno(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO,
                                 "registry: open `%s`", dir);
        _cleanup_strv_ char **names = xcalloc(1, sizeof *names);
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        strv_push(&names, de->d_name);
        closedir(d);
        size_t count = strv_len(names);
        qsort(names, count, sizeof *names, cmp_names);

        _cleanup_(table_freep) struct table *t = xcalloc(1, sizeof *t);
        for (size_t i = 0; i < count; i++) {
                _cleanup_free_ char *pdir = xasprintf("%s/%s", dir, names[i]);
                _cleanup_free_ char *yaml = xasprintf("%s/plugin.yaml", pdir);
                struct stat st;
                if (stat(pdir, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (lstat(yaml, &st) < 0 && errno == ENOENT)
                        continue;   /* not a plugin (yet): a copy may be under way */

                if (t->n >= REGISTRY_MAX_PLUGINS) {
                        _cleanup_free_ char *msg = xasprintf("%s: registry full (%d plugins)", yaml,
                                                             REGISTRY_MAX_PLUGINS);
                        add_broken(t, yaml, msg, report, ctx);
                        continue;
                }
                struct manifest *m = NULL;
                struct err e = ERR_INIT;
                if (manifest_load(yaml, &m, &e) < 0) {
                        add_broken(t, yaml, e.msg, report, ctx);
                        continue;
                }
                const struct manifest *dup = NULL;
                for (size_t k = 0; k < t->n && !dup; k++)
                        if (!strcmp(t->items[k]->name, m->name) &&
                            semver_compare(&t->items[k]->semver, &m->semver) == 0)
                                dup = t->items[k];
                if (dup) {
                        _cleanup_free_ char *msg = xasprintf("%s: `%s` %s is a duplicate of %s", yaml,
                                                             m->name, m->version, dup->dir);
                        add_broken(t, yaml, msg, report, ctx);
                        manifest_unref(m);
                        continue;
                }
                t->items = xrealloc(t->items, (t->n + 1) * sizeof *t->items);
                t->items[t->n++] = m;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int registry_load(const char *dir, void (*report)(const char *msg, void *ctx), void *ctx,
                  struct registry **ret, struct err *err)
{
        (void)err;
        struct table *t = NULL;
        struct err e = ERR_INIT;
        if (scan(dir, report, ctx, &t, &e) < 0) {
                /* The directory may appear later (SIGHUP rescans): serve an
                 * empty registry, and /readyz says no plugin is loaded. */
                if (report)
                        report(e.msg, ctx);
                t = xcalloc(1, sizeof *t);
        }
        struct registry *r = xcalloc(1, sizeof *r);
        pthread_mutex_init(&r->lock, NULL);
        r->dir = xstrdup(dir);
        r->t = t;
        *ret = r;
        return 0;
}

int registry_reload(struct registry *r, void (*report)(const char *msg, void *ctx), void *ctx,
                    struct err *err)
{
        struct table *t = NULL;
        if (scan(r->dir, report, ctx, &t, err) < 0)
                return -1;   /* keep serving the old table */
        pthread_mutex_lock(&r->lock);
        struct table *old = r->t;
        r->t = t;
        pthread_mutex_unlock(&r->lock);
        table_free(old);
        return 0;
}

void registry_free(struct registry *r)
{
        if (!r)
                return;
        table_free(r->t);
        pthread_mutex_destroy(&r->lock);
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

/* One algorithm's object; NULL when name has no loaded version.  Lock held. */
static json_t *algorithm_json(const struct table *t, const char *name)
{
        const struct manifest *l = latest(t, name);
        if (!l)
                return NULL;
        _cleanup_free_ struct manifest **mine = xcalloc(t->n, sizeof *mine);
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
                if (!strcmp(t->items[i]->name, name))
                        mine[n++] = t->items[i];
        qsort(mine, n, sizeof *mine, cmp_newest_first);
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

json_t *registry_list_json(struct registry *r)
{
        json_t *algs = json_array(), *broken = json_array();
        pthread_mutex_lock(&r->lock);
        const struct table *t = r->t;
        _cleanup_free_ const char **names = xcalloc(t->n + 1, sizeof *names);
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++) {
                bool seen = false;
                for (size_t k = 0; k < n && !seen; k++)
                        seen = !strcmp(names[k], t->items[i]->name);
                if (!seen)
                        names[n++] = t->items[i]->name;
        }
        qsort(names, n, sizeof *names, cmp_names);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(algs, algorithm_json(t, names[i]));
        for (size_t i = 0; i < t->nbroken; i++)
                json_array_append_new(broken, json_pack("{s:s, s:s}", "path", t->broken[i].path,
                                                        "error", t->broken[i].error));
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

size_t registry_broken_count(struct registry *r)
{
        pthread_mutex_lock(&r->lock);
        size_t n = r->t->nbroken;
        pthread_mutex_unlock(&r->lock);
        return n;
}
