/* breaker.c - per-algorithm circuit breaker (see breaker.h).  A list of
 * entries by name, one mutex.  Entries are made on first use and kept: one
 * per algorithm ever run, at most the registry's 1000 and their leftovers. */
#include "breaker.h"

#include <pthread.h>
#include <string.h>

#include "base/util.h"

struct entry {
        char *name;
        enum health state;
        int64_t row;              /* counted failures in a row */
        int64_t since_ms;         /* wall clock of the last state change */
        int64_t retry_mono;       /* isolated: when a probe may run */
        bool probe_running;
        char *reason;
        struct entry *next;
};

struct breaker {
        pthread_mutex_t lock;
        int64_t degrade_after, isolate_after, cooldown_ms;
        struct entry *entries;
};

static const char *const names[] = {
        [HEALTH_HEALTHY] = "healthy", [HEALTH_DEGRADED] = "degraded",
        [HEALTH_ISOLATED] = "isolated", [HEALTH_PROBING] = "probing",
};

const char *health_name(enum health h)
{
        return names[h];
}

struct breaker *breaker_new(int64_t degrade_after, int64_t isolate_after, int64_t cooldown_ms)
{
        struct breaker *b = xcalloc(1, sizeof *b);
        pthread_mutex_init(&b->lock, NULL);
        b->degrade_after = degrade_after;
        b->isolate_after = isolate_after;
        b->cooldown_ms = cooldown_ms;
        return b;
}

void breaker_free(struct breaker *b)
{
        if (!b)
                return;
        for (struct entry *e = b->entries, *n; e; e = n) {
                n = e->next;
                free(e->name);
                free(e->reason);
                free(e);
        }
        pthread_mutex_destroy(&b->lock);
        free(b);
}

static struct entry *find(struct breaker *b, const char *name, bool create)
{
        for (struct entry *e = b->entries; e; e = e->next)
                if (!strcmp(e->name, name))
                        return e;
        if (!create)
                return NULL;
        struct entry *e = xcalloc(1, sizeof *e);
        e->name = xstrdup(name);
        e->since_ms = now_real_ms();
        e->next = b->entries;
        b->entries = e;
        return e;
}

static void set_state(struct entry *e, enum health h)
{
        if (e->state != h)
                e->since_ms = now_real_ms();
        e->state = h;
}

/* Isolated whose cool-down is over becomes probing (lock held). */
static void tick(struct entry *e)
{
        if (e->state == HEALTH_ISOLATED && now_mono_ms() >= e->retry_mono)
                set_state(e, HEALTH_PROBING);
}

/* May a job start (lock held)?  take: it does, and a probe takes its place. */
static bool admit_locked(struct breaker *b, const char *name, size_t running, bool take, bool *ret_probe)
{
        *ret_probe = false;
        struct entry *e = find(b, name, false);
        bool ok = true;
        if (e) {
                tick(e);
                switch (e->state) {
                case HEALTH_HEALTHY:
                        break;
                case HEALTH_DEGRADED:
                        ok = running == 0;
                        break;
                case HEALTH_ISOLATED:
                        ok = false;
                        break;
                case HEALTH_PROBING:
                        ok = !e->probe_running && running == 0;
                        if (ok && take) {
                                e->probe_running = true;
                                *ret_probe = true;
                        }
                        break;
                }
        }
        return ok;
}

bool breaker_admit(struct breaker *b, const char *name, size_t running, bool *ret_probe)
{
        pthread_mutex_lock(&b->lock);
        bool ok = admit_locked(b, name, running, true, ret_probe);
        pthread_mutex_unlock(&b->lock);
        return ok;
}

bool breaker_would_admit(struct breaker *b, const char *name, size_t running)
{
        bool probe;
        pthread_mutex_lock(&b->lock);
        bool ok = admit_locked(b, name, running, false, &probe);
        pthread_mutex_unlock(&b->lock);
        return ok;
}

int breaker_check_submit(struct breaker *b, const char *name, struct err *err)
{
        pthread_mutex_lock(&b->lock);
        struct entry *e = find(b, name, false);
        int ret = 0;
        if (e) {
                tick(e);
                if (e->state == HEALTH_ISOLATED) {
                        int64_t left = (e->retry_mono - now_mono_ms() + 999) / 1000;
                        ret = err_set(err, ERR_UNAVAILABLE, 0,
                                      "algorithm `%s` is isolated after %lld failed runs in a row (last: %s); "
                                      "a probe job may run in %lld s",
                                      name, (long long)e->row, e->reason ? e->reason : "?", (long long)left);
                }
        }
        pthread_mutex_unlock(&b->lock);
        return ret;
}

static bool counts(enum job_error e)
{
        return e == JOB_ERR_RUNTIME_ERROR || e == JOB_ERR_SANDBOX_VIOLATION;
}

void breaker_record(struct breaker *b, const char *name, enum job_error err_code, const char *message, bool probe)
{
        if (err_code == JOB_ERR_CANCELLED || err_code == JOB_ERR_INTERRUPTED) {
                if (probe)
                        breaker_probe_abandoned(b, name);
                return;
        }
        pthread_mutex_lock(&b->lock);
        struct entry *e = find(b, name, counts(err_code));
        if (!e) {
                pthread_mutex_unlock(&b->lock);
                return;
        }
        if (probe)
                e->probe_running = false;
        if (!counts(err_code)) {
                e->row = 0;
                set_state(e, HEALTH_HEALTHY);
                free(e->reason);
                e->reason = NULL;
                pthread_mutex_unlock(&b->lock);
                return;
        }
        e->row++;
        free(e->reason);
        e->reason = xasprintf("%s: %s", job_error_name(err_code), message ? message : "");
        if (probe || e->row >= b->isolate_after) {
                set_state(e, HEALTH_ISOLATED);
                e->since_ms = now_real_ms();
                e->retry_mono = now_mono_ms() + b->cooldown_ms;
        } else if (e->row >= b->degrade_after && e->state == HEALTH_HEALTHY) {
                set_state(e, HEALTH_DEGRADED);
        }
        pthread_mutex_unlock(&b->lock);
}

void breaker_probe_abandoned(struct breaker *b, const char *name)
{
        pthread_mutex_lock(&b->lock);
        struct entry *e = find(b, name, false);
        if (e)
                e->probe_running = false;
        pthread_mutex_unlock(&b->lock);
}

enum health breaker_state(struct breaker *b, const char *name)
{
        pthread_mutex_lock(&b->lock);
        struct entry *e = find(b, name, false);
        enum health h = HEALTH_HEALTHY;
        if (e) {
                tick(e);
                h = e->state;
        }
        pthread_mutex_unlock(&b->lock);
        return h;
}

static json_t *time_json(int64_t ms)
{
        char buf[40];
        format_rfc3339(ms, buf, sizeof buf);
        return json_string(buf);
}

json_t *breaker_json(struct breaker *b, const char *name)
{
        pthread_mutex_lock(&b->lock);
        struct entry *e = find(b, name, false);
        json_t *o;
        if (!e) {
                o = json_pack("{s:s, s:i, s:n}", "state", "healthy", "consecutive_failures", 0, "reason");
        } else {
                tick(e);
                o = json_pack("{s:s, s:I, s:o, s:o}", "state", names[e->state],
                              "consecutive_failures", (json_int_t)e->row,
                              "reason", e->reason ? json_string(e->reason) : json_null(),
                              "since", time_json(e->since_ms));
                if (!json_object_get(o, "reason"))   /* a reason that is not UTF-8 */
                        json_object_set_new(o, "reason", json_string("(not printable)"));
                if (e->state == HEALTH_ISOLATED) {
                        int64_t left = e->retry_mono - now_mono_ms();
                        json_object_set_new(o, "retry_at", time_json(now_real_ms() + (left > 0 ? left : 0)));
                }
        }
        pthread_mutex_unlock(&b->lock);
        return o;
}

void breaker_foreach_unhealthy(struct breaker *b,
                               void (*fn)(const char *name, enum health h, const char *reason, void *ctx),
                               void *ctx)
{
        pthread_mutex_lock(&b->lock);
        for (struct entry *e = b->entries; e; e = e->next) {
                tick(e);
                if (e->state != HEALTH_HEALTHY)
                        fn(e->name, e->state, e->reason ? e->reason : "", ctx);
        }
        pthread_mutex_unlock(&b->lock);
}

void breaker_counts(struct breaker *b, size_t c[4])
{
        memset(c, 0, 4 * sizeof *c);
        pthread_mutex_lock(&b->lock);
        for (struct entry *e = b->entries; e; e = e->next) {
                tick(e);
                c[e->state]++;
        }
        pthread_mutex_unlock(&b->lock);
}
