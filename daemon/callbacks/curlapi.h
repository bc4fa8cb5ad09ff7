/* curlapi.h - libcurl, loaded when it is first needed.
 *
 * Why: linked, libcurl and the thirty-odd libraries it pulls in (TLS,
 * LDAP, Kerberos, SSH, IDN...) cost every daemon about 5 MiB resident at
 * start, relocated and initialised, used or not; only callbacks use it,
 * and they are off unless callbacks.allow names a receiver.  So the
 * daemon is not linked with it: curlapi_load() dlopen()s libcurl.so.4 and
 * takes the calls edgecd makes.  Any thread; loaded once, never unloaded. */
#ifndef EDGECD_CURLAPI_H
#define EDGECD_CURLAPI_H

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "base/error.h"

struct curl_api {
        CURLcode (*global_init)(long flags);
        void (*global_cleanup)(void);
        CURL *(*easy_init)(void);
        void (*easy_cleanup)(CURL *e);
        CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
        CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
        const char *(*easy_strerror)(CURLcode rc);
        struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
        void (*slist_free_all)(struct curl_slist *l);
        CURLM *(*multi_init)(void);
        CURLMcode (*multi_cleanup)(CURLM *m);
        CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
        CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
        CURLMcode (*multi_perform)(CURLM *m, int *running);
        CURLMsg *(*multi_info_read)(CURLM *m, int *left);
        CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout_ms, int *ret);
        CURLMcode (*multi_wakeup)(CURLM *m);
        time_t (*getdate)(const char *p, const time_t *unused);
};

/* libcurl's calls, loaded on the first call; ERR_UNAVAILABLE naming the
 * library and dlerror()'s words when it cannot be. */
int curlapi_load(const struct curl_api **ret, struct err *err);

#endif
