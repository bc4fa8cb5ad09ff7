/* logpump.c - a run's stdout and stderr into a capped file (see logpump.h).
 * One thread per pump; the stop flag is an atomic checked on every pass. */
#include "logpump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "util.h"

/* After stop, what still arrives is copied for at most this long. */
#define DRAIN_MS 2000

struct logpump {
        pthread_t thread;
        int read_fd;
        int file_fd;
        size_t cap, written;
        bool truncated;
        int stop;        /* atomic: drain what is there, then end */
};

static void *pump_main(void *arg)
{
        struct logpump *lp = arg;
        char buf[16384];
        int64_t drain_deadline = 0;
        for (;;) {
                /* Checked on every pass, data or not: something may still
                 * hold the pipe and keep writing; do not wait for it forever. */
                if (__atomic_load_n(&lp->stop, __ATOMIC_ACQUIRE)) {
                        if (!drain_deadline)
                                drain_deadline = now_mono_ms() + DRAIN_MS;
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

int logpump_start(const char *path, size_t cap, struct logpump **ret, int *ret_write_fd,
                  struct err *err)
{
        _cleanup_close_ int file_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (file_fd < 0)
                return err_errno(err, ERR_IO, "open log `%s`", path);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_errno(err, ERR_IO, "pipe");
        struct logpump *lp = xcalloc(1, sizeof *lp);
        lp->read_fd = p[0];
        lp->file_fd = TAKE_FD(file_fd);
        lp->cap = cap;
        /* The pump never takes signals: they are for the main thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int e = pthread_create(&lp->thread, NULL, pump_main, lp);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e) {
                close(p[0]);
                close(p[1]);
                close(lp->file_fd);
                free(lp);
                return err_set(err, ERR_INTERNAL, e, "start the log pump");
        }
        *ret = lp;
        *ret_write_fd = p[1];
        return 0;
}

void logpump_stop(struct logpump *lp, bool *ret_truncated)
{
        if (!lp)
                return;
        __atomic_store_n(&lp->stop, 1, __ATOMIC_RELEASE);
        pthread_join(lp->thread, NULL);
        if (ret_truncated)
                *ret_truncated = lp->truncated;
        close(lp->read_fd);
        close(lp->file_fd);
        free(lp);
}
