/* heartbeat.h - threads that say they are alive, for the watchdog.
 *
 * A watched thread binds its own slot (heartbeat_bind) and beats at points
 * it passes at bounded intervals: each pass of its loop, and every wait it
 * does (pidref_wait(), a store write's wait, the cleaner's backlog and the
 * retry pauses beat at least once a second, so a thread waiting on a
 * running container, or on a write a full disk holds, keeps beating).  A slot marked
 * idle (waiting for work on a lock-free path of its own) is not judged.
 * The slots the watchdog judges are on one list (heartbeat_watch): the
 * workers, the store's writer and the cleaner, every thread a job's path
 * cannot do without.  The main loop asks heartbeat_most_silent() and stops
 * sending WATCHDOG=1 when one has been silent too long. */
#ifndef EDGECD_HEARTBEAT_H
#define EDGECD_HEARTBEAT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How often a watched wait wakes at least, to beat. */
#define HEARTBEAT_SLICE_MS 1000

struct heartbeat {
        _Atomic int64_t mono_ms;    /* the last beat; -1: idle */
        char name[40];              /* in the watchdog's message: "worker 0" */
        struct heartbeat *next;     /* on the watched list */
};

/* The watchdog judges hb from now on, as if it had just beaten; name is
 * what its message calls the thread.  Before the thread starts. */
void heartbeat_watch(struct heartbeat *hb, const char *name);
/* No more (before hb's memory goes; after the thread ended). */
void heartbeat_unwatch(struct heartbeat *hb);
/* The longest silence of a watched slot at now (0: none is silent), and
 * that slot's name copied to name. */
int64_t heartbeat_most_silent(int64_t now_mono_ms, char *name, size_t size);

/* The calling thread beats into hb from now on (NULL: no more). */
void heartbeat_bind(struct heartbeat *hb);
/* Beat the calling thread's slot, if it has one.  Cheap. */
void heartbeat_beat(void);
/* The calling thread waits for work (or beats again: false). */
void heartbeat_idle(bool idle);
/* Milliseconds since hb last beat at `now`; 0 when idle. */
int64_t heartbeat_age_ms(const struct heartbeat *hb, int64_t now_mono_ms);

#endif
