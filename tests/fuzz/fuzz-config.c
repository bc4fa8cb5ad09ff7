/* fuzz-config.c - libFuzzer target for the config file parser:
 * config_load_file() over the embedded defaults, then config_validate() and
 * config_absolute_paths(), exactly the order main.c uses.  The input is the
 * YAML text of edgecd.yaml, written to one scratch file per process. */
#include <stdint.h>
#include <stdlib.h>

#include "base/config.h"
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct fz_file f;
        if (!f.path) {
                _cleanup_free_ char *p = xasprintf("%s/edgecd.yaml", fz_tmpdir());
                fz_file_open(&f, p);
        }
        fz_file_write(&f, data, size);

        struct config cfg;
        config_init_defaults(&cfg);
        size_t lines = 0;
        struct err err = ERR_INIT;
        int r = config_load_file(&cfg, f.path, fz_count_line, &lines, &err);
        /* The contract: -1 exactly when something was reported. */
        if ((r < 0) != (lines > 0))
                abort();
        if (r == 0) {
                struct err verr = ERR_INIT;
                config_validate(&cfg, fz_count_line, &lines, &verr);
                config_absolute_paths(&cfg, &verr);
        }
        config_free(&cfg);
        return 0;
}
