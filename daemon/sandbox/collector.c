/* collector.c - periodic removal of leftovers (see collector.h).
 * Its thread sleeps on a condition variable between passes, so a stop
 * does not wait out the interval. */
#include "collector.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "cgroup.h"
#include "runcgroup.h"
#include "workspace.h"

struct collector {
        struct collector_deps d;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
};

/* "8-4-4-4-12" lower-case hex. */
static bool is_uuid(const char *s, size_t n)
{
        if (n != 36)
                return false;
        for (size_t i = 0; i < n; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
                        return false;
        }
        return true;
}

/* Is name one edgecd gives a run, a probe or a run cgroup slot? */
static bool name_is_ours(const char *name)
{
        if (runcgroup_slot_name(name, NULL))
                return true;
        const char *dash = strrchr(name, '-');
        if (dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1) && is_uuid(name, (size_t)(dash - name)))
                return true;
        const char *p = strstr(name, "probe-");
        return p && (p == name || !strncmp(name, "edgecd-", (size_t)(p - name))) && p[6] >= '0' && p[6] <= '9';
}

/* Left alone: live runs, and whatever edgecd did not name. */
static bool keep(const char *id, void *ctx)
{
        const struct collector_deps *d = ctx;
        return !name_is_ours(id) || (d->is_live && d->is_live(id, d->ctx));
}

size_t collector_run(const struct collector_deps *d)
{
        size_t total = 0, n = 0;
        struct err err = ERR_INIT;
        _cleanup_strv_ char **ids = NULL;
        if (runtime_list(d->rt, &ids, &err) < 0)
                log_warn("collector: containers: %s", err.msg);
        for (size_t i = 0; ids && ids[i]; i++) {
                if (keep(ids[i], (void *)(uintptr_t)d))
                        continue;
                err_clear(&err);
                if (runtime_delete_retry(d->rt, ids[i], 3, &err) < 0) {
                        log_warn("collector: %s", err.msg);
                        continue;
                }
                n++;
                if (d->released)
                        d->released(ids[i], d->ctx);
        }
        if (n) {
                log_warn("collector: removed %zu container(s) no run owned", n);
                metrics_leftovers_removed("container", n);
        }
        total += n;

        _cleanup_strv_ char **cgs = cgroup_list_children(d->cfg->cgroup_parent);
        n = 0;
        for (size_t i = 0; cgs && cgs[i]; i++) {
                if (keep(cgs[i], (void *)(uintptr_t)d))
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", d->cfg->cgroup_parent, cgs[i]);
                err_clear(&err);
                if (cgroup_destroy(path, &err) == 0) {
                        n++;
                        /* A run whose cgroup would not go kept its ids. */
                        if (d->released)
                                d->released(cgs[i], d->ctx);
                } else {
                        log_warn("collector: %s", err.msg);
                }
        }
        /* In a slot, what no run of ours owns: on v1 what a run's delete
         * left in a hierarchy other than memory's (see
         * cgroup_remove_ended), with no process. */
        for (size_t i = 0; cgs && cgs[i]; i++) {
                if (!runcgroup_slot_name(cgs[i], NULL) || !keep(cgs[i], (void *)(uintptr_t)d))
                        continue;
                _cleanup_free_ char *slot = xasprintf("%s/%s", d->cfg->cgroup_parent, cgs[i]);
                size_t k = 0;
                err_clear(&err);
                if (cgroup_sweep_children(slot, keep, (void *)(uintptr_t)d, &k, &err) < 0)
                        log_warn("collector: %s", err.msg);
                n += k;
        }
        if (n) {
                log_warn("collector: removed %zu cgroup(s) no run owned", n);
                metrics_leftovers_removed("cgroup", n);
        }
        total += n;

        _cleanup_free_ char *ws = xasprintf("%s/workspaces", d->cfg->state_dir);
        n = 0;
        err_clear(&err);
        if (workspace_sweep(ws, keep, (void *)(uintptr_t)d, &n, &err) < 0)
                log_warn("collector: %s", err.msg);
        if (n) {
                log_warn("collector: removed %zu workspace(s) no run owned", n);
                metrics_leftovers_removed("workspace", n);
        }
        total += n;

        /* Expired records and their logs. */
        if (d->store) {
                size_t gone = 0, step = 0;
                err_clear(&err);
                /* Aged in monotonic time: a step of the wall clock ahead
                 * makes no record (nor key) old at once. */
                int64_t before = wall_cutoff_ms(d->cfg->store.retention_seconds * 1000);
                /* In steps, so submissions never wait long behind it and a
                 * stop does not wait for a long backlog. */
                do {
                        if (store_prune(d->store, before, d->cfg->store.max_records, &step, &err) < 0) {
                                log_warn("collector: expired records: %s", err.msg);
                                break;
                        }
                        gone += step;
                } while (step == STORE_PRUNE_STEP && !(d->stop && __atomic_load_n(d->stop, __ATOMIC_RELAXED)));
                if (gone) {
                        log_info("collector: deleted %zu finished job record(s) past retention", gone);
                        metrics_records_pruned(gone);
                }
        }
        return total;
}

static void *collector_main(void *arg)
{
        struct collector *c = arg;
        pthread_mutex_lock(&c->lock);
        while (!c->stop) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += c->d.cfg->sweep_interval_seconds;
                while (!c->stop && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
                        ;
                if (c->stop)
                        break;
                pthread_mutex_unlock(&c->lock);
                collector_run(&c->d);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int collector_start(const struct collector_deps *deps, struct collector **ret, struct err *err)
{
        struct collector *c = xcalloc(1, sizeof *c);
        c->d = *deps;
        c->d.stop = &c->stop;
        pthread_mutex_init(&c->lock, NULL);
        cond_init_monotonic(&c->cond);
        int e = thread_start(&c->thread, "edgecd-collect", collector_main, c);
        if (e) {
                pthread_cond_destroy(&c->cond);
                pthread_mutex_destroy(&c->lock);
                free(c);
                return err_set(err, ERR_INTERNAL, e, "start the collector");
        }
        *ret = c;
        return 0;
}

void collector_stop(struct collector *c)
{
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        __atomic_store_n(&c->stop, true, __ATOMIC_RELAXED);
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
}
