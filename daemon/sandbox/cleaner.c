/* cleaner.c - sandboxes taken apart off the job path (see cleaner.h). */
#include "cleaner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/heartbeat.h"
#include "base/log.h"
#include "base/util.h"

struct item {
        struct sandbox *sb;
        uint64_t held;           /* its ticket until cleaner_go(); 0: ready */
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
        uint64_t tickets;        /* the last one given */
        size_t held;             /* queued items still held (one per worker at most) */
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

/* The first item not held (any at a stop), out of the queue; NULL when
 * none (under c->lock). */
static struct item *take_ready(struct cleaner *c)
{
        struct item **p = &c->head;
        while (*p && (*p)->held && !c->quit)
                p = &(*p)->next;
        struct item *it = *p;
        if (!it)
                return NULL;
        if (it->held) {
                it->held = 0;   /* taken at a stop */
                c->held--;
        }
        *p = it->next;
        if (!*p)
                c->tail = p;
        return it;
}

static void *cleaner_main(void *arg)
{
        struct cleaner *c = arg;
        heartbeat_bind(&c->hb);
        pthread_mutex_lock(&c->lock);
        for (;;) {
                /* Waiting, for work or for a held one's go, is not judged. */
                heartbeat_idle(true);
                struct item *it;
                while (!(it = take_ready(c)) && !c->quit) {
                        c->idle = true;
                        pthread_cond_wait(&c->more, &c->lock);
                        c->idle = false;
                }
                if (!it)
                        break;   /* quit, nothing left */
                /* The tests' window; a stop ends it. */
                if (c->delay_ms > 0) {
                        struct timespec ts = timespec_in(CLOCK_MONOTONIC, c->delay_ms);
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

static uint64_t push(struct cleaner *c, struct sandbox *sb, bool held)
{
        if (!sb)
                return 0;
        struct item *it = xcalloc(1, sizeof *it);
        it->sb = sb;
        pthread_mutex_lock(&c->lock);
        /* A worker waiting for room is alive: it beats (heartbeat.h).
         * Held ones do not take room: they wait for their job's commit,
         * which a full disk holds up until the stop gives up on it, and
         * the stop may need room first (a warm container evicted). */
        while (!held && c->pending - c->held >= CLEANER_BACKLOG && !c->quit) {
                struct timespec ts = timespec_in(CLOCK_MONOTONIC, HEARTBEAT_SLICE_MS);
                pthread_cond_timedwait(&c->room, &c->lock, &ts);
                heartbeat_beat();
        }
        it->held = held ? ++c->tickets : 0;
        uint64_t ticket = it->held;
        c->held += held;
        *c->tail = it;
        c->tail = &it->next;
        c->pending++;
        /* Only an idle cleaner needs waking, and not for what it may not
         * take yet: a busy one looks at the queue before it waits again
         * (each needless wake-up is a context switch per job). */
        if (c->idle && !held)
                pthread_cond_signal(&c->more);
        pthread_mutex_unlock(&c->lock);
        return ticket;
}

void cleaner_push(struct cleaner *c, struct sandbox *sb)
{
        push(c, sb, false);
}

uint64_t cleaner_push_held(struct cleaner *c, struct sandbox *sb)
{
        return push(c, sb, true);
}

void cleaner_go(struct cleaner *c, uint64_t ticket)
{
        if (!ticket)
                return;
        pthread_mutex_lock(&c->lock);
        /* Not found: taken apart already, at a stop. */
        for (struct item *it = c->head; it; it = it->next)
                if (it->held == ticket) {
                        it->held = 0;
                        c->held--;
                        if (c->idle)
                                pthread_cond_signal(&c->more);
                        break;
                }
        pthread_mutex_unlock(&c->lock);
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
