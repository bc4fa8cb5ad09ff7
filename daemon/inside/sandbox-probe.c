/* sandbox-probe - the one program edgecd itself runs inside a container.
 *
 * At start, for each candidate runtime, the daemon runs this static binary
 * as a job would run: same template, same seccomp policy, same namespaces,
 * limits and user (probe.c).  It reports what it sees and what happened to
 * calls the sandbox must stop; the daemon judges the report, and passes
 * over a runtime under which the sandbox does not hold (youki 0.7.0 once
 * read a seccomp argument rule the other way round and let
 * clone(CLONE_NEWUSER) through).
 *
 * Writes $EDGECD_OUTPUT/result.json (default /output):
 *   {"uid":N,"gid":N,"caps":{"CapInh":"0000000000000000",...},
 *    "no_new_privs":N,"seccomp":N,"interfaces":["lo"],
 *    "calls":{"fork":{"signal":null,"exit":7}, "forbidden":{...},
 *             "clone_newuser":{...}, "clone_newnet":{...}, "vsock":{...}}}
 * Each call is made in a child of its own, so one that kills is seen as
 * the signal it died of.  Linked statically (musl): the probe rootfs holds
 * this file and empty mount points, nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_SURVIVED 42     /* the call returned success */
#define EXIT_REFUSED 43      /* the call returned an error */

static char buf[16384];
static size_t len;

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
        va_end(ap);
        if (n > 0)
                len += (size_t)n < sizeof buf - len ? (size_t)n : sizeof buf - len - 1;
}

static char *slurp(const char *path)
{
        static char data[65536];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        size_t n = 0;
        for (;;) {
                ssize_t r = read(fd, data + n, sizeof data - 1 - n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                n += (size_t)r;
        }
        close(fd);
        data[n] = '\0';
        return data;
}

/* "Field:\t value" of /proc/self/status, as a JSON string. */
static void status_field(const char *status, const char *field)
{
        size_t fl = strlen(field);
        for (const char *p = status; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (!strncmp(p, field, fl) && p[fl] == ':') {
                        p += fl + 1;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        int n = (int)strcspn(p, "\n\"\\");
                        put("\"%.*s\"", n, p);
                        return;
                }
        }
        put("null");
}

enum call { C_FORK, C_FORBIDDEN, C_CLONE_NEWUSER, C_CLONE_NEWNET, C_VSOCK };

static _Noreturn void child(enum call c)
{
        long r = -1;
        switch (c) {
        case C_FORK:
                _exit(7);
        case C_FORBIDDEN:
                /* keyctl: never allowed by any policy edgecd accepts. */
                r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1, 0);
                break;
        case C_CLONE_NEWUSER:
                r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
                if (r == 0)
                        _exit(0);
                break;
        case C_CLONE_NEWNET:
                r = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
                if (r == 0)
                        _exit(0);
                break;
        case C_VSOCK:
                r = syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0);
                break;
        }
        _exit(r < 0 ? EXIT_REFUSED : EXIT_SURVIVED);
}

static void try_call(const char *name, enum call c, int first)
{
        put("%s\"%s\":", first ? "" : ",", name);
        pid_t pid = fork();
        if (pid < 0) {
                put("{\"error\":%d}", errno);
                return;
        }
        if (pid == 0)
                child(c);
        int st;
        while (waitpid(pid, &st, 0) < 0) {
                if (errno != EINTR) {
                        put("{\"error\":%d}", errno);
                        return;
                }
        }
        if (WIFSIGNALED(st))
                put("{\"signal\":%d,\"exit\":null}", WTERMSIG(st));
        else
                put("{\"signal\":null,\"exit\":%d}", WEXITSTATUS(st));
}

int main(void)
{
        const char *dir = getenv("EDGECD_OUTPUT");
        if (!dir || !*dir)
                dir = "/output";

        put("{\"uid\":%u,\"gid\":%u,\"euid\":%u,\"caps\":{", getuid(), getgid(), geteuid());
        char *status = slurp("/proc/self/status");
        static const char *const caps[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
                put("%s\"%s\":", i ? "," : "", caps[i]);
                status_field(status, caps[i]);
        }
        put("},\"no_new_privs\":");
        status_field(status, "NoNewPrivs");
        put(",\"seccomp\":");
        status_field(status, "Seccomp");

        /* /proc/net/dev: two header lines, then "  name: counters". */
        put(",\"interfaces\":[");
        char *netdev = slurp("/proc/net/dev");
        int line = 0, n = 0;
        for (char *p = netdev; p && *p; line++) {
                char *nl = strchr(p, '\n');
                char *colon = strchr(p, ':');
                if (line >= 2 && colon && (!nl || colon < nl)) {
                        while (*p == ' ')
                                p++;
                        put("%s\"%.*s\"", n++ ? "," : "", (int)(colon - p), p);
                }
                p = nl ? nl + 1 : NULL;
        }
        put("],\"calls\":{");
        try_call("fork", C_FORK, 1);
        try_call("forbidden", C_FORBIDDEN, 0);
        try_call("clone_newuser", C_CLONE_NEWUSER, 0);
        try_call("clone_newnet", C_CLONE_NEWNET, 0);
        try_call("vsock", C_VSOCK, 0);
        put("}}\n");

        char path[4096];
        snprintf(path, sizeof path, "%s/result.json", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                fprintf(stderr, "sandbox-probe: open %s: %s\n", path, strerror(errno));
                return 1;
        }
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, buf + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        fprintf(stderr, "sandbox-probe: write %s: %s\n", path, strerror(errno));
                        return 1;
                }
                off += (size_t)w;
        }
        if (close(fd) < 0) {
                fprintf(stderr, "sandbox-probe: close %s: %s\n", path, strerror(errno));
                return 1;
        }
        return 0;
}
