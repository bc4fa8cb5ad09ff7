/* workspace.c - owns one job's directory tree under STATE_DIR/workspaces and
 * the tmpfs mounted on its output/ (layout in workspace.h).  A workspace is
 * used by one worker thread at a time; workspace_sweep() runs at startup
 * before any worker.  Mounts are made in the daemon's mount namespace; the
 * runtime bind-mounts them into the container.
 *
 * The output directory is a tmpfs so that its size cap is enforced by the
 * kernel (ENOSPC inside the container) and nothing the algorithm writes can
 * fill the daemon's state disk. */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/util.h"

#define JOB_ID_MAX 128

static bool job_id_ok(const char *id)
{
        size_t n = strlen(id);
        if (n == 0 || n > JOB_ID_MAX)
                return false;
        for (const char *c = id; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '-'))
                        return false;
        return true;
}

/* mkdir with exactly `mode` (chmod afterwards when the umask narrows it, so
 * it does not take away what the container user needs to read). */
static int make_dir(const char *path, unsigned mode, struct err *err)
{
        if (mkdir(path, mode) < 0)
                return err_errno(err, errno == EEXIST ? ERR_CONFLICT : errno == ENOENT ? ERR_NOT_FOUND : ERR_IO,
                                 "mkdir `%s`", path);
        if (umask_narrows(mode) && chmod(path, mode) < 0)
                return err_errno(err, ERR_IO, "chmod `%s`", path);
        return 0;
}

static void workspace_destroyp(struct workspace **ws)
{
        if (*ws)
                workspace_destroy(*ws, false, NULL);
}

int workspace_create(const char *root, const char *run_id, const char *input_text, size_t input_len,
                     int64_t disk_mb, int64_t uid, int64_t gid,
                     struct workspace **ret, struct err *err)
{
        if (!job_id_ok(run_id))
                return err_set(err, ERR_INVALID, 0, "workspace: bad run id `%s`", run_id);
        if (disk_mb <= 0 || disk_mb > 1024 * 1024 || uid < 0 || uid > UINT32_MAX - 1 || gid < 0 ||
            gid > UINT32_MAX - 1)
                return err_set(err, ERR_INVALID, 0, "workspace: bad disk size or uid/gid");
        /* Root only, all the way down to the job: the container reaches
         * /input and /output through bind mounts, never through these host
         * paths, while the paths are public in /proc/self/mountinfo. */
        _cleanup_free_ char *dir = xasprintf("%s/%s", root, run_id);
        /* Plain mkdir, not mkdir -p: an existing directory belongs to
         * another job (or a leftover the sweep missed) and must not be
         * adopted, nor removed by our cleanup below.  The root is made
         * only when missing (the sweep at start sets its mode). */
        if (make_dir(dir, 0700, err) < 0) {
                if (err->code != ERR_NOT_FOUND)
                        return err_wrap(err, "workspace");
                err_clear(err);
                if (mkdir_p(root, 0700, err) < 0)
                        return err_wrap(err, "workspace");
                if (chmod(root, 0700) < 0)
                        return err_errno(err, ERR_IO, "workspace: chmod `%s`", root);
                if (make_dir(dir, 0700, err) < 0)
                        return err_wrap(err, "workspace");
        }

        /* From here on the cleanup removes whatever was made. */
        _cleanup_(workspace_destroyp) struct workspace *ws = xcalloc(1, sizeof *ws);
        ws->dir = TAKE_PTR(dir);
        ws->input_dir = xasprintf("%s/input", ws->dir);
        ws->output_dir = xasprintf("%s/output", ws->dir);
        ws->bundle_dir = xasprintf("%s/bundle", ws->dir);

        if (make_dir(ws->input_dir, 0755, err) < 0)
                return err_wrap(err, "workspace");
        if (input_text && workspace_place_input(ws, input_text, input_len, err) < 0)
                return -1;

        if (make_dir(ws->output_dir, 0700, err) < 0)
                return err_wrap(err, "workspace");
        _cleanup_free_ char *opts = xasprintf("size=%lldm,mode=0700,uid=%lld,gid=%lld", (long long)disk_mb,
                                              (long long)uid, (long long)gid);
        if (mount("tmpfs", ws->output_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
                return err_errno(err, ERR_IO, "workspace: mount tmpfs on `%s`", ws->output_dir);
        ws->output_mounted = true;

        if (make_dir(ws->bundle_dir, 0700, err) < 0)
                return err_wrap(err, "workspace");

        *ret = TAKE_PTR(ws);
        return 0;
}

static char *input_path(const struct workspace *ws)
{
        return xasprintf("%s/input.json", ws->input_dir);
}

static bool gone(int r)
{
        return r == 0 || errno == ENOENT;
}

int workspace_place_input(struct workspace *ws, const char *input_text, size_t input_len, struct err *err)
{
        _cleanup_free_ char *input = input_path(ws);
        if (write_file_unsynced(input, input_text, input_len, 0644, err) < 0)
                return err_wrap(err, "workspace");
        ws->input_dropped = false;
        if (umask_narrows(0644) && chmod(input, 0644) < 0)
                return err_errno(err, ERR_IO, "workspace: chmod `%s`", input);
        return 0;
}

void workspace_drop_input(struct workspace *ws)
{
        if (!ws)
                return;
        _cleanup_free_ char *input = input_path(ws);
        ws->input_dropped = gone(unlink(input));
}

static int unmount(const char *path, struct err *err)
{
        /* MNT_DETACH: a process still holding a file open there (a container
         * being torn down) must not make us fail; the tmpfs goes away when
         * the last reference does.  EINVAL: not a mount point (any more). */
        if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                return err_errno(err, ERR_IO, "umount `%s`", path);
        return 0;
}


/* The usual tree (workspace.h's layout) removed by name: a few calls where
 * rm_rf would stat, open and read every directory.  False when anything
 * else is there (a runtime's own file, a warm gate's, a mount): rm_rf then
 * takes what is left, with its checks. */
static bool remove_known(struct workspace *ws, bool keep_bundle)
{
        if (!ws->input_dropped) {
                _cleanup_free_ char *input = input_path(ws);
                if (!gone(unlink(input)))
                        return false;
        }
        if (!gone(rmdir(ws->input_dir)) || !gone(rmdir(ws->output_dir)))
                return false;
        if (keep_bundle)
                return true;
        _cleanup_free_ char *config = xasprintf("%s/config.json", ws->bundle_dir);
        _cleanup_free_ char *pid = xasprintf("%s/container.pid", ws->bundle_dir);
        return gone(unlink(config)) && gone(unlink(pid)) && gone(rmdir(ws->bundle_dir)) && gone(rmdir(ws->dir));
}

int workspace_destroy(struct workspace *ws, bool keep_bundle, struct err *err)
{
        if (!ws)
                return 0;
        int ret = 0;
        if (ws->output_mounted && unmount(ws->output_dir, err) < 0)
                ret = -1;
        if (ret == 0 && ws->dir && !remove_known(ws, keep_bundle)) {
                if (!keep_bundle)
                        ret = rm_rf(ws->dir, err);
                else if (rm_rf(ws->input_dir, err) < 0 || rm_rf(ws->output_dir, err) < 0)
                        ret = -1;
        }
        if (ret < 0)
                err_wrap(err, "workspace: remove `%s`", ws->dir ? ws->dir : "?");
        free(ws->dir);
        free(ws->input_dir);
        free(ws->output_dir);
        free(ws->bundle_dir);
        free(ws);
        return ret;
}

static int cmp_len_desc(const void *a, const void *b)
{
        size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
        return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Every mount point strictly below `dir`, deepest first. */
static int mounts_below(const char *dir, char ***ret, struct err *err)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return err_errno(err, ERR_IO, "open `/proc/self/mountinfo`");
        size_t dlen = strlen(dir);
        _cleanup_strv_ char **found = NULL;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                char *tok = mountinfo_point(line, NULL);
                if (tok && strncmp(tok, dir, dlen) == 0 && tok[dlen] == '/')
                        strv_push(&found, tok);
        }
        size_t n = strv_len(found);
        if (n > 1)
                qsort(found, n, sizeof *found, cmp_len_desc);
        *ret = TAKE_PTR(found);
        return 0;
}

/* Unmount everything below dir (deepest first) and remove it. */
static int remove_tree(const char *dir, struct err *err)
{
        int ret = 0;
        _cleanup_strv_ char **mounts = NULL;
        if (mounts_below(dir, &mounts, err) < 0)
                return -1;
        for (size_t i = 0; mounts && mounts[i]; i++) {
                struct err e = ERR_INIT;
                if (unmount(mounts[i], &e) < 0 && ret == 0) {
                        ret = -1;
                        if (err)
                                *err = e;
                }
        }
        struct err e = ERR_INIT;
        if (rm_rf(dir, &e) < 0 && ret == 0) {
                ret = -1;
                if (err)
                        *err = e;
        }
        return ret;
}

int workspace_sweep(const char *root, bool (*keep)(const char *run_id, void *ctx), void *ctx,
                    size_t *ret_removed, struct err *err)
{
        size_t removed = 0;
        if (ret_removed)
                *ret_removed = 0;
        char real[PATH_MAX];
        if (!realpath(root, real))
                return errno == ENOENT ? 0 : err_errno(err, ERR_IO, "workspace: sweep `%s`", root);
        /* Root only (workspace_create no longer checks it per job). */
        if (chmod(real, 0700) < 0)
                return err_errno(err, ERR_IO, "workspace: chmod `%s`", real);

        DIR *d = opendir(real);
        if (!d)
                return err_errno(err, ERR_IO, "workspace: sweep: open `%s`", real);
        _cleanup_strv_ char **names = NULL;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !(keep && keep(de->d_name, ctx)))
                        strv_push(&names, de->d_name);
        closedir(d);

        int ret = 0;
        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_free_ char *path = xasprintf("%s/%s", real, names[i]);
                struct err e = ERR_INIT;
                if (remove_tree(path, &e) < 0) {
                        if (ret == 0 && err)
                                *err = e;
                        ret = -1;
                } else {
                        removed++;
                }
        }
        if (ret_removed)
                *ret_removed = removed;
        if (ret < 0)
                return err_wrap(err, "workspace: sweep `%s`", real);
        return 0;
}

#define ROOT_SOURCE "edgecd-workspaces"   /* our tmpfs's name in mountinfo */

/* Whether the topmost mount on path is a tmpfs of ours (ROOT_SOURCE), not
 * an operator's.  Of the mounts on one point, the top is the one no other
 * there is mounted on (mountinfo's order is not the stacking order once a
 * mount was moved there). */
static bool ours_on_top(const char *path)
{
        char real[PATH_MAX];
        if (!realpath(path, real))
                return false;
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return false;
        struct on_point { long id, parent; bool ours; } on[32];
        size_t n = 0;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0 && n < ARRAY_SIZE(on)) {
                /* "ID PARENT ... - TYPE SOURCE OPTIONS" */
                char *sep = strstr(line, " - ");
                if (!sep)
                        continue;
                *sep = '\0';
                long id = 0, parent = 0;
                if (sscanf(line, "%ld %ld", &id, &parent) != 2)
                        continue;
                char *mp = mountinfo_point(line, NULL);
                if (!mp || strcmp(mp, real))
                        continue;
                char *save = NULL, *type = strtok_r(sep + 3, " ", &save);
                char *source = type ? strtok_r(NULL, " ", &save) : NULL;
                on[n++] = (struct on_point){ id, parent,
                                             type && source && !strcmp(type, "tmpfs") && !strcmp(source, ROOT_SOURCE) };
        }
        for (size_t i = 0; i < n; i++) {
                bool covered = false;
                for (size_t j = 0; j < n && !covered; j++)
                        covered = on[j].parent == on[i].id;
                if (!covered)
                        return on[i].ours;
        }
        return false;
}

int workspace_root_clear(const char *root, struct err *err)
{
        /* What a killed daemon left: its tmpfs (which may have had another
         * size) with its runs' trees. */
        for (int i = 0; i < 16 && ours_on_top(root); i++) {
                if (umount2(root, MNT_DETACH) == 0)
                        continue;
                /* EINVAL: listed there, but hidden (a mount over a parent
                 * directory): not ours to reach. */
                if (errno == EINVAL)
                        break;
                return err_errno(err, ERR_IO, "workspaces: unmount the old tmpfs on `%s`", root);
        }
        return 0;
}

int workspace_root_mount(const char *root, int64_t size_bytes, struct err *err)
{
        if (mkdir_p(root, 0700, err) < 0)
                return err_wrap(err, "workspaces");
        /* A killed daemon's tmpfs, and what lay on the disk below it. */
        if (workspace_root_clear(root, err) < 0)
                return -1;
        if (workspace_sweep(root, NULL, NULL, NULL, err) < 0)
                return -1;
        _cleanup_free_ char *opts = xasprintf("size=%lld,mode=0700", (long long)size_bytes);
        if (mount(ROOT_SOURCE, root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
                return err_errno(err, ERR_IO, "workspaces: mount a tmpfs of %lld bytes on `%s`",
                                 (long long)size_bytes, root);
        return 0;
}

int workspace_root_unmount(const char *root, struct err *err)
{
        if (!ours_on_top(root))
                return 0;
        /* MNT_DETACH: with it goes whatever a failed cleanup left below. */
        if (umount2(root, MNT_DETACH) < 0)
                return err_errno(err, ERR_IO, "workspaces: unmount `%s`", root);
        return 0;
}
