/* Private to runtime/serve_api.c, serve_dagruns.c, serve_ti.c: the Airflow API's shared parts. */
#ifndef DR_SERVE_API_H
#define DR_SERVE_API_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve.h"

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

/* Collects the `state` query parameters (repeatable) as dagrun states, comma-separated. */
struct serve_api_states {
    char list[256];
    size_t n;
    bool bad;
    bool runs;                  /* run states (else task-instance states) */
};

/* ---- serve_api.c: helpers of every route ---- */

/* Logs err and answers 500 with its message. */
void serve_api_reply_db_error(struct serve_req *r, const struct dr_err *err);
/* A 422 in FastAPI's shape: {"detail": [{"type", "loc", "msg"}]}. */
void serve_api_reply_invalid(struct serve_req *r, const char *type, const char *field,
                             const char *msg);
/* Checks a request body: an object whose keys are all in allowed (NULL ends the list). On
 * failure answers 422 and returns false. */
bool serve_api_body_keys_ok(struct serve_req *r, const char *const *allowed);
/* A member that must be a string, null or absent; false after answering 422 otherwise. */
bool serve_api_opt_string(struct serve_req *r, const char *key, const char **out);
/* A member that must be a boolean or absent (then def); false after answering 422 otherwise. */
bool serve_api_opt_bool(struct serve_req *r, const char *key, bool def, bool *out);
/* The instant t (Unix ms) as ISO 8601 UTC text. */
void serve_api_iso(int64_t t, char *buf, size_t len);
/* The run's JSON (RUN_JSON) or NULL; err->msg is empty when there is no such run. */
json_t *serve_api_run_json(struct store *st, const char *dag_id, const char *run_id,
                           struct dr_err *err);
/* {"state": ...} of the run when it exists (new reference), else NULL (err->msg empty when
 * there is no such run): a check that reads no task instances. */
json_t *serve_api_run_exists(struct store *st, const char *dag_id, const char *run_id,
                             struct dr_err *err);
/* Takes a connection from the pool into *st and reads dag_id's run run_id: its JSON
 * (serve_api_run_json), or with brief only {"state"} (serve_api_run_exists). NULL after
 * answering 404 (no such run) or the database error, the connection back in the pool. */
json_t *serve_api_run_open(struct serve_req *r, const char *dag_id, const char *run_id,
                           bool brief, struct store **st);
/* 404: no such run of the DAG. */
void serve_api_reply_no_run(struct serve_req *r, const char *dag_id, const char *run_id);
/* 404: no such DAG. */
void serve_api_reply_no_dag(struct serve_req *r, const char *dag_id);
/* True when dag_id is a loaded DAG; else answers 404 and returns false. */
bool serve_api_dag_known(struct serve_req *r, const char *dag_id);
/* MHD_get_connection_values callback: cls is a struct serve_api_states. */
enum MHD_Result serve_api_collect_state(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value);

/* ---- serve_dagruns.c: /dags/{dag_id}/dagRuns[/{run_id}] ---- */

/* POST: triggers a run of dag_id (body: Airflow's TriggerDAGRunPostBody). */
void serve_dagruns_trigger(struct serve_req *r, const char *dag_id);
/* GET: the DAG's runs, newest first, paged (limit, offset) and filtered by state. */
void serve_dagruns_list(struct serve_req *r, const char *dag_id);
/* GET: one run. */
void serve_dagruns_get(struct serve_req *r, const char *dag_id, const char *run_id);
/* PATCH: state "failed" cancels a queued or running run (the only state it sets). */
void serve_dagruns_patch(struct serve_req *r, const char *dag_id, const char *run_id);

/* ---- serve_ti.c: task instances ---- */

/* GET .../taskInstances[/{task_id}[/{map_index}]]: a run's task instances, or one. */
void serve_ti_list(struct serve_req *r, const char *dag_id, const char *run_id,
                   const char *task_id, const char *map_index);
/* POST /dags/{dag_id}/clearTaskInstances. */
void serve_ti_clear(struct serve_req *r, const char *dag_id);

#endif
