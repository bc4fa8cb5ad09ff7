/* manifest.c - plugin.yaml parsing and the manifest's reference count (see
 * manifest.h).
 *
 * manifest_load() runs on whichever thread loads the registry (main.c at
 * startup, the reload thread later); it touches only the file and the plugin
 * directory.  A loaded manifest is immutable; manifest_ref()/unref() are
 * atomic and called from HTTP and worker threads.
 *
 * Every key is checked, unknown keys included: a typo such as "memroy_mb"
 * must fail loudly instead of silently dropping a limit.  All problems of a
 * file are collected, each as "PATH:LINE:COL: key: what is wrong". */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "base/util.h"
#include "base/yamldoc.h"
#include "image.h"
#include "schema.h"
#include "seccomp.h"

/* A manifest is a page or two; this refuses a wrong file before parsing it. */
#define MANIFEST_MAX_BYTES (256 * 1024)
#define NAME_MAX_LEN 64


/* ---- reference count ---- */

struct manifest *manifest_ref(struct manifest *m)
{
        if (m)
                __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
        return m;
}

void manifest_unref(struct manifest *m)
{
        if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        free(m->path);
        free(m->dir);
        free(m->rootfs);
        free(m->rootfs_link);
        free(m->image);
        free(m->image_ref);
        free(m->image_tag);
        free(m->image_digest);
        free(m->image_link);
        free(m->cwd);
        free(m->name);
        free(m->version);
        semver_done(&m->semver);
        free(m->description);
        strv_free(m->command);
        strv_free(m->env);
        schema_index_free(m->input_index);
        if (m->input_schema)
                json_decref(m->input_schema);
        free(m->oci_template);
        strv_free(m->extra_syscalls);
        free(m);
}

bool manifest_shared(const struct manifest *m)
{
        return __atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) > 1;
}

static void manifest_unrefp(struct manifest **m)
{
        manifest_unref(*m);
}

/* ---- loading ---- */

struct mload {
        struct yamldoc *y;
        struct ydiag *d;
        struct manifest *m;
        const yaml_node_t *root;
        const yaml_node_t *command_node;   /* for the rootfs check's line */
        const yaml_node_t *rootfs_node;
        const yaml_node_t *image_node, *image_tag_node;
        bool command_ok, rootfs_ok;
};

static bool valid_name_chars(const char *s, size_t max)
{
        size_t n = strlen(s);
        return n >= 1 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static void load_name(struct mload *L, const yaml_node_t *v)
{
        if (yget_string(v, "name", L->d, &L->m->name) < 0)
                return;
        if (!valid_name_chars(L->m->name, NAME_MAX_LEN))
                ydiag_add(L->d, v, "name", "`%s` must be 1 to %d characters of a-z, 0-9, _ and -",
                          L->m->name, NAME_MAX_LEN);
}

static void load_version(struct mload *L, const yaml_node_t *v)
{
        if (yget_string(v, "version", L->d, &L->m->version) < 0)
                return;
        struct err e = ERR_INIT;
        if (semver_parse(L->m->version, &L->m->semver, &e) < 0)
                ydiag_add(L->d, v, "version", "%s", e.msg);
}

static void load_description(struct mload *L, const yaml_node_t *v)
{
        if (yget_string(v, "description", L->d, &L->m->description) < 0)
                return;
        if (!*L->m->description)
                ydiag_add(L->d, v, "description", "must not be empty");
}

static void load_command(struct mload *L, const yaml_node_t *v)
{
        L->command_node = v;
        if (yget_strv(L->y, v, "command", L->d, &L->m->command) < 0)
                return;
        if (!L->m->command[0]) {
                ydiag_add(L->d, v, "command", "must not be empty");
                return;
        }
        if (L->m->command[0][0] != '/') {
                ydiag_add(L->d, yamldoc_node(L->y, v->data.sequence.items.start[0]), "command[0]",
                          "`%s` must be an absolute path inside the rootfs", L->m->command[0]);
                return;
        }
        L->command_ok = true;
}

static bool valid_env_key(const char *k)
{
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
                return false;
        return strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
               strlen(k);
}

static void load_env(struct mload *L, const yaml_node_t *v)
{
        if (ynode_is_null(v))
                return;   /* "env:" with nothing under it */
        if (v->type != YAML_MAPPING_NODE) {
                ydiag_add(L->d, v, "env", "expected a mapping of NAME: value, got %s", ynode_kind(v));
                return;
        }
        if (yamldoc_check_keys(L->y, v, "env", L->d) < 0)
                return;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
                const yaml_node_t *kn = yamldoc_node(L->y, p->key);
                const yaml_node_t *vn = yamldoc_node(L->y, p->value);
                const char *k = ynode_str(kn);
                if (!k || yamldoc_key_dup(L->y, v, p))
                        continue;
                _cleanup_free_ char *name = xasprintf("env.%s", k);
                if (!valid_env_key(k)) {
                        ydiag_add(L->d, kn, name, "not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
                        continue;
                }
                /* A value is taken as written; "FOO:" alone is the empty string. */
                const char *val = ynode_is_null(vn) && !*(const char *)vn->data.scalar.value
                                          ? "" : ynode_str(vn);
                if (!val) {
                        ydiag_add(L->d, vn, name, "expected a string, got %s", ynode_kind(vn));
                        continue;
                }
                _cleanup_free_ char *kv = xasprintf("%s=%s", k, val);
                strv_push(&L->m->env, kv);
        }
}

static void load_input_schema(struct mload *L, const yaml_node_t *v)
{
        if (v->type != YAML_MAPPING_NODE) {
                ydiag_add(L->d, v, "input_schema", "expected a mapping (a JSON Schema), got %s",
                          ynode_kind(v));
                return;
        }
        json_t *schema = NULL;
        if (yamldoc_to_json(L->y, v, "input_schema", L->d, &schema) < 0)
                return;
        L->m->input_schema = schema;
        struct err e = ERR_INIT;
        if (schema_check(schema, &e) < 0) {
                _cleanup_free_ char *name = xasprintf("input_schema%s", e.field);
                ydiag_add(L->d, yamldoc_at_pointer(L->y, v, e.field), name, "%s", e.msg);
                return;
        }
        L->m->input_index = schema_index_new(schema);
}

/* An integer in [min,max], or 0 for "use the config default". */
static void get_limit(struct mload *L, const yaml_node_t *v, const char *key, int64_t min,
                      int64_t max, int64_t *ret)
{
        int64_t x;
        if (yget_int(v, key, 0, max, L->d, &x) < 0)
                return;
        if (x != 0 && x < min) {
                ydiag_add(L->d, v, key, "must be between %lld and %lld (or 0 for the default), got %lld",
                          (long long)min, (long long)max, (long long)x);
                return;
        }
        *ret = x;
}

static void load_resources(struct mload *L, const yaml_node_t *v)
{
        if (ynode_is_null(v))
                return;
        if (v->type != YAML_MAPPING_NODE) {
                ydiag_add(L->d, v, "resources", "expected a mapping, got %s", ynode_kind(v));
                return;
        }
        if (yamldoc_check_keys(L->y, v, "resources", L->d) < 0)
                return;
        struct limits *r = &L->m->resources;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
                const yaml_node_t *kn = yamldoc_node(L->y, p->key);
                const yaml_node_t *vn = yamldoc_node(L->y, p->value);
                const char *k = ynode_str(kn);
                if (!k || yamldoc_key_dup(L->y, v, p))
                        continue;
                _cleanup_free_ char *name = xasprintf("resources.%s", k);
                if (!strcmp(k, "cpu_cores"))
                        yget_double(vn, name, 0, 1024, L->d, &r->cpu_cores);
                else if (!strcmp(k, "memory_mb"))
                        get_limit(L, vn, name, 4, 1048576, &r->memory_mb);
                else if (!strcmp(k, "pids"))
                        get_limit(L, vn, name, 1, 65536, &r->pids);
                else if (!strcmp(k, "disk_mb"))
                        get_limit(L, vn, name, 1, 1048576, &r->disk_mb);
                else
                        ydiag_add(L->d, kn, name, "unknown key (expected cpu_cores, memory_mb, pids, disk_mb)");
        }
}

static void load_timeout(struct mload *L, const yaml_node_t *v)
{
        if (yget_int(v, "timeout_seconds", 1, 86400, L->d, &L->m->timeout_seconds) == 0)
                L->m->resources.timeout_seconds = L->m->timeout_seconds;
}

static void load_max_concurrent(struct mload *L, const yaml_node_t *v)
{
        yget_int(v, "max_concurrent", 0, 1000, L->d, &L->m->max_concurrent);
}

static void load_rerun(struct mload *L, const yaml_node_t *v)
{
        yget_bool(v, "rerun", L->d, &L->m->rerun);
}

static void load_warm(struct mload *L, const yaml_node_t *v)
{
        yget_int(v, "warm", 0, MANIFEST_WARM_MAX, L->d, &L->m->warm);
}

/* The config's ceilings are checked when the registry loads the plugin. */
static void load_max_input(struct mload *L, const yaml_node_t *v)
{
        yget_bytes(v, "max_input_bytes", 1024, INT64_MAX / 2, L->d, &L->m->max_input_bytes);
}

static void load_max_result(struct mload *L, const yaml_node_t *v)
{
        yget_bytes(v, "max_result_bytes", 1024, INT64_MAX / 2, L->d, &L->m->max_result_bytes);
}

static void load_oci_template(struct mload *L, const yaml_node_t *v)
{
        if (yget_string(v, "oci_template", L->d, &L->m->oci_template) < 0)
                return;
        if (!valid_name_chars(L->m->oci_template, NAME_MAX_LEN))
                ydiag_add(L->d, v, "oci_template", "`%s` must be 1 to %d characters of a-z, 0-9, _ and -",
                          L->m->oci_template, NAME_MAX_LEN);
}

static void load_syscalls(struct mload *L, const yaml_node_t *v)
{
        if (ynode_is_null(v))
                return;
        if (yget_strv(L->y, v, "syscalls", L->d, &L->m->extra_syscalls) < 0)
                return;
        /* Check each name here so the error names its line. */
        for (size_t i = 0; L->m->extra_syscalls[i]; i++) {
                struct err e = ERR_INIT;
                char *const one[] = { L->m->extra_syscalls[i], NULL };
                if (seccomp_check_names(one, &e) == 0)
                        continue;
                _cleanup_free_ char *name = xasprintf("syscalls[%zu]", i);
                ydiag_add(L->d, yamldoc_node(L->y, v->data.sequence.items.start[i]), name, "%s", e.msg);
        }
}

static void load_image(struct mload *L, const yaml_node_t *v)
{
        _cleanup_free_ char *rel = NULL;
        L->image_node = v;
        if (yget_string(v, "image", L->d, &rel) < 0)
                return;
        if (!*rel || rel[0] == '/' || path_has_dotdot(rel)) {
                ydiag_add(L->d, v, "image", "`%s` must be a relative path inside the plugin directory without `..`",
                          rel);
                return;
        }
        L->m->image = xasprintf("%s/%s", L->m->dir, rel);
}

static void load_image_tag(struct mload *L, const yaml_node_t *v)
{
        L->image_tag_node = v;
        if (yget_string(v, "image_tag", L->d, &L->m->image_ref) < 0)
                return;
        if (!*L->m->image_ref || strchr(L->m->image_ref, '/') || strchr(L->m->image_ref, ':'))
                ydiag_add(L->d, v, "image_tag", "`%s` is not a tag", L->m->image_ref);
}

/* An image plugin: the layout read, its entrypoint, cmd, env and working
 * dir taken as defaults under what the manifest says.  The rootfs comes
 * when the registry unpacks it. */
static void finish_image(struct mload *L)
{
        struct manifest *m = L->m;
        const yaml_node_t *at = L->image_node;
        if (L->rootfs_node) {
                ydiag_add(L->d, L->rootfs_node, "rootfs", "a plugin has a rootfs or an image, not both");
                return;
        }
        if (m->image_ref && !m->image) {
                ydiag_add(L->d, L->image_tag_node, "image_tag", "needs `image`");
                return;
        }
        free(m->rootfs);
        m->rootfs = NULL;
        _cleanup_free_ char *real = realpath(m->image, NULL);
        _cleanup_free_ char *realdir = realpath(m->dir, NULL);
        if (!real || !realdir) {
                ydiag_add(L->d, at, "image", "`%s`: %s", m->image, strerror(errno));
                return;
        }
        if (!path_is_below(real, realdir)) {
                ydiag_add(L->d, at, "image", "`%s` resolves to `%s`, outside the plugin directory", m->image, real);
                return;
        }
        free(m->image_link);
        m->image_link = m->image;
        m->image = TAKE_PTR(real);
        struct image_config c = { 0 };
        struct err e = ERR_INIT;
        if (image_read(m->image, m->image_ref, &c, &e) < 0) {
                ydiag_add(L->d, m->image_ref ? L->image_tag_node : at, m->image_ref ? "image_tag" : "image", "%s",
                          e.msg);
                return;
        }
        m->image_tag = xstrdup(c.tag);
        m->image_digest = xstrdup(c.digest);
        m->cwd = xstrdup(c.cwd);
        if (!m->command) {
                /* Docker's rule: the entrypoint, then cmd as its arguments. */
                size_t ne = strv_len(c.entrypoint), nc = strv_len(c.cmd);
                char **argv = xcalloc(ne + nc + 1, sizeof *argv);
                for (size_t i = 0; i < ne + nc; i++)
                        argv[i] = xstrdup(i < ne ? c.entrypoint[i] : c.cmd[i - ne]);
                m->command = argv;
                if (!argv[0])
                        ydiag_add(L->d, at, "image", "the image has no Entrypoint or Cmd: set `command`");
                else if (argv[0][0] != '/')
                        ydiag_add(L->d, at, "image", "the image's command `%s` is not an absolute path: set `command`",
                                  argv[0]);
        }
        /* The image's environment first; the manifest's replaces a key.
         * Sized once (strv_push() counts the vector at each push). */
        char **env = xcalloc(strv_len(c.env) + strv_len(m->env) + 1, sizeof *env);
        size_t nenv = 0;
        for (size_t i = 0; c.env[i]; i++) {
                const char *eq = strchr(c.env[i], '=');
                _cleanup_free_ char *key = eq ? xasprintf("%.*s", (int)(eq - c.env[i]), c.env[i]) : NULL;
                if (!key || !valid_env_key(key))
                        continue;
                bool mine = false;
                for (size_t k = 0; m->env[k] && !mine; k++)
                        mine = !strncmp(m->env[k], c.env[i], (size_t)(eq - c.env[i]) + 1);
                if (!mine)
                        env[nenv++] = xstrdup(c.env[i]);
        }
        for (size_t k = 0; m->env[k]; k++)
                env[nenv++] = xstrdup(m->env[k]);
        strv_free(m->env);
        m->env = env;
        image_config_done(&c);
}

static void load_rootfs(struct mload *L, const yaml_node_t *v)
{
        _cleanup_free_ char *rel = NULL;
        L->rootfs_node = v;
        if (yget_string(v, "rootfs", L->d, &rel) < 0) {
                L->rootfs_ok = false;
                return;
        }
        if (!*rel || rel[0] == '/' || path_has_dotdot(rel)) {
                ydiag_add(L->d, v, "rootfs", "`%s` must be a relative path inside the plugin directory without `..`",
                          rel);
                L->rootfs_ok = false;
                return;
        }
        free(L->m->rootfs);
        L->m->rootfs = xasprintf("%s/%s", L->m->dir, rel);
}

static const struct {
        const char *key;
        bool required;
        void (*load)(struct mload *L, const yaml_node_t *v);
} keys[] = {
        { "name", true, load_name },
        { "version", true, load_version },
        { "description", true, load_description },
        { "command", true, load_command },   /* but for an image plugin */
        { "env", false, load_env },
        { "input_schema", true, load_input_schema },
        { "resources", false, load_resources },
        { "timeout_seconds", false, load_timeout },
        { "max_concurrent", false, load_max_concurrent },
        { "rerun", false, load_rerun },
        { "warm", false, load_warm },
        { "oci_template", false, load_oci_template },
        { "syscalls", false, load_syscalls },
        { "rootfs", false, load_rootfs },
        { "image", false, load_image },
        { "image_tag", false, load_image_tag },
        { "max_input_bytes", false, load_max_input },
        { "max_result_bytes", false, load_max_result },
};

/* Open `dir` below rootfs_fd the way the container will see it: symlinks
 * resolve inside the rootfs (merged-/usr images link /bin -> usr/bin, and an
 * absolute link must not escape to the host).  Falls back to a plain openat
 * on kernels without openat2(2). */
static int open_in_root(int rootfs_fd, const char *dir)
{
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, rootfs_fd, dir, &how, sizeof how);
        if (fd < 0 && (errno == ENOSYS || errno == EPERM))
                fd = openat(rootfs_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fd;
}

/* Is cmd an executable file (or a link) in the rootfs open at rfd?  -1
 * with why filled when not. */
static int command_problem(int rfd, const char *cmd, const char *rootfs, char *why, size_t size)
{
        _cleanup_free_ char *rel = xstrdup(cmd + strspn(cmd, "/"));
        char *slash = strrchr(rel, '/');
        const char *base = slash ? slash + 1 : rel;
        if (!*base) {
                snprintf(why, size, "`%s` does not name a file", cmd);
                return -1;
        }
        _cleanup_close_ int dfd = -1;
        if (slash) {
                *slash = '\0';
                dfd = open_in_root(rfd, rel);
                if (dfd < 0) {
                        snprintf(why, size, "`%s` not found in the rootfs: %s", cmd, strerror(errno));
                        return -1;
                }
        }
        struct stat st;
        if (fstatat(slash ? dfd : rfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                snprintf(why, size, "`%s` not found in the rootfs `%s`", cmd, rootfs);
                return -1;
        }
        /* A symlink is fine: busybox plugins link /bin/sh -> busybox. */
        if (S_ISLNK(st.st_mode))
                return 0;
        if (!S_ISREG(st.st_mode)) {
                snprintf(why, size, "`%s` is not a regular file", cmd);
                return -1;
        }
        if (!(st.st_mode & 0111)) {
                snprintf(why, size, "`%s` is not executable", cmd);
                return -1;
        }
        return 0;
}

static void check_rootfs(struct mload *L)
{
        const yaml_node_t *at = L->rootfs_node ? L->rootfs_node : L->root;
        _cleanup_close_ int rfd = open(L->m->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
                ydiag_add(L->d, at, "rootfs", "`%s`: %s", L->m->rootfs,
                          errno == ENOENT ? "no such directory" : strerror(errno));
                return;
        }
        /* The rootfs must really be inside the plugin directory: a link to
         * `/` would hand the host's root to the container on a runtime that
         * does not refuse it (runc does, crun and youki may not).  Keep the
         * resolved path so the runtime gets no link at all. */
        _cleanup_free_ char *real = realpath(L->m->rootfs, NULL);
        _cleanup_free_ char *realdir = realpath(L->m->dir, NULL);
        if (!real || !realdir) {
                ydiag_add(L->d, at, "rootfs", "`%s`: %s", L->m->rootfs, strerror(errno));
                return;
        }
        if (!path_is_below(real, realdir)) {
                ydiag_add(L->d, at, "rootfs", "`%s` resolves to `%s`, outside the plugin directory",
                          L->m->rootfs, real);
                return;
        }
        free(L->m->rootfs_link);
        L->m->rootfs_link = L->m->rootfs;
        L->m->rootfs = TAKE_PTR(real);
        if (!L->command_ok)
                return;
        char why[512];
        if (command_problem(rfd, L->m->command[0], L->m->rootfs, why, sizeof why) < 0)
                ydiag_add(L->d, yamldoc_node(L->y, L->command_node->data.sequence.items.start[0]), "command[0]",
                          "%s", why);
}

int manifest_check_command(const struct manifest *m, struct err *err)
{
        _cleanup_close_ int rfd = m->rootfs ? open(m->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        char why[512];
        if (rfd < 0)
                snprintf(why, sizeof why, "the rootfs `%s`: %s", m->rootfs ? m->rootfs : "(none)", strerror(errno));
        if (rfd < 0 || command_problem(rfd, m->command[0], m->rootfs, why, sizeof why) < 0) {
                err_set(err, ERR_INVALID, 0, "command[0]: %s", why);
                err_set_field(err, "command");
                return -1;
        }
        return 0;
}

static void ydiag_donep(struct ydiag *d)
{
        ydiag_done(d);
}

static void yamldoc_freep(struct yamldoc **y)
{
        yamldoc_free(*y);
}

int manifest_load(const char *path, struct manifest **ret, struct err *err)
{
        _cleanup_(manifest_unrefp) struct manifest *m = xcalloc(1, sizeof *m);
        m->refs = 1;
        m->rerun = true;
        if (!(m->dir = real_dir_of(path, err)))
                return -1;
        /* The manifest, like the rootfs, is the plugin directory's own: a
         * link to a file elsewhere would be read as root and its values
         * quoted in the errors that GET /v1/algorithms lists.  Said here
         * in the plugin's words; checked again on the file as read, which
         * a link renamed over it in between cannot pass. */
        _cleanup_free_ char *real = realpath(path, NULL);
        if (real && !path_is_below(real, m->dir))
                return err_set(err, ERR_INVALID, 0, "%s: resolves to `%s`, outside the plugin directory", path, real);

        _cleanup_(yamldoc_freep) struct yamldoc *y = NULL;
        if (yamldoc_load_beneath(path, MANIFEST_MAX_BYTES, "input_schema", &y, err) < 0)
                return -1;   /* the message already starts with the path */
        /* After the read: a copy renamed over it in between makes it
         * differ later, which only costs a second look (manifest_peek()). */
        if (stat(m->dir, &m->dir_st) < 0)
                memset(&m->dir_st, 0, sizeof m->dir_st);
        const char *slash = strrchr(path, '/');
        m->path = xasprintf("%s/%s", m->dir, slash ? slash + 1 : path);
        m->rootfs = xasprintf("%s/rootfs", m->dir);
        m->env = xcalloc(1, sizeof *m->env);
        m->extra_syscalls = xcalloc(1, sizeof *m->extra_syscalls);

        _cleanup_(ydiag_donep) struct ydiag d;
        ydiag_init(&d, path, NULL, NULL);
        struct mload L = { .y = y, .d = &d, .m = m, .rootfs_ok = true };

        const yaml_node_t *root = yamldoc_root(y);
        if (!root) {
                ydiag_add(&d, NULL, NULL, "the manifest is empty");
                return ydiag_result_all(&d, ERR_INVALID, err);
        }
        if (root->type != YAML_MAPPING_NODE) {
                ydiag_add(&d, root, NULL, "the top level must be a mapping, got %s", ynode_kind(root));
                return ydiag_result_all(&d, ERR_INVALID, err);
        }
        L.root = root;

        if (yamldoc_check_keys(y, root, NULL, &d) < 0)
                return ydiag_result_all(&d, ERR_INVALID, err);
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
                const yaml_node_t *kn = yamldoc_node(y, p->key);
                const char *k = ynode_str(kn);
                if (!k || yamldoc_key_dup(y, root, p))
                        continue;
                size_t i = 0;
                while (i < ARRAY_SIZE(keys) && strcmp(keys[i].key, k))
                        i++;
                if (i == ARRAY_SIZE(keys)) {
                        ydiag_add(&d, kn, k, "unknown key");
                        continue;
                }
                keys[i].load(&L, yamldoc_node(y, p->value));
                /* Where checks made after the load (oci_check_manifest) point. */
                unsigned line = (unsigned)kn->start_mark.line + 1;
                if (!strcmp(k, "version"))
                        m->lines.version = line;
                else if (!strcmp(k, "resources"))
                        m->lines.resources = line;
                else if (!strcmp(k, "syscalls"))
                        m->lines.syscalls = line;
                else if (!strcmp(k, "oci_template"))
                        m->lines.oci_template = line;
                else if (!strcmp(k, "command"))
                        m->lines.command = line;
                else if (!strcmp(k, "image"))
                        m->lines.image = line;
                else if (!strcmp(k, "max_input_bytes"))
                        m->lines.max_input_bytes = line;
                else if (!strcmp(k, "max_result_bytes"))
                        m->lines.max_result_bytes = line;
        }
        bool image = m->image || m->image_ref;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (keys[i].required && !yamldoc_get(y, root, keys[i].key) && !(image && !strcmp(keys[i].key, "command")))
                        ydiag_add(&d, root, keys[i].key, "missing required key");

        if (m->image || m->image_ref)
                finish_image(&L);
        else if (L.rootfs_ok)
                check_rootfs(&L);
        if (!m->oci_template)
                m->oci_template = xstrdup("default");

        if (ydiag_result_all(&d, ERR_INVALID, err) < 0)
                return -1;
        *ret = TAKE_PTR(m);
        return 0;
}

int manifest_peek(const char *path, char **ret_name, char **ret_version)
{
        _cleanup_(yamldoc_freep) struct yamldoc *y = NULL;
        struct err e = ERR_INIT;
        if (yamldoc_load_beneath(path, MANIFEST_MAX_BYTES, "input_schema", &y, &e) < 0)
                return -1;
        const yaml_node_t *root = yamldoc_root(y);
        if (!root || root->type != YAML_MAPPING_NODE)
                return -1;
        const yaml_node_t *n = yamldoc_get(y, root, "name"), *v = yamldoc_get(y, root, "version");
        const char *name = n && n->type == YAML_SCALAR_NODE && !ynode_is_null(n) ? ynode_str(n) : NULL;
        const char *version = v && v->type == YAML_SCALAR_NODE && !ynode_is_null(v) ? ynode_str(v) : NULL;
        if (!name)
                return -1;
        *ret_name = xstrdup(name);
        *ret_version = version ? xstrdup(version) : NULL;
        return 0;
}

unsigned manifest_key_line(const struct manifest *m, const char *key)
{
        if (!strcmp(key, "version"))
                return m->lines.version;
        if (!strcmp(key, "resources"))
                return m->lines.resources;
        if (!strcmp(key, "syscalls"))
                return m->lines.syscalls;
        if (!strcmp(key, "oci_template"))
                return m->lines.oci_template;
        if (!strcmp(key, "command"))
                return m->lines.command ? m->lines.command : m->lines.image;
        if (!strcmp(key, "image"))
                return m->lines.image;
        if (!strcmp(key, "max_input_bytes"))
                return m->lines.max_input_bytes;
        if (!strcmp(key, "max_result_bytes"))
                return m->lines.max_result_bytes;
        return 0;
}

static int64_t limit_under(int64_t own, int64_t fallback, int64_t ceiling)
{
        int64_t v = own ? own : fallback;
        return v < ceiling ? v : ceiling;
}

int64_t manifest_input_limit(const struct manifest *m, const struct config *cfg)
{
        return limit_under(m->max_input_bytes, cfg->max_body_bytes, cfg->input_ceiling_bytes);
}

int64_t manifest_result_limit(const struct manifest *m, const struct config *cfg)
{
        return limit_under(m->max_result_bytes, cfg->max_result_bytes, cfg->result_ceiling_bytes);
}
