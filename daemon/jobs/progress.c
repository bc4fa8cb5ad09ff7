/* progress.c - reading a running algorithm's progress.json. */
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "base/util.h"

int progress_read(const char *output_dir, char **ret_text, struct err *err)
{
        _cleanup_free_ char *path = xasprintf("%s/" PROGRESS_NAME, output_dir);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct err rerr = ERR_INIT;
        if (read_file(path, PROGRESS_MAX_BYTES, 0, &text, &len, &rerr) < 0) {
                /* rerr.msg names the path and errno's words already. */
                enum err_code code = rerr.code == ERR_NOT_FOUND || rerr.code == ERR_IO ? rerr.code : ERR_INVALID;
                if (rerr.errnum == ELOOP)
                        return err_set(err, ERR_INVALID, 0, PROGRESS_NAME " is a symbolic link");
                return err_set(err, code, 0, "%s", rerr.msg);
        }
        json_error_t jerr;
        _cleanup_json_ json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME ":%d:%d: %s", jerr.line, jerr.column,
                               jerr.text);
        if (!json_is_object(o))
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME " is not a JSON object");
        json_t *f = json_object_get(o, "fraction"), *m = json_object_get(o, "message");
        if (f && !json_is_null(f) && !json_is_number(f))
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME ": fraction is not a number");
        double fraction = f && json_is_number(f) ? json_number_value(f) : NAN;
        if (f && json_is_number(f) && !(fraction >= 0.0 && fraction <= 1.0))
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME ": fraction %g is outside [0, 1]", fraction);
        if (m && !json_is_null(m) && !json_is_string(m))
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME ": message is not a string");
        bool has_f = f && json_is_number(f), has_m = m && json_is_string(m);
        if (!has_f && !has_m)
                return err_set(err, ERR_INVALID, 0, PROGRESS_NAME " has neither fraction nor message");
        json_t *msg = json_null();
        if (has_m) {
                const char *s = json_string_value(m);
                size_t n = json_string_length(m);   /* no NUL inside: jansson refuses \u0000 */
                /* Valid UTF-8 (jansson checked it): cut between characters. */
                msg = json_stringn(s, utf8_cut(s, n, PROGRESS_MESSAGE_MAX));
        }
        _cleanup_json_ json_t *out = json_pack("{s:o, s:o}", "fraction", has_f ? json_real(fraction) : json_null(),
                                               "message", msg);
        /* 15 digits: 0.42 stays 0.42 (17 would show 0.41999999999999998). */
        char *dumped = out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        if (!dumped)
                abort();
        *ret_text = dumped;
        return 0;
}
