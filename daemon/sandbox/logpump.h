/* logpump.h - a container's stdout and stderr, copied into a size-capped
 * log file.
 *
 * The container inherits the write end of a pipe; the process's one pump
 * thread copies what arrives into the file up to `cap` bytes and drops the
 * rest (noting that it did), so an algorithm that prints without end can
 * neither fill the state disk nor block on a full pipe.  One pump per run;
 * any thread; no thread per run. */
#ifndef EDGECD_LOGPUMP_H
#define EDGECD_LOGPUMP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct logpump;

/* The last bytes a run printed are kept in memory whatever the cap and the
 * disk did with them: a failed run's message quotes its end, not the end of
 * what fit in the file. */
#define LOGPUMP_TAIL_MAX 1024

/* Start copying into path, which is made (truncated, 0640, no symlink
 * followed) when the first byte comes: a run that prints nothing leaves no
 * file (read as an empty log).  A file that cannot be made is a failed
 * write (logpump_stop's *ret_write_errno).
 * *ret_write_fd is the pipe's write end for the container (close-on-exec),
 * still the pump's: logpump_stop closes it. */
int logpump_start(const char *path, size_t cap, struct logpump **ret, int *ret_write_fd,
                  struct err *err);

/* After the run's end: copy what the pipe holds, stop, free.  What
 * arrives later (nothing a run that ended can write) is not read.
 * *ret_truncated says whether output was
 * dropped (over the cap, or a write failed), *ret_write_errno why the first
 * write that failed did (0: none), *ret_tail (the caller frees) holds the
 * last LOGPUMP_TAIL_MAX bytes that came down the pipe, a NUL byte among
 * them as '?'.  NULL is fine for all four. */
void logpump_stop(struct logpump *lp, bool *ret_truncated, int *ret_write_errno, char **ret_tail);

/* Copy into path from now on, moving what was written so far there
 * (rename: the same filesystem). */
int logpump_move(struct logpump *lp, const char *path, struct err *err);

/* End the pump thread (at exit, after every pump has been stopped). */
void logpump_shutdown(void);

#endif
