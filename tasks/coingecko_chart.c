/* coingecko_chart: one coin's daily prices and volumes (GET /api/v3/coins/{id}/market_chart/range) as candles down the lane, numbers as CoinGecko wrote them. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const dr_param params[] = {
    { "source", DR_T_STRING, "coingecko", false,
      "the config.json source to ask, also the ohlcv.source column" },
    { "vs_currency", DR_T_STRING, "usd", false, "the currency prices are quoted in" },
    { "candle_interval", DR_T_STRING, "daily", false, "only daily: one point a day at 00:00 UTC" },
    { "max_history_days", DR_T_INT, "365", false,
      "how far back the plan reaches (the demo plan: 365 days; 0: no limit)" },
    { NULL, 0, NULL, false, NULL }
};

/* CoinGecko's coin ids: lower-case letters, digits, - _ . (bitcoin, usd-coin). */
#define ID_ALPHABET "a-z0-9._-"

/* A whole number read exactly (numbers are text here). */
static bool exact_int(const json_t *v, long long *out)
{
    const char *s = json_string_value(v);
    if (!s || !dr_json_number_ok(s) || strpbrk(s, ".eE"))
        return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

/* The failed answer's meaning and message: CoinGecko says {"error": "..."} or
 * {"status": {"error_code": N, "error_message": "..."}}. A refused key stops
 * the run; 429 (given up), 5xx and no answer are retried; the rest fail the item. */
static dr_status answer_failed(dr_ctx *ctx, const char *id, const dr_http_response *r)
{
    json_t *j = r->body && r->len ? dr_json_loadb_exact(r->body, r->len, NULL, 0) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    const json_t *status = json_object_get(j, "status");
    const char *code = json_string_value(json_object_get(status, "error_code"));
    if (!msg)
        msg = json_string_value(json_object_get(status, "error_message"));
    if (msg)
        dr_error(ctx, "coingecko_chart: %s: %s%s%s", id, code ? code : "", code ? ": " : "", msg);
    else
        dr_error(ctx, "coingecko_chart: %s: %s", id, r->error[0] ? r->error : "failed");
    dr_status st = r->status == DR_HTTP_NOT_SENT ? DR_FAIL
           : r->status == 0 || r->status == 429 || r->status >= 500 ? DR_RETRY : DR_FAIL;
    if (code && strcmp(code, "10002") == 0)
        st = DR_FATAL;
    json_decref(j);
    return st;
}

static dr_status chart_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    const char *vs = dr_param_str(ctx, "vs_currency");
    const char *interval = dr_param_str(ctx, "candle_interval");
    long long max_days = dr_param_int(ctx, "max_history_days");
    if (strcmp(interval, "daily") != 0) {
        dr_error(ctx, "coingecko_chart: candle_interval \"%s\": only daily is fetched", interval);
        return DR_FATAL;
    }
    for (const char *p = vs; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            dr_error(ctx, "coingecko_chart: vs_currency \"%s\" is not a currency code", vs);
            return DR_FATAL;
        }
    const json_t *item = dr_map_item(ctx);
    const char *id = json_string_value(json_object_get(item, "symbol"));
    const json_t *jf = json_object_get(item, "from"), *jt = json_object_get(item, "to");
    if (!id || !json_is_integer(jf) || !json_is_integer(jt)) {
        dr_error(ctx, "coingecko_chart: the map item needs symbol, from and to (ohlcv_ranges)");
        return DR_FAIL;
    }
    if (!dr_symbol_ok(id, ID_ALPHABET, 100)) {
        dr_error(ctx, "coingecko_chart: coin id \"%s\" has characters outside CoinGecko's "
                 "alphabet (a-z, 0-9, - _ ., 1-100 of them); no request sent", id);
        return DR_FAIL;
    }
    long long from = json_integer_value(jf), to = json_integer_value(jt);
    if (max_days > 0) {
        long long now = (long long)time(NULL);
        long long oldest = (now - max_days * 86400) / 86400 * 86400 + 86400;
        if (from < oldest) {
            dr_log(ctx, DR_LOG_INFO, "%s: the plan reaches back %lld days only: from %lld", id,
                   max_days, oldest);
            from = oldest;
        }
    }
    if (from >= to)
        return DR_SKIP;
    char path[300];
    snprintf(path, sizeof path, "/api/v3/coins/%s/market_chart/range?vs_currency=%s&from=%lld"
             "&to=%lld&interval=daily", id, vs, from, to - 1);
    dr_http_response r;
    if (dr_http_get(ctx, source, path, &r) < 0 || r.status != 200) {
        dr_status st = answer_failed(ctx, id, &r);
        dr_http_response_free(&r);
        return st;
    }
    char why[160];
    json_t *j = dr_json_loadb_exact(r.body, r.len, why, sizeof why);
    if (!j) {
        dr_error(ctx, "coingecko_chart: %s: answer is not JSON (%s, Content-Type %s)", id, why,
                 r.content_type[0] ? r.content_type : "none");
        dr_http_response_free(&r);
        return DR_RETRY;
    }
    dr_http_response_free(&r);
    dr_count(ctx, "requests", 1);
    const json_t *prices = json_object_get(j, "prices"), *vols = json_object_get(j, "total_volumes");
    if (!json_is_array(prices) || !json_is_array(vols)) {
        dr_error(ctx, "coingecko_chart: %s: bad response: prices or total_volumes is not an array",
                 id);
        json_decref(j);
        return DR_FAIL;
    }
    json_t *candles = json_array();
    size_t i;
    const json_t *p;
    long long live = 0;
    json_array_foreach(prices, i, p) {
        long long ms;
        if (!json_is_array(p) || json_array_size(p) < 2 || !exact_int(json_array_get(p, 0), &ms)) {
            dr_error(ctx, "coingecko_chart: %s: bad response: prices[%zu] is not [ms, price]", id, i);
            json_decref(candles);
            json_decref(j);
            return DR_FAIL;
        }
        /* Daily points are at 00:00 UTC; another time is the live price of today. */
        if (ms % 86400000 != 0) {
            live++;
            continue;
        }
        const json_t *vol = NULL, *v = json_array_get(vols, i);
        long long vms;
        if (!(json_is_array(v) && exact_int(json_array_get(v, 0), &vms) && vms == ms)) {
            size_t k;
            const json_t *w;
            json_array_foreach(vols, k, w)
                if (exact_int(json_array_get(w, 0), &vms) && vms == ms) {
                    v = w;
                    break;
                }
            if (k == json_array_size(vols))
                v = NULL;
        }
        vol = json_array_get(v, 1);
        const json_t *price = json_array_get(p, 1);
        json_t *c = json_array();
        json_array_append_new(c, json_integer(ms / 1000));
        for (int f = 0; f < 4; f++)
            json_array_append(c, (json_t *)price);
        json_array_append(c, vol ? (json_t *)vol : json_null());
        json_array_append_new(candles, c);
    }
    json_decref(j);
    if (live)
        dr_log(ctx, DR_LOG_DEBUG, "%s: %lld points not at 00:00 UTC (the live price) left out",
               id, live);
    json_t *lane = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "source", source, "symbol", id,
                             "interval", "daily", "from", (json_int_t)from, "to", (json_int_t)to,
                             "candles", candles);
    if (!lane || dr_emit_json_new(ctx, lane) < 0)
        return DR_FAIL;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "coingecko_chart",
    .summary = "fetch one coin's daily CoinGecko prices and volumes as candles",
    .params = params,
    .run = chart_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
