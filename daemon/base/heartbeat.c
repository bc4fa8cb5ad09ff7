/* heartbeat.c - see heartbeat.h. */
#include "heartbeat.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

static _Thread_local struct heartbeat *mine;

/* The watched slots: a handful, each added and removed once. */
static pthread_mutex_t watched_lock = PTHREAD_MUTEX_INITIALIZER;
static struct heartbeat *watched;

void heartbeat_watch(struct heartbeat *hb, const char *name)
{
        snprintf(hb->name, sizeof hb->name, "%s", name);
        atomic_store(&hb->mono_ms, now_mono_ms());
        pthread_mutex_lock(&watched_lock);
        bool listed = false;
        for (struct heartbeat *w = watched; w && !listed; w = w->next)
                listed = w == hb;
        if (!listed) {   /* twice would make the list a loop */
                hb->next = watched;
                watched = hb;
        }
        pthread_mutex_unlock(&watched_lock);
}

void heartbeat_unwatch(struct heartbeat *hb)
{
        pthread_mutex_lock(&watched_lock);
        for (struct heartbeat **p = &watched; *p; p = &(*p)->next) {
                if (*p == hb) {
                        *p = hb->next;
                        break;
                }
        }
        pthread_mutex_unlock(&watched_lock);
        hb->next = NULL;
}

int64_t heartbeat_most_silent(int64_t now, char *name, size_t size)
{
        int64_t worst = 0;
        pthread_mutex_lock(&watched_lock);
        for (struct heartbeat *hb = watched; hb; hb = hb->next) {
                int64_t age = heartbeat_age_ms(hb, now);
                if (age > worst) {
                        worst = age;
                        snprintf(name, size, "%s", hb->name);
                }
        }
        pthread_mutex_unlock(&watched_lock);
        return worst;
}

void heartbeat_bind(struct heartbeat *hb)
{
        mine = hb;
        if (hb)
                atomic_store(&hb->mono_ms, now_mono_ms());
}

void heartbeat_beat(void)
{
        if (mine)
                atomic_store_explicit(&mine->mono_ms, now_mono_ms(), memory_order_relaxed);
}

void heartbeat_idle(bool idle)
{
        if (mine)
                atomic_store(&mine->mono_ms, idle ? -1 : now_mono_ms());
}

int64_t heartbeat_age_ms(const struct heartbeat *hb, int64_t now)
{
        int64_t t = atomic_load_explicit(&hb->mono_ms, memory_order_relaxed);
        return t < 0 || now < t ? 0 : now - t;
}
