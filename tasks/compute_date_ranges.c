/* compute_date_ranges: the date range still to fetch for each instrument, from its latest stored candle. */
#include <dagrun/task.h>
#include <dagrun/candle.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decides one instrument's range from dates already resolved by SQL (all
 * "YYYY-MM-DD", which order as text like the dates they name): from is the
 * day after the latest stored candle (next_stored, NULL when nothing is
 * stored) or else bootstrap; to is end. Returns 1 and sets *from and *to
 * (borrowed from the arguments) when from <= to, else 0: the instrument is up
 * to date. Pure; any thread. */
int compute_date_ranges_pick(const char *next_stored, const char *bootstrap, const char *end,
                             const char **from, const char **to)
{
    *from = next_stored ? next_stored : bootstrap;
    *to = end;
    return strcmp(*from, *to) <= 0;
}

static const dr_param params[] = {
    { "candle_interval", DR_T_STRING, "day", false, "candle interval whose stored candles count" },
    { "bootstrap_date", DR_T_DATE, "1995-01-01", false,
      "first day to fetch for an instrument with no stored candles" },
    { "end_date", DR_T_DATE, "today", false,
      "last day to fetch (the runtime resolves today/yesterday against the run's data interval)" },
    { "table", DR_T_STRING, "kite_ohlcv_historic", false,
      "table whose stored candles count (upsert_candles' table: set both, e.g. in the DAG's params)" },
    { "instruments_from", DR_T_STRING, "list_instruments", false,
      "upstream task whose output is the array of {instrument_token, tradingsymbol, exchange}" },
    { NULL, 0, NULL, false, NULL }
};

/* Checked by the runtime before the run starts (validate, --conf). */
static const dr_param_rule rules[] = {
    { "candle_interval", 0, dr_candle_intervals },
    { NULL, 0, NULL }
};

/* One query for all instruments, over the table %s (an escaped identifier). The latest
 * candle per instrument is found with an index scan of the primary key (ORDER BY ts DESC
 * LIMIT 1 per token), not with max(ts) GROUP BY, which would read every stored candle. A
 * candle's day is taken in Asia/Kolkata, the zone of Kite's exchanges and of their candles;
 * bootstrap_date and end_date come as dates, already resolved by the runtime. */
static const char range_sql[] =
    "SELECT t.ord, to_char((l.ts AT TIME ZONE 'Asia/Kolkata')::date + 1, 'YYYY-MM-DD'), "
    "       to_char($3::date, 'YYYY-MM-DD'), to_char($4::date, 'YYYY-MM-DD') "
    "FROM unnest($2::bigint[]) WITH ORDINALITY AS t(tok, ord) "
    "LEFT JOIN LATERAL (SELECT h.ts FROM %s h "
    "                   WHERE h.instrument_token = t.tok AND h.candle_interval = $1 "
    "                   ORDER BY h.ts DESC LIMIT 1) l ON true "
    "ORDER BY t.ord";

/* "{1,2,3}" for the tokens of instruments, or NULL (after dr_error). Caller frees. */
static char *token_array(dr_ctx *ctx, const json_t *instruments)
{
    size_t n = json_array_size(instruments), i, off = 1;
    char *buf = malloc(n * 21 + 3);
    if (!buf) {
        dr_error(ctx, "compute_date_ranges: out of memory for %zu instruments", n);
        return NULL;
    }
    buf[0] = '{';
    const json_t *ins;
    json_array_foreach(instruments, i, ins) {
        const json_t *tok = json_object_get(ins, "instrument_token");
        if (!json_is_integer(tok) || !json_is_string(json_object_get(ins, "tradingsymbol")) ||
            !json_is_string(json_object_get(ins, "exchange"))) {
            dr_error(ctx, "compute_date_ranges: instrument %zu needs instrument_token, "
                     "tradingsymbol and exchange", i);
            free(buf);
            return NULL;
        }
        /* 21 bytes per token: a comma and at most 20 characters of a 64-bit integer. */
        off += (size_t)snprintf(buf + off, n * 21 + 3 - off, "%s%lld", i ? "," : "",
                                (long long)json_integer_value(tok));
    }
    memcpy(buf + off, "}", 2);
    return buf;
}

static dr_status ranges_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *from_task = dr_param_str(ctx, "instruments_from");
    const json_t *instruments = dr_input(ctx, from_task ? from_task : "");
    if (!json_is_array(instruments)) {
        dr_error(ctx, "compute_date_ranges: no instrument list from task \"%s\" "
                 "(set instruments_from)", from_task ? from_task : "");
        return DR_FAIL;
    }
    if (json_array_size(instruments) == 0) {
        dr_log(ctx, DR_LOG_INFO, "no instruments");
        return dr_emit_json_new(ctx, json_array()) < 0 ? DR_FAIL : DR_SKIP;
    }
    const char *table = dr_param_str(ctx, "table");
    if (!dr_candle_table_ok(table)) {
        dr_error(ctx, "compute_date_ranges: table \"%s\" is not a plain lower-case name "
                 "([a-z_][a-z0-9_]*)", table ? table : "");
        return DR_FAIL;
    }
    const char *boot = dr_param_str(ctx, "bootstrap_date"), *end_date = dr_param_str(ctx, "end_date");
    int64_t day;
    if (!boot || !end_date || dr_date_parse(boot, &day, NULL, 0) < 0 ||
        dr_date_parse(end_date, &day, NULL, 0) < 0) {
        dr_error(ctx, "compute_date_ranges: bootstrap_date \"%s\" and end_date \"%s\" must be "
                 "dates YYYY-MM-DD (the runtime resolves today and yesterday)",
                 boot ? boot : "", end_date ? end_date : "");
        return DR_FAIL;
    }
    PGconn *db = dr_db(ctx);
    if (!db)
        return DR_RETRY;
    char *tokens = token_array(ctx, instruments);
    if (!tokens)
        return DR_FAIL;
    char *ident = PQescapeIdentifier(db, table, strlen(table));
    char sql[sizeof range_sql + 160];
    if (ident)
        snprintf(sql, sizeof sql, range_sql, ident);
    PQfreemem(ident);
    if (!ident) {
        free(tokens);
        return dr_db_failed(ctx, db, NULL, "compute_date_ranges: table name");
    }
    const char *values[4] = { dr_param_str(ctx, "candle_interval"), tokens, boot, end_date };
    PGresult *res = PQexecParams(db, sql, 4, NULL, values, NULL, NULL, 0);
    free(tokens);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        dr_status st = dr_db_failed(ctx, db, res, "compute_date_ranges");
        PQclear(res);
        return st;
    }
    json_t *out = json_array();
    long long up_to_date = 0;
    const char *end = "";
    for (int r = 0; r < PQntuples(res); r++) {
        const json_t *ins = json_array_get(instruments, strtoull(PQgetvalue(res, r, 0), NULL, 10) - 1);
        const char *from, *to;
        end = PQgetvalue(res, r, 3);
        if (!compute_date_ranges_pick(PQgetisnull(res, r, 1) ? NULL : PQgetvalue(res, r, 1),
                                      PQgetvalue(res, r, 2), end, &from, &to)) {
            up_to_date++;
            continue;
        }
        json_array_append_new(out, json_pack("{s:O, s:O, s:O, s:s, s:s}",
                                             "instrument_token", json_object_get(ins, "instrument_token"),
                                             "tradingsymbol", json_object_get(ins, "tradingsymbol"),
                                             "exchange", json_object_get(ins, "exchange"),
                                             "from", from, "to", to));
    }
    size_t n = json_array_size(out);
    dr_log(ctx, DR_LOG_INFO, "%zu instruments: %zu to fetch up to %s, %lld up to date",
           json_array_size(instruments), n, end, up_to_date);
    dr_count(ctx, "up_to_date", up_to_date);
    PQclear(res);
    if (dr_emit_json_new(ctx, out) < 0) {
        dr_error(ctx, "compute_date_ranges: emit failed");
        return DR_FAIL;
    }
    return n ? DR_OK : DR_SKIP;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "compute_date_ranges",
    .summary = "compute each instrument's missing date range from its latest stored candle",
    .params = params,
    .run = ranges_run,
    .rules = rules,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
