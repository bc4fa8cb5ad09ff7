/* test-seccomp.c - the allowlist file parser and the OCI seccomp object,
 * and the clone rule loaded into libseccomp the way runc and crun read it
 * and the way youki 0.7 does (value and valueTwo swapped): it must mean the
 * same both ways.  (Whether the filter really kills in a container is
 * tested by the sandbox probe, test-runtime.c, and the integration suite.) */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <jansson.h>
#include <seccomp.h>

#include "testutil.h"

#include "base/util.h"
#include "registry/seccomp.h"

static char *allow_path(void)
{
        char *p = NULL;
        ck_assert_int_ge(asprintf(&p, "%s/oci-templates/seccomp.allow", tu_src()), 0);
        return p;
}

/* Every name of every SCMP_ACT_ALLOW rule without argument conditions. */
static bool allows_unconditionally(const json_t *oci, const char *name)
{
        size_t i, j;
        json_t *rule, *n;
        json_array_foreach(json_object_get(oci, "syscalls"), i, rule) {
                if (strcmp(json_string_value(json_object_get(rule, "action")), "SCMP_ACT_ALLOW") != 0 ||
                    json_object_get(rule, "args"))
                        continue;
                json_array_foreach(json_object_get(rule, "names"), j, n)
                        if (strcmp(json_string_value(n), name) == 0)
                                return true;
        }
        return false;
}

static const json_t *rule_for(const json_t *oci, const char *name)
{
        size_t i, j;
        json_t *rule, *n;
        json_array_foreach(json_object_get(oci, "syscalls"), i, rule)
                json_array_foreach(json_object_get(rule, "names"), j, n)
                        if (strcmp(json_string_value(n), name) == 0)
                                return rule;
        return NULL;
}

START_TEST(test_shipped_allowlist)
{
        _cleanup_free_ char *path = allow_path();
        struct seccomp_policy *p = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(seccomp_policy_load(path, &p, &err) == 0, "%s", err.msg);
        ck_assert_uint_gt(seccomp_policy_count(p), 200);

        _cleanup_json_ json_t *oci = seccomp_policy_oci(p, NULL, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(oci, "defaultAction")), "SCMP_ACT_KILL_PROCESS");
#if defined(__x86_64__)
        _cleanup_json_ json_t *arch = json_pack("[s]", "SCMP_ARCH_X86_64");
        ck_assert(json_equal(json_object_get(oci, "architectures"), arch));
#endif
        static const char *const allowed[] = {
                "read", "write", "openat", "close", "mmap", "brk", "execve", "exit_group", "futex",
                "rt_sigaction", "epoll_pwait", "socketpair", "fork", "vfork", "wait4", "arch_prctl",
        };
        for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
                ck_assert_msg(allows_unconditionally(oci, allowed[i]), "%s should be allowed", allowed[i]);

        static const char *const forbidden[] = {
                "mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "process_vm_readv",
                "process_vm_writev", "kexec_load", "kexec_file_load", "init_module", "finit_module",
                "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "reboot",
                "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "open_by_handle_at",
                "name_to_handle_at", "userfaultfd", "iopl", "ioperm", "lookup_dcookie", "quotactl",
                "sethostname", "setdomainname", "syslog", "vhangup", "fanotify_init", "clone3",
                "io_uring_setup", "chroot", "personality",
        };
        for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++)
                ck_assert_msg(!allows_unconditionally(oci, forbidden[i]), "%s must not be allowed",
                              forbidden[i]);

        /* clone: one kill rule per namespace flag, then an allow; and no
         * masked comparison anywhere whose meaning depends on which of
         * value and valueTwo a runtime takes for the mask. */
        ck_assert(!allows_unconditionally(oci, "clone"));
        size_t ri;
        json_t *rule;
        json_int_t killed = 0;
        int allows = 0;
        json_array_foreach(json_object_get(oci, "syscalls"), ri, rule) {
                size_t k;
                json_t *arg;
                json_array_foreach(json_object_get(rule, "args"), k, arg) {
                        if (!strcmp(json_string_value(json_object_get(arg, "op")), "SCMP_CMP_MASKED_EQ"))
                                ck_assert_int_eq(json_integer_value(json_object_get(arg, "value")),
                                                 json_integer_value(json_object_get(arg, "valueTwo")));
                }
                if (strcmp(json_string_value(json_array_get(json_object_get(rule, "names"), 0)), "clone"))
                        continue;
                const char *action = json_string_value(json_object_get(rule, "action"));
                json_t *a0 = json_array_get(json_object_get(rule, "args"), 0);
                ck_assert_ptr_nonnull(a0);
                ck_assert_int_eq(json_integer_value(json_object_get(a0, "index")), 0);
                if (!strcmp(action, "SCMP_ACT_TRAP"))
                        killed |= json_integer_value(json_object_get(a0, "value"));
                else if (!strcmp(action, "SCMP_ACT_ALLOW"))
                        allows++;
        }
        ck_assert_int_eq(killed, 0x7E020000);   /* NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET */
        ck_assert_int_eq(allows, 1);
        const json_t *arg;

        /* socket: any family but AF_VSOCK (40). */
        ck_assert(!allows_unconditionally(oci, "socket"));
        const json_t *sock = rule_for(oci, "socket");
        ck_assert_ptr_nonnull(sock);
        ck_assert_str_eq(json_string_value(json_object_get(sock, "action")), "SCMP_ACT_ALLOW");
        arg = json_array_get(json_object_get(sock, "args"), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(arg, "index")), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(arg, "value")), 40);
        ck_assert_str_eq(json_string_value(json_object_get(arg, "op")), "SCMP_CMP_NE");

        /* clone3: ENOSYS, so glibc falls back to clone. */
        const json_t *c3 = rule_for(oci, "clone3");
        ck_assert_ptr_nonnull(c3);
        ck_assert_str_eq(json_string_value(json_object_get(c3, "action")), "SCMP_ACT_ERRNO");
        ck_assert_int_eq(json_integer_value(json_object_get(c3, "errnoRet")), 38);

        /* The names list is sorted and unique. */
        const json_t *names = json_object_get(json_array_get(json_object_get(oci, "syscalls"), 0), "names");
        for (size_t i = 1; i < json_array_size(names); i++)
                ck_assert_int_lt(strcmp(json_string_value(json_array_get(names, i - 1)),
                                        json_string_value(json_array_get(names, i))), 0);
        seccomp_policy_free(p);
}
END_TEST

START_TEST(test_parse_comments_duplicates)
{
        _cleanup_free_ char *dir = tu_mkdtemp();
        _cleanup_free_ char *path = tu_write(dir, "a.allow",
                                             "# header\n\nread\n  write   # trailing comment\n"
                                             "read\n\t\nexit_group\nchown32\n");
        struct seccomp_policy *p = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(seccomp_policy_load(path, &p, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(seccomp_policy_count(p), 4);   /* read once */

        char *extra[] = { "getpid", "read", "mount", NULL };
        _cleanup_json_ json_t *oci = seccomp_policy_oci(p, NULL, extra);
        _cleanup_json_ json_t *want = json_pack("[ssssss]", "chown32", "exit_group", "getpid", "mount", "read",
                                                "write");
        ck_assert(json_equal(json_object_get(json_array_get(json_object_get(oci, "syscalls"), 0), "names"),
                             want));
        /* No clone in the list: no clone rule; clone3 still answers ENOSYS. */
        ck_assert_ptr_null(rule_for(oci, "clone"));
        ck_assert_ptr_nonnull(rule_for(oci, "clone3"));
        ck_assert_uint_eq(json_array_size(json_object_get(oci, "syscalls")), 2);

        /* clone3 named explicitly (an extra): plainly allowed, no ENOSYS rule. */
        char *extra3[] = { "clone3", NULL };
        _cleanup_json_ json_t *oci3 = seccomp_policy_oci(p, NULL, extra3);
        ck_assert(allows_unconditionally(oci3, "clone3"));
        ck_assert_uint_eq(json_array_size(json_object_get(oci3, "syscalls")), 1);

        seccomp_policy_free(p);
        tu_rm_rf(dir);
}
END_TEST

START_TEST(test_parse_errors)
{
        _cleanup_free_ char *dir = tu_mkdtemp();
        struct seccomp_policy *p = NULL;
        struct err err = ERR_INIT;

        _cleanup_free_ char *bad = tu_write(dir, "bad.allow", "read\n# x\nbogus_call\nwrite\n");
        ck_assert_int_eq(seccomp_policy_load(bad, &p, &err), -1);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(err.code, ERR_INVALID);
        _cleanup_free_ char *want = NULL;
        ck_assert_int_ge(asprintf(&want, "%s:3: unknown syscall `bogus_call`", bad), 0);
        ck_assert_msg(strstr(err.msg, want), "%s", err.msg);

        _cleanup_free_ char *two = tu_write(dir, "two.allow", "read write\n");
        ck_assert_int_eq(seccomp_policy_load(two, &p, &err), -1);
        ck_assert_msg(strstr(err.msg, ":1: one syscall name per line"), "%s", err.msg);

        _cleanup_free_ char *empty = tu_write(dir, "empty.allow", "# nothing\n\n");
        ck_assert_int_eq(seccomp_policy_load(empty, &p, &err), -1);
        ck_assert_msg(strstr(err.msg, "no syscall names"), "%s", err.msg);

        _cleanup_free_ char *missing = NULL;
        ck_assert_int_ge(asprintf(&missing, "%s/none.allow", dir), 0);
        ck_assert_int_eq(seccomp_policy_load(missing, &p, &err), -1);
        ck_assert_int_eq(err.code, ERR_NOT_FOUND);
        ck_assert_ptr_null(p);
        tu_rm_rf(dir);
}
END_TEST

START_TEST(test_check_names)
{
        struct err err = ERR_INIT;
        char *good[] = { "read", "ptrace", "chown32", NULL };
        ck_assert_int_eq(seccomp_check_names(good, &err), 0);
        /* Known to libseccomp, but below the floor no manifest may lower. */
        char *never[] = { "read", "io_uring_setup", NULL };
        ck_assert_int_eq(seccomp_check_names(never, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_str_eq(err.msg, "syscall `io_uring_setup` can never be allowed: io_uring bypasses the filter");
        ck_assert_ptr_nonnull(seccomp_never_allowed("mount"));
        ck_assert_ptr_null(seccomp_never_allowed("read"));
        ck_assert_int_eq(seccomp_check_names(NULL, &err), 0);
        char *bad[] = { "read", "nosuchcall", "alsobad", NULL };
        ck_assert_int_eq(seccomp_check_names(bad, &err), -1);
        ck_assert_int_eq(err.code, ERR_INVALID);
        ck_assert_msg(strstr(err.msg, "`nosuchcall`"), "%s", err.msg);
        char *empty[] = { "", NULL };
        ck_assert_int_eq(seccomp_check_names(empty, &err), -1);
        seccomp_policy_free(NULL);
}
END_TEST

/* ---- the clone rule in libseccomp, read both ways ---- */

static enum scmp_compare op_of(const char *op)
{
        static const struct {
                const char *name;
                enum scmp_compare op;
        } ops[] = {
                { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
                { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
                { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
        };
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
                if (!strcmp(op, ops[i].name))
                        return ops[i].op;
        ck_abort_msg("op %s", op);
        return SCMP_CMP_EQ;
}

/* Load the clone rules of the OCI object into a filter whose default is
 * ERRNO(EUCLEAN) (so everything else still runs), reading MASKED_EQ as runc
 * and crun do (mask = value) or, swapped, as youki 0.7 does (mask =
 * valueTwo).  In a child only. */
static void load_clone_rules(const json_t *syscalls, bool swapped)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                _exit(90);
        size_t i;
        json_t *rule;
        json_array_foreach(syscalls, i, rule) {
                if (strcmp(json_string_value(json_array_get(json_object_get(rule, "names"), 0)), "clone"))
                        continue;
                const char *a = json_string_value(json_object_get(rule, "action"));
                /* ALLOW stands out from the default: an allowed clone in the
                 * test fails with EUCLEAN, refused ones never get there. */
                uint32_t action = !strcmp(a, "SCMP_ACT_TRAP") ? SCMP_ACT_TRAP : SCMP_ACT_ERRNO(EUCLEAN);
                struct scmp_arg_cmp cmp[6];
                size_t n = 0, k;
                json_t *arg;
                json_array_foreach(json_object_get(rule, "args"), k, arg) {
                        scmp_datum_t v = (scmp_datum_t)json_integer_value(json_object_get(arg, "value"));
                        scmp_datum_t v2 = (scmp_datum_t)json_integer_value(json_object_get(arg, "valueTwo"));
                        enum scmp_compare op = op_of(json_string_value(json_object_get(arg, "op")));
                        cmp[n++] = (struct scmp_arg_cmp){
                                .arg = (unsigned)json_integer_value(json_object_get(arg, "index")), .op = op,
                                .datum_a = op == SCMP_CMP_MASKED_EQ && swapped ? v2 : v,
                                .datum_b = op == SCMP_CMP_MASKED_EQ && swapped ? v : v2,
                        };
                }
                if (seccomp_rule_add_array(ctx, action, SCMP_SYS(clone), (unsigned)n, cmp) < 0)
                        _exit(91);
        }
        if (seccomp_load(ctx) < 0)
                _exit(92);
}

/* In a child with the rules loaded: clone(flags).  The child's status:
 * killed by SIGSYS, or exit 0 when the call was let through (EUCLEAN, the
 * allow rule), 1 when it failed otherwise, 2 when it really ran. */
static int clone_outcome(const json_t *syscalls, bool swapped, unsigned long flags)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                signal(SIGSYS, SIG_DFL);
                load_clone_rules(syscalls, swapped);
                long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
                if (r == 0)
                        _exit(0);
                _exit(r < 0 && errno == EUCLEAN ? 0 : r < 0 ? 1 : 2);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

START_TEST(test_clone_rule_means_the_same_both_ways)
{
        _cleanup_free_ char *path = allow_path();
        struct seccomp_policy *p = NULL;
        struct err err = ERR_INIT;
        ck_assert_msg(seccomp_policy_load(path, &p, &err) == 0, "%s", err.msg);
        _cleanup_json_ json_t *oci = seccomp_policy_oci(p, NULL, NULL);
        const json_t *syscalls = json_object_get(oci, "syscalls");
        static const unsigned long ns[] = { CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWIPC,
                                            CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWUSER | CLONE_NEWNET };
        for (int swapped = 0; swapped < 2; swapped++) {
                ck_assert_int_eq(clone_outcome(syscalls, swapped, 0), 0);   /* a plain fork: allowed */
                ck_assert_int_eq(clone_outcome(syscalls, swapped, CLONE_FILES), 0);
                for (size_t i = 0; i < ARRAY_SIZE(ns); i++)
                        ck_assert_msg(clone_outcome(syscalls, swapped, ns[i]) == -SIGSYS, "flags %#lx %s", ns[i],
                                      swapped ? "swapped" : "as runc reads it");
        }

        /* The check can fail: Docker's single rule, read youki's way, lets
         * CLONE_NEWUSER through. */
        _cleanup_json_ json_t *docker = json_pack("[{s:[s],s:s,s:[{s:i,s:I,s:I,s:s}]}]", "names", "clone",
                                                  "action", "SCMP_ACT_ALLOW", "args", "index", 0,
                                                  "value", (json_int_t)0x7E020000, "valueTwo", (json_int_t)0,
                                                  "op", "SCMP_CMP_MASKED_EQ");
        ck_assert_int_ne(clone_outcome(docker, false, CLONE_NEWUSER), 0);
        ck_assert_int_eq(clone_outcome(docker, true, CLONE_NEWUSER), 0);
        seccomp_policy_free(p);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("seccomp");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_shipped_allowlist);
        tcase_add_test(tc, test_parse_comments_duplicates);
        tcase_add_test(tc, test_parse_errors);
        tcase_add_test(tc, test_check_names);
        tcase_add_test(tc, test_clone_rule_means_the_same_both_ways);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
