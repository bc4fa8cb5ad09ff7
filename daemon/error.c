/* error.c - the error value every module returns (see error.h). */
#include "error.h"

#include <stdio.h>
#include <string.h>

int err_set(struct err *err, enum err_code code, int errnum, const char *fmt, ...)
{
        if (!err)
                return -1;
        err->code = code;
        err->errnum = errnum;
        err->field[0] = '\0';
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (errnum && n >= 0 && (size_t)n < sizeof err->msg) {
                char buf[128];
                const char *s = strerror_r(errnum, buf, sizeof buf);
                snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", s);
        }
        return -1;
}

int err_wrap(struct err *err, const char *fmt, ...)
{
        if (!err)
                return -1;
        char prefix[ERR_MSG_MAX], old[ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        /* A long chain is cut at the end: the outer context matters most. */
        if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) >= (int)sizeof err->msg)
                memcpy(err->msg + sizeof err->msg - 4, "...", 4);
        if (err->code == ERR_OK)
                err->code = ERR_INTERNAL;
        return -1;
}

void err_set_field(struct err *err, const char *field)
{
        if (err)
                snprintf(err->field, sizeof err->field, "%s", field ? field : "");
}

void err_clear(struct err *err)
{
        if (err) {
                err->code = ERR_OK;
                err->errnum = 0;
                err->field[0] = '\0';
                err->msg[0] = '\0';
        }
}

const char *err_code_name(enum err_code code)
{
        switch (code) {
        case ERR_OK: return "ok";
        case ERR_INVALID: return "invalid";
        case ERR_NOT_FOUND: return "not_found";
        case ERR_BUSY: return "busy";
        case ERR_TOO_LARGE: return "too_large";
        case ERR_CONFLICT: return "conflict";
        case ERR_IO: return "io";
        case ERR_RUNTIME: return "runtime";
        case ERR_UNAVAILABLE: return "unavailable";
        case ERR_INTERNAL: return "internal";
        }
        return "internal";
}
