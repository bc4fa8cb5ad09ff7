/* error.h - errors as values.
 *
 * A function that can fail returns 0 (or a non-negative value) on success and
 * -1 on failure, after filling the `struct err *err` it takes as its last
 * argument.  Each layer may prefix context with err_wrap() on the way up, so
 * the message that reaches the journal and the HTTP client reads
 * "job 42: oci: write config.json: No space left on device".
 *
 * The message lives inside the struct: nothing to free, safe on every exit
 * path. */
#ifndef EDGECD_ERROR_H
#define EDGECD_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

enum err_code {
        ERR_OK = 0,
        ERR_INVALID,    /* bad input: request, config, manifest */
        ERR_NOT_FOUND,  /* no such job, algorithm, file */
        ERR_BUSY,       /* queue full, limit reached: try again later */
        ERR_TOO_LARGE,  /* body, result or log over its limit */
        ERR_CONFLICT,   /* state does not allow it (job already final) */
        ERR_IO,         /* a system call on a file failed */
        ERR_RUNTIME,    /* the OCI runtime failed or is missing */
        ERR_UNAVAILABLE,/* shutting down, not ready */
        ERR_INTERNAL,   /* a bug or out of memory */
};

#define ERR_MSG_MAX 1024
#define ERR_FIELD_MAX 256

struct err {
        enum err_code code;
        int errnum;                  /* errno when a system call caused it, else 0 */
        char field[ERR_FIELD_MAX];   /* JSON pointer of a bad input field, or "" */
        char msg[ERR_MSG_MAX];
};

#define ERR_INIT { .code = ERR_OK }

/* Fill err and return -1.  `errnum`, when non-zero, is appended as
 * ": strerror(errnum)". err may be NULL. */
int err_set(struct err *err, enum err_code code, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Like err_set(ERR_IO-ish) for the current errno. */
#define err_errno(err, code, ...) err_set((err), (code), errno, __VA_ARGS__)
/* Prefix context: "outer: inner".  Returns -1 so `return err_wrap(...)` works. */
int err_wrap(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set the JSON pointer of the offending input field. */
void err_set_field(struct err *err, const char *field);
void err_clear(struct err *err);
/* An errno that says the daemon itself ran short (RLIMIT_NOFILE, a pids
 * limit, memory) rather than that something is wrong: EMFILE, ENFILE,
 * ENOMEM, EAGAIN. */
bool errno_is_shortage(int errnum);
const char *err_code_name(enum err_code code);

#endif
