/* edgecdctl - the command-line client of edgecd's HTTP API v1.
 *
 *   edgecdctl [global options] COMMAND [options] [arguments]
 *
 * This file: the command line, the connection settings, and the helpers
 * every command uses to turn a reply into output and an exit code.  The
 * commands are in commands.c and submit.c.  Exit codes: see edgecdctl.h
 * and edgecdctl.1.
 */
#include "edgecdctl.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8080"

static const char USAGE[] =
        "usage: edgecdctl [--url URL] [--unix PATH] [--token-file FILE] [--json] COMMAND ...\n"
        "\n"
        "commands:\n"
        "  submit ALGO [-p KEY=VALUE ...] [--params FILE|-] [--version V] [--priority P]\n"
        "              [--timeout S] [--callback URL] [--wait] [--wait-timeout S]\n"
        "  jobs [--status S] [--algorithm A] [--limit N]\n"
        "  show ID\n"
        "  logs ID\n"
        "  cancel ID\n"
        "  algorithms [NAME]\n"
        "  health\n"
        "\n"
        "options:\n"
        "  --url URL          the daemon (default $EDGECD_URL, else " DEFAULT_URL ")\n"
        "  --unix PATH        talk to the daemon over this unix socket\n"
        "  --token-file FILE  the API token (default $EDGECD_TOKEN)\n"
        "  --json             print the server's JSON instead of text\n"
        "  -h, --help         this help;  --version  the client's version\n"
        "\n"
        "exit codes: 0 success, 1 the job failed or was cancelled, 2 usage,\n"
        "3 the server refused the request (4xx), 4 no answer or 5xx,\n"
        "5 --wait-timeout passed, 6 output not written, 130 interrupted while\n"
        "waiting.  See edgecdctl(1).\n";

enum { O_URL = 256, O_UNIX, O_TOKEN_FILE, O_JSON, O_VERSION, O_PARAMS, O_PRIORITY, O_TIMEOUT, O_CALLBACK,
       O_WAIT, O_WAIT_TIMEOUT, O_STATUS, O_ALGORITHM, O_LIMIT, O_HELP = 'h', O_PARAM = 'p' };

static const struct option GLOBAL_OPTS[] = {
        {"url", required_argument, NULL, O_URL},
        {"unix", required_argument, NULL, O_UNIX},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
};

/* After the command: the global options again (but --version), and every
 * command's own; which command takes which is in COMMANDS. */
static const struct option CMD_OPTS[] = {
        {"url", required_argument, NULL, O_URL},
        {"unix", required_argument, NULL, O_UNIX},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {"version", required_argument, NULL, O_VERSION},
        {"params", required_argument, NULL, O_PARAMS},
        {"priority", required_argument, NULL, O_PRIORITY},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"callback", required_argument, NULL, O_CALLBACK},
        {"wait", no_argument, NULL, O_WAIT},
        {"wait-timeout", required_argument, NULL, O_WAIT_TIMEOUT},
        {"status", required_argument, NULL, O_STATUS},
        {"algorithm", required_argument, NULL, O_ALGORITHM},
        {"limit", required_argument, NULL, O_LIMIT},
        {NULL, 0, NULL, 0},
};

struct command {
        const char *name;
        int (*run)(struct conn *, const struct opts *);
        int min_pos, max_pos;
        const int *own;               /* its options, 0-terminated */
};

static const int SUBMIT_OPTS[] = {O_PARAM, O_PARAMS, O_VERSION, O_PRIORITY, O_TIMEOUT, O_CALLBACK, O_WAIT,
                                  O_WAIT_TIMEOUT, 0};
static const int JOBS_OPTS[] = {O_STATUS, O_ALGORITHM, O_LIMIT, 0};
static const int NO_OPTS[] = {0};

static const struct command COMMANDS[] = {
        {"submit", cmd_submit, 1, 1, SUBMIT_OPTS},
        {"jobs", cmd_jobs, 0, 0, JOBS_OPTS},
        {"show", cmd_show, 1, 1, NO_OPTS},
        {"logs", cmd_logs, 1, 1, NO_OPTS},
        {"cancel", cmd_cancel, 1, 1, NO_OPTS},
        {"algorithms", cmd_algorithms, 0, 1, NO_OPTS},
        {"health", cmd_health, 0, 0, NO_OPTS},
};

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("edgecdctl: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\n(edgecdctl --help for usage)\n", stderr);
        return CTL_USAGE;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
        char *end;
        /* Digits only: strtol would take " +5". */
        if (!*s || strspn(s, "0123456789") != strlen(s))
                return false;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                return false;
        *out = v;
        return true;
}

static bool parse_seconds(const char *s, double *out)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v <= 0)
                return false;
        *out = v;
        return true;
}

static bool add_pair(struct opts *o, const char *kv)
{
        const char **p = realloc(o->pairs, (o->npairs + 1) * sizeof *p);
        if (!p)
                return false;
        o->pairs = p;
        o->pairs[o->npairs++] = kv;
        return true;
}

/* 0 when opt is a global option (now set in o), else -1. */
static int set_global(struct opts *o, int opt, const char *arg)
{
        switch (opt) {
        case O_URL: o->url = arg; return 0;
        case O_UNIX: o->unix_path = arg; return 0;
        case O_TOKEN_FILE: o->token_file = arg; return 0;
        case O_JSON: o->json = true; return 0;
        default: return -1;
        }
}

/* The options only some commands take; CTL_OK or CTL_USAGE. */
static int set_own(struct opts *o, int opt, const char *arg)
{
        switch (opt) {
        case O_PARAM:
                if (!strchr(arg, '='))
                        return usage_error("-p wants KEY=VALUE, not `%s`", arg);
                return add_pair(o, arg) ? CTL_OK : usage_error("%s", "out of memory");
        case O_PARAMS: o->params_file = arg; return CTL_OK;
        case O_VERSION: o->version = arg; return CTL_OK;
        case O_PRIORITY: o->priority = arg; return CTL_OK;
        case O_CALLBACK: o->callback_url = arg; return CTL_OK;
        case O_WAIT: o->wait = true; return CTL_OK;
        case O_STATUS: o->status = arg; return CTL_OK;
        case O_ALGORITHM: o->algorithm = arg; return CTL_OK;
        case O_TIMEOUT:
                return parse_long(arg, 1, 2147483647L, &o->timeout)
                               ? CTL_OK : usage_error("--timeout wants whole seconds, not `%s`", arg);
        case O_LIMIT:
                return parse_long(arg, 1, 2147483647L, &o->limit)
                               ? CTL_OK : usage_error("--limit wants a positive number, not `%s`", arg);
        case O_WAIT_TIMEOUT:
                o->wait = true;
                return parse_seconds(arg, &o->wait_timeout)
                               ? CTL_OK : usage_error("--wait-timeout wants seconds, not `%s`", arg);
        default:
                return CTL_USAGE;
        }
}

static bool takes(const struct command *cmd, int opt)
{
        for (const int *p = cmd->own; *p; p++)
                if (*p == opt)
                        return true;
        return false;
}

/* argv[0] is the command's name.  CTL_OK, or an exit code (-1: --help). */
static int parse_command(const struct command *cmd, int argc, char **argv, struct opts *o)
{
        int opt, li = -1;
        optind = 0;
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "hp:", CMD_OPTS, &li)) != -1) {
                if (opt == '?')
                        return CTL_USAGE;
                if (opt == O_HELP)
                        return -1;
                if (set_global(o, opt, optarg) == 0) {
                        li = -1;
                        continue;
                }
                if (!takes(cmd, opt))
                        return usage_error("`%s` does not take %s%s", cmd->name,
                                           li >= 0 ? "--" : "-p", li >= 0 ? CMD_OPTS[li].name : "");
                li = -1;
                int rc = set_own(o, opt, optarg);
                if (rc != CTL_OK)
                        return rc;
        }
        o->pos = argv + optind;
        o->npos = argc - optind;
        if (o->npos < cmd->min_pos || o->npos > cmd->max_pos)
                return usage_error("wrong number of arguments for `%s`", cmd->name);
        return CTL_OK;
}

static const struct command *find_command(const char *name)
{
        for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
                if (!strcmp(COMMANDS[i].name, name))
                        return &COMMANDS[i];
        return NULL;
}

/* The global options before the command: CTL_OK with *first the command's
 * index, -1 for --help, -2 for --version, or CTL_USAGE. */
static int parse_global(int argc, char **argv, struct opts *o, int *first)
{
        int opt;
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "+h", GLOBAL_OPTS, NULL)) != -1) {
                if (opt == O_HELP)
                        return -1;
                if (opt == O_VERSION)
                        return -2;
                if (set_global(o, opt, optarg) < 0)
                        return CTL_USAGE;
        }
        if (optind >= argc)
                return usage_error("%s", "no command given");
        *first = optind;
        return CTL_OK;
}

/* The token: --token-file's first line, else $EDGECD_TOKEN, else none.
 * CTL_OK with *out malloc'd or NULL, or CTL_USAGE. */
static int read_token(const struct opts *o, char **out)
{
        *out = NULL;
        char buf[TOKEN_MAX + 2] = "";
        const char *from = "EDGECD_TOKEN";
        if (!o->token_file) {
                const char *env = getenv("EDGECD_TOKEN");
                if (!env || !*env)
                        return CTL_OK;
                snprintf(buf, sizeof buf, "%s", env);
        } else {
                FILE *f = fopen(o->token_file, "re");
                if (!f)
                        return usage_error("cannot open the token file: %s", strerror(errno));
                bool got = fgets(buf, sizeof buf, f) != NULL;
                int e = errno;
                fclose(f);
                if (!got && buf[0] == '\0')
                        return usage_error("cannot read a token from %s%s%s", o->token_file, e ? ": " : "",
                                           e ? strerror(e) : " (empty)");
                from = o->token_file;
        }
        /* Spaces around it go; a control character or space inside it (a
         * header could be smuggled in) is refused. */
        char *t = buf + strspn(buf, " \t");
        size_t n = strlen(t);
        while (n > 0 && strchr(" \t\r\n", t[n - 1]))
                t[--n] = '\0';
        if (n == 0)
                return usage_error("the token in %s is empty", from);
        if (n > TOKEN_MAX)
                return usage_error("the token in %s is longer than %d characters", from, TOKEN_MAX);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7F)
                        return usage_error("the token in %s holds a space or a control character", from);
        if (!(*out = strdup(t)))
                return usage_error("%s", "out of memory");
        return CTL_OK;
}

static int run(const struct command *cmd, const struct opts *o)
{
        char *token = NULL;
        int rc = read_token(o, &token);
        if (rc != CTL_OK)
                return rc;
        const char *url = o->url ? o->url : getenv("EDGECD_URL");
        struct conn c;
        if (conn_open(&c, url && *url ? url : DEFAULT_URL, o->unix_path, token) < 0) {
                free(token);
                return CTL_UNREACHABLE;
        }
        free(token);
        rc = cmd->run(&c, o);
        conn_close(&c);
        /* A full disk or a closed pipe is not success. */
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "edgecdctl: cannot write the output: %s\n", strerror(errno));
                if (rc == CTL_OK)
                        rc = CTL_OUTPUT;
        }
        return rc;
}

int main(int argc, char **argv)
{
        struct opts o = {.timeout = -1, .limit = -1};
        int first = 0;
        int rc = parse_global(argc, argv, &o, &first);
        if (rc == -1 || rc == -2) {
                fputs(rc == -1 ? USAGE : "edgecdctl " EDGECD_VERSION "\n", stdout);
                return CTL_OK;
        }
        if (rc != CTL_OK)
                return rc;
        const struct command *cmd = find_command(argv[first]);
        if (!cmd)
                return usage_error("unknown command `%s`", argv[first]);
        rc = parse_command(cmd, argc - first, argv + first, &o);
        if (rc == -1) {
                fputs(USAGE, stdout);
                rc = CTL_OK;
        } else if (rc == CTL_OK) {
                rc = run(cmd, &o);
        }
        free(o.pairs);
        return rc;
}

/* ---- helpers the commands share ---- */

static void print_error_body(const struct reply *r)
{
        json_t *j = json_defanged(r->body, r->len);
        json_t *e = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *field = json_string_value(json_object_get(e, "field"));
        if (code)
                fprintf(stderr, "edgecdctl: HTTP %ld %s: %s%s%s%s\n", r->status, code,
                        msg ? msg : "", field ? " (field " : "", field ? field : "", field ? ")" : "");
        else {
                fprintf(stderr, "edgecdctl: HTTP %ld: ", r->status);
                size_t n = r->len < 200 ? r->len : 200;
                for (size_t i = 0; i < n; i++) {
                        const unsigned char *u = (const unsigned char *)r->body + i;
                        /* Whole UTF-8 sequences but C1 (C2 80..C2 9F) go out;
                         * a stray byte (a bare 9B is CSI on an 8-bit
                         * terminal), C0 and DEL are '?'. */
                        size_t len = u[0] < 0x80 ? 1 : u[0] >= 0xC2 && u[0] <= 0xDF ? 2
                                     : u[0] >= 0xE0 && u[0] <= 0xEF ? 3 : u[0] >= 0xF0 && u[0] <= 0xF4 ? 4 : 0;
                        bool ok = len > 0 && i + len <= n && !(u[0] < 0x20 || u[0] == 0x7F) &&
                                  !(u[0] == 0xC2 && u[1] <= 0x9F);
                        for (size_t k = 1; ok && k < len; k++)
                                ok = (u[k] & 0xC0) == 0x80;
                        if (!ok) {
                                fputc('?', stderr);
                                continue;
                        }
                        fwrite(u, 1, len, stderr);
                        i += len - 1;
                }
                fputc('\n', stderr);
        }
        json_decref(j);
}

int reply_check(struct conn *c, int rc, const struct reply *r)
{
        if (rc < 0) {
                fprintf(stderr, "edgecdctl: cannot reach %s%s%s: %s\n", c->base,
                        c->unix_path ? " via " : "", c->unix_path ? c->unix_path : "", r->errbuf);
                return CTL_UNREACHABLE;
        }
        if (r->status >= 200 && r->status < 300)
                return CTL_OK;
        if (r->status >= 300 && r->status < 400) {
                /* Not followed: the token would go along. */
                fprintf(stderr, "edgecdctl: HTTP %ld: the server redirects; edgecdctl does not follow\n", r->status);
                return CTL_UNREACHABLE;
        }
        print_error_body(r);
        return r->status >= 400 && r->status < 500 ? CTL_REFUSED : CTL_UNREACHABLE;
}

int get_json(struct conn *c, const char *path, json_t **out, struct reply *raw)
{
        struct reply r;
        *out = NULL;
        int rc = reply_check(c, conn_request(c, "GET", path, NULL, &r), &r);
        if (rc == CTL_OK && !(*out = reply_json(&r)))
                rc = CTL_UNREACHABLE;
        if (rc == CTL_OK && !json_is_object(*out)) {
                fprintf(stderr, "edgecdctl: the server's answer is not a JSON object\n");
                json_decref(*out);
                *out = NULL;
                rc = CTL_UNREACHABLE;
        }
        if (raw && rc == CTL_OK)
                *raw = r;
        else
                reply_free(&r);
        return rc;
}

void print_json(const json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
        if (s) {
                puts(s);
                free(s);
        }
}

void write_to_terminal(char *s, size_t n)
{
        if (isatty(STDOUT_FILENO))
                for (size_t i = 0; i < n; i++) {
                        unsigned char c = (unsigned char)s[i];
                        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                            (unsigned char)s[i + 1] <= 0x9F)
                                s[i] = s[i + 1] = '?', i++;
                        else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F)
                                s[i] = '?';
                }
        fwrite(s, 1, n, stdout);
}

void print_raw(const struct reply *r)
{
        /* Valid JSON may hold C1 controls unescaped (CSI as C2 9B). */
        write_to_terminal(r->body, r->len);
        if (r->len == 0 || r->body[r->len - 1] != '\n')
                putchar('\n');
}
