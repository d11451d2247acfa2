/* binance_symbols: Binance's symbol list (GET /api/v3/exchangeInfo, weight 20) into the assets registry, when it is stale. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The provider's symbol alphabet. */
#define SYMBOL_ALPHABET "A-Z0-9._-"

#define W_EXCHANGE_INFO 20      /* Binance's published weight of /api/v3/exchangeInfo */
#define BAN_STATUS 418          /* Binance's "IP banned": stop, never retry early */

static const dr_param params[] = {
    { "source", DR_T_STRING, "binance", false,
      "the config.json source to ask, also the assets.source column" },
    { "refresh_after", DR_T_DURATION, "1d", false,
      "ask again only when the registry's Binance rows are older than this (0: every run)" },
    { NULL, 0, NULL, false, NULL }
};

static const char fresh_sql[] =
    "SELECT count(*) FROM assets WHERE source = $1 "
    "AND updated_at > now() - make_interval(secs => $2::bigint / 1000.0)";

/* The symbols of one answer replace the registry's Binance rows: new ones are
 * added, known ones updated, and those no longer listed marked inactive. */
static const char upsert_sql[] =
    "WITH u AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[]) "
    "           AS u(symbol, base, quote, active)), "
    "ins AS (INSERT INTO assets AS a (source, symbol, name, asset_type, exchange, currency, active) "
    "        SELECT $1, symbol, base || '/' || quote, 'crypto', 'binance', quote, active FROM u "
    "        ON CONFLICT (source, symbol) DO UPDATE SET name = EXCLUDED.name, "
    "        currency = EXCLUDED.currency, active = EXCLUDED.active, updated_at = now() "
    "        RETURNING 1) "
    "UPDATE assets SET active = false, updated_at = now() "
    "WHERE source = $1 AND active AND symbol <> ALL ($2::text[])";

/* What a failed answer means: DR_FATAL for a ban, DR_RETRY for what passes
 * (429s, 5xx, no answer), DR_FAIL otherwise; the error is set. */
static dr_status answer_failed(dr_ctx *ctx, const dr_http_response *r)
{
    if (r->status == BAN_STATUS) {
        dr_error(ctx, "binance_symbols: %s", r->error);
        return DR_FATAL;
    }
    json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "msg"));
    dr_error(ctx, "binance_symbols: %s%s%s", r->error[0] ? r->error : "failed",
             msg ? ": " : "", msg ? msg : "");
    json_decref(j);
    return r->status == DR_HTTP_NOT_SENT ? DR_FAIL
           : r->status == 0 || r->status == 429 || r->status >= 500 ? DR_RETRY : DR_FAIL;
}

static dr_status symbols_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    long long refresh = dr_param_int(ctx, "refresh_after");
    char refresh_s[32];
    snprintf(refresh_s, sizeof refresh_s, "%lld", refresh);
    PGconn *db = dr_db(ctx);
    if (!db)
        return DR_RETRY;
    if (refresh > 0) {
        const char *v[2] = { source, refresh_s };
        PGresult *res = PQexecParams(db, fresh_sql, 2, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            dr_status st = dr_db_failed(ctx, db, res, "binance_symbols");
            PQclear(res);
            return st;
        }
        long long fresh = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        if (fresh > 0) {
            dr_log(ctx, DR_LOG_INFO, "%s: %lld symbols registered within refresh_after: no "
                   "request", source, fresh);
            return DR_SKIP;
        }
    }
    dr_http_response r;
    dr_status st = DR_FAIL;
    json_t *j = NULL;
    char *arr[4] = { NULL };
    PGresult *res = NULL;
    if (dr_http_get_weighted(ctx, source, "/api/v3/exchangeInfo", W_EXCHANGE_INFO, &r) < 0 ||
        r.status != 200) {
        st = answer_failed(ctx, &r);
        goto out;
    }
    json_error_t je;
    j = json_loadb(r.body, r.len, 0, &je);
    if (!j) {
        dr_error(ctx, "binance_symbols: exchangeInfo answer is not JSON (%s, Content-Type %s)",
                 je.text, r.content_type[0] ? r.content_type : "none");
        st = DR_RETRY;
        goto out;
    }
    const json_t *syms = json_object_get(j, "symbols");
    if (!json_is_array(syms)) {
        dr_error(ctx, "binance_symbols: bad response: symbols is not an array");
        goto out;
    }
    size_t n = json_array_size(syms), i, kept = 0;
    /* The columns of the kept symbols: symbol, base, quote, active ("t"/"f"). */
    json_t *col[4] = { json_array(), json_array(), json_array(), json_array() };
    long long skipped = 0;
    const json_t *s;
    json_array_foreach(syms, i, s) {
        const char *name = json_string_value(json_object_get(s, "symbol"));
        const char *base = json_string_value(json_object_get(s, "baseAsset"));
        const char *quote = json_string_value(json_object_get(s, "quoteAsset"));
        const char *status = json_string_value(json_object_get(s, "status"));
        if (!name || !base || !quote || !status) {
            dr_warn(ctx, "binance_symbols: exchangeInfo entry %zu lacks symbol, baseAsset, "
                    "quoteAsset or status; skipped", i);
            skipped++;
            continue;
        }
        if (!dr_symbol_ok(name, SYMBOL_ALPHABET, 20)) {
            dr_warn(ctx, "binance_symbols: symbol \"%s\" has characters outside Binance's "
                    "alphabet [A-Z0-9-_.]; skipped", name);
            skipped++;
            continue;
        }
        const char *v[4] = { name, base, quote, strcmp(status, "TRADING") == 0 ? "t" : "f" };
        for (int k = 0; k < 4; k++)
            json_array_append_new(col[k], json_string(v[k]));
        kept++;
    }
    bool complete = true, not_strings;
    for (int k = 0; k < 4; k++) {
        complete = complete && col[k] && json_array_size(col[k]) == kept;
        if (complete)
            complete = (arr[k] = dr_pg_text_array(col[k], &not_strings)) != NULL;
    }
    for (int k = 0; k < 4; k++)
        json_decref(col[k]);
    if (!complete) {
        dr_error(ctx, "binance_symbols: out of memory for %zu symbols", n);
        goto out;
    }
    const char *values[5] = { source, arr[0], arr[1], arr[2], arr[3] };
    res = PQexecParams(db, upsert_sql, 5, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        st = dr_db_failed(ctx, db, res, "binance_symbols");
        goto out;
    }
    dr_log(ctx, DR_LOG_INFO, "%s: %zu symbols registered, %lld skipped", source, kept, skipped);
    dr_count(ctx, "symbols", (long long)kept);
    st = DR_OK;
out:
    PQclear(res);
    for (int k = 0; k < 4; k++)
        free(arr[k]);
    json_decref(j);
    dr_http_response_free(&r);
    return st;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "binance_symbols",
    .summary = "load Binance's symbol list (exchangeInfo) into assets when it is stale",
    .params = params,
    .run = symbols_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
