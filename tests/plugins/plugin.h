/* plugin.h - testkit's input, output and error helpers, with json.h (its
 * own JSON reader and writer).  The example plugins moved to jansson and
 * plugins/common/plugin.h; testkit keeps these so the daemon's tests see
 * exactly the behaviour they were written against.
 *
 * What a plugin binary does around its algorithm:
 * find its input and output, read and parse the parameters, report a bad
 * input as one line on stderr with a fixed exit status, and write
 * result.json atomically with every write checked.
 *
 * The daemon mounts the parameters at /input/input.json and a writable
 * /output, and sets EDGECD_INPUT / EDGECD_OUTPUT to those same paths.  The
 * variables win when set, so a binary can be run by hand outside a
 * container.
 *
 * Exit statuses (the daemon reports any non-zero one as algorithm_failed
 * with the status and the stderr tail):
 *   1  internal or environment problem (input unreadable, out of memory)
 *   2  bad input (not JSON, wrong shape, values out of range)
 *   3  the result could not be written (ENOSPC and friends)
 *
 * Single-threaded. */
#ifndef PLUGIN_PLUGIN_H
#define PLUGIN_PLUGIN_H

#include <stddef.h>

#include "json.h"

#define EXIT_INTERNAL  1
#define EXIT_BAD_INPUT 2
#define EXIT_OUTPUT    3

/* Largest input file read (the daemon's request limit is far smaller). */
#define PLUGIN_MAX_INPUT ((size_t)256 << 20)

/* Name used as the prefix of every message ("matrix_multiplication: ..."). */
void plugin_init(const char *name);

const char *plugin_input_path(void);   /* $EDGECD_INPUT or /input/input.json */
const char *plugin_output_dir(void);   /* $EDGECD_OUTPUT or /output */

/* "NAME: MESSAGE\n" on stderr, then exit(status). */
_Noreturn void plugin_die(int status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Whole file into a NUL-terminated buffer (caller frees); dies with
 * EXIT_INTERNAL when it cannot be read, EXIT_BAD_INPUT when it is larger
 * than PLUGIN_MAX_INPUT. */
char *plugin_read_file(const char *path, size_t *ret_len);

/* Read and parse the parameters; dies with EXIT_BAD_INPUT when they are not
 * JSON or not an object. */
void plugin_read_params(struct json_value *ret);

/* malloc/calloc that die with EXIT_INTERNAL instead of returning NULL;
 * xcalloc also checks n * size for overflow. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);

/* Symbolic errno name ("ENOSPC"), or NULL when not in the table. */
const char *errno_name(int errnum);

/* The result file, written to DIR/NAME.tmp and renamed to DIR/NAME on
 * commit, so the daemon never sees half a result.  Every failure (open,
 * write, close, rename) prints "NAME: write PATH: REASON", removes the
 * temporary file and exits with EXIT_OUTPUT. */
struct out {
        int fd;
        char *path;
        char *tmp_path;
        size_t n;
        char buf[1 << 16];
};

void out_open(struct out *o, const char *dir, const char *name);
void out_write(struct out *o, const void *p, size_t n);
void out_puts(struct out *o, const char *s);
void out_commit(struct out *o);

/* out_open(DIR=plugin_output_dir(), "result.json"). */
void out_open_result(struct out *o);

#endif
