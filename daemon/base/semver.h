/* semver.h - semantic versions (semver 2.0) and ranges of them, written as
 * npm writes them: "1.2.3", "^1.2", "~1.2.3", ">=1.0.0 <2.0.0", "1.x",
 * "1.2.3 - 2.0.0", "^1 || ^2".
 *
 * DESIGN: a range is a union (||) of sets, each an intersection of
 * comparators (an operator and a version); carets, tildes, x-ranges and
 * hyphens are turned into comparators when parsed, so matching is only
 * comparisons.  Pre-releases are taken only when named: a version with a
 * pre-release tag satisfies a set only when one of its comparators, as
 * written, names a pre-release of the same MAJOR.MINOR.PATCH (npm's rule),
 * so "^1.2" never picks 1.3.0-rc.1 and ">=1.3.0-rc.1" may.  Immutable once
 * parsed; any thread. */
#ifndef EDGECD_SEMVER_H
#define EDGECD_SEMVER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct semver {
        int64_t major, minor, patch;
        char *prerelease;         /* NULL when none; build metadata is ignored */
};

/* Parse "1.2.3", "1.2.3-rc.1", "1.2.3+build".  0 or -1. */
int semver_parse(const char *s, struct semver *ret, struct err *err);
/* <0, 0, >0 as a < b, a == b, a > b, by semver 2.0 precedence. */
int semver_compare(const struct semver *a, const struct semver *b);
void semver_done(struct semver *v);

/* Longest range text accepted (it comes from requests). */
#define SEMVER_RANGE_MAX 256

struct semver_range;

/* Parse a range; ERR_INVALID naming what is wrong. */
int semver_range_parse(const char *s, struct semver_range **ret, struct err *err);
bool semver_range_match(const struct semver_range *r, const struct semver *v);
void semver_range_free(struct semver_range *r);   /* NULL is fine */

#endif
