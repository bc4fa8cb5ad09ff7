/* containerfix.h - the real-container fixture shared by test-runtime.c and
 * test-cgroup.c: a scratch dir with a runtime state root and a read-only
 * busybox rootfs, a per-process cgroup parent, the host's runtime as T_rt
 * (runc, or the absolute path in $EDGECD_RUNTIME: `make check
 * RUNTIME=/path/to/youki`), run_cmd(), a sweep of leftover containers, the
 * tcase fixtures
 * (fixture_setup/fixture_teardown unchecked, setup_reaper checked),
 * assert_no_leftovers() and write_bundle() for a minimal busybox bundle.
 * Everything is static, like testutil.h: each test binary that includes it
 * gets its own copy of the globals and functions.  Include after
 * testutil.h. */
#ifndef EDGECD_CONTAINERFIX_H
#define EDGECD_CONTAINERFIX_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include <jansson.h>

#include "base/error.h"
#include "runtime/reaper.h"
#include "runtime/runtime.h"
#include "runtime/runtime_cli.h"
#include "sandbox/cgroup.h"
#include "testutil.h"

/* ---- shared state, set up once per tcase in the parent process ---- */

static char *T_dir;          /* scratch directory */
static char T_root[512];     /* runtime --root */
static char T_rootfs[512];   /* busybox rootfs shared read-only by every container */
static char T_cg[64];        /* cgroup parent, "/edgecd-unit-<pid>" */
static char T_rtpath[512];   /* its binary */
static char T_rtname[64];    /* its name, as in messages: "runc" */
static struct runtime T_rt;  /* the real runtime */
/* Optional: more to clean up, run by sweep() after the containers. */
static void (*T_sweep_extra)(void);

/* Runs fmt through the shell; returns its stdout (up to 64 KiB, caller frees). */
static char *run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *run_cmd(const char *fmt, ...)
{
        va_list ap;
        char *cmd = NULL;
        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
        va_end(ap);
        FILE *p = popen(cmd, "r");
        free(cmd);
        ck_assert_ptr_nonnull(p);
        char *out = calloc(1, 65536);
        size_t n = fread(out, 1, 65535, p);
        out[n] = '\0';
        pclose(p);
        return out;
}

static bool pure_v2(void)
{
        struct statfs sfs;
        return statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

static void fixture_setup(void)
{
        T_dir = tu_mkdtemp();
        snprintf(T_root, sizeof T_root, "%s/state", T_dir);
        snprintf(T_rootfs, sizeof T_rootfs, "%s/rootfs", T_dir);
        snprintf(T_cg, sizeof T_cg, "/edgecd-unit-%d", (int)getpid());
        const char *want = getenv("EDGECD_RUNTIME");
        if (want && want[0] == '/')
                snprintf(T_rtpath, sizeof T_rtpath, "%s", want);
        else
                snprintf(T_rtpath, sizeof T_rtpath, "%s", access("/usr/sbin/runc", X_OK) == 0 ? "/usr/sbin/runc" : "/usr/bin/runc");
        snprintf(T_rtname, sizeof T_rtname, "%s", strrchr(T_rtpath, '/') + 1);
        free(run_cmd("mkdir -p '%s' '%s/bin' '%s/proc' '%s/dev' && cp /bin/busybox '%s/bin/busybox'",
                     T_root, T_rootfs, T_rootfs, T_rootfs, T_rootfs));
        ck_assert_int_eq(access(T_rootfs, F_OK), 0);
        T_rt = (struct runtime){ .ops = &runtime_cli_ops, .name = T_rtname, .path = T_rtpath, .root = T_root,
                                 .cli_timeout_ms = 30000 };
}

/* Whatever a failed test left behind: before each test (so one failure
 * does not cascade) and at the end of the tcase. */
static void sweep(void)
{
        char *ids = run_cmd("ls -A '%s' 2>/dev/null", T_root);
        for (char *save = NULL, *id = strtok_r(ids, "\n", &save); id; id = strtok_r(NULL, "\n", &save))
                free(run_cmd("%s --root '%s' delete --force '%s' 2>&1", T_rtpath, T_root, id));
        free(ids);
        if (T_sweep_extra)
                T_sweep_extra();
}

static void fixture_teardown(void)
{
        sweep();
        struct err e = ERR_INIT;
        /* A failed test may have left cgroups below it (slots, a pool). */
        if (cgroup_remove(T_cg, &e) < 0)
                cgroup_destroy(T_cg, &e);
        tu_rm_rf(T_dir);
        free(T_dir);
}

/* In the forked test process: the subreaper flag is not inherited. */
static void setup_reaper(void)
{
        struct err e = ERR_INIT;
        ck_assert_msg(reaper_setup(&e) == 0, "%s", e.msg);
        sweep();
}

/* No container state left in T_root (every runtime keeps a directory per
 * container there) and no cgroup under T_cg. */
static void assert_no_leftovers(void)
{
        char *ids = run_cmd("ls -A '%s' 2>&1", T_root);
        ck_assert_str_eq(ids, "");
        free(ids);
        ck_assert_int_eq(cgroup_count_children(T_cg), 0);
}

/* A JSON array of the strings v (NULL-terminated). */
static json_t *jargs(const char *const *v)
{
        json_t *a = json_array();
        for (; *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

/* [{"type": t}, ...] for the namespace types t (NULL-terminated). */
static json_t *jnamespaces(const char *const *types)
{
        json_t *a = json_array();
        for (; *types; types++)
                json_array_append_new(a, json_pack("{s:s}", "type", *types));
        return a;
}

/* The bundle T_dir/b-<id>: args on the busybox rootfs (read-only) as user
 * 65534 with /proc and a small /dev tmpfs, namespaces ns, cgroupsPath
 * T_cg/<id>, a pids limit of 64 and, if not NULL, the memory resources.
 * Takes args, ns and memory; returns the bundle directory (caller frees). */
static char *write_bundle(const char *id, json_t *args, json_t *ns, json_t *memory)
{
        char *bundle = NULL;
        ck_assert_int_ge(asprintf(&bundle, "%s/b-%s", T_dir, id), 0);
        ck_assert_int_eq(mkdir(bundle, 0755), 0);
        json_t *res = json_pack("{s:{s:I}}", "pids", "limit", (json_int_t)64);
        if (memory)
                json_object_set_new(res, "memory", memory);
        char cgpath[256];
        snprintf(cgpath, sizeof cgpath, "%s/%s", T_cg, id);
        json_t *c = json_pack("{s:s, s:{s:b, s:{s:i, s:i}, s:o, s:[s], s:s, s:b},"
                              " s:{s:s, s:b}, s:s,"
                              " s:[{s:s, s:s, s:s}, {s:s, s:s, s:s, s:[s, s, s]}],"
                              " s:{s:o, s:s, s:o}}",
                              "ociVersion", "1.0.2",
                              "process", "terminal", 0, "user", "uid", 65534, "gid", 65534,
                              "args", args, "env", "PATH=/bin", "cwd", "/", "noNewPrivileges", 1,
                              "root", "path", T_rootfs, "readonly", 1,
                              "hostname", "unit",
                              "mounts", "destination", "/proc", "type", "proc", "source", "proc",
                              "destination", "/dev", "type", "tmpfs", "source", "tmpfs",
                              "options", "nosuid", "mode=755", "size=64k",
                              "linux", "namespaces", ns, "cgroupsPath", cgpath, "resources", res);
        ck_assert_ptr_nonnull(c);
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/config.json", bundle), 0);
        ck_assert_int_eq(json_dump_file(c, path, 0), 0);
        json_decref(c);
        free(path);
        return bundle;
}

/* T_dir/<id>.log, opened for appending: a container's stdout and stderr. */
static int open_log(const char *id)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s.log", T_dir, id), 0);
        int fd = open(p, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        free(p);
        ck_assert_int_ge(fd, 0);
        return fd;
}

#endif
