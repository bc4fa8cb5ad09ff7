/* heartbeat.c - see heartbeat.h. */
#include "heartbeat.h"

#include <stddef.h>

#include "util.h"

static _Thread_local struct heartbeat *mine;

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
