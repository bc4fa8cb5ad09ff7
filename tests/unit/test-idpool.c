/* test-idpool.c - the job user and group ids: pairs handed out round robin
 * (an id given back rests while others are free), busy when all are out,
 * bad give-backs ignored, the check against the host's accounts, and the
 * claims against other daemons on the host. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "sandbox/idpool.h"

#define FIRST_UID 3000000000LL
#define FIRST_GID 3100000000LL

/* Take one pair; its index in the range (uid - FIRST_UID). */
static int64_t take(struct idpool *p)
{
        struct job_ids ids = JOB_IDS_NONE;
        struct err err = ERR_INIT;
        ck_assert_msg(idpool_take(p, &ids, &err) == 0, "%s", err.msg);
        /* uid first_uid + i always goes with gid first_gid + i */
        ck_assert_int_eq(ids.gid - FIRST_GID, ids.uid - FIRST_UID);
        return ids.uid - FIRST_UID;
}

static struct job_ids pair(int64_t i)
{
        return (struct job_ids){ .uid = FIRST_UID + i, .gid = FIRST_GID + i };
}

START_TEST(test_round_robin)
{
        struct idpool *p = idpool_new(FIRST_UID, FIRST_GID, 4);
        ck_assert_int_eq(take(p), 0);
        ck_assert_int_eq(take(p), 1);
        /* 0 comes back but is not next: 2 and 3 have rested longer. */
        idpool_give(p, pair(0));
        ck_assert_int_eq(take(p), 2);
        ck_assert_int_eq(take(p), 3);
        /* Then the one given back; 1 is still out. */
        ck_assert_int_eq(take(p), 0);
        ck_assert_uint_eq(idpool_in_use(p), 4);
        idpool_free(p);

        /* Among several given back, the one that has rested longest comes
         * out first: three out, 2 given back, then 0: 2 is next. */
        p = idpool_new(FIRST_UID, FIRST_GID, 3);
        for (int i = 0; i < 3; i++)
                take(p);
        idpool_give(p, pair(2));
        idpool_give(p, pair(0));
        ck_assert_int_eq(take(p), 2);
        ck_assert_int_eq(take(p), 0);
        idpool_free(p);
}
END_TEST

START_TEST(test_busy_when_all_in_use)
{
        struct idpool *p = idpool_new(FIRST_UID, FIRST_GID, 3);
        for (int i = 0; i < 3; i++)
                take(p);
        struct job_ids ids = JOB_IDS_NONE;
        struct err err = ERR_INIT;
        ck_assert_int_eq(idpool_take(p, &ids, &err), -1);
        ck_assert_int_eq(err.code, ERR_BUSY);
        ck_assert_msg(strstr(err.msg, "all 3 job user ids are in use"), "%s", err.msg);
        ck_assert_int_eq(ids.uid, -1);   /* untouched */
        ck_assert_uint_eq(idpool_in_use(p), 3);
        /* One back, one out again: that one. */
        idpool_give(p, pair(1));
        ck_assert_int_eq(take(p), 1);

        /* A pool of one hands out the same pair each time it is free. */
        struct idpool *one = idpool_new(FIRST_UID, FIRST_GID, 1);
        ck_assert_int_eq(take(one), 0);
        ck_assert_int_eq(idpool_take(one, &ids, &err), -1);
        idpool_give(one, pair(0));
        ck_assert_int_eq(take(one), 0);
        idpool_free(one);
        idpool_free(p);
}
END_TEST

START_TEST(test_bad_give_ignored)
{
        struct idpool *p = idpool_new(FIRST_UID, FIRST_GID, 4);
        take(p);
        take(p);
        ck_assert_uint_eq(idpool_in_use(p), 2);
        idpool_give(p, JOB_IDS_NONE);
        idpool_give(p, pair(-1));
        idpool_give(p, pair(4));
        idpool_give(p, (struct job_ids){ .uid = 0, .gid = 0 });
        idpool_give(p, pair(3));   /* in the range, but not handed out */
        ck_assert_uint_eq(idpool_in_use(p), 2);
        /* A pair given back twice counts once. */
        idpool_give(p, pair(0));
        idpool_give(p, pair(0));
        ck_assert_uint_eq(idpool_in_use(p), 1);
        idpool_give(p, pair(1));
        ck_assert_uint_eq(idpool_in_use(p), 0);
        idpool_give(NULL, pair(0));   /* no pool: nothing to do */
        idpool_free(p);
        idpool_free(NULL);
}
END_TEST

START_TEST(test_check_host)
{
        struct err err = ERR_INIT;
        /* Every host has root at 0 in both databases. */
        ck_assert_int_eq(idpool_check_host(0, FIRST_GID, 10, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "host user `root` (uid 0)"), "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "0-9"), "%s", err.msg);
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(idpool_check_host(FIRST_UID, 0, 10, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "host group `root` (gid 0)"), "%s", err.msg);

        /* Far above any account. */
        err = (struct err)ERR_INIT;
        ck_assert_msg(idpool_check_host(FIRST_UID, FIRST_UID, 10, &err) == 0, "%s", err.msg);
        ck_assert_msg(idpool_check_host(FIRST_UID, FIRST_GID, 10, &err) == 0, "%s", err.msg);
}
END_TEST

/* The claims tests' file, made and removed by the runner's process
 * (an unchecked fixture), so that a test that fails leaves nothing. */
static char claims_path[] = "/tmp/edgecd-unit-claims-XXXXXX";

static void claims_make(void)
{
        int tmp = mkstemp(claims_path);
        ck_assert_int_ge(tmp, 0);
        close(tmp);
}

static void claims_remove(void)
{
        unlink(claims_path);
}

/* Two daemons' claims (two opens of one claims file: open file description
 * locks, which conflict within one process too): overlapping uid or gid
 * ranges refused, named; disjoint ones taken; a claim ends with its fd. */
START_TEST(test_claims_conflict_by_range)
{
        const char *path = claims_path;
        struct err err = ERR_INIT;
        int a = -1, b = -1, c = -1;
        ck_assert_msg(idpool_claim(path, 2000000000, 2000000000, 100, 0, &a, &err) == 0, "%s", err.msg);
        ck_assert_int_ge(a, 0);
        /* uids 2000000099..2000000108: the last of a's. */
        ck_assert_int_eq(idpool_claim(path, 2000000099, 2100000000, 10, 0, &b, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        ck_assert_msg(strstr(err.msg, "the job uid range 2000000099-2000000108 is another edgecd's"), "%s", err.msg);
        ck_assert_msg(strstr(err.msg, path), "%s", err.msg);
        ck_assert_int_eq(b, -1);
        /* Disjoint uids, gids inside a's. */
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(idpool_claim(path, 2100000000, 1999999995, 10, 0, &b, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        ck_assert_msg(strstr(err.msg, "the job gid range 1999999995-2000000004"), "%s", err.msg);
        /* Disjoint both: taken beside a. */
        err = (struct err)ERR_INIT;
        ck_assert_msg(idpool_claim(path, 2000000100, 2000000100, 10, 0, &b, &err) == 0, "%s", err.msg);
        /* a's ends with its fd: the overlapping one is taken then. */
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(idpool_claim(path, 2000000000, 2000000000, 50, 0, &c, &err), -1);
        close(a);
        ck_assert_msg(idpool_claim(path, 2000000000, 2000000000, 50, 0, &c, &err) == 0, "%s", err.msg);
        close(b);
        close(c);
        /* A claims file that cannot be made: ERR_IO, for the caller to say. */
        err = (struct err)ERR_INIT;
        ck_assert_int_eq(idpool_claim("/nonexistent-dir/claims", 1, 1, 1, 0, &a, &err), -1);
        ck_assert_int_eq(err.code, ERR_IO);
}
END_TEST


/* A claims file in a world-writable sticky dir (/run/lock is
 * 1777) made first by an unprivileged user, who holds a lock on the range,
 * must not keep root's daemon from starting. */
START_TEST(test_claim_not_blocked_by_other_user)
{
        if (geteuid() != 0)
                return;
        char dir[] = "/tmp/edgecd-unit-lockdir-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        chmod(dir, 01777);
        char path[128];
        snprintf(path, sizeof path, "%s/edgecd-job-users", dir);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(1);
                int fd = open(path, O_RDWR | O_CREAT, 0600);
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
                if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
                        _exit(2);
                (void)!write(p[1], "x", 1);
                pause();
                _exit(0);
        }
        char c;
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        struct err err = ERR_INIT;
        int fd = -1;
        int r = idpool_claim(path, 2000000000, 2000000000, 100, 0, &fd, &err);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(path);
        rmdir(dir);
        ck_assert_msg(!(r < 0 && err.code == ERR_CONFLICT), "nobody's lock refused root's claim: %s", err.msg);
        if (fd >= 0)
                close(fd);
}
END_TEST

/* A daemon SIGKILLed while it spawned its runtime: the spawn child, made
 * before the kill and not yet at its exec, holds a copy of the claims
 * file's open description and with it the claim (the restart right after
 * such a kill was refused).  Here a grandchild of a killed claimer holds
 * the copy until told, then lets go 200 ms later: refused without a grace
 * or with a short one, taken with the daemon's grace once it lets go. */
START_TEST(test_claim_waits_for_a_dead_claimers_child)
{
        const char *path = claims_path;
        /* The grandchild is ours to reap once its parent is gone. */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        int ready[2], go[2];
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(go), 0);
        pid_t claimer = fork();
        ck_assert_int_ge(claimer, 0);
        if (claimer == 0) {
                struct err e = ERR_INIT;
                int fd = -1;
                if (idpool_claim(path, 2000000000, 2000000000, 100, 0, &fd, &e) < 0)
                        _exit(3);
                pid_t copy = fork();
                if (copy == 0) {
                        close(go[1]);
                        char c;
                        if (read(go[0], &c, 1) == 1)
                                usleep(200 * 1000);
                        _exit(0);
                }
                (void)!write(ready[1], &copy, sizeof copy);
                pause();
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        pid_t copy = -1;
        ck_assert_int_eq(read(ready[0], &copy, sizeof copy), (ssize_t)sizeof copy);
        ck_assert_int_gt(copy, 0);
        kill(claimer, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(claimer, &status, 0), claimer);
        ck_assert(WIFSIGNALED(status));

        struct err err = ERR_INIT;
        int fd = -1;
        ck_assert_int_eq(idpool_claim(path, 2000000000, 2000000000, 100, 0, &fd, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        err = (struct err)ERR_INIT;
        int64_t t0 = now_mono_ms();
        ck_assert_int_eq(idpool_claim(path, 2000000000, 2000000000, 100, 300, &fd, &err), -1);
        ck_assert_int_eq(err.code, ERR_CONFLICT);
        ck_assert_int_ge(now_mono_ms() - t0, 300);

        ck_assert_int_eq(write(go[1], "x", 1), 1);
        err = (struct err)ERR_INIT;
        t0 = now_mono_ms();
        ck_assert_msg(idpool_claim(path, 2000000000, 2000000000, 100, HELD_GRACE_MS, &fd, &err) == 0, "%s",
                      err.msg);
        ck_assert_int_ge(now_mono_ms() - t0, 150);
        ck_assert_int_eq(waitpid(copy, &status, 0), copy);
        close(fd);
        close(go[1]);
        close(ready[0]);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("idpool");
        TCase *tc = tcase_create("core");
        tcase_add_unchecked_fixture(tc, claims_make, claims_remove);
        tcase_add_test(tc, test_round_robin);
        tcase_add_test(tc, test_busy_when_all_in_use);
        tcase_add_test(tc, test_bad_give_ignored);
        tcase_add_test(tc, test_check_host);
        tcase_add_test(tc, test_claims_conflict_by_range);
        tcase_add_test(tc, test_claim_not_blocked_by_other_user);
        tcase_add_test(tc, test_claim_waits_for_a_dead_claimers_child);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
