/* testkit - one static binary behind every test plugin (tests/plugins/t_*).
 * The plugins differ only in plugin.yaml; argv[1] picks the behaviour the
 * daemon's tests need to provoke:
 *
 *   echo [v2]   copy input.json to result.json byte for byte
 *               (v2: {"version": 2, "input": <input>})
 *   exit N      "testkit: failing on purpose with status N" on stderr, exit N
 *   sleep       sleep parameters.seconds (default 3600), then {"slept": s}
 *   noresult    exit 0 without writing anything
 *   invalid     write `{"unterminated": ` as result.json, exit 0
 *   big         a valid JSON array of exactly parameters.bytes bytes
 *               (default 2 MiB)
 *   symlink     make /output/result.json a symlink to /etc/shadow
 *   sandbox     report what the process sees of its sandbox
 *   syscall     unshare(CLONE_NEWNS), which the seccomp allowlist lacks:
 *               SIGSYS; if it survives, {"survived": true, ...}
 *   syscall int80  the same with a 32-bit getpid through int 0x80
 *   memory      allocate and touch parameters.mb MiB (default 512)
 *   spam        parameters.bytes (default 1 MiB) to stdout, 1000 lines to
 *               stderr, then {"ok": true}; with parameters.fail N, the
 *               stdout part, a NUL byte and a last line, then exit N
 *   pids        fork sleeping children until fork fails (at most
 *               parameters.max, default 1000), report, kill and reap them
 *   parse       (self-test only) parse input.json as any JSON value and
 *               write it back re-serialized; exercises tests/plugins/json.c
 *
 * Attacks on the sandbox and on the daemon (never run them outside a
 * container; selftest.sh runs only the harmless ones):
 *
 *   forkbomb    every process forks forever, children too; retries a failed
 *               fork after 1 ms; no result (ends by timeout only)
 *   spin        busy loop for parameters.seconds (default forever), then
 *               {"spun": s}
 *   ignoreterm  ignore SIGTERM, SIGINT, SIGHUP and sleep forever; no result
 *   escape      double fork; the grandchild calls setsid(), closes stdio,
 *               ignores SIGTERM/SIGHUP and sleeps forever; the main process
 *               writes {"escaped_pid": grandchild pid inside} and exits 0
 *   net         try TCP/UDP/unix/netlink/packet sockets, list interfaces:
 *               {"attempts": {NAME: {"ok", "errno"}}, "interfaces": [...]}
 *   deadly      parameters.call: one forbidden call from deadly_calls[],
 *               after parameters.seconds (default 0);
 *               {"survived": true, ...} if it returns
 *   deadly_all  every deadly call in its own child: {"calls": {NAME:
 *               {"signal": N|null, "exit": N|null}}} (exit 42: it worked)
 *   resultattack  parameters.kind: a hostile /output/result.json (fifo,
 *               dir, hardlink, sparse, proc_symlink, devzero, growing,
 *               tmp_then_rename_late), exit 0
 *   manyobjects a valid result of exactly parameters.bytes (default 1 MiB)
 *               that is expensive as a tree: [{},{},...], [[],[],...] or
 *               parameters.depth nested arrays (parameters.shape)
 *   peer        parameters.role holder: plants files, SysV and POSIX IPC, an
 *               abstract socket, exhausts inotify instances and mqueues,
 *               sleeps, reports; prober: reports which of them it reaches
 *   workspace   what a run finds of its own workspace before it writes
 *               anything: {"uid", "gid", "hostname", "input_files",
 *               "input_text", "output_before", "tmp_before", "fds" (open
 *               descriptors as "N:target"), "mounts" (mount points, sorted),
 *               "output_after"};
 *               prints "workspace: tag=T" on stdout and stderr, leaves
 *               /output/mark-T and /tmp/mark-T, sleeps parameters.seconds
 *               (default 0), then lists /output again (parameters.tag T:
 *               default "x", 1..64 of [A-Za-z0-9_-])
 *
 * Inputs and outputs follow plugins/common/plugin.h (EDGECD_INPUT and
 * EDGECD_OUTPUT override the container paths).  Single-threaded. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "plugin.h"

extern char **environ;

static struct out out;

/* parameters.NAME as a number, def when absent; dies when present but not
 * a number in [min, max]. */
static double param_number(const struct json_value *params, const char *name, double def,
                           double min, double max)
{
        const struct json_value *v = json_object_get(params, name);
        if (!v)
                return def;
        if (v->type != JSON_NUMBER)
                plugin_die(EXIT_BAD_INPUT, "%s must be a number, got %s", name, json_type_name(v->type));
        if (!(v->u.num.d >= min && v->u.num.d <= max))
                plugin_die(EXIT_BAD_INPUT, "%s is %g, must be within %g..%g", name, v->u.num.d, min, max);
        return v->u.num.d;
}

/* errno_name(), plus the socket and IPC errors the attack modes meet. */
static const char *err_name(int e)
{
        static const struct { int num; const char *name; } more[] = {
#define E(x) { x, #x }
                E(ECONNREFUSED), E(ENETUNREACH), E(EHOSTUNREACH), E(ETIMEDOUT),
                E(EAFNOSUPPORT), E(EPROTONOSUPPORT), E(ESOCKTNOSUPPORT), E(EPFNOSUPPORT),
                E(EPROTOTYPE), E(EADDRNOTAVAIL), E(EADDRINUSE), E(ENETDOWN),
                E(EINPROGRESS), E(EALREADY), E(ECONNRESET), E(ECONNABORTED),
                E(ENOTCONN), E(EISCONN), E(ENOTSOCK), E(EMSGSIZE), E(EDESTADDRREQ),
                E(EIDRM), E(ENOMSG), E(ENOTTY), E(EOVERFLOW), E(ENOLINK),
#undef E
        };
        const char *name = errno_name(e);
        for (size_t i = 0; !name && i < sizeof(more) / sizeof(more[0]); i++)
                if (more[i].num == e)
                        name = more[i].name;
        return name;
}

static void write_errno(struct jw *w, int e)
{
        const char *name = err_name(e);
        if (e == 0)
                jw_null(w);
        else if (name)
                jw_str(w, name);
        else
                jw_int(w, e);
}

/* A call the sandbox should have stopped returned: {"survived": true,
 * "call"?: NAME, "result": r, "errno": ...} as result.json. */
static void write_survived(const char *call, long r, int e)
{
        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "survived");
        jw_bool(&w, true);
        if (call) {
                jw_key(&w, "call");
                jw_str(&w, call);
        }
        jw_key(&w, "result");
        jw_int(&w, r);
        jw_key(&w, "errno");
        write_errno(&w, e);
        jw_object_end(&w);
        out_commit(&out);
}

static int mode_echo(int argc, char **argv)
{
        bool v2 = argc > 2 && strcmp(argv[2], "v2") == 0;
        size_t len;
        char *buf = plugin_read_file(plugin_input_path(), &len);

        out_open_result(&out);
        if (v2) {
                struct json_value v;
                struct json_error jerr;
                if (json_parse(buf, len, &v, &jerr) < 0)
                        plugin_die(EXIT_BAD_INPUT, "%s: %s", plugin_input_path(), jerr.text);
                json_value_done(&v);
                out_puts(&out, "{\"version\":2,\"input\":");
                out_write(&out, buf, len);
                out_puts(&out, "}");
        } else {
                out_write(&out, buf, len);
        }
        out_commit(&out);
        free(buf);
        return 0;
}

static int mode_exit(int argc, char **argv)
{
        int status = 1;
        if (argc > 2) {
                char *end;
                long l = strtol(argv[2], &end, 10);
                if (*end || l < 0 || l > 255)
                        plugin_die(EXIT_BAD_INPUT, "exit: bad status `%s`", argv[2]);
                status = (int)l;
        }
        plugin_die(status, "failing on purpose with status %d", status);
}

static int mode_sleep(void)
{
        struct json_value params;
        plugin_read_params(&params);
        double s = param_number(&params, "seconds", 3600, 0, 1e9);
        json_value_done(&params);

        struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "slept");
        jw_double(&w, s);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* result.json is argv[2], byte for byte (a manifest's command holds it). */
static int mode_raw(int argc, char **argv)
{
        if (argc < 3)
                plugin_die(EXIT_BAD_INPUT, "raw: usage: testkit raw TEXT");
        out_open_result(&out);
        out_puts(&out, argv[2]);
        out_commit(&out);
        return 0;
}

static int read_oom_adj(void)
{
        char buf[16] = "";
        int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
                plugin_die(EXIT_INTERNAL, "read /proc/self/oom_score_adj: %s", strerror(errno));
        close(fd);
        return atoi(buf);
}

/* The job's OOM score (the daemon asks for 1000: a job goes first, not
 * the daemon), and whether it can lower it: {"before", "after", "refused"}. */
static int mode_oomadj(void)
{
        int before = read_oom_adj();
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        bool refused = fd < 0 || write(fd, "0", 1) != 1;
        if (fd >= 0)
                close(fd);
        int after = read_oom_adj();
        char text[96];
        snprintf(text, sizeof text, "{\"before\":%d,\"after\":%d,\"refused\":%s}", before, after,
                 refused ? "true" : "false");
        out_open_result(&out);
        out_puts(&out, text);
        out_commit(&out);
        return 0;
}

static const char *param_string(const struct json_value *params, const char *name, const char *def);

/* parameters.text as result.json (default `{"unterminated": `), as it is. */
static int mode_invalid(void)
{
        struct json_value params;
        plugin_read_params(&params);
        const char *text = param_string(&params, "text", "{\"unterminated\": ");
        out_open_result(&out);
        out_puts(&out, text);
        out_commit(&out);
        json_value_done(&params);
        return 0;
}

/* A hostile result: /output/result.json is a symlink to a host file (the
 * daemon reads results as root).  Must end invalid_result, never the file. */
static int mode_symlink(void)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/result.json", plugin_output_dir());
        if (symlink("/etc/shadow", path) < 0)
                plugin_die(EXIT_OUTPUT, "symlink %s: %s", path, strerror(errno));
        return 0;
}

static int mode_big(void)
{
        struct json_value params;
        plugin_read_params(&params);
        size_t bytes = (size_t)param_number(&params, "bytes", 2097152, 2, 1 << 30);
        json_value_done(&params);

        /* ["xxx...x"] is 4 + k bytes; below 4, [] padded with spaces (JSON
         * allows trailing whitespace) keeps the size exact. */
        out_open_result(&out);
        if (bytes < 4) {
                out_puts(&out, "[]");
                for (size_t i = 2; i < bytes; i++)
                        out_puts(&out, " ");
        } else {
                static char chunk[4096];
                memset(chunk, 'x', sizeof(chunk));
                out_puts(&out, "[\"");
                for (size_t left = bytes - 4; left > 0;) {
                        size_t k = left < sizeof(chunk) ? left : sizeof(chunk);
                        out_write(&out, chunk, k);
                        left -= k;
                }
                out_puts(&out, "\"]");
        }
        out_commit(&out);
        return 0;
}

/* The value of "Field:" in /proc/self/status, trimmed, or "" (buf 64). */
static const char *status_field(const char *status, const char *field, char buf[64])
{
        size_t fl = strlen(field);
        buf[0] = '\0';
        for (const char *p = status; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
                        p += fl + 1;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        size_t n = strcspn(p, "\n");
                        if (n > 63)
                                n = 63;
                        memcpy(buf, p, n);
                        buf[n] = '\0';
                        break;
                }
        }
        return buf;
}

/* Read a small /proc file; NULL when it cannot be opened. */
static char *read_proc(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        size_t cap = 4096, n = 0;
        char *buf = xmalloc(cap);
        for (;;) {
                if (n + 1 == cap) {
                        if (cap >= (1 << 20))
                                break;
                        cap *= 2;
                        char *q = realloc(buf, cap);
                        if (!q)
                                break;
                        buf = q;
                }
                ssize_t r = read(fd, buf + n, cap - n - 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                n += (size_t)r;
        }
        close(fd);
        buf[n] = '\0';
        return buf;
}

/* The next interface name in /proc/net/dev text (two header lines, then
 * "  name: counters"), from *cursor on; false at the end.  *line counts
 * lines across calls (start it at 0). */
static bool next_interface(char **cursor, int *line, const char **ret_name, size_t *ret_len)
{
        while (*cursor && **cursor) {
                char *p = *cursor;
                char *nl = strchr(p, '\n');
                char *colon = strchr(p, ':');
                *cursor = nl ? nl + 1 : NULL;
                if ((*line)++ >= 2 && colon && (!nl || colon < nl)) {
                        while (*p == ' ')
                                p++;
                        *ret_name = p;
                        *ret_len = (size_t)(colon - p);
                        return true;
                }
        }
        return false;
}

/* Try to create path (and remove it again).  true when it worked; errno in
 * *err otherwise. */
static bool try_create(const char *path, int *err)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                *err = errno;
                return false;
        }
        close(fd);
        unlink(path);
        *err = 0;
        return true;
}

static void key_probe(struct jw *w, const char *key, bool ok, int err)
{
        char k[64];
        jw_key(w, key);
        jw_bool(w, ok);
        snprintf(k, sizeof(k), "%.*s_errno", (int)(strcspn(key, "_")), key);
        jw_key(w, k);
        write_errno(w, err);
}

static int mode_sandbox(void)
{
        char *status = read_proc("/proc/self/status");
        char *netdev = read_proc("/proc/net/dev");
        char *mounts = read_proc("/proc/self/mounts");
        char buf[64];
        struct jw w;

        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "uid");
        jw_int(&w, getuid());
        jw_key(&w, "gid");
        jw_int(&w, getgid());
        jw_key(&w, "euid");
        jw_int(&w, geteuid());
        jw_key(&w, "egid");
        jw_int(&w, getegid());
        jw_key(&w, "pid");
        jw_int(&w, getpid());
        jw_key(&w, "ppid");
        jw_int(&w, getppid());

        gid_t groups[64];
        int ng = getgroups(64, groups);
        jw_key(&w, "groups");
        jw_array_begin(&w);
        for (int i = 0; i < ng; i++)
                jw_int(&w, groups[i]);
        jw_array_end(&w);

        static const char *const caps[][2] = {
                { "cap_inh", "CapInh" }, { "cap_prm", "CapPrm" }, { "cap_eff", "CapEff" },
                { "cap_bnd", "CapBnd" }, { "cap_amb", "CapAmb" },
        };
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
                jw_key(&w, caps[i][0]);
                jw_str(&w, status_field(status, caps[i][1], buf));
        }
        jw_key(&w, "no_new_privs");
        jw_int(&w, atoi(status_field(status, "NoNewPrivs", buf)));
        jw_key(&w, "seccomp");
        jw_int(&w, atoi(status_field(status, "Seccomp", buf)));
        /* What the process starts with: no blocked or ignored signals (the
         * daemon blocks them in its threads and ignores SIGPIPE). */
        jw_key(&w, "sig_blocked");
        jw_str(&w, status_field(status, "SigBlk", buf));
        jw_key(&w, "sig_ignored");
        jw_str(&w, status_field(status, "SigIgn", buf));

        /* TESTKIT_PROBE moves the rootfs probe when run by hand outside a
         * container, where / is the host's. */
        const char *rprobe = getenv("TESTKIT_PROBE");
        int err;
        bool ok = try_create(rprobe && *rprobe ? rprobe : "/testkit-probe", &err);
        key_probe(&w, "rootfs_writable", ok, err);

        /* /input: opening the file for writing, or creating a file next to it. */
        const char *in = plugin_input_path();
        int fd = open(in, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        int in_err = 0;
        ok = fd >= 0;
        if (fd >= 0)
                close(fd);
        else
                in_err = errno;
        char *slash = strrchr(in, '/');
        char probe[4096];
        snprintf(probe, sizeof(probe), "%.*s/testkit-probe",
                 slash ? (int)(slash - in) : 1, slash ? in : ".");
        int err2;
        if (try_create(probe, &err2))
                ok = true;
        key_probe(&w, "input_writable", ok, ok ? 0 : in_err);

        snprintf(probe, sizeof(probe), "%s/testkit-probe", plugin_output_dir());
        ok = try_create(probe, &err);
        key_probe(&w, "output_writable", ok, err);

        ok = try_create("/tmp/testkit-probe", &err);
        key_probe(&w, "tmp_writable", ok, err);

        jw_key(&w, "net_interfaces");
        jw_array_begin(&w);
        int line = 0;
        const char *ifname;
        size_t iflen;
        for (char *cur = netdev; next_interface(&cur, &line, &ifname, &iflen);)
                jw_string(&w, ifname, iflen);
        jw_array_end(&w);

        char host[256] = "";
        gethostname(host, sizeof(host) - 1);
        jw_key(&w, "hostname");
        jw_str(&w, host);

        /* /proc/self/mounts: "source target fstype options 0 0". */
        jw_key(&w, "mounts");
        jw_array_begin(&w);
        for (char *p = mounts; p && *p;) {
                char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                char *sp = memchr(p, ' ', len);
                if (sp) {
                        char *t = sp + 1;
                        char *end = memchr(t, ' ', len - (size_t)(t - p));
                        jw_string(&w, t, end ? (size_t)(end - t) : len - (size_t)(t - p));
                }
                p = nl ? nl + 1 : NULL;
        }
        jw_array_end(&w);

        jw_key(&w, "env");
        jw_array_begin(&w);
        for (char **e = environ; e && *e; e++)
                jw_str(&w, *e);
        jw_array_end(&w);

        char cwd[4096];
        jw_key(&w, "cwd");
        if (getcwd(cwd, sizeof(cwd)))
                jw_str(&w, cwd);
        else
                jw_null(&w);

        struct rlimit rl;
        jw_key(&w, "rlimit_nofile");
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                jw_int(&w, (int64_t)rl.rlim_cur);
        else
                jw_null(&w);
        jw_key(&w, "rlimit_core");
        if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                jw_int(&w, (int64_t)rl.rlim_cur);
        else
                jw_null(&w);

        jw_object_end(&w);
        out_commit(&out);
        free(status);
        free(netdev);
        free(mounts);
        return 0;
}

/* A 32-bit system call from this 64-bit process: getpid through int 0x80
 * (i386 number 20).  The filter allows only the native ABI, so this must
 * die; if it returns, the 32-bit ABI is open (and with it socketcall). */
static long int80_getpid(void)
{
#if defined(__x86_64__)
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        if (r < 0) {
                errno = (int)-r;
                return -1;
        }
        return r;
#else
        return syscall(SYS_unshare, CLONE_NEWNS);
#endif
}

static int mode_syscall(const char *how)
{
        /* Called through syscall() so no libc wrapper can second-guess it. */
        long r = how && strcmp(how, "int80") == 0 ? int80_getpid() : syscall(SYS_unshare, CLONE_NEWNS);
        int e = r < 0 ? errno : 0;
        write_survived(NULL, r, e);
        return 0;
}

static int mode_memory(void)
{
        struct json_value params;
        plugin_read_params(&params);
        size_t mb = (size_t)param_number(&params, "mb", 512, 0, 1 << 20);
        json_value_done(&params);

        /* 1 MiB blocks, each page written, kept until exit: the cgroup sees
         * resident memory, not a lazy reservation. */
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
                page = 4096;
        static void *head;   /* chained through each block: still reachable */
        for (size_t i = 0; i < mb; i++) {
                char *p = malloc(1 << 20);
                if (!p)
                        plugin_die(EXIT_INTERNAL, "out of memory after %zu MiB", i);
                for (size_t off = sizeof(void *); off < (1 << 20); off += (size_t)page)
                        ((volatile char *)p)[off] = 1;
                *(void **)p = head;
                head = p;
        }

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "allocated_mb");
        jw_int(&w, (int64_t)mb);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

static void write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t r = write(fd, s, n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        plugin_die(EXIT_OUTPUT, "write fd %d: %s", fd, strerror(r < 0 ? errno : EIO));
                s += r;
                n -= (size_t)r;
        }
}

static int mode_spam(void)
{
        struct json_value params;
        plugin_read_params(&params);
        size_t bytes = (size_t)param_number(&params, "bytes", 1048576, 0, 1 << 30);
        int fail = (int)param_number(&params, "fail", 0, 0, 255);
        json_value_done(&params);

        /* 64-byte lines, the last one cut to make the total exact. */
        static const char line[] =
                "testkit spam: the quick brown fox jumps over the lazy dog 01234\n";
        _Static_assert(sizeof(line) - 1 == 64, "64-byte line");
        static char block[64 * 256];
        for (size_t i = 0; i < sizeof(block); i += 64)
                memcpy(block + i, line, 64);
        for (size_t left = bytes; left > 0;) {
                size_t k = left < sizeof(block) ? left : sizeof(block);
                write_all(STDOUT_FILENO, block, k);
                left -= k;
        }
        if (fail) {
                /* A binary byte, then why it failed, last, on stdout alone:
                 * a runtime may relay stdout and stderr through pipes of
                 * its own (runc run does), in no set order between them. */
                static const char last[] = "\0testkit: gave up after all that output\n";
                write_all(STDOUT_FILENO, last, sizeof(last) - 1);
                exit(fail);
        }
        for (int i = 0; i < 1000; i++) {
                char msg[64];
                int n = snprintf(msg, sizeof(msg), "testkit: stderr line %d\n", i);
                write_all(STDERR_FILENO, msg, (size_t)n);
        }

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "ok");
        jw_bool(&w, true);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

static int mode_pids(void)
{
        struct json_value params;
        plugin_read_params(&params);
        size_t max = (size_t)param_number(&params, "max", 1000, 0, 100000);
        json_value_done(&params);

        pid_t parent = getpid();
        pid_t *kids = xcalloc(max ? max : 1, sizeof(*kids));
        size_t n = 0;
        int fork_errno = 0;
        while (n < max) {
                pid_t pid = fork();
                if (pid < 0) {
                        fork_errno = errno;
                        break;
                }
                if (pid == 0) {
                        /* Sleep until killed; leave on our own should the
                         * parent vanish without killing us. */
                        for (;;) {
                                struct timespec ts = { .tv_sec = 1 };
                                nanosleep(&ts, NULL);
                                if (getppid() != parent)
                                        _exit(0);
                        }
                }
                kids[n++] = pid;
        }
        for (size_t i = 0; i < n; i++)
                kill(kids[i], SIGKILL);
        for (size_t i = 0; i < n; i++)
                while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
                        ;
        free(kids);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "forked");
        jw_int(&w, (int64_t)n);
        jw_key(&w, "errno");
        write_errno(&w, fork_errno);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* ---- attacks: run these only inside a container ---- */

/* parameters.NAME as a string, def when absent; dies when present but not a
 * string or holding a NUL.  Points into params. */
static const char *param_string(const struct json_value *params, const char *name, const char *def)
{
        const struct json_value *v = json_object_get(params, name);
        if (!v)
                return def;
        if (v->type != JSON_STRING)
                plugin_die(EXIT_BAD_INPUT, "%s must be a string, got %s", name, json_type_name(v->type));
        if (strlen(v->u.str.s) != v->u.str.len)
                plugin_die(EXIT_BAD_INPUT, "%s holds a NUL byte", name);
        return v->u.str.s;
}

static void sleep_seconds(double s)
{
        struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static _Noreturn void sleep_forever(void)
{
        for (;;)
                pause();
}

static void ignore_signals(const int *sigs, size_t n)
{
        struct sigaction sa = { .sa_handler = SIG_IGN };
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < n; i++)
                if (sigaction(sigs[i], &sa, NULL) < 0)
                        plugin_die(EXIT_INTERNAL, "sigaction %d: %s", sigs[i], strerror(errno));
}

static void reap(pid_t pid, int *status)
{
        while (waitpid(pid, status, 0) < 0)
                if (errno != EINTR)
                        plugin_die(EXIT_INTERNAL, "waitpid %d: %s", (int)pid, strerror(errno));
}

/* key: {"ok": ok, "errno": err} */
static void write_attempt(struct jw *w, const char *key, bool ok, int err)
{
        jw_key(w, key);
        jw_object_begin(w);
        jw_key(w, "ok");
        jw_bool(w, ok);
        jw_key(w, "errno");
        write_errno(w, ok ? 0 : err);
        jw_object_end(w);
}

/* An attempt from a call's return value; errno is read only on failure. */
static void write_call(struct jw *w, const char *key, long r)
{
        write_attempt(w, key, r >= 0, r >= 0 ? 0 : errno);
}

/* Every process forks as fast as it can, children too, and none ever
 * leaves: only the pids limit stops the growth and only the daemon's
 * timeout ends the job.  A failed fork is retried after a millisecond
 * rather than given up, so the tree never shrinks by itself. */
static _Noreturn void mode_forkbomb(void)
{
        for (;;)
                if (fork() < 0)
                        sleep_seconds(0.001);
}

static double now_monotonic(void)
{
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                plugin_die(EXIT_INTERNAL, "clock_gettime: %s", strerror(errno));
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mode_spin(void)
{
        struct json_value params;
        plugin_read_params(&params);
        double s = param_number(&params, "seconds", -1, 0, 1e9);   /* -1: forever */
        json_value_done(&params);

        /* Pure arithmetic between clock reads (vDSO, no system call): only
         * the CPU quota can slow it down. */
        double end = now_monotonic() + s;
        volatile uint64_t x = 1;
        do {
                for (int i = 0; i < 1000000; i++)
                        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        } while (s < 0 || now_monotonic() < end);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "spun");
        jw_double(&w, s);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* Only SIGKILL ends it: the daemon must escalate after its grace period. */
static _Noreturn void mode_ignoreterm(void)
{
        static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
        ignore_signals(sigs, sizeof(sigs) / sizeof(sigs[0]));
        sleep_forever();
}

/* A daemonized grandchild: reparented, in its own session, no stdio, deaf
 * to SIGTERM and SIGHUP.  The job's main process exits 0 at once; the
 * daemon must still leave no process behind on the host. */
static int mode_escape(void)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                plugin_die(EXIT_INTERNAL, "pipe2: %s", strerror(errno));
        pid_t mid = fork();
        if (mid < 0)
                plugin_die(EXIT_INTERNAL, "fork: %s", strerror(errno));
        if (mid == 0) {
                close(p[0]);
                pid_t gc = fork();
                if (gc != 0)
                        _exit(gc < 0 ? 1 : 0);
                static const int sigs[] = { SIGTERM, SIGHUP };
                ignore_signals(sigs, sizeof(sigs) / sizeof(sigs[0]));
                if (setsid() < 0)
                        _exit(1);
                /* The pid goes up only once setsid worked: no pid, no escape. */
                pid_t me = getpid();
                if (write(p[1], &me, sizeof(me)) != (ssize_t)sizeof(me))
                        _exit(1);
                close(p[1]);
                close(STDIN_FILENO);
                close(STDOUT_FILENO);
                close(STDERR_FILENO);
                sleep_forever();
        }
        close(p[1]);
        int status;
        reap(mid, &status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                plugin_die(EXIT_INTERNAL, "middle child failed (wait status %#x)", status);
        pid_t gc;
        ssize_t n;
        do
                n = read(p[0], &gc, sizeof(gc));
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(gc))
                plugin_die(EXIT_INTERNAL, "the grandchild did not report its pid (%s)",
                           n < 0 ? strerror(errno) : "no setsid");
        close(p[0]);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "escaped_pid");
        jw_int(&w, gc);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* connect() that gives up after a second: a non-blocking socket and poll,
 * so an address that drops packets cannot hang the job.  0 or an errno. */
static int connect_1s(int fd, const void *sa, socklen_t len)
{
        if (connect(fd, sa, len) == 0)
                return 0;
        if (errno != EINPROGRESS)
                return errno;
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int r;
        do
                r = poll(&pfd, 1, 1000);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return errno;
        if (r == 0)
                return ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                return errno;
        return soerr;
}

/* socket() + connect_1s(): 0 or the errno of the step that failed. */
static int try_connect(int family, int type, const void *sa, socklen_t len)
{
        int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errno;
        int e = connect_1s(fd, sa, len);
        close(fd);
        return e;
}

static struct sockaddr_in sin4(const char *ip, int port)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
                plugin_die(EXIT_INTERNAL, "inet_pton %s failed", ip);
        return a;
}

/* An AF_UNIX address; a name starting with '@' is abstract (leading NUL). */
static socklen_t sun_addr(struct sockaddr_un *a, const char *name)
{
        size_t n = strlen(name);
        if (n >= sizeof(a->sun_path))
                plugin_die(EXIT_INTERNAL, "unix socket name too long: %s", name);
        memset(a, 0, sizeof(*a));
        a->sun_family = AF_UNIX;
        memcpy(a->sun_path, name, n);
        if (name[0] == '@') {
                a->sun_path[0] = '\0';
                return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        }
        return (socklen_t)sizeof(*a);
}

/* struct sockaddr_nl from <linux/netlink.h>, which musl does not ship. */
struct nl_sockaddr {
        sa_family_t nl_family;
        unsigned short nl_pad;
        uint32_t nl_pid;
        uint32_t nl_groups;
};
#define TK_NETLINK_ROUTE 0

static int try_netlink(void)
{
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, TK_NETLINK_ROUTE);
        if (fd < 0)
                return errno;
        struct nl_sockaddr a = { .nl_family = AF_NETLINK };
        int e = bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
        close(fd);
        return e;
}

static int try_packet(void)
{
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

static int try_broadcast(void)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errno;
        int one = 1, e = 0;
        struct sockaddr_in a = sin4("255.255.255.255", 9);
        if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0)
                e = errno;
        else if (sendto(fd, "x", 1, MSG_DONTWAIT, (const struct sockaddr *)&a, sizeof(a)) < 0)
                e = errno;
        close(fd);
        return e;
}

/* 1 up, 0 down, -1 unknown: SIOCGIFFLAGS, else /sys/class/net/NAME/operstate
 * (where lo says "unknown" even when up, hence only as a fallback). */
static int iface_up(int sock, const char *name)
{
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        size_t n = strlen(name);
        memcpy(ifr.ifr_name, name, n < sizeof(ifr.ifr_name) ? n : sizeof(ifr.ifr_name) - 1);
        if (sock >= 0 && ioctl(sock, SIOCGIFFLAGS, &ifr) == 0)
                return (ifr.ifr_flags & IFF_UP) != 0;
        char path[128];
        snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", name);
        char *state = read_proc(path);
        int up = -1;
        if (state && strncmp(state, "up", 2) == 0)
                up = 1;
        else if (state && strncmp(state, "down", 4) == 0)
                up = 0;
        free(state);
        return up;
}

static int mode_net(void)
{
        struct json_value params;
        plugin_read_params(&params);
        int port = (int)param_number(&params, "port", 80, 1, 65535);
        json_value_done(&params);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "attempts");
        jw_object_begin(&w);

        static const struct { const char *key, *ip; int port; } tcp4[] = {
                { "tcp4_localhost", "127.0.0.1", 0 },   /* 0: parameters.port */
                { "tcp4_internet", "1.1.1.1", 53 },
                { "tcp4_slirp_gateway", "10.0.2.2", 80 },
        };
        for (size_t i = 0; i < sizeof(tcp4) / sizeof(tcp4[0]); i++) {
                struct sockaddr_in a = sin4(tcp4[i].ip, tcp4[i].port ? tcp4[i].port : port);
                int e = try_connect(AF_INET, SOCK_STREAM, &a, sizeof(a));
                write_attempt(&w, tcp4[i].key, e == 0, e);
        }

        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        int e = try_connect(AF_INET6, SOCK_STREAM, &a6, sizeof(a6));
        write_attempt(&w, "tcp6_localhost", e == 0, e);

        /* Abstract names live in the network namespace; a path socket needs
         * the host's file system (sd_notify's is a datagram socket). */
        struct sockaddr_un un;
        socklen_t ulen = sun_addr(&un, "@edgecd-test-host");
        e = try_connect(AF_UNIX, SOCK_STREAM, &un, ulen);
        write_attempt(&w, "unix_abstract", e == 0, e);
        ulen = sun_addr(&un, "/run/systemd/notify");
        e = try_connect(AF_UNIX, SOCK_DGRAM, &un, ulen);
        write_attempt(&w, "unix_systemd_notify", e == 0, e);

        e = try_netlink();
        write_attempt(&w, "netlink_route_bind", e == 0, e);
        e = try_packet();
        write_attempt(&w, "packet_raw", e == 0, e);
        e = try_broadcast();
        write_attempt(&w, "udp_broadcast", e == 0, e);
        jw_object_end(&w);

        char *netdev = read_proc("/proc/net/dev");
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        jw_key(&w, "interfaces");
        jw_array_begin(&w);
        int line = 0;
        const char *ifname;
        size_t iflen;
        for (char *cur = netdev; next_interface(&cur, &line, &ifname, &iflen);) {
                char name[IF_NAMESIZE];   /* longer ones cannot exist */
                snprintf(name, sizeof(name), "%.*s", (int)iflen, ifname);
                int up = iface_up(sock, name);
                jw_object_begin(&w);
                jw_key(&w, "name");
                jw_str(&w, name);
                jw_key(&w, "up");
                if (up < 0)
                        jw_null(&w);
                else
                        jw_bool(&w, up);
                jw_object_end(&w);
        }
        jw_array_end(&w);
        if (sock >= 0)
                close(sock);
        free(netdev);

        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* ---- deadly calls: none is in seccomp.allow (or its argument rules), so
 * each must end the process with SIGSYS; namespace-making ones must at
 * least fail.  All through syscall(2), so no libc wrapper can refuse or
 * substitute anything first.  A call that works cleans up after itself. */

/* Raw clone without CLONE_VM: fork with extra flags.  The child leaves at
 * once; the parent reaps it. */
static long clone_flags(unsigned long flags)
{
        long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
                _exit(0);
        if (r > 0)
                reap((pid_t)r, NULL);
        return r;
}

static long dc_unshare(void) { return syscall(SYS_unshare, CLONE_NEWNS); }
static long dc_clone_newuser(void) { return clone_flags(CLONE_NEWUSER); }
static long dc_clone_newns(void) { return clone_flags(CLONE_NEWNS); }
static long dc_clone_newnet(void) { return clone_flags(CLONE_NEWNET); }
static long dc_mount(void) { return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0UL, NULL); }
/* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), no create. */
static long dc_keyctl(void) { return syscall(SYS_keyctl, 0, -3, 0); }
static long dc_bpf(void) { return syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0); }
static long dc_ptrace(void) { return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0); }
/* 425 on every architecture since Linux 5.1. */
static long dc_io_uring_setup(void) { return syscall(425, 0, 0); }
static long dc_perf_event_open(void) { return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); }
static long dc_vsock(void)
{
        long r = syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0);
        if (r >= 0)
                close((int)r);
        return r;
}
/* 0xffffffff only queries the persona. */
static long dc_personality(void) { return syscall(SYS_personality, 0xffffffffUL); }
static long dc_init_module(void) { return syscall(SYS_init_module, NULL, 0UL, ""); }
static long dc_acct(void) { return syscall(SYS_acct, NULL); }
static long dc_setns(void) { return syscall(SYS_setns, -1, 0); }

static const struct {
        const char *name;
        long (*call)(void);
} deadly_calls[] = {
        { "unshare", dc_unshare },
        { "clone_newuser", dc_clone_newuser },
        { "clone_newns", dc_clone_newns },
        { "clone_newnet", dc_clone_newnet },
        { "mount", dc_mount },
        { "keyctl", dc_keyctl },
        { "bpf", dc_bpf },
        { "ptrace", dc_ptrace },
        { "io_uring_setup", dc_io_uring_setup },
        { "perf_event_open", dc_perf_event_open },
        { "vsock", dc_vsock },
        { "personality", dc_personality },
        { "init_module", dc_init_module },
        { "acct", dc_acct },
        { "setns", dc_setns },
};
#define N_DEADLY (sizeof(deadly_calls) / sizeof(deadly_calls[0]))

static int mode_deadly(void)
{
        struct json_value params;
        plugin_read_params(&params);
        const char *name = param_string(&params, "call", NULL);
        if (!name)
                plugin_die(EXIT_BAD_INPUT, "call is missing");
        size_t i = 0;
        while (i < N_DEADLY && strcmp(deadly_calls[i].name, name) != 0)
                i++;
        if (i == N_DEADLY)
                plugin_die(EXIT_BAD_INPUT, "unknown call `%s`", name);
        /* A pause first lets a test hold two such jobs at once. */
        double s = param_number(&params, "seconds", 0, 0, 3600);
        json_value_done(&params);
        struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;

        long r = deadly_calls[i].call();
        int e = r < 0 ? errno : 0;
        write_survived(deadly_calls[i].name, r, e);
        return 0;
}

static int mode_deadly_all(void)
{
        int status[N_DEADLY];
        for (size_t i = 0; i < N_DEADLY; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        plugin_die(EXIT_INTERNAL, "fork: %s", strerror(errno));
                if (pid == 0)
                        _exit(deadly_calls[i].call() < 0 ? 0 : 42);
                reap(pid, &status[i]);
        }

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "calls");
        jw_object_begin(&w);
        for (size_t i = 0; i < N_DEADLY; i++) {
                jw_key(&w, deadly_calls[i].name);
                jw_object_begin(&w);
                jw_key(&w, "signal");
                if (WIFSIGNALED(status[i]))
                        jw_int(&w, WTERMSIG(status[i]));
                else
                        jw_null(&w);
                jw_key(&w, "exit");
                if (WIFEXITED(status[i]))
                        jw_int(&w, WEXITSTATUS(status[i]));
                else
                        jw_null(&w);
                jw_object_end(&w);
        }
        jw_object_end(&w);
        jw_object_end(&w);
        out_commit(&out);
        return 0;
}

/* ---- hostile result files ---- */

/* Appends "0," forever in 4 KiB blocks; on ENOSPC and the like it keeps
 * retrying.  A short write resumes mid-block so the pattern stays "0,". */
static _Noreturn void grow_forever(int fd)
{
        static char block[4096];
        for (size_t i = 0; i < sizeof(block); i += 2)
                memcpy(block + i, "0,", 2);
        size_t off = 0;
        for (;;) {
                ssize_t r = write(fd, block + off, sizeof(block) - off);
                if (r > 0)
                        off = (off + (size_t)r) % sizeof(block);
                else if (r < 0 && errno != EINTR)
                        sleep_seconds(0.01);
        }
}

static int mode_resultattack(void)
{
        struct json_value params;
        plugin_read_params(&params);
        const char *kind = param_string(&params, "kind", NULL);
        if (!kind)
                plugin_die(EXIT_BAD_INPUT, "kind is missing");
        off_t bytes = (off_t)param_number(&params, "bytes", 1073741824.0, 0, 1e15);

        char path[4096], tmp[4200];
        snprintf(path, sizeof(path), "%s/result.json", plugin_output_dir());
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);

        if (strcmp(kind, "fifo") == 0) {
                /* A reader that opens it blocking waits for a writer forever. */
                if (mkfifo(path, 0644) < 0)
                        plugin_die(EXIT_OUTPUT, "mkfifo %s: %s", path, strerror(errno));
        } else if (strcmp(kind, "dir") == 0) {
                if (mkdir(path, 0755) < 0)
                        plugin_die(EXIT_OUTPUT, "mkdir %s: %s", path, strerror(errno));
        } else if (strcmp(kind, "hardlink") == 0) {
                /* Across mounts this is EXDEV; either way the job "succeeds". */
                const char *in = plugin_input_path();
                if (link(in, path) < 0)
                        fprintf(stderr, "testkit: link %s %s: %s\n", in, path, strerror(errno));
                else
                        fprintf(stderr, "testkit: linked %s to %s\n", path, in);
        } else if (strcmp(kind, "sparse") == 0) {
                /* A huge size with no blocks: a reader must check the size
                 * before reading.  A small tmpfs may refuse (EFBIG/ENOSPC);
                 * the empty file is then the result. */
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0)
                        plugin_die(EXIT_OUTPUT, "open %s: %s", path, strerror(errno));
                if (ftruncate(fd, bytes) < 0)
                        fprintf(stderr, "testkit: ftruncate %s to %lld: %s (ignored)\n", path,
                                (long long)bytes, strerror(errno));
                if (close(fd) < 0)
                        plugin_die(EXIT_OUTPUT, "close %s: %s", path, strerror(errno));
        } else if (strcmp(kind, "proc_symlink") == 0 || strcmp(kind, "devzero") == 0) {
                /* Resolved by a root reader on the host: the daemon's own
                 * environment, or an endless read. */
                const char *target = kind[0] == 'p' ? "/proc/1/environ" : "/dev/zero";
                if (symlink(target, path) < 0)
                        plugin_die(EXIT_OUTPUT, "symlink %s: %s", path, strerror(errno));
        } else if (strcmp(kind, "growing") == 0) {
                /* "[" is a valid prefix that never closes; a child keeps it
                 * growing after the main process has exited 0. */
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0)
                        plugin_die(EXIT_OUTPUT, "open %s: %s", path, strerror(errno));
                write_all(fd, "[", 1);
                pid_t pid = fork();
                if (pid < 0)
                        plugin_die(EXIT_INTERNAL, "fork: %s", strerror(errno));
                if (pid == 0)
                        grow_forever(fd);
                close(fd);
        } else if (strcmp(kind, "tmp_then_rename_late") == 0) {
                /* A complete result under the temporary name only, as if
                 * the job died just before its rename. */
                int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0)
                        plugin_die(EXIT_OUTPUT, "open %s: %s", tmp, strerror(errno));
                write_all(fd, "{\"late\":true}", 13);
                if (close(fd) < 0)
                        plugin_die(EXIT_OUTPUT, "close %s: %s", tmp, strerror(errno));
        } else {
                plugin_die(EXIT_BAD_INPUT, "unknown kind `%s`", kind);
        }
        json_value_done(&params);
        return 0;
}

/* s (len bytes, at most 64) written times times, through 64 KiB blocks. */
static void out_repeat(const char *s, size_t len, size_t times)
{
        static char block[64 * 1024];
        size_t per = sizeof(block) / len;
        for (size_t i = 0; i < per; i++)
                memcpy(block + i * len, s, len);
        while (times > 0) {
                size_t k = times < per ? times : per;
                out_write(&out, block, k * len);
                times -= k;
        }
}

/* A valid result that is cheap in bytes but costly as a parsed tree: one
 * node per 3 bytes, or one nesting level per 2 bytes.  Trailing spaces make
 * the size exact. */
static int mode_manyobjects(void)
{
        struct json_value params;
        plugin_read_params(&params);
        size_t bytes = (size_t)param_number(&params, "bytes", 1048576, 2, 1 << 30);
        size_t depth = (size_t)param_number(&params, "depth", 100000, 1, 1 << 29);
        const char *shape = param_string(&params, "shape", "objects");
        bool deep = strcmp(shape, "deep") == 0;
        const char *item = strcmp(shape, "objects") == 0 ? "{}" : strcmp(shape, "arrays") == 0 ? "[]" : NULL;
        if (!deep && !item)
                plugin_die(EXIT_BAD_INPUT, "shape is `%s`, must be objects, arrays or deep", shape);
        if (deep && 2 * depth > bytes)
                plugin_die(EXIT_BAD_INPUT, "depth %zu needs %zu bytes, more than bytes (%zu)", depth,
                           2 * depth, bytes);
        json_value_done(&params);

        size_t used;
        out_open_result(&out);
        if (deep) {
                out_repeat("[", 1, depth);
                out_repeat("]", 1, depth);
                used = 2 * depth;
        } else {
                /* n items: "[" + n * 2 + (n - 1) commas + "]" = 3n + 1. */
                size_t n = (bytes - 1) / 3;
                out_puts(&out, "[");
                if (n > 0) {
                        out_puts(&out, item);
                        char sep[3] = { ',', item[0], item[1] };
                        out_repeat(sep, 3, n - 1);
                }
                out_puts(&out, "]");
                used = n > 0 ? 3 * n + 1 : 2;
        }
        out_repeat(" ", 1, bytes - used);
        out_commit(&out);
        return 0;
}

/* ---- two jobs probing each other ---- */

#define PEER_KEY ((key_t)0x5eed0000)
#define PEER_MAX 65536   /* cap on the exhaustion loops, for a run by hand */

/* Create path holding "secret": 0 or an errno. */
static int plant_file(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return errno;
        ssize_t n = write(fd, "secret", 6);
        int e = n < 0 ? errno : n != 6 ? EIO : 0;
        if (close(fd) < 0 && !e)
                e = errno;
        return e;
}

static int try_open(const char *path)
{
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

static void write_count(struct jw *w, const char *key, int n, int err)
{
        jw_key(w, key);
        jw_object_begin(w);
        jw_key(w, "count");
        jw_int(w, n);
        jw_key(w, "errno");
        write_errno(w, err);
        jw_object_end(w);
}

static void peer_holder(const char *tag, double seconds)
{
        char path[128], tmp_path[128], shm_path[128], sockname[128];
        snprintf(tmp_path, sizeof(tmp_path), "/tmp/peer-%s", tag);
        snprintf(shm_path, sizeof(shm_path), "/dev/shm/peer-%s", tag);
        int tmp_err = plant_file(tmp_path);
        int shm_err = plant_file(shm_path);

        int msq = msgget(PEER_KEY, IPC_CREAT | 0600);
        int msq_err = msq < 0 ? errno : 0;
        int shm = shmget(PEER_KEY, 4096, IPC_CREAT | 0600);
        int shmseg_err = shm < 0 ? errno : 0;

        /* mq_open is a system call of its own: /dev/mqueue only shows the
         * queues, it is not needed.  Kept open until exit. */
        snprintf(path, sizeof(path), "/peer-%s", tag);
        mqd_t mq = mq_open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600, NULL);
        int mq_err = mq == (mqd_t)-1 ? errno : 0;

        snprintf(sockname, sizeof(sockname), "@edgecd-peer-%s", tag);
        struct sockaddr_un un;
        socklen_t ulen = sun_addr(&un, sockname);
        int sock_err = 0;
        int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0 || bind(sock, (const struct sockaddr *)&un, ulen) < 0 || listen(sock, 16) < 0)
                sock_err = errno;

        /* Per-user kernel resources: the queues charge the uid's
         * RLIMIT_MSGQUEUE and stay in the IPC namespace after close (closed
         * so they do not also eat file descriptors); the inotify instances
         * count against the uid's max_user_instances while open. */
        int nmq = 0, nmq_err = 0;
        while (nmq < PEER_MAX) {
                snprintf(path, sizeof(path), "/peer-%s-%d", tag, nmq);
                mqd_t q = mq_open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, NULL);
                if (q == (mqd_t)-1) {
                        nmq_err = errno;
                        break;
                }
                mq_close(q);
                nmq++;
        }
        int nin = 0, nin_err = 0;
        while (nin < PEER_MAX) {
                if (inotify_init1(IN_CLOEXEC) < 0) {
                        nin_err = errno;
                        break;
                }
                nin++;
        }

        sleep_seconds(seconds);

        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "role");
        jw_str(&w, "holder");
        jw_key(&w, "pid");
        jw_int(&w, getpid());
        jw_key(&w, "uid");
        jw_int(&w, getuid());
        write_attempt(&w, "tmp_file", tmp_err == 0, tmp_err);
        write_attempt(&w, "shm_file", shm_err == 0, shm_err);
        write_attempt(&w, "sysv_msg", msq_err == 0, msq_err);
        write_attempt(&w, "sysv_shm", shmseg_err == 0, shmseg_err);
        write_attempt(&w, "posix_mq", mq_err == 0, mq_err);
        write_attempt(&w, "abstract_socket", sock_err == 0, sock_err);
        write_count(&w, "inotify", nin, nin_err);
        write_count(&w, "mqueues", nmq, nmq_err);
        jw_object_end(&w);
        out_commit(&out);
}

static void peer_prober(const char *tag)
{
        char path[128];
        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "role");
        jw_str(&w, "prober");
        jw_key(&w, "pid");
        jw_int(&w, getpid());
        jw_key(&w, "uid");
        jw_int(&w, getuid());

        jw_key(&w, "procs");
        DIR *d = opendir("/proc");
        if (d) {
                jw_array_begin(&w);
                for (struct dirent *de; (de = readdir(d));) {
                        char *end;
                        long pid = strtol(de->d_name, &end, 10);
                        if (de->d_name[0] >= '1' && de->d_name[0] <= '9' && !*end)
                                jw_int(&w, pid);
                }
                jw_array_end(&w);
                closedir(d);
        } else {
                jw_null(&w);
        }

        snprintf(path, sizeof(path), "/tmp/peer-%s", tag);
        int e = try_open(path);
        write_attempt(&w, "tmp_file", e == 0, e);
        snprintf(path, sizeof(path), "/dev/shm/peer-%s", tag);
        e = try_open(path);
        write_attempt(&w, "shm_file", e == 0, e);
        write_call(&w, "sysv_msg", msgget(PEER_KEY, 0));
        write_call(&w, "sysv_shm", shmget(PEER_KEY, 0, 0));

        snprintf(path, sizeof(path), "/peer-%s", tag);
        mqd_t mq = mq_open(path, O_RDONLY | O_CLOEXEC);
        write_call(&w, "posix_mq", mq == (mqd_t)-1 ? -1 : 0);
        if (mq != (mqd_t)-1)
                mq_close(mq);

        char sockname[128];
        snprintf(sockname, sizeof(sockname), "@edgecd-peer-%s", tag);
        struct sockaddr_un un;
        socklen_t ulen = sun_addr(&un, sockname);
        e = try_connect(AF_UNIX, SOCK_STREAM, &un, ulen);
        write_attempt(&w, "abstract_socket", e == 0, e);

        /* Signal 0 only tests for existence and permission: which pids
         * could this job signal?  ESRCH ones (no such process) are left
         * out. */
        jw_key(&w, "kill_all");
        jw_array_begin(&w);
        for (pid_t pid = 1; pid <= 64; pid++) {
                if (pid == getpid())
                        continue;
                int r = kill(pid, 0);
                if (r < 0 && errno == ESRCH)
                        continue;
                jw_object_begin(&w);
                jw_key(&w, "pid");
                jw_int(&w, pid);
                jw_key(&w, "ok");
                jw_bool(&w, r == 0);
                jw_key(&w, "errno");
                write_errno(&w, r == 0 ? 0 : errno);
                jw_object_end(&w);
        }
        jw_array_end(&w);

        int fd = inotify_init1(IN_CLOEXEC);
        write_call(&w, "inotify_init", fd);
        if (fd >= 0)
                close(fd);

        snprintf(path, sizeof(path), "/probe-%s", tag);
        mq = mq_open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600, NULL);
        write_call(&w, "mq_open_new", mq == (mqd_t)-1 ? -1 : 0);
        if (mq != (mqd_t)-1) {
                mq_close(mq);
                mq_unlink(path);
        }

        jw_object_end(&w);
        out_commit(&out);
}

static int mode_peer(void)
{
        struct json_value params;
        plugin_read_params(&params);
        const char *role = param_string(&params, "role", NULL);
        const char *tag = param_string(&params, "tag", "x");
        double seconds = param_number(&params, "seconds", 30, 0, 86400);
        if (!role)
                plugin_die(EXIT_BAD_INPUT, "role is missing");
        if (!*tag || strlen(tag) > 32 || strspn(tag, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(tag))
                plugin_die(EXIT_BAD_INPUT, "tag must be 1 to 32 characters of a-z and 0-9");
        if (strcmp(role, "holder") == 0)
                peer_holder(tag, seconds);
        else if (strcmp(role, "prober") == 0)
                peer_prober(tag);
        else
                plugin_die(EXIT_BAD_INPUT, "role is `%s`, must be holder or prober", role);
        json_value_done(&params);
        return 0;
}

/* ---- what a run finds of its workspace ---- */

struct names {
        bool ok;                 /* the directory could be read */
        char **v;
        size_t n;
};

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted, without . and .. */
static struct names list_dir(const char *dir)
{
        struct names r = { 0 };
        DIR *d = opendir(dir);
        if (!d)
                return r;
        r.ok = true;
        size_t cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (r.n == cap) {
                        cap = cap ? cap * 2 : 16;
                        char **grown = realloc(r.v, cap * sizeof(*r.v));
                        if (!grown)
                                plugin_die(EXIT_OUTPUT, "out of memory");
                        r.v = grown;
                }
                size_t len = strlen(de->d_name);
                r.v[r.n] = xmalloc(len + 1);
                memcpy(r.v[r.n], de->d_name, len + 1);
                r.n++;
        }
        closedir(d);
        if (r.n > 1)
                qsort(r.v, r.n, sizeof(*r.v), cmp_str);
        return r;
}

/* key: the names as an array (null when unreadable); frees them. */
static void write_names(struct jw *w, const char *key, struct names *nm)
{
        jw_key(w, key);
        if (!nm->ok) {
                jw_null(w);
                return;
        }
        jw_array_begin(w);
        for (size_t i = 0; i < nm->n; i++) {
                jw_str(w, nm->v[i]);
                free(nm->v[i]);
        }
        jw_array_end(w);
        free(nm->v);
        memset(nm, 0, sizeof(*nm));
}

static void names_push(struct names *nm, size_t *cap, const char *s, size_t len)
{
        if (nm->n == *cap) {
                *cap = *cap ? *cap * 2 : 16;
                char **grown = realloc(nm->v, *cap * sizeof(*nm->v));
                if (!grown)
                        plugin_die(EXIT_OUTPUT, "out of memory");
                nm->v = grown;
        }
        nm->v[nm->n] = xmalloc(len + 1);
        memcpy(nm->v[nm->n], s, len);
        nm->v[nm->n][len] = '\0';
        nm->n++;
}

/* The open descriptors as "N:target" (without the one reading the list). */
static struct names list_fds(void)
{
        struct names r = { 0 };
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return r;
        r.ok = true;
        size_t cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
                        continue;
                char path[300], target[4096], item[4400];
                snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
                ssize_t n = readlink(path, target, sizeof(target) - 1);
                target[n > 0 ? n : 0] = '\0';
                int len = snprintf(item, sizeof(item), "%s:%s", de->d_name, target);
                names_push(&r, &cap, item, (size_t)len < sizeof(item) ? (size_t)len : sizeof(item) - 1);
        }
        closedir(d);
        if (r.n > 1)
                qsort(r.v, r.n, sizeof(*r.v), cmp_str);
        return r;
}

/* The mount points of /proc/self/mounts, sorted. */
static struct names list_mounts(void)
{
        struct names r = { 0 };
        char *mounts = read_proc("/proc/self/mounts");
        if (!mounts)
                return r;
        r.ok = true;
        size_t cap = 0;
        for (char *p = mounts; *p;) {
                char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                char *sp = memchr(p, ' ', len);
                if (sp) {
                        char *t = sp + 1;
                        char *end = memchr(t, ' ', len - (size_t)(t - p));
                        names_push(&r, &cap, t, end ? (size_t)(end - t) : len - (size_t)(t - p));
                }
                if (!nl)
                        break;
                p = nl + 1;
        }
        free(mounts);
        if (r.n > 1)
                qsort(r.v, r.n, sizeof(*r.v), cmp_str);
        return r;
}

static void mark(const char *dir, const char *tag)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/mark-%s", dir, tag);
        int e = plant_file(path);
        if (e)
                plugin_die(EXIT_OUTPUT, "create %s: %s", path, strerror(e));
}

static int mode_workspace(void)
{
        /* Before anything is written: what the run was given. */
        const char *in = plugin_input_path();
        const char *slash = strrchr(in, '/');
        char in_dir[4096];
        snprintf(in_dir, sizeof(in_dir), "%.*s", slash && slash != in ? (int)(slash - in) : 1,
                 slash ? in : ".");
        struct names in_files = list_dir(in_dir);
        struct names out_before = list_dir(plugin_output_dir());
        struct names tmp_before = list_dir("/tmp");
        struct names fds = list_fds();
        struct names mounts = list_mounts();
        char c;
        bool stdin_eof = read(STDIN_FILENO, &c, 1) == 0;

        size_t len;
        char *text = plugin_read_file(in, &len);
        struct json_value params;
        struct json_error jerr;
        if (json_parse(text, len, &params, &jerr) < 0)
                plugin_die(EXIT_BAD_INPUT, "%s: %s", in, jerr.text);
        double s = param_number(&params, "seconds", 0, 0, 3600);
        char tag[65] = "x";
        const struct json_value *t = json_object_get(&params, "tag");
        if (t) {
                static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
                if (t->type != JSON_STRING || t->u.str.len == 0 || t->u.str.len > 64 ||
                    strspn(t->u.str.s, ok) != t->u.str.len)
                        plugin_die(EXIT_BAD_INPUT, "tag must be 1..64 of [A-Za-z0-9_-]");
                memcpy(tag, t->u.str.s, t->u.str.len + 1);
        }
        json_value_done(&params);

        printf("workspace: tag=%s\n", tag);
        fflush(stdout);
        fprintf(stderr, "workspace: tag=%s\n", tag);
        mark(plugin_output_dir(), tag);
        mark("/tmp", tag);

        struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        struct names out_after = list_dir(plugin_output_dir());

        char host[256] = "";
        gethostname(host, sizeof(host) - 1);
        struct jw w;
        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "tag");
        jw_str(&w, tag);
        jw_key(&w, "uid");
        jw_int(&w, getuid());
        jw_key(&w, "gid");
        jw_int(&w, getgid());
        jw_key(&w, "hostname");
        jw_str(&w, host);
        jw_key(&w, "stdin_eof");
        jw_bool(&w, stdin_eof);
        write_names(&w, "input_files", &in_files);
        jw_key(&w, "input_text");
        jw_string(&w, text, len);
        write_names(&w, "output_before", &out_before);
        write_names(&w, "tmp_before", &tmp_before);
        write_names(&w, "fds", &fds);
        write_names(&w, "mounts", &mounts);
        write_names(&w, "output_after", &out_after);
        jw_object_end(&w);
        out_commit(&out);
        free(text);
        return 0;
}

static int mode_parse(void)
{
        size_t len;
        char *buf = plugin_read_file(plugin_input_path(), &len);
        struct json_value v;
        struct json_error jerr;
        struct jw w;

        if (json_parse(buf, len, &v, &jerr) < 0)
                plugin_die(EXIT_BAD_INPUT, "%s: %s", plugin_input_path(), jerr.text);
        free(buf);
        out_open_result(&out);
        jw_init(&w, &out);
        jw_value(&w, &v);
        out_commit(&out);
        json_value_done(&v);
        return 0;
}

int main(int argc, char **argv)
{
        plugin_init("testkit");
        if (argc < 2)
                plugin_die(EXIT_BAD_INPUT, "usage: testkit MODE [ARG]");

        const char *mode = argv[1];
        if (strcmp(mode, "echo") == 0)
                return mode_echo(argc, argv);
        if (strcmp(mode, "exit") == 0)
                return mode_exit(argc, argv);
        if (strcmp(mode, "raw") == 0)
                return mode_raw(argc, argv);
        if (strcmp(mode, "oomadj") == 0)
                return mode_oomadj();
        if (strcmp(mode, "sleep") == 0)
                return mode_sleep();
        if (strcmp(mode, "noresult") == 0)
                return 0;
        if (strcmp(mode, "invalid") == 0)
                return mode_invalid();
        if (strcmp(mode, "big") == 0)
                return mode_big();
        if (strcmp(mode, "symlink") == 0)
                return mode_symlink();
        if (strcmp(mode, "sandbox") == 0)
                return mode_sandbox();
        if (strcmp(mode, "syscall") == 0)
                return mode_syscall(argc > 2 ? argv[2] : NULL);
        if (strcmp(mode, "memory") == 0)
                return mode_memory();
        if (strcmp(mode, "spam") == 0)
                return mode_spam();
        if (strcmp(mode, "pids") == 0)
                return mode_pids();
        if (strcmp(mode, "parse") == 0)
                return mode_parse();
        if (strcmp(mode, "forkbomb") == 0)
                mode_forkbomb();
        if (strcmp(mode, "spin") == 0)
                return mode_spin();
        if (strcmp(mode, "ignoreterm") == 0)
                mode_ignoreterm();
        if (strcmp(mode, "escape") == 0)
                return mode_escape();
        if (strcmp(mode, "net") == 0)
                return mode_net();
        if (strcmp(mode, "deadly") == 0)
                return mode_deadly();
        if (strcmp(mode, "deadly_all") == 0)
                return mode_deadly_all();
        if (strcmp(mode, "resultattack") == 0)
                return mode_resultattack();
        if (strcmp(mode, "manyobjects") == 0)
                return mode_manyobjects();
        if (strcmp(mode, "peer") == 0)
                return mode_peer();
        if (strcmp(mode, "workspace") == 0)
                return mode_workspace();
        plugin_die(EXIT_BAD_INPUT, "unknown mode `%s`", mode);
}
