/* cleaner.c - sandboxes taken apart off the job path (see cleaner.h). */
#include "cleaner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heartbeat.h"
#include "log.h"
#include "util.h"

struct item {
        struct sandbox *sb;
        int64_t not_before;      /* now_mono_ms() clock; 0: at once */
        struct item *next;
};

/* A run whose container could not be deleted keeps its job ids out of the
 * pool until the collector has removed the container. */
struct parked {
        char run_id[RUN_ID_MAX];
        struct job_ids ids;
};

struct cleaner {
        struct sandbox_env env;
        struct idpool *ids;
        struct liveset *live;
        int64_t delay_ms;        /* EDGECD_TEST_CLEANUP_DELAY_MS: the tests' window */

        pthread_mutex_t lock;
        pthread_cond_t more, room;
        struct item *head, **tail;
        size_t pending;          /* queued + the one in hand */
        bool idle;               /* waiting for work (not for a run's time) */
        bool quit;
        pthread_t thread;
        struct heartbeat hb;     /* for the watchdog: sandboxes pile up if it sticks */
        struct parked *parked;
        size_t nparked, parked_cap;
};

/* A run's ids are parked before its sandbox is taken apart, not after it
 * failed to be: taking it apart may hand a slot it left something in to
 * the collector, which can remove the slot and release the run
 * (cleaner_released) before sandbox_destroy() returns. */
static void park(struct cleaner *c, const char *run_id, struct job_ids ids)
{
        pthread_mutex_lock(&c->lock);
        if (c->nparked == c->parked_cap) {
                c->parked_cap = c->parked_cap ? 2 * c->parked_cap : 4;
                c->parked = xrealloc(c->parked, c->parked_cap * sizeof *c->parked);
        }
        struct parked *p = &c->parked[c->nparked++];
        snprintf(p->run_id, sizeof p->run_id, "%s", run_id);
        p->ids = ids;
        pthread_mutex_unlock(&c->lock);
}

static void clean(struct cleaner *c, struct sandbox *sb)
{
        char run_id[RUN_ID_MAX];
        snprintf(run_id, sizeof run_id, "%s", sb->run_id);
        struct job_ids ids = sb->ids;
        park(c, run_id, ids);
        if (sandbox_destroy(&c->env, sb))
                cleaner_released(c, run_id);
        else
                log_job(LOG_LVL_WARN, NULL, NULL, run_id, "uid %lld stays out of use until its container or cgroup is removed",
                        (long long)ids.uid);
        liveset_remove(c->live, run_id);
}

static void *cleaner_main(void *arg)
{
        struct cleaner *c = arg;
        heartbeat_bind(&c->hb);
        pthread_mutex_lock(&c->lock);
        for (;;) {
                /* Waiting, for work or for a run's time, is not judged. */
                heartbeat_idle(true);
                while (!c->head && !c->quit) {
                        c->idle = true;
                        pthread_cond_wait(&c->more, &c->lock);
                        c->idle = false;
                }
                if (!c->head)
                        break;   /* quit, nothing left */
                struct item *it = c->head;
                c->head = it->next;
                if (!c->head)
                        c->tail = &c->head;
                /* The tests' window, or a deferred one's; a stop ends it. */
                int64_t wait = it->not_before - now_mono_ms();
                if (c->delay_ms > wait)
                        wait = c->delay_ms;
                if (wait > 0) {
                        struct timespec ts = timespec_in(CLOCK_MONOTONIC, wait);
                        while (!c->quit && pthread_cond_timedwait(&c->more, &c->lock, &ts) != ETIMEDOUT)
                                ;
                }
                pthread_mutex_unlock(&c->lock);
                heartbeat_idle(false);
                clean(c, it->sb);
                free(it);
                pthread_mutex_lock(&c->lock);
                c->pending--;
                pthread_cond_broadcast(&c->room);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int cleaner_start(const struct sandbox_env *env, struct idpool *ids, struct liveset *live,
                  struct cleaner **ret, struct err *err)
{
        struct cleaner *c = xcalloc(1, sizeof *c);
        c->env = *env;
        c->ids = ids;
        c->live = live;
        c->tail = &c->head;
        const char *delay = getenv("EDGECD_TEST_CLEANUP_DELAY_MS");
        c->delay_ms = delay ? strtoll(delay, NULL, 10) : 0;
        pthread_mutex_init(&c->lock, NULL);
        cond_init_monotonic(&c->more);
        cond_init_monotonic(&c->room);
        heartbeat_watch(&c->hb, "the cleaner");
        int e = thread_start(&c->thread, "edgecd-cleaner", cleaner_main, c);
        if (e) {
                heartbeat_unwatch(&c->hb);
                pthread_mutex_destroy(&c->lock);
                pthread_cond_destroy(&c->more);
                pthread_cond_destroy(&c->room);
                free(c);
                return err_set(err, ERR_INTERNAL, e, "start the cleaner");
        }
        if (c->delay_ms > 0)
                log_warn("cleanup delayed by %lld ms (EDGECD_TEST_CLEANUP_DELAY_MS, for tests)",
                         (long long)c->delay_ms);
        *ret = c;
        return 0;
}

static void push(struct cleaner *c, struct sandbox *sb, int64_t defer_ms)
{
        if (!sb)
                return;
        struct item *it = xcalloc(1, sizeof *it);
        it->sb = sb;
        pthread_mutex_lock(&c->lock);
        /* A worker waiting for room is alive: it beats (heartbeat.h). */
        while (c->pending >= CLEANER_BACKLOG && !c->quit) {
                struct timespec ts = timespec_in(CLOCK_MONOTONIC, HEARTBEAT_SLICE_MS);
                pthread_cond_timedwait(&c->room, &c->lock, &ts);
                heartbeat_beat();
        }
        it->not_before = defer_ms > 0 ? now_mono_ms() + defer_ms : 0;
        *c->tail = it;
        c->tail = &it->next;
        c->pending++;
        /* Only an idle cleaner needs waking: a busy one looks at the queue
         * before it waits again, and one waiting out a run's time sees it
         * next (each needless wake-up is a context switch per job). */
        if (c->idle)
                pthread_cond_signal(&c->more);
        pthread_mutex_unlock(&c->lock);
}

void cleaner_push(struct cleaner *c, struct sandbox *sb)
{
        push(c, sb, 0);
}

void cleaner_push_deferred(struct cleaner *c, struct sandbox *sb)
{
        push(c, sb, CLEANER_DEFER_MS);
}

void cleaner_released(struct cleaner *c, const char *run_id)
{
        struct job_ids ids = JOB_IDS_NONE;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->nparked; i++) {
                if (!strcmp(c->parked[i].run_id, run_id)) {
                        ids = c->parked[i].ids;
                        c->parked[i] = c->parked[--c->nparked];
                        break;
                }
        }
        pthread_mutex_unlock(&c->lock);
        idpool_give(c->ids, ids);
}

size_t cleaner_pending(struct cleaner *c)
{
        pthread_mutex_lock(&c->lock);
        size_t n = c->pending;
        pthread_mutex_unlock(&c->lock);
        return n;
}

void cleaner_free(struct cleaner *c)
{
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->quit = true;
        c->delay_ms = 0;   /* at a stop, no test window */
        pthread_cond_broadcast(&c->more);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        heartbeat_unwatch(&c->hb);
        free(c->parked);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->more);
        pthread_cond_destroy(&c->room);
        free(c);
}
