/* plugin.h - the one helper every example plugin binary links: it reads the
 * parameters with jansson, reads matrices and named parameters out of them,
 * writes result.json (and progress.json) atomically with every write
 * checked, and reports a failure as one line on stderr with a fixed exit
 * status.
 *
 * The daemon mounts the parameters at /input/input.json and a writable
 * /output, and sets EDGECD_INPUT / EDGECD_OUTPUT to those same paths.  The
 * variables win when set, so a binary can be run by hand outside a
 * container.
 *
 * Exit statuses (the daemon reports any non-zero one as algorithm_failed
 * with the status and the stderr tail):
 *   1  internal or environment problem (input unreadable, out of memory)
 *   2  bad input (not JSON, wrong shape, values out of range, overflow)
 *   3  the result could not be written (ENOSPC and friends)
 *
 * Built with glibc's gcc -static and Debian's libjansson.a.  Single-threaded:
 * nothing here may be called from two threads at once. */
#ifndef PLUGIN_PLUGIN_H
#define PLUGIN_PLUGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_INTERNAL  1
#define EXIT_BAD_INPUT 2
#define EXIT_OUTPUT    3

/* Largest input file read: the daemon's largest max_body_bytes. */
#define PLUGIN_MAX_INPUT ((size_t)1 << 30)

/* Name used as the prefix of every message ("matrix_multiplication: ..."). */
void plugin_init(const char *name);

const char *plugin_input_path(void);   /* $EDGECD_INPUT or /input/input.json */
const char *plugin_output_dir(void);   /* $EDGECD_OUTPUT or /output */

/* "NAME: MESSAGE\n" on stderr in one write, then exit(status). */
_Noreturn void plugin_die(int status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* malloc/calloc that die with EXIT_INTERNAL instead of returning NULL;
 * xcalloc also checks n * size for overflow. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);

/* Seconds on the monotonic clock. */
double plugin_now(void);

/* ---- parameters ---- */

/* Read and parse the parameters (jansson, duplicate keys refused); dies
 * with EXIT_BAD_INPUT when they are not JSON, not an object or larger than
 * PLUGIN_MAX_INPUT, EXIT_INTERNAL when the file cannot be read.  The caller
 * owns the reference. */
json_t *plugin_read_params(void);

/* "null", "boolean", "integer", "number", "string", "array", "object". */
const char *json_kind(const json_t *v);

/* The member KEY of the parameters; NULL when absent and not required
 * ("KEY is missing" otherwise). */
json_t *param_get(const json_t *params, const char *key, bool required);

/* Optional number KEY within [min, max], def when absent. */
double param_number(const json_t *params, const char *key, double def, double min, double max);

/* Optional string KEY that must be one of choices (NULL-terminated); its
 * index, or the index of def when absent. */
size_t param_choice(const json_t *params, const char *key, const char *def,
                    const char *const choices[]);

/* A rectangular array of arrays of numbers, row-major.  i holds the exact
 * integers when all_int (every entry a JSON integer), else NULL. */
struct grid {
        size_t rows, cols;
        double *d;
        int64_t *i;
        bool all_int;
};

/* Read parameter KEY as a grid of at most max_side rows and columns; dies
 * with EXIT_BAD_INPUT naming the key, row and column of what is wrong
 * (missing, empty, ragged, not a number).  want_int keeps exact integers. */
void param_grid(const json_t *params, const char *key, size_t max_side, bool want_int,
                struct grid *g);
void grid_done(struct grid *g);

/* ---- output ---- */

/* A file written to DIR/NAME.tmp and renamed to DIR/NAME on commit, so the
 * daemon never sees half of it.  Every failure (open, write, close, rename)
 * prints "NAME: write PATH: REASON", removes the temporary file and exits
 * with EXIT_OUTPUT.
 *
 * The value writers insert the commas of JSON themselves: a value, key or
 * out_begin that follows a finished value gets one. */
struct out {
        int fd;
        char *path;
        char *tmp_path;
        size_t n;
        bool comma;               /* the last thing written ends a value */
        char buf[1 << 16];
};

void out_open(struct out *o, const char *dir, const char *name);
void out_open_result(struct out *o);       /* plugin_output_dir()/result.json */
void out_write(struct out *o, const void *p, size_t n);   /* raw bytes */
void out_commit(struct out *o);            /* "\n", flush, close, rename */

void out_begin(struct out *o, char c);     /* '{' or '[' */
void out_end(struct out *o, char c);       /* '}' or ']' */
void out_key(struct out *o, const char *key);
void out_int(struct out *o, int64_t v);
/* The shortest of %.15g, %.16g, %.17g that reads back as v (integers below
 * 2^53 without a fraction); null when v is not finite. */
void out_double(struct out *o, double v);
/* The same, but always with a fraction or exponent: 2.0 is "2.0". */
void out_real(struct out *o, double v);
void out_string(struct out *o, const char *s, size_t len);   /* valid UTF-8 */
void out_json(struct out *o, const json_t *v);               /* via jansson */

/* Write /output/progress.json, {"fraction": F, "message": "..."}, through
 * progress.json.tmp and a rename; fraction is clamped to 0..1.  Checked like
 * the result (a failed write ends the run with EXIT_OUTPUT). */
void plugin_progress(double fraction, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#endif
