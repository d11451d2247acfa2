/* binance_klines: one symbol's klines (GET /api/v3/klines, weight 2), page after page from the last candle received, down the lane. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The provider's symbol alphabet. */
#define SYMBOL_ALPHABET "A-Z0-9._-"

#define W_KLINES 2              /* Binance's published weight of /api/v3/klines */
#define BAN_STATUS 418          /* Binance's "IP banned": stop the run, never retry early */
#define MAX_LIMIT 1000          /* klines per answer, Binance's maximum */

static const dr_param params[] = {
    { "source", DR_T_STRING, "binance", false,
      "the config.json source to ask, also the ohlcv.source column" },
    { "candle_interval", DR_T_STRING, "1d", false,
      "Binance interval: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w" },
    { "page_limit", DR_T_INT, "1000", false, "klines per request (1-1000)" },
    { NULL, 0, NULL, false, NULL }
};

/* Binance's fixed-length intervals and their seconds (1M, a month, is not fixed). */
static long long interval_seconds(const char *name)
{
    static const struct { const char *n; long long s; } t[] = {
        { "1s", 1 }, { "1m", 60 }, { "3m", 180 }, { "5m", 300 }, { "15m", 900 },
        { "30m", 1800 }, { "1h", 3600 }, { "2h", 7200 }, { "4h", 14400 }, { "6h", 21600 },
        { "8h", 28800 }, { "12h", 43200 }, { "1d", 86400 }, { "3d", 259200 }, { "1w", 604800 },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(t[i].n, name) == 0)
            return t[i].s;
    return 0;
}

/* What a failed answer means: DR_FATAL for a ban, DR_RETRY for what passes
 * (429s given up, 5xx, no answer), DR_FAIL for a refusal of this item (with
 * Binance's code and message, e.g. -1121 Invalid symbol.). */
static dr_status answer_failed(dr_ctx *ctx, const char *symbol, const dr_http_response *r)
{
    if (r->status == BAN_STATUS) {
        dr_error(ctx, "binance_klines: %s", r->error);
        return DR_FATAL;
    }
    json_t *j = r->body && r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "msg"));
    const json_t *code = json_object_get(j, "code");
    if (msg && json_is_integer(code))
        dr_error(ctx, "binance_klines: %s: Binance %lld: %s", symbol,
                 (long long)json_integer_value(code), msg);
    else
        dr_error(ctx, "binance_klines: %s: %s", symbol, r->error[0] ? r->error : "failed");
    json_decref(j);
    return r->status == DR_HTTP_NOT_SENT ? DR_FAIL
           : r->status == 0 || r->status == 429 || r->status >= 500 ? DR_RETRY : DR_FAIL;
}

/* One answer's klines as the lane's candles [[ts, o, h, l, c, v], ...] (the
 * strings as sent; anything else is passed on for upsert_ohlcv to refuse).
 * Sets *last to the latest open time (Unix seconds), or leaves it. NULL after
 * dr_error when the answer is not an array of arrays. */
static json_t *to_candles(dr_ctx *ctx, const char *symbol, const json_t *ans, long long *last)
{
    if (!json_is_array(ans)) {
        dr_error(ctx, "binance_klines: %s: bad response: the answer is not an array", symbol);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    const json_t *k;
    json_array_foreach(ans, i, k) {
        const json_t *t = json_array_get(k, 0);
        if (!json_is_array(k) || json_array_size(k) < 6 || !json_is_integer(t)) {
            dr_error(ctx, "binance_klines: %s: bad response: kline %zu is not "
                     "[openTime, open, high, low, close, volume, ...]", symbol, i);
            json_decref(out);
            return NULL;
        }
        long long ts = (long long)json_integer_value(t);
        /* Milliseconds, floored to seconds (an open time is whole seconds). */
        ts = ts >= 0 ? ts / 1000 : -((-ts + 999) / 1000);
        json_t *c = json_array();
        json_array_append_new(c, json_integer(ts));
        for (size_t f = 1; f <= 5; f++)
            json_array_append(c, json_array_get(k, f));
        json_array_append_new(out, c);
        if (ts > *last)
            *last = ts;
    }
    return out;
}

static dr_status klines_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    const char *interval = dr_param_str(ctx, "candle_interval");
    long long page = dr_param_int(ctx, "page_limit");
    long long iv = interval_seconds(interval);
    if (!iv) {
        dr_error(ctx, "binance_klines: candle_interval \"%s\" is not a Binance interval of fixed "
                 "length (1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w)", interval);
        return DR_FATAL;
    }
    if (page < 1 || page > MAX_LIMIT) {
        dr_error(ctx, "binance_klines: page_limit %lld out of range 1-%d", page, MAX_LIMIT);
        return DR_FATAL;
    }
    const json_t *item = dr_map_item(ctx);
    const char *symbol = json_string_value(json_object_get(item, "symbol"));
    const json_t *jf = json_object_get(item, "from"), *jt = json_object_get(item, "to");
    if (!symbol || !json_is_integer(jf) || !json_is_integer(jt)) {
        dr_error(ctx, "binance_klines: the map item needs symbol, from and to (ohlcv_ranges)");
        return DR_FAIL;
    }
    if (!dr_symbol_ok(symbol, SYMBOL_ALPHABET, 20)) {
        dr_error(ctx, "binance_klines: symbol \"%s\" has characters outside Binance's alphabet "
                 "[A-Z0-9-_.] (1-20 of them); no request sent", symbol);
        return DR_FAIL;
    }
    long long from = json_integer_value(jf), to = json_integer_value(jt);
    const char *done = dr_checkpoint(ctx);
    if (done) {
        long long last = strtoll(done, NULL, 10);
        if (last + iv > from)
            from = last + iv;
    }
    while (from < to) {
        if (dr_cancelled(ctx))
            return DR_FAIL;
        char path[256];
        snprintf(path, sizeof path, "/api/v3/klines?symbol=%s&interval=%s&startTime=%lld000"
                 "&endTime=%lld999&limit=%lld", symbol, interval, from, to - 1, page);
        dr_http_response r;
        if (dr_http_get_weighted(ctx, source, path, W_KLINES, &r) < 0 || r.status != 200) {
            dr_status st = answer_failed(ctx, symbol, &r);
            dr_http_response_free(&r);
            return st;
        }
        json_error_t je;
        json_t *ans = json_loadb(r.body, r.len, 0, &je);
        if (!ans) {
            dr_error(ctx, "binance_klines: %s: answer is not JSON (%s, Content-Type %s)", symbol,
                     je.text, r.content_type[0] ? r.content_type : "none");
            dr_http_response_free(&r);
            return DR_RETRY;
        }
        dr_http_response_free(&r);
        long long last = from - 1;
        json_t *candles = to_candles(ctx, symbol, ans, &last);
        size_t n = json_array_size(ans);
        json_decref(ans);
        if (!candles)
            return DR_FAIL;
        dr_count(ctx, "requests", 1);
        if (n == 0) {
            json_decref(candles);
            break;
        }
        json_t *lane = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "source", source,
                                 "symbol", symbol, "interval", interval, "from",
                                 (json_int_t)from, "to", (json_int_t)to, "candles", candles);
        if (!lane || dr_emit_json_new(ctx, lane) < 0)
            return DR_FAIL;
        char ck[32];
        snprintf(ck, sizeof ck, "%lld", last);
        dr_set_checkpoint(ctx, ck);
        /* A short page is the end of what exists up to `to`; a full one goes on
         * after its last candle (Binance answers from the first at or after
         * startTime, so a bootstrap before the listing costs nothing extra). */
        if ((long long)n < page || last < from)
            break;
        from = last + iv;
    }
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "binance_klines",
    .summary = "fetch one symbol's Binance klines page by page from the last candle received",
    .params = params,
    .run = klines_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
