/* util.c - helpers shared by every module (see util.h). */
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <signal.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <uuid/uuid.h>

/* Past its memory limit the daemon cannot go on in any state worth
 * keeping (systemd restarts it, the next start sweeps what is left), but
 * it says why: a bare SIGABRT in the journal told nothing.  No allocation
 * here, nor in anything it calls. */
static _Noreturn void out_of_memory(size_t n)
{
        char line[128];
        int len = n ? snprintf(line, sizeof line, "edgecd: out of memory (allocating %zu bytes); aborting\n", n)
                    : snprintf(line, sizeof line, "edgecd: out of memory; aborting\n");
        if (len > 0 && write(STDERR_FILENO, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1) < 0) {
                /* nowhere else to say it */
        }
        abort();
}

void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                out_of_memory(n);
        return p;
}

void *xcalloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                out_of_memory(size && n > SIZE_MAX / size ? SIZE_MAX : n * size);
        return p;
}

void *xrealloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);
        if (!q)
                out_of_memory(n);
        return q;
}

char *xmemdup0(const void *p, size_t len)
{
        if (!p)
                return NULL;
        char *d = xmalloc(len + 1);
        memcpy(d, p, len);
        d[len] = '\0';
        return d;
}

char *xstrdup(const char *s)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                out_of_memory(strlen(s) + 1);
        return d;
}

char *xvasprintf(const char *fmt, va_list ap)
{
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                out_of_memory(0);
        return s;
}

char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = xvasprintf(fmt, ap);
        va_end(ap);
        return s;
}

void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

size_t strv_len(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

char **strv_dup(char *const *v)
{
        if (!v)
                return NULL;
        size_t n = strv_len(v);
        char **d = xcalloc(n + 1, sizeof *d);
        for (size_t i = 0; i < n; i++)
                d[i] = xstrdup(v[i]);
        return d;
}

void strv_push(char ***v, const char *s)
{
        size_t n = strv_len(*v);
        *v = xrealloc(*v, (n + 2) * sizeof **v);
        (*v)[n] = xstrdup(s);
        (*v)[n + 1] = NULL;
}

static int64_t clock_ms(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

int64_t now_mono_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec timespec_in(int clock, int64_t ms)
{
        struct timespec ts;
        clock_gettime((clockid_t)clock, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}
/* Wall-clock steps.  A label (now_real_ms()) is taken at an offset, wall
 * less monotonic time; a step (NTP at boot on a box without an RTC) moves
 * it by hours or years.  The offsets labels were taken at lately are kept,
 * each with when the last label at it could have been taken, so that the
 * age of a label can be told from below whatever steps came between
 * (wall_cutoff_ms()).  Slewing moves the offset by far less than
 * WALL_STEP_MS between steps. */
#define WALL_STEP_MS 1000
#define WALL_FRAMES 16

static pthread_mutex_t wall_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t wall_off = INT64_MIN;            /* the current offset (INT64_MIN: none yet) */
static struct wall_frame {
        int64_t off;                            /* an offset labels were taken at before */
        int64_t until_mono;                     /* ...until then at the latest */
} wall_frames[WALL_FRAMES];
static size_t wall_nframes;

static bool wall_stepped(int64_t off, int64_t from)
{
        return off - from > WALL_STEP_MS || from - off > WALL_STEP_MS;
}

/* Note the offset real - mono (under wall_lock). */
static void wall_note(int64_t real, int64_t mono)
{
        int64_t off = real - mono;
        if (wall_off != INT64_MIN && !wall_stepped(off, wall_off))
                return;
        if (wall_off != INT64_MIN) {
                if (wall_nframes == WALL_FRAMES) {
                        /* Two merged: the lower offset and the later end
                         * make no label look older than it is. */
                        struct wall_frame *a = &wall_frames[0], *b = &wall_frames[1];
                        b->off = a->off < b->off ? a->off : b->off;
                        b->until_mono = a->until_mono > b->until_mono ? a->until_mono : b->until_mono;
                        memmove(a, b, (WALL_FRAMES - 1) * sizeof *a);
                        wall_nframes--;
                }
                wall_frames[wall_nframes++] = (struct wall_frame){ .off = wall_off, .until_mono = mono };
        }
        __atomic_store_n(&wall_off, off, __ATOMIC_RELAXED);
}

int64_t now_real_ms(void)
{
        int64_t real = clock_ms(CLOCK_REALTIME), mono = clock_ms(CLOCK_MONOTONIC);
        int64_t off = real - mono;
        /* The lock only when the offset moved (a step, or the first label). */
        int64_t seen = __atomic_load_n(&wall_off, __ATOMIC_RELAXED);
        if (seen == INT64_MIN || wall_stepped(off, seen)) {
                pthread_mutex_lock(&wall_lock);
                wall_note(real, mono);
                pthread_mutex_unlock(&wall_lock);
        }
        return real;
}

int64_t wall_cutoff_ms(int64_t age_ms)
{
        pthread_mutex_lock(&wall_lock);
        int64_t mono = clock_ms(CLOCK_MONOTONIC);
        wall_note(clock_ms(CLOCK_REALTIME), mono);
        int64_t low = wall_off;
        for (size_t i = 0; i < wall_nframes; i++)
                /* Every label taken at an offset left age_ms ago is that
                 * old: its offset no longer counts. */
                if (mono - wall_frames[i].until_mono < age_ms && wall_frames[i].off < low)
                        low = wall_frames[i].off;
        pthread_mutex_unlock(&wall_lock);
        return mono + low - age_ms;
}

int64_t wall_wait_ms(int64_t due_ms, int64_t bound_ms)
{
        pthread_mutex_lock(&wall_lock);
        int64_t mono = clock_ms(CLOCK_MONOTONIC);
        wall_note(clock_ms(CLOCK_REALTIME), mono);
        int64_t wait = INT64_MIN;
        for (size_t i = 0; i <= wall_nframes; i++) {
                /* Labels made at an offset left bound_ms ago are all due. */
                if (i < wall_nframes && mono - wall_frames[i].until_mono >= bound_ms)
                        continue;
                int64_t w = due_ms - mono - (i < wall_nframes ? wall_frames[i].off : wall_off);
                /* A step under WALL_STEP_MS is not noted: a label made
                 * bound_ms ahead may read that much further. */
                if (w <= bound_ms + WALL_STEP_MS && w > wait)
                        wait = w < bound_ms ? w : bound_ms;
        }
        pthread_mutex_unlock(&wall_lock);
        return wait == INT64_MIN ? 0 : wait;
}

/* n as `width` decimal digits at p (0 <= n < 10^width). */
static char *put_digits(char *p, int n, int width)
{
        for (int i = width - 1; i >= 0; i--, n /= 10)
                p[i] = (char)('0' + n % 10);
        return p + width;
}

void format_rfc3339(int64_t real_ms, char *buf, size_t len)
{
        /* Floored: a millisecond before 1970 is 1969-12-31T23:59:59.999Z. */
        int ms = (int)(real_ms % 1000);
        time_t secs = (time_t)(real_ms / 1000);
        if (ms < 0) {
                ms += 1000;
                secs--;
        }
        struct tm tm;
        gmtime_r(&secs, &tm);
        int year = tm.tm_year + 1900;
        char text[sizeof "YYYY-MM-DDTHH:MM:SS.mmmZ"];
        if (year < 0 || year > 9999) {
                /* RFC 3339 has four digits of year: a time outside them (a
                 * damaged record) is shown at the nearer end. */
                memcpy(text, year < 0 ? "0000-01-01T00:00:00.000Z" : "9999-12-31T23:59:59.999Z", sizeof text);
        } else {
                /* By hand: strftime() and snprintf() for each of the dozen
                 * times a job's records and log lines show were worth
                 * saving. */
                char *p = put_digits(text, year, 4);
                *p++ = '-';
                p = put_digits(p, tm.tm_mon + 1, 2);
                *p++ = '-';
                p = put_digits(p, tm.tm_mday, 2);
                *p++ = 'T';
                p = put_digits(p, tm.tm_hour, 2);
                *p++ = ':';
                p = put_digits(p, tm.tm_min, 2);
                *p++ = ':';
                p = put_digits(p, tm.tm_sec, 2);
                *p++ = '.';
                p = put_digits(p, ms, 3);
                *p++ = 'Z';
                *p = '\0';
        }
        if (!len)
                return;
        size_t n = sizeof text - 1 < len - 1 ? sizeof text - 1 : len - 1;   /* a short buffer: cut */
        memcpy(buf, text, n);
        buf[n] = '\0';
}

int mkdir_p(const char *path, unsigned mode, struct err *err)
{
        char buf[PATH_MAX];
        if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
                return err_set(err, ERR_INVALID, 0, "path too long: `%s`", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return err_errno(err, ERR_IO, "mkdir `%s`", buf);
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return err_errno(err, ERR_IO, "mkdir `%s`", buf);
        return 0;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev, struct err *err)
{
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : err_errno(err, ERR_IO, "stat `%s`", name);
        if (!S_ISDIR(st.st_mode)) {
                if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                        return err_errno(err, ERR_IO, "unlink `%s`", name);
                return 0;
        }
        if (st.st_dev != dev)
                return err_set(err, ERR_IO, EXDEV, "refusing to remove `%s` on another mount", name);
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return err_errno(err, ERR_IO, "open `%s`", name);
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return err_errno(err, ERR_IO, "opendir `%s`", name);
        }
        int ret = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (rm_rf_at(fd, de->d_name, dev, err) < 0) {
                        ret = -1;
                        break;
                }
        }
        closedir(d);
        if (ret < 0)
                return err_wrap(err, "%s", name);
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return err_errno(err, ERR_IO, "rmdir `%s`", name);
        return 0;
}

static mode_t umask_value = 0777;   /* unknown: assume every bit narrowed */
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;

ssize_t read_full(int fd, void *buf, size_t size)
{
        size_t got = 0;
        while (got < size) {
                ssize_t n = read(fd, (char *)buf + got, size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -1;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* /proc/self/status has it (Linux 4.7+); umask(2) would have to set it to
 * read it, a race with threads creating files. */
static void umask_read(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[128];
        unsigned v;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "Umask: %o", &v) == 1) {
                        umask_value = (mode_t)(v & 0777);
                        break;
                }
}

bool umask_narrows(unsigned mode)
{
        pthread_once(&umask_once, umask_read);
        return (mode & umask_value) != 0;
}

int lock_file(const char *path, int *ret_fd, struct err *err)
{
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return err_errno(err, ERR_IO, "open %s", path);
        struct flock whole = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        if (fcntl(fd, F_SETLK, &whole) < 0) {
                if (errno == EAGAIN || errno == EACCES)
                        return err_set(err, ERR_CONFLICT, 0, "%s is locked", path);
                return err_errno(err, ERR_IO, "lock %s", path);
        }
        *ret_fd = fd;
        fd = -1;
        return 0;
}

bool held_retry_wait(int64_t *since, int64_t grace_ms)
{
        int saved = errno;
        int64_t now = now_mono_ms();
        if (!*since)
                *since = now;
        bool again = now - *since < grace_ms;
        if (again)
                sleep_ms(10);
        errno = saved;
        return again;
}

int rm_rf(const char *path, struct err *err)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : err_errno(err, ERR_IO, "stat `%s`", path);
        return rm_rf_at(AT_FDCWD, path, st.st_dev, err);
}

static int write_whole(const char *path, const void *data, size_t len, unsigned mode, bool sync,
                       struct err *err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return err_errno(err, ERR_IO, "open `%s`", path);
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_errno(err, ERR_IO, "write `%s`", path);
                }
                p += n;
                len -= (size_t)n;
        }
        if (sync && fsync(fd) < 0)
                return err_errno(err, ERR_IO, "fsync `%s`", path);
        return 0;
}

int write_file(const char *path, const void *data, size_t len, unsigned mode, struct err *err)
{
        return write_whole(path, data, len, mode, true, err);
}

int write_file_unsynced(const char *path, const void *data, size_t len, unsigned mode, struct err *err)
{
        return write_whole(path, data, len, mode, false, err);
}

char *real_dir_of(const char *path, struct err *err)
{
        _cleanup_free_ char *copy = xstrdup(path);
        char *slash = strrchr(copy, '/');
        const char *dir = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);
        char *real_dir = realpath(dir, NULL);
        if (!real_dir)
                err_errno(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "resolve the directory of `%s`", path);
        return real_dir;
}

bool path_is_below(const char *path, const char *dir)
{
        size_t n = strlen(dir);
        if (n == 1 && dir[0] == '/')
                n = 0;   /* every absolute path is below "/" */
        return !strncmp(path, dir, n) && path[n] == '/';
}

/* READ_BENEATH's check: the file open on fd, by the kernel's name for it,
 * is below real_dir (resolved before the open: resolved after, a link
 * swapped in for the directory meanwhile would move it to the file). */
static int check_beneath(int fd, const char *path, const char *real_dir, struct err *err)
{
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, real, sizeof real - 1);
        if (n < 0)
                return err_errno(err, ERR_IO, "resolve `%s`", path);
        real[n] = '\0';
        if (!path_is_below(real, real_dir))
                return err_set(err, ERR_INVALID, 0, "`%s` resolves to `%s`, outside its directory", path, real);
        return 0;
}

int read_file(const char *path, size_t max, unsigned flags, char **ret_data, size_t *ret_len,
              struct err *err)
{
        int nofollow = flags & READ_FOLLOW_LINKS ? 0 : O_NOFOLLOW;
        _cleanup_free_ char *real_dir = NULL;
        if ((flags & READ_BENEATH) && !(real_dir = real_dir_of(path, err)))
                return -1;
        /* O_NONBLOCK: a FIFO put where a file was expected must not hang
         * the open; it is refused as not regular below. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | nofollow);
        if (fd < 0)
                return err_errno(err, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "open `%s`", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return err_errno(err, ERR_IO, "stat `%s`", path);
        if (!S_ISREG(st.st_mode))
                return err_set(err, ERR_INVALID, 0, "`%s` is not a regular file", path);
        if (real_dir && check_beneath(fd, path, real_dir, err) < 0)
                return -1;
        bool prefix = flags & READ_PREFIX;
        if ((uint64_t)st.st_size > max && !prefix)
                return err_set(err, ERR_TOO_LARGE, 0, "`%s` is %lld bytes, over the limit of %zu",
                               path, (long long)st.st_size, max);
        /* Sized by the file, not the limit: a 1 GiB limit must not mean a
         * 1 GiB allocation for a small file.  Grows if the file does. */
        size_t cap = (uint64_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
        _cleanup_free_ char *buf = xmalloc(cap + 1);
        size_t got = 0;
        for (;;) {
                if (got == cap) {
                        cap = cap * 2 < max + 1 ? cap * 2 : max + 1;
                        buf = xrealloc(buf, cap + 1);
                }
                ssize_t n = read(fd, buf + got, cap - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_errno(err, ERR_IO, "read `%s`", path);
                }
                if (n == 0)
                        break;
                got += (size_t)n;
                if (got > max && !prefix)
                        return err_set(err, ERR_TOO_LARGE, 0, "`%s` grew over the limit of %zu bytes", path, max);
                if (got > max)
                        break;
        }
        bool cut = got > max;
        if (cut)
                got = max;
        buf[got] = '\0';
        if (ret_len)
                *ret_len = got;
        *ret_data = TAKE_PTR(buf);
        return cut ? 1 : 0;
}

char *read_file_tail(const char *path, size_t max)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return NULL;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return NULL;
        off_t start = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
        char *buf = xmalloc(max + 1);
        ssize_t n = pread(fd, buf, max, start);
        if (n < 0)
                n = 0;
        buf[n] = '\0';
        return buf;
}

bool path_has_dotdot(const char *p)
{
        for (const char *s = p; (s = strstr(s, "..")); s += 2) {
                bool start = s == p || s[-1] == '/';
                bool end = s[2] == '\0' || s[2] == '/';
                if (start && end)
                        return true;
        }
        return false;
}

bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
        /* Digits, with a minus before them or not: strtoll() would also
         * take leading space and a plus sign. */
        if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
                return false;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return false;
        *ret = v;
        return true;
}

json_t *json_string_lossy(const char *s)
{
        if (!s)
                return NULL;
        size_t len = strlen(s);
        if (utf8_valid(s, len, NULL))
                return json_string(s);
        char *out = xmalloc(3 * len + 1), *o = out;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_seq_len(s + i, len - i);
                if (n) {
                        memcpy(o, s + i, n);
                        o += n;
                        i += n;
                } else {
                        memcpy(o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        i++;
                }
        }
        *o = '\0';
        json_t *j = json_string(out);
        free(out);
        return j;
}

json_t *json_sprintf_lossy(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *text = NULL;
        if (vasprintf(&text, fmt, ap) < 0)
                out_of_memory(0);
        va_end(ap);
        json_t *j = json_string_lossy(text);
        free(text);
        return j;
}

size_t utf8_seq_len(const char *str, size_t left)
{
        const unsigned char *s = (const unsigned char *)str;
        if (left == 0)
                return 0;
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;   /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
                n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else {
                return 0;
        }
        if (left < n || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xBF)
                        return 0;
        return n;
}

bool utf8_valid(const char *s, size_t len, size_t *ret_bad)
{
        for (size_t i = 0; i < len;) {
                if ((unsigned char)s[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t n = utf8_seq_len(s + i, len - i);
                if (n == 0) {
                        if (ret_bad)
                                *ret_bad = i;
                        return false;
                }
                i += n;
        }
        return true;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
        if (len <= max)
                return len;
        size_t n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

void strv_join_append(char **acc, const char *s)
{
        char *n = *acc ? xasprintf("%s; %s", *acc, s) : xstrdup(s);
        free(*acc);
        *acc = n;
}

size_t release_code_pages(void)
{
        FILE *f = fopen("/proc/self/maps", "re");
        if (!f)
                return 0;
        size_t released = 0;
        char line[4096];
        while (fgets(line, sizeof line, f)) {
                unsigned long start, end;
                char perms[8];
                int path_at = 0;
                if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3)
                        continue;
                /* r-xp and backed by a file (not [vdso], not anonymous). */
                if (strcmp(perms, "r-xp") != 0 || path_at <= 0 || line[path_at] != '/')
                        continue;
                if (madvise((void *)start, end - start, MADV_DONTNEED) == 0)
                        released += (end - start) / 1024;
        }
        fclose(f);
        return released;
}

void cond_init_monotonic(pthread_cond_t *c)
{
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(c, &attr);
        pthread_condattr_destroy(&attr);
}

int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int e = pthread_create(t, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* Seen in top -H, perf and /proc/PID/task/TID/comm (15 bytes). */
        if (e == 0 && name) {
                char comm[16];
                snprintf(comm, sizeof comm, "%s", name);
                pthread_setname_np(*t, comm);
        }
        return e;
}

int open_unnamed(const char *dir)
{
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd;
        _cleanup_free_ char *path = xasprintf("%s/.unnamed-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
                unlink(path);
        return fd;
}

bool write_full(int fd, const void *p, size_t n)
{
        const char *c = p;
        while (n) {
                ssize_t w = write(fd, c, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        if (w == 0)
                                errno = EIO;
                        return false;
                }
                c += w;
                n -= (size_t)w;
        }
        return true;
}

bool ipv4_odd_spelling(const char *h, size_t len)
{
        /* A host name's whole length: inet_aton() takes any number of
         * leading zeros. */
        char buf[256];
        struct in_addr a;
        if (len == 0 || len >= sizeof buf)
                return false;
        memcpy(buf, h, len);
        buf[len] = '\0';
        /* inet_aton() takes octal, hex and fewer than four parts, as
         * getaddrinfo() and libcurl do; inet_pton() only a.b.c.d in
         * decimal without leading zeros. */
        return inet_aton(buf, &a) && inet_pton(AF_INET, buf, &a) != 1;
}

bool hostname_valid(const char *h, size_t len)
{
        if (len == 0 || len > 253 || ipv4_odd_spelling(h, len))
                return false;
        size_t label = 0;
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? h[i] : '.';
                if (c == '.') {
                        if (label == 0 || label > 63 || h[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-';
                if (!ok || (label == 0 && c == '-'))
                        return false;
                label++;
        }
        return true;
}

void uuid_random_text(char out[UUID_TEXT_SIZE])
{
        /* Straight from the kernel's generator: libuuid's
         * uuid_generate_random() reads the same bytes, then makes four more
         * system calls per id (it reseeds random() from getpid, getppid,
         * getuid and gettid every time) to mix in less.  It stays the
         * fallback while the kernel's pool is not ready. */
        uuid_t u;
        ssize_t n;
        do
                n = getrandom(u, sizeof u, GRND_NONBLOCK);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof u) {
                u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);   /* version 4 */
                u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
        } else {
                uuid_generate_random(u);
        }
        uuid_unparse_lower(u, out);
}

void sleep_ms(int64_t ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Undo the octal escapes (\040 space, \011 tab, \012 newline, \134
 * backslash) of a /proc/self/mountinfo path, in place. */
static void unescape_mount_path(char *s)
{
        char *w = s;
        for (char *r = s; *r; r++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
                    r[3] >= '0' && r[3] <= '7') {
                        *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                        r += 3;
                } else {
                        *w++ = *r;
                }
        }
        *w = '\0';
}

/* The mount point of a /proc/self/mountinfo line ("36 35 98:0 /mnt1 /mnt2
 * rw,noatime ... - tmpfs SOURCE ...": field 5), unescaped in place; NULL
 * for a line without one.  The line is cut there; *rest (if rest) is what
 * follows it (the options, the optional fields, ...). */
char *mountinfo_point(char *line, char **rest)
{
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 1; tok && i < 5; i++)
                tok = strtok_r(NULL, " ", &save);
        if (tok)
                unescape_mount_path(tok);
        if (rest)
                *rest = tok ? save : NULL;
        return tok;
}
