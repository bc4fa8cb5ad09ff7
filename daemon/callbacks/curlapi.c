/* curlapi.c - libcurl, loaded when it is first needed (see curlapi.h). */
#include "curlapi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

#define CURL_LIBRARY "libcurl.so.4"

static struct curl_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[ERR_MSG_MAX];

/* A function pointer from a void * (dlsym's), without a cast warning. */
#define TAKE(field, name)                                                        \
        do {                                                                     \
                void *p_ = dlsym(h, name);                                       \
                if (!p_) {                                                       \
                        snprintf(failure, sizeof failure, "%s: no %s", CURL_LIBRARY, name); \
                        return;                                                  \
                }                                                                \
                memcpy(&api.field, &p_, sizeof api.field);                       \
        } while (0)

static void load(void)
{
        void *h = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                const char *why = dlerror();
                snprintf(failure, sizeof failure, "cannot load %s: %s", CURL_LIBRARY, why ? why : "unknown");
                return;
        }
        TAKE(global_init, "curl_global_init");
        TAKE(global_cleanup, "curl_global_cleanup");
        TAKE(easy_init, "curl_easy_init");
        TAKE(easy_cleanup, "curl_easy_cleanup");
        TAKE(easy_setopt, "curl_easy_setopt");
        TAKE(easy_getinfo, "curl_easy_getinfo");
        TAKE(easy_strerror, "curl_easy_strerror");
        TAKE(slist_append, "curl_slist_append");
        TAKE(slist_free_all, "curl_slist_free_all");
        TAKE(multi_init, "curl_multi_init");
        TAKE(multi_cleanup, "curl_multi_cleanup");
        TAKE(multi_add_handle, "curl_multi_add_handle");
        TAKE(multi_remove_handle, "curl_multi_remove_handle");
        TAKE(multi_perform, "curl_multi_perform");
        TAKE(multi_info_read, "curl_multi_info_read");
        TAKE(multi_poll, "curl_multi_poll");
        TAKE(multi_wakeup, "curl_multi_wakeup");
        TAKE(getdate, "curl_getdate");
        /* The handle stays open for the daemon's life. */
}

int curlapi_load(const struct curl_api **ret, struct err *err)
{
        pthread_once(&once, load);
        if (*failure) {
                *ret = NULL;
                return err_set(err, ERR_UNAVAILABLE, 0, "%s", failure);
        }
        *ret = &api;
        return 0;
}
