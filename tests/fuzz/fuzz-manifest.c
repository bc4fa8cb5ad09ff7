/* fuzz-manifest.c - libFuzzer target for plugin.yaml: manifest_load() on
 * the input, written as DIR/plugin/plugin.yaml next to a rootfs whose bin/
 * holds the commands the seeds name (fuzz-common.h), so the whole loader
 * runs, rootfs check included.  A manifest that loads then validates a
 * few instances against its input_schema (schema_check() accepted it, so
 * schema_validate() must cope with anything). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-common.h"
#include "registry/manifest.h"
#include "registry/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct fz_file f;
        static json_t *instances;
        if (!f.path) {
                _cleanup_free_ char *dir = fz_plugin_dir();
                _cleanup_free_ char *p = xasprintf("%s/plugin.yaml", dir);
                fz_file_open(&f, p);
                instances = json_loads("[{}, [], \"x\", 1, 1.5, null, true,"
                                       " {\"matrix_a\": [[1, 2]], \"matrix_b\": [[3], [4]]},"
                                       " {\"values\": [1, 2.5], \"percentiles\": [50]},"
                                       " {\"text\": \"a b\"}, {\"n\": 3}]",
                                       0, NULL);
                if (!instances)
                        abort();
        }
        fz_file_write(&f, data, size);

        struct manifest *m = NULL;
        struct err err = ERR_INIT;
        if (manifest_load(f.path, &m, &err) < 0) {
                if (m || !err.msg[0])
                        abort();   /* *ret untouched, and a message */
                return 0;
        }
        if (!m->name || !m->version || !m->command || !m->command[0] || !m->input_schema ||
            !m->env || !m->extra_syscalls || !m->oci_template)
                abort();   /* required members of a loaded manifest */
        if (semver_compare(&m->semver, &m->semver) != 0)
                abort();
        size_t i;
        json_t *v;
        json_array_foreach(instances, i, v) {
                struct err verr = ERR_INIT;
                schema_validate(m->input_schema, m->input_index, v, "/parameters", &verr);
        }
        manifest_unref(m);
        return 0;
}
