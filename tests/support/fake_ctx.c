/* A fake dr_ctx for plugin unit tests: implements every dr_* function of task.h. */
#define _GNU_SOURCE /* asprintf, vasprintf */
#include "fake_ctx.h"
#include "sandbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fake_http {
    int rc;
    long status;
    char *content_type;
    char *body;
};

struct dr_ctx {
    json_t *params;         /* object name -> typed JSON value */
    json_t *map_item;       /* NULL when not mapped */
    long map_index;
    json_t *inputs;         /* object task_id -> value */
    json_t *lane_json;
    const void *lane_blob;  /* borrowed */
    const char *lane_blob_type;
    size_t lane_blob_len;
    PGconn *db;             /* borrowed */
    bool cancelled;
    int emit_fail_after;
    int emits;
    fake_emit_hook hook;
    void *hook_ud;
    json_t *emitted;
    struct fake_blob *blobs;
    size_t nblobs, cap_blobs;
    json_t *counters;
    json_t *logs, *warnings, *requests;
    char *error;
    char *checkpoint, *prior_checkpoint;
    struct fake_http *http;
    size_t nhttp, next_http;
    size_t piece;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

static json_t *parse_or_die(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v) {
        fprintf(stderr, "fake_ctx: bad JSON %s: %s\n", text, e.text);
        abort();
    }
    return v;
}

/* Duration text like 250ms, 2s, 5m, 1h, 1d -> ms; -1 when malformed. */
static long long duration_ms(const char *s)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n < 0)
        return -1;
    if (!strcmp(end, "ms")) return n;
    if (!strcmp(end, "s")) return n * 1000;
    if (!strcmp(end, "m")) return n * 60000;
    if (!strcmp(end, "h")) return n * 3600000;
    if (!strcmp(end, "d")) return n * 86400000;
    return -1;
}

static json_t *typed_default(const dr_param *p)
{
    char *end;
    switch (p->type) {
    case DR_T_STRING:
    case DR_T_DATE:
        return json_string(p->def);
    case DR_T_INT: {
        long long v = strtoll(p->def, &end, 10);
        if (*end)
            abort();
        return json_integer(v);
    }
    case DR_T_BOOL:
        return json_boolean(!strcmp(p->def, "true"));
    case DR_T_DURATION:
        return json_integer(duration_ms(p->def));
    case DR_T_LIST:
        return parse_or_die(p->def);
    }
    return NULL;
}

dr_ctx *fake_ctx_new(const dr_task_def *def)
{
    dr_ctx *c = xcalloc(1, sizeof *c);
    c->params = json_object();
    c->inputs = json_object();
    c->emitted = json_array();
    c->counters = json_object();
    c->logs = json_array();
    c->warnings = json_array();
    c->requests = json_array();
    c->map_index = -1;
    c->emit_fail_after = -1;
    c->piece = 7;
    json_object_set_new(c->params, "run_id", json_string("manual__2026-01-05T13:00:00Z"));
    json_object_set_new(c->params, "logical_date", json_string("2026-01-05T13:00:00Z"));
    json_object_set_new(c->params, "data_interval_start", json_string("2026-01-04T13:00:00Z"));
    json_object_set_new(c->params, "data_interval_end", json_string("2026-01-05T13:00:00Z"));
    if (def && def->params)
        for (const dr_param *p = def->params; p->name; p++)
            if (p->def)
                json_object_set_new(c->params, p->name, typed_default(p));
    return c;
}

void fake_ctx_free(dr_ctx *c)
{
    if (!c)
        return;
    json_decref(c->params);
    json_decref(c->map_item);
    json_decref(c->inputs);
    json_decref(c->lane_json);
    json_decref(c->emitted);
    json_decref(c->counters);
    json_decref(c->logs);
    json_decref(c->warnings);
    json_decref(c->requests);
    free(c->checkpoint);
    free(c->prior_checkpoint);
    for (size_t i = 0; i < c->nblobs; i++) {
        free(c->blobs[i].type);
        free(c->blobs[i].data);
    }
    free(c->blobs);
    for (size_t i = 0; i < c->nhttp; i++) {
        free(c->http[i].content_type);
        free(c->http[i].body);
    }
    free(c->http);
    free(c->error);
    free(c);
}

void fake_ctx_set_param(dr_ctx *c, const char *name, const char *json_text)
{
    json_object_set_new(c->params, name, parse_or_die(json_text));
}

void fake_ctx_set_map_item(dr_ctx *c, const char *json_text, long index)
{
    json_decref(c->map_item);
    c->map_item = json_text ? parse_or_die(json_text) : NULL;
    c->map_index = json_text ? index : -1;
}

void fake_ctx_set_input(dr_ctx *c, const char *task_id, const char *json_text)
{
    json_object_set_new(c->inputs, task_id, parse_or_die(json_text));
}

void fake_ctx_set_input_new(dr_ctx *c, const char *task_id, json_t *value)
{
    json_object_set_new(c->inputs, task_id, value);
}

void fake_ctx_set_lane_json(dr_ctx *c, const char *json_text)
{
    json_decref(c->lane_json);
    c->lane_json = json_text ? parse_or_die(json_text) : NULL;
}

void fake_ctx_set_lane_blob(dr_ctx *c, const char *type, const void *data, size_t len)
{
    c->lane_blob_type = type;
    c->lane_blob = data;
    c->lane_blob_len = len;
}

void fake_ctx_set_db(dr_ctx *c, PGconn *db) { c->db = db; }
void fake_ctx_set_cancelled(dr_ctx *c, bool cancelled) { c->cancelled = cancelled; }

void fake_ctx_set_prior_checkpoint(dr_ctx *c, const char *text)
{
    free(c->prior_checkpoint);
    c->prior_checkpoint = text ? xstrdup(text) : NULL;
}

const char *fake_ctx_checkpoint(dr_ctx *c) { return c->checkpoint; }
void fake_ctx_fail_emit_after(dr_ctx *c, int n) { c->emit_fail_after = n; }
void fake_ctx_set_stream_piece(dr_ctx *c, size_t piece) { c->piece = piece ? piece : 1; }

void fake_ctx_set_emit_hook(dr_ctx *c, fake_emit_hook hook, void *ud)
{
    c->hook = hook;
    c->hook_ud = ud;
}

void fake_ctx_push_http(dr_ctx *c, int rc, long status, const char *content_type,
                        const char *body)
{
    struct fake_http *h = realloc(c->http, (c->nhttp + 1) * sizeof *h);
    if (!h)
        abort();
    c->http = h;
    h[c->nhttp].rc = rc;
    h[c->nhttp].status = status;
    h[c->nhttp].content_type = xstrdup(content_type);
    h[c->nhttp].body = xstrdup(body);
    c->nhttp++;
}

const json_t *fake_ctx_emitted(dr_ctx *c) { return c->emitted; }
size_t fake_ctx_nblobs(dr_ctx *c) { return c->nblobs; }
const struct fake_blob *fake_ctx_blob(dr_ctx *c, size_t i) { return i < c->nblobs ? &c->blobs[i] : NULL; }
const json_t *fake_ctx_logs(dr_ctx *c) { return c->logs; }
const json_t *fake_ctx_warnings(dr_ctx *c) { return c->warnings; }
const char *fake_ctx_error(dr_ctx *c) { return c->error; }
const json_t *fake_ctx_requests(dr_ctx *c) { return c->requests; }
size_t fake_ctx_http_left(dr_ctx *c) { return c->nhttp - c->next_http; }

long long fake_ctx_counter(dr_ctx *c, const char *name)
{
    return json_integer_value(json_object_get(c->counters, name));
}

bool fake_ctx_has(const json_t *arr, const char *needle)
{
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
        if (json_is_string(v) && strstr(json_string_value(v), needle))
            return true;
    return false;
}

/* ---- the dr_* API ---- */

DR_EXPORT const char *dr_param_str(dr_ctx *c, const char *name)
{
    return json_string_value(json_object_get(c->params, name));
}

DR_EXPORT long long dr_param_int(dr_ctx *c, const char *name)
{
    return json_integer_value(json_object_get(c->params, name));
}

DR_EXPORT bool dr_param_bool(dr_ctx *c, const char *name)
{
    return json_is_true(json_object_get(c->params, name));
}

DR_EXPORT const json_t *dr_param_json(dr_ctx *c, const char *name)
{
    return json_object_get(c->params, name);
}

DR_EXPORT const json_t *dr_input(dr_ctx *c, const char *task_id)
{
    return json_object_get(c->inputs, task_id);
}

DR_EXPORT const json_t *dr_map_item(dr_ctx *c) { return c->map_item; }
DR_EXPORT long dr_map_index(dr_ctx *c) { return c->map_index; }
DR_EXPORT const json_t *dr_lane_json(dr_ctx *c) { return c->lane_json; }

DR_EXPORT const void *dr_lane_blob(dr_ctx *c, const char **type, size_t *len)
{
    if (type)
        *type = c->lane_blob ? c->lane_blob_type : NULL;
    if (len)
        *len = c->lane_blob ? c->lane_blob_len : 0;
    return c->lane_blob;
}

static int emit_gate(dr_ctx *c)
{
    if (c->cancelled)
        return -1;
    if (c->emit_fail_after >= 0 && c->emits >= c->emit_fail_after)
        return -1;
    c->emits++;
    return 0;
}

DR_EXPORT int dr_emit_json_new(dr_ctx *c, json_t *value)
{
    if (!value)
        return -1;
    if (emit_gate(c) < 0) {
        json_decref(value);
        return -1;
    }
    json_array_append(c->emitted, value);
    int rc = c->hook ? c->hook(c, value, NULL, NULL, 0, c->hook_ud) : 0;
    json_decref(value);
    return rc;
}

DR_EXPORT int dr_emit_blob(dr_ctx *c, const char *type, const void *data, size_t len)
{
    if (emit_gate(c) < 0)
        return -1;
    if (c->nblobs == c->cap_blobs) {
        c->cap_blobs = c->cap_blobs ? 2 * c->cap_blobs : 8;
        c->blobs = realloc(c->blobs, c->cap_blobs * sizeof *c->blobs);
        if (!c->blobs)
            abort();
    }
    struct fake_blob *b = &c->blobs[c->nblobs++];
    b->type = xstrdup(type);
    b->data = malloc(len ? len : 1);
    if (!b->data)
        abort();
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    return c->hook ? c->hook(c, NULL, type, data, len, c->hook_ud) : 0;
}

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    return s;
}

DR_EXPORT void dr_log(dr_ctx *c, dr_log_level level, const char *fmt, ...)
{
    static const char *names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (asprintf(&line, "%s %s", names[level <= DR_LOG_ERROR ? level : 0], msg) < 0)
        abort();
    json_array_append_new(c->logs, json_string(line));
    if (getenv("FAKE_CTX_VERBOSE"))
        fprintf(stderr, "log: %s\n", line);
    free(line);
    free(msg);
}

DR_EXPORT void dr_warn(dr_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    json_array_append_new(c->warnings, json_string(msg));
    free(msg);
}

DR_EXPORT void dr_error(dr_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(c->error);
    c->error = vfmt(fmt, ap);
    va_end(ap);
    if (getenv("FAKE_CTX_VERBOSE"))
        fprintf(stderr, "error: %s\n", c->error);
}

DR_EXPORT void dr_count(dr_ctx *c, const char *counter, long long delta)
{
    long long v = json_integer_value(json_object_get(c->counters, counter));
    json_object_set_new(c->counters, counter, json_integer(v + delta));
}

DR_EXPORT bool dr_cancelled(dr_ctx *c) { return c->cancelled; }

DR_EXPORT void dr_set_checkpoint(dr_ctx *c, const char *text)
{
    if (!c->map_item)
        return;
    free(c->checkpoint);
    c->checkpoint = text ? strndup(text, 255) : NULL;
}

DR_EXPORT const char *dr_checkpoint(dr_ctx *c) { return c->map_item ? c->prior_checkpoint : NULL; }

DR_EXPORT PGconn *dr_db(dr_ctx *c)
{
    if (!c->db) {
        dr_error(c, "no database configured");
        return NULL;
    }
    return c->db;
}

static struct fake_http *next_response(dr_ctx *c, const char *source, const char *path,
                                       dr_http_response *resp)
{
    char *req = NULL;
    if (asprintf(&req, "%s %s", source, path) < 0)
        abort();
    json_array_append_new(c->requests, json_string(req));
    free(req);
    memset(resp, 0, sizeof *resp);
    if (c->next_http >= c->nhttp) {
        snprintf(resp->error, sizeof resp->error, "fake_ctx: no scripted response for %s", path);
        return NULL;
    }
    struct fake_http *h = &c->http[c->next_http++];
    resp->attempts = 1;
    if (h->rc < 0) {
        snprintf(resp->error, sizeof resp->error, "%s", h->body);
        return NULL;
    }
    resp->status = h->status;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", h->content_type);
    return h;
}

DR_EXPORT int dr_http_get(dr_ctx *c, const char *source, const char *path, dr_http_response *resp)
{
    struct fake_http *h = next_response(c, source, path, resp);
    if (!h)
        return -1;
    resp->body = xstrdup(h->body);
    resp->len = strlen(h->body);
    return 0;
}

DR_EXPORT int dr_http_get_stream(dr_ctx *c, const char *source, const char *path,
                                 dr_http_sink sink, void *ud, dr_http_response *resp)
{
    struct fake_http *h = next_response(c, source, path, resp);
    if (!h)
        return -1;
    if (h->status < 200 || h->status > 299) {
        resp->body = xstrdup(h->body);
        resp->len = strlen(h->body);
        return 0;
    }
    size_t len = strlen(h->body);
    for (size_t off = 0; off < len; off += c->piece) {
        size_t n = len - off < c->piece ? len - off : c->piece;
        if (sink(ud, h->body + off, n)) {
            snprintf(resp->error, sizeof resp->error, "aborted by the sink");
            return -1;
        }
    }
    return 0;
}

DR_EXPORT void dr_http_response_free(dr_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

/* ---- PostgreSQL sandbox ---- */

static const char fallback_schema[] =
    "CREATE TABLE IF NOT EXISTS instruments (instrument_token bigint PRIMARY KEY, "
    "exchange_token bigint, tradingsymbol text NOT NULL, name text, last_price numeric, "
    "expiry date, strike numeric, tick_size numeric, lot_size integer, instrument_type text, "
    "segment text, exchange text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS kite_ohlcv_historic (instrument_token bigint NOT NULL, "
    "tradingsymbol text NOT NULL, exchange text NOT NULL, candle_interval text NOT NULL, "
    "ts timestamptz NOT NULL, open numeric NOT NULL, high numeric NOT NULL, low numeric NOT NULL, "
    "close numeric NOT NULL, volume bigint NOT NULL, oi bigint, "
    "ingested_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (instrument_token, candle_interval, ts));";

PGconn *fake_db_start(void)
{
    char *url = sandbox_start("task-test");
    if (!url)
        return NULL;
    PGconn *db = PQconnectdb(url);
    free(url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "fake_db_start: %s", PQerrorMessage(db));
        PQfinish(db);
        sandbox_stop();
        return NULL;
    }
    char *schema = NULL;
    FILE *f = fopen("schema.sql", "rb");
    if (f) {
        schema = calloc(1, 1 << 20);
        if (schema && fread(schema, 1, (1 << 20) - 1, f) == 0) {
            free(schema);
            schema = NULL;
        }
        fclose(f);
    }
    PGresult *r = PQexec(db, schema ? schema : fallback_schema);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "fake_db_start: schema: %s", PQerrorMessage(db));
        PQclear(r);
        r = PQexec(db, "ROLLBACK");
        PQclear(r);
        r = PQexec(db, fallback_schema);
    }
    PQclear(r);
    free(schema);
    return db;
}

void fake_db_stop(PGconn *db)
{
    PQfinish(db);
    sandbox_stop();
}

int fake_db_exec(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(db));
        return -1;
    }
    return 0;
}
