/* logpump.c - runs' stdout and stderr into capped files (see logpump.h).
 *
 * One thread for every pump of the process (started with the first pump):
 * an epoll set of the pipes' read ends, so a job costs no thread of its own
 * and a warm container's idle pipe costs nothing but its fds.  Pumps are
 * found by id, never by a pointer kept in the epoll set: a pump stopped
 * and freed while its event is in flight is simply not found.
 * P.lock guards the list, each pump's own lock its state and file: a write
 * to a slow disk (dirty pages throttled, a stalled NFS server) holds up
 * that run's log and no other run's start or end.  Lock order:
 * P.start_lock (starting the thread), P.lock, then a pump's. */
#include "logpump.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/util.h"

#define EVENTS_MAX 32
/* Reads of one pipe per wake-up: a run that prints without end gets its
 * turn and no more (the epoll set is level-triggered: the rest waits). */
#define READS_PER_TURN 4
/* At stop, what the pipe holds (the largest pipe an unprivileged writer
 * can make is fs.pipe-max-size, 1 MiB by default: 64 reads). */
#define READS_AT_STOP 64

struct logpump {
        pthread_mutex_t lock;
        uint64_t id;
        int read_fd;
        int write_fd;            /* ours too: EOF never wakes the pump (a silent run
                                  * costs it nothing); stop reads what is there */
        char *path;
        int file_fd;             /* made at the first byte: most runs print nothing */
        size_t cap, written;
        bool truncated;
        int write_errno;         /* the first failed write's (a full disk) */
        bool open_failed;        /* no file at path: not tried again there */
        bool done;               /* a read error (or EOF): out of the epoll set */
        char tail[LOGPUMP_TAIL_MAX];   /* the last bytes read, written or not */
        size_t tail_len;
        struct logpump *next;
};

static struct {
        pthread_mutex_t lock;
        pthread_mutex_t start_lock;
        int epfd, wake_fd;
        bool running, quit;
        pthread_t thread;
        uint64_t next_id;
        struct logpump *pumps;   /* registered, not yet stopped */
} P = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .start_lock = PTHREAD_MUTEX_INITIALIZER,
        .epfd = -1, .wake_fd = -1,
};

static struct logpump *find(uint64_t id)
{
        for (struct logpump *lp = P.pumps; lp; lp = lp->next)
                if (lp->id == id)
                        return lp;
        return NULL;
}

/* Under P.lock: off the list, so the pump thread no longer finds it. */
static void unregister(struct logpump *lp)
{
        for (struct logpump **pp = &P.pumps; *pp; pp = &(*pp)->next) {
                if (*pp == lp) {
                        *pp = lp->next;
                        break;
                }
        }
}

/* The first failure is the one said. */
static void note_failure(struct logpump *lp, int e)
{
        if (!lp->write_errno)
                lp->write_errno = e;
}

/* A file a run of that name left (ours is made at the first byte): a
 * silent run must not show it.  0, or why it would not go. */
static int remove_stale(const char *path)
{
        return unlink(path) < 0 && errno != ENOENT ? errno : 0;
}

/* The last LOGPUMP_TAIL_MAX bytes of all read so far end with buf[0..n). */
static void keep_tail(struct logpump *lp, const char *buf, size_t n)
{
        if (n >= sizeof lp->tail) {
                memcpy(lp->tail, buf + n - sizeof lp->tail, sizeof lp->tail);
                lp->tail_len = sizeof lp->tail;
                return;
        }
        if (lp->tail_len + n > sizeof lp->tail) {
                size_t drop = lp->tail_len + n - sizeof lp->tail;
                memmove(lp->tail, lp->tail + drop, lp->tail_len - drop);
                lp->tail_len -= drop;
        }
        memcpy(lp->tail + lp->tail_len, buf, n);
        lp->tail_len += n;
}

/* Under lp->lock: copy what the pipe holds, up to `turns` reads (0: all);
 * at EOF leave the epoll set. */
static void drain(struct logpump *lp, int turns)
{
        char buf[16384];
        for (int i = 0; turns == 0 || i < turns; i++) {
                ssize_t n = read(lp->read_fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        epoll_ctl(P.epfd, EPOLL_CTL_DEL, lp->read_fd, NULL);
                        lp->done = true;
                        return;
                }
                keep_tail(lp, buf, (size_t)n);
                size_t room = lp->cap - lp->written;
                size_t take = (size_t)n < room ? (size_t)n : room;
                if ((size_t)n > room)
                        lp->truncated = true;
                if (take == 0)
                        continue;
                if (lp->file_fd < 0 && !lp->open_failed) {
                        lp->file_fd = open(lp->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
                        lp->open_failed = lp->file_fd < 0;
                        if (lp->open_failed)
                                note_failure(lp, errno);
                }
                if (lp->file_fd < 0) {
                        lp->truncated = true;
                        continue;
                }
                ssize_t w = write(lp->file_fd, buf, take);
                if (w > 0)
                        lp->written += (size_t)w;
                if (w != (ssize_t)take) {
                        /* A short write is a full disk too: what is lost
                         * makes the log truncated. */
                        note_failure(lp, w < 0 ? errno : ENOSPC);
                        lp->truncated = true;
                }
        }
}

static void *pump_main(void *arg)
{
        (void)arg;
        struct epoll_event ev[EVENTS_MAX];
        for (;;) {
                int n = epoll_wait(P.epfd, ev, EVENTS_MAX, -1);
                if (n < 0 && errno != EINTR)
                        break;
                bool quit = false;
                for (int i = 0; i < n && !quit; i++) {
                        if (ev[i].data.u64 == 0)
                                continue;   /* the wake-up eventfd */
                        pthread_mutex_lock(&P.lock);
                        quit = P.quit;
                        struct logpump *lp = quit ? NULL : find(ev[i].data.u64);
                        /* Taken before P.lock goes: a stop waits for this
                         * drain before it frees the pump. */
                        if (lp)
                                pthread_mutex_lock(&lp->lock);
                        pthread_mutex_unlock(&P.lock);
                        if (!lp)
                                continue;
                        if (!lp->done)
                                drain(lp, READS_PER_TURN);
                        pthread_mutex_unlock(&lp->lock);
                }
                pthread_mutex_lock(&P.lock);
                quit = quit || P.quit;
                pthread_mutex_unlock(&P.lock);
                if (quit)
                        break;
        }
        return NULL;
}

/* Under P.start_lock: the thread and its descriptors, or an errno with
 * nothing made. */
static int start_thread(void)
{
        P.epfd = epoll_create1(EPOLL_CLOEXEC);
        P.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
        int e = 0;
        if (P.epfd < 0 || P.wake_fd < 0 || epoll_ctl(P.epfd, EPOLL_CTL_ADD, P.wake_fd, &ev) < 0)
                e = errno;
        else
                e = thread_start(&P.thread, "edgecd-logpump", pump_main, NULL);
        if (e) {
                if (P.epfd >= 0)
                        close(P.epfd);
                if (P.wake_fd >= 0)
                        close(P.wake_fd);
                P.epfd = P.wake_fd = -1;
                return e;
        }
        pthread_mutex_lock(&P.lock);
        P.running = true;
        pthread_mutex_unlock(&P.lock);
        return 0;
}

int logpump_start(const char *path, size_t cap, struct logpump **ret, int *ret_write_fd,
                  struct err *err)
{
        /* Started by the first run, or by a later one when that failed (the
         * daemon out of descriptors or threads for a while): once for good,
         * it failed every run after it until a restart. */
        pthread_mutex_lock(&P.start_lock);
        pthread_mutex_lock(&P.lock);
        bool quit = P.quit, running = P.running;
        pthread_mutex_unlock(&P.lock);
        /* Not after logpump_shutdown(): a thread started then would end
         * at once and leave the run's pipe unread. */
        int failed = quit ? ECANCELED : running ? 0 : start_thread();
        pthread_mutex_unlock(&P.start_lock);
        if (failed)
                return err_set(err, ERR_INTERNAL, failed, "start the log pump");
        /* One that will not go is a failed write, not a failed run. */
        int stale_errno = remove_stale(path);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_errno(err, ERR_IO, "pipe");
        /* Only our end is non-blocking: the container's writes block on a
         * full pipe, as they would on a terminal. */
        if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
                int e = errno;
                close(p[0]);
                close(p[1]);
                return err_set(err, ERR_IO, e, "pipe");
        }
        struct logpump *lp = xcalloc(1, sizeof *lp);
        pthread_mutex_init(&lp->lock, NULL);
        lp->read_fd = p[0];
        lp->write_fd = p[1];
        lp->path = xstrdup(path);
        lp->file_fd = -1;
        lp->write_errno = stale_errno;
        lp->cap = cap;
        pthread_mutex_lock(&P.lock);
        lp->id = ++P.next_id;
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = lp->id };
        if (epoll_ctl(P.epfd, EPOLL_CTL_ADD, lp->read_fd, &ev) < 0) {
                int e = errno;
                pthread_mutex_unlock(&P.lock);
                close(p[0]);
                close(p[1]);
                pthread_mutex_destroy(&lp->lock);
                free(lp->path);
                free(lp);
                return err_set(err, ERR_IO, e, "log pump: epoll");
        }
        lp->next = P.pumps;
        P.pumps = lp;
        pthread_mutex_unlock(&P.lock);
        *ret = lp;
        *ret_write_fd = p[1];
        return 0;
}

void logpump_stop(struct logpump *lp, bool *ret_truncated, int *ret_write_errno, char **ret_tail)
{
        if (ret_tail)
                *ret_tail = NULL;
        if (!lp)
                return;
        pthread_mutex_lock(&P.lock);
        unregister(lp);
        pthread_mutex_unlock(&P.lock);
        /* Waits for a drain of the pump thread's that began before. */
        pthread_mutex_lock(&lp->lock);
        /* The run has ended: what it wrote is in the pipe (writes to a
         * pipe are done when they return). */
        if (!lp->done)
                drain(lp, READS_AT_STOP);
        if (!lp->done)
                epoll_ctl(P.epfd, EPOLL_CTL_DEL, lp->read_fd, NULL);
        lp->done = true;
        if (ret_truncated)
                *ret_truncated = lp->truncated;
        if (ret_write_errno)
                *ret_write_errno = lp->write_errno;
        pthread_mutex_unlock(&lp->lock);
        pthread_mutex_destroy(&lp->lock);
        if (ret_tail) {
                char *t = xmalloc(lp->tail_len + 1);
                for (size_t i = 0; i < lp->tail_len; i++)
                        t[i] = lp->tail[i] ? lp->tail[i] : '?';
                t[lp->tail_len] = '\0';
                *ret_tail = t;
        }
        close(lp->read_fd);
        close(lp->write_fd);
        if (lp->file_fd >= 0)
                close(lp->file_fd);
        free(lp->path);
        free(lp);
}

int logpump_move(struct logpump *lp, const char *path, struct err *err)
{
        pthread_mutex_lock(&lp->lock);
        int rc = 0;
        if (lp->file_fd >= 0 && rename(lp->path, path) < 0)
                rc = err_errno(err, ERR_IO, "move the log `%s` to `%s`", lp->path, path);
        if (rc == 0) {
                free(lp->path);
                lp->path = xstrdup(path);
                /* No file yet: one that could not be made is tried again
                 * there. */
                if (lp->file_fd < 0) {
                        int e = remove_stale(path);
                        if (e)
                                note_failure(lp, e);
                        lp->open_failed = false;
                }
        }
        pthread_mutex_unlock(&lp->lock);
        return rc;
}

void logpump_shutdown(void)
{
        /* No logpump_start() between the look at P.running and the join:
         * its thread would be left unjoined, its epoll set closed. */
        pthread_mutex_lock(&P.start_lock);
        pthread_mutex_lock(&P.lock);
        bool running = P.running;
        P.quit = true;
        pthread_mutex_unlock(&P.lock);
        if (running) {
                uint64_t one = 1;
                if (write(P.wake_fd, &one, sizeof one) < 0) {
                        /* A full counter wakes it as well. */
                }
                pthread_join(P.thread, NULL);
        }
        if (P.epfd >= 0)
                close(P.epfd);
        if (P.wake_fd >= 0)
                close(P.wake_fd);
        P.epfd = P.wake_fd = -1;
        P.running = false;
        pthread_mutex_unlock(&P.start_lock);
}
