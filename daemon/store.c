/* store.c - in-memory job records (see store.h for the design).
 * Any thread; one mutex. */
#include "store.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define BUCKETS 16384

struct entry {
        struct job *job;
        bool counted;                 /* in finals, result_bytes and the final list */
        struct entry *hnext;          /* hash chain */
        struct entry *newer, *older;  /* creation order */
        struct entry *fnext, *fprev;  /* order of becoming final: eviction order */
};

struct store {
        pthread_mutex_t lock;
        struct entry *buckets[BUCKETS];
        struct entry *newest, *oldest;
        struct entry *first_final, *last_final;
        size_t count;
        size_t finals, final_limit;
        size_t result_bytes, result_bytes_limit;
        char *logs_dir;
};

static size_t hash_id(const char *id)
{
        size_t h = 5381;
        for (const unsigned char *p = (const unsigned char *)id; *p; p++)
                h = h * 33 + *p;
        return h % BUCKETS;
}

struct store *store_new(size_t jobs_kept, size_t kept_results_bytes, const char *logs_dir)
{
        struct store *s = xcalloc(1, sizeof *s);
        pthread_mutex_init(&s->lock, NULL);
        s->final_limit = jobs_kept;
        s->result_bytes_limit = kept_results_bytes;
        s->logs_dir = xstrdup(logs_dir);
        return s;
}

char *store_log_path(struct store *s, const char *id)
{
        return xasprintf("%s/%s.log", s->logs_dir, id);
}

static void remove_entry(struct store *s, struct entry *e)
{
        struct entry **pp = &s->buckets[hash_id(e->job->id)];
        while (*pp != e)
                pp = &(*pp)->hnext;
        *pp = e->hnext;
        if (e->newer)
                e->newer->older = e->older;
        else
                s->newest = e->older;
        if (e->older)
                e->older->newer = e->newer;
        else
                s->oldest = e->newer;
        if (e->counted) {
                s->finals--;
                s->result_bytes -= e->job->result_bytes;
                if (e->fprev)
                        e->fprev->fnext = e->fnext;
                else
                        s->first_final = e->fnext;
                if (e->fnext)
                        e->fnext->fprev = e->fprev;
                else
                        s->last_final = e->fprev;
        }
        s->count--;
}

void store_free(struct store *s)
{
        if (!s)
                return;
        for (struct entry *e = s->newest, *n; e; e = n) {
                n = e->older;
                job_unref(e->job);
                free(e);
        }
        pthread_mutex_destroy(&s->lock);
        free(s->logs_dir);
        free(s);
}

static bool over_limits(const struct store *s)
{
        return s->finals > s->final_limit || s->result_bytes > s->result_bytes_limit;
}

/* Forget the jobs that became final first while over a limit, keeping the
 * last one to finish: a long job created early and finished just now is the
 * newest result, not the oldest.  Each step removes one, so it is cheap. */
/* Remove the logs of every run of a job. */
static void remove_logs(struct store *s, struct job *j)
{
        size_t n = job_attempt_count(j);
        for (size_t i = 1; i <= n; i++) {
                _cleanup_free_ char *log = xasprintf("%s/%s-%zu.log", s->logs_dir, j->id, i);
                unlink(log);
        }
}

/* Forget the jobs that became final first while over a limit, keeping the
 * last one to finish: a long job created early and finished just now is the
 * newest result, not the oldest.  Each step removes one, so it is cheap. */
static void evict(struct store *s)
{
        while (over_limits(s) && s->finals > 1) {
                struct entry *e = s->first_final;
                remove_entry(s, e);
                remove_logs(s, e->job);
                job_unref(e->job);
                free(e);
        }
}

static void count_final(struct store *s, struct entry *e)
{
        if (e->counted || !job_status_is_final(job_get_status(e->job)))
                return;
        e->counted = true;
        s->finals++;
        s->result_bytes += e->job->result_bytes;
        e->fprev = s->last_final;
        if (s->last_final)
                s->last_final->fnext = e;
        else
                s->first_final = e;
        s->last_final = e;
}

void store_add(struct store *s, struct job *j)
{
        struct entry *e = xcalloc(1, sizeof *e);
        e->job = job_ref(j);
        pthread_mutex_lock(&s->lock);
        size_t h = hash_id(j->id);
        e->hnext = s->buckets[h];
        s->buckets[h] = e;
        e->older = s->newest;
        if (s->newest)
                s->newest->newer = e;
        s->newest = e;
        if (!s->oldest)
                s->oldest = e;
        s->count++;
        count_final(s, e);
        evict(s);
        pthread_mutex_unlock(&s->lock);
}

static struct entry *find(struct store *s, const char *id)
{
        for (struct entry *e = s->buckets[hash_id(id)]; e; e = e->hnext)
                if (!strcmp(e->job->id, id))
                        return e;
        return NULL;
}

void store_remove(struct store *s, struct job *j)
{
        pthread_mutex_lock(&s->lock);
        struct entry *e = find(s, j->id);
        if (e)
                remove_entry(s, e);
        pthread_mutex_unlock(&s->lock);
        if (e) {
                job_unref(e->job);
                free(e);
        }
}

void store_job_final(struct store *s, struct job *j)
{
        pthread_mutex_lock(&s->lock);
        struct entry *e = find(s, j->id);
        if (e) {
                count_final(s, e);
                evict(s);
        }
        pthread_mutex_unlock(&s->lock);
}

struct job *store_get(struct store *s, const char *id)
{
        pthread_mutex_lock(&s->lock);
        struct entry *e = find(s, id);
        struct job *j = e ? job_ref(e->job) : NULL;
        pthread_mutex_unlock(&s->lock);
        return j;
}

int store_list(struct store *s, const struct store_filter *f, size_t max_bytes, char **ret_text,
               size_t *ret_len, struct err *err)
{
        /* Take references under the lock; render outside it, so a long
         * page holds up neither the workers nor other requests' lookups. */
        struct job **page = xcalloc(f->limit + 1, sizeof *page);
        size_t n = 0;
        bool more = false;
        pthread_mutex_lock(&s->lock);
        struct entry *start = s->newest;
        if (f->after) {
                struct entry *a = find(s, f->after);
                if (!a) {
                        pthread_mutex_unlock(&s->lock);
                        free(page);
                        return err_set(err, ERR_NOT_FOUND, 0, "no job `%.64s` to list after", f->after);
                }
                start = a->older;
        }
        for (struct entry *e = start; e; e = e->older) {
                if (f->status >= 0 && (int)job_get_status(e->job) != f->status)
                        continue;
                if (f->algorithm && strcmp(f->algorithm, e->job->manifest->name))
                        continue;
                if (n == f->limit) {
                        more = true;
                        break;
                }
                page[n++] = job_ref(e->job);
        }
        pthread_mutex_unlock(&s->lock);

        /* {"jobs":[...],"next":"<id>"|null}; a page ends early once it
         * holds max_bytes, and `next` goes on from there. */
        size_t cap = 4096, len = 0;
        char *out = xmalloc(cap);
        len += (size_t)snprintf(out, cap, "{\"jobs\":[");
        size_t shown = 0;
        for (size_t i = 0; i < n; i++) {
                if (shown > 0 && len >= max_bytes) {
                        more = true;
                        break;
                }
                size_t jl;
                _cleanup_free_ char *jt = job_render(page[i], true, &jl);
                if (len + jl + 128 > cap) {
                        while (len + jl + 128 > cap)
                                cap *= 2;
                        out = xrealloc(out, cap);
                }
                if (shown)
                        out[len++] = ',';
                memcpy(out + len, jt, jl);
                len += jl;
                shown++;
        }
        if (more && shown)
                len += (size_t)snprintf(out + len, cap - len, "],\"next\":\"%s\"}", page[shown - 1]->id);
        else
                len += (size_t)snprintf(out + len, cap - len, "],\"next\":null}");
        for (size_t i = 0; i < n; i++)
                job_unref(page[i]);
        free(page);
        *ret_text = out;
        *ret_len = len;
        return 0;
}

void store_foreach_active(struct store *s, void (*fn)(struct job *j, void *ctx), void *ctx)
{
        /* Collect references first: fn may take other locks. */
        pthread_mutex_lock(&s->lock);
        size_t n = 0;
        for (struct entry *e = s->newest; e; e = e->older)
                n++;
        struct job **list = xcalloc(n + 1, sizeof *list);
        size_t k = 0;
        for (struct entry *e = s->newest; e; e = e->older)
                if (!job_status_is_final(job_get_status(e->job)))
                        list[k++] = job_ref(e->job);
        pthread_mutex_unlock(&s->lock);
        for (size_t i = 0; i < k; i++) {
                fn(list[i], ctx);
                job_unref(list[i]);
        }
        free(list);
}

size_t store_count(struct store *s)
{
        pthread_mutex_lock(&s->lock);
        size_t n = s->count;
        pthread_mutex_unlock(&s->lock);
        return n;
}
