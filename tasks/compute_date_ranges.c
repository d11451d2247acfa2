/* compute_date_ranges: the date range still to fetch for each instrument, from its latest stored candle. */
#include <dagrun/task.h>

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
      "last day to fetch (today/yesterday are read in Asia/Kolkata)" },
    { "instruments_from", DR_T_STRING, "list_instruments", false,
      "upstream task whose output is the array of {instrument_token, tradingsymbol, exchange}" },
    { NULL, 0, NULL, false, NULL }
};

/* One query for all instruments. The latest candle per instrument is found
 * with an index scan of the primary key (ORDER BY ts DESC LIMIT 1 per token),
 * not with max(ts) GROUP BY, which would read every stored candle. Dates are
 * taken in Asia/Kolkata, the zone of Kite's exchanges and of their candles. */
static const char range_sql[] =
    "WITH ist AS (SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date AS today), "
    "b AS (SELECT CASE $3 WHEN 'today' THEN today WHEN 'yesterday' THEN today - 1 "
    "                     ELSE $3::date END AS boot, "
    "             CASE $4 WHEN 'today' THEN today WHEN 'yesterday' THEN today - 1 "
    "                     ELSE $4::date END AS end_d FROM ist) "
    "SELECT t.ord, to_char((l.ts AT TIME ZONE 'Asia/Kolkata')::date + 1, 'YYYY-MM-DD'), "
    "       to_char(b.boot, 'YYYY-MM-DD'), to_char(b.end_d, 'YYYY-MM-DD') "
    "FROM unnest($2::bigint[]) WITH ORDINALITY AS t(tok, ord) CROSS JOIN b "
    "LEFT JOIN LATERAL (SELECT h.ts FROM kite_ohlcv_historic h "
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
    PGconn *db = dr_db(ctx);
    if (!db)
        return DR_RETRY;
    char *tokens = token_array(ctx, instruments);
    if (!tokens)
        return DR_FAIL;
    const char *values[4] = { dr_param_str(ctx, "candle_interval"), tokens,
                              dr_param_str(ctx, "bootstrap_date"), dr_param_str(ctx, "end_date") };
    PGresult *res = PQexecParams(db, range_sql, 4, NULL, values, NULL, NULL, 0);
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
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
