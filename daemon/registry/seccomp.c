/* seccomp.c - owns the syscall allowlist (struct seccomp_policy) and its
 * translation into the OCI `linux.seccomp` object.  The policy is loaded
 * once by main.c before the workers start and is read-only afterwards, so
 * every worker thread may call seccomp_policy_oci() without a lock.
 *
 * We never load a filter ourselves: the OCI runtime does, from the JSON we
 * hand it.  libseccomp is used only to check names, so a typo in
 * seccomp.allow or in a manifest is caught at load instead of being silently
 * ignored (runc skips unknown names) or killing every job. */
#include "seccomp.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <seccomp.h>   /* libseccomp: our header is only reachable as "seccomp.h" */

#include "base/util.h"

#define ALLOW_FILE_MAX (1024 * 1024)

/* clone(2) flags that create namespaces: CLONE_NEWNS, NEWCGROUP, NEWUTS,
 * NEWIPC, NEWUSER, NEWPID, NEWNET.  A clone with any of them set gets
 * SIGSYS (SCMP_ACT_TRAP: the default disposition ends the whole process, as
 * the filter's default does; KILL_PROCESS itself cannot be used, runtimes
 * drop a rule whose action is the default's).  Without this an unprivileged process could still make a user
 * namespace with clone(CLONE_NEWUSER) although unshare and setns are
 * forbidden. */
static const uint64_t clone_ns_flags[] = {
        0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
};

/* socket(2) is allowed for every family but AF_VSOCK (Docker's rule): the
 * network namespace is empty, but vsock is not namespaced and on a VM host
 * reaches the hypervisor. */
#define AF_VSOCK_NR 40

/* ENOSYS, the answer to clone3: glibc >= 2.34 tries clone3 first and falls
 * back to clone on ENOSYS, and clone3 passes its flags in memory where a
 * seccomp filter cannot look, so it cannot be allowed conditionally. */
#define CLONE3_ERRNO 38

struct seccomp_policy {
        char **names;   /* sorted, unique, NULL-terminated */
        size_t n;
        uint64_t id;    /* unique in this process: a cache keyed by it never
                         * mistakes a later policy at the same address */
};

static uint64_t last_policy_id;

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort v (n entries) and drop duplicates in place; returns the new count.
 * Dropped strings are freed. */
static size_t sort_unique(char **v, size_t n)
{
        if (n == 0)
                return 0;
        qsort(v, n, sizeof *v, cmp_str);
        size_t w = 1;
        for (size_t r = 1; r < n; r++) {
                if (strcmp(v[r], v[w - 1]) == 0) {
                        free(v[r]);
                        continue;
                }
                v[w++] = v[r];
        }
        v[w] = NULL;
        return w;
}

static bool name_known(const char *name)
{
        /* Names of other architectures resolve to negative pseudo numbers;
         * only a name libseccomp has never heard of is __NR_SCMP_ERROR. */
        return *name && seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

void seccomp_policy_free(struct seccomp_policy *p)
{
        if (!p)
                return;
        strv_free(p->names);
        free(p);
}

static void seccomp_policy_freep(struct seccomp_policy **p)
{
        seccomp_policy_free(*p);
}

int seccomp_policy_load(const char *path, struct seccomp_policy **ret, struct err *err)
{
        _cleanup_free_ char *data = NULL;
        if (read_file(path, ALLOW_FILE_MAX, READ_FOLLOW_LINKS, &data, NULL, err) < 0)
                return err_wrap(err, "seccomp");

        _cleanup_(seccomp_policy_freep) struct seccomp_policy *p = xcalloc(1, sizeof *p);
        size_t cap = 0;
        unsigned lineno = 0;
        char *save = NULL;
        /* strtok_r would skip empty lines and lose the count, so walk by hand. */
        for (char *line = data; line; line = save) {
                lineno++;
                char *nl = strchr(line, '\n');
                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                while (isspace((unsigned char)*line))
                        line++;
                char *end = line + strlen(line);
                while (end > line && isspace((unsigned char)end[-1]))
                        *--end = '\0';
                if (!*line)
                        continue;
                for (const char *c = line; *c; c++)
                        if (isspace((unsigned char)*c))
                                return err_set(err, ERR_INVALID, 0,
                                               "seccomp: %s:%u: one syscall name per line: `%s`",
                                               path, lineno, line);
                if (!name_known(line))
                        return err_set(err, ERR_INVALID, 0, "seccomp: %s:%u: unknown syscall `%s`",
                                       path, lineno, line);
                if (p->n + 2 > cap) {
                        cap = cap ? cap * 2 : 256;
                        p->names = xrealloc(p->names, cap * sizeof *p->names);
                }
                p->names[p->n++] = xstrdup(line);
                p->names[p->n] = NULL;
        }
        if (p->n == 0)
                return err_set(err, ERR_INVALID, 0, "seccomp: %s: no syscall names", path);
        p->n = sort_unique(p->names, p->n);
        p->id = __atomic_add_fetch(&last_policy_id, 1, __ATOMIC_RELAXED);
        *ret = TAKE_PTR(p);
        return 0;
}

uint64_t seccomp_policy_id(const struct seccomp_policy *p)
{
        return p ? p->id : 0;
}

size_t seccomp_policy_count(const struct seccomp_policy *p)
{
        return p ? p->n : 0;
}

static const struct {
        const char *name;
        const char *why;
} never[] = {
        { "unshare", "it makes namespaces" }, { "setns", "it enters namespaces" },
        { "clone3", "its namespace flags cannot be filtered" },
        { "mount", "it changes mounts" }, { "umount2", "it changes mounts" },
        { "pivot_root", "it changes mounts" }, { "move_mount", "it changes mounts" },
        { "open_tree", "it changes mounts" }, { "fsopen", "it changes mounts" },
        { "fsconfig", "it changes mounts" }, { "fsmount", "it changes mounts" },
        { "fspick", "it changes mounts" }, { "mount_setattr", "it changes mounts" },
        { "kexec_load", "it replaces the kernel" }, { "kexec_file_load", "it replaces the kernel" },
        { "init_module", "it loads kernel code" }, { "finit_module", "it loads kernel code" },
        { "delete_module", "it unloads kernel code" }, { "bpf", "it loads kernel programs" },
        { "perf_event_open", "it observes the host" }, { "keyctl", "kernel keys are not namespaced" },
        { "add_key", "kernel keys are not namespaced" }, { "request_key", "kernel keys are not namespaced" },
        { "reboot", "it stops the host" }, { "swapon", "it changes host memory" },
        { "swapoff", "it changes host memory" }, { "acct", "it changes host accounting" },
        { "settimeofday", "it sets the host clock" }, { "clock_settime", "it sets the host clock" },
        { "clock_adjtime", "it sets the host clock" }, { "adjtimex", "it sets the host clock" },
        { "open_by_handle_at", "it opens host files by handle" },
        { "name_to_handle_at", "it pairs with open_by_handle_at" },
        { "userfaultfd", "it widens kernel race windows" }, { "iopl", "it reaches I/O ports" },
        { "ioperm", "it reaches I/O ports" }, { "lookup_dcookie", "it reads host paths" },
        { "quotactl", "it changes host quotas" }, { "sethostname", "it changes host names" },
        { "setdomainname", "it changes host names" }, { "syslog", "it reads the kernel log" },
        { "vhangup", "it hangs up terminals" }, { "fanotify_init", "it watches host files" },
        { "io_uring_setup", "io_uring bypasses the filter" }, { "io_uring_enter", "io_uring bypasses the filter" },
        { "io_uring_register", "io_uring bypasses the filter" },
        { "process_vm_readv", "it reads other processes" }, { "process_vm_writev", "it writes other processes" },
        { "personality", "it changes the ABI the filter sees" }, { "modify_ldt", "it changes the ABI the filter sees" },
        { "uselib", "obsolete" }, { "nfsservctl", "obsolete" }, { "_sysctl", "obsolete" },
};

const char *seccomp_never_allowed(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(never); i++)
                if (!strcmp(name, never[i].name))
                        return never[i].why;
        return NULL;
}

int seccomp_check_names(char *const *names, struct err *err)
{
        for (size_t i = 0; names && names[i]; i++) {
                if (!name_known(names[i]))
                        return err_set(err, ERR_INVALID, 0, "unknown syscall `%s`", names[i]);
                const char *why = seccomp_never_allowed(names[i]);
                if (why)
                        return err_set(err, ERR_INVALID, 0, "syscall `%s` can never be allowed: %s",
                                       names[i], why);
        }
        return 0;
}

/* Only the native ABI: a 32-bit call (int 0x80 from any x86_64 binary) is a
 * foreign architecture to the filter and dies.  Allowing x86/x32 would let
 * socketcall(2) create the sockets the socket() rule refuses, since its
 * arguments sit in memory the filter cannot read. */
static json_t *native_architectures(void)
{
#if defined(__x86_64__)
        return json_pack("[s]", "SCMP_ARCH_X86_64");
#elif defined(__aarch64__)
        return json_pack("[s]", "SCMP_ARCH_AARCH64");
#else
#error "edgecd: add this architecture's seccomp architectures"
#endif
}

bool seccomp_policy_has(const struct seccomp_policy *p, const char *name)
{
        return p && bsearch(&name, p->names, p->n, sizeof *p->names, cmp_str) != NULL;
}

json_t *seccomp_policy_oci(const struct seccomp_policy *p, const struct seccomp_policy *within,
                           char *const *extra)
{
        size_t n = p->n + strv_len(extra);
        _cleanup_strv_ char **all = xcalloc(n + 1, sizeof *all);
        size_t k = 0;
        for (size_t i = 0; i < p->n; i++)
                if (!within || seccomp_policy_has(within, p->names[i]))
                        all[k++] = xstrdup(p->names[i]);
        for (size_t i = 0; extra && extra[i]; i++)
                if (!within || seccomp_policy_has(within, extra[i]))
                        all[k++] = xstrdup(extra[i]);
        n = sort_unique(all, k);

        json_t *names = json_array();
        bool has_clone = false, has_clone3 = false, has_socket = false;
        for (size_t i = 0; i < n; i++) {
                /* These two get rules of their own with an argument check. */
                if (strcmp(all[i], "clone") == 0) {
                        has_clone = true;
                        continue;
                }
                if (strcmp(all[i], "socket") == 0) {
                        has_socket = true;
                        continue;
                }
                if (strcmp(all[i], "clone3") == 0)
                        has_clone3 = true;
                json_array_append_new(names, json_string(all[i]));
        }

        json_t *rules = json_array();
        if (json_array_size(names) > 0)
                json_array_append_new(rules, json_pack("{s:o,s:s}", "names", names,
                                                       "action", "SCMP_ACT_ALLOW"));
        else
                json_decref(names);
        if (has_clone) {
                /* Runtimes disagree on which of value and valueTwo is the
                 * mask of SCMP_CMP_MASKED_EQ (runc and crun: value; youki
                 * 0.7: valueTwo, which turned Docker's "allow when
                 * (flags & NS) == 0" into an unconditional allow).  So every
                 * masked rule here has value == valueTwo, which reads the
                 * same either way: one rule per flag, "(flags & F) == F"
                 * kills.  Then an allow with a comparison that is always
                 * true: libseccomp tries masked-equal comparisons before
                 * greater-or-equal ones on the same argument, so the kills
                 * come first (and an unconditional allow would wipe them). */
                for (size_t i = 0; i < ARRAY_SIZE(clone_ns_flags); i++)
                        json_array_append_new(rules, json_pack("{s:[s],s:s,s:[{s:i,s:I,s:I,s:s}]}",
                                                               "names", "clone", "action", "SCMP_ACT_TRAP",
                                                               "args", "index", 0,
                                                               "value", (json_int_t)clone_ns_flags[i],
                                                               "valueTwo", (json_int_t)clone_ns_flags[i],
                                                               "op", "SCMP_CMP_MASKED_EQ"));
                json_array_append_new(rules, json_pack("{s:[s],s:s,s:[{s:i,s:I,s:s}]}",
                                                       "names", "clone", "action", "SCMP_ACT_ALLOW",
                                                       "args", "index", 0, "value", (json_int_t)0,
                                                       "op", "SCMP_CMP_GE"));
        }
        if (has_socket)
                json_array_append_new(rules, json_pack("{s:[s],s:s,s:[{s:i,s:i,s:s}]}",
                                                       "names", "socket", "action", "SCMP_ACT_ALLOW",
                                                       "args", "index", 0, "value", AF_VSOCK_NR,
                                                       "op", "SCMP_CMP_NE"));
        if (!has_clone3)
                json_array_append_new(rules, json_pack("{s:[s],s:s,s:i}", "names", "clone3",
                                                       "action", "SCMP_ACT_ERRNO",
                                                       "errnoRet", CLONE3_ERRNO));

        return json_pack("{s:s,s:o,s:o}", "defaultAction", "SCMP_ACT_KILL_PROCESS",
                         "architectures", native_architectures(), "syscalls", rules);
}
