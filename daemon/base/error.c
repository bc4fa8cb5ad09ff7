/* error.c - the error value every module returns (see error.h). */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* s was cut to fit: drop a character the cut split (its first bytes
 * alone are not UTF-8, and a message that is not cannot go out as JSON). */
static void cut_whole(char *s)
{
        size_t n = strlen(s), i = n, cont = 0;
        while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
                i--;
                cont++;
        }
        if (i == 0)
                return;
        unsigned char lead = (unsigned char)s[i - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (want > 1 && cont + 1 < want)
                s[i - 1] = '\0';
}

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
        if (n >= (int)sizeof err->msg)
                cut_whole(err->msg);
        if (errnum && n >= 0 && (size_t)n < sizeof err->msg) {
                char buf[128];
                const char *s = strerror_r(errnum, buf, sizeof buf);
                if (snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", s) >= (int)(sizeof err->msg - (size_t)n))
                        cut_whole(err->msg);
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
        if (vsnprintf(prefix, sizeof prefix, fmt, ap) >= (int)sizeof prefix)
                cut_whole(prefix);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        /* A long chain is cut at the end: the outer context matters most. */
        if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) >= (int)sizeof err->msg) {
                err->msg[sizeof err->msg - 4] = '\0';
                cut_whole(err->msg);
                strcat(err->msg, "...");
        }
        if (err->code == ERR_OK)
                err->code = ERR_INTERNAL;
        return -1;
}

void err_set_field(struct err *err, const char *field)
{
        if (err && snprintf(err->field, sizeof err->field, "%s", field ? field : "") >= (int)sizeof err->field)
                cut_whole(err->field);
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

bool errno_is_shortage(int errnum)
{
        return errnum == EMFILE || errnum == ENFILE || errnum == ENOMEM || errnum == EAGAIN;
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
