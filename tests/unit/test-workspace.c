/* test-workspace.c - job workspaces: layout, modes, the output tmpfs and its
 * size cap, removal and the startup sweep.  Needs root (mount). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <jansson.h>

#include "testutil.h"

#include "util.h"
#include "workspace.h"

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

static struct workspace *make(const char *id, const char *params, int64_t disk_mb)
{
        json_error_t jerr;
        json_t *p = json_loads(params, 0, &jerr);
        ck_assert_ptr_nonnull(p);
        struct workspace *ws = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(workspace_create(g_root, id, p, disk_mb, 65534, 65534, &ws, &err) == 0, "%s", err.msg);
        json_decref(p);
        return ws;
}

START_TEST(test_create_layout)
{
        mode_t old = umask(077);   /* the workspace modes must not depend on the umask */
        struct workspace *ws = make("job-1", "{\"a\": [1, 2], \"s\": \"x y\"}", 1);
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
        ck_assert_int_eq(read_file(input, 4096, 0, &data, NULL, &err), 0);
        ck_assert_str_eq(data, "{\"a\":[1,2],\"s\":\"x y\"}");

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

START_TEST(test_create_errors)
{
        json_t *p = json_object();
        struct workspace *ws = NULL;
        struct err err = ERR_INIT;
        static const char *const bad_ids[] = { "", "../x", "a/b", "a b", "a.b", "x\n" };
        for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
                ck_assert_int_eq(workspace_create(g_root, bad_ids[i], p, 1, 65534, 65534, &ws, &err), -1);
                ck_assert_int_eq(err.code, ERR_INVALID);
                ck_assert_ptr_null(ws);
        }
        ck_assert_int_eq(workspace_create(g_root, "ok", p, 0, 65534, 65534, &ws, &err), -1);
        ck_assert_int_eq(workspace_create(g_root, "ok", p, 1, -1, 65534, &ws, &err), -1);

        /* An existing directory is never adopted nor removed. */
        _cleanup_free_ char *taken = xasprintf("%s/taken", g_root);
        struct err e2 = ERR_INIT;
        ck_assert_int_eq(mkdir_p(taken, 0755, &e2), 0);
        free(tu_write(taken, "precious", "keep me"));
        ck_assert_int_eq(workspace_create(g_root, "taken", p, 1, 65534, 65534, &ws, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        _cleanup_free_ char *precious = xasprintf("%s/precious", taken);
        ck_assert_int_eq(access(precious, F_OK), 0);

        /* A failure half way (parameters that cannot be serialised, after
         * input/ exists) removes what was made. */
        ck_assert_int_eq(workspace_create(g_root, "half", NULL, 1, 65534, 65534, &ws, &err), -1);
        ck_assert_ptr_null(ws);
        _cleanup_free_ char *half = xasprintf("%s/half", g_root);
        ck_assert_int_eq(access(half, F_OK), -1);
        json_decref(p);
}
END_TEST

START_TEST(test_sweep)
{
        /* Two workspaces left behind by a "crashed" daemon, one with a file
         * in its output tmpfs, plus stray entries. */
        struct workspace *a = make("crashed-a", "{}", 1);
        struct workspace *b = make("crashed-b", "[1]", 1);
        free(tu_write(a->output_dir, "result.json", "{}"));
        free(tu_write(g_root, "stray-file", "x"));
        _cleanup_free_ char *stray = xasprintf("%s/stray-dir/deeper", g_root);
        struct err err = ERR_INIT;
        ck_assert_int_eq(mkdir_p(stray, 0755, &err), 0);
        ck_assert_int_eq(mounts_under(g_root), 2);
        /* forget them as a crash would (without unmounting) */
        struct workspace *v[] = { a, b };
        for (size_t i = 0; i < 2; i++) {
                free(v[i]->dir);
                free(v[i]->input_dir);
                free(v[i]->output_dir);
                free(v[i]->bundle_dir);
                free(v[i]);
        }

        ck_assert_msg(workspace_sweep(g_root, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(mounts_under(g_root), 0);
        DIR *d = opendir(g_root);
        ck_assert_ptr_nonnull(d);
        int entries = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        entries++;
        closedir(d);
        ck_assert_int_eq(entries, 0);

        /* Nothing to sweep, and no root at all, are fine. */
        ck_assert_int_eq(workspace_sweep(g_root, &err), 0);
        _cleanup_free_ char *none = xasprintf("%s/none", g_root);
        ck_assert_int_eq(workspace_sweep(none, &err), 0);
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
        tcase_add_test(tc, test_create_errors);
        tcase_add_test(tc, test_sweep);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
