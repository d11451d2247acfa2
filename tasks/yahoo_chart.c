/* yahoo_chart: one symbol's candles from Yahoo Finance's chart API (GET /v8/finance/chart/{symbol}), in Yahoo's per-interval chunks, down the lane. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Yahoo's symbol alphabet: letters, digits and . - ^ = _ (AAPL, WSU.DE, ^GSPC, BRK-B, EURUSD=X). */
static bool symbol_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr(".-^=_", *p)))
            return false;
    return true;
}

/* ---- the numbers' own text: Jansson reads numbers as doubles, so the five
 * arrays of indicators.quote[0] are read again here as text. */

struct tok {
    const char *p;
    size_t len;
};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* After a '"' at p: the end of the string (past its closing quote), or end. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return end;
}

/* The first "key": [ at object depth 1 of [obj, end): the position after '['. */
static const char *find_key_array(const char *obj, const char *end, const char *key)
{
    size_t kl = strlen(key);
    int depth = 0;
    for (const char *p = obj; p < end; p++) {
        if (*p == '"') {
            const char *q = skip_string(p, end);
            if (depth == 1 && (size_t)(q - p) == kl + 2 && memcmp(p + 1, key, kl) == 0) {
                const char *r = skip_ws(q, end);
                if (r < end && *r == ':') {
                    r = skip_ws(r + 1, end);
                    if (r < end && *r == '[')
                        return r + 1;
                }
            }
            p = q - 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
    }
    return NULL;
}

/* The tokens of a flat array starting after its '['; returns how many (at
 * most max), or -1 when it is not a flat array of scalars. */
static long flat_tokens(const char *p, const char *end, struct tok *out, size_t max)
{
    long n = 0;
    p = skip_ws(p, end);
    if (p < end && *p == ']')
        return 0;
    for (;;) {
        p = skip_ws(p, end);
        const char *s = p;
        if (p < end && *p == '"')
            p = skip_string(p, end);
        else
            while (p < end && *p != ',' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
                   *p != '\t' && *p != '[' && *p != '{')
                p++;
        if (p == s || (size_t)n >= max)
            return -1;
        out[n++] = (struct tok){ s, (size_t)(p - s) };
        p = skip_ws(p, end);
        if (p >= end)
            return -1;
        if (*p == ']')
            return n;
        if (*p != ',')
            return -1;
        p++;
    }
}

/* The first n bytes of needle in [p, end), or NULL. */
static const char *find_bytes(const char *p, const char *end, const char *needle, size_t n)
{
    for (; p + n <= end; p++)
        if (*p == *needle && memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* indicators.quote[0] as [start, end) in body, or 0 when absent. */
static int quote_object(const char *body, size_t len, const char **qs, const char **qe)
{
    const char *end = body + len;
    const char *k = body;
    /* "quote" appears only as a key of indicators. */
    while ((k = find_bytes(k, end, "\"quote\"", 7)) != NULL) {
        const char *p = skip_ws(k + 7, end);
        if (p < end && *p == ':') {
            p = skip_ws(p + 1, end);
            if (p < end && *p == '[') {
                p = skip_ws(p + 1, end);
                if (p < end && *p == '{') {
                    int depth = 0;
                    for (const char *q = p; q < end; q++) {
                        if (*q == '"')
                            q = skip_string(q, end) - 1;
                        else if (*q == '{' || *q == '[')
                            depth++;
                        else if ((*q == '}' || *q == ']') && --depth == 0) {
                            *qs = p;
                            *qe = q + 1;
                            return 1;
                        }
                    }
                }
            }
        }
        k += 7;
    }
    return 0;
}

/* ---- answers ---- */

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
    const json_t *ftd = json_object_get(meta, "firstTradeDate");
    long long off = json_integer_value(json_object_get(meta, "gmtoffset"));
    char listing[DR_DATE_LEN];
    if (json_is_integer(ftd)) {
        long long t = json_integer_value(ftd) + off;
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
                         json_is_integer(ftd) ? listing : NULL };
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
    struct tok *toks = NULL;
    int rc = dr_http_get(ctx, ch->source, path, &r);
    if (rc == 0 && r.status != 200 && r.len && (root = json_loadb(r.body, r.len, 0, NULL)) &&
        chart_error(ctx, ch->symbol, root)) {
        st = r.status == 429 || r.status >= 500 ? DR_RETRY : DR_FAIL;
        goto out;
    }
    if (rc < 0 || r.status != 200) {
        dr_error(ctx, "yahoo_chart: %s: %s", ch->symbol, r.error[0] ? r.error : "failed");
        st = rc < 0 || r.status == 429 || r.status >= 500 ? DR_RETRY : DR_FAIL;
        goto out;
    }
    json_error_t je;
    if (!(root = json_loadb(r.body, r.len, 0, &je))) {
        dr_error(ctx, "yahoo_chart: %s: answer is not JSON (%s, Content-Type %s)", ch->symbol,
                 je.text, r.content_type[0] ? r.content_type : "none");
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
    const json_t *ftd = json_object_get(meta, "firstTradeDate");
    ch->first_trade = json_is_integer(ftd) ? (long long)json_integer_value(ftd) : 0;
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
    const char *qs, *qe;
    if (!json_is_array(ts) || !quote_object(r.body, r.len, &qs, &qe)) {
        dr_error(ctx, "yahoo_chart: %s: bad response: no timestamp array or indicators.quote",
                 ch->symbol);
        goto out;
    }
    static const char *const keys[5] = { "open", "high", "low", "close", "volume" };
    toks = malloc(5 * (n + 1) * sizeof *toks);
    if (!toks) {
        dr_error(ctx, "yahoo_chart: out of memory");
        goto out;
    }
    for (int k = 0; k < 5; k++) {
        const char *a = find_key_array(qs, qe, keys[k]);
        long got = a ? flat_tokens(a, qe, toks + (size_t)k * (n + 1), n + 1) : -1;
        if (got != (long)n) {
            dr_error(ctx, "yahoo_chart: %s: bad response: indicators.quote[0].%s holds %ld "
                     "values for %zu timestamps", ch->symbol, keys[k], got, n);
            goto out;
        }
    }
    long long off = json_integer_value(json_object_get(meta, "gmtoffset"));
    candles = json_array();
    long long missing = 0, outside = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(ts, i);
        if (!json_is_integer(t)) {
            dr_error(ctx, "yahoo_chart: %s: bad response: timestamp %zu is not a whole number",
                     ch->symbol, i);
            goto out;
        }
        long long key = json_integer_value(t);
        if (daily) {
            long long local = key + off;
            key = (local >= 0 ? local / 86400 : -((-local + 86399) / 86400)) * 86400;
        }
        int nulls = 0;
        for (int k = 0; k < 5; k++) {
            const struct tok *x = &toks[(size_t)k * (n + 1) + i];
            nulls += x->len == 4 && memcmp(x->p, "null", 4) == 0;
        }
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
            const struct tok *x = &toks[(size_t)k * (n + 1) + i];
            if (x->len == 4 && memcmp(x->p, "null", 4) == 0)
                json_array_append_new(c, json_null());
            else
                json_array_append_new(c, json_stringn(x->p, x->len));
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
    free(toks);
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
    if (!symbol_ok(ch.symbol)) {
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
