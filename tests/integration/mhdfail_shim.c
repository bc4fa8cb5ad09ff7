/* mhdfail_shim.c - LD_PRELOAD for test_exhaust.py: libmicrohttpd's own
 * eventfd() calls fail with EMFILE from the MHDFAIL_AT-th on (1: its
 * first), as they do when the daemon is out of descriptors, so that its
 * HTTP server fails to start after libmicrohttpd was given the listening
 * socket.  And a close() of a descriptor that is not open says so on
 * stderr: a number closed twice.  Built by the test. */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>

static int mhd_calls;

int eventfd(unsigned int initval, int flags)
{
        const char *at = getenv("MHDFAIL_AT");
        Dl_info info;
        if (at && dladdr(__builtin_return_address(0), &info) && info.dli_fname &&
            strstr(info.dli_fname, "libmicrohttpd") &&
            __atomic_add_fetch(&mhd_calls, 1, __ATOMIC_SEQ_CST) >= atoi(at)) {
                fprintf(stderr, "mhdfail shim: libmicrohttpd's eventfd() fails (EMFILE)\n");
                errno = EMFILE;
                return -1;
        }
        int (*real)(unsigned int, int) = (int (*)(unsigned int, int))dlsym(RTLD_NEXT, "eventfd");
        return real ? real(initval, flags) : -1;
}

int close(int fd)
{
        int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
        int r = real ? real(fd) : -1;
        if (r < 0 && errno == EBADF && fd >= 0) {
                fprintf(stderr, "mhdfail shim: close(%d): not open (closed twice?)\n", fd);
                errno = EBADF;
        }
        return r;
}
