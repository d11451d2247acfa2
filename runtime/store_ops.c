/* Run-state queries of the operator's commands (backfill, clear, db clean), with
 * parameterized statements only; runs and task instances themselves are in store.c and
 * store_ti.c. */
#include "store_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

int store_ops_interval(struct store *s, const char *dag_id, int64_t logical, bool *succeeded,
                       bool *active, struct dr_err *err)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)logical);
    const char *v[] = { dag_id, t };
    PGresult *res = pgconn_exec(store_conn(s),
                                "SELECT coalesce(bool_or(state = 'success'), false),"
                                " coalesce(bool_or(state IN ('queued', 'running')), false)"
                                " FROM dagrun.dag_run"
                                " WHERE dag_id = $1 AND logical_date = to_timestamp($2::bigint)",
                                2, v, err, "read runs of %s", dag_id);
    if (!res)
        return -1;
    *succeeded = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    *active = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    return 0;
}

int store_ops_live_runs(struct store *s, const char *dag_id, int timeout_sec, int *n,
                        struct dr_err *err)
{
    char t[16];
    snprintf(t, sizeof t, "%d", timeout_sec);
    const char *v[] = { dag_id, t };
    PGresult *res = pgconn_exec(store_conn(s),
                                "SELECT count(*) FROM dagrun.dag_run WHERE dag_id = $1"
                                " AND (state = 'queued' OR (state = 'running'"
                                "  AND coalesce(heartbeat_at, started_at, queued_at)"
                                "   >= now() - make_interval(secs => $2::int)))",
                                2, v, err, "count active runs of %s", dag_id);
    if (!res)
        return -1;
    int64_t c = 0;
    int rc = pgconn_parse_i64(PQgetvalue(res, 0, 0), &c) == 0 ? 0
             : err_set(err, "count active runs of %s: bad count", dag_id);
    *n = (int)c;
    PQclear(res);
    return rc;
}

/* The run lock of store.c (session advisory locks on (namespace, hashtext(run_id))): a clear
 * or a clean takes it for its transaction, so a run some process is running or resuming is
 * left alone. */
#define OPS_RUN_LOCK "pg_try_advisory_xact_lock(" STORE_RUN_LOCK_NS ", hashtext(r.run_id))"

static const char sql_clear[] =
    "WITH ok AS MATERIALIZED (SELECT r.run_id FROM dagrun.dag_run r WHERE r.run_id = $1"
    "  AND r.state IN ('success', 'partial', 'failed', 'cancelled') AND " OPS_RUN_LOCK "),"
    " idx AS MATERIALIZED (SELECT DISTINCT t.map_index FROM dagrun.task_instance t, ok"
    "  WHERE t.run_id = ok.run_id AND t.task_id = $2"
    "  AND ($3::text <> 'index' OR t.map_index = $4::int)"
    "  AND ($3::text <> 'failed' OR t.state IN ('failed', 'upstream_failed'))),"
    " d1 AS (DELETE FROM dagrun.task_instance t WHERE t.run_id = $1"
    "  AND t.task_id IN (SELECT jsonb_array_elements_text($5::jsonb))"
    "  AND t.map_index IN (SELECT map_index FROM idx) RETURNING t.task_id, t.map_index),"
    " d2 AS (DELETE FROM dagrun.task_instance t WHERE t.run_id = $1 AND EXISTS (SELECT 1 FROM idx)"
    "  AND t.task_id IN (SELECT jsonb_array_elements_text($6::jsonb))"
    "  RETURNING t.task_id, t.map_index),"
    " u AS (UPDATE dagrun.dag_run r SET state = 'queued', ended_at = NULL, cancel_requested = false,"
    "  heartbeat_at = now() WHERE r.run_id = $1 AND EXISTS (SELECT 1 FROM idx) RETURNING 1),"
    " d AS (SELECT * FROM d1 UNION ALL SELECT * FROM d2)"
    " SELECT (SELECT count(*) FROM ok), (SELECT count(*) FROM idx), (SELECT count(*) FROM d),"
    "  (SELECT string_agg(x.task_id || CASE WHEN x.map_index >= 0 THEN '[' || x.map_index || ']'"
    "   ELSE '' END, ', ' ORDER BY x.task_id, x.map_index)"
    "   FROM (SELECT * FROM d ORDER BY task_id, map_index LIMIT 12) x),"
    "  (SELECT state FROM dagrun.dag_run WHERE run_id = $1), (SELECT count(*) FROM u)";

int store_ops_clear(struct store *s, const char *run_id, const char *task_id, enum clear_pick pick,
                    long index, const json_t *item_tasks, const json_t *whole_tasks,
                    struct clear_result *out, struct dr_err *err)
{
    memset(out, 0, sizeof *out);
    char ix[24];
    snprintf(ix, sizeof ix, "%ld", index);
    char *items = json_dumps(item_tasks, JSON_COMPACT), *whole = json_dumps(whole_tasks, JSON_COMPACT);
    int rc = -1;
    if (!items || !whole) {
        err_set(err, "clear run %s: out of memory", run_id);
        goto out;
    }
    const char *v[] = { run_id, task_id,
                        pick == CLEAR_INDEX ? "index" : pick == CLEAR_FAILED ? "failed" : "all",
                        ix, items, whole };
    PGresult *res = pgconn_exec(store_conn(s), sql_clear, 6, v, err, "clear run %s", run_id);
    if (!res)
        goto out;
    int64_t ok = 0, picked = 0, deleted = 0;
    pgconn_parse_i64(PQgetvalue(res, 0, 0), &ok);
    pgconn_parse_i64(PQgetvalue(res, 0, 1), &picked);
    pgconn_parse_i64(PQgetvalue(res, 0, 2), &deleted);
    if (!ok) {
        if (PQgetisnull(res, 0, 4)) {
            err_set(err, "clear run %s: no such run", run_id);
            err_hint(err, "dagrun runs lists the runs");
        } else if (strcmp(PQgetvalue(res, 0, 4), "queued") == 0 ||
                   strcmp(PQgetvalue(res, 0, 4), "running") == 0) {
            err_set(err, "clear run %s: the run is %s", run_id, PQgetvalue(res, 0, 4));
            err_hint(err, "clear a run once it has ended: dagrun cancel %s stops it", run_id);
        } else {
            err_set(err, "clear run %s: it is being run by another process", run_id);
        }
    } else {
        out->picked = (long)picked;
        out->deleted = (long)deleted;
        snprintf(out->sample, sizeof out->sample, "%s", PQgetvalue(res, 0, 3));
        rc = 0;
    }
    PQclear(res);
out:
    free(items);
    free(whole);
    return rc;
}

#define OPS_ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* $1: age in seconds, $2: states (a JSON array), $3: dag_id or NULL. */
#define CLEAN_WHERE                                                                           \
    " r.state IN (SELECT jsonb_array_elements_text($2::jsonb))"                               \
    " AND r.ended_at < now() - make_interval(secs => $1::bigint)"                             \
    " AND ($3::text IS NULL OR r.dag_id = $3::text)"

static const char sql_clean_dry[] =
    "SELECT coalesce(json_agg(json_build_object('run_id', r.run_id, 'dag_id', r.dag_id,"
    " 'state', r.state, 'ended_at', " OPS_ISO("r.ended_at") ", 'task_instances',"
    " (SELECT count(*) FROM dagrun.task_instance t WHERE t.run_id = r.run_id))"
    " ORDER BY r.ended_at, r.run_id), '[]') FROM dagrun.dag_run r WHERE" CLEAN_WHERE;

/* A run some process holds (a resume starting) is skipped: its lock is taken for the
 * transaction first. */
static const char sql_clean[] =
    "WITH c AS MATERIALIZED (SELECT r.run_id FROM dagrun.dag_run r WHERE" CLEAN_WHERE
    "  ORDER BY r.ended_at, r.run_id LIMIT 100),"
    " l AS MATERIALIZED (SELECT r.run_id FROM c r WHERE " OPS_RUN_LOCK "),"
    " d AS (DELETE FROM dagrun.dag_run r USING l WHERE r.run_id = l.run_id"
    "  AND r.state IN (SELECT jsonb_array_elements_text($2::jsonb))"
    "  RETURNING r.run_id, r.dag_id, r.state, r.ended_at),"
    " ti AS (DELETE FROM dagrun.task_instance t USING d WHERE t.run_id = d.run_id"
    "  RETURNING t.run_id),"
    " n AS (SELECT run_id, count(*) AS n FROM ti GROUP BY run_id)"
    " SELECT coalesce(json_agg(json_build_object('run_id', d.run_id, 'dag_id', d.dag_id,"
    " 'state', d.state, 'ended_at', " OPS_ISO("d.ended_at") ", 'task_instances',"
    " coalesce(n.n, 0)) ORDER BY d.ended_at, d.run_id), '[]')"
    " FROM d LEFT JOIN n ON n.run_id = d.run_id";

json_t *store_ops_clean(struct store *s, int64_t older_s, bool all, const char *dag_id,
                        bool dry_run, struct dr_err *err)
{
    char age[24];
    snprintf(age, sizeof age, "%lld", (long long)older_s);
    const char *states = all ? "[\"success\", \"partial\", \"failed\", \"cancelled\"]"
                             : "[\"success\"]";
    const char *v[] = { age, states, dag_id };
    PGresult *res = pgconn_exec(store_conn(s), dry_run ? sql_clean_dry : sql_clean, 3, v, err,
                                "clean runs");
    if (!res)
        return NULL;
    json_t *j = pgconn_load_json(PQgetvalue(res, 0, 0), "clean runs", err);
    PQclear(res);
    return j;
}
