/* result.h - what a finished container left behind, turned into either the
 * algorithm's JSON result or one code of the fixed error taxonomy
 * (joberror.h; the seed's ExceptionHandler, ErrorTranslator and
 * ResultProcessor).  Pure, any thread. */
#ifndef EDGECD_RESULT_H
#define EDGECD_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/joberror.h"
#include "reaper.h"

/* Read output_dir/result.json: opened with O_NOFOLLOW relative to the
 * directory, must be a regular file, size checked with fstat before reading
 * (ERR_TOO_LARGE), then checked as JSON text without building a tree
 * (jsontext.h; ERR_INVALID with line and column); ERR_NOT_FOUND when
 * missing; ERR_INVALID for a symlink, FIFO, directory or a raw NUL byte.
 * Any JSON value is accepted.  *ret_text (caller frees) is the file's bytes,
 * NUL-terminated; *ret_len their count: what the daemon keeps is exactly
 * what it counted. */
int result_read(const char *output_dir, int64_t max_bytes, char **ret_text, size_t *ret_len,
                struct err *err);

struct outcome {
        struct proc_exit exit;
        bool oom_killed;          /* from cgroup_stats */
        bool oom_known;           /* likewise */
        bool limit_hit;           /* likewise: with a SIGKILL and no OOM count known, an OOM kill */
        const char *stderr_tail;  /* may be NULL */
};

/* Classify: a signal or non-zero exit is decided first (SIGSYS:
 * sandbox_violation; oom: out_of_memory; timeout; non-zero:
 * algorithm_failed with the code and the stderr tail), then the result file
 * (no_result, result_too_large, invalid_result; runtime_error when the
 * daemon itself cannot read the output directory).  On JOB_ERR_NONE
 * *ret_result holds the result's JSON text (caller frees), *ret_len its
 * length, and *ret_message is NULL;
 * otherwise *ret_result is NULL and *ret_message (caller frees) says what
 * went wrong in words an operator understands, valid UTF-8 (bytes quoted
 * from the algorithm that are not are replaced with '?').  *ret_errnum is
 * the errno that kept the daemon from reading the output (a runtime_error:
 * EMFILE still after the retries, say), else 0.  Any pointer may be NULL
 * when the caller does not want it. */
enum job_error result_classify(const struct outcome *o, const char *output_dir,
                               int64_t max_result_bytes, char **ret_result, size_t *ret_len,
                               char **ret_message, int *ret_errnum);

#endif
