/* test-mountns.c - the daemon's own mount namespace: where / is shared, a
 * mount made after mountns_own() is not seen outside and one made outside
 * afterwards is seen inside (slave); where / is private nothing moves; a
 * process with a second thread is refused and left where it was.  Each
 * test first puts itself in a private namespace of its own (so nothing it
 * mounts outlives it, whatever fails), and runs mountns_own() in a child.
 * Needs root (unshare, mount). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "testutil.h"

#include "base/util.h"
#include "sandbox/mountns.h"

/* Is path a mount point in pid's mount namespace (0: this process's)? */
static bool mounted_in(pid_t pid, const char *path)
{
        _cleanup_free_ char *file = pid ? xasprintf("/proc/%d/mounts", (int)pid) : xstrdup("/proc/self/mounts");
        FILE *f = fopen(file, "re");
        ck_assert_ptr_nonnull(f);
        char *line = NULL;
        size_t cap = 0;
        size_t len = strlen(path);
        bool found = false;
        while (!found && getline(&line, &cap, f) > 0) {
                char *mp = strchr(line, ' ');
                found = mp && strncmp(mp + 1, path, len) == 0 && mp[1 + len] == ' ';
        }
        free(line);
        fclose(f);
        return found;
}

static ino_t mnt_ns(void)
{
        struct stat st;
        ck_assert_int_eq(stat("/proc/self/ns/mnt", &st), 0);
        return st.st_ino;
}

static void say(int fd, char c)
{
        ck_assert_int_eq(write(fd, &c, 1), 1);
}

static char hear(int fd)
{
        char c = 0;
        return read(fd, &c, 1) == 1 ? c : 0;
}

/* This test process in a mount namespace of its own, cut off from the
 * host's; with shared_root, its / a shared mount (a peer group of its
 * own), as systemd makes a host's. */
static void sandbox_self(bool shared_root)
{
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        if (shared_root)
                ck_assert_int_eq(mount("none", "/", NULL, MS_SHARED, NULL), 0);
        ck_assert(mountns_root_shared() == shared_root);
}

static int child_status(pid_t pid)
{
        int st = 0;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st), "the child was killed by signal %d", WTERMSIG(st));
        return WEXITSTATUS(st);
}

START_TEST(test_own_namespace_keeps_its_mounts)
{
        sandbox_self(true);
        _cleanup_free_ char *top = tu_mkdtemp();
        _cleanup_free_ char *inside = xasprintf("%s/inside", top);
        _cleanup_free_ char *outside = xasprintf("%s/outside", top);
        ck_assert_int_eq(mkdir(inside, 0700), 0);
        ck_assert_int_eq(mkdir(outside, 0700), 0);
        /* top a shared mount of its own, whatever / is here: what is
         * mounted below it afterwards reaches its slaves. */
        ck_assert_int_eq(mount(top, top, NULL, MS_BIND, NULL), 0);
        ck_assert_int_eq(mount(NULL, top, NULL, MS_SHARED, NULL), 0);

        int up[2], down[2];
        ck_assert_int_eq(pipe(up), 0);
        ck_assert_int_eq(pipe(down), 0);
        ino_t before = mnt_ns();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(up[0]);
                close(down[1]);
                struct err err = ERR_INIT;
                int r = mountns_own(&err);
                if (r != 1) {
                        fprintf(stderr, "mountns_own: %d %s\n", r, err.msg);
                        _exit(10);
                }
                if (mnt_ns() == before)
                        _exit(11);
                if (mount("tmpfs", inside, "tmpfs", 0, "size=1m") < 0)
                        _exit(12);
                say(up[1], 'm');
                if (hear(down[0]) != 'o')
                        _exit(13);
                struct statfs fs;
                /* The parent's tmpfs on outside, made after our unshare. */
                if (statfs(outside, &fs) < 0 || fs.f_type != TMPFS_MAGIC)
                        _exit(14);
                _exit(0);
        }
        close(up[1]);
        close(down[0]);
        char c = hear(up[0]);
        bool leaked = mounted_in(0, inside), kept = c == 'm' && mounted_in(pid, inside);
        ck_assert_int_eq(mount("tmpfs", outside, "tmpfs", 0, "size=1m"), 0);
        say(down[1], 'o');
        int rc = child_status(pid);
        ck_assert_int_eq(umount2(outside, MNT_DETACH), 0);
        ck_assert_int_eq(umount2(top, MNT_DETACH), 0);
        close(up[0]);
        close(down[1]);
        tu_rm_rf(top);
        ck_assert_int_eq(c, 'm');
        ck_assert_msg(!leaked, "the child's mount is in the parent's namespace");
        ck_assert_msg(kept, "the child's mount is not in its own namespace");
        ck_assert_msg(rc == 0, "child exit %d (10: not moved, 14: a mount made outside later did not reach it)", rc);
        ck_assert_int_eq(mnt_ns(), before);
}
END_TEST

static void *sit(void *arg)
{
        hear(*(int *)arg);
        return NULL;
}

START_TEST(test_a_private_root_stays)
{
        sandbox_self(false);
        ino_t before = mnt_ns();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct err err = ERR_INIT;
                _exit(mountns_own(&err) != 0 ? 10 : mnt_ns() != before ? 11 : 0);
        }
        int rc = child_status(pid);
        ck_assert_msg(rc == 0, "child exit %d (10: did not answer 0, 11: moved)", rc);
}
END_TEST

START_TEST(test_a_second_thread_is_refused)
{
        sandbox_self(true);
        ino_t before = mnt_ns();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int p[2];
                pthread_t t;
                if (pipe(p) < 0 || pthread_create(&t, NULL, sit, &p[0]) != 0)
                        _exit(10);
                struct err err = ERR_INIT;
                int r = mountns_own(&err);
                close(p[1]);
                pthread_join(t, NULL);
                if (r == 0)
                        _exit(11);
                if (!strstr(err.msg, "2 threads"))
                        _exit(12);
                if (mnt_ns() != before)
                        _exit(13);
                _exit(0);
        }
        int rc = child_status(pid);
        ck_assert_msg(rc == 0, "child exit %d (11: accepted, 12: message, 13: moved)", rc);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("mountns");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_own_namespace_keeps_its_mounts);
        tcase_add_test(tc, test_a_private_root_stays);
        tcase_add_test(tc, test_a_second_thread_is_refused);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
