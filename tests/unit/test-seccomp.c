/* test-seccomp.c - the allowlist file parser and the OCI seccomp object.
 * (Whether the filter really kills is tested on a real container in
 * test-oci.c.) */
#include <jansson.h>

#include "testutil.h"

#include "seccomp.h"
#include "util.h"

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

        _cleanup_json_ json_t *oci = seccomp_policy_oci(p, NULL);
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

        /* clone: allowed only when no namespace flag is set. */
        const json_t *clone = rule_for(oci, "clone");
        ck_assert_ptr_nonnull(clone);
        ck_assert_str_eq(json_string_value(json_object_get(clone, "action")), "SCMP_ACT_ALLOW");
        const json_t *arg = json_array_get(json_object_get(clone, "args"), 0);
        ck_assert_ptr_nonnull(arg);
        ck_assert_int_eq(json_integer_value(json_object_get(arg, "index")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(arg, "op")), "SCMP_CMP_MASKED_EQ");
        json_int_t mask = json_integer_value(json_object_get(arg, "value"));
        ck_assert(mask & 0x10000000);   /* CLONE_NEWUSER */
        ck_assert(mask & 0x00020000);   /* CLONE_NEWNS */
        ck_assert(mask & 0x40000000);   /* CLONE_NEWNET */
        ck_assert_int_eq(json_integer_value(json_object_get(arg, "valueTwo")), 0);

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
        _cleanup_json_ json_t *oci = seccomp_policy_oci(p, extra);
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
        _cleanup_json_ json_t *oci3 = seccomp_policy_oci(p, extra3);
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

static Suite *suite(void)
{
        Suite *s = suite_create("seccomp");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_shipped_allowlist);
        tcase_add_test(tc, test_parse_comments_duplicates);
        tcase_add_test(tc, test_parse_errors);
        tcase_add_test(tc, test_check_names);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
