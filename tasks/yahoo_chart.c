/* yahoo_chart: one symbol's candles from Yahoo Finance's chart API (GET /v8/finance/chart/{symbol}), in Yahoo's per-interval chunks, down the lane, numbers as Yahoo wrote them. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The provider's symbol alphabet. */
#define SYMBOL_ALPHABET "A-Za-z0-9.^=_-"

static const dr_param params[] = {
    { "source", DR_T_STRING, "yahoo", false,
      "the config.json source to ask, also the ohlcv/assets source column" },
    { "candle_interval", DR_T_STRING, "1d", false, "Yahoo interval: 1m 5m 15m 30m 60m 1h 1d 1wk" },
    { NULL, 0, NULL, false, NULL }
};

/* Yahoo's intervals of fixed length, with the range one request may span and
 * how far back they reach (0: no limit), as yfinance applies them. */
struct yiv {
    const char *name;
    long long secs, max_span, max_age;
};
static const struct yiv yivs[] = {
    { "1m", 60, 8 * 86400, 30 * 86400 }, { "2m", 120, 60 * 86400, 60 * 86400 },
    { "5m", 300, 60 * 86400, 60 * 86400 }, { "15m", 900, 60 * 86400, 60 * 86400 },
    { "30m", 1800, 60 * 86400, 60 * 86400 }, { "60m", 3600, 730 * 86400, 730 * 86400 },
    { "90m", 5400, 60 * 86400, 60 * 86400 }, { "1h", 3600, 730 * 86400, 730 * 86400 },
    { "1d", 86400, 0, 0 }, { "1wk", 604800, 0, 0 },
};

static const struct yiv *yiv_find(const char *s)
{
    for (size_t i = 0; s && i < sizeof yivs / sizeof *yivs; i++)
        if (strcmp(yivs[i].name, s) == 0)
            return &yivs[i];
    return NULL;
}

/* ---- answers ---- */

/* A whole number read exactly (dr_json_loadb_exact keeps numbers as text). */
static bool exact_int(const json_t *v, long long *out)
{
    const char *s = json_string_value(v);
    if (!s || !dr_json_number_ok(s) || strpbrk(s, ".eE"))
        return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

static const char asset_sql[] =
    "INSERT INTO assets AS a (source, symbol, name, asset_type, exchange, currency, listing_date, "
    "active) VALUES ($1, $2, $3, lower($4), $5, $6, $7::date, true) "
    "ON CONFLICT (source, symbol) DO UPDATE SET name = EXCLUDED.name, "
    "asset_type = EXCLUDED.asset_type, exchange = EXCLUDED.exchange, currency = EXCLUDED.currency, "
    "listing_date = EXCLUDED.listing_date, active = true, updated_at = now() "
    "WHERE (a.name, a.asset_type, a.exchange, a.currency, a.listing_date, a.active) IS DISTINCT FROM "
    "(EXCLUDED.name, EXCLUDED.asset_type, EXCLUDED.exchange, EXCLUDED.currency, "
    " EXCLUDED.listing_date, true)";

/* Registers the symbol from the answer's meta (listing date: firstTradeDate's
 * day in the exchange's zone). */
static dr_status register_asset(dr_ctx *ctx, const char *source, const char *symbol,
                                const json_t *meta)
{
    PGconn *db = dr_db(ctx);
    if (!db)
        return DR_RETRY;
    long long ftd = 0, off = 0;
    bool have_ftd = exact_int(json_object_get(meta, "firstTradeDate"), &ftd);
    exact_int(json_object_get(meta, "gmtoffset"), &off);
    char listing[DR_DATE_LEN];
    if (have_ftd) {
        long long t = ftd + off;
        dr_date_format((int64_t)(t >= 0 ? t / 86400 : -((-t + 86399) / 86400)), listing,
                       sizeof listing);
    }
    const char *name = json_string_value(json_object_get(meta, "longName"));
    if (!name)
        name = json_string_value(json_object_get(meta, "shortName"));
    const char *v[7] = { source, symbol, name,
                         json_string_value(json_object_get(meta, "instrumentType")),
                         json_string_value(json_object_get(meta, "exchangeName")),
                         json_string_value(json_object_get(meta, "currency")),
                         have_ftd ? listing : NULL };
    PGresult *res = PQexecParams(db, asset_sql, 7, NULL, v, NULL, NULL, 0);
    dr_status st = DR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = dr_db_failed(ctx, db, res, "yahoo_chart: registering the asset");
    PQclear(res);
    return st;
}

/* A chart.error object (non-null) fails the item with Yahoo's own words. */
static bool chart_error(dr_ctx *ctx, const char *symbol, const json_t *root)
{
    const json_t *e = json_object_get(json_object_get(root, "chart"), "error");
    if (!json_is_object(e))
        return false;
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *desc = json_string_value(json_object_get(e, "description"));
    dr_error(ctx, "yahoo_chart: %s: %s: %s", symbol, code ? code : "error",
             desc ? desc : "(no description)");
    return true;
}

struct chunk {
    const char *source, *symbol;
    const struct yiv *iv;
    long long from, to;         /* what the item wants of this chunk: [from, to) */
    long long first_trade;      /* out: meta.firstTradeDate, or 0 */
    bool registered;
};

/* Fetches [ch->from, ch->to) in one request and emits it. */
static dr_status fetch_chunk(dr_ctx *ctx, struct chunk *ch)
{
    bool daily = ch->iv->secs >= 86400;
    /* A day candle is stamped at the session's open, which east of UTC lies
     * on the previous UTC day: ask from a day earlier, keep by trading date. */
    long long p1 = daily ? ch->from - 86400 : ch->from;
    char path[256], enc[100];
    size_t o = 0;
    for (const char *s = ch->symbol; *s && o + 4 < sizeof enc; s++) {
        if (*s == '^' || *s == '=')
            o += (size_t)snprintf(enc + o, sizeof enc - o, "%%%02X", (unsigned char)*s);
        else
            enc[o++] = *s;
    }
    enc[o] = '\0';
    snprintf(path, sizeof path, "/v8/finance/chart/%s?period1=%lld&period2=%lld&interval=%s"
             "&includePrePost=false&events=div%%7Csplit", enc, p1, ch->to, ch->iv->name);
    dr_http_response r;
    dr_status st = DR_FAIL;
    json_t *root = NULL, *candles = NULL;
    int rc = dr_http_get(ctx, ch->source, path, &r);
    if (rc == 0 && r.status != 200 && r.len &&
        (root = dr_json_loadb_exact(r.body, r.len, NULL, 0)) && chart_error(ctx, ch->symbol, root)) {
        st = r.status == 429 || r.status >= 500 ? DR_RETRY : DR_FAIL;
        goto out;
    }
    if (rc < 0 || r.status != 200) {
        dr_error(ctx, "yahoo_chart: %s: %s", ch->symbol, r.error[0] ? r.error : "failed");
        st = r.status == DR_HTTP_NOT_SENT ? DR_FAIL
             : rc < 0 || r.status == 429 || r.status >= 500 ? DR_RETRY : DR_FAIL;
        goto out;
    }
    json_decref(root);
    char why[160];
    if (!(root = dr_json_loadb_exact(r.body, r.len, why, sizeof why))) {
        dr_error(ctx, "yahoo_chart: %s: answer is not JSON (%s, Content-Type %s)", ch->symbol,
                 why, r.content_type[0] ? r.content_type : "none");
        st = DR_RETRY;
        goto out;
    }
    if (chart_error(ctx, ch->symbol, root))
        goto out;
    const json_t *res0 = json_array_get(json_object_get(json_object_get(root, "chart"), "result"), 0);
    const json_t *meta = json_object_get(res0, "meta");
    if (!json_is_object(meta)) {
        dr_error(ctx, "yahoo_chart: %s: bad response: chart.result[0].meta is missing",
                 ch->symbol);
        goto out;
    }
    if (!exact_int(json_object_get(meta, "firstTradeDate"), &ch->first_trade))
        ch->first_trade = 0;
    if (!ch->registered) {
        if ((st = register_asset(ctx, ch->source, ch->symbol, meta)) != DR_OK)
            goto out;
        ch->registered = true;
        st = DR_FAIL;
    }
    const json_t *ts = json_object_get(res0, "timestamp");
    dr_count(ctx, "requests", 1);
    if (!ts) {              /* no candle in the range: a 200 without timestamps */
        st = DR_OK;
        goto out;
    }
    size_t n = json_array_size(ts);
    const json_t *quote = json_array_get(json_object_get(json_object_get(res0, "indicators"),
                                                         "quote"), 0);
    static const char *const keys[5] = { "open", "high", "low", "close", "volume" };
    const json_t *arr[5];
    if (!json_is_array(ts) || !json_is_object(quote)) {
        dr_error(ctx, "yahoo_chart: %s: bad response: no timestamp array or indicators.quote",
                 ch->symbol);
        goto out;
    }
    for (int k = 0; k < 5; k++) {
        arr[k] = json_object_get(quote, keys[k]);
        if (!json_is_array(arr[k]) || json_array_size(arr[k]) != n) {
            dr_error(ctx, "yahoo_chart: %s: bad response: indicators.quote[0].%s holds %zu "
                     "values for %zu timestamps", ch->symbol, keys[k], json_array_size(arr[k]), n);
            goto out;
        }
    }
    long long off = 0;
    exact_int(json_object_get(meta, "gmtoffset"), &off);
    candles = json_array();
    long long missing = 0, outside = 0;
    for (size_t i = 0; i < n; i++) {
        long long key;
        if (!exact_int(json_array_get(ts, i), &key)) {
            dr_error(ctx, "yahoo_chart: %s: bad response: timestamp %zu is not a whole number",
                     ch->symbol, i);
            goto out;
        }
        if (daily) {
            long long local = key + off;
            key = (local >= 0 ? local / 86400 : -((-local + 86399) / 86400)) * 86400;
        }
        int nulls = 0;
        for (int k = 0; k < 5; k++)
            nulls += json_is_null(json_array_get(arr[k], i));
        if (nulls == 5) {       /* Yahoo's missing candle: no data, not zeros */
            missing++;
            continue;
        }
        if (key < ch->from || key >= ch->to) {   /* e.g. the live point after period2 */
            outside++;
            continue;
        }
        json_t *c = json_array();
        json_array_append_new(c, json_integer(key));
        for (int k = 0; k < 5; k++) {
            /* A number's text, null, or what else Yahoo sent (a string that is no
             * number stays one): upsert_ohlcv refuses what is not a price. */
            json_array_append(c, json_array_get(arr[k], i));
        }
        json_array_append_new(candles, c);
    }
    dr_count(ctx, "missing", missing);
    if (outside)
        dr_log(ctx, DR_LOG_DEBUG, "%s: %lld points outside the range asked left out", ch->symbol,
               outside);
    json_t *lane = json_pack("{s:s, s:s, s:s, s:I, s:I, s:O}", "source", ch->source, "symbol",
                             ch->symbol, "interval", ch->iv->name, "from", (json_int_t)ch->from,
                             "to", (json_int_t)ch->to, "candles", candles);
    if (!lane || dr_emit_json_new(ctx, lane) < 0)
        goto out;
    st = DR_OK;
out:
    json_decref(candles);
    json_decref(root);
    dr_http_response_free(&r);
    return st;
}

static dr_status chart_run(dr_ctx *ctx, void *state)
{
    (void)state;
    struct chunk ch = { .source = dr_param_str(ctx, "source") };
    const char *interval = dr_param_str(ctx, "candle_interval");
    if (!(ch.iv = yiv_find(interval))) {
        dr_error(ctx, "yahoo_chart: candle_interval \"%s\" is not a Yahoo interval of fixed "
                 "length (1m 2m 5m 15m 30m 60m 90m 1h 1d 1wk)", interval ? interval : "");
        return DR_FATAL;
    }
    const json_t *item = dr_map_item(ctx);
    ch.symbol = json_string_value(json_object_get(item, "symbol"));
    const json_t *jf = json_object_get(item, "from"), *jt = json_object_get(item, "to");
    if (!ch.symbol || !json_is_integer(jf) || !json_is_integer(jt)) {
        dr_error(ctx, "yahoo_chart: the map item needs symbol, from and to (ohlcv_ranges)");
        return DR_FAIL;
    }
    if (!dr_symbol_ok(ch.symbol, SYMBOL_ALPHABET, 32)) {
        dr_error(ctx, "yahoo_chart: symbol \"%s\" has characters outside Yahoo's alphabet "
                 "(letters, digits and . - ^ = _, 1-32 of them); no request sent", ch.symbol);
        return DR_FAIL;
    }
    long long from = json_integer_value(jf), to = json_integer_value(jt);
    const char *done = dr_checkpoint(ctx);
    if (done && strtoll(done, NULL, 10) > from)
        from = strtoll(done, NULL, 10);
    if (ch.iv->max_age) {
        /* Yahoo refuses older intraday data: start where it reaches. */
        long long oldest = (long long)time(NULL) - ch.iv->max_age + 3600;
        oldest -= oldest % ch.iv->secs;
        if (from < oldest) {
            dr_log(ctx, DR_LOG_INFO, "%s: %s candles reach back %lld days only: from %lld",
                   ch.symbol, ch.iv->name, ch.iv->max_age / 86400, oldest);
            from = oldest;
        }
    }
    bool jumped = false;
    while (from < to) {
        if (dr_cancelled(ctx))
            return DR_FAIL;
        ch.from = from;
        ch.to = ch.iv->max_span && to - from > ch.iv->max_span ? from + ch.iv->max_span : to;
        dr_status st = fetch_chunk(ctx, &ch);
        if (st != DR_OK)
            return st;
        char ck[32];
        snprintf(ck, sizeof ck, "%lld", ch.to);
        dr_set_checkpoint(ctx, ck);
        from = ch.to;
        /* Nothing can exist before the listing: a bootstrap jumps to it. */
        if (!jumped && ch.first_trade > from) {
            long long day = ch.first_trade - ch.first_trade % 86400;
            if (day > from) {
                dr_log(ctx, DR_LOG_INFO, "%s: first traded at %lld: skipping to it", ch.symbol,
                       ch.first_trade);
                from = day;
            }
            jumped = true;
        }
    }
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "yahoo_chart",
    .summary = "fetch one symbol's Yahoo Finance chart candles in Yahoo's per-interval chunks",
    .params = params,
    .run = chart_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
