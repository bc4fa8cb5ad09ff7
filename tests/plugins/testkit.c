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
 *               stderr, then {"ok": true}
 *   pids        fork sleeping children until fork fails (at most
 *               parameters.max, default 1000), report, kill and reap them
 *   parse       (self-test only) parse input.json as any JSON value and
 *               write it back re-serialized; exercises plugins/common/json.c
 *
 * Inputs and outputs follow plugins/common/plugin.h (EDGECD_INPUT and
 * EDGECD_OUTPUT override the container paths).  Single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

static void write_errno(struct jw *w, int e)
{
        const char *name = errno_name(e);
        if (e == 0)
                jw_null(w);
        else if (name)
                jw_str(w, name);
        else
                jw_int(w, e);
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

static int mode_invalid(void)
{
        out_open_result(&out);
        out_puts(&out, "{\"unterminated\": ");
        out_commit(&out);
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

        /* /proc/net/dev: two header lines, then "  name: counters". */
        jw_key(&w, "net_interfaces");
        jw_array_begin(&w);
        int line = 0;
        for (char *p = netdev; p && *p; line++) {
                char *nl = strchr(p, '\n');
                char *colon = strchr(p, ':');
                if (line >= 2 && colon && (!nl || colon < nl)) {
                        char *s = p;
                        while (*s == ' ')
                                s++;
                        jw_string(&w, s, (size_t)(colon - s));
                }
                p = nl ? nl + 1 : NULL;
        }
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
        struct jw w;

        out_open_result(&out);
        jw_init(&w, &out);
        jw_object_begin(&w);
        jw_key(&w, "survived");
        jw_bool(&w, true);
        jw_key(&w, "result");
        jw_int(&w, r);
        jw_key(&w, "errno");
        write_errno(&w, e);
        jw_object_end(&w);
        out_commit(&out);
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
        plugin_die(EXIT_BAD_INPUT, "unknown mode `%s`", mode);
}
