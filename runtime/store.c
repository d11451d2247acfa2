/* Run state in PostgreSQL (schema dagrun) through libpq, with parameterized statements only. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct store {
    PGconn *conn;               /* owned; used by one thread at a time */
    char *url;                  /* for reconnecting; may hold a password: wiped on close */
    char **locks;               /* run ids locked with store_run_lock: re-taken on reconnect */
    size_t n_locks;
};

/* A lost connection (server restarted, network cut) is reopened by the next statement
 * of the store: up to RECONNECT_MS of attempts with backoff, then the statement is sent
 * once more. Every statement of the store is a single autocommit statement that is safe
 * to repeat (upserts, state sets, heartbeats); a warnings append whose reply was lost
 * with the connection may be stored twice. */
#define RECONNECT_MS 30000

static bool store_reconnect(struct store *s);

/* A timestamptz column as an ISO-8601 UTC string, or SQL NULL. */
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* ---- errors ---- */

/* Copies the first line of s (trimmed) into buf. */
static void first_line(const char *s, char *buf, size_t len)
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
static int pg_err(struct dr_err *err, PGconn *conn, const PGresult *res, const char *what)
{
    char line[1024];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    first_line(primary ? primary : PQerrorMessage(conn), line, sizeof line);
    if (!line[0] && res)
        first_line(PQresultErrorMessage(res), line, sizeof line);
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
static PGresult *exec(PGconn *conn, const char *sql, int n, const char *const *vals,
                      struct dr_err *err, const char *what_fmt, ...)
    __attribute__((format(printf, 6, 7)));

static PGresult *exec(PGconn *conn, const char *sql, int n, const char *const *vals,
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
    pg_err(err, conn, res, what);
    PQclear(res);
    return NULL;
}

/* exec on the store's connection, reconnecting once when the connection was lost. */
static PGresult *sexec(struct store *s, const char *sql, int n, const char *const *vals,
                       struct dr_err *err, const char *what_fmt, ...)
    __attribute__((format(printf, 6, 7)));

static PGresult *sexec(struct store *s, const char *sql, int n, const char *const *vals,
                       struct dr_err *err, const char *what_fmt, ...)
{
    PGresult *res = PQexecParams(s->conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (!(res && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) &&
        PQstatus(s->conn) == CONNECTION_BAD && store_reconnect(s)) {
        PQclear(res);
        res = PQexecParams(s->conn, sql, n, NULL, vals, NULL, NULL, 0);
        st = PQresultStatus(res);
    }
    if (res && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
        return res;
    char what[512];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    pg_err(err, s->conn, res, what);
    PQclear(res);
    return NULL;
}

/* ---- small helpers ---- */

static int parse_i64(const char *s, int64_t *out)
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
static json_t *json_str(const char *s)
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
static const char *text_param(const char *s, char **tmp)
{
    *tmp = NULL;
    if (!s || utf8_valid(s, strlen(s)))
        return s;
    *tmp = utf8_clean(s);
    return *tmp ? *tmp : "?";
}

/* Loads a JSON text returned by the server; NULL with err when it does not parse. */
static json_t *load_json(const char *text, const char *what, struct dr_err *err)
{
    json_error_t je;
    json_t *v = json_loads(text ? text : "null", JSON_DECODE_ANY, &je);
    if (!v)
        err_set(err, "%s: bad JSON from the server: %s", what, je.text);
    return v;
}

/* One-row, one-column JSON query; a NULL or missing value gives NULL with err "run X: no
 * such run". */
static json_t *query_json(struct store *s, const char *sql, int n, const char *const *vals,
                          const char *what, const char *run_id, struct dr_err *err)
{
    PGresult *res = sexec(s, sql, n, vals, err, "%s", what);
    if (!res)
        return NULL;
    json_t *v = NULL;
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
        err_set(err, "run %s: no such run", run_id ? run_id : "");
        err_hint(err, "dagrun runs lists the runs");
    } else {
        v = load_json(PQgetvalue(res, 0, 0), what, err);
    }
    PQclear(res);
    return v;
}

/* ---- connections ---- */

/* Drops NOTICEs (the schema's "already exists, skipping"); logs WARNINGs and above. */
static void notice_receiver(void *arg, const PGresult *res)
{
    (void)arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!sev || strcmp(sev, "WARNING") != 0)
        return;
    char line[1024];
    first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), line, sizeof line);
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

PGconn *store_open_conn(const char *url, struct dr_err *err)
{
    char *parse_msg = NULL;
    char password[256] = "";
    if (url && *url) {
        PQconninfoOption *opts = PQconninfoParse(url, &parse_msg);
        if (!opts) {
            char line[512], safe[512];
            first_line(parse_msg ? parse_msg : "out of memory", line, sizeof line);
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
        first_line(PQerrorMessage(conn), line, sizeof line);
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

struct store *store_open(const char *url, struct dr_err *err)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "out of memory");
        return NULL;
    }
    if (url && !(s->url = strdup(url))) {
        free(s);
        err_set(err, "out of memory");
        return NULL;
    }
    if (!(s->conn = store_open_conn(url, err))) {
        free(s->url);
        free(s);
        return NULL;
    }
    return s;
}

/* Reopens a lost connection with backoff (100 ms doubling to 2 s, for up to
 * RECONNECT_MS) and re-takes the run locks. Returns true when connected again.
 * Sleeps: the coordinator waits here, its workers keep their own connections. */
static bool store_reconnect(struct store *s)
{
    char line[512];
    first_line(PQerrorMessage(s->conn), line, sizeof line);
    log_warn("database connection lost (%s); reconnecting", line[0] ? line : "no reason given");
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long delay_ms = 100;
    for (;;) {
        struct dr_err e = { .msg = "" };
        PGconn *c = store_open_conn(s->url, &e);
        if (c) {
            PQfinish(s->conn);
            s->conn = c;
            for (size_t i = 0; i < s->n_locks; i++) {
                const char *v[] = { s->locks[i] };
                PGresult *r = PQexecParams(c, "SELECT pg_try_advisory_lock(1684107122, hashtext($1))",
                                           1, NULL, v, NULL, NULL, 0);
                if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "t") != 0)
                    log_error("run %s: could not take its lock again after reconnecting",
                              s->locks[i]);
                PQclear(r);
            }
            log_info("database connection reopened");
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (long)((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (spent + delay_ms > RECONNECT_MS) {
            log_error("%s; giving up after %ld ms", e.msg, spent);
            return false;
        }
        nanosleep(&(struct timespec){ delay_ms / 1000, (delay_ms % 1000) * 1000000L }, NULL);
        delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
    }
}

void store_close(struct store *s)
{
    if (!s)
        return;
    PQfinish(s->conn);
    if (s->url) {
        explicit_bzero(s->url, strlen(s->url));
        free(s->url);
    }
    for (size_t i = 0; i < s->n_locks; i++)
        free(s->locks[i]);
    free(s->locks);
    free(s);
}

PGconn *store_conn(struct store *s)
{
    return s ? s->conn : NULL;
}

/* ---- schema ---- */

/* Reads a whole file into a new NUL-terminated buffer; NULL with err. */
static char *read_file(const char *path, struct dr_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        char eb[128];
        int e = errno;
        if (strerror_r(e, eb, sizeof eb) != 0)
            snprintf(eb, sizeof eb, "error %d", e);
        err_set(err, "%s: %s", path, eb);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        err_set(err, "%s: %s", path, bad ? "read error" : "out of memory");
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

int store_initdb(struct store *s, const char *schema_path, struct dr_err *err)
{
    char *sql = read_file(schema_path, err);
    if (!sql)
        return -1;
    int rc = 0;
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (!res || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)) {
        /* Name the line of the statement that failed, as "file:line: message". */
        const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
        int64_t p = 0;
        char what[1024];
        if (pos && parse_i64(pos, &p) == 0 && p > 0) {
            /* The position counts characters (from 1), so UTF-8 continuation bytes are
             * skipped while counting. */
            int line = 1;
            int64_t chars = 0;
            for (const char *c = sql; *c && chars < p - 1; c++) {
                if (((unsigned char)*c & 0xC0) != 0x80)
                    chars++;
                line += *c == '\n';
            }
            snprintf(what, sizeof what, "%s:%d", schema_path, line);
        } else
            snprintf(what, sizeof what, "%s", schema_path);
        rc = pg_err(err, s->conn, res, what);
    }
    PQclear(res);
    free(sql);
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

/* ---- runs ---- */

/* 6 hex digits from /dev/urandom (time, pid and a counter when it cannot be read). */
static void random_suffix(char buf[7])
{
    unsigned char b[3] = { 0, 0, 0 };
    bool ok = false;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ok = read(fd, b, sizeof b) == (ssize_t)sizeof b;
        close(fd);
    }
    if (!ok) {
        static _Atomic unsigned counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned v = (unsigned)ts.tv_nsec ^ (unsigned)getpid() * 2654435761u ^ counter++ * 40503u;
        b[0] = (unsigned char)v;
        b[1] = (unsigned char)(v >> 8);
        b[2] = (unsigned char)(v >> 16);
    }
    snprintf(buf, 7, "%02x%02x%02x", b[0], b[1], b[2]);
}

static void iso_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
}

static const char sql_dag_ensure[] =
    "INSERT INTO dagrun.dag (dag_id) VALUES ($1) ON CONFLICT (dag_id) DO NOTHING";

/* ON CONFLICT DO NOTHING without a target covers both the primary key and the partial
 * unique index on (dag_id, logical_date) of scheduled runs. */
static const char sql_run_create[] =
    "WITH r AS ("
    " INSERT INTO dagrun.dag_run (run_id, dag_id, run_type, logical_date, data_interval_start,"
    "  data_interval_end, conf, state, pid, hostname)"
    " VALUES ($1, $2, $3, to_timestamp($4::bigint), to_timestamp($5::bigint),"
    "  to_timestamp($6::bigint), $7::jsonb, 'queued', $8::int, $9)"
    " ON CONFLICT DO NOTHING RETURNING run_id, dag_id, run_type, logical_date),"
    " u AS (UPDATE dagrun.dag d SET last_scheduled_at = greatest(d.last_scheduled_at,"
    "  r.logical_date), updated_at = now() FROM r"
    "  WHERE d.dag_id = r.dag_id AND r.run_type = 'scheduled')"
    " SELECT run_id FROM r";

int store_run_create(struct store *s, const char *dag_id, const char *run_type,
                     int64_t logical_date, int64_t data_interval_start,
                     int64_t data_interval_end, const json_t *conf, char *run_id,
                     size_t run_id_len, struct dr_err *err)
{
    bool scheduled = strcmp(run_type, "scheduled") == 0;
    if (!scheduled && strcmp(run_type, "manual") != 0 && strcmp(run_type, "test") != 0)
        return err_set(err, "create run of %s: unknown run type \"%s\"", dag_id, run_type);
    const char *dv[] = { dag_id };
    PGresult *res = sexec(s, sql_dag_ensure, 1, dv, err, "create run of %s", dag_id);
    if (!res)
        return -1;
    PQclear(res);

    char *conf_txt = conf ? json_dumps(conf, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (conf && !conf_txt)
        return err_set(err, "create run of %s: conf cannot be written as JSON", dag_id);
    char date[40], t0[24], t1[24], t2[24], pid[16], host[256] = "";
    iso_utc(logical_date, date, sizeof date);
    snprintf(t0, sizeof t0, "%lld", (long long)logical_date);
    snprintf(t1, sizeof t1, "%lld", (long long)data_interval_start);
    snprintf(t2, sizeof t2, "%lld", (long long)data_interval_end);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    char *host_tmp;
    const char *host_p = text_param(host, &host_tmp);

    int rc = -1;
    /* A manual or test run id carries a random suffix; on the (unlikely) collision, draw
     * again. A scheduled run's id is fixed, so a conflict means it exists. */
    for (int attempt = 0; attempt < 5 && rc < 0; attempt++) {
        char id[512], suffix[7];
        int n;
        if (scheduled)
            n = snprintf(id, sizeof id, "%s__%s__%s", dag_id, run_type, date);
        else {
            random_suffix(suffix);
            n = snprintf(id, sizeof id, "%s__%s__%s__%s", dag_id, run_type, date, suffix);
        }
        if (n < 0 || (size_t)n >= sizeof id || (size_t)n >= run_id_len) {
            err_set(err, "create run of %s: run id too long", dag_id);
            break;
        }
        const char *v[] = { id, dag_id, run_type, t0, t1, t2, conf_txt ? conf_txt : "{}",
                            pid, host_p[0] ? host_p : NULL };
        res = sexec(s, sql_run_create, 9, v, err, "create run of %s", dag_id);
        if (!res)
            break;
        int made = PQntuples(res);
        PQclear(res);
        if (made == 1 || scheduled) {
            snprintf(run_id, run_id_len, "%s", id);
            rc = made == 1 ? 0 : 1;
        } else if (attempt == 4)
            err_set(err, "create run of %s: no free run id after 5 tries", dag_id);
    }
    free(conf_txt);
    free(host_tmp);
    return rc;
}

/* running stamps started_at, heartbeat_at, pid and host and clears ended_at; a terminal
 * state stamps ended_at. A cancel request survives queued -> running but not a resume of
 * an ended run. */
static const char sql_run_set_state[] =
    "UPDATE dagrun.dag_run SET state = $2::text, error = $3::text,"
    " started_at = CASE WHEN $2::text = 'running' THEN now() ELSE started_at END,"
    " heartbeat_at = CASE WHEN $2::text = 'running' THEN now() ELSE heartbeat_at END,"
    " ended_at = CASE WHEN $2::text IN ('success', 'partial', 'failed', 'cancelled') THEN now()"
    "  WHEN $2::text IN ('queued', 'running') THEN NULL ELSE ended_at END,"
    " cancel_requested = CASE WHEN $2::text = 'running' AND state NOT IN ('queued', 'running')"
    "  THEN false ELSE cancel_requested END,"
    " pid = CASE WHEN $2::text = 'running' THEN $4::int ELSE pid END,"
    " hostname = CASE WHEN $2::text = 'running' THEN coalesce($5::text, hostname) ELSE hostname END"
    " WHERE run_id = $1";

int store_run_set_state(struct store *s, const char *run_id, enum run_state state,
                        const char *error, struct dr_err *err)
{
    char pid[16], host[256] = "";
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    char *etmp, *htmp;
    const char *e = text_param(error, &etmp), *h = text_param(host, &htmp);
    const char *v[] = { run_id, run_state_name(state), e, pid, h[0] ? h : NULL };
    PGresult *res = sexec(s, sql_run_set_state, 5, v, err, "set state of run %s", run_id);
    free(etmp);
    free(htmp);
    if (!res)
        return -1;
    int rc = strcmp(PQcmdTuples(res), "1") == 0 ? 0
             : err_set(err, "set state of run %s: no such run", run_id);
    PQclear(res);
    return rc;
}

int store_run_heartbeat(struct store *s, const char *run_id, bool *cancel_requested,
                        struct dr_err *err)
{
    const char *v[] = { run_id };
    PGresult *res = sexec(s,
                          "UPDATE dagrun.dag_run SET heartbeat_at = now() WHERE run_id = $1"
                         " RETURNING cancel_requested",
                         1, v, err, "heartbeat of run %s", run_id);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) != 1)
        rc = err_set(err, "heartbeat of run %s: no such run", run_id);
    else if (cancel_requested)
        *cancel_requested = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return rc;
}

/* Counters merge per key: numbers add up, any other value replaces the old one. */
static const char sql_run_add_warnings[] =
    "UPDATE dagrun.dag_run r SET"
    " warnings = r.warnings || coalesce($2::jsonb, '[]'::jsonb),"
    " counters = CASE WHEN $3::jsonb IS NULL THEN r.counters ELSE ("
    "  SELECT coalesce(jsonb_object_agg(m.k, CASE"
    "   WHEN jsonb_typeof(m.a) = 'number' AND jsonb_typeof(m.b) = 'number'"
    "    THEN to_jsonb((m.a #>> '{}')::numeric + (m.b #>> '{}')::numeric)"
    "   ELSE coalesce(m.b, m.a) END), '{}'::jsonb)"
    "  FROM (SELECT coalesce(o.key, n.key) AS k, o.value AS a, n.value AS b"
    "   FROM jsonb_each(r.counters) o FULL JOIN jsonb_each($3::jsonb) n ON o.key = n.key) m"
    " ) END"
    " WHERE r.run_id = $1";

int store_run_add_warnings(struct store *s, const char *run_id, const json_t *warnings,
                           const json_t *counters, struct dr_err *err)
{
    if (warnings && !json_is_array(warnings))
        return err_set(err, "add warnings to run %s: warnings must be an array", run_id);
    if (counters && !json_is_object(counters))
        return err_set(err, "add warnings to run %s: counters must be an object", run_id);
    char *w = warnings ? json_dumps(warnings, JSON_COMPACT) : NULL;
    char *c = counters ? json_dumps(counters, JSON_COMPACT) : NULL;
    int rc = -1;
    if ((warnings && !w) || (counters && !c)) {
        err_set(err, "add warnings to run %s: out of memory", run_id);
        goto out;
    }
    const char *v[] = { run_id, w, c };
    PGresult *res = sexec(s, sql_run_add_warnings, 3, v, err, "add warnings to run %s",
                         run_id);
    if (!res)
        goto out;
    rc = strcmp(PQcmdTuples(res), "1") == 0 ? 0
         : err_set(err, "add warnings to run %s: no such run", run_id);
    PQclear(res);
out:
    free(w);
    free(c);
    return rc;
}

int store_run_request_cancel(struct store *s, const char *run_id, struct dr_err *err)
{
    const char *v[] = { run_id };
    PGresult *res = sexec(s,
                         "WITH u AS (UPDATE dagrun.dag_run SET cancel_requested = true"
                         " WHERE run_id = $1 AND state IN ('queued', 'running') RETURNING 1)"
                         " SELECT (SELECT count(*) FROM u),"
                         " (SELECT state FROM dagrun.dag_run WHERE run_id = $1)",
                         1, v, err, "cancel run %s", run_id);
    if (!res)
        return -1;
    int rc = 0;
    if (strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        if (PQgetisnull(res, 0, 1))
            rc = err_set(err, "cancel run %s: no such run", run_id);
        else
            rc = err_set(err, "cancel run %s: the run has ended (%s)", run_id,
                         PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return rc;
}

/* The run row as a JSON object (json_build_object keeps the key order). */
#define RUN_JSON                                                                              \
    "json_build_object('run_id', r.run_id, 'dag_id', r.dag_id, 'run_type', r.run_type,"       \
    " 'logical_date', " ISO("r.logical_date") ","                                             \
    " 'data_interval_start', " ISO("r.data_interval_start") ","                               \
    " 'data_interval_end', " ISO("r.data_interval_end") ","                                   \
    " 'state', r.state, 'conf', r.conf, 'warnings', r.warnings, 'counters', r.counters,"      \
    " 'error', r.error, 'queued_at', " ISO("r.queued_at") ","                                 \
    " 'started_at', " ISO("r.started_at") ", 'ended_at', " ISO("r.ended_at") ","              \
    " 'duration_s', round(extract(epoch FROM coalesce(r.ended_at, CASE WHEN r.state IN"       \
    "  ('queued', 'running') THEN now() END) - r.started_at)::numeric, 3),"                   \
    " 'heartbeat_at', " ISO("r.heartbeat_at") ","                                             \
    " 'heartbeat_age_s', round(extract(epoch FROM now() - r.heartbeat_at)::numeric, 3),"      \
    " 'cancel_requested', r.cancel_requested, 'pid', r.pid, 'hostname', r.hostname)"

int store_run_lock(struct store *s, const char *run_id, bool *got, struct dr_err *err)
{
    /* Two 32-bit keys: a fixed namespace for run locks, and the run id's hash. */
    const char *v[] = { run_id };
    PGresult *res = sexec(s, "SELECT pg_try_advisory_lock(1684107122, hashtext($1))", 1, v,
                         err, "lock run %s", run_id);
    if (!res)
        return -1;
    *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (*got) {                 /* remembered, to take it again after a reconnect */
        char **l = realloc(s->locks, (s->n_locks + 1) * sizeof *l);
        if (l) {
            s->locks = l;
            if ((l[s->n_locks] = strdup(run_id)))
                s->n_locks++;
        }
    }
    return 0;
}

json_t *store_run_get(struct store *s, const char *run_id, struct dr_err *err)
{
    const char *v[] = { run_id };
    return query_json(s, "SELECT " RUN_JSON " FROM dagrun.dag_run r WHERE r.run_id = $1",
                      1, v, "get run", run_id, err);
}

/* ---- task instances ---- */

/* Duplicate (task, map index) pairs in one batch keep the last record: ON CONFLICT DO
 * UPDATE may not touch a row twice in one statement. A "running" record never replaces an
 * ended state of the same or a later try: the coordinator's batched records can reach the
 * database after a worker committed the instance's end together with its data. */
static const char sql_ti_write[] =
    "INSERT INTO dagrun.task_instance AS t (run_id, task_id, map_index, map_key, state,"
    " try_number, started_at, ended_at, error, output, checkpoint)"
    " SELECT DISTINCT ON (r.task_id, r.map_index) $1, r.task_id, r.map_index, r.map_key,"
    "  r.state, r.try_number,"
    "  CASE WHEN r.start_ms > 0"
    "   THEN timestamptz 'epoch' + r.start_ms * interval '1 millisecond' END,"
    "  CASE WHEN r.end_ms > 0"
    "   THEN timestamptz 'epoch' + r.end_ms * interval '1 millisecond' END,"
    "  r.error, r.output, r.checkpoint"
    " FROM jsonb_to_recordset($2::jsonb) AS r(i int, task_id text, map_index int, map_key text,"
    "  state text, try_number int, start_ms bigint, end_ms bigint, error text, output jsonb,"
    "  checkpoint text)"
    " ORDER BY r.task_id, r.map_index, r.i DESC"
    " ON CONFLICT (run_id, task_id, map_index) DO UPDATE SET map_key = EXCLUDED.map_key,"
    "  state = EXCLUDED.state, try_number = EXCLUDED.try_number,"
    "  started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
    "  error = EXCLUDED.error, output = EXCLUDED.output,"
    "  checkpoint = coalesce(EXCLUDED.checkpoint, t.checkpoint)"
    " WHERE NOT (EXCLUDED.state = 'running' AND t.state <> 'running'"
    "  AND t.try_number >= EXCLUDED.try_number)";

/* The records as one JSON array text for jsonb_to_recordset; NULL when out of memory. */
static char *ti_records_json(const struct ti_record *recs, size_t n)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        const struct ti_record *r = &recs[i];
        json_t *o = json_object();
        ok = o && json_array_append_new(arr, o) == 0;
        if (!ok)
            break;
        ok = json_object_set_new(o, "i", json_integer((json_int_t)i)) == 0 &&
             json_object_set_new(o, "task_id", json_str(r->task_id ? r->task_id : "")) == 0 &&
             json_object_set_new(o, "map_index", json_integer(r->map_index)) == 0 &&
             json_object_set_new(o, "state", json_string(ti_state_name(r->state))) == 0 &&
             json_object_set_new(o, "try_number", json_integer(r->try_number)) == 0 &&
             json_object_set_new(o, "start_ms", json_integer(r->start_ms)) == 0 &&
             json_object_set_new(o, "end_ms", json_integer(r->end_ms)) == 0 &&
             (!r->map_key || json_object_set_new(o, "map_key", json_str(r->map_key)) == 0) &&
             (!r->error || json_object_set_new(o, "error", json_str(r->error)) == 0) &&
             (!r->checkpoint ||
              json_object_set_new(o, "checkpoint", json_str(r->checkpoint)) == 0) &&
             /* A deep copy: the record's output may be shared with other threads. */
             (!r->output ||
              json_object_set_new(o, "output", json_deep_copy(r->output)) == 0);
    }
    char *txt = ok ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return txt;
}

/* ---- the COPY fast path for large batches ----
 * A batch of records goes by COPY straight into task_instance when none of its rows exists yet
 * (the common case: the coordinator's batches of ended items of a fresh run), about twice as
 * fast on the server as the jsonb upsert. COPY is all or nothing: on a unique violation (a row
 * exists, e.g. an unmapped task's earlier "running" record, or a resumed run) or any other
 * error the batch is rolled back and written by the upsert below, which decides as before. */
enum { TI_COPY_MIN = 32 };

struct tbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void tb_u16(struct tbuf *b, uint16_t v)
{
    unsigned char x[2] = { (unsigned char)(v >> 8), (unsigned char)v };
    tb_put(b, (const char *)x, 2);
}

static void tb_u32(struct tbuf *b, uint32_t v)
{
    unsigned char x[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    tb_put(b, (const char *)x, 4);
}

/* A binary COPY field: its length, then its bytes (a NULL is the length -1). */
static void tb_null(struct tbuf *b)
{
    tb_u32(b, UINT32_MAX);
}

static void tb_int4(struct tbuf *b, int32_t v)
{
    tb_u32(b, 4);
    tb_u32(b, (uint32_t)v);
}

/* text (and a jsonb's text after its version byte 1); invalid UTF-8 is replaced as
 * json_str does. */
static void tb_text(struct tbuf *b, const char *s, bool jsonb)
{
    if (!s) {
        tb_null(b);
        return;
    }
    char *tmp;
    const char *v = text_param(s, &tmp);
    size_t n = strlen(v);
    if (n > INT32_MAX - 1) {
        b->oom = true;
        n = 0;
    }
    tb_u32(b, (uint32_t)(n + jsonb));
    if (jsonb)
        tb_put(b, "\1", 1);
    tb_put(b, v, n);
    free(tmp);
}

/* A timestamptz for Unix milliseconds (NULL when ms <= 0): microseconds since 2000-01-01. */
static void tb_time(struct tbuf *b, int64_t ms)
{
    if (ms <= 0) {
        tb_null(b);
        return;
    }
    uint64_t us = (uint64_t)((ms - 946684800000LL) * 1000);
    tb_u32(b, 8);
    tb_u32(b, (uint32_t)(us >> 32));
    tb_u32(b, (uint32_t)us);
}

/* The records in COPY's binary format; NULL when out of memory. Binary spares the server
 * parsing numbers and times, and the client formatting them. */
static char *ti_records_copy(const char *run_id, const struct ti_record *recs, size_t n,
                             size_t *len)
{
    struct tbuf b = { 0 };
    tb_put(&b, "PGCOPY\n\377\r\n\0", 11);
    tb_u32(&b, 0);      /* flags */
    tb_u32(&b, 0);      /* header extension length */
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        const struct ti_record *r = &recs[i];
        tb_u16(&b, 11);
        tb_text(&b, run_id, false);
        tb_text(&b, r->task_id ? r->task_id : "", false);
        tb_int4(&b, (int32_t)r->map_index);
        tb_text(&b, r->map_key, false);
        tb_text(&b, ti_state_name(r->state), false);
        tb_int4(&b, r->try_number);
        tb_time(&b, r->start_ms);
        tb_time(&b, r->end_ms);
        tb_text(&b, r->error, false);
        if (r->output) {
            /* A deep copy: the record's output may be shared with other threads. */
            json_t *copy = json_deep_copy(r->output);
            char *txt = copy ? json_dumps(copy, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(copy);
            ok = txt != NULL;
            tb_text(&b, txt, true);
            free(txt);
        } else {
            tb_null(&b);
        }
        tb_text(&b, r->checkpoint, false);
    }
    tb_u16(&b, UINT16_MAX);    /* trailer: -1 */
    if (!ok || b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static bool cmd_ok(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Tries the batch by COPY in its own transaction or savepoint. Returns true when written;
 * false when the batch was rolled back (nothing written; the connection is as before). */
static bool ti_write_copy(PGconn *conn, const char *run_id, const struct ti_record *recs,
                          size_t n)
{
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)
        return false;
    size_t len = 0;
    char *txt = ti_records_copy(run_id, recs, n, &len);
    if (!txt)
        return false;
    bool own = ts == PQTRANS_IDLE;
    bool ok = cmd_ok(conn, own ? "BEGIN" : "SAVEPOINT dr_ti_copy");
    if (ok) {
        PGresult *r = PQexec(conn, "COPY dagrun.task_instance (run_id, task_id, map_index, map_key,"
                                   " state, try_number, started_at, ended_at, error, output,"
                                   " checkpoint) FROM STDIN (FORMAT binary)");
        ok = PQresultStatus(r) == PGRES_COPY_IN;
        PQclear(r);
        if (ok) {
            for (size_t off = 0; ok && off < len; off += 1 << 16) {
                size_t k = len - off < (1 << 16) ? len - off : 1 << 16;
                ok = PQputCopyData(conn, txt + off, (int)k) == 1;
            }
            if (PQputCopyEnd(conn, ok ? NULL : "store: could not send COPY data") != 1)
                ok = false;
            while ((r = PQgetResult(conn))) {
                ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
                PQclear(r);
            }
        }
        if (own)
            ok = cmd_ok(conn, ok ? "COMMIT" : "ROLLBACK") && ok;
        else if (ok)
            ok = cmd_ok(conn, "RELEASE SAVEPOINT dr_ti_copy");
        else if (cmd_ok(conn, "ROLLBACK TO SAVEPOINT dr_ti_copy"))
            cmd_ok(conn, "RELEASE SAVEPOINT dr_ti_copy");
    }
    free(txt);
    return ok;
}

int store_ti_write_conn(PGconn *conn, const char *run_id, const struct ti_record *recs,
                        size_t n, struct dr_err *err)
{
    if (n == 0)
        return 0;
    if (n >= TI_COPY_MIN && ti_write_copy(conn, run_id, recs, n))
        return 0;
    char *txt = ti_records_json(recs, n);
    if (!txt)
        return err_set(err, "write task instances of run %s: out of memory", run_id);
    const char *v[] = { run_id, txt };
    PGresult *res = exec(conn, sql_ti_write, 2, v, err, "write %zu task instance%s of run %s",
                         n, n == 1 ? "" : "s", run_id);
    free(txt);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int store_ti_write(struct store *s, const char *run_id, const struct ti_record *recs, size_t n,
                   struct dr_err *err)
{
    /* An idempotent upsert: sent once more after a lost connection is reopened. */
    int rc = store_ti_write_conn(s->conn, run_id, recs, n, err);
    if (rc < 0 && PQstatus(s->conn) == CONNECTION_BAD && store_reconnect(s))
        rc = store_ti_write_conn(s->conn, run_id, recs, n, err);
    return rc;
}

/* ---- resume ---- */

/* Fills t from rows [from, to) of res (one task, ordered by map_index). */
static int prior_task_fill(struct prior_task *t, PGresult *res, int from, int to,
                           struct dr_err *err)
{
    t->state = TI_PENDING;
    int64_t max_index = -1;
    for (int i = from; i < to; i++) {
        int64_t idx;
        if (parse_i64(PQgetvalue(res, i, 1), &idx) < 0)
            return err_set(err, "load run: bad map_index");
        if (idx > max_index)
            max_index = idx;
    }
    t->mapped = max_index >= 0;
    if (t->mapped) {
        t->n_items = (size_t)max_index + 1;
        t->done = calloc(t->n_items, 1);
        t->item_outputs = json_array();
        t->checkpoints = calloc(t->n_items, sizeof *t->checkpoints);
        if (!t->done || !t->item_outputs || !t->checkpoints)
            return err_set(err, "load run: out of memory");
        for (size_t k = 0; k < t->n_items; k++)
            if (json_array_append_new(t->item_outputs, json_null()) < 0)
                return err_set(err, "load run: out of memory");
    }
    for (int i = from; i < to; i++) {
        int64_t idx = 0;
        parse_i64(PQgetvalue(res, i, 1), &idx);
        enum ti_state st;
        if (ti_state_parse(PQgetvalue(res, i, 2), &st) < 0)
            st = TI_PENDING;   /* unknown to this version: run it again */
        json_t *out = NULL;
        if (!PQgetisnull(res, i, 3) && !(out = load_json(PQgetvalue(res, i, 3), "load run", err)))
            return -1;
        if (idx < 0) {
            t->state = st;
            json_decref(t->output);
            t->output = out;
        } else {
            t->done[idx] = st == TI_SUCCESS || st == TI_SKIPPED;
            if (out)
                json_array_set_new(t->item_outputs, (size_t)idx, out);
            if (!PQgetisnull(res, i, 4) && !(t->checkpoints[idx] = strdup(PQgetvalue(res, i, 4))))
                return err_set(err, "load run: out of memory");
        }
    }
    return 0;
}

int store_prior_load(struct store *s, const char *run_id, struct prior *out,
                     struct dr_err *err)
{
    out->tasks = NULL;
    out->n_tasks = 0;
    const char *v[] = { run_id };
    PGresult *res = sexec(s,
                         "SELECT task_id, map_index, state, output::text, checkpoint"
                         " FROM dagrun.task_instance WHERE run_id = $1"
                         " ORDER BY task_id, map_index",
                         1, v, err, "load run %s", run_id);
    if (!res)
        return -1;
    int rows = PQntuples(res), rc = 0;
    size_t n_tasks = 0;
    for (int i = 0; i < rows; i++)
        n_tasks += i == 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0;
    if (n_tasks && !(out->tasks = calloc(n_tasks, sizeof *out->tasks))) {
        PQclear(res);
        return err_set(err, "load run %s: out of memory", run_id);
    }
    for (int i = 0; i < rows && rc == 0;) {
        int j = i + 1;
        while (j < rows && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0)
            j++;
        struct prior_task *t = &out->tasks[out->n_tasks++];
        if (!(t->task_id = strdup(PQgetvalue(res, i, 0))))
            rc = err_set(err, "load run %s: out of memory", run_id);
        else if (prior_task_fill(t, res, i, j, err) < 0)
            rc = err_prefix(err, "run %s", run_id);
        i = j;
    }
    PQclear(res);
    if (rc < 0)
        prior_free(out);
    return rc;
}

/* ---- listings ---- */

json_t *store_runs_list(struct store *s, const char *dag_id, int limit, struct dr_err *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *v[] = { dag_id, limit > 0 ? lim : NULL };
    PGresult *res = exec(
        s->conn,
        "SELECT coalesce(json_agg(x.j ORDER BY x.queued_at DESC, x.run_id DESC), '[]')"
        " FROM (SELECT r.queued_at, r.run_id, json_build_object("
        "  'run_id', r.run_id, 'dag_id', r.dag_id, 'run_type', r.run_type,"
        "  'logical_date', " ISO("r.logical_date") ", 'state', r.state,"
        "  'started_at', " ISO("r.started_at") ", 'ended_at', " ISO("r.ended_at") ","
        "  'duration_s', round(extract(epoch FROM coalesce(r.ended_at, CASE WHEN r.state IN"
        "   ('queued', 'running') THEN now() END) - r.started_at)::numeric, 3),"
        "  'items_ok', c.ok, 'items_skipped', c.skipped, 'items_failed', c.failed) AS j"
        "  FROM dagrun.dag_run r"
        /* An item (one map index) counts once however many lane tasks it went through:
         * failed if any of them failed, else skipped if any skipped, else ok if any
         * succeeded (items not started yet are not counted). */
        "  CROSS JOIN LATERAL (SELECT"
        "   count(*) FILTER (WHERE i.failed = 0 AND i.skipped = 0 AND i.ok > 0) AS ok,"
        "   count(*) FILTER (WHERE i.failed = 0 AND i.skipped > 0) AS skipped,"
        "   count(*) FILTER (WHERE i.failed > 0) AS failed"
        "   FROM (SELECT count(*) FILTER (WHERE t.state = 'success') AS ok,"
        "     count(*) FILTER (WHERE t.state = 'skipped') AS skipped,"
        "     count(*) FILTER (WHERE t.state IN ('failed', 'upstream_failed')) AS failed"
        "     FROM dagrun.task_instance t WHERE t.run_id = r.run_id AND t.map_index >= 0"
        "     GROUP BY t.map_index) i) c"
        "  WHERE ($1::text IS NULL OR r.dag_id = $1::text)"
        "  ORDER BY r.queued_at DESC, r.run_id DESC LIMIT $2::int) x",
        2, v, err, "list runs");
    if (!res)
        return NULL;
    json_t *j = load_json(PQgetvalue(res, 0, 0), "list runs", err);
    PQclear(res);
    return j;
}

json_t *store_run_status(struct store *s, const char *run_id, struct dr_err *err)
{
    const char *v[] = { run_id };
    return query_json(
        s,
        "SELECT json_build_object('run', " RUN_JSON ","
        " 'tasks', (SELECT coalesce(json_agg(json_build_object("
        "   'task_id', t.task_id, 'map_index', t.map_index, 'map_key', t.map_key,"
        "   'state', t.state, 'try_number', t.try_number,"
        "   'started_at', " ISO("t.started_at") ", 'ended_at', " ISO("t.ended_at") ","
        "   'duration_s', round(extract(epoch FROM t.ended_at - t.started_at)::numeric, 3),"
        "   'error', t.error, 'checkpoint', t.checkpoint)"
        "   ORDER BY t.started_at NULLS LAST, t.task_id, t.map_index), '[]')"
        "  FROM dagrun.task_instance t WHERE t.run_id = r.run_id),"
        " 'summary', json_build_object('by_task', (SELECT coalesce("
        "   json_object_agg(b.task_id, b.states ORDER BY b.task_id), '{}')"
        "  FROM (SELECT c.task_id, json_object_agg(c.state, c.n ORDER BY c.state) AS states"
        "   FROM (SELECT t.task_id, t.state, count(*) AS n FROM dagrun.task_instance t"
        "    WHERE t.run_id = r.run_id GROUP BY t.task_id, t.state) c"
        "   GROUP BY c.task_id) b)))"
        " FROM dagrun.dag_run r WHERE r.run_id = $1",
        1, v, "run status", run_id, err);
}

/* ---- scheduler bookkeeping ---- */

int store_dag_set_paused(struct store *s, const char *dag_id, bool paused, struct dr_err *err)
{
    const char *v[] = { dag_id, paused ? "true" : "false" };
    PGresult *res = sexec(s,
                         "INSERT INTO dagrun.dag (dag_id, paused) VALUES ($1, $2::boolean)"
                         " ON CONFLICT (dag_id) DO UPDATE SET paused = EXCLUDED.paused,"
                         " updated_at = now()",
                         2, v, err, "%s %s", paused ? "pause" : "unpause", dag_id);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int store_dag_is_paused(struct store *s, const char *dag_id, bool *paused, struct dr_err *err)
{
    const char *v[] = { dag_id };
    PGresult *res = sexec(s, "SELECT paused FROM dagrun.dag WHERE dag_id = $1", 1, v, err,
                         "read pause flag of %s", dag_id);
    if (!res)
        return -1;
    *paused = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

json_t *store_runs_stale(struct store *s, int timeout_sec, struct dr_err *err)
{
    char t[16];
    snprintf(t, sizeof t, "%d", timeout_sec);
    const char *v[] = { t };
    PGresult *res = sexec(s,
                         "SELECT coalesce(json_agg(run_id ORDER BY heartbeat_at NULLS FIRST,"
                         " run_id), '[]') FROM dagrun.dag_run WHERE (state = 'running'"
                         " AND coalesce(heartbeat_at, started_at, queued_at)"
                         "  < now() - make_interval(secs => $1::int))"
                         /* queued: handed back by a stopped scheduler, or its process died
                          * before it started (a new run leaves queued within milliseconds) */
                         " OR (state = 'queued'"
                         "  AND coalesce(heartbeat_at, queued_at) < now() - interval '5 seconds')",
                         1, v, err, "list stale runs");
    if (!res)
        return NULL;
    json_t *j = load_json(PQgetvalue(res, 0, 0), "list stale runs", err);
    PQclear(res);
    return j;
}

int store_runs_active(struct store *s, const char *dag_id, int *n, struct dr_err *err)
{
    const char *v[] = { dag_id };
    PGresult *res = sexec(s,
                         "SELECT count(*) FROM dagrun.dag_run"
                         " WHERE dag_id = $1 AND state IN ('queued', 'running')",
                         1, v, err, "count active runs of %s", dag_id);
    if (!res)
        return -1;
    int64_t c = 0;
    parse_i64(PQgetvalue(res, 0, 0), &c);
    *n = (int)c;
    PQclear(res);
    return 0;
}

int store_last_scheduled(struct store *s, const char *dag_id, int64_t *logical_date,
                         bool *found, struct dr_err *err)
{
    /* dag.last_scheduled_at remembers the latest even when old runs have been deleted. */
    const char *v[] = { dag_id };
    PGresult *res = sexec(s,
                         "SELECT extract(epoch FROM greatest("
                         " (SELECT max(logical_date) FROM dagrun.dag_run"
                         "  WHERE dag_id = $1 AND run_type = 'scheduled'),"
                         " (SELECT last_scheduled_at FROM dagrun.dag WHERE dag_id = $1)))::bigint",
                         1, v, err, "read last scheduled run of %s", dag_id);
    if (!res)
        return -1;
    int rc = 0;
    *found = !PQgetisnull(res, 0, 0);
    *logical_date = 0;
    if (*found && parse_i64(PQgetvalue(res, 0, 0), logical_date) < 0)
        rc = err_set(err, "read last scheduled run of %s: bad time", dag_id);
    PQclear(res);
    return rc;
}
