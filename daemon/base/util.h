/* util.h - cleanup attributes, ownership moves and small helpers shared by
 * every module.  Nothing here keeps state. */
#ifndef EDGECD_UTIL_H
#define EDGECD_UTIL_H

#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"

/* ---- cleanup attributes (see crun's utils.h, systemd's alloc-util.h) ---- */

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
/* json_decrefp() comes with jansson >= 2.11. */
void strv_free(char **v);
static inline void strv_freep(char ***v) { strv_free(*v); }

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_json_ _cleanup_(json_decrefp)
#define _cleanup_strv_ _cleanup_(strv_freep)

/* Move ownership out of a cleanup variable, leaving NULL (or -1) behind. */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is fatal: a daemon that cannot allocate a few bytes
 * cannot report anything useful either. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* len bytes of p and a NUL after them (NULL for a NULL p). */
char *xmemdup0(const void *p, size_t len);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A random (version 4) UUID as lower-case text, 36 characters and a NUL. */
#define UUID_TEXT_SIZE 37
void uuid_random_text(char out[UUID_TEXT_SIZE]);

/* ---- NULL-terminated string vectors ---- */
size_t strv_len(char *const *v);
char **strv_dup(char *const *v);
/* Append a copy of s; *v may be NULL. */
void strv_push(char ***v, const char *s);
/* Append s to a growing "; "-separated string (*acc NULL: none yet). */
void strv_join_append(char **acc, const char *s);

/* ---- time ---- */
int64_t now_mono_ms(void);   /* CLOCK_MONOTONIC, for durations */
/* Sleep ms milliseconds, whatever signals come. */
void sleep_ms(int64_t ms);
int64_t now_mono_us(void);
int64_t now_real_ms(void);   /* CLOCK_REALTIME, for timestamps */
/* The wall-clock label before which every label now_real_ms() gave (and
 * those of before the start, taken as at its first offset) is age_ms old
 * at least, in CLOCK_MONOTONIC time, whatever steps of the wall clock came
 * since: after a step ahead the labels of before it age as time passes,
 * not by the step; after a step back those of before it are kept as much
 * longer (the two overlap), once it is noticed.  The wall clock less
 * age_ms when it was not stepped. */
int64_t wall_cutoff_ms(int64_t age_ms);
/* The wait, in CLOCK_MONOTONIC time, for the wall-clock label due_ms that
 * now_real_ms() + a wait of at most bound_ms made: the longest that an
 * offset labels were taken at in the last bound_ms gives, as long as it is
 * no longer than bound_ms (<= 0: due); 0 if none gives one (a label from
 * before a step back further ago, or from before the start). */
int64_t wall_wait_ms(int64_t due_ms, int64_t bound_ms);
/* ms milliseconds from now on `clock`, for pthread_cond_timedwait (whose
 * condition variable must use that clock). */
struct timespec timespec_in(int clock, int64_t ms);
/* RFC 3339 UTC with milliseconds: "2026-11-25T08:48:06.123Z" (25 bytes
 * with the NUL; a shorter buf gets it cut).  A time outside the years
 * 0000 to 9999 is shown as the nearer end of them. */
void format_rfc3339(int64_t real_ms, char *buf, size_t len);

/* ---- files ---- */
/* mkdir -p with the given mode for created directories. */
int mkdir_p(const char *path, unsigned mode, struct err *err);
/* A new file in dir without a name (O_TMPFILE; where the filesystem has
 * none, a named one unlinked at once): gone with its last descriptor.
 * Read-write, mode 0600.  -1 with errno. */
int open_unnamed(const char *dir);
/* All of p[0..n) to fd, through EINTR and short writes; false with errno. */
bool write_full(int fd, const void *p, size_t n);
/* Open (creating) path and take a write lock on the whole file, held
 * until the descriptor is closed or the process ends; ERR_CONFLICT when
 * another process holds it.  A POSIX record lock, not flock(): flock's
 * lock lives on the open file, which a posix_spawn() child keeps until it
 * execs, so a restart right after a SIGKILL found it still held. */
int lock_file(const char *path, int *ret_fd, struct err *err);
/* What lives on an open file (flock() and OFD locks: a cgroup directory
 * cannot take a write record lock, and one process's record locks never
 * conflict; a listening socket) outlives a process SIGKILLed while it
 * spawned: its child between the clone and the exec holds copies of its
 * descriptors for a moment, longer on a loaded host, and a restart right
 * then found them taken.  Found taken, such a thing is tried again for
 * HELD_GRACE_MS before it is called another process's.  Call after each
 * attempt found it taken: false once grace_ms have passed since the
 * first call (*since is 0 before it), else true after a short sleep.
 * errno is kept. */
#define HELD_GRACE_MS 2000
bool held_retry_wait(int64_t *since, int64_t grace_ms);
/* rm -rf that never crosses into another mount and never follows links. */
int rm_rf(const char *path, struct err *err);
/* Would the process umask take bits off `mode` (so a chmod must follow the
 * create)?  Read once. */
bool umask_narrows(unsigned mode);
/* A condition variable that waits on CLOCK_MONOTONIC (timespec_in). */
void cond_init_monotonic(pthread_cond_t *c);
/* pthread_create with every signal blocked in the new thread (signals are
 * for the main thread), named `name` (at most 15 bytes shown).  0 or the
 * error number. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

/* Drop this process's resident pages of executable file mappings (code run
 * once at start-up: library initialisers, the probe, the config parser).
 * Code is never written, so nothing is lost: a page faults back in from
 * the page cache when it runs again.  Returns the KiB released. */
size_t release_code_pages(void);

/* Write data to path (created with mode, truncated) and fsync it. */
int write_file(const char *path, const void *data, size_t len, unsigned mode, struct err *err);
/* The same without the fsync: for files a crash makes worthless anyway (a
 * run's workspace), where the fsync would only cost the job time. */
int write_file_unsynced(const char *path, const void *data, size_t len, unsigned mode, struct err *err);
/* read() into buf until it holds size bytes or fd is at its end (EINTR
 * retried): the bytes read, or -1 with errno. */
ssize_t read_full(int fd, void *buf, size_t size);
/* Read a whole regular file of at most max bytes; *ret_data is NUL-terminated
 * and owned by the caller.  ERR_NOT_FOUND when missing, ERR_TOO_LARGE when
 * bigger.  A symlink is refused unless flags has READ_FOLLOW_LINKS (operator
 * files such as /etc/edgecd/edgecd.yaml often are links; our own state
 * files never are). */
#define READ_FOLLOW_LINKS 1u
/* Over max bytes is no error: the first max bytes are read, and 1 is
 * returned instead of 0 (a run log read with a limit lowered since). */
#define READ_PREFIX 2u
/* The file as opened must be inside the directory its path names it in
 * (checked on the open file, so a link renamed over it after a check by
 * path cannot slip another file in): ERR_INVALID "`PATH` resolves to
 * `REAL`, outside its directory". */
#define READ_BENEATH 4u
int read_file(const char *path, size_t max, unsigned flags, char **ret_data, size_t *ret_len,
              struct err *err);
/* The real path (realpath) of the directory path is in, or NULL with err
 * (ERR_NOT_FOUND when it is not there). */
char *real_dir_of(const char *path, struct err *err);
/* Is path (a real path) inside dir (a real path), not dir itself? */
bool path_is_below(const char *path, const char *dir);
/* Read at most the last `max` bytes of a file (for stderr tails). */
char *read_file_tail(const char *path, size_t max);

/* The mount point of a /proc/self/mountinfo line (field 5), its octal
 * escapes undone in place; NULL for a line without one.  The line is cut
 * there; *rest (rest may be NULL) is what follows it. */
char *mountinfo_point(char *line, char **rest);

/* Length of the valid UTF-8 sequence at s (at most `left` bytes there):
 * RFC 3629, no overlong forms, no surrogates, nothing above U+10FFFF; 0
 * when invalid. */
size_t utf8_seq_len(const char *s, size_t left);
/* Is s[0..len) valid UTF-8 throughout?  *ret_bad (may be NULL) gets the
 * offset of the first bad byte. */
bool utf8_valid(const char *s, size_t len, size_t *ret_bad);
/* The longest prefix of s[0..len), at most max bytes, that ends on a
 * character boundary (s valid UTF-8): where to cut a text that must stay
 * valid, as JSON needs it. */
size_t utf8_cut(const char *s, size_t len, size_t max);
/* A JSON string of s with every byte that is not UTF-8 as U+FFFD: a
 * message or a name (a file's, from the disk) is shown, not dropped.
 * NULL for a NULL s. */
json_t *json_string_lossy(const char *s);
/* json_sprintf() whose text goes through json_string_lossy(). */
json_t *json_sprintf_lossy(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Does path have a ".." component ("a/../b", "..", "x/..")? */
bool path_has_dotdot(const char *path);

/* Parse a decimal integer in [min,max]; false on any junk. */
bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);

/* Does h read as an IPv4 address to inet_aton(), and so to getaddrinfo()
 * and libcurl, in a spelling other than a.b.c.d in decimal: 0177.0.0.1,
 * 0x7f.1, 127.1, 2130706433 (each 127.0.0.1 there), 192.168.001.010
 * (192.168.1.8)?  Such a host looks like one name and means another. */
bool ipv4_odd_spelling(const char *h, size_t len);

/* An RFC 1123 host name (IPv4 dotted quads pass too): dot-separated
 * labels of ASCII letters, digits and '-', each 1..63 long, not starting
 * or ending with '-', 253 in all, no trailing dot; not an IPv4 address in
 * another spelling (ipv4_odd_spelling). */
bool hostname_valid(const char *h, size_t len);

#endif
