/* reaper.c - the daemon's children (see reaper.h for the design).
 *
 * Owns: the table of children somebody waits for (`owned`), the zombies the
 * orphan reaper has seen but may not reap yet (`pending`), and the open
 * claim windows.  All three under one mutex, never held across a blocking
 * wait.  Threads: workers claim and wait; spawn.c registers CLI children
 * from any thread; the housekeeping thread reaps orphans. */
#include "reaper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/heartbeat.h"
#include "base/util.h"

/* Without a pidfd, look at the child this often. */
#define POLL_SLICE_MS 10
/* How long a claimed pid may take to become our child (pidref_claim). */
#define CLAIM_WAIT_MS 2000

enum child_state {
        CHILD_OWNED,      /* somebody waits for it */
        CHILD_ABANDONED,  /* its owner let go before it was reaped */
};

struct child {
        pid_t pid;
        enum child_state state;
};

struct pending {
        pid_t pid;
        uint64_t ticket;  /* the ticket the next window would have got when first seen */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct child *children;
static size_t n_children, cap_children;
static struct pending *pending;
static size_t n_pending, cap_pending;
static uint64_t *windows;
static size_t n_windows, cap_windows;
static uint64_t next_ticket = 1;

/* ---- tables (lock held) ---- */

static struct child *child_find(pid_t pid)
{
        for (size_t i = 0; i < n_children; i++)
                if (children[i].pid == pid)
                        return &children[i];
        return NULL;
}

static void child_set(pid_t pid, enum child_state state)
{
        struct child *c = child_find(pid);
        if (!c) {
                if (n_children == cap_children) {
                        cap_children = cap_children ? cap_children * 2 : 16;
                        children = xrealloc(children, cap_children * sizeof *children);
                }
                c = &children[n_children++];
                c->pid = pid;
        }
        c->state = state;
}

static void child_remove(pid_t pid)
{
        struct child *c = child_find(pid);
        if (c)
                *c = children[--n_children];
}

static struct pending *pending_find(pid_t pid)
{
        for (size_t i = 0; i < n_pending; i++)
                if (pending[i].pid == pid)
                        return &pending[i];
        return NULL;
}

static void pending_remove(pid_t pid)
{
        struct pending *p = pending_find(pid);
        if (p)
                *p = pending[--n_pending];
}

/* Is a window open that was opened before `ticket` was handed out? */
static bool older_window_open(uint64_t ticket)
{
        for (size_t i = 0; i < n_windows; i++)
                if (windows[i] < ticket)
                        return true;
        return false;
}

/* ---- setup and windows ---- */

int reaper_setup(struct err *err)
{
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return err_errno(err, ERR_INTERNAL, "become a child subreaper");
        return 0;
}

bool reaper_is_subreaper(void)
{
        int on = 0;
        return prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) == 0 && on;
}

uint64_t reaper_window_open(void)
{
        pthread_mutex_lock(&lock);
        uint64_t t = next_ticket++;
        if (n_windows == cap_windows) {
                cap_windows = cap_windows ? cap_windows * 2 : 8;
                windows = xrealloc(windows, cap_windows * sizeof *windows);
        }
        windows[n_windows++] = t;
        pthread_mutex_unlock(&lock);
        return t;
}

void reaper_window_close(uint64_t ticket)
{
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_windows; i++) {
                if (windows[i] == ticket) {
                        windows[i] = windows[--n_windows];
                        break;
                }
        }
        pthread_mutex_unlock(&lock);
}

void reaper_lock(void)
{
        pthread_mutex_lock(&lock);
}

void reaper_unlock(void)
{
        pthread_mutex_unlock(&lock);
}

/* ---- pidrefs ---- */

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

void pidref_register_locked(pid_t pid, int pidfd, struct pidref *ret)
{
        child_set(pid, CHILD_OWNED);
        pending_remove(pid);
        /* pidfd_open() sets close-on-exec itself, as CLONE_PIDFD does. */
        int fd = pidfd >= 0 ? pidfd : pidfd_open_(pid);
        *ret = (struct pidref){ .pid = pid, .fd = fd };
}

/* The parent of the process /proc/<name>, or -1. */
static long parent_of(const char *name)
{
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%.20s/stat", name);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        if (len <= 0)
                return -1;
        buf[len] = '\0';
        /* "pid (comm) S ppid ...": comm may hold ')' */
        const char *rp = strrchr(buf, ')');
        long ppid;
        return rp && sscanf(rp + 1, " %*c %ld", &ppid) == 1 ? ppid : -1;
}

/* Is pid's parent a child of ours (then pid becomes ours when it exits)? */
static bool parent_is_ours(pid_t pid)
{
        char name[24];
        snprintf(name, sizeof name, "%d", (int)pid);
        long ppid = parent_of(name);
        siginfo_t si = { 0 };
        return ppid > 1 && waitid(P_PID, (id_t)ppid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

int pidref_claim(pid_t pid, struct pidref *ret, struct err *err)
{
        if (pid <= 0)
                return err_set(err, ERR_RUNTIME, 0, "bad pid %d", (int)pid);
        pthread_mutex_lock(&lock);
        struct child *c = child_find(pid);
        if (c && c->state == CHILD_OWNED) {
                pthread_mutex_unlock(&lock);
                return err_set(err, ERR_INTERNAL, 0, "pid %d is claimed already", (int)pid);
        }
        /* A running or exited-but-unreaped child of ours: a zombie keeps
         * its pid, so this cannot be somebody else's process.  Not ours
         * yet while the runtime's last process, its parent, outlives the
         * command we waited for (crun's `run --detach` daemonises and
         * exits just after): the kernel hands it to us, the subreaper,
         * when that process exits, soon. */
        int64_t until = now_mono_ms() + CLAIM_WAIT_MS;
        for (;;) {
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
                        break;
                int e = errno;
                pthread_mutex_unlock(&lock);
                if (e != ECHILD || !parent_is_ours(pid) || now_mono_ms() > until)
                        return err_set(err, ERR_RUNTIME, e, "pid %d is not a child of the daemon", (int)pid);
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&lock);
        }
        pidref_register_locked(pid, -1, ret);
        pthread_mutex_unlock(&lock);
        return 0;
}

static void fill_exit(const siginfo_t *si, struct proc_exit *ret)
{
        *ret = (struct proc_exit){ 0 };
        if (si->si_code == CLD_EXITED) {
                ret->status = WAIT_EXITED;
                ret->exit_code = si->si_status;
        } else {
                ret->status = WAIT_SIGNALED;
                ret->signal = si->si_status;
        }
}

/* Has it exited?  Peeks without reaping.  1 yes, 0 no, -errno. */
static int peek_exited(pid_t pid)
{
        siginfo_t si = { 0 };
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                return -errno;
        return si.si_pid == pid;
}

/* An owned child reaped if it has exited, and let go of in the same hold
 * of the lock (its pid may be a new child's the moment it is reaped).
 * 1 reaped (*si its exit), 0 running, -errno. */
static int reap_exited(pid_t pid, siginfo_t *si)
{
        *si = (siginfo_t){ 0 };
        pthread_mutex_lock(&lock);
        int r = waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG) < 0 ? -errno : si->si_pid == pid;
        if (r == 1 || r == -ECHILD)
                child_remove(pid);   /* ECHILD: no child of ours by that pid any more */
        pthread_mutex_unlock(&lock);
        return r;
}

int pidref_wait(struct pidref *p, int64_t deadline_mono_ms, int cancel_fd, struct proc_exit *ret,
                struct err *err)
{
        if (!p || p->pid <= 0)
                return err_set(err, ERR_INVALID, 0, "wait: no process");
        siginfo_t si;
        for (;;) {
                int64_t left = deadline_mono_ms - now_mono_ms();
                if (left < 0)
                        left = 0;
                struct pollfd pfd[2];
                nfds_t n = 0;
                if (cancel_fd >= 0)
                        pfd[n++] = (struct pollfd){ .fd = cancel_fd, .events = POLLIN };
                if (p->fd >= 0)
                        pfd[n++] = (struct pollfd){ .fd = p->fd, .events = POLLIN };
                /* A watched thread beats between slices (heartbeat.h). */
                int slice = p->fd >= 0 ? (int)(left > HEARTBEAT_SLICE_MS ? HEARTBEAT_SLICE_MS : left)
                                       : (int)(left < POLL_SLICE_MS ? left : POLL_SLICE_MS);
                heartbeat_beat();
                int r = poll(pfd, n, slice);
                if (r < 0 && errno != EINTR)
                        return err_errno(err, ERR_INTERNAL, "wait for pid %d: poll", (int)p->pid);
                int exited = reap_exited(p->pid, &si);
                if (exited < 0)
                        return err_set(err, ERR_INTERNAL, -exited, "wait for pid %d%s", (int)p->pid,
                                       exited == -ECHILD ? " (reaped by somebody else)" : "");
                if (exited)
                        break;
                if (cancel_fd >= 0 && r > 0 && pfd[0].revents) {
                        *ret = (struct proc_exit){ .status = WAIT_CANCELLED };
                        return 0;
                }
                if (deadline_mono_ms - now_mono_ms() <= 0) {
                        *ret = (struct proc_exit){ .status = WAIT_TIMEOUT };
                        return 0;
                }
        }
        if (p->fd >= 0)
                close(p->fd);
        *p = PIDREF_NULL;
        fill_exit(&si, ret);
        return 0;
}

int pidref_signal(const struct pidref *p, int sig)
{
        if (!p || p->pid <= 0)
                return ESRCH;
        if (p->fd >= 0) {
                if (syscall(SYS_pidfd_send_signal, p->fd, sig, NULL, 0) == 0)
                        return 0;
                if (errno != ENOSYS)
                        return errno;
        }
        /* Ours and unreaped: the pid cannot have been recycled. */
        return kill(p->pid, sig) == 0 ? 0 : errno;
}

void pidref_release(struct pidref *p)
{
        if (!p || p->pid <= 0)
                return;
        pthread_mutex_lock(&lock);
        struct child *c = child_find(p->pid);
        if (c)
                c->state = CHILD_ABANDONED;
        pthread_mutex_unlock(&lock);
        if (p->fd >= 0)
                close(p->fd);
        *p = PIDREF_NULL;
}

/* ---- orphans ---- */

static void push_pid(pid_t **v, size_t *n, size_t *cap, pid_t pid)
{
        if (*n == *cap)
                *v = xrealloc(*v, (*cap = *cap ? *cap * 2 : 16) * sizeof **v);
        (*v)[(*n)++] = pid;
}

/* Our children: /proc/self/task/<tid>/children lists them per thread (an
 * orphan is re-parented to any thread of the subreaper); without
 * CONFIG_PROC_CHILDREN scan /proc for our pid as the parent. */
static pid_t *list_children(size_t *ret_n)
{
        pid_t *v = NULL;
        size_t n = 0, cap = 0;
        bool have_children_files = false;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[64];
                snprintf(p, sizeof p, "/proc/self/task/%.20s/children", de->d_name);
                _cleanup_fclose_ FILE *f = fopen(p, "re");
                if (!f)
                        continue;
                have_children_files = true;
                long pid;
                while (fscanf(f, "%ld", &pid) == 1)
                        push_pid(&v, &n, &cap, (pid_t)pid);
        }
        if (d)
                closedir(d);
        if (!have_children_files && (d = opendir("/proc"))) {
                pid_t self = getpid();
                while ((de = readdir(d))) {
                        if (de->d_name[0] < '1' || de->d_name[0] > '9')
                                continue;
                        if (parent_of(de->d_name) == self)
                                push_pid(&v, &n, &cap, (pid_t)atol(de->d_name));
                }
                closedir(d);
        }
        *ret_n = n;
        return v;
}

/* Is a full scan worth it?  One waitid(WNOWAIT) over every thread's
 * children shows the first zombie, if any: none, nothing to do (the usual
 * case; a scan of /proc/self/task costs some 60 system calls); one nobody
 * waits for, scan now; one whose owner is about to reap it (the exit that
 * sent this SIGCHLD, mostly), scan only if the last scan is a second old,
 * so an orphan behind it waits a tick at most. */
#define FULL_SCAN_EVERY_MS 1000

static bool scan_needed(void)
{
        static int64_t last_scan_ms;
        siginfo_t si = { 0 };
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid <= 0)
                return false;
        pthread_mutex_lock(&lock);
        struct child *c = child_find(si.si_pid);
        bool owned = c && c->state == CHILD_OWNED;
        pthread_mutex_unlock(&lock);
        int64_t now = now_mono_ms();
        if (owned && now - last_scan_ms < FULL_SCAN_EVERY_MS)
                return false;
        last_scan_ms = now;
        return true;
}

void reaper_reap_orphans(void)
{
        if (!scan_needed())
                return;
        size_t n;
        _cleanup_free_ pid_t *kids = list_children(&n);
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n; i++) {
                pid_t pid = kids[i];
                struct child *c = child_find(pid);
                if (c && c->state == CHILD_OWNED)
                        continue;
                if (peek_exited(pid) != 1)
                        continue;   /* running, or not ours after all */
                if (!c) {
                        /* Maybe an init whose `create` is still being
                         * claimed: wait until every window that was open
                         * when we first saw it has closed. */
                        struct pending *z = pending_find(pid);
                        if (!z) {
                                if (n_pending == cap_pending) {
                                        cap_pending = cap_pending ? cap_pending * 2 : 16;
                                        pending = xrealloc(pending, cap_pending * sizeof *pending);
                                }
                                z = &pending[n_pending++];
                                *z = (struct pending){ .pid = pid, .ticket = next_ticket };
                        }
                        if (older_window_open(z->ticket))
                                continue;
                }
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == pid) {
                        child_remove(pid);
                        pending_remove(pid);
                }
        }
        /* Forget sightings of pids that are no zombies of ours any more. */
        for (size_t i = 0; i < n_pending;) {
                bool seen = false;
                for (size_t k = 0; k < n && !seen; k++)
                        seen = kids[k] == pending[i].pid;
                if (!seen)
                        pending[i] = pending[--n_pending];
                else
                        i++;
        }
        pthread_mutex_unlock(&lock);
}
