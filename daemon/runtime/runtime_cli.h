/* runtime_cli.h - the runtime driver for the OCI command line that youki,
 * crun and runc share: `--root R run [--detach] --bundle B --pid-file P
 * ID`, `create --bundle B --pid-file P ID`, `start ID`, `state ID`, `kill ID SIG`, `delete --force ID`, `--version`.
 * Nothing beyond that subset is used, and no runtime's wording is parsed to
 * decide anything: a container exists while its directory R/ID does (the
 * three keep their per-container state there).
 *
 * The driver's operations are reached through runtime.h; this header holds
 * what the unit tests check on their own. */
#ifndef EDGECD_RUNTIME_CLI_H
#define EDGECD_RUNTIME_CLI_H

#include <stdbool.h>

#include "runtime.h"

extern const struct runtime_ops runtime_cli_ops;

enum runtime_cli_op { CLI_CREATE, CLI_RUN, CLI_RUN_ATTACHED, CLI_START, CLI_STATE, CLI_KILL, CLI_DELETE };

/* argv for op (NULL-terminated, caller frees with strv_free).  bundle and
 * pid_file are used by CREATE, RUN and RUN_ATTACHED, sig by KILL.  NULL on bad arguments. */
char **runtime_cli_argv(const struct runtime *rt, enum runtime_cli_op op, const char *id,
                        const char *bundle, const char *pid_file, const char *sig);

/* A runtime's error output made one line fit for an error message: runc's
 * logrus lines give their msg="..." (level=error first), plain lines stay;
 * long text keeps its end; "" when there was nothing.  Caller frees. */
char *runtime_cli_error_text(const char *output);

/* The version in a `--version` output's first line: "runc version 1.1.5+ds1",
 * "crun version 1.8.1", "youki version: 0.7.0" (and "youki version 0.7.0")
 * give the number; NULL when there is none.  Caller frees. */
char *runtime_cli_parse_version(const char *output);

/* The DIR of `--root DIR` or `--root=DIR` in the NUL-separated command
 * line cmdline[0..len) (as in /proc/PID/cmdline) when DIR is inside
 * roots_dir (roots_dir/NAME...), a pointer into cmdline; else NULL.  Such a
 * process is a runtime call on one of a state dir's roots.  roots_dir is
 * absolute, and not "/". */
const char *runtime_cli_cmdline_root(const char *cmdline, size_t len, const char *roots_dir);

/* Runtime processes working on roots under roots_dir that another process
 * left running: an edgecd killed with SIGKILL (not its whole service)
 * leaves its runtime calls running, and a `run` or `create` that has not
 * saved its container yet would make one after the start-up sweep, for a
 * run nobody waits for, with a job uid the new daemon hands out again.
 * A process is taken for one when it runs under a runtime's name (a
 * root's name under roots_dir, or its binary's in NAME.path), has `--root`
 * on one of these roots in its command line, and sees roots_dir as the
 * same directory as this process does (not a daemon in a container with a
 * state dir of the same path).  Each is killed (SIGKILL, through a pidfd,
 * looked at again first) and waited for up to timeout_ms; /proc is read
 * again until it shows none (three times at most).  At start, before the
 * sweep, while this daemon has no runtime call of its own. */
struct runtime_strays {
        size_t killed;
        size_t left;        /* of those, not ended by the deadline */
        size_t skipped;     /* found, not killed: no pidfd for it */
        int pidfd_errno;    /* why, when skipped */
};
void runtime_cli_stop_strays(const char *roots_dir, int64_t timeout_ms, struct runtime_strays *ret);

#endif
