/* `dagrun serve`'s Airflow API for task instances: list and get a run's, and
 * clearTaskInstances (a run's resume). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "serve.h"
#include "serve_api.h"

static const char *airflow_ti_state(const char *state)
{
    if (!state)
        return NULL;
    if (strcmp(state, "pending") == 0)
        return "scheduled";
    if (strcmp(state, "cancelled") == 0)
        return "failed";
    return state; /* running, success, skipped, failed, upstream_failed */
}

#define TI_COLS                                                                               \
    "t.task_id, t.map_index, t.map_key, t.state, t.try_number, " TS("t.started_at") ","      \
    " " TS("t.ended_at") ", extract(epoch FROM t.ended_at - t.started_at)::float8, t.error,"  \
    " t.checkpoint, " TS("r.logical_date") ", " TS("r.queued_at") ", r.hostname, r.pid,"      \
    " md5(t.run_id || '/' || t.task_id || '/' || t.map_index)"

/* A TaskInstanceResponse from row i of TI_COLS (caller holds dag_lock; d may be NULL). */
static json_t *ti_json(PGresult *res, int i, const char *dag_id, const char *run_id,
                       const struct dag *d)
{
#define COL(c) (PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c))
#define NUM(c) strtoll(PQgetvalue(res, i, c), NULL, 10) /* "" (NULL) reads 0 */
    const char *task_id = COL(0);
    int idx = d ? dag_task_index(d, task_id) : -1;
    const struct task *t = idx >= 0 ? &d->tasks[idx] : NULL;
    const char *md5 = COL(14);
    char uuid[40];
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", md5, md5 + 8, md5 + 12, md5 + 16,
             md5 + 20);
    json_t *dur = COL(7) ? json_real(strtod(PQgetvalue(res, i, 7), NULL)) : json_null();
    json_t *pid = COL(13) ? json_integer(NUM(13)) : json_null();
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:i,s:s?,s:s,s:s?,s:s?,s:o,s:s?,s:i,s:i,s:s,s:s,s:s?,s:n,s:s,s:i,"
        "s:n,s:n,s:s?,s:s?,s:n,s:n,s:o,s:n,s:s,s:n,s:s?,s:{},s:n,s:n,s:n,"
        "s:s,s:s?,s:s?,s:s?}",
        "id", uuid, "task_id", task_id, "dag_id", dag_id, "dag_run_id", run_id, "map_index",
        (int)NUM(1), "logical_date", COL(10), "run_after", COL(11) ? COL(11) : "",
        "start_date", COL(5), "end_date", COL(6), "duration", dur, "state",
        airflow_ti_state(COL(3)), "try_number", (int)NUM(4), "max_tries",
        t ? t->retry.retries : 0, "task_display_name", task_id, "dag_display_name", dag_id,
        "hostname", COL(12), "unixname", "pool", t && t->pool ? t->pool : "default_pool",
        "pool_slots", 1, "queue", "priority_weight", "operator", t ? t->plugin_name : NULL,
        "operator_name", t ? t->plugin_name : NULL, "queued_when", "scheduled_when", "pid", pid,
        "executor", "executor_config", "{}", "note", "rendered_map_index", COL(2),
        "rendered_fields", "trigger", "triggerer_job", "dag_version",
        "dagrun_state", COL(3), "map_key", COL(2), "error", COL(8), "checkpoint", COL(9));
#undef COL
#undef NUM
    return o;
}

void serve_ti_list(struct serve_req *r, const char *dag_id, const char *run_id,
                   const char *task_id, const char *map_index)
{
    struct serve *s = r->s;
    bool one = task_id != NULL;
    long limit = 1, offset = 0;
    if (!one) {
        limit = serve_query_int(r, "limit", 50, 100000);
        if (limit < 0 || (offset = serve_query_int(r, "offset", 0, 1000000000)) < 0)
            return;
    }
    struct serve_api_states sf = { .runs = false };
    if (!one)
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, serve_api_collect_state, &sf);
    if (sf.bad) {
        serve_reply_json(r, 422, json_pack("{s:[{s:s,s:[s,s],s:s}]}", "detail", "type", "enum",
                                           "loc", "query", "state", "msg",
                                           "Input should be a task instance state"));
        return;
    }
    long mi = -1;
    if (map_index) {
        char *end;
        mi = strtol(map_index, &end, 10);
        if (!map_index[0] || *end || mi < -1) {
            json_t *d = json_pack("{s:[{s:s,s:[s,s],s:s}]}", "detail", "type", "int_parsing",
                                  "loc", "path", "map_index", "msg",
                                  "Input should be a valid integer");
            serve_reply_json(r, 422, d);
            return;
        }
    }
    char lim[24], off[24], mis[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    snprintf(mis, sizeof mis, "%ld", mi);
    struct store *st;
    json_t *run = serve_api_run_open(r, dag_id, run_id, true, &st);
    if (!run)
        return;
    json_decref(run);
    struct dr_err err;
    err_clear(&err);
    PGresult *res = NULL, *cnt = NULL;
    if (one) {
        const char *v[] = { run_id, task_id, mis };
        res = serve_db_exec(st, "SELECT " TI_COLS " FROM dagrun.task_instance t"
                                " JOIN dagrun.dag_run r ON r.run_id = t.run_id"
                                " WHERE t.run_id = $1 AND t.task_id = $2"
                                " AND t.map_index = $3::int", 3, v, &err);
    } else {
        /* Paged in primary-key order, which the key's index gives without sorting; the page's
         * keys are found first, so that the rows skipped by OFFSET cost an index entry each
         * and nothing is formatted for them. */
        /* Without a state filter, the keys and the count come from the primary key's index
         * alone (an index-only scan once autovacuum has visited the table). */
#define TI_PAGE(filter)                                                                       \
    "WITH page AS (SELECT k.task_id, k.map_index FROM dagrun.task_instance k"                 \
    " WHERE k.run_id = $1" filter " ORDER BY k.run_id, k.task_id, k.map_index"                \
    " LIMIT $2::bigint OFFSET $3::bigint)"                                                    \
    " SELECT " TI_COLS " FROM page JOIN dagrun.task_instance t ON t.run_id = $1"              \
    " AND t.task_id = page.task_id AND t.map_index = page.map_index"                          \
    " JOIN dagrun.dag_run r ON r.run_id = t.run_id ORDER BY t.task_id, t.map_index"
#define TI_FILTER " AND k.state = ANY (string_to_array($4, ','))"
        const char *v[] = { run_id, lim, off, sf.list };
        res = serve_db_exec(st, sf.n ? TI_PAGE(TI_FILTER) : TI_PAGE(""), sf.n ? 4 : 3, v, &err);
        const char *vc[] = { run_id, sf.list };
        if (res && sf.n)
            cnt = serve_db_exec(st, "SELECT count(*) FROM dagrun.task_instance t"
                                    " WHERE t.run_id = $1"
                                    " AND t.state = ANY (string_to_array($2, ','))", 2, vc, &err);
        else if (res)
            cnt = serve_db_exec(st, "SELECT count(*) FROM dagrun.task_instance t"
                                    " WHERE t.run_id = $1", 1, vc, &err);
#undef TI_PAGE
#undef TI_FILTER
    }
    serve_db_put(s, st);
    if (!res || (!one && !cnt)) {
        PQclear(res);
        serve_api_reply_db_error(r, &err);
        return;
    }
    if (one && PQntuples(res) == 0) {
        PQclear(res);
        serve_reply_error(r, 404,
                          "The Task Instance with dag_id: `%s`, run_id: `%s`, task_id: `%s` and "
                          "map_index: `%ld` was not found", dag_id, run_id, task_id, mi);
        return;
    }
    json_t *list = json_array();
    pthread_mutex_lock(&s->dag_lock);
    const struct dag *d = serve_dag_find(s, dag_id);
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(list, ti_json(res, i, dag_id, run_id, d));
    pthread_mutex_unlock(&s->dag_lock);
    PQclear(res);
    if (one) {
        json_t *o = json_incref(json_array_get(list, 0));
        json_decref(list);
        serve_reply_json(r, 200, o);
        return;
    }
    long long total = strtoll(PQgetvalue(cnt, 0, 0), NULL, 10);
    PQclear(cnt);
    serve_reply_json(r, 200, json_pack("{s:o,s:I}", "task_instances", list, "total_entries",
                                       (json_int_t)total));
}

/* clearTaskInstances with dag_run_id: re-runs what did not succeed in that run (what
 * `dagrun resume` does). dry_run (Airflow's default: true) only lists them. */
void serve_ti_clear(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "dry_run", "start_date", "end_date", "only_failed",
                                        "only_running", "reset_dag_runs", "task_ids",
                                        "dag_run_id", "include_upstream", "include_downstream",
                                        "include_future", "include_past",
                                        "run_on_latest_version", NULL };
    const char *run_id;
    bool dry_run, only_failed, only_running;
    if (!serve_api_body_keys_ok(r, keys) || !serve_api_opt_string(r, "dag_run_id", &run_id) ||
        !serve_api_opt_bool(r, "dry_run", true, &dry_run) ||
        !serve_api_opt_bool(r, "only_failed", true, &only_failed) ||
        !serve_api_opt_bool(r, "only_running", false, &only_running))
        return;
    if (!run_id) {
        serve_reply_error(r, 400, "dagrun clears the task instances of one run: give dag_run_id");
        return;
    }
    if (only_running) {
        serve_reply_error(r, 400, "only_running is not supported: a run re-runs what did not "
                                  "succeed");
        return;
    }
    if (!serve_api_dag_known(r, dag_id))
        return;
    struct store *st;
    json_t *run = serve_api_run_open(r, dag_id, run_id, false, &st);
    if (!run)
        return;
    struct dr_err err;
    err_clear(&err);
    const char *state = json_string_value(json_object_get(run, "dagrun_state"));
    bool active = state && (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0);
    json_decref(run);
    if (active) {
        serve_db_put(s, st);
        serve_reply_error(r, 409, "run %s is %s: clear it once it has ended", run_id, state);
        return;
    }
    /* What a resume re-runs: every instance or item that did not end success or skipped. */
    const char *v[] = { run_id };
    PGresult *res = serve_db_exec(st, "SELECT " TI_COLS " FROM dagrun.task_instance t"
                                      " JOIN dagrun.dag_run r ON r.run_id = t.run_id"
                                      " WHERE t.run_id = $1 AND t.state NOT IN ('success',"
                                      " 'skipped') ORDER BY t.run_id, t.task_id, t.map_index",
                                  1, v, &err);
    bool requeued = false;
    if (res && !dry_run) {
        PGresult *u = serve_db_exec(st, "UPDATE dagrun.dag_run SET state = 'queued',"
                                        " ended_at = NULL, error = NULL, cancel_requested = false"
                                        " WHERE run_id = $1 AND state IN ('failed', 'partial',"
                                        " 'cancelled') RETURNING 1", 1, v, &err);
        if (!u) {
            PQclear(res);
            res = NULL;
        } else
            requeued = PQntuples(u) == 1;
        PQclear(u);
    }
    serve_db_put(s, st);
    if (!res) {
        serve_api_reply_db_error(r, &err);
        return;
    }
    if (requeued && serve_runs_start(s, run_id, &err) < 0)
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; it stays queued for a scheduler",
                err.msg);
    json_t *list = json_array();
    pthread_mutex_lock(&s->dag_lock);
    const struct dag *d = serve_dag_find(s, dag_id);
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(list, ti_json(res, i, dag_id, run_id, d));
    pthread_mutex_unlock(&s->dag_lock);
    int n = PQntuples(res);
    PQclear(res);
    serve_reply_json(r, 200, json_pack("{s:o,s:i}", "task_instances", list, "total_entries", n));
}
