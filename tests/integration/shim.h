/* shim.h - what the LD_PRELOAD shims of the integration tests share: a
 * delay switched on by a flag file, and the path a descriptor names. */
#ifndef EDGECD_TEST_SHIM_H
#define EDGECD_TEST_SHIM_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Does the file named by the variable flag_env exist (the test's switch)? */
static inline bool shim_on(const char *flag_env)
{
        const char *flag = getenv(flag_env);
        return flag && access(flag, F_OK) == 0;
}

/* The path fd names, in path[size]; its length, or -1. */
static inline ssize_t shim_fd_path(int fd, char *path, size_t size)
{
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, size - 1);
        if (n >= 0)
                path[n] = '\0';
        return n;
}

/* Sleep the milliseconds the variable ms_env says (default_ms without it),
 * all of them, signals or not. */
static inline void shim_sleep(const char *ms_env, long default_ms)
{
        const char *ms = getenv(ms_env);
        long v = ms ? atol(ms) : default_ms;
        struct timespec ts = { .tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0)
                ;
}

#endif
