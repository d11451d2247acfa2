/* `dagrun serve`'s Airflow API for DAG runs: trigger, list, get and patch (mark success,
 * failed or queued) under /api/v2/dags/{dag_id}/dagRuns. */
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "date.h"
#include "log.h"
#include "serve.h"
#include "serve_api.h"

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
    if (!serve_api_opt_string(r, key, &v))
        return false;
    if (!v)
        return true;
    struct dr_err err;
    err_clear(&err);
    if (date_parse_instant(v, t, &err) < 0) {
        serve_api_reply_invalid(r, "datetime_from_date_parsing", key,
                                "Input should be a valid datetime");
        return false;
    }
    *given = true;
    return true;
}

void serve_dagruns_trigger(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "dag_run_id", "data_interval_start", "data_interval_end",
                                        "logical_date", "run_after", "conf", "note", NULL };
    if (!serve_api_body_keys_ok(r, keys))
        return;
    if (!json_object_get(r->json, "logical_date")) {
        serve_api_reply_invalid(r, "missing", "logical_date", "Field required");
        return;
    }
    const char *run_id_in, *note;
    int64_t logical = (int64_t)time(NULL), dis = 0, die = 0, after = 0;
    bool has_logical, has_dis, has_die, has_after;
    if (!serve_api_opt_string(r, "dag_run_id", &run_id_in) ||
        !serve_api_opt_string(r, "note", &note) ||
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
        serve_api_reply_invalid(r, "dict_type", "conf", "Input should be a valid dictionary");
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
        serve_api_reply_no_dag(r, dag_id);
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
        serve_api_reply_db_error(r, &err);
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
            serve_api_iso(logical, date, sizeof date);
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
            serve_api_reply_db_error(r, &err);
        else
            serve_reply_error(r, 500, "no free run id after 5 tries");
        return;
    }
    /* The answer is the run as recorded, queued; it executes in its own process from here
     * on. */
    json_t *o = serve_api_run_json(st, dag_id, run_id, &err);
    serve_db_put(s, st);
    struct dr_err e2;
    err_clear(&e2);
    if (serve_runs_start(s, run_id, &e2) < 0)
        log_msg(DR_LOG_ERROR, run_id, NULL, NULL, "%s; it stays queued for a scheduler",
                e2.msg);
    if (o)
        serve_reply_json(r, 200, o);
    else
        serve_api_reply_db_error(r, &err);
}

void serve_dagruns_list(struct serve_req *r, const char *dag_id)
{
    struct serve *s = r->s;
    long limit = serve_query_int(r, "limit", 50, 100000), offset;
    if (limit < 0 || (offset = serve_query_int(r, "offset", 0, 1000000000)) < 0)
        return;
    struct serve_api_states sf = { .runs = true };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, serve_api_collect_state, &sf);
    if (sf.bad) {
        serve_reply_json(r, 422, json_pack("{s:[{s:s,s:[s,s],s:s}]}", "detail", "type", "enum",
                                           "loc", "query", "state", "msg",
                                           "Input should be 'queued', 'running', 'success' or "
                                           "'failed'"));
        return;
    }
    bool all = strcmp(dag_id, "~") == 0;
    if (!all && !serve_api_dag_known(r, dag_id))
        return;
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
        serve_api_reply_db_error(r, &err);
}

void serve_dagruns_get(struct serve_req *r, const char *dag_id, const char *run_id)
{
    struct store *st;
    json_t *o = serve_api_run_open(r, dag_id, run_id, false, &st);
    serve_db_put(r->s, st);
    if (o)
        serve_reply_json(r, 200, o);
}

/* PATCH state "failed" cancels a queued or running run: its process is interrupted (this
 * server's) or asked through the heartbeat (another's), and the answer waits up to 10 s for
 * it to end. */
void serve_dagruns_patch(struct serve_req *r, const char *dag_id, const char *run_id)
{
    struct serve *s = r->s;
    static const char *const keys[] = { "state", "note", NULL };
    const char *state, *note;
    if (!serve_api_body_keys_ok(r, keys) || !serve_api_opt_string(r, "state", &state) ||
        !serve_api_opt_string(r, "note", &note))
        return;
    if (state && strcmp(state, "failed") != 0 && strcmp(state, "success") != 0 &&
        strcmp(state, "queued") != 0) {
        serve_api_reply_invalid(r, "enum", "state",
                                "Input should be 'queued', 'success' or 'failed'");
        return;
    }
    if (state && strcmp(state, "failed") != 0) {
        serve_reply_error(r, 400, "dagrun sets a run's state only to failed (to cancel it); "
                                  "clearTaskInstances re-runs what did not succeed");
        return;
    }
    struct store *st;
    json_t *o = serve_api_run_open(r, dag_id, run_id, false, &st);
    if (!o)
        return;
    struct dr_err err;
    err_clear(&err);
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
            res = serve_db_exec(st, "SELECT pg_try_advisory_lock(" STORE_RUN_LOCK_NS
                                    ", hashtext($1))", 1,
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
                res = serve_db_exec(st, "SELECT pg_advisory_unlock(" STORE_RUN_LOCK_NS
                                        ", hashtext($1))", 1,
                                    v, &err);
                PQclear(res);
            }
        }
        for (int i = 0; ok && i < 200; i++) {
            o = serve_api_run_json(st, dag_id, run_id, &err);
            const char *now = json_string_value(json_object_get(o, "dagrun_state"));
            if (!o || !now || (strcmp(now, "queued") != 0 && strcmp(now, "running") != 0))
                break;
            json_decref(o);
            o = NULL;
            nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
        }
        if (ok && !o)
            o = serve_api_run_json(st, dag_id, run_id, &err);
        if (!ok) {
            serve_db_put(s, st);
            serve_api_reply_db_error(r, &err);
            return;
        }
    }
    serve_db_put(s, st);
    if (o)
        serve_reply_json(r, 200, o);
    else
        serve_api_reply_db_error(r, &err);
}
