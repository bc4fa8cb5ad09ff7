/* yamldoc.h - the libyaml plumbing config.c and manifest.c share: load a
 * file into a node tree, walk mappings, read typed values, and collect
 * diagnostics that read "FILE:LINE:COL: key: what is wrong" (LINE and COL
 * 1-based; libyaml marks are 0-based).
 *
 * The getters never stop at the first problem: each reports through a
 * struct ydiag and returns -1, and the caller goes on with the next key, so
 * one run lists every mistake in a file.  No state outside the objects the
 * caller owns; any thread. */
#ifndef EDGECD_YAMLDOC_H
#define EDGECD_YAMLDOC_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <yaml.h>

#include "error.h"

struct yamldoc {
        char *path;               /* as given; used as the FILE of every message */
        yaml_document_t doc;
};

/* Read path (a regular file of at most max_bytes) and parse exactly one YAML
 * document.  On failure err->msg is already a full diagnostic line naming
 * the file: "open `FILE`: No such file or directory" (ERR_NOT_FOUND),
 * "`FILE` is not a regular file" (ERR_INVALID), "`FILE` is N bytes, over
 * the limit of M" (ERR_TOO_LARGE; read_file()'s words), or for a syntax error
 * "FILE:LINE:COL: syntax error: PROBLEM" from the parser's problem mark
 * (ERR_INVALID).  An empty file is a document without a root.
 *
 * Also refused, as "FILE:LINE:COL: KEY: PROBLEM" (ERR_INVALID), before the
 * tree is built: nesting deeper than 128 levels, an explicit tag ("!!str"),
 * and an anchor or alias anywhere but inside the value of top-level key
 * `aliases_in` (NULL: nowhere).  Checks on an aliased node would report the
 * anchor's line, not the alias's. */
int yamldoc_load(const char *path, size_t max_bytes, const char *aliases_in, struct yamldoc **ret,
                 struct err *err);
/* The same for a file that must be inside its directory as it is read (a
 * plugin's manifest: read_file()'s READ_BENEATH). */
int yamldoc_load_beneath(const char *path, size_t max_bytes, const char *aliases_in, struct yamldoc **ret,
                         struct err *err);
void yamldoc_free(struct yamldoc *y);   /* NULL is fine */

/* The root node, or NULL when the file holds no value (empty, only comments,
 * or an explicit null such as a lone "---"). */
yaml_node_t *yamldoc_root(struct yamldoc *y);
/* The node with this id (mapping pairs and sequence items hold ids). */
yaml_node_t *yamldoc_node(struct yamldoc *y, int id);

/* A plain (unquoted) scalar that YAML reads as null: "", "~", "null". */
bool ynode_is_null(const yaml_node_t *n);
/* "a mapping", "a list", "a scalar", "null": for "expected X, got Y". */
const char *ynode_kind(const yaml_node_t *n);

/* ---- diagnostics ---- */

struct ydiag {
        const char *path;
        void (*report)(const char *line, void *ctx);   /* may be NULL */
        void *ctx;
        size_t count;
        char *first;              /* the first line, owned */
        char *joined;             /* every line joined with "; ", owned */
};

void ydiag_init(struct ydiag *d, const char *path, void (*report)(const char *line, void *ctx),
                void *ctx);
void ydiag_done(struct ydiag *d);
/* One problem at node `at` (its start mark; NULL for no line): formats
 * "PATH:LINE:COL: KEY: MESSAGE" (or "PATH: KEY: ..." without a node, and
 * "KEY: ..." without a path); key may be NULL. */
void ydiag_add(struct ydiag *d, const yaml_node_t *at, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The same at a mark kept from a node (NULL: no line), with a va_list. */
void ydiag_vadd_at(struct ydiag *d, const yaml_mark_t *at, const char *key, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
/* One preformatted line (from yamldoc_load, say). */
void ydiag_line(struct ydiag *d, const char *line);
/* 0 when nothing was reported; else fills err (code, and a message that is
 * the first line when alone, else the first line and "(and N more
 * problems)") and returns -1. */
int ydiag_result(const struct ydiag *d, enum err_code code, struct err *err);
/* Like ydiag_result, but the message is every line joined with "; "
 * (cut with "; ..." when it does not fit). */
int ydiag_result_all(const struct ydiag *d, enum err_code code, struct err *err);

/* ---- mappings ---- */

/* Report every key of mapping `map` that is not a scalar, and every key that
 * repeats an earlier one ("duplicate key").  `prefix` names the mapping for
 * messages ("defaults" gives "defaults.x"; NULL at the top).  Returns the
 * number of problems.  Callers then loop over map->data.mapping.pairs and
 * skip pairs whose key ynode_str() is NULL or a duplicate (yamldoc_key_dup).
 * A mapping of more than YAMLDOC_MAX_KEYS keys is reported once and -1 is
 * returned: the caller skips it whole (config and manifest mappings are
 * small; the duplicate checks are quadratic in the key count). */
#define YAMLDOC_MAX_KEYS 256
int yamldoc_check_keys(struct yamldoc *y, const yaml_node_t *map, const char *prefix,
                       struct ydiag *d);
/* True when the key of pair `pair` repeats a key earlier in the mapping. */
bool yamldoc_key_dup(struct yamldoc *y, const yaml_node_t *map, const yaml_node_pair_t *pair);
/* The scalar text of n, or NULL when n is not a scalar or holds a NUL byte. */
const char *ynode_str(const yaml_node_t *n);
/* The value node of key `key` in mapping map (first occurrence), or NULL. */
yaml_node_t *yamldoc_get(struct yamldoc *y, const yaml_node_t *map, const char *key);

/* ---- typed getters: each reports at n under `key` and returns -1 ----
 * *ret is written only on success; the string getters free the old *ret
 * first, so it must be NULL or owned (a default being overridden). */

/* Any non-null scalar, copied. */
int yget_string(const yaml_node_t *n, const char *key, struct ydiag *d, char **ret);
/* A decimal integer in [min,max]. */
int yget_int(const yaml_node_t *n, const char *key, int64_t min, int64_t max, struct ydiag *d,
             int64_t *ret);
/* A finite number in [min,max]. */
int yget_double(const yaml_node_t *n, const char *key, double min, double max, struct ydiag *d,
                double *ret);
/* true/false (also yes/no, on/off, any case, as YAML 1.1 has them). */
int yget_bool(const yaml_node_t *n, const char *key, struct ydiag *d, bool *ret);
/* A byte size: an integer, or a string with a KiB/MiB/GiB suffix ("64KiB",
 * "1 MiB"), in [min,max] bytes. */
int yget_bytes(const yaml_node_t *n, const char *key, int64_t min, int64_t max, struct ydiag *d,
               int64_t *ret);
/* A list of scalars (flow [a, b] or block), NULL-terminated, copied.  Each
 * bad item is reported as KEY[I]. */
int yget_strv(struct yamldoc *y, const yaml_node_t *n, const char *key, struct ydiag *d,
              char ***ret);

/* ---- YAML to JSON (for input_schema) ---- */

/* Convert the tree at n: mappings become objects (keys must be scalars, no
 * duplicates), sequences arrays.  Quoted scalars stay strings; plain scalars
 * that read as null, true/false, integers or floats become those JSON
 * values.  Depth is capped (YAML aliases can even build a cycle), and so
 * are the nodes (100,000) and the bytes of scalars and keys (1 MiB)
 * converted, each use of an alias counted anew.  Problems are reported
 * under `key` plus the JSON pointer of the bad node. */
int yamldoc_to_json(struct yamldoc *y, const yaml_node_t *n, const char *key, struct ydiag *d,
                    json_t **ret);
/* The node that JSON pointer `ptr` ("/properties/a/type") names below n, or
 * the deepest node on the way when the pointer leaves the tree.  For turning
 * a schema_check() field back into a line number. */
const yaml_node_t *yamldoc_at_pointer(struct yamldoc *y, const yaml_node_t *n, const char *ptr);

#endif
