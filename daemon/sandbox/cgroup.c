/* cgroup.c - per-job cgroup accounting (peak memory, CPU time, OOM kills)
 * and removal of the daemon's parent cgroup, on cgroup v1 (including hybrid
 * hosts like this one, where v1 controllers sit beside an empty cgroup2
 * "unified" mount) and on pure cgroup v2.
 *
 * Owns: a table of the mounted cgroup hierarchies and of the mount points of
 * the two controllers we read (memory, cpuacct/cpu).  It is built once,
 * under pthread_once, from libcgroup (cgroup_init and
 * cgroup_get_subsys_mount_point / the controller iterator) plus a scan of
 * /sys/fs/cgroup for the hierarchies libcgroup does not name (name=systemd,
 * unified); after that it is read-only, so any worker thread may call
 * cgroup_read_stats() concurrently, and main or a test calls the rest.
 *
 * The values themselves are read straight from the control files rather
 * than through cgroup_get_cgroup(): that call reads every file of every
 * controller (about a hundred reads on v1) to return three numbers, and
 * memory.oom_control is a key/value file libcgroup has no getter for.
 *
 * The runtime creates and deletes the container cgroups; this file reads
 * them and the run cgroups above them, and removes what is left. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include <libcgroup.h>

#include "base/heartbeat.h"
#include "base/util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define MAX_HIERARCHIES 32

struct hierarchies {
        bool v2;                         /* /sys/fs/cgroup itself is cgroup2 */
        char memory[PATH_MAX];           /* mount point of the memory controller */
        bool memory_v2;
        char cpu[PATH_MAX];              /* cpuacct (v1) or cpu (v2) */
        bool cpu_v2;
        char *roots[MAX_HIERARCHIES];    /* every hierarchy, once each */
        dev_t devs[MAX_HIERARCHIES];     /* to tell co-mounts and symlinks apart */
        size_t n_roots;
};

static struct hierarchies H;
static pthread_once_t H_once = PTHREAD_ONCE_INIT;

/* 1 for a cgroup v1 mount, 2 for cgroup2, 0 for anything else. */
static int cgroup_fs_version(const char *path)
{
        struct statfs sfs;
        if (statfs(path, &sfs) < 0)
                return 0;
        if (sfs.f_type == CGROUP2_SUPER_MAGIC)
                return 2;
        if (sfs.f_type == CGROUP_SUPER_MAGIC)
                return 1;
        return 0;
}

static void add_root(const char *path)
{
        struct stat st;
        if (H.n_roots >= MAX_HIERARCHIES || !cgroup_fs_version(path) || stat(path, &st) < 0)
                return;
        for (size_t i = 0; i < H.n_roots; i++)
                if (H.devs[i] == st.st_dev)
                        return;
        H.devs[H.n_roots] = st.st_dev;
        H.roots[H.n_roots++] = xstrdup(path);
}

/* Mount point of a controller: libcgroup first, then the usual place. */
static void find_controller(const char *name, bool lib_ok, const char *fallback, char *buf, size_t len)
{
        char *mp = NULL;
        if (lib_ok && cgroup_get_subsys_mount_point(name, &mp) == 0 && mp)
                snprintf(buf, len, "%s", mp);
        else
                snprintf(buf, len, "%s", fallback);
        free(mp);
}

static void hierarchies_init(void)
{
        H.v2 = cgroup_fs_version(CGROUP_ROOT) == 2;
        bool lib_ok = cgroup_init() == 0;

        if (H.v2) {
                find_controller("memory", lib_ok, CGROUP_ROOT, H.memory, sizeof H.memory);
                find_controller("cpu", lib_ok, CGROUP_ROOT, H.cpu, sizeof H.cpu);
        } else {
                find_controller("memory", lib_ok, CGROUP_ROOT "/memory", H.memory, sizeof H.memory);
                find_controller("cpuacct", lib_ok, CGROUP_ROOT "/cpuacct", H.cpu, sizeof H.cpu);
        }
        H.memory_v2 = cgroup_fs_version(H.memory) == 2;
        H.cpu_v2 = cgroup_fs_version(H.cpu) == 2;

        if (H.v2) {
                add_root(CGROUP_ROOT);
                return;
        }
        /* Every hierarchy libcgroup knows, then whatever else is mounted
         * under /sys/fs/cgroup (name=systemd, the unified cgroup2 mount):
         * the runtime creates the job's cgroup in all of them. */
        if (lib_ok) {
                void *handle = NULL;
                struct cgroup_mount_point mp;
                int r = cgroup_get_controller_begin(&handle, &mp);
                while (r == 0) {
                        add_root(mp.path);
                        r = cgroup_get_controller_next(&handle, &mp);
                }
                cgroup_get_controller_end(&handle);
        }
        DIR *d = opendir(CGROUP_ROOT);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char p[PATH_MAX];
                        snprintf(p, sizeof p, CGROUP_ROOT "/%s", de->d_name);
                        add_root(p);
                }
                closedir(d);
        }
}

static const struct hierarchies *hierarchies(void)
{
        pthread_once(&H_once, hierarchies_init);
        return &H;
}

/* A cgroupsPath we accept: absolute, no "..", not the root itself. */
static bool path_ok(const char *path)
{
        if (!path || path[0] != '/' || !path[1] || strlen(path) > 1024)
                return false;
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
                        return false;
        return true;
}

/* Read a small control file into buf; false when absent or unreadable. */
static bool read_ctl(const char *dir, const char *file, char *buf, size_t len)
{
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, file) >= (int)sizeof p)
                return false;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t got = read_full(fd, buf, len - 1);
        buf[got > 0 ? got : 0] = '\0';
        return got > 0;
}

static int64_t read_ctl_int(const char *dir, const char *file)
{
        char buf[64];
        int64_t v;
        if (!read_ctl(dir, file, buf, sizeof buf))
                return -1;
        buf[strcspn(buf, "\n")] = '\0';
        return parse_int64(buf, 0, INT64_MAX, &v) ? v : -1;
}

/* The value of `key N` in the text of a flat keyed file (memory.events,
 * cpu.stat, memory.oom_control, cgroup.events); -1 when the key is not
 * there. */
static int64_t key_value(const char *text, const char *key)
{
        size_t klen = strlen(key);
        for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, key, klen) || line[klen] != ' ')
                        continue;
                char num[32];
                size_t n = strcspn(line + klen + 1, "\n");
                if (n >= sizeof num)
                        return -1;
                memcpy(num, line + klen + 1, n);
                num[n] = '\0';
                int64_t v;
                return parse_int64(num, 0, INT64_MAX, &v) ? v : -1;
        }
        return -1;
}

static int64_t read_ctl_key(const char *dir, const char *file, const char *key)
{
        char buf[4096];
        if (!read_ctl(dir, file, buf, sizeof buf))
                return -1;
        return key_value(buf, key);
}

/* A kept file's text at offset 0 into buf: false with errno set when it
 * cannot be read (ENODEV: its cgroup was removed). */
static bool pread_text(int fd, char *buf, size_t len)
{
        ssize_t n;
        do
                n = pread(fd, buf, len - 1, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
                if (n == 0)
                        errno = EIO;
                return false;
        }
        buf[n] = '\0';
        return true;
}

/* A counter from a kept file (struct cgroup_files): -1 with errno set when
 * it cannot be read (ENODEV: its cgroup was removed). */
static int64_t pread_int(int fd)
{
        char buf[64];
        if (!pread_text(fd, buf, sizeof buf))
                return -1;
        buf[strcspn(buf, "\n")] = '\0';
        int64_t v;
        if (!parse_int64(buf, 0, INT64_MAX, &v)) {
                errno = EIO;
                return -1;
        }
        return v;
}

static bool cgroup_gone(int e)
{
        return e == ENOENT || e == ENODEV;
}

/* A kept file's failure (errno e) as an error: ERR_NOT_FOUND when its
 * cgroup is gone. */
static int files_err(struct err *err, int e, const char *what, const char *path)
{
        return err_set(err, cgroup_gone(e) ? ERR_NOT_FOUND : ERR_IO, e, "cgroup: %s `%s`", what, path);
}

/* Write text to dir/file in one write(); -errno on failure. */
static int write_ctl(const char *dir, const char *file, const char *text)
{
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, file) >= (int)sizeof p)
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, strlen(text));
        if (n < 0)
                return -errno;
        return (size_t)n == strlen(text) ? 0 : -EIO;
}

/* A kept file's text into buf; false when it says its cgroup is gone.  A
 * file that cannot be read otherwise leaves buf empty: its figures
 * unknown, as when read by name. */
static bool pread_kept(int fd, char *buf, size_t size)
{
        if (pread_text(fd, buf, size))
                return true;
        buf[0] = '\0';
        return !cgroup_gone(errno);
}

/* memory.peak, memory.events and cpu.stat of a v2 cgroup, by name or
 * from its kept files (files not NULL).  memory.peak appeared in Linux
 * 5.19: before it the peak is unknown (-1, null in the job), and so is a 0,
 * which no cgroup that ran a process can have: memory.current read now,
 * after the container is gone, would say nothing of its peak.  -1 with
 * errno set when a kept file says its cgroup is gone. */
int cgroup_read_v2_dir(const char *dir, const struct cgroup_files *files, struct cgroup_stats *ret)
{
        struct cgroup_stats s = { .peak_memory_bytes = -1, .cpu_ms = -1 };
        char events[4096], cpu[4096];
        if (files) {
                if (!pread_kept(files->events, events, sizeof events) || !pread_kept(files->cpu, cpu, sizeof cpu))
                        return -1;
                if (files->peak >= 0 && (s.peak_memory_bytes = pread_int(files->peak)) < 0 && cgroup_gone(errno))
                        return -1;
        } else {
                s.peak_memory_bytes = read_ctl_int(dir, "memory.peak");
                if (!read_ctl(dir, "memory.events", events, sizeof events))
                        events[0] = '\0';
                if (!read_ctl(dir, "cpu.stat", cpu, sizeof cpu))
                        cpu[0] = '\0';
        }
        if (s.peak_memory_bytes == 0)
                s.peak_memory_bytes = -1;
        /* Hierarchical: the run's counts its container's. */
        int64_t kills = key_value(events, "oom_kill");
        s.oom_known = kills >= 0;
        s.oom_killed = kills > 0;
        s.limit_hit = key_value(events, "max") > 0;
        int64_t us = key_value(cpu, "usage_usec");
        s.cpu_ms = us < 0 ? -1 : us / 1000;
        *ret = s;
        return 0;
}

int cgroup_read_stats(const char *path, const char *leaf, int64_t memory_limit_bytes,
                      const struct cgroup_base *base, struct cgroup_stats *ret, struct err *err)
{
        if (!path_ok(path) || (leaf && !path_ok(leaf)))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path_ok(path) ? leaf : path ? path : "");
        const struct hierarchies *h = hierarchies();
        _cleanup_free_ char *mem = xasprintf("%s%s", h->memory, path);
        _cleanup_free_ char *cpu = xasprintf("%s%s", h->cpu, path);

        /* Kept files: a removed cgroup's say so (ENODEV) when read. */
        const struct cgroup_files *files = base && cgroup_files_kept(base->files) ? base->files : NULL;
        struct stat st;
        if (!files && stat(mem, &st) < 0)
                return err_errno(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "cgroup: stat `%s`", mem);

        struct cgroup_stats s = { .peak_memory_bytes = -1, .cpu_ms = -1 };
        if (h->memory_v2 && h->cpu_v2) {
                /* Files kept on v2 are a run cgroup's made ahead: nothing
                 * held before the run to take off. */
                if (cgroup_read_v2_dir(mem, files, ret) < 0)
                        return files_err(err, errno, "read the counters of", mem);
                return 0;
        }
        if (h->memory_v2) {
                /* One controller on each version (not a host we know of). */
                struct cgroup_stats v2;
                cgroup_read_v2_dir(mem, NULL, &v2);
                s = v2;
                s.cpu_ms = -1;
        } else {
                int64_t watermark = files ? pread_int(files->peak) : read_ctl_int(mem, "memory.max_usage_in_bytes");
                if (files && watermark < 0 && cgroup_gone(errno))
                        return err_set(err, ERR_NOT_FOUND, errno, "cgroup: `%s` is gone", mem);
                /* A reused cgroup's peak restarted from what it held then
                 * (page cache charged to the runs before): this run's is
                 * what it rose by. */
                s.peak_memory_bytes = watermark;
                if (base && watermark >= 0)
                        s.peak_memory_bytes = watermark > base->memory_bytes ? watermark - base->memory_bytes : 0;
                /* `oom_kill N` is in memory.oom_control since Linux 4.13.
                 * Without it, failcnt only says the limit was reached, which
                 * reclaim may have survived: that is limit_hit, not an OOM
                 * kill.  With memory+swap limited too, neither failcnt
                 * need move (seen on 6.18), so a peak at the limit counts.
                 * A reused cgroup has no limit and no process of its own:
                 * nothing to read there. */
                if (!base) {
                        int64_t kills = read_ctl_key(mem, "memory.oom_control", "oom_kill");
                        s.oom_killed = kills > 0;
                        s.oom_known = !leaf && kills >= 0;   /* counted where the process was */
                        int64_t limit = read_ctl_int(mem, "memory.limit_in_bytes");
                        s.limit_hit = read_ctl_int(mem, "memory.failcnt") > 0 ||
                                      read_ctl_int(mem, "memory.memsw.failcnt") > 0 ||
                                      (limit > 0 && watermark >= limit);
                }
                /* The limit and the counters of an OOM are the container's,
                 * not hierarchical on v1: read them while it is there, else
                 * a peak at its limit says it was reached. */
                if (leaf) {
                        _cleanup_free_ char *lmem = xasprintf("%s%s", h->memory, leaf);
                        int64_t kills = read_ctl_key(lmem, "memory.oom_control", "oom_kill");
                        s.oom_known = kills >= 0;
                        /* Gone (the runtime deleted it): the rest is too. */
                        if (kills >= 0) {
                                s.oom_killed = s.oom_killed || kills > 0;
                                s.limit_hit = s.limit_hit || read_ctl_int(lmem, "memory.failcnt") > 0 ||
                                              read_ctl_int(lmem, "memory.memsw.failcnt") > 0;
                        }
                }
                /* A reused cgroup's base shrinks while the run goes on
                 * (kernel memory of the runs before freed late, after RCU;
                 * their page cache reclaimed): what it rose by can fall
                 * short of a limit the container did reach, by up to that
                 * much, which cgroup_settle keeps small. */
                int64_t slack = base ? base->memory_bytes : 0;
                if (slack > CGROUP_REUSE_MAX_BYTES)
                        slack = CGROUP_REUSE_MAX_BYTES;
                if (memory_limit_bytes > 0 && s.peak_memory_bytes >= memory_limit_bytes - slack)
                        s.limit_hit = true;
        }
        if (h->cpu_v2) {
                int64_t us = read_ctl_key(cpu, "cpu.stat", "usage_usec");
                s.cpu_ms = us < 0 ? -1 : us / 1000;
        } else {
                int64_t ns = files ? pread_int(files->cpu) : read_ctl_int(cpu, "cpuacct.usage");
                if (base && ns >= 0)
                        ns = ns > base->cpu_ns ? ns - base->cpu_ns : 0;
                s.cpu_ms = ns < 0 ? -1 : ns / 1000000;
        }
        *ret = s;
        return 0;
}

int cgroup_make(const char *path, struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        const struct hierarchies *h = hierarchies();
        const char *slash = strrchr(path, '/');
        for (size_t i = 0; i < h->n_roots; i++) {
                char p[PATH_MAX];
                /* Its parent too, as the runtime's mkdir -p would. */
                snprintf(p, sizeof p, "%s%.*s", h->roots[i], (int)(slash - path), path);
                if (slash != path && mkdir_p(p, 0755, err) < 0)
                        return err_wrap(err, "cgroup");
                snprintf(p, sizeof p, "%s%s", h->roots[i], path);
                if (mkdir(p, 0755) == 0)
                        continue;
                if (errno == EEXIST)
                        return err_set(err, ERR_CONFLICT, EEXIST, "cgroup: create `%s`: already there", p);
                return err_errno(err, ERR_IO, "cgroup: create `%s`", p);
        }
        return 0;
}

struct wanted_file {
        const char *root, *file;
        int flags;
        bool optional;   /* absent: left -1 */
        int *fd;
};

/* Open root + path + "/" + file for each of want into *ret: all or none. */
static int open_wanted(const char *path, const struct wanted_file *want, size_t n, struct cgroup_files *ret,
                       struct err *err)
{
        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX];
                if (snprintf(p, sizeof p, "%s%s/%s", want[i].root, path, want[i].file) >= (int)sizeof p) {
                        cgroup_files_close(ret);
                        return err_set(err, ERR_INVALID, ENAMETOOLONG, "cgroup: `%s`: path too long", path);
                }
                *want[i].fd = open(p, want[i].flags | O_CLOEXEC);
                if (*want[i].fd < 0 && !(want[i].optional && errno == ENOENT)) {
                        int e = errno;
                        cgroup_files_close(ret);
                        return files_err(err, e, "open", p);
                }
        }
        return 0;
}

int cgroup_files_open_v2_dir(const char *dir, struct cgroup_files *ret, struct err *err)
{
        *ret = CGROUP_FILES_NONE;
        const struct wanted_file want[] = {
                { dir, "memory.peak", O_RDONLY, true, &ret->peak },   /* Linux 5.19 */
                { dir, "memory.events", O_RDONLY, false, &ret->events },
                { dir, "cpu.stat", O_RDONLY, false, &ret->cpu },
                { dir, "cgroup.events", O_RDONLY, false, &ret->populated },
        };
        return open_wanted("", want, sizeof want / sizeof *want, ret, err);
}

int cgroup_files_open(const char *path, struct cgroup_files *ret, struct err *err)
{
        *ret = CGROUP_FILES_NONE;
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        const struct hierarchies *h = hierarchies();
        if (h->memory_v2 && h->cpu_v2) {
                _cleanup_free_ char *dir = xasprintf("%s%s", h->memory, path);
                return cgroup_files_open_v2_dir(dir, ret, err);
        }
        if (h->memory_v2 || h->cpu_v2)
                return err_set(err, ERR_INVALID, 0, "cgroup: `%s`: memory and cpu on two versions: no files kept", path);
        const struct wanted_file want[] = {
                { h->memory, "memory.max_usage_in_bytes", O_RDWR, false, &ret->peak },
                { h->memory, "memory.usage_in_bytes", O_RDONLY, false, &ret->usage },
                { h->cpu, "cpuacct.usage", O_RDONLY, false, &ret->cpu },
        };
        return open_wanted(path, want, sizeof want / sizeof *want, ret, err);
}

bool cgroup_files_kept(const struct cgroup_files *f)
{
        return f && (f->peak >= 0 || f->events >= 0);
}

/* The value of key in a kept flat keyed file: -1 with errno set when it
 * cannot be read or has no such key (EIO). */
static int64_t pread_key(int fd, const char *key)
{
        char text[4096];
        if (fd < 0) {
                errno = EBADF;
                return -1;
        }
        if (!pread_text(fd, text, sizeof text))
                return -1;
        int64_t v = key_value(text, key);
        if (v < 0)
                errno = EIO;
        return v;
}

int cgroup_files_untouched(const struct cgroup_files *f)
{
        int64_t populated = pread_key(f->populated, "populated");
        if (populated != 0)
                return populated > 0 ? 0 : -1;
        /* What ran and left: CPU time, on every v2 kernel; a memory peak
         * where the kernel keeps one (5.19). */
        int64_t us = pread_key(f->cpu, "usage_usec");
        if (us != 0)
                return us > 0 ? 0 : -1;
        if (f->peak < 0)
                return 1;
        int64_t peak = pread_int(f->peak);
        return peak < 0 ? -1 : peak == 0;
}

void cgroup_files_close(struct cgroup_files *f)
{
        int *fds[] = { &f->peak, &f->usage, &f->cpu, &f->events, &f->populated };
        for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
                if (*fds[i] >= 0)
                        close(*fds[i]);
        *f = CGROUP_FILES_NONE;
}

int64_t cgroup_files_usage(const struct cgroup_files *f)
{
        if (f->usage < 0) {
                errno = EBADF;
                return -1;
        }
        return pread_int(f->usage);
}

int cgroup_restart_counters(const char *path, const struct cgroup_files *files, struct cgroup_base *ret,
                            struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        *ret = (struct cgroup_base){ .files = files };
        /* Writing 0 sets the peak to the usage now (v1's reset). */
        ssize_t n = pwrite(files->peak, "0", 1, 0);
        if (n != 1)
                return files_err(err, n < 0 ? errno : EIO, "reset the peak of", path);
        ret->memory_bytes = pread_int(files->usage);
        ret->cpu_ns = ret->memory_bytes < 0 ? -1 : pread_int(files->cpu);
        if (ret->memory_bytes < 0 || ret->cpu_ns < 0)
                return files_err(err, errno, "read the usage of", path);
        return 0;
}

int cgroup_settle(const char *path, const struct cgroup_files *files, int64_t max_bytes, bool reclaim,
                  struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        /* Its own files or nothing: a directory made again at its name is
         * not the cgroup they were opened in. */
        int64_t held = pread_int(files->usage);
        if (held < 0)
                return files_err(err, errno, "read the usage of", path);
        if (held <= max_bytes)
                return 0;
        _cleanup_free_ char *mem = xasprintf("%s%s", hierarchies()->memory, path);
        /* Page cache (a plugin's files read for the first time since boot,
         * tmpfs pages) is not reclaimed: that evicted the files, which the
         * next run read again and charged to its slot again, for ever (10
         * ms more per job, and 2 ms of the daemon's CPU).  Removed, the
         * cgroup's charges go to its parent and the pages stay cached. */
        int64_t cache = read_ctl_key(mem, "memory.stat", "total_cache");
        if (cache != 0)
                return err_set(err, ERR_BUSY, 0, "cgroup `%s` holds %lld bytes, %lld of them page cache", path,
                               (long long)held, (long long)cache);
        if (!reclaim)
                return 1;
        /* Kernel memory of the runs before (dentries, inodes): v1's
         * reclaim of all it can from a cgroup without tasks. */
        int r = write_ctl(mem, "memory.force_empty", "0");
        if (r < 0)
                return err_set(err, r == -ENOENT ? ERR_NOT_FOUND : ERR_IO, -r, "cgroup: `%s/memory.force_empty`: %s",
                               mem, strerror(-r));
        held = pread_int(files->usage);
        if (held < 0)
                return files_err(err, errno, "read the usage of", path);
        if (held > max_bytes)
                return err_set(err, ERR_BUSY, 0, "cgroup `%s` still holds %lld bytes", path, (long long)held);
        return 0;
}

int cgroup_remove(const char *path, struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        const struct hierarchies *h = hierarchies();
        char failed[ERR_MSG_MAX] = "";
        size_t flen = 0;
        int first_errno = 0;
        for (size_t i = 0; i < h->n_roots; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s%s", h->roots[i], path);
                if (rmdir(p) == 0 || errno == ENOENT)
                        continue;
                if (!first_errno)
                        first_errno = errno;
                if (flen < sizeof failed)
                        flen += (size_t)snprintf(failed + flen, sizeof failed - flen, "%s`%s`",
                                                 flen ? ", " : "", p);
        }
        if (first_errno)
                return err_set(err, first_errno == EBUSY ? ERR_BUSY : ERR_IO, first_errno,
                               "cgroup: remove `%s`: %s", path, failed);
        return 0;
}

int cgroup_remove_ended(const char *path, struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        const struct hierarchies *h = hierarchies();
        if (!h->memory_v2 && h->memory[0]) {
                _cleanup_free_ char *p = xasprintf("%s%s", h->memory, path);
                if (rmdir(p) < 0 && errno == ENOENT)
                        return 0;
        }
        return cgroup_remove(path, err);
}

/* fn(name, ctx) for every directory right below path, in every hierarchy
 * (a name present in several comes once per hierarchy). */
static void each_child(const char *path, void (*fn)(const char *name, void *ctx), void *ctx)
{
        if (!path_ok(path))
                return;
        const struct hierarchies *h = hierarchies();
        for (size_t i = 0; i < h->n_roots; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s%s", h->roots[i], path);
                DIR *d = opendir(p);
                if (!d)
                        continue;
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                                fn(de->d_name, ctx);
                closedir(d);
        }
}

static void count_one(const char *name, void *ctx)
{
        (void)name;
        (*(int *)ctx)++;
}

int cgroup_count_children(const char *path)
{
        int n = 0;
        each_child(path, count_one, &n);
        return n;
}

static void add_once(const char *name, void *ctx)
{
        char ***names = ctx;
        for (size_t k = 0; *names && (*names)[k]; k++)
                if (!strcmp((*names)[k], name))
                        return;
        strv_push(names, name);
}

char **cgroup_list_children(const char *path)
{
        char **names = NULL;
        each_child(path, add_once, &names);
        return names;
}

int cgroup_sweep_children(const char *path, bool (*keep)(const char *name, void *ctx), void *ctx,
                          size_t *ret_removed, struct err *err)
{
        *ret_removed = 0;
        _cleanup_strv_ char **names = cgroup_list_children(path);
        int ret = 0;
        for (size_t i = 0; names && names[i]; i++) {
                if (keep(names[i], ctx))
                        continue;
                _cleanup_free_ char *child = xasprintf("%s/%s", path, names[i]);
                struct err e = ERR_INIT;
                if (cgroup_destroy(child, &e) == 0)
                        (*ret_removed)++;
                else if (ret == 0) {
                        *err = e;
                        ret = -1;
                }
        }
        return ret;
}

/* Is a cgroup of process pid (0: this one), in any hierarchy, at path or
 * below it?  The first such one is copied to found (may be NULL). */
static bool proc_in_cgroup(pid_t pid, const char *path, char *found, size_t len)
{
        char p[64];
        if (pid)
                snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
        else
                snprintf(p, sizeof p, "/proc/self/cgroup");
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return false;
        char line[PATH_MAX + 64];
        size_t pl = strlen(path);
        while (fgets(line, sizeof line, f)) {
                /* "ID:CONTROLLERS:/path" */
                char *c = strchr(line, ':');
                c = c ? strchr(c + 1, ':') : NULL;
                if (!c)
                        continue;
                c++;
                c[strcspn(c, "\n")] = '\0';
                if (!strncmp(c, path, pl) && (c[pl] == '\0' || c[pl] == '/')) {
                        if (found)
                                snprintf(found, len, "%s", c);
                        return true;
                }
        }
        return false;
}

/* SIGKILL every process listed in dir/cgroup.procs that is in rel. */
static int kill_members(const char *dir, const char *rel)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return 0;
        int n = 0;
        long pid;
        while (fscanf(f, "%ld", &pid) == 1) {
                int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
                if (fd < 0)
                        continue;
                if (proc_in_cgroup((pid_t)pid, rel, NULL, 0) && syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0)
                        n++;
                close(fd);
        }
        return n;
}

int cgroup_kill(const char *path)
{
        if (!path_ok(path))
                return 0;
        const struct hierarchies *h = hierarchies();
        int n = 0;
        for (size_t i = 0; i < h->n_roots; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s%s", h->roots[i], path);
                n += kill_members(p, path);
        }
        return n;
}

/* Kill and remove one hierarchy's copy of the cgroup, deepest first. */
static int destroy_in(const char *dir, const char *rel)
{
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        int ret = 0;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[PATH_MAX], subrel[PATH_MAX];
                snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
                snprintf(subrel, sizeof subrel, "%s/%s", rel, de->d_name);
                int r = destroy_in(sub, subrel);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        closedir(d);
        for (int tries = 0; tries < 50; tries++) {
                heartbeat_beat();   /* up to a second for each hierarchy */
                kill_members(dir, rel);
                if (rmdir(dir) == 0 || errno == ENOENT)
                        return ret;
                if (errno != EBUSY)
                        return -errno;
                struct timespec ts = { .tv_nsec = 20 * 1000000 };
                nanosleep(&ts, NULL);
        }
        return -EBUSY;
}

int cgroup_destroy(const char *path, struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        const struct hierarchies *h = hierarchies();
        int first = 0;
        for (size_t i = 0; i < h->n_roots; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s%s", h->roots[i], path);
                int r = destroy_in(p, path);
                if (r < 0 && !first)
                        first = -r;
        }
        if (first)
                return err_set(err, first == EBUSY ? ERR_BUSY : ERR_IO, first, "cgroup: destroy `%s`", path);
        return 0;
}

int cgroup_check_parent(const char *parent, struct err *err)
{
        if (!path_ok(parent))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", parent ? parent : "");
        char self[PATH_MAX];
        if (proc_in_cgroup(0, parent, self, sizeof self))
                return err_set(err, ERR_INVALID, 0, "cgroup_parent `%s` holds the daemon's own cgroup `%s`: "
                               "what edgecd finds left under it is killed", parent, self);
        return 0;
}

/* The memory hierarchy's copy of the parent is the directory we lock:
 * it exists on v1 (memory controller) and v2 (the unified tree) alike,
 * and every edgecd on this host resolves the same one. */
int cgroup_lock_parent(const char *parent, int *ret_fd, struct err *err)
{
        if (!path_ok(parent))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", parent ? parent : "");
        const struct hierarchies *h = hierarchies();
        _cleanup_free_ char *p = xasprintf("%s%s", h->memory, parent);
        if (mkdir_p(p, 0755, err) < 0)
                return err_wrap(err, "cgroup_parent");
        _cleanup_close_ int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return err_errno(err, ERR_IO, "cgroup_parent: open `%s`", p);
        int64_t since = 0;
        int r;
        do
                r = flock(fd, LOCK_EX | LOCK_NB);
        while (r < 0 && errno == EWOULDBLOCK && held_retry_wait(&since, HELD_GRACE_MS));
        if (r < 0) {
                if (errno == EWOULDBLOCK)
                        return err_set(err, ERR_CONFLICT, 0, "cgroup_parent %s is in use by another edgecd "
                                       "(`%s` is locked)", parent, p);
                return err_errno(err, ERR_IO, "cgroup_parent: lock `%s`", p);
        }
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* --- cgroup v2: the parent, its controllers, delegation ------------------ */

/* What a job's limits need in every cgroup above its container's. */
#define V2_CONTROLLERS "+memory +pids +cpu"
/* The daemon's own leaf inside a cgroup delegated to it. */
#define DAEMON_LEAF "daemon"

static bool has_word(const char *list, const char *word)
{
        size_t n = strlen(word);
        for (const char *p = list; (p = strstr(p, word)); p += n)
                if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
                        return true;
        return false;
}

/* memory, pids and cpu enabled for dir's children (rel names it). */
static int enable_controllers(const char *dir, const char *rel, struct err *err)
{
        int r = write_ctl(dir, "cgroup.subtree_control", V2_CONTROLLERS);
        if (r == 0)
                return 0;
        char have[512] = "";
        read_ctl(dir, "cgroup.controllers", have, sizeof have);
        have[strcspn(have, "\n")] = '\0';
        static const char *const need[] = { "memory", "pids", "cpu" };
        for (size_t i = 0; i < sizeof need / sizeof *need; i++)
                if (!has_word(have, need[i]))
                        return err_set(err, ERR_UNAVAILABLE, 0,
                                       "cgroup `%s`: the %s controller is not offered to it (cgroup.controllers: `%s`); "
                                       "jobs' limits need memory, pids and cpu", rel, need[i], have);
        if (r == -EBUSY)
                return err_set(err, ERR_BUSY, EBUSY,
                               "cgroup `%s`: cannot enable memory, pids, cpu for its children: it holds processes "
                               "(cgroup v2 allows none there)", rel);
        return err_set(err, ERR_IO, -r, "cgroup `%s`: write cgroup.subtree_control", rel);
}

/* A cgroup's mkdir failed (errno): why. */
static int mkdir_failed(const char *rel, struct err *err)
{
        /* EAGAIN here is cgroup v2's cgroup.max.descendants or max.depth:
         * often reached by the daemon's own run cgroups waiting for the
         * cleaner, so a shortage (errno kept) that passes, not the
         * algorithm's failure; said as what it is. */
        if (errno == EAGAIN)
                return err_set(err, ERR_UNAVAILABLE, EAGAIN, "cgroup: create `%s`: the subtree's "
                               "cgroup.max.descendants or cgroup.max.depth is reached", rel);
        return err_errno(err, ERR_IO, "cgroup: create `%s`", rel);
}

/* mkdir that finds an existing directory fine. */
static int make_dir(const char *dir, const char *rel, struct err *err)
{
        if (mkdir(dir, 0755) == 0 || errno == EEXIST)
                return 0;
        return mkdir_failed(rel, err);
}

/* systemd (251 and later) marks the cgroup of a Delegate=yes unit with
 * the xattr trusted.delegate=1, or user.delegate=1 where trusted xattrs
 * cannot be written (the two its own cg_is_delegated() reads). */
static bool is_delegated(const char *dir)
{
        static const char *const names[] = { "trusted.delegate", "user.delegate" };
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                char v[8];
                ssize_t n = getxattr(dir, names[i], v, sizeof v - 1);
                if (n > 0 && v[0] == '1')
                        return true;
        }
        return false;
}

bool cgroup_is_v2(void)
{
        return hierarchies()->v2;
}

int cgroup_setup_parent_at(const char *root, const char *self, pid_t pid, const char *configured, char **resolved,
                           struct err *err)
{
        *resolved = NULL;
        if (!path_ok(configured))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", configured ? configured : "");
        if (!self || self[0] != '/')
                return err_set(err, ERR_INVALID, 0, "cgroup: the daemon's own cgroup `%s` is not a path",
                               self ? self : "");
        /* base: the cgroup we may manage, "" for the root.  Delegated: our
         * own, or the one above our leaf (a restart that found us there). */
        _cleanup_free_ char *base = NULL;
        _cleanup_free_ char *own_dir = xasprintf("%s%s", root, strcmp(self, "/") ? self : "");
        size_t sl = strlen(self), ll = strlen("/" DAEMON_LEAF);
        bool in_leaf = sl > ll && !strcmp(self + sl - ll, "/" DAEMON_LEAF);
        if (strcmp(self, "/") && is_delegated(own_dir)) {
                base = xstrdup(self);
        } else if (in_leaf) {
                _cleanup_free_ char *up = xasprintf("%.*s", (int)(sl - ll), self);
                _cleanup_free_ char *up_dir = xasprintf("%s%s", root, up);
                if (*up && is_delegated(up_dir))
                        base = TAKE_PTR(up);
        }
        if (base) {
                if (!strcmp(configured, "/" DAEMON_LEAF) || !strncmp(configured, "/" DAEMON_LEAF "/", ll + 1))
                        return err_set(err, ERR_INVALID, 0, "cgroup_parent `%s` is the daemon's own leaf `%s/"
                                       DAEMON_LEAF "` in its delegated cgroup", configured, base);
                _cleanup_free_ char *leaf = xasprintf("%s/" DAEMON_LEAF, base);
                _cleanup_free_ char *leaf_dir = xasprintf("%s%s", root, leaf);
                if (make_dir(leaf_dir, leaf, err) < 0)
                        return -1;
                if (strcmp(self, leaf)) {
                        char num[32];
                        snprintf(num, sizeof num, "%d", (int)pid);
                        int r = write_ctl(leaf_dir, "cgroup.procs", num);
                        if (r < 0)
                                return err_set(err, ERR_IO, -r, "cgroup: move the daemon into `%s`", leaf);
                }
        }
        /* Enable from the top of what is ours down to the parent itself,
         * creating what is missing. */
        const char *top = base ? base : "";
        _cleanup_free_ char *rel = xasprintf("%s%s", top, configured);
        /* Leftovers under the parent are killed: the daemon must not be
         * there (and a cgroup holding it could not enable controllers). */
        size_t rl = strlen(rel);
        if (!strncmp(self, rel, rl) && (self[rl] == '\0' || self[rl] == '/'))
                return err_set(err, ERR_INVALID, 0, "cgroup_parent `%s` holds the daemon's own cgroup `%s`: "
                               "what edgecd finds left under it is killed", rel, self);
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s%s", root, top) >= (int)sizeof dir)
                return err_set(err, ERR_INVALID, 0, "cgroup: `%s` is too long", rel);
        size_t dl = strlen(dir);
        if (enable_controllers(dir, *top ? top : "/", err) < 0)
                return err_wrap(err, "cgroup_parent `%s`", rel);
        for (const char *p = configured; *p;) {
                size_t n = strcspn(p + 1, "/") + 1;   /* "/name" */
                if (dl + n >= sizeof dir)
                        return err_set(err, ERR_INVALID, 0, "cgroup: `%s` is too long", rel);
                memcpy(dir + dl, p, n);
                dir[dl += n] = '\0';
                p += n;
                if (n == 1)     /* "//" or a trailing '/' */
                        continue;
                if (make_dir(dir, dir + strlen(root), err) < 0 ||
                    enable_controllers(dir, dir + strlen(root), err) < 0)
                        return err_wrap(err, "cgroup_parent `%s`", rel);
        }
        *resolved = TAKE_PTR(rel);
        return 0;
}

/* The daemon's cgroup on the unified hierarchy ("0::/path"). */
static char *self_cgroup_v2(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return NULL;
        char line[PATH_MAX + 8];
        while (fgets(line, sizeof line, f)) {
                if (strncmp(line, "0::", 3))
                        continue;
                line[strcspn(line, "\n")] = '\0';
                return xstrdup(line + 3);
        }
        return NULL;
}

int cgroup_setup_parent(const char *configured, char **resolved, struct err *err)
{
        const struct hierarchies *h = hierarchies();
        *resolved = NULL;
        if (!h->v2) {
                if (!path_ok(configured))
                        return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`",
                                       configured ? configured : "");
                *resolved = xstrdup(configured);
                return 0;
        }
        _cleanup_free_ char *self = self_cgroup_v2();
        if (!self)
                return err_set(err, ERR_IO, 0, "cgroup: no cgroup v2 line in /proc/self/cgroup");
        return cgroup_setup_parent_at(CGROUP_ROOT, self, getpid(), configured, resolved, err);
}

int cgroup_make_run(const char *path, struct err *err)
{
        if (!path_ok(path))
                return err_set(err, ERR_INVALID, 0, "cgroup: bad cgroup path `%s`", path ? path : "");
        if (!hierarchies()->v2)
                return cgroup_make(path, err);
        _cleanup_free_ char *dir = xasprintf(CGROUP_ROOT "%s", path);
        /* New, never one found there: a leftover could hold a process or
         * the peak of a run before (the collector removes it). */
        if (mkdir(dir, 0755) < 0) {
                if (errno == EEXIST)
                        return err_set(err, ERR_CONFLICT, EEXIST, "cgroup: create `%s`: already there", path);
                return mkdir_failed(path, err);
        }
        if (enable_controllers(dir, path, err) < 0) {
                rmdir(dir);
                return -1;
        }
        return 0;
}
