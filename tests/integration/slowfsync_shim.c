/* slowfsync_shim.c - LD_PRELOAD for test_durable.py: while the file named
 * by SLOWFSYNC_FLAG exists, an fsync or fdatasync of a file whose name
 * ends in "-wal" (SQLite's WAL) first sleeps SLOWFSYNC_MS milliseconds
 * (default 1000), so that an answer sent before its fsync ended shows in
 * its time.  Built by the test. */
#include "shim.h"

#include <dlfcn.h>
#include <string.h>

static void maybe_sleep(int fd)
{
        char path[4096];
        ssize_t n;
        if (shim_on("SLOWFSYNC_FLAG") && (n = shim_fd_path(fd, path, sizeof path)) >= 4 &&
            !strcmp(path + n - 4, "-wal"))
                shim_sleep("SLOWFSYNC_MS", 1000);
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
