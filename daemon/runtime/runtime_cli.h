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

/* Does the NUL-separated command line cmdline[0..len) (as in
 * /proc/PID/cmdline) give `--root DIR` or `--root=DIR` with DIR inside
 * roots_dir (roots_dir/NAME...)?  Such a process is a runtime call on one
 * of the state dir's roots. */
bool runtime_cli_cmdline_in_roots(const char *cmdline, size_t len, const char *roots_dir);

/* Runtime processes working on roots under roots_dir that another process
 * left running: an edgecd killed with SIGKILL (not its whole service)
 * leaves its runtime calls running, and a `run` or `create` that has not
 * saved its container yet would make one after the start-up sweep, for a
 * run nobody waits for, with a job uid the new daemon hands out again.
 * Each is killed (SIGKILL, through a pidfd, its command line read again
 * first) and waited for up to timeout_ms; /proc is read again until it
 * shows none (three times at most).  At start, before the sweep, while
 * this daemon has no runtime call of its own.  Returns how many were
 * killed; ret_left (if not NULL) is set to how many had not ended by the
 * deadline. */
size_t runtime_cli_stop_strays(const char *roots_dir, int64_t timeout_ms, size_t *ret_left);

#endif
