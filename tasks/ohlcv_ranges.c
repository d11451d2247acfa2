/* ohlcv_ranges: the time range still to fetch for each asset of a source, from its latest candle in ohlcv. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dr_param params[] = {
    { "source", DR_T_STRING, NULL, true, "the ohlcv/assets source column, e.g. binance" },
    { "candle_interval", DR_T_STRING, "1d", false,
      "candle interval as the source names it: <n>s, <n>m, <n>h, <n>d, <n>w, <n>wk or daily" },
    { "symbols", DR_T_LIST, "[]", false,
      "only these symbols, in this order, registered or not (empty: every active asset of the source)" },
    { "limit", DR_T_INT, "0", false, "take at most this many, by symbol (0: no limit)" },
    { "bootstrap_date", DR_T_DATE, "2010-01-01", false,
      "first day to fetch for an asset with no stored candles (a later listing date wins)" },
    { "end_date", DR_T_DATE, "yesterday", false, "last day to fetch (today/yesterday in UTC)" },
    { NULL, 0, NULL, false, NULL }
};

/* Seconds in one candle of interval name, or 0 when it is not a fixed length
 * (months) or not understood. Pure. */
static long long interval_seconds(const char *name)
{
    if (strcmp(name, "daily") == 0)
        return 86400;
    if (strcmp(name, "hourly") == 0)
        return 3600;
    char *end;
    long long n = strtoll(name, &end, 10);
    if (end == name || n < 1 || n > 1000 || name[0] < '0' || name[0] > '9')
        return 0;
    if (strcmp(end, "s") == 0)
        return n;
    if (strcmp(end, "m") == 0)
        return n * 60;
    if (strcmp(end, "h") == 0)
        return n * 3600;
    if (strcmp(end, "d") == 0)
        return n * 86400;
    if (strcmp(end, "w") == 0 || strcmp(end, "wk") == 0)
        return n * 604800;
    return 0;
}

/* Symbols given (deduplicated, in order) or every active asset of the source
 * (by symbol), each with its latest stored candle and its listing date; dates
 * are UTC days, returned as Unix seconds. */
static const char range_sql[] =
    "WITH d AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today), "
    "b AS (SELECT CASE $4 WHEN 'today' THEN today WHEN 'yesterday' THEN today - 1 "
    "                     ELSE $4::date END AS boot, "
    "             CASE $5 WHEN 'today' THEN today WHEN 'yesterday' THEN today - 1 "
    "                     ELSE $5::date END AS end_d FROM d), "
    "g AS (SELECT sym, min(ord) AS ord FROM unnest($2::text[]) WITH ORDINALITY AS t(sym, ord) "
    "      GROUP BY sym), "
    "s AS (SELECT sym, ord FROM g WHERE cardinality($2::text[]) > 0 "
    "      UNION ALL "
    "      SELECT symbol, row_number() OVER (ORDER BY symbol) FROM assets "
    "      WHERE source = $1 AND active AND cardinality($2::text[]) = 0), "
    "sl AS (SELECT sym, ord FROM s ORDER BY ord LIMIT $6) "
    "SELECT sl.sym, extract(epoch FROM l.ts)::bigint, "
    "       (b.boot - date '1970-01-01')::bigint * 86400, "
    "       (a.listing_date - date '1970-01-01')::bigint * 86400, "
    "       (b.end_d - date '1970-01-01' + 1)::bigint * 86400, to_char(b.end_d, 'YYYY-MM-DD') "
    "FROM sl CROSS JOIN b "
    "LEFT JOIN assets a ON a.source = $1 AND a.symbol = sl.sym "
    "LEFT JOIN LATERAL (SELECT o.ts FROM ohlcv o WHERE o.source = $1 AND o.symbol = sl.sym "
    "                   AND o.candle_interval = $3 ORDER BY o.ts DESC LIMIT 1) l ON true "
    "ORDER BY sl.ord";

/* A PostgreSQL array literal of the strings of the list param name.
 * NULL (after dr_error) when it holds a non-string. Caller frees. */
static char *text_array(dr_ctx *ctx, const char *name)
{
    bool not_strings;
    char *buf = dr_pg_text_array(dr_param_json(ctx, name), &not_strings);
    if (!buf && not_strings)
        dr_error(ctx, "ohlcv_ranges: %s must be a list of strings", name);
    else if (!buf)
        dr_error(ctx, "ohlcv_ranges: out of memory");
    return buf;
}

static long long num(const PGresult *res, int r, int c, long long dflt)
{
    return PQgetisnull(res, r, c) ? dflt : strtoll(PQgetvalue(res, r, c), NULL, 10);
}

static dr_status ranges_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    const char *interval = dr_param_str(ctx, "candle_interval");
    long long iv = interval_seconds(interval ? interval : "");
    long long lim = dr_param_int(ctx, "limit");
    if (!iv) {
        dr_error(ctx, "ohlcv_ranges: candle_interval \"%s\" is not a fixed length "
                 "(<n>s, <n>m, <n>h, <n>d, <n>w, <n>wk or daily)", interval ? interval : "");
        return DR_FATAL;
    }
    if (lim < 0) {
        dr_error(ctx, "ohlcv_ranges: limit %lld is negative (0 means no limit)", lim);
        return DR_FATAL;
    }
    char *symbols = text_array(ctx, "symbols");
    if (!symbols)
        return DR_FATAL;
    PGconn *db = dr_db(ctx);
    if (!db) {
        free(symbols);
        return DR_RETRY;
    }
    char limit[32];
    snprintf(limit, sizeof limit, "%lld", lim);
    const char *values[6] = { source, symbols, interval, dr_param_str(ctx, "bootstrap_date"),
                              dr_param_str(ctx, "end_date"), lim > 0 ? limit : NULL };
    PGresult *res = PQexecParams(db, range_sql, 6, NULL, values, NULL, NULL, 0);
    free(symbols);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        dr_status st = dr_db_failed(ctx, db, res, "ohlcv_ranges");
        PQclear(res);
        return st;
    }
    json_t *out = json_array();
    long long up_to_date = 0;
    const char *end_day = "";
    for (int r = 0; r < PQntuples(res); r++) {
        long long last = num(res, r, 1, 0), boot = num(res, r, 2, 0);
        long long listing = num(res, r, 3, boot), to = num(res, r, 4, 0);
        end_day = PQgetvalue(res, r, 5);
        long long from = listing > boot ? listing : boot;
        if (!PQgetisnull(res, r, 1))
            from = last + iv;
        if (from >= to) {
            up_to_date++;
            continue;
        }
        json_array_append_new(out, json_pack("{s:s, s:I, s:I}", "symbol", PQgetvalue(res, r, 0),
                                             "from", (json_int_t)from, "to", (json_int_t)to));
    }
    size_t n = json_array_size(out);
    dr_log(ctx, DR_LOG_INFO, "%s: %d assets, %zu to fetch up to %s, %lld up to date", source,
           PQntuples(res), n, end_day, up_to_date);
    if (PQntuples(res) == 0)
        dr_warn(ctx, "ohlcv_ranges: no assets of source %s (is its catalog loaded?)", source);
    dr_count(ctx, "up_to_date", up_to_date);
    PQclear(res);
    if (dr_emit_json_new(ctx, out) < 0) {
        dr_error(ctx, "ohlcv_ranges: emit failed");
        return DR_FAIL;
    }
    return n ? DR_OK : DR_SKIP;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "ohlcv_ranges",
    .summary = "compute each asset's missing time range from its latest candle in ohlcv",
    .params = params,
    .run = ranges_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
