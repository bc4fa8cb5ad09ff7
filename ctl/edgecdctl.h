/* edgecdctl.h - what the client's modules share: exit codes, options and
 * the helpers that turn a reply into an exit code. */
#ifndef EDGECDCTL_H
#define EDGECDCTL_H

#define TOKEN_MAX 4096

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "http.h"

enum {
        CTL_OK = 0,          /* success; for submit --wait the job succeeded */
        CTL_JOB = 1,         /* the job ended failed or cancelled */
        CTL_USAGE = 2,      /* bad command line */
        CTL_REFUSED = 3,     /* the server answered 4xx */
        CTL_UNREACHABLE = 4, /* no answer, or 5xx */
        CTL_WAIT = 5,        /* --wait-timeout passed before the job ended */
        CTL_OUTPUT = 6,      /* the output could not be written */
        CTL_INTERRUPTED = 130, /* SIGINT or SIGTERM while waiting (the job goes on) */
};

struct opts {
        const char *url, *unix_path, *token_file;
        bool json;
        /* submit */
        const char *version, *priority, *params_file;
        const char *callback_url;     /* --callback: the daemon checks it against its allowlist */
        long timeout;                 /* -1: not given */
        bool wait;
        double wait_timeout;          /* 0: none */
        const char **pairs;           /* -p key=value, pointers into argv */
        size_t npairs;
        /* jobs */
        const char *status, *algorithm;
        long limit;                   /* -1: not given */
        /* positional arguments after the command */
        char **pos;
        int npos;
};

/* A finished request as an exit code: CTL_OK for 2xx, else the error is
 * printed on stderr and CTL_REFUSED or CTL_UNREACHABLE returned. */
int reply_check(struct conn *c, int rc, const struct reply *r);
/* GET path, checked, parsed: CTL_OK with *out set (json_decref it), or the
 * exit code.  raw, when not NULL, receives the reply (free with reply_free). */
int get_json(struct conn *c, const char *path, json_t **out, struct reply *raw);
/* Prints j on stdout, indented, with a newline. */
void print_json(const json_t *j);
/* Prints a reply's body on stdout as it came, ending with a newline. */
/* Out to stdout; on a terminal, C0 controls but newline and tab, DEL and
 * C1 (C2 80..C2 9F) become '?' first, so that what a job or the server
 * sent cannot drive the operator's terminal; piped, the bytes as they are. */
void write_to_terminal(char *s, size_t n);
/* A reply's body as it is (write_to_terminal), ending with a newline. */
void print_raw(const struct reply *r);
/* A job object as a few labelled lines on stdout. */
void show_job(const json_t *j);

int cmd_submit(struct conn *c, const struct opts *o);
int cmd_jobs(struct conn *c, const struct opts *o);
int cmd_show(struct conn *c, const struct opts *o);
int cmd_logs(struct conn *c, const struct opts *o);
int cmd_cancel(struct conn *c, const struct opts *o);
int cmd_algorithms(struct conn *c, const struct opts *o);
int cmd_health(struct conn *c, const struct opts *o);

#endif
