/* mountns.h - the daemon's mounts kept in a mount namespace of its own.
 *
 * The workspaces' tmpfs and each run's /output tmpfs would otherwise come
 * and go in the namespace the daemon was started in: on a host whose
 * PID 1 is systemd, each appearance and removal wakes systemd to re-read
 * the whole mount table (about 0.5 ms of PID 1's CPU per job measured
 * under systemd 252 with 47 mounts), and each propagates into every
 * namespace that is a slave of it (every hardened service's).  edgecd.service
 * gives the daemon a namespace already (ProtectSystem=); this does the same
 * for a daemon started any other way.  Mounts made outside after the start
 * still reach the daemon (slave propagation); none of its own leave it, and
 * all of them go with the namespace when its last process ends. */
#ifndef EDGECD_MOUNTNS_H
#define EDGECD_MOUNTNS_H

#include "base/error.h"

/* Move the calling process, which must have one thread only, into a new
 * mount namespace whose mounts receive the old one's but send none back.
 * On error nothing has changed (the process stays where it was). */
int mountns_own(struct err *err);

#endif
