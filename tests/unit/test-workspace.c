/* test-workspace.c - job workspaces: layout, modes, the parameters written
 * as given, the output tmpfs and its size cap, removal and the sweep of
 * leftovers (all but the runs it is told to keep).  Needs root (mount). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include "testutil.h"

#include "base/util.h"
#include "sandbox/workspace.h"

static char *g_root;   /* STATE_DIR/workspaces stand-in, made by the fixture */

/* How many mounts are at or below path (by /proc/self/mounts). */
static int mounts_under(const char *path)
{
        FILE *f = fopen("/proc/self/mounts", "re");
        ck_assert_ptr_nonnull(f);
        char *line = NULL;
        size_t cap = 0;
        int n = 0;
        size_t len = strlen(path);
        while (getline(&line, &cap, f) > 0) {
                char *mp = strchr(line, ' ');
                if (mp && strncmp(mp + 1, path, len) == 0 && (mp[1 + len] == ' ' || mp[1 + len] == '/'))
                        n++;
        }
        free(line);
        fclose(f);
        return n;
}

static void unmount_all_under(const char *path)
{
        /* Cleanup that does not trust the code under test. */
        for (int tries = 0; tries < 16 && mounts_under(path) > 0; tries++) {
                FILE *f = fopen("/proc/self/mounts", "re");
                char *line = NULL;
                size_t cap = 0;
                size_t len = strlen(path);
                while (f && getline(&line, &cap, f) > 0) {
                        char *mp = strchr(line, ' ');
                        if (!mp || strncmp(mp + 1, path, len) != 0)
                                continue;
                        char *end = strchr(mp + 1, ' ');
                        if (end)
                                *end = '\0';
                        umount2(mp + 1, MNT_DETACH);
                }
                free(line);
                if (f)
                        fclose(f);
        }
}

static void setup(void)
{
        char *base = tu_mkdtemp();
        ck_assert_int_ge(asprintf(&g_root, "%s/workspaces", base), 0);
        free(base);
}

static void teardown(void)
{
        char *base = strdup(g_root);
        *strrchr(base, '/') = '\0';
        unmount_all_under(base);
        tu_rm_rf(base);
        free(base);
        free(g_root);
        g_root = NULL;
}

static void assert_mode(const char *path, mode_t type, mode_t mode, uid_t uid, gid_t gid)
{
        struct stat st;
        ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
        ck_assert_msg((st.st_mode & S_IFMT) == type, "%s: wrong type", path);
        ck_assert_msg((st.st_mode & 07777) == mode, "%s: mode %o, want %o", path, st.st_mode & 07777, mode);
        ck_assert_msg(st.st_uid == uid && st.st_gid == gid, "%s: owner %u:%u", path, st.st_uid, st.st_gid);
}

static struct workspace *make_in(const char *root, const char *id, const char *params, int64_t disk_mb)
{
        struct workspace *ws = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(workspace_create(root, id, params, strlen(params), disk_mb, 65534, 65534, &ws, &err) == 0,
                      "%s", err.msg);
        return ws;
}

static struct workspace *make(const char *id, const char *params, int64_t disk_mb)
{
        return make_in(g_root, id, params, disk_mb);
}

/* A directory beside g_root, under the fixture's base (caller frees): a
 * test of its own, whatever a failed test left in g_root. */
static char *sibling(const char *name)
{
        _cleanup_free_ char *base = xstrdup(g_root);
        *strrchr(base, '/') = '\0';
        return xasprintf("%s/%s", base, name);
}

START_TEST(test_create_layout)
{
        mode_t old = umask(077);   /* the workspace modes must not depend on the umask */
        static const char params[] = "{\"a\": [1, 2],\n \"s\": \"x y\"}";
        struct workspace *ws = make("job-1", params, 1);
        umask(old);

        _cleanup_free_ char *dir = xasprintf("%s/job-1", g_root);
        ck_assert_str_eq(ws->dir, dir);
        struct stat st;
        ck_assert_int_eq(stat(g_root, &st), 0);
        ck_assert_msg((st.st_mode & 07777) == 0700, "root mode %o", st.st_mode & 07777);
        assert_mode(ws->dir, S_IFDIR, 0700, 0, 0);
        assert_mode(ws->input_dir, S_IFDIR, 0755, 0, 0);
        _cleanup_free_ char *input = xasprintf("%s/input.json", ws->input_dir);
        assert_mode(input, S_IFREG, 0644, 0, 0);
        assert_mode(ws->output_dir, S_IFDIR, 0700, 65534, 65534);
        assert_mode(ws->bundle_dir, S_IFDIR, 0700, 0, 0);
        ck_assert(ws->output_mounted);

        _cleanup_free_ char *data = NULL;
        struct err err = ERR_INIT;
        size_t len = 0;
        ck_assert_int_eq(read_file(input, 4096, 0, &data, &len, &err), 0);
        /* The parameters' text as accepted, byte for byte. */
        ck_assert_uint_eq(len, strlen(params));
        ck_assert_str_eq(data, params);

        struct statfs sf;
        ck_assert_int_eq(statfs(ws->output_dir, &sf), 0);
        ck_assert_int_eq(sf.f_type, TMPFS_MAGIC);
        ck_assert_int_eq(mounts_under(ws->output_dir), 1);
        struct statvfs sv;
        ck_assert_int_eq(statvfs(ws->output_dir, &sv), 0);
        ck_assert(sv.f_flag & ST_NOEXEC);
        ck_assert(sv.f_flag & ST_NODEV);
        ck_assert(sv.f_flag & ST_NOSUID);
        ck_assert_uint_eq((uint64_t)sv.f_blocks * sv.f_frsize, 1024 * 1024);

        /* The size cap is real: 2 MiB do not fit in a 1 MiB tmpfs, even as root. */
        _cleanup_free_ char *big = xasprintf("%s/big", ws->output_dir);
        int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        static char chunk[64 * 1024];
        memset(chunk, 'x', sizeof chunk);
        size_t written = 0;
        int saved = 0;
        while (written < 2 * 1024 * 1024) {
                ssize_t n = write(fd, chunk, sizeof chunk);
                if (n < 0) {
                        saved = errno;
                        break;
                }
                written += (size_t)n;
        }
        close(fd);
        ck_assert_int_eq(saved, ENOSPC);
        ck_assert_uint_le(written, 1024 * 1024);

        ck_assert_int_eq(workspace_destroy(ws, false, &err), 0);
        ck_assert_int_eq(access(dir, F_OK), -1);
        ck_assert_int_eq(mounts_under(dir), 0);
        /* the root stays for the next job */
        ck_assert_int_eq(access(g_root, F_OK), 0);
}
END_TEST

START_TEST(test_keep_bundle)
{
        struct workspace *ws = make("job-keep", "{}", 2);
        struct err err = ERR_INIT;
        _cleanup_free_ char *cfg = xasprintf("%s/config.json", ws->bundle_dir);
        ck_assert_int_eq(write_file(cfg, "{}", 2, 0600, &err), 0);
        _cleanup_free_ char *dir = xstrdup(ws->dir);
        _cleanup_free_ char *in = xstrdup(ws->input_dir);
        _cleanup_free_ char *out = xstrdup(ws->output_dir);
        ck_assert_int_eq(workspace_destroy(ws, true, &err), 0);
        ck_assert_int_eq(access(cfg, F_OK), 0);
        ck_assert_int_eq(access(in, F_OK), -1);
        ck_assert_int_eq(access(out, F_OK), -1);
        ck_assert_int_eq(mounts_under(dir), 0);
        ck_assert_int_eq(workspace_destroy(NULL, false, &err), 0);
}
END_TEST

/* The usual files go by name; anything else there (a runtime's own file,
 * a directory the gate left) still goes, through the careful removal. */
START_TEST(test_destroy_with_unexpected_files)
{
        struct workspace *ws = make("job-extra", "{}", 2);
        struct err err = ERR_INIT;
        _cleanup_free_ char *dir = xstrdup(ws->dir);
        _cleanup_free_ char *cfg = xasprintf("%s/config.json", ws->bundle_dir);
        _cleanup_free_ char *pid = xasprintf("%s/container.pid", ws->bundle_dir);
        _cleanup_free_ char *own = xasprintf("%s/state.json", ws->bundle_dir);
        _cleanup_free_ char *sub = xasprintf("%s/leftover", ws->input_dir);
        _cleanup_free_ char *deep = xasprintf("%s/leftover/x", ws->input_dir);
        ck_assert_int_eq(write_file(cfg, "{}", 2, 0600, &err), 0);
        ck_assert_int_eq(write_file(pid, "1", 1, 0600, &err), 0);
        ck_assert_int_eq(write_file(own, "{}", 2, 0600, &err), 0);
        ck_assert_int_eq(mkdir(sub, 0700), 0);
        ck_assert_int_eq(write_file(deep, "x", 1, 0600, &err), 0);
        ck_assert_int_eq(workspace_destroy(ws, false, &err), 0);
        ck_assert_int_eq(access(dir, F_OK), -1);
        ck_assert_int_eq(mounts_under(dir), 0);

        /* The usual layout alone, as after a job. */
        ws = make("job-plain", "{}", 2);
        _cleanup_free_ char *dir2 = xstrdup(ws->dir);
        _cleanup_free_ char *cfg2 = xasprintf("%s/config.json", ws->bundle_dir);
        _cleanup_free_ char *pid2 = xasprintf("%s/container.pid", ws->bundle_dir);
        ck_assert_int_eq(write_file(cfg2, "{}", 2, 0600, &err), 0);
        ck_assert_int_eq(write_file(pid2, "1", 1, 0600, &err), 0);
        ck_assert_int_eq(workspace_destroy(ws, false, &err), 0);
        ck_assert_int_eq(access(dir2, F_OK), -1);
        ck_assert_int_eq(access(g_root, F_OK), 0);
}
END_TEST

START_TEST(test_create_errors)
{
        struct workspace *ws = NULL;
        struct err err = ERR_INIT;
        static const char *const bad_ids[] = { "", "../x", "a/b", "a b", "a.b", "x\n" };
        for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
                ck_assert_int_eq(workspace_create(g_root, bad_ids[i], "{}", 2, 1, 65534, 65534, &ws, &err), -1);
                ck_assert_int_eq(err.code, ERR_INVALID);
                ck_assert_ptr_null(ws);
        }
        ck_assert_int_eq(workspace_create(g_root, "ok", "{}", 2, 0, 65534, 65534, &ws, &err), -1);
        ck_assert_int_eq(workspace_create(g_root, "ok", "{}", 2, 1, -1, 65534, &ws, &err), -1);
        ck_assert_int_eq(workspace_create(g_root, "ok", "{}", 2, 1, 65534, 4294967295LL, &ws, &err), -1);
        ck_assert_ptr_null(ws);

        /* An existing directory is never adopted nor removed. */
        _cleanup_free_ char *taken = xasprintf("%s/taken", g_root);
        struct err e2 = ERR_INIT;
        ck_assert_int_eq(mkdir_p(taken, 0755, &e2), 0);
        free(tu_write(taken, "precious", "keep me"));
        ck_assert_int_eq(workspace_create(g_root, "taken", "{}", 2, 1, 65534, 65534, &ws, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        _cleanup_free_ char *precious = xasprintf("%s/precious", taken);
        ck_assert_int_eq(access(precious, F_OK), 0);
}
END_TEST

START_TEST(test_create_fails_half_way)
{
        /* A state disk that fills up while input.json is written (after
         * the run's directory and input/ exist): what was made goes again. */
        _cleanup_free_ char *small = sibling("small");
        ck_assert_int_eq(mkdir(small, 0700), 0);
        ck_assert_int_eq(mount("tmpfs", small, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k"), 0);
        size_t len = 1024 * 1024;
        _cleanup_free_ char *params = xmalloc(len);
        memset(params, ' ', len);
        params[0] = '1';
        struct workspace *ws = NULL;
        struct err err = ERR_INIT;
        ck_assert_int_eq(workspace_create(small, "half", params, len, 1, 65534, 65534, &ws, &err), -1);
        ck_assert_int_eq(err.code, ERR_IO);
        ck_assert_msg(strstr(err.msg, "input.json"), "%s", err.msg);
        ck_assert_ptr_null(ws);
        _cleanup_free_ char *half = xasprintf("%s/half", small);
        ck_assert_int_eq(access(half, F_OK), -1);
        ck_assert_int_eq(mounts_under(small), 1);   /* only the small disk itself */
        ck_assert_int_eq(umount2(small, 0), 0);
}
END_TEST

/* Forget ws as a crash would: no unmount, no removal. */
static void forget(struct workspace *ws)
{
        free(ws->dir);
        free(ws->input_dir);
        free(ws->output_dir);
        free(ws->bundle_dir);
        free(ws);
}

static int entries_in(const char *dir)
{
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* keep(): the run ids in the NULL-terminated list ctx. */
static bool keep_listed(const char *run_id, void *ctx)
{
        for (char **k = ctx; *k; k++)
                if (!strcmp(*k, run_id))
                        return true;
        return false;
}

START_TEST(test_sweep)
{
        /* Two workspaces left behind by a crashed run, one with a file in
         * its output tmpfs and a second tmpfs mounted inside that, plus
         * stray entries; and one live run the sweep must leave alone. */
        _cleanup_free_ char *root = sibling("sweep");
        struct workspace *a = make_in(root, "crashed-a", "{}", 1);
        struct workspace *b = make_in(root, "crashed-b", "[1]", 1);
        struct workspace *live = make_in(root, "live-1", "{}", 1);
        free(tu_write(a->output_dir, "result.json", "{}"));
        _cleanup_free_ char *inner = xasprintf("%s/inner", a->output_dir);
        ck_assert_int_eq(mkdir(inner, 0700), 0);
        ck_assert_int_eq(mount("tmpfs", inner, "tmpfs", 0, "size=64k"), 0);
        free(tu_write(inner, "x", "x"));
        free(tu_write(root, "stray-file", "x"));
        _cleanup_free_ char *stray = xasprintf("%s/stray-dir/deeper", root);
        struct err err = ERR_INIT;
        ck_assert_int_eq(mkdir_p(stray, 0755, &err), 0);
        ck_assert_int_eq(mounts_under(root), 4);
        _cleanup_free_ char *live_dir = xstrdup(live->dir);
        _cleanup_free_ char *live_out = xstrdup(live->output_dir);
        _cleanup_free_ char *a_dir = xstrdup(a->dir);
        forget(a);
        forget(b);

        char *kept[] = { "live-1", "not-there", NULL };
        size_t removed = 99;
        ck_assert_msg(workspace_sweep(root, keep_listed, kept, &removed, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(removed, 4);   /* crashed-a, crashed-b, stray-file, stray-dir */
        ck_assert_int_eq(mounts_under(a_dir), 0);
        ck_assert_int_eq(access(a_dir, F_OK), -1);
        /* The kept run is untouched: its directory, its tmpfs, its files. */
        ck_assert_int_eq(entries_in(root), 1);
        ck_assert_int_eq(access(live_dir, F_OK), 0);
        ck_assert_int_eq(mounts_under(root), 1);
        ck_assert_int_eq(mounts_under(live_out), 1);

        /* Kept again: nothing to do, and *removed says so. */
        removed = 99;
        ck_assert_int_eq(workspace_sweep(root, keep_listed, kept, &removed, &err), 0);
        ck_assert_uint_eq(removed, 0);
        ck_assert_int_eq(entries_in(root), 1);

        /* No predicate: everything goes, the live run's mount too. */
        forget(live);
        ck_assert_int_eq(workspace_sweep(root, NULL, NULL, &removed, &err), 0);
        ck_assert_uint_eq(removed, 1);
        ck_assert_int_eq(mounts_under(root), 0);
        ck_assert_int_eq(entries_in(root), 0);

        /* Nothing to sweep, and no root at all, are fine; removed may be NULL. */
        ck_assert_int_eq(workspace_sweep(root, NULL, NULL, NULL, &err), 0);
        _cleanup_free_ char *none = xasprintf("%s/none", root);
        removed = 99;
        ck_assert_int_eq(workspace_sweep(none, NULL, NULL, &removed, &err), 0);
        ck_assert_uint_eq(removed, 0);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("workspace");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_create_layout);
        tcase_add_test(tc, test_keep_bundle);
        tcase_add_test(tc, test_destroy_with_unexpected_files);
        tcase_add_test(tc, test_create_errors);
        tcase_add_test(tc, test_create_fails_half_way);
        tcase_add_test(tc, test_sweep);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
