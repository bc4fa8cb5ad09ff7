/* idpool.c - job user and group ids (see idpool.h).  The free ids wait in
 * a ring in the order they were given back (the longest unused first); a
 * bitmap says which are out.  One mutex. */
#include "idpool.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define CLAIM_GID_OFFSET ((off_t)1 << 33)   /* past every uid */

struct idpool {
        pthread_mutex_t lock;
        int64_t first_uid, first_gid;
        size_t count, used;
        uint32_t *ring;           /* free offsets, oldest first, from head */
        size_t head;
        unsigned char *bits;      /* out: 1 */
};

struct idpool *idpool_new(int64_t first_uid, int64_t first_gid, int64_t count)
{
        struct idpool *p = xcalloc(1, sizeof *p);
        pthread_mutex_init(&p->lock, NULL);
        p->first_uid = first_uid;
        p->first_gid = first_gid;
        p->count = count > 0 ? (size_t)count : 0;
        p->bits = xcalloc(p->count / 8 + 1, 1);
        p->ring = xcalloc(p->count + 1, sizeof *p->ring);
        for (size_t i = 0; i < p->count; i++)
                p->ring[i] = (uint32_t)i;
        return p;
}

void idpool_free(struct idpool *p)
{
        if (!p)
                return;
        pthread_mutex_destroy(&p->lock);
        free(p->bits);
        free(p->ring);
        free(p);
}

static bool bit(const struct idpool *p, size_t i)
{
        return p->bits[i / 8] & (1u << (i % 8));
}

int idpool_take(struct idpool *p, struct job_ids *ret, struct err *err)
{
        pthread_mutex_lock(&p->lock);
        if (p->used >= p->count) {
                size_t n = p->count;
                pthread_mutex_unlock(&p->lock);
                return err_set(err, ERR_BUSY, 0, "all %zu job user ids are in use", n);
        }
        size_t i = p->ring[p->head];
        p->head = (p->head + 1) % p->count;
        p->bits[i / 8] |= (unsigned char)(1u << (i % 8));
        p->used++;
        pthread_mutex_unlock(&p->lock);
        *ret = (struct job_ids){ .uid = p->first_uid + (int64_t)i, .gid = p->first_gid + (int64_t)i };
        return 0;
}

void idpool_give(struct idpool *p, struct job_ids ids)
{
        if (!p || ids.uid < p->first_uid || ids.uid >= p->first_uid + (int64_t)p->count)
                return;
        size_t i = (size_t)(ids.uid - p->first_uid);
        pthread_mutex_lock(&p->lock);
        if (bit(p, i)) {
                p->bits[i / 8] &= (unsigned char)~(1u << (i % 8));
                /* At the tail of the free ones: reused last. */
                size_t free_now = p->count - p->used;
                p->ring[(p->head + free_now) % p->count] = (uint32_t)i;
                p->used--;
        }
        pthread_mutex_unlock(&p->lock);
}

size_t idpool_in_use(struct idpool *p)
{
        pthread_mutex_lock(&p->lock);
        size_t n = p->used;
        pthread_mutex_unlock(&p->lock);
        return n;
}

int idpool_check_host(int64_t first_uid, int64_t first_gid, int64_t count, struct err *err)
{
        int ret = 0;
        setpwent();
        struct passwd *pw;
        while ((pw = getpwent())) {
                if ((int64_t)pw->pw_uid >= first_uid && (int64_t)pw->pw_uid < first_uid + count) {
                        ret = err_set(err, ERR_INVALID, 0, "the job uid range %lld-%lld holds host user `%s` (uid %u)",
                                      (long long)first_uid, (long long)(first_uid + count - 1), pw->pw_name,
                                      (unsigned)pw->pw_uid);
                        break;
                }
        }
        endpwent();
        if (ret < 0)
                return ret;
        setgrent();
        struct group *gr;
        while ((gr = getgrent())) {
                if ((int64_t)gr->gr_gid >= first_gid && (int64_t)gr->gr_gid < first_gid + count) {
                        ret = err_set(err, ERR_INVALID, 0, "the job gid range %lld-%lld holds host group `%s` (gid %u)",
                                      (long long)first_gid, (long long)(first_gid + count - 1), gr->gr_name,
                                      (unsigned)gr->gr_gid);
                        break;
                }
        }
        endgrent();
        return ret;
}

static int claim(int fd, off_t start, int64_t count)
{
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = (off_t)count };
        return fcntl(fd, F_OFD_SETLK, &fl);
}

int idpool_claim(const char *path, int64_t first_uid, int64_t first_gid, int64_t count, int64_t grace_ms,
                 int *ret_fd, struct err *err)
{
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        struct stat st;
        /* The claims file lives in a world-writable sticky directory
         * (/run/lock): one made by another user (who may hold a lock on
         * every range, or that fs.protected_regular keeps us from opening)
         * is not ours to trust.  Put aside and made anew, once. */
        if ((fd < 0 && errno == EACCES) || (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid != geteuid())) {
                if (fd >= 0)
                        close(TAKE_FD(fd));
                if (unlink(path) < 0 && errno != ENOENT)
                        return err_errno(err, ERR_IO, "`%s` is another user's and cannot be removed", path);
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        }
        if (fd < 0)
                return err_errno(err, ERR_IO, "open `%s`", path);
        const char *which;
        int64_t first;
        int64_t since = 0;
        int r;
        do {
                which = "uid";
                first = first_uid;
                r = claim(fd, (off_t)first_uid, count);
                if (r == 0) {
                        which = "gid";
                        first = first_gid;
                        r = claim(fd, CLAIM_GID_OFFSET + (off_t)first_gid, count);
                }
        } while (r < 0 && (errno == EAGAIN || errno == EACCES) && held_retry_wait(&since, grace_ms));
        if (r < 0) {
                if (errno == EAGAIN || errno == EACCES)
                        return err_set(err, ERR_CONFLICT, errno, "the job %s range %lld-%lld is another edgecd's on "
                                       "this host, in whole or in part (claimed in `%s`): give each its own",
                                       which, (long long)first, (long long)(first + count - 1), path);
                return err_errno(err, ERR_IO, "lock `%s`", path);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}
