/* test-cgroup.c - cgroup accounting on real containers (runc on this hybrid
 * v1 host): peak memory and CPU time of a container that allocates 20 MB,
 * the OOM kill of one over a 16 MiB limit; and removal/counting of a parent
 * cgroup with and without children.  The tcase teardown removes containers
 * and cgroups even when a test fails; the fixture itself is in
 * containerfix.h, shared with test-runtime.c. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <sys/xattr.h>

#include <jansson.h>

#include "base/util.h"
#include "containerfix.h"
#include "runtime/runtime.h"
#include "sandbox/cgroup.h"
#include "sandbox/runcgroup.h"
#include "testutil.h"

/* The fake children of test_remove_parent. */
static void sweep_fake_children(void)
{
        free(run_cmd("rmdir /sys/fs/cgroup/*%s/* /sys/fs/cgroup%s/* 2>/dev/null", T_cg, T_cg));
}

static void setup(void)
{
        fixture_setup();
        T_sweep_extra = sweep_fake_children;
}

/* script under busybox sh in all five namespaces; a memory limit also
 * caps swap (memory+swap on v1). */
static char *make_bundle(const char *id, const char *script, int64_t mem_limit)
{
        json_t *args = jargs((const char *const[]){ "/bin/busybox", "sh", "-c", script, NULL });
        json_t *ns = jnamespaces((const char *const[]){ "pid", "network", "ipc", "uts", "mount", NULL });
        json_t *mem = mem_limit > 0 ? json_pack("{s:I, s:I}", "limit", (json_int_t)mem_limit, "swap",
                                                (json_int_t)mem_limit)
                                    : NULL;
        return write_bundle(id, args, ns, mem);
}

/* Run script to its end and read the stats before `delete`. */
static void run_and_measure(const char *id, const char *script, int64_t mem_limit, struct proc_exit *ex,
                            struct cgroup_stats *stats)
{
        char *bundle = make_bundle(id, script, mem_limit);
        int log = open_log(id);
        struct err e = ERR_INIT;
        struct pidref init = PIDREF_NULL;
        ck_assert_msg(runtime_create(&T_rt, id, bundle, log, &init, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_start(&T_rt, id, &e) == 0, "%s", e.msg);
        ck_assert_msg(pidref_wait(&init, now_mono_ms() + 30000, -1, ex, &e) == 0, "%s", e.msg);
        char cgpath[256];
        snprintf(cgpath, sizeof cgpath, "%s/%s", T_cg, id);
        ck_assert_msg(cgroup_read_stats(cgpath, NULL, 0, NULL, stats, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_delete(&T_rt, id, &e) == 0, "%s", e.msg);
        /* Gone with the container. */
        ck_assert_int_eq(cgroup_read_stats(cgpath, NULL, 0, NULL, stats + 1, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        close(log);
        free(bundle);
}

/* The cold path: the runtime runs script in the foreground in the
 * container cgroup leaf and deletes that cgroup when it ends. */
static void run_attached(const char *id, const char *script, int64_t mem_limit, const char *leaf,
                         struct proc_exit *cx)
{
        char *bundle = make_bundle(id, script, mem_limit);
        char *config = NULL;
        ck_assert_int_ge(asprintf(&config, "%s/config.json", bundle), 0);
        json_t *c = json_load_file(config, 0, NULL);
        ck_assert_ptr_nonnull(c);
        json_object_set_new(json_object_get(c, "linux"), "cgroupsPath", json_string(leaf));
        ck_assert_int_eq(json_dump_file(c, config, 0), 0);
        json_decref(c);
        free(config);

        int log = open_log(id);
        struct err e = ERR_INIT;
        struct pidref proc = PIDREF_NULL;
        struct proc_exit rx;
        struct cgroup_stats st;
        ck_assert_msg(runtime_run_attached(&T_rt, id, bundle, log, &proc, &e) == 0, "%s", e.msg);
        ck_assert_msg(pidref_wait(&proc, now_mono_ms() + 30000, -1, &rx, &e) == 0, "%s", e.msg);
        ck_assert_msg(runtime_attached_end(&T_rt, id, bundle, &rx, cx, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(cgroup_read_stats(leaf, NULL, 0, NULL, &st, &e), -1);   /* the runtime's: gone */
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        close(log);
        free(bundle);
}

/* The run's cgroup T_cg/<id> above the container's keeps the totals, and
 * is removed here. */
static void run_attached_and_measure(const char *id, const char *script, int64_t mem_limit, struct proc_exit *cx,
                                     struct cgroup_stats *st)
{
        char run[256], leaf[300];
        snprintf(run, sizeof run, "%s/%s", T_cg, id);
        snprintf(leaf, sizeof leaf, "%s/job", run);
        run_attached(id, script, mem_limit, leaf, cx);
        struct err e = ERR_INIT;
        ck_assert_msg(cgroup_read_stats(run, leaf, mem_limit, NULL, st, &e) == 0, "%s", e.msg);
        ck_assert_msg(cgroup_remove(run, &e) == 0, "%s", e.msg);
}

/* The page cache the slot tests' runs read (the runtime's init, the
 * container's busybox), read once in a cgroup of its own: charged to a
 * slot instead, on a host that never read them since boot, it would make
 * that slot go and be made anew (cgroup_settle), which those tests do
 * not expect.  Later runs find the pages cached and charge nothing. */
static void warm_page_cache(void)
{
        char id[32];
        snprintf(id, sizeof id, "t-warm-%d", (int)getpid());
        struct proc_exit ex;
        struct cgroup_stats st[2];
        run_attached_and_measure(id, "busybox head -c 1 /dev/zero | busybox md5sum | busybox tail | busybox wc -c",
                                 0, &ex, st);
        ck_assert_int_eq(ex.exit_code, 0);
}

/* The same through a run cgroup from rcs (a reused slot on v1), given
 * back after; *ret_slot is the slot it was (-1: its own). */
static void run_in_runcgroup(struct runcgroups *rcs, const char *id, const char *script, int64_t mem_limit,
                             struct proc_exit *cx, struct cgroup_stats *st, long *ret_slot)
{
        struct runcgroup rc;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, id, &rc, &e) == 0, "%s", e.msg);
        *ret_slot = rc.slot;
        run_attached(id, script, mem_limit, rc.leaf, cx);
        ck_assert_msg(runcgroup_stats(&rc, mem_limit, st, &e) == 0, "%s", e.msg);
        char usage[300];
        snprintf(usage, sizeof usage, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", rc.dir ? rc.dir : "");
        ck_assert_msg(runcgroup_give(rcs, &rc, id, RUNCG_DELETED, &e) == 0, "%s", e.msg);
        ck_assert_ptr_null(rc.dir);
        /* The container's kernel memory the kernel frees after it (within
         * about 10 ms): until then the next take passes its slot over,
         * and the tests count slots. */
        for (int i = 0; i < 200 && *ret_slot >= 0; i++) {
                FILE *f = fopen(usage, "r");
                long long held = 0;
                bool read = f && fscanf(f, "%lld", &held) == 1;
                if (f)
                        fclose(f);
                if (!read || held <= CGROUP_REUSE_MAX_BYTES)
                        break;
                usleep(10 * 1000);
        }
}

START_TEST(test_run_cgroup_keeps_totals)
{
        struct proc_exit ex;
        struct cgroup_stats st[2];
        run_attached_and_measure("t-runpeak", "busybox head -c 20000000 /dev/zero | busybox tail | busybox wc -c; "
                                 "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", 0, &ex, st);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 0);
        fprintf(stderr, "run cgroup: peak %lld bytes, cpu %lld ms\n", (long long)st[0].peak_memory_bytes,
                (long long)st[0].cpu_ms);
        ck_assert_int_gt(st[0].peak_memory_bytes, 10 * 1000 * 1000);
        ck_assert_int_lt(st[0].peak_memory_bytes, 200 * 1000 * 1000);
        ck_assert_int_ge(st[0].cpu_ms, 50);
        ck_assert(!st[0].oom_killed);
        ck_assert(!st[0].limit_hit);
        assert_no_leftovers();
}
END_TEST

/* Over its limit: the runtime reports the kill as 128+9, and the run's
 * cgroup shows the limit reached (v1 keeps no OOM count above the
 * container's own cgroup; v2 does). */
START_TEST(test_run_cgroup_oom)
{
        struct proc_exit ex;
        struct cgroup_stats st[2];
        run_attached_and_measure("t-runoom", "exec busybox tail < /dev/zero", 16 << 20, &ex, st);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGKILL);
        ck_assert(st[0].limit_hit);
        ck_assert_int_le(st[0].peak_memory_bytes, (16 << 20) + (1 << 20));
        ck_assert_int_gt(st[0].peak_memory_bytes, 8 << 20);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_stats_peak_and_cpu)
{
        struct proc_exit ex;
        struct cgroup_stats st[2];
        /* busybox tail holds the newline-free 20 MB "line" in memory. */
        run_and_measure("t-peak", "busybox head -c 20000000 /dev/zero | busybox tail | busybox wc -c", 0, &ex, st);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 0);
        fprintf(stderr, "peak %lld bytes, cpu %lld ms, oom %d, limit hit %d\n", (long long)st[0].peak_memory_bytes,
                (long long)st[0].cpu_ms, st[0].oom_killed, st[0].limit_hit);
        ck_assert_int_gt(st[0].peak_memory_bytes, 10 * 1000 * 1000);
        ck_assert_int_lt(st[0].peak_memory_bytes, 200 * 1000 * 1000);
        ck_assert_int_ge(st[0].cpu_ms, 0);
        ck_assert(!st[0].oom_killed);
        ck_assert(!st[0].limit_hit);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_stats_cpu_time)
{
        struct proc_exit ex;
        struct cgroup_stats st[2];
        /* A busy shell loop: a few hundred ms of CPU. */
        run_and_measure("t-cpu", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", 0, &ex, st);
        ck_assert_int_eq(ex.status, WAIT_EXITED);
        ck_assert_int_eq(ex.exit_code, 0);
        fprintf(stderr, "busy loop: cpu %lld ms\n", (long long)st[0].cpu_ms);
        ck_assert_int_ge(st[0].cpu_ms, 50);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_stats_oom_kill)
{
        struct proc_exit ex;
        struct cgroup_stats st[2];
        /* The init itself grows past 16 MiB: the kernel kills it. */
        run_and_measure("t-oom", "exec busybox tail < /dev/zero", 16 << 20, &ex, st);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert_int_eq(ex.signal, SIGKILL);
        ck_assert(st[0].oom_killed);
        ck_assert(st[0].oom_known);
        ck_assert(st[0].limit_hit);
        ck_assert_int_le(st[0].peak_memory_bytes, (16 << 20) + (1 << 20));
        ck_assert_int_gt(st[0].peak_memory_bytes, 8 << 20);
        assert_no_leftovers();
}
END_TEST

/* Run after run under slot-0 (reused on v1; made ahead, once per run, on
 * v2, and here on v1 too): each run's figures are its own, not the ones
 * before it, an OOM is still seen, and the slots go when the pool does. */
static void counts_each_run_alone(enum runcgroup_kind kind)
{
        warm_page_cache();
        bool slots = !cgroup_is_v2();
        /* On v1 under a parent nothing has made yet: the first slot makes it. */
        char parent[256];
        snprintf(parent, sizeof parent, "%s%s", T_cg, slots ? "/pool" : "");
        struct runcgroups *rcs = runcgroups_new_kind(parent, kind);
        struct proc_exit ex;
        struct cgroup_stats big, small, oom;
        long s1, s2, s3;
        /* Ids of their own: a run's bundle directory stays (fixture). */
        const char *k = kind == RUNCG_FRESH ? "fresh" : "slot";
        char big_id[32], small_id[32], oom_id[32];
        snprintf(big_id, sizeof big_id, "t-%s-big", k);
        snprintf(small_id, sizeof small_id, "t-%s-small", k);
        snprintf(oom_id, sizeof oom_id, "t-%s-oom", k);
        run_in_runcgroup(rcs, big_id, "busybox head -c 20000000 /dev/zero | busybox tail | busybox wc -c; "
                         "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", 0, &ex, &big, &s1);
        ck_assert_int_eq(ex.exit_code, 0);
        run_in_runcgroup(rcs, small_id, "true", 0, &ex, &small, &s2);
        ck_assert_int_eq(ex.exit_code, 0);
        fprintf(stderr, "slot %ld: peak %lld, cpu %lld ms; then slot %ld: peak %lld, cpu %lld ms\n", s1,
                (long long)big.peak_memory_bytes, (long long)big.cpu_ms, s2, (long long)small.peak_memory_bytes,
                (long long)small.cpu_ms);
        ck_assert_int_eq(s1, 0);
        ck_assert_int_eq(s2, 0);   /* slot-0 again: reused, or made again for it */
        ck_assert_uint_eq(runcgroups_count(rcs), 1);
        /* Kept for the next run, empty. */
        char slot0[300];
        snprintf(slot0, sizeof slot0, "%s/slot-0", parent);
        ck_assert_int_gt(cgroup_count_children(parent), 0);
        ck_assert_int_eq(cgroup_count_children(slot0), 0);
        ck_assert_int_gt(big.peak_memory_bytes, 10 * 1000 * 1000);
        ck_assert_int_ge(big.cpu_ms, 50);
        /* Not the first run's 20 MB and CPU. */
        ck_assert_int_ge(small.peak_memory_bytes, 0);
        ck_assert_int_lt(small.peak_memory_bytes, 8 * 1000 * 1000);
        ck_assert_int_lt(small.cpu_ms, big.cpu_ms / 2);
        ck_assert(!small.limit_hit && !small.oom_killed);

        run_in_runcgroup(rcs, oom_id, "exec busybox tail < /dev/zero", 16 << 20, &ex, &oom, &s3);
        fprintf(stderr, "slot %ld: oom run peak %lld, limit hit %d\n", s3, (long long)oom.peak_memory_bytes,
                oom.limit_hit);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert(oom.limit_hit);
        ck_assert_int_le(oom.peak_memory_bytes, (16 << 20) + (1 << 20));
        ck_assert_int_gt(oom.peak_memory_bytes, 8 << 20);
        ck_assert_int_eq(s3, 0);
        runcgroups_free(rcs);
        ck_assert_int_eq(cgroup_count_children(parent), 0);
        if (slots) {
                ck_assert_int_eq(cgroup_count_children(parent), 0);
                struct err e = ERR_INIT;
                ck_assert_msg(cgroup_remove(parent, &e) == 0, "%s", e.msg);
        }
        assert_no_leftovers();
}

START_TEST(test_runcgroup_reused_counts_each_run_alone)
{
        if (cgroup_is_v2())
                return;   /* v1's counters */
        counts_each_run_alone(RUNCG_REUSED);
}
END_TEST

START_TEST(test_runcgroup_fresh_counts_each_run_alone)
{
        counts_each_run_alone(RUNCG_FRESH);
}
END_TEST

static ino_t dir_inode(const char *cgroup)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s%s", cgroup_is_v2() ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory", cgroup), 0);
        struct stat st;
        ino_t ino = stat(p, &st) == 0 && S_ISDIR(st.st_mode) ? st.st_ino : 0;
        free(p);
        return ino;
}

/* Made ahead (v2's kind, run here on v1's hierarchies as well): a run's
 * cgroup is new, the next one is made as the run's is given back, a
 * leftover under a slot's name is never used, and one a run left
 * something in keeps that run's ids until the collector removed it. */
START_TEST(test_runcgroup_fresh_made_ahead)
{
        warm_page_cache();
        struct runcgroups *rcs = runcgroups_new_kind(T_cg, RUNCG_FRESH);
        struct runcgroup rc, rc2;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-fresh-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        /* Its counter files kept open on v2 only (v1 reads by name here). */
        ck_assert(cgroup_files_kept(rc.files) == cgroup_is_v2());
        char *slot0 = NULL, *leaf = NULL;
        ck_assert_int_ge(asprintf(&slot0, "%s/slot-0", T_cg), 0);
        ck_assert_int_ge(asprintf(&leaf, "%s/t-fresh-1", slot0), 0);
        ck_assert_str_eq(rc.dir, slot0);
        ck_assert_str_eq(rc.leaf, leaf);
        ino_t first = dir_inode(slot0);
        ck_assert_uint_ne(first, 0);   /* made when taken: none was ahead */
        ck_assert(runcgroups_owns(rcs, "slot-0"));
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-fresh-1", RUNCG_ENDED, &e), 0);

        /* Made again at once, empty, for the next run: another cgroup. */
        ino_t ahead = dir_inode(slot0);
        ck_assert_uint_ne(ahead, 0);
        ck_assert_uint_ne(ahead, first);
        ck_assert_int_eq(cgroup_count_children(slot0), 0);
        ck_assert(runcgroups_owns(rcs, "slot-0"));
        ck_assert_uint_eq(runcgroups_count(rcs), 1);
        ck_assert_msg(runcgroup_take(rcs, "t-fresh-2", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert_uint_eq(dir_inode(slot0), ahead);   /* taken as it was made */

        /* A leftover where the next number would go is never used nor
         * touched: the collector's (which may be about to destroy what is
         * there); the take goes on to the next number, and the leftover's
         * serves again once collected, made anew. */
        char *left = NULL, *left_kid = NULL, *slot2 = NULL;
        ck_assert_int_ge(asprintf(&left, "%s/slot-1", T_cg), 0);
        ck_assert_int_ge(asprintf(&left_kid, "%s/slot-1/x", T_cg), 0);
        ck_assert_int_ge(asprintf(&slot2, "%s/slot-2", T_cg), 0);
        ck_assert_msg(cgroup_make(left, &e) == 0 && cgroup_make(left_kid, &e) == 0, "%s", e.msg);
        ino_t left_ino = dir_inode(left);
        ck_assert_msg(runcgroup_take(rcs, "t-fresh-3", &rc2, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc2.slot, 2);
        ck_assert(!runcgroups_owns(rcs, "slot-1"));
        ck_assert_uint_eq(dir_inode(left), left_ino);
        ck_assert_uint_ne(dir_inode(left_kid), 0);
        ck_assert_msg(cgroup_destroy(left, &e) == 0, "%s", e.msg);
        ck_assert_ptr_null(runcgroups_collected(rcs, "slot-1"));
        struct runcgroup rc3;
        ck_assert_msg(runcgroup_take(rcs, "t-fresh-4", &rc3, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc3.slot, 1);
        ck_assert_uint_ne(dir_inode(left), 0);
        ck_assert_uint_eq(dir_inode(left_kid), 0);
        ck_assert_int_eq(runcgroup_give(rcs, &rc3, "t-fresh-4", RUNCG_ENDED, &e), 0);

        /* A run whose container was not deleted: its slot stays for the
         * collector, which gives its ids back once it removed it. */
        ck_assert_int_eq(runcgroup_give(rcs, &rc2, "t-fresh-3", RUNCG_NOT_DELETED, &e), -1);
        ck_assert_int_eq(e.code, ERR_BUSY);
        err_clear(&e);
        ck_assert(!runcgroups_owns(rcs, "slot-2"));
        ck_assert(runcgroups_holds_left(rcs, "t-fresh-3"));
        ck_assert_uint_ne(dir_inode(slot2), 0);
        ck_assert_msg(cgroup_destroy(slot2, &e) == 0, "%s", e.msg);
        char *back = runcgroups_collected(rcs, "slot-2");
        ck_assert_ptr_nonnull(back);
        ck_assert_str_eq(back, "t-fresh-3");
        free(back);
        ck_assert(!runcgroups_holds_left(rcs, "t-fresh-3"));

        /* Once the daemon stops, a give makes none ahead: removed. */
        runcgroups_stopping(rcs);
        ck_assert_uint_ne(dir_inode(rc.dir), 0);
        char *given = strdup(rc.dir);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-fresh-2", RUNCG_DELETED, &e), 0);
        ck_assert_uint_eq(dir_inode(given), 0);
        free(given);
        /* The free ones go with the pool. */
        runcgroups_free(rcs);
        ck_assert_uint_eq(dir_inode(slot0), 0);
        ck_assert_int_eq(cgroup_count_children(T_cg), 0);
        free(slot0);
        free(slot2);
        free(leaf);
        free(left);
        free(left_kid);
        assert_no_leftovers();
}
END_TEST

/* Made ahead: a take passes over leftovers under the numbers it tries
 * (each left to the collector) however many there are, up to 64 in one
 * take, where it gives up (leftovers made as fast as it goes). */
START_TEST(test_runcgroup_fresh_passes_over_leftovers)
{
        enum { N = 64 + 1 + 3 };
        struct runcgroups *rcs = runcgroups_new_kind(T_cg, RUNCG_FRESH);
        struct runcgroup rc, rc2;
        struct err e = ERR_INIT;
        char *dirs[N];
        for (int i = 0; i < N; i++)
                ck_assert_int_ge(asprintf(&dirs[i], "%s/slot-%d", T_cg, i), 0);
        /* Three in the way: the third try is not the last. */
        for (int i = 0; i < 3; i++)
                ck_assert_msg(cgroup_make(dirs[i], &e) == 0, "%s", e.msg);
        ck_assert_msg(runcgroup_take(rcs, "t-past-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 3);
        for (int i = 0; i < 3; i++)
                ck_assert(!runcgroups_owns(rcs, dirs[i] + strlen(T_cg) + 1));
        /* 64 more, taken while slot-3 is: the take fails at the 64th. */
        for (int i = 4; i < N; i++)
                ck_assert_msg(cgroup_make(dirs[i], &e) == 0, "%s", e.msg);
        ck_assert_int_eq(runcgroup_take(rcs, "t-past-2", &rc2, &e), -1);
        ck_assert_msg(strstr(e.msg, "slot-67`: already there"), "%s", e.msg);
        err_clear(&e);
        for (int i = 0; i < N; i++) {
                if (i == 3)
                        continue;
                ck_assert_msg(cgroup_destroy(dirs[i], &e) == 0, "%s", e.msg);
                free(runcgroups_collected(rcs, dirs[i] + strlen(T_cg) + 1));
        }
        /* Collected, their numbers serve again, made anew: no new one. */
        ck_assert_msg(runcgroup_take(rcs, "t-past-3", &rc2, &e) == 0, "%s", e.msg);
        ck_assert(rc2.slot != 3 && rc2.slot < N);
        ck_assert_int_eq(runcgroup_give(rcs, &rc2, "t-past-3", RUNCG_ENDED, &e), 0);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-past-1", RUNCG_ENDED, &e), 0);
        runcgroups_free(rcs);
        ck_assert_int_eq(cgroup_count_children(T_cg), 0);
        for (int i = 0; i < N; i++)
                free(dirs[i]);
        assert_no_leftovers();
}
END_TEST

static int64_t slot_usage(const char *dir)
{
        char *out = run_cmd("cat /sys/fs/cgroup/memory%s/memory.usage_in_bytes", dir);
        int64_t n = strtoll(out, NULL, 10);
        free(out);
        return n;
}

/* Bytes of fd's file in the page cache. */
static int64_t resident_bytes(int fd, size_t len)
{
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
        long page = sysconf(_SC_PAGESIZE);
        size_t n = (len + (size_t)page - 1) / (size_t)page;
        unsigned char *vec = xcalloc(n, 1);
        ck_assert_int_eq(mincore(p, len, vec), 0);
        int64_t in = 0;
        for (size_t i = 0; i < n; i++)
                in += (vec[i] & 1) ? page : 0;
        free(vec);
        munmap(p, len);
        return in;
}

/* What a run leaves charged to its slot (page cache) is the next run's
 * base, which reclaim can take away under that run: its peak would be
 * short by as much and a limit it reached missed.  A slot goes back
 * holding at most CGROUP_REUSE_MAX_BYTES, else it is made anew, and the
 * pages stay cached: reclaimed, they were what the next run of the same
 * plugin read again (and charged to its slot again, run after run). */
START_TEST(test_runcgroup_slot_base_kept_small)
{
        if (cgroup_is_v2())
                return;
        warm_page_cache();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        /* Unlinked at once, written through /proc: gone with this process
         * however the test ends. */
        char cache[] = "/var/tmp/edgecd-test-cache-XXXXXX";   /* on disk: reclaimable */
        char shm[] = "/dev/shm/edgecd-test-shm-XXXXXX";       /* tmpfs: not */
        int fds[] = { mkstemp(cache), mkstemp(shm) };
        ck_assert(fds[0] >= 0 && fds[1] >= 0);
        unlink(cache);
        unlink(shm);
        const char *files[] = { cache, shm };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
                struct runcgroup rc;
                struct err e = ERR_INIT;
                char id[32];
                snprintf(id, sizeof id, "t-base-%zu", i);
                ck_assert_msg(runcgroup_take(rcs, id, &rc, &e) == 0, "%s", e.msg);
                ck_assert_int_eq(rc.slot, 0);
                /* A run that leaves 8 MB charged to the slot. */
                char *made = run_cmd("mkdir /sys/fs/cgroup/memory%s && echo $$ > /sys/fs/cgroup/memory%s/tasks && "
                                     "dd if=/dev/zero of=/proc/%d/fd/%d bs=1M count=8 conv=fsync status=none && "
                                     "echo ok", rc.leaf, rc.leaf, (int)getpid(), fds[i]);
                ck_assert_str_eq(made, "ok\n");
                free(made);
                int64_t held = slot_usage(rc.dir);
                ck_assert_msg(held >= 8 << 20, "%s: the slot holds %lld bytes", files[i], (long long)held);
                ck_assert_msg(runcgroup_give(rcs, &rc, id, RUNCG_DELETED, &e) == 0, "%s", e.msg);
                if (i == 0) {
                        int64_t cached = resident_bytes(fds[i], 8 << 20);
                        ck_assert_msg(cached >= 7 << 20, "%s: %lld bytes of 8 MiB still cached", files[i],
                                      (long long)cached);
                }
                ck_assert_uint_eq(runcgroups_count(rcs), 0);   /* removed, made when taken */

                snprintf(id, sizeof id, "t-base-%zu-next", i);
                ck_assert_msg(runcgroup_take(rcs, id, &rc, &e) == 0, "%s", e.msg);
                ck_assert_int_eq(rc.slot, 0);
                ck_assert_msg(rc.base.memory_bytes <= CGROUP_REUSE_MAX_BYTES, "%s: the next run starts on %lld bytes",
                              files[i], (long long)rc.base.memory_bytes);
                ck_assert_msg(runcgroup_give(rcs, &rc, id, RUNCG_DELETED, &e) == 0, "%s", e.msg);
        }
        close(fds[0]);
        close(fds[1]);
        /* A limit reached in the slot after all that still counts. */
        struct proc_exit ex;
        struct cgroup_stats oom;
        long slot;
        run_in_runcgroup(rcs, "t-base-oom", "exec busybox tail < /dev/zero", 16 << 20, &ex, &oom, &slot);
        ck_assert_int_eq(ex.status, WAIT_SIGNALED);
        ck_assert(oom.limit_hit);
        ck_assert_int_gt(oom.peak_memory_bytes, 8 << 20);
        runcgroups_free(rcs);
        assert_no_leftovers();
}
END_TEST

static int count_open_fds(void);

/* A run in rc's container cgroup that leaves kernel memory charged to its
 * slot: 20,000 negative dentries, about 4 MB, which (unlike most of a
 * container's) the kernel keeps and v1's reclaim of the cgroup does not
 * take, then rc given back.  How much the slot holds after. */
static int64_t give_back_holding_kernel_memory(struct runcgroups *rcs, struct runcgroup *rc, const char *id)
{
        char *made = run_cmd("mkdir /sys/fs/cgroup/memory%s && echo $$ > /sys/fs/cgroup/memory%s/tasks && "
                             "i=0; while [ $i -lt 20000 ]; do [ -e /var/tmp/edgecd-test-none-$$-$i ]; i=$((i+1)); "
                             "done; echo ok", rc->leaf, rc->leaf);
        ck_assert_str_eq(made, "ok\n");
        free(made);
        char dir[300];
        snprintf(dir, sizeof dir, "%s", rc->dir);
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_give(rcs, rc, id, RUNCG_DELETED, &e) == 0, "%s", e.msg);
        return slot_usage(dir);
}

/* A kernel booted with cgroup.memory=nokmem charges no dentries. */
static bool kernel_memory_counted(int64_t held)
{
        if (held > CGROUP_REUSE_MAX_BYTES)
                return true;
        fprintf(stderr, "skipped: 20,000 dentries left %lld bytes charged (no kernel memory accounting)\n",
                (long long)held);
        return false;
}

/* A slot given back holding more than the next run may start on (a
 * container's kernel memory, which the kernel frees itself within about
 * 10 ms of its end) is kept, but not taken while it holds that much: a
 * take passes over it to another slot, a new one while fewer than two
 * wait so; past that it takes the one given back first and reclaims what
 * it holds, or makes its cgroup anew.  Either way the next run starts on
 * at most CGROUP_REUSE_MAX_BYTES.  A slot whose runs' memory outlasted
 * the wait so has it reclaimed as it is given back, for its next gives. */
START_TEST(test_runcgroup_slot_holding_kernel_memory_waits)
{
        if (cgroup_is_v2())
                return;
        warm_page_cache();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        struct runcgroup rc;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-kmem-0", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        if (!kernel_memory_counted(give_back_holding_kernel_memory(rcs, &rc, "t-kmem-0"))) {
                runcgroups_free(rcs);
                return;
        }
        ck_assert_uint_eq(runcgroups_count(rcs), 1);   /* kept */

        ck_assert_msg(runcgroup_take(rcs, "t-kmem-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);                  /* slot 0 passed over */
        ck_assert_int_le(rc.base.memory_bytes, CGROUP_REUSE_MAX_BYTES);
        ck_assert_int_gt(give_back_holding_kernel_memory(rcs, &rc, "t-kmem-1"), CGROUP_REUSE_MAX_BYTES);
        ck_assert_uint_eq(runcgroups_count(rcs), 2);

        /* Two wait: the first given back is taken, settled. */
        ck_assert_msg(runcgroup_take(rcs, "t-kmem-2", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert_msg(rc.base.memory_bytes <= CGROUP_REUSE_MAX_BYTES, "the next run starts on %lld bytes",
                      (long long)rc.base.memory_bytes);
        ck_assert_int_le(slot_usage(rc.dir), CGROUP_REUSE_MAX_BYTES);
        ck_assert_msg(runcgroup_give(rcs, &rc, "t-kmem-2", RUNCG_DELETED, &e) == 0, "%s", e.msg);
        /* Settled, it is taken again before slot 1, which still waits;
         * given back holding that memory again, it is not kept waiting
         * this time: reclaimed at once, or (as here) made anew. */
        ck_assert_msg(runcgroup_take(rcs, "t-kmem-3", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        give_back_holding_kernel_memory(rcs, &rc, "t-kmem-3");
        ck_assert_uint_eq(runcgroups_count(rcs), 1);   /* slot 1 waits; slot 0 unmade */
        runcgroups_free(rcs);
        assert_no_leftovers();
}
END_TEST

/* A slot kept waiting for its kernel memory, removed from under it (an
 * operator's rmdir): found so when taken, left to the collector, its
 * files closed, and the run gets another slot. */
START_TEST(test_runcgroup_waiting_slot_gone_from_under_us)
{
        if (cgroup_is_v2())
                return;
        warm_page_cache();
        int before = count_open_fds();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        struct runcgroup rc;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-kgone-0", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        if (!kernel_memory_counted(give_back_holding_kernel_memory(rcs, &rc, "t-kgone-0"))) {
                runcgroups_free(rcs);
                return;
        }
        ck_assert_int_eq(count_open_fds(), before + 3);
        char *out = run_cmd("rmdir /sys/fs/cgroup/*%s/slot-0 && echo ok", T_cg);
        ck_assert_str_eq(out, "ok\n");
        free(out);
        ck_assert_msg(runcgroup_take(rcs, "t-kgone-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);
        ck_assert(!runcgroups_owns(rcs, "slot-0"));
        ck_assert_int_eq(count_open_fds(), before + 3);   /* slot 1's alone */
        ck_assert_msg(runcgroup_give(rcs, &rc, "t-kgone-1", RUNCG_DELETED, &e) == 0, "%s", e.msg);
        runcgroups_free(rcs);
        assert_no_leftovers();
}
END_TEST

/* A slot something was left in (its container not deleted, here a
 * process in it) is not used again until the collector has removed it:
 * left where it is, it remembers its run, whose ids wait for that. */
/* A free slot that lost its cgroup in one hierarchy (an operator's rmdir,
 * another manager's cleanup) is not used: the take goes on to a new slot,
 * the broken one waits for the collector, and once collected its number
 * serves again, its cgroup made anew in every hierarchy. */
START_TEST(test_runcgroup_slot_gone_from_under_us)
{
        if (cgroup_is_v2())
                return;   /* no slots on v2 */
        warm_page_cache();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        struct runcgroup rc, rc2;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-gone-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-gone-1", RUNCG_DELETED, &e), 0);
        char *out = run_cmd("rmdir /sys/fs/cgroup/memory%s/slot-0 && echo ok", T_cg);
        ck_assert_str_eq(out, "ok\n");
        free(out);

        ck_assert_msg(runcgroup_take(rcs, "t-gone-2", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);
        ck_assert(!runcgroups_owns(rcs, "slot-0"));
        ck_assert(runcgroups_owns(rcs, "slot-1"));
        ck_assert_uint_eq(runcgroups_count(rcs), 1);
        ck_assert(!runcgroups_holds_left(rcs, "t-gone-1"));

        /* The collector removes what is left of it; no run's ids wait on it. */
        char *dir = NULL;
        ck_assert_int_ge(asprintf(&dir, "%s/slot-0", T_cg), 0);
        ck_assert_msg(cgroup_destroy(dir, &e) == 0, "%s", e.msg);
        ck_assert_ptr_null(runcgroups_collected(rcs, "slot-0"));
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-gone-2", RUNCG_DELETED, &e), 0);

        /* Two runs at once: slot 1 as it was, slot 0 made again. */
        ck_assert_msg(runcgroup_take(rcs, "t-gone-3", &rc, &e) == 0, "%s", e.msg);
        ck_assert_msg(runcgroup_take(rcs, "t-gone-4", &rc2, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot + rc2.slot, 1);
        const char *hier[] = { "memory", "cpuset", "pids", "cpu" };
        for (size_t i = 0; i < ARRAY_SIZE(hier); i++) {
                char *q = NULL;
                struct stat st;
                ck_assert_int_ge(asprintf(&q, "/sys/fs/cgroup/%s%s", hier[i], dir), 0);
                ck_assert_msg(stat(q, &st) == 0 && S_ISDIR(st.st_mode), "%s: not made again", q);
                free(q);
        }
        free(dir);
        ck_assert_uint_eq(runcgroups_count(rcs), 2);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-gone-3", RUNCG_DELETED, &e), 0);
        ck_assert_int_eq(runcgroup_give(rcs, &rc2, "t-gone-4", RUNCG_DELETED, &e), 0);
        runcgroups_free(rcs);
        assert_no_leftovers();
}
END_TEST

static int count_open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n - 1;   /* the directory's own */
}

/* A slot keeps its three counter files open while it is ours (a pread
 * each instead of an open, a read and a close), and only then: none more
 * for a slot used again, none left for one that goes to the collector,
 * none after runcgroups_free().  What it reads through them is the slot's,
 * and a slot removed from under them (ENODEV) is not used. */
START_TEST(test_runcgroup_slot_files_kept)
{
        if (cgroup_is_v2())
                return;   /* no slots on v2 */
        warm_page_cache();
        int before = count_open_fds();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        struct proc_exit ex;
        struct cgroup_stats st;
        long slot;
        /* A slot given back holding page cache is made anew, its files
         * closed (cgroup_settle): a run's pages not yet freed when it is
         * given back (seen once in a loaded make check) may do that.  Kept
         * in most runs is what is asked. */
        int kept = 0;
        for (int i = 0; i < 4; i++) {
                char id[32];
                snprintf(id, sizeof id, "t-files-%d", i);
                run_in_runcgroup(rcs, id, "busybox head -c 4000000 /dev/zero | busybox md5sum >/dev/null", 0, &ex,
                                 &st, &slot);
                ck_assert_int_eq(slot, 0);
                ck_assert_int_eq(ex.status, WAIT_EXITED);
                ck_assert_int_gt(st.peak_memory_bytes, 0);
                ck_assert_int_ge(st.cpu_ms, 0);
                int now = count_open_fds();
                ck_assert_msg(now == before + 3 || now == before, "%d fds open, %d before", now, before);
                kept += now == before + 3;
        }
        ck_assert_int_ge(kept, 3);
        /* Left something in: the slot goes to the collector, its files closed. */
        struct runcgroup rc;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-files-left", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert_int_ge(rc.files->peak, 0);
        char *made = run_cmd("mkdir /sys/fs/cgroup/memory%s && echo ok", rc.leaf);
        ck_assert_str_eq(made, "ok\n");
        free(made);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-files-left", RUNCG_NOT_DELETED, &e), -1);
        ck_assert_int_eq(count_open_fds(), before);
        /* The next run: a new slot, its own three files. */
        run_in_runcgroup(rcs, "t-files-next", "true", 0, &ex, &st, &slot);
        ck_assert_int_eq(slot, 1);
        ck_assert_int_eq(count_open_fds(), before + 3);
        /* Slot 1 removed from under its kept files: they say ENODEV, its
         * files are closed, and the take goes on to a new slot. */
        char *out = run_cmd("rmdir /sys/fs/cgroup/memory%s/slot-1 && echo ok", T_cg);
        ck_assert_str_eq(out, "ok\n");
        free(out);
        run_in_runcgroup(rcs, "t-files-after", "true", 0, &ex, &st, &slot);
        ck_assert_int_eq(slot, 2);
        ck_assert_int_eq(count_open_fds(), before + 3);
        ck_assert(!runcgroups_owns(rcs, "slot-1"));
        for (int i = 0; i < 2; i++) {
                char *dir = NULL;
                ck_assert_int_ge(asprintf(&dir, "%s/slot-%d", T_cg, i), 0);
                ck_assert_msg(cgroup_destroy(dir, &e) == 0, "%s", e.msg);
                free(runcgroups_collected(rcs, dir + strlen(T_cg) + 1));
                free(dir);
        }
        /* Slot 1 collected, made anew and its files opened again. */
        run_in_runcgroup(rcs, "t-files-again", "true", 0, &ex, &st, &slot);
        ck_assert_int_eq(slot, 1);
        ck_assert_int_eq(count_open_fds(), before + 6);
        /* A slot whose directory was removed and made again under a run
         * (its files then the old cgroup's): given back, it is removed
         * and made anew, not kept free with files that say ENODEV. */
        ck_assert_msg(runcgroup_take(rcs, "t-files-remade", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);
        out = run_cmd("rmdir /sys/fs/cgroup/memory%s && mkdir /sys/fs/cgroup/memory%s && echo ok", rc.dir, rc.dir);
        ck_assert_str_eq(out, "ok\n");
        free(out);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-files-remade", RUNCG_DELETED, &e), 0);
        ck_assert_int_eq(count_open_fds(), before + 3);
        run_in_runcgroup(rcs, "t-files-remade-next", "true", 0, &ex, &st, &slot);
        ck_assert_int_eq(slot, 1);
        ck_assert_int_eq(count_open_fds(), before + 6);
        runcgroups_free(rcs);
        ck_assert_int_eq(count_open_fds(), before);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_runcgroup_left_slot_goes_to_the_collector)
{
        if (cgroup_is_v2())
                return;   /* no slots on v2 */
        warm_page_cache();
        struct runcgroups *rcs = runcgroups_new(T_cg);
        struct runcgroup rc;
        struct err e = ERR_INIT;
        ck_assert_msg(runcgroup_take(rcs, "t-left-1", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert(runcgroups_owns(rcs, "slot-0"));
        char *made = run_cmd("mkdir /sys/fs/cgroup/memory%s && echo ok", rc.leaf);
        ck_assert_str_eq(made, "ok\n");
        free(made);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-left-1", RUNCG_NOT_DELETED, &e), -1);
        ck_assert_int_eq(e.code, ERR_BUSY);
        ck_assert(!runcgroups_owns(rcs, "slot-0"));
        ck_assert(runcgroups_holds_left(rcs, "t-left-1"));
        /* Where the runtime made it, for it to delete. */
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "/sys/fs/cgroup/memory%s/slot-0/t-left-1", T_cg), 0);
        struct stat st;
        ck_assert_msg(stat(p, &st) == 0, "%s: moved", p);
        free(p);
        /* The next run gets a new slot. */
        ck_assert_msg(runcgroup_take(rcs, "t-left-2", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);
        ck_assert(runcgroups_owns(rcs, "slot-1"));
        /* An empty container cgroup the runtime left is removed, and the
         * slot is free again: in cpuset alone too, as a runtime killed
         * while it made the container's cgroups leaves it. */
        made = run_cmd("mkdir /sys/fs/cgroup/memory%s /sys/fs/cgroup/cpuset%s && echo ok", rc.leaf, rc.leaf);
        ck_assert_str_eq(made, "ok\n");
        free(made);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-left-2", RUNCG_DELETED, &e), 0);
        ck_assert_msg(runcgroup_take(rcs, "t-left-3", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 1);
        made = run_cmd("mkdir /sys/fs/cgroup/cpuset%s && echo ok", rc.leaf);
        ck_assert_str_eq(made, "ok\n");
        free(made);
        char *leaf = strdup(rc.leaf);
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-left-3", RUNCG_DELETED, &e), 0);
        const char *hier[] = { "memory", "cpuset", "pids", "cpu" };
        for (size_t i = 0; i < ARRAY_SIZE(hier); i++) {
                char *q = NULL;
                ck_assert_int_ge(asprintf(&q, "/sys/fs/cgroup/%s%s", hier[i], leaf), 0);
                ck_assert_msg(stat(q, &st) < 0 && errno == ENOENT, "%s: left behind", q);
                free(q);
        }
        free(leaf);
        ck_assert(runcgroups_owns(rcs, "slot-1"));
        ck_assert_uint_eq(runcgroups_count(rcs), 1);
        /* What the collector does: removes the slot no run owns, and hands
         * back the run whose ids are free now; the slot's number serves
         * again, made anew. */
        ck_assert_ptr_null(runcgroups_collected(rcs, "slot-1"));   /* ours: not collected */
        ck_assert_ptr_null(runcgroups_collected(rcs, "t-left-1"));
        char *left = NULL;
        ck_assert_int_ge(asprintf(&left, "%s/slot-0", T_cg), 0);
        ck_assert_msg(cgroup_destroy(left, &e) == 0, "%s", e.msg);
        free(left);
        char *run = runcgroups_collected(rcs, "slot-0");
        ck_assert_ptr_nonnull(run);
        ck_assert_str_eq(run, "t-left-1");
        free(run);
        ck_assert(!runcgroups_holds_left(rcs, "t-left-1"));
        ck_assert_ptr_null(runcgroups_collected(rcs, "slot-0"));   /* once */
        ck_assert_msg(runcgroup_take(rcs, "t-left-4", &rc, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rc.slot, 0);
        ck_assert(runcgroups_owns(rcs, "slot-0"));
        ck_assert_int_eq(runcgroup_give(rcs, &rc, "t-left-4", RUNCG_DELETED, &e), 0);
        ck_assert_uint_eq(runcgroups_count(rcs), 2);
        runcgroups_free(rcs);
        assert_no_leftovers();
}
END_TEST

START_TEST(test_runcgroup_slot_names)
{
        size_t n = 99;
        ck_assert(runcgroup_slot_name("slot-0", &n) && n == 0);
        ck_assert(runcgroup_slot_name("slot-12", &n) && n == 12);
        const char *no[] = { "slot-", "slot-07", "slot-1x", "slot--1", "slot-+1", "slot- 1", "Slot-1", "slot1",
                             "x-slot-1", "slot-99999999999999999999" };
        for (size_t i = 0; i < ARRAY_SIZE(no); i++)
                ck_assert_msg(!runcgroup_slot_name(no[i], NULL), "%s", no[i]);
}
END_TEST

START_TEST(test_bad_paths)
{
        struct cgroup_stats st;
        struct err e = ERR_INIT;
        const char *bad[] = { "relative/x", "/", "", "/a/../b", "/..", "/a/.." };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                ck_assert_int_eq(cgroup_read_stats(bad[i], NULL, 0, NULL, &st, &e), -1);
                ck_assert_int_eq(e.code, ERR_INVALID);
                ck_assert_int_eq(cgroup_remove(bad[i], &e), -1);
                ck_assert_int_eq(cgroup_count_children(bad[i]), 0);
        }
        ck_assert_int_eq(cgroup_read_stats(NULL, NULL, 0, NULL, &st, &e), -1);
        /* dots inside a name are fine; the cgroup just is not there */
        ck_assert_int_eq(cgroup_read_stats("/edgecd-unit-none/a..b", NULL, 0, NULL, &st, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
}
END_TEST

/* A cgroup its runtime deleted when it ended (cgroup_remove_ended): on
 * v1, gone from the memory hierarchy is gone (one rmdir); there, it is
 * removed from each hierarchy as by cgroup_remove.  What is left in
 * another hierarchy is the collector's (cgroup_sweep_children). */
static bool keep_named_keep(const char *name, void *ctx)
{
        (*(int *)ctx)++;
        return !strcmp(name, "keep");
}

START_TEST(test_remove_ended_looks_at_memory)
{
        if (pure_v2())
                return;   /* one hierarchy: cgroup_remove itself (test_remove_parent) */
        char *leaf = NULL, *mem = NULL, *pids = NULL;
        ck_assert_int_ge(asprintf(&leaf, "%s/ended", T_cg), 0);
        ck_assert_int_ge(asprintf(&mem, "/sys/fs/cgroup/memory%s", leaf), 0);
        ck_assert_int_ge(asprintf(&pids, "/sys/fs/cgroup/pids%s", leaf), 0);
        struct err e = ERR_INIT;

        /* There in every hierarchy (the runtime was stopped mid-delete):
         * removed from all of them. */
        ck_assert_msg(cgroup_make(leaf, &e) == 0, "%s", e.msg);
        ck_assert_msg(cgroup_remove_ended(leaf, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(access(mem, F_OK), -1);
        ck_assert_int_eq(access(pids, F_OK), -1);

        /* Gone from memory's: the others are not looked at. */
        ck_assert_msg(cgroup_make(leaf, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(rmdir(mem), 0);
        ck_assert_msg(cgroup_remove_ended(leaf, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(access(pids, F_OK), 0);

        /* ...and the collector's sweep of the parent removes it, leaving
         * what keep() keeps. */
        char *kept = NULL;
        ck_assert_int_ge(asprintf(&kept, "/sys/fs/cgroup/pids%s/keep", T_cg), 0);
        ck_assert_int_eq(mkdir(kept, 0755), 0);
        size_t removed = 99;
        int asked = 0;
        ck_assert_msg(cgroup_sweep_children(T_cg, keep_named_keep, &asked, &removed, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(removed, 1);
        ck_assert_int_eq(asked, 2);
        ck_assert_int_eq(access(pids, F_OK), -1);
        ck_assert_int_eq(access(kept, F_OK), 0);
        ck_assert_int_eq(rmdir(kept), 0);

        /* A task still in memory's: busy, as cgroup_remove says. */
        ck_assert_msg(cgroup_make(leaf, &e) == 0, "%s", e.msg);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        char *procs = NULL;
        ck_assert_int_ge(asprintf(&procs, "%s/cgroup.procs", mem), 0);
        FILE *f = fopen(procs, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%d\n", (int)pid);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(cgroup_remove_ended(leaf, &e), -1);
        ck_assert_int_eq(e.code, ERR_BUSY);
        ck_assert_int_eq(access(mem, F_OK), 0);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_msg(cgroup_remove(leaf, &e) == 0, "%s", e.msg);
        free(procs);
        free(kept);
        free(leaf);
        free(mem);
        free(pids);
}
END_TEST

START_TEST(test_remove_parent)
{
        /* Two hierarchies (or the one v2 tree), each with a child. */
        const char *v1[] = { "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", NULL };
        const char *v2[] = { "/sys/fs/cgroup", NULL };
        const char *const *roots = pure_v2() ? v2 : v1;
        int made = 0;
        for (const char *const *r = roots; *r; r++) {
                char *p = NULL;
                ck_assert_int_ge(asprintf(&p, "%s%s/c1", *r, T_cg), 0);
                struct err e = ERR_INIT;
                ck_assert_msg(mkdir_p(p, 0755, &e) == 0, "%s", e.msg);
                free(p);
                made++;
        }
        ck_assert_int_eq(cgroup_count_children(T_cg), made);

        struct err e = ERR_INIT;
        ck_assert_int_eq(cgroup_remove(T_cg, &e), -1);
        ck_assert_int_eq(e.code, ERR_BUSY);
        ck_assert_int_eq(e.errnum, EBUSY);
        char *where = NULL;
        ck_assert_int_ge(asprintf(&where, "`%s%s`", roots[0], T_cg), 0);
        ck_assert_msg(strstr(e.msg, where), "%s", e.msg);
        free(where);

        for (const char *const *r = roots; *r; r++) {
                char *p = NULL;
                ck_assert_int_ge(asprintf(&p, "%s%s/c1", *r, T_cg), 0);
                ck_assert_int_eq(rmdir(p), 0);
                free(p);
        }
        ck_assert_int_eq(cgroup_count_children(T_cg), 0);
        ck_assert_msg(cgroup_remove(T_cg, &e) == 0, "%s", e.msg);
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s%s", roots[0], T_cg), 0);
        ck_assert_int_eq(access(p, F_OK), -1);
        free(p);
        /* Absent everywhere: fine. */
        ck_assert_msg(cgroup_remove(T_cg, &e) == 0, "%s", e.msg);
}
END_TEST

/* A leftover cgroup no runtime will delete, with a process in it (and in
 * a sub-cgroup): killed and removed in every hierarchy; a process outside
 * it, and a sibling cgroup, are left alone. */
START_TEST(test_destroy_kills_members_only)
{
        const char *v1[] = { "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", NULL };
        const char *v2[] = { "/sys/fs/cgroup", NULL };
        const char *const *roots = pure_v2() ? v2 : v1;
        pid_t in = fork(), out = fork();
        if (in == 0 || out == 0) {
                signal(SIGTERM, SIG_DFL);
                pause();
                _exit(0);
        }
        ck_assert_int_gt(in, 0);
        ck_assert_int_gt(out, 0);
        for (const char *const *r = roots; *r; r++) {
                char *p = NULL, *q = NULL;
                ck_assert_int_ge(asprintf(&p, "%s%s/left-1/sub", *r, T_cg), 0);
                ck_assert_int_ge(asprintf(&q, "%s%s/other-1", *r, T_cg), 0);
                struct err e = ERR_INIT;
                ck_assert_msg(mkdir_p(p, 0755, &e) == 0 && mkdir_p(q, 0755, &e) == 0, "%s", e.msg);
                free(run_cmd("echo %d > '%s/cgroup.procs'", (int)in, p));
                free(p);
                free(q);
        }
        char **names = cgroup_list_children(T_cg);
        ck_assert_int_eq(strv_len(names), 2);
        strv_free(names);

        char *left = NULL;
        ck_assert_int_ge(asprintf(&left, "%s/left-1", T_cg), 0);
        struct err e = ERR_INIT;
        ck_assert_msg(cgroup_destroy(left, &e) == 0, "%s", e.msg);
        int st;
        ck_assert_int_eq(waitpid(in, &st, 0), in);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        ck_assert_int_eq(kill(out, 0), 0);   /* not a member: alive */
        names = cgroup_list_children(T_cg);
        ck_assert_int_eq(strv_len(names), 1);
        ck_assert_str_eq(names[0], "other-1");
        strv_free(names);
        ck_assert_msg(cgroup_destroy(left, &e) == 0, "%s", e.msg);   /* gone already: fine */
        free(left);

        kill(out, SIGKILL);
        waitpid(out, &st, 0);
        for (const char *const *r = roots; *r; r++) {
                char *q = NULL;
                ck_assert_int_ge(asprintf(&q, "%s%s/other-1", *r, T_cg), 0);
                ck_assert_int_eq(rmdir(q), 0);
                free(q);
        }
}
END_TEST

/* --- cgroup v2 set-up and reads, on a stand-in tree (this host is v1) --- */

static char *slurp(const char *dir, const char *name)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        char *text = read_file_tail(p, 4096);
        free(p);
        return text ? text : strdup("");
}

/* A cgroup directory of the stand-in tree, with the files we write. */
static char *fake_cgroup(const char *root, const char *rel, const char *controllers)
{
        char *d = NULL;
        ck_assert_int_ge(asprintf(&d, "%s%s", root, rel), 0);
        free(run_cmd("mkdir -p '%s'", d));
        free(tu_write(d, "cgroup.controllers", controllers));
        free(tu_write(d, "cgroup.subtree_control", ""));
        free(tu_write(d, "cgroup.procs", ""));
        return d;
}

/* systemd's mark on a Delegate=yes unit's cgroup; false when this
 * filesystem keeps no trusted xattrs. */
static bool mark_delegated(const char *dir)
{
        return setxattr(dir, "trusted.delegate", "1", 1, 0) == 0;
}

START_TEST(test_v2_parent_not_delegated)
{
        char *root = tu_mkdtemp();
        free(fake_cgroup(root, "", "cpuset cpu io memory pids"));
        char *unit = fake_cgroup(root, "/system.slice/x.service", "cpu memory pids");
        char *parent = fake_cgroup(root, "/edgecd", "cpu memory pids");
        char *resolved = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(cgroup_setup_parent_at(root, "/system.slice/x.service", 42, "/edgecd", &resolved, &e) == 0,
                      "%s", e.msg);
        /* Where it was, from the top, as on v1. */
        ck_assert_str_eq(resolved, "/edgecd");
        char *t = slurp(root, "cgroup.subtree_control");
        ck_assert_str_eq(t, "+memory +pids +cpu");
        free(t);
        t = slurp(parent, "cgroup.subtree_control");
        ck_assert_str_eq(t, "+memory +pids +cpu");
        free(t);
        /* The daemon stays where it is. */
        t = slurp(unit, "cgroup.procs");
        ck_assert_str_eq(t, "");
        free(t);
        free(resolved);
        /* A parent that holds the daemon is refused before anything is
         * written: what is left under it is killed. */
        struct err e2 = ERR_INIT;
        ck_assert_int_eq(cgroup_setup_parent_at(root, "/edgecd/x", 1, "/edgecd", &resolved, &e2), -1);
        ck_assert_int_eq(e2.code, ERR_INVALID);
        ck_assert_msg(strstr(e2.msg, "cgroup_parent `/edgecd` holds the daemon's own cgroup"), "%s", e2.msg);
        ck_assert_ptr_null(resolved);
        free(parent);
        free(unit);
        tu_rm_rf(root);
        free(root);
}
END_TEST

START_TEST(test_v2_parent_delegated)
{
        char *root = tu_mkdtemp();
        char *unit = fake_cgroup(root, "/system.slice/edgecd.service", "cpu memory pids");
        if (!mark_delegated(unit)) {
                fprintf(stderr, "test_v2_parent_delegated: no trusted xattrs on %s: skipped\n", root);
                goto out;
        }
        char *leaf = fake_cgroup(root, "/system.slice/edgecd.service/daemon", "");
        char *parent = fake_cgroup(root, "/system.slice/edgecd.service/jobs/edgecd", "cpu memory pids");
        char *mid = NULL;
        ck_assert_int_ge(asprintf(&mid, "%s/system.slice/edgecd.service/jobs", root), 0);
        free(tu_write(mid, "cgroup.subtree_control", ""));
        char *resolved = NULL;
        struct err e = ERR_INIT;
        ck_assert_msg(cgroup_setup_parent_at(root, "/system.slice/edgecd.service", 4242, "/jobs/edgecd", &resolved,
                                             &e) == 0, "%s", e.msg);
        /* Inside the delegated cgroup; the daemon in a leaf of its own;
         * controllers from the unit's cgroup down, none above it. */
        ck_assert_str_eq(resolved, "/system.slice/edgecd.service/jobs/edgecd");
        char *t = slurp(leaf, "cgroup.procs");
        ck_assert_str_eq(t, "4242");
        free(t);
        const char *const enabled[] = { unit, mid, parent };
        for (size_t i = 0; i < 3; i++) {
                t = slurp(enabled[i], "cgroup.subtree_control");
                ck_assert_str_eq(t, "+memory +pids +cpu");
                free(t);
        }
        ck_assert_int_ne(access(root, F_OK), -1);
        char *top = NULL;
        ck_assert_int_ge(asprintf(&top, "%s/cgroup.subtree_control", root), 0);
        ck_assert_int_eq(access(top, F_OK), -1);
        free(top);
        free(resolved);

        /* A restart that finds the daemon in its leaf already: the same
         * parent, and it is not moved again. */
        free(tu_write(leaf, "cgroup.procs", ""));
        e = (struct err)ERR_INIT;
        ck_assert_msg(cgroup_setup_parent_at(root, "/system.slice/edgecd.service/daemon", 4242, "/jobs/edgecd",
                                             &resolved, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(resolved, "/system.slice/edgecd.service/jobs/edgecd");
        t = slurp(leaf, "cgroup.procs");
        ck_assert_str_eq(t, "");
        free(t);
        free(resolved);

        /* The leaf itself cannot be the parent: its jobs would be swept
         * with the daemon among them. */
        e = (struct err)ERR_INIT;
        ck_assert_int_eq(cgroup_setup_parent_at(root, "/system.slice/edgecd.service", 1, "/daemon", &resolved, &e), -1);
        ck_assert_int_eq(e.code, ERR_INVALID);
        ck_assert_ptr_null(resolved);
        free(mid);
        free(parent);
        free(leaf);
out:
        free(unit);
        tu_rm_rf(root);
        free(root);
}
END_TEST

START_TEST(test_v2_parent_missing_controller)
{
        char *root = tu_mkdtemp();
        char *unit = fake_cgroup(root, "/system.slice/x.service", "cpu memory pids");
        /* A subtree_control that refuses the write: cpu is not offered. */
        char *top = NULL;
        ck_assert_int_ge(asprintf(&top, "%s/cgroup.subtree_control", root), 0);
        ck_assert_int_eq(mkdir(top, 0755), 0);
        free(tu_write(root, "cgroup.controllers", "memory pids\n"));
        char *resolved = NULL;
        struct err e = ERR_INIT;
        ck_assert_int_eq(cgroup_setup_parent_at(root, "/system.slice/x.service", 1, "/edgecd", &resolved, &e), -1);
        ck_assert_int_eq(e.code, ERR_UNAVAILABLE);
        ck_assert_msg(strstr(e.msg, "the cpu controller is not offered") && strstr(e.msg, "/edgecd"), "%s", e.msg);
        ck_assert_ptr_null(resolved);
        free(top);
        free(unit);
        tu_rm_rf(root);
        free(root);
}
END_TEST

/* Read by name, or (kept) through files opened at the start and read
 * again at offset 0, as a run cgroup made ahead keeps them. */
static void read_v2(const char *dir, bool kept, struct cgroup_files *files, struct cgroup_stats *s)
{
        ck_assert_int_eq(cgroup_read_v2_dir(dir, kept ? files : NULL, s), 0);
}

START_TEST(test_v2_stats_without_memory_peak)
{
        for (int kept = 0; kept <= 1; kept++) {
                char *dir = tu_mkdtemp();
                free(tu_write(dir, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"));
                free(tu_write(dir, "cpu.stat", "usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\n"));
                free(tu_write(dir, "cgroup.events", "populated 0\nfrozen 0\n"));
                struct cgroup_files files = CGROUP_FILES_NONE;
                struct err e = ERR_INIT;
                if (kept) {
                        /* memory.peak is optional: before Linux 5.19 there is none. */
                        ck_assert_int_eq(cgroup_files_open_v2_dir(dir, &files, &e), 0);
                        ck_assert_int_eq(files.peak, -1);
                        ck_assert(cgroup_files_kept(&files));
                }
                struct cgroup_stats s;
                /* Before Linux 5.19: no memory.peak, so the peak is unknown (null
                 * in the job), not 0. */
                read_v2(dir, kept, &files, &s);
                ck_assert_int_eq(s.peak_memory_bytes, -1);
                ck_assert(s.oom_known && s.oom_killed && s.limit_hit);
                ck_assert_int_eq(s.cpu_ms, 12);
                free(tu_write(dir, "memory.peak", "0\n"));
                if (kept) {
                        cgroup_files_close(&files);
                        ck_assert_int_eq(cgroup_files_open_v2_dir(dir, &files, &e), 0);
                        ck_assert_int_ge(files.peak, 0);
                }
                read_v2(dir, kept, &files, &s);
                ck_assert_int_eq(s.peak_memory_bytes, -1);
                /* Kept files read what is there now, from its start. */
                free(tu_write(dir, "memory.peak", "20971520\n"));
                free(tu_write(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"));
                free(tu_write(dir, "cpu.stat", "usage_usec 2345678\n"));
                read_v2(dir, kept, &files, &s);
                ck_assert_int_eq(s.peak_memory_bytes, 20971520);
                ck_assert(s.oom_known && !s.oom_killed && !s.limit_hit);
                ck_assert_int_eq(s.cpu_ms, 2345);
                /* A file that cannot be read leaves its figures unknown,
                 * not the others. */
                free(tu_write(dir, "memory.events", ""));
                read_v2(dir, kept, &files, &s);
                ck_assert(!s.oom_known && !s.oom_killed && !s.limit_hit);
                ck_assert_int_eq(s.peak_memory_bytes, 20971520);
                ck_assert_int_eq(s.cpu_ms, 2345);
                cgroup_files_close(&files);
                ck_assert(!cgroup_files_kept(&files));
                ck_assert_int_eq(files.events, -1);
                tu_rm_rf(dir);
                free(dir);
        }
}
END_TEST

/* A run cgroup made ahead is used only while nothing has run in it:
 * nothing in it or below, and no memory peak. */
START_TEST(test_v2_untouched)
{
        char *dir = tu_mkdtemp();
        struct cgroup_files files;
        struct err e = ERR_INIT;
        /* All or none: without cgroup.events nothing is kept open. */
        free(tu_write(dir, "memory.events", "max 0\noom_kill 0\n"));
        free(tu_write(dir, "cpu.stat", "usage_usec 0\n"));
        ck_assert_int_eq(cgroup_files_open_v2_dir(dir, &files, &e), -1);
        ck_assert_int_eq(e.code, ERR_NOT_FOUND);
        ck_assert_msg(strstr(e.msg, "cgroup.events"), "%s", e.msg);
        ck_assert(!cgroup_files_kept(&files));
        ck_assert_int_eq(files.events, -1);
        ck_assert_int_eq(files.cpu, -1);

        free(tu_write(dir, "cgroup.events", "populated 0\nfrozen 0\n"));
        free(tu_write(dir, "memory.peak", "0\n"));
        e = (struct err)ERR_INIT;
        ck_assert_int_eq(cgroup_files_open_v2_dir(dir, &files, &e), 0);
        ck_assert_int_eq(cgroup_files_untouched(&files), 1);
        free(tu_write(dir, "cgroup.events", "populated 1\nfrozen 0\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 0);
        free(tu_write(dir, "cgroup.events", "populated 0\nfrozen 0\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 1);
        /* A process came and went: its CPU time stays, and its peak. */
        free(tu_write(dir, "cpu.stat", "usage_usec 1\nuser_usec 1\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 0);
        free(tu_write(dir, "cpu.stat", "usage_usec 0\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 1);
        free(tu_write(dir, "memory.peak", "4096\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 0);
        /* Before Linux 5.19 (no memory.peak): the CPU time tells. */
        cgroup_files_close(&files);
        char *peak = NULL;
        ck_assert_int_ge(asprintf(&peak, "%s/memory.peak", dir), 0);
        ck_assert_int_eq(unlink(peak), 0);
        free(peak);
        ck_assert_int_eq(cgroup_files_open_v2_dir(dir, &files, &e), 0);
        ck_assert_int_eq(files.peak, -1);
        ck_assert_int_eq(cgroup_files_untouched(&files), 1);
        free(tu_write(dir, "cpu.stat", "usage_usec 7\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), 0);
        free(tu_write(dir, "cpu.stat", "user_usec 7\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), -1);
        free(tu_write(dir, "cpu.stat", "usage_usec 0\n"));
        /* Unreadable: not taken for untouched, and said so. */
        free(tu_write(dir, "cgroup.events", ""));
        errno = 0;
        ck_assert_int_eq(cgroup_files_untouched(&files), -1);
        ck_assert_int_eq(errno, EIO);
        free(tu_write(dir, "cgroup.events", "frozen 0\n"));
        ck_assert_int_eq(cgroup_files_untouched(&files), -1);
        cgroup_files_close(&files);
        tu_rm_rf(dir);
        free(dir);
}
END_TEST

/* On this v1 host the parent is the configured one and nothing is made:
 * the runtime makes the cgroups, as before. */
START_TEST(test_v1_parent_unchanged)
{
        /* On a v2 host the real hierarchy would be written (the other
         * cases use a stand-in tree). */
        struct statfs sfs;
        if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
                return;
        char *resolved = NULL;
        struct err e = ERR_INIT;
        char name[64];
        snprintf(name, sizeof name, "/edgecd-unit-v1-%d", (int)getpid());
        ck_assert_msg(cgroup_setup_parent(name, &resolved, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(resolved, name);
        char **kids = cgroup_list_children("/");
        for (size_t i = 0; kids && kids[i]; i++)
                ck_assert_str_ne(kids[i], name + 1);
        strv_free(kids);
        free(resolved);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("cgroup");
        TCase *tc = tcase_create("cgroup");
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
        tcase_add_checked_fixture(tc, setup_reaper, NULL);
        tcase_add_test(tc, test_bad_paths);
        tcase_add_test(tc, test_remove_parent);
        tcase_add_test(tc, test_remove_ended_looks_at_memory);
        tcase_add_test(tc, test_destroy_kills_members_only);
        tcase_add_test(tc, test_stats_peak_and_cpu);
        tcase_add_test(tc, test_stats_cpu_time);
        tcase_add_test(tc, test_stats_oom_kill);
        tcase_add_test(tc, test_run_cgroup_keeps_totals);
        tcase_add_test(tc, test_run_cgroup_oom);
        tcase_add_test(tc, test_runcgroup_reused_counts_each_run_alone);
        tcase_add_test(tc, test_runcgroup_fresh_counts_each_run_alone);
        tcase_add_test(tc, test_runcgroup_fresh_made_ahead);
        tcase_add_test(tc, test_runcgroup_fresh_passes_over_leftovers);
        tcase_add_test(tc, test_runcgroup_left_slot_goes_to_the_collector);
        tcase_add_test(tc, test_runcgroup_slot_gone_from_under_us);
        tcase_add_test(tc, test_runcgroup_slot_files_kept);
        tcase_add_test(tc, test_runcgroup_slot_base_kept_small);
        tcase_add_test(tc, test_runcgroup_slot_holding_kernel_memory_waits);
        tcase_add_test(tc, test_runcgroup_waiting_slot_gone_from_under_us);
        tcase_add_test(tc, test_runcgroup_slot_names);
        suite_add_tcase(s, tc);
        TCase *v2 = tcase_create("v2");
        tcase_add_test(v2, test_v2_parent_not_delegated);
        tcase_add_test(v2, test_v2_parent_delegated);
        tcase_add_test(v2, test_v2_parent_missing_controller);
        tcase_add_test(v2, test_v2_stats_without_memory_peak);
        tcase_add_test(v2, test_v2_untouched);
        tcase_add_test(v2, test_v1_parent_unchanged);
        suite_add_tcase(s, v2);
        return s;
}

TEST_MAIN(suite)
