/* fuzz-schema.c - libFuzzer target for the JSON Schema subset.  The input
 * is two JSON texts one after the other: a schema, then an instance
 * ("{"type":"array","items":{"type":"integer"}} [1,2]").  The schema is read
 * the way a manifest's arrives (any JSON value), schema_check() runs on it,
 * and the instance, parsed with the flags api.c uses for request bodies, is
 * validated against it with schema_validate(): always when the check
 * passed, and also when it did not (schema.c promises to stay harmless on
 * an unchecked schema), with the schema's index and without it (the same
 * answer either way). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/util.h"
#include "registry/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_error_t jerr;
        _cleanup_json_ json_t *schema = json_loadb((const char *)data, size,
                                                   JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
        if (!schema)
                return 0;
        size_t used = (size_t)jerr.position;
        if (used > size)
                abort();
        _cleanup_json_ json_t *instance = json_loadb((const char *)data + used, size - used,
                                                     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

        struct err err = ERR_INIT;
        int checked = schema_check(schema, &err);
        if (checked < 0 && !err.msg[0])
                abort();
        if (!instance)
                return 0;
        /* The index is made for checked schemas, and harmless on others. */
        struct schema_index *ix = schema_index_new(schema);
        for (int pass = 0; pass < 2; pass++) {
                struct err verr = ERR_INIT, lerr = ERR_INIT;
                const char *base = pass ? NULL : "/parameters";
                int rc = schema_validate(schema, ix, instance, base, &verr);
                if (rc < 0) {
                        if (verr.code != ERR_INVALID || !verr.msg[0])
                                abort();
                        /* The field is a JSON pointer under base. */
                        if (pass == 0 && strncmp(verr.field, "/parameters", 11) != 0)
                                abort();
                }
                /* An enum by hash says what one searched member by member says. */
                if (schema_validate(schema, NULL, instance, base, &lerr) != rc ||
                    (rc < 0 && (strcmp(verr.msg, lerr.msg) || strcmp(verr.field, lerr.field))))
                        abort();
        }
        schema_index_free(ix);
        return 0;
}
