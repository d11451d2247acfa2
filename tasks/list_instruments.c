/* list_instruments: select the instruments to ingest from the instruments table. */
#include <dagrun/task.h>
#include <dagrun/candle.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dr_param params[] = {
    { "exchanges", DR_T_LIST, "[\"NSE\"]", false, "exchanges to take (empty: any)" },
    { "instrument_types", DR_T_LIST, "[\"EQ\"]", false,
      "instrument types to take, e.g. EQ, FUT, CE, PE (empty: any)" },
    { "segments", DR_T_LIST, "[]", false, "segments to take, e.g. NSE, NFO-OPT (empty: any)" },
    { "symbols", DR_T_LIST, "[]", false,
      "only these trading symbols, as INFY or NSE:INFY (empty: all that match)" },
    { "limit", DR_T_INT, "0", false, "take at most this many, by instrument_token (0: no limit)" },
    { "candle_interval", DR_T_STRING, "day", false,
      "candle interval the run ingests (shown in the log; the DAG shares it with later tasks)" },
    { NULL, 0, NULL, false, NULL }
};

/* Checked by the runtime before the run starts (validate, --conf). */
static const dr_param_rule rules[] = {
    { "limit", 0, NULL },
    { "candle_interval", 0, dr_candle_intervals },
    { NULL, 0, NULL }
};

/* An empty list matches anything; symbols match "INFY" or "NSE:INFY". */
static const char list_sql[] =
    "SELECT instrument_token, tradingsymbol, exchange FROM instruments "
    "WHERE (cardinality($1::text[]) = 0 OR exchange = ANY($1::text[])) "
    "  AND (cardinality($2::text[]) = 0 OR instrument_type = ANY($2::text[])) "
    "  AND (cardinality($3::text[]) = 0 OR segment = ANY($3::text[])) "
    "  AND (cardinality($4::text[]) = 0 OR tradingsymbol = ANY($4::text[]) "
    "       OR exchange || ':' || tradingsymbol = ANY($4::text[])) "
    "ORDER BY instrument_token "
    "LIMIT $5";

/* A PostgreSQL array literal of the strings of the list param name.
 * NULL (after dr_error) when it holds a non-string. Caller frees. */
static char *text_array(dr_ctx *ctx, const char *name)
{
    bool not_strings;
    char *buf = dr_pg_text_array(dr_param_json(ctx, name), &not_strings);
    if (!buf && not_strings)
        dr_error(ctx, "list_instruments: %s must be a list of strings", name);
    else if (!buf)
        dr_error(ctx, "list_instruments: out of memory");
    return buf;
}

static dr_status list_run(dr_ctx *ctx, void *state)
{
    (void)state;
    static const char *lists[] = { "exchanges", "instrument_types", "segments", "symbols" };
    char *arrays[4] = { NULL };
    char limit[32] = "";
    long long lim = dr_param_int(ctx, "limit");
    dr_status st = DR_FAIL;
    PGresult *res = NULL;
    if (lim < 0) {
        dr_error(ctx, "list_instruments: limit %lld is negative (0 means no limit)", lim);
        return DR_FAIL;
    }
    for (int i = 0; i < 4; i++)
        if (!(arrays[i] = text_array(ctx, lists[i])))
            goto out;
    if (lim > 0)
        snprintf(limit, sizeof limit, "%lld", lim);
    PGconn *db = dr_db(ctx);
    if (!db) {
        st = DR_RETRY;
        goto out;
    }
    const char *values[5] = { arrays[0], arrays[1], arrays[2], arrays[3], lim > 0 ? limit : NULL };
    res = PQexecParams(db, list_sql, 5, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = dr_db_failed(ctx, db, res, "list_instruments");
        goto out;
    }
    int n = PQntuples(res);
    if (n == 0) {
        dr_warn(ctx, "list_instruments: no instruments match exchanges %s, instrument_types %s, "
                "segments %s, symbols %s (is the instruments table loaded? run kite_instruments)",
                arrays[0], arrays[1], arrays[2], arrays[3]);
        st = DR_SKIP;
        goto out;
    }
    json_t *out = json_array();
    for (int r = 0; r < n; r++)
        json_array_append_new(out, json_pack("{s:I, s:s, s:s}", "instrument_token",
                                             (json_int_t)strtoll(PQgetvalue(res, r, 0), NULL, 10),
                                             "tradingsymbol", PQgetvalue(res, r, 1),
                                             "exchange", PQgetvalue(res, r, 2)));
    dr_log(ctx, DR_LOG_INFO, "%d instruments (exchanges %s, instrument_types %s) for %s candles",
           n, arrays[0], arrays[1], dr_param_str(ctx, "candle_interval"));
    if (dr_emit_json_new(ctx, out) < 0) {
        dr_error(ctx, "list_instruments: emit failed");
        goto out;
    }
    st = DR_OK;
out:
    PQclear(res);
    for (int i = 0; i < 4; i++)
        free(arrays[i]);
    return st;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "list_instruments",
    .summary = "select instruments by exchange, type, segment and symbol",
    .params = params,
    .run = list_run,
    .rules = rules,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
