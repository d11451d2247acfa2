/* chunk_ranges: split each instrument's date range into chunks the broker accepts in one request. */
#include <dagrun/task.h>
#include <dagrun/candle.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kite's longest range per historical request, in days, by candle interval. */
static const struct { const char *interval; long days; } kite_limits[] = {
    { "minute", 60 },     { "3minute", 100 },  { "5minute", 100 }, { "10minute", 100 },
    { "15minute", 200 },  { "30minute", 200 }, { "60minute", 400 }, { "day", 2000 },
};

/* The Kite limit in days for interval, or -1 when the interval is unknown.
 * Pure; any thread. */
long chunk_ranges_limit(const char *interval)
{
    for (size_t i = 0; interval && i < sizeof kite_limits / sizeof kite_limits[0]; i++)
        if (!strcmp(kite_limits[i].interval, interval))
            return kite_limits[i].days;
    return -1;
}

/* Splits the inclusive day range [from, to] into consecutive chunks [a, b]
 * that cover it exactly, in time order, each at most `limit` calendar days
 * long counting both ends (b - a <= limit - 1), with as few chunks as
 * possible (ceil((to - from + 1) / limit)). Writes at most cap chunks to out
 * and returns how many there are in all; 0 when from > to or limit < 1.
 *
 * Why limit - 1: Kite refuses a request when to_date - from_date exceeds the
 * limit in days, and fetch_candles asks for a chunk from a 00:00:00 to
 * b 23:59:59, which spans b - a + 1 days less a second. Keeping b - a + 1 <=
 * limit keeps every request within the limit however the broker rounds. */
size_t chunk_ranges_split(long from, long to, long limit, long (*out)[2], size_t cap)
{
    size_t n = 0;
    if (from > to || limit < 1)
        return 0;
    for (long a = from; a <= to; a += limit, n++) {
        long b = to - a >= limit - 1 ? a + limit - 1 : to;
        if (n < cap) {
            out[n][0] = a;
            out[n][1] = b;
        }
    }
    return n;
}

static const dr_param params[] = {
    { "candle_interval", DR_T_STRING, "day", false,
      "candle interval: " DR_CANDLE_INTERVALS_TEXT },
    { "max_days", DR_T_INT, "0", false,
      "longest chunk in days; 0 = the interval's Kite limit (minute 60 ... day 2000)" },
    { "ranges_from", DR_T_STRING, "date_ranges", false,
      "upstream task whose output is the array of {instrument_token, from, to} ranges" },
    { NULL, 0, NULL, false, NULL }
};

/* Checked by the runtime before the run starts (validate, --conf); chunk_ranges_limit
 * knows the same set. */
static const dr_param_rule rules[] = {
    { "candle_interval", 0, dr_candle_intervals },
    { "max_days", 0, NULL },
    { NULL, 0, NULL }
};

/* One lane item for instrument r, or NULL (after dr_error) when r is malformed;
 * *nchunks gets its chunk count (0: nothing to fetch, item is still returned). */
static json_t *item_for(dr_ctx *ctx, const json_t *r, size_t idx, const char *interval,
                        long limit, size_t *nchunks)
{
    const json_t *tok = json_object_get(r, "instrument_token");
    const char *sym = json_string_value(json_object_get(r, "tradingsymbol"));
    const char *exch = json_string_value(json_object_get(r, "exchange"));
    const char *from_s = json_string_value(json_object_get(r, "from"));
    const char *to_s = json_string_value(json_object_get(r, "to"));
    int64_t from, to;
    char why[160] = "";
    if (!json_is_integer(tok) || !sym || !exch || dr_date_parse(from_s, &from, why, sizeof why) < 0 ||
        dr_date_parse(to_s, &to, why, sizeof why) < 0) {
        dr_error(ctx, "chunk_ranges: range %zu: need instrument_token, tradingsymbol, exchange "
                 "and from/to dates (YYYY-MM-DD)%s%s", idx, why[0] ? ": " : "", why);
        return NULL;
    }
    size_t n = chunk_ranges_split(from, to, limit, NULL, 0);
    long (*span)[2] = n ? malloc(n * sizeof *span) : NULL;
    if (n && !span) {
        dr_error(ctx, "chunk_ranges: out of memory");
        return NULL;
    }
    chunk_ranges_split(from, to, limit, span, n);
    json_t *chunks = json_array();
    for (size_t k = 0; k < n; k++) {
        char as[DR_DATE_LEN], bs[DR_DATE_LEN];
        dr_date_format(span[k][0], as, sizeof as);
        dr_date_format(span[k][1], bs, sizeof bs);
        json_array_append_new(chunks, json_pack("[ss]", as, bs));
    }
    free(span);
    *nchunks = json_array_size(chunks);
    char key[256];
    snprintf(key, sizeof key, "%s:%s", exch, sym);
    return json_pack("{s:s, s:O, s:s, s:s, s:s, s:o}", "key", key, "instrument_token", tok,
                     "tradingsymbol", sym, "exchange", exch, "interval", interval,
                     "chunks", chunks);
}

static dr_status chunk_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *interval = dr_param_str(ctx, "candle_interval");
    const char *from_task = dr_param_str(ctx, "ranges_from");
    long long max_days = dr_param_int(ctx, "max_days");
    long limit = chunk_ranges_limit(interval);
    if (limit < 0) {
        dr_error(ctx, "chunk_ranges: unknown candle_interval \"%s\" (takes: "
                 DR_CANDLE_INTERVALS_TEXT ")", interval ? interval : "");
        return DR_FAIL;
    }
    if (max_days < 0 || max_days > limit) {
        dr_error(ctx, "chunk_ranges: max_days %lld out of range 0-%ld for %s candles", max_days,
                 limit, interval);
        return DR_FAIL;
    }
    if (max_days > 0)
        limit = (long)max_days;
    const json_t *ranges = dr_input(ctx, from_task ? from_task : "");
    if (!json_is_array(ranges)) {
        dr_error(ctx, "chunk_ranges: no date ranges from task \"%s\" (set ranges_from)",
                 from_task ? from_task : "");
        return DR_FAIL;
    }
    json_t *items = json_array();
    size_t i, total = 0;
    const json_t *r;
    json_array_foreach(ranges, i, r) {
        size_t n = 0;
        json_t *item = item_for(ctx, r, i, interval, limit, &n);
        if (!item) {
            json_decref(items);
            return DR_FAIL;
        }
        if (n > 0)
            json_array_append(items, item);
        json_decref(item);
        total += n;
    }
    size_t nitems = json_array_size(items);
    dr_log(ctx, DR_LOG_INFO, "%zu instruments, %zu chunks of at most %ld days (%s)", nitems,
           total, limit, interval);
    dr_count(ctx, "chunks", (long long)total);
    if (dr_emit_json_new(ctx, items) < 0) {
        dr_error(ctx, "chunk_ranges: emit failed");
        return DR_FAIL;
    }
    return nitems ? DR_OK : DR_SKIP;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "chunk_ranges",
    .summary = "split each instrument's date range into chunks within the broker's limit",
    .params = params,
    .run = chunk_run,
    .rules = rules,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
