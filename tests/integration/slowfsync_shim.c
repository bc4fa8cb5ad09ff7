/* slowfsync_shim.c - LD_PRELOAD for test_durable.py: while the file named
 * by SLOWFSYNC_FLAG exists, an fsync or fdatasync of a file whose name
 * ends in "-wal" (SQLite's WAL) first sleeps SLOWFSYNC_MS milliseconds
 * (default 1000), so that an answer sent before its fsync ended shows in
 * its time.  Built by the test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void maybe_sleep(int fd)
{
        const char *flag = getenv("SLOWFSYNC_FLAG");
        if (!flag || access(flag, F_OK) != 0)
                return;
        char link[64], path[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof path - 1);
        if (n < 4)
                return;
        path[n] = '\0';
        if (strcmp(path + n - 4, "-wal"))
                return;
        const char *ms = getenv("SLOWFSYNC_MS");
        long v = ms ? atol(ms) : 1000;
        struct timespec ts = { .tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0)
                ;
}

int fsync(int fd)
{
        maybe_sleep(fd);
        int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
        return real ? real(fd) : -1;
}

int fdatasync(int fd)
{
        maybe_sleep(fd);
        int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        return real ? real(fd) : -1;
}
