/* plugwatch.c - inotify on the plugins directory (see plugwatch.h). */
#include "plugwatch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define REWATCH_MS 1000

#define TOP_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | \
                  IN_MOVE_SELF | IN_ONLYDIR)
#define SUB_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_CLOSE_WRITE | \
                  IN_MODIFY | IN_ONLYDIR)

struct plugwatch {
        char *dir;
        void (*wake)(void *ctx);
        void *ctx;
        int ifd;                 /* inotify */
        int stop_fd;             /* eventfd: stop, or a new `again` */
        int top_wd;              /* -1 while the directory is not watched */
        bool warned_full;        /* the watch limit was reported */
        bool reset;              /* the directory went: start over with a new instance */
        bool rebuild;            /* a plugin directory moved away: its watch must go */
        bool warned_renew;       /* a new instance for that was refused, and reported */
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        int64_t again_at;        /* guarded by lock; 0: none */
        bool quit;               /* guarded by lock */
};

static void poke(struct plugwatch *w)
{
        uint64_t one = 1;
        if (write(w->stop_fd, &one, sizeof one) < 0) {
                /* A full counter wakes it as well. */
        }
}

/* Watch every plugin directory in dir (adding a watch twice is harmless:
 * the kernel keeps one). */
static void watch_subdirs(struct plugwatch *w)
{
        DIR *d = opendir(w->dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                /* A link to a plugin directory elsewhere is followed (and
                 * IN_ONLYDIR refuses what is no directory). */
                if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_LNK && de->d_type != DT_UNKNOWN))
                        continue;
                char p[PATH_MAX];
                if (snprintf(p, sizeof p, "%s/%s", w->dir, de->d_name) >= (int)sizeof p)
                        continue;
                if (inotify_add_watch(w->ifd, p, SUB_MASK) < 0 && errno == ENOSPC && !w->warned_full) {
                        w->warned_full = true;
                        log_warn("plugins: cannot watch `%s` (and maybe more): the inotify watch limit is reached "
                                 "(fs.inotify.max_user_watches); changes in them are seen by the rescan every "
                                 "minute, or SIGHUP", p);
                }
        }
        closedir(d);
}

static bool watch_top(struct plugwatch *w)
{
        w->top_wd = inotify_add_watch(w->ifd, w->dir, TOP_MASK);
        if (w->top_wd < 0)
                return false;
        watch_subdirs(w);
        return true;
}

/* Read what is queued; true when anything happened that may matter. */
static bool drain_events(struct plugwatch *w)
{
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool any = false;
        for (;;) {
                ssize_t n = read(w->ifd, buf, sizeof buf);
                if (n <= 0)
                        return any;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
                        p += sizeof *ev + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                w->rebuild = true;   /* a move out may be among the lost */
                                any = true;
                                continue;
                        }
                        if (ev->wd == w->top_wd && (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))) {
                                /* Its plugin directories' watches go with it
                                 * (moved away, they would still report). */
                                w->reset = true;
                                any = true;
                                continue;
                        }
                        if (ev->mask & IN_IGNORED)
                                continue;
                        /* Moved out (or to a dot-name), a plugin directory
                         * keeps its watch, as a link's target does when the
                         * link goes, and writes there would wake rescans
                         * for ever; watches have no names to drop one by,
                         * so all are made again at the rescan. */
                        if (ev->wd == w->top_wd && ev->len && ev->name[0] != '.' &&
                            ((ev->mask & IN_MOVED_FROM) || ((ev->mask & IN_DELETE) && !(ev->mask & IN_ISDIR))))
                                w->rebuild = true;
                        /* A new plugin directory: watch it now, so that what
                         * is written in it next is seen (what came before
                         * the watch, the rescan reads anyway). */
                        if (ev->wd == w->top_wd && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len &&
                            ev->name[0] != '.') {
                                char sub[PATH_MAX];
                                if (snprintf(sub, sizeof sub, "%s/%s", w->dir, ev->name) < (int)sizeof sub)
                                        inotify_add_watch(w->ifd, sub, SUB_MASK);
                        }
                        any = true;
                }
        }
}

/* The watches made again in a new instance, before a rescan (which reads
 * what changed while none was there).  false: the directory is not
 * watched now (rewatched later).  An instance that cannot be had keeps
 * the old watches, and is tried again at the next rescan. */
static bool renew(struct plugwatch *w)
{
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0) {
                if (!w->warned_renew) {
                        w->warned_renew = true;
                        log_warn("plugins: cannot renew the watches of `%s`: %s; a plugin directory moved out of "
                                 "it may still wake rescans", w->dir, strerror(errno));
                }
                return true;
        }
        close(w->ifd);
        w->ifd = fd;
        w->rebuild = false;
        return watch_top(w);
}

static void *watch_thread(void *arg)
{
        struct plugwatch *w = arg;
        int64_t first = 0, last = 0, rewatch_at = w->top_wd < 0 ? now_mono_ms() + REWATCH_MS : 0;
        for (;;) {
                int64_t now = now_mono_ms();
                pthread_mutex_lock(&w->lock);
                bool quit = w->quit;
                int64_t again = w->again_at;
                pthread_mutex_unlock(&w->lock);
                if (quit)
                        break;

                bool fire = false;
                if (first) {
                        int64_t due = last + PLUGWATCH_QUIET_MS;
                        if (due > first + PLUGWATCH_MAX_DELAY_MS)
                                due = first + PLUGWATCH_MAX_DELAY_MS;
                        if (now >= due) {
                                fire = true;
                                first = last = 0;
                        }
                }
                if (again && now >= again) {
                        fire = true;
                        pthread_mutex_lock(&w->lock);
                        if (w->again_at == again)
                                w->again_at = 0;
                        pthread_mutex_unlock(&w->lock);
                        again = 0;
                }
                if (w->top_wd < 0 && rewatch_at && now >= rewatch_at) {
                        if (watch_top(w)) {
                                log_info("plugins: watching `%s`", w->dir);
                                rewatch_at = 0;
                                fire = true;
                        } else {
                                rewatch_at = now + REWATCH_MS;
                        }
                }
                if (fire) {
                        if (w->rebuild && w->top_wd >= 0 && !renew(w))
                                rewatch_at = now_mono_ms() + REWATCH_MS;
                        watch_subdirs(w);
                        w->wake(w->ctx);
                        continue;
                }

                int64_t next = INT64_MAX;
                if (first) {
                        int64_t due = last + PLUGWATCH_QUIET_MS;
                        next = due < first + PLUGWATCH_MAX_DELAY_MS ? due : first + PLUGWATCH_MAX_DELAY_MS;
                }
                if (again && again < next)
                        next = again;
                if (rewatch_at && rewatch_at < next)
                        next = rewatch_at;
                int timeout = next == INT64_MAX ? -1 : next <= now ? 0 : (int)(next - now < INT_MAX ? next - now : INT_MAX);
                struct pollfd pfd[2] = { { .fd = w->ifd, .events = POLLIN }, { .fd = w->stop_fd, .events = POLLIN } };
                if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
                        log_error("plugins: the watch stopped: poll: %s", strerror(errno));
                        break;
                }
                if (pfd[1].revents) {
                        uint64_t v;
                        if (read(w->stop_fd, &v, sizeof v) < 0) {
                                /* Only a wake-up. */
                        }
                }
                if (pfd[0].revents && drain_events(w)) {
                        last = now_mono_ms();
                        if (!first)
                                first = last;
                }
                if (w->reset) {
                        w->rebuild = false;
                        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                        if (fd >= 0) {
                                close(w->ifd);
                                w->ifd = fd;
                        } else {
                                inotify_rm_watch(w->ifd, w->top_wd);
                        }
                        w->top_wd = -1;
                        w->reset = false;
                        rewatch_at = now_mono_ms() + REWATCH_MS;
                }
        }
        return NULL;
}

int plugwatch_start(const char *dir, void (*wake)(void *ctx), void *ctx, struct plugwatch **ret,
                    struct err *err)
{
        struct plugwatch *w = xcalloc(1, sizeof *w);
        w->dir = xstrdup(dir);
        w->wake = wake;
        w->ctx = ctx;
        w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&w->lock, NULL);
        if (w->ifd < 0 || w->stop_fd < 0) {
                err_errno(err, ERR_IO, "plugins: watch `%s`", dir);
                plugwatch_stop(w);
                return -1;
        }
        if (!watch_top(w))
                log_warn("plugins: cannot watch `%s` yet: %s; looking for it every second", dir, strerror(errno));
        w->started = thread_start(&w->thread, "edgecd-watch", watch_thread, w) == 0;
        if (!w->started) {
                err_set(err, ERR_INTERNAL, 0, "plugins: cannot start the watch thread");
                plugwatch_stop(w);
                return -1;
        }
        *ret = w;
        return 0;
}

void plugwatch_again(struct plugwatch *w, int64_t after_ms)
{
        if (!w)
                return;
        int64_t at = now_mono_ms() + (after_ms > 0 ? after_ms : 0);
        pthread_mutex_lock(&w->lock);
        if (!w->again_at || at < w->again_at)
                w->again_at = at;
        pthread_mutex_unlock(&w->lock);
        poke(w);
}

void plugwatch_stop(struct plugwatch *w)
{
        if (!w)
                return;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_mutex_unlock(&w->lock);
                poke(w);
                pthread_join(w->thread, NULL);
        }
        if (w->ifd >= 0)
                close(w->ifd);
        if (w->stop_fd >= 0)
                close(w->stop_fd);
        pthread_mutex_destroy(&w->lock);
        free(w->dir);
        free(w);
}
