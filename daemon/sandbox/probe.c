/* probe.c - choosing the runtime by running the sandbox probe on each
 * candidate (see probe.h).
 *
 * Owns STATE_DIR/probe/: a rootfs holding the probe binary (embedded in the
 * daemon, see inside/payload.S) and the mount points the template needs,
 * and one workspace per probe run.  Runs on the main thread at start, before
 * any worker. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/metrics.h"
#include "base/util.h"
#include "registry/manifest.h"
#include "registry/oci.h"
#include "runtime/result.h"
#include "workspace.h"

#define PROBE_DEADLINE_MS 10000
#define PROBE_RESULT_MAX 65536
#define PROBE_BINARY "sandbox-probe"

extern const unsigned char sandbox_probe_payload[];
extern const unsigned char sandbox_probe_payload_end[];

/* ---- finding binaries ---- */

static bool is_executable(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *probe_find_binary(const char *name)
{
        if (strchr(name, '/'))
                return is_executable(name) ? realpath(name, NULL) : NULL;
        static const char *const fixed[] = { "/usr/sbin", "/usr/bin", "/usr/local/bin",
                                             "/usr/local/sbin", "/sbin", "/bin" };
        const char *path_env = getenv("PATH");
        _cleanup_free_ char *dirs = xstrdup(path_env ? path_env : "");
        char *save = NULL;
        for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                if (dir[0] != '/')
                        continue;
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
                if (is_executable(p))
                        return TAKE_PTR(p);
        }
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", fixed[i], name);
                if (is_executable(p))
                        return TAKE_PTR(p);
        }
        return NULL;
}

/* ---- the probe's rootfs and bundle ---- */

/* STATE/probe/rootfs: the probe binary, 0755, and nothing else yet. */
static int make_rootfs(const char *rootfs, struct err *err)
{
        if (mkdir_p(rootfs, 0755, err) < 0)
                return -1;
        if (chmod(rootfs, 0755) < 0)
                return err_errno(err, ERR_IO, "chmod `%s`", rootfs);
        _cleanup_free_ char *bin = xasprintf("%s/" PROBE_BINARY, rootfs);
        size_t len = (size_t)(sandbox_probe_payload_end - sandbox_probe_payload);
        if (write_file(bin, sandbox_probe_payload, len, 0755, err) < 0)
                return -1;
        if (chmod(bin, 0755) < 0)
                return err_errno(err, ERR_IO, "chmod `%s`", bin);
        return 0;
}

/* The rootfs is read-only in the container: every mount destination the
 * config names must exist in it beforehand. */
static int make_mount_points(const char *rootfs, const json_t *config, struct err *err)
{
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(config, "mounts"), i, m) {
                const char *dest = json_string_value(json_object_get(m, "destination"));
                if (!dest || dest[0] != '/' || path_has_dotdot(dest))
                        continue;
                _cleanup_free_ char *p = xasprintf("%s%s", rootfs, dest);
                if (mkdir_p(p, 0755, err) < 0)
                        return -1;
        }
        return 0;
}

/* ---- judging the report ---- */

static const char *call_outcome(const json_t *calls, const char *name, int *ret_signal, int *ret_exit)
{
        json_t *c = json_object_get(calls, name);
        *ret_signal = json_is_integer(json_object_get(c, "signal")) ? (int)json_integer_value(json_object_get(c, "signal")) : -1;
        *ret_exit = json_is_integer(json_object_get(c, "exit")) ? (int)json_integer_value(json_object_get(c, "exit")) : -1;
        return c ? NULL : "missing from the report";
}

/* "it exited with status 42" / "it was killed by signal 9" */
static char *outcome_text(int sig, int ex)
{
        if (sig >= 0)
                return xasprintf("it was killed by signal %d", sig);
        if (ex == 42)
                return xstrdup("it succeeded");
        if (ex == 43)
                return xstrdup("it failed with an error, but was not killed");
        return xasprintf("it exited with status %d", ex);
}

static int judge(const char *text, int64_t uid, struct err *err)
{
        json_error_t jerr;
        _cleanup_json_ json_t *r = json_loads(text, 0, &jerr);
        if (!json_is_object(r))
                return err_set(err, ERR_RUNTIME, 0, "the probe's report is not JSON: %s", jerr.text);
        if (json_integer_value(json_object_get(r, "uid")) != uid ||
            json_integer_value(json_object_get(r, "euid")) != uid)
                return err_set(err, ERR_RUNTIME, 0, "the probe ran as uid %lld, not as the job's uid %lld",
                               (long long)json_integer_value(json_object_get(r, "uid")), (long long)uid);
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(r, "caps"), key, v) {
                const char *s = json_string_value(v);
                if (!s || strspn(s, "0") != strlen(s))
                        return err_set(err, ERR_RUNTIME, 0, "the probe holds capabilities: %s %s", key,
                                       s ? s : "unknown");
        }
        if (json_object_size(json_object_get(r, "caps")) != 5)
                return err_set(err, ERR_RUNTIME, 0, "the probe could not read its capabilities");
        const char *nnp = json_string_value(json_object_get(r, "no_new_privs"));
        if (!nnp || strcmp(nnp, "1"))
                return err_set(err, ERR_RUNTIME, 0, "no_new_privs is not set in the container");
        const char *sc = json_string_value(json_object_get(r, "seccomp"));
        if (!sc || strcmp(sc, "2"))
                return err_set(err, ERR_RUNTIME, 0, "no seccomp filter in the container (Seccomp: %s)",
                               sc ? sc : "unknown");
        json_t *ifs = json_object_get(r, "interfaces");
        if (json_array_size(ifs) != 1 || strcmp(json_string_value(json_array_get(ifs, 0)) ?: "", "lo")) {
                _cleanup_free_ char *list = json_dumps(ifs, JSON_COMPACT);
                return err_set(err, ERR_RUNTIME, 0, "the container's network is not empty: interfaces %s",
                               list ? list : "unknown");
        }
        json_t *calls = json_object_get(r, "calls");
        int sig, ex;
        const char *miss = call_outcome(calls, "fork", &sig, &ex);
        if (miss || sig >= 0 || ex != 7) {
                _cleanup_free_ char *o = miss ? xstrdup(miss) : outcome_text(sig, ex);
                return err_set(err, ERR_RUNTIME, 0, "a plain fork() does not work in the container: %s", o);
        }
        static const struct {
                const char *name, *what;
        } deadly[] = {
                { "forbidden", "a forbidden system call (keyctl)" },
                { "clone_newuser", "clone(CLONE_NEWUSER)" },
                { "clone_newnet", "clone(CLONE_NEWNET)" },
                { "vsock", "socket(AF_VSOCK)" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(deadly); i++) {
                miss = call_outcome(calls, deadly[i].name, &sig, &ex);
                if (miss || sig != SIGSYS) {
                        _cleanup_free_ char *o = miss ? xstrdup(miss) : outcome_text(sig, ex);
                        return err_set(err, ERR_RUNTIME, 0, "the seccomp filter does not hold: %s was not killed (%s)",
                                       deadly[i].what, o);
                }
        }
        return 0;
}

/* ---- one probe run ---- */

/* Run the sandbox probe once on rt.  0 when the sandbox holds; *ret_ms is
 * the time from create to the probe's exit. */
static int probe_sandbox(const struct probe_env *pe, const struct runtime *rt, int64_t *ret_ms, struct err *err)
{
        const struct config *cfg = pe->cfg;
        _cleanup_free_ char *dir = xasprintf("%s/probe", cfg->state_dir);
        _cleanup_free_ char *rootfs = xasprintf("%s/rootfs", dir);
        _cleanup_free_ char *work = xasprintf("%s/work", dir);
        _cleanup_free_ char *id = xasprintf("edgecd-probe-%d-%s", (int)getpid(), rt->name);
        _cleanup_free_ char *cg = xasprintf("%s/probe-%d-%s", cfg->cgroup_parent, (int)getpid(), rt->name);
        struct err ignore = ERR_INIT;

        if (make_rootfs(rootfs, err) < 0)
                return err_wrap(err, "probe rootfs");
        runtime_delete(rt, id, &ignore);   /* a leftover of an earlier run */
        /* A daemon killed mid-probe had another pid, so another id: its
         * workspace (with its tmpfs mounts) is swept whatever its name.
         * The state dir's lock keeps every other daemon out of here. */
        if (workspace_sweep(work, NULL, NULL, NULL, err) < 0)
                return err_wrap(err, "probe: leftovers");

        struct job_ids ids;
        if (idpool_take(pe->ids, &ids, err) < 0)
                return err_wrap(err, "probe");
        struct workspace *ws = NULL;
        if (workspace_create(work, id, "{}", 2, 1, ids.uid, ids.gid, &ws, err) < 0) {
                idpool_give(pe->ids, ids);
                return err_wrap(err, "probe workspace");
        }

        static char *probe_cmd[] = { (char *)"/" PROBE_BINARY, NULL };
        static char *no_strings[] = { NULL };
        struct manifest m = {
                .name = (char *)"edgecd-probe", .version = (char *)"0.0.0", .rootfs = rootfs,
                .command = probe_cmd, .env = no_strings, .extra_syscalls = no_strings,
        };
        struct oci_job oj = {
                .container_id = id, .manifest = &m,
                .limits = { .cpu_cores = 1.0, .memory_mb = 64, .pids = 16, .disk_mb = 1, .timeout_seconds = 10 },
                .input_dir = ws->input_dir, .output_dir = ws->output_dir,
                .uid = ids.uid, .gid = ids.gid, .cgroups_path = cg,
        };
        _cleanup_json_ json_t *config = NULL;
        int r = oci_build(cfg->templates_dir, &oj, pe->policy, &config, err);
        if (r == 0)
                r = make_mount_points(rootfs, config, err);
        if (r == 0)
                r = oci_write_bundle(ws->bundle_dir, config, err);
        _cleanup_free_ char *log_path = xasprintf("%s/probe.log", ws->dir);
        _cleanup_close_ int log_fd = -1;
        if (r == 0) {
                log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
                if (log_fd < 0)
                        r = err_errno(err, ERR_IO, "open `%s`", log_path);
        }

        int64_t t0 = now_mono_ms();
        struct pidref init = PIDREF_NULL;
        struct proc_exit ex = { 0 };
        bool created = false;
        if (r == 0) {
                r = runtime_create(rt, id, ws->bundle_dir, log_fd, &init, err);
                created = r == 0;
        }
        if (r == 0)
                r = runtime_start(rt, id, err);
        if (r == 0) {
                r = pidref_wait(&init, t0 + PROBE_DEADLINE_MS, -1, &ex, err);
                if (r == 0 && ex.status == WAIT_TIMEOUT)
                        r = err_set(err, ERR_RUNTIME, 0, "the probe container did not exit within %d ms",
                                    PROBE_DEADLINE_MS);
        }
        *ret_ms = now_mono_ms() - t0;
        if (created && init.pid > 0) {
                pidref_signal(&init, SIGKILL);
                struct proc_exit ignored;
                if (pidref_wait(&init, now_mono_ms() + 2000, -1, &ignored, &ignore) < 0)
                        pidref_release(&init);
        }
        if (r == 0 && !(ex.status == WAIT_EXITED && ex.exit_code == 0)) {
                _cleanup_free_ char *tail = read_file_tail(log_path, 4096);
                _cleanup_free_ char *msg = runtime_error_text(rt, tail);
                _cleanup_free_ char *how = ex.status == WAIT_EXITED ? xasprintf("exited with status %d", ex.exit_code)
                                                                    : xasprintf("was killed by signal %d", ex.signal);
                r = err_set(err, ERR_RUNTIME, 0, "the probe %s%s%s", how, *msg ? ": " : "", msg);
        }
        if (r == 0) {
                _cleanup_free_ char *text = NULL;
                if (result_read(ws->output_dir, PROBE_RESULT_MAX, &text, NULL, err) < 0)
                        r = err_wrap(err, "the probe's report");
                else
                        r = judge(text, ids.uid, err);
        }
        struct err derr = ERR_INIT;
        if (runtime_delete_retry(rt, id, 3, &derr) < 0 && r == 0) {
                if (err)
                        *err = derr;
                r = -1;
        }
        err_clear(&derr);
        if (workspace_destroy(ws, false, &derr) < 0 && r == 0) {
                if (err)
                        *err = derr;
                r = -1;
        }
        idpool_give(pe->ids, ids);
        return r;
}

/* ---- choosing ---- */

static const char *base_name(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static void say(void (*report)(const char *, void *), void *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void say(void (*report)(const char *, void *), void *ctx, const char *fmt, ...)
{
        if (!report)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        report(msg, ctx);
        free(msg);
}

int probe_select_runtime(const struct probe_env *pe, void (*report)(const char *msg, void *ctx),
                         void *ctx, struct runtime **ret, struct err *err)
{
        const struct config *cfg = pe->cfg;
        if (!cfg->cgroup_parent || cfg->cgroup_parent[0] != '/')
                return err_set(err, ERR_INVALID, 0, "runtime: bad cgroup parent `%s`",
                               cfg->cgroup_parent ? cfg->cgroup_parent : "");
        const char *cands[3];
        size_t n = 0;
        if (cfg->runtime && *cfg->runtime)
                cands[n++] = cfg->runtime;
        cands[n++] = "crun";
        cands[n++] = "runc";

        _cleanup_free_ char *reasons = NULL;
        for (size_t i = 0; i < n; i++) {
                const char *name = base_name(cands[i]);
                bool dup = false;
                for (size_t j = 0; j < i; j++)
                        dup |= !strcmp(base_name(cands[j]), name);
                if (dup || !*name || !runtime_id_ok(name))
                        continue;

                _cleanup_free_ char *path = probe_find_binary(cands[i]);
                if (!path) {
                        if (strchr(cands[i], '/'))
                                say(report, ctx, "runtime `%s`: not found at `%s`", name, cands[i]);
                        else
                                say(report, ctx, "runtime `%s`: not found in PATH", name);
                        _cleanup_free_ char *r = xasprintf("%s: not found", name);
                        strv_join_append(&reasons, r);
                        continue;
                }
                /* A state root per runtime: the containers one runtime
                 * leaves behind are swept with that runtime. */
                _cleanup_free_ char *root = xasprintf("%s/runtime/%s", cfg->state_dir, name);
                if (mkdir_p(root, 0700, err) < 0)
                        return err_wrap(err, "runtime");
                struct runtime *rt = runtime_cli_new(name, path, root, cfg->runtime_timeout_seconds * 1000);
                int64_t ms = 0;
                struct err perr = ERR_INIT;
                /* Its runtime calls are not the jobs' (edgecd_runtime_*). */
                metrics_runtime_mute(true);
                int probed = probe_sandbox(pe, rt, &ms, &perr);
                metrics_runtime_mute(false);
                if (probed == 0) {
                        say(report, ctx, "runtime: using `%s` (%s, version %s): the sandbox probe passed in %lld ms",
                            name, path, rt->version ? rt->version : "unknown", (long long)ms);
                        *ret = rt;
                        return 0;
                }
                say(report, ctx, "runtime `%s` (%s, version %s): passed over: %s", name, path,
                    rt->version ? rt->version : "unknown", perr.msg);
                _cleanup_free_ char *r = xasprintf("%s: %s", name, perr.msg);
                strv_join_append(&reasons, r);
                runtime_free(rt);
        }
        return err_set(err, ERR_RUNTIME, 0, "no usable OCI runtime: %s", reasons ? reasons : "none tried");
}
