/* result.c - a finished container's outcome turned into a code of the error
 * taxonomy (joberror.h), and the reading of /output/result.json.  No
 * state: any worker thread may call it.
 *
 * result.json was written by untrusted code, so it is opened without
 * following links, relative to the output directory, non-blocking (a FIFO
 * must not hang the worker), checked to be a regular file and sized with
 * fstat before a single byte is read. */
#include "result.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "base/heartbeat.h"
#include "base/jsontext.h"
#include "base/util.h"

#define RESULT_NAME "result.json"
#define STDERR_TAIL_MAX 1024
/* How long a result the daemon cannot read for want of its own descriptors
 * or memory is tried again (under WatchdogSec's 30 s). */
#define RESULT_RETRY_MS 10000
#define RESULT_RETRY_PAUSE_MS 100

static const char *file_kind(mode_t m)
{
        if (S_ISDIR(m))
                return "a directory";
        if (S_ISFIFO(m))
                return "a FIFO";
        if (S_ISSOCK(m))
                return "a socket";
        if (S_ISCHR(m) || S_ISBLK(m))
                return "a device";
        return "not a regular file";
}

int result_read(const char *output_dir, int64_t max_bytes, char **ret_text, size_t *ret_len,
                struct err *err)
{
        _cleanup_close_ int dfd = open(output_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return err_errno(err, ERR_IO, "open output directory `%s`", output_dir);
        _cleanup_close_ int fd = openat(dfd, RESULT_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                switch (errno) {
                case ENOENT:
                        return err_set(err, ERR_NOT_FOUND, 0, RESULT_NAME " is missing");
                case ELOOP:
                        return err_set(err, ERR_INVALID, 0, RESULT_NAME " is a symlink");
                case ENXIO:   /* a socket */
                        return err_set(err, ERR_INVALID, 0, RESULT_NAME " is not a regular file");
                default:
                        return err_errno(err, ERR_IO, "open " RESULT_NAME);
                }
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return err_errno(err, ERR_IO, "stat " RESULT_NAME);
        if (!S_ISREG(st.st_mode))
                return err_set(err, ERR_INVALID, 0, RESULT_NAME " is %s", file_kind(st.st_mode));
        if (max_bytes < 0)
                max_bytes = 0;
        if (st.st_size > max_bytes)
                return err_set(err, ERR_TOO_LARGE, 0, RESULT_NAME " is %lld bytes, over the limit of %lld",
                               (long long)st.st_size, (long long)max_bytes);

        /* Read up to one byte past the limit: the container is gone, but a
         * file still growing (a leftover writer) must not slip past.  The
         * buffer starts at the fstat size, not at the limit. */
        size_t max = (size_t)max_bytes;
        size_t cap = (size_t)st.st_size + 1;
        _cleanup_free_ char *buf = xmalloc(cap);
        size_t got = 0;
        while (got <= max) {
                if (got == cap) {
                        cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
                        buf = xrealloc(buf, cap);
                }
                ssize_t n = read(fd, buf + got, cap - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_errno(err, ERR_IO, "read " RESULT_NAME);
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        if (got > max)
                return err_set(err, ERR_TOO_LARGE, 0, RESULT_NAME " grew over the limit of %lld bytes",
                               (long long)max_bytes);

        buf[got] = '\0';
        struct err jerr = ERR_INIT;
        if (jsontext_check(buf, got, 0, &jerr) < 0)
                return err_set(err, ERR_INVALID, 0, RESULT_NAME ": %s", jerr.msg);
        *ret_text = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = got;
        return 0;
}

static char *signal_name(int sig)
{
        const char *abbrev = sigabbrev_np(sig);
        return abbrev ? xasprintf("SIG%s", abbrev) : xasprintf("signal %d", sig);
}

/* The last STDERR_TAIL_MAX bytes of s, whitespace trimmed at both ends,
 * control characters but newline and tab replaced so the message is safe
 * to log and to put in JSON.  NULL when nothing is left. */
static char *trim_tail(const char *s)
{
        if (!s)
                return NULL;
        size_t n = strlen(s);
        if (n > STDERR_TAIL_MAX)
                s += n - STDERR_TAIL_MAX;
        while (*s && isspace((unsigned char)*s))
                s++;
        n = strlen(s);
        while (n > 0 && isspace((unsigned char)s[n - 1]))
                n--;
        if (n == 0)
                return NULL;
        char *t = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                t[i] = (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : (char)c;
        }
        t[n] = '\0';
        return t;
}

/* Messages quote bytes the algorithm wrote (its stderr, jansson's "near
 * '...'"), and end up in JSON, where jansson refuses invalid UTF-8: replace
 * every byte that is not part of a valid sequence with '?', in place. */
static void sanitize_utf8(char *msg)
{
        unsigned char *s = (unsigned char *)msg;
        while (*s) {
                size_t n = utf8_seq_len((const char *)s, strlen((const char *)s));
                if (n == 0) {
                        *s++ = '?';
                        continue;
                }
                s += n;
        }
}

static enum job_error fail(enum job_error e, char **ret_message, char *msg)
{
        sanitize_utf8(msg);
        if (ret_message)
                *ret_message = msg;
        else
                free(msg);
        return e;
}

enum job_error result_classify(const struct outcome *o, const char *output_dir,
                               int64_t max_result_bytes, char **ret_result, size_t *ret_len,
                               char **ret_message, int *ret_errnum)
{
        if (ret_result)
                *ret_result = NULL;
        if (ret_len)
                *ret_len = 0;
        if (ret_message)
                *ret_message = NULL;
        if (ret_errnum)
                *ret_errnum = 0;

        const struct proc_exit *x = &o->exit;
        switch (x->status) {
        case WAIT_CANCELLED:
                return fail(JOB_ERR_CANCELLED, ret_message, xstrdup("cancelled while running"));
        case WAIT_TIMEOUT:
                return fail(JOB_ERR_TIMEOUT, ret_message, xstrdup("did not finish within its time limit"));
        case WAIT_SIGNALED: {
                enum job_error e;
                _cleanup_free_ char *what = NULL;
                if (x->signal == SIGSYS) {
                        e = JOB_ERR_SANDBOX_VIOLATION;
                        what = xstrdup("killed by seccomp: forbidden system call");
                } else if (o->oom_killed || (!o->oom_known && x->signal == SIGKILL && o->limit_hit)) {
                        /* Nobody else sends a SIGKILL (a timeout or cancel is
                         * told apart above): at the memory limit it is the OOM
                         * killer, when the kernel kept no count of it (cgroup
                         * v1, the container's cgroup gone with its runtime). */
                        e = JOB_ERR_OUT_OF_MEMORY;
                        what = xstrdup("killed by the kernel: out of memory (memory limit reached)");
                } else {
                        _cleanup_free_ char *name = signal_name(x->signal);
                        e = JOB_ERR_ALGORITHM_FAILED;
                        what = xasprintf("killed by signal %s", name);
                }
                if (!x->from_status)
                        return fail(e, ret_message, TAKE_PTR(what));
                /* The runtime said 128+N: an algorithm that exited with
                 * that status itself (a shell passing on a child's, or its
                 * own choice) reads the same, so say both, with the output
                 * tail an exit would have had. */
                _cleanup_free_ char *tail = trim_tail(o->stderr_tail);
                return fail(e, ret_message,
                            tail ? xasprintf("%s (or exited with status %d): %s", what, x->exit_code, tail)
                                 : xasprintf("%s (or exited with status %d)", what, x->exit_code));
        }
        case WAIT_EXITED:
                break;
        }

        if (x->exit_code != 0) {
                /* The init exiting non-zero after the OOM killer hit one of
                 * its processes (a shell whose child died) is memory too. */
                if (o->oom_killed || (!o->oom_known && x->exit_code == 128 + SIGKILL && o->limit_hit))
                        return fail(JOB_ERR_OUT_OF_MEMORY, ret_message,
                                    xasprintf("out of memory (memory limit reached); exited with status %d",
                                              x->exit_code));
                _cleanup_free_ char *tail = trim_tail(o->stderr_tail);
                /* A shell reports a child killed by signal N as 128+N. */
                const char *hint = x->exit_code == 128 + SIGSYS ? " (a child killed by seccomp?)" : "";
                return fail(JOB_ERR_ALGORITHM_FAILED, ret_message,
                            tail ? xasprintf("exited with status %d%s: %s", x->exit_code, hint, tail)
                                 : xasprintf("exited with status %d%s", x->exit_code, hint));
        }

        char *result = NULL;
        size_t len = 0;
        struct err e = ERR_INIT;
        int rc;
        /* The run succeeded and its output is still there: a daemon short
         * of descriptors for a moment must not lose the result. */
        for (int64_t until = now_mono_ms() + RESULT_RETRY_MS;
             (rc = result_read(output_dir, max_result_bytes, &result, &len, &e)) < 0 &&
             (e.errnum == EMFILE || e.errnum == ENFILE || e.errnum == ENOMEM) && now_mono_ms() < until;) {
                heartbeat_beat();
                sleep_ms(RESULT_RETRY_PAUSE_MS);
                err_clear(&e);
        }
        if (rc < 0) {
                enum job_error je;
                switch (e.code) {
                case ERR_NOT_FOUND:
                        return fail(JOB_ERR_NO_RESULT, ret_message,
                                    xstrdup("exited with status 0 but wrote no /output/" RESULT_NAME));
                case ERR_TOO_LARGE:
                        je = JOB_ERR_RESULT_TOO_LARGE;
                        break;
                case ERR_INVALID:
                        je = JOB_ERR_INVALID_RESULT;
                        break;
                default:
                        /* The daemon could not look: not the algorithm's
                         * fault, and the caller is told why (out of
                         * descriptors past the retries, say). */
                        je = JOB_ERR_RUNTIME_ERROR;
                        if (ret_errnum)
                                *ret_errnum = e.errnum;
                        break;
                }
                return fail(je, ret_message, xasprintf("%s", e.msg));
        }
        if (ret_len)
                *ret_len = len;
        if (ret_result)
                *ret_result = result;
        else
                free(result);
        return JOB_ERR_NONE;
}
