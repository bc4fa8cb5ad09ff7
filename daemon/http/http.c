/* http.c - libmicrohttpd glue (see http.h).
 *
 * Threads: libmicrohttpd's pool of internal polling threads (one per core,
 * 2 to 8) runs every callback here and every handler, each connection on
 * one of them; http_resume() is the only entry point other threads use
 * (MHD_resume_connection is thread-safe).  Shared state here is atomic
 * (inflight), set before the threads start, or the per-client connection
 * counts under srv->clients_lock: libmicrohttpd 0.9.75 counts its own
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT per pool thread, which would multiply
 * the limit, so we count clients ourselves (accept policy + connection
 * notifications).  Per-request memory lives in struct http_request, freed
 * by the request-completed callback. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/un.h>

#include <microhttpd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/util.h"

/* libmicrohttpd mallocs a connection's memory pool up to this size. */
#define HTTP_POOL_MALLOC_MAX (32 * 1024)

/* A body that goes on past the limit without a Content-Length is read and
 * dropped so the client still gets its 413, up to this many times the limit;
 * beyond that the connection is closed. */
#define SWALLOW_FACTOR 16
#define MAX_PARAMS 4
/* Replies up to this size are always sent; larger ones count against
 * max_response_bytes while libmicrohttpd holds them. */
#define SMALL_REPLY (64 * 1024)
#define SPARE_FDS 2
/* More than libmicrohttpd's threads (http_threads()). */
#define LIMITED_MAX 16

struct http_server {
        struct MHD_Daemon *mhd;
        int listen_fd;
        bool own_fd;             /* not socket-activated: ours to close */
        int mhd_fd;              /* libmicrohttpd's duplicate of listen_fd (-1: none of ours) */
        char *unix_path;
        char address[128];
        struct http_options o;
        const struct http_route *routes;
        size_t nroutes;
        http_authorizer authorize;
        void *ctx;
        size_t inflight;         /* atomic: bytes of large replies not yet sent */
        int sndbuf;              /* SO_SNDBUF of each connection (conn_sndbuf()) */
        bool sndbuf_inherited;   /* set on the TCP listening socket, which passes it on */
        size_t spool_max;        /* atomic: o.spool_max as it is now */
        size_t spooled;          /* atomic: bytes in spool files of requests not yet done */

        pthread_mutex_t clients_lock;
        struct client *clients;  /* TCP peers with connections, by address */
        size_t nclients, capclients;

        pthread_mutex_t spare_lock;
        /* Kept to answer connections when out of descriptors: two, as
         * another thread may open a file in the one freed before the
         * accept meant for it (seen: then no spare, and no answer). */
        int spare_fds[SPARE_FDS];
        bool spares_missing;     /* atomic: some could not be opened again (spares_top_up()) */
        int64_t shed_logged_at;  /* guarded by spare_lock: last "cannot accept" warning */
        size_t shed_unlogged;    /* guarded by spare_lock: connections refused since */
        size_t shed_failures;    /* guarded by spare_lock: accepts failed since */

        /* libmicrohttpd's threads that stopped accepting at the limit, and
         * ours that accepts for them meanwhile (stand_in()). */
        pthread_mutex_t limit_lock;
        pthread_cond_t limit_cond;
        pthread_t limited[LIMITED_MAX];
        size_t nlimited;
        bool any_limited;        /* atomic: nlimited > 0, read without the lock */
        bool quiesced, stopping; /* guarded by limit_lock */
        bool locks_made;         /* the locks and limit_cond exist: http_stop() after a failed start too */
        bool stand_in_started;
        pthread_t stand_in;
};

/* One TCP peer's connections.  `reserved`: let in by the accept policy, not
 * yet started (microseconds later, in the same thread); a reservation that
 * never starts (libmicrohttpd refused the connection after our yes) goes
 * stale after RESERVE_STALE_MS. */
struct client {
        int family;
        unsigned char addr[16];
        size_t started, reserved;
        int64_t reserved_at;
};

#define RESERVE_STALE_MS 1000

/* libmicrohttpd keeps each query parameter in the connection's memory
 * pool (some 56 bytes each): a query of a few hundred empty parameters,
 * far under http.max_header_bytes, ran the pool out, and the connection
 * was closed without an answer.  A query with more than the API reads is
 * cut before libmicrohttpd parses it, and the request answered 431. */
#define HTTP_MAX_QUERY_PARAMS 64

struct header {
        char *name, *value;
        struct header *next;
};

struct http_request {
        struct http_server *srv;
        struct MHD_Connection *conn;
        char *method, *path;
        char *params[MAX_PARAMS];
        const struct http_route *route;
        char *body;
        size_t body_len, body_cap, swallowed;
        bool too_large;
        int spool_fd;                  /* >= 0 while a body is being spooled */
        bool spooled, spool_failed;    /* spooled: body is a mapping of the spool file */
        bool spool_busy;               /* failed for the spool budget, not the disk */
        int spool_errno;
        size_t spool_bytes;            /* counted in srv->spooled */
        bool replied, suspended;
        int64_t started_us;            /* now_mono_us() when its head was in */
        /* In the first call, before any body: a reply there makes
         * libmicrohttpd 0.9.75 close the connection after it, so one to a
         * request without a body waits (`pending`) for the next call. */
        bool in_head, bodyless;
        struct MHD_Response *pending;
        unsigned pending_status;
        bool must_answer;        /* http_must_answer(): past the in-flight cap too */
        size_t reserved;         /* http_reserve_large(): bytes of the answer being built */
        size_t counted;          /* what of them srv->inflight counts (none while small) */
        struct header *headers;
        char *user;
        void *state;
        void (*state_free)(void *);
};

/* ---- listening ---- */

static int listen_unix(struct http_server *srv, const char *path, struct err *err)
{
        gid_t gid = (gid_t)-1;
        if (srv->o.unix_group && *srv->o.unix_group) {
                struct group *gr = getgrnam(srv->o.unix_group);
                if (!gr)
                        return err_set(err, ERR_INVALID, 0, "listen on `unix:%s`: no group `%s`", path,
                                       srv->o.unix_group);
                gid = gr->gr_gid;
        }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path)
                return err_set(err, ERR_INVALID, 0, "unix socket path too long: `%s`", path);
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return err_errno(err, ERR_IO, "socket");
        /* A socket file left by a previous run would make bind fail. */
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, srv->o.unix_mode) < 0 ||
            (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)) {
                err_errno(err, ERR_IO, "listen on `unix:%s`", path);
                close(fd);
                return -1;
        }
        srv->listen_fd = fd;
        srv->unix_path = xstrdup(path);
        snprintf(srv->address, sizeof srv->address, "unix:%s", path);
        return 0;
}

/* The first of res that binds; -1 with *saved the last error.  An
 * address in use ends the search: another address of the name (IPv6 only
 * beside an IPv4 in use) is not what was asked for. */
static int bind_first(struct addrinfo *res, const char *listen_addr, int *saved)
{
        int fd = -1;
        *saved = 0;
        bool only_not_here = true;   /* every failure so far: EADDRNOTAVAIL */
        /* An address not on the host yet (DHCP, a link still down at
         * boot) is bound anyway (IP_FREEBIND) and served once it comes:
         * failing would restart the unit until systemd gives up.  Only
         * when no address of the name can be bound as it is: a name's
         * IPv6 address still to come must not win over its IPv4 one. */
        for (int free_bind = 0; free_bind < 2 && fd < 0; free_bind++) {
                if (free_bind && (!only_not_here || !*saved))
                        break;
                for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                        if (fd < 0) {
                                *saved = errno;
                                continue;
                        }
                        int one = 1;
                        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                        if ((!free_bind || setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) == 0) &&
                            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                                if (free_bind)
                                        log_warn("listen address `%s` is not on this host (yet): edgecd "
                                                 "listens for it and serves once it comes up", listen_addr);
                                break;
                        }
                        *saved = errno;
                        only_not_here &= *saved == EADDRNOTAVAIL;
                        close(fd);
                        fd = -1;
                        if (*saved == EADDRINUSE)
                                return -1;
                }
        }
        return fd;
}

static int listen_tcp(struct http_server *srv, const char *listen_addr, struct err *err)
{
        _cleanup_free_ char *host = NULL;
        const char *colon = strrchr(listen_addr, ':');
        if (!colon)
                return err_set(err, ERR_INVALID, 0, "listen address `%s` has no port", listen_addr);
        if (listen_addr[0] == '[') {
                const char *close_br = strchr(listen_addr, ']');
                if (!close_br || close_br + 1 != colon)
                        return err_set(err, ERR_INVALID, 0, "bad listen address `%s`", listen_addr);
                host = strndup(listen_addr + 1, (size_t)(close_br - listen_addr - 1));
        } else {
                host = strndup(listen_addr, (size_t)(colon - listen_addr));
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
        if (gai)
                return err_set(err, ERR_INVALID, 0, "listen address `%s`: %s", listen_addr, gai_strerror(gai));
        /* A predecessor SIGKILLed a moment ago may have left a spawn
         * child still holding a copy of its listening socket. */
        int fd, saved = 0;
        int64_t since = 0;
        do
                fd = bind_first(res, listen_addr, &saved);
        while (fd < 0 && saved == EADDRINUSE && held_retry_wait(&since, HELD_GRACE_MS));
        freeaddrinfo(res);
        if (fd < 0)
                return err_set(err, ERR_IO, saved, "listen on `%s`", listen_addr);
        srv->listen_fd = fd;
        snprintf(srv->address, sizeof srv->address, "%s", listen_addr);
        return 0;
}

/* ---- requests ---- */

static void request_free(struct http_request *req)
{
        if (!req)
                return;
        if (req->state_free)
                req->state_free(req->state);
        for (struct header *h = req->headers, *n; h; h = n) {
                n = h->next;
                free(h->name);
                free(h->value);
                free(h);
        }
        for (size_t i = 0; i < MAX_PARAMS; i++)
                free(req->params[i]);
        free(req->method);
        free(req->path);
        if (req->spool_fd >= 0)
                close(req->spool_fd);
        if (req->pending)
                MHD_destroy_response(req->pending);
        if (req->spool_bytes)
                __atomic_sub_fetch(&req->srv->spooled, req->spool_bytes, __ATOMIC_RELAXED);
        /* Reserved for an answer never given (reply() takes it over). */
        if (req->counted)
                __atomic_sub_fetch(&req->srv->inflight, req->counted, __ATOMIC_RELAXED);
        if (req->spooled && req->body)
                munmap(req->body, req->body_len);
        else
                free(req->body);
        free(req->user);
        free(req);
}

/* Match path against pattern, filling params.  Both start with '/'. */
static bool route_match(const char *pattern, const char *path, char **params)
{
        size_t np = 0;
        const char *p = pattern, *u = path;
        while (*p && *u) {
                if (*p != '/' || *u != '/')
                        return false;
                p++, u++;
                size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");
                if (plen == 1 && *p == '*') {
                        if (ulen == 0 || np >= MAX_PARAMS)
                                return false;
                        params[np++] = strndup(u, ulen);
                } else if (plen != ulen || strncmp(p, u, plen)) {
                        return false;
                }
                p += plen, u += ulen;
        }
        return !*p && !*u;
}

static void clear_params(char **params)
{
        for (size_t i = 0; i < MAX_PARAMS; i++) {
                free(params[i]);
                params[i] = NULL;
        }
}

/* Find the route; on a miss reply 404, or 405 with Allow.  A path that
 * is one route's literal pattern is not also a template's (as OpenAPI
 * matches): /v1/jobs/batch is no job id. */
static bool route(struct http_request *req)
{
        struct http_server *srv = req->srv;
        char allow[128] = "";
        bool literal = false;
        for (size_t i = 0; i < srv->nroutes && !literal; i++)
                literal = !strcmp(srv->routes[i].pattern, req->path);
        for (size_t i = 0; i < srv->nroutes; i++) {
                const struct http_route *r = &srv->routes[i];
                if (literal && strcmp(r->pattern, req->path))
                        continue;
                char *params[MAX_PARAMS] = { 0 };
                bool match = route_match(r->pattern, req->path, params);
                /* HEAD is GET without the body (libmicrohttpd leaves it
                 * out): load balancers' health checks send it. */
                bool same = !strcmp(r->method, req->method) ||
                            (!strcmp(req->method, "HEAD") && !strcmp(r->method, "GET"));
                if (match && same) {
                        memcpy(req->params, params, sizeof params);
                        req->route = r;
                        return true;
                }
                clear_params(params);
                if (match && !strstr(allow, r->method)) {
                        size_t n = strlen(allow);
                        snprintf(allow + n, sizeof allow - n, "%s%s%s", n ? ", " : "", r->method,
                                 strcmp(r->method, "GET") ? "" : ", HEAD");
                }
        }
        if (*allow) {
                http_add_header(req, "Allow", allow);
                _cleanup_free_ char *msg = xasprintf("%s is not allowed on %s (allowed: %s)",
                                                     req->method, req->path, allow);
                http_reply_error(req, 405, "method_not_allowed", msg, NULL);
        } else {
                _cleanup_free_ char *msg = xasprintf("no such resource: %s", req->path);
                http_reply_error(req, 404, "not_found", msg, NULL);
        }
        return false;
}

/* Is word one of list's space-separated words? */
static bool word_in(const char *list, const char *word)
{
        size_t n = strlen(word);
        for (const char *p = list; p && *p;) {
                size_t len = strcspn(p, " ");
                if (len == n && !strncmp(p, word, n))
                        return true;
                p += len;
                p += strspn(p, " ");
        }
        return false;
}

struct query_check {
        const char *allowed;
        const char *seen[HTTP_MAX_QUERY_PARAMS];
        size_t n;
        const char *bad;
        bool twice;
};

static enum MHD_Result check_query_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        (void)kind;
        (void)value;
        struct query_check *q = cls;
        if (!*key && !value)
                return MHD_YES;   /* "?&limit=5", "a=1&&b=2": an empty piece, as a trailing '&' is */
        if (!word_in(q->allowed, key)) {
                q->bad = key;
                return MHD_NO;
        }
        for (size_t i = 0; i < q->n; i++)
                if (!strcmp(q->seen[i], key)) {
                        q->bad = key;
                        q->twice = true;
                        return MHD_NO;
                }
        if (q->n < HTTP_MAX_QUERY_PARAMS)
                q->seen[q->n++] = key;
        return MHD_YES;
}

/* A query parameter the route does not read would be ignored (a typo,
 * ?limt=5, answered as if not asked), and of one given twice a proxy may
 * read the other copy: both are refused. */
static bool query_ok(struct http_request *req)
{
        struct query_check q = { .allowed = req->route->query };
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_key, &q);
        if (!q.bad)
                return true;
        _cleanup_free_ char *field = xasprintf("?%s", q.bad);
        _cleanup_free_ char *takes = NULL;
        if (q.twice)
                takes = xasprintf("the query parameter `%s` is given twice", q.bad);
        else if (req->route->query)
                takes = xasprintf("unknown query parameter `%s`: %s %s takes %s", q.bad, req->route->method,
                                  req->route->pattern, req->route->query);
        else
                takes = xasprintf("unknown query parameter `%s`: %s %s takes none", q.bad, req->route->method,
                                  req->route->pattern);
        http_reply_error(req, 400, "invalid_request", takes, field);
        return false;
}

static size_t spool_max(const struct http_server *srv)
{
        return __atomic_load_n(&srv->spool_max, __ATOMIC_RELAXED);
}

void http_set_spool_max(struct http_server *srv, size_t max)
{
        __atomic_store_n(&srv->spool_max, max, __ATOMIC_RELAXED);
}

static bool may_spool(const struct http_request *req)
{
        return req->route && req->route->spool && req->srv->o.spool_dir && spool_max(req->srv) > req->srv->o.max_body;
}

/* The most a body of req may be. */
static size_t body_limit(const struct http_request *req)
{
        return may_spool(req) ? spool_max(req->srv) : req->srv->o.max_body;
}

/* n more bytes of a body past max_body: to the spool file. */
static void spool_write(struct http_request *req, const char *data, size_t n)
{
        if (req->spool_failed)
                return;
        /* What all spooling requests hold on disk at once is bounded. */
        size_t add = req->spool_fd < 0 ? req->body_len + n : n;
        if (__atomic_add_fetch(&req->srv->spooled, add, __ATOMIC_RELAXED) > req->srv->o.spool_budget) {
                __atomic_sub_fetch(&req->srv->spooled, add, __ATOMIC_RELAXED);
                req->spool_failed = req->spool_busy = true;
                if (req->spool_fd >= 0)
                        close(req->spool_fd);
                req->spool_fd = -1;
                return;
        }
        req->spool_bytes += add;
        if (req->spool_fd < 0) {
                /* Unnamed: nothing is left behind, whatever happens. */
                req->spool_fd = open_unnamed(req->srv->o.spool_dir);
                if (req->spool_fd < 0 || !write_full(req->spool_fd, req->body ? req->body : "", req->body_len)) {
                        req->spool_failed = true;
                        req->spool_errno = errno;
                        if (req->spool_fd >= 0)
                                close(req->spool_fd);
                        req->spool_fd = -1;
                        return;
                }
                free(req->body);
                req->body = NULL;
                req->body_cap = 0;
        }
        if (!write_full(req->spool_fd, data, n)) {
                req->spool_failed = true;
                req->spool_errno = errno;
        }
        if (req->spool_failed && req->spool_fd >= 0) {
                /* Give the space back now, not when the client is done. */
                close(req->spool_fd);
                req->spool_fd = -1;
        }
}

/* The spooled body as a read-only mapping, for the handler. */
static bool spool_map(struct http_request *req)
{
        void *m = req->body_len ? mmap(NULL, req->body_len, PROT_READ, MAP_PRIVATE, req->spool_fd, 0) : NULL;
        if (req->body_len && m == MAP_FAILED) {
                req->spool_errno = errno;
                return false;
        }
        close(req->spool_fd);
        req->spool_fd = -1;
        req->body = m;
        req->spooled = true;
        return true;
}

static void reply_too_large(struct http_request *req)
{
        _cleanup_free_ char *msg = xasprintf("request body is larger than the limit of %zu bytes%s", body_limit(req),
                                             may_spool(req) ? " (input_ceiling_bytes and 64 KiB for the rest of "
                                                              "the submission)" : "");
        http_add_header(req, "Connection", "close");
        metrics_http_rejected("payload_too_large");
        http_reply_error(req, 413, "payload_too_large", msg, NULL);
}

static void dispatch(struct http_request *req)
{
        req->suspended = false;
        req->route->fn(req, req->srv->ctx);
        if (!req->replied && !req->suspended)
                http_reply_error(req, 500, "internal", "the handler gave no reply", NULL);
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
        (void)kind;
        *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
        return MHD_YES;
}

/* How the body is framed: libmicrohttpd takes the first of two
 * Content-Length headers, and one alongside Transfer-Encoding; a proxy in
 * front may take the other, and read the rest of this body as another
 * request (request smuggling).  Both are refused, as RFC 9112 allows. */
struct framing {
        const char *length;     /* the first Content-Length */
        bool lengths_differ;
        const char *coding;     /* the first Transfer-Encoding */
        int codings;            /* how many Transfer-Encoding headers */
        const char *spaced;     /* a name with whitespace in it ("Content-Length :") */
        const char *twice;      /* a header the API reads once, given twice */
        unsigned seen;          /* bit i: once[i] was given */
};

/* The headers the API reads one value of (libmicrohttpd's lookup takes
 * the first): a proxy in front may act on another copy. */
static const char *const once[] = { "Authorization", "Idempotency-Key", "Content-Type" };

static enum MHD_Result check_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        (void)kind;
        struct framing *f = cls;
        if (!value)
                value = "";
        /* libmicrohttpd keeps "Content-Length :" as a header of another
         * name and frames the body without it; a proxy may trim it and
         * frame by it.  RFC 9112 5.1: a server MUST refuse it with 400. */
        if (!f->spaced && strpbrk(key, " \t"))
                f->spaced = key;
        if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
                if (!f->length)
                        f->length = value;
                else if (strcmp(f->length, value))
                        f->lengths_differ = true;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
                if (!f->codings++)
                        f->coding = value;
        }
        for (size_t i = 0; i < sizeof once / sizeof *once; i++) {
                if (strcasecmp(key, once[i]))
                        continue;
                if (f->seen & (1u << i) && !f->twice)
                        f->twice = once[i];
                f->seen |= 1u << i;
        }
        return MHD_YES;
}

/* Why the request's headers cannot be taken as they are, with the header
 * to name; NULL when they can. */
static const char *framing_problem(const struct framing *f, const char **ret_field, char *buf, size_t size)
{
        *ret_field = NULL;
        if (f->spaced)
                return "a header name has whitespace in it";
        if (f->lengths_differ) {
                *ret_field = "Content-Length";
                return "Content-Length is given twice, with different values";
        }
        if (f->codings) {
                *ret_field = "Transfer-Encoding";
                if (f->length)
                        return "both Content-Length and Transfer-Encoding are given";
                /* libmicrohttpd frames a body by `chunked` alone, in
                 * any case; any other value (gzip; "gzip, chunked";
                 * "chunked " with a space it keeps) it reads "until the
                 * client closes", holding the connection unanswered. */
                if (f->codings > 1 || strcasecmp(f->coding, "chunked")) {
                        snprintf(buf, size, "Transfer-Encoding `%.64s`%s is not supported: a body is sent "
                                 "with Content-Length or as `chunked` alone", f->coding,
                                 f->codings > 1 ? " (and more)" : "");
                        return buf;
                }
        }
        if (f->twice) {
                *ret_field = f->twice;
                snprintf(buf, size, "%s is given twice", f->twice);
                return buf;
        }
        return NULL;
}

static char query_cut;   /* con_cls of a request whose query was cut */
static char uri_nul;     /* con_cls of a request whose target has a %00 */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        (void)cls, (void)conn;
        if (strstr(uri, "%00"))
                return &uri_nul;
        const char *q = strchr(uri, '?');
        if (!q)
                return NULL;
        size_t n = 1;
        for (const char *p = q + 1; *p; p++)
                n += *p == '&';
        if (n <= HTTP_MAX_QUERY_PARAMS)
                return NULL;
        /* uri is in the connection's read buffer, where libmicrohttpd
         * parses the parameters from once this returns. */
        ((char *)(uintptr_t)q)[1] = '\0';
        return &query_cut;
}

/* The first call of a request: its line and headers, before any body.
 * Whatever is refused here is answered here. */
static void on_head(struct http_server *srv, struct http_request *req, bool cut, bool bad_uri)
{
        size_t head = strlen(req->method) + strlen(req->path) + 16;
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_header_size, &head);
        if (cut) {
                metrics_http_rejected("header_too_large");
                http_add_header(req, "Connection", "close");
                _cleanup_free_ char *msg = xasprintf("the query string has more than %d parameters",
                                                     HTTP_MAX_QUERY_PARAMS);
                http_reply_error(req, 431, "header_too_large", msg, NULL);
                return;
        }
        if (head > srv->o.max_header_bytes) {
                _cleanup_free_ char *msg = xasprintf("the request line and headers are %zu bytes, over the "
                                                     "limit of %zu", head, srv->o.max_header_bytes);
                metrics_http_rejected("header_too_large");
                http_add_header(req, "Connection", "close");
                http_reply_error(req, 431, "header_too_large", msg, NULL);
                return;
        }
        if (bad_uri) {
                /* libmicrohttpd decodes the path in place: a %00
                 * cut it, and "/v1/jobs/ID%00/logs" was routed
                 * as /v1/jobs/ID (a proxy saw the whole). */
                http_add_header(req, "Connection", "close");
                http_reply_error(req, 400, "invalid_request",
                                 "the request target has an encoded NUL byte (%00) in it", NULL);
                return;
        }
        struct framing f = { 0 };
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND, check_framing, &f);
        char why[256];
        const char *field;
        const char *problem = framing_problem(&f, &field, why, sizeof why);
        if (problem) {
                metrics_http_rejected("bad_framing");
                http_add_header(req, "Connection", "close");
                http_reply_error(req, 400, "invalid_request", problem, field);
                return;
        }
        int64_t len = 0;
        bool has_len = f.length && parse_int64(f.length, 0, INT64_MAX, &len);
        /* libmicrohttpd takes digits alone, up to 2^64 - 1: one it took
         * that is past INT64_MAX is past any limit. */
        bool huge = f.length && !has_len && f.length[0] && !f.length[strspn(f.length, "0123456789")];
        /* With `Expect: 100-continue` libmicrohttpd would send 100 before a
         * held answer: that one goes at once, as before. */
        req->bodyless = !f.codings && (!f.length || (has_len && len == 0)) &&
                        !MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (!route(req))
                return;
        /* Who may: before a byte of the body is read. */
        if (srv->authorize && !srv->authorize(req, req->route, srv->ctx)) {
                if (!req->replied)
                        http_reply_error(req, 500, "internal", "the authorizer gave no reply", NULL);
                return;
        }
        if (!query_ok(req))
                return;
        if (huge || (has_len && (uint64_t)len > body_limit(req)))
                reply_too_large(req);   /* before reading a byte of it */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        (void)version;
        struct http_server *srv = cls;
        bool cut = *con_cls == &query_cut, bad_uri = *con_cls == &uri_nul;
        struct http_request *req = cut || bad_uri ? NULL : *con_cls;

        if (!req) {
                req = xcalloc(1, sizeof *req);
                req->srv = srv;
                req->conn = conn;
                req->method = xstrdup(method);
                req->path = xstrdup(url);
                req->spool_fd = -1;
                req->started_us = now_mono_us();
                *con_cls = req;
                req->in_head = true;
                on_head(srv, req, cut, bad_uri);
                req->in_head = false;
                return MHD_YES;
        }
        if (req->replied) {
                if (req->pending) {
                        enum MHD_Result queued = MHD_queue_response(conn, req->pending_status, req->pending);
                        MHD_destroy_response(req->pending);
                        req->pending = NULL;
                        if (queued != MHD_YES)
                                return MHD_NO;   /* closed, rather than left unanswered */
                }
                /* Replied early (404, 405, 413): drop whatever body follows. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (req->too_large || req->body_len + n > body_limit(req)) {
                        req->too_large = true;
                        req->swallowed += n;
                        return req->swallowed > SWALLOW_FACTOR * srv->o.max_body ? MHD_NO : MHD_YES;
                }
                if (req->spool_fd >= 0 || req->spool_failed || req->body_len + n > srv->o.max_body) {
                        spool_write(req, upload_data, n);
                        req->body_len += n;
                        return MHD_YES;
                }
                if (req->body_len + n + 1 > req->body_cap) {
                        size_t cap = req->body_cap ? req->body_cap : 4096;
                        while (cap < req->body_len + n + 1)
                                cap *= 2;
                        if (cap > srv->o.max_body + 1)
                                cap = srv->o.max_body + 1;
                        req->body = xrealloc(req->body, cap);
                        req->body_cap = cap;
                }
                memcpy(req->body + req->body_len, upload_data, n);
                req->body_len += n;
                req->body[req->body_len] = '\0';
                return MHD_YES;
        }
        if (req->too_large) {
                reply_too_large(req);
                return MHD_YES;
        }
        if (req->spool_busy) {
                http_add_header(req, "Retry-After", "1");
                http_add_header(req, "Connection", "close");
                http_reply_error(req, 503, "busy", "too many large submissions are being received at once; retry",
                                 NULL);
                return MHD_YES;
        }
        if ((req->spool_fd >= 0 || req->spool_failed) && (req->spool_failed || !spool_map(req))) {
                /* The disk, not the client: 507, and nothing kept. */
                log_warn("%s %s: the request body (%zu bytes) could not be spooled to %s: %s", req->method, req->path,
                         req->body_len, srv->o.spool_dir, strerror(req->spool_errno));
                _cleanup_free_ char *msg = xasprintf("the request body (%zu bytes) could not be stored: %s",
                                                     req->body_len, strerror(req->spool_errno));
                http_add_header(req, "Connection", "close");
                http_reply_error(req, 507, "insufficient_storage", msg, NULL);
                return MHD_YES;
        }
        dispatch(req);
        return MHD_YES;
}

/* ---- out of descriptors ---- */

#define SHED_MAX 64              /* connections refused in one go */
#define SHED_LOG_MS 10000        /* one warning per this long */

/* What a refused client is told, after what accept() met. */
static const char *shed_reason(int errnum)
{
        switch (errnum) {
        case EMFILE:
                return "the server is out of file descriptors (RLIMIT_NOFILE)";
        case ENFILE:
                return "the server's host is out of file descriptors";
        default:
                return "the server is out of memory for connections";
        }
}

/* Answer a connection we cannot serve and close it; what the client sent
 * is read first, so the close does not reset the answer away. */
/* Read what a client has sent, a bounded amount: one that goes on
 * sending must not hold the shed (and its lock). */
static void drain(int fd)
{
        char buf[4096];
        for (int i = 0; i < 16 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
                ;
}

static void refuse(int fd, const char *reason)
{
        drain(fd);
        char body[256];
        int blen = snprintf(body, sizeof body, "{\"error\":{\"code\":\"busy\",\"message\":\"%s; try again later\"}}\n",
                            reason);
        char reply[512];
        int len = snprintf(reply, sizeof reply,
                           "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           "Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                           blen, body);
        if (send(fd, reply, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* the client is gone: nothing to tell */
        }
        shutdown(fd, SHUT_WR);
        drain(fd);
        close(fd);
}

static void spares_close(struct http_server *srv)
{
        for (size_t i = 0; i < SPARE_FDS; i++)
                if (srv->spare_fds[i] >= 0) {
                        close(srv->spare_fds[i]);
                        srv->spare_fds[i] = -1;
                }
}

/* How many spares there are now (those lost to another thread's open
 * come back at a later shed). */
static size_t spares_open(struct http_server *srv)
{
        size_t n = 0;
        for (size_t i = 0; i < SPARE_FDS; i++) {
                if (srv->spare_fds[i] < 0)
                        srv->spare_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                n += srv->spare_fds[i] >= 0;
        }
        __atomic_store_n(&srv->spares_missing, n < SPARE_FDS, __ATOMIC_RELAXED);
        return n;
}

/* A spare lost to another open (between a shed's close and its accept)
 * came back only at a later shed, which runs when no descriptor is free:
 * taken again when a new connection shows there are some. */
static void spares_top_up(struct http_server *srv)
{
        if (!__atomic_load_n(&srv->spares_missing, __ATOMIC_RELAXED) || pthread_mutex_trylock(&srv->spare_lock))
                return;
        spares_open(srv);
        pthread_mutex_unlock(&srv->spare_lock);
}

/* libmicrohttpd 0.9.75 leaves a connection it cannot accept (EMFILE,
 * ENFILE, ENOMEM, ENOBUFS) in the backlog: a polling thread with no
 * connections of its own then retries at once, forever (100% CPU, a
 * warning each time), and the client waits for an answer that never
 * comes.  Here the spare descriptors make room to take each waiting
 * connection and answer it 503 `busy`, so the backlog empties and the
 * thread sleeps in poll() again.  errnum is what accept() met, told in
 * one warning per SHED_LOG_MS with how often since.  false: none could be
 * taken (the spare is gone too, or memory is short still). */
static bool shed_connections(struct http_server *srv, int errnum)
{
        pthread_mutex_lock(&srv->spare_lock);
        spares_close(srv);
        size_t n = 0;
        int fd;
        while (n < SHED_MAX && (fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
                refuse(fd, shed_reason(errnum));
                n++;
        }
        size_t spares = spares_open(srv);
        srv->shed_unlogged += n;
        srv->shed_failures++;
        int64_t now = now_mono_ms();
        if (!srv->shed_logged_at || now - srv->shed_logged_at >= SHED_LOG_MS) {
                log_warn("http: cannot accept connections: %s (%zu time(s)); %zu new connection(s) answered 503 busy "
                         "since the last warning%s",
                         strerror(errnum), srv->shed_failures, srv->shed_unlogged,
                         spares == 0 ? " (no spare descriptor either)" : "");
                srv->shed_logged_at = now;
                srv->shed_unlogged = 0;
                srv->shed_failures = 0;
        }
        pthread_mutex_unlock(&srv->spare_lock);
        return n > 0;
}

/* The accept() failures libmicrohttpd gives up a connection for (its
 * MHD_SCKT_ERR_IS_LOW_RESOURCES_). */
static const int accept_shortages[] = { EMFILE, ENFILE, ENOMEM, ENOBUFS };

static bool is_accept_shortage(int errnum)
{
        for (size_t i = 0; i < ARRAY_SIZE(accept_shortages); i++)
                if (errnum == accept_shortages[i])
                        return true;
        return false;
}

/* One of them by the words libmicrohttpd logs it with; 0 for any other. */
static int accept_shortage(const char *what)
{
        for (size_t i = 0; i < ARRAY_SIZE(accept_shortages); i++)
                if (!strcmp(what, strerror(accept_shortages[i])))
                        return accept_shortages[i];
        return 0;
}

/* A libmicrohttpd 0.9.75 thread whose accept() runs short (EMFILE,
 * ENFILE, ENOMEM, ENOBUFS) while it holds connections stops polling the
 * listening socket until one of its own connections closes ("temporarily
 * suspending accept()").  Once every
 * thread holds one, no thread takes a new connection, not even to refuse
 * it: the client waits in the backlog for as long as it stays.  While any
 * thread is so suspended, stand_in() takes new connections in its stead:
 * served by libmicrohttpd (MHD_add_connection) when a descriptor is free,
 * answered 503 by shed_connections() when none is. */
static void limit_mark(struct http_server *srv)
{
        pthread_t self = pthread_self();
        pthread_mutex_lock(&srv->limit_lock);
        size_t i = 0;
        while (i < srv->nlimited && !pthread_equal(srv->limited[i], self))
                i++;
        if (i == srv->nlimited && i < LIMITED_MAX)
                srv->limited[srv->nlimited++] = self;
        __atomic_store_n(&srv->any_limited, true, __ATOMIC_RELEASE);
        pthread_cond_signal(&srv->limit_cond);
        pthread_mutex_unlock(&srv->limit_lock);
}

/* A connection of this thread closed: libmicrohttpd has cleared its limit
 * just before telling us. */
static void limit_clear(struct http_server *srv)
{
        if (!__atomic_load_n(&srv->any_limited, __ATOMIC_ACQUIRE))
                return;
        pthread_t self = pthread_self();
        pthread_mutex_lock(&srv->limit_lock);
        for (size_t i = 0; i < srv->nlimited; i++)
                if (pthread_equal(srv->limited[i], self)) {
                        srv->limited[i] = srv->limited[--srv->nlimited];
                        break;
                }
        if (!srv->nlimited)
                __atomic_store_n(&srv->any_limited, false, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&srv->limit_lock);
}

static void stand_in_accept(struct http_server *srv)
{
        /* At max_connections libmicrohttpd's threads stop accepting too,
         * and the client waits for a place: MHD_add_connection would close
         * it unanswered. */
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (di && di->num_connections >= srv->o.max_connections) {
                usleep(100 * 1000);
                return;
        }
        struct pollfd p = { .fd = srv->listen_fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
                return;
        /* Draining: no new connection, as libmicrohttpd takes none now. */
        pthread_mutex_lock(&srv->limit_lock);
        bool quiesced = srv->quiesced || srv->stopping;
        pthread_mutex_unlock(&srv->limit_lock);
        if (quiesced)
                return;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        /* Not between a shed's close of the spare descriptors and its
         * accept: taking one here would leave the shed fewer to answer
         * with, and fewer spares after it. */
        pthread_mutex_lock(&srv->spare_lock);
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int accept_errno = errno;
        pthread_mutex_unlock(&srv->spare_lock);
        errno = accept_errno;
        if (fd >= 0) {
                /* It closes the socket itself when it cannot take it. */
                if (MHD_add_connection(srv->mhd, fd, (struct sockaddr *)&ss, len) != MHD_YES)
                        log_debug("http: a connection taken for a thread at the descriptor limit was refused: %s",
                                  strerror(errno));
        } else if (is_accept_shortage(errno)) {
                if (!shed_connections(srv, errno))
                        usleep(50 * 1000);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                usleep(50 * 1000);   /* not at once again */
        }
}

static void *stand_in(void *arg)
{
        struct http_server *srv = arg;
        pthread_mutex_lock(&srv->limit_lock);
        for (;;) {
                while (!srv->stopping && (!srv->nlimited || srv->quiesced))
                        pthread_cond_wait(&srv->limit_cond, &srv->limit_lock);
                if (srv->stopping)
                        break;
                pthread_mutex_unlock(&srv->limit_lock);
                stand_in_accept(srv);
                pthread_mutex_lock(&srv->limit_lock);
        }
        pthread_mutex_unlock(&srv->limit_lock);
        return NULL;
}

/* libmicrohttpd's own complaints (a request it gave up on, a socket error)
 * have no caller to return to: send them through our log so they get a
 * timestamp and a journal priority like everything else. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        /* "Error accepting connection: Too many open files" comes first,
         * "Hit process or system resource limit ..." right after it, on
         * the same thread: the first's errno is told with the second. */
        static _Thread_local int accept_errno;
        struct http_server *srv = cls;
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        int e;
        if (!strncmp(msg, "Error accepting connection: ", 28) && (e = accept_shortage(msg + 28))) {
                accept_errno = e;
                return;
        }
        /* A unix socket connection handed over by stand_in() is taken for
         * TCP: its TCP_NODELAY/TCP_CORK fail, harmless, on every send. */
        if (!strncmp(msg, "Setting TCP_", 12) && strstr(msg, strerror(EOPNOTSUPP)))
                return;
        if (!strncmp(msg, "Hit process or system resource limit", 36)) {
                e = accept_errno ? accept_errno : EMFILE;
                accept_errno = 0;
                bool shed = shed_connections(srv, e);
                /* "at N connections": this thread accepts no more until one
                 * of them closes ("at FIRST connection": it retries).  Told
                 * after the shed, which the stand-in would race for the
                 * spare descriptor. */
                if (!strstr(msg, "at FIRST connection"))
                        limit_mark(srv);
                /* Nothing taken: pause this thread rather than spin. */
                else if (!shed)
                        usleep(50 * 1000);
                return;
        }
        log_warn("http: %s", msg);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        (void)cls, (void)conn, (void)toe;
        /* A marker of on_uri()'s stays when the handler never ran (the
         * client gone before its headers ended, libmicrohttpd's own 400
         * or 431): not a request of ours to free. */
        if (*con_cls != &query_cut && *con_cls != &uri_nul)
                request_free(*con_cls);
        *con_cls = NULL;
}

/* ---- per-client connection limit ---- */

/* The peer's address as a key; false for what is not counted (unix). */
static bool client_key(const struct sockaddr *sa, int *family, unsigned char addr[16])
{
        memset(addr, 0, 16);
        if (sa && sa->sa_family == AF_INET) {
                memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        } else if (sa && sa->sa_family == AF_INET6) {
                memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        } else {
                return false;
        }
        *family = sa->sa_family;
        return true;
}

/* Under clients_lock: the peer's entry, made when `make`. */
static struct client *client_find(struct http_server *srv, int family, const unsigned char addr[16], bool make)
{
        for (size_t i = 0; i < srv->nclients; i++)
                if (srv->clients[i].family == family && !memcmp(srv->clients[i].addr, addr, 16))
                        return &srv->clients[i];
        if (!make)
                return NULL;
        if (srv->nclients == srv->capclients) {
                srv->capclients = srv->capclients ? srv->capclients * 2 : 16;
                srv->clients = xrealloc(srv->clients, srv->capclients * sizeof *srv->clients);
        }
        struct client *c = &srv->clients[srv->nclients++];
        *c = (struct client){ .family = family };
        memcpy(c->addr, addr, 16);
        return c;
}

static void client_drop_if_idle(struct http_server *srv, struct client *c)
{
        if (!c->started && !c->reserved)
                *c = srv->clients[--srv->nclients];
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
        (void)len;
        struct http_server *srv = cls;
        int family;
        unsigned char addr[16];
        if (!client_key(sa, &family, addr))
                return MHD_YES;
        pthread_mutex_lock(&srv->clients_lock);
        struct client *c = client_find(srv, family, addr, true);
        int64_t now = now_mono_ms();
        if (c->reserved && now - c->reserved_at > RESERVE_STALE_MS)
                c->reserved = 0;
        bool ok = c->started + c->reserved < srv->o.max_connections_per_client;
        if (ok) {
                c->reserved++;
                c->reserved_at = now;
        }
        client_drop_if_idle(srv, c);
        pthread_mutex_unlock(&srv->clients_lock);
        return ok ? MHD_YES : MHD_NO;
}

/* A started connection's socket context: its peer, once counted. */
struct counted {
        int family;
        unsigned char addr[16];
};

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
        struct http_server *srv = cls;
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
                limit_clear(srv);
        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                spares_top_up(srv);
                /* A reply counts against max_response_bytes only until the
                 * kernel has taken it, so the kernel must not take much:
                 * left to autotuning, each slow reader's send buffer grew
                 * to a few MiB (tcp_wmem), hundreds of MiB in all. */
                const union MHD_ConnectionInfo *fi =
                        srv->sndbuf_inherited ? NULL : MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                if (fi && setsockopt(fi->connect_fd, SOL_SOCKET, SO_SNDBUF, &srv->sndbuf, sizeof srv->sndbuf) < 0)
                        log_debug("http: SO_SNDBUF %d: %s", srv->sndbuf, strerror(errno));
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                struct counted k;
                if (!ci || !client_key(ci->client_addr, &k.family, k.addr))
                        return;
                pthread_mutex_lock(&srv->clients_lock);
                struct client *c = client_find(srv, k.family, k.addr, true);
                if (c->reserved)
                        c->reserved--;
                c->started++;
                pthread_mutex_unlock(&srv->clients_lock);
                struct counted *p = xmalloc(sizeof *p);
                *p = k;
                *socket_context = p;
        } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
                struct counted *k = *socket_context;
                pthread_mutex_lock(&srv->clients_lock);
                struct client *c = client_find(srv, k->family, k->addr, false);
                if (c) {
                        if (c->started)
                                c->started--;
                        client_drop_if_idle(srv, c);
                }
                pthread_mutex_unlock(&srv->clients_lock);
                free(k);
                *socket_context = NULL;
        }
}

/* Each connection's share of max_response_bytes, 64 KiB at least (about
 * a millisecond of a gigabit link), 4 MiB at most (what autotuning would
 * reach): what all the send buffers hold is then about twice the cap (the
 * kernel doubles the figure for its own bookkeeping). */
static int conn_sndbuf(const struct http_options *o)
{
        size_t n = o->max_connections ? o->max_response_bytes / o->max_connections : 0;
        return n < SMALL_REPLY ? SMALL_REPLY : n > (4 << 20) ? 4 << 20 : (int)n;
}

/* One polling thread per core (2 to 8): reads and submits of many clients
 * go on in parallel.  Never more than connections: libmicrohttpd gives each
 * thread its share of http.max_connections. */
static unsigned http_threads(size_t max_connections)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned t = n < 2 ? 2 : n > 8 ? 8 : (unsigned)n;
        return max_connections < t ? (unsigned)max_connections : t;
}

int http_bind(const struct http_options *o, struct http_server **ret, struct err *err)
{
        struct http_server *srv = xcalloc(1, sizeof *srv);
        srv->listen_fd = srv->mhd_fd = -1;
        for (size_t i = 0; i < SPARE_FDS; i++)
                srv->spare_fds[i] = -1;
        srv->o = *o;
        srv->spool_max = o->spool_max;
        srv->sndbuf = conn_sndbuf(o);
        int rc;
        if (o->listen_fd >= 0) {
                srv->listen_fd = o->listen_fd;
                snprintf(srv->address, sizeof srv->address, "socket-activated fd %d", o->listen_fd);
                rc = 0;
        } else if (!strncmp(o->listen, "unix:", 5)) {
                rc = listen_unix(srv, o->listen + 5, err);
                srv->own_fd = true;
        } else {
                rc = listen_tcp(srv, o->listen, err);
                srv->own_fd = true;
        }
        if (rc < 0) {
                free(srv);
                return -1;
        }
        *ret = srv;
        return 0;
}

int http_serve(struct http_server *srv, const struct http_route *routes, size_t nroutes,
               http_authorizer authorize, void *ctx, struct err *err)
{
        const struct http_options *o = &srv->o;
        /* A TCP connection is born with its listening socket's send
         * buffer (a unix one is not): set once there, a system call less
         * for each connection.  Not on a passed socket: connections made
         * before we set it would keep the kernel's own. */
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        srv->sndbuf_inherited = srv->own_fd && getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sslen) == 0 &&
                                (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
                                setsockopt(srv->listen_fd, SOL_SOCKET, SO_SNDBUF, &srv->sndbuf, sizeof srv->sndbuf) == 0;
        /* Connections are refused until now, not left waiting while the
         * daemon starts (a client that gave up would still have its
         * request carried out).  A passed socket listens already. */
        if (srv->own_fd && listen(srv->listen_fd, 128) < 0)
                return err_errno(err, ERR_IO, "listen on `%s`", srv->address);
        srv->routes = routes;
        srv->nroutes = nroutes;
        srv->authorize = authorize;
        srv->ctx = ctx;
        /* The pool holds the request line and headers (in the read buffer,
         * half the pool at first): room for our own 431 check to see them
         * whole (past the pool libmicrohttpd answers 431 itself, in HTML).
         * No bigger: libmicrohttpd zeroes the whole pool for every request
         * on a kept-alive connection.  At most 32 KiB it is malloc'd, over
         * that mmap'd and unmapped per connection, which cost 0.5 ms of CPU
         * for each fresh connection here (page faults, TLB shootdowns). */
        size_t pool = o->max_header_bytes * 2 + 16 * 1024;
        if (o->max_header_bytes <= HTTP_POOL_MALLOC_MAX / 2)
                pool = HTTP_POOL_MALLOC_MAX;
        /* poll(2), not epoll: libmicrohttpd 0.9.75 with epoll leaves a connection
         * it gave up on (request header over its memory pool) hanging until the
         * connection timeout; with poll it is closed at once. */
        pthread_mutex_init(&srv->clients_lock, NULL);
        pthread_mutex_init(&srv->spare_lock, NULL);
        pthread_mutex_init(&srv->limit_lock, NULL);
        pthread_cond_init(&srv->limit_cond, NULL);
        srv->locks_made = true;
        spares_open(srv);
        /* shed_connections() must never block in accept() (ours are). */
        int fl = fcntl(srv->listen_fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK))
                fcntl(srv->listen_fd, F_SETFL, fl | O_NONBLOCK);
        /* libmicrohttpd gets a duplicate of its own: on most of its
         * start-up failure paths (0.9.75) it closes the socket it was given,
         * on some not, and a number closed twice may by then be another
         * thread's file.  Its duplicate is left to it when it fails (one
         * descriptor perhaps left open as the daemon gives up), and given
         * back by MHD_quiesce_daemon() otherwise. */
        srv->mhd_fd = fcntl(srv->listen_fd, F_DUPFD_CLOEXEC, 3);
        if (srv->mhd_fd < 0)
                return err_errno(err, ERR_IO, "cannot start the HTTP server on `%s`: dup", srv->address);
        srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                                    0, on_accept, srv, on_request, srv,
                                    /* first, or some messages miss it */
                                    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                                    MHD_OPTION_LISTEN_SOCKET, srv->mhd_fd,
                                    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                    MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
                                    MHD_OPTION_CONNECTION_TIMEOUT, o->connection_timeout_seconds,
                                    MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                                    /* One client (a slowloris) cannot take every
                                     * connection; unix sockets are not counted. */
                                    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                                    MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
                                    MHD_OPTION_THREAD_POOL_SIZE, http_threads(o->max_connections),
                                    MHD_OPTION_END);
        if (!srv->mhd) {
                srv->mhd_fd = -1;   /* closed by it, or not: never by us */
                return err_set(err, ERR_IO, 0, "cannot start the HTTP server on `%s`", srv->address);
        }
        int e = thread_start(&srv->stand_in, "edgecd-accept", stand_in, srv);
        if (e)
                return err_set(err, ERR_IO, e, "cannot start the HTTP server's accepting thread");
        srv->stand_in_started = true;
        return 0;
}

bool http_is_local(const struct http_server *srv)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &len) < 0)
                return false;
        if (ss.ss_family == AF_UNIX)
                return true;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
                if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return true;
                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
                        return in6->sin6_addr.s6_addr[12] == 127;
        }
        return false;
}

const char *http_address(const struct http_server *srv)
{
        return srv->address;
}

/* libmicrohttpd stops listening and gives its socket back to us; when it
 * cannot (a mode without its inter-thread channel), MHD_stop_daemon()
 * closes it itself, and so must we not. */
static void quiesce_mhd(struct http_server *srv)
{
        if (MHD_quiesce_daemon(srv->mhd) == MHD_INVALID_SOCKET)
                srv->mhd_fd = -1;
}

void http_quiesce(struct http_server *srv)
{
        if (!srv || !srv->mhd)
                return;
        pthread_mutex_lock(&srv->limit_lock);
        bool again = srv->quiesced;
        srv->quiesced = true;
        pthread_mutex_unlock(&srv->limit_lock);
        if (!again)   /* a second quiesce fails, and would drop the socket given back */
                quiesce_mhd(srv);
}

void http_stop(struct http_server *srv)
{
        if (!srv)
                return;
        if (srv->stand_in_started) {
                pthread_mutex_lock(&srv->limit_lock);
                srv->stopping = true;
                pthread_cond_signal(&srv->limit_cond);
                pthread_mutex_unlock(&srv->limit_lock);
                pthread_join(srv->stand_in, NULL);
        }
        if (srv->mhd) {
                if (!srv->quiesced)
                        quiesce_mhd(srv);
                MHD_stop_daemon(srv->mhd);
        }
        if (srv->mhd_fd >= 0)
                close(srv->mhd_fd);
        if (srv->listen_fd >= 0 && srv->own_fd)
                close(srv->listen_fd);
        if (srv->unix_path) {
                unlink(srv->unix_path);
                free(srv->unix_path);
        }
        if (srv->locks_made) {
                pthread_mutex_destroy(&srv->clients_lock);
                pthread_mutex_destroy(&srv->spare_lock);
                pthread_mutex_destroy(&srv->limit_lock);
                pthread_cond_destroy(&srv->limit_cond);
        }
        spares_close(srv);
        free(srv->clients);
        free(srv);
}

/* ---- inside a handler ---- */

const char *http_method(const struct http_request *req) { return req->method; }
const char *http_path(const struct http_request *req) { return req->path; }

const char *http_param(const struct http_request *req, size_t i)
{
        return i < MAX_PARAMS ? req->params[i] : NULL;
}

const char *http_query(struct http_request *req, const char *key)
{
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_request *req, const char *name)
{
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_body(const struct http_request *req, size_t *ret_len)
{
        if (ret_len)
                *ret_len = req->body ? req->body_len : 0;
        return req->body ? req->body : "";
}

bool http_body_spooled(const struct http_request *req)
{
        return req->spooled;
}

void *http_body_take(struct http_request *req, size_t *ret_len)
{
        void *m = req->spooled ? req->body : NULL;
        *ret_len = m ? req->body_len : 0;
        if (m) {
                /* Its share of the spool budget goes with it. */
                size_t counted = req->body_len < req->spool_bytes ? req->body_len : req->spool_bytes;
                req->spool_bytes -= counted;
                req->body = NULL;
                req->body_len = 0;
        }
        return m;
}

void http_body_drop(struct http_server *srv, void *map, size_t len)
{
        if (!map)
                return;
        munmap(map, len);
        __atomic_sub_fetch(&srv->spooled, len, __ATOMIC_RELAXED);
}

void http_set_user(struct http_request *req, const char *name)
{
        free(req->user);
        req->user = xstrdup(name);
}

const char *http_user(const struct http_request *req) { return req->user; }

int64_t http_started_us(const struct http_request *req) { return req->started_us; }

void *http_state(const struct http_request *req) { return req->state; }

void http_set_state(struct http_request *req, void *state, void (*free_fn)(void *))
{
        req->state = state;
        req->state_free = free_fn;
}

void http_must_answer(struct http_request *req)
{
        req->must_answer = true;
}

void http_add_header(struct http_request *req, const char *name, const char *value)
{
        struct header *h = xmalloc(sizeof *h);
        h->name = xstrdup(name);
        h->value = xstrdup(value);
        h->next = req->headers;
        req->headers = h;
}

struct held {
        struct http_server *srv;
        char *data;
        size_t len;
};

/* libmicrohttpd is done with a reply's body. */
static void release_reply(void *cls)
{
        struct held *h = cls;
        __atomic_sub_fetch(&h->srv->inflight, h->len, __ATOMIC_RELAXED);
        free(h->data);
        free(h);
}

/* Slow readers holding many large replies would hold the daemon's
 * memory: one past the cap is refused until they drain. */
static void refuse_large(struct http_request *req)
{
        metrics_http_rejected("replies_in_flight");
        /* An answer that names what the request made (a submit's job, its
         * Location) is not refused: a retry would make it again.  The
         * client is sent to it instead. */
        for (struct header *h = req->headers; h; h = h->next)
                if (!strcasecmp(h->name, "Location")) {
                        http_reply_error(req, 303, "see_other", "done, but the answer is too large to "
                                         "send while other large ones are: GET the Location", NULL);
                        return;
                }
        http_add_header(req, "Retry-After", "1");
        http_reply_error(req, 503, "busy", "too many large replies are still being sent; retry", NULL);
}

bool http_reserve_large(struct http_request *req, size_t len)
{
        struct http_server *srv = req->srv;
        size_t total = req->reserved + len;
        /* Small answers always go, uncounted (as in reply()). */
        if (total <= SMALL_REPLY) {
                req->reserved = total;
                return true;
        }
        size_t add = total - req->counted;
        size_t was = __atomic_fetch_add(&srv->inflight, add, __ATOMIC_RELAXED);
        /* As reply() decides, with the answers being built counted: one
         * larger than the cap goes when nothing else is held or built (its
         * own first reservation), a further part of it must fit. */
        if (was > 0 && was + add > srv->o.max_response_bytes && !req->must_answer) {
                __atomic_sub_fetch(&srv->inflight, add, __ATOMIC_RELAXED);
                return false;
        }
        req->reserved = total;
        req->counted = total;
        return true;
}

bool http_refuse_large(struct http_request *req, size_t len, const char *location)
{
        if (http_reserve_large(req, len))
                return false;
        if (location)
                http_add_header(req, "Location", location);
        refuse_large(req);
        return true;
}

static void reply(struct http_request *req, unsigned status, const char *content_type, char *data, size_t len)
{
        struct http_server *srv = req->srv;
        size_t counted = req->counted;
        req->reserved = req->counted = 0;
        if (counted) {
                /* Reserved before it was built (http_reserve_large()): it
                 * goes, held as what it came to. */
                if (len <= SMALL_REPLY)
                        __atomic_sub_fetch(&srv->inflight, counted, __ATOMIC_RELAXED);
                else if (len > counted)
                        __atomic_add_fetch(&srv->inflight, len - counted, __ATOMIC_RELAXED);
                else if (len < counted)
                        __atomic_sub_fetch(&srv->inflight, counted - len, __ATOMIC_RELAXED);
        } else if (len > SMALL_REPLY) {
                /* One reply larger than the cap goes when it is alone (a
                 * result up to result_ceiling_bytes must be readable at
                 * all). */
                size_t was = __atomic_fetch_add(&srv->inflight, len, __ATOMIC_RELAXED);
                if (was + len > srv->o.max_response_bytes && was > 0 && !req->must_answer) {
                        __atomic_sub_fetch(&srv->inflight, len, __ATOMIC_RELAXED);
                        free(data);
                        refuse_large(req);
                        return;
                }
        }
        struct MHD_Response *resp;
        if (len > SMALL_REPLY) {
                struct held *h = xmalloc(sizeof *h);
                *h = (struct held){ .srv = srv, .data = data, .len = len };
                resp = MHD_create_response_from_buffer_with_free_callback_cls(len, data, release_reply, h);
                if (!resp)
                        release_reply(h);
        } else {
                resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        free(data);
        }
        if (!resp)
                return;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        for (struct header *h = req->headers; h; h = h->next)
                MHD_add_response_header(resp, h->name, h->value);
        if (req->in_head && req->bodyless) {
                if (req->pending) {
                        MHD_destroy_response(resp);   /* the first answer stands, as MHD would have it */
                        return;
                }
                req->pending = resp;
                req->pending_status = status;
        } else {
                MHD_queue_response(req->conn, status, resp);
                MHD_destroy_response(resp);
        }
        req->replied = true;
        metrics_http_request(req->route ? req->route->pattern : NULL, req->method, status);
}

void http_reply_json(struct http_request *req, unsigned status, json_t *body)
{
        char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        json_decref(body);
        if (!text)
                text = xstrdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the reply\"}}");
        size_t len = strlen(text);
        text = xrealloc(text, len + 2);
        text[len++] = '\n';
        reply(req, status, "application/json", text, len);
}

void http_reply_json_text(struct http_request *req, unsigned status, char *text, size_t len)
{
        text = xrealloc(text, len + 1);
        text[len++] = '\n';
        reply(req, status, "application/json", text, len);
}

void http_reply_text(struct http_request *req, unsigned status, const char *content_type,
                     const char *text, size_t len)
{
        char *copy = xmalloc(len + 1);
        memcpy(copy, text, len);
        reply(req, status, content_type, copy, len);
}

void http_reply_error(struct http_request *req, unsigned status, const char *code,
                      const char *message, const char *field)
{
        /* A message or field not UTF-8 (a name from the disk, a client's
         * key) is shown with U+FFFD, not dropped. */
        json_t *e = json_pack("{s:s, s:o}", "code", code, "message", json_string_lossy(message ? message : code));
        if (field && *field)
                json_object_set_new(e, "field", json_string_lossy(field));
        http_reply_json(req, status, json_pack("{s:o}", "error", e));
}

void http_suspend(struct http_request *req)
{
        req->suspended = true;
        MHD_suspend_connection(req->conn);
}

void http_resume(struct http_request *req)
{
        MHD_resume_connection(req->conn);
}

void http_clients_gone(struct http_request *const *reqs, size_t n, bool *ret_gone)
{
        if (n == 0)
                return;
        /* libmicrohttpd does not watch a suspended connection's socket:
         * one poll() for them all. */
        _cleanup_free_ struct pollfd *p = xcalloc(n, sizeof *p);
        for (size_t i = 0; i < n; i++) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(reqs[i]->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                p[i] = (struct pollfd){ .fd = ci ? ci->connect_fd : -1, .events = POLLRDHUP };
        }
        int k = poll(p, n, 0);
        for (size_t i = 0; i < n; i++)
                ret_gone[i] = k > 0 && (p[i].revents & (POLLRDHUP | POLLHUP | POLLERR));
}
