/* slowlog_shim.c - LD_PRELOAD for test_jobs.py: while the file named by
 * SLOWLOG_FLAG exists, a write() to a file under the directory SLOWLOG_DIR
 * (a daemon's logs/) first sleeps SLOWLOG_MS milliseconds (default 3000),
 * as a write to a throttled or stalled disk would.  Built by the test. */
#include "shim.h"

#include <dlfcn.h>
#include <string.h>

static void maybe_sleep(int fd)
{
        const char *dir = getenv("SLOWLOG_DIR");
        char path[4096];
        if (dir && shim_on("SLOWLOG_FLAG") && shim_fd_path(fd, path, sizeof path) >= 0 &&
            !strncmp(path, dir, strlen(dir)))
                shim_sleep("SLOWLOG_MS", 3000);
}

ssize_t write(int fd, const void *buf, size_t count)
{
        maybe_sleep(fd);
        ssize_t (*real)(int, const void *, size_t) =
                (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
        return real ? real(fd, buf, count) : -1;
}
