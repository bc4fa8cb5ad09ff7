/* fuzz-tokens.c - libFuzzer target for the API tokens file (auth_load):
 * any text gives tokens or problems, never a crash or a leak, and -1
 * exactly when something was reported; loaded tokens answer auth_check. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-common.h"
#include "http/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct fz_file f;
        if (!f.path) {
                _cleanup_free_ char *p = xasprintf("%s/tokens.yaml", fz_tmpdir());
                fz_file_open(&f, p);
        }
        fz_file_write(&f, data, size);
        struct auth *a = NULL;
        size_t lines = 0;
        struct err err = ERR_INIT;
        int r = auth_load(f.path, fz_count_line, &lines, &a, &err);
        if ((r < 0) != (lines > 0) || (r == 0) != (a != NULL))
                abort();
        if (a) {
                const char *name = NULL;
                auth_check(a, "Bearer some-token-that-is-long-enough", SCOPE_READ, &name);
                auth_check(a, NULL, SCOPE_SUBMIT, &name);
                auth_free(a);
        }
        return 0;
}
