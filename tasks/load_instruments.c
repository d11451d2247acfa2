/* load_instruments: stream the broker's instrument dump (Kite CSV) into the instruments table with COPY. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dr_param params[] = {
    { "source", DR_T_STRING, "kite", false, "HTTP source of config.json to load from" },
    { "exchange", DR_T_STRING, NULL, false,
      "load one exchange (GET /instruments/{exchange}); unset: all exchanges" },
    { NULL, 0, NULL, false, NULL }
};

static const char header[] =
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange";

/* Every column as text: casts happen in the INSERT, where a bad value names its column. */
static const char create_sql[] =
    "CREATE TEMP TABLE dr_load_instruments (instrument_token text, exchange_token text, "
    "tradingsymbol text, name text, last_price text, expiry text, strike text, tick_size text, "
    "lot_size text, instrument_type text, segment text, exchange text) ON COMMIT DROP";

static const char merge_sql[] =
    "INSERT INTO instruments (instrument_token, exchange_token, tradingsymbol, name, last_price, "
    "expiry, strike, tick_size, lot_size, instrument_type, segment, exchange) "
    "SELECT DISTINCT ON (instrument_token::bigint) instrument_token::bigint, "
    "nullif(exchange_token, '')::bigint, tradingsymbol, nullif(name, ''), "
    "nullif(last_price, '')::numeric, nullif(expiry, '')::date, nullif(strike, '')::numeric, "
    "nullif(tick_size, '')::numeric, nullif(lot_size, '')::integer, nullif(instrument_type, ''), "
    "nullif(segment, ''), exchange "
    "FROM dr_load_instruments ORDER BY instrument_token::bigint "
    "ON CONFLICT (instrument_token) DO UPDATE SET exchange_token = EXCLUDED.exchange_token, "
    "tradingsymbol = EXCLUDED.tradingsymbol, name = EXCLUDED.name, "
    "last_price = EXCLUDED.last_price, expiry = EXCLUDED.expiry, strike = EXCLUDED.strike, "
    "tick_size = EXCLUDED.tick_size, lot_size = EXCLUDED.lot_size, "
    "instrument_type = EXCLUDED.instrument_type, segment = EXCLUDED.segment, "
    "exchange = EXCLUDED.exchange, updated_at = now()";

struct load {
    PGconn *db;
    char head[512];         /* the first line while it is incomplete */
    size_t headlen;
    bool copying;           /* header checked, COPY started */
    char why[512];          /* why the sink stopped, "" when it did not */
};

static int put(struct load *l, const char *data, size_t len)
{
    if (len && PQputCopyData(l->db, data, (int)len) != 1) {
        snprintf(l->why, sizeof l->why, "COPY failed: %s", PQerrorMessage(l->db));
        return -1;
    }
    return 0;
}

/* The HTTP sink: checks the CSV header, then starts COPY and feeds it. */
static int sink(void *ud, const char *data, size_t len)
{
    struct load *l = ud;
    if (l->copying)
        return put(l, data, len);
    const char *nl = memchr(data, '\n', len);
    size_t take = nl ? (size_t)(nl - data) + 1 : len;
    if (l->headlen + take >= sizeof l->head) {
        snprintf(l->why, sizeof l->why, "not an instrument dump: first line longer than %zu bytes",
                 sizeof l->head);
        return -1;
    }
    memcpy(l->head + l->headlen, data, take);
    l->headlen += take;
    l->head[l->headlen] = '\0';
    if (!nl)
        return 0;
    size_t hl = l->headlen - 1;
    if (hl && l->head[hl - 1] == '\r')
        hl--;
    if (hl != strlen(header) || memcmp(l->head, header, hl)) {
        snprintf(l->why, sizeof l->why, "unexpected CSV header \"%.*s\" (want %s)", (int)(hl > 200 ? 200 : hl),
                 l->head, header);
        return -1;
    }
    PGresult *r = PQexec(l->db, "COPY dr_load_instruments FROM STDIN WITH (FORMAT csv, HEADER true)");
    bool ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok) {
        snprintf(l->why, sizeof l->why, "%s", PQerrorMessage(l->db));
        return -1;
    }
    l->copying = true;
    if (put(l, l->head, l->headlen) < 0)
        return -1;
    return put(l, data + take, len - take);
}

/* Ends the COPY (aborting it when why is set). Returns the rows copied, or -1
 * with l->why set. */
static long long end_copy(struct load *l)
{
    if (!l->copying)
        return l->why[0] ? -1 : 0;
    PQputCopyEnd(l->db, l->why[0] ? l->why : NULL);
    PGresult *r = PQgetResult(l->db), *extra;
    long long rows = -1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        rows = strtoll(PQcmdTuples(r), NULL, 10);
    else if (!l->why[0])
        snprintf(l->why, sizeof l->why, "%s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                                  ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                                  : PQerrorMessage(l->db));
    PQclear(r);
    while ((extra = PQgetResult(l->db)))
        PQclear(extra);
    return rows;
}

/* *transient (may be NULL) is set when a failure is worth retrying (dr_db_failed). */
static bool exec_ok(dr_ctx *ctx, PGconn *db, const char *sql, long long *rows, bool *transient)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        bool retry = dr_db_failed(ctx, db, r, "load_instruments") == DR_RETRY;
        if (transient)
            *transient = retry;
    } else if (rows) {
        *rows = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return ok;
}

/* A non-2xx answer: Kite's error envelope names the error type and message. */
static dr_status http_failure(dr_ctx *ctx, const char *source, const dr_http_response *resp)
{
    json_t *body = json_loadb(resp->body ? resp->body : "", resp->len, 0, NULL);
    const char *etype = json_string_value(json_object_get(body, "error_type"));
    const char *msg = json_string_value(json_object_get(body, "message"));
    dr_status st = DR_FAIL;
    if (resp->status == 403 || (etype && !strcmp(etype, "TokenException"))) {
        dr_error(ctx, "load_instruments: HTTP %ld %s from %s: %s; run stopped\nhint: check the "
                 "source's api_key_env/access_token_env variables (KITE_API_KEY, "
                 "KITE_ACCESS_TOKEN by default)", resp->status, etype ? etype : "TokenException",
                 source, msg ? msg : "credentials rejected");
        st = DR_FATAL;
    } else {
        dr_error(ctx, "load_instruments: HTTP %ld %s from %s: %s", resp->status,
                 etype ? etype : "error", source, msg ? msg : "no Kite error body");
    }
    json_decref(body);
    return st;
}

static bool is_exchange(const char *s)
{
    if (!*s || strlen(s) > 16)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

static dr_status load_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    const char *exchange = dr_param_str(ctx, "exchange");
    char path[64] = "/instruments";
    if (exchange && *exchange) {
        if (!is_exchange(exchange)) {
            dr_error(ctx, "load_instruments: bad exchange \"%s\" (want e.g. NSE, BSE, NFO)", exchange);
            return DR_FAIL;
        }
        snprintf(path, sizeof path, "/instruments/%s", exchange);
    }
    PGconn *db = dr_db(ctx);
    if (!db)
        return DR_RETRY;
    /* A savepoint keeps the unit's transaction usable when the load fails. */
    if (!exec_ok(ctx, db, "SAVEPOINT dr_load_instruments", NULL, NULL) ||
        !exec_ok(ctx, db, create_sql, NULL, NULL))
        return PQstatus(db) != CONNECTION_OK ? DR_RETRY : DR_FAIL;
    struct load l = { .db = db };
    dr_http_response resp;
    int rc = dr_http_get_stream(ctx, source ? source : "kite", path, sink, &l, &resp);
    bool ok2xx = resp.status >= 200 && resp.status <= 299;
    bool transport = rc < 0 && !l.why[0];
    if (rc == 0 && ok2xx && !l.copying && !l.why[0])
        snprintf(l.why, sizeof l.why, "empty or truncated instrument dump (%zu bytes)", l.headlen);
    if (rc < 0 && !l.why[0])
        snprintf(l.why, sizeof l.why, "download failed: %s", resp.error);
    long long copied = end_copy(&l);
    long long loaded = 0;
    bool merge_transient = false;
    dr_status st = DR_OK;
    if (rc == 0 && !ok2xx) {
        st = http_failure(ctx, source, &resp);
    } else if (!transport && !l.copying && l.head[0] == '{') {
        /* Kite may send its JSON error envelope with status 200. */
        dr_http_response err = { .status = resp.status, .body = l.head, .len = l.headlen };
        st = http_failure(ctx, source, &err);
    } else if (copied < 0) {
        dr_error(ctx, "load_instruments %s: %s", path, l.why);
        st = transport ? DR_RETRY : DR_FAIL;
    } else if (!exec_ok(ctx, db, merge_sql, &loaded, &merge_transient)) {
        st = merge_transient ? DR_RETRY : DR_FAIL;     /* e.g. lock_timeout on instruments */
    }
    dr_http_response_free(&resp);
    if (st != DR_OK) {
        PGresult *r = PQexec(db, "ROLLBACK TO SAVEPOINT dr_load_instruments");
        PQclear(r);
        return PQstatus(db) != CONNECTION_OK ? DR_RETRY : st;
    }
    if (!exec_ok(ctx, db, "RELEASE SAVEPOINT dr_load_instruments", NULL, NULL))
        return DR_FAIL;
    dr_log(ctx, DR_LOG_INFO, "%s: %lld rows copied, %lld instruments upserted", path, copied, loaded);
    dr_count(ctx, "instruments", loaded);
    json_t *out = json_pack("{s:I}", "loaded", (json_int_t)loaded);
    if (dr_emit_json_new(ctx, out) < 0) {
        dr_error(ctx, "load_instruments: emit failed");
        return DR_FAIL;
    }
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "load_instruments",
    .summary = "load the broker's instrument dump into the instruments table",
    .params = params,
    .run = load_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
