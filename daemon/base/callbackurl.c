/* callbackurl.c - callback URLs, the allowlist, the signature, the secret
 * file and the backoff (see callbackurl.h).  Pure functions; any thread. */
#include "callbackurl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/hmac.h>

#include "util.h"

/* ---- URLs ---- */

static int bad(struct err *err, const char *why)
{
        return err_set(err, ERR_INVALID, 0, "%s", why);
}

/* A path segment that a client or server would take as "." or "..", also
 * percent-encoded. */
static bool dot_segment(const char *seg, size_t len)
{
        size_t n = 0;   /* dots seen */
        for (size_t i = 0; i < len; i++) {
                if (n == 2)
                        return false;
                if (seg[i] == '.') {
                        n++;
                } else if (seg[i] == '%' && len - i >= 3 && seg[i + 1] == '2' &&
                           (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
                        n++;
                        i += 2;
                } else {
                        return false;
                }
        }
        return n == 1 || n == 2;
}

int callback_url_parse(const char *url, struct callback_url *ret, struct err *err)
{
        memset(ret, 0, sizeof *ret);
        if (!url)
                return bad(err, "must be a string");
        size_t n = strlen(url);
        if (n == 0)
                return bad(err, "must not be empty");
        if (n > CALLBACK_URL_MAX)
                return err_set(err, ERR_INVALID, 0, "is %zu bytes, over the limit of %d", n, CALLBACK_URL_MAX);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)url[i] < 0x21 || (unsigned char)url[i] > 0x7e)
                        return bad(err, "must be printable ASCII without spaces (percent-encode the rest)");
        if (strchr(url, '\\'))
                return bad(err, "must not contain a backslash");
        if (strchr(url, '#'))
                return bad(err, "must not have a fragment (#...)");
        const char *a;
        if (!strncasecmp(url, "http://", 7)) {
                snprintf(ret->scheme, sizeof ret->scheme, "http");
                ret->port = 80;
                a = url + 7;
        } else if (!strncasecmp(url, "https://", 8)) {
                snprintf(ret->scheme, sizeof ret->scheme, "https");
                ret->port = 443;
                a = url + 8;
        } else {
                return bad(err, "must be an http:// or https:// URL");
        }
        size_t alen = strcspn(a, "/?");
        if (memchr(a, '@', alen))
                return bad(err, "must not carry user info (user@host)");
        const char *rest;
        if (a[0] == '[') {
                const char *close = memchr(a, ']', alen);
                char buf[INET6_ADDRSTRLEN + 1];
                struct in6_addr a6;
                size_t hl = close ? (size_t)(close - a - 1) : 0;
                if (!close || hl == 0 || hl >= sizeof buf)
                        return bad(err, "has a malformed IPv6 host");
                memcpy(buf, a + 1, hl);
                buf[hl] = '\0';
                if (inet_pton(AF_INET6, buf, &a6) != 1)
                        return bad(err, "has a malformed IPv6 host");
                /* The canonical text, so that two spellings compare equal. */
                inet_ntop(AF_INET6, &a6, ret->host, sizeof ret->host);
                rest = close + 1;
        } else {
                const char *colon = memchr(a, ':', alen);
                size_t hl = colon ? (size_t)(colon - a) : alen;
                /* libcurl would send to the address it reads there. */
                if (ipv4_odd_spelling(a, hl))
                        return bad(err, "has an IPv4 address spelled other than a.b.c.d in decimal (leading "
                                        "zeros, hex or fewer parts: libcurl reads another address)");
                if (!hostname_valid(a, hl))
                        return bad(err, "has no valid host name");
                for (size_t i = 0; i < hl; i++)
                        ret->host[i] = (char)tolower((unsigned char)a[i]);
                ret->host[hl] = '\0';
                rest = a + hl;
        }
        const char *end = a + alen;
        if (rest < end) {
                if (*rest != ':' || rest + 1 == end || (size_t)(end - rest - 1) > 5 ||
                    strspn(rest + 1, "0123456789") < (size_t)(end - rest - 1))
                        return bad(err, "has a malformed port");
                unsigned long p = strtoul(rest + 1, NULL, 10);
                if (p < 1 || p > 65535)
                        return bad(err, "has a port outside 1..65535");
                ret->port = (unsigned)p;
        }
        const char *path = end;
        size_t plen = strcspn(path, "?");
        ret->has_query = path[plen] == '?';
        if (plen == 0) {
                snprintf(ret->path, sizeof ret->path, "/");
                return 0;
        }
        for (size_t i = 0; i < plen; i++) {
                if (path[i] != '%')
                        continue;
                if (i + 2 >= plen || !isxdigit((unsigned char)path[i + 1]) ||
                    !isxdigit((unsigned char)path[i + 2]))
                        return bad(err, "has a malformed percent-encoding in its path");
                char hi = path[i + 1], lo = (char)tolower((unsigned char)path[i + 2]);
                if (hi == '2' && lo == 'f')
                        return bad(err, "must not have an encoded slash (%2F) in its path");
                if (hi == '5' && lo == 'c')
                        return bad(err, "must not have an encoded backslash (%5C) in its path");
                /* Decoded twice by some servers: %252e%252e is "..". */
                if (hi == '2' && lo == '5')
                        return bad(err, "must not have an encoded percent sign (%25) in its path");
                /* Path parameters: servlet containers and proxies drop
                 * ";..." from a segment, so "/hooks/..;/admin" is "..". */
                if (hi == '3' && lo == 'b')
                        return bad(err, "must not have an encoded semicolon (%3B) in its path");
                /* A receiver that stops at a NUL takes "/hooks/..%00/x"
                 * as "/hooks/.."; raw control characters are refused too. */
                if (hi == '0' || hi == '1' || (hi == '7' && lo == 'f'))
                        return bad(err, "must not have an encoded control character (%00 to %1F, %7F) in its path");
        }
        if (memchr(path, ';', plen))
                return bad(err, "must not have a semicolon (path parameters) in its path");
        for (size_t i = 1; i <= plen;) {
                size_t s = strcspn(path + i, "/?");
                if (i + s > plen)
                        s = plen - i;
                if (dot_segment(path + i, s))
                        return bad(err, "must not have `.` or `..` segments in its path");
                i += s + 1;
        }
        memcpy(ret->path, path, plen);
        ret->path[plen] = '\0';
        return 0;
}

bool callback_url_dest(const char *url, char *out, size_t size)
{
        struct callback_url *u = xmalloc(sizeof *u);
        struct err err = ERR_INIT;
        bool ok = callback_url_parse(url, u, &err) == 0;
        if (ok)
                snprintf(out, size, "%s://%s:%u", u->scheme, u->host, u->port);
        else if (size)
                *out = '\0';
        free(u);
        return ok;
}

/* Whether path lies under prefix on a segment boundary: "/hooks" holds
 * "/hooks" and "/hooks/a", not "/hooksmith"; "/hooks/" holds what starts
 * with it. */
static bool path_under(const char *prefix, const char *path)
{
        size_t n = strlen(prefix);
        if (strncmp(path, prefix, n))
                return false;
        if (n && prefix[n - 1] == '/')
                return true;
        return path[n] == '\0' || path[n] == '/';
}

const char *callback_allow_problem(const char *entry)
{
        static __thread char why[ERR_MSG_MAX];
        struct callback_url u;
        struct err err = ERR_INIT;
        if (!entry)
                return "must be a string";
        if (callback_url_parse(entry, &u, &err) < 0) {
                snprintf(why, sizeof why, "%s", err.msg);
                return why;
        }
        if (u.has_query)
                return "must not have a query (an entry is a scheme, host, port and path prefix)";
        return NULL;
}

int callback_url_allowed(char *const *allow, const char *url, struct err *err)
{
        struct callback_url u;
        if (callback_url_parse(url, &u, err) < 0)
                return -1;
        if (!allow || !allow[0])
                return bad(err, "is not accepted: callbacks are off on this daemon (callbacks.allow is empty)");
        for (size_t i = 0; allow[i]; i++) {
                struct callback_url e;
                struct err ignored = ERR_INIT;
                if (callback_url_parse(allow[i], &e, &ignored) < 0 || e.has_query)
                        continue;
                if (!strcmp(e.scheme, u.scheme) && !strcmp(e.host, u.host) && e.port == u.port &&
                    path_under(e.path, u.path))
                        return 0;
        }
        return bad(err, "matches no entry of the daemon's callbacks.allow");
}

/* ---- signature and secret ---- */

void callback_sign(const void *key, size_t key_len, int64_t t, const void *body, size_t len, char *out,
                   size_t size)
{
        struct hmac_sha256_ctx ctx;
        char ts[24];
        int tn = snprintf(ts, sizeof ts, "%lld.", (long long)t);
        uint8_t mac[SHA256_DIGEST_SIZE];
        hmac_sha256_set_key(&ctx, key_len, key);
        hmac_sha256_update(&ctx, (size_t)tn, (const uint8_t *)ts);
        hmac_sha256_update(&ctx, len, body);
        hmac_sha256_digest(&ctx, sizeof mac, mac);
        char hex[2 * SHA256_DIGEST_SIZE + 1];
        for (size_t i = 0; i < sizeof mac; i++)
                snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        snprintf(out, size, "t=%lld,v1=%s", (long long)t, hex);
}

int callback_secret_load(const char *path, char **ret, size_t *ret_len, struct err *err)
{
        /* Non-blocking: a named pipe would hold the open (at a SIGHUP, the
         * main thread) until something wrote to it; refused below. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return err_errno(err, ERR_IO, "callbacks.secret_file: open %s", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return err_errno(err, ERR_IO, "callbacks.secret_file: stat %s", path);
        if (!S_ISREG(st.st_mode))
                return err_set(err, ERR_INVALID, 0, "callbacks.secret_file: %s is not a regular file", path);
        if (st.st_mode & 077)
                return err_set(err, ERR_INVALID, 0, "callbacks.secret_file: %s is open to group or others "
                               "(mode %04o): chmod 600 it", path, (unsigned)(st.st_mode & 07777));
        /* The whole file, with room for the line ends an editor adds: one
         * that does not fit is too long whatever its tail (a newline right
         * past the limit must not pass for the end of it). */
        enum { ROOM = CALLBACK_SECRET_MAX + 64 };
        char *buf = xmalloc(ROOM + 2);
        size_t n = 0;
        for (;;) {
                ssize_t r = read(fd, buf + n, ROOM + 1 - n);
                if (r < 0) {
                        explicit_bzero(buf, ROOM + 2);
                        free(buf);
                        return err_errno(err, ERR_IO, "callbacks.secret_file: read %s", path);
                }
                if (r == 0 || (n += (size_t)r) > ROOM)
                        break;
        }
        if (n <= ROOM)
                while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                        n--;
        if (n < CALLBACK_SECRET_MIN || n > CALLBACK_SECRET_MAX) {
                explicit_bzero(buf, ROOM + 2);
                free(buf);
                return err_set(err, ERR_INVALID, 0, "callbacks.secret_file: %s must hold %d to %d bytes "
                               "(try: head -c 32 /dev/urandom | base64 > FILE)", path, CALLBACK_SECRET_MIN,
                               CALLBACK_SECRET_MAX);
        }
        buf[n] = '\0';
        *ret = buf;
        *ret_len = n;
        return 0;
}

int64_t callback_backoff_ms(int64_t backoff_ms, int64_t max_backoff_ms, int64_t n, double rnd)
{
        int64_t d = backoff_ms;
        for (int64_t i = 1; i < n && d < max_backoff_ms; i++)
                d *= 2;
        if (d > max_backoff_ms)
                d = max_backoff_ms;
        /* Half of it fixed, half random: receivers that came back are not
         * hit by every waiting delivery in the same instant. */
        return d - (int64_t)((double)(d / 2) * rnd);
}

