/* plugin.c - input, output and error reporting shared by the example
 * plugins (see plugin.h).  Owns the program name used in messages and the
 * progress file's writer.  No function here returns an error: a plugin has
 * nothing useful to do after its input or output failed, so they exit with
 * the documented status and a one-line message. */
#include "plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
        /* One line: a newline inside (from jansson's text) would split it. */
        for (char *p = msg; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        strcat(msg, "\n");
        /* One write, so the line reaches a pipe in one piece. */
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

double plugin_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- parameters ---- */

/* jansson asks for 1 KiB at a time; a read(2) each would be 200,000
 * system calls for a large input, so reads go through a buffer of ours. */
struct reader {
        int fd;
        size_t total;
        int err;                  /* errno of a failed read */
        bool too_big;
        size_t pos, len;
        char buf[1 << 20];
};

static size_t read_cb(void *dst, size_t want, void *arg)
{
        struct reader *r = arg;
        if (r->pos == r->len) {
                ssize_t n;
                do
                        n = read(r->fd, r->buf, sizeof(r->buf));
                while (n < 0 && errno == EINTR);
                if (n < 0) {
                        r->err = errno;
                        return (size_t)-1;
                }
                r->total += (size_t)n;
                if (r->total > PLUGIN_MAX_INPUT) {
                        r->too_big = true;
                        return (size_t)-1;
                }
                r->pos = 0;
                r->len = (size_t)n;
                if (n == 0)
                        return 0;
        }
        size_t k = r->len - r->pos;
        if (k > want)
                k = want;
        memcpy(dst, r->buf + r->pos, k);
        r->pos += k;
        return k;
}

json_t *plugin_read_params(void)
{
        static struct reader r;
        const char *path = plugin_input_path();
        struct stat st;

        r.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r.fd < 0)
                plugin_die(EXIT_INTERNAL, "read %s: %s", path, strerror(errno));
        if (fstat(r.fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > PLUGIN_MAX_INPUT)
                plugin_die(EXIT_BAD_INPUT, "%s: larger than %zu bytes", path, PLUGIN_MAX_INPUT);

        json_error_t jerr;
        json_t *v = json_load_callback(read_cb, &r, JSON_REJECT_DUPLICATES, &jerr);
        if (r.err)
                plugin_die(EXIT_INTERNAL, "read %s: %s", path, strerror(r.err));
        if (r.too_big)
                plugin_die(EXIT_BAD_INPUT, "%s: larger than %zu bytes", path, PLUGIN_MAX_INPUT);
        close(r.fd);
        if (!v) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        plugin_die(EXIT_INTERNAL, "%s: out of memory while parsing", path);
                plugin_die(EXIT_BAD_INPUT, "%s: invalid JSON at line %d, column %d: %s",
                           path, jerr.line, jerr.column, jerr.text);
        }
        if (!json_is_object(v))
                plugin_die(EXIT_BAD_INPUT, "%s: parameters must be a JSON object, got %s",
                           path, json_kind(v));
        return v;
}

const char *json_kind(const json_t *v)
{
        if (!v)
                return "nothing";
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER:
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        case JSON_NULL: return "null";
        }
        return "unknown";
}

json_t *param_get(const json_t *params, const char *key, bool required)
{
        json_t *v = json_object_get(params, key);
        if (!v && required)
                plugin_die(EXIT_BAD_INPUT, "%s is missing", key);
        return v;
}

double param_number(const json_t *params, const char *key, double def, double min, double max)
{
        const json_t *v = param_get(params, key, false);
        if (!v)
                return def;
        if (!json_is_number(v))
                plugin_die(EXIT_BAD_INPUT, "%s must be a number, got %s", key, json_kind(v));
        double d = json_number_value(v);
        if (!(d >= min && d <= max))
                plugin_die(EXIT_BAD_INPUT, "%s is %.17g, must be within %.17g..%.17g", key, d, min, max);
        return d;
}

size_t param_choice(const json_t *params, const char *key, const char *def,
                    const char *const choices[])
{
        const json_t *v = param_get(params, key, false);
        const char *s = def;
        if (v && !json_is_string(v))
                plugin_die(EXIT_BAD_INPUT, "%s must be a string, got %s", key, json_kind(v));
        if (v)
                s = json_string_value(v);
        char list[256] = "";
        for (size_t i = 0; choices[i]; i++) {
                if (!strcmp(s, choices[i]))
                        return i;
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         i ? ", " : "", choices[i]);
        }
        plugin_die(EXIT_BAD_INPUT, "%s is `%.64s`, must be one of %s", key, s, list);
}

void param_grid(const json_t *params, const char *key, size_t max_side, bool want_int,
                struct grid *g)
{
        const json_t *v = param_get(params, key, true);
        if (!json_is_array(v))
                plugin_die(EXIT_BAD_INPUT, "%s must be an array of rows, got %s", key, json_kind(v));
        size_t rows = json_array_size(v);
        if (rows == 0)
                plugin_die(EXIT_BAD_INPUT, "%s is empty (it needs at least one row)", key);
        if (rows > max_side)
                plugin_die(EXIT_BAD_INPUT, "%s has %zu rows, at most %zu allowed", key, rows, max_side);
        size_t cols = 0;
        bool all_int = true;
        for (size_t r = 0; r < rows; r++) {
                const json_t *row = json_array_get(v, r);
                if (!json_is_array(row))
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu must be an array of numbers, got %s",
                                   key, r, json_kind(row));
                size_t n = json_array_size(row);
                if (n == 0)
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu is empty", key, r);
                if (r == 0) {
                        cols = n;
                        if (cols > max_side)
                                plugin_die(EXIT_BAD_INPUT, "%s has %zu columns, at most %zu allowed",
                                           key, cols, max_side);
                } else if (n != cols) {
                        plugin_die(EXIT_BAD_INPUT, "%s row %zu has %zu entries, row 0 has %zu",
                                   key, r, n, cols);
                }
                for (size_t c = 0; c < n; c++) {
                        const json_t *e = json_array_get(row, c);
                        if (!json_is_number(e))
                                plugin_die(EXIT_BAD_INPUT, "%s[%zu][%zu] must be a number, got %s",
                                           key, r, c, json_kind(e));
                        all_int = all_int && json_is_integer(e);
                }
        }

        /* rows, cols <= max_side, so rows * cols cannot overflow. */
        g->rows = rows;
        g->cols = cols;
        g->all_int = want_int && all_int;
        g->d = xcalloc(rows * cols, sizeof(*g->d));
        g->i = g->all_int ? xcalloc(rows * cols, sizeof(*g->i)) : NULL;
        for (size_t r = 0; r < rows; r++) {
                const json_t *row = json_array_get(v, r);
                for (size_t c = 0; c < cols; c++) {
                        const json_t *e = json_array_get(row, c);
                        g->d[r * cols + c] = json_number_value(e);
                        if (g->i)
                                g->i[r * cols + c] = json_integer_value(e);
                }
        }
}

void grid_done(struct grid *g)
{
        free(g->d);
        free(g->i);
        g->d = NULL;
        g->i = NULL;
}

/* ---- output ---- */

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

static char *join(const char *dir, const char *name, const char *suffix)
{
        size_t a = strlen(dir), b = strlen(name), c = strlen(suffix);
        char *s = xmalloc(a + b + c + 2);
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b);
        memcpy(s + a + 1 + b, suffix, c + 1);
        return s;
}

void out_open(struct out *o, const char *dir, const char *name)
{
        o->n = 0;
        o->fd = -1;
        o->comma = false;
        o->path = join(dir, name, "");
        o->tmp_path = join(dir, name, ".tmp");

        /* O_NOFOLLOW: never write through a link someone left in /output. */
        o->fd = open(o->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (o->fd < 0) {
                char *p = o->tmp_path;
                o->tmp_path = NULL;   /* not ours to unlink */
                out_fail(o, "write %s", p);
        }
}

void out_open_result(struct out *o)
{
        out_open(o, plugin_output_dir(), "result.json");
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

static void out_putc(struct out *o, char c)
{
        if (o->n == sizeof(o->buf))
                flush(o);
        o->buf[o->n++] = c;
}

void out_commit(struct out *o)
{
        out_putc(o, '\n');
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

static void sep(struct out *o)
{
        if (o->comma)
                out_putc(o, ',');
}

void out_begin(struct out *o, char c)
{
        sep(o);
        out_putc(o, c);
        o->comma = false;
}

void out_end(struct out *o, char c)
{
        out_putc(o, c);
        o->comma = true;
}

void out_key(struct out *o, const char *key)
{
        out_string(o, key, strlen(key));
        out_putc(o, ':');
        o->comma = false;
}

/* Digits by hand: snprintf is most of the time of a large integer result. */
static void put_int(struct out *o, int64_t v)
{
        char tmp[24];
        char *p = tmp + sizeof(tmp);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do {
                *--p = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--p = '-';
        out_write(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

void out_int(struct out *o, int64_t v)
{
        sep(o);
        put_int(o, v);
        o->comma = true;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v. */
static void format_double(double v, char buf[static 32])
{
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, 32, "%.*g", prec, v);
                if (prec == 17 || strtod(buf, NULL) == v)
                        break;
        }
}

void out_double(struct out *o, double v)
{
        sep(o);
        o->comma = true;
        if (!isfinite(v)) {
                out_write(o, "null", 4);
                return;
        }
        /* Whole numbers below 2^53 are exact as integers ("-0" keeps its
         * sign through %g below). */
        if (v != 0 && fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
                put_int(o, (int64_t)v);
                return;
        }
        char buf[32];
        format_double(v, buf);
        out_write(o, buf, strlen(buf));
}

void out_real(struct out *o, double v)
{
        sep(o);
        o->comma = true;
        if (!isfinite(v)) {
                out_write(o, "null", 4);
                return;
        }
        char buf[40];
        format_double(v, buf);
        /* "2" would read back as an integer: make it "2.0". */
        if (!strpbrk(buf, ".eE"))
                strcat(buf, ".0");
        out_write(o, buf, strlen(buf));
}

void out_string(struct out *o, const char *s, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        sep(o);
        out_putc(o, '"');
        size_t run = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                out_write(o, s + run, i - run);
                run = i + 1;
                char esc[6] = { '\\', 0, 0, 0, 0, 0 };
                size_t n = 2;
                switch (c) {
                case '"': esc[1] = '"'; break;
                case '\\': esc[1] = '\\'; break;
                case '\n': esc[1] = 'n'; break;
                case '\r': esc[1] = 'r'; break;
                case '\t': esc[1] = 't'; break;
                case '\b': esc[1] = 'b'; break;
                case '\f': esc[1] = 'f'; break;
                default:
                        memcpy(esc + 1, "u00", 3);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 15];
                        n = 6;
                }
                out_write(o, esc, n);
        }
        out_write(o, s + run, len - run);
        out_putc(o, '"');
        o->comma = true;
}

static int dump_cb(const char *buf, size_t size, void *arg)
{
        out_write(arg, buf, size);
        return 0;
}

void out_json(struct out *o, const json_t *v)
{
        sep(o);
        if (json_dump_callback(v, dump_cb, o, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
                plugin_die(EXIT_INTERNAL, "cannot serialize a value (out of memory?)");
        o->comma = true;
}

void plugin_progress(double fraction, const char *fmt, ...)
{
        static struct out p;
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!(fraction >= 0))
                fraction = 0;
        if (fraction > 1)
                fraction = 1;
        out_open(&p, plugin_output_dir(), "progress.json");
        out_begin(&p, '{');
        out_key(&p, "fraction");
        out_double(&p, fraction);
        out_key(&p, "message");
        out_string(&p, msg, strlen(msg));
        out_end(&p, '}');
        out_commit(&p);
}
