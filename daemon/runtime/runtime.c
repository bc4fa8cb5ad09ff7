/* runtime.c - the runtime interface (see runtime.h): argument checks, the
 * dispatch to a driver's operations, and what is built on them (a delete
 * retried until done, the sweep of a state root).  No state of its own. */
#include "runtime.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "base/metrics.h"
#include "base/util.h"

#define RETRY_FIRST_DELAY_MS 50

bool runtime_id_ok(const char *id)
{
        if (!id || !*id || id[0] == '-' || id[0] == '.' || strlen(id) > 200)
                return false;
        for (const char *p = id; *p; p++)
                if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return false;
        return true;
}

static int check(const struct runtime *rt, const char *id, struct err *err)
{
        if (!rt || !rt->ops)
                return err_set(err, ERR_INVALID, 0, "runtime: none");
        if (!runtime_id_ok(id))
                return err_set(err, ERR_INVALID, 0, "runtime: bad container id `%s`", id ? id : "");
        return 0;
}

static int create_checked(const struct runtime *rt, const char *id, const char *bundle, int log_fd, bool start,
                          struct pidref *ret, struct err *err)
{
        const char *verb = start ? "run" : "create";
        if (check(rt, id, err) < 0)
                return -1;
        if (!bundle || bundle[0] != '/' || log_fd < 0)
                return err_set(err, ERR_INVALID, 0, "runtime: %s `%s`: no bundle or log fd", verb, id);
        if (!reaper_is_subreaper())
                return err_set(err, ERR_INTERNAL, 0,
                               "runtime: %s `%s`: not a child subreaper, the init could not be waited for", verb, id);
        int r = start ? rt->ops->run(rt, id, bundle, log_fd, ret, err) : rt->ops->create(rt, id, bundle, log_fd, ret, err);
        metrics_runtime_call(verb, r < 0);
        return r;
}

int runtime_create(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                   struct pidref *ret, struct err *err)
{
        return create_checked(rt, id, bundle, log_fd, false, ret, err);
}

int runtime_run(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                struct pidref *ret, struct err *err)
{
        return create_checked(rt, id, bundle, log_fd, true, ret, err);
}

int runtime_run_attached(const struct runtime *rt, const char *id, const char *bundle, int log_fd,
                         struct pidref *ret, struct err *err)
{
        *ret = PIDREF_NULL;
        if (check(rt, id, err) < 0)
                return -1;
        if (!bundle || bundle[0] != '/' || log_fd < 0)
                return err_set(err, ERR_INVALID, 0, "runtime: run `%s`: no bundle or log fd", id);
        int r = rt->ops->run_attached(rt, id, bundle, log_fd, ret, err);
        /* Counted once: a failure after the start is counted by runtime_attached_end(). */
        metrics_runtime_call("run", r < 0);
        return r;
}

bool runtime_attached_started(const struct runtime *rt, const char *id, const char *bundle, int64_t *ret_ms)
{
        *ret_ms = -1;
        return check(rt, id, NULL) == 0 && bundle && rt->ops->attached_started(rt, id, bundle, ret_ms);
}

int runtime_attached_end(const struct runtime *rt, const char *id, const char *bundle,
                         const struct proc_exit *runtime_exit, struct proc_exit *ret, struct err *err)
{
        if (check(rt, id, err) < 0)
                return -1;
        int r = rt->ops->attached_end(rt, id, bundle, runtime_exit, ret, err);
        if (r < 0)
                metrics_runtime_failed("run");
        return r;
}

int runtime_start(const struct runtime *rt, const char *id, struct err *err)
{
        if (check(rt, id, err) < 0)
                return -1;
        int r = rt->ops->start(rt, id, err);
        metrics_runtime_call("start", r < 0);
        return r;
}

int runtime_kill(const struct runtime *rt, const char *id, const char *sig, struct err *err)
{
        if (check(rt, id, err) < 0)
                return -1;
        int r = rt->ops->kill(rt, id, sig ? sig : "KILL", err);
        metrics_runtime_call("kill", r < 0);
        return r;
}

int runtime_delete(const struct runtime *rt, const char *id, struct err *err)
{
        if (check(rt, id, err) < 0)
                return -1;
        int r = rt->ops->delete(rt, id, err);
        metrics_runtime_call("delete", r < 0);
        return r;
}

int runtime_list(const struct runtime *rt, char ***ret, struct err *err)
{
        if (!rt || !rt->ops)
                return err_set(err, ERR_INVALID, 0, "runtime: none");
        return rt->ops->list(rt, ret, err);
}

char *runtime_error_text(const struct runtime *rt, const char *output)
{
        return rt && rt->ops && rt->ops->error_text ? rt->ops->error_text(output) : xstrdup("");
}

int runtime_delete_retry(const struct runtime *rt, const char *id, int attempts, struct err *err)
{
        int64_t delay = RETRY_FIRST_DELAY_MS;
        for (int i = 0;; i++) {
                if (runtime_delete(rt, id, err) == 0)
                        return 0;
                if (err && err->code == ERR_INVALID)
                        return -1;
                if (i + 1 >= attempts)
                        return err_wrap(err, "gave up after %d attempts", attempts);
                sleep_ms(delay);
                delay *= 2;
        }
}

int runtime_sweep(const struct runtime *rt, bool (*keep)(const char *id, void *ctx), void *ctx,
                  size_t *ret_removed, struct err *err)
{
        _cleanup_strv_ char **ids = NULL;
        if (runtime_list(rt, &ids, err) < 0)
                return -1;
        size_t removed = 0;
        int ret = 0;
        for (size_t i = 0; ids && ids[i]; i++) {
                if (keep && keep(ids[i], ctx))
                        continue;
                struct err e = ERR_INIT;
                if (runtime_delete_retry(rt, ids[i], 3, &e) == 0) {
                        removed++;
                } else if (ret == 0) {
                        if (err)
                                *err = e;
                        ret = -1;
                }
        }
        if (ret_removed)
                *ret_removed = removed;
        return ret;
}

void runtime_free(struct runtime *rt)
{
        if (!rt)
                return;
        free(rt->name);
        free(rt->path);
        free(rt->root);
        free(rt->version);
        strv_free(rt->env);
        free(rt);
}
