/* PostgreSQL connections and statements for the store: opening with the password redacted,
 * SQLSTATE-aware error messages, the one-statement exec helper, and UTF-8 cleaning of text. */
#include "pgconn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Copies the first line of s (trimmed) into buf. */
void pgconn_first_line(const char *s, char *buf, size_t len)
{
    if (!len)
        return;
    if (!s)
        s = "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strcspn(s, "\r\n");
    if (n >= len)
        n = len - 1;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

/* Sets err to "<what>: <server's primary message>" (or libpq's first line when the
 * failure was not the server's, e.g. a lost connection). Always returns -1. */
int pgconn_err(struct dr_err *err, PGconn *conn, const PGresult *res, const char *what)
{
    char line[1024];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pgconn_first_line(primary ? primary : PQerrorMessage(conn), line, sizeof line);
    if (!line[0] && res)
        pgconn_first_line(PQresultErrorMessage(res), line, sizeof line);
    /* A missing schema, table or column: a database never initialized, or one made by an
     * older dagrun (schema.sql only adds, so applying it again upgrades). */
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool old_schema = code && (!strcmp(code, "3F000") || !strcmp(code, "42P01") ||
                               !strcmp(code, "42703"));
    return err_set(err, "%s: %s%s", what, line[0] ? line : "unknown database error",
                   old_schema ? "\nhint: run `dagrun initdb` to create or upgrade the schema" : "");
}

/* Runs one parameterized statement (all parameters text, NULL for SQL NULL). Returns the
 * result (caller PQclears) or NULL with err set to "<what>: <message>". */
PGresult *pgconn_exec(PGconn *conn, const char *sql, int n, const char *const *vals,
                      struct dr_err *err, const char *what_fmt, ...)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (res && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
        return res;
    char what[512];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    pgconn_err(err, conn, res, what);
    PQclear(res);
    return NULL;
}

int pgconn_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* The length of the valid UTF-8 sequence at p[i] (len: bytes in p), 0 when there is none.
 * PostgreSQL and Jansson both refuse invalid UTF-8 (overlong forms, surrogates, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t i, size_t len)
{
    unsigned c = p[i];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
             : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = n > 0 && i + n <= len;
    for (size_t k = 1; ok && k < n; k++)
        ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && n > 1) {
        unsigned cp = c & (0xFF >> (n + 1));
        for (size_t k = 1; k < n; k++)
            cp = cp << 6 | (p[i + k] & 0x3F);
        static const unsigned min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        ok = cp >= min[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    return ok ? n : 0;
}

static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, n; i < len; i += n)
        if (p[i] < 0x80)
            n = 1;
        else if (!(n = utf8_seq(p, i, len)))
            return false;
    return true;
}

/* A copy of s with every byte that is not part of valid UTF-8 replaced by '?'; NULL when
 * out of memory. An error text may come from anywhere (an HTTP body, a file). */
static char *utf8_clean(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p, i, len);
        if (n) {
            memcpy(out + i, p + i, n);
            i += n;
        } else
            out[i++] = '?';
    }
    out[len] = '\0';
    return out;
}

/* A JSON string for s; invalid UTF-8 is replaced (see utf8_clean). NULL on no memory. */
json_t *pgconn_json_str(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char *c = utf8_clean(s);
    v = c ? json_string(c) : NULL;
    free(c);
    return v;
}

/* A text parameter: s itself when it is valid UTF-8, else a cleaned copy in *tmp. */
const char *pgconn_text_param(const char *s, char **tmp)
{
    *tmp = NULL;
    if (!s || utf8_valid(s, strlen(s)))
        return s;
    *tmp = utf8_clean(s);
    return *tmp ? *tmp : "?";
}

/* Loads a JSON text returned by the server; NULL with err when it does not parse. */
json_t *pgconn_load_json(const char *text, const char *what, struct dr_err *err)
{
    json_error_t je;
    json_t *v = json_loads(text ? text : "null", JSON_DECODE_ANY, &je);
    if (!v)
        err_set(err, "%s: bad JSON from the server: %s", what, je.text);
    return v;
}

/* Drops NOTICEs (the schema's "already exists, skipping"); logs WARNINGs and above. */
static void notice_receiver(void *arg, const PGresult *res)
{
    (void)arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!sev || strcmp(sev, "WARNING") != 0)
        return;
    char line[1024];
    pgconn_first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), line, sizeof line);
    log_warn("database: %s", line);
}

/* Replaces each quoted part of a libpq parse message ("...") longer than one character by
 * "...", since libpq quotes pieces of the URL (which may hold the password). */
static void hide_quoted(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 6 < len; p++) {
        const char *q = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (q && q - p > 2) {
            memcpy(out + o, "\"...\"", 5);
            o += 5;
            p = q;
        } else
            out[o++] = *p;
    }
    out[o] = '\0';
}

/* Replaces every occurrence of secret (3 characters or more) in buf by "***". */
static void redact(char *buf, size_t size, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 3)
        return;
    char *p;
    while ((p = strstr(buf, secret))) {
        size_t tail = strlen(p + sl);
        if ((size_t)(p - buf) + 3 + tail + 1 > size)
            break;
        memmove(p + 3, p + sl, tail + 1);
        memcpy(p, "***", 3);
    }
}

PGconn *pgconn_open(const char *url, struct dr_err *err)
{
    char *parse_msg = NULL;
    char password[256] = "";
    if (url && *url) {
        PQconninfoOption *opts = PQconninfoParse(url, &parse_msg);
        if (!opts) {
            char line[512], safe[512];
            pgconn_first_line(parse_msg ? parse_msg : "out of memory", line, sizeof line);
            hide_quoted(line, safe, sizeof safe);
            PQfreemem(parse_msg);
            err_set(err, "invalid database url: %s", safe);
            return NULL;
        }
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, "password") == 0 && o->val)
                snprintf(password, sizeof password, "%s", o->val);
        PQconninfoFree(opts);
    }
    /* Later keywords win: the URL may override connect_timeout, never application_name. */
    const char *const keys[] = { "connect_timeout", "dbname", "application_name",
                                 "client_encoding", NULL };
    const char *const vals[] = { "10", url && *url ? url : NULL, "dagrun", "UTF8", NULL };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        err_set(err, "cannot connect to database: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *host = PQhost(conn), *port = PQport(conn);
        char where[600];
        if (host && (host[0] == '/' || host[0] == '@'))
            snprintf(where, sizeof where, "socket %s/.s.PGSQL.%s", host,
                     port && *port ? port : "5432");
        else
            snprintf(where, sizeof where, "%s (port %s)", host && *host ? host : "localhost",
                     port && *port ? port : "5432");
        /* libpq: `connection to server on socket "..." failed: <cause>\n\tIs the server...` */
        char line[1024];
        pgconn_first_line(PQerrorMessage(conn), line, sizeof line);
        const char *cause = strstr(line, " failed: ");
        cause = cause ? cause + 9 : line;
        if (strncmp(cause, "FATAL:", 6) == 0)
            cause += 6 + strspn(cause + 6, " ");
        err_set(err, "cannot connect to database at %s: %s", where,
                *cause ? cause : "unknown error");
        if (err)
            redact(err->msg, sizeof err->msg, password);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeReceiver(conn, notice_receiver, NULL);
    return conn;
}
