/* fuzz-request.c - libFuzzer target for the request-body path of
 * POST /v1/jobs (api.c handle_submit): json_loadb() with api.c's flags,
 * the error message api.c formats from json_error_t, the checks on the
 * top-level fields that need no daemon state (version through
 * semver_parse()), then schema_validate() of "parameters" against the
 * example plugins' real input schemas.
 *
 * The plugin.yaml files are loaded once with manifest_load(), copied into a
 * scratch plugin directory whose rootfs has their commands; they are found
 * under $EDGECD_SRC (default ".", the checkout run.sh runs from). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz-common.h"
#include "registry/manifest.h"
#include "registry/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const plugins[] = { "matrix_multiplication", "statistics", "word_count" };
static struct manifest *manifests[ARRAY_SIZE(plugins)];

static void unref_all(void)
{
        for (size_t i = 0; i < ARRAY_SIZE(manifests); i++) {
                manifest_unref(manifests[i]);
                manifests[i] = NULL;
        }
}

static void load_plugins(void)
{
        const char *src = getenv("EDGECD_SRC");
        _cleanup_free_ char *dir = fz_plugin_dir();
        for (size_t i = 0; i < ARRAY_SIZE(plugins); i++) {
                _cleanup_free_ char *from = xasprintf("%s/plugins/%s/plugin.yaml",
                                                      src && *src ? src : ".", plugins[i]);
                _cleanup_free_ char *to = xasprintf("%s/%s.yaml", dir, plugins[i]);
                _cleanup_free_ char *text = NULL;
                size_t len;
                struct err err = ERR_INIT;
                if (read_file(from, 1 << 20, 0, &text, &len, &err) < 0 ||
                    write_file(to, text, len, 0644, &err) < 0 ||
                    manifest_load(to, &manifests[i], &err) < 0) {
                        fprintf(stderr, "fuzz setup: %s (set EDGECD_SRC to the checkout)\n", err.msg);
                        abort();
                }
        }
        atexit(unref_all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!manifests[0])
                load_plugins();

        json_error_t jerr;
        _cleanup_json_ json_t *doc = json_loadb((const char *)data, size,
                                                JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!doc) {
                char msg[512];
                snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", jerr.line,
                         jerr.column, jerr.text);
                return 0;
        }
        if (!json_is_object(doc))
                return 0;
        json_t *jver = json_object_get(doc, "version");
        if (json_is_string(jver)) {
                struct semver sv;
                struct err verr = ERR_INIT;
                if (semver_parse(json_string_value(jver), &sv, &verr) == 0) {
                        if (semver_compare(&sv, &manifests[0]->semver) == 0 &&
                            strcmp(json_string_value(jver), "1.0.0") != 0 &&
                            strncmp(json_string_value(jver), "1.0.0+", 6) != 0)
                                abort();   /* only 1.0.0 (+build) equals 1.0.0 */
                        semver_done(&sv);
                }
        }
        json_t *params = json_object_get(doc, "parameters");
        if (params && !json_is_object(params))
                return 0;
        _cleanup_json_ json_t *parameters = params ? json_incref(params) : json_object();
        for (size_t i = 0; i < ARRAY_SIZE(manifests); i++) {
                struct err err = ERR_INIT;
                if (schema_validate(manifests[i]->input_schema, manifests[i]->input_index, parameters, "/parameters",
                                    &err) < 0 &&
                    (err.code != ERR_INVALID || strncmp(err.field, "/parameters", 11) != 0))
                        abort();
        }
        return 0;
}
