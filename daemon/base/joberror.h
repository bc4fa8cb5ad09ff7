/* joberror.h - the fixed error taxonomy a job ends with (README: the error
 * table of the HTTP API): the codes the API shows, the store keeps, the
 * breaker weighs and /metrics counts.  Which code a finished container
 * earns is result.h's to decide. */
#ifndef EDGECD_JOBERROR_H
#define EDGECD_JOBERROR_H

enum job_error {
        JOB_ERR_NONE = 0,
        JOB_ERR_TIMEOUT,
        JOB_ERR_OUT_OF_MEMORY,
        JOB_ERR_SANDBOX_VIOLATION,
        JOB_ERR_ALGORITHM_FAILED,
        JOB_ERR_NO_RESULT,
        JOB_ERR_INVALID_RESULT,
        JOB_ERR_RESULT_TOO_LARGE,
        JOB_ERR_RUNTIME_ERROR,
        JOB_ERR_INTERRUPTED,
        JOB_ERR_CANCELLED,
};
#define JOB_ERR_COUNT (JOB_ERR_CANCELLED + 1)

/* "timeout", "out_of_memory", ... as in the API; "none" for JOB_ERR_NONE. */
const char *job_error_name(enum job_error e);
/* The inverse; an unknown name is JOB_ERR_RUNTIME_ERROR. */
enum job_error job_error_parse(const char *s);

#endif
