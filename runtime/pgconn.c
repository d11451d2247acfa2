/* PostgreSQL connections and statements for the store: opening with the password redacted,
 * SQLSTATE-aware error messages, the one-statement exec helper, and UTF-8 cleaning of text. */
#include "pgconn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

#define MIN_SECRET 3           /* shorter values are not redacted (they would mangle messages) */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Adds the n bytes at s to the secrets, as written and decoded: percent-decoded in a URL,
 * backslash escapes undone in a key=value string. */
static void add_secret(struct pgconn_secrets *sc, const char *s, size_t n, bool url)
{
    for (int pass = 0; pass < 2; pass++) {
        char *d = malloc(n + 1);
        char **t = d ? realloc(sc->text, (sc->n + 1) * sizeof *t) : NULL;
        if (!t) {
            free(d);
            sc->oom = true;
            return;
        }
        sc->text = t;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (pass && url && s[i] == '%' && lo >= 0) {
                if (!hi && !lo)
                    break;              /* %00: what a C string holds of it ends here */
                d[o++] = (char)(hi << 4 | lo);
                i += 2;
            } else if (pass && !url && s[i] == '\\' && i + 1 < n) {
                d[o++] = s[++i];        /* a quoted key=value's escape */
            } else {
                d[o++] = s[i];
            }
        }
        d[o] = '\0';
        bool keep = o >= MIN_SECRET;
        for (size_t k = 0; k < sc->n && keep; k++)
            keep = strcmp(sc->text[k], d) != 0;
        if (keep)
            sc->text[sc->n++] = d;
        else
            free(d);
    }
}

void pgconn_secrets_free(struct pgconn_secrets *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        explicit_bzero(sc->text[i], strlen(sc->text[i]));
        free(sc->text[i]);
    }
    free(sc->text);
    memset(sc, 0, sizeof *sc);
}

/* The password of each `password=value` (key=value strings and URL query parameters). */
static void kv_passwords(struct pgconn_secrets *sc, const char *s, bool url)
{
    for (const char *p = s; (p = strstr(p, "password")); p++) {
        const char *v = p + 8;
        while (!url && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (*v != '=')
            continue;
        v++;
        while (!url && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        size_t n;
        if (!url && *v == '\'') {
            v++;
            for (n = 0; v[n] && v[n] != '\''; n++)
                if (v[n] == '\\' && v[n + 1])
                    n++;
        } else {
            n = url ? strcspn(v, "&#") : strcspn(v, " \t\n\r");
        }
        add_secret(sc, v, n, url);
    }
}

void pgconn_find_secrets(const char *url, struct pgconn_secrets *sc)
{
    memset(sc, 0, sizeof *sc);
    if (!url)
        return;
    const char *rest = NULL;
    if (strncmp(url, "postgresql://", 13) == 0)
        rest = url + 13;
    else if (strncmp(url, "postgres://", 11) == 0)
        rest = url + 11;
    if (rest) {
        /* The user-info ends at the last '@' (a password may hold '@', '/' or '?' that
         * should have been percent-encoded): hiding too much is harmless. */
        const char *at = strrchr(rest, '@');
        if (at) {
            add_secret(sc, rest, (size_t)(at - rest), true);
            const char *colon = memchr(rest, ':', (size_t)(at - rest));
            if (colon)
                add_secret(sc, colon + 1, (size_t)(at - colon - 1), true);
            /* As libpq reads it: up to the first '@' (or '/'). */
            const char *at1 = strchr(rest, '@');
            if (colon && colon < at1)
                add_secret(sc, colon + 1, (size_t)(at1 - colon - 1), true);
        }
    }
    kv_passwords(sc, url, rest != NULL);
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            add_secret(sc, o->val, strlen(o->val), rest != NULL);
    PQconninfoFree(opts);
}

/* Replaces every occurrence of one secret in buf by "***"; true when one was found. */
static bool redact_one(char *buf, const char *secret)
{
    size_t sl = strlen(secret);
    bool found = false;
    char *p = buf;
    while ((p = strstr(p, secret))) {
        memmove(p + 3, p + sl, strlen(p + sl) + 1);   /* sl >= 3: the text only shrinks */
        memcpy(p, "***", 3);
        p += 3;
        found = true;
    }
    return found;
}

/* Replaces buf by a text saying it was withheld (cut to buf's length), or by "?" when a
 * secret is (or, one being lost, may be) a piece of that text too. */
static void withhold_text(char *buf, const struct pgconn_secrets *sc)
{
    const char *w = sc->oom ? "?" : "(message withheld: it may hold a password)";
    for (size_t i = 0; i < sc->n; i++)
        if (strstr(w, sc->text[i]))
            w = "?";
    snprintf(buf, strlen(buf) + 1, "%s", w);
}

void pgconn_redact(char *buf, const struct pgconn_secrets *sc)
{
    if (sc->oom) {
        withhold_text(buf, sc);
        return;
    }
    /* "***" next to what is left may spell a secret again: redact until nothing is found,
     * and withhold the whole text when that does not end. */
    for (int pass = 0; pass < 4; pass++) {
        bool found = false;
        for (size_t i = 0; i < sc->n; i++)
            found |= redact_one(buf, sc->text[i]);
        if (!found)
            return;
    }
    for (size_t i = 0; i < sc->n; i++)
        if (strstr(buf, sc->text[i])) {
            withhold_text(buf, sc);
            return;
        }
}

/* A redacted copy of s (NULL reads as ""), whole, before any cut could leave a piece of a
 * secret; NULL when out of memory. */
static char *redacted_dup(const char *s, const struct pgconn_secrets *sc)
{
    char *d = strdup(s ? s : "");
    if (d)
        pgconn_redact(d, sc);
    return d;
}

/* True when the user-info of a URL holds a character libpq reads as the end of it
 * ('/' or a second '@'): libpq would take a piece of the password for the host or port. */
static bool userinfo_ambiguous(const char *url)
{
    const char *rest = strncmp(url, "postgresql://", 13) == 0 ? url + 13
                     : strncmp(url, "postgres://", 11) == 0 ? url + 11 : NULL;
    if (!rest)
        return false;
    size_t n = strcspn(rest, "?");
    const char *first = memchr(rest, '@', n);
    if (!first)
        return false;
    const char *last = first;
    for (const char *p = first + 1; p < rest + n; p++)
        if (*p == '@')
            last = p;
    return last != first || memchr(rest, '/', (size_t)(first - rest)) != NULL;
}

bool pgconn_out_of_fds(const char *libpq_msg)
{
    return libpq_msg && strstr(libpq_msg, "Too many open files") != NULL;
}

void pgconn_connect_message(struct dr_err *err, const char *libpq_msg, const char *host,
                            const char *port, const struct pgconn_secrets *sc)
{
    /* Every piece is redacted whole first: a cut (the buffers below) may only shorten it. */
    char *h = redacted_dup(host, sc), *p = redacted_dup(port, sc), *m = redacted_dup(libpq_msg, sc);
    if (!h || !p || !m) {
        err_set(err, "cannot connect to database: out of memory");
        goto out;
    }
    char where[600];
    if (h[0] == '/' || h[0] == '@')
        snprintf(where, sizeof where, "socket %s/.s.PGSQL.%s", h, *p ? p : "5432");
    else
        snprintf(where, sizeof where, "%s (port %s)", *h ? h : "localhost", *p ? p : "5432");
    /* libpq: `connection to server on socket "..." failed: <cause>\n\tIs the server...` */
    char line[1024];
    pgconn_first_line(m, line, sizeof line);
    const char *cause = strstr(line, " failed: ");
    cause = cause ? cause + 9 : line;
    if (strncmp(cause, "FATAL:", 6) == 0)
        cause += 6 + strspn(cause + 6, " ");
    if (pgconn_out_of_fds(libpq_msg)) {
        struct rlimit rl;
        char lim[64] = "";
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            snprintf(lim, sizeof lim, " (ulimit -n is %llu)", (unsigned long long)rl.rlim_cur);
        err_set(err, "cannot connect to database: the process is out of file descriptors%s", lim);
        err_hint(err, "raise the limit (ulimit -n) or lower max_active_tasks");
    } else {
        err_set(err, "cannot connect to database at %s: %s", where, *cause ? cause : "unknown error");
    }
out:
    if (err)
        pgconn_redact(err->msg, sc);
    free(h);
    free(p);
    free(m);
}

void pgconn_parse_message(struct dr_err *err, const char *libpq_msg,
                          const struct pgconn_secrets *sc)
{
    char *m = redacted_dup(libpq_msg ? libpq_msg : "out of memory", sc);
    char line[512], safe[512];
    pgconn_first_line(m ? m : "out of memory", line, sizeof line);
    hide_quoted(line, safe, sizeof safe);
    err_set(err, "invalid database url: %s", safe);
    if (err)
        pgconn_redact(err->msg, sc);
    free(m);
}

PGconn *pgconn_open(const char *url, struct dr_err *err)
{
    struct pgconn_secrets *sc = calloc(1, sizeof *sc);
    PGconn *conn = NULL;
    if (!sc) {
        err_set(err, "cannot connect to database: out of memory");
        return NULL;
    }
    pgconn_find_secrets(url, sc);
    if (url && *url) {
        if (userinfo_ambiguous(url)) {
            err_set(err, "invalid database url: the user name or password holds a '/' or '@'");
            err_hint(err, "percent-encode them in the URL: '/' as %%2F, '@' as %%40");
            goto out;
        }
        char *parse_msg = NULL;
        PQconninfoOption *opts = PQconninfoParse(url, &parse_msg);
        if (!opts) {
            pgconn_parse_message(err, parse_msg, sc);
            PQfreemem(parse_msg);
            goto out;
        }
        PQconninfoFree(opts);
    }
    /* Later keywords win: the URL may override connect_timeout, never application_name. */
    const char *const keys[] = { "connect_timeout", "dbname", "application_name",
                                 "client_encoding", NULL };
    const char *const vals[] = { "10", url && *url ? url : NULL, "dagrun", "UTF8", NULL };
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        err_set(err, "cannot connect to database: out of memory");
        goto out;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pgconn_connect_message(err, PQerrorMessage(conn), PQhost(conn), PQport(conn), sc);
        PQfinish(conn);
        conn = NULL;
        goto out;
    }
    PQsetNoticeReceiver(conn, notice_receiver, NULL);
out:
    pgconn_secrets_free(sc);
    free(sc);
    return conn;
}
