/* acceptfail_shim.c - LD_PRELOAD for test_exhaust.py: while the file named
 * by ACCEPTFAIL_FLAG exists, accept() and accept4() fail with ENOBUFS, as
 * they do when the kernel has no memory for a new socket (which no test
 * can bring about on the host as it is).  Built by the test. */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
        if (shim_on("ACCEPTFAIL_FLAG")) {
                errno = ENOBUFS;
                return -1;
        }
        int (*real)(int, struct sockaddr *, socklen_t *, int) =
                (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
        return real ? real(fd, addr, len, flags) : -1;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
        if (shim_on("ACCEPTFAIL_FLAG")) {
                errno = ENOBUFS;
                return -1;
        }
        int (*real)(int, struct sockaddr *, socklen_t *) =
                (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
        return real ? real(fd, addr, len) : -1;
}
