/* `dagrun serve`: the subset of Airflow 3's public REST API (/api/v2) that drives runs, with
 * Airflow's paths, fields, status codes and JSON shapes (tests/api/airflow-v2-schemas.json):
 * its routing, DAGs and health here; DAG runs in serve_dagruns.c, task instances in
 * serve_ti.c, with the helpers they share (serve_api.h). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "date.h"
#include "log.h"
#include "serve.h"
#include "serve_api.h"
#include "store.h"


/* dagrun's run states that Airflow lacks map onto its DagRunState; the exact state goes in
 * the extra field dagrun_state (README "State mapping"). */
const char *serve_airflow_run_state(const char *state)
{
    if (!state)
        return "queued";
    if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0 ||
        strcmp(state, "success") == 0)
        return state;
    return "failed"; /* failed, partial, cancelled */
}

/* ---- small helpers ---- */

void serve_api_reply_db_error(struct serve_req *r, const struct dr_err *err)
{
    log_error("%s", err->msg);
    serve_reply_error(r, 500, "%s", err->msg);
}

/* A 422 in FastAPI's shape: {"detail": [{"type", "loc", "msg"}]}. */
void serve_api_reply_invalid(struct serve_req *r, const char *type, const char *field,
                             const char *msg)
{
    json_t *loc = json_pack("[s]", "body");
    if (field)
        json_array_append_new(loc, json_string(field));
    serve_reply_json(r, 422, json_pack("{s:[{s:s,s:o,s:s}]}", "detail", "type", type, "loc", loc,
                                       "msg", msg));
}

/* Checks a request body: an object whose keys are all in allowed ("" ends the list). On
 * failure answers 422 and returns false. */
bool serve_api_body_keys_ok(struct serve_req *r, const char *const *allowed)
{
    if (!json_is_object(r->json)) {
        serve_api_reply_invalid(r, "model_attributes_type", NULL,
                                "Input should be a valid dictionary");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(r->json, k, v) {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            ok |= strcmp(allowed[i], k) == 0;
        if (!ok) {
            serve_api_reply_invalid(r, "extra_forbidden", k, "Extra inputs are not permitted");
            return false;
        }
    }
    return true;
}

/* A member that must be a string, null or absent; false after answering 422 otherwise. */
bool serve_api_opt_string(struct serve_req *r, const char *key, const char **out)
{
    json_t *v = json_object_get(r->json, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        serve_api_reply_invalid(r, "string_type", key, "Input should be a valid string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

bool serve_api_opt_bool(struct serve_req *r, const char *key, bool def, bool *out)
{
    json_t *v = json_object_get(r->json, key);
    *out = def;
    if (!v)
        return true;
    if (!json_is_boolean(v)) {
        serve_api_reply_invalid(r, "bool_type", key, "Input should be a valid boolean");
        return false;
    }
    *out = json_is_true(v);
    return true;
}

void serve_api_iso(int64_t t, char *buf, size_t len) { date_format_instant(t, buf, len); }

/* The run's JSON (RUN_JSON) or NULL; err->msg is empty when there is no such run. */
json_t *serve_api_run_json(struct store *st, const char *dag_id, const char *run_id,
                           struct dr_err *err)
{
    const char *v[] = { dag_id, run_id };
    return serve_db_json(st, "SELECT " RUN_JSON " FROM dagrun.dag_run r"
                             " WHERE r.run_id = $2 AND r.dag_id = $1", 2, v, err);
}

/* {"state": ...} of the run when it exists (new reference), else NULL (err->msg empty when
 * there is no such run): a check that reads no task instances. */
json_t *serve_api_run_exists(struct store *st, const char *dag_id, const char *run_id,
                             struct dr_err *err)
{
    const char *v[] = { dag_id, run_id };
    return serve_db_json(st, "SELECT json_build_object('state', r.state) FROM dagrun.dag_run r"
                             " WHERE r.run_id = $2 AND r.dag_id = $1", 2, v, err);
}

json_t *serve_api_run_open(struct serve_req *r, const char *dag_id, const char *run_id,
                           bool brief, struct store **st)
{
    struct dr_err err;
    err_clear(&err);
    *st = serve_db_get(r->s, &err);
    json_t *run = !*st ? NULL
                : brief ? serve_api_run_exists(*st, dag_id, run_id, &err)
                        : serve_api_run_json(*st, dag_id, run_id, &err);
    if (run)
        return run;
    bool none = *st && !err.msg[0];
    serve_db_put(r->s, *st);
    *st = NULL;
    if (none)
        serve_api_reply_no_run(r, dag_id, run_id);
    else
        serve_api_reply_db_error(r, &err);
    return NULL;
}

void serve_api_reply_no_run(struct serve_req *r, const char *dag_id, const char *run_id)
{
    serve_reply_error(r, 404, "The DagRun with dag_id: `%s` and run_id: `%s` was not found",
                      dag_id, run_id);
}

void serve_api_reply_no_dag(struct serve_req *r, const char *dag_id)
{
    serve_reply_error(r, 404, "The Dag with ID: `%s` was not found", dag_id);
}

bool serve_api_dag_known(struct serve_req *r, const char *dag_id)
{
    pthread_mutex_lock(&r->s->dag_lock);
    bool known = serve_dag_find(r->s, dag_id) != NULL;
    pthread_mutex_unlock(&r->s->dag_lock);
    if (!known)
        serve_api_reply_no_dag(r, dag_id);
    return known;
}


/* Collects the `state` query parameters (repeatable) as dagrun states, comma-separated. */
enum MHD_Result serve_api_collect_state(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    struct serve_api_states *st = cls;
    if (!key || strcmp(key, "state") != 0 || !value)
        return MHD_YES;
    static const char *const run_states[] = { "queued", "running", "success", "failed",
                                              "partial", "cancelled", NULL };
    static const char *const ti_states[] = { "scheduled", "running", "success", "failed",
                                             "skipped", "upstream_failed", "pending", "cancelled",
                                             NULL };
    const char *const *known = st->runs ? run_states : ti_states;
    bool ok = false;
    for (int i = 0; known[i]; i++)
        ok |= strcmp(known[i], value) == 0;
    if (!ok) {
        st->bad = true;
        return MHD_YES;
    }
    /* Airflow's "failed" covers dagrun's partial and cancelled; "scheduled" is pending. */
    const char *add = value;
    if (st->runs && strcmp(value, "failed") == 0)
        add = "failed,partial,cancelled";
    else if (!st->runs && strcmp(value, "failed") == 0)
        add = "failed,cancelled";
    else if (!st->runs && strcmp(value, "scheduled") == 0)
        add = "pending";
    size_t len = strlen(st->list);
    snprintf(st->list + len, sizeof st->list - len, "%s%s", len ? "," : "", add);
    st->n++;
    return MHD_YES;
}

/* ---- DAGs ---- */

/* The interval the scheduler fires next for d, after now: [*start, *end), due at *end. */
static bool next_interval(const struct dag *d, int64_t now, int64_t *start, int64_t *end)
{
    if (!d->cron || cron_next(d->cron, d->tz, now, end) < 0)
        return false;
    /* The tick before *end: the nearest window back from it that holds one. Bounded: at
     * most a few hundred cron steps for any schedule. */
    static const int64_t back[] = { 60, 3600, 86400, 8 * 86400, 32 * 86400, 367 * 86400 };
    for (size_t i = 0; i < sizeof back / sizeof *back; i++) {
        int64_t t = *end - back[i], last = INT64_MIN, nx;
        while (cron_next(d->cron, d->tz, t, &nx) == 0 && nx < *end) {
            last = nx;
            t = nx;
        }
        if (last != INT64_MIN) {
            *start = last;
            return true;
        }
    }
    *start = *end;
    return true;
}

/* A DAGResponse for the loaded file f (caller holds dag_lock). */
static json_t *dag_json(struct serve *s, const struct serve_dag *f, bool paused)
{
    const struct dag *d = f->dag;
    char parsed[32], a[32], b[32];
    serve_api_iso(f->mtime_ns / 1000000000, parsed, sizeof parsed);
    int64_t start = 0, end = 0;
    bool has_next = next_interval(d, (int64_t)time(NULL), &start, &end);
    serve_api_iso(start, a, sizeof a);
    serve_api_iso(end, b, sizeof b);
    const char *dir = s->c->cfg->dags_dir;
    const char *rel = f->path;
    if (strncmp(rel, dir, strlen(dir)) == 0 && rel[strlen(dir)] == '/')
        rel += strlen(dir) + 1;
    bool pools = false;
    for (size_t i = 0; i < d->n_tasks; i++)
        pools |= d->tasks[i].pool != NULL;
    json_t *next = has_next ? json_string(a) : json_null();
    json_t *o = json_pack(
        "{s:s,s:s,s:b,s:b,s:s,s:n,s:s,s:n,s:s,s:s,s:s?,s:s?,s:s?,s:[],s:i,s:i,s:i,s:b,s:b,"
        "s:o,s:o,s:o,s:o,s:[],s:s,s:s,s:s?}",
        "dag_id", d->dag_id, "dag_display_name", d->dag_id, "is_paused", paused,
        "is_stale", 0, "last_parsed_time", parsed, "last_expired", "bundle_name", "dags-folder",
        "bundle_version", "relative_fileloc", rel, "fileloc", f->path, "description",
        d->description, "timetable_summary", d->schedule, "timetable_description",
        d->schedule, "tags", "max_active_tasks",
        d->max_active_tasks ? d->max_active_tasks : s->c->cfg->max_active_tasks,
        "max_active_runs", d->max_active_runs, "max_consecutive_failed_dag_runs", 0,
        "has_task_concurrency_limits", pools, "has_import_errors", 0,
        "next_dagrun_logical_date", next,
        "next_dagrun_data_interval_start", has_next ? json_string(a) : json_null(),
        "next_dagrun_data_interval_end", has_next ? json_string(b) : json_null(),
        "next_dagrun_run_after", has_next ? json_string(b) : json_null(), "owners",
        "file_token", d->dag_id, "timezone", tz_name(d->tz), "schedule", d->schedule);
    return o;
}

/* The paused flags of every DAG that has a row: {dag_id: true|false}; NULL with err. */
static json_t *paused_flags(struct store *st, struct dr_err *err)
{
    json_t *v = serve_db_json(st, "SELECT coalesce(json_object_agg(dag_id, paused), '{}')"
                                  " FROM dagrun.dag", 0, NULL, err);
    return v;
}

static void get_dags(struct serve_req *r)
{
    struct serve *s = r->s;
    long limit = serve_query_int(r, "limit", 50, 1000000), offset;
    if (limit < 0 || (offset = serve_query_int(r, "offset", 0, 1000000000)) < 0)
        return;
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *flags = st ? paused_flags(st, &err) : NULL;
    serve_db_put(s, st);
    if (!flags) {
        serve_api_reply_db_error(r, &err);
        return;
    }
    json_t *list = json_array();
    long total = 0;
    pthread_mutex_lock(&s->dag_lock);
    serve_dags_refresh(s);
    /* dags_dir is listed in name order, which is the order here. */
    for (size_t i = 0; i < s->n_dags; i++) {
        const struct serve_dag *f = &s->dags[i];
        if (!f->dag)
            continue;
        if (total >= offset && total < offset + limit)
            json_array_append_new(list, dag_json(s, f, json_is_true(json_object_get(
                                                          flags, f->dag->dag_id))));
        total++;
    }
    pthread_mutex_unlock(&s->dag_lock);
    json_decref(flags);
    serve_reply_json(r, 200, json_pack("{s:o,s:i}", "dags", list, "total_entries", total));
}

/* Answers one DAG (after an optional pause change); 404 when there is none. */
static void get_or_patch_dag(struct serve_req *r, const char *dag_id, bool patch)
{
    struct serve *s = r->s;
    bool pause = false;
    if (patch) {
        static const char *const keys[] = { "is_paused", NULL };
        if (!serve_api_body_keys_ok(r, keys))
            return;
        json_t *v = json_object_get(r->json, "is_paused");
        if (!json_is_boolean(v)) {
            serve_api_reply_invalid(r, v ? "bool_type" : "missing", "is_paused",
                                    v ? "Input should be a valid boolean" : "Field required");
            return;
        }
        pause = json_is_true(v);
    }
    if (!serve_api_dag_known(r, dag_id))
        return;
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *flags = NULL;
    if (st && (!patch || store_dag_set_paused(st, dag_id, pause, &err) == 0))
        flags = paused_flags(st, &err);
    serve_db_put(s, st);
    if (!flags) {
        serve_api_reply_db_error(r, &err);
        return;
    }
    json_t *o = NULL;
    pthread_mutex_lock(&s->dag_lock);
    for (size_t i = 0; i < s->n_dags && !o; i++)
        if (s->dags[i].dag && strcmp(s->dags[i].dag->dag_id, dag_id) == 0)
            o = dag_json(s, &s->dags[i], json_is_true(json_object_get(flags, dag_id)));
    pthread_mutex_unlock(&s->dag_lock);
    json_decref(flags);
    if (o)
        serve_reply_json(r, 200, o);
    else
        serve_api_reply_no_dag(r, dag_id);
}

/* ---- /api/v2/monitor/health ---- */

static void monitor_health(struct serve_req *r)
{
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(r->s, &err);
    json_t *hb = st ? serve_db_json(st, "SELECT to_json(" TS("max(heartbeat_at)") ")"
                                        " FROM dagrun.dag_run", 0, NULL, &err)
                    : NULL;
    bool db_ok = st && !err.msg[0];
    serve_db_put(r->s, st);
    const char *beat = json_string_value(hb);
    json_t *o = json_pack("{s:{s:s},s:{s:s?,s:s?},s:{s:n,s:n},s:n}", "metadatabase", "status",
                          db_ok ? "healthy" : "unhealthy", "scheduler", "status",
                          r->s->scheduler ? "healthy" : NULL, "latest_scheduler_heartbeat", beat,
                          "triggerer", "status", "latest_triggerer_heartbeat", "dag_processor");
    json_decref(hb);
    serve_reply_json(r, 200, o);
}

/* ---- routing ---- */

static bool is(const char *a, const char *b) { return strcmp(a, b) == 0; }

bool serve_api_route(struct serve_req *r, char **p, int n)
{
    const char *m = r->method;
    bool get = is(m, "GET"), post = is(m, "POST"), patch = is(m, "PATCH");
    if (n == 2 && is(p[0], "monitor") && is(p[1], "health")) {
        if (get)
            monitor_health(r);
        else
            goto method;
        return true;
    }
    if (n < 1 || !is(p[0], "dags"))
        return false;
    if (n == 1) {
        if (!get)
            goto method;
        get_dags(r);
        return true;
    }
    const char *dag_id = p[1];
    if (n == 2) {
        if (!get && !patch)
            goto method;
        get_or_patch_dag(r, dag_id, patch);
        return true;
    }
    if (n == 3 && is(p[2], "clearTaskInstances")) {
        if (!post)
            goto method;
        serve_ti_clear(r, dag_id);
        return true;
    }
    if (!is(p[2], "dagRuns"))
        return false;
    if (n == 3) {
        if (post)
            serve_dagruns_trigger(r, dag_id);
        else if (get)
            serve_dagruns_list(r, dag_id);
        else
            goto method;
        return true;
    }
    const char *run_id = p[3];
    if (n == 4) {
        if (get)
            serve_dagruns_get(r, dag_id, run_id);
        else if (patch)
            serve_dagruns_patch(r, dag_id, run_id);
        else
            goto method;
        return true;
    }
    if (n == 5 && is(p[4], "events")) {
        if (!get)
            goto method;
        struct store *st;
        json_t *run = serve_api_run_open(r, dag_id, run_id, true, &st);
        serve_db_put(r->s, st);
        if (run)
            serve_sse_open(r, run_id);
        json_decref(run);
        return true;
    }
    if (n >= 5 && n <= 7 && is(p[4], "taskInstances")) {
        if (!get)
            goto method;
        serve_ti_list(r, dag_id, run_id, n >= 6 ? p[5] : NULL, n == 7 ? p[6] : NULL);
        return true;
    }
    return false;
method:
    serve_reply_error(r, 405, "Method Not Allowed");
    return true;
}
