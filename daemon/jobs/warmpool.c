/* warmpool.c - containers created ahead (see warmpool.h).
 *
 * Threads: one refill thread does every prepare and hands every container
 * it gives up to the cleaner; workers only take.  wp->lock guards the
 * pools; taken under it: the admission's lock (a leaf, for the memory
 * figures) and the idpool's; warmpool_sync holds the registry's lock
 * around it (registry -> warm pool, never the other way). */
#include "warmpool.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "registry/oci.h"

#define RETRY_MS 5000       /* after a failed prepare, doubled for each one after it */
#define RETRY_MAX_MS 300000 /* up to this: a plugin whose containers never start */
#define TICK_MS 1000        /* idle expiry is checked this often */

struct pool {
        struct manifest *m;          /* a reference */
        size_t target;               /* the manifest's warm, within warm.max_containers */
        int64_t memory_mb;           /* each container's limit */
        struct sandbox **ready;      /* oldest first */
        size_t nready, cap;
        size_t making;               /* being prepared now (0 or 1) */
        bool draining;               /* the plugin changed or went */
        bool seen;                   /* in the registry at this sync */
        bool idle;                   /* expired: no refill until the next job */
        bool told_short;             /* logged that its target does not fit in memory */
        int64_t last_use;            /* a take (hit or miss), or the pool's birth */
        int64_t retry_at;            /* after a failed prepare, not before */
        int64_t retry_ms;            /* the pause after the last failed prepare (0: it did not fail) */
        int64_t dead_ms;             /* the pause after the last container found dead (0: none since a hit) */
        uint64_t hits, misses;
        struct pool *next;
};

struct warmpool {
        struct warmpool_deps d;
        int64_t idle_ms;
        pthread_mutex_t lock;
        pthread_cond_t kick;
        struct pool *pools;
        bool quit;
        pthread_t thread;
};

static void pool_free(struct pool *p)
{
        manifest_unref(p->m);
        free(p->ready);
        free(p);
}

/* Memory the warm containers reserve (ready and being made). */
static int64_t warm_mb(struct warmpool *wp)
{
        int64_t mb = 0;
        for (struct pool *p = wp->pools; p; p = p->next)
                mb += (int64_t)(p->nready + p->making) * p->memory_mb;
        return mb;
}

static struct sandbox *pop_at(struct pool *p, size_t i)
{
        struct sandbox *sb = p->ready[i];
        memmove(p->ready + i, p->ready + i + 1, (p->nready - i - 1) * sizeof *p->ready);
        p->nready--;
        return sb;
}

static struct sandbox *pop_oldest(struct pool *p)
{
        return pop_at(p, 0);
}

/* Under the lock: a ready container to give up, if any must go: its pool
 * drains, expired, or jobs need the memory. */
static struct sandbox *victim(struct warmpool *wp, int64_t now)
{
        int64_t used = 0, budget = 0;
        admission_memory(wp->d.admission, &used, &budget);
        bool over = used + warm_mb(wp) > budget;
        struct pool *fattest = NULL;
        for (struct pool *p = wp->pools; p; p = p->next) {
                if (!p->nready)
                        continue;
                if (p->draining || wp->quit)
                        return pop_oldest(p);
                if (now - p->last_use >= wp->idle_ms) {
                        if (!p->idle)
                                log_info("warm pool %s %s: no job for %lld s, emptied until the next one",
                                         p->m->name, p->m->version, (long long)(wp->idle_ms / 1000));
                        p->idle = true;
                        return pop_oldest(p);
                }
                /* One whose gate died while it waited (killed, out of
                 * memory) serves no job: gone, and made again. */
                for (size_t i = 0; i < p->nready; i++) {
                        if (!sandbox_waiting(p->ready[i])) {
                                /* Made again after a pause, as a failed
                                 * prepare: gates that die as soon as they
                                 * wait are not made for ever without one.
                                 * Those found dead together count once. */
                                if (now >= p->retry_at) {
                                        p->dead_ms = !p->dead_ms ? RETRY_MS
                                                     : p->dead_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : p->dead_ms * 2;
                                        p->retry_at = now + p->dead_ms;
                                }
                                log_info("warm pool %s %s: container %s ended while it waited; removed "
                                         "(next one in %lld s)", p->m->name, p->m->version, p->ready[i]->run_id,
                                         (long long)((p->retry_at - now + 999) / 1000));
                                return pop_at(p, i);
                        }
                }
                if (!fattest || p->nready > fattest->nready)
                        fattest = p;
        }
        return over && fattest ? pop_oldest(fattest) : NULL;
}

/* Under the lock: the pool to make a container for next, if any may. */
static struct pool *wanting(struct warmpool *wp, int64_t now)
{
        int64_t used = 0, budget = 0;
        admission_memory(wp->d.admission, &used, &budget);
        int64_t warm = warm_mb(wp);
        for (struct pool *p = wp->pools; p; p = p->next) {
                if (p->draining || p->idle || now < p->retry_at || p->nready + p->making >= p->target)
                        continue;
                if (used + warm + p->memory_mb > budget) {
                        /* Short even with no job running: the operator's
                         * settings, said once, not the load of the moment. */
                        if (warm + p->memory_mb > budget && !p->told_short) {
                                p->told_short = true;
                                log_warn("warm pool %s %s: has %zu of its %zu containers; another does not fit "
                                         "in memory_pool_mb (%lld MiB; each container %lld MiB, warm containers "
                                         "%lld MiB in all)",
                                         p->m->name, p->m->version, p->nready + p->making, p->target,
                                         (long long)budget, (long long)p->memory_mb, (long long)warm);
                        }
                        continue;
                }
                return p;
        }
        return NULL;
}

static void reap_drained(struct warmpool *wp)
{
        for (struct pool **pp = &wp->pools; *pp;) {
                struct pool *p = *pp;
                if (p->draining && !p->nready && !p->making) {
                        *pp = p->next;
                        pool_free(p);
                } else {
                        pp = &p->next;
                }
        }
}

/* Without the lock: one container for m. */
static struct sandbox *make_one(struct warmpool *wp, const struct manifest *m, struct err *err)
{
        /* Cold runs first: leave a job user for each worker. */
        const struct config *cfg = wp->d.cfg;
        if ((int64_t)idpool_in_use(wp->d.ids) + cfg->workers + 1 > cfg->job_users.count) {
                err_set(err, ERR_BUSY, 0, "no job user to spare (job_users.count %lld, %lld workers)",
                        (long long)cfg->job_users.count, (long long)cfg->workers);
                return NULL;
        }
        struct job_ids ids;
        if (idpool_take(wp->d.ids, &ids, err) < 0)
                return NULL;
        char uuid[UUID_TEXT_SIZE];
        uuid_random_text(uuid);
        char run_id[RUN_ID_MAX];
        snprintf(run_id, sizeof run_id, "%s-0", uuid);
        /* Its own log until a job takes it over with a rename: beside the
         * jobs' logs, not in the workspace (a tmpfs). */
        _cleanup_free_ char *log_path = xasprintf("%s/%s.log", wp->d.env->warm_logs_dir, run_id);
        liveset_add(wp->d.live, run_id);
        struct sandbox *sb = NULL;
        bool retryable;
        if (sandbox_prepare(wp->d.env, m, run_id, ids, log_path, NULL, 0, &sb, &retryable, err) < 0) {
                cleaner_push(wp->d.cleaner, sb);   /* gives the ids back, leaves the live set */
                return NULL;
        }
        return sb;
}

static void *refill_main(void *arg)
{
        struct warmpool *wp = arg;
        pthread_mutex_lock(&wp->lock);
        for (;;) {
                int64_t now = now_mono_ms();
                struct sandbox *gone = victim(wp, now);
                if (gone) {
                        pthread_mutex_unlock(&wp->lock);
                        cleaner_push(wp->d.cleaner, gone);
                        pthread_mutex_lock(&wp->lock);
                        continue;
                }
                reap_drained(wp);
                if (wp->quit)
                        break;
                struct pool *p = wanting(wp, now);
                if (!p) {
                        struct timespec ts = timespec_in(CLOCK_MONOTONIC, TICK_MS);
                        pthread_cond_timedwait(&wp->kick, &wp->lock, &ts);
                        continue;
                }
                p->making++;
                struct manifest *m = manifest_ref(p->m);
                pthread_mutex_unlock(&wp->lock);
                struct err err = ERR_INIT;
                struct sandbox *sb = make_one(wp, m, &err);
                manifest_unref(m);
                pthread_mutex_lock(&wp->lock);
                p->making--;
                if (!sb) {
                        /* Backing off: a plugin whose containers never
                         * start (a broken rootfs, a runtime that fails
                         * create) is not made again every few seconds for
                         * ever, each failure a runtime call and a warning.
                         * No job user to spare is not the plugin's doing. */
                        if (err.code == ERR_BUSY)
                                p->retry_ms = RETRY_MS;
                        else
                                p->retry_ms = !p->retry_ms ? RETRY_MS
                                              : p->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : p->retry_ms * 2;
                        p->retry_at = now_mono_ms() + p->retry_ms;
                        log_warn("warm pool %s %s: %s (next try in %lld s)", p->m->name, p->m->version, err.msg,
                                 (long long)(p->retry_ms / 1000));
                        continue;
                }
                p->retry_ms = 0;
                if (p->nready == p->cap) {
                        p->cap = p->cap ? p->cap * 2 : 4;
                        p->ready = xrealloc(p->ready, p->cap * sizeof *p->ready);
                }
                p->ready[p->nready++] = sb;   /* victim() gives it up if the pool drains meanwhile */
        }
        pthread_mutex_unlock(&wp->lock);
        return NULL;
}

int warmpool_start(const struct warmpool_deps *deps, struct warmpool **ret, struct err *err)
{
        struct warmpool *wp = xcalloc(1, sizeof *wp);
        wp->d = *deps;
        wp->idle_ms = deps->cfg->warm.idle_seconds * 1000;
        pthread_mutex_init(&wp->lock, NULL);
        cond_init_monotonic(&wp->kick);
        int e = thread_start(&wp->thread, "edgecd-warmpool", refill_main, wp);
        if (e) {
                pthread_mutex_destroy(&wp->lock);
                pthread_cond_destroy(&wp->kick);
                free(wp);
                return err_set(err, ERR_INTERNAL, e, "start the warm pool");
        }
        *ret = wp;
        return 0;
}

struct sync_ctx {
        struct warmpool *wp;
        int64_t room;                /* warm.max_containers not yet given to a pool */
};

static void sync_one(struct manifest *m, void *ctx)
{
        struct sync_ctx *c = ctx;
        struct warmpool *wp = c->wp;
        if (m->warm <= 0)
                return;
        struct pool *p = wp->pools;
        while (p && (p->m != m || p->draining))
                p = p->next;
        if (!p) {
                p = xcalloc(1, sizeof *p);
                p->m = manifest_ref(m);
                p->memory_mb = oci_effective_limits(m, &wp->d.cfg->defaults).memory_mb;
                p->last_use = now_mono_ms();
                /* The same name and version reloaded: its counters go on
                 * (Prometheus counters never go back), and an emptied idle
                 * pool stays empty until a job comes. */
                for (struct pool *o = wp->pools; o; o = o->next) {
                        if (!o->seen && !o->draining && !strcmp(o->m->name, m->name) &&
                            !strcmp(o->m->version, m->version)) {
                                p->hits = o->hits;
                                p->misses = o->misses;
                                p->idle = o->idle;
                                p->last_use = o->last_use;
                                o->hits = o->misses = 0;
                                break;
                        }
                }
                p->next = wp->pools;
                wp->pools = p;
        }
        p->seen = true;
        int64_t want = m->warm < c->room ? m->warm : c->room;
        if (want < m->warm)
                log_warn("warm pool %s %s: %lld of the %lld warm containers it asks for (warm.max_containers %lld)",
                         m->name, m->version, (long long)want, (long long)m->warm,
                         (long long)wp->d.cfg->warm.max_containers);
        p->target = (size_t)want;
        c->room -= want;
}

void warmpool_sync(struct warmpool *wp, struct registry *r)
{
        if (!wp)
                return;
        pthread_mutex_lock(&wp->lock);
        for (struct pool *p = wp->pools; p; p = p->next)
                p->seen = false;
        struct sync_ctx c = { .wp = wp, .room = wp->d.cfg->warm.max_containers };
        registry_foreach(r, sync_one, &c);
        for (struct pool *p = wp->pools; p; p = p->next) {
                if (!p->seen && !p->draining) {
                        p->draining = true;
                        if (p->nready || p->making)
                                log_info("warm pool %s %s: the plugin changed or went; draining %zu container(s)",
                                         p->m->name, p->m->version, p->nready + p->making);
                }
        }
        pthread_cond_signal(&wp->kick);
        pthread_mutex_unlock(&wp->lock);
}

/* Under the lock: a ready container of m's pool, now the caller's, or
 * NULL (a miss, counted, when m has a pool). */
static struct sandbox *take_one(struct warmpool *wp, const struct manifest *m)
{
        struct sandbox *sb = NULL;
        for (struct pool *p = wp->pools; p && !wp->quit; p = p->next) {
                if (p->m != m || p->draining)
                        continue;
                p->last_use = now_mono_ms();
                p->idle = false;
                if (p->nready) {
                        sb = pop_oldest(p);
                        p->hits++;
                        p->dead_ms = 0;
                } else {
                        p->misses++;
                }
                pthread_cond_signal(&wp->kick);
                return sb;
        }
        /* m's pool drained (its plugin changed after this job was
         * accepted under m): it runs cold, a miss of the series its
         * algorithm and version show, which the pool now serving them
         * carries. */
        for (struct pool *p = wp->pools; p && !wp->quit; p = p->next) {
                if (!p->draining && !strcmp(p->m->name, m->name) && !strcmp(p->m->version, m->version)) {
                        p->misses++;
                        break;
                }
        }
        return NULL;
}

/* A hit counted for a container given up: the take that follows counts
 * (a hit or a miss) in its place. */
static void undo_hit(struct warmpool *wp, const struct manifest *m)
{
        for (struct pool *p = wp->pools; p; p = p->next) {
                if (p->m == m && !p->draining) {
                        if (p->hits)
                                p->hits--;
                        break;
                }
        }
}

struct sandbox *warmpool_take(struct warmpool *wp, const struct manifest *m)
{
        if (!wp || m->warm <= 0)
                return NULL;
        for (;;) {
                pthread_mutex_lock(&wp->lock);
                struct sandbox *sb = take_one(wp, m);
                pthread_mutex_unlock(&wp->lock);
                /* Built under the template as it stands: a template edited
                 * since (its limits, mounts, system calls) is what a cold
                 * run of m would get now, so this one goes. */
                if (!sb)
                        return NULL;
                /* A gate that died since the refill thread last looked
                 * would fail the job's attempt (and count against its
                 * algorithm): not the job's doing, so the next or cold. */
                bool alive = sandbox_waiting(sb);
                if (alive && oci_template_same(wp->d.cfg->templates_dir, m, &sb->tmpl))
                        return sb;
                if (!alive)
                        log_info("warm pool %s %s: container %s ended while it waited; removed", m->name,
                                 m->version, sb->run_id);
                else
                        log_info("warm pool %s %s: container %s was made under template files changed since; removed",
                                 m->name, m->version, sb->run_id);
                pthread_mutex_lock(&wp->lock);
                undo_hit(wp, m);
                pthread_mutex_unlock(&wp->lock);
                cleaner_push(wp->d.cleaner, sb);
        }
}

void warmpool_each(struct warmpool *wp, void (*fn)(const struct warmpool_stats *st, void *ctx), void *ctx)
{
        if (!wp)
                return;
        pthread_mutex_lock(&wp->lock);
        for (struct pool *p = wp->pools; p && !wp->quit; p = p->next) {
                if (p->draining)
                        continue;
                struct warmpool_stats st = {
                        .algorithm = p->m->name, .version = p->m->version, .ready = p->nready,
                        .target = p->target, .hits = p->hits, .misses = p->misses,
                };
                fn(&st, ctx);
        }
        pthread_mutex_unlock(&wp->lock);
}

void warmpool_stop(struct warmpool *wp)
{
        if (!wp)
                return;
        pthread_mutex_lock(&wp->lock);
        bool was = wp->quit;
        wp->quit = true;
        pthread_cond_signal(&wp->kick);
        pthread_mutex_unlock(&wp->lock);
        if (!was)
                pthread_join(wp->thread, NULL);
}

void warmpool_free(struct warmpool *wp)
{
        if (!wp)
                return;
        warmpool_stop(wp);
        /* The thread gave every ready container to the cleaner; what is
         * left is pool bookkeeping. */
        while (wp->pools) {
                struct pool *p = wp->pools;
                wp->pools = p->next;
                pool_free(p);
        }
        pthread_mutex_destroy(&wp->lock);
        pthread_cond_destroy(&wp->kick);
        free(wp);
}
