/* libFuzzer target: connection strings. No message the open path builds for one (a parse
 * error, a refused URL, a connect error over libpq's text and PQhost/PQport) may hold a
 * password the input carries, as written or percent-decoded. Opens no real connection but
 * to a unix socket path, and never waits on one. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 2048
#define MAX_CANDIDATES 32

/* The passwords the input carries, found here independently of pgconn.c. */
struct candidates {
    char text[MAX_CANDIDATES][MAX_INPUT + 1];
    int n;
};

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Adds s[0..n) as written, and percent-decoded (NUL ends it, as in a C string). */
static void add(struct candidates *c, const char *s, size_t n)
{
    if (c->n + 2 > MAX_CANDIDATES)
        return;
    char *raw = c->text[c->n], *dec = c->text[c->n + 1];
    memcpy(raw, s, n);
    raw[n] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            char ch = (char)(hex(s[i + 1]) << 4 | hex(s[i + 2]));
            if (!ch)
                break;
            dec[o++] = ch;
            i += 2;
        } else {
            dec[o++] = s[i];
        }
    }
    dec[o] = '\0';
    c->n += 2;
}

static void find_candidates(const char *in, struct candidates *c)
{
    c->n = 0;
    const char *rest = strstr(in, "://");
    if (rest && (strncmp(in, "postgresql://", 13) == 0 || strncmp(in, "postgres://", 11) == 0)) {
        rest += 3;
        const char *colon = strchr(rest, ':');
        const char *first = strchr(rest, '@'), *last = strrchr(rest, '@');
        if (colon && first && colon < first)
            add(c, colon + 1, (size_t)(first - colon - 1));
        if (colon && last && colon < last)
            add(c, colon + 1, (size_t)(last - colon - 1));
    }
    /* libpq's own reading of password=, in a URL's query or a key=value string. */
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(in, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && c->n < MAX_CANDIDATES)
            snprintf(c->text[c->n++], sizeof c->text[0], "%s", o->val);
    PQconninfoFree(opts);
}

static void check(const char *in, const struct candidates *c, const char *msg, const char *path)
{
    for (int i = 0; i < c->n; i++) {
        if (strlen(c->text[i]) < 3)
            continue;
        if (strstr(msg, c->text[i])) {
            fprintf(stderr, "fuzz_conninfo: %s: password \"%s\" of \"%s\" in \"%s\"\n", path,
                    c->text[i], in, msg);
            abort();
        }
    }
}

static const char *opt(PQconninfoOption *opts, const char *key)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    char in[MAX_INPUT + 1];
    memcpy(in, data, size);
    in[size] = '\0';
    static struct candidates cand;
    struct pgconn_secrets sc;
    find_candidates(in, &cand);
    pgconn_find_secrets(in, &sc);
    struct dr_err err;

    char *parse_msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(in, &parse_msg);
    if (!opts) {
        err_clear(&err);
        pgconn_parse_message(&err, parse_msg, &sc);
        check(in, &cand, err.msg, "parse error");
        PQfreemem(parse_msg);
        pgconn_secrets_free(&sc);
        return 0;
    }
    /* What libpq says once it connects echoes the options it parsed: each one, quoted,
     * in the places its messages put them. */
    const char *host = opt(opts, "host"), *port = opt(opts, "port");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        char lib[2048];
        snprintf(lib, sizeof lib,
                 "connection to server at \"%s\" (%s), port %s failed: FATAL:  invalid value "
                 "\"%s\" for \"%s\" (user \"%s\", database \"%s\")\n\tIs the server running?",
                 host ? host : "", opt(opts, "hostaddr") ? opt(opts, "hostaddr") : "",
                 port ? port : "", o->val, o->keyword, opt(opts, "user") ? opt(opts, "user") : "",
                 opt(opts, "dbname") ? opt(opts, "dbname") : "");
        err_clear(&err);
        pgconn_connect_message(&err, lib, host, port, &sc);
        check(in, &cand, err.msg, "connect error");
    }
    /* libpq's own first message, when the only place it could go is a unix socket: it is
     * not waited on (PQconnectStart does not block on one that does not answer). */
    bool local = (!host || host[0] == '/') && !opt(opts, "hostaddr") && !getenv("PGHOST");
    PQconninfoFree(opts);
    if (local) {
        const char *const keys[] = { "connect_timeout", "dbname", NULL };
        const char *const vals[] = { "1", in, NULL };
        PGconn *conn = PQconnectStartParams(keys, vals, 1);
        if (conn && PQstatus(conn) == CONNECTION_BAD) {
            err_clear(&err);
            pgconn_connect_message(&err, PQerrorMessage(conn), PQhost(conn), PQport(conn), &sc);
            check(in, &cand, err.msg, "libpq");
        }
        PQfinish(conn);
    }
    pgconn_secrets_free(&sc);
    return 0;
}
