/* plugwatch.h - the plugins directory watched with inotify: a change in it
 * wakes the owner, after a quiet spell, so that it rescans.
 *
 * DESIGN: one thread.  It watches the directory and each plugin directory
 * in it (not deeper: a rootfs may hold thousands of directories), and
 * debounces: the wake-up comes PLUGWATCH_QUIET_MS after the last event (at
 * most PLUGWATCH_MAX_DELAY_MS after the first), so a copy in progress costs
 * one rescan, not hundreds.  Whether a plugin is whole is the rescan's to
 * decide (registry.h: a directory is taken once it has settled); when it
 * left something for later, plugwatch_again() asks for another wake-up,
 * which also sees what changed below the watched levels.  A directory that
 * is missing, or goes, is looked for again every second.  wake() runs on
 * the watch's thread and must only signal. */
#ifndef EDGECD_PLUGWATCH_H
#define EDGECD_PLUGWATCH_H

#include <stdint.h>

#include "base/error.h"

#define PLUGWATCH_QUIET_MS 250
#define PLUGWATCH_MAX_DELAY_MS 2000

struct plugwatch;

int plugwatch_start(const char *dir, void (*wake)(void *ctx), void *ctx, struct plugwatch **ret,
                    struct err *err);
/* Wake the owner again after_ms from now (the earlier of two asks wins). */
void plugwatch_again(struct plugwatch *w, int64_t after_ms);
/* Stop the thread and free.  NULL is fine. */
void plugwatch_stop(struct plugwatch *w);

#endif
