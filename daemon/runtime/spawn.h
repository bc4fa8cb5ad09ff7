/* spawn.h - run one helper program (an OCI runtime's CLI) to its end, with
 * an environment the caller spells out, a time limit, and its output either
 * on a given fd or captured; or start it and leave the wait to the caller
 * (a runtime running a container in the foreground).
 *
 * The daemon's own environment never reaches a helper: under systemd it
 * holds NOTIFY_SOCKET, which runc takes as a request to proxy the
 * container's sd_notify (so `start` blocks), and LISTEN_FDS, which is not
 * the helper's.  Any thread. */
#ifndef EDGECD_SPAWN_H
#define EDGECD_SPAWN_H

#include <stdint.h>

#include "base/error.h"
#include "reaper.h"

/* What a captured run keeps of its output: the end. */
#define SPAWN_OUTPUT_MAX 8192

struct spawn_request {
        char *const *argv;      /* argv[0]: an absolute path */
        char *const *envp;      /* the helper's whole environment (NULL: empty) */
        int out_fd;             /* stdout and stderr go here; -1: captured */
        int64_t timeout_ms;     /* killed (SIGKILL) after this long */
        const char *cwd;        /* its working directory (NULL: the daemon's) */
        /* Its oom_score_adj set to 1000 before the execve, while it has our
         * privilege: that also makes 1000 its floor, so what it forks (a
         * container's processes) goes first under memory pressure and
         * cannot lower that (a runtime setting the spec's oomScoreAdj
         * leaves the floor at 0: a job could write 0). */
        bool oom_first;
        /* spawn_run() only: called about every watch_ms while the child
         * runs (NULL: never).  A negative return, with err set, kills the
         * child and is spawn_run()'s error (what it takes of a disk, say). */
        int (*watch)(void *ctx, struct err *err);
        void *watch_ctx;
        int64_t watch_ms;
};

struct spawn_result {
        struct proc_exit exit;  /* how it ended: WAIT_EXITED or WAIT_SIGNALED */
        char *output;           /* captured: the last SPAWN_OUTPUT_MAX bytes, NUL-terminated */
};

/* Run it and wait.  0 when it ran to its end, whatever its status; -1 when
 * it could not be started (ERR_RUNTIME "exec `PATH`: No such file or
 * directory") or had to be killed for the time limit (ERR_RUNTIME "`PATH`
 * timed out after N ms and was killed") or by its watch ("`PATH` was
 * killed: " and the watch's words).  stdin is /dev/null, no other fd
 * is inherited, signals are at their defaults and unblocked. */
int spawn_run(const struct spawn_request *req, struct spawn_result *ret, struct err *err);
void spawn_result_done(struct spawn_result *r);

/* Start it and return: *ret is the child, registered (ours to wait for
 * with pidref_wait(), then release).  req->out_fd must be given; the time
 * limit is the caller's to keep. */
int spawn_start(const struct spawn_request *req, struct pidref *ret, struct err *err);

/* "exited with status 1", "killed by signal 9 (Killed)"; caller frees. */
char *spawn_exit_text(const struct proc_exit *e);

#endif
