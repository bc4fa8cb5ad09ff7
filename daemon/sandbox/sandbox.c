/* sandbox.c - a run's container and what it stands on (see sandbox.h). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "cgroup.h"
#include "registry/oci.h"

#define KILL_GRACE_MS 5000
#define DELETE_ATTEMPTS 5
#define GATE_WAIT_MS 2000    /* for a just-started gate to open its FIFO */
#define CREATE_POLL_MS 50    /* a runtime slower to create than the job's time limit: looked at */

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
        _cleanup_free_ char *bin = xasprintf("%s/" OCI_GATE_BIN_NAME, ws->input_dir);
        _cleanup_free_ char *fifo = xasprintf("%s/" OCI_GATE_FIFO_NAME, ws->input_dir);
        if (write_file_unsynced(bin, "", 0, 0644, err) < 0)
                return -1;
        if (mkfifo(fifo, 0644) < 0 || chmod(fifo, 0644) < 0)
                return err_errno(err, ERR_IO, "mkfifo `%s`", fifo);
        return 0;
}

/* A runtime that failed: its own words went down the log pipe.  Add them to
 * the cause, never in its place.  Returns -1. */
static int add_runtime_words(const struct sandbox_env *env, struct sandbox *sb, struct err *err)
{
        sandbox_stop_log(sb, NULL);
        _cleanup_free_ char *tail = read_file_tail(sb->log_path, 4096);
        _cleanup_free_ char *words = runtime_error_text(env->rt, tail);
        size_t n = strlen(err->msg);
        if (*words && !strstr(err->msg, words))
                snprintf(err->msg + n, sizeof err->msg - n, ": %s", words);
        else if (!*words && sb->log_errno)
                /* Its words were lost where they would have said it: a
                 * full state disk fails the runtime's own state too. */
                snprintf(err->msg + n, sizeof err->msg - n, ": its output was lost: write `%s`: %s", sb->log_path,
                         strerror(sb->log_errno));
        return err_wrap(err, "create container");
}

int sandbox_build(const struct sandbox_env *env, const struct manifest *m, const char *run_id,
                  struct job_ids ids, const char *log_path, const char *input, size_t input_len,
                  struct sandbox **ret, bool *ret_retryable, struct err *err)
{
        const struct config *cfg = env->cfg;
        struct sandbox *sb = xcalloc(1, sizeof *sb);
        snprintf(sb->run_id, sizeof sb->run_id, "%s", run_id);
        sb->ids = ids;
        sb->cg.slot = -1;
        sb->log_path = xstrdup(log_path);
        sb->init = PIDREF_NULL;
        *ret = sb;
        *ret_retryable = true;

        /* The template's files as its limits are read (stat'ed before they
         * are read: a template changed meanwhile shows as changed, never the
         * other way); its config is rendered from that same version, and a
         * warm container is compared with it before it serves a job. */
        bool warm = !input;
        if (oci_job_limits(cfg->templates_dir, m, &cfg->defaults, cfg->max_pids, &sb->limits, &sb->tmpl, err) < 0) {
                *ret_retryable = err->code != ERR_INVALID;
                return -1;
        }
        if (workspace_create(env->workspaces_dir, run_id, input, input_len, sb->limits.disk_mb, ids.uid,
                             ids.gid, &sb->ws, err) < 0) {
                *ret_retryable = err->code != ERR_INVALID;
                return -1;
        }
        if (runcgroup_take(env->cgroups, run_id, &sb->cg, err) < 0)
                return -1;
        if (warm && make_gate(sb->ws, err) < 0)
                return -1;
        struct oci_job oj = {
                .container_id = run_id, .manifest = m, .limits = sb->limits,
                .input_dir = sb->ws->input_dir, .output_dir = sb->ws->output_dir,
                .uid = ids.uid, .gid = ids.gid, .cgroups_path = sb->cg.leaf,
                .gate_path = warm ? env->gate_path : NULL, .tmpl = &sb->tmpl,
        };
        if (oci_write_config(cfg->templates_dir, sb->ws->bundle_dir, &oj, env->policy, err) < 0) {
                *ret_retryable = err->code != ERR_INVALID;
                return -1;
        }
        sb->warm = warm;
        sb->own_log = warm;
        return 0;
}

int sandbox_start(const struct sandbox_env *env, struct sandbox *sb, bool *ret_retryable, struct err *err)
{
        const struct config *cfg = env->cfg;
        const char *run_id = sb->run_id;
        bool warm = sb->warm;
        *ret_retryable = true;
        int write_fd = -1;   /* the pump's */
        if (logpump_start(sb->log_path, (size_t)cfg->max_log_bytes, &sb->lp, &write_fd, err) < 0)
                return -1;

        int64_t t0 = now_mono_ms();
        sb->asked = true;
        sb->attached = !warm && env->rt->attached_ok;
        sb->spawned_ms = now_real_ms();
        sb->spawned_mono_ms = t0;
        int rc = sb->attached ? runtime_run_attached(env->rt, run_id, sb->ws->bundle_dir, write_fd, &sb->init, err)
                              : runtime_run(env->rt, run_id, sb->ws->bundle_dir, write_fd, &sb->init, err);
        sb->create_ms = now_mono_ms() - t0;
        if (rc == 0)
                return 0;
        *ret_retryable = err->code != ERR_INVALID;
        return add_runtime_words(env, sb, err);
}

int sandbox_prepare(const struct sandbox_env *env, const struct manifest *m, const char *run_id,
                    struct job_ids ids, const char *log_path, const char *input, size_t input_len,
                    struct sandbox **ret, bool *ret_retryable, struct err *err)
{
        if (sandbox_build(env, m, run_id, ids, log_path, input, input_len, ret, ret_retryable, err) < 0)
                return -1;
        return sandbox_start(env, *ret, ret_retryable, err);
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
        if (sb->lp && logpump_move(sb->lp, log_path, err) < 0)
                return -1;
        free(sb->log_path);
        sb->log_path = xstrdup(log_path);
        sb->own_log = false;
        _cleanup_free_ char *bin = xasprintf("%s/" OCI_GATE_BIN_NAME, sb->ws->input_dir);
        _cleanup_free_ char *fifo = xasprintf("%s/" OCI_GATE_FIFO_NAME, sb->ws->input_dir);
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

bool sandbox_waiting(const struct sandbox *sb)
{
        if (sb->init.fd >= 0) {
                struct pollfd pfd = { .fd = sb->init.fd, .events = POLLIN };
                return poll(&pfd, 1, 0) == 0;   /* readable: it exited */
        }
        if (sb->init.pid <= 0)
                return false;
        /* No pidfd: an exited child of ours stays a zombie until its owner
         * reaps it; look without reaping. */
        siginfo_t si = { 0 };
        return waitid(P_PID, (id_t)sb->init.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

/* Kill an attached run's runtime process and reap it: it is still making
 * the container, or will not end. */
static void kill_runtime(struct sandbox *sb)
{
        struct proc_exit gone;
        struct err e = ERR_INIT;
        if (pidref_signal(&sb->init, SIGKILL) != 0 ||
            pidref_wait(&sb->init, now_mono_ms() + KILL_GRACE_MS, -1, &gone, &e) < 0 || gone.status == WAIT_TIMEOUT)
                pidref_release(&sb->init);
}

/* An attached run: one runtime process makes the container, runs it and
 * deletes it.  Until the container runs (the pid file) the runtime has
 * runtime_timeout_seconds, as any runtime call, and a time-out or cancel
 * meanwhile is the runtime's failure, not the job's; the job's own time
 * limit counts from when its container ran. */
static int wait_attached(const struct sandbox_env *env, struct sandbox *sb, int64_t timeout_ms, int cancel_fd,
                         struct proc_exit *ret, bool *ret_retryable, struct err *err)
{
        int64_t limit = env->rt->cli_timeout_ms > 0 ? env->rt->cli_timeout_ms : 30000;
        int64_t create_deadline = sb->spawned_mono_ms + limit;
        int64_t deadline = sb->spawned_mono_ms + timeout_ms;   /* until we know when it ran */
        bool ran = false;
        struct proc_exit x;
        for (;;) {
                /* Before it ran: look again from the job's deadline on, a
                 * little at a time, for as long as creating may take. */
                int64_t until = deadline;
                if (!ran) {
                        int64_t now = now_mono_ms();
                        if (until < now + CREATE_POLL_MS)
                                until = now + CREATE_POLL_MS;
                        if (until > create_deadline)
                                until = create_deadline;
                }
                if (pidref_wait(&sb->init, until, cancel_fd, &x, err) < 0)
                        return err_wrap(err, "wait for the container");
                int64_t started_ms;
                if (!ran && runtime_attached_started(env->rt, sb->run_id, sb->ws->bundle_dir, &started_ms)) {
                        ran = true;
                        int64_t create_ms = started_ms - sb->spawned_ms;
                        int64_t waited = now_mono_ms() - sb->spawned_mono_ms;
                        /* Clock steps (CLOCK_REALTIME) cannot make it more
                         * than the time that passed, nor less than none. */
                        sb->create_ms = create_ms < 0 ? 0 : create_ms > waited ? waited : create_ms;
                        deadline = sb->spawned_mono_ms + sb->create_ms + timeout_ms;
                }
                if (x.status == WAIT_EXITED || x.status == WAIT_SIGNALED)
                        break;
                if (ran && x.status == WAIT_TIMEOUT && now_mono_ms() < deadline)
                        continue;   /* it ran later than we waited for: its time runs from then */
                if (ran) {
                        *ret = x;   /* the job's time-out or cancel: the caller kills it */
                        return 0;
                }
                if (x.status == WAIT_TIMEOUT && now_mono_ms() < create_deadline)
                        continue;
                /* Still making the container: all of it was creating. */
                kill_runtime(sb);
                sb->create_ms = now_mono_ms() - sb->spawned_mono_ms;
                ran = runtime_attached_started(env->rt, sb->run_id, sb->ws->bundle_dir, &started_ms);
                *ret_retryable = !ran;
                if (x.status == WAIT_CANCELLED) {
                        *ret = x;
                        return 0;
                }
                err_set(err, ERR_RUNTIME, 0, "%s run `%s`: %s within %lld ms, and was killed", env->rt->name,
                        sb->run_id, ran ? "did not start the container's command" : "did not start the container",
                        (long long)(now_mono_ms() - sb->spawned_mono_ms));
                return ran ? -1 : add_runtime_words(env, sb, err);
        }
        if (!ran)
                sb->create_ms = now_mono_ms() - sb->spawned_mono_ms;
        if (runtime_attached_end(env->rt, sb->run_id, sb->ws->bundle_dir, &x, ret, err) < 0) {
                /* The runtime failed: before the container ran, the host's
                 * failure, worth another try; after it, the algorithm may
                 * have done its work, and its output is no runtime's words. */
                *ret_retryable = !ran;
                return ran ? -1 : add_runtime_words(env, sb, err);
        }
        sb->ended = true;
        return 0;
}

int sandbox_wait(const struct sandbox_env *env, struct sandbox *sb, int64_t timeout_ms, int cancel_fd,
                 struct proc_exit *ret, bool *ret_retryable, struct err *err)
{
        *ret_retryable = false;
        if (sb->attached)
                return wait_attached(env, sb, timeout_ms, cancel_fd, ret, ret_retryable, err);
        if (pidref_wait(&sb->init, now_mono_ms() + timeout_ms, cancel_fd, ret, err) < 0)
                return err_wrap(err, "wait for the container");
        return 0;
}

void sandbox_stop_log(struct sandbox *sb, bool *ret_truncated)
{
        /* Once stopped (a failed start stops it early), asked again: the
         * same answer. */
        if (sb->lp)
                logpump_stop(TAKE_PTR(sb->lp), &sb->log_truncated, &sb->log_errno, &sb->log_tail);
        if (ret_truncated)
                *ret_truncated = sb->log_truncated;
}

/* An attached run: its container's processes killed (the init takes its
 * pid namespace with it), then the runtime ends; asked through the runtime
 * once when it does not, killed itself as a last resort. */
static void kill_attached(const struct sandbox_env *env, struct sandbox *sb)
{
        struct pidref *rt_proc = &sb->init;
        struct proc_exit ignored;
        struct err e = ERR_INIT;
        /* Nothing to kill there (not made yet, or no pidfd on this
         * kernel): straight to the runtime. */
        if (sb->cg.leaf && cgroup_kill(sb->cg.leaf) > 0) {
                if (pidref_wait(rt_proc, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) < 0) {
                        pidref_release(rt_proc);
                        return;
                }
                if (ignored.status != WAIT_TIMEOUT)
                        return;
        }
        if (runtime_kill(env->rt, sb->run_id, "KILL", &e) < 0)
                log_job(LOG_LVL_DEBUG, NULL, NULL, sb->run_id, "%s", e.msg);
        if (pidref_wait(rt_proc, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) == 0 &&
            ignored.status != WAIT_TIMEOUT)
                return;
        /* What it leaves is deleted by sandbox_destroy() or the collector. */
        log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "%s did not end after its container was killed; killing it", env->rt->name);
        kill_runtime(sb);
}

void sandbox_kill_init(const struct sandbox_env *env, struct sandbox *sb)
{
        struct pidref *init = &sb->init;
        struct proc_exit ignored;
        struct err e = ERR_INIT;
        if (init->pid <= 0)
                return;
        if (sb->attached) {
                kill_attached(env, sb);
                return;
        }
        if (pidref_signal(init, SIGKILL) == 0 &&
            pidref_wait(init, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) == 0 &&
            ignored.status != WAIT_TIMEOUT)
                return;
        if (runtime_kill(env->rt, sb->run_id, "KILL", &e) < 0)
                log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "%s", e.msg);
        if (init->pid > 0 && (pidref_wait(init, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &e) < 0 ||
                              ignored.status == WAIT_TIMEOUT)) {
                log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "the container's init did not die after SIGKILL");
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
                        log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "%s (left to the collector)", err.msg);
                }
        }
        sandbox_stop_log(sb, NULL);
        struct err err = ERR_INIT;
        if (workspace_destroy(TAKE_PTR(sb->ws), env->cfg->keep_bundles, &err) < 0) {
                metrics_cleanup_failed("workspace");
                log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "workspace cleanup: %s (left to the collector)", err.msg);
        }
        /* A cgroup that will not go may still hold the run's processes
         * (stuck in the kernel): its ids stay out of use until the
         * collector has removed it (as a container the runtime could not
         * delete keeps them). */
        err = (struct err)ERR_INIT;
        enum runcgroup_end end = !gone ? RUNCG_NOT_DELETED : sb->ended ? RUNCG_ENDED : RUNCG_DELETED;
        if (runcgroup_give(env->cgroups, &sb->cg, sb->run_id, end, &err) < 0 && gone) {
                gone = false;
                metrics_cleanup_failed("cgroup");
                log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "%s (left to the collector)", err.msg);
        }
        if (sb->own_log && unlink(sb->log_path) < 0 && errno != ENOENT)
                log_job(LOG_LVL_WARN, NULL, NULL, sb->run_id, "remove the warm log `%s`: %s", sb->log_path,
                        strerror(errno));
        free(sb->log_path);
        free(sb->log_tail);
        free(sb);
        return gone;
}
