/* oci.c - owns the translation of (template, manifest, job) into an OCI
 * runtime config.json.  No state of its own: any worker thread may call it;
 * the manifest and the seccomp policy it reads are immutable.
 *
 * The template supplies what is the same for every job (the pseudo
 * filesystems, masked paths, the device cgroup rules); everything that
 * decides the sandbox is overwritten from the job here: capabilities, user,
 * namespaces, root, the /input and /output mounts, resources, rlimits,
 * seccomp, cgroupsPath.  And what a template may say at all is checked when
 * it is loaded (check_template): no hooks, no devices, no sysctls, no host
 * bind mounts, no scheduler or personality - a careless or hostile template
 * is refused, never passed through to every job. */
#include "oci.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define TEMPLATE_MAX (1024 * 1024)
#define CPU_PERIOD_US 100000
#define HOSTNAME_MAX 63

/* Paths every job gets masked / read-only even if its template forgets
 * them (the list `runc spec` writes). */
static const char *const default_masked[] = {
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi",
};
static const char *const default_readonly[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct limits oci_effective_limits(const struct manifest *m, const struct limits *defaults)
{
        struct limits l = *defaults;
        if (!m)
                return l;
        if (m->resources.cpu_cores > 0)
                l.cpu_cores = m->resources.cpu_cores;
        if (m->resources.memory_mb > 0)
                l.memory_mb = m->resources.memory_mb;
        if (m->resources.pids > 0)
                l.pids = m->resources.pids;
        if (m->resources.disk_mb > 0)
                l.disk_mb = m->resources.disk_mb;
        if (m->timeout_seconds > 0)
                l.timeout_seconds = m->timeout_seconds;
        return l;
}

static bool template_name_ok(const char *name)
{
        return *name && !strchr(name, '/') && !strstr(name, "..");
}

/* ---- what a template may say ---- */

static bool in_list(const char *s, const char *const *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(s, list[i]))
                        return true;
        return false;
}

/* Keys of obj outside `allowed` are refused, named by their JSON pointer. */
static int only_keys(const json_t *obj, const char *where, const char *const *allowed, size_t n,
                     const char *why, struct err *err)
{
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)(uintptr_t)obj, key, v) {
                if (!in_list(key, allowed, n))
                        return err_set(err, ERR_INVALID, 0, "%s/%s: not allowed in a template (%s)", where, key, why);
        }
        return 0;
}

/* Not annotations: crun acts on some (run.oci.seccomp_bpf_data replaces
 * the seccomp filter, run.oci.keep_original_groups keeps root's groups). */
static const char *const top_keys[] = { "ociVersion", "process", "root", "hostname", "mounts", "linux" };
static const char *const process_keys[] = {
        "terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities", "rlimits",
        "noNewPrivileges", "apparmorProfile", "selinuxLabel", "oomScoreAdj",
};
static const char *const linux_keys[] = {
        "resources", "namespaces", "uidMappings", "gidMappings", "cgroupsPath", "seccomp",
        "maskedPaths", "readonlyPaths", "mountLabel",
};
static const char *const resource_keys[] = { "devices", "memory", "cpu", "pids" };
/* Pseudo filesystems a template may mount, and where. */
static const struct {
        const char *type, *dest;    /* dest NULL: anywhere but the job's own mounts */
} mount_types[] = {
        { "proc", "/proc" }, { "sysfs", "/sys" }, { "devpts", "/dev/pts" }, { "mqueue", "/dev/mqueue" },
        { "tmpfs", NULL },
};
/* Mount options that only restrict, or size a tmpfs. */
static const char *const mount_options[] = {
        "nosuid", "nodev", "noexec", "ro", "rw", "strictatime", "relatime", "noatime", "nodiratime",
        "newinstance", "exec",
};
static const char *const mount_option_prefixes[] = { "mode=", "size=", "nr_inodes=", "ptmxmode=", "gid=", "uid=" };
/* The rlimits a template may set: per-process sizes and times.  Not the
 * per-user ones (NPROC, MSGQUEUE, SIGPENDING: job users keep them apart) nor
 * those that would let a job out-prioritise the host or pin memory
 * (RTPRIO, RTTIME, NICE, MEMLOCK). */
static const char *const rlimits_allowed[] = {
        "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
        "RLIMIT_NOFILE", "RLIMIT_STACK",
};

static bool option_ok(const char *o)
{
        if (in_list(o, mount_options, ARRAY_SIZE(mount_options)))
                return true;
        for (size_t i = 0; i < ARRAY_SIZE(mount_option_prefixes); i++)
                if (!strncmp(o, mount_option_prefixes[i], strlen(mount_option_prefixes[i])))
                        return !strchr(o, ',');
        return false;
}

static int check_mount(const json_t *m, size_t i, struct err *err)
{
        if (!json_is_object(m))
                return err_set(err, ERR_INVALID, 0, "/mounts/%zu: not an object", i);
        static const char *const keys[] = { "destination", "type", "source", "options" };
        char where[32];
        snprintf(where, sizeof where, "/mounts/%zu", i);
        if (only_keys(m, where, keys, ARRAY_SIZE(keys), "destination, type, source, options", err) < 0)
                return -1;
        const char *dest = json_string_value(json_object_get(m, "destination"));
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        if (!dest || dest[0] != '/' || path_has_dotdot(dest))
                return err_set(err, ERR_INVALID, 0, "%s/destination: must be an absolute path without `..`", where);
        size_t t;
        for (t = 0; t < ARRAY_SIZE(mount_types); t++)
                if (type && !strcmp(type, mount_types[t].type))
                        break;
        if (t == ARRAY_SIZE(mount_types))
                return err_set(err, ERR_INVALID, 0, "%s/type: `%s` is not allowed (a template may mount proc at /proc, "
                               "sysfs at /sys, devpts at /dev/pts, mqueue at /dev/mqueue and tmpfs elsewhere)",
                               where, type ? type : "(none)");
        if (mount_types[t].dest && strcmp(dest, mount_types[t].dest))
                return err_set(err, ERR_INVALID, 0, "%s/destination: %s goes at %s only", where, type,
                               mount_types[t].dest);
        if (!src || src[0] == '/' || strchr(src, '/'))
                return err_set(err, ERR_INVALID, 0, "%s/source: must name the filesystem (`%s`), not a host path",
                               where, type);
        json_t *opts = json_object_get(m, "options");
        if (opts && !json_is_array(opts))
                return err_set(err, ERR_INVALID, 0, "%s/options: not an array", where);
        size_t k;
        json_t *o;
        json_array_foreach(opts, k, o) {
                const char *os = json_string_value(o);
                if (!os || !option_ok(os))
                        return err_set(err, ERR_INVALID, 0, "%s/options/%zu: `%s` is not allowed (bind mounts, "
                                       "propagation, suid and dev are not for templates)", where, k,
                                       os ? os : "(not a string)");
        }
        return 0;
}

/* A positive integer member of obj, or 0 when absent. */
static int positive_member(const json_t *obj, const char *key, const char *where, int64_t *ret, struct err *err)
{
        json_t *v = json_object_get(obj, key);
        *ret = 0;
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
                return err_set(err, ERR_INVALID, 0, "%s/%s: a ceiling must be a positive integer", where, key);
        *ret = (int64_t)json_integer_value(v);
        return 0;
}

/* The ceilings a template's linux.resources set on every job's limits
 * (memory.limit in bytes, cpu.quota over cpu.period, pids.limit; 0 where
 * none).  The job's own limits are used below them: a template can lower
 * a limit, never raise one. */
static int template_ceilings(const json_t *t, struct limits *ceil, struct err *err)
{
        *ceil = (struct limits){ 0 };
        const json_t *res = json_object_get(json_object_get(t, "linux"), "resources");
        if (!res)
                return 0;
        static const char *const mem_keys[] = { "limit" }, *const cpu_keys[] = { "quota", "period" },
                                 *const pids_keys[] = { "limit" };
        const json_t *mem = json_object_get(res, "memory"), *cpu = json_object_get(res, "cpu"),
                     *pids = json_object_get(res, "pids");
        const char *why = "a template's resources are ceilings: memory.limit, cpu.quota and cpu.period, pids.limit";
        if ((mem && (!json_is_object(mem) || only_keys(mem, "/linux/resources/memory", mem_keys, 1, why, err) < 0)) ||
            (cpu && (!json_is_object(cpu) || only_keys(cpu, "/linux/resources/cpu", cpu_keys, 2, why, err) < 0)) ||
            (pids && (!json_is_object(pids) || only_keys(pids, "/linux/resources/pids", pids_keys, 1, why, err) < 0)))
                return err->code ? -1 : err_set(err, ERR_INVALID, 0, "/linux/resources: %s", why);
        int64_t bytes, quota, period;
        if (positive_member(mem, "limit", "/linux/resources/memory", &bytes, err) < 0 ||
            positive_member(cpu, "quota", "/linux/resources/cpu", &quota, err) < 0 ||
            positive_member(cpu, "period", "/linux/resources/cpu", &period, err) < 0 ||
            positive_member(pids, "limit", "/linux/resources/pids", &ceil->pids, err) < 0)
                return -1;
        if (bytes && bytes < 1024 * 1024)
                return err_set(err, ERR_INVALID, 0, "/linux/resources/memory/limit: at least 1 MiB");
        ceil->memory_mb = bytes / (1024 * 1024);
        if (!quota != !period)
                return err_set(err, ERR_INVALID, 0, "/linux/resources/cpu: quota and period go together");
        /* What build_linux() can express: a period of 100 ms and a quota of
         * at least 1 ms, so at least 0.01 core. */
        if (period && (period < 1000 || period > 1000000))
                return err_set(err, ERR_INVALID, 0, "/linux/resources/cpu/period: 1000 to 1000000 microseconds");
        if (quota && (double)quota / (double)period < 0.01)
                return err_set(err, ERR_INVALID, 0, "/linux/resources/cpu/quota: at least 0.01 core (quota/period)");
        if (quota)
                ceil->cpu_cores = (double)quota / (double)period;
        return 0;
}

static int check_template(const json_t *t, struct err *err)
{
        if (only_keys(t, "", top_keys, ARRAY_SIZE(top_keys), "hooks and the like would run in every job", err) < 0)
                return -1;
        json_t *proc = json_object_get(t, "process");
        if (proc) {
                if (!json_is_object(proc))
                        return err_set(err, ERR_INVALID, 0, "/process: not an object");
                if (only_keys(proc, "/process", process_keys, ARRAY_SIZE(process_keys),
                              "the job decides its process; scheduling and CPU placement are not for templates", err) < 0)
                        return -1;
                json_t *rl = json_object_get(proc, "rlimits");
                if (rl && !json_is_array(rl))
                        return err_set(err, ERR_INVALID, 0, "/process/rlimits: not an array");
                size_t i;
                json_t *r;
                json_array_foreach(rl, i, r) {
                        const char *type = json_string_value(json_object_get(r, "type"));
                        if (!type || strncmp(type, "RLIMIT_", 7))
                                return err_set(err, ERR_INVALID, 0, "/process/rlimits/%zu/type: not an RLIMIT_ name", i);
                        if (!in_list(type, rlimits_allowed, ARRAY_SIZE(rlimits_allowed)))
                                return err_set(err, ERR_INVALID, 0, "/process/rlimits/%zu: %s is not allowed (a template "
                                               "may set AS, CORE, CPU, DATA, FSIZE, LOCKS, NOFILE, STACK)", i, type);
                }
        }
        json_t *mounts = json_object_get(t, "mounts");
        if (mounts && !json_is_array(mounts))
                return err_set(err, ERR_INVALID, 0, "/mounts: not an array");
        size_t i;
        json_t *m;
        json_array_foreach(mounts, i, m)
                if (check_mount(m, i, err) < 0)
                        return -1;
        json_t *lx = json_object_get(t, "linux");
        if (lx) {
                if (!json_is_object(lx))
                        return err_set(err, ERR_INVALID, 0, "/linux: not an object");
                if (only_keys(lx, "/linux", linux_keys, ARRAY_SIZE(linux_keys),
                              "devices, sysctls, personality and the like are not for templates", err) < 0)
                        return -1;
                json_t *res = json_object_get(lx, "resources");
                if (res) {
                        if (!json_is_object(res))
                                return err_set(err, ERR_INVALID, 0, "/linux/resources: not an object");
                        if (only_keys(res, "/linux/resources", resource_keys, ARRAY_SIZE(resource_keys),
                                      "the job's limits are the manifest's", err) < 0)
                                return -1;
                        struct limits ceil;
                        if (template_ceilings(t, &ceil, err) < 0)
                                return -1;
                        json_t *dev = json_object_get(res, "devices");
                        if (dev && !json_is_array(dev))
                                return err_set(err, ERR_INVALID, 0, "/linux/resources/devices: not an array");
                        json_t *d;
                        json_array_foreach(dev, i, d) {
                                if (!json_is_false(json_object_get(d, "allow")))
                                        return err_set(err, ERR_INVALID, 0, "/linux/resources/devices/%zu: a template "
                                                       "may only deny devices", i);
                        }
                }
        }
        return 0;
}

/* Read and parse TEMPLATES_DIR/NAME.json; must be a JSON object. */
static int load_template(const char *dir, const char *name, json_t **ret, struct err *err)
{
        if (!template_name_ok(name))
                return err_set(err, ERR_INVALID, 0, "bad template name `%s`", name);
        _cleanup_free_ char *path = xasprintf("%s/%s.json", dir, name);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        /* read_file, not json_load_file: it opens O_CLOEXEC and caps the size. */
        if (read_file(path, TEMPLATE_MAX, READ_FOLLOW_LINKS, &data, &len, err) < 0)
                return err_wrap(err, "template");
        json_error_t jerr;
        json_t *t = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!t)
                return err_set(err, ERR_INVALID, 0, "template `%s`:%d:%d: %s", path, jerr.line,
                               jerr.column, jerr.text);
        if (!json_is_object(t)) {
                json_decref(t);
                return err_set(err, ERR_INVALID, 0, "template `%s`: not a JSON object", path);
        }
        if (check_template(t, err) < 0) {
                json_decref(t);
                return err_wrap(err, "template `%s`", path);
        }
        *ret = t;
        return 0;
}

/* A template's own allowlist, shared by the cache and the jobs being
 * built from it (a changed file replaces the cache's reference only). */
struct allow_ref {
        int refs;   /* atomic */
        struct seccomp_policy *p;
};

static void allow_unref(struct allow_ref *a)
{
        if (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
                seccomp_policy_free(a->p);
                free(a);
        }
}

static struct allow_ref *allow_ref(struct allow_ref *a)
{
        if (a)
                __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
        return a;
}

/* A template as a job uses it: its JSON (the caller's copy), its own
 * allowlist TEMPLATES_DIR/NAME.seccomp.allow (NULL: none, the global one
 * alone) and its ceilings. */
struct tmpl {
        json_t *t;
        struct allow_ref *allow;
        struct limits ceil;
};

static void tmpl_done(struct tmpl *v)
{
        json_decref(v->t);
        allow_unref(v->allow);
        *v = (struct tmpl){ 0 };
}

/* The template's allowlist file, if there is one: only a name that is not
 * there at all means none.  Anything else there (a dangling link, a file
 * that cannot be read) is an error: a list that fails to load must not
 * leave its jobs with the wider global one. */
static int load_allow(const char *path, struct allow_ref **ret, struct err *err)
{
        *ret = NULL;
        struct stat st;
        if (lstat(path, &st) < 0 && errno == ENOENT)
                return 0;
        struct seccomp_policy *p = NULL;
        if (seccomp_policy_load(path, &p, err) < 0)
                return -1;
        struct allow_ref *a = xcalloc(1, sizeof *a);
        a->refs = 1;
        a->p = p;
        *ret = a;
        return 0;
}

/* load_template() and the rest of struct tmpl. */
static int load_tmpl(const char *dir, const char *name, struct tmpl *ret, struct err *err)
{
        *ret = (struct tmpl){ 0 };
        if (load_template(dir, name, &ret->t, err) < 0)
                return -1;
        _cleanup_free_ char *allow = xasprintf("%s/%s.seccomp.allow", dir, name);
        if (template_ceilings(ret->t, &ret->ceil, err) < 0 || load_allow(allow, &ret->allow, err) < 0) {
                tmpl_done(ret);
                return err_wrap(err, "template `%s`", name);
        }
        return 0;
}

/* A config.json as rendered for one kind of job (a manifest under its
 * template, with its limits, policy and gate or none), cut where each job's
 * own values go: the container id (also the hostname), the input, output,
 * gate and cgroups paths, the uid and the gid.  A job then costs a copy, not
 * a build and a serialisation (a quarter of a millisecond of CPU). */
enum slot { SLOT_HOST, SLOT_INPUT, SLOT_OUTPUT, SLOT_CGROUPS, SLOT_GATE, SLOT_UID, SLOT_GID, SLOT_COUNT };

struct shape {
        char *key;          /* what the rendering depended on (shape_key) */
        size_t key_len;
        char *text;         /* rendered with stand-ins for the slots */
        size_t len;
        size_t n;
        struct cut {
                size_t off, len;   /* a stand-in in text */
                enum slot slot;
        } *cuts;            /* in text order */
};

static void shape_free(struct shape *sh)
{
        if (!sh)
                return;
        free(sh->key);
        free(sh->text);
        free(sh->cuts);
        free(sh);
}

/* Templates as loaded and checked, by path, while their files are
 * unchanged: a job pays two stats and a copy, not a read, a parse and a
 * check.  Each keeps the shapes rendered from it, and drops them with it. */
#define TEMPLATE_CACHE_MAX 16
#define SHAPES_MAX 128   /* kinds of job per template: plugins, warm and cold */

static struct {
        pthread_mutex_t lock;
        struct cached_template {
                char *path;
                struct stat st, allow_st;   /* allow_st zeroed: no allowlist file */
                struct tmpl v;
                struct shape *shapes[SHAPES_MAX];
                size_t nshapes, next_shape;
        } e[TEMPLATE_CACHE_MAX];
        size_t n, next;
} T = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void cached_template_done(struct cached_template *e)
{
        free(e->path);
        e->path = NULL;
        tmpl_done(&e->v);
        for (size_t i = 0; i < e->nshapes; i++) {
                shape_free(e->shapes[i]);
                e->shapes[i] = NULL;
        }
        e->nshapes = e->next_shape = 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void copy_tmpl(const struct tmpl *from, struct tmpl *to, bool json)
{
        to->t = json ? json_deep_copy(from->t) : NULL;
        to->allow = allow_ref(from->allow);
        to->ceil = from->ceil;
}

/* A template's two files as they stand: paths and stats. */
struct template_files {
        char *path, *allow;
        struct stat st, ast;
        bool there;   /* false: stat(path) failed (load_tmpl() says why) */
};

static void template_files_done(struct template_files *f)
{
        free(f->path);
        free(f->allow);
}

/* The files as they stand now; with `seen` (there), as they stood then
 * (no stat: the job's limits were read from them, its config must be). */
static int template_files(const char *dir, const char *name, const struct oci_template_stamp *seen,
                          struct template_files *ret, struct err *err)
{
        *ret = (struct template_files){ 0 };
        if (!template_name_ok(name))
                return err_set(err, ERR_INVALID, 0, "bad template name `%s`", name);
        ret->path = xasprintf("%s/%s.json", dir, name);
        ret->allow = xasprintf("%s/%s.seccomp.allow", dir, name);
        if (seen && seen->there) {
                ret->st = seen->st;
                ret->ast = seen->ast;
                ret->there = true;
                return 0;
        }
        ret->there = stat(ret->path, &ret->st) == 0;
        /* lstat first: a dangling link is "there" (load_allow refuses it). */
        if (lstat(ret->allow, &ret->ast) < 0)
                ret->ast = (struct stat){ 0 };
        else if (stat(ret->allow, &ret->ast) < 0)
                ret->ast.st_ino = 0, ret->ast.st_size = -1;   /* never the cached one's */
        return 0;
}

/* The cache's entry for these files unchanged, or NULL; T.lock held. */
static struct cached_template *find_cached(const struct template_files *f)
{
        for (size_t i = 0; i < T.n; i++)
                if (!strcmp(T.e[i].path, f->path) && same_file(&T.e[i].st, &f->st) &&
                    same_file(&T.e[i].allow_st, &f->ast))
                        return &T.e[i];
        return NULL;
}

/* A copy of the cache's entry for these files into ret, if it has one. */
static bool copy_cached(const struct template_files *f, bool json, struct tmpl *ret)
{
        pthread_mutex_lock(&T.lock);
        struct cached_template *e = find_cached(f);
        if (e)
                copy_tmpl(&e->v, ret, json);
        pthread_mutex_unlock(&T.lock);
        return e != NULL;
}

/* 0 for a copy made, or -1 when its JSON (asked for) could not be. */
static int copied(struct tmpl *ret, bool json, const char *path, struct err *err)
{
        if (json && !ret->t) {
                tmpl_done(ret);
                return err_set(err, ERR_INTERNAL, 0, "template `%s`: out of memory", path);
        }
        return 0;
}

/* load_tmpl(), from the cache when the files have not changed; the JSON
 * (only when asked: it is a deep copy) is the caller's to change.  With
 * ret_stamp: the files' stats, taken before anything was read from them. */
static int cached_tmpl(const char *dir, const char *name, const struct oci_template_stamp *seen, bool json,
                       struct tmpl *ret, struct oci_template_stamp *ret_stamp, struct err *err)
{
        *ret = (struct tmpl){ 0 };
        _cleanup_(template_files_done) struct template_files f = { 0 };
        if (template_files(dir, name, seen, &f, err) < 0)
                return -1;
        /* The version seen, while it is kept; else the files as they stand
         * (never a load kept under the stats seen). */
        bool hit = seen && seen->there && copy_cached(&f, json, ret);
        if (seen && seen->there && !hit) {
                template_files_done(&f);
                if (template_files(dir, name, NULL, &f, err) < 0)
                        return -1;
        }
        if (ret_stamp)
                *ret_stamp = (struct oci_template_stamp){ .st = f.st, .ast = f.ast, .there = f.there };
        if (!f.there)
                return load_tmpl(dir, name, ret, err);   /* it says why */
        if (hit || copy_cached(&f, json, ret))
                return copied(ret, json, f.path, err);
        struct tmpl v;
        if (load_tmpl(dir, name, &v, err) < 0)
                return -1;
        /* Kept only under the stats of what was read: files changed while
         * they were read are this caller's alone (a stamp of the stats
         * before must never find content from after). */
        _cleanup_(template_files_done) struct template_files g = { 0 };
        if (template_files(dir, name, NULL, &g, NULL) < 0 || !g.there || !same_file(&f.st, &g.st) ||
            !same_file(&f.ast, &g.ast)) {
                if (!json) {
                        json_decref(v.t);
                        v.t = NULL;
                }
                *ret = v;
                return 0;
        }
        pthread_mutex_lock(&T.lock);
        size_t i = 0;
        while (i < T.n && strcmp(T.e[i].path, f.path))
                i++;
        if (i == T.n) {
                if (T.n < TEMPLATE_CACHE_MAX)
                        T.n++;
                else
                        i = T.next++ % TEMPLATE_CACHE_MAX;   /* replace in turn */
        }
        cached_template_done(&T.e[i]);
        T.e[i].path = TAKE_PTR(f.path);
        T.e[i].st = f.st;
        T.e[i].allow_st = f.ast;
        T.e[i].v = v;
        copy_tmpl(&v, ret, json);
        pthread_mutex_unlock(&T.lock);
        return copied(ret, json, name, err);
}

void oci_template_cache_clear(void)
{
        pthread_mutex_lock(&T.lock);
        for (size_t i = 0; i < T.n; i++)
                cached_template_done(&T.e[i]);
        T.n = T.next = 0;
        pthread_mutex_unlock(&T.lock);
}

int oci_check_template(const char *templates_dir, const char *name, struct err *err)
{
        struct tmpl v;
        if (load_tmpl(templates_dir, name, &v, err) < 0)
                return -1;
        tmpl_done(&v);
        return 0;
}

static const char *template_of(const struct manifest *m)
{
        return m && m->oci_template && *m->oci_template ? m->oci_template : "default";
}

void oci_template_stamp(const char *templates_dir, const struct manifest *m, struct oci_template_stamp *ret)
{
        *ret = (struct oci_template_stamp){ 0 };
        _cleanup_(template_files_done) struct template_files f = { 0 };
        if (template_files(templates_dir, template_of(m), NULL, &f, NULL) < 0 || !f.there)
                return;
        ret->st = f.st;
        ret->ast = f.ast;
        ret->there = true;
}

bool oci_template_same(const char *templates_dir, const struct manifest *m, const struct oci_template_stamp *s)
{
        struct oci_template_stamp now;
        oci_template_stamp(templates_dir, m, &now);
        return s->there && now.there && same_file(&s->st, &now.st) && same_file(&s->ast, &now.ast);
}

/* l under the ceilings (0: none). */
static void apply_ceilings(struct limits *l, const struct limits *ceil)
{
        if (ceil->cpu_cores > 0 && l->cpu_cores > ceil->cpu_cores)
                l->cpu_cores = ceil->cpu_cores;
        if (ceil->memory_mb > 0 && l->memory_mb > ceil->memory_mb)
                l->memory_mb = ceil->memory_mb;
        if (ceil->pids > 0 && l->pids > ceil->pids)
                l->pids = ceil->pids;
}

int oci_job_limits(const char *templates_dir, const struct manifest *m, const struct limits *defaults,
                   int64_t max_pids, struct limits *ret, struct oci_template_stamp *ret_stamp, struct err *err)
{
        *ret = oci_effective_limits(m, defaults);
        if (ret_stamp)
                *ret_stamp = (struct oci_template_stamp){ 0 };
        struct tmpl v;
        if (cached_tmpl(templates_dir, template_of(m), NULL, false, &v, ret_stamp, err) < 0)
                return err_wrap(err, "oci");
        apply_ceilings(ret, &v.ceil);
        tmpl_done(&v);
        if (max_pids > 0 && ret->pids > max_pids)
                ret->pids = max_pids;
        return 0;
}

int oci_check_manifest(const char *templates_dir, const struct manifest *m, struct err *err)
{
        struct tmpl v;
        const char *name = template_of(m);
        if (load_tmpl(templates_dir, name, &v, err) < 0) {
                err_set_field(err, "oci_template");
                return err_wrap(err, "oci_template");
        }
        int rc = 0;
        const struct limits *r = &m->resources, *c = &v.ceil;
        if (c->memory_mb && r->memory_mb > c->memory_mb)
                rc = err_set(err, ERR_INVALID, 0, "resources: memory_mb %lld is over template `%s`'s ceiling of %lld",
                             (long long)r->memory_mb, name, (long long)c->memory_mb);
        else if (c->pids && r->pids > c->pids)
                rc = err_set(err, ERR_INVALID, 0, "resources: pids %lld is over template `%s`'s ceiling of %lld",
                             (long long)r->pids, name, (long long)c->pids);
        else if (c->cpu_cores > 0 && r->cpu_cores > c->cpu_cores)
                rc = err_set(err, ERR_INVALID, 0, "resources: cpu_cores %g is over template `%s`'s ceiling of %g",
                             r->cpu_cores, name, c->cpu_cores);
        if (rc < 0)
                err_set_field(err, "resources");
        for (size_t i = 0; rc == 0 && v.allow && m->extra_syscalls && m->extra_syscalls[i]; i++) {
                if (!seccomp_policy_has(v.allow->p, m->extra_syscalls[i])) {
                        rc = err_set(err, ERR_INVALID, 0, "syscalls: `%s` is not in template `%s`'s allowlist "
                                     "(%s/%s.seccomp.allow)", m->extra_syscalls[i], name, templates_dir, name);
                        err_set_field(err, "syscalls");
                }
        }
        tmpl_done(&v);
        return rc;
}

/* obj[key] as an object: created when absent; an error when it is there
 * but not an object.  Borrowed reference. */
static json_t *object_member(json_t *obj, const char *key, struct err *err)
{
        json_t *v = json_object_get(obj, key);
        if (!v) {
                v = json_object();
                json_object_set_new(obj, key, v);
        }
        if (!json_is_object(v)) {
                err_set(err, ERR_INVALID, 0, "template: `%s` is not an object", key);
                return NULL;
        }
        return v;
}

static json_t *string_array(char *const *v)
{
        json_t *a = json_array();
        for (size_t i = 0; v && v[i]; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

/* Length of the "KEY" part of "KEY=VALUE" (the whole string without '='). */
static size_t env_key_len(const char *kv)
{
        const char *eq = strchr(kv, '=');
        return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Add kv to the env array, replacing an entry with the same key in place so
 * that a later source (manifest over our PATH, ours over the manifest's
 * EDGECD_*) wins and no key appears twice: with duplicates, getenv() would
 * see the first one and a shell the last. */
static void env_set(json_t *env, const char *kv)
{
        size_t klen = env_key_len(kv);
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v) {
                const char *s = json_string_value(v);
                if (s && env_key_len(s) == klen && strncmp(s, kv, klen) == 0) {
                        json_array_set_new(env, i, json_string(kv));
                        return;
                }
        }
        json_array_append_new(env, json_string(kv));
}

static json_t *build_env(char *const *manifest_env)
{
        json_t *env = json_array();
        env_set(env, "PATH=/bin:/usr/bin");
        for (size_t i = 0; manifest_env && manifest_env[i]; i++)
                env_set(env, manifest_env[i]);
        env_set(env, "EDGECD_INPUT=/input/input.json");
        env_set(env, "EDGECD_OUTPUT=/output");
        return env;
}

/* The template's rlimits except the ones the job decides, plus those. */
static json_t *build_rlimits(const json_t *tmpl)
{
        json_t *out = json_array();
        size_t i;
        json_t *v;
        if (json_is_array(tmpl))
                json_array_foreach(tmpl, i, v) {
                        const char *type = json_string_value(json_object_get(v, "type"));
                        if (type && (strcmp(type, "RLIMIT_CORE") == 0 || strcmp(type, "RLIMIT_NOFILE") == 0))
                                continue;
                        json_array_append(out, v);
                }
        /* No core dumps: they would land in the read-only rootfs or /output
         * and leak memory contents into a result. */
        json_array_append_new(out, json_pack("{s:s,s:i,s:i}", "type", "RLIMIT_CORE", "hard", 0, "soft", 0));
        /* 1024 open files, but no more than the daemon's own hard limit
         * (LimitNOFILE= under 1024): the runtime, in the container without
         * CAP_SYS_RESOURCE, cannot raise it (EPERM), and no job started. */
        json_int_t nofile = 1024;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < (rlim_t)nofile)
                nofile = (json_int_t)rl.rlim_max;
        json_array_append_new(out, json_pack("{s:s,s:I,s:I}", "type", "RLIMIT_NOFILE", "hard", nofile,
                                             "soft", nofile));
        /* No real-time priority, no raised nice: the host's processes come
         * first. */
        json_array_append_new(out, json_pack("{s:s,s:i,s:i}", "type", "RLIMIT_RTPRIO", "hard", 0, "soft", 0));
        json_array_append_new(out, json_pack("{s:s,s:i,s:i}", "type", "RLIMIT_NICE", "hard", 0, "soft", 0));
        return out;
}

static int build_process(json_t *config, const struct oci_job *job, struct err *err)
{
        json_t *proc = object_member(config, "process", err);
        if (!proc)
                return -1;
        json_object_set_new(proc, "terminal", json_false());
        json_object_del(proc, "consoleSize");
        json_object_set_new(proc, "user", json_pack("{s:I,s:I,s:[]}", "uid", (json_int_t)job->uid,
                                                    "gid", (json_int_t)job->gid, "additionalGids"));
        json_t *args = string_array(job->manifest->command);
        if (job->gate_path) {
                json_array_insert_new(args, 0, json_string(OCI_GATE_FIFO));
                json_array_insert_new(args, 0, json_string(OCI_GATE_BIN));
        }
        json_object_set_new(proc, "args", args);
        json_object_set_new(proc, "env", build_env(job->manifest->env));
        json_object_set_new(proc, "cwd", json_string(job->manifest->cwd ? job->manifest->cwd : "/"));
        json_object_set_new(proc, "capabilities",
                            json_pack("{s:[],s:[],s:[],s:[],s:[]}", "bounding", "effective",
                                      "inheritable", "permitted", "ambient"));
        json_object_set_new(proc, "noNewPrivileges", json_true());
        json_object_set_new(proc, "rlimits", build_rlimits(json_object_get(proc, "rlimits")));
        /* When the host runs out of memory, a job is the first to go, not
         * the daemon (the job's own cgroup limit normally strikes first). */
        json_object_set_new(proc, "oomScoreAdj", json_integer(1000));
        return 0;
}

static bool is_job_mount(const char *dest)
{
        if (!dest)
                return false;
        size_t n = strlen(dest);
        while (n > 1 && dest[n - 1] == '/')
                n--;
        return (n == 6 && strncmp(dest, "/input", 6) == 0) || (n == 7 && strncmp(dest, "/output", 7) == 0);
}

/* A copy of a template mount, hardened: nosuid always; nodev but on /dev
 * (the runtime puts the standard device nodes there) and devpts (whose
 * nodes are the point); sysfs read-only; a scratch tmpfs (anything but
 * /dev) owned by the job's user, since runc
 * gives a tmpfs the mode of its mount point and a rootfs /tmp of 0755 would
 * leave it unwritable. */
static json_t *job_mount(const json_t *m, const struct oci_job *job)
{
        json_t *c = json_deep_copy(m);
        json_t *opts = json_object_get(c, "options");
        if (!json_is_array(opts)) {
                opts = json_array();
                json_object_set_new(c, "options", opts);
        }
        const char *type = json_string_value(json_object_get(c, "type")) ?: "";
        bool tmpfs = !strcmp(type, "tmpfs"), sysfs = !strcmp(type, "sysfs");
        bool dev = !strcmp(json_string_value(json_object_get(c, "destination")) ?: "", "/dev") ||
                   !strcmp(type, "devpts");
        bool scratch = tmpfs && !dev;
        json_t *out = json_array();
        size_t i;
        json_t *o;
        json_array_foreach(opts, i, o) {
                const char *s = json_string_value(o);
                if (!s || !strcmp(s, "nosuid") || !strcmp(s, "nodev") ||
                    (sysfs && (!strcmp(s, "rw") || !strcmp(s, "ro"))) ||
                    (scratch && (!strncmp(s, "uid=", 4) || !strncmp(s, "gid=", 4))))
                        continue;
                json_array_append(out, o);
        }
        if (sysfs)
                json_array_append_new(out, json_string("ro"));
        json_array_append_new(out, json_string("nosuid"));
        if (!dev)
                json_array_append_new(out, json_string("nodev"));
        if (scratch) {
                json_array_append_new(out, json_sprintf("uid=%lld", (long long)job->uid));
                json_array_append_new(out, json_sprintf("gid=%lld", (long long)job->gid));
        }
        json_object_set_new(c, "options", out);
        return c;
}

static int build_mounts(json_t *config, const struct oci_job *job, struct err *err)
{
        json_t *tmpl = json_object_get(config, "mounts");
        if (tmpl && !json_is_array(tmpl))
                return err_set(err, ERR_INVALID, 0, "template: `mounts` is not an array");
        json_t *mounts = json_array();
        size_t i;
        json_t *m;
        json_array_foreach(tmpl, i, m) {
                const char *dest = json_string_value(json_object_get(m, "destination"));
                if (is_job_mount(dest))
                        continue;
                json_array_append_new(mounts, job_mount(m, job));
        }
        json_array_append_new(mounts, json_pack("{s:s,s:s,s:s,s:[sssss]}", "destination", "/input",
                                                "type", "bind", "source", job->input_dir, "options",
                                                "rbind", "ro", "nosuid", "nodev", "noexec"));
        json_array_append_new(mounts, json_pack("{s:s,s:s,s:s,s:[sssss]}", "destination", "/output",
                                                "type", "bind", "source", job->output_dir, "options",
                                                "rbind", "rw", "nosuid", "nodev", "noexec"));
        if (job->gate_path)
                json_array_append_new(mounts, json_pack("{s:s,s:s,s:s,s:[ssss]}", "destination", OCI_GATE_BIN,
                                                        "type", "bind", "source", job->gate_path, "options",
                                                        "bind", "ro", "nosuid", "nodev"));
        json_object_set_new(config, "mounts", mounts);
        return 0;
}

/* dst = template's array (strings) plus each of defaults it lacks. */
static int merge_paths(json_t *linux_, const char *key, const char *const *defaults, size_t n,
                       struct err *err)
{
        json_t *arr = json_object_get(linux_, key);
        if (!arr) {
                arr = json_array();
                json_object_set_new(linux_, key, arr);
        }
        if (!json_is_array(arr))
                return err_set(err, ERR_INVALID, 0, "template: `linux.%s` is not an array", key);
        for (size_t d = 0; d < n; d++) {
                bool have = false;
                size_t i;
                json_t *v;
                json_array_foreach(arr, i, v) {
                        const char *s = json_string_value(v);
                        if (s && strcmp(s, defaults[d]) == 0)
                                have = true;
                }
                if (!have)
                        json_array_append_new(arr, json_string(defaults[d]));
        }
        return 0;
}

static int build_linux(json_t *config, const struct oci_job *job, const struct seccomp_policy *policy,
                       const struct seccomp_policy *within, struct err *err)
{
        json_t *lx = object_member(config, "linux", err);
        if (!lx)
                return -1;

        /* New, empty pid, mount, ipc, uts and network namespaces.  No user
         * namespace: the job already runs as an unprivileged uid with no
         * capabilities, and id mappings would have to match the ownership
         * of every plugin rootfs and of the /output tmpfs.  No cgroup
         * namespace: /sys/fs/cgroup is not mounted in the container and the
         * three runtimes disagree on cgroupns on cgroup v1 hosts. */
        json_object_set_new(lx, "namespaces",
                            json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "mount",
                                      "type", "ipc", "type", "uts", "type", "network"));
        json_object_del(lx, "uidMappings");
        json_object_del(lx, "gidMappings");

        json_t *res = object_member(lx, "resources", err);
        if (!res)
                return err_wrap(err, "linux");
        json_int_t mem = (json_int_t)job->limits.memory_mb * 1024 * 1024;
        /* swap == limit: memory+swap may not exceed the limit, i.e. no swap
         * on top (cgroup v1 memsw semantics; runtimes convert for v2). */
        json_object_set_new(res, "memory", json_pack("{s:I,s:I}", "limit", mem, "swap", mem));
        json_int_t quota = (json_int_t)llround(job->limits.cpu_cores * CPU_PERIOD_US);
        if (quota < 1000)
                quota = 1000;   /* the kernel's minimum cfs quota is 1 ms */
        json_object_set_new(res, "cpu", json_pack("{s:I,s:I}", "quota", quota, "period",
                                                  (json_int_t)CPU_PERIOD_US));
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)job->limits.pids));

        json_object_set_new(lx, "cgroupsPath", json_string(job->cgroups_path));
        json_object_set_new(lx, "seccomp", seccomp_policy_oci(policy, within, job->manifest->extra_syscalls));
        if (merge_paths(lx, "maskedPaths", default_masked, ARRAY_SIZE(default_masked), err) < 0 ||
            merge_paths(lx, "readonlyPaths", default_readonly, ARRAY_SIZE(default_readonly), err) < 0)
                return -1;
        return 0;
}

static int check_job(const struct oci_job *job, struct err *err)
{
        const struct manifest *m = job->manifest;
        if (!job->container_id || !*job->container_id)
                return err_set(err, ERR_INVALID, 0, "no container id");
        if (!m || !m->rootfs || m->rootfs[0] != '/')
                return err_set(err, ERR_INVALID, 0, "rootfs must be an absolute path");
        if (!m->command || !m->command[0])
                return err_set(err, ERR_INVALID, 0, "empty command");
        if (!job->input_dir || job->input_dir[0] != '/' || !job->output_dir || job->output_dir[0] != '/')
                return err_set(err, ERR_INVALID, 0, "input and output directories must be absolute paths");
        if (!job->cgroups_path || job->cgroups_path[0] != '/')
                return err_set(err, ERR_INVALID, 0, "cgroupsPath must be an absolute path");
        if (job->uid < 0 || job->uid > UINT32_MAX - 1 || job->gid < 0 || job->gid > UINT32_MAX - 1)
                return err_set(err, ERR_INVALID, 0, "uid/gid out of range");
        if (!(job->limits.cpu_cores > 0) || job->limits.cpu_cores > 1024 || job->limits.memory_mb <= 0 ||
            job->limits.memory_mb > INT64_MAX / (1024 * 1024) || job->limits.pids <= 0)
                return err_set(err, ERR_INVALID, 0, "limits must be positive");
        return 0;
}

int oci_build(const char *templates_dir, const struct oci_job *job,
              const struct seccomp_policy *policy, json_t **ret, struct err *err)
{
        if (check_job(job, err) < 0)
                return err_wrap(err, "oci");
        struct tmpl v;
        if (cached_tmpl(templates_dir, template_of(job->manifest), job->tmpl, true, &v, NULL, err) < 0)
                return err_wrap(err, "oci");
        _cleanup_json_ json_t *config = TAKE_PTR(v.t);
        /* The ceilings hold even for a caller that did not ask oci_job_limits(). */
        struct oci_job capped = *job;
        apply_ceilings(&capped.limits, &v.ceil);
        const struct seccomp_policy *within = v.allow ? v.allow->p : NULL;

        if (!json_is_string(json_object_get(config, "ociVersion")))
                json_object_set_new(config, "ociVersion", json_string("1.0.2"));
        int rc = 0;
        if (build_process(config, &capped, err) < 0 || build_mounts(config, &capped, err) < 0 ||
            build_linux(config, &capped, policy, within, err) < 0)
                rc = err_wrap(err, "oci");
        tmpl_done(&v);
        if (rc < 0)
                return -1;
        json_object_set_new(config, "root", json_pack("{s:s,s:b}", "path", job->manifest->rootfs,
                                                      "readonly", 1));
        /* A hostname is at most 64 bytes; the id is unique in its first
         * characters (a uuid), so cutting the tail is harmless. */
        char host[HOSTNAME_MAX + 1];
        snprintf(host, sizeof host, "%s", job->container_id);
        json_object_set_new(config, "hostname", json_string(host));

        *ret = TAKE_PTR(config);
        return 0;
}

/* config serialised as config.json's text; NULL with err set. */
static char *config_text(const json_t *config, size_t *ret_len, struct err *err)
{
        char *text = json_dumps(config, JSON_COMPACT);
        if (!text) {
                err_set(err, ERR_INTERNAL, 0, "oci: cannot serialise config.json");
                return NULL;
        }
        *ret_len = strlen(text);
        return text;
}

static int write_config_text(const char *bundle_dir, const char *text, size_t len, struct err *err)
{
        _cleanup_free_ char *path = xasprintf("%s/config.json", bundle_dir);
        if (write_file_unsynced(path, text, len, 0600, err) < 0)
                return err_wrap(err, "oci");
        return 0;
}

int oci_write_bundle(const char *bundle_dir, const json_t *config, struct err *err)
{
        size_t len = 0;
        _cleanup_free_ char *text = config_text(config, &len, err);
        if (!text)
                return -1;
        return write_config_text(bundle_dir, text, len, err);
}

/* ------------------------------------------------------------ rendering */

/* What a rendering depends on besides the template: every manifest field
 * oci_build() reads, the limits, the policy, gate or none. */
static char *shape_key(const struct oci_job *job, const struct seccomp_policy *policy, size_t *ret_len)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        const struct manifest *m = job->manifest;
        fprintf(f, "%" PRIu64 " %d %a %lld %lld|%zu:%s|", seccomp_policy_id(policy), job->gate_path != NULL,
                job->limits.cpu_cores, (long long)job->limits.memory_mb, (long long)job->limits.pids,
                strlen(m->rootfs), m->rootfs);
        if (m->cwd)
                fprintf(f, "%zu:%s", strlen(m->cwd), m->cwd);
        char *const *lists[] = { m->command, m->env, m->extra_syscalls };
        for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
                fprintf(f, "|%zu", strv_len(lists[l]));
                for (size_t i = 0; lists[l] && lists[l][i]; i++)
                        fprintf(f, ";%zu:%s", strlen(lists[l][i]), lists[l][i]);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        *ret_len = len;
        return buf;
}

/* The slots' values for one job, as they stand in the text. */
struct fill {
        char *v[SLOT_COUNT];
        size_t len[SLOT_COUNT];
};

static void fill_done(struct fill *f)
{
        for (size_t i = 0; i < SLOT_COUNT; i++) {
                free(f->v[i]);
                f->v[i] = NULL;
        }
}

/* s (n bytes) as inside a JSON string, escaped as jansson escapes it;
 * NULL for a byte past ASCII (jansson would check its UTF-8). */
static char *json_inner(const char *s, size_t n, size_t *ret_len)
{
        char *out = xmalloc(n * 6 + 1), *o = out;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80) {
                        free(out);
                        return NULL;
                }
                const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                                : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
                if (esc)
                        o = stpcpy(o, esc);
                else if (c < 0x20)
                        o += sprintf(o, "\\u%04X", c);
                else
                        *o++ = (char)c;
        }
        *o = '\0';
        *ret_len = (size_t)(o - out);
        return out;
}

/* false: a value the copy cannot carry (built the long way then); f is
 * the caller's to fill_done() either way. */
static bool fill_values(const struct oci_job *job, struct fill *f)
{
        *f = (struct fill){ 0 };
        size_t host = strlen(job->container_id);
        const char *strs[] = { [SLOT_HOST] = job->container_id, [SLOT_INPUT] = job->input_dir,
                               [SLOT_OUTPUT] = job->output_dir, [SLOT_CGROUPS] = job->cgroups_path,
                               [SLOT_GATE] = job->gate_path ? job->gate_path : "" };
        for (size_t i = 0; i <= SLOT_GATE; i++) {
                size_t n = i == SLOT_HOST && host > HOSTNAME_MAX ? HOSTNAME_MAX : strlen(strs[i]);
                f->v[i] = json_inner(strs[i], n, &f->len[i]);
                if (!f->v[i])
                        return false;
        }
        f->v[SLOT_UID] = xasprintf("%lld", (long long)job->uid);
        f->v[SLOT_GID] = xasprintf("%lld", (long long)job->gid);
        f->len[SLOT_UID] = strlen(f->v[SLOT_UID]);
        f->len[SLOT_GID] = strlen(f->v[SLOT_GID]);
        return true;
}

static char *shape_fill(const struct shape *sh, const struct fill *f, size_t *ret_len)
{
        size_t len = sh->len;
        for (size_t i = 0; i < sh->n; i++)
                len = len - sh->cuts[i].len + f->len[sh->cuts[i].slot];
        char *out = xmalloc(len + 1), *o = out;
        size_t at = 0;
        for (size_t i = 0; i < sh->n; i++) {
                const struct cut *c = &sh->cuts[i];
                o = mempcpy(o, sh->text + at, c->off - at);
                o = mempcpy(o, f->v[c->slot], f->len[c->slot]);
                at = c->off + c->len;
        }
        o = mempcpy(o, sh->text + at, sh->len - at);
        *o = '\0';
        *ret_len = len;
        return out;
}

static void add_cut(struct shape *sh, size_t off, size_t len, enum slot slot)
{
        sh->cuts = xrealloc(sh->cuts, (sh->n + 1) * sizeof *sh->cuts);
        size_t i = sh->n++;
        for (; i > 0 && sh->cuts[i - 1].off > off; i--)
                sh->cuts[i] = sh->cuts[i - 1];
        sh->cuts[i] = (struct cut){ .off = off, .len = len, .slot = slot };
}

/* Every place of stand-in in the text; a number only as a whole number. */
static void find_cuts(struct shape *sh, const char *stand_in, enum slot slot, bool number)
{
        size_t n = strlen(stand_in);
        for (const char *p = sh->text; (p = memmem(p, sh->len - (size_t)(p - sh->text), stand_in, n)); p += n) {
                size_t off = (size_t)(p - sh->text);
                if (number && ((off > 0 && isdigit((unsigned char)p[-1])) || isdigit((unsigned char)p[n])))
                        continue;
                add_cut(sh, off, n, slot);
        }
}

/* job's shape: built with stand-ins (random, so no template can hold
 * them) for the slots and cut where they are.  NULL when it cannot be. */
static struct shape *shape_make(const char *templates_dir, const struct oci_job *job,
                                const struct seccomp_policy *policy)
{
        uint64_t nonce;
        if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce)
                return NULL;
        char s[SLOT_COUNT][48];
        for (int i = 0; i < SLOT_COUNT; i++)
                snprintf(s[i], sizeof s[i], "/@edgecd-%016" PRIx64 "-%d@", nonce, i);
        /* Ids no job has: ten digits, under the largest a job may have. */
        int64_t uid = 3000000000 + (int64_t)(nonce % 1000000000), gid = 3000000000 + (int64_t)((nonce >> 32) % 999999999) + 1;
        if (gid == uid)
                gid++;
        if (uid == job->uid || uid == job->gid || gid == job->uid || gid == job->gid)
                return NULL;
        snprintf(s[SLOT_UID], sizeof s[SLOT_UID], "%lld", (long long)uid);
        snprintf(s[SLOT_GID], sizeof s[SLOT_GID], "%lld", (long long)gid);
        struct oci_job sj = *job;
        sj.container_id = s[SLOT_HOST];
        sj.input_dir = s[SLOT_INPUT];
        sj.output_dir = s[SLOT_OUTPUT];
        sj.cgroups_path = s[SLOT_CGROUPS];
        sj.gate_path = job->gate_path ? s[SLOT_GATE] : NULL;
        sj.uid = uid;
        sj.gid = gid;
        json_t *config = NULL;
        struct err err = ERR_INIT;
        if (oci_build(templates_dir, &sj, policy, &config, &err) < 0)
                return NULL;
        struct shape *sh = xcalloc(1, sizeof *sh);
        sh->text = config_text(config, &sh->len, &err);
        json_decref(config);
        if (!sh->text) {
                shape_free(sh);
                return NULL;
        }
        for (int i = 0; i < SLOT_COUNT; i++)
                find_cuts(sh, s[i], i, i == SLOT_UID || i == SLOT_GID);
        /* A number stands in the text bare ("uid":N) and in strings
         * ("uid=N"): the two are the same to a copy.  Cuts never overlap. */
        for (size_t i = 1; i < sh->n; i++) {
                if (sh->cuts[i - 1].off + sh->cuts[i - 1].len > sh->cuts[i].off) {
                        shape_free(sh);
                        return NULL;
                }
        }
        return sh;
}

/* e's shape of this key, or NULL; T.lock held. */
static const struct shape *find_shape(const struct cached_template *e, const char *key, size_t key_len)
{
        for (size_t i = 0; e && i < e->nshapes; i++)
                if (e->shapes[i]->key_len == key_len && !memcmp(e->shapes[i]->key, key, key_len))
                        return e->shapes[i];
        return NULL;
}

static uint64_t render_copies;

uint64_t oci_render_copies(void)
{
        return __atomic_load_n(&render_copies, __ATOMIC_RELAXED);
}

static int render_long(const char *templates_dir, const struct oci_job *job, const struct seccomp_policy *policy,
                       char **ret, size_t *ret_len, struct err *err)
{
        json_t *config = NULL;
        if (oci_build(templates_dir, job, policy, &config, err) < 0)
                return -1;
        *ret = config_text(config, ret_len, err);
        json_decref(config);
        return *ret ? 0 : -1;
}

int oci_render(const char *templates_dir, const struct oci_job *job, const struct seccomp_policy *policy,
               char **ret, size_t *ret_len, struct err *err)
{
        *ret = NULL;
        *ret_len = 0;
        if (check_job(job, err) < 0)
                return err_wrap(err, "oci");
        _cleanup_(fill_done) struct fill f;
        if (!fill_values(job, &f))
                return render_long(templates_dir, job, policy, ret, ret_len, err);
        size_t key_len = 0;
        _cleanup_free_ char *key = shape_key(job, policy, &key_len);
        _cleanup_(template_files_done) struct template_files tf = { 0 };
        if (!key || template_files(templates_dir, template_of(job->manifest), job->tmpl, &tf, err) < 0 || !tf.there)
                return render_long(templates_dir, job, policy, ret, ret_len, err);

        pthread_mutex_lock(&T.lock);
        const struct shape *kept = find_shape(find_cached(&tf), key, key_len);
        if (kept) {
                *ret = shape_fill(kept, &f, ret_len);
                __atomic_add_fetch(&render_copies, 1, __ATOMIC_RELAXED);
                pthread_mutex_unlock(&T.lock);
                return 0;
        }
        pthread_mutex_unlock(&T.lock);

        /* The first of its kind: built the long way, and its shape kept once
         * a copy of it renders this very job byte for byte the same. */
        if (render_long(templates_dir, job, policy, ret, ret_len, err) < 0)
                return -1;
        struct shape *sh = shape_make(templates_dir, job, policy);
        if (!sh)
                return 0;
        size_t len = 0;
        _cleanup_free_ char *copy = shape_fill(sh, &f, &len);
        if (len != *ret_len || memcmp(copy, *ret, len) != 0) {
                shape_free(sh);
                return 0;
        }
        sh->key = TAKE_PTR(key);
        sh->key_len = key_len;
        pthread_mutex_lock(&T.lock);
        struct cached_template *e = find_cached(&tf);
        if (e && !find_shape(e, sh->key, key_len)) {
                size_t i;
                if (e->nshapes < SHAPES_MAX) {
                        i = e->nshapes++;
                } else {
                        i = e->next_shape++ % SHAPES_MAX;   /* replace in turn */
                        shape_free(e->shapes[i]);
                }
                e->shapes[i] = TAKE_PTR(sh);
        }
        pthread_mutex_unlock(&T.lock);
        shape_free(sh);
        return 0;
}

int oci_write_config(const char *templates_dir, const char *bundle_dir, const struct oci_job *job,
                     const struct seccomp_policy *policy, struct err *err)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (oci_render(templates_dir, job, policy, &text, &len, err) < 0)
                return -1;
        return write_config_text(bundle_dir, text, len, err);
}
