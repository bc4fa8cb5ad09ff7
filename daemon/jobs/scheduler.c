/* scheduler.c - worker threads running the job path (see scheduler.h).
 *
 * Threads: `workers` worker threads.  A run's sandbox (sandbox.h) is made
 * here, or taken from the warm pool, and handed to the cleaner once the
 * job's answer is out.  Shared state here: the stopping flags and the busy
 * count, under s->lock (a leaf lock).  A job's lock is never held while
 * taking it. */
#include "scheduler.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/heartbeat.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"
#include "registry/oci.h"
#include "registry/registry.h"
#include "runtime/result.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "warmpool.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define IDS_WAIT_MS 60000
#define CANCELLED_QUEUED "cancelled on request before it ran"

struct worker {
        struct scheduler *s;
        size_t index;
        struct heartbeat hb;
};

struct scheduler {
        struct scheduler_deps d;
        char *logs_dir;

        pthread_mutex_t lock;
        pthread_cond_t idle;     /* nbusy fell */
        size_t nbusy;            /* workers with a job */
        bool stopping;           /* no new job is taken */
        bool interrupting;       /* the drain is over: running jobs are stopped */

        /* How long a job that ran held its worker, on average (the last
         * few, weighted 1/8 each; 0: none yet): when a place in a full
         * queue frees (scheduler_retry_after). */
        int64_t held_ms_avg;

        size_t nworkers;
        pthread_t *threads;
        struct worker *workers;
        /* EDGECD_TEST_WEDGE_WORKER_MS: the first job taken wedges its
         * worker (no heartbeat) this long, for the watchdog's tests. */
        int64_t wedge_ms;
        atomic_bool wedged;
};

static bool stopping(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        bool v = s->stopping;
        pthread_mutex_unlock(&s->lock);
        return v;
}

static bool interrupting(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        bool v = s->interrupting;
        pthread_mutex_unlock(&s->lock);
        return v;
}

/* Why a job that stopped on request stopped: a client's cancel (which wins),
 * or the daemon's stop. */
static enum job_error stop_reason(struct scheduler *s, struct job *j)
{
        return !job_cancel_requested(j) && interrupting(s) ? JOB_ERR_INTERRUPTED : JOB_ERR_CANCELLED;
}

static const char *stop_message(enum job_error e)
{
        return e == JOB_ERR_INTERRUPTED ? "the daemon stopped while the job ran" : "cancelled on request";
}

/* ---- one run ---- */

struct run {
        struct scheduler *s;
        struct job *job;
        char run_id[RUN_ID_MAX];
        struct job_ids ids;
        struct sandbox *sb;      /* warm (taken before the run) or built by run_build */
        struct job_record params;  /* a warm run's parameters, until its gate opens */
        char *log_path;
        struct job_metrics metrics;
        int exit_code;
        /* The outcome. */
        enum job_error error;
        char *message;
        char *result;
        size_t result_len;
        bool retryable;          /* the runtime or host failed before the algorithm ran */
        bool daemon_short;       /* failed for want of the daemon's own descriptors, memory or processes */
};

static void run_fail(struct run *r, enum job_error e, bool retryable, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void run_fail(struct run *r, enum job_error e, bool retryable, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        free(r->message);
        r->message = msg;
        r->error = e;
        r->retryable = retryable;
}

/* The runtime or the host failed the run (err says why): retried when
 * retryable, and not counted against the algorithm when the daemon itself
 * was short. */
static void run_fail_runtime(struct run *r, bool retryable, const struct err *err)
{
        run_fail(r, JOB_ERR_RUNTIME_ERROR, retryable, "%s", err->msg);
        r->daemon_short = errno_is_shortage(err->errnum);
}

/* Stop the run's log; the job keeps whether it was cut (not a warm
 * container's own log, which a failed adoption did not give it). */
static void record_log(struct run *r)
{
        struct sandbox *sb = r->sb;
        bool truncated = false;
        sandbox_stop_log(sb, &truncated);
        if (sb->own_log)
                return;
        job_set_log_truncated(r->job, truncated);
        if (sb->log_errno)
                log_job(LOG_LVL_WARN, r->job->id, r->job->manifest->name, r->run_id,
                        "its output was dropped: write `%s`: %s", sb->log_path, strerror(sb->log_errno));
}

/* Wait (deadline, cancel), kill, account, stop the log.  The container
 * was started by sandbox_prepare() or sandbox_adopt(); it is left for the
 * cleaner. */
static void run_container(struct run *r, struct outcome *out)
{
        struct scheduler *s = r->s;
        struct sandbox *sb = r->sb;
        struct err err = ERR_INIT;

        bool ran = true;
        int64_t t1 = now_mono_ms();
        bool retryable = false;
        if (sandbox_wait(s->d.env, sb, r->job->timeout_seconds * 1000, job_cancel_fd(r->job), &out->exit, &retryable,
                         &err) < 0) {
                run_fail_runtime(r, retryable, &err);
                ran = false;
        }
        r->metrics.run_ms = now_mono_ms() - t1;
        if (sb->attached) {
                /* One runtime process made and ran it. */
                int64_t all = now_mono_ms() - sb->spawned_mono_ms;
                r->metrics.create_ms = sb->create_ms < all ? sb->create_ms : all;
                r->metrics.run_ms = all - r->metrics.create_ms;
        }
        /* Still ours: a timeout, a cancel, a failed wait. */
        sandbox_kill_init(s->d.env, sb);
        /* Its input is in memory (the workspaces' tmpfs): gone now, not
         * when the cleaner gets to it. */
        workspace_drop_input(sb->ws);

        struct cgroup_stats st = { .peak_memory_bytes = -1, .cpu_ms = -1 };
        struct err cerr = ERR_INIT;
        if (runcgroup_stats(&sb->cg, (int64_t)sb->limits.memory_mb * 1024 * 1024, &st, &cerr) == 0) {
                r->metrics.peak_memory_bytes = st.peak_memory_bytes;
                r->metrics.cpu_ms = st.cpu_ms;
                out->oom_killed = st.oom_killed;
                out->oom_known = st.oom_known;
                out->limit_hit = st.limit_hit;
        } else {
                log_job(LOG_LVL_DEBUG, r->job->id, r->job->manifest->name, r->run_id, "cgroup stats: %s", cerr.msg);
        }
        record_log(r);
        if (!ran && r->error == JOB_ERR_NONE)
                run_fail(r, JOB_ERR_RUNTIME_ERROR, false, "the container did not run");
}

/* The first half of a run, done while its start is being committed: the
 * parameters read and, cold, the sandbox built (workspace, input, bundle;
 * nothing started).  false with the run failed. */
static bool run_build(struct run *r)
{
        struct scheduler *s = r->s;
        struct job *j = r->job;
        struct err err = ERR_INIT;

        /* The parameters stay on disk until the run needs them, but a
         * lazily submitted job's, which it holds (its insert may not be
         * committed yet). */
        if (j->params) {
                r->params = (struct job_record){ .params = j->params, .params_len = j->params_len,
                                                 .params_external = true };
        } else if (store_get(s->d.store, j->id, STORE_READ_PARAMS, &r->params, &err) < 0) {
                err_wrap(&err, "read the job's parameters");
                run_fail_runtime(r, true, &err);
                return false;
        }
        if (r->sb)
                return true;   /* warm: its input goes in once the start is on disk */
        bool retryable = true;
        int rc = sandbox_build(s->d.env, j->manifest, r->run_id, r->ids, r->log_path,
                               r->params.params ? r->params.params : "{}", r->params.params ? r->params.params_len : 2,
                               &r->sb, &retryable, &err);
        record_clear(&r->params);
        if (rc < 0) {
                run_fail_runtime(r, retryable, &err);
                return false;
        }
        return true;
}

/* The second half, once the start is recorded: the container started (a
 * warm one given its input), waited for, and its result read. */
static void run_go(struct run *r)
{
        struct scheduler *s = r->s;
        const struct config *cfg = s->d.cfg;
        struct job *j = r->job;
        struct err err = ERR_INIT;
        int rc;
        bool retryable = true;
        if (r->sb->warm) {
                int64_t t0 = now_mono_ms();
                rc = sandbox_adopt(r->sb, r->params.params ? r->params.params : "{}",
                                   r->params.params ? r->params.params_len : 2, r->log_path, &err);
                r->metrics.create_ms = now_mono_ms() - t0;
                record_clear(&r->params);
        } else {
                rc = sandbox_start(s->d.env, r->sb, &retryable, &err);
                r->metrics.create_ms = r->sb->create_ms;
        }
        if (rc < 0) {
                run_fail_runtime(r, retryable, &err);
                /* Its container (a warm one still waits) first: it holds
                 * the log's pipe. */
                sandbox_kill_init(s->d.env, r->sb);
                /* Not left for the cleaner: a run of failed starts would
                 * fill the workspaces' tmpfs with inputs while it lags. */
                workspace_drop_input(r->sb->ws);
                record_log(r);
                return;
        }
        struct outcome out = { 0 };
        job_progress_watch(j, r->sb->ws->output_dir);
        run_container(r, &out);
        /* The container is gone: what it wrote last is what the job keeps. */
        job_progress_refresh(j, true);
        job_progress_watch(j, NULL);
        if (r->error != JOB_ERR_NONE)
                return;
        int64_t t_collect = now_mono_ms();
        if (out.exit.status == WAIT_CANCELLED) {
                enum job_error e = stop_reason(s, j);
                run_fail(r, e, false, "%s", stop_message(e));
        } else {
                /* From the pump, not the file: the file holds the
                 * first max_log_bytes (or nothing, on a full disk), and
                 * a failing run says why at its end. */
                out.stderr_tail = r->sb->log_tail;
                char *message = NULL;
                int errnum = 0;
                int64_t max_result = manifest_result_limit(j->manifest, cfg);
                r->error = result_classify(&out, r->sb->ws->output_dir, max_result, &r->result,
                                           &r->result_len, &message, &errnum);
                r->message = message;
                /* A result the daemon could not read for want of its own
                 * descriptors is not the algorithm's failure. */
                r->daemon_short = errno_is_shortage(errnum);
                /* 128+N from a foreground runtime may be an exit or
                 * signal N: the status it passed on is what there is. */
                if (out.exit.status == WAIT_EXITED || (out.exit.status == WAIT_SIGNALED && out.exit.from_status))
                        r->exit_code = out.exit.exit_code;
        }
        r->metrics.collect_ms = now_mono_ms() - t_collect;
}

/* Wait ms; false when the job was asked to stop meanwhile, or (s given)
 * when the daemon begins its stop: a pause holds no work to drain. */
static bool pause_ms(struct scheduler *s, struct job *j, int64_t ms)
{
        struct pollfd pfd = { .fd = job_cancel_fd(j), .events = POLLIN };
        int64_t until = now_mono_ms() + ms;
        for (;;) {
                int64_t left = until - now_mono_ms();
                if (left <= 0)
                        return !job_stop_requested(j);
                heartbeat_beat();
                int r = poll(&pfd, pfd.fd >= 0 ? 1 : 0, (int)(left < HEARTBEAT_SLICE_MS ? left : HEARTBEAT_SLICE_MS));
                if (r > 0 || job_stop_requested(j) || (s && stopping(s)))
                        return false;
        }
}

/* Runs failed because the daemon itself was out of descriptors, memory or
 * processes are retried without counting against retry.max_attempts,
 * retry.shortage_retries times at most, after a pause from 1 s doubling to
 * 30 s (about two minutes at the default 8): a shortage that passes costs
 * the job a wait, not its result. */
#define SHORT_BACKOFF_MIN_MS 1000
#define SHORT_BACKOFF_MAX_MS 30000

/* The pause before the next run: retry.backoff_ms doubled per earlier
 * counted run, or after the nth shortage its own. */
static int64_t backoff_ms(const struct scheduler *s, size_t counted, size_t nth_shortage)
{
        int64_t ms = s->d.cfg->retry.backoff_ms;
        if (nth_shortage > 0) {
                ms = SHORT_BACKOFF_MIN_MS;
                for (size_t i = 1; i < nth_shortage && ms < SHORT_BACKOFF_MAX_MS; i++)
                        ms *= 2;
                return ms < SHORT_BACKOFF_MAX_MS ? ms : SHORT_BACKOFF_MAX_MS;
        }
        for (size_t i = 1; i < counted && ms < 60000; i++)
                ms *= 2;
        return ms;
}

static void wake_job(void *ctx)
{
        job_wake(ctx);
}

/* Commit j's state as it stands (with the result, when final: taken).  A
 * final one's waiters are told as soon as it is on disk, by the store's
 * writer (store_update_final). */
static void record_job(struct scheduler *s, struct job *j, char *result, size_t len)
{
        struct job_record rec;
        job_snapshot(j, &rec);
        rec.result = result;
        rec.result_len = result ? len : 0;
        struct err err = ERR_INIT;
        /* Not one read back at start: its version and times are as the
         * store keeps them, which this rendering would not match. */
        int rc = job_status_is_final(rec.status) && !j->from_disk
                         ? store_update_final(s->d.store, &rec, wake_job, j, &err)
                         : store_update(s->d.store, &rec, -1, &err);
        if (rc < 0)
                log_job(LOG_LVL_ERROR, j->id, j->manifest->name, NULL,
                        "its %s state is not recorded (the next start runs it again): %s",
                        job_status_name(rec.status), err.msg);
        record_clear(&rec);
}

static void finish(struct scheduler *s, struct job *j, struct run *r, enum job_error e, const char *message);

/* running -> queued (in memory); false when a client's cancel came first
 * (it found the job running and only asked): it is finished cancelled. */
static bool back_to_queue(struct scheduler *s, struct job *j)
{
        bool ran;
        if (job_requeue(j, &ran))
                return true;
        finish(s, j, NULL, JOB_ERR_CANCELLED, ran ? stop_message(JOB_ERR_CANCELLED) : CANCELLED_QUEUED);
        return false;
}

/* A planned stop interrupted j: it goes back to queued, for the next start. */
static void requeue(struct scheduler *s, struct job *j)
{
        if (!back_to_queue(s, j))
                return;
        log_job(LOG_LVL_INFO, j->id, j->manifest->name, NULL,
                "%s interrupted by the daemon's stop; it runs again at the next start", j->manifest->name);
        record_job(s, j, NULL, 0);
}

/* A job with a callback_url became final: its callback is due.  With
 * callbacks off (a job from before they were), it fails "not sent" now
 * rather than stay pending for ever, keeping the job from retention. */
static void callback_became_due(struct scheduler *s, const char *url)
{
        if (s->d.callbacks)
                callbacks_kick(s->d.callbacks, url);
        else
                callbacks_fail_while_off(s->d.store);
}

static void finish(struct scheduler *s, struct job *j, struct run *r, enum job_error e, const char *message)
{
        const char *run_id = r ? r->run_id : NULL;
        if (e == JOB_ERR_INTERRUPTED && interrupting(s)) {
                requeue(s, j);
                return;
        }
        if (e == JOB_ERR_RUNTIME_ERROR)
                log_job(LOG_LVL_WARN, j->id, j->manifest->name, run_id, "%s failed: %s: %s", j->manifest->name,
                        job_error_name(e), message);
        else if (e != JOB_ERR_NONE && e != JOB_ERR_CANCELLED)
                log_job(LOG_LVL_INFO, j->id, j->manifest->name, run_id, "%s failed: %s: %s", j->manifest->name,
                        job_error_name(e), message);
        else
                log_job(LOG_LVL_INFO, j->id, j->manifest->name, run_id, "%s %s in %lld ms", j->manifest->name,
                        e == JOB_ERR_NONE ? "succeeded" : "cancelled", (long long)(now_mono_ms() - j->created_mono));
        if (!job_finish(j, e, message, r ? r->exit_code : -1, r ? &r->metrics : NULL))
                return;
        /* On disk before any waiter is told (told by record_job(), or
         * here when the record is not a final one's first). */
        record_job(s, j, r ? TAKE_PTR(r->result) : NULL, r ? r->result_len : 0);
        job_wake(j);
        if (j->callback_url)
                callback_became_due(s, j->callback_url);
        jobtable_remove(s->d.jobs, j);
}

/* Record that attempt n begins (the first in this daemon takes the job
 * from queued: it is not taken when a cancel got there first), in two
 * halves: the commit is in flight while the run is built.  The end is 1
 * when recorded, 0 when the job was cancelled meanwhile, -1 when the store
 * failed.  Nothing starts before it is on disk (or with the job's own
 * insert still waiting for its commit, below): a job that brings the
 * daemon down has its attempts counted. */
static struct store_pending *record_attempt_begin(struct scheduler *s, struct job *j, bool first, bool *ret_lazy)
{
        struct job_record rec;
        job_snapshot(j, &rec);
        *ret_lazy = first && __atomic_load_n(&j->submit_lazy, __ATOMIC_SEQ_CST);
        /* Lazy for the first run of a job whose submit was lazy too:
         * the store defers it only while that insert waits for its commit
         * too (nobody has seen the job), and a crash then loses the job
         * with its run.  A job someone may know of (acknowledged, listed,
         * recovered from disk) has each run on disk before it starts: one
         * that brings the daemon or the machine down is counted, and not
         * run for ever. */
        return store_update_begin(s->d.store, &rec, first ? JOB_QUEUED : JOB_RUNNING, *ret_lazy);
}

static int record_attempt_end(struct scheduler *s, struct job *j, struct store_pending *p, bool lazy)
{
        struct err err = ERR_INIT;
        int rc = store_update_end(p, &err);
        /* Its id given meanwhile (a ?wait that ran out): that answer's
         * sync may have gone before this write; one after it, then. */
        if (rc == 1 && lazy && !__atomic_load_n(&j->submit_lazy, __ATOMIC_SEQ_CST)) {
                /* Recorded, if not on disk yet: only a stop fails it
                 * (the store gave up), and the next start recovers it. */
                if (store_sync(s->d.store, &err) < 0)
                        log_job(LOG_LVL_WARN, j->id, j->manifest->name, NULL, "its start is not on disk: %s",
                                err.msg);
                return rc;
        }
        if (rc < 0)
                log_job(LOG_LVL_ERROR, j->id, j->manifest->name, NULL, "cannot record its start: %s", err.msg);
        return rc;
}

/* A job user for a cold run.  All in use (runs waiting for the cleaner,
 * containers the runtime would not delete): wait for one, for a while. */
static int take_ids(struct scheduler *s, struct job *j, struct job_ids *ret, struct err *err)
{
        int64_t until = now_mono_ms() + IDS_WAIT_MS;
        bool told = false;
        for (;;) {
                err_clear(err);
                if (idpool_take(s->d.ids, ret, err) == 0)
                        return 0;
                if (err->code != ERR_BUSY || now_mono_ms() > until || job_stop_requested(j))
                        return -1;
                if (!told) {
                        log_job(LOG_LVL_INFO, j->id, j->manifest->name, NULL,
                                "waiting for a job user: all %lld are in use (job_users.count)",
                                (long long)s->d.cfg->job_users.count);
                        told = true;
                }
                struct timespec ts = { 0, 20 * 1000000 };
                nanosleep(&ts, NULL);
                heartbeat_beat();
        }
}

/* Why the plugin files m would run from are no longer m's, or NULL:
 * its rootfs or plugin.yaml gone (the plugin removed), or its directory
 * replaced (a copy renamed over it) by one whose plugin.yaml names another
 * algorithm or version.  The runtime would refuse each run ("invalid
 * rootfs", or the command not found), or worse, run another version's
 * files under this version's name; each refused run was retried and
 * counted against the algorithm's breaker: a few jobs queued for a plugin
 * removed a moment later isolated the name, and a fixed copy put back got
 * 503.  A plugin changed in place (the same directory) runs m as before:
 * the registry serves m itself until the change has settled.  Two or
 * three stats when nothing changed. */
static char *plugin_gone(const struct manifest *m, bool *ret_missing)
{
        struct stat st;
        *ret_missing = true;
        /* m->rootfs was resolved at load: a link there now (renamed over
         * the directory) would take the runtime out of the plugin. */
        if (m->rootfs) {
                bool there = lstat(m->rootfs, &st) == 0;
                if (there && S_ISLNK(st.st_mode)) {
                        *ret_missing = false;
                        return xasprintf("its rootfs `%s` was replaced by a link", m->rootfs);
                }
                if (!there || !S_ISDIR(st.st_mode))
                        return xasprintf("its rootfs `%s` is gone", m->rootfs);
        }
        if (stat(m->path, &st) < 0)
                return xasprintf("its manifest `%s` is gone", m->path);
        if (stat(m->dir, &st) < 0)
                return xasprintf("its directory `%s` is gone", m->dir);
        *ret_missing = false;
        if (st.st_dev == m->dir_st.st_dev && st.st_ino == m->dir_st.st_ino)
                return NULL;
        /* Another directory under its name: which version is it? */
        _cleanup_free_ char *name = NULL, *version = NULL;
        if (manifest_peek(m->path, &name, &version) < 0)
                return xasprintf("its directory `%s` was replaced by one whose manifest names no algorithm", m->dir);
        struct semver v = { 0 };
        bool same = version && semver_parse(version, &v, NULL) == 0 && !strcmp(name, m->name) &&
                    semver_compare(&v, &m->semver) == 0;
        semver_done(&v);
        if (same)
                return NULL;   /* a copy of the same version */
        return xasprintf("`%s` now holds %s %s", m->path, name, version ? version : "(no version)");
}

/* Is m's version served again, from the directory there now (loaded, so
 * whole: the registry loads a directory once it has settled)? */
static bool plugin_back(struct scheduler *s, const struct manifest *m)
{
        struct manifest *now = NULL;
        struct err err = ERR_INIT;
        if (registry_find(s->d.registry, m->name, m->version, &now, &err) < 0)
                return false;
        struct stat st;
        bool back = stat(m->dir, &st) == 0 && st.st_dev == now->dir_st.st_dev && st.st_ino == now->dir_st.st_ino;
        manifest_unref(now);
        bool missing;
        _cleanup_free_ char *gone = back ? plugin_gone(m, &missing) : NULL;
        return back && !gone;
}

/* plugin_gone(), waiting out a reinstall: a plugin removed and copied in
 * again (rm -rf, then cp -r) is missing for a moment, and a job that finds
 * it so waits for its version to be served again, up to
 * PLUGIN_BACK_WAIT_MS from when any job of that manifest first found it
 * missing; past that, they fail at once.  A directory replaced by another
 * version's is not waited for.  *ret_stopped: the job was asked to stop
 * while it waited. */
static char *plugin_gone_for_good(struct scheduler *s, struct job *j, bool *ret_stopped)
{
        struct manifest *m = j->manifest;
        *ret_stopped = false;
        bool missing;
        char *gone = plugin_gone(m, &missing);
        if (!gone || !missing) {
                /* There (or replaced): a later outage is waited for anew. */
                if (__atomic_load_n(&m->missing_since_ms, __ATOMIC_RELAXED))
                        __atomic_store_n(&m->missing_since_ms, 0, __ATOMIC_SEQ_CST);
                return gone;
        }
        if (!s->d.registry)
                return gone;
        int64_t since = 0, now = now_mono_ms();
        /* Not found missing for a while: it may have been back meanwhile
         * with no job to see it, and this is another removal. */
        int64_t seen = __atomic_exchange_n(&m->missing_seen_ms, now, __ATOMIC_SEQ_CST);
        if (seen && now - seen > PLUGIN_BACK_WAIT_MS)
                __atomic_store_n(&m->missing_since_ms, 0, __ATOMIC_SEQ_CST);
        if (__atomic_compare_exchange_n(&m->missing_since_ms, &since, now, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
                since = now;
        if (now - since < PLUGIN_BACK_WAIT_MS)
                log_job(LOG_LVL_INFO, j->id, m->name, NULL, "%s %s is missing (%s): waiting up to %lld ms for it "
                        "to be installed again", m->name, m->version, gone,
                        (long long)(since + PLUGIN_BACK_WAIT_MS - now));
        while (now_mono_ms() - since < PLUGIN_BACK_WAIT_MS) {
                if (!pause_ms(NULL, j, PLUGIN_BACK_POLL_MS)) {
                        *ret_stopped = true;
                        return gone;
                }
                __atomic_store_n(&m->missing_seen_ms, now_mono_ms(), __ATOMIC_SEQ_CST);
                if (plugin_back(s, m)) {
                        __atomic_store_n(&m->missing_since_ms, 0, __ATOMIC_SEQ_CST);
                        free(gone);
                        return NULL;
                }
        }
        return gone;
}

static void run_job(struct scheduler *s, struct job *j)
{
        const struct config *cfg = s->d.cfg;
        bool probe = j->breaker_probe;
        bool started = job_start(j, s->d.rt->name);
        int start_errno = errno;
        if (!started) {
                /* Cancelled while queued: the cancel finished it. */
                if (probe)
                        breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                return;
        }
        /* Pauses for the daemon's shortage (retry.shortage_retries in all),
         * and the runs among them: not counted against retry.max_attempts.
         * Without its eventfd a running job could not be cancelled: short
         * of descriptors, the job waits for one as a run would. */
        size_t short_pauses = 0, short_runs = 0;
        while (job_cancel_fd(j) < 0 && errno_is_shortage(start_errno) &&
               short_pauses < (size_t)cfg->retry.shortage_retries) {
                int64_t pause = backoff_ms(s, 0, ++short_pauses);
                log_job(LOG_LVL_WARN, j->id, j->manifest->name, NULL, "cannot create the job's cancel eventfd "
                        "(%s): trying again after %lld ms (%zu of %lld such pauses)", strerror(start_errno),
                        (long long)pause, short_pauses, (long long)cfg->retry.shortage_retries);
                if (!pause_ms(s, j, pause))
                        break;
                start_errno = job_retry_cancel_fd(j);
        }
        /* A stop or cancel that came as the eventfd was made at last ends
         * the wait here too: nothing has run. */
        if (job_cancel_fd(j) < 0 || (short_pauses > 0 && (job_stop_requested(j) || stopping(s)))) {
                if (probe)
                        breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                if (!job_stop_requested(j) && stopping(s)) {
                        requeue(s, j);   /* nothing ran: the next start runs it */
                        return;
                }
                if (job_stop_requested(j)) {
                        /* Cancelled, or the daemon stops (queued again for
                         * its next start), while waiting for it. */
                        enum job_error e = stop_reason(s, j);
                        finish(s, j, NULL, e, e == JOB_ERR_CANCELLED ? CANCELLED_QUEUED : stop_message(e));
                        return;
                }
                _cleanup_free_ char *msg = xasprintf("cannot create the job's cancel eventfd: %s", strerror(start_errno));
                finish(s, j, NULL, JOB_ERR_RUNTIME_ERROR, msg);
                return;
        }
        log_job(LOG_LVL_DEBUG, j->id, j->manifest->name, NULL, "%s %s started after %lld ms in the queue",
                j->manifest->name, j->manifest->version, (long long)(now_mono_ms() - j->created_mono));

        for (size_t n = 1;; n++) {
                bool stopped;
                _cleanup_free_ char *gone = plugin_gone_for_good(s, j, &stopped);
                if (gone && stopped) {
                        if (probe)
                                breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                        enum job_error e = stop_reason(s, j);
                        finish(s, j, NULL, e, e == JOB_ERR_CANCELLED && n == 1 ? CANCELLED_QUEUED : stop_message(e));
                        return;
                }
                if (gone) {
                        /* Checked before each run: a plugin removed during
                         * a retry's pause ends the job too. */
                        if (probe)
                                breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                        _cleanup_free_ char *msg = xasprintf(
                                "%s %s is no longer installed: %s (the plugin was removed or replaced after the "
                                "job was accepted); not run%s",
                                j->manifest->name, j->manifest->version, gone, n > 1 ? " again" : "");
                        finish(s, j, NULL, JOB_ERR_RUNTIME_ERROR, msg);
                        return;
                }
                struct run r = {
                        .s = s, .job = j, .exit_code = -1, .error = JOB_ERR_NONE,
                        .metrics = { .peak_memory_bytes = -1, .cpu_ms = -1 },
                        .ids = JOB_IDS_NONE,
                };
                struct err err = ERR_INIT;
                /* A warm container when the pool has one: its run id and
                 * ids are the attempt's. */
                r.sb = warmpool_take(s->d.warm, j->manifest);
                if (r.sb) {
                        r.ids = r.sb->ids;
                        snprintf(r.run_id, sizeof r.run_id, "%s", r.sb->run_id);
                } else if (take_ids(s, j, &r.ids, &err) < 0) {
                        if (probe)
                                breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                        if (job_stop_requested(j)) {
                                /* Stopped before this run began: a cancel
                                 * ends it cancelled, the daemon's stop
                                 * leaves it queued for the next start. */
                                enum job_error e = stop_reason(s, j);
                                finish(s, j, NULL, e, e == JOB_ERR_CANCELLED && n == 1 ? CANCELLED_QUEUED
                                                                                       : stop_message(e));
                                return;
                        }
                        finish(s, j, NULL, JOB_ERR_RUNTIME_ERROR, err.msg);
                        return;
                }
                size_t attempt = job_attempt_begin(j, r.ids.uid, r.ids.gid, r.run_id);
                if (!r.sb)
                        liveset_add(s->d.live, r.run_id);
                bool lazy;
                struct store_pending *claim = record_attempt_begin(s, j, n == 1, &lazy);
                r.log_path = store_log_path(s->d.store, j->id, attempt);
                bool built = run_build(&r);
                int rec = record_attempt_end(s, j, claim, lazy);
                if (rec == 1 && !built && r.retryable) {
                        /* Built while the claim was held (a store that
                         * could not write: a full disk, say, that the
                         * build met too): not this attempt's failure now
                         * that the store writes again.  Once more, from
                         * nothing. */
                        if (r.sb && !r.sb->warm && !r.sb->asked && !sandbox_destroy(s->d.env, TAKE_PTR(r.sb)))
                                log_warn("job %s: run %s: the first build was not all removed", j->id, r.run_id);
                        free(TAKE_PTR(r.message));
                        r.error = JOB_ERR_NONE;
                        r.retryable = false;
                        r.daemon_short = false;   /* the first build's, not this one's */
                        built = run_build(&r);
                }
                if (rec <= 0) {
                        /* Built, perhaps, but nothing started. */
                        if (r.sb) {
                                workspace_drop_input(r.sb->ws);
                                cleaner_push(s->d.cleaner, TAKE_PTR(r.sb));
                        } else {
                                liveset_remove(s->d.live, r.run_id);
                                idpool_give(s->d.ids, r.ids);
                        }
                        if (probe)
                                breaker_probe_abandoned(s->d.breaker, j->manifest->name);
                        /* 0: a cancel took it first and finished it.  -1:
                         * not recorded as started, so it did not start:
                         * still queued on disk, for the next start. */
                        if (rec < 0)
                                back_to_queue(s, j);
                        record_clear(&r.params);
                        free(r.message);
                        free(r.log_path);
                        return;
                }
                if (built)
                        run_go(&r);
                record_clear(&r.params);

                if (!r.sb) {
                        /* Nothing was made (the parameters could not be read). */
                        liveset_remove(s->d.live, r.run_id);
                        idpool_give(s->d.ids, r.ids);
                }
                job_attempt_end(j, r.error, r.message);
                if (!r.daemon_short)
                        breaker_record(s->d.breaker, j->manifest->name, r.error, r.message, probe);
                else if (probe)
                        breaker_probe_abandoned(s->d.breaker, j->manifest->name);

                bool short_retry = r.daemon_short && r.error == JOB_ERR_RUNTIME_ERROR && r.retryable &&
                                   short_pauses < (size_t)cfg->retry.shortage_retries;
                if (short_retry) {
                        short_runs++;
                        short_pauses++;
                }
                /* No more than JOB_ATTEMPTS_MAX runs stored (a start fails
                 * a record with that many). */
                bool again = r.error == JOB_ERR_RUNTIME_ERROR && r.retryable && attempt < JOB_ATTEMPTS_MAX &&
                             (short_retry || n - short_runs < (size_t)cfg->retry.max_attempts) &&
                             !job_cancel_requested(j) &&
                             breaker_state(s->d.breaker, j->manifest->name) != HEALTH_ISOLATED;
                if (again) {
                        /* The next run gets a sandbox of its own. */
                        cleaner_push(s->d.cleaner, TAKE_PTR(r.sb));
                }
                int64_t pause = backoff_ms(s, n - short_runs, short_retry ? short_pauses : 0);
                if (again && !stopping(s)) {
                        if (short_retry)
                                log_job(LOG_LVL_WARN, j->id, j->manifest->name, r.run_id,
                                        "run %s failed for want of the daemon's own resources (%s); not counted "
                                        "against its %lld runs: run again after %lld ms (%zu of %lld such pauses)",
                                        r.run_id, r.message, (long long)cfg->retry.max_attempts, (long long)pause,
                                        short_pauses, (long long)cfg->retry.shortage_retries);
                        else
                                log_job(LOG_LVL_WARN, j->id, j->manifest->name, r.run_id,
                                        "run %s failed (%s); run %zu of %lld after a pause", r.run_id, r.message,
                                        n - short_runs + 1, (long long)cfg->retry.max_attempts);
                        metrics_retry();
                        record_job(s, j, NULL, 0);   /* the failed run, on disk before the pause */
                        if (pause_ms(s, j, pause)) {
                                free(r.message);
                                free(r.result);
                                free(r.log_path);
                                continue;
                        }
                }
                if (again && !job_cancel_requested(j) && stopping(s)) {
                        /* The daemon stops (before the pause or during it):
                         * the next start retries it. */
                        free(r.message);
                        free(r.result);
                        free(r.log_path);
                        requeue(s, j);
                        return;
                }
                enum job_error e = r.error;
                const char *msg = r.message;
                if (again || (e == JOB_ERR_RUNTIME_ERROR && job_stop_requested(j))) {
                        /* Cancelled or interrupted between runs. */
                        e = stop_reason(s, j);
                        msg = stop_message(e);
                }
                /* The container, cgroup and workspace go on the cleaner's
                 * thread (counted pending from now), after the answer. */
                uint64_t ticket = cleaner_push_held(s->d.cleaner, TAKE_PTR(r.sb));
                finish(s, j, &r, e, msg);
                cleaner_go(s->d.cleaner, ticket);
                free(r.message);
                free(r.result);
                free(r.log_path);
                return;
        }
}

/* The test hook: this worker stops beating for s->wedge_ms (or until the
 * drain is over), as a worker stuck in a call would.  True when the drain
 * ended it: the job, not started, stays queued for the next start. */
static bool wedge(struct worker *w, struct job *j)
{
        struct scheduler *s = w->s;
        if (s->wedge_ms <= 0 || atomic_exchange(&s->wedged, true))
                return false;
        log_job(LOG_LVL_WARN, j->id, j->manifest->name, NULL,
                "worker %zu wedged for %lld ms before it runs the job (EDGECD_TEST_WEDGE_WORKER_MS, for tests)",
                w->index, (long long)s->wedge_ms);
        int64_t until = now_mono_ms() + s->wedge_ms;
        while (now_mono_ms() < until && !interrupting(s)) {
                struct timespec ts = { 0, 50 * 1000000 };
                nanosleep(&ts, NULL);
        }
        return interrupting(s);
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        struct scheduler *s = w->s;
        heartbeat_bind(&w->hb);
        for (;;) {
                /* Waiting for a job is not judged: the main loop reads
                 * the queue itself (its length, for STATUS=) each tick. */
                heartbeat_idle(true);
                struct job *j = queue_pop(s->d.queue, admission_try, s->d.admission);
                if (!j)
                        break;   /* stopping: the slot stays idle, not judged */
                heartbeat_idle(false);
                pthread_mutex_lock(&s->lock);
                s->nbusy++;
                pthread_mutex_unlock(&s->lock);
                int64_t took = now_mono_ms();
                size_t attempts = job_attempt_count(j);
                if (!wedge(w, j))
                        run_job(s, j);
                /* One stopped early (a cancel, the daemon's stop), or that
                 * never began a run (its plugin gone, the host short of
                 * something), says nothing of how long jobs take. */
                bool counts = !job_stop_requested(j) && job_attempt_count(j) > attempts;
                admission_release(s->d.admission, j);
                queue_kick(s->d.queue);
                job_unref(j);
                int64_t held = now_mono_ms() - took;
                pthread_mutex_lock(&s->lock);
                if (counts)
                        s->held_ms_avg = s->held_ms_avg ? s->held_ms_avg + (held - s->held_ms_avg) / 8 : held + 1;
                s->nbusy--;
                pthread_cond_broadcast(&s->idle);
                pthread_mutex_unlock(&s->lock);
        }
        return NULL;
}

int scheduler_start(const struct scheduler_deps *deps, struct scheduler **ret, struct err *err)
{
        struct scheduler *s = xcalloc(1, sizeof *s);
        s->d = *deps;
        const struct config *cfg = deps->cfg;
        s->logs_dir = xasprintf("%s/logs", cfg->state_dir);
        pthread_mutex_init(&s->lock, NULL);
        cond_init_monotonic(&s->idle);

        /* Logs outlive the daemon with their records (retention removes
         * them); workspaces never do (main mounts and sweeps their root). */
        int rc = mkdir_p(s->logs_dir, 0750, err);
        if (rc < 0) {
                err_wrap(err, "scheduler");
                scheduler_free(s);
                return -1;
        }
        const char *wedge_ms = getenv("EDGECD_TEST_WEDGE_WORKER_MS");
        s->wedge_ms = wedge_ms ? strtoll(wedge_ms, NULL, 10) : 0;
        if (s->wedge_ms > 0)
                log_warn("the first job's worker wedges for %lld ms (EDGECD_TEST_WEDGE_WORKER_MS, for tests)",
                         (long long)s->wedge_ms);
        s->threads = xcalloc((size_t)cfg->workers, sizeof *s->threads);
        s->workers = xcalloc((size_t)cfg->workers, sizeof *s->workers);
        for (int64_t i = 0; i < cfg->workers; i++) {
                s->workers[i] = (struct worker){ .s = s, .index = (size_t)i };
                char name[32];
                snprintf(name, sizeof name, "worker %lld", (long long)i);
                heartbeat_watch(&s->workers[i].hb, name);
                int e = thread_start(&s->threads[i], "edgecd-worker", worker_main, &s->workers[i]);
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
        job_request_interrupt(j);
}

/* Queued jobs stay queued on disk: the next start runs them. */
static void leave_queued(struct job *j, void *ctx)
{
        (void)ctx;
        job_unref(j);
}

void scheduler_stop(struct scheduler *s, int64_t drain_ms)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        bool was_stopping = s->stopping;
        s->stopping = true;
        pthread_mutex_unlock(&s->lock);
        if (was_stopping)
                return;
        queue_close(s->d.queue, leave_queued, s);
        /* Let the running jobs finish, for up to drain_ms. */
        int64_t deadline = now_mono_ms() + drain_ms;
        pthread_mutex_lock(&s->lock);
        if (s->nbusy)
                log_info("draining: %zu running job(s), up to %lld ms", s->nbusy, (long long)drain_ms);
        while (s->nbusy > 0 && now_mono_ms() < deadline) {
                struct timespec ts = timespec_in(CLOCK_MONOTONIC, 100);
                pthread_cond_timedwait(&s->idle, &s->lock, &ts);
        }
        s->interrupting = true;
        size_t left = s->nbusy;
        pthread_mutex_unlock(&s->lock);
        if (left)
                log_warn("drain time over: stopping %zu running job(s); they run again at the next start", left);
        /* A transition held by a full disk must not hold the stop. */
        store_abandon(s->d.store);
        jobtable_foreach(s->d.jobs, interrupt_running, NULL);
        for (size_t i = 0; i < s->nworkers; i++)
                pthread_join(s->threads[i], NULL);
        s->nworkers = 0;
}

void scheduler_free(struct scheduler *s)
{
        if (!s)
                return;
        scheduler_stop(s, 0);
        /* Every slot watched, also one whose thread did not start. */
        for (int64_t i = 0; s->workers && i < s->d.cfg->workers; i++)
                heartbeat_unwatch(&s->workers[i].hb);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->idle);
        free(s->threads);
        free(s->workers);
        free(s->logs_dir);
        free(s);
}

int scheduler_cancel_begin(struct scheduler *s, struct job *j, struct job_record *rec)
{
        (void)s;
        if (job_get_status(j) == JOB_QUEUED) {
                /* Recorded first, and taken from queued only if no worker
                 * took it meanwhile (the store orders the two). */
                job_snapshot(j, rec);
                rec->status = JOB_CANCELLED;
                rec->error = JOB_ERR_CANCELLED;
                free(rec->error_message);
                rec->error_message = xstrdup(CANCELLED_QUEUED);
                rec->finished_ms = now_real_ms();
                rec->has_metrics = true;
                rec->metrics.queue_ms = rec->metrics.total_ms = now_mono_ms() - j->created_mono;
                return 1;
        }
        /* Running, or popped and about to start: the worker sees the flag.
         * (Final here but not yet on disk: the flag changes nothing, and
         * the answer shows the record as stored.) */
        job_request_cancel(j);
        return 0;
}

void scheduler_cancel_end(struct scheduler *s, struct job *j, bool applied)
{
        if (!applied) {
                /* A worker took it first: cancel it running. */
                job_request_cancel(j);
                return;
        }
        queue_remove(s->d.queue, j);
        if (job_finish(j, JOB_ERR_CANCELLED, CANCELLED_QUEUED, -1, NULL)) {
                job_wake(j);
                if (j->callback_url)
                        callback_became_due(s, j->callback_url);
                jobtable_remove(s->d.jobs, j);
        }
}

void scheduler_accept(struct scheduler *s, struct job *j)
{
        jobtable_add(s->d.jobs, j);
        queue_push_reserved(s->d.queue, j);
}

/* ---- recovery ---- */

struct recovery {
        struct scheduler *s;
        struct registry *registry;
        struct job_record *recs;
        size_t n, cap;
};

static void collect_unfinished(struct job_record *r, void *ctx)
{
        struct recovery *rc = ctx;
        if (rc->n == rc->cap) {
                rc->cap = rc->cap ? rc->cap * 2 : 64;
                rc->recs = xrealloc(rc->recs, rc->cap * sizeof *rc->recs);
        }
        rc->recs[rc->n++] = *r;
        memset(r, 0, sizeof *r);   /* moved */
}

static void fail_record(struct job_record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_record(struct job_record *r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        r->status = JOB_FAILED;
        r->error = JOB_ERR_INTERRUPTED;
        free(r->error_message);
        r->error_message = msg;
        r->finished_ms = now_real_ms();
        r->has_metrics = true;
        /* 0, not negative (stored as none), if the clock was stepped back
         * since it was made. */
        int64_t total = r->finished_ms - r->created_ms;
        r->metrics = (struct job_metrics){ .total_ms = total > 0 ? total : 0, .peak_memory_bytes = -1, .cpu_ms = -1 };
}

int scheduler_recover(struct scheduler *s, struct registry *registry, struct err *err)
{
        struct recovery rc = { .s = s, .registry = registry };
        if (store_load_unfinished(s->d.store, collect_unfinished, &rc, err) < 0)
                return err_wrap(err, "recovery");
        size_t requeued = 0, rerun = 0, failed = 0, nchanged = 0;
        struct store_item *changed = xcalloc(rc.n + 1, sizeof *changed);
        struct job **jobs = xcalloc(rc.n + 1, sizeof *jobs);
        for (size_t i = 0; i < rc.n; i++) {
                struct job_record *r = &rc.recs[i];
                struct manifest *m = NULL;
                struct err ferr = ERR_INIT;
                if (registry_find(registry, r->algorithm, r->version, &m, &ferr) < 0)
                        m = NULL;
                bool was_running = r->status == JOB_RUNNING;
                if (was_running)
                        /* The daemon died while it ran: its container,
                         * cgroup and workspace are gone (the start-up sweep). */
                        record_end_last_attempt(r, JOB_ERR_INTERRUPTED,
                                                "the daemon stopped while the run was in progress");
                bool exact = false;
                _cleanup_free_ char *broken = m ? NULL : registry_broken_reason(registry, r->algorithm,
                                                                              r->version, &exact);
                if (!m && broken && exact)
                        /* Broken while the daemon was stopped: the job
                         * says which file, line and key. */
                        fail_record(r, "%s %s is not loaded: its manifest is broken: %s", r->algorithm,
                                    r->version, broken);
                else if (!m && broken)
                        fail_record(r, "%s %s is no longer installed (a broken manifest names %s: %s)",
                                    r->algorithm, r->version, r->algorithm, broken);
                else if (!m)
                        fail_record(r, "%s %s is no longer installed", r->algorithm, r->version);
                else if (record_attempt_count(r, NULL, 0) >= JOB_ATTEMPTS_MAX)
                        fail_record(r, "run %zu times already", record_attempt_count(r, NULL, 0));
                else if (was_running && r->recoveries >= 1)
                        fail_record(r, "interrupted by a daemon crash again (it runs again only once)");
                else if (was_running && !m->rerun)
                        fail_record(r, "interrupted by a daemon crash; %s %s is not run again (rerun: false)",
                                    r->algorithm, r->version);
                else {
                        if (was_running) {
                                /* It runs again once, under a new run id. */
                                r->status = JOB_QUEUED;
                                r->started_ms = 0;
                                r->recoveries++;
                        }
                        if (!(jobs[i] = job_from_record(r, m)))
                                fail_record(r, "its stored attempts do not parse");
                        else if (was_running)
                                rerun++;
                }
                manifest_unref(m);
                if (was_running || r->status == JOB_FAILED)
                        changed[nchanged++] = (struct store_item){ .rec = r, .expect_status = -1 };
                if (r->status == JOB_FAILED) {
                        failed++;
                        log_job(LOG_LVL_WARN, r->id, r->algorithm, NULL, "failed at recovery: %s", r->error_message);
                } else {
                        requeued++;
                }
        }
        struct store_write w = { .kind = STORE_UPDATE, .items = changed, .n = nchanged };
        int ret = 0;
        if (nchanged && store_write_sync(s->d.store, &w, err) < 0) {
                ret = err_wrap(err, "recovery");
        } else {
                /* Queued again in their order (the queue keeps arrival order
                 * within a priority). */
                for (size_t i = 0; i < rc.n; i++) {
                        if (!jobs[i])
                                continue;
                        jobtable_add(s->d.jobs, jobs[i]);
                        queue_restore(s->d.queue, jobs[i]);
                }
                if (rc.n)
                        log_info("recovery: %zu job(s) queued again (%zu of them interrupted runs), %zu failed",
                                 requeued, rerun, failed);
                /* Those failed here are final now: their callbacks are due. */
                if (failed)
                        callback_became_due(s, NULL);
        }
        for (size_t i = 0; i < rc.n; i++) {
                job_unref(jobs[i]);
                record_clear(&rc.recs[i]);
        }
        free(jobs);
        free(changed);
        free(rc.recs);
        return ret;
}

size_t scheduler_workers(struct scheduler *s)
{
        return s->nworkers;
}

int scheduler_retry_after(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        int64_t avg = s->held_ms_avg;
        size_t busy = s->nbusy;
        pthread_mutex_unlock(&s->lock);
        if (!avg)
                return SCHEDULER_RETRY_AFTER_UNKNOWN;
        /* With every worker busy, one frees every avg / busy on average;
         * a queue held back by admission frees as its running jobs end. */
        int64_t ms = avg / (int64_t)(busy ? busy : s->nworkers ? s->nworkers : 1);
        int64_t secs = (ms + 999) / 1000;
        return secs < 1 ? 1 : secs > SCHEDULER_RETRY_AFTER_MAX ? SCHEDULER_RETRY_AFTER_MAX : (int)secs;
}

size_t scheduler_running(struct scheduler *s)
{
        pthread_mutex_lock(&s->lock);
        size_t n = s->nbusy;
        pthread_mutex_unlock(&s->lock);
        return n;
}
