/* yamldoc.c - libyaml documents, typed getters and diagnostics shared by
 * config.c and manifest.c (see yamldoc.h).
 *
 * Owns nothing global.  A struct yamldoc and a struct ydiag belong to the one
 * thread that loads a file (main.c at startup for the config, the registry's
 * loader for manifests).
 *
 * libyaml's loader resolves aliases by sharing node ids, and registers an
 * anchor before its children are loaded, so "&a [*a]" is a cycle.  Nothing
 * here recurses without a depth cap for that reason. */
#include "yamldoc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

/* Deep enough for any honest schema, shallow enough for the stack. */
#define YAML_JSON_MAX_DEPTH 64
/* Nesting in the whole file, checked before libyaml builds the tree: its
 * scanner costs time linear in the flow depth for every token (120,000
 * "[" took 40 s).  Twice YAML_JSON_MAX_DEPTH and schema.c's 64, so those
 * checks, which name the JSON pointer, still speak for a deep schema. */
#define YAMLDOC_MAX_DEPTH 128
/* Longest key path quoted by the pre-pass ("a.b[2].c"). */
#define SCAN_NAME_MAX 160
/* Aliases can multiply a small file into a huge tree ("billion laughs"):
 * every use of an alias is converted afresh, so both the nodes and the
 * bytes of text (scalars and keys) converted are capped.  1 MiB is four
 * manifests' worth (MANIFEST_MAX_BYTES): a schema without aliases always
 * fits. */
#define YAML_JSON_MAX_NODES 100000
#define YAML_JSON_MAX_BYTES (1 << 20)
/* ydiag_result_all() shows one err->msg worth of the joined lines; joining
 * stops a little past that, so thousands of problems (aliases repeat a
 * subtree's) cost no quadratic copying. */
#define YDIAG_JOINED_MAX (4 * ERR_MSG_MAX)

static void yaml_parser_deletep(yaml_parser_t **p)
{
        if (*p)
                yaml_parser_delete(*p);
}

/* A reader error (bad UTF-8, control character) has a byte offset, not a
 * mark: count lines up to it so the message still has LINE:COL. */
static void offset_to_mark(const char *data, size_t len, size_t off, size_t *line, size_t *col)
{
        size_t l = 1, c = 1;
        for (size_t i = 0; i < off && i < len; i++) {
                if (data[i] == '\n') {
                        l++;
                        c = 1;
                } else {
                        c++;
                }
        }
        *line = l;
        *col = c;
}

static int syntax_error(const yaml_parser_t *p, const char *path, const char *data, size_t len,
                        struct err *err)
{
        const char *problem = p->problem ? p->problem : "unknown problem";
        if (p->error == YAML_MEMORY_ERROR)
                return err_set(err, ERR_INTERNAL, 0, "%s: out of memory parsing yaml", path);
        if (p->error == YAML_READER_ERROR) {
                size_t line, col;
                offset_to_mark(data, len, p->problem_offset, &line, &col);
                return err_set(err, ERR_INVALID, 0, "%s:%zu:%zu: syntax error: %s", path, line, col,
                               problem);
        }
        if (p->context)
                return err_set(err, ERR_INVALID, 0, "%s:%zu:%zu: syntax error: %s %s at %zu:%zu", path,
                               p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                               p->context, p->context_mark.line + 1, p->context_mark.column + 1);
        return err_set(err, ERR_INVALID, 0, "%s:%zu:%zu: syntax error: %s", path,
                       p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
}

/* ---- the pre-pass: the event stream, before the tree is built ---- */

struct scan_frame {
        bool map;
        bool want_key;            /* map: the next node is a key */
        size_t index;             /* sequence: of the next item */
        char *key;                /* map: the current key (cut), owned; NULL if not a scalar */
};

struct scan {
        const char *path;
        const char *aliases_in;   /* the top-level key whose value may hold aliases, or NULL */
        size_t docs;
        size_t depth;
        struct scan_frame f[YAMLDOC_MAX_DEPTH];
};

static void scan_done(struct scan *st)
{
        for (size_t i = 0; i < st->depth; i++)
                free(st->f[i].key);
        st->depth = 0;
}

/* Appends s, cut between characters to what fits; false when cut. */
static bool name_add(char *buf, size_t *n, const char *s)
{
        size_t room = SCAN_NAME_MAX - *n, len = strlen(s);
        size_t k = utf8_cut(s, len, room);
        memcpy(buf + *n, s, k);
        *n += k;
        buf[*n] = '\0';
        return k == len;
}

/* Inside the value of top-level key aliases_in (a schema reuses parts of
 * itself); nowhere else, where every check would report an aliased node at
 * its anchor's line, not the line that uses it. */
static bool scan_aliases_ok(const struct scan *st)
{
        const struct scan_frame *top = &st->f[0];
        return st->aliases_in && st->depth >= 1 && top->map && !top->want_key && top->key &&
               !strcmp(top->key, st->aliases_in);
}

/* The key path of the node an event starts, as the getters name keys:
 * "resources.memory_mb", "command[0]", "(top level)" for the root; below
 * aliases_in as yamldoc_to_json() does, "input_schema/properties/a".  At
 * most `levels` levels, then "...". */
static void scan_name(const struct scan *st, size_t levels, char buf[static SCAN_NAME_MAX + 4])
{
        size_t n = 0;
        bool whole = true, pointer = scan_aliases_ok(st);
        buf[0] = '\0';
        if (st->depth == 0)
                name_add(buf, &n, "(top level)");
        for (size_t i = 0; i < st->depth && whole; i++) {
                if (i == levels) {
                        whole = false;
                        break;
                }
                const struct scan_frame *f = &st->f[i];
                char idx[32];
                if (pointer && i)
                        whole = name_add(buf, &n, "/");
                else if (f->map && i)
                        whole = name_add(buf, &n, ".");
                if (f->map)
                        whole = whole && name_add(buf, &n, f->key ? f->key : "?");
                else {
                        snprintf(idx, sizeof idx, pointer && i ? "%zu" : "[%zu]", f->index);
                        whole = whole && name_add(buf, &n, idx);
                }
        }
        if (!whole)
                strcpy(buf + n, "...");
}

/* A node has been read whole: the parent moves on to its next key, value
 * or item. */
static void scan_node_end(struct scan *st)
{
        if (st->depth == 0)
                return;
        struct scan_frame *f = &st->f[st->depth - 1];
        if (f->map)
                f->want_key = !f->want_key;
        else
                f->index++;
}

/* Checks one node event: its anchor and tag, and a scalar key is
 * remembered for names. */
static int scan_node(struct scan *st, const yaml_event_t *ev, const char *anchor, const char *tag,
                     struct err *err)
{
        size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
        char name[SCAN_NAME_MAX + 4];
        if (st->docs > 1)
                return err_set(err, ERR_INVALID, 0, "%s:%zu:%zu: more than one yaml document",
                               st->path, line, col);
        struct scan_frame *f = st->depth ? &st->f[st->depth - 1] : NULL;
        if (f && f->map && f->want_key) {
                free(f->key);
                f->key = NULL;
                if (ev->type == YAML_SCALAR_EVENT) {
                        const char *k = (const char *)ev->data.scalar.value;
                        f->key = strndup(k, utf8_cut(k, ev->data.scalar.length, SCAN_NAME_MAX));
                        if (!f->key)
                                abort();
                }
        }
        if (tag) {
                /* libyaml reports the tag resolved: show !!str as written. */
                static const char yaml_tag[] = "tag:yaml.org,2002:";
                bool std = !strncmp(tag, yaml_tag, sizeof yaml_tag - 1);
                const char *t = std ? tag + sizeof yaml_tag - 1 : tag;
                scan_name(st, SIZE_MAX, name);
                return err_set(err, ERR_INVALID, 0,
                               "%s:%zu:%zu: %s: tag %s%.*s: YAML tags are not supported (quote a "
                               "value to make it a string)", st->path, line, col, name,
                               std ? "!!" : "", (int)utf8_cut(t, strlen(t), 64), t);
        }
        if ((anchor || ev->type == YAML_ALIAS_EVENT) && !scan_aliases_ok(st)) {
                scan_name(st, SIZE_MAX, name);
                _cleanup_free_ char *where = st->aliases_in
                                                     ? xasprintf("allowed only inside %s", st->aliases_in)
                                                     : xstrdup("not allowed in this file");
                return err_set(err, ERR_INVALID, 0,
                               "%s:%zu:%zu: %s: %s %c%s: YAML anchors and aliases are %s", st->path,
                               line, col, name, anchor ? "anchor" : "alias", anchor ? '&' : '*',
                               anchor ? anchor : (const char *)ev->data.alias.anchor, where);
        }
        return 0;
}

/* One event of the pre-pass: 1 at the end of the stream, -1 on a problem. */
static int scan_event(struct scan *st, const yaml_event_t *ev, struct err *err)
{
        switch (ev->type) {
        case YAML_STREAM_END_EVENT:
                return 1;
        case YAML_DOCUMENT_START_EVENT:
                st->docs++;   /* a second one is reported at its root node */
                return 0;
        case YAML_ALIAS_EVENT:
                if (scan_node(st, ev, NULL, NULL, err) < 0)
                        return -1;
                scan_node_end(st);
                return 0;
        case YAML_SCALAR_EVENT:
                if (scan_node(st, ev, (const char *)ev->data.scalar.anchor,
                              (const char *)ev->data.scalar.tag, err) < 0)
                        return -1;
                scan_node_end(st);
                return 0;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
                bool map = ev->type == YAML_MAPPING_START_EVENT;
                const yaml_char_t *anchor = map ? ev->data.mapping_start.anchor
                                                : ev->data.sequence_start.anchor;
                const yaml_char_t *tag = map ? ev->data.mapping_start.tag
                                             : ev->data.sequence_start.tag;
                if (scan_node(st, ev, (const char *)anchor, (const char *)tag, err) < 0)
                        return -1;
                if (st->depth == YAMLDOC_MAX_DEPTH) {
                        char name[SCAN_NAME_MAX + 4];
                        scan_name(st, 4, name);
                        return err_set(err, ERR_INVALID, 0,
                                       "%s:%zu:%zu: %s: nested more than %d levels deep", st->path,
                                       ev->start_mark.line + 1, ev->start_mark.column + 1, name,
                                       YAMLDOC_MAX_DEPTH);
                }
                st->f[st->depth++] = (struct scan_frame){ .map = map, .want_key = map };
                return 0;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                if (st->depth) {
                        free(st->f[st->depth - 1].key);
                        st->depth--;
                }
                scan_node_end(st);
                return 0;
        case YAML_NO_EVENT:
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
                break;
        }
        return 0;
}

/* Reads the events once, without building the tree, and stops at the
 * first of: nesting over YAMLDOC_MAX_DEPTH (stopping early is what keeps
 * libyaml's scanner cheap), an anchor or alias outside aliases_in, an
 * explicit tag (libyaml would drop it: "!!str 1" would load as 1), a
 * second document, or a syntax error. */
static int prescan(const char *path, const char *data, size_t len, const char *aliases_in,
                   struct err *err)
{
        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser))
                return err_set(err, ERR_INTERNAL, 0, "%s: out of memory", path);
        _cleanup_(yaml_parser_deletep) __attribute__((unused)) yaml_parser_t *pp = &parser;
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

        struct scan st = { .path = path, .aliases_in = aliases_in };
        int r = 0;
        while (r == 0) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&parser, &ev)) {
                        r = syntax_error(&parser, path, data, len, err);
                        break;
                }
                r = scan_event(&st, &ev, err);
                yaml_event_delete(&ev);
        }
        scan_done(&st);
        return r < 0 ? -1 : 0;
}

static int load(const char *path, size_t max_bytes, const char *aliases_in, unsigned read_flags,
                struct yamldoc **ret, struct err *err)
{
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        /* Follows a symlink: /etc/edgecd/edgecd.yaml often is one. */
        if (read_file(path, max_bytes, READ_FOLLOW_LINKS | read_flags, &data, &len, err) < 0)
                return -1;
        if (prescan(path, data, len, aliases_in, err) < 0)
                return -1;

        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser))
                return err_set(err, ERR_INTERNAL, 0, "%s: out of memory", path);
        /* Only its cleanup reads pp; clang calls that unused. */
        _cleanup_(yaml_parser_deletep) __attribute__((unused)) yaml_parser_t *pp = &parser;
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

        /* One document: prescan() refused a second one, which
         * yaml_parser_load() would silently ignore. */
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc))   /* libyaml frees doc on failure */
                return syntax_error(&parser, path, data, len, err);

        struct yamldoc *y = xcalloc(1, sizeof *y);
        y->path = xstrdup(path);
        y->doc = doc;
        *ret = y;
        return 0;
}

int yamldoc_load(const char *path, size_t max_bytes, const char *aliases_in, struct yamldoc **ret,
                 struct err *err)
{
        return load(path, max_bytes, aliases_in, 0, ret, err);
}

int yamldoc_load_beneath(const char *path, size_t max_bytes, const char *aliases_in, struct yamldoc **ret,
                         struct err *err)
{
        return load(path, max_bytes, aliases_in, READ_BENEATH, ret, err);
}

void yamldoc_free(struct yamldoc *y)
{
        if (!y)
                return;
        yaml_document_delete(&y->doc);
        free(y->path);
        free(y);
}

yaml_node_t *yamldoc_root(struct yamldoc *y)
{
        yaml_node_t *root = yaml_document_get_root_node(&y->doc);
        if (root && ynode_is_null(root))
                return NULL;
        return root;
}

yaml_node_t *yamldoc_node(struct yamldoc *y, int id)
{
        return yaml_document_get_node(&y->doc, id);
}

bool ynode_is_null(const yaml_node_t *n)
{
        if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *s = (const char *)n->data.scalar.value;
        return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
               !strcmp(s, "NULL");
}

const char *ynode_kind(const yaml_node_t *n)
{
        if (!n)
                return "nothing";
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a list";
        case YAML_SCALAR_NODE:
                return ynode_is_null(n) ? "null" : "a scalar";
        case YAML_NO_NODE:
                break;
        }
        return "nothing";
}

const char *ynode_str(const yaml_node_t *n)
{
        if (!n || n->type != YAML_SCALAR_NODE)
                return NULL;
        const char *s = (const char *)n->data.scalar.value;
        if (strlen(s) != n->data.scalar.length)
                return NULL;   /* "\0" in a double-quoted scalar */
        return s;
}

/* ---- diagnostics ---- */

void ydiag_init(struct ydiag *d, const char *path, void (*report)(const char *line, void *ctx),
                void *ctx)
{
        *d = (struct ydiag){ .path = path, .report = report, .ctx = ctx };
}

void ydiag_done(struct ydiag *d)
{
        free(d->first);
        free(d->joined);
        d->first = d->joined = NULL;
        d->count = 0;
}

/* line with each control character (a key or value quoted from the file:
 * a newline, an escape sequence) written as \n, \t, \r, \xHH, or \u00HH for
 * the C1 ones in UTF-8 (U+0080 to U+009F, CSI among them): one problem stays
 * one line, and no control reaches a terminal or the journal raw. */
static bool is_c1(const unsigned char *p)
{
        return p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;
}

static char *escape_controls(const char *line)
{
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
                if (is_c1(p)) {
                        n += 6;
                        p++;
                } else {
                        n += *p < 0x20 || *p == 0x7f ? 4 : 1;
                }
        }
        char *out = xmalloc(n + 1), *o = out;
        for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
                unsigned char c = *p;
                if (is_c1(p)) {
                        o += sprintf(o, "\\u%04x", *++p);
                } else if (c >= 0x20 && c != 0x7f) {
                        *o++ = (char)c;
                } else if (c == '\n' || c == '\t' || c == '\r') {
                        *o++ = '\\';
                        *o++ = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
                } else {
                        o += sprintf(o, "\\x%02x", c);
                }
        }
        *o = '\0';
        return out;
}

void ydiag_line(struct ydiag *d, const char *raw)
{
        _cleanup_free_ char *line = escape_controls(raw);
        if (d->report)
                d->report(line, d->ctx);
        if (!d->first)
                d->first = xstrdup(line);
        if (!d->joined || strlen(d->joined) < YDIAG_JOINED_MAX) {
                char *j = d->joined ? xasprintf("%s; %s", d->joined, line) : xstrdup(line);
                free(d->joined);
                d->joined = j;
        }
        d->count++;
}

void ydiag_add(struct ydiag *d, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        ydiag_vadd_at(d, at ? &at->start_mark : NULL, key, fmt, ap);
        va_end(ap);
}

void ydiag_vadd_at(struct ydiag *d, const yaml_mark_t *at, const char *key, const char *fmt, va_list ap)
{
        _cleanup_free_ char *what = NULL;
        if (vasprintf(&what, fmt, ap) < 0)
                abort();

        _cleanup_free_ char *where = NULL;
        if (d->path && at)
                where = xasprintf("%s:%zu:%zu: ", d->path, at->line + 1, at->column + 1);
        else if (d->path)
                where = xasprintf("%s: ", d->path);
        else
                where = xstrdup("");
        _cleanup_free_ char *line = key ? xasprintf("%s%s: %s", where, key, what)
                                        : xasprintf("%s%s", where, what);
        ydiag_line(d, line);
}

/* err->msg is fixed: a longer text is cut, and only between characters,
 * since a split UTF-8 sequence makes the message unrenderable in JSON (the
 * key and the value quoted in it come from the file).  Prefers the last
 * whole problem (`sep`, may be NULL) that fits, then says so with `more`;
 * `tail` (may be "") is kept whole after it. */
static int set_cut(struct err *err, enum err_code code, const char *text, const char *sep,
                   const char *more, const char *tail)
{
        size_t len = strlen(text), room = sizeof err->msg - 1 - strlen(tail);
        if (len <= room)
                return err_set(err, code, 0, "%s%s", text, tail);
        size_t keep = room - strlen(more);
        const char *cut = sep ? memrchr(text, *sep, keep) : NULL;
        keep = cut ? (size_t)(cut - text) : utf8_cut(text, len, keep);
        return err_set(err, code, 0, "%.*s%s%s", (int)keep, text, more, tail);
}

int ydiag_result(const struct ydiag *d, enum err_code code, struct err *err)
{
        if (d->count == 0)
                return 0;
        char tail[64] = "";
        if (d->count > 1)
                snprintf(tail, sizeof tail, " (and %zu more problem%s)", d->count - 1,
                         d->count == 2 ? "" : "s");
        return set_cut(err, code, d->first, NULL, "...", tail);
}

int ydiag_result_all(const struct ydiag *d, enum err_code code, struct err *err)
{
        if (d->count == 0)
                return 0;
        return set_cut(err, code, d->joined, ";", "; ...", "");
}

/* ---- mappings ---- */

static char *join_key(const char *prefix, const char *key)
{
        return prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
}

bool yamldoc_key_dup(struct yamldoc *y, const yaml_node_t *map, const yaml_node_pair_t *pair)
{
        const char *k = ynode_str(yamldoc_node(y, pair->key));
        if (!k)
                return false;
        for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
                const char *o = ynode_str(yamldoc_node(y, p->key));
                if (o && !strcmp(o, k))
                        return true;
        }
        return false;
}

int yamldoc_check_keys(struct yamldoc *y, const yaml_node_t *map, const char *prefix,
                       struct ydiag *d)
{
        size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
        if (n > YAMLDOC_MAX_KEYS) {
                ydiag_add(d, map, prefix ? prefix : "(top level)", "%zu keys, more than the %d allowed", n,
                          YAMLDOC_MAX_KEYS);
                return -1;
        }
        int problems = 0;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                const yaml_node_t *kn = yamldoc_node(y, p->key);
                const char *k = ynode_str(kn);
                if (!k) {
                        ydiag_add(d, kn, prefix ? prefix : "(key)", "a key must be a string, not %s",
                                  kn && kn->type == YAML_SCALAR_NODE ? "one with a NUL byte"
                                                                     : ynode_kind(kn));
                        problems++;
                        continue;
                }
                if (yamldoc_key_dup(y, map, p)) {
                        _cleanup_free_ char *name = join_key(prefix, k);
                        ydiag_add(d, kn, name, "duplicate key");
                        problems++;
                }
        }
        return problems;
}

yaml_node_t *yamldoc_get(struct yamldoc *y, const yaml_node_t *map, const char *key)
{
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                const char *k = ynode_str(yamldoc_node(y, p->key));
                if (k && !strcmp(k, key))
                        return yamldoc_node(y, p->value);
        }
        return NULL;
}

/* ---- typed getters ---- */

/* The scalar text of n for a typed getter, or NULL after reporting. */
static const char *scalar_for(const yaml_node_t *n, const char *key, const char *what,
                              struct ydiag *d)
{
        if (!n || n->type != YAML_SCALAR_NODE || ynode_is_null(n)) {
                ydiag_add(d, n, key, "expected %s, got %s", what, ynode_kind(n));
                return NULL;
        }
        const char *s = ynode_str(n);
        if (!s)
                ydiag_add(d, n, key, "contains a NUL byte");
        return s;
}

int yget_string(const yaml_node_t *n, const char *key, struct ydiag *d, char **ret)
{
        const char *s = scalar_for(n, key, "a string", d);
        if (!s)
                return -1;
        free(*ret);
        *ret = xstrdup(s);
        return 0;
}

/* Strict decimal: optional sign, digits, nothing else.  ERANGE is reported
 * through *overflow so the caller can say "out of range" instead of "not an
 * integer". */
static bool parse_decimal(const char *s, int64_t *ret, bool *overflow)
{
        const char *p = s;
        if (*p == '+' || *p == '-')
                p++;
        if (!*p)
                return false;
        for (const char *q = p; *q; q++)
                if (*q < '0' || *q > '9')
                        return false;
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        *overflow = errno == ERANGE;
        *ret = v;
        return true;
}

int yget_int(const yaml_node_t *n, const char *key, int64_t min, int64_t max, struct ydiag *d,
             int64_t *ret)
{
        const char *s = scalar_for(n, key, "an integer", d);
        if (!s)
                return -1;
        int64_t v;
        bool overflow = false;
        if (!parse_decimal(s, &v, &overflow)) {
                ydiag_add(d, n, key, "`%s` is not an integer", s);
                return -1;
        }
        if (overflow || v < min || v > max) {
                ydiag_add(d, n, key, "must be between %lld and %lld, got %s", (long long)min,
                          (long long)max, s);
                return -1;
        }
        *ret = v;
        return 0;
}

static bool looks_like_float(const char *s)
{
        /* [-+]? ( .digits | digits ( .digits? )? ) ( [eE] [-+]? digits )? */
        const char *p = s;
        if (*p == '+' || *p == '-')
                p++;
        size_t digits = 0;
        while (*p >= '0' && *p <= '9')
                p++, digits++;
        if (*p == '.') {
                p++;
                while (*p >= '0' && *p <= '9')
                        p++, digits++;
        }
        if (!digits)
                return false;
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '+' || *p == '-')
                        p++;
                if (!(*p >= '0' && *p <= '9'))
                        return false;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        return *p == '\0';
}

int yget_double(const yaml_node_t *n, const char *key, double min, double max, struct ydiag *d,
                double *ret)
{
        const char *s = scalar_for(n, key, "a number", d);
        if (!s)
                return -1;
        if (!looks_like_float(s)) {
                ydiag_add(d, n, key, "`%s` is not a number", s);
                return -1;
        }
        double v = strtod(s, NULL);
        if (!isfinite(v) || v < min || v > max) {
                ydiag_add(d, n, key, "must be between %g and %g, got %s", min, max, s);
                return -1;
        }
        *ret = v;
        return 0;
}

int yget_bool(const yaml_node_t *n, const char *key, struct ydiag *d, bool *ret)
{
        static const char *const yes[] = { "true", "yes", "on" };
        static const char *const no[] = { "false", "no", "off" };
        const char *s = scalar_for(n, key, "a boolean", d);
        if (!s)
                return -1;
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (!strcasecmp(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
                if (!strcasecmp(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        }
        ydiag_add(d, n, key, "`%s` is not a boolean (true or false)", s);
        return -1;
}

int yget_bytes(const yaml_node_t *n, const char *key, int64_t min, int64_t max, struct ydiag *d,
               int64_t *ret)
{
        static const struct { const char *suffix; int64_t mult; } units[] = {
                { "", 1 }, { "B", 1 }, { "KiB", 1LL << 10 }, { "MiB", 1LL << 20 }, { "GiB", 1LL << 30 },
        };
        const char *s = scalar_for(n, key, "a byte size", d);
        if (!s)
                return -1;
        const char *p = s;
        while (*p >= '0' && *p <= '9')
                p++;
        size_t ndigits = (size_t)(p - s);
        const char *unit = p;
        while (*unit == ' ')
                unit++;
        int64_t mult = 0;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (!strcmp(unit, units[i].suffix))
                        mult = units[i].mult;
        if (ndigits == 0 || mult == 0) {
                ydiag_add(d, n, key, "`%s` is not a byte size (an integer, or one with KiB, MiB or GiB)",
                          s);
                return -1;
        }
        _cleanup_free_ char *num = strndup(s, ndigits);
        if (!num)
                abort();
        int64_t v = 0;
        bool overflow = false;
        parse_decimal(num, &v, &overflow);
        if (overflow || v > INT64_MAX / mult || v * mult < min || v * mult > max) {
                ydiag_add(d, n, key, "must be between %lld and %lld bytes, got %s", (long long)min,
                          (long long)max, s);
                return -1;
        }
        *ret = v * mult;
        return 0;
}

int yget_strv(struct yamldoc *y, const yaml_node_t *n, const char *key, struct ydiag *d,
              char ***ret)
{
        if (!n || n->type != YAML_SEQUENCE_NODE) {
                ydiag_add(d, n, key, "expected a list, got %s", ynode_kind(n));
                return -1;
        }
        /* Filled in place, not by strv_push() (which counts the vector at
         * every call): a file can hold a list of 500,000 items, seconds
         * of quadratic work on the thread that loads it. */
        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start), k = 0;
        _cleanup_strv_ char **v = xcalloc(count + 1, sizeof *v);
        int bad = 0;
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
                const yaml_node_t *item = yamldoc_node(y, *it);
                _cleanup_free_ char *name = xasprintf("%s[%zu]", key, i);
                const char *s = scalar_for(item, name, "a string", d);
                if (!s) {
                        bad++;
                        continue;
                }
                v[k++] = xstrdup(s);
        }
        if (bad)
                return -1;
        strv_free(*ret);
        *ret = TAKE_PTR(v);
        return 0;
}

/* ---- YAML to JSON ---- */

struct to_json {
        struct yamldoc *y;
        struct ydiag *d;
        const char *key;
        size_t nodes;
        size_t bytes;             /* of scalars and keys converted */
        char ptr[1024];           /* JSON pointer of the node being converted */
        size_t ptr_len;
};

/* Append "/seg" (RFC 6901 escaped) to the pointer; returns the old length so
 * the caller can cut it back. */
static size_t ptr_push(struct to_json *c, const char *seg)
{
        size_t old = c->ptr_len;
        size_t n = c->ptr_len;
        if (n + 1 < sizeof c->ptr)
                c->ptr[n++] = '/';
        for (const char *s = seg; *s && n + 2 < sizeof c->ptr; s++) {
                if (*s == '~' || *s == '/') {
                        c->ptr[n++] = '~';
                        c->ptr[n++] = *s == '~' ? '0' : '1';
                } else {
                        c->ptr[n++] = *s;
                }
        }
        c->ptr[n] = '\0';
        c->ptr_len = n;
        return old;
}

static void ptr_pop(struct to_json *c, size_t old)
{
        c->ptr_len = old;
        c->ptr[old] = '\0';
}

static void tj_report(struct to_json *c, const yaml_node_t *n, const char *what)
{
        _cleanup_free_ char *name = xasprintf("%s%s", c->key, c->ptr);
        ydiag_add(c->d, n, name, "%s", what);
}

static json_t *plain_scalar_json(const char *s)
{
        if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
                return json_null();
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
                return json_true();
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
                return json_false();
        int64_t i;
        bool overflow = false;
        if (parse_decimal(s, &i, &overflow) && !overflow)
                return json_integer(i);
        if (looks_like_float(s)) {
                double v = strtod(s, NULL);
                if (isfinite(v))
                        return json_real(v);
        }
        return NULL;   /* a plain string */
}

/* Count one node (or mapping pair) and its text against the budget; false,
 * reported once, when it is spent.  An alias used ten times counts ten
 * times: each use is converted again. */
static bool tj_budget(struct to_json *c, const yaml_node_t *n)
{
        bool spent = c->nodes > YAML_JSON_MAX_NODES || c->bytes > YAML_JSON_MAX_BYTES;
        c->nodes++;
        if (n->type == YAML_SCALAR_NODE)
                c->bytes += n->data.scalar.length;
        if (spent)
                return false;
        if (c->nodes > YAML_JSON_MAX_NODES) {
                tj_report(c, n, "too many nodes (aliases?)");
                return false;
        }
        if (c->bytes > YAML_JSON_MAX_BYTES) {
                _cleanup_free_ char *what = xasprintf("more than %d MiB of text (aliases?)",
                                                      YAML_JSON_MAX_BYTES >> 20);
                tj_report(c, n, what);
                return false;
        }
        return true;
}

static json_t *node_json(struct to_json *c, const yaml_node_t *n, int depth)
{
        if (depth > YAML_JSON_MAX_DEPTH) {
                tj_report(c, n, "nested too deeply");
                return NULL;
        }
        if (!tj_budget(c, n))
                return NULL;
        switch (n->type) {
        case YAML_SCALAR_NODE: {
                const char *s = ynode_str(n);
                if (!s) {
                        tj_report(c, n, "contains a NUL byte");
                        return NULL;
                }
                if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                        json_t *j = plain_scalar_json(s);
                        if (j)
                                return j;
                }
                json_t *j = json_stringn(s, n->data.scalar.length);
                if (!j)
                        tj_report(c, n, "not valid UTF-8");
                return j;
        }
        case YAML_SEQUENCE_NODE: {
                _cleanup_json_ json_t *arr = json_array();
                bool bad = false;
                size_t i = 0;
                for (yaml_node_item_t *it = n->data.sequence.items.start;
                     it < n->data.sequence.items.top; it++, i++) {
                        char idx[32];
                        snprintf(idx, sizeof idx, "%zu", i);
                        size_t old = ptr_push(c, idx);
                        json_t *v = node_json(c, yamldoc_node(c->y, *it), depth + 1);
                        ptr_pop(c, old);
                        if (!v)
                                bad = true;
                        else
                                json_array_append_new(arr, v);
                }
                return bad ? NULL : TAKE_PTR(arr);
        }
        case YAML_MAPPING_NODE: {
                _cleanup_json_ json_t *obj = json_object();
                /* Every key so far, converted or not: a hash lookup, not
                 * yamldoc_key_dup()'s scan of the earlier pairs, because
                 * aliases can convert one big mapping many times. */
                _cleanup_json_ json_t *seen = json_object();
                bool bad = false;
                for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
                     p < n->data.mapping.pairs.top; p++) {
                        const yaml_node_t *kn = yamldoc_node(c->y, p->key);
                        /* A pair whose value is never converted (a bad or
                         * duplicate key) still costs a report. */
                        if (!tj_budget(c, kn)) {
                                bad = true;
                                break;
                        }
                        const char *k = ynode_str(kn);
                        if (!k) {
                                tj_report(c, kn, "a key must be a string");
                                bad = true;
                                continue;
                        }
                        size_t old = ptr_push(c, k);
                        if (json_object_get(seen, k)) {
                                tj_report(c, kn, "duplicate key");
                                bad = true;
                        } else {
                                json_object_set_new(seen, k, json_null());
                                json_t *v = node_json(c, yamldoc_node(c->y, p->value), depth + 1);
                                if (!v)
                                        bad = true;
                                else if (json_object_set_new(obj, k, v) < 0) {
                                        tj_report(c, kn, "key is not valid UTF-8");
                                        bad = true;
                                }
                        }
                        ptr_pop(c, old);
                }
                return bad ? NULL : TAKE_PTR(obj);
        }
        case YAML_NO_NODE:
                break;
        }
        tj_report(c, n, "empty node");
        return NULL;
}

int yamldoc_to_json(struct yamldoc *y, const yaml_node_t *n, const char *key, struct ydiag *d,
                    json_t **ret)
{
        struct to_json c = { .y = y, .d = d, .key = key };
        json_t *j = node_json(&c, n, 0);
        if (!j)
                return -1;
        *ret = j;
        return 0;
}

const yaml_node_t *yamldoc_at_pointer(struct yamldoc *y, const yaml_node_t *n, const char *ptr)
{
        const char *p = ptr;
        while (n && *p == '/') {
                p++;
                size_t seglen = strcspn(p, "/");
                char seg[256];
                size_t k = 0;
                for (size_t i = 0; i < seglen && k + 1 < sizeof seg; i++) {
                        if (p[i] == '~' && i + 1 < seglen && (p[i + 1] == '0' || p[i + 1] == '1')) {
                                seg[k++] = p[i + 1] == '0' ? '~' : '/';
                                i++;
                        } else {
                                seg[k++] = p[i];
                        }
                }
                seg[k] = '\0';
                p += seglen;

                const yaml_node_t *next = NULL;
                if (n->type == YAML_MAPPING_NODE) {
                        next = yamldoc_get(y, n, seg);
                } else if (n->type == YAML_SEQUENCE_NODE) {
                        int64_t idx;
                        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
                        if (parse_int64(seg, 0, INT64_MAX, &idx) && (size_t)idx < count)
                                next = yamldoc_node(y, n->data.sequence.items.start[idx]);
                }
                if (!next)
                        return n;
                n = next;
        }
        return n;
}
