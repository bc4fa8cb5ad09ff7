/* slowlog_shim.c - LD_PRELOAD for test_jobs.py: while the file named by
 * SLOWLOG_FLAG exists, a write() to a file under the directory SLOWLOG_DIR
 * (a daemon's logs/) first sleeps SLOWLOG_MS milliseconds (default 3000),
 * as a write to a throttled or stalled disk would.  Built by the test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void maybe_sleep(int fd)
{
        const char *flag = getenv("SLOWLOG_FLAG");
        const char *dir = getenv("SLOWLOG_DIR");
        if (!flag || !dir || access(flag, F_OK) != 0)
                return;
        char link[64], path[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof path - 1);
        if (n < 0)
                return;
        path[n] = '\0';
        if (strncmp(path, dir, strlen(dir)) != 0)
                return;
        const char *ms = getenv("SLOWLOG_MS");
        long v = ms ? atol(ms) : 3000;
        struct timespec ts = { .tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0)
                ;
}

ssize_t write(int fd, const void *buf, size_t count)
{
        maybe_sleep(fd);
        ssize_t (*real)(int, const void *, size_t) =
                (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
        return real ? real(fd, buf, count) : -1;
}
