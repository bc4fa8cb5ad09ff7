/* runtime.h - drives an OCI runtime (youki, crun, runc) through the CLI
 * subset they share: create, start, state, kill, delete; `--root` always.
 *
 * DESIGN: the daemon is a child subreaper (PR_SET_CHILD_SUBREAPER).  `create`
 * forks the container's init and exits; the init is then re-parented to the
 * daemon, which waits for it through a pidfd with the job's deadline.  So we
 * never rely on a runtime's foreground `run` to notice a process that exits
 * at once, and we get the real exit status (a SIGSYS says seccomp, a SIGKILL
 * with an OOM count says memory).  Each runtime call is a fork+exec with an
 * error pipe (libuv's trick) so "could not exec youki" is distinct from
 * "youki failed".  Any worker thread may call these concurrently. */
#ifndef EDGECD_RUNTIME_H
#define EDGECD_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct runtime {
        char *name;   /* "youki", "crun", "runc" */
        char *path;   /* absolute path of the binary */
        char *root;   /* our own --root state directory */
        char *version;/* as `--version` says, e.g. "1.1.5+ds1"; NULL when unknown */
};

enum runtime_op { RUNTIME_CREATE, RUNTIME_START, RUNTIME_STATE, RUNTIME_KILL, RUNTIME_DELETE };

/* Build argv for op (unit-testable).  bundle and pid_file are used by
 * CREATE, signal by KILL ("KILL", "TERM"), force by DELETE.  NULL-terminated,
 * caller frees with strv_free(). */
char **runtime_argv(const struct runtime *rt, enum runtime_op op, const char *id,
                    const char *bundle, const char *pid_file, const char *signal, bool force);

/* Become a child subreaper; once, from main, before any container. */
int runtime_setup_reaper(struct err *err);

/* Resolve the runtime to use: try `preferred` first (a name looked up in
 * PATH, or a path), then crun, then runc; each candidate must run a
 * throw-away probe container (in probe_dir, under cgroup_parent) to be
 * chosen.  report(msg, ctx) hears why each candidate was passed over and
 * which was chosen.  ERR_RUNTIME when none works. */
int runtime_resolve(const char *preferred, const char *root_dir, const char *probe_dir,
                    const char *cgroup_parent, void (*report)(const char *msg, void *ctx),
                    void *ctx, struct runtime **ret, struct err *err);
void runtime_free(struct runtime *rt);

/* `create --bundle B --pid-file P id` with stdin /dev/null and stdout and
 * stderr to log_fd (the container inherits them).  *ret_pid is the
 * container's init.  On failure err holds the runtime's own stderr tail
 * when log_fd is a regular file (read back through the fd),
 * and the caller should still `delete --force` the id (a runtime may leave
 * a half-made container behind).  Needs runtime_setup_reaper() first. */
int runtime_create(const struct runtime *rt, const char *id, const char *bundle,
                   int log_fd, pid_t *ret_pid, struct err *err);
/* A runtime's error output made one line fit for an error message: runc's
 * logrus lines give their msg="..." (level=error first), plain lines stay;
 * long text keeps its end.  For a caller whose log_fd is a pipe, where
 * runtime_create cannot read back what the runtime said.  Caller frees. */
char *runtime_error_text(const char *output);
int runtime_start(const struct runtime *rt, const char *id, struct err *err);
int runtime_kill(const struct runtime *rt, const char *id, const char *signal, struct err *err);
/* `delete [--force] id`; a container that is already gone is success. */
int runtime_delete(const struct runtime *rt, const char *id, bool force, struct err *err);

/* Delete (--force) every container left in rt->root by a daemon that died:
 * their processes, cgroups and state go.  *ret_removed counts them.  Goes
 * on after a failure and returns the first one. */
int runtime_sweep(const struct runtime *rt, size_t *ret_removed, struct err *err);

enum runtime_wait_status { WAIT_EXITED, WAIT_SIGNALED, WAIT_TIMEOUT, WAIT_CANCELLED };

struct runtime_exit {
        enum runtime_wait_status status;
        int exit_code;    /* WAIT_EXITED */
        int signal;       /* WAIT_SIGNALED */
};

/* Wait for pid (our child by subreaping) until deadline_mono_ms
 * (now_mono_ms() clock) or until cancel_fd (an eventfd, -1 for none)
 * becomes readable.  Reaps pid when it exits. */
int runtime_wait(pid_t pid, int64_t deadline_mono_ms, int cancel_fd,
                 struct runtime_exit *ret, struct err *err);

/* Reap zombies that are ours by subreaping but that nobody waits for
 * (pids not in use by runtime_wait).  Called periodically. */
void runtime_reap_orphans(void);

#endif
