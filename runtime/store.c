/* Run state in PostgreSQL (schema dagrun): the coordinator's connection, runs, listings and
 * scheduler bookkeeping, with parameterized statements only. Run ownership (locks, fencing)
 * is in store_owner.c, task-instance rows in store_ti.c, connection helpers in pgconn.c. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "date.h"
#include "log.h"
#include "pgconn.h"
#include "readfile.h"
#include "store_private.h"

/* A lost connection (server restarted, network cut) is reopened by the next statement
 * of the store: up to RECONNECT_MS of attempts with backoff, then the statement is sent
 * once more. Every statement of the store is a single autocommit statement that is safe
 * to repeat (upserts, state sets, heartbeats); a warnings append whose reply was lost
 * with the connection may be stored twice. */
#define RECONNECT_MS 30000

/* A timestamptz column as an ISO-8601 UTC string, or SQL NULL. */
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

PGresult *store_sexec(struct store *s, const char *sql, int n, const char *const *vals,
                      struct dr_err *err, const char *what_fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    PGresult *res = pgconn_exec(s->conn, sql, n, vals, err, "%s", what);
    if (!res && PQstatus(s->conn) == CONNECTION_BAD && store_reconnect(s))
        res = pgconn_exec(s->conn, sql, n, vals, err, "%s", what);
    return res;
}

/* One-row, one-column JSON query; a NULL or missing value gives NULL with err "run X: no
 * such run". */
static json_t *query_json(struct store *s, const char *sql, int n, const char *const *vals,
                          const char *what, const char *run_id, struct dr_err *err)
{
    PGresult *res = store_sexec(s, sql, n, vals, err, "%s", what);
    if (!res)
        return NULL;
    json_t *v = NULL;
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
        err_set(err, "run %s: no such run", run_id ? run_id : "");
        err_hint(err, "dagrun runs lists the runs");
    } else {
        v = pgconn_load_json(PQgetvalue(res, 0, 0), what, err);
    }
    PQclear(res);
    return v;
}

/* ---- connections ---- */

/* Names the session after this process, "dagrun/PID/HOST" (as dag_run.pid and hostname
 * record the run's owner), so that a takeover can end the sessions of a process that was
 * stopped mid-transaction (store_run_take_over). Returns conn, or NULL with err (closed). */
static PGconn *tag_conn(PGconn *conn, struct dr_err *err)
{
    if (!conn)
        return NULL;
    char tag[320], host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    snprintf(tag, sizeof tag, "dagrun/%d/%s", (int)getpid(), host);
    const char *v[] = { tag };
    PGresult *res = pgconn_exec(conn, "SELECT set_config('application_name', left($1, 63), false)",
                                1, v, err, "name the session");
    if (!res) {
        PQfinish(conn);
        return NULL;
    }
    PQclear(res);
    return conn;
}

PGconn *store_open_conn(const char *url, struct dr_err *err)
{
    return tag_conn(pgconn_open(url, err), err);
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

bool store_reconnect(struct store *s)
{
    char line[512];
    pgconn_first_line(PQerrorMessage(s->conn), line, sizeof line);
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
            store_locks_retake(s);
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
        free(s->locks[i].run_id);
    free(s->locks);
    free(s);
}

PGconn *store_conn(struct store *s)
{
    return s ? s->conn : NULL;
}

/* ---- schema ---- */

#define STORE_SCHEMA_MAX (16 << 20)     /* schema.sql is a few pages */

int store_initdb(struct store *s, const char *schema_path, struct dr_err *err)
{
    char *sql;
    size_t len;
    if (readfile_load(schema_path, STORE_SCHEMA_MAX, &sql, &len, err) != 0)
        return -1;
    int rc = 0;
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (!res || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)) {
        /* Name the line of the statement that failed, as "file:line: message". */
        const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
        int64_t p = 0;
        char what[1024];
        if (pos && pgconn_parse_i64(pos, &p) == 0 && p > 0) {
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
        rc = pgconn_err(err, s->conn, res, what);
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

/* max_active_runs: the DAG's runs are counted and the new one inserted under a
 * transaction-level lock on the dag id (STORE_DAG_LOCK_NS), so two processes cannot both
 * take the last slot. */

int store_run_create(struct store *s, const char *dag_id, const char *run_type,
                     int64_t logical_date, int64_t data_interval_start,
                     int64_t data_interval_end, const json_t *conf, char *run_id,
                     size_t run_id_len, struct dr_err *err)
{
    return store_run_create_limited(s, dag_id, run_type, logical_date, data_interval_start,
                                    data_interval_end, conf, 0, NULL, run_id, run_id_len, err);
}

int store_run_create_limited(struct store *s, const char *dag_id, const char *run_type,
                             int64_t logical_date, int64_t data_interval_start,
                             int64_t data_interval_end, const json_t *conf, int max_active,
                             int *active, char *run_id, size_t run_id_len, struct dr_err *err)
{
    bool scheduled = strcmp(run_type, "scheduled") == 0;
    if (!scheduled && strcmp(run_type, "manual") != 0 && strcmp(run_type, "test") != 0 &&
        strcmp(run_type, "backfill") != 0)
        return err_set(err, "create run of %s: unknown run type \"%s\"", dag_id, run_type);
    const char *dv[] = { dag_id };
    PGresult *res = store_sexec(s, sql_dag_ensure, 1, dv, err, "create run of %s", dag_id);
    if (!res)
        return -1;
    PQclear(res);

    char *conf_txt = conf ? json_dumps(conf, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (conf && !conf_txt)
        return err_set(err, "create run of %s: conf cannot be written as JSON", dag_id);
    char date[40], t0[24], t1[24], t2[24], pid[16], host[256] = "";
    date_format_instant(logical_date, date, sizeof date);
    snprintf(t0, sizeof t0, "%lld", (long long)logical_date);
    snprintf(t1, sizeof t1, "%lld", (long long)data_interval_start);
    snprintf(t2, sizeof t2, "%lld", (long long)data_interval_end);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    char *host_tmp;
    const char *host_p = pgconn_text_param(host, &host_tmp);

    int rc = -1;
    bool txn = false;
    if (max_active > 0) {
        /* Inside the transaction nothing is retried after a reconnect: it would run outside
         * it. The count is a statement of its own, after the lock, so that it sees the runs
         * another process committed while this one waited. */
        if (!(res = store_sexec(s, "BEGIN", 0, NULL, err, "create run of %s", dag_id)))
            goto out;
        PQclear(res);
        txn = true;
        res = pgconn_exec(s->conn, "SELECT pg_advisory_xact_lock(" STORE_DAG_LOCK_NS ", hashtext($1))",
                          1, dv, err, "create run of %s", dag_id);
        if (!res)
            goto out;
        PQclear(res);
        res = pgconn_exec(s->conn, "SELECT count(*) FROM dagrun.dag_run"
                                   " WHERE dag_id = $1 AND state IN ('queued', 'running')",
                          1, dv, err, "create run of %s", dag_id);
        if (!res)
            goto out;
        int64_t c = 0;
        pgconn_parse_i64(PQgetvalue(res, 0, 0), &c);
        PQclear(res);
        if (active)
            *active = (int)c;
        if (c >= max_active) {
            rc = 2;
            goto out;
        }
    }
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
        res = txn ? pgconn_exec(s->conn, sql_run_create, 9, v, err, "create run of %s", dag_id)
                  : store_sexec(s, sql_run_create, 9, v, err, "create run of %s", dag_id);
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
    if (txn && rc >= 0) {
        if ((res = pgconn_exec(s->conn, "COMMIT", 0, NULL, err, "create run of %s", dag_id))) {
            PQclear(res);
            txn = false;
        } else
            rc = -1;
    }
out:
    if (txn && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
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
    " hostname = CASE WHEN $2::text = 'running' THEN coalesce($5::text, hostname) ELSE hostname END,"
    " resume_after = CASE WHEN $2::text = 'queued' THEN resume_after END"
    " WHERE run_id = $1 AND ($6::bigint IS NULL OR epoch = $6::bigint)";

int store_run_set_state(struct store *s, const char *run_id, enum run_state state,
                        const char *error, struct dr_err *err)
{
    char pid[16], host[256] = "";
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    char *etmp, *htmp;
    const char *e = pgconn_text_param(error, &etmp), *h = pgconn_text_param(host, &htmp);
    struct store_lock *lk = store_lock_of(s, run_id);
    if (lk && lk->lost) {
        free(etmp);
        free(htmp);
        return err_set(err, "set state of run %s: another process took the run over", run_id);
    }
    char eb[24];
    const char *v[] = { run_id, run_state_name(state), e, pid, h[0] ? h : NULL,
                        store_epoch_param(s, run_id, eb, sizeof eb) };
    PGresult *res = store_sexec(s, sql_run_set_state, 6, v, err, "set state of run %s", run_id);
    free(etmp);
    free(htmp);
    if (!res)
        return -1;
    int rc = 0;
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        if (v[5]) {
            store_mark_lost(lk);
            rc = err_set(err, "set state of run %s: another process took the run over", run_id);
        } else
            rc = err_set(err, "set state of run %s: no such run", run_id);
    }
    PQclear(res);
    return rc;
}

int store_run_set_resume_after(struct store *s, const char *run_id, int64_t unix_s,
                               struct dr_err *err)
{
    char t[24], eb[24];
    snprintf(t, sizeof t, "%lld", (long long)unix_s);
    const char *v[] = { run_id, unix_s > 0 ? t : NULL, store_epoch_param(s, run_id, eb, sizeof eb) };
    PGresult *res = store_sexec(s, "UPDATE dagrun.dag_run SET resume_after = to_timestamp($2::bigint)"
                                " WHERE run_id = $1 AND ($3::bigint IS NULL OR epoch = $3::bigint)",
                                3, v, err, "set resume_after of run %s", run_id);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int store_run_heartbeat(struct store *s, const char *run_id, bool *cancel_requested,
                        struct dr_err *err)
{
    struct store_lock *lk = store_lock_of(s, run_id);
    char eb[24];
    const char *v[] = { run_id, store_epoch_param(s, run_id, eb, sizeof eb) };
    PGresult *res = NULL;
    if (!lk || !lk->lost)
        res = store_sexec(s,
                          "UPDATE dagrun.dag_run SET heartbeat_at = now() WHERE run_id = $1"
                          " AND ($2::bigint IS NULL OR epoch = $2::bigint)"
                          " RETURNING cancel_requested",
                          2, v, err, "heartbeat of run %s", run_id);
    if (lk && lk->lost) {       /* found out here or while reconnecting: the run is not ours */
        PQclear(res);
        if (cancel_requested)
            *cancel_requested = true;
        return 0;
    }
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) != 1 && v[1]) {
        store_mark_lost(lk);
        if (cancel_requested)
            *cancel_requested = true;
    } else if (PQntuples(res) != 1)
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
    " WHERE r.run_id = $1 AND ($4::bigint IS NULL OR r.epoch = $4::bigint)";

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
    struct store_lock *lk = store_lock_of(s, run_id);
    if (lk && lk->lost) {
        err_set(err, "add warnings to run %s: another process took the run over", run_id);
        goto out;
    }
    char eb[24];
    const char *v[] = { run_id, w, c, store_epoch_param(s, run_id, eb, sizeof eb) };
    PGresult *res = store_sexec(s, sql_run_add_warnings, 4, v, err, "add warnings to run %s",
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
    PGresult *res = store_sexec(s,
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
    " 'cancel_requested', r.cancel_requested, 'pid', r.pid, 'hostname', r.hostname,"         \
    " 'resume_after', " ISO("r.resume_after") ")"

int store_run_clear_cancel(struct store *s, const char *run_id, struct dr_err *err)
{
    const char *v[] = { run_id };
    PGresult *res = store_sexec(s, "UPDATE dagrun.dag_run SET cancel_requested = false"
                                   " WHERE run_id = $1 AND cancel_requested",
                                1, v, err, "clear the cancel request of run %s", run_id);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

json_t *store_run_get(struct store *s, const char *run_id, struct dr_err *err)
{
    const char *v[] = { run_id };
    return query_json(s, "SELECT " RUN_JSON " FROM dagrun.dag_run r WHERE r.run_id = $1",
                      1, v, "get run", run_id, err);
}


/* ---- listings ---- */

json_t *store_runs_list(struct store *s, const char *dag_id, int limit, struct dr_err *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *v[] = { dag_id, limit > 0 ? lim : NULL };
    PGresult *res = pgconn_exec(
        s->conn,
        "SELECT coalesce(json_agg(x.j ORDER BY x.queued_at DESC, x.run_id DESC), '[]')"
        " FROM (SELECT r.queued_at, r.run_id, json_build_object("
        "  'run_id', r.run_id, 'dag_id', r.dag_id, 'run_type', r.run_type,"
        "  'logical_date', " ISO("r.logical_date") ", 'state', r.state,"
        "  'resume_after', " ISO("r.resume_after") ","
        "  'started_at', " ISO("r.started_at") ", 'ended_at', " ISO("r.ended_at") ","
        "  'heartbeat_age_s', CASE WHEN r.state IN ('queued', 'running') THEN round(extract("
        "   epoch FROM now() - coalesce(r.heartbeat_at, r.started_at, r.queued_at))::numeric, 1)"
        "   END,"
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
    json_t *j = pgconn_load_json(PQgetvalue(res, 0, 0), "list runs", err);
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

/* Exact match first; then runs whose id ends or starts with $1, newest first. Six rows are
 * enough to tell one from several and to name five of them. */
static const char sql_run_find[] =
    "SELECT run_id, run_id = $1 FROM dagrun.dag_run"
    " WHERE run_id = $1 OR right(run_id, length($1)) = $1 OR left(run_id, length($1)) = $1"
    " ORDER BY run_id = $1 DESC, queued_at DESC, run_id LIMIT 6";

int store_run_find(struct store *s, const char *text, char *run_id, size_t len,
                   struct dr_err *err)
{
    if (!text || !*text) {
        err_set(err, "no run id given");
        err_hint(err, "dagrun runs lists the runs");
        return 1;
    }
    const char *v[] = { text };
    PGresult *res = store_sexec(s, sql_run_find, 1, v, err, "find run %s", text);
    if (!res)
        return -1;
    int n = PQntuples(res), rc = 1;
    if (n >= 1 && (n == 1 || strcmp(PQgetvalue(res, 0, 1), "t") == 0)) {
        if (strlen(PQgetvalue(res, 0, 0)) >= len)
            err_set(err, "find run %s: run id too long", text);
        else {
            snprintf(run_id, len, "%s", PQgetvalue(res, 0, 0));
            rc = 0;
        }
    } else if (n == 0) {
        err_set(err, "run %s: no such run", text);
        err_hint(err, "dagrun runs lists the runs");
    } else {
        char names[768] = "";
        size_t off = 0;
        for (int i = 0; i < n && i < 5; i++) {
            int w = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                             PQgetvalue(res, i, 0));
            if (w < 0 || (size_t)w >= sizeof names - off)
                break;
            off += (size_t)w;
        }
        err_set(err, "run %s: ambiguous, it matches %s%s", text, names, n > 5 ? ", ..." : "");
        err_hint(err, "give more of the run id (dagrun runs --wide shows it whole)");
    }
    PQclear(res);
    return rc;
}

/* ---- scheduler bookkeeping ---- */

int store_dag_set_paused(struct store *s, const char *dag_id, bool paused, struct dr_err *err)
{
    const char *v[] = { dag_id, paused ? "true" : "false" };
    PGresult *res = store_sexec(s,
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
    PGresult *res = store_sexec(s, "SELECT paused FROM dagrun.dag WHERE dag_id = $1", 1, v, err,
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
    PGresult *res = store_sexec(s,
                         "SELECT coalesce(json_agg(run_id ORDER BY heartbeat_at NULLS FIRST,"
                         " run_id), '[]') FROM dagrun.dag_run WHERE (state = 'running'"
                         " AND coalesce(heartbeat_at, started_at, queued_at)"
                         "  < now() - make_interval(secs => $1::int))"
                         /* queued: handed back by a stopped scheduler, or its process died
                          * before it started (a new run leaves queued within milliseconds) */
                         " OR (state = 'queued' AND resume_after IS NULL"
                         "  AND coalesce(heartbeat_at, queued_at) < now() - interval '5 seconds')"
                         /* parked by a used-up window of a source: once it reopens */
                         " OR (state = 'queued' AND resume_after <= now())",
                         1, v, err, "list stale runs");
    if (!res)
        return NULL;
    json_t *j = pgconn_load_json(PQgetvalue(res, 0, 0), "list stale runs", err);
    PQclear(res);
    return j;
}

int store_runs_active(struct store *s, const char *dag_id, int *n, struct dr_err *err)
{
    const char *v[] = { dag_id };
    PGresult *res = store_sexec(s,
                         "SELECT count(*) FROM dagrun.dag_run"
                         " WHERE dag_id = $1 AND state IN ('queued', 'running')",
                         1, v, err, "count active runs of %s", dag_id);
    if (!res)
        return -1;
    int64_t c = 0;
    pgconn_parse_i64(PQgetvalue(res, 0, 0), &c);
    *n = (int)c;
    PQclear(res);
    return 0;
}

int store_last_scheduled(struct store *s, const char *dag_id, int64_t *logical_date,
                         bool *found, struct dr_err *err)
{
    /* dag.last_scheduled_at remembers the latest even when old runs have been deleted. */
    const char *v[] = { dag_id };
    PGresult *res = store_sexec(s,
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
    if (*found && pgconn_parse_i64(PQgetvalue(res, 0, 0), logical_date) < 0)
        rc = err_set(err, "read last scheduled run of %s: bad time", dag_id);
    PQclear(res);
    return rc;
}
