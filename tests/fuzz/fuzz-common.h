/* fuzz-common.h - shared by the libFuzzer targets in tests/fuzz/.
 *
 * config_load_file() and manifest_load() read files, so each target keeps
 * one scratch directory per process (under $TMPDIR, which run.sh points at
 * build/fuzz/tmp) and rewrites one file in it for every input: no open(),
 * unlink() or fsync() per run.  The directory is removed at exit; after a
 * crash run.sh removes what is left.
 *
 * A target runs single-threaded, so the statics below need no lock. */
#ifndef EDGECD_FUZZ_COMMON_H
#define EDGECD_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static char *fz_dir;   /* the scratch directory, once made */

static inline void fz_die(const char *what)
{
        fprintf(stderr, "fuzz setup: %s: %s\n", what, strerror(errno));
        abort();
}

static inline void fz_cleanup(void)
{
        if (!fz_dir)
                return;
        struct err e = ERR_INIT;
        rm_rf(fz_dir, &e);
        free(fz_dir);
        fz_dir = NULL;
}

/* The scratch directory, made on first use. */
static inline const char *fz_tmpdir(void)
{
        if (fz_dir)
                return fz_dir;
        const char *t = getenv("TMPDIR");
        char *d = xasprintf("%s/edgecd-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(d))
                fz_die(d);
        fz_dir = d;
        atexit(fz_cleanup);
        return fz_dir;
}

/* Create (or truncate) path, make it executable when exec is set. */
static inline void fz_touch(const char *path, int exec)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, exec ? 0755 : 0644);
        if (fd < 0)
                fz_die(path);
        if (write(fd, "#!/bin/sh\n", 10) != 10)
                fz_die(path);
        close(fd);
}

/* One file rewritten in place for every input. */
struct fz_file {
        char *path;
        int fd;
};

static inline void fz_file_open(struct fz_file *f, const char *path)
{
        f->path = xstrdup(path);
        f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (f->fd < 0)
                fz_die(path);
}

static inline void fz_file_write(struct fz_file *f, const uint8_t *data, size_t size)
{
        if (ftruncate(f->fd, 0) < 0)
                fz_die(f->path);
        size_t off = 0;
        while (off < size) {
                ssize_t w = pwrite(f->fd, data + off, size - off, (off_t)off);
                if (w < 0)
                        fz_die(f->path);
                off += (size_t)w;
        }
}

/* A plugin directory DIR/plugin with rootfs/bin/<cmd> for the commands the
 * seed manifests name, so manifest_load()'s rootfs check can pass and the
 * fuzzer gets past it.  Returns DIR/plugin (owned by the caller). */
static inline char *fz_plugin_dir(void)
{
        static const char *const cmds[] = {
                "matrix_multiplication", "statistics", "sh", "word_count.sh", "testkit", "busybox",
        };
        char *plugin = xasprintf("%s/plugin", fz_tmpdir());
        _cleanup_free_ char *bin = xasprintf("%s/rootfs/bin", plugin);
        struct err e = ERR_INIT;
        if (mkdir_p(bin, 0755, &e) < 0) {
                fprintf(stderr, "fuzz setup: %s\n", e.msg);
                abort();
        }
        for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", bin, cmds[i]);
                fz_touch(p, 1);
        }
        /* A directory and a plain file, for the "not a regular file" and
         * "not executable" branches. */
        _cleanup_free_ char *sub = xasprintf("%s/dir", bin);
        if (mkdir(sub, 0755) < 0 && errno != EEXIST)
                fz_die(sub);
        _cleanup_free_ char *plain = xasprintf("%s/plain", bin);
        fz_touch(plain, 0);
        return plugin;
}

/* A report callback that counts the non-empty lines (ctx: a size_t): every
 * line's callback is called the way main.c does (--check-config prints
 * each one). */
static inline void fz_count_line(const char *line, void *ctx)
{
        size_t *n = ctx;
        if (line && *line)
                (*n)++;
}

#endif
