/* idpool.h - the user and group ids jobs run as: one pair per running
 * container, from a configured range that no host account uses.
 *
 * Why: per-user kernel limits (inotify instances, message-queue bytes,
 * RLIMIT_NPROC, the memlock budget) are counted per uid in the initial user
 * namespace.  Jobs sharing one uid (the host's `nobody`, as they once did)
 * could exhaust them for each other and for host services.  Each pair is
 * handed out to one container at a time and taken again only after the
 * longest-unused others (round robin), so nothing a finished job left
 * charged to its uid meets the next job.  Any thread. */
#ifndef EDGECD_IDPOOL_H
#define EDGECD_IDPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct idpool;

struct job_ids {
        int64_t uid, gid;   /* -1: none */
};

#define JOB_IDS_NONE ((struct job_ids){ .uid = -1, .gid = -1 })

/* uids first_uid .. first_uid+count-1 paired with gids first_gid + the same
 * offset. */
struct idpool *idpool_new(int64_t first_uid, int64_t first_gid, int64_t count);
void idpool_free(struct idpool *p);

/* ERR_BUSY when every pair is in use. */
int idpool_take(struct idpool *p, struct job_ids *ret, struct err *err);
/* Give a pair back; JOB_IDS_NONE and ids outside the range are ignored. */
void idpool_give(struct idpool *p, struct job_ids ids);
size_t idpool_in_use(struct idpool *p);

/* Check that no account in the passwd and group databases (getpwent,
 * getgrent: files and whatever NSS enumerates) has an id in the ranges.
 * ERR_INVALID naming the first one found. */
int idpool_check_host(int64_t first_uid, int64_t first_gid, int64_t count, struct err *err);

/* Where every edgecd on the host claims its ranges (/run: gone at boot). */
#define IDPOOL_CLAIMS_PATH "/run/lock/edgecd-job-users"

/* Claim the ranges against every other edgecd on this host: two daemons
 * handing out the same uid would let their jobs use up each other's
 * per-uid limits.  Byte-range locks on the file at path (open file
 * description locks: released when *ret_fd is closed, or the process
 * ends), uid U at offset U and gid G at 2^33 + G.  ERR_CONFLICT when
 * another process holds any of them for grace_ms (held_retry_wait(): a
 * predecessor's last spawn child lets go in moments); ERR_IO when path
 * cannot be used. */
int idpool_claim(const char *path, int64_t first_uid, int64_t first_gid, int64_t count, int64_t grace_ms,
                 int *ret_fd, struct err *err);

#endif
