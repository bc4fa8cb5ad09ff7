/* sandbox.c - a run's container and what it stands on (see sandbox.h). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "oci.h"
#include "util.h"

#define KILL_GRACE_MS 5000
#define DELETE_ATTEMPTS 5
#define GATE_WAIT_MS 2000    /* for a just-started gate to open its FIFO */

extern const unsigned char warm_gate_payload[];
extern const unsigned char warm_gate_payload_end[];

int sandbox_install_gate(const char *path, struct err *err)
{
        /* A new file renamed over the old: a gate a crash left running
         * keeps its text (rewriting it in place would fail ETXTBSY). */
        size_t len = (size_t)(warm_gate_payload_end - warm_gate_payload);
        _cleanup_free_ char *tmp = xasprintf("%s.new", path);
        if (write_file(tmp, warm_gate_payload, len, 0755, err) < 0)
                return err_wrap(err, "install the warm gate");
        if (chmod(tmp, 0755) < 0 || rename(tmp, path) < 0) {
                err_errno(err, ERR_IO, "install the warm gate `%s`", path);
                unlink(tmp);
                return -1;
        }
        return 0;
}

/* A warm workspace's input/: the gate binary's mount point and its FIFO. */
static int make_gate(struct workspace *ws, struct err *err)
{
        _cleanup_free_ char *bin = xasprintf("%s/" WORKSPACE_GATE_BIN, ws->input_dir);
        _cleanup_free_ char *fifo = xasprintf("%s/" WORKSPACE_GATE_FIFO, ws->input_dir);
        if (write_file_unsynced(bin, "", 0, 0644, err) < 0)
                return -1;
        if (mkfifo(fifo, 0644) < 0 || chmod(fifo, 0644) < 0)
                return err_errno(err, ERR_IO, "mkfifo `%s`", fifo);
        return 0;
}

int sandbox_prepare(const struct sandbox_env *env, const struct manifest *m, const char *run_id,
                    struct job_ids ids, const char *log_path, const char *input, size_t input_len,
                    struct sandbox **ret, bool *ret_retryable, struct err *err)
{
        const struct config *cfg = env->cfg;
        struct sandbox *sb = xcalloc(1, sizeof *sb);
        snprintf(sb->run_id, sizeof sb->run_id, "%s", run_id);
        sb->ids = ids;
        sb->limits = oci_effective_limits(m, &cfg->defaults);
        sb->cgroups_path = xasprintf("%s/%s", cfg->cgroup_parent, run_id);
        sb->log_path = xstrdup(log_path);
        sb->init = PIDREF_NULL;
        *ret = sb;
        *ret_retryable = true;

        if (workspace_create(env->workspaces_dir, run_id, input, input_len, sb->limits.disk_mb, ids.uid,
                             ids.gid, &sb->ws, err) < 0) {
                *ret_retryable = err->code != ERR_INVALID;
                return -1;
        }
        bool warm = !input;
        if (warm && make_gate(sb->ws, err) < 0)
                return -1;
        struct oci_job oj = {
                .container_id = run_id, .manifest = m, .limits = sb->limits,
                .input_dir = sb->ws->input_dir, .output_dir = sb->ws->output_dir,
                .uid = ids.uid, .gid = ids.gid, .cgroups_path = sb->cgroups_path,
                .gate_path = warm ? env->gate_path : NULL,
        };
        _cleanup_json_ json_t *config = NULL;
        if (oci_build(cfg->templates_dir, &oj, env->policy, &config, err) < 0 ||
            oci_write_bundle(sb->ws->bundle_dir, config, err) < 0) {
                *ret_retryable = err->code != ERR_INVALID;
                return -1;
        }
        _cleanup_close_ int write_fd = -1;
        if (logpump_start(sb->log_path, (size_t)cfg->max_log_bytes, &sb->lp, &write_fd, err) < 0)
                return -1;

        int64_t t0 = now_mono_ms();
        sb->asked = true;
        int rc = runtime_run(env->rt, run_id, sb->ws->bundle_dir, write_fd, &sb->init, err);
        /* Only the container keeps the write end now, so the pump sees EOF
         * when it ends. */
        close(TAKE_FD(write_fd));
        sb->create_ms = now_mono_ms() - t0;
        if (rc == 0)
                return 0;
        /* The runtime's own words went down the log pipe: add them to the
         * cause, never in its place. */
        *ret_retryable = err->code != ERR_INVALID;
        sandbox_stop_log(sb, NULL);
        _cleanup_free_ char *tail = read_file_tail(sb->log_path, 4096);
        _cleanup_free_ char *words = runtime_error_text(env->rt, tail);
        if (*words && !strstr(err->msg, words)) {
                size_t n = strlen(err->msg);
                snprintf(err->msg + n, sizeof err->msg - n, ": %s", words);
        }
        return err_wrap(err, "create container");
}

/* The gate's FIFO open for writing: the gate has it open for reading (a
 * just-started one may not have got there yet). */
static int open_gate(const struct sandbox *sb, const char *fifo, struct err *err)
{
        int64_t until = now_mono_ms() + GATE_WAIT_MS;
        for (;;) {
                int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
                if (fd >= 0)
                        return fd;
                if (errno != ENXIO || now_mono_ms() > until)
                        return err_errno(err, ERR_RUNTIME, "warm container: its gate `%s` is not waiting", fifo);
                /* A gate that died waiting (killed, out of memory) never
                 * opens it: its pidfd is readable then. */
                struct pollfd pfd = { .fd = sb->init.fd, .events = POLLIN };
                if (pfd.fd >= 0 && poll(&pfd, 1, 1) > 0)
                        return err_set(err, ERR_RUNTIME, 0, "warm container: its gate ended while it waited");
                if (pfd.fd < 0) {
                        struct timespec ts = { 0, 1000000 };
                        nanosleep(&ts, NULL);
                }
        }
}

int sandbox_adopt(struct sandbox *sb, const char *input, size_t input_len, const char *log_path,
                  struct err *err)
{
        if (workspace_place_input(sb->ws, input, input_len, err) < 0)
                return -1;
        if (rename(sb->log_path, log_path) < 0)
                return err_errno(err, ERR_IO, "move the log `%s` to `%s`", sb->log_path, log_path);
        free(sb->log_path);
        sb->log_path = xstrdup(log_path);
        _cleanup_free_ char *bin = xasprintf("%s/" WORKSPACE_GATE_BIN, sb->ws->input_dir);
        _cleanup_free_ char *fifo = xasprintf("%s/" WORKSPACE_GATE_FIFO, sb->ws->input_dir);
        _cleanup_close_ int fd = open_gate(sb, fifo, err);
        if (fd < 0)
                return -1;
        /* The algorithm sees its input and nothing of ours: the gate holds
         * its FIFO open, the running gate needs no path to its binary (the
         * mount on it goes with the name, in the container too). */
        if (unlink(fifo) < 0 || unlink(bin) < 0)
                return err_errno(err, ERR_IO, "warm container: remove its gate from `%s`", sb->ws->input_dir);
        if (write(fd, "g", 1) != 1)
                return err_errno(err, ERR_RUNTIME, "warm container: open its gate `%s`", fifo);
        return 0;
}

void sandbox_stop_log(struct sandbox *sb, bool *ret_truncated)
{
        bool truncated = false;
        if (sb->lp)
                logpump_stop(TAKE_PTR(sb->lp), &truncated);
        if (ret_truncated)
                *ret_truncated = truncated;
}

void sandbox_kill_init(const struct sandbox_env *env, struct sandbox *sb)
{
        struct pidref *init = &sb->init;
        struct proc_exit ignored;
        struct err e = ERR_INIT;
        if (init->pid <= 0)
                return;
        if (pidref_signal(init, SIGKILL) == 0 &&
            pidref_wait(init, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) == 0 &&
            ignored.status != WAIT_TIMEOUT)
                return;
        if (runtime_kill(env->rt, sb->run_id, "KILL", &e) < 0)
                log_warn("run %s: %s", sb->run_id, e.msg);
        if (init->pid > 0 && (pidref_wait(init, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) < 0 ||
                              ignored.status == WAIT_TIMEOUT)) {
                log_warn("run %s: the container's init did not die after SIGKILL", sb->run_id);
                pidref_release(init);
        }
}

bool sandbox_destroy(const struct sandbox_env *env, struct sandbox *sb)
{
        if (!sb)
                return true;
        bool gone = true;
        sandbox_kill_init(env, sb);
        if (sb->asked) {
                /* A half-made container may be left in the runtime's state too. */
                struct err err = ERR_INIT;
                if (runtime_delete_retry(env->rt, sb->run_id, DELETE_ATTEMPTS, &err) < 0) {
                        gone = false;
                        metrics_cleanup_failed("container");
                        log_warn("run %s: %s (left to the collector)", sb->run_id, err.msg);
                }
        }
        sandbox_stop_log(sb, NULL);
        struct err err = ERR_INIT;
        if (workspace_destroy(TAKE_PTR(sb->ws), env->cfg->keep_bundles, &err) < 0) {
                metrics_cleanup_failed("workspace");
                log_warn("run %s: workspace cleanup: %s (left to the collector)", sb->run_id, err.msg);
        }
        free(sb->cgroups_path);
        free(sb->log_path);
        free(sb);
        return gone;
}
