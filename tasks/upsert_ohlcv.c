/* upsert_ohlcv: check one page of a source's candles from the lane and write it into ohlcv, exactly as the source's text. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The lane JSON every source's fetch task emits:
 *   {"source": "binance", "symbol": "BTCUSDT", "interval": "1d",
 *    "from": FROM, "to": TO,                 Unix seconds, the range asked: [FROM, TO)
 *    "candles": [[ts, "open", "high", "low", "close", "volume"], ...]}
 * ts is the candle's start in Unix seconds; each value is the source's own text
 * of the number (or null), so that it reaches numeric without a double. */

static const dr_param params[] = { { NULL, 0, NULL, false, NULL } };

static const char insert_sql[] =
    "INSERT INTO ohlcv AS o (source, symbol, candle_interval, ts, open, high, low, close, volume) "
    "SELECT $1, $2, $3, to_timestamp(u.t), u.o, u.h, u.l, u.c, u.v "
    "FROM unnest($4::bigint[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[], "
    "            $9::numeric[]) AS u(t, o, h, l, c, v) "
    "ON CONFLICT (source, symbol, candle_interval, ts) DO UPDATE SET open = EXCLUDED.open, "
    "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
    "ingested_at = now() "
    "WHERE (o.open, o.high, o.low, o.close, o.volume) IS DISTINCT FROM "
    "      (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)";

/* Why candle c cannot be stored, or NULL when it can. Only the checks use
 * strtod: what is stored is the text. */
static const char *candle_problem(const json_t *c, long long from, long long to, long long *ts)
{
    if (!json_is_array(c) || json_array_size(c) < 6 || !json_is_integer(json_array_get(c, 0)))
        return "malformed candle";
    *ts = json_integer_value(json_array_get(c, 0));
    double v[5];
    for (int i = 0; i < 5; i++) {
        const json_t *x = json_array_get(c, (size_t)i + 1);
        if (json_is_null(x))
            return i == 4 ? "volume is null" : "a price is null";
        if (!json_is_string(x) || !dr_json_number_ok(json_string_value(x)) ||
            json_string_length(x) > 60)
            return i == 4 ? "volume is not a number" : "a price is not a number";
        v[i] = strtod(json_string_value(x), NULL);
    }
    for (int i = 0; i < 4; i++)
        if (!(v[i] > 0))
            return "a price is zero or negative";
    if (v[4] < 0)
        return "volume is negative";
    if (v[1] < v[2])
        return "high is below low";
    if (*ts < from || *ts >= to)
        return "outside the requested range";
    return NULL;
}

struct row {
    long long ts;
    size_t idx;
};

static int cmp_row(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void stamp(long long ts, char *buf, size_t len)
{
    dr_instant_format((int64_t)ts, buf, len);
}

/* Appends a number's text (no quoting needed: digits, '.', '-', '+', 'e', 'E') to an
 * array literal. */
static void put(char *buf, size_t *off, const char *s, bool first)
{
    if (!first)
        buf[(*off)++] = ',';
    size_t n = strlen(s);
    memcpy(buf + *off, s, n);
    *off += n;
}

static dr_status upsert_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const json_t *page = dr_lane_json(ctx);
    const char *source = json_string_value(json_object_get(page, "source"));
    const char *symbol = json_string_value(json_object_get(page, "symbol"));
    const char *interval = json_string_value(json_object_get(page, "interval"));
    const json_t *candles = json_object_get(page, "candles");
    const json_t *jf = json_object_get(page, "from"), *jt = json_object_get(page, "to");
    if (!source || !symbol || !interval || !json_is_array(candles) || !json_is_integer(jf) ||
        !json_is_integer(jt)) {
        dr_error(ctx, "upsert_ohlcv: the lane did not hand down a page of candles "
                 "(source, symbol, interval, from, to, candles)");
        return DR_FAIL;
    }
    size_t n = json_array_size(candles), kept = 0;
    if (n == 0)
        return DR_OK;
    struct row *rows = calloc(n, sizeof *rows);
    /* Each value at most 60 characters and a comma; ts at most 20. */
    size_t cap = n * 62 + 3;
    char *arr[6] = { NULL };
    dr_status st = DR_FAIL;
    PGresult *res = NULL;
    if (!rows)
        goto oom;
    for (int k = 0; k < 6; k++)
        if (!(arr[k] = malloc(cap)))
            goto oom;
    long long from = json_integer_value(jf), to = json_integer_value(jt);
    for (size_t i = 0; i < n; i++) {
        long long ts = 0;
        const json_t *c = json_array_get(candles, i);
        const char *why = candle_problem(c, from, to, &ts);
        if (why) {
            char when[DR_INSTANT_LEN] = "?";
            if (json_is_array(c) && json_is_integer(json_array_get(c, 0)))
                stamp(ts, when, sizeof when);
            dr_warn(ctx, "%s %s %s at %s: %s; candle dropped", source, symbol, interval, when, why);
            dr_count(ctx, "dropped", 1);
            continue;
        }
        rows[kept++] = (struct row){ .ts = ts, .idx = i };
    }
    qsort(rows, kept, sizeof *rows, cmp_row);
    size_t off[6] = { 0 };
    for (int k = 0; k < 6; k++)
        arr[k][off[k]++] = '{';
    size_t stored = 0;
    for (size_t r = 0; r < kept; r++) {
        const json_t *c = json_array_get(candles, rows[r].idx);
        if (r > 0 && rows[r].ts == rows[r - 1].ts) {
            char when[DR_INSTANT_LEN];
            stamp(rows[r].ts, when, sizeof when);
            const json_t *k0 = json_array_get(candles, rows[r - 1].idx);
            dr_warn(ctx, "%s %s %s at %s: a second candle at the same time; dropped, kept the "
                    "first (close %s)", source, symbol, interval, when,
                    json_string_value(json_array_get(k0, 4)));
            dr_count(ctx, "dropped", 1);
            continue;
        }
        char t[24];
        snprintf(t, sizeof t, "%lld", rows[r].ts);
        put(arr[0], &off[0], t, stored == 0);
        for (int k = 1; k < 6; k++)
            put(arr[k], &off[k], json_string_value(json_array_get(c, (size_t)k)), stored == 0);
        stored++;
    }
    for (int k = 0; k < 6; k++) {
        arr[k][off[k]++] = '}';
        arr[k][off[k]] = '\0';
    }
    if (stored == 0) {
        st = DR_OK;
        goto out;
    }
    PGconn *db = dr_db(ctx);
    if (!db) {
        st = DR_RETRY;
        goto out;
    }
    const char *values[9] = { source, symbol, interval, arr[0], arr[1], arr[2], arr[3], arr[4],
                              arr[5] };
    res = PQexecParams(db, insert_sql, 9, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        st = dr_db_failed(ctx, db, res, "upsert_ohlcv");
        goto out;
    }
    dr_count(ctx, "candles", (long long)stored);
    st = DR_OK;
    goto out;
oom:
    dr_error(ctx, "upsert_ohlcv: out of memory for %zu candles", n);
out:
    PQclear(res);
    for (int k = 0; k < 6; k++)
        free(arr[k]);
    free(rows);
    return st;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "upsert_ohlcv",
    .summary = "check a page of candles from the lane and upsert it into ohlcv, values exact",
    .params = params,
    .run = upsert_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
