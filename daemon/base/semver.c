/* semver.c - semantic versions and npm-style ranges (see semver.h). */
#include "semver.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"


/* A numeric identifier: "0" or no leading zero.  Returns chars consumed. */
static size_t parse_num(const char *s, int64_t *ret)
{
        size_t n = strspn(s, "0123456789");
        if (n == 0 || (n > 1 && s[0] == '0') || n > 18)
                return 0;
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        *ret = v;
        return n;
}

static bool all_digits(const char *s, size_t n)
{
        return n > 0 && strspn(s, "0123456789") >= n;
}

/* Dot-separated identifiers of [0-9A-Za-z-], none empty; numeric ones in a
 * pre-release may not have leading zeros. */
static bool valid_idents(const char *s, size_t len, bool numeric_no_lead)
{
        static const char ok[] =
                "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-";
        size_t i = 0;
        for (;;) {
                size_t n = 0;
                while (i + n < len && s[i + n] != '.') {
                        if (!strchr(ok, s[i + n]))
                                return false;
                        n++;
                }
                if (n == 0)
                        return false;
                if (numeric_no_lead && all_digits(s + i, n) && n > 1 && s[i] == '0')
                        return false;
                i += n;
                if (i == len)
                        return true;
                i++;   /* the dot */
        }
}

int semver_parse(const char *s, struct semver *ret, struct err *err)
{
        struct semver v = { 0 };
        const char *p = s;
        int64_t *parts[] = { &v.major, &v.minor, &v.patch };
        for (size_t i = 0; i < 3; i++) {
                size_t n = parse_num(p, parts[i]);
                if (n == 0)
                        return err_set(err, ERR_INVALID, 0,
                                       "`%s` is not a semantic version (MAJOR.MINOR.PATCH, no leading zeros)",
                                       s);
                p += n;
                if (i < 2) {
                        if (*p != '.')
                                return err_set(err, ERR_INVALID, 0,
                                               "`%s` is not a semantic version (MAJOR.MINOR.PATCH)", s);
                        p++;
                }
        }
        const char *pre = NULL;
        size_t pre_len = 0;
        if (*p == '-') {
                pre = ++p;
                pre_len = strcspn(p, "+");
                if (!valid_idents(pre, pre_len, true))
                        return err_set(err, ERR_INVALID, 0, "`%s`: bad pre-release `%.*s`", s,
                                       (int)pre_len, pre);
                p += pre_len;
        }
        if (*p == '+') {
                p++;
                if (!valid_idents(p, strlen(p), false))
                        return err_set(err, ERR_INVALID, 0, "`%s`: bad build metadata `%s`", s, p);
                p += strlen(p);
        }
        if (*p)
                return err_set(err, ERR_INVALID, 0,
                               "`%s` is not a semantic version (MAJOR.MINOR.PATCH)", s);
        if (pre) {
                v.prerelease = strndup(pre, pre_len);
                if (!v.prerelease)
                        abort();
        }
        *ret = v;
        return 0;
}

static int cmp_i64(int64_t a, int64_t b)
{
        return a < b ? -1 : a > b;
}

int semver_compare(const struct semver *a, const struct semver *b)
{
        int c;
        if ((c = cmp_i64(a->major, b->major)) || (c = cmp_i64(a->minor, b->minor)) ||
            (c = cmp_i64(a->patch, b->patch)))
                return c;
        /* A release ranks above any of its pre-releases. */
        if (!a->prerelease || !b->prerelease)
                return !a->prerelease - !b->prerelease;
        const char *x = a->prerelease, *y = b->prerelease;
        for (;;) {
                size_t xn = strcspn(x, "."), yn = strcspn(y, ".");
                bool xd = all_digits(x, xn), yd = all_digits(y, yn);
                if (xd && yd) {
                        /* No leading zeros: the longer number is larger. */
                        if (xn != yn)
                                return xn < yn ? -1 : 1;
                        c = strncmp(x, y, xn);
                } else if (xd != yd) {
                        return xd ? -1 : 1;   /* numeric ranks below alphanumeric */
                } else {
                        c = strncmp(x, y, xn < yn ? xn : yn);
                        if (!c && xn != yn)
                                c = xn < yn ? -1 : 1;
                }
                if (c)
                        return c < 0 ? -1 : 1;
                x += xn;
                y += yn;
                if (!*x || !*y)
                        return !*x && !*y ? 0 : !*x ? -1 : 1;
                x++;
                y++;
        }
}

void semver_done(struct semver *v)
{
        if (!v)
                return;
        free(v->prerelease);
        v->prerelease = NULL;
}

/* ---- ranges ---- */

static char *strndup_or_die(const char *s, size_t n)
{
        char *r = strndup(s, n);
        if (!r)
                abort();
        return r;
}

enum op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ };

struct comparator {
        enum op op;
        struct semver v;
        bool named_pre;          /* v's pre-release was written in the range */
};

struct cset {
        struct comparator *c;
        size_t n;
};

struct semver_range {
        struct cset *sets;
        size_t n;
};

/* A version as written in a range: up to three numbers, the rest
 * wildcards (x, X, *) or absent; a pre-release only after all three. */
struct partial {
        int64_t part[3];
        int n;                   /* numbers given: 0..3 */
        char *prerelease;
};

static bool is_wild(char c)
{
        return c == 'x' || c == 'X' || c == '*';
}

/* Parse one partial version filling the whole of [s, s+len). */
static bool parse_partial(const char *s, size_t len, struct partial *ret)
{
        *ret = (struct partial){ .n = 0 };
        /* npm's `v`; not `V`, which it refuses. */
        if (len && s[0] == 'v')
                s++, len--;
        size_t i = 0;
        bool wild = false;
        for (int k = 0; k < 3 && i < len; k++) {
                if (k > 0) {
                        if (s[i] != '.')
                                break;
                        if (++i == len)
                                return false;   /* "1." */
                }
                if (i < len && is_wild(s[i])) {
                        wild = true;
                        i++;
                        continue;
                }
                if (wild)
                        return false;   /* a number after a wildcard */
                char num[20];
                size_t dn = strspn(s + i, "0123456789");
                if (dn == 0 || dn >= sizeof num || i + dn > len)
                        return false;
                memcpy(num, s + i, dn);
                num[dn] = '\0';
                if (parse_num(num, &ret->part[k]) != dn)
                        return false;
                ret->n = k + 1;
                i += dn;
        }
        if (i == 0)
                return false;
        if (i < len && s[i] == '-') {
                if (ret->n != 3)
                        return false;
                size_t pl = strcspn(s + i + 1, "+");
                if (i + 1 + pl > len)
                        pl = len - i - 1;
                if (!valid_idents(s + i + 1, pl, true))
                        return false;
                ret->prerelease = strndup_or_die(s + i + 1, pl);
                i += 1 + pl;
        }
        if (i < len && s[i] == '+') {
                if (ret->n != 3 || !valid_idents(s + i + 1, len - i - 1, false)) {
                        free(ret->prerelease);
                        return false;
                }
                i = len;
        }
        if (i != len) {
                free(ret->prerelease);
                return false;
        }
        return true;
}

static void add(struct cset *set, enum op op, int64_t major, int64_t minor, int64_t patch, const char *pre,
                bool named)
{
        set->c = xrealloc(set->c, (set->n + 1) * sizeof *set->c);
        set->c[set->n++] = (struct comparator){
                .op = op, .v = { major, minor, patch, pre ? xstrdup(pre) : NULL }, .named_pre = named && pre,
        };
}

/* Nothing matches: below every version. */
static void add_none(struct cset *set)
{
        add(set, OP_LT, 0, 0, 0, "0", false);
}

/* The versions below the next MAJOR (n 1) or MINOR (n 2) of p: up to,
 * not including, its first pre-release. */
static void add_below_next(struct cset *set, const struct partial *p, int n)
{
        if (n == 1)
                add(set, OP_LT, p->part[0] + 1, 0, 0, "0", false);
        else if (n == 2)
                add(set, OP_LT, p->part[0], p->part[1] + 1, 0, "0", false);
        else
                add(set, OP_LT, p->part[0], p->part[1], p->part[2] + 1, "0", false);
}

static void add_from(struct cset *set, const struct partial *p)
{
        add(set, OP_GE, p->part[0], p->n > 1 ? p->part[1] : 0, p->n > 2 ? p->part[2] : 0, p->prerelease, true);
}

/* One operator and partial version, as comparators. */
static void desugar(struct cset *set, const char *op, const struct partial *p)
{
        int n = p->n;
        if (!strcmp(op, "^")) {
                if (n == 0)
                        return;
                add_from(set, p);
                /* The first non-zero part given may not change. */
                int keep = p->part[0] > 0 || n == 1 ? 1 : n == 2 || p->part[1] > 0 ? 2 : 3;
                add_below_next(set, p, keep);
        } else if (!strcmp(op, "~")) {
                if (n == 0)
                        return;
                add_from(set, p);
                add_below_next(set, p, n == 1 ? 1 : 2);
        } else if (!strcmp(op, "") || !strcmp(op, "=")) {
                if (n == 3) {
                        add(set, OP_EQ, p->part[0], p->part[1], p->part[2], p->prerelease, true);
                } else if (n > 0) {
                        add_from(set, p);
                        add_below_next(set, p, n);
                }
        } else if (!strcmp(op, ">=")) {
                if (n > 0)
                        add_from(set, p);
        } else if (!strcmp(op, ">")) {
                if (n == 3)
                        add(set, OP_GT, p->part[0], p->part[1], p->part[2], p->prerelease, true);
                else if (n == 2)
                        add(set, OP_GE, p->part[0], p->part[1] + 1, 0, NULL, false);
                else if (n == 1)
                        add(set, OP_GE, p->part[0] + 1, 0, 0, NULL, false);
                else
                        add_none(set);
        } else if (!strcmp(op, "<")) {
                if (n == 3)
                        add(set, OP_LT, p->part[0], p->part[1], p->part[2], p->prerelease, true);
                else if (n > 0)
                        add(set, OP_LT, p->part[0], n > 1 ? p->part[1] : 0, 0, "0", false);
                else
                        add_none(set);
        } else if (!strcmp(op, "<=")) {
                if (n == 3)
                        add(set, OP_LE, p->part[0], p->part[1], p->part[2], p->prerelease, true);
                else if (n > 0)
                        add_below_next(set, p, n);
        }
}

static bool is_op_char(char c)
{
        return c == '<' || c == '>' || c == '=' || c == '^' || c == '~';
}

/* Words of one set (between ||), split on blanks; an operator standing
 * alone joins the next word (">= 1.2.3"). */
static char **words(const char *s, size_t len)
{
        char **w = NULL;
        size_t i = 0;
        char *pending = NULL;
        while (i < len) {
                while (i < len && isspace((unsigned char)s[i]))
                        i++;
                size_t n = 0;
                while (i + n < len && !isspace((unsigned char)s[i + n]))
                        n++;
                if (!n)
                        break;
                char *word = strndup_or_die(s + i, n);
                i += n;
                if (pending) {
                        char *joined = xasprintf("%s%s", pending, word);
                        free(pending);
                        free(word);
                        word = joined;
                        pending = NULL;
                }
                if (strspn(word, "<>=^~") == strlen(word) && strcmp(word, "-")) {
                        pending = word;
                        continue;
                }
                strv_push(&w, word);
                free(word);
        }
        if (pending) {
                strv_push(&w, pending);   /* an operator with nothing after it: refused below */
                free(pending);
        }
        return w;
}

static int parse_set(const char *s, size_t len, struct cset *set)
{
        _cleanup_strv_ char **w = words(s, len);
        size_t n = strv_len(w);
        struct partial a, b;
        if (n == 3 && !strcmp(w[1], "-")) {
                /* A hyphen range: both ends included, as far as written. */
                if (!parse_partial(w[0], strlen(w[0]), &a))
                        return -1;
                if (!parse_partial(w[2], strlen(w[2]), &b)) {
                        free(a.prerelease);
                        return -1;
                }
                if (a.n > 0)
                        add_from(set, &a);
                if (b.n == 3)
                        add(set, OP_LE, b.part[0], b.part[1], b.part[2], b.prerelease, true);
                else if (b.n > 0)
                        add_below_next(set, &b, b.n);
                free(a.prerelease);
                free(b.prerelease);
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                size_t ol = 0;
                while (is_op_char(w[i][ol]))
                        ol++;
                char op[3] = "";
                if (ol > 2)
                        return -1;
                memcpy(op, w[i], ol);
                static const char *const ops[] = { "", "=", "<", "<=", ">", ">=", "^", "~" };
                bool known = false;
                for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
                        known = known || !strcmp(op, ops[k]);
                if (!known || !parse_partial(w[i] + ol, strlen(w[i] + ol), &a))
                        return -1;
                desugar(set, op, &a);
                free(a.prerelease);
        }
        return n > 0 ? 0 : -1;
}

void semver_range_free(struct semver_range *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                for (size_t k = 0; k < r->sets[i].n; k++)
                        semver_done(&r->sets[i].c[k].v);
                free(r->sets[i].c);
        }
        free(r->sets);
        free(r);
}

int semver_range_parse(const char *s, struct semver_range **ret, struct err *err)
{
        *ret = NULL;
        if (!s || !*s || strlen(s) > SEMVER_RANGE_MAX)
                return err_set(err, ERR_INVALID, 0, "a version range is 1 to %d characters", SEMVER_RANGE_MAX);
        struct semver_range *r = xcalloc(1, sizeof *r);
        const char *p = s;
        for (;;) {
                const char *bar = strstr(p, "||");
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                r->sets = xrealloc(r->sets, (r->n + 1) * sizeof *r->sets);
                r->sets[r->n] = (struct cset){ 0 };
                int rc = parse_set(p, len, &r->sets[r->n]);
                r->n++;
                if (rc < 0) {
                        semver_range_free(r);
                        return err_set(err, ERR_INVALID, 0,
                                       "`%s` is not a version or a version range (e.g. \"1.2.3\", \"^1.2\", "
                                       "\"~1.2.3\", \">=1.0.0 <2.0.0\", \"1.x\")", s);
                }
                if (!bar)
                        break;
                p = bar + 2;
        }
        *ret = r;
        return 0;
}

static bool satisfies(const struct comparator *c, const struct semver *v)
{
        int cmp = semver_compare(v, &c->v);
        switch (c->op) {
        case OP_LT: return cmp < 0;
        case OP_LE: return cmp <= 0;
        case OP_GT: return cmp > 0;
        case OP_GE: return cmp >= 0;
        case OP_EQ: return cmp == 0;
        }
        return false;
}

bool semver_range_match(const struct semver_range *r, const struct semver *v)
{
        for (size_t i = 0; r && i < r->n; i++) {
                const struct cset *set = &r->sets[i];
                bool ok = true, named = !v->prerelease;
                for (size_t k = 0; k < set->n && ok; k++) {
                        const struct comparator *c = &set->c[k];
                        ok = satisfies(c, v);
                        if (c->named_pre && c->v.major == v->major && c->v.minor == v->minor &&
                            c->v.patch == v->patch)
                                named = true;
                }
                if (ok && named)
                        return true;
        }
        return false;
}
