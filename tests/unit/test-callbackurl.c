/* test-callbackurl.c - callbackurl.c: URL parsing and normalising,
 * the allowlist match (prefix confusion, ports, schemes, path segments),
 * allowlist entries, the HMAC signature against vectors computed with
 * Python's hmac module, the backoff, and the secret file's checks. */
#include <string.h>
#include <sys/stat.h>

#include "base/callbackurl.h"
#include "base/util.h"
#include "testutil.h"

static char *dir;

static void setup(void)
{
        dir = tu_test_dir();
}

static void teardown(void)
{
        tu_rm_rf(dir);
        free(dir);
        dir = NULL;
}

START_TEST(test_parse_normalises)
{
        struct callback_url u;
        struct err e = ERR_INIT;
        ck_assert_int_eq(callback_url_parse("HTTPS://Hooks.Example.COM/a/B?x=1", &u, &e), 0);
        ck_assert_str_eq(u.scheme, "https");
        ck_assert_str_eq(u.host, "hooks.example.com");
        ck_assert_uint_eq(u.port, 443);
        ck_assert_str_eq(u.path, "/a/B");
        ck_assert(u.has_query);
        ck_assert_int_eq(callback_url_parse("http://10.0.0.1:8081", &u, &e), 0);
        ck_assert_str_eq(u.host, "10.0.0.1");
        ck_assert_uint_eq(u.port, 8081);
        ck_assert_str_eq(u.path, "/");
        ck_assert(!u.has_query);
        ck_assert_int_eq(callback_url_parse("http://[0:0::1]:99/p", &u, &e), 0);
        ck_assert_str_eq(u.host, "::1");
        ck_assert_uint_eq(u.port, 99);
        ck_assert_int_eq(callback_url_parse("http://x.example?q", &u, &e), 0);
        ck_assert_str_eq(u.path, "/");
        ck_assert(u.has_query);
}
END_TEST

/* The receiver the per-receiver cap counts: one for every spelling of a
 * scheme, host and port; none for a URL that does not parse. */
START_TEST(test_dest)
{
        static const struct { const char *url, *dest; } cases[] = {
                { "http://Hooks.Example.com/a", "http://hooks.example.com:80" },
                { "http://hooks.example.com:80/b?x=1", "http://hooks.example.com:80" },
                { "https://hooks.example.com/", "https://hooks.example.com:443" },
                { "https://[2001:DB8::1]:8443/x", "https://2001:db8::1:8443" },
                { "http://10.0.0.1:8081", "http://10.0.0.1:8081" },
                { "ftp://hooks.example.com/", "" },
                { "http://user@hooks.example.com/", "" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char dest[CALLBACK_DEST_MAX] = "junk";
                bool ok = callback_url_dest(cases[i].url, dest, sizeof dest);
                ck_assert_msg(ok == (*cases[i].dest != '\0'), "%s", cases[i].url);
                ck_assert_str_eq(dest, cases[i].dest);
        }
}
END_TEST

#define IPV4_ODD "has an IPv4 address spelled other than a.b.c.d in decimal (leading zeros, hex or fewer parts: " \
                 "libcurl reads another address)"

#define CONTROL "must not have an encoded control character (%00 to %1F, %7F) in its path"

START_TEST(test_parse_refuses)
{
        static const struct {
                const char *url, *why;
        } bad[] = {
                { "", "must not be empty" },
                { "ftp://x.example/", "must be an http:// or https:// URL" },
                { "//x.example/", "must be an http:// or https:// URL" },
                { "http:/x.example/", "must be an http:// or https:// URL" },
                { "http://user@x.example/", "must not carry user info (user@host)" },
                { "http://u:p@x.example/", "must not carry user info (user@host)" },
                { "http://x.example:80@evil.example/", "must not carry user info (user@host)" },
                { "http://x.example/a b", "must be printable ASCII without spaces (percent-encode the rest)" },
                { "http://x.example/\x7f", "must be printable ASCII without spaces (percent-encode the rest)" },
                { "http://x.example/\xc3\xa9", "must be printable ASCII without spaces (percent-encode the rest)" },
                { "http://x.example\\@evil.example/", "must not contain a backslash" },
                { "http://x.example/#f", "must not have a fragment (#...)" },
                { "http:///p", "has no valid host name" },
                { "http://x..example/", "has no valid host name" },
                { "http://x.example./", "has no valid host name" },
                { "http://-x.example/", "has no valid host name" },
                { "http://x_y.example/", "has no valid host name" },
                { "http://x%2eexample/", "has no valid host name" },
                /* libcurl reads these as 192.168.1.8, 127.0.0.1 (three), 0.0.0.0 */
                { "http://192.168.001.010:8080/hooks", IPV4_ODD },
                { "http://0x7f.1/", IPV4_ODD },
                { "http://2130706433/", IPV4_ODD },
                { "http://127.1/", IPV4_ODD },
                { "http://0/", IPV4_ODD },
                { "http://x.example:/", "has a malformed port" },
                { "http://x.example:8o/", "has a malformed port" },
                { "http://x.example:123456/", "has a malformed port" },
                { "http://x.example:0/", "has a port outside 1..65535" },
                { "http://x.example:65536/", "has a port outside 1..65535" },
                { "http://x.example:80:81/", "has a malformed port" },
                { "http://[::1/", "has a malformed IPv6 host" },
                { "http://[zz::1]/", "has a malformed IPv6 host" },
                { "http://[]/", "has a malformed IPv6 host" },
                { "http://[::1]x/", "has a malformed port" },
                { "http://x.example/a/../b", "must not have `.` or `..` segments in its path" },
                { "http://x.example/a/./b", "must not have `.` or `..` segments in its path" },
                { "http://x.example/a/..", "must not have `.` or `..` segments in its path" },
                { "http://x.example/a/%2e%2E/b", "must not have `.` or `..` segments in its path" },
                { "http://x.example/a/.%2e", "must not have `.` or `..` segments in its path" },
                { "http://x.example/a%2f..%2fb", "must not have an encoded slash (%2F) in its path" },
                { "http://x.example/a%5Cb", "must not have an encoded backslash (%5C) in its path" },
                { "http://x.example/a/..;/b", "must not have a semicolon (path parameters) in its path" },
                { "http://x.example/a/%2e%2e;/b", "must not have a semicolon (path parameters) in its path" },
                { "http://x.example/a/.;/b", "must not have a semicolon (path parameters) in its path" },
                { "http://x.example/a;v=1", "must not have a semicolon (path parameters) in its path" },
                { "http://x.example/a/..%3b/b", "must not have an encoded semicolon (%3B) in its path" },
                { "http://x.example/a/..%3B/b", "must not have an encoded semicolon (%3B) in its path" },
                { "http://x.example/a/%252e%252e/b", "must not have an encoded percent sign (%25) in its path" },
                { "http://x.example/a/%25", "must not have an encoded percent sign (%25) in its path" },
                { "http://x.example/hooks/..%00/admin", CONTROL },
                { "http://x.example/a%0a", CONTROL },
                { "http://x.example/a%1F", CONTROL },
                { "http://x.example/a%7f", CONTROL },
                { "http://x.example/a%zz", "has a malformed percent-encoding in its path" },
                { "http://x.example/a%4", "has a malformed percent-encoding in its path" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct callback_url u;
                struct err e = ERR_INIT;
                ck_assert_msg(callback_url_parse(bad[i].url, &u, &e) == -1, "%s parsed", bad[i].url);
                ck_assert_int_eq(e.code, ERR_INVALID);
                ck_assert_msg(!strcmp(e.msg, bad[i].why), "%s: `%s`, expected `%s`", bad[i].url, e.msg, bad[i].why);
        }
        /* Dots that are no dot segment are fine. */
        static const char *const good[] = { "http://x.example/a/...", "http://x.example/a/.b/c..",
                                            "http://x.example/v1.2/x", "http://x.example/a%2E%2Eb" };
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                struct callback_url u;
                struct err e = ERR_INIT;
                ck_assert_msg(callback_url_parse(good[i], &u, &e) == 0, "%s: %s", good[i], e.msg);
        }
        /* The length bound. */
        char *longer = xmalloc(CALLBACK_URL_MAX + 2);
        memset(longer, 'a', CALLBACK_URL_MAX + 1);
        memcpy(longer, "http://x.example/", 17);
        longer[CALLBACK_URL_MAX + 1] = '\0';
        struct callback_url u;
        struct err e = ERR_INIT;
        ck_assert_int_eq(callback_url_parse(longer, &u, &e), -1);
        ck_assert_str_eq(e.msg, "is 2049 bytes, over the limit of 2048");
        longer[CALLBACK_URL_MAX] = '\0';
        ck_assert_int_eq(callback_url_parse(longer, &u, &e), 0);
        free(longer);
        ck_assert_int_eq(callback_url_parse(NULL, &u, &e), -1);
        ck_assert_str_eq(e.msg, "must be a string");
}
END_TEST

static bool allowed(char *const *allow, const char *url)
{
        struct err e = ERR_INIT;
        return callback_url_allowed(allow, url, &e) == 0;
}

START_TEST(test_allowlist)
{
        char *allow[] = { "https://hooks.example.com/edgecd", "http://10.0.0.1:8081/", "http://[::1]:9000/a/",
                          NULL };
        /* In. */
        ck_assert(allowed(allow, "https://hooks.example.com/edgecd"));
        ck_assert(allowed(allow, "https://hooks.example.com/edgecd/"));
        ck_assert(allowed(allow, "https://hooks.example.com/edgecd/job?x=1"));
        ck_assert(allowed(allow, "https://hooks.example.com/edgecd?x=1"));
        ck_assert(allowed(allow, "HTTPS://HOOKS.example.com:443/edgecd/a"));
        ck_assert(allowed(allow, "http://10.0.0.1:8081/"));
        ck_assert(allowed(allow, "http://10.0.0.1:8081"));
        ck_assert(allowed(allow, "http://10.0.0.1:8081/anything/at/all"));
        ck_assert(allowed(allow, "http://[0::1]:9000/a/b"));
        /* Out: prefix confusion on the host, the port, the path. */
        ck_assert(!allowed(allow, "https://hooks.example.com.evil.org/edgecd"));
        ck_assert(!allowed(allow, "https://evilhooks.example.com/edgecd"));
        ck_assert(!allowed(allow, "https://evil.org/hooks.example.com/edgecd"));
        ck_assert(!allowed(allow, "https://hooks.example.com@evil.org/edgecd"));
        ck_assert(!allowed(allow, "https://hooks.example.com:8443/edgecd"));
        ck_assert(!allowed(allow, "http://hooks.example.com/edgecd"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecdx"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgec"));
        ck_assert(!allowed(allow, "https://hooks.example.com/EDGECD"));
        ck_assert(!allowed(allow, "https://hooks.example.com/"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/../admin"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd%2f..%2fadmin"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/..;/admin"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/%2e%2e;/admin"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/..%3b/admin"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/.;/x"));
        ck_assert(!allowed(allow, "https://hooks.example.com/edgecd/%252e%252e/admin"));
        /* A semicolon in the query is the receiver's business. */
        ck_assert(allowed(allow, "https://hooks.example.com/edgecd/job?a=1;b=2"));
        ck_assert(!allowed(allow, "http://10.0.0.1:80/"));
        ck_assert(!allowed(allow, "http://10.0.0.10:8081/"));
        ck_assert(!allowed(allow, "http://10.0.0.1.evil.org:8081/"));
        ck_assert(!allowed(allow, "https://10.0.0.1:8081/"));
        ck_assert(!allowed(allow, "http://[::1]:9000/"));
        ck_assert(!allowed(allow, "http://[::1]:9000/ab"));
        ck_assert(!allowed(allow, "http://[::2]:9000/a/b"));
        /* Messages: the reason, or no entry. */
        struct err e = ERR_INIT;
        ck_assert_int_eq(callback_url_allowed(allow, "http://x.example/", &e), -1);
        ck_assert_str_eq(e.msg, "matches no entry of the daemon's callbacks.allow");
        ck_assert_int_eq(callback_url_allowed(allow, "gopher://x/", &e), -1);
        ck_assert_str_eq(e.msg, "must be an http:// or https:// URL");
        char *none[] = { NULL };
        ck_assert_int_eq(callback_url_allowed(none, "https://hooks.example.com/edgecd", &e), -1);
        ck_assert_str_eq(e.msg, "is not accepted: callbacks are off on this daemon (callbacks.allow is empty)");
        ck_assert_int_eq(callback_url_allowed(NULL, "https://hooks.example.com/edgecd", &e), -1);
        /* An entry for a whole host. */
        char *host[] = { "http://h.example", NULL };
        ck_assert(allowed(host, "http://h.example/any/path?q"));
        ck_assert(!allowed(host, "http://h.example:8080/"));
}
END_TEST

START_TEST(test_allow_entries)
{
        ck_assert_ptr_null(callback_allow_problem("https://hooks.example.com/edgecd/"));
        ck_assert_ptr_null(callback_allow_problem("http://[::1]:8080"));
        ck_assert_str_eq(callback_allow_problem("http://h.example/?a=b"),
                         "must not have a query (an entry is a scheme, host, port and path prefix)");
        ck_assert_str_eq(callback_allow_problem("h.example"), "must be an http:// or https:// URL");
        ck_assert_str_eq(callback_allow_problem(NULL), "must be a string");
        /* An entry that reads as one host and is another to libcurl. */
        ck_assert_str_eq(callback_allow_problem("http://192.168.001.010:8080/hooks"), IPV4_ODD);
        ck_assert_ptr_null(callback_allow_problem("http://192.168.1.10:8080/hooks"));
        /* Names with numeric labels that are no IPv4 address stay names. */
        ck_assert_ptr_null(callback_allow_problem("http://1.2.3.4.5/"));
        ck_assert_ptr_null(callback_allow_problem("http://0x7f.example/"));
}
END_TEST

START_TEST(test_signature)
{
        /* Vectors: Python's hmac.new(key, b"<t>." + body, hashlib.sha256). */
        static const char key[] = "0123456789abcdef-secret";
        char sig[128];
        callback_sign(key, strlen(key), 1700000000, "{\"id\":\"x\"}", 10, sig, sizeof sig);
        ck_assert_str_eq(sig, "t=1700000000,v1=e83bb0935e7b1db314f673eb7e104265702860cb3dd80ea6e7a2f7cdc1cacd56");
        callback_sign(key, strlen(key), 1700000000, "", 0, sig, sizeof sig);
        ck_assert_str_eq(sig, "t=1700000000,v1=d2b1cf1bdb6c5d03488143764e2998025f7daa34ec840bc62f43813c2ebc4d7a");
        /* The time is covered: another t, another MAC. */
        char other[128];
        callback_sign(key, strlen(key), 1700000001, "{\"id\":\"x\"}", 10, other, sizeof other);
        ck_assert_str_ne(strchr(sig, 'v'), strchr(other, 'v'));
}
END_TEST

START_TEST(test_backoff)
{
        /* 1 s, 2 s, 4 s ... capped; jitter takes at most half off. */
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 1, 0.0), 1000);
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 2, 0.0), 2000);
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 3, 0.0), 4000);
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 10, 0.0), 300000);
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 100, 0.0), 300000);
        ck_assert_int_eq(callback_backoff_ms(1000, 300000, 1, 0.5), 750);
        ck_assert_int_ge(callback_backoff_ms(1000, 300000, 3, 0.999999), 2000);
        ck_assert_int_eq(callback_backoff_ms(200, 200, 7, 0.0), 200);
}
END_TEST

START_TEST(test_secret_file)
{
        char *s = NULL;
        size_t n = 0;
        struct err e = ERR_INIT;
        char *p = tu_write(dir, "secret", "0123456789abcdef-secret\n\n");
        ck_assert_int_eq(chmod(p, 0600), 0);
        ck_assert_msg(callback_secret_load(p, &s, &n, &e) == 0, "%s", e.msg);
        ck_assert_uint_eq(n, 23);
        ck_assert_str_eq(s, "0123456789abcdef-secret");
        free(s);
        /* Readable by others: refused, saying how to mend it. */
        ck_assert_int_eq(chmod(p, 0640), 0);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "chmod 600"));
        free(p);
        /* Too short. */
        p = tu_write(dir, "short", "tiny\n");
        ck_assert_int_eq(chmod(p, 0400), 0);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "must hold 16 to 4096 bytes"));
        free(p);
        /* A directory, a named pipe (no writer: opened, not waited on),
         * a missing file. */
        ck_assert_int_eq(callback_secret_load(dir, &s, &n, &e), -1);
        p = xasprintf("%s/fifo", dir);
        ck_assert_int_eq(mkfifo(p, 0600), 0);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_msg(strstr(e.msg, "is not a regular file"), "%s", e.msg);
        ck_assert_int_eq(unlink(p), 0);
        free(p);
        p = xasprintf("%s/missing", dir);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_int_eq(e.code, ERR_IO);
        free(p);
        /* Too long. */
        char *big = xmalloc(CALLBACK_SECRET_MAX + 2);
        memset(big, 'k', CALLBACK_SECRET_MAX + 1);
        big[CALLBACK_SECRET_MAX + 1] = '\0';
        p = tu_write(dir, "big", big);
        ck_assert_int_eq(chmod(p, 0600), 0);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "must hold 16 to 4096 bytes"));
        free(p);
        /* The limit exactly, a newline, then more: too long, not the
         * limit's bytes with the rest cut off. */
        size_t len = CALLBACK_SECRET_MAX + 1 + 100;
        big = xrealloc(big, len + 1);
        memset(big, 'a', CALLBACK_SECRET_MAX);
        big[CALLBACK_SECRET_MAX] = '\n';
        memset(big + CALLBACK_SECRET_MAX + 1, 'b', 100);
        big[len] = '\0';
        p = tu_write(dir, "cut", big);
        ck_assert_int_eq(chmod(p, 0600), 0);
        ck_assert_int_eq(callback_secret_load(p, &s, &n, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "must hold 16 to 4096 bytes"));
        free(p);
        /* The limit exactly, with line ends after it: taken whole. */
        strcpy(big + CALLBACK_SECRET_MAX, "\r\n\n");
        p = tu_write(dir, "exact", big);
        ck_assert_int_eq(chmod(p, 0600), 0);
        ck_assert_msg(callback_secret_load(p, &s, &n, &e) == 0, "%s", e.msg);
        ck_assert_uint_eq(n, CALLBACK_SECRET_MAX);
        free(s);
        free(p);
        free(big);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("callbackurl");
        TCase *tc = tcase_create("callbackurl");
        tcase_add_unchecked_fixture(tc, tu_base_setup, tu_base_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_parse_normalises);
        tcase_add_test(tc, test_parse_refuses);
        tcase_add_test(tc, test_dest);
        tcase_add_test(tc, test_allowlist);
        tcase_add_test(tc, test_allow_entries);
        tcase_add_test(tc, test_signature);
        tcase_add_test(tc, test_backoff);
        tcase_add_test(tc, test_secret_file);
        suite_add_tcase(s, tc);
        return s;
}

TEST_MAIN(suite)
