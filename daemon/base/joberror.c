/* joberror.c - the names of the error taxonomy's codes. */
#include "joberror.h"

#include <string.h>

const char *job_error_name(enum job_error e)
{
        switch (e) {
        case JOB_ERR_NONE: return "none";
        case JOB_ERR_TIMEOUT: return "timeout";
        case JOB_ERR_OUT_OF_MEMORY: return "out_of_memory";
        case JOB_ERR_SANDBOX_VIOLATION: return "sandbox_violation";
        case JOB_ERR_ALGORITHM_FAILED: return "algorithm_failed";
        case JOB_ERR_NO_RESULT: return "no_result";
        case JOB_ERR_INVALID_RESULT: return "invalid_result";
        case JOB_ERR_RESULT_TOO_LARGE: return "result_too_large";
        case JOB_ERR_RUNTIME_ERROR: return "runtime_error";
        case JOB_ERR_INTERRUPTED: return "interrupted";
        case JOB_ERR_CANCELLED: return "cancelled";
        }
        return "runtime_error";
}

enum job_error job_error_parse(const char *s)
{
        for (int e = JOB_ERR_NONE; s && e < JOB_ERR_COUNT; e++)
                if (!strcmp(s, job_error_name((enum job_error)e)))
                        return (enum job_error)e;
        return JOB_ERR_RUNTIME_ERROR;
}
