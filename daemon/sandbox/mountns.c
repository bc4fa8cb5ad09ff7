/* mountns.c - see mountns.h. */
#include "mountns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "base/util.h"

/* Threads of this process now (the Threads: line of /proc/self/status). */
static long thread_count(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        long n = -1;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "Threads: %ld", &n) == 1)
                        break;
        return n;
}

int mountns_own(struct err *err)
{
        /* A namespace is a thread's: with others running, they would stay
         * behind and see none of the daemon's mounts. */
        long threads = thread_count();
        if (threads < 0)
                return err_set(err, ERR_IO, 0, "mount namespace: no thread count in /proc/self/status");
        if (threads != 1)
                return err_set(err, ERR_INVALID, 0, "mount namespace: %ld threads run already (one expected)", threads);
        _cleanup_close_ int old = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (old < 0)
                return err_set(err, ERR_IO, errno, "mount namespace: open /proc/self/ns/mnt");
        if (unshare(CLONE_NEWNS) < 0)
                return err_set(err, ERR_IO, errno, "mount namespace: unshare(CLONE_NEWNS)");
        /* The copy's mounts are still peers of the old ones (a host's / is
         * shared): make every one a slave, so ours stay here.  The kernel
         * reads no source or type for that; valgrind checks them. */
        if (mount("none", "/", "none", MS_REC | MS_SLAVE, NULL) < 0) {
                int e = errno;
                if (setns(old, CLONE_NEWNS) < 0)
                        return err_set(err, ERR_IO, errno,
                                       "mount namespace: make / a slave: %s; and cannot go back", strerror(e));
                return err_set(err, ERR_IO, e, "mount namespace: make / a slave");
        }
        return 0;
}
