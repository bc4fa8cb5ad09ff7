/* test-oci.c - config.json generation: schema validity (the official OCI
 * runtime-spec schema as Debian ships it, via tests/tools/oci-validate), the security
 * relevant fields, template handling, and real containers (the runtime driver) with
 * the generated config and seccomp policy (allowed programs run, forbidden
 * syscalls kill with SIGSYS). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <jansson.h>

#include "testutil.h"

#include "base/util.h"
#include "registry/oci.h"
#include "registry/seccomp.h"
#include "runtime/reaper.h"
#include "runtime/runtime.h"
#include "runtime/runtime_cli.h"
#include "sandbox/workspace.h"

static char *g_tmp;       /* per-tcase scratch directory */
static char g_cgparent[64];

static const struct limits defaults = {
        .cpu_cores = 1.0, .memory_mb = 256, .pids = 64, .disk_mb = 16, .timeout_seconds = 60,
};

static char *templates_dir(void)
{
        return xasprintf("%s/oci-templates", tu_src());
}

static struct seccomp_policy *load_policy(void)
{
        _cleanup_free_ char *dir = templates_dir();
        _cleanup_free_ char *path = xasprintf("%s/seccomp.allow", dir);
        struct seccomp_policy *p = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(seccomp_policy_load(path, &p, &err) == 0, "%s", err.msg);
        return p;
}

static struct manifest manifest(char **command)
{
        return (struct manifest){ .refs = 1, .rootfs = "/srv/plugins/matmul/rootfs", .command = command };
}

static struct oci_job job_for(const struct manifest *m, const char *id)
{
        static char cg[128];
        snprintf(cg, sizeof cg, "/edgecd/%s", id);
        return (struct oci_job){
                .container_id = id, .manifest = m, .limits = oci_effective_limits(m, &defaults),
                .input_dir = "/var/lib/edgecd/workspaces/j/input",
                .output_dir = "/var/lib/edgecd/workspaces/j/output",
                .uid = 65534, .gid = 65534, .cgroups_path = cg,
        };
}

static json_t *build(const char *tdir, const struct oci_job *job)
{
        struct seccomp_policy *p = load_policy();
        json_t *cfg = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(oci_build(tdir, job, p, &cfg, &err) == 0, "%s", err.msg);
        seccomp_policy_free(p);
        return cfg;
}

/* Write cfg as a bundle under g_tmp, check its mode and validate it against
 * the OCI runtime-spec schema. */
static void write_and_validate(const json_t *cfg, const char *name)
{
        _cleanup_free_ char *dir = xasprintf("%s/%s", g_tmp, name);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        struct err err = ERR_INIT;
        ck_assert_msg(oci_write_bundle(dir, cfg, &err) == 0, "%s", err.msg);
        _cleanup_free_ char *file = xasprintf("%s/config.json", dir);
        struct stat st;
        ck_assert_int_eq(stat(file, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        /* Round trip: the file holds what we built. */
        json_error_t jerr;
        json_t *back = json_load_file(file, 0, &jerr);
        ck_assert_ptr_nonnull(back);
        ck_assert(json_equal(back, cfg));
        json_decref(back);
        _cleanup_free_ char *cmd = xasprintf("/usr/bin/python3 '%s/tests/tools/oci-validate' '%s'",
                                             tu_src(), file);
        int rc = system(cmd);
        ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "oci-validate failed on %s", file);
}

static bool has_string(const json_t *arr, const char *s)
{
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
                if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
                        return true;
        return false;
}

static const json_t *mount_at(const json_t *cfg, const char *dest, int *count)
{
        const json_t *found = NULL;
        size_t i;
        json_t *m;
        *count = 0;
        json_array_foreach(json_object_get(cfg, "mounts"), i, m) {
                const char *d = json_string_value(json_object_get(m, "destination"));
                size_t n = strlen(dest);
                if (d && strncmp(d, dest, n) == 0 && (d[n] == '\0' || strcmp(d + n, "/") == 0)) {
                        found = m;
                        (*count)++;
                }
        }
        return found;
}

/* Does any unconditional ALLOW rule name `name`? */
static bool seccomp_allows(const json_t *cfg, const char *name)
{
        const json_t *sc = json_object_get(json_object_get(cfg, "linux"), "seccomp");
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(sc, "syscalls"), i, rule)
                if (!strcmp(json_string_value(json_object_get(rule, "action")), "SCMP_ACT_ALLOW") &&
                    !json_object_get(rule, "args") && has_string(json_object_get(rule, "names"), name))
                        return true;
        return false;
}

static json_int_t jint(const json_t *cfg, const char *a, const char *b, const char *c, const char *d)
{
        const json_t *v = json_object_get(cfg, a);
        if (b)
                v = json_object_get(v, b);
        if (c)
                v = json_object_get(v, c);
        if (d)
                v = json_object_get(v, d);
        ck_assert_msg(json_is_integer(v), "%s.%s.%s.%s is not an integer", a, b ? b : "", c ? c : "", d ? d : "");
        return json_integer_value(v);
}

static void check_sandbox(const json_t *cfg, const struct oci_job *job)
{
        const json_t *proc = json_object_get(cfg, "process");
        ck_assert(json_is_false(json_object_get(proc, "terminal")));
        ck_assert(json_is_true(json_object_get(proc, "noNewPrivileges")));
        const json_t *caps = json_object_get(proc, "capabilities");
        static const char *const sets[] = { "bounding", "effective", "inheritable", "permitted", "ambient" };
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
                const json_t *s = json_object_get(caps, sets[i]);
                ck_assert_msg(json_is_array(s) && json_array_size(s) == 0, "capabilities.%s not empty", sets[i]);
        }
        ck_assert_int_eq(json_object_size(caps), 5);
        ck_assert_int_eq(jint(cfg, "process", "user", "uid", NULL), job->uid);
        ck_assert_int_eq(jint(cfg, "process", "user", "gid", NULL), job->gid);
        ck_assert_int_eq(json_array_size(json_object_get(json_object_get(proc, "user"), "additionalGids")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(proc, "cwd")), "/");

        /* The rlimits the job decides, once each, whatever the template said. */
        static const struct {
                const char *type;
                json_int_t value;
        } want_rl[] = { { "RLIMIT_CORE", 0 }, { "RLIMIT_NOFILE", 1024 }, { "RLIMIT_RTPRIO", 0 }, { "RLIMIT_NICE", 0 } };
        int seen_rl[ARRAY_SIZE(want_rl)] = { 0 };
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(proc, "rlimits"), i, r) {
                const char *t = json_string_value(json_object_get(r, "type"));
                ck_assert_ptr_nonnull(t);
                for (size_t k = 0; k < ARRAY_SIZE(want_rl); k++) {
                        if (strcmp(t, want_rl[k].type))
                                continue;
                        seen_rl[k]++;
                        ck_assert_int_eq(json_integer_value(json_object_get(r, "hard")), want_rl[k].value);
                        ck_assert_int_eq(json_integer_value(json_object_get(r, "soft")), want_rl[k].value);
                }
        }
        for (size_t k = 0; k < ARRAY_SIZE(want_rl); k++)
                ck_assert_msg(seen_rl[k] == 1, "%s %d times", want_rl[k].type, seen_rl[k]);

        const json_t *root = json_object_get(cfg, "root");
        ck_assert(json_is_true(json_object_get(root, "readonly")));
        ck_assert_str_eq(json_string_value(json_object_get(root, "path")), job->manifest->rootfs);

        int n;
        const json_t *in = mount_at(cfg, "/input", &n);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(json_string_value(json_object_get(in, "source")), job->input_dir);
        const json_t *opts = json_object_get(in, "options");
        ck_assert(has_string(opts, "ro") && !has_string(opts, "rw"));
        ck_assert(has_string(opts, "nosuid") && has_string(opts, "nodev") && has_string(opts, "noexec"));
        const json_t *out = mount_at(cfg, "/output", &n);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(json_string_value(json_object_get(out, "source")), job->output_dir);
        opts = json_object_get(out, "options");
        ck_assert(has_string(opts, "rw") && !has_string(opts, "ro"));
        ck_assert(has_string(opts, "noexec") && has_string(opts, "nosuid") && has_string(opts, "nodev"));

        const json_t *lx = json_object_get(cfg, "linux");
        const json_t *ns = json_object_get(lx, "namespaces");
        ck_assert_int_eq(json_array_size(ns), 5);
        static const char *const want_ns[] = { "pid", "mount", "ipc", "uts", "network" };
        for (size_t k = 0; k < ARRAY_SIZE(want_ns); k++) {
                bool seen = false;
                json_t *e;
                json_array_foreach(ns, i, e)
                        if (!strcmp(json_string_value(json_object_get(e, "type")), want_ns[k])) {
                                seen = true;
                                ck_assert_msg(!json_object_get(e, "path"), "%s namespace joins a path", want_ns[k]);
                        }
                ck_assert_msg(seen, "no %s namespace", want_ns[k]);
        }
        ck_assert_ptr_null(json_object_get(lx, "uidMappings"));
        ck_assert_str_eq(json_string_value(json_object_get(lx, "cgroupsPath")), job->cgroups_path);

        json_int_t mem = (json_int_t)job->limits.memory_mb * 1024 * 1024;
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "limit"), mem);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "swap"), mem);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "cpu", "period"), 100000);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "cpu", "quota"),
                         (json_int_t)(job->limits.cpu_cores * 100000 + 0.5));
        ck_assert_int_eq(jint(cfg, "linux", "resources", "pids", "limit"), job->limits.pids);

        const json_t *sc = json_object_get(lx, "seccomp");
        ck_assert_str_eq(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_KILL_PROCESS");
        ck_assert(seccomp_allows(cfg, "read"));
        ck_assert(!seccomp_allows(cfg, "mount"));
        ck_assert(!seccomp_allows(cfg, "unshare"));
        ck_assert(!seccomp_allows(cfg, "ptrace"));

        ck_assert(has_string(json_object_get(lx, "maskedPaths"), "/proc/kcore"));
        ck_assert(has_string(json_object_get(lx, "readonlyPaths"), "/proc/sys"));
}

START_TEST(test_defaults_only)
{
        char *cmd[] = { "/bin/matmul", "--fast", NULL };
        struct manifest m = manifest(cmd);
        struct oci_job job = job_for(&m, "job-defaults");
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "defaults");
        check_sandbox(cfg, &job);

        ck_assert_int_eq(job.limits.memory_mb, 256);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "limit"), 256 * 1024 * 1024);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "cpu", "quota"), 100000);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "pids", "limit"), 64);
        _cleanup_json_ json_t *args = json_pack("[ss]", "/bin/matmul", "--fast");
        ck_assert(json_equal(json_object_get(json_object_get(cfg, "process"), "args"), args));
        _cleanup_json_ json_t *env = json_pack("[sss]", "PATH=/bin:/usr/bin", "EDGECD_INPUT=/input/input.json",
                                               "EDGECD_OUTPUT=/output");
        ck_assert(json_equal(json_object_get(json_object_get(cfg, "process"), "env"), env));
        ck_assert_str_eq(json_string_value(json_object_get(cfg, "hostname")), "job-defaults");
        /* The template's device rules and pseudo filesystems are kept. */
        ck_assert_int_ge(json_array_size(json_object_get(json_object_get(json_object_get(cfg, "linux"),
                                                                          "resources"), "devices")), 1);
        int n;
        ck_assert_ptr_nonnull(mount_at(cfg, "/proc", &n));
        ck_assert_ptr_nonnull(mount_at(cfg, "/tmp", &n));
        ck_assert_int_eq(jint(cfg, "process", "oomScoreAdj", NULL, NULL), 1000);
}
END_TEST

/* A warm container: the gate is its process, bound read-only (exec
 * allowed, no setuid) above /input, and the command follows the FIFO; the
 * rest of the sandbox is the same. */
START_TEST(test_warm_gate)
{
        char *cmd[] = { "/bin/matmul", "--fast", NULL };
        struct manifest m = manifest(cmd);
        struct oci_job job = job_for(&m, "job-warm");
        job.gate_path = "/var/lib/edgecd/warm-gate";
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "warm");
        check_sandbox(cfg, &job);
        _cleanup_json_ json_t *args = json_pack("[ssss]", "/input/.edgecd-gate", "/input/.edgecd-go", "/bin/matmul",
                                                "--fast");
        ck_assert(json_equal(json_object_get(json_object_get(cfg, "process"), "args"), args));
        int n;
        const json_t *g = mount_at(cfg, "/input/.edgecd-gate", &n);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(json_string_value(json_object_get(g, "source")), "/var/lib/edgecd/warm-gate");
        _cleanup_json_ json_t *opts = json_pack("[ssss]", "bind", "ro", "nosuid", "nodev");
        ck_assert(json_equal(json_object_get(g, "options"), opts));
        /* After /input, or it would be hidden under it. */
        json_t *mounts = json_object_get(cfg, "mounts");
        size_t i_input = 0, i_gate = 0, i;
        json_t *mt;
        json_array_foreach(mounts, i, mt) {
                const char *d = json_string_value(json_object_get(mt, "destination"));
                if (!strcmp(d, "/input"))
                        i_input = i;
                if (!strcmp(d, "/input/.edgecd-gate"))
                        i_gate = i;
        }
        ck_assert_uint_gt(i_gate, i_input);
}
END_TEST

/* Templates are kept parsed and checked while their file is unchanged:
 * a config the caller changes does not change the next one, and a
 * template rewritten on disk is read again (refused when it went bad). */
START_TEST(test_template_cache)
{
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = (char *)"cached";
        struct oci_job job = job_for(&m, "job-cache");
        _cleanup_free_ char *tdir = tu_mkdtemp();
        _cleanup_free_ char *path = xasprintf("%s/cached.json", tdir);
        struct err err = ERR_INIT;
        const char *v1 = "{\"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                         " \"options\": [\"size=1m\"]}]}";
        ck_assert_int_eq(write_file(path, v1, strlen(v1), 0644, &err), 0);
        json_t *a = build(tdir, &job);
        int n;
        ck_assert_ptr_nonnull(mount_at(a, "/tmp", &n));
        json_object_set_new(a, "mounts", json_array());   /* the caller's own copy */
        json_decref(a);
        json_t *b = build(tdir, &job);
        ck_assert_ptr_nonnull(mount_at(b, "/tmp", &n));
        json_decref(b);
        /* Rewritten (another size, a later time): read again. */
        usleep(20000);
        const char *v2 = "{\"mounts\": [{\"destination\": \"/scratch\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                         " \"options\": [\"size=2m\"]}]}";
        ck_assert_int_eq(write_file(path, v2, strlen(v2), 0644, &err), 0);
        json_t *c = build(tdir, &job);
        ck_assert_ptr_null(mount_at(c, "/tmp", &n));
        ck_assert_ptr_nonnull(mount_at(c, "/scratch", &n));
        json_decref(c);
        /* Gone bad: refused, not served from the cache. */
        usleep(20000);
        const char *bad = "{\"hooks\": {}}";
        ck_assert_int_eq(write_file(path, bad, strlen(bad), 0644, &err), 0);
        struct seccomp_policy *p = load_policy();
        json_t *cfg = NULL;
        ck_assert_int_eq(oci_build(tdir, &job, p, &cfg, &err), -1);
        ck_assert_msg(strstr(err.msg, "/hooks"), "%s", err.msg);
        seccomp_policy_free(p);
        oci_template_cache_clear();
        tu_rm_rf(tdir);
}
END_TEST

START_TEST(test_full_resources)
{
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.resources = (struct limits){ .cpu_cores = 2.5, .memory_mb = 512, .pids = 100, .disk_mb = 64 };
        m.timeout_seconds = 30;
        struct oci_job job = job_for(&m, "job-full");
        ck_assert(job.limits.cpu_cores == 2.5);
        ck_assert_int_eq(job.limits.disk_mb, 64);
        ck_assert_int_eq(job.limits.timeout_seconds, 30);
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "full");
        check_sandbox(cfg, &job);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "limit"), 512LL * 1024 * 1024);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "swap"), 512LL * 1024 * 1024);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "cpu", "quota"), 250000);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "pids", "limit"), 100);

        /* A tiny cpu share still gets the kernel's 1 ms minimum quota. */
        job.limits.cpu_cores = 0.001;
        _cleanup_json_ json_t *tiny = build(tdir, &job);
        ck_assert_int_eq(jint(tiny, "linux", "resources", "cpu", "quota"), 1000);
}
END_TEST

START_TEST(test_extra_syscalls_and_env)
{
        char *cmd[] = { "/bin/sh", "-c", "run", NULL };
        char *env[] = { "FOO=bar", "PATH=/opt/bin:/bin", "EDGECD_OUTPUT=/elsewhere", "EMPTY=", NULL };
        char *extra[] = { "personality", "io_uring_setup", NULL };
        struct manifest m = manifest(cmd);
        m.env = env;
        m.extra_syscalls = extra;
        struct oci_job job = job_for(&m, "job-extra");
        job.uid = 1000;
        job.gid = 1001;
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "extra");
        check_sandbox(cfg, &job);
        ck_assert(seccomp_allows(cfg, "personality"));
        ck_assert(seccomp_allows(cfg, "io_uring_setup"));
        /* The manifest may set PATH, never the EDGECD_* contract. */
        _cleanup_json_ json_t *want = json_pack("[sssss]", "PATH=/opt/bin:/bin", "FOO=bar",
                                                "EDGECD_OUTPUT=/output", "EMPTY=",
                                                "EDGECD_INPUT=/input/input.json");
        ck_assert_msg(json_equal(json_object_get(json_object_get(cfg, "process"), "env"), want), "%s",
                      json_dumps(json_object_get(json_object_get(cfg, "process"), "env"), 0));
}
END_TEST

/* A careless template that stays within what templates may say: the job's
 * decisions must win over all of it. */
static const char *const careless_template =
        "{\"ociVersion\": \"1.0.2\","
        " \"process\": {\"terminal\": true, \"user\": {\"uid\": 0, \"gid\": 0, \"additionalGids\": [0]},"
        "   \"args\": [\"sh\"], \"cwd\": \"/root\", \"oomScoreAdj\": -1000,"
        "   \"capabilities\": {\"bounding\": [\"CAP_SYS_ADMIN\"], \"effective\": [\"CAP_SYS_ADMIN\"]},"
        "   \"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"hard\": 999, \"soft\": 999},"
        "                {\"type\": \"RLIMIT_STACK\", \"hard\": 8388608, \"soft\": 8388608},"
        "                {\"type\": \"RLIMIT_NOFILE\", \"hard\": 1048576, \"soft\": 1048576}],"
        "   \"noNewPrivileges\": false},"
        " \"root\": {\"path\": \"rootfs\", \"readonly\": false},"
        " \"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
        "   {\"destination\": \"/input\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"rw\"]},"
        "   {\"destination\": \"/output/\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"}],"
        " \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"/proc/1/ns/net\"}, {\"type\": \"user\"}],"
        "   \"uidMappings\": [{\"containerID\": 0, \"hostID\": 0, \"size\": 1}],"
        "   \"gidMappings\": [{\"containerID\": 0, \"hostID\": 0, \"size\": 1}],"
        "   \"cgroupsPath\": \"/\", \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\"},"
        "   \"resources\": {\"memory\": {\"limit\": 1099511627776}, \"pids\": {\"limit\": 1000000},"
        "                 \"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},"
        "   \"maskedPaths\": [\"/proc/custom\"]}}";

/* A fresh templates directory under g_tmp holding name.json = text. */
static char *template_dir_with(const char *dir, const char *name, const char *text)
{
        char *tdir = xasprintf("%s/%s", g_tmp, dir);
        ck_assert_int_eq(mkdir(tdir, 0755), 0);
        _cleanup_free_ char *file = xasprintf("%s.json", name);
        free(tu_write(tdir, file, text));
        return tdir;
}

START_TEST(test_template_cannot_weaken)
{
        _cleanup_free_ char *tdir = template_dir_with("templates-careless", "careless", careless_template);
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = "careless";
        struct oci_job job = job_for(&m, "job-careless");
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "careless");
        check_sandbox(cfg, &job);
        ck_assert_int_eq(json_array_size(json_object_get(cfg, "mounts")), 3);   /* proc, input, output */
        const json_t *lx = json_object_get(cfg, "linux");
        ck_assert_ptr_null(json_object_get(lx, "gidMappings"));
        ck_assert(has_string(json_object_get(lx, "maskedPaths"), "/proc/custom"));
        ck_assert(has_string(json_object_get(lx, "maskedPaths"), "/sys/firmware"));
        ck_assert_int_eq(json_array_size(json_object_get(json_object_get(lx, "resources"), "devices")), 1);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "pids", "limit"), 64);
        ck_assert_int_eq(jint(cfg, "process", "oomScoreAdj", NULL, NULL), 1000);
        /* The template's other rlimits stay, next to the four the job sets. */
        ck_assert_int_eq(json_array_size(json_object_get(json_object_get(cfg, "process"), "rlimits")), 5);
}
END_TEST

/* Templates a careless or hostile hand might write, each refused with the
 * JSON pointer of what is wrong. */
static const struct {
        const char *name, *text, *pointer;
} refused_templates[] = {
        { "hooks", "{\"hooks\": {\"prestart\": [{\"path\": \"/bin/sh\"}]}}", "/hooks" },
        { "unknown-key", "{\"ociVersion\": \"1.0.2\", \"x-extra\": true}", "/x-extra" },
        { "linux-devices",
          "{\"linux\": {\"devices\": [{\"path\": \"/dev/sda\", \"type\": \"b\", \"major\": 8, \"minor\": 0}]}}",
          "/linux/devices" },
        { "sysctl", "{\"linux\": {\"sysctl\": {\"net.ipv4.ip_forward\": \"1\"}}}", "/linux/sysctl" },
        { "personality", "{\"linux\": {\"personality\": {\"domain\": \"LINUX32\"}}}", "/linux/personality" },
        { "scheduler", "{\"process\": {\"scheduler\": {\"policy\": \"SCHED_FIFO\", \"priority\": 99}}}",
          "/process/scheduler" },
        { "cpu-affinity", "{\"process\": {\"execCPUAffinity\": {\"initial\": \"0\"}}}", "/process/execCPUAffinity" },
        { "rtprio",
          "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_STACK\", \"hard\": 9999999, \"soft\": 9999999},"
          " {\"type\": \"RLIMIT_RTPRIO\", \"hard\": 99, \"soft\": 99}]}}",
          "/process/rlimits/1" },
        /* Per-user limits are what job users keep apart. */
        { "nproc", "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_NPROC\", \"hard\": 99999, \"soft\": 99999}]}}",
          "/process/rlimits/0" },
        { "annotations", "{\"annotations\": {\"run.oci.seccomp_bpf_data\": \"AAAA\"}}", "/annotations" },
        { "memlock", "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_MEMLOCK\", \"hard\": -1, \"soft\": -1}]}}",
          "/process/rlimits/0" },
        { "rlimit-name", "{\"process\": {\"rlimits\": [{\"type\": \"CORE\", \"hard\": 0, \"soft\": 0}]}}",
          "/process/rlimits/0/type" },
        { "bind-host",
          "{\"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
          " {\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"},"
          " {\"destination\": \"/host\", \"type\": \"bind\", \"source\": \"/\", \"options\": [\"rbind\", \"ro\"]}]}",
          "/mounts/2/type" },
        { "host-source",
          "{\"mounts\": [{\"destination\": \"/etc\", \"type\": \"tmpfs\", \"source\": \"/etc\"}]}",
          "/mounts/0/source" },
        { "rshared",
          "{\"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
          " \"options\": [\"nosuid\", \"rshared\"]}]}",
          "/mounts/0/options/1" },
        { "bind-option",
          "{\"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
          " {\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"bind\"]}]}",
          "/mounts/1/options/0" },
        { "suid-option",
          "{\"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
          " \"options\": [\"noexec\", \"size=1m\", \"suid\"]}]}",
          "/mounts/0/options/2" },
        { "sysfs-elsewhere",
          "{\"mounts\": [{\"destination\": \"/mnt/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\"}]}",
          "/mounts/0/destination" },
        { "dotdot-destination",
          "{\"mounts\": [{\"destination\": \"/tmp/../etc\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"}]}",
          "/mounts/0/destination" },
        { "device-allow",
          "{\"linux\": {\"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"},"
          " {\"allow\": true, \"type\": \"b\", \"major\": 8, \"access\": \"rw\"}]}}}",
          "/linux/resources/devices/1" },
        { "device-no-allow",
          "{\"linux\": {\"resources\": {\"devices\": [{\"access\": \"rwm\"}]}}}",
          "/linux/resources/devices/0" },
        { "hugepages", "{\"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 1}]}}}",
          "/linux/resources/hugepageLimits" },
        /* Resources are ceilings: positive, and nothing else. */
        { "memory-tiny", "{\"linux\": {\"resources\": {\"memory\": {\"limit\": 1}}}}",
          "/linux/resources/memory/limit" },
        { "memory-negative", "{\"linux\": {\"resources\": {\"memory\": {\"limit\": -1}}}}",
          "/linux/resources/memory/limit" },
        { "memory-swap", "{\"linux\": {\"resources\": {\"memory\": {\"limit\": 1073741824, \"swap\": -1}}}}",
          "/linux/resources/memory/swap" },
        { "cpu-half", "{\"linux\": {\"resources\": {\"cpu\": {\"quota\": 50000}}}}", "/linux/resources/cpu" },
        { "cpu-shares", "{\"linux\": {\"resources\": {\"cpu\": {\"shares\": 99999}}}}",
          "/linux/resources/cpu/shares" },
        { "pids-string", "{\"linux\": {\"resources\": {\"pids\": {\"limit\": \"32\"}}}}",
          "/linux/resources/pids/limit" },
        /* A ceiling config.json could not express would be raised. */
        { "cpu-tiny", "{\"linux\": {\"resources\": {\"cpu\": {\"quota\": 1000, \"period\": 1000000}}}}",
          "/linux/resources/cpu/quota" },
        { "cpu-period", "{\"linux\": {\"resources\": {\"cpu\": {\"quota\": 100, \"period\": 100}}}}",
          "/linux/resources/cpu/period" },
};

START_TEST(test_template_refusals)
{
        struct seccomp_policy *p = load_policy();
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        struct oci_job job = job_for(&m, "job-refused");
        _cleanup_free_ char *tdir = xasprintf("%s/templates-refused", g_tmp);
        ck_assert_int_eq(mkdir(tdir, 0755), 0);
        for (size_t i = 0; i < ARRAY_SIZE(refused_templates); i++) {
                const char *name = refused_templates[i].name;
                _cleanup_free_ char *file = xasprintf("%s.json", name);
                _cleanup_free_ char *path = tu_write(tdir, file, refused_templates[i].text);
                /* "template `PATH`: /POINTER: why", the pointer whole. */
                _cleanup_free_ char *want = xasprintf("template `%s`: %s: ", path, refused_templates[i].pointer);

                char tname[64];
                snprintf(tname, sizeof tname, "%s", name);
                m.oci_template = tname;
                json_t *cfg = NULL;
                struct err err = ERR_INIT;
                ck_assert_msg(oci_build(tdir, &job, p, &cfg, &err) == -1, "%s: accepted", name);
                ck_assert_ptr_null(cfg);
                ck_assert_msg(err.code == ERR_INVALID, "%s: %s", name, err_code_name(err.code));
                ck_assert_msg(strstr(err.msg, want), "%s: `%s` lacks `%s`", name, err.msg, want);

                err = (struct err)ERR_INIT;
                ck_assert_int_eq(oci_check_template(tdir, name, &err), -1);
                ck_assert_int_eq(err.code, ERR_INVALID);
                ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "%s: `%s`", name, err.msg);
        }
        seccomp_policy_free(p);
}
END_TEST

START_TEST(test_shipped_template_passes)
{
        _cleanup_free_ char *tdir = templates_dir();
        struct err err = ERR_INIT;
        ck_assert_msg(oci_check_template(tdir, "default", &err) == 0, "%s", err.msg);
        ck_assert_msg(oci_check_template(tdir, "strict", &err) == 0, "%s", err.msg);
        ck_assert_int_eq(oci_check_template(tdir, "missing", &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        ck_assert_int_eq(oci_check_template(tdir, "../oci-templates/default", &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
}
END_TEST

/* The shipped strict template: its ceilings lower the job's limits (never
 * raise them), its own allowlist narrows seccomp.allow and the manifest's
 * extra syscalls, and a manifest over a ceiling or adding a call outside
 * the list is refused at load, naming the key. */
START_TEST(test_strict_template)
{
        _cleanup_free_ char *tdir = templates_dir();
        char *cmd[] = { "/bin/x", NULL };
        char *extra[] = { "ptrace", "socket", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = "strict";
        m.resources = (struct limits){ .cpu_cores = 4, .memory_mb = 1024, .pids = 500, .disk_mb = 8 };
        m.extra_syscalls = extra;
        struct limits l;
        struct err err = ERR_INIT;
        ck_assert_msg(oci_job_limits(tdir, &m, &defaults, 0, &l, NULL, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(l.memory_mb, 256);
        ck_assert_int_eq(l.pids, 32);
        ck_assert(l.cpu_cores == 1.0);
        ck_assert_int_eq(l.disk_mb, 8);   /* no ceiling there */
        /* Below a ceiling the manifest's own value stays. */
        struct manifest small = m;
        small.resources = (struct limits){ .cpu_cores = 0.5, .memory_mb = 64, .pids = 8 };
        ck_assert_int_eq(oci_job_limits(tdir, &small, &defaults, 0, &l, NULL, &err), 0);
        ck_assert_int_eq(l.memory_mb, 64);
        ck_assert_int_eq(l.pids, 8);
        ck_assert(l.cpu_cores == 0.5);

        /* Built straight from the manifest's limits, oci_build caps them too. */
        struct oci_job job = job_for(&m, "job-strict");
        job.limits = oci_effective_limits(&m, &defaults);
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "strict");
        ck_assert_int_eq(jint(cfg, "linux", "resources", "memory", "limit"), 256LL * 1024 * 1024);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "pids", "limit"), 32);
        ck_assert_int_eq(jint(cfg, "linux", "resources", "cpu", "quota"), 100000);
        ck_assert(seccomp_allows(cfg, "read") && seccomp_allows(cfg, "execve"));
        /* In seccomp.allow, not in strict's list; an extra outside both. */
        ck_assert(!seccomp_allows(cfg, "bind") && !seccomp_allows(cfg, "shmget") && !seccomp_allows(cfg, "mknod"));
        ck_assert(!seccomp_allows(cfg, "ptrace"));
        const json_t *rules = json_object_get(json_object_get(json_object_get(cfg, "linux"), "seccomp"), "syscalls");
        size_t i;
        json_t *rule;
        json_array_foreach(rules, i, rule)
                ck_assert_msg(!has_string(json_object_get(rule, "names"), "socket"), "socket has a rule under strict");
        /* The same manifest under the default template keeps its limits and
         * gets both: the ceiling is the template's, not a global one. */
        struct manifest dm = m;
        dm.oci_template = NULL;
        ck_assert_int_eq(oci_job_limits(tdir, &dm, &defaults, 0, &l, NULL, &err), 0);
        ck_assert_int_eq(l.memory_mb, 1024);
        ck_assert_int_eq(l.pids, 500);
        /* The config's max_pids holds under any template; a lower limit stays. */
        ck_assert_int_eq(oci_job_limits(tdir, &dm, &defaults, 100, &l, NULL, &err), 0);
        ck_assert_int_eq(l.pids, 100);
        ck_assert_int_eq(l.memory_mb, 1024);
        ck_assert_int_eq(oci_job_limits(tdir, &m, &defaults, 100, &l, NULL, &err), 0);
        ck_assert_int_eq(l.pids, 32);

        /* At load. */
        ck_assert_int_eq(oci_check_manifest(tdir, &m, &err), -1);
        ck_assert_str_eq(err.field, "resources");
        ck_assert_msg(strstr(err.msg, "memory_mb 1024 is over template `strict`'s ceiling of 256"), "%s", err.msg);
        struct manifest calls = small;
        char *bad_extra[] = { "getpid", "ptrace", NULL };
        calls.extra_syscalls = bad_extra;
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(oci_check_manifest(tdir, &calls, &err), -1);
        ck_assert_str_eq(err.field, "syscalls");
        ck_assert_msg(strstr(err.msg, "`ptrace` is not in template `strict`'s allowlist"), "%s", err.msg);
        char *good_extra[] = { "getpid", NULL };
        calls.extra_syscalls = good_extra;
        err = (struct err)ERR_INIT;
        ck_assert_msg(oci_check_manifest(tdir, &calls, &err) == 0, "%s", err.msg);
        struct manifest missing = small;
        missing.oci_template = "nosuch";
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(oci_check_manifest(tdir, &missing, &err), -1);
        ck_assert_str_eq(err.field, "oci_template");
        /* The default template has no ceilings and no list of its own. */
        ck_assert_msg(oci_check_manifest(tdir, &dm, &err) == 0, "%s", err.msg);
}
END_TEST

/* A template's own allowlist fails closed: a dangling link or an
 * unreadable file in its place is an error, not "no list"; a changed list
 * is read again. */
START_TEST(test_template_allowlist_fails_closed)
{
        _cleanup_free_ char *src = templates_dir();
        _cleanup_free_ char *tdir = xasprintf("%s/templates-allow", g_tmp);
        ck_assert_int_eq(mkdir(tdir, 0755), 0);
        _cleanup_free_ char *cp = xasprintf("cp %s/strict.json %s/strict.seccomp.allow %s/", src, src, tdir);
        ck_assert_int_eq(system(cp), 0);
        _cleanup_free_ char *allow = xasprintf("%s/strict.seccomp.allow", tdir);
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = "strict";
        struct oci_job job = job_for(&m, "job-allow");
        struct seccomp_policy *p = load_policy();
        json_t *cfg = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(oci_build(tdir, &job, p, &cfg, &err) == 0, "%s", err.msg);
        ck_assert(!seccomp_allows(cfg, "bind") && seccomp_allows(cfg, "getpid"));
        json_decref(cfg);

        /* Changed: getpid taken away too, seen at the next build. */
        _cleanup_free_ char *drop = xasprintf("sed -i '/^getpid$/d' %s", allow);
        ck_assert_int_eq(system(drop), 0);
        cfg = NULL;
        ck_assert_msg(oci_build(tdir, &job, p, &cfg, &err) == 0, "%s", err.msg);
        ck_assert(!seccomp_allows(cfg, "getpid"));
        json_decref(cfg);

        /* Gone behind a dangling link: refused, never the global list. */
        ck_assert_int_eq(unlink(allow), 0);
        ck_assert_int_eq(symlink("/nonexistent/strict.seccomp.allow", allow), 0);
        cfg = NULL;
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(oci_build(tdir, &job, p, &cfg, &err), -1);
        ck_assert_ptr_null(cfg);
        ck_assert_int_eq(oci_check_manifest(tdir, &m, &err), -1);
        ck_assert_str_eq(err.field, "oci_template");

        /* Not there at all: the template has no list of its own. */
        ck_assert_int_eq(unlink(allow), 0);
        ck_assert_msg(oci_build(tdir, &job, p, &cfg, &err) == 0, "%s", err.msg);
        ck_assert(seccomp_allows(cfg, "bind"));
        json_decref(cfg);
        seccomp_policy_free(p);
}
END_TEST

/* How many times s is in the string array arr. */
static int count_string(const json_t *arr, const char *s)
{
        int n = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
                n += json_is_string(v) && !strcmp(json_string_value(v), s);
        return n;
}

/* How many strings in arr start with prefix. */
static int count_prefix(const json_t *arr, const char *prefix)
{
        int n = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
                n += json_is_string(v) && !strncmp(json_string_value(v), prefix, strlen(prefix));
        return n;
}

START_TEST(test_template_mounts_hardened)
{
        /* A template that forgets nosuid and nodev, asks for a group of its
         * own on a scratch tmpfs and puts nodev on /dev. */
        static const char text[] =
                "{\"mounts\": ["
                " {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
                " {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                "  \"options\": [\"nodev\", \"mode=755\"]},"
                " {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\","
                "  \"options\": [\"newinstance\", \"gid=5\"]},"
                " {\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                "  \"options\": [\"gid=0\", \"mode=1777\", \"nosuid\", \"nosuid\"]},"
                " {\"destination\": \"/scratch\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"},"
                " {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\", \"options\": [\"ro\"]}]}";
        _cleanup_free_ char *tdir = template_dir_with("templates-mounts", "mounts", text);
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = "mounts";
        struct oci_job job = job_for(&m, "job-mounts");
        job.uid = 2001000007;
        job.gid = 2001000107;
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        write_and_validate(cfg, "mounts");
        check_sandbox(cfg, &job);

        size_t i;
        json_t *mt;
        int tmpfs_seen = 0;
        json_array_foreach(json_object_get(cfg, "mounts"), i, mt) {
                const char *dest = json_string_value(json_object_get(mt, "destination"));
                const char *type = json_string_value(json_object_get(mt, "type"));
                const json_t *opts = json_object_get(mt, "options");
                ck_assert_msg(count_string(opts, "nosuid") == 1, "%s: nosuid %d times", dest,
                              count_string(opts, "nosuid"));
                if (!strcmp(dest, "/dev")) {
                        /* The runtime's device nodes live there. */
                        ck_assert_msg(count_string(opts, "nodev") == 0, "/dev has nodev");
                } else if (!strcmp(type, "devpts")) {
                        /* Not asserted: nodev on devpts makes every pty
                         * unusable (posix_openpt fails with EACCES); whether
                         * jobs may have ptys is still open. */
                } else {
                        ck_assert_msg(count_string(opts, "nodev") == 1, "%s: nodev %d times", dest,
                                      count_string(opts, "nodev"));
                }
                if (!strcmp(type, "tmpfs") && strcmp(dest, "/dev")) {
                        /* A scratch tmpfs belongs to the job's user, only. */
                        tmpfs_seen++;
                        ck_assert_msg(count_string(opts, "uid=2001000007") == 1 && count_prefix(opts, "uid=") == 1,
                                      "%s: uid options", dest);
                        ck_assert_msg(count_string(opts, "gid=2001000107") == 1 && count_prefix(opts, "gid=") == 1,
                                      "%s: gid options", dest);
                } else {
                        ck_assert_msg(count_prefix(opts, "uid=") == 0, "%s: has uid=", dest);
                }
                if (!strcmp(dest, "/dev/pts"))
                        ck_assert(has_string(opts, "gid=5"));   /* the tty group, not a tmpfs */
                if (!strcmp(dest, "/tmp"))
                        ck_assert(has_string(opts, "mode=1777"));
        }
        ck_assert_int_eq(tmpfs_seen, 2);   /* /tmp and /scratch */

        /* The shipped template's /dev/shm and /tmp get the same. */
        _cleanup_free_ char *real = templates_dir();
        m.oci_template = NULL;
        _cleanup_json_ json_t *def = build(real, &job);
        int n;
        const json_t *shm = mount_at(def, "/dev/shm", &n);
        ck_assert_int_eq(n, 1);
        ck_assert(has_string(json_object_get(shm, "options"), "uid=2001000007"));
        ck_assert(has_string(json_object_get(shm, "options"), "gid=2001000107"));
        ck_assert(has_string(json_object_get(shm, "options"), "nodev"));
        const json_t *dev = mount_at(def, "/dev", &n);
        ck_assert(has_string(json_object_get(dev, "options"), "nosuid"));
        ck_assert(!has_string(json_object_get(dev, "options"), "nodev"));
        ck_assert_int_eq(count_prefix(json_object_get(dev, "options"), "uid="), 0);
}
END_TEST

START_TEST(test_bad_templates)
{
        _cleanup_free_ char *tdir = xasprintf("%s/templates-bad", g_tmp);
        ck_assert_int_eq(mkdir(tdir, 0755), 0);
        _cleanup_free_ char *bad = tu_write(tdir, "broken.json", "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}\n");
        free(tu_write(tdir, "array.json", "[]"));
        free(tu_write(tdir, "proc.json", "{\"process\": 5}"));
        free(tu_write(tdir, "mounts.json", "{\"mounts\": {}}"));
        free(tu_write(tdir, "dup.json", "{\"a\": 1, \"a\": 2}"));

        struct seccomp_policy *p = load_policy();
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        struct oci_job job = job_for(&m, "job-bad");
        json_t *cfg = NULL;
        struct err err = ERR_INIT;

        static char *bad_names[] = { "../default", "a/b", "..", "x..y", "/etc/passwd" };
        for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
                m.oci_template = bad_names[i];
                ck_assert_int_eq(oci_build(tdir, &job, p, &cfg, &err), -1);
                ck_assert_int_eq(err.code, ERR_INVALID);
                ck_assert_msg(strstr(err.msg, "bad template name"), "%s", err.msg);
                ck_assert_ptr_null(cfg);
        }

        m.oci_template = "missing";
        ck_assert_int_eq(oci_build(tdir, &job, p, &cfg, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);

        m.oci_template = "broken";
        ck_assert_int_eq(oci_build(tdir, &job, p, &cfg, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        _cleanup_free_ char *want = xasprintf("`%s`:3:", bad);
        ck_assert_msg(strstr(err.msg, want), "%s", err.msg);

        static char *invalid[] = { "array", "proc", "mounts", "dup" };
        for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
                m.oci_template = invalid[i];
                ck_assert_msg(oci_build(tdir, &job, p, &cfg, &err) == -1, "%s accepted", invalid[i]);
                ck_assert_ptr_null(cfg);
        }

        /* Job checks. */
        m.oci_template = NULL;
        _cleanup_free_ char *real = templates_dir();
        m.rootfs = "relative/rootfs";
        ck_assert_int_eq(oci_build(real, &job, p, &cfg, &err), -1);
        ck_assert_msg(strstr(err.msg, "rootfs"), "%s", err.msg);
        m = manifest((char *[]){ NULL });
        ck_assert_int_eq(oci_build(real, &job, p, &cfg, &err), -1);
        ck_assert_msg(strstr(err.msg, "command"), "%s", err.msg);
        seccomp_policy_free(p);
}
END_TEST

START_TEST(test_effective_limits_and_hostname)
{
        struct limits l = oci_effective_limits(NULL, &defaults);
        ck_assert_int_eq(l.memory_mb, 256);
        char *cmd[] = { "/bin/x", NULL };
        struct manifest m = manifest(cmd);
        m.resources.memory_mb = 1024;
        l = oci_effective_limits(&m, &defaults);
        ck_assert_int_eq(l.memory_mb, 1024);
        ck_assert(l.cpu_cores == 1.0);
        ck_assert_int_eq(l.pids, 64);
        ck_assert_int_eq(l.disk_mb, 16);
        ck_assert_int_eq(l.timeout_seconds, 60);

        char id[101];
        memset(id, 'a', 100);
        id[100] = '\0';
        struct oci_job job = job_for(&m, id);
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        ck_assert_uint_eq(strlen(json_string_value(json_object_get(cfg, "hostname"))), 63);
}
END_TEST

/* oci_render() must give, byte for byte, what building the config and
 * serialising it gives: for the first job of a kind (built) and for every
 * later one (a copy with its own values), cold and warm, for values that
 * need escaping, past ASCII, long enough to be cut as a hostname; a
 * manifest, limits or template changed is a kind of its own. */
static void check_render(const char *tdir, const struct oci_job *job, const struct seccomp_policy *p)
{
        struct err err = ERR_INIT;
        json_t *cfg = NULL;
        ck_assert_msg(oci_build(tdir, job, p, &cfg, &err) == 0, "%s", err.msg);
        _cleanup_free_ char *want = json_dumps(cfg, JSON_COMPACT);
        json_decref(cfg);
        _cleanup_free_ char *got = NULL;
        size_t len = 0;
        ck_assert_msg(oci_render(tdir, job, p, &got, &len, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(len, strlen(got));
        size_t at = 0;
        while (got[at] && got[at] == want[at])
                at++;
        ck_assert_msg(got[at] == want[at], "job %s: rendered differs at byte %zu: `%.60s` against `%.60s`",
                      job->container_id, at, got + at, want + at);
}

/* check_render(), and whether oci_render() made it as a copy. */
static void check_copy(const char *tdir, const struct oci_job *job, const struct seccomp_policy *p, bool copy)
{
        uint64_t before = oci_render_copies();
        check_render(tdir, job, p);
        ck_assert_msg(oci_render_copies() == before + (copy ? 1 : 0), "job %s: %s", job->container_id,
                      copy ? "built, not copied" : "copied from another kind");
}

START_TEST(test_render_is_the_build)
{
        struct seccomp_policy *p = load_policy();
        _cleanup_free_ char *tdir = templates_dir();
        char *cmd[] = { "/bin/matmul", "--fast", NULL };
        struct manifest m = manifest(cmd);
        static const char *const ids[] = { "run-a", "run-b", "run-\"quoted\"\\back\nline\x01", "run-caf\xc3\xa9" };
        for (int warm = 0; warm < 2; warm++) {
                for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
                        struct oci_job job = job_for(&m, ids[i]);
                        job.uid = 200000 + (int64_t)i;
                        job.gid = 300000 + (int64_t)i;
                        _cleanup_free_ char *in = xasprintf("/var/lib/edgecd/workspaces/%s/input", ids[i]);
                        _cleanup_free_ char *out = xasprintf("/var/lib/edgecd/workspaces/%s/output", ids[i]);
                        job.input_dir = in;
                        job.output_dir = out;
                        job.gate_path = warm ? "/var/lib/edgecd/gate \"x\"" : NULL;
                        bool ascii = i != 3;
                        /* The first of each kind is built; past ASCII always is. */
                        check_copy(tdir, &job, p, ascii && i > 0);
                        check_copy(tdir, &job, p, ascii);
                }
        }
        /* Every ASCII byte in each of the run's own strings, as a copy. */
        for (int warm = 0; warm < 2; warm++) {
                for (int c = 1; c < 128; c++) {
                        char v[32];
                        snprintf(v, sizeof v, "/x%cy", c);
                        struct oci_job job = job_for(&m, v + 1);
                        job.gate_path = warm ? v : NULL;
                        job.input_dir = job.output_dir = job.cgroups_path = v;
                        check_copy(tdir, &job, p, true);
                }
        }
        /* Past ASCII in a path, the id ASCII: built the long way. */
        struct oci_job job = job_for(&m, "run-ascii");
        job.input_dir = "/var/lib/\xc3\xa9" "dge/input";
        check_copy(tdir, &job, p, false);
        /* A hostname cut at 63 bytes. */
        char id[101];
        memset(id, 'a', 100);
        id[100] = '\0';
        job = job_for(&m, id);
        check_copy(tdir, &job, p, true);

        /* Each thing a kind is made of, changed alone, is a kind of its own. */
        char *cmd2[] = { "/bin/matmul", "--slow", NULL };
        char *env[] = { "FOO=bar", NULL };
        char *extra[] = { "personality", NULL };
        for (int v = 0; v < 8; v++) {   /* gate or none: the first loop */
                struct manifest mv = manifest(cmd);
                char kid[32];
                snprintf(kid, sizeof kid, "run-kind-%d", v);
                struct oci_job jv = job_for(&mv, kid);
                switch (v) {
                case 0: mv.command = cmd2; break;
                case 1: mv.env = env; break;
                case 2: mv.extra_syscalls = extra; break;
                case 3: mv.cwd = (char *)"/work"; break;
                case 4: mv.rootfs = (char *)"/srv/plugins/other/rootfs"; break;
                case 5: jv.limits.cpu_cores = 0.25; break;
                case 6: jv.limits.memory_mb = 77; break;
                case 7: jv.limits.pids = 7; break;
                }
                check_copy(tdir, &jv, p, false);
                jv.container_id = "run-kind-again";
                check_copy(tdir, &jv, p, true);
        }
        /* The largest ids. */
        job = job_for(&m, "run-ids");
        job.uid = job.gid = 4294967294LL;
        check_copy(tdir, &job, p, true);

        /* Another policy (a shorter list): a kind of its own. */
        _cleanup_free_ char *allow = xasprintf("%s/seccomp.allow", tdir);
        _cleanup_free_ char *text = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(read_file(allow, 1 << 20, READ_FOLLOW_LINKS, &text, NULL, &err), 0);
        char *rest = strchr(strstr(text, "\nread\n") + 1, '\n');   /* from the line after `read` on */
        _cleanup_free_ char *pdir = tu_mkdtemp();
        free(tu_write(pdir, "short.allow", rest + 1));
        _cleanup_free_ char *short_path = xasprintf("%s/short.allow", pdir);
        struct seccomp_policy *p2 = NULL;
        ck_assert_msg(seccomp_policy_load(short_path, &p2, &err) == 0, "%s", err.msg);
        ck_assert_uint_lt(seccomp_policy_count(p2), seccomp_policy_count(p));
        job = job_for(&m, "run-policy");
        check_copy(tdir, &job, p2, false);
        check_copy(tdir, &job, p2, true);
        seccomp_policy_free(p2);
        tu_rm_rf(pdir);

        /* A template rewritten on disk, and its own allowlist: the next job
         * has what they now say. */
        m.oci_template = (char *)"mine";
        _cleanup_free_ char *mine = template_dir_with("render", "mine",
                "{\"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                " \"options\": [\"size=1m\", \"uid=5\"]}]}");
        job = job_for(&m, "run-mine");
        check_copy(mine, &job, p, false);
        check_copy(mine, &job, p, true);
        usleep(20000);
        free(tu_write(mine, "mine.json", "{\"mounts\": [{\"destination\": \"/scratch\", \"type\": \"tmpfs\","
                                         " \"source\": \"tmpfs\", \"options\": [\"size=2m\"]}]}"));
        _cleanup_free_ char *got = NULL;
        size_t len = 0;
        ck_assert_msg(oci_render(mine, &job, p, &got, &len, &err) == 0, "%s", err.msg);
        ck_assert_ptr_nonnull(strstr(got, "\"/scratch\""));
        ck_assert_ptr_null(strstr(got, "\"/tmp\""));
        check_copy(mine, &job, p, true);
        free(tu_write(mine, "mine.seccomp.allow", "read\nwrite\nexit_group\n"));
        check_copy(mine, &job, p, false);
        usleep(20000);
        free(tu_write(mine, "mine.seccomp.allow", "read\nwrite\nexit_group\nopenat\n"));
        check_copy(mine, &job, p, false);
        check_copy(mine, &job, p, true);
        seccomp_policy_free(p);
        oci_template_cache_clear();
}
END_TEST

/* A job's config is rendered from the template its limits were read from:
 * oci_job_limits()'s stamp, given to oci_render(), stands for the files
 * (no second stat), so a template rewritten between the two still renders
 * the version the limits came from while it is cached, and the stamp says
 * it changed; without a stamp the files are looked at again. */
START_TEST(test_render_from_the_limits_version)
{
        struct seccomp_policy *p = load_policy();
        char *cmd[] = { "/bin/matmul", NULL };
        struct manifest m = manifest(cmd);
        m.oci_template = (char *)"mine";
        m.resources = (struct limits){ .cpu_cores = 1, .memory_mb = 512, .pids = 64, .disk_mb = 8 };
        _cleanup_free_ char *mine = template_dir_with("stamped", "mine",
                "{\"linux\": {\"resources\": {\"memory\": {\"limit\": 268435456}}},"
                " \"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
                " \"options\": [\"size=1m\"]}]}");
        struct err err = ERR_INIT;
        struct limits l;
        struct oci_template_stamp stamp;
        ck_assert_msg(oci_job_limits(mine, &m, &defaults, 0, &l, &stamp, &err) == 0, "%s", err.msg);
        ck_assert(stamp.there);
        ck_assert_int_eq(l.memory_mb, 256);
        struct oci_job job = job_for(&m, "run-stamped");
        job.limits = l;
        job.tmpl = &stamp;
        check_copy(mine, &job, p, false);   /* the first of its kind: built */
        ck_assert(oci_template_same(mine, &m, &stamp));

        usleep(20000);
        free(tu_write(mine, "mine.json", "{\"mounts\": [{\"destination\": \"/scratch\", \"type\": \"tmpfs\","
                                         " \"source\": \"tmpfs\", \"options\": [\"size=2m\"]}]}"));
        ck_assert(!oci_template_same(mine, &m, &stamp));
        _cleanup_free_ char *old = NULL, *now = NULL;
        size_t len = 0;
        uint64_t copies = oci_render_copies();
        ck_assert_msg(oci_render(mine, &job, p, &old, &len, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(oci_render_copies(), copies + 1);
        ck_assert_ptr_nonnull(strstr(old, "\"/tmp\""));
        ck_assert_ptr_null(strstr(old, "\"/scratch\""));
        /* A kind with no kept shape yet is built the long way, from that
         * same version too. */
        struct oci_job other = job;
        other.limits.pids = 7;
        _cleanup_free_ char *built = NULL;
        copies = oci_render_copies();
        ck_assert_msg(oci_render(mine, &other, p, &built, &len, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(oci_render_copies(), copies);
        ck_assert_ptr_nonnull(strstr(built, "\"/tmp\""));
        ck_assert_ptr_null(strstr(built, "\"/scratch\""));
        job.tmpl = NULL;
        ck_assert_msg(oci_render(mine, &job, p, &now, &len, &err) == 0, "%s", err.msg);
        ck_assert_ptr_nonnull(strstr(now, "\"/scratch\""));
        ck_assert_ptr_null(strstr(now, "\"/tmp\""));

        /* The stamped version gone from the cache (the template read anew):
         * rendered from the files as they stand, never kept as that version's. */
        job.tmpl = &stamp;
        copies = oci_render_copies();
        _cleanup_free_ char *after = NULL;
        ck_assert_msg(oci_render(mine, &job, p, &after, &len, &err) == 0, "%s", err.msg);
        ck_assert_ptr_nonnull(strstr(after, "\"/scratch\""));
        ck_assert_uint_eq(oci_render_copies(), copies);

        /* A stamp of no files (never read): the files as they stand. */
        struct oci_template_stamp none = { 0 };
        job.tmpl = &none;
        check_copy(mine, &job, p, true);
        seccomp_policy_free(p);
        oci_template_cache_clear();
}
END_TEST

/* ---- real containers, on the host's runtime (runc here, or the path in
 * $EDGECD_RUNTIME), driven through the daemon's own runtime driver ---- */

static char *which(const char *prog)
{
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = xasprintf("%s:/usr/sbin:/usr/bin:/sbin:/bin", path ? path : "");
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char *p = xasprintf("%s/%s", d, prog);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

static int run_cmd(const char *cmd)
{
        int rc = system(cmd);
        ck_assert_msg(rc != -1 && WIFEXITED(rc), "`%s` did not run", cmd);
        return WEXITSTATUS(rc);
}

static void copy_file(const char *src, const char *dst, mode_t mode)
{
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct err err = ERR_INIT;
        ck_assert_msg(read_file(src, 64 * 1024 * 1024, 0, &data, &len, &err) == 0, "%s", err.msg);
        ck_assert_msg(write_file(dst, data, len, mode, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(chmod(dst, mode), 0);
}

/* The rootfs of a test plugin: a static busybox, and mount points (the
 * runtime would otherwise create them in the rootfs). */
static char *make_rootfs(void)
{
        char *rootfs = xasprintf("%s/rootfs", g_tmp);
        static const char *const dirs[] = { "bin", "proc", "dev", "sys", "tmp", "input", "output" };
        struct err err = ERR_INIT;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                _cleanup_free_ char *d = xasprintf("%s/%s", rootfs, dirs[i]);
                ck_assert_int_eq(mkdir_p(d, 0755, &err), 0);
        }
        _cleanup_free_ char *bb = xasprintf("%s/bin/busybox", rootfs);
        copy_file("/bin/busybox", bb, 0755);
        return rootfs;
}

/* Compile src (a C program) statically with cc into rootfs/bin/name. */
static bool compile_static(const char *cc, const char *rootfs, const char *name, const char *src)
{
        _cleanup_free_ char *compiler = which(cc);
        if (!compiler)
                return false;
        _cleanup_free_ char *c = tu_write(g_tmp, name, src);
        _cleanup_free_ char *cfile = xasprintf("%s.c", c);
        ck_assert_int_eq(rename(c, cfile), 0);
        _cleanup_free_ char *cmd = xasprintf("%s -static -O1 -pthread -o '%s/bin/%s' '%s'", compiler, rootfs,
                                             name, cfile);
        ck_assert_msg(run_cmd(cmd) == 0, "`%s` failed", cmd);
        return true;
}

/* The runtime the real-container tests use: $EDGECD_RUNTIME when it is a
 * path, else runc; NULL when there is none. */
static char *test_runtime(void)
{
        const char *want = getenv("EDGECD_RUNTIME");
        if (want && want[0] == '/')
                return access(want, X_OK) == 0 ? xstrdup(want) : NULL;
        return which("runc");
}

struct run {
        int status;       /* the process's exit status, or 128+signal */
        char *out;        /* its stdout and stderr */
        char *result;     /* /output/x, or NULL */
};

static void run_free(struct run *r)
{
        free(r->out);
        free(r->result);
}

/* Create a workspace, build the config for cmd, run it on the runtime at
 * rt_path (create, start, wait: as the daemon does), collect, delete the
 * container and the workspace. */
static struct run run_container(const char *rt_path, char *rootfs, const char *id, char **cmd)
{
        struct err err = ERR_INIT;
        _cleanup_free_ char *wsroot = xasprintf("%s/workspaces", g_tmp);
        static const char params[] = "{\"n\":42}";
        struct workspace *ws = NULL;
        ck_assert_msg(workspace_create(wsroot, id, params, strlen(params), 1, 65534, 65534, &ws, &err) == 0, "%s",
                      err.msg);

        struct manifest m = manifest(cmd);
        m.rootfs = rootfs;
        _cleanup_free_ char *cg = xasprintf("%s/%s", g_cgparent, id);
        struct oci_job job = {
                .container_id = id, .manifest = &m, .limits = defaults, .input_dir = ws->input_dir,
                .output_dir = ws->output_dir, .uid = 65534, .gid = 65534, .cgroups_path = cg,
        };
        _cleanup_free_ char *tdir = templates_dir();
        _cleanup_json_ json_t *cfg = build(tdir, &job);
        ck_assert_int_eq(oci_write_bundle(ws->bundle_dir, cfg, &err), 0);

        _cleanup_free_ char *log = xasprintf("%s/%s.log", g_tmp, id);
        _cleanup_close_ int log_fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        ck_assert_int_ge(log_fd, 0);
        _cleanup_free_ char *root = xasprintf("%s/rt", g_tmp);
        ck_assert_int_eq(mkdir_p(root, 0700, &err), 0);
        const char *name = strrchr(rt_path, '/') + 1;
        struct runtime rt = { .ops = &runtime_cli_ops, .name = (char *)(uintptr_t)name,
                              .path = (char *)(uintptr_t)rt_path, .root = root, .cli_timeout_ms = 30000 };
        struct pidref init = PIDREF_NULL;
        struct proc_exit ex = { 0 };
        struct run r = { .status = -1 };
        ck_assert_msg(runtime_create(&rt, id, ws->bundle_dir, log_fd, &init, &err) == 0, "%s", err.msg);
        ck_assert_msg(runtime_start(&rt, id, &err) == 0, "%s", err.msg);
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 60000, -1, &ex, &err) == 0, "%s", err.msg);
        ck_assert_int_ne(ex.status, WAIT_TIMEOUT);
        r.status = ex.status == WAIT_EXITED ? ex.exit_code : 128 + ex.signal;
        ck_assert_msg(runtime_delete(&rt, id, &err) == 0, "%s", err.msg);
        r.out = read_file_tail(log, 64 * 1024);
        _cleanup_free_ char *x = xasprintf("%s/x", ws->output_dir);
        if (read_file(x, 4096, 0, &r.result, NULL, &err) < 0)
                r.result = NULL;
        ck_assert_msg(workspace_destroy(ws, false, &err) == 0, "%s", err.msg);
        return r;
}

static const char *const musl_hello =
        "#include <stdio.h>\n"
        "int main(void) {\n"
        "    FILE *f = fopen(\"/output/x\", \"w\");\n"
        "    if (!f) return 2;\n"
        "    fputs(\"musl\", f);\n"
        "    printf(\"hello from musl\\n\");\n"
        "    return fclose(f) != 0;\n"
        "}\n";

/* glibc: threads, fork and ordinary sockets work (clone3 answers ENOSYS,
 * glibc falls back to clone); clone with CLONE_NEWUSER and an AF_VSOCK
 * socket are killed. */
static const char *const glibc_clone =
        "#define _GNU_SOURCE\n"
        "#include <pthread.h>\n#include <sched.h>\n#include <signal.h>\n#include <stdio.h>\n"
        "#include <string.h>\n#include <sys/socket.h>\n#include <sys/wait.h>\n#include <unistd.h>\n"
        "static char stack[65536];\n"
        "static int child(void *a) { (void)a; return 0; }\n"
        "static void *thread(void *a) { return a; }\n"
        "int main(int argc, char **argv) {\n"
        "    if (argc > 1 && !strcmp(argv[1], \"newuser\"))\n"
        "        return clone(child, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL) < 0 ? 3 : 0;\n"
        "    if (argc > 1 && !strcmp(argv[1], \"vsock\"))\n"
        "        return socket(40 /* AF_VSOCK */, SOCK_STREAM, 0) < 0 ? 3 : 0;\n"
        "    int sv[2];\n"
        "    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 6;\n"
        "    if (socket(AF_INET, SOCK_STREAM, 0) < 0) return 8;\n"
        "    pthread_t t;\n"
        "    if (pthread_create(&t, NULL, thread, NULL) != 0) return 4;\n"
        "    pthread_join(t, NULL);\n"
        "    pid_t p = fork();\n"
        "    if (p == 0) _exit(7);\n"
        "    int st;\n"
        "    if (waitpid(p, &st, 0) != p || WEXITSTATUS(st) != 7) return 5;\n"
        "    FILE *f = fopen(\"/output/x\", \"w\");\n"
        "    fputs(\"glibc\", f);\n"
        "    return fclose(f) != 0;\n"
        "}\n";

START_TEST(test_real_container)
{
        _cleanup_free_ char *runc = test_runtime();
        ck_assert_msg(geteuid() == 0 && runc && access("/bin/busybox", X_OK) == 0,
                      "test_real_container needs root, a runtime and /bin/busybox (scripts/install-deps.sh)");
        struct err rerr = ERR_INIT;
        ck_assert_msg(reaper_setup(&rerr) == 0, "%s", rerr.msg);
        _cleanup_free_ char *rootfs = make_rootfs();

        /* An ordinary script: reads /input, writes /output, runs as 65534. */
        char *sh[] = { "/bin/busybox", "sh", "-c",
                       "echo hi > /output/x && cat /input/input.json && echo && id -u && hostname && "
                       "! touch /input/y 2>/dev/null && ! touch /x 2>/dev/null && echo ro-ok", NULL };
        struct run r = run_container(runc, rootfs, "t-sh", sh);
        ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.out);
        ck_assert_str_eq(r.result, "hi\n");
        ck_assert_msg(strstr(r.out, "{\"n\":42}\n65534\nt-sh\nro-ok"), "%s", r.out);
        run_free(&r);

        /* Forbidden system calls kill with SIGSYS. */
        char *unshare[] = { "/bin/busybox", "unshare", "-n", "true", NULL };
        r = run_container(runc, rootfs, "t-unshare", unshare);
        ck_assert_msg(r.status == 128 + SIGSYS, "unshare: status %d: %s", r.status, r.out);
        run_free(&r);
        char *mnt[] = { "/bin/busybox", "mount", "-t", "tmpfs", "none", "/tmp", NULL };
        r = run_container(runc, rootfs, "t-mount", mnt);
        ck_assert_msg(r.status == 128 + SIGSYS, "mount: status %d: %s", r.status, r.out);
        run_free(&r);

        /* No network: only a loopback interface, and it is down. */
        char *net[] = { "/bin/busybox", "sh", "-c", "ls /sys/class/net | tr '\\n' ' '", NULL };
        r = run_container(runc, rootfs, "t-net", net);
        ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.out);
        ck_assert_msg(strcmp(r.out, "lo ") == 0, "interfaces: `%s`", r.out);
        run_free(&r);

        /* A static musl program. */
        if (compile_static("musl-gcc", rootfs, "hello", musl_hello)) {
                char *hello[] = { "/bin/hello", NULL };
                r = run_container(runc, rootfs, "t-musl", hello);
                ck_assert_msg(r.status == 0, "musl: status %d: %s", r.status, r.out);
                ck_assert_str_eq(r.result, "musl");
                ck_assert_msg(strstr(r.out, "hello from musl"), "%s", r.out);
                run_free(&r);
        } else {
                fprintf(stderr, "test_real_container: no musl-gcc; musl case skipped\n");
        }

        /* A static glibc program with threads and fork; clone(CLONE_NEWUSER) dies. */
        if (compile_static("gcc", rootfs, "clonetest", glibc_clone)) {
                char *ok[] = { "/bin/clonetest", NULL };
                r = run_container(runc, rootfs, "t-glibc", ok);
                ck_assert_msg(r.status == 0, "glibc: status %d: %s", r.status, r.out);
                ck_assert_str_eq(r.result, "glibc");
                run_free(&r);
                char *newuser[] = { "/bin/clonetest", "newuser", NULL };
                r = run_container(runc, rootfs, "t-newuser", newuser);
                ck_assert_msg(r.status == 128 + SIGSYS, "clone(CLONE_NEWUSER): status %d: %s", r.status, r.out);
                run_free(&r);
                char *vsock[] = { "/bin/clonetest", "vsock", NULL };
                r = run_container(runc, rootfs, "t-vsock", vsock);
                ck_assert_msg(r.status == 128 + SIGSYS, "socket(AF_VSOCK): status %d: %s", r.status, r.out);
                run_free(&r);
        }
}
END_TEST

static void unmount_all_under(const char *path)
{
        for (int tries = 0; tries < 8; tries++) {
                FILE *f = fopen("/proc/self/mounts", "re");
                if (!f)
                        return;
                char *line = NULL;
                size_t cap = 0;
                int n = 0;
                size_t len = strlen(path);
                while (getline(&line, &cap, f) > 0) {
                        char *mp = strchr(line, ' ');
                        if (!mp || strncmp(mp + 1, path, len) != 0)
                                continue;
                        char *end = strchr(mp + 1, ' ');
                        if (end)
                                *end = '\0';
                        umount2(mp + 1, MNT_DETACH);
                        n++;
                }
                free(line);
                fclose(f);
                if (n == 0)
                        return;
        }
}

static void setup(void)
{
        g_tmp = tu_mkdtemp();
        snprintf(g_cgparent, sizeof g_cgparent, "/edgecd-test-oci-%d", (int)getpid());
}

static void teardown(void)
{
        /* Whatever a failed test left: containers, mounts, cgroups, files. */
        _cleanup_free_ char *runc = test_runtime();
        static const char *const ids[] = { "t-sh", "t-unshare", "t-mount", "t-net", "t-musl", "t-glibc",
                                           "t-newuser", "t-vsock" };
        for (size_t i = 0; runc && i < ARRAY_SIZE(ids); i++) {
                _cleanup_free_ char *cmd = xasprintf("'%s' --root '%s/rt' delete --force '%s' >/dev/null 2>&1",
                                                     runc, g_tmp, ids[i]);
                int rc = system(cmd);
                (void)rc;
        }
        unmount_all_under(g_tmp);
        tu_rm_rf(g_tmp);
        _cleanup_free_ char *pattern = xasprintf("/sys/fs/cgroup/*%s", g_cgparent);
        _cleanup_free_ char *pattern2 = xasprintf("/sys/fs/cgroup/*%s/*/", g_cgparent);
        glob_t g;
        if (glob(pattern2, GLOB_ONLYDIR, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++)
                        rmdir(g.gl_pathv[i]);
                globfree(&g);
        }
        if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++)
                        rmdir(g.gl_pathv[i]);
                globfree(&g);
        }
        free(g_tmp);
        g_tmp = NULL;
}

static Suite *suite(void)
{
        Suite *s = suite_create("oci");
        TCase *tc = tcase_create("config");
        tcase_set_timeout(tc, 60);
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_defaults_only);
        tcase_add_test(tc, test_warm_gate);
        tcase_add_test(tc, test_template_cache);
        tcase_add_test(tc, test_full_resources);
        tcase_add_test(tc, test_extra_syscalls_and_env);
        tcase_add_test(tc, test_template_cannot_weaken);
        tcase_add_test(tc, test_template_refusals);
        tcase_add_test(tc, test_shipped_template_passes);
        tcase_add_test(tc, test_strict_template);
        tcase_add_test(tc, test_template_allowlist_fails_closed);
        tcase_add_test(tc, test_template_mounts_hardened);
        tcase_add_test(tc, test_bad_templates);
        tcase_add_test(tc, test_effective_limits_and_hostname);
        tcase_add_test(tc, test_render_is_the_build);
        tcase_add_test(tc, test_render_from_the_limits_version);
        suite_add_tcase(s, tc);
        TCase *rc = tcase_create("real");
        tcase_set_timeout(rc, 180);
        tcase_add_unchecked_fixture(rc, setup, teardown);
        tcase_add_test(rc, test_real_container);
        suite_add_tcase(s, rc);
        return s;
}

TEST_MAIN(suite)
