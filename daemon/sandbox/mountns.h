/* mountns.h - the daemon's mounts kept in a mount namespace of its own.
 *
 * The workspaces' tmpfs and each run's /output tmpfs would otherwise come
 * and go in the namespace the daemon was started in.  Where that
 * namespace's / is shared, as systemd makes it, each of them propagates
 * into every namespace that is a slave of it (every hardened service's),
 * and systemd, PID 1, re-reads the whole mount table at each (about 0.5 ms
 * of its CPU per job measured under systemd 252 with 47 mounts).
 * edgecd.service gives the daemon a namespace already (ProtectSystem=);
 * this does the same for a daemon started any other way: a slave of the
 * old one, so mounts made there later still reach the daemon, and none of
 * its own leave it; they go with it.  Where / is private (no systemd)
 * nothing propagates from the daemon's mounts anyway, and a copy of the
 * host's mounts would only keep the host's file systems busy after the
 * host unmounts them: there the daemon stays where it was started. */
#ifndef EDGECD_MOUNTNS_H
#define EDGECD_MOUNTNS_H

#include <stdbool.h>

#include "base/error.h"

/* Move the calling process, which must have one thread only, into a new
 * mount namespace that is a slave of the current one, when the current
 * one's / is a shared mount.  1: moved; 0: / is not shared (or not a
 * mount point: a chroot), nothing done; -1 with err: nothing changed (the
 * process is where it was, its root and working directory too). */
int mountns_own(struct err *err);

/* Is / a shared mount in this process's mount namespace? */
bool mountns_root_shared(void);

#endif
