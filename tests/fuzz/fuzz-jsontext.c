/* fuzz-jsontext.c - libFuzzer target for jsontext_check(), the streaming
 * check that results and request bodies are JSON (yajl, no tree).  Besides
 * not crashing it must agree with jansson in one direction: a text jansson
 * parses (one value, no NUL byte) jsontext accepts too, and a nesting limit
 * only ever takes acceptance away. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/jsontext.h"
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        struct err err = ERR_INIT;
        int any = jsontext_check(text, size, 0, &err);
        int shallow = jsontext_check(text, size, 8, &err);
        if (shallow == 0 && any != 0)
                abort();
        if (memchr(text, '\0', size) || memchr(text, '\f', size))
                return 0;
        json_error_t jerr;
        json_t *v = json_loadb(text, size, JSON_DECODE_ANY, &jerr);
        if (v && any != 0)
                abort();
        json_decref(v);
        return 0;
}
