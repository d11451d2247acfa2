/* fetch_candles: fetch one instrument's chunks of historical candles and emit them as dr_candle arrays. */
#include <dagrun/task.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Called for each dropped candle: ts is its timestamp text ("?" when none). */
typedef void (*fetch_candles_drop_fn)(void *ud, const char *ts, const char *why);

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SS" followed by "+0530", "+05:30", "-0400" or "Z"
 * (a space may replace the T) into Unix seconds UTC. Returns 0, or -1 for
 * anything else, including impossible dates and a missing zone. Pure; any
 * thread (timegm and gmtime_r never read TZ). */
int fetch_candles_parse_ts(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 1;
    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &se))
        return -1;
    const char *z = s + 19;
    if (!strcmp(z, "Z")) {
        sign = 0;
    } else if ((z[0] == '+' || z[0] == '-') && !digits(z + 1, 2, &oh)) {
        sign = z[0] == '-' ? -1 : 1;
        const char *m = z[3] == ':' ? z + 4 : z + 3;
        if (digits(m, 2, &om) || m[2] || oh > 14 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
        return -1;
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = se };
    time_t t = timegm(&tm);
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1)
        return -1;
    *out = (int64_t)t - (int64_t)sign * (oh * 3600 + om * 60);
    return 0;
}

/* Why c breaks the candle rules (DESIGN.md "Candle rules"), or NULL when it
 * is sound. Pure; any thread. */
const char *fetch_candles_check(const dr_candle *c)
{
    if (!isfinite(c->open) || !isfinite(c->high) || !isfinite(c->low) || !isfinite(c->close))
        return "price is not finite";
    if (c->open <= 0 || c->high <= 0 || c->low <= 0 || c->close <= 0)
        return "price is not positive";
    if (c->volume < 0)
        return "volume is negative";
    if (c->has_oi && c->oi < 0)
        return "oi is negative";
    if (c->low > fmin(c->open, c->close))
        return "low is above open or close";
    if (fmax(c->open, c->close) > c->high)
        return "high is below open or close";
    return NULL;
}

static int price(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

/* A whole number: a JSON integer or a real with no fraction. */
static int whole(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return -1;
        *out = (int64_t)d;
        return 0;
    }
    return -1;
}

/* Reads one candle, an array [ts, o, h, l, c, v(, oi)] or an object
 * {date, open, high, low, close, volume(, oi)}. Returns why it is unusable,
 * or NULL; *ts gets its timestamp text when there is one. */
static const char *candle_from_json(const json_t *row, dr_candle *c, const char **ts)
{
    const json_t *f[7] = { NULL };
    memset(c, 0, sizeof *c);
    if (json_is_array(row)) {
        size_t n = json_array_size(row);
        if (n != 6 && n != 7)
            return "candle array needs 6 or 7 elements";
        for (size_t i = 0; i < n; i++)
            f[i] = json_array_get(row, i);
    } else if (json_is_object(row)) {
        static const char *names[] = { "date", "open", "high", "low", "close", "volume", "oi" };
        for (int i = 0; i < 7; i++)
            f[i] = json_object_get(row, names[i]);
    } else {
        return "candle is neither an array nor an object";
    }
    *ts = json_string_value(f[0]);
    if (!*ts || fetch_candles_parse_ts(*ts, &c->ts) < 0)
        return "bad timestamp";
    if (price(f[1], &c->open) || price(f[2], &c->high) || price(f[3], &c->low) ||
        price(f[4], &c->close))
        return "price is not a number";
    if (whole(f[5], &c->volume))
        return "volume is not a whole number";
    if (f[6] && !json_is_null(f[6])) {
        if (whole(f[6], &c->oi))
            return "oi is not a whole number";
        c->has_oi = 1;
    }
    return fetch_candles_check(c);
}

/* Parses a Kite historical-data response body.
 * Returns 0 with *out (malloc'd, caller frees; NULL when *n is 0) holding the
 * sound candles in strictly increasing time order: every other candle is
 * dropped and reported through on_drop (may be NULL). Returns 1 when the body
 * is Kite's error envelope (any HTTP status): error_type and msg get its
 * error_type (GeneralException when absent) and message. Returns -1 when the
 * body is not a usable response: msg says why (e.g. "candles is not an
 * array"); error_type is then "DataException" when the body could not be
 * decoded at all (not JSON, another Content-Type: often a truncated body or a
 * gateway's error page), else "". Pure apart from on_drop; any thread. */
int fetch_candles_parse(const char *body, size_t len, const char *content_type,
                        dr_candle **out, size_t *n, fetch_candles_drop_fn on_drop, void *ud,
                        char error_type[64], char msg[256])
{
    *out = NULL;
    *n = 0;
    error_type[0] = msg[0] = '\0';
    if (content_type && *content_type && strncasecmp(content_type, "application/json", 16)) {
        snprintf(error_type, 64, "DataException");
        snprintf(msg, 256, "unexpected Content-Type \"%.100s\"", content_type);
        return -1;
    }
    json_error_t e;
    json_t *root = json_loadb(body ? body : "", len, 0, &e);
    if (!root) {
        snprintf(error_type, 64, "DataException");
        snprintf(msg, 256, "not JSON: %s", e.text);
        return -1;
    }
    int rc = -1;
    const char *status = json_string_value(json_object_get(root, "status"));
    const char *etype = json_string_value(json_object_get(root, "error_type"));
    const json_t *data = json_object_get(root, "data");
    const json_t *candles = json_object_get(data, "candles");
    if (!json_is_object(root)) {
        snprintf(msg, 256, "not a JSON object");
    } else if (etype || (status && !strcmp(status, "error"))) {
        const char *m = json_string_value(json_object_get(root, "message"));
        snprintf(error_type, 64, "%s", etype ? etype : "GeneralException");
        snprintf(msg, 256, "%s", m ? m : "no message");
        rc = 1;
    } else if (!status || strcmp(status, "success")) {
        snprintf(msg, 256, "status is not \"success\"");
    } else if (!data) {
        snprintf(msg, 256, "data is missing");
    } else if (!json_is_object(data)) {
        snprintf(msg, 256, "data is not an object");
    } else if (!candles) {
        snprintf(msg, 256, "candles is missing");
    } else if (!json_is_array(candles)) {
        snprintf(msg, 256, "candles is not an array");
    } else {
        size_t total = json_array_size(candles), i;
        dr_candle *c = total ? malloc(total * sizeof *c) : NULL;
        if (total && !c) {
            snprintf(msg, 256, "out of memory for %zu candles", total);
            goto out;
        }
        const json_t *row;
        json_array_foreach(candles, i, row) {
            const char *ts = NULL;
            const char *why = candle_from_json(row, &c[*n], &ts);
            if (!why && *n > 0 && c[*n].ts <= c[*n - 1].ts)
                why = "duplicate or out-of-order timestamp";
            if (why) {
                if (on_drop)
                    on_drop(ud, ts ? ts : "?", why);
                continue;
            }
            (*n)++;
        }
        if (*n == 0) {
            free(c);
            c = NULL;
        }
        *out = c;
        rc = 0;
    }
out:
    json_decref(root);
    return rc;
}

/* What to do about a failed request: DR_FATAL for rejected credentials,
 * DR_RETRY for rate limits, server errors and network trouble (the item
 * restarts with the task's retry policy), DR_FAIL for the rest (bad input).
 * error_type may be NULL. Pure; any thread. */
dr_status fetch_candles_classify(long status, const char *error_type)
{
    if (status == 403 || (error_type && !strcmp(error_type, "TokenException")))
        return DR_FATAL;
    if (status == 0 || status == 429 || status >= 500 ||
        (error_type && !strcmp(error_type, "NetworkException")))
        return DR_RETRY;
    return DR_FAIL;
}

static const dr_param params[] = {
    { "source", DR_T_STRING, "kite", false, "HTTP source of config.json to fetch from" },
    { "oi", DR_T_BOOL, "true", false, "ask for open interest (oi=1)" },
    { "continuous", DR_T_BOOL, "false", false,
      "continuous data for expired futures (continuous=1, day candles of NFO/MCX futures)" },
    { NULL, 0, NULL, false, NULL }
};

struct item {
    dr_ctx *ctx;
    const char *key;
    long long token;
    const char *interval;
    const char *source;
    bool oi, continuous;
    char reached[32];       /* end of the last chunk that succeeded, "" for none */
    size_t dropped;         /* in the current chunk */
    long long candles;
};

static void on_drop(void *ud, const char *ts, const char *why)
{
    struct item *it = ud;
    it->dropped++;
    dr_count(it->ctx, "dropped", 1);
    dr_log(it->ctx, DR_LOG_WARN, "%s: dropped candle %s: %s", it->key, ts, why);
}

static bool is_date(const char *s)
{
    if (!s || strlen(s) != 10)
        return false;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

static bool is_word(const char *s)
{
    if (!s || !*s || strlen(s) > 32)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static const char *reached(const struct item *it)
{
    return it->reached[0] ? it->reached : "nothing";
}

/* Fetches one chunk and emits its candles; DR_OK or the item's outcome. */
static dr_status fetch_chunk(struct item *it, const char *from, const char *to)
{
    dr_ctx *ctx = it->ctx;
    char path[256];
    snprintf(path, sizeof path, "/instruments/historical/%lld/%s?from=%s+00:00:00&to=%s+23:59:59%s%s",
             it->token, it->interval, from, to, it->oi ? "&oi=1" : "",
             it->continuous ? "&continuous=1" : "");
    dr_http_response resp;
    int rc = dr_http_get(ctx, it->source, path, &resp);
    dr_count(ctx, "requests", resp.attempts > 0 ? resp.attempts : 1);
    if (rc < 0) {
        bool cancelled = dr_cancelled(ctx);
        dr_error(ctx, "fetch_candles %s %s..%s: request failed: %s; reached %s", it->key, from,
                 to, resp.error, reached(it));
        dr_http_response_free(&resp);
        return cancelled ? DR_FAIL : DR_RETRY;
    }
    dr_candle *c = NULL;
    size_t n = 0;
    char etype[64], msg[256];
    it->dropped = 0;
    int prc = fetch_candles_parse(resp.body, resp.len, resp.content_type, &c, &n, on_drop, it,
                                  etype, msg);
    long status = resp.status;
    dr_http_response_free(&resp);
    bool ok_status = status >= 200 && status <= 299;
    if (prc == 0 && ok_status) {
        if (it->dropped)
            dr_warn(ctx, "%s %s..%s: dropped %zu bad candles", it->key, from, to, it->dropped);
        if (n > 0 && dr_emit_blob(ctx, DR_BLOB_CANDLES, c, n * sizeof *c) < 0) {
            free(c);
            dr_error(ctx, "fetch_candles %s %s..%s: downstream failed or run cancelled; "
                     "reached %s", it->key, from, to, reached(it));
            return DR_FAIL;
        }
        free(c);
        it->candles += (long long)n;
        dr_count(ctx, "candles", (long long)n);
        snprintf(it->reached, sizeof it->reached, "%s", to);
        return DR_OK;
    }
    free(c);
    if (prc == -1 && ok_status) {
        /* An undecodable body is usually in-flight trouble: retry the item. */
        dr_error(ctx, "fetch_candles %s %s..%s: bad response: %s; reached %s", it->key, from, to,
                 msg, reached(it));
        return etype[0] ? DR_RETRY : DR_FAIL;
    }
    if (prc != 1) {             /* a non-2xx status without Kite's envelope */
        snprintf(etype, sizeof etype, "%s", status == 429 ? "NetworkException" : "error");
        snprintf(msg, sizeof msg, "%s", "no Kite error body");
    }
    dr_status st = fetch_candles_classify(status, etype);
    if (st == DR_FATAL) {
        dr_error(ctx, "fetch_candles: HTTP %ld %s from %s: %s; run stopped\nhint: check the source's "
                 "api_key_env/access_token_env variables (KITE_API_KEY, KITE_ACCESS_TOKEN by "
                 "default)", status, etype, it->source, msg);
        return DR_FATAL;
    }
    dr_error(ctx, "fetch_candles %s %s..%s: HTTP %ld %s: %s; reached %s", it->key, from, to,
             status, etype, msg, reached(it));
    return st;
}

static dr_status fetch_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const json_t *item = dr_map_item(ctx);
    const json_t *chunks = json_object_get(item, "chunks");
    const json_t *tok = json_object_get(item, "instrument_token");
    struct item it = {
        .ctx = ctx,
        .key = json_string_value(json_object_get(item, "key")),
        .token = json_integer_value(tok),
        .interval = json_string_value(json_object_get(item, "interval")),
        .source = dr_param_str(ctx, "source"),
        .oi = dr_param_bool(ctx, "oi"),
        .continuous = dr_param_bool(ctx, "continuous"),
    };
    if (!it.key)
        it.key = "?";
    if (!json_is_integer(tok) || it.token <= 0 || !is_word(it.interval) ||
        !json_is_array(chunks) || !it.source) {
        dr_error(ctx, "fetch_candles %s: map item needs instrument_token, interval and chunks "
                 "(map this task over chunk_ranges)", it.key);
        return DR_FAIL;
    }
    size_t i;
    const json_t *ch;
    json_array_foreach(chunks, i, ch) {
        const char *from = json_string_value(json_array_get(ch, 0));
        const char *to = json_string_value(json_array_get(ch, 1));
        if (!is_date(from) || !is_date(to)) {
            dr_error(ctx, "fetch_candles %s: chunk %zu is not [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]; "
                     "reached %s", it.key, i, reached(&it));
            return DR_FAIL;
        }
        if (dr_cancelled(ctx)) {
            dr_error(ctx, "fetch_candles %s: cancelled before %s..%s; reached %s", it.key, from,
                     to, reached(&it));
            return DR_FAIL;
        }
        dr_status st = fetch_chunk(&it, from, to);
        if (st != DR_OK)
            return st;
    }
    dr_log(ctx, DR_LOG_INFO, "%s: %zu chunks, %lld candles", it.key, json_array_size(chunks),
           it.candles);
    return it.candles > 0 ? DR_OK : DR_SKIP;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "fetch_candles",
    .summary = "fetch an instrument's historical candles chunk by chunk and emit them",
    .params = params,
    .run = fetch_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
