/* slowdns_shim.c - LD_PRELOAD for test_callbacks.py: a name lookup of
 * "slowdns.test" hangs for SLOWDNS_SECONDS (default 60), then fails;
 * every other name goes to the real getaddrinfo.  Built by the test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
        if (node && !strcmp(node, "slowdns.test")) {
                const char *s = getenv("SLOWDNS_SECONDS");
                unsigned left = s ? (unsigned)atoi(s) : 60;
                while (left)
                        left = sleep(left);
                return EAI_NONAME;
        }
        gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        if (!real)
                return EAI_SYSTEM;
        return real(node, service, hints, res);
}
