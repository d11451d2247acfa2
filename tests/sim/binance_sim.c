/* binance_sim: a Binance spot market-data simulator (exchangeInfo, klines) with Binance's request weights, 429 and 418 bans. */
/*
 * Serves on loopback only:
 *   GET /api/v3/exchangeInfo   weight 20: {"timezone","serverTime","rateLimits","exchangeFilters","symbols":[...]}
 *   GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=   weight 2:
 *       [[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume",
 *         trades, "takerBase", "takerQuote", "0"], ...], oldest first from the first candle at
 *       or after startTime, at most limit (default 500, max 1000), none after endTime
 *   GET /__sim/stats, /__sim/reset, /__sim/config?last_day=YYYY-MM-DD
 * Every answer carries X-MBX-USED-WEIGHT-1M: the weight used in the current window (a fixed
 * window of --window-ms, 60000 by default, aligned to the clock like Binance's minute).
 * A request that would take the window over --weight-limit gets 429 with Retry-After (seconds
 * to the next window) and the -1003 message; a request before that Retry-After has passed gets
 * 418 (but within --grace-ms of the 429, 500 by default: sent before the client could read it,
 * 429 again), and so does every request during the ban (--ban-ms), with the ban's end in the
 * message. --foreign-weight N starts every window with N used by another client.
 * Candles are a pure function of (seed, symbol, interval, open time): prices and volumes are
 * whole numbers of 1e-8 printed with 8 decimals, so any copy of them is exact text.
 * Symbol i (0-based) is listed at --history-start + (i * 97 % 700) days; candles exist up to
 * the end of --last-day. The exchangeInfo list also holds one symbol outside Binance's
 * alphabet (non-ASCII, as seen on the testnet) and one in status BREAK.
 */
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simsrv.h"

#define MAX_LIMIT 1000
#define W_KLINES 2
#define W_EXCHANGE_INFO 20

static const char *const bases[] = { "BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX",
                                     "DOT", "LTC", "LINK", "AVAX", "ATOM", "XLM", "ETC", "FIL" };
#define N_BASES (sizeof bases / sizeof *bases)

struct interval {
    const char *name;
    int64_t ms;
};
static const struct interval intervals[] = {
    { "1s", 1000 }, { "1m", 60000 }, { "3m", 180000 }, { "5m", 300000 }, { "15m", 900000 },
    { "30m", 1800000 }, { "1h", 3600000 }, { "2h", 7200000 }, { "4h", 14400000 },
    { "6h", 21600000 }, { "8h", 28800000 }, { "12h", 43200000 }, { "1d", 86400000 },
    { "3d", 259200000 }, { "1w", 604800000 },
};

/* Fault injection: the Nth request of its kind (1-based), once. */
enum fault { F_429, F_418, F_HTML, F_TRUNCATE, F_SHAPE, F_BAD_PRICES, F_UNORDERED, F_COUNT };
static const char *const fault_names[F_COUNT] = { "429", "418", "html", "truncate", "shape",
                                                  "bad-prices", "unordered" };

static struct {
    unsigned long long seed;
    long n_symbols;
    int64_t first_day;          /* days since 1970 */
    int64_t last_day;           /* protected by lock: candles up to the end of this day */
    int64_t weight_limit, window_ms, ban_ms;
    int64_t foreign_weight;     /* each window starts with this much used by another client */
    int64_t grace_ms;           /* after a 429, requests within this are not yet a ban */
    bool retry_date;            /* Retry-After as an HTTP-date instead of seconds */
    long fault_at[F_COUNT];     /* klines request number, 0: none */
    bool verbose;
} g = { .seed = 42, .n_symbols = 10, .weight_limit = 6000, .window_ms = 60000,
        .ban_ms = 120000, .grace_ms = 500 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int64_t window_start_ms, used;      /* the current fixed window and its weight */
    int64_t retry_until_ms;             /* after a 429: requests before this get 418 */
    int64_t last_429_ms;                /* when the last 429 was sent */
    int64_t banned_until_ms;
    long requests, klines, exchange_info, r429, r418, r400, max_used;
    int64_t first_ms, last_ms, admitted_weight, last_weight;   /* admitted requests */
    long by_symbol[64];
} st;


static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "binance_sim: %s\n", line);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ---- symbols and candles ---- */

static void symbol_name(long i, char *buf, size_t n)
{
    if (i < (long)N_BASES)
        snprintf(buf, n, "%sUSDT", bases[i]);
    else
        snprintf(buf, n, "C%ldUSDT", i);
}

static long symbol_find(const char *s)
{
    char name[32];
    for (long i = 0; i < g.n_symbols; i++) {
        symbol_name(i, name, sizeof name);
        if (strcmp(name, s) == 0)
            return i;
    }
    return -1;
}

static int64_t listing_day(long i)
{
    return g.first_day + (i * 97) % 700;
}

static const struct interval *interval_find(const char *s)
{
    for (size_t i = 0; i < sizeof intervals / sizeof *intervals; i++)
        if (strcmp(intervals[i].name, s) == 0)
            return &intervals[i];
    return NULL;
}

struct kline {
    int64_t open_ms;
    int64_t o, h, l, c, v;      /* units of 1e-8 */
    long trades;
};

static struct kline kline_at(long sym, const struct interval *iv, int64_t open_ms)
{
    uint64_t k = mix(g.seed ^ mix((uint64_t)sym * 1000003ULL ^ (uint64_t)iv->ms)
                     ^ (uint64_t)open_ms);
    int64_t base = (int64_t)(100 + (mix((uint64_t)sym + g.seed) % 60000)) * 100000000LL;
    struct kline x = { .open_ms = open_ms };
    x.o = base + (int64_t)(k % 1000000000ULL);
    x.c = base + (int64_t)((k >> 20) % 1000000000ULL);
    int64_t hi = x.o > x.c ? x.o : x.c, lo = x.o < x.c ? x.o : x.c;
    x.h = hi + (int64_t)((k >> 7) % 50000000ULL);
    x.l = lo - (int64_t)((k >> 13) % 50000000ULL);
    x.v = (int64_t)(mix(k) % 100000000000ULL);
    x.trades = (long)(mix(k + 1) % 100000);
    return x;
}

static void put_amount(struct sbuf *b, int64_t v)
{
    sbuf_printf(b, "\"%s%" PRId64 ".%08" PRId64 "\"", v < 0 ? "-" : "", (v < 0 ? -v : v) / 100000000,
                (v < 0 ? -v : v) % 100000000);
}

/* The open time of sym's first candle at or after from_ms (none before its listing day). */
static int64_t first_open(long sym, const struct interval *iv, int64_t from_ms)
{
    int64_t start = listing_day(sym) * 86400000LL;
    if (from_ms < start)
        from_ms = start;
    int64_t r = from_ms % iv->ms;
    return r ? from_ms + iv->ms - r : from_ms;
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 struct sbuf *body, int64_t used, long retry_after_s)
{
    char u[32], d[64];
    const char *hdrs[5] = { NULL };
    size_t h = 0;
    if (used >= 0) {
        snprintf(u, sizeof u, "%" PRId64, used);
        hdrs[h++] = "X-MBX-USED-WEIGHT-1M";
        hdrs[h++] = u;
    }
    if (retry_after_s >= 0) {
        if (g.retry_date) {
            /* Whole seconds, rounded up: never before the wait it stands for. */
            time_t t = (time_t)((simsrv_wall_ms() + retry_after_s * 1000 + 999) / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(d, sizeof d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        } else {
            snprintf(d, sizeof d, "%ld", retry_after_s);
        }
        hdrs[h++] = "Retry-After";
        hdrs[h++] = d;
    }
    return simsrv_send(c, status, ctype, body, hdrs);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, int code,
                                  const char *msg, int64_t used, long retry_after_s)
{
    struct sbuf b = { 0 };
    sbuf_printf(&b, "{\"code\":%d,\"msg\":\"%s\"}", code, msg);
    return send_body(c, status, "application/json;charset=UTF-8", &b, used, retry_after_s);
}

/* Takes weight w from the window, or decides 429/418. Returns the status to send (200 when
 * admitted) and sets *used and *retry_s. */
static unsigned admit(int64_t w, int64_t *used, long *retry_s, int64_t *ban_end)
{
    int64_t now = simsrv_wall_ms();
    unsigned status = 200;
    pthread_mutex_lock(&lock);
    st.requests++;
    int64_t ws = now - now % g.window_ms;
    if (ws != st.window_start_ms) {
        st.window_start_ms = ws;
        st.used = g.foreign_weight;
    }
    if (now < st.banned_until_ms) {
        status = 418;
    } else if (now < st.retry_until_ms && now < st.last_429_ms + g.grace_ms) {
        /* Sent before the client could have read the 429: not yet a ban. */
        status = 429;
    } else if (now < st.retry_until_ms) {
        /* It went on after a 429 before the Retry-After: banned. */
        st.banned_until_ms = now + g.ban_ms;
        status = 418;
    } else if (st.used + w > g.weight_limit) {
        st.retry_until_ms = ws + g.window_ms;
        status = 429;
    } else {
        st.used += w;
        if (st.used > st.max_used)
            st.max_used = st.used;
        if (!st.first_ms)
            st.first_ms = now;
        st.last_ms = now;
        st.admitted_weight += w;
        st.last_weight = w;
    }
    if (status == 418) {
        st.r418++;
        *ban_end = st.banned_until_ms;
        *retry_s = (long)((st.banned_until_ms - now + 999) / 1000);
    } else if (status == 429) {
        st.r429++;
        st.last_429_ms = now;
        *retry_s = (long)((st.retry_until_ms - now + 999) / 1000);
    } else {
        *retry_s = -1;
    }
    *used = st.used;
    pthread_mutex_unlock(&lock);
    return status;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned status, int64_t used,
                              long retry_s, int64_t ban_end)
{
    char msg[256];
    if (status == 418)
        snprintf(msg, sizeof msg, "Way too much request weight used; IP banned until %" PRId64
                 ". Please use WebSocket Streams for live updates to avoid bans.", ban_end);
    else
        snprintf(msg, sizeof msg, "Too much request weight used; current limit is %" PRId64
                 " request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                 "to avoid polling the API.", g.weight_limit);
    return send_error(c, status, -1003, msg, used, retry_s);
}

static enum MHD_Result exchange_info(struct MHD_Connection *c)
{
    int64_t used, ban_end = 0;
    long retry_s;
    unsigned s = admit(W_EXCHANGE_INFO, &used, &retry_s, &ban_end);
    if (s != 200)
        return refuse(c, s, used, retry_s, ban_end);
    pthread_mutex_lock(&lock);
    st.exchange_info++;
    pthread_mutex_unlock(&lock);
    struct sbuf b = { 0 };
    sbuf_printf(&b, "{\"timezone\":\"UTC\",\"serverTime\":%" PRId64 ",\"rateLimits\":["
                "{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,"
                "\"limit\":%" PRId64 "},{\"rateLimitType\":\"ORDERS\",\"interval\":\"SECOND\","
                "\"intervalNum\":10,\"limit\":100},{\"rateLimitType\":\"RAW_REQUESTS\","
                "\"interval\":\"MINUTE\",\"intervalNum\":5,\"limit\":61000}],"
                "\"exchangeFilters\":[],\"symbols\":[", simsrv_wall_ms(), g.weight_limit);
    /* First, as on the testnet: a symbol outside Binance's alphabet. */
    sbuf_adds(&b, "{\"symbol\":\"\\u8fd9\\u662f\\u6d4b\\u8bd5\\u5e01456\",\"status\":\"TRADING\","
              "\"baseAsset\":\"\\u8fd9\\u662f\\u6d4b\\u8bd5\\u5e01456\",\"baseAssetPrecision\":8,"
              "\"quoteAsset\":\"USDT\",\"quotePrecision\":8,\"quoteAssetPrecision\":8,"
              "\"orderTypes\":[\"LIMIT\",\"MARKET\"],\"icebergAllowed\":true,"
              "\"isSpotTradingAllowed\":true,\"filters\":[],\"permissions\":[],"
              "\"permissionSets\":[[\"SPOT\"]],\"defaultSelfTradePreventionMode\":\"EXPIRE_MAKER\"}");
    for (long i = 0; i < g.n_symbols; i++) {
        char name[32];
        symbol_name(i, name, sizeof name);
        size_t bl = strlen(name) - 4;
        sbuf_printf(&b, ",{\"symbol\":\"%s\",\"status\":\"TRADING\",\"baseAsset\":\"%.*s\","
                    "\"baseAssetPrecision\":8,\"quoteAsset\":\"USDT\",\"quotePrecision\":8,"
                    "\"quoteAssetPrecision\":8,\"baseCommissionPrecision\":8,"
                    "\"quoteCommissionPrecision\":8,\"orderTypes\":[\"LIMIT\",\"LIMIT_MAKER\","
                    "\"MARKET\"],\"icebergAllowed\":true,\"ocoAllowed\":true,"
                    "\"isSpotTradingAllowed\":true,\"isMarginTradingAllowed\":false,"
                    "\"filters\":[{\"filterType\":\"PRICE_FILTER\",\"minPrice\":\"0.01000000\","
                    "\"maxPrice\":\"1000000.00000000\",\"tickSize\":\"0.01000000\"},"
                    "{\"filterType\":\"LOT_SIZE\",\"minQty\":\"0.00001000\","
                    "\"maxQty\":\"9000.00000000\",\"stepSize\":\"0.00001000\"}],"
                    "\"permissions\":[],\"permissionSets\":[[\"SPOT\"]],"
                    "\"defaultSelfTradePreventionMode\":\"EXPIRE_MAKER\"}", name, (int)bl, name);
    }
    sbuf_adds(&b, ",{\"symbol\":\"OLDBUSD\",\"status\":\"BREAK\",\"baseAsset\":\"OLD\","
              "\"baseAssetPrecision\":8,\"quoteAsset\":\"BUSD\",\"quotePrecision\":8,"
              "\"quoteAssetPrecision\":8,\"orderTypes\":[],\"icebergAllowed\":false,"
              "\"isSpotTradingAllowed\":false,\"filters\":[],\"permissions\":[],"
              "\"permissionSets\":[]}]}");
    return send_body(c, 200, "application/json;charset=UTF-8", &b, used, -1);
}


static bool symbol_chars_ok(const char *s)
{
    if (!*s || strlen(s) > 20)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.", *p)))
            return false;
    return true;
}

static enum MHD_Result klines(struct MHD_Connection *c)
{
    int64_t used, ban_end = 0;
    long retry_s;
    unsigned s = admit(W_KLINES, &used, &retry_s, &ban_end);
    pthread_mutex_lock(&lock);
    long n_req = ++st.klines;
    long fault = simsrv_fault_at(g.fault_at, F_COUNT, n_req);
    if (s == 200 && fault == F_429) {
        st.retry_until_ms = simsrv_wall_ms() + 1000;
        st.last_429_ms = simsrv_wall_ms();
        st.r429++;
        s = 429;
        retry_s = 1;
    } else if (s == 200 && fault == F_418) {
        st.banned_until_ms = simsrv_wall_ms() + g.ban_ms;
        st.r418++;
        s = 418;
        ban_end = st.banned_until_ms;
        retry_s = (long)((g.ban_ms + 999) / 1000);
    }
    pthread_mutex_unlock(&lock);
    if (s != 200)
        return refuse(c, s, used, retry_s, ban_end);
    if (fault == F_HTML) {
        struct sbuf b = { 0 };
        sbuf_adds(&b, "<html><body><h1>502 Bad Gateway</h1></body></html>");
        return send_body(c, 200, "text/html", &b, used, -1);
    }
    const char *sym = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "symbol");
    const char *ivs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "interval");
    const char *sts = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "startTime");
    const char *ets = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "endTime");
    const char *lms = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    if (!sym || !*sym)
        return send_error(c, 400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.", used, -1);
    if (!symbol_chars_ok(sym))
        return send_error(c, 400, -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.", used, -1);
    if (!ivs || !*ivs)
        return send_error(c, 400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.", used, -1);
    const struct interval *iv = interval_find(ivs);
    if (!iv)
        return send_error(c, 400, -1120, "Invalid interval.", used, -1);
    long sidx = symbol_find(sym);
    if (sidx < 0)
        return send_error(c, 400, -1121, "Invalid symbol.", used, -1);
    int64_t from = 0, to = INT64_MAX / 4, limit = 500;
    if ((sts && !simsrv_i64(sts, &from)) || (ets && !simsrv_i64(ets, &to)) ||
        (lms && (!simsrv_i64(lms, &limit) || limit < 1)))
        return send_error(c, 400, -1130, "Data sent for parameter 'startTime' is not valid.", used, -1);
    if (limit > MAX_LIMIT)
        limit = MAX_LIMIT;
    pthread_mutex_lock(&lock);
    if (sidx < 64)
        st.by_symbol[sidx]++;
    int64_t last_close = g.last_day * 86400000LL + 86400000LL - 1;
    pthread_mutex_unlock(&lock);
    struct kline v[MAX_LIMIT + 2];
    size_t n = 0;
    for (int64_t t = first_open(sidx, iv, from); n < (size_t)limit && t <= to &&
         t + iv->ms - 1 <= last_close; t += iv->ms)
        v[n++] = kline_at(sidx, iv, t);
    if (fault == F_UNORDERED && n >= 3) {
        /* Newest first, with the middle candle twice. */
        for (size_t i = 0; i < n / 2; i++) {
            struct kline x = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = x;
        }
        v[n] = v[n / 2];
        n++;
    }
    struct sbuf b = { 0 };
    if (fault == F_SHAPE) {
        sbuf_adds(&b, "{\"klines\":[]}");
        return send_body(c, 200, "application/json;charset=UTF-8", &b, used, -1);
    }
    sbuf_adds(&b, "[");
    for (size_t i = 0; i < n; i++) {
        const struct kline *k = &v[i];
        sbuf_printf(&b, "%s[%" PRId64 ",", i ? "," : "", k->open_ms);
        if (fault == F_BAD_PRICES && i == 0)
            sbuf_adds(&b, "\"-1.00000000\",");
        else if (fault == F_BAD_PRICES && i == 1)
            sbuf_adds(&b, "\"abc\",");
        else if (fault == F_BAD_PRICES && i == 2)
            sbuf_adds(&b, "null,");
        else
            put_amount(&b, k->o), sbuf_adds(&b, ",");
        put_amount(&b, k->h);
        sbuf_adds(&b, ",");
        put_amount(&b, k->l);
        sbuf_adds(&b, ",");
        put_amount(&b, k->c);
        sbuf_adds(&b, ",");
        put_amount(&b, k->v);
        sbuf_printf(&b, ",%" PRId64 ",", k->open_ms + iv->ms - 1);
        put_amount(&b, k->v / 1000 * (k->c / 100000000));
        sbuf_printf(&b, ",%ld,", k->trades);
        put_amount(&b, k->v / 2);
        sbuf_adds(&b, ",");
        put_amount(&b, k->v / 2000 * (k->c / 100000000));
        sbuf_adds(&b, ",\"0\"]");
    }
    sbuf_adds(&b, "]");
    if (fault == F_TRUNCATE)
        b.len = b.len / 2, b.p[b.len] = '\0';
    return send_body(c, 200, "application/json;charset=UTF-8", &b, used, -1);
}

static enum MHD_Result sim_endpoint(struct MHD_Connection *c, const char *what)
{
    struct sbuf b = { 0 };
    if (strcmp(what, "stats") == 0) {
        pthread_mutex_lock(&lock);
        sbuf_printf(&b, "{\"requests\":%ld,\"klines_requests\":%ld,\"exchange_info_requests\":%ld,"
                    "\"responses_429\":%ld,\"responses_418\":%ld,\"max_used_weight\":%ld,"
                    "\"weight_limit\":%" PRId64 ",\"window_ms\":%" PRId64 ",\"first_ms\":%" PRId64
                    ",\"last_ms\":%" PRId64 ",\"admitted_weight\":%" PRId64 ",\"last_weight\":%"
                    PRId64 ",\"by_symbol\":{", st.requests, st.klines, st.exchange_info, st.r429,
                    st.r418, st.max_used, g.weight_limit, g.window_ms, st.first_ms, st.last_ms,
                    st.admitted_weight, st.last_weight);
        for (long i = 0; i < g.n_symbols && i < 64; i++) {
            char name[32];
            symbol_name(i, name, sizeof name);
            sbuf_printf(&b, "%s\"%s\":%ld", i ? "," : "", name, st.by_symbol[i]);
        }
        sbuf_adds(&b, "}}");
        pthread_mutex_unlock(&lock);
    } else if (strcmp(what, "reset") == 0) {
        pthread_mutex_lock(&lock);
        memset(&st, 0, sizeof st);
        memset(g.fault_at, 0, sizeof g.fault_at);
        pthread_mutex_unlock(&lock);
        sbuf_adds(&b, "{}");
    } else if (strcmp(what, "config") == 0) {
        const char *ld = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "last_day");
        int y, m, d;
        if (ld && sscanf(ld, "%4d-%2d-%2d", &y, &m, &d) == 3) {
            struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
            pthread_mutex_lock(&lock);
            g.last_day = (int64_t)timegm(&tm) / 86400;
            pthread_mutex_unlock(&lock);
        }
        for (int f = 0; f < F_COUNT; f++) {
            char key[32];
            snprintf(key, sizeof key, "fault_%s", fault_names[f]);
            const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
            int64_t x;
            if (v && simsrv_i64(v, &x)) {
                pthread_mutex_lock(&lock);
                g.fault_at[f] = (long)x;
                pthread_mutex_unlock(&lock);
            }
        }
        sbuf_adds(&b, "{}");
    } else {
        sbuf_adds(&b, "{\"error\":\"unknown\"}");
        return send_body(c, 404, "application/json", &b, -1, -1);
    }
    return send_body(c, 200, "application/json", &b, -1, -1);
}

static enum MHD_Result handle(struct MHD_Connection *c, const char *url, const char *method)
{
    if (g.verbose)
        logf_("%s %.200s", method, url);
    if (strncmp(url, "/__sim/", 7) == 0)
        return sim_endpoint(c, url + 7);
    if (strcmp(method, "GET") != 0)
        return send_error(c, 405, -1000, "Method not allowed.", -1, -1);
    if (strcmp(url, "/api/v3/exchangeInfo") == 0)
        return exchange_info(c);
    if (strcmp(url, "/api/v3/klines") == 0)
        return klines(c);
    struct sbuf b = { 0 };
    sbuf_adds(&b, "<html><body>404 Not Found</body></html>");
    return send_body(c, 404, "text/html", &b, -1, -1);
}


/* --dump-klines SYMBOL INTERVAL FROM_DAY TO_DAY: one canonical line per candle with open time
 * in [FROM_DAY 00:00, end of TO_DAY]: symbol,interval,open_ms,open,high,low,close,volume */
static int dump(char **argv)
{
    long sidx = symbol_find(argv[0]);
    const struct interval *iv = interval_find(argv[1]);
    int64_t from, to;
    if (sidx < 0 || !iv || simsrv_day(argv[2], &from) < 0 || simsrv_day(argv[3], &to) < 0) {
        logf_("--dump-klines: bad SYMBOL INTERVAL FROM TO");
        return 2;
    }
    int64_t end = (to < g.last_day ? to : g.last_day) * 86400000LL + 86400000LL - 1;
    for (int64_t t = first_open(sidx, iv, from * 86400000LL); t + iv->ms - 1 <= end; t += iv->ms) {
        struct kline k = kline_at(sidx, iv, t);
        struct sbuf b = { 0 };
        sbuf_printf(&b, "%s,%s,%" PRId64 ",", argv[0], iv->name, t);
        int64_t vals[5] = { k.o, k.h, k.l, k.c, k.v };
        for (int i = 0; i < 5; i++) {
            sbuf_printf(&b, "%s%" PRId64 ".%08" PRId64, i ? "," : "", vals[i] / 100000000,
                        vals[i] % 100000000);
        }
        size_t len;
        char *p = sbuf_take(&b, &len);
        puts(p);
        free(p);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char usage_text[] =
    "usage: binance_sim [--port N] [--port-file F] [--symbols N] [--seed N]\n"
    "                   [--history-start YYYY-MM-DD] [--last-day YYYY-MM-DD]\n"
    "                   [--weight-limit N] [--window-ms N] [--ban-ms N] [--grace-ms N]\n"
    "                   [--foreign-weight N] [--retry-after-date] [--verbose]\n"
    "                   [--fault-KIND N]   KIND: 429 418 html truncate shape bad-prices unordered\n"
    "                                      (the Nth klines request, once)\n"
    "       binance_sim [options] --dump-klines SYMBOL INTERVAL FROM TO\n";

int main(int argc, char **argv)
{
    enum { O_PORT = 256, O_PORT_FILE, O_SYMBOLS, O_SEED, O_HISTORY, O_LAST, O_WLIMIT, O_WINDOW,
           O_BAN, O_GRACE, O_FOREIGN, O_RETRY_DATE, O_VERBOSE, O_DUMP, O_HELP, O_FAULT };
    static const struct option opts[] = {
        { "port", required_argument, NULL, O_PORT },
        { "port-file", required_argument, NULL, O_PORT_FILE },
        { "symbols", required_argument, NULL, O_SYMBOLS },
        { "seed", required_argument, NULL, O_SEED },
        { "history-start", required_argument, NULL, O_HISTORY },
        { "last-day", required_argument, NULL, O_LAST },
        { "weight-limit", required_argument, NULL, O_WLIMIT },
        { "window-ms", required_argument, NULL, O_WINDOW },
        { "ban-ms", required_argument, NULL, O_BAN },
        { "grace-ms", required_argument, NULL, O_GRACE },
        { "foreign-weight", required_argument, NULL, O_FOREIGN },
        { "retry-after-date", no_argument, NULL, O_RETRY_DATE },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "dump-klines", no_argument, NULL, O_DUMP },
        { "help", no_argument, NULL, O_HELP },
        { "fault-429", required_argument, NULL, O_FAULT + F_429 },
        { "fault-418", required_argument, NULL, O_FAULT + F_418 },
        { "fault-html", required_argument, NULL, O_FAULT + F_HTML },
        { "fault-truncate", required_argument, NULL, O_FAULT + F_TRUNCATE },
        { "fault-shape", required_argument, NULL, O_FAULT + F_SHAPE },
        { "fault-bad-prices", required_argument, NULL, O_FAULT + F_BAD_PRICES },
        { "fault-unordered", required_argument, NULL, O_FAULT + F_UNORDERED },
        { NULL, 0, NULL, 0 },
    };
    int64_t port = 0, x;
    const char *port_file = NULL;
    bool dumping = false;
    simsrv_day("2017-07-14", &g.first_day);
    simsrv_day("2024-06-28", &g.last_day);
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_PORT: ok = simsrv_i64(optarg, &port) && port >= 0 && port < 65536; break;
        case O_PORT_FILE: port_file = optarg; break;
        case O_SYMBOLS: ok = simsrv_i64(optarg, &x) && x >= 1 && x <= 10000; g.n_symbols = (long)x; break;
        case O_SEED: ok = simsrv_i64(optarg, &x) && x >= 0; g.seed = (unsigned long long)x; break;
        case O_HISTORY: ok = simsrv_day(optarg, &g.first_day) == 0; break;
        case O_LAST: ok = simsrv_day(optarg, &g.last_day) == 0; break;
        case O_WLIMIT: ok = simsrv_i64(optarg, &g.weight_limit) && g.weight_limit >= 1; break;
        case O_WINDOW: ok = simsrv_i64(optarg, &g.window_ms) && g.window_ms >= 10; break;
        case O_BAN: ok = simsrv_i64(optarg, &g.ban_ms) && g.ban_ms >= 1; break;
        case O_GRACE: ok = simsrv_i64(optarg, &g.grace_ms) && g.grace_ms >= 0; break;
        case O_FOREIGN: ok = simsrv_i64(optarg, &g.foreign_weight) && g.foreign_weight >= 0; break;
        case O_RETRY_DATE: g.retry_date = true; break;
        case O_VERBOSE: g.verbose = true; break;
        case O_DUMP: dumping = true; break;
        case O_HELP: fputs(usage_text, stdout); return 0;
        default:
            if (opt >= O_FAULT && opt < O_FAULT + F_COUNT) {
                ok = simsrv_i64(optarg, &x) && x >= 1;
                g.fault_at[opt - O_FAULT] = (long)x;
                break;
            }
            fputs(usage_text, stderr);
            return 2;
        }
        if (!ok) {
            logf_("bad option value %s; try binance_sim --help", optarg);
            return 2;
        }
    }
    if (dumping) {
        if (argc - optind != 4) {
            fputs(usage_text, stderr);
            return 2;
        }
        return dump(argv + optind);
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    fprintf(stderr, "binance_sim: %ld symbols, weight %" PRId64 " per %" PRId64 " ms\n", g.n_symbols,
            g.weight_limit, g.window_ms);
    return simsrv_run("binance_sim", (long)port, port_file, handle);
}
