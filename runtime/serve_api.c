/* `dagrun serve`: the subset of Airflow 3's public REST API (/api/v2) that drives runs, with
 * Airflow's paths, fields, status codes and JSON shapes (tests/api/airflow-v2-schemas.json). */
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"
#include "date.h"
#include "log.h"
#include "serve.h"
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

#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* A DAGRunResponse from the dag_run row r, with dagrun's extra fields. */
#define RUN_JSON                                                                              \
    "json_build_object('dag_run_id', r.run_id, 'dag_id', r.dag_id,"                           \
    " 'logical_date', " TS("r.logical_date") ", 'queued_at', " TS("r.queued_at") ","          \
    " 'start_date', " TS("r.started_at") ", 'end_date', " TS("r.ended_at") ","                \
    " 'duration', extract(epoch FROM r.ended_at - r.started_at)::float8,"                     \
    " 'data_interval_start', " TS("r.data_interval_start") ","                                \
    " 'data_interval_end', " TS("r.data_interval_end") ","                                    \
    " 'run_after', " TS("CASE WHEN r.run_type = 'scheduled' THEN coalesce(r.data_interval_end," \
    "  r.queued_at) ELSE r.queued_at END") ","                                                \
    " 'last_scheduling_decision', NULL::text,"                                                \
    " 'run_type', CASE r.run_type WHEN 'test' THEN 'manual' ELSE r.run_type END,"             \
    " 'state', CASE WHEN r.state IN ('queued', 'running', 'success') THEN r.state"            \
    "  ELSE 'failed' END,"                                                                    \
    " 'triggered_by', CASE r.run_type WHEN 'scheduled' THEN 'timetable' WHEN 'test'"          \
    "  THEN 'test' WHEN 'backfill' THEN 'backfill' END,"                                      \
    " 'triggering_user_name', NULL::text, 'conf', r.conf, 'note', NULL::text,"                \
    " 'dag_versions', '[]'::json, 'bundle_version', NULL::text, 'dag_display_name', r.dag_id," \
    " 'dagrun_state', r.state, 'dagrun_run_type', r.run_type, 'error', r.error,"              \
    " 'warnings', r.warnings, 'counters', r.counters,"                                        \
    " 'task_instance_states', (SELECT coalesce(json_object_agg(x.state, x.n), '{}')"          \
    "  FROM (SELECT t.state, count(*) AS n FROM dagrun.task_instance t"                       \
    "  WHERE t.run_id = r.run_id GROUP BY t.state) x))"

/* ---- small helpers ---- */

static void reply_db_error(struct serve_req *r, const struct dr_err *err)
{
    log_error("%s", err->msg);
    serve_reply_error(r, 500, "%s", err->msg);
}

/* A 422 in FastAPI's shape: {"detail": [{"type", "loc", "msg"}]}. */
static void reply_invalid(struct serve_req *r, const char *type, const char *field,
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
static bool body_keys_ok(struct serve_req *r, const char *const *allowed)
{
    if (!json_is_object(r->json)) {
        reply_invalid(r, "model_attributes_type", NULL, "Input should be a valid dictionary");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(r->json, k, v) {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            ok |= strcmp(allowed[i], k) == 0;
        if (!ok) {
            reply_invalid(r, "extra_forbidden", k, "Extra inputs are not permitted");
            return false;
        }
    }
    return true;
}

/* A member that must be a string, null or absent; false after answering 422 otherwise. */
static bool opt_string(struct serve_req *r, const char *key, const char **out)
{
    json_t *v = json_object_get(r->json, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        reply_invalid(r, "string_type", key, "Input should be a valid string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool opt_bool(struct serve_req *r, const char *key, bool def, bool *out)
{
    json_t *v = json_object_get(r->json, key);
    *out = def;
    if (!v)
        return true;
    if (!json_is_boolean(v)) {
        reply_invalid(r, "bool_type", key, "Input should be a valid boolean");
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static void iso(int64_t t, char *buf, size_t len) { date_format_instant(t, buf, len); }

/* The run's JSON (RUN_JSON) or NULL; err->msg is empty when there is no such run. */
static json_t *run_json(struct store *st, const char *dag_id, const char *run_id,
                        struct dr_err *err)
{
    const char *v[] = { dag_id, run_id };
    return serve_db_json(st, "SELECT " RUN_JSON " FROM dagrun.dag_run r"
                             " WHERE r.run_id = $2 AND r.dag_id = $1", 2, v, err);
}

/* {"state": ...} of the run when it exists (new reference), else NULL (err->msg empty when
 * there is no such run): a check that reads no task instances. */
static json_t *run_exists(struct store *st, const char *dag_id, const char *run_id,
                          struct dr_err *err)
{
    const char *v[] = { dag_id, run_id };
    return serve_db_json(st, "SELECT json_build_object('state', r.state) FROM dagrun.dag_run r"
                             " WHERE r.run_id = $2 AND r.dag_id = $1", 2, v, err);
}

static void reply_no_run(struct serve_req *r, const char *dag_id, const char *run_id)
{
    serve_reply_error(r, 404, "The DagRun with dag_id: `%s` and run_id: `%s` was not found",
                      dag_id, run_id);
}

static void reply_no_dag(struct serve_req *r, const char *dag_id)
{
    serve_reply_error(r, 404, "The Dag with ID: `%s` was not found", dag_id);
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
    iso(f->mtime_ns / 1000000000, parsed, sizeof parsed);
    int64_t start = 0, end = 0;
    bool has_next = next_interval(d, (int64_t)time(NULL), &start, &end);
    iso(start, a, sizeof a);
    iso(end, b, sizeof b);
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
        reply_db_error(r, &err);
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
        if (!body_keys_ok(r, keys))
            return;
        json_t *v = json_object_get(r->json, "is_paused");
        if (!json_is_boolean(v)) {
            reply_invalid(r, v ? "bool_type" : "missing", "is_paused",
                          v ? "Input should be a valid boolean" : "Field required");
            return;
        }
        pause = json_is_true(v);
    }
    pthread_mutex_lock(&s->dag_lock);
    bool known = serve_dag_find(s, dag_id) != NULL;
    pthread_mutex_unlock(&s->dag_lock);
    if (!known) {
        reply_no_dag(r, dag_id);
        return;
    }
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *flags = NULL;
    if (st && (!patch || store_dag_set_paused(st, dag_id, pause, &err) == 0))
        flags = paused_flags(st, &err);
    serve_db_put(s, st);
    if (!flags) {
        reply_db_error(r, &err);
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
        reply_no_dag(r, dag_id);
}

/* ---- DAG runs ---- */

static void random_hex(char buf[7])
{
    unsigned char b[3] = { 0 };
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, b, sizeof b) != (ssize_t)sizeof b)
            b[0] = (unsigned char)serve_now_ms();
        close(fd);
    }
    snprintf(buf, 7, "%02x%02x%02x", b[0], b[1], b[2]);
}

/* Reads an optional date-time member into *t; false after answering 422. */
static bool opt_instant(struct serve_req *r, const char *key, int64_t *t, bool *given)
{
    const char *v;
    *given = false;
    if (!opt_string(r, key, &v))
        return false;
    if (!v)
        return true;
    struct dr_err err;
    err_clear(&err);
    if (date_parse_instant(v, t, &err) < 0) {
        reply_invalid(r, "datetime_from_date_parsing", key,
                      "Input should be a valid datetime");
        return false;
    }
    *given = true;
    return true;
}

static void trigger_run(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "dag_run_id", "data_interval_start", "data_interval_end",
                                        "logical_date", "run_after", "conf", "note", NULL };
    if (!body_keys_ok(r, keys))
        return;
    if (!json_object_get(r->json, "logical_date")) {
        reply_invalid(r, "missing", "logical_date", "Field required");
        return;
    }
    const char *run_id_in, *note;
    int64_t logical = (int64_t)time(NULL), dis = 0, die = 0, after = 0;
    bool has_logical, has_dis, has_die, has_after;
    if (!opt_string(r, "dag_run_id", &run_id_in) || !opt_string(r, "note", &note) ||
        !opt_instant(r, "logical_date", &logical, &has_logical) ||
        !opt_instant(r, "data_interval_start", &dis, &has_dis) ||
        !opt_instant(r, "data_interval_end", &die, &has_die) ||
        !opt_instant(r, "run_after", &after, &has_after))
        return;
    if (!has_logical)
        logical = has_after ? after : (int64_t)time(NULL);
    if (has_dis != has_die) {
        serve_reply_error(r, 400, "data_interval_start and data_interval_end go together");
        return;
    }
    if (!has_dis)
        dis = die = logical;
    json_t *conf = json_object_get(r->json, "conf");
    if (conf && !json_is_null(conf) && !json_is_object(conf)) {
        reply_invalid(r, "dict_type", "conf", "Input should be a valid dictionary");
        return;
    }
    if (json_is_null(conf))
        conf = NULL;
    if (run_id_in && (!run_id_in[0] || strlen(run_id_in) > 150)) {
        serve_reply_error(r, 400, "dag_run_id must have 1 to 150 characters");
        return;
    }

    /* conf is checked exactly as `dagrun run --conf` checks it. */
    struct dr_err err;
    err_clear(&err);
    pthread_mutex_lock(&s->dag_lock);
    struct dag *d = serve_dag_find(s, dag_id);
    int bad = d && conf ? dag_check_conf(d, conf, &err) : 0;
    pthread_mutex_unlock(&s->dag_lock);
    if (!d) {
        reply_no_dag(r, dag_id);
        return;
    }
    if (bad < 0) {
        const char *m = err.msg;
        if (strncmp(m, "--conf: ", 8) == 0)
            m += 8;
        serve_reply_error(r, 400, "conf: %s", m);
        return;
    }

    struct store *st = serve_db_get(s, &err);
    if (!st) {
        reply_db_error(r, &err);
        return;
    }
    char run_id[200] = "";
    char *conf_txt = conf ? json_dumps(conf, JSON_COMPACT) : NULL;
    char t0[32], t1[32], t2[32];
    snprintf(t0, sizeof t0, "%lld", (long long)logical);
    snprintf(t1, sizeof t1, "%lld", (long long)dis);
    snprintf(t2, sizeof t2, "%lld", (long long)die);
    const char *v0[] = { dag_id };
    PGresult *res = serve_db_exec(st, "INSERT INTO dagrun.dag (dag_id) VALUES ($1)"
                                      " ON CONFLICT (dag_id) DO NOTHING", 1, v0, &err);
    bool ok = res != NULL, conflict = false;
    PQclear(res);
    for (int attempt = 0; ok && attempt < 5 && !run_id[0]; attempt++) {
        char id[200], date[32], sfx[7];
        if (run_id_in)
            snprintf(id, sizeof id, "%s", run_id_in);
        else {
            iso(logical, date, sizeof date);
            random_hex(sfx);
            snprintf(id, sizeof id, "%s__manual__%s__%s", dag_id, date, sfx);
        }
        const char *v[] = { id, dag_id, t0, t1, t2, conf_txt ? conf_txt : "{}" };
        res = serve_db_exec(
            st,
            "INSERT INTO dagrun.dag_run (run_id, dag_id, run_type, logical_date,"
            " data_interval_start, data_interval_end, conf, state)"
            " VALUES ($1, $2, 'manual', to_timestamp($3::bigint), to_timestamp($4::bigint),"
            " to_timestamp($5::bigint), $6::jsonb, 'queued')"
            " ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
            6, v, &err);
        if (!res) {
            ok = false;
            break;
        }
        if (PQntuples(res) == 1)
            snprintf(run_id, sizeof run_id, "%s", id);
        else if (run_id_in)
            conflict = true;
        PQclear(res);
        if (conflict)
            break;
    }
    free(conf_txt);
    if (!ok || !run_id[0]) {
        serve_db_put(s, st);
        if (conflict)
            serve_reply_error(r, 409, "A DAG Run already exists for DAG %s with run id %s",
                              dag_id, run_id_in);
        else if (!ok)
            reply_db_error(r, &err);
        else
            serve_reply_error(r, 500, "no free run id after 5 tries");
        return;
    }
    /* The answer is the run as recorded, queued; it executes in its own process from here
     * on. */
    json_t *o = run_json(st, dag_id, run_id, &err);
    serve_db_put(s, st);
    struct dr_err e2;
    err_clear(&e2);
    if (serve_runs_start(s, run_id, &e2) < 0)
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; it stays queued for a scheduler",
                e2.msg);
    if (o)
        serve_reply_json(r, 200, o);
    else
        reply_db_error(r, &err);
}

/* Collects the `state` query parameters (repeatable) as dagrun states, comma-separated. */
struct states {
    char list[256];
    size_t n;
    bool bad;
    bool runs;                  /* run states (else task-instance states) */
};

static enum MHD_Result collect_state(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct states *st = cls;
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

static void list_runs(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    long limit = serve_query_int(r, "limit", 50, 100000), offset;
    if (limit < 0 || (offset = serve_query_int(r, "offset", 0, 1000000000)) < 0)
        return;
    struct states sf = { .runs = true };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_state, &sf);
    if (sf.bad) {
        serve_reply_json(r, 422, json_pack("{s:[{s:s,s:[s,s],s:s}]}", "detail", "type", "enum",
                                           "loc", "query", "state", "msg",
                                           "Input should be 'queued', 'running', 'success' or "
                                           "'failed'"));
        return;
    }
    bool all = strcmp(dag_id, "~") == 0;
    if (!all) {
        pthread_mutex_lock(&s->dag_lock);
        bool known = serve_dag_find(s, dag_id) != NULL;
        pthread_mutex_unlock(&s->dag_lock);
        if (!known) {
            reply_no_dag(r, dag_id);
            return;
        }
    }
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *v[] = { all ? NULL : dag_id, sf.n ? sf.list : NULL, lim, off };
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *o = st ? serve_db_json(
                         st,
                         "WITH f AS (SELECT * FROM dagrun.dag_run r WHERE ($1::text IS NULL"
                         "  OR r.dag_id = $1) AND ($2::text IS NULL"
                         "  OR r.state = ANY (string_to_array($2, ',')))),"
                         " page AS (SELECT * FROM f r ORDER BY r.queued_at DESC, r.run_id DESC"
                         "  LIMIT $3::bigint OFFSET $4::bigint)"
                         " SELECT json_build_object('dag_runs', (SELECT coalesce(json_agg("
                         RUN_JSON " ORDER BY r.queued_at DESC, r.run_id DESC), '[]')"
                         " FROM page r), 'total_entries', (SELECT count(*) FROM f))",
                         4, v, &err)
                   : NULL;
    serve_db_put(s, st);
    if (o)
        serve_reply_json(r, 200, o);
    else
        reply_db_error(r, &err);
}

static void get_run(struct serve_req *r, const char *dag_id, const char *run_id)
{
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(r->s, &err);
    json_t *o = st ? run_json(st, dag_id, run_id, &err) : NULL;
    serve_db_put(r->s, st);
    if (o)
        serve_reply_json(r, 200, o);
    else if (st && !err.msg[0])
        reply_no_run(r, dag_id, run_id);
    else
        reply_db_error(r, &err);
}

/* PATCH state "failed" cancels a queued or running run: its process is interrupted (this
 * server's) or asked through the heartbeat (another's), and the answer waits up to 10 s for
 * it to end. */
static void patch_run(struct serve_req *r, const char *dag_id, const char *run_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "state", "note", NULL };
    const char *state, *note;
    if (!body_keys_ok(r, keys) || !opt_string(r, "state", &state) ||
        !opt_string(r, "note", &note))
        return;
    if (state && strcmp(state, "failed") != 0 && strcmp(state, "success") != 0 &&
        strcmp(state, "queued") != 0) {
        reply_invalid(r, "enum", "state", "Input should be 'queued', 'success' or 'failed'");
        return;
    }
    if (state && strcmp(state, "failed") != 0) {
        serve_reply_error(r, 400, "dagrun sets a run's state only to failed (to cancel it); "
                                  "clearTaskInstances re-runs what did not succeed");
        return;
    }
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *o = st ? run_json(st, dag_id, run_id, &err) : NULL;
    if (!o) {
        serve_db_put(s, st);
        if (st && !err.msg[0])
            reply_no_run(r, dag_id, run_id);
        else
            reply_db_error(r, &err);
        return;
    }
    const char *cur = json_string_value(json_object_get(o, "dagrun_state"));
    if (state && cur && (strcmp(cur, "queued") == 0 || strcmp(cur, "running") == 0)) {
        json_decref(o);
        o = NULL;
        const char *v[] = { run_id };
        PGresult *res = serve_db_exec(st, "UPDATE dagrun.dag_run SET cancel_requested = true"
                                          " WHERE run_id = $1 AND state IN ('queued', 'running')",
                                      1, v, &err);
        bool ok = res != NULL;
        PQclear(res);
        if (ok && !serve_runs_interrupt(s, run_id)) {
            /* A queued run with no process here and none anywhere (its run lock is free):
             * nobody runs it, so it ends now. */
            res = serve_db_exec(st, "SELECT pg_try_advisory_lock(1684107122, hashtext($1))", 1,
                                v, &err);
            bool free_lock = res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
            ok = res != NULL;
            PQclear(res);
            if (free_lock) {
                res = serve_db_exec(st, "UPDATE dagrun.dag_run SET state = 'cancelled',"
                                        " started_at = coalesce(started_at, now()),"
                                        " ended_at = now(), error = 'cancelled through the API'"
                                        " WHERE run_id = $1 AND state = 'queued'", 1, v, &err);
                ok = res != NULL;
                PQclear(res);
                res = serve_db_exec(st, "SELECT pg_advisory_unlock(1684107122, hashtext($1))", 1,
                                    v, &err);
                PQclear(res);
            }
        }
        for (int i = 0; ok && i < 200; i++) {
            o = run_json(st, dag_id, run_id, &err);
            const char *now = json_string_value(json_object_get(o, "dagrun_state"));
            if (!o || !now || (strcmp(now, "queued") != 0 && strcmp(now, "running") != 0))
                break;
            json_decref(o);
            o = NULL;
            nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
        }
        if (ok && !o)
            o = run_json(st, dag_id, run_id, &err);
        if (!ok) {
            serve_db_put(s, st);
            reply_db_error(r, &err);
            return;
        }
    }
    serve_db_put(s, st);
    if (o)
        serve_reply_json(r, 200, o);
    else
        reply_db_error(r, &err);
}

/* ---- task instances ---- */

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

static void list_tis(struct serve_req *r, const char *dag_id, const char *run_id,
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
    struct states sf = { .runs = false };
    if (!one)
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_state, &sf);
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
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    if (!st) {
        reply_db_error(r, &err);
        return;
    }
    json_t *run = run_exists(st, dag_id, run_id, &err);
    if (!run) {
        serve_db_put(s, st);
        if (!err.msg[0])
            reply_no_run(r, dag_id, run_id);
        else
            reply_db_error(r, &err);
        return;
    }
    json_decref(run);
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
        reply_db_error(r, &err);
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
static void clear_tis(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "dry_run", "start_date", "end_date", "only_failed",
                                        "only_running", "reset_dag_runs", "task_ids",
                                        "dag_run_id", "include_upstream", "include_downstream",
                                        "include_future", "include_past",
                                        "run_on_latest_version", NULL };
    const char *run_id;
    bool dry_run, only_failed, only_running;
    if (!body_keys_ok(r, keys) || !opt_string(r, "dag_run_id", &run_id) ||
        !opt_bool(r, "dry_run", true, &dry_run) ||
        !opt_bool(r, "only_failed", true, &only_failed) ||
        !opt_bool(r, "only_running", false, &only_running))
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
    pthread_mutex_lock(&s->dag_lock);
    bool known = serve_dag_find(s, dag_id) != NULL;
    pthread_mutex_unlock(&s->dag_lock);
    if (!known) {
        reply_no_dag(r, dag_id);
        return;
    }
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    if (!st) {
        reply_db_error(r, &err);
        return;
    }
    json_t *run = run_json(st, dag_id, run_id, &err);
    if (!run) {
        serve_db_put(s, st);
        if (!err.msg[0])
            reply_no_run(r, dag_id, run_id);
        else
            reply_db_error(r, &err);
        return;
    }
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
        reply_db_error(r, &err);
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
        clear_tis(r, dag_id);
        return true;
    }
    if (!is(p[2], "dagRuns"))
        return false;
    if (n == 3) {
        if (post)
            trigger_run(r, dag_id);
        else if (get)
            list_runs(r, dag_id);
        else
            goto method;
        return true;
    }
    const char *run_id = p[3];
    if (n == 4) {
        if (get)
            get_run(r, dag_id, run_id);
        else if (patch)
            patch_run(r, dag_id, run_id);
        else
            goto method;
        return true;
    }
    if (n == 5 && is(p[4], "events")) {
        if (!get)
            goto method;
        struct dr_err err;
        err_clear(&err);
        struct store *st = serve_db_get(r->s, &err);
        json_t *run = st ? run_exists(st, dag_id, run_id, &err) : NULL;
        serve_db_put(r->s, st);
        if (run)
            serve_sse_open(r, run_id);
        else if (st && !err.msg[0])
            reply_no_run(r, dag_id, run_id);
        else
            reply_db_error(r, &err);
        json_decref(run);
        return true;
    }
    if (n >= 5 && n <= 7 && is(p[4], "taskInstances")) {
        if (!get)
            goto method;
        list_tis(r, dag_id, run_id, n >= 6 ? p[5] : NULL, n == 7 ? p[6] : NULL);
        return true;
    }
    return false;
method:
    serve_reply_error(r, 405, "Method Not Allowed");
    return true;
}
