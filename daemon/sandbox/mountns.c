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

bool mountns_root_shared(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        bool shared = false;
        /* "... POINT OPTIONS [OPTIONAL...] - ...": the last line for / is
         * the one on top. */
        while (f && getline(&line, &cap, f) > 0) {
                char *sep = strstr(line, " - ");
                if (!sep)
                        continue;
                *sep = '\0';
                char *rest = NULL, *point = mountinfo_point(line, &rest);
                if (!point || !rest || strcmp(point, "/"))
                        continue;
                char *save = NULL;
                strtok_r(rest, " ", &save);     /* OPTIONS */
                shared = false;
                for (char *opt; (opt = strtok_r(NULL, " ", &save));)
                        shared |= !strncmp(opt, "shared:", 7);
        }
        return shared;
}

/* Back to the namespace `old`, with the root and working directory the
 * process had (setns gives it the namespace's own: a chroot would be
 * left). */
static int go_back(int old, int root, int cwd)
{
        if (setns(old, CLONE_NEWNS) < 0 || fchdir(root) < 0 || chroot(".") < 0 || fchdir(cwd) < 0)
                return -errno;
        return 0;
}

int mountns_own(struct err *err)
{
        if (!mountns_root_shared())
                return 0;
        /* A namespace is a thread's: with others running, they would stay
         * behind and see none of the daemon's mounts. */
        long threads = thread_count();
        if (threads < 0)
                return err_set(err, ERR_IO, 0, "mount namespace: no thread count in `/proc/self/status`");
        if (threads != 1)
                return err_set(err, ERR_INVALID, 0, "mount namespace: %ld threads run already (one expected)", threads);
        _cleanup_close_ int old = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (old < 0 || root < 0 || cwd < 0)
                return err_errno(err, ERR_IO, "mount namespace: open `/proc/self/ns/mnt`, `/` and `.`");
        if (unshare(CLONE_NEWNS) < 0)
                return err_errno(err, ERR_IO, "mount namespace: unshare(CLONE_NEWNS)");
        /* The copy's mounts are still peers of the old ones: make every
         * one a slave, so ours stay here.  The kernel reads no source or
         * type for that; valgrind checks them. */
        if (mount("none", "/", "none", MS_REC | MS_SLAVE, NULL) < 0) {
                int e = errno, r = go_back(old, root, cwd);
                if (r < 0)
                        return err_set(err, ERR_IO, -r,
                                       "mount namespace: mount(`/`, MS_REC|MS_SLAVE): %s; and cannot go back",
                                       strerror(e));
                return err_set(err, ERR_IO, e, "mount namespace: mount(`/`, MS_REC|MS_SLAVE)");
        }
        return 1;
}
