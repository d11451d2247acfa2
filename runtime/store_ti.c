/* Task-instance rows of a run: the batched upsert, the binary COPY fast path, and loading
 * what a run already achieved for resume. */
#include "store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "store_private.h"

/* ---- task instances ---- */

/* Duplicate (task, map index) pairs in one batch keep the last record: ON CONFLICT DO
 * UPDATE may not touch a row twice in one statement. A "running" record never replaces an
 * ended state of the same or a later try: the coordinator's batched records can reach the
 * database after a worker committed the instance's end together with its data. A
 * "cancelled" record never replaces "success". */
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
    "  AND t.try_number >= EXCLUDED.try_number)"
    /* an item that succeeded stays so: a process whose run was taken over may still record
     * the items it cancelled on its way out */
    " AND NOT (EXCLUDED.state = 'cancelled' AND t.state = 'success')";

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
    const char *v = pgconn_text_param(s, &tmp);
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

static int tb_dump_cb(const char *buf, size_t size, void *data)
{
    tb_put(data, buf, size);
    return ((struct tbuf *)data)->oom ? -1 : 0;
}

/* The records as one JSON array text for jsonb_to_recordset; NULL when out of memory. An
 * output is written straight into the text, never copied as a tree (a mapped task's list of a
 * million items would be held twice). */
static char *ti_records_json(const struct ti_record *recs, size_t n)
{
    struct tbuf b = { 0 };
    tb_put(&b, "[", 1);
    for (size_t i = 0; !b.oom && i < n; i++) {
        const struct ti_record *r = &recs[i];
        json_t *o = json_object();
        bool ok = o &&
             json_object_set_new(o, "i", json_integer((json_int_t)i)) == 0 &&
             json_object_set_new(o, "task_id", pgconn_json_str(r->task_id ? r->task_id : "")) == 0 &&
             json_object_set_new(o, "map_index", json_integer(r->map_index)) == 0 &&
             json_object_set_new(o, "state", json_string(ti_state_name(r->state))) == 0 &&
             json_object_set_new(o, "try_number", json_integer(r->try_number)) == 0 &&
             json_object_set_new(o, "start_ms", json_integer(r->start_ms)) == 0 &&
             json_object_set_new(o, "end_ms", json_integer(r->end_ms)) == 0 &&
             (!r->map_key || json_object_set_new(o, "map_key", pgconn_json_str(r->map_key)) == 0) &&
             (!r->error || json_object_set_new(o, "error", pgconn_json_str(r->error)) == 0) &&
             (!r->checkpoint ||
              json_object_set_new(o, "checkpoint", pgconn_json_str(r->checkpoint)) == 0);
        char *t = ok ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        size_t len = t ? strlen(t) : 0;
        if (len < 2) {
            free(t);
            b.oom = true;
            break;
        }
        if (i)
            tb_put(&b, ",", 1);
        tb_put(&b, t, len - 1);     /* without its closing brace */
        free(t);
        if (r->output) {
            tb_put(&b, ",\"output\":", 10);
            if (json_dump_callback(r->output, tb_dump_cb, &b, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
                b.oom = true;
        }
        tb_put(&b, "}", 1);
    }
    tb_put(&b, "]", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    return b.p;
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
            /* Dumped as it is, never copied as a tree (a mapped task's list of a million items
             * would be held twice): other threads holding it only read it. */
            char *txt = json_dumps(r->output, JSON_COMPACT | JSON_ENCODE_ANY);
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
    PGresult *res = pgconn_exec(conn, sql_ti_write, 2, v, err, "write %zu task instance%s of run %s",
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

/* Rows of a run's task instances are read in pages of this many (keyset pagination on the
 * primary key): a resume of a million-item map never holds a million-row result. */
enum { PRIOR_PAGE = 20000 };
#define PRIOR_PAGE_N "20000"     /* PRIOR_PAGE in the SQL */

/* Sizes t (a task_id and the largest map index, -1 when unmapped) before its rows come. */
static int prior_task_size(struct prior_task *t, const char *task_id, int64_t max_index,
                           struct dr_err *err)
{
    t->state = TI_PENDING;
    if (!(t->task_id = strdup(task_id)))
        return err_set(err, "out of memory");
    t->mapped = max_index >= 0;
    if (!t->mapped)
        return 0;
    t->n_items = (size_t)max_index + 1;
    t->done = calloc(t->n_items, 1);
    t->item_outputs = json_array();
    t->checkpoints = calloc(t->n_items, sizeof *t->checkpoints);
    if (!t->done || !t->item_outputs || !t->checkpoints)
        return err_set(err, "out of memory");
    for (size_t k = 0; k < t->n_items; k++)
        if (json_array_append_new(t->item_outputs, json_null()) < 0)
            return err_set(err, "out of memory");
    return 0;
}

/* Takes row i of res (task_id, map_index, state, output, checkpoint) into t. */
static int prior_task_row(struct prior_task *t, PGresult *res, int i, struct dr_err *err)
{
    int64_t idx = 0;
    if (pgconn_parse_i64(PQgetvalue(res, i, 1), &idx) < 0 ||
        (idx >= 0 && (!t->mapped || (uint64_t)idx >= t->n_items)))
        return err_set(err, "bad map_index");
    enum ti_state st;
    if (ti_state_parse(PQgetvalue(res, i, 2), &st) < 0)
        st = TI_PENDING;   /* unknown to this version: run it again */
    json_t *out = NULL;
    if (!PQgetisnull(res, i, 3) && !(out = pgconn_load_json(PQgetvalue(res, i, 3), "load run", err)))
        return -1;
    if (idx < 0) {
        t->state = st;
        json_decref(t->output);
        t->output = out;
        return 0;
    }
    t->done[idx] = st == TI_SUCCESS || st == TI_SKIPPED;
    if (out)
        json_array_set_new(t->item_outputs, (size_t)idx, out);
    if (!PQgetisnull(res, i, 4) && !(t->checkpoints[idx] = strdup(PQgetvalue(res, i, 4))))
        return err_set(err, "out of memory");
    return 0;
}

int store_prior_load(struct store *s, const char *run_id, struct prior *out,
                     struct dr_err *err)
{
    out->tasks = NULL;
    out->n_tasks = 0;
    const char *v[] = { run_id, "", "-2" };
    PGresult *res = store_sexec(s,
                         "SELECT task_id, max(map_index) FROM dagrun.task_instance"
                         " WHERE run_id = $1 GROUP BY task_id ORDER BY task_id",
                         1, v, err, "load run %s", run_id);
    if (!res)
        return -1;
    int rc = 0, rows = PQntuples(res);
    if (rows && !(out->tasks = calloc((size_t)rows, sizeof *out->tasks)))
        rc = err_set(err, "load run %s: out of memory", run_id);
    for (int i = 0; i < rows && rc == 0; i++) {
        int64_t max_index;
        if (pgconn_parse_i64(PQgetvalue(res, i, 1), &max_index) < 0)
            rc = err_set(err, "load run %s: bad map_index", run_id);
        else if (prior_task_size(&out->tasks[out->n_tasks++], PQgetvalue(res, i, 0), max_index,
                                 err) < 0)
            rc = err_prefix(err, "load run %s", run_id);
    }
    PQclear(res);
    /* The rows, a page at a time in (task_id, map_index) order: the tasks' order above. */
    char *last_task = NULL, last_index[24] = "-2";
    size_t t = 0;
    for (bool more = rc == 0; more;) {
        v[1] = last_task ? last_task : "";
        v[2] = last_index;
        res = store_sexec(s,
                  "SELECT task_id, map_index, state, output::text, checkpoint"
                  " FROM dagrun.task_instance WHERE run_id = $1"
                  " AND (task_id, map_index) > ($2, $3::int)"
                  " ORDER BY task_id, map_index LIMIT " PRIOR_PAGE_N,
                  3, v, err, "load run %s", run_id);
        if (!res) {
            rc = -1;
            break;
        }
        rows = PQntuples(res);
        more = rows == PRIOR_PAGE;
        for (int i = 0; i < rows && rc == 0; i++) {
            const char *id = PQgetvalue(res, i, 0);
            while (t < out->n_tasks && strcmp(out->tasks[t].task_id, id) != 0)
                t++;
            if (t == out->n_tasks)
                rc = err_set(err, "load run %s: task %s changed while loading", run_id, id);
            else if (prior_task_row(&out->tasks[t], res, i, err) < 0)
                rc = err_prefix(err, "load run %s: task %s", run_id, id);
        }
        if (more && rc == 0) {
            free(last_task);
            if (!(last_task = strdup(PQgetvalue(res, rows - 1, 0))))
                rc = err_set(err, "load run %s: out of memory", run_id);
            snprintf(last_index, sizeof last_index, "%s", PQgetvalue(res, rows - 1, 1));
        }
        PQclear(res);
        more = more && rc == 0;
    }
    free(last_task);
    if (rc < 0)
        prior_free(out);
    return rc;
}
