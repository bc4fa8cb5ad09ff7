/* http.h - the client's one connection to the daemon (libcurl easy handle).
 *
 * Ownership: struct conn owns its curl handle, header list and strings;
 * conn_close() frees them.  struct reply owns body (NUL-terminated);
 * reply_free() frees it.  Bodies grow as needed: no fixed-size buffers.
 */
#ifndef EDGECDCTL_HTTP_H
#define EDGECDCTL_HTTP_H

#include <stddef.h>

#include <jansson.h>

struct conn {
        void *curl;              /* CURL * */
        void *headers;           /* struct curl_slist * */
        char *base;              /* base URL without a trailing slash */
        char *unix_path;         /* NULL, or the daemon's unix socket */
        char *auth;              /* NULL, or "Authorization: Bearer ..." */
        long timeout_ms;         /* per request; 0: 60 s */
};

/* The most of one answer kept: more than any the daemon gives (its
 * ceilings are at most 512 MiB), less than a hostile server could send. */
#define REPLY_MAX ((size_t)600 << 20)

struct reply {
        long status;             /* HTTP status; 0 when nothing came back */
        char *body;              /* NUL-terminated, never NULL after a request */
        size_t len;
        char errbuf[256];        /* curl's message when status is 0 */
};

/* 0, or -1 with a message on stderr. */
int conn_open(struct conn *c, const char *url, const char *unix_path, const char *token);
void conn_close(struct conn *c);

/* method "GET", "POST" or "DELETE"; body NULL or JSON text.  0 when an
 * answer came (any status), -1 when the server could not be reached
 * (r->errbuf says why).  Free r with reply_free() in both cases. */
int conn_request(struct conn *c, const char *method, const char *path, const char *body,
                 struct reply *r);
void reply_free(struct reply *r);

/* The answer parsed as JSON; NULL (and a message on stderr) when it is not.
 * Control characters in its strings are replaced by '?': what a server or
 * an algorithm says is printed on a terminal. */
json_t *reply_json(const struct reply *r);
/* The same for any text, quietly (NULL when not JSON). */
json_t *json_defanged(const char *text, size_t len);

/* A path segment escaped for a URL; free() it.  NULL when out of memory. */
char *conn_escape(struct conn *c, const char *s);

#endif
