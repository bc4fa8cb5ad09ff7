/* plugin.c - testkit's input, output and error reporting (see plugin.h).
 * Owns the program name used in messages.
 * Single-threaded; no function here returns an error: a plugin has nothing
 * useful to do after its input or output failed, so they exit with the
 * documented status and a one-line message. */
#include "plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *program = "plugin";

void plugin_init(const char *name)
{
        program = name;
}

const char *plugin_input_path(void)
{
        const char *p = getenv("EDGECD_INPUT");
        return p && *p ? p : "/input/input.json";
}

const char *plugin_output_dir(void)
{
        const char *p = getenv("EDGECD_OUTPUT");
        return p && *p ? p : "/output";
}

_Noreturn void plugin_die(int status, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        int n = snprintf(msg, sizeof(msg), "%s: ", program);
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        strcat(msg, "\n");
        /* One write, so the line reaches a pipe in one piece (musl's
         * dprintf would write it in fragments). */
        ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
        (void)r;
        exit(status);
}

void *xmalloc(size_t size)
{
        void *p = malloc(size ? size : 1);
        if (!p)
                plugin_die(EXIT_INTERNAL, "out of memory (%zu bytes)", size);
        return p;
}

void *xcalloc(size_t n, size_t size)
{
        if (size && n > SIZE_MAX / size)
                plugin_die(EXIT_INTERNAL, "out of memory (%zu x %zu bytes)", n, size);
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                plugin_die(EXIT_INTERNAL, "out of memory (%zu x %zu bytes)", n, size);
        return p;
}

char *plugin_read_file(const char *path, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                plugin_die(EXIT_INTERNAL, "read %s: %s", path, strerror(errno));

        /* The size is only a hint (the file could change); read to EOF. */
        struct stat st;
        size_t cap = 4096;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            (uint64_t)st.st_size < PLUGIN_MAX_INPUT)
                cap = (size_t)st.st_size + 1;
        char *buf = xmalloc(cap);
        size_t n = 0;
        for (;;) {
                if (n + 1 >= cap) {
                        if (cap > PLUGIN_MAX_INPUT)
                                plugin_die(EXIT_BAD_INPUT, "read %s: larger than %zu bytes",
                                           path, PLUGIN_MAX_INPUT);
                        cap *= 2;
                        char *q = realloc(buf, cap);
                        if (!q)
                                plugin_die(EXIT_INTERNAL, "read %s: out of memory", path);
                        buf = q;
                }
                ssize_t r = read(fd, buf + n, cap - n - 1);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        plugin_die(EXIT_INTERNAL, "read %s: %s", path, strerror(errno));
                }
                if (r == 0)
                        break;
                n += (size_t)r;
        }
        close(fd);
        buf[n] = '\0';
        *ret_len = n;
        return buf;
}

void plugin_read_params(struct json_value *ret)
{
        const char *path = plugin_input_path();
        size_t len;
        char *buf = plugin_read_file(path, &len);
        struct json_error jerr;
        struct json_value v;

        if (json_parse(buf, len, &v, &jerr) < 0)
                plugin_die(EXIT_BAD_INPUT, "%s: %s", path, jerr.text);
        free(buf);
        if (v.type != JSON_OBJECT)
                plugin_die(EXIT_BAD_INPUT, "%s: parameters must be a JSON object, got %s",
                           path, json_type_name(v.type));
        *ret = v;
}

const char *errno_name(int errnum)
{
        static const struct { int num; const char *name; } names[] = {
#define E(x) { x, #x }
                E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
                E(ENOEXEC), E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES),
                E(EFAULT), E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR),
                E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ETXTBSY), E(EFBIG),
                E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK), E(EPIPE), E(ERANGE),
                E(ENAMETOOLONG), E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(EOPNOTSUPP),
                E(EDQUOT), E(ENOTSUP),
#undef E
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (names[i].num == errnum)
                        return names[i].name;
        return NULL;
}

/* ---- result file ---- */

__attribute__((format(printf, 2, 3)))
static _Noreturn void out_fail(struct out *o, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        int saved = errno;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (o->fd >= 0)
                close(o->fd);
        o->fd = -1;
        /* Free the space a partial file holds; the daemon reports the exit
         * status, not a half-written file. */
        if (o->tmp_path)
                unlink(o->tmp_path);
        plugin_die(EXIT_OUTPUT, "%s: %s", msg, strerror(saved));
}

static char *join(const char *dir, const char *name)
{
        size_t a = strlen(dir), b = strlen(name);
        char *s = xmalloc(a + b + 2);
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b + 1);
        return s;
}

void out_open(struct out *o, const char *dir, const char *name)
{
        o->n = 0;
        o->fd = -1;
        o->path = join(dir, name);
        size_t l = strlen(o->path);
        o->tmp_path = xmalloc(l + 5);
        memcpy(o->tmp_path, o->path, l);
        memcpy(o->tmp_path + l, ".tmp", 5);

        /* O_NOFOLLOW: never write through a link someone left in /output. */
        o->fd = open(o->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (o->fd < 0) {
                char *p = o->tmp_path;
                o->tmp_path = NULL;   /* not ours to unlink */
                out_fail(o, "write %s", p);
        }
}

static void flush(struct out *o)
{
        size_t off = 0;
        while (off < o->n) {
                ssize_t r = write(o->fd, o->buf + off, o->n - off);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        out_fail(o, "write %s", o->tmp_path);
                }
                if (r == 0) {
                        errno = EIO;
                        out_fail(o, "write %s", o->tmp_path);
                }
                off += (size_t)r;
        }
        o->n = 0;
}

void out_write(struct out *o, const void *p, size_t n)
{
        const char *s = p;
        while (n > 0) {
                if (o->n == sizeof(o->buf))
                        flush(o);
                size_t k = sizeof(o->buf) - o->n;
                if (k > n)
                        k = n;
                memcpy(o->buf + o->n, s, k);
                o->n += k;
                s += k;
                n -= k;
        }
}

void out_puts(struct out *o, const char *s)
{
        out_write(o, s, strlen(s));
}

void out_commit(struct out *o)
{
        flush(o);
        int fd = o->fd;
        o->fd = -1;
        /* close() reports late write errors (NFS, quotas); check it. */
        if (close(fd) < 0)
                out_fail(o, "write %s", o->tmp_path);
        if (rename(o->tmp_path, o->path) < 0)
                out_fail(o, "rename %s", o->tmp_path);
        free(o->tmp_path);
        free(o->path);
        o->tmp_path = o->path = NULL;
}

void out_open_result(struct out *o)
{
        out_open(o, plugin_output_dir(), "result.json");
}
