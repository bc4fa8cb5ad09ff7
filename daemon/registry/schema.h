/* schema.h - the JSON Schema subset plugins describe their parameters with:
 * type (object, array, string, number, integer, boolean, null, or a list of
 * those), properties, required, additionalProperties (bool), items, enum,
 * minimum, maximum, minItems, maxItems, minLength, maxLength.  Pure functions
 * (but for a schema's index, made once and read-only after), any thread. */
#ifndef EDGECD_SCHEMA_H
#define EDGECD_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/error.h"

/* Check that schema uses only the subset and is well-formed.  On error
 * err->field holds the JSON pointer inside the schema and err->msg says why. */
int schema_check(const json_t *schema, struct err *err);

/* Lookup tables made once for a checked schema (when its manifest is
 * loaded): each `enum` as a hash set, so that a value is looked up in time
 * of its own size, not the enum's, and each `required` list by name.
 * Holds a reference to schema; immutable, any thread. */
struct schema_index;
struct schema_index *schema_index_new(const json_t *schema);
void schema_index_free(struct schema_index *ix);

/* Validate instance against schema.  ix: schema_index_new(schema), or NULL
 * (then each enum is searched member by member, and streamed, each key in
 * the required list name by name: for tests and tools, not for requests).  On the first mismatch: ERR_INVALID, err->field = base + the JSON pointer of the bad value (for example
 * "/parameters/matrix_a/1/0"), err->msg says what was expected.  For a
 * missing required property the pointer names that property
 * ("/parameters/matrix_b", "missing required property `matrix_b`").
 * base may be NULL or "". */
int schema_validate(const json_t *schema, const struct schema_index *ix, const json_t *instance,
                    const char *base, struct err *err);

/* schema_validate() of the JSON text[0..len), streamed: memory is one
 * frame per nesting level (at most max_depth; 0: the schema's own bound)
 * plus, per object, 8 bytes per member (at most 65536 members), never a
 * tree of the whole (a container under `enum` is built as a tree up to
 * the size of the enum's largest member, and refused past it).  Accepts and refuses what schema_validate() would on
 * the parsed text (the first error named may differ: a streamed array is
 * refused at its first bad item, before its length is known).
 * *ret_malformed is set when the text is not JSON as jansson takes it (a
 * number out of range, a duplicate key, nesting past jansson's 2048
 * levels) and that is what stopped the stream: that is not a schema miss.
 * A schema miss met earlier in the text is named instead (the tree is
 * never made, so the parse never gets that far). */
int schema_validate_text(const json_t *schema, const struct schema_index *ix, const char *text, size_t len,
                         const char *base, size_t max_depth, bool *ret_malformed, struct err *err);

#endif
