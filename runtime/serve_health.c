/* `dagrun serve`: health for load balancers (/health, /health/queue, /health/sources) and
 * Prometheus metrics (/metrics), derived from the stored run state. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "serve.h"
#include "store.h"

#ifndef DAGRUN_VERSION
#define DAGRUN_VERSION "dev"
#endif

/* ---- /health ---- */

static void health(struct serve_req *r)
{
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(r->s, &err);
    PGresult *res = st ? serve_db_exec(st, "SELECT 1 FROM dagrun.dag_run LIMIT 1", 0, NULL, &err)
                       : NULL;
    bool ok = res != NULL;
    PQclear(res);
    serve_db_put(r->s, st);
    if (ok)
        serve_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ok", "database", "ok"));
    else
        serve_reply_json(r, 503, json_pack("{s:s,s:s,s:s}", "status", "unavailable", "database",
                                           "unreachable", "reason", err.msg));
}

static void health_queue(struct serve_req *r)
{
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(r->s, &err);
    /* Items pending: of each running run's lanes, the items its source task listed that
     * have no ended record yet (an estimate while the lane's source is still running). */
    json_t *o = st ? serve_db_json(
                         st,
                         "SELECT json_build_object("
                         " 'runs_queued', count(*) FILTER (WHERE state = 'queued'),"
                         " 'runs_running', count(*) FILTER (WHERE state = 'running'),"
                         " 'oldest_queued_age_s', coalesce(round(extract(epoch FROM now() -"
                         "  min(queued_at) FILTER (WHERE state = 'queued'))::numeric, 3), 0),"
                         " 'items_pending', coalesce((SELECT sum(GREATEST(0, tot.n - done.n))"
                         "  FROM dagrun.dag_run a"
                         "  CROSS JOIN LATERAL (SELECT coalesce(max(jsonb_array_length(t.output)), 0)"
                         "   AS n FROM dagrun.task_instance t WHERE t.run_id = a.run_id"
                         "   AND t.map_index = -1 AND jsonb_typeof(t.output) = 'array') tot"
                         "  CROSS JOIN LATERAL (SELECT count(DISTINCT t.map_index) AS n"
                         "   FROM dagrun.task_instance t WHERE t.run_id = a.run_id"
                         "   AND t.map_index >= 0 AND t.state NOT IN ('pending', 'running')) done"
                         "  WHERE a.state = 'running'), 0))"
                         " FROM dagrun.dag_run WHERE state IN ('queued', 'running')",
                         0, NULL, &err)
                   : NULL;
    serve_db_put(r->s, st);
    if (!o) {
        serve_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "unavailable", "reason",
                                           err.msg));
        return;
    }
    json_object_set_new(o, "run_processes", json_integer((json_int_t)serve_runs_count(r->s)));
    serve_reply_json(r, 200, o);
}

/* Per source: the configured rate limit, and what the runs of the last minute and hour
 * recorded: their requests by source and HTTP status (the "http:SOURCE:STATUS" counters a
 * run stores when it ends, http.c), and the latest HTTP error (which names no source: with
 * one source, it is that source's). */
static void health_sources(struct serve_req *r)
{
    const struct config *cfg = r->s->c->cfg;
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(r->s, &err);
    json_t *used = st ? serve_db_json(
                            st,
                            "SELECT json_build_object("
                            " 'sources', (SELECT coalesce(json_object_agg(src, json_build_object("
                            "  'minute', minute, 'hour', hour, 'ok', ok, 'http_429', r429)), '{}')"
                            "  FROM (SELECT src, coalesce(sum(n) FILTER (WHERE recent), 0) AS minute,"
                            "   sum(n) AS hour, coalesce(sum(n) FILTER (WHERE code LIKE '2__'), 0) AS ok,"
                            "   coalesce(sum(n) FILTER (WHERE code = '429'), 0) AS r429"
                            "  FROM (SELECT substring(e.key FROM '^http:(.*):[^:]+$') AS src,"
                            "   substring(e.key FROM ':([^:]+)$') AS code,"
                            "   (e.value #>> '{}')::numeric AS n,"
                            "   coalesce(coalesce(q.ended_at, q.heartbeat_at) > now() - interval"
                            "   '1 minute', false) AS recent"
                            "   FROM dagrun.dag_run q, jsonb_each(q.counters) e"
                            "   WHERE e.key ~ '^http:.*:[^:]+$' AND jsonb_typeof(e.value) = 'number'"
                            "   AND coalesce(q.ended_at, q.heartbeat_at, q.queued_at)"
                            "   > now() - interval '1 hour') x GROUP BY src) y),"
                            " 'last_error', (SELECT json_build_object('error', t.error, 'at',"
                            "  to_char(t.ended_at AT TIME ZONE 'UTC',"
                            "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
                            "  FROM dagrun.task_instance t JOIN dagrun.dag_run q"
                            "  ON q.run_id = t.run_id WHERE q.queued_at > now() - interval '1 hour'"
                            "  AND t.error LIKE '%HTTP %' ORDER BY t.ended_at DESC NULLS LAST"
                            "  LIMIT 1))",
                            0, NULL, &err)
                      : NULL;
    serve_db_put(r->s, st);
    if (!used) {
        serve_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "unavailable", "reason",
                                           err.msg));
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct source_cfg *sc = &cfg->sources[i];
        const json_t *u = json_object_get(json_object_get(used, "sources"), sc->name);
        double minute = json_number_value(json_object_get(u, "minute"));
        double hour = json_number_value(json_object_get(u, "hour"));
        double per_min = sc->rate_limit_per_sec * 60;
        bool mine = cfg->n_sources == 1;
        json_t *last = json_object_get(used, "last_error");
        json_array_append_new(
            list,
            json_pack("{s:s,s:I,s:I,s:o,s:I,s:o,s:o,s:f,s:i,s:o}", "source", sc->name,
                      "requests_last_minute", (json_int_t)minute, "requests_last_hour",
                      (json_int_t)hour, "share_2xx",
                      hour > 0 ? json_real(json_number_value(json_object_get(u, "ok")) / hour)
                               : json_null(),
                      "http_429_last_hour",
                      (json_int_t)json_number_value(json_object_get(u, "http_429")),
                      "last_error",
                      mine && json_is_object(last) ? json_incref(json_object_get(last, "error"))
                                                   : json_null(),
                      "last_error_at",
                      mine && json_is_object(last) ? json_incref(json_object_get(last, "at"))
                                                   : json_null(),
                      "rate_limit_per_sec", sc->rate_limit_per_sec, "burst", sc->burst,
                      "rate_limit_used", per_min > 0 ? json_real(minute / per_min) : json_null()));
    }
    json_decref(used);
    serve_reply_json(r, 200, json_pack("{s:o}", "sources", list));
}

/* ---- /metrics ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 8192;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->oom = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

/* A label value escaped for the exposition format (backslash, quote, newline). */
static void put_label(struct text *t, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\')
            put(t, "\\\\");
        else if (*p == '"')
            put(t, "\\\"");
        else if (*p == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *p);
    }
}

static const char metrics_sql[] =
    "SELECT json_build_object("
    " 'runs', (SELECT coalesce(json_agg(json_build_object('dag_id', dag_id, 'state', state,"
    "  'n', n)), '[]') FROM (SELECT dag_id, state, count(*) AS n FROM dagrun.dag_run"
    "  WHERE state IN ('success', 'partial', 'failed', 'cancelled')"
    "  GROUP BY dag_id, state ORDER BY 1, 2) x),"
    " 'active', (SELECT json_build_object("
    "  'queued', count(*) FILTER (WHERE state = 'queued'),"
    "  'running', count(*) FILTER (WHERE state = 'running'))"
    "  FROM dagrun.dag_run WHERE state IN ('queued', 'running')),"
    " 'tis', (SELECT coalesce(json_object_agg(state, n), '{}') FROM (SELECT state, count(*) AS n"
    "  FROM dagrun.task_instance GROUP BY state) y),"
    " 'items', (SELECT json_build_object('done', count(*) FILTER (WHERE ok AND NOT bad),"
    "  'failed', count(*) FILTER (WHERE bad)) FROM (SELECT"
    "  bool_and(state IN ('success', 'skipped')) AS ok,"
    "  bool_or(state IN ('failed', 'upstream_failed', 'cancelled')) AS bad"
    "  FROM dagrun.task_instance WHERE map_index >= 0 GROUP BY run_id, map_index) i),"
    " 'counters', (SELECT json_build_object("
    "  'candles', coalesce(sum((counters->>'candles')::numeric), 0),"
    "  'inserted', coalesce(sum((counters->>'inserted')::numeric), 0),"
    "  'updated', coalesce(sum((counters->>'updated')::numeric), 0),"
    "  'dropped', coalesce(sum((counters->>'dropped')::numeric), 0))"
    "  FROM dagrun.dag_run),"
    /* the per-source counters a run stores when it ends (http.c) */
    " 'requests', (SELECT coalesce(json_agg(json_build_object('source', src, 'status', code,"
    "  'n', n) ORDER BY src, code), '[]') FROM (SELECT"
    "  substring(e.key FROM '^http:(.*):[^:]+$') AS src, substring(e.key FROM ':([^:]+)$') AS code,"
    "  sum((e.value #>> '{}')::numeric) AS n FROM dagrun.dag_run r, jsonb_each(r.counters) e"
    "  WHERE e.key ~ '^http:.*:[^:]+$' AND jsonb_typeof(e.value) = 'number' GROUP BY 1, 2) z),"
    " 'waits', (SELECT coalesce(json_object_agg(src, ms), '{}') FROM (SELECT"
    "  substr(e.key, 14) AS src,"
    "  sum((e.value #>> '{}')::numeric) AS ms FROM dagrun.dag_run r, jsonb_each(r.counters) e"
    "  WHERE left(e.key, 13) = 'rate_wait_ms:' AND jsonb_typeof(e.value) = 'number'"
    "  GROUP BY 1) w))";

static const double lat_bounds[SERVE_LAT_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,  0.1,    0.25,  0.5,  1.0 };

static void metrics(struct serve_req *r)
{
    struct serve *s = r->s;
    struct dr_err err;
    err_clear(&err);
    struct store *st = serve_db_get(s, &err);
    json_t *m = st ? serve_db_json(st, metrics_sql, 0, NULL, &err) : NULL;
    serve_db_put(s, st);
    if (!m) {
        serve_reply_text(r, 503, "text/plain; charset=utf-8", err.msg, strlen(err.msg));
        return;
    }
    struct text t = { 0 };
    put(&t, "# HELP dagrun_build_info The dagrun build serving these metrics.\n"
            "# TYPE dagrun_build_info gauge\n"
            "dagrun_build_info{version=\"%s\",plugin_abi=\"%d\"} 1\n", DAGRUN_VERSION,
        DR_ABI_VERSION);

    put(&t, "# HELP dagrun_runs_total DAG runs ended, by DAG and end state (from the stored "
            "runs).\n# TYPE dagrun_runs_total counter\n");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(m, "runs"), i, row) {
        put(&t, "dagrun_runs_total{dag_id=\"");
        put_label(&t, json_string_value(json_object_get(row, "dag_id")));
        put(&t, "\",state=\"%s\"} %" JSON_INTEGER_FORMAT "\n",
            json_string_value(json_object_get(row, "state")),
            json_integer_value(json_object_get(row, "n")));
    }
    json_t *active = json_object_get(m, "active");
    put(&t, "# HELP dagrun_active_runs DAG runs queued or running now.\n"
            "# TYPE dagrun_active_runs gauge\n"
            "dagrun_active_runs{state=\"queued\"} %" JSON_INTEGER_FORMAT "\n"
            "dagrun_active_runs{state=\"running\"} %" JSON_INTEGER_FORMAT "\n",
        json_integer_value(json_object_get(active, "queued")),
        json_integer_value(json_object_get(active, "running")));

    put(&t, "# HELP dagrun_task_instances Task instances and items recorded, by state.\n"
            "# TYPE dagrun_task_instances gauge\n");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(m, "tis"), k, v)
        put(&t, "dagrun_task_instances{state=\"%s\"} %" JSON_INTEGER_FORMAT "\n", k,
            json_integer_value(v));

    json_t *items = json_object_get(m, "items");
    put(&t, "# HELP dagrun_items_done_total Mapped items whose every task ended success or "
            "skipped.\n"
            "# TYPE dagrun_items_done_total counter\n"
            "dagrun_items_done_total %" JSON_INTEGER_FORMAT "\n"
            "# HELP dagrun_items_failed_total Mapped items that failed in some task.\n"
            "# TYPE dagrun_items_failed_total counter\n"
            "dagrun_items_failed_total %" JSON_INTEGER_FORMAT "\n",
        json_integer_value(json_object_get(items, "done")),
        json_integer_value(json_object_get(items, "failed")));

    json_t *c = json_object_get(m, "counters");
    put(&t, "# HELP dagrun_candles_fetched_total Candles received from brokers.\n"
            "# TYPE dagrun_candles_fetched_total counter\n"
            "dagrun_candles_fetched_total %.0f\n"
            "# HELP dagrun_candles_stored_total Candles inserted or updated.\n"
            "# TYPE dagrun_candles_stored_total counter\n"
            "dagrun_candles_stored_total %.0f\n"
            "# HELP dagrun_candles_dropped_total Candles dropped as invalid.\n"
            "# TYPE dagrun_candles_dropped_total counter\n"
            "dagrun_candles_dropped_total %.0f\n",
        json_number_value(json_object_get(c, "candles")),
        json_number_value(json_object_get(c, "inserted")) +
            json_number_value(json_object_get(c, "updated")),
        json_number_value(json_object_get(c, "dropped")));
    put(&t, "# HELP dagrun_broker_requests_total HTTP requests made to sources (attempts, retries "
            "included), by source and HTTP status (none: no answer), from the ended runs.\n"
            "# TYPE dagrun_broker_requests_total counter\n");
    json_array_foreach(json_object_get(m, "requests"), i, row) {
        put(&t, "dagrun_broker_requests_total{source=\"");
        put_label(&t, json_string_value(json_object_get(row, "source")));
        put(&t, "\",status=\"");
        put_label(&t, json_string_value(json_object_get(row, "status")));
        put(&t, "\"} %.0f\n", json_number_value(json_object_get(row, "n")));
    }
    put(&t, "# HELP dagrun_rate_limit_wait_seconds_total Time requests waited for a source's rate "
            "limit, by source (the configured ones and any a run used), from the ended runs.\n"
            "# TYPE dagrun_rate_limit_wait_seconds_total counter\n");
    json_t *waits = json_object_get(m, "waits");
    const struct config *cfg = s->c->cfg;
    for (size_t j = 0; j < cfg->n_sources; j++)
        if (!json_object_get(waits, cfg->sources[j].name))
            json_object_set_new(waits, cfg->sources[j].name, json_integer(0));
    const char *src;
    json_t *ms;
    json_object_foreach(waits, src, ms) {
        put(&t, "dagrun_rate_limit_wait_seconds_total{source=\"");
        put_label(&t, src);
        put(&t, "\"} %.3f\n", json_number_value(ms) / 1000.0);
    }
    json_decref(m);

    put(&t, "# HELP dagrun_serve_run_processes Run processes this server runs now.\n"
            "# TYPE dagrun_serve_run_processes gauge\n"
            "dagrun_serve_run_processes %zu\n"
            "# HELP dagrun_serve_event_streams Open event streams.\n"
            "# TYPE dagrun_serve_event_streams gauge\n"
            "dagrun_serve_event_streams %zu\n",
        serve_runs_count(s), serve_sse_count(s));

    uint64_t counts[SERVE_LAT_BUCKETS + 1], total;
    double sum;
    pthread_mutex_lock(&s->stat_lock);
    memcpy(counts, s->lat_count, sizeof counts);
    total = s->lat_total;
    sum = s->lat_sum;
    pthread_mutex_unlock(&s->stat_lock);
    put(&t, "# HELP dagrun_http_request_duration_seconds Time to answer an API request (this "
            "process, since it started).\n"
            "# TYPE dagrun_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < SERVE_LAT_BUCKETS; b++) {
        cum += counts[b];
        put(&t, "dagrun_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[b],
            (unsigned long long)cum);
    }
    put(&t, "dagrun_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "dagrun_http_request_duration_seconds_sum %.6f\n"
            "dagrun_http_request_duration_seconds_count %llu\n",
        (unsigned long long)total, sum, (unsigned long long)total);
    if (t.oom) {
        free(t.buf);
        serve_reply_error(r, 500, "out of memory");
        return;
    }
    serve_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len);
    free(t.buf);
}

bool serve_health_route(struct serve_req *r)
{
    const char *u = r->url;
    void (*fn)(struct serve_req *) = NULL;
    if (strcmp(u, "/health") == 0)
        fn = health;
    else if (strcmp(u, "/health/queue") == 0)
        fn = health_queue;
    else if (strcmp(u, "/health/sources") == 0)
        fn = health_sources;
    else if (strcmp(u, "/metrics") == 0)
        fn = metrics;
    if (!fn)
        return false;
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        serve_reply_error(r, 405, "Method Not Allowed");
    else
        fn(r);
    return true;
}
