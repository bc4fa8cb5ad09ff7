/* scheduler.c - worker threads running the job path (see scheduler.h).
 *
 * Threads: `workers` worker threads, plus one short-lived log pump per
 * running job.  Shared state here: the per-plugin running counts, under
 * s->lock.  Lock order: queue lock, then s->lock (the admission predicate
 * runs under the queue lock); a job's lock is never held while taking
 * either. */
#include "scheduler.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "oci.h"
#include "result.h"
#include "util.h"
#include "workspace.h"

#define STDERR_TAIL_BYTES 1024
#define KILL_GRACE_MS 5000
#define LOG_DRAIN_MS 2000

struct plugin_slot {
        char *name;
        size_t running;
        struct plugin_slot *next;
};

struct scheduler {
        const struct config *cfg;
        const struct runtime *rt;
        const struct seccomp_policy *policy;
        struct queue *queue;
        struct store *store;
        char *workspaces_dir;
        char *logs_dir;

        pthread_mutex_t lock;
        struct plugin_slot *slots;
        size_t running;
        int64_t memory_pool_mb, memory_used_mb;
        struct job *memory_waiter;   /* a reference: first in line for memory */
        bool stopping;

        size_t nworkers;
        pthread_t *threads;
};

/* ---- admission ---- */

static struct plugin_slot *slot_for(struct scheduler *s, const char *name)
{
        for (struct plugin_slot *p = s->slots; p; p = p->next)
                if (!strcmp(p->name, name))
                        return p;
        struct plugin_slot *p = xcalloc(1, sizeof *p);
        p->name = xstrdup(name);
        p->next = s->slots;
        s->slots = p;
        return p;
}

static int64_t job_memory_mb(const struct scheduler *s, const struct job *j)
{
        return oci_effective_limits(j->manifest, &s->cfg->defaults).memory_mb;
}

/* Runs under the queue lock (so j->queued is stable); reserves the slot
 * when it says yes.  A job waits while its plugin is at max_concurrent or
 * while its memory limit does not fit the pool next to the running jobs'
 * (alone it always fits).  The first job, in queue order, that waits for
 * memory holds the line: no job behind it starts until it has run, or a
 * stream of small jobs could keep a big one waiting for ever. */
static bool admit(struct job *j, void *ctx)
{
        struct scheduler *s = ctx;
        int64_t need = job_memory_mb(s, j);
        pthread_mutex_lock(&s->lock);
        if (s->memory_waiter && !s->memory_waiter->queued) {
                /* Cancelled while it waited. */
                job_unref(s->memory_waiter);
                s->memory_waiter = NULL;
        }
        struct plugin_slot *p = slot_for(s, j->manifest->name);
        int64_t max = j->manifest->max_concurrent;
        bool plugin_ok = max <= 0 || p->running < (size_t)max;
        bool fits = s->running == 0 || s->memory_used_mb + need <= s->memory_pool_mb;
        bool ok = plugin_ok && fits && (!s->memory_waiter || s->memory_waiter == j);
        if (plugin_ok && !fits && !s->memory_waiter)
                s->memory_waiter = job_ref(j);
        if (ok && s->memory_waiter == j) {
                job_unref(s->memory_waiter);
                s->memory_waiter = NULL;
        }
        if (ok) {
                p->running++;
                s->running++;
                s->memory_used_mb += need;
        }
        pthread_mutex_unlock(&s->lock);
        return ok;
}

static void release(struct scheduler *s, struct job *j)
{
        int64_t need = job_memory_mb(s, j);
        pthread_mutex_lock(&s->lock);
        slot_for(s, j->manifest->name)->running--;
        s->running--;
        s->memory_used_mb -= need;
        pthread_mutex_unlock(&s->lock);
        queue_kick(s->queue);
}

/* ---- log pump: container stdout/stderr -> capped file ---- */

struct log_pump {
        pthread_t thread;
        int read_fd;
        int file_fd;
        size_t cap, written;
        bool truncated;
        int stop;        /* atomic: drain what is there, then end */
};

static void *log_pump_main(void *arg)
{
        struct log_pump *lp = arg;
        char buf[16384];
        int64_t drain_deadline = 0;
        for (;;) {
                /* Checked on every pass, data or not: something may still
                 * hold the pipe and keep writing; do not wait for it forever. */
                if (__atomic_load_n(&lp->stop, __ATOMIC_ACQUIRE)) {
                        if (!drain_deadline)
                                drain_deadline = now_mono_ms() + LOG_DRAIN_MS;
                        else if (now_mono_ms() > drain_deadline)
                                break;
                }
                struct pollfd pfd = { .fd = lp->read_fd, .events = POLLIN };
                int r = poll(&pfd, 1, 100);
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
                        continue;
                ssize_t n = read(lp->read_fd, buf, sizeof buf);
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        break;
                if (n < 0)
                        continue;
                size_t room = lp->cap - lp->written;
                size_t take = (size_t)n < room ? (size_t)n : room;
                if ((size_t)n > room)
                        lp->truncated = true;
                if (take > 0 && write(lp->file_fd, buf, take) == (ssize_t)take)
                        lp->written += take;
        }
        return NULL;
}

/* ---- one job ---- */

struct run {
        struct scheduler *s;
        struct job *job;
        struct limits limits;
        char *cgroups_path;
        char *log_path;
        struct workspace *ws;
        struct job_metrics metrics;
        int exit_code;
};

static void finish(struct run *r, enum job_error e, const char *message, json_t *result)
{
        if (e == JOB_ERR_RUNTIME_ERROR || e == JOB_ERR_INTERRUPTED)
                log_warn("job %s: %s failed: %s: %s", r->job->id, r->job->manifest->name,
                         job_error_name(e), message);
        else if (e != JOB_ERR_NONE && e != JOB_ERR_CANCELLED)
                log_info("job %s: %s failed: %s: %s", r->job->id, r->job->manifest->name,
                         job_error_name(e), message);
        else
                log_info("job %s: %s %s in %lld ms", r->job->id, r->job->manifest->name,
                         e == JOB_ERR_NONE ? "succeeded" : "cancelled",
                         (long long)(now_mono_ms() - r->job->created_mono));
        if (job_finish(r->job, e, message, result, r->exit_code, &r->metrics))
                store_job_final(r->s->store, r->job);
}

/* Why a job that stopped on request stopped: the operator, or shutdown. */
static enum job_error stop_reason(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        return stopping ? JOB_ERR_INTERRUPTED : JOB_ERR_CANCELLED;
}

static const char *stop_message(enum job_error e)
{
        return e == JOB_ERR_INTERRUPTED ? "the daemon stopped while the job ran"
                                        : "cancelled on request";
}

/* Create, start, wait, kill on deadline or cancel, account, delete.  Returns
 * -1 with err for a runtime failure (the container did not get to run). */
static int run_container(struct run *r, const char *bundle, struct outcome *out, struct err *err)
{
        struct scheduler *s = r->s;
        const char *id = r->job->id;

        _cleanup_close_ int file_fd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (file_fd < 0)
                return err_errno(err, ERR_IO, "open log `%s`", r->log_path);
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return err_errno(err, ERR_IO, "pipe");
        _cleanup_close_ int read_fd = pipefd[0];
        _cleanup_close_ int write_fd = pipefd[1];

        struct log_pump lp = { .read_fd = read_fd, .file_fd = file_fd, .cap = (size_t)s->cfg->max_log_bytes };
        if (pthread_create(&lp.thread, NULL, log_pump_main, &lp) != 0)
                return err_set(err, ERR_INTERNAL, 0, "cannot start the log pump thread");

        int ret = 0;
        pid_t pid = -1;
        bool created = false, create_failed = false;
        int64_t t0 = now_mono_ms();
        if (runtime_create(s->rt, id, bundle, write_fd, &pid, err) < 0) {
                ret = -1;
                create_failed = true;
        } else {
                created = true;
                /* Only the container keeps the write end now, so the pump
                 * sees EOF when it ends. */
                close(TAKE_FD(write_fd));
                if (job_cancel_requested(r->job)) {
                        out->exit.status = WAIT_CANCELLED;
                } else if (runtime_start(s->rt, id, err) < 0) {
                        ret = err_wrap(err, "start container");
                }
        }
        int64_t t1 = now_mono_ms();
        r->metrics.create_ms = t1 - t0;

        if (ret == 0 && out->exit.status != WAIT_CANCELLED) {
                int64_t deadline = t1 + r->job->timeout_seconds * 1000;
                if (runtime_wait(pid, deadline, job_cancel_fd(r->job), &out->exit, err) < 0)
                        ret = err_wrap(err, "wait for container");
        }
        r->metrics.run_ms = now_mono_ms() - t1;

        if (create_failed) {
                /* A half-made container may be left in the runtime's state. */
                struct err kerr = ERR_INIT;
                if (runtime_delete(s->rt, id, true, &kerr) < 0)
                        log_warn("job %s: %s", id, kerr.msg);
        }
        if (created) {
                struct err kerr = ERR_INIT;
                bool alive = ret < 0 || out->exit.status == WAIT_TIMEOUT || out->exit.status == WAIT_CANCELLED;
                if (alive) {
                        struct runtime_exit ignored;
                        if (runtime_kill(s->rt, id, "KILL", &kerr) < 0)
                                log_debug("job %s: %s", id, kerr.msg);
                        if (runtime_wait(pid, now_mono_ms() + KILL_GRACE_MS, -1, &ignored, &kerr) < 0)
                                log_warn("job %s: container did not die after SIGKILL: %s", id, kerr.msg);
                }
                struct cgroup_stats st = { .peak_memory_bytes = -1, .cpu_ms = -1 };
                if (cgroup_read_stats(r->cgroups_path, &st, &kerr) == 0) {
                        r->metrics.peak_memory_bytes = st.peak_memory_bytes;
                        r->metrics.cpu_ms = st.cpu_ms;
                        out->oom_killed = st.oom_killed;
                } else {
                        log_debug("job %s: cgroup stats: %s", id, kerr.msg);
                }
                if (runtime_delete(s->rt, id, true, &kerr) < 0)
                        log_warn("job %s: %s", id, kerr.msg);
        }

        __atomic_store_n(&lp.stop, 1, __ATOMIC_RELEASE);
        close(TAKE_FD(write_fd));
        pthread_join(lp.thread, NULL);
        job_set_log_truncated(r->job, lp.truncated);
        if (create_failed) {
                /* The runtime wrote why into the container's log pipe. */
                _cleanup_free_ char *tail = read_file_tail(r->log_path, 4096);
                _cleanup_free_ char *why = runtime_error_text(tail ? tail : "");
                if (why && *why)
                        err_set(err, ERR_RUNTIME, 0, "%s create: %s", s->rt->name, why);
                err_wrap(err, "create container");
        }
        return ret;
}

static void run_job(struct scheduler *s, struct job *j)
{
        const struct config *cfg = s->cfg;
        struct run r = {
                .s = s, .job = j, .exit_code = -1,
                .limits = oci_effective_limits(j->manifest, &cfg->defaults),
                .metrics = { .peak_memory_bytes = -1, .cpu_ms = -1 },
        };
        _cleanup_free_ char *cgroups_path = r.cgroups_path = xasprintf("%s/%s", cfg->cgroup_parent, j->id);
        _cleanup_free_ char *log_path = r.log_path = store_log_path(s->store, j->id);
        struct err err = ERR_INIT;

        if (!job_start(j, s->rt->name)) {
                enum job_error e = stop_reason(s);
                finish(&r, e, stop_message(e), NULL);
                return;
        }
        if (job_cancel_fd(j) < 0) {
                /* Without its eventfd a running job could not be cancelled. */
                finish(&r, JOB_ERR_RUNTIME_ERROR, "cannot create the job's cancel eventfd", NULL);
                return;
        }
        log_debug("job %s: %s %s started after %lld ms in the queue", j->id, j->manifest->name,
                  j->manifest->version, (long long)(now_mono_ms() - j->created_mono));

        if (workspace_create(s->workspaces_dir, j->id, j->parameters, r.limits.disk_mb,
                             cfg->uid, cfg->gid, &r.ws, &err) < 0) {
                finish(&r, JOB_ERR_RUNTIME_ERROR, err.msg, NULL);
                return;
        }

        struct oci_job oj = {
                .container_id = j->id, .manifest = j->manifest, .limits = r.limits,
                .input_dir = r.ws->input_dir, .output_dir = r.ws->output_dir,
                .uid = cfg->uid, .gid = cfg->gid, .cgroups_path = cgroups_path,
        };
        _cleanup_json_ json_t *config = NULL;
        struct outcome out = { 0 };
        int rc = oci_build(cfg->templates_dir, &oj, s->policy, &config, &err);
        if (rc == 0)
                rc = oci_write_bundle(r.ws->bundle_dir, config, &err);
        if (rc == 0)
                rc = run_container(&r, r.ws->bundle_dir, &out, &err);

        int64_t t_collect = now_mono_ms();
        enum job_error e;
        json_t *result = NULL;
        _cleanup_free_ char *message = NULL;
        if (rc < 0) {
                e = JOB_ERR_RUNTIME_ERROR;
                message = xstrdup(err.msg);
        } else if (out.exit.status == WAIT_CANCELLED) {
                e = stop_reason(s);
                message = xstrdup(stop_message(e));
        } else {
                _cleanup_free_ char *tail = read_file_tail(log_path, STDERR_TAIL_BYTES);
                out.stderr_tail = tail;
                e = result_classify(&out, r.ws->output_dir, cfg->max_result_bytes, &result, &message);
                if (out.exit.status == WAIT_EXITED)
                        r.exit_code = out.exit.exit_code;
        }
        r.metrics.collect_ms = now_mono_ms() - t_collect;

        if (workspace_destroy(TAKE_PTR(r.ws), cfg->keep_bundles, &err) < 0)
                log_warn("job %s: workspace cleanup: %s", j->id, err.msg);
        finish(&r, e, message, result);
}

static void *worker_main(void *arg)
{
        struct scheduler *s = arg;
        /* Signals are for the main thread. */
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        for (;;) {
                struct job *j = queue_pop(s->queue, admit, s);
                if (!j)
                        break;
                run_job(s, j);
                release(s, j);
                job_unref(j);
        }
        return NULL;
}

int scheduler_start(const struct config *cfg, const struct runtime *rt,
                    const struct seccomp_policy *policy, struct queue *q, struct store *st,
                    struct scheduler **ret, struct err *err)
{
        struct scheduler *s = xcalloc(1, sizeof *s);
        s->cfg = cfg;
        s->rt = rt;
        s->policy = policy;
        s->queue = q;
        s->store = st;
        s->workspaces_dir = xasprintf("%s/workspaces", cfg->state_dir);
        s->logs_dir = xasprintf("%s/logs", cfg->state_dir);
        pthread_mutex_init(&s->lock, NULL);
        s->memory_pool_mb = cfg->memory_pool_mb;
        if (s->memory_pool_mb == 0) {
                long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
                s->memory_pool_mb = pages > 0 && page > 0 ? (int64_t)pages / 1024 * page / 1024 * 3 / 4 : 1024;
        }

        /* Job records do not outlive the daemon yet, so neither do their
         * logs: start with an empty logs dir. */
        int rc = rm_rf(s->logs_dir, err);
        if (rc == 0)
                rc = mkdir_p(s->workspaces_dir, 0700, err);
        if (rc == 0)
                rc = mkdir_p(s->logs_dir, 0750, err);
        if (rc == 0)
                rc = workspace_sweep(s->workspaces_dir, err);
        if (rc < 0) {
                err_wrap(err, "scheduler");
                scheduler_free(s);
                return -1;
        }
        s->threads = xcalloc((size_t)cfg->workers, sizeof *s->threads);
        for (int64_t i = 0; i < cfg->workers; i++) {
                int e = pthread_create(&s->threads[i], NULL, worker_main, s);
                if (e) {
                        err_set(err, ERR_INTERNAL, e, "scheduler: start worker %lld", (long long)i);
                        scheduler_free(s);
                        return -1;
                }
                s->nworkers++;
        }
        *ret = s;
        return 0;
}

static void interrupt_running(struct job *j, void *ctx)
{
        (void)ctx;
        job_request_cancel(j);
}

static void fail_queued(struct job *j, void *ctx)
{
        struct scheduler *s = ctx;
        if (job_finish(j, JOB_ERR_INTERRUPTED, "the daemon stopped before the job ran", NULL, -1, NULL))
                store_job_final(s->store, j);
        job_unref(j);
}

void scheduler_stop(struct scheduler *s)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        bool was_stopping = s->stopping;
        s->stopping = true;
        pthread_mutex_unlock(&s->lock);
        if (was_stopping)
                return;
        queue_close(s->queue, fail_queued, s);
        store_foreach_active(s->store, interrupt_running, NULL);
        for (size_t i = 0; i < s->nworkers; i++)
                pthread_join(s->threads[i], NULL);
        s->nworkers = 0;
}

void scheduler_free(struct scheduler *s)
{
        if (!s)
                return;
        scheduler_stop(s);
        for (struct plugin_slot *p = s->slots, *n; p; p = n) {
                n = p->next;
                free(p->name);
                free(p);
        }
        job_unref(s->memory_waiter);
        pthread_mutex_destroy(&s->lock);
        free(s->threads);
        free(s->workspaces_dir);
        free(s->logs_dir);
        free(s);
}

int scheduler_cancel(struct scheduler *s, struct job *j, struct err *err)
{
        if (queue_remove(s->queue, j)) {
                if (job_finish(j, JOB_ERR_CANCELLED, "cancelled on request before it ran", NULL, -1, NULL))
                        store_job_final(s->store, j);
                return 0;
        }
        if (job_status_is_final(job_get_status(j)))
                return err_set(err, ERR_CONFLICT, 0, "job `%s` is %s already", j->id,
                               job_status_name(job_get_status(j)));
        /* Running, or popped and about to start: the worker sees the flag. */
        job_request_cancel(j);
        return 0;
}

size_t scheduler_running(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        size_t n = s->running;
        pthread_mutex_unlock(&s->lock);
        return n;
}

size_t scheduler_workers(struct scheduler *s)
{
        return s->nworkers;
}

void scheduler_memory(struct scheduler *s, int64_t *ret_used_mb, int64_t *ret_pool_mb)
{
        pthread_mutex_lock(&s->lock);
        *ret_used_mb = s->memory_used_mb;
        *ret_pool_mb = s->memory_pool_mb;
        pthread_mutex_unlock(&s->lock);
}
