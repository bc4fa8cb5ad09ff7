/* reaper.h - the daemon's child processes: the subreaper flag, a pid held
 * together with its pidfd from the moment it is known (a pidref, as
 * systemd's), waiting for one with a deadline and a cancel fd, and reaping
 * the orphans nobody waits for.
 *
 * DESIGN: the daemon is a child subreaper (PR_SET_CHILD_SUBREAPER), so
 * three kinds of children end up with it:
 *   - helper programs it spawns itself (a runtime's CLI: spawn.c), which
 *     are registered before they can become zombies;
 *   - container inits, re-parented to the daemon when a runtime's `create`
 *     exits: their pid is learnt only afterwards (from a pid file);
 *   - anything else orphaned below us.
 * A registered child is waited for by its owner only.  An unregistered
 * zombie may be an init whose `create` has not been claimed yet, so the
 * orphan reaper leaves it alone while any claim window that was open when it
 * first saw the zombie is still open (reaper_window_open/close around a
 * `create`): an init that dies before it is claimed keeps its exit status,
 * and its pid cannot be recycled under the claimer.  Any thread. */
#ifndef EDGECD_REAPER_H
#define EDGECD_REAPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

enum proc_wait_status { WAIT_EXITED, WAIT_SIGNALED, WAIT_TIMEOUT, WAIT_CANCELLED };

struct proc_exit {
        enum proc_wait_status status;
        int exit_code;    /* WAIT_EXITED */
        int signal;       /* WAIT_SIGNALED */
        /* WAIT_SIGNALED read from a runtime's exit status 128+N (a runtime
         * run in the foreground): a process that exited with that status
         * (exit_code) by itself reads the same. */
        bool from_status;
};

/* A child and its pidfd, kept together from the moment the pid is known, so
 * that no wait or signal can hit a recycled pid.  fd is -1 where the kernel
 * (or valgrind) has no pidfd_open; the pid is still safe then, because an
 * unreaped child of ours keeps it, and only its owner reaps it. */
struct pidref {
        pid_t pid;
        int fd;
};

#define PIDREF_NULL ((struct pidref){ .pid = 0, .fd = -1 })

/* Become a child subreaper; once, from main, before any container. */
int reaper_setup(struct err *err);
bool reaper_is_subreaper(void);

/* A claim window: open it before starting a program that leaves us a child
 * whose pid we learn later, close it once that child is claimed (or the
 * attempt gave up).  Returns a ticket for reaper_window_close(). */
uint64_t reaper_window_open(void);
void reaper_window_close(uint64_t ticket);

/* For spawn.c: the table lock, held across the clone() so the new pid is
 * registered before it can exit. */
void reaper_lock(void);
void reaper_unlock(void);
/* Register pid as ours (table lock held) with its pidfd: pidfd when the
 * caller has one (clone's CLONE_PIDFD; it is the pidref's now), else -1
 * and one is opened. */
void pidref_register_locked(pid_t pid, int pidfd, struct pidref *ret);

/* Take pid, learnt from a runtime's pid file, as a child of ours that we
 * will wait for.  ERR_RUNTIME when it is not our child (a wrong pid file, or
 * an init already reaped by someone else). */
int pidref_claim(pid_t pid, struct pidref *ret, struct err *err);

/* Wait until the process ends (reaping it: the pidref is then done, as if
 * pidref_release), deadline_mono_ms passes (now_mono_ms() clock) or cancel_fd
 * (an eventfd, -1 for none) is readable.  On a timeout or cancel the process
 * is still ours: kill it and wait again. */
int pidref_wait(struct pidref *p, int64_t deadline_mono_ms, int cancel_fd, struct proc_exit *ret,
                struct err *err);

/* Send sig; 0, or an errno (ESRCH once it has exited). */
int pidref_signal(const struct pidref *p, int sig);

/* Let go: a process not yet reaped is left to the orphan reaper.  Safe on
 * PIDREF_NULL and twice. */
void pidref_release(struct pidref *p);

/* Reap zombies that are ours by subreaping but that nobody waits for.
 * Called once a second (not on SIGCHLD), from one thread.  Costs one
 * waitid() when no zombie waits; the scan of every thread's children
 * runs only when one nobody waits for is seen first, or once a second
 * while owned zombies are. */
void reaper_reap_orphans(void);

#endif
