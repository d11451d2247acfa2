/* coingecko_sim: a CoinGecko API simulator (coins/markets, coins/{id}/market_chart/range) with its answer shapes, demo-plan limits and faults. */
/*
 * GET /api/v3/coins/markets?vs_currency=usd&order=market_cap_desc&per_page=N&page=P
 *   the coins by market cap, N (1-250, default 100) a page: CoinGecko's object per coin
 * GET /api/v3/coins/{id}/market_chart/range?vs_currency=usd&from=&to=[&interval=daily]
 *   {"prices":[[ms, price]...],"market_caps":[...],"total_volumes":[...]}: one point per day at
 *   00:00 UTC (interval=daily, or a range over 90 days; shorter ranges without it: hourly)
 *   for from <= t <= to, up to the end of --last-day; --live-point adds the current price at a
 *   time that is not midnight when the range reaches past --last-day, as CoinGecko does.
 *   Prices have 15 significant digits; small ones come in exponent notation (1.23456789012345e-05).
 *   404 {"error":"coin not found"}; a from older than 365 days before the wall clock:
 *   401 error_code 10012 (the demo plan's history limit).
 * --demo-key K: requests must carry x-cg-demo-api-key: K (else 401, error_code 10002).
 * --limit N --limit-window-ms W: 429 over N requests in any W ms, with Retry-After and
 *   CoinGecko's body.
 * GET /__sim/stats (counts; admitted, first_ms, last_ms: the requests the window let through
 *   and the wall clock of the first and last), /__sim/reset, /__sim/config?last_day=YYYY-MM-DD
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simsrv.h"

struct coin {
    const char *id, *symbol, *name;
    double price;
    const char *listed;         /* first day with data */
};
static const struct coin coins[] = {
    { "bitcoin", "btc", "Bitcoin", 67000, "2013-04-28" },
    { "ethereum", "eth", "Ethereum", 3500, "2015-08-07" },
    { "tether", "usdt", "Tether", 1.0002, "2015-02-25" },
    { "binancecoin", "bnb", "BNB", 580, "2017-09-16" },
    { "solana", "sol", "Solana", 150, "2020-04-11" },
    { "usd-coin", "usdc", "USDC", 0.9999, "2018-10-08" },
    { "shiba-inu", "shib", "Shiba Inu", 0.0000172, "2020-08-01" },
    { "wrapped-bitcoin", "wbtc", "Wrapped Bitcoin", 66900, "2019-01-30" },
};
#define N_COINS (sizeof coins / sizeof *coins)

enum fault { F_HTML, F_TRUNCATE, F_BAD_PRICES, F_UNORDERED, F_COUNT };

static struct {
    long n_coins;
    int64_t last_day;
    long limit;
    int64_t limit_window_ms;
    const char *demo_key;
    bool live_point;
    long fault_at[F_COUNT];
} g = { .n_coins = N_COINS, .limit_window_ms = 60000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    long requests, markets, charts, r429, r401, r404, by_coin[N_COINS];
    int64_t ring[4096];
    size_t head, n;
    long admitted;              /* requests the window let through */
    int64_t first_ms, last_ms;  /* wall clock of the first and last of them */
} st;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int64_t listed_day(long ci)
{
    int64_t d = 0;
    simsrv_day(coins[ci].listed, &d);
    return d;
}

/* The price and volume of coin ci at time t (seconds), printed with 15 significant digits. */
static void point(long ci, int64_t t, char *price, char *volume, size_t n)
{
    uint64_t h = mix((uint64_t)ci * 104729 + (uint64_t)t);
    double p = coins[ci].price * (1 + 0.3 * sin((double)t / 4e6)) * (1 + (double)(h % 10000) / 1e6);
    double v = coins[ci].price * 1e6 * (double)(1 + (h >> 20) % 100000);
    snprintf(price, n, "%.15g", p);
    snprintf(volume, n, "%.15g", v);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, struct sbuf *b,
                                 const char *const *hdrs)
{
    return simsrv_send(c, status, "application/json; charset=utf-8", b, hdrs);
}

static enum MHD_Result cg_status(struct MHD_Connection *c, unsigned status, int code,
                                 const char *msg)
{
    struct sbuf b = { 0 };
    sbuf_printf(&b, "{\"status\":{\"error_code\":%d,\"error_message\":\"%s\"}}", code, msg);
    return send_json(c, status, &b, NULL);
}

/* The sliding-window limit; false (and the 429 counted) when over it. */
static bool rate_admit(long *retry_s)
{
    if (g.limit <= 0)
        return true;
    int64_t now = simsrv_wall_ms();
    pthread_mutex_lock(&lock);
    while (st.n && st.ring[st.head] <= now - g.limit_window_ms) {
        st.head = (st.head + 1) % 4096;
        st.n--;
    }
    bool ok = st.n < (size_t)g.limit && st.n < 4096;
    if (ok) {
        st.ring[(st.head + st.n++) % 4096] = now;
        if (st.admitted++ == 0)
            st.first_ms = now;
        st.last_ms = now;
    } else {
        st.r429++;
        *retry_s = (long)((st.ring[st.head] + g.limit_window_ms - now + 999) / 1000);
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

static enum MHD_Result markets(struct MHD_Connection *c)
{
    const char *vs = simsrv_arg(c, "vs_currency");
    if (!vs || !*vs)
        return cg_status(c, 400, 400, "Missing parameter vs_currency");
    int64_t per = 100, page = 1;
    if ((simsrv_arg(c, "per_page") && !simsrv_i64(simsrv_arg(c, "per_page"), &per)) ||
        (simsrv_arg(c, "page") && !simsrv_i64(simsrv_arg(c, "page"), &page)) || per < 1 ||
        page < 1)
        return cg_status(c, 400, 400, "Invalid per_page or page");
    if (per > 250)
        per = 250;
    pthread_mutex_lock(&lock);
    st.markets++;
    int64_t last = g.last_day;
    pthread_mutex_unlock(&lock);
    struct sbuf b = { 0 };
    sbuf_adds(&b, "[");
    int64_t t = last * 86400 + 86399;
    for (int64_t i = (page - 1) * per, k = 0; i < g.n_coins && k < per; i++, k++) {
        char p[40], v[40];
        point((long)i, t, p, v, sizeof p);
        sbuf_printf(&b, "%s{\"id\":\"%s\",\"symbol\":\"%s\",\"name\":\"%s\",\"image\":"
                    "\"https://assets.coingecko.com/coins/images/%" PRId64 "/large/%s.png\","
                    "\"current_price\":%s,\"market_cap\":%" PRId64 ",\"market_cap_rank\":%" PRId64
                    ",\"fully_diluted_valuation\":null,\"total_volume\":%s,\"high_24h\":%s,"
                    "\"low_24h\":%s,\"price_change_24h\":0.0,\"price_change_percentage_24h\":0.0,"
                    "\"market_cap_change_24h\":0,\"market_cap_change_percentage_24h\":0.0,"
                    "\"circulating_supply\":19675987.0,\"total_supply\":21000000.0,"
                    "\"max_supply\":null,\"ath\":%s,\"ath_change_percentage\":0.0,"
                    "\"ath_date\":\"2024-03-14T07:10:36.635Z\",\"atl\":%s,"
                    "\"atl_change_percentage\":0.0,\"atl_date\":\"2013-07-06T00:00:00.000Z\","
                    "\"roi\":null,\"last_updated\":\"2024-04-07T16:49:31.736Z\"}",
                    k ? "," : "", coins[i].id, coins[i].symbol, coins[i].name, i + 1,
                    coins[i].id, p, (int64_t)(1e12 / (double)(i + 1)), i + 1, v, p, p, p, p);
    }
    sbuf_adds(&b, "]");
    return send_json(c, 200, &b, NULL);
}

struct pt {
    int64_t ms;
    char p[40], v[40];
};

static enum MHD_Result chart(struct MHD_Connection *c, const char *id)
{
    long ci = -1;
    for (long i = 0; i < g.n_coins; i++)
        if (strcmp(coins[i].id, id) == 0)
            ci = i;
    if (ci < 0) {
        pthread_mutex_lock(&lock);
        st.r404++;
        pthread_mutex_unlock(&lock);
        struct sbuf b = { 0 };
        sbuf_adds(&b, "{\"error\":\"coin not found\"}");
        return send_json(c, 404, &b, NULL);
    }
    pthread_mutex_lock(&lock);
    long nreq = ++st.charts;
    st.by_coin[ci]++;
    long fault = simsrv_fault_at(g.fault_at, F_COUNT, nreq);
    int64_t last = g.last_day;
    pthread_mutex_unlock(&lock);
    if (fault == F_HTML) {
        struct sbuf b = { 0 };
        sbuf_adds(&b, "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>");
        return simsrv_send(c, 200, "text/html; charset=UTF-8", &b, NULL);
    }
    int64_t from, to;
    const char *vs = simsrv_arg(c, "vs_currency");
    if (!vs || !simsrv_i64(simsrv_arg(c, "from"), &from) ||
        !simsrv_i64(simsrv_arg(c, "to"), &to) || to < from)
        return cg_status(c, 400, 400, "Missing or invalid parameter vs_currency, from or to");
    if (from < simsrv_wall_ms() / 1000 - 365 * 86400) {
        pthread_mutex_lock(&lock);
        st.r401++;
        pthread_mutex_unlock(&lock);
        return cg_status(c, 401, 10012, "Your request exceeds the allowed time range. Public API "
                         "users are limited to querying historical data within the past 365 days. "
                         "Upgrade to a paid plan to enjoy full historical data access: "
                         "https://www.coingecko.com/en/api/pricing. ");
    }
    const char *interval = simsrv_arg(c, "interval");
    bool daily = (interval && strcmp(interval, "daily") == 0) || to - from > 90 * 86400;
    int64_t step = daily ? 86400 : 3600;
    int64_t start = from, end = to;
    if (start < listed_day(ci) * 86400)
        start = listed_day(ci) * 86400;
    int64_t data_end = last * 86400 + 86399;
    if (end > data_end)
        end = data_end;
    start = (start + step - 1) / step * step;
    size_t cap = (size_t)((end > start ? end - start : 0) / step + 4);
    struct pt *v = malloc(cap * sizeof *v);
    if (!v)
        return MHD_NO;
    size_t n = 0;
    for (int64_t t = start; t <= end && n + 3 < cap; t += step) {
        v[n].ms = t * 1000;
        point(ci, t, v[n].p, v[n].v, sizeof v[n].p);
        n++;
    }
    if (g.live_point && to > data_end && n > 0) {
        int64_t t = data_end - 2718;
        v[n].ms = t * 1000 + 412;
        point(ci, t, v[n].p, v[n].v, sizeof v[n].p);
        n++;
    }
    if (fault == F_BAD_PRICES && n >= 2) {
        snprintf(v[0].p, sizeof v[0].p, "-5.5");
        snprintf(v[1].p, sizeof v[1].p, "null");
    }
    if (fault == F_UNORDERED && n >= 3) {
        for (size_t i = 0; i < n / 2; i++) {
            struct pt x = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = x;
        }
        v[n] = v[n / 2];
        n++;
    }
    struct sbuf b = { 0 };
    static const char *const keys[3] = { "prices", "market_caps", "total_volumes" };
    sbuf_adds(&b, "{");
    for (int k = 0; k < 3; k++) {
        sbuf_printf(&b, "%s\"%s\":[", k ? "," : "", keys[k]);
        for (size_t i = 0; i < n; i++) {
            const char *x = k == 0 ? v[i].p : k == 2 ? v[i].v : "1312782010345.22";
            sbuf_printf(&b, "%s[%" PRId64 ",%s]", i ? "," : "", v[i].ms, x);
        }
        sbuf_adds(&b, "]");
    }
    sbuf_adds(&b, "}");
    free(v);
    if (fault == F_TRUNCATE)
        b.len = b.len / 2, b.p[b.len] = '\0';
    return send_json(c, 200, &b, NULL);
}

static enum MHD_Result sim_endpoint(struct MHD_Connection *c, const char *what)
{
    struct sbuf b = { 0 };
    if (strcmp(what, "stats") == 0) {
        pthread_mutex_lock(&lock);
        sbuf_printf(&b, "{\"requests\":%ld,\"markets_requests\":%ld,\"chart_requests\":%ld,"
                    "\"responses_429\":%ld,\"responses_401\":%ld,\"responses_404\":%ld,"
                    "\"admitted\":%ld,\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64 ","
                    "\"limit\":%ld,\"window_ms\":%" PRId64 ",\"by_coin\":{", st.requests,
                    st.markets, st.charts, st.r429, st.r401, st.r404, st.admitted, st.first_ms,
                    st.last_ms, g.limit, g.limit_window_ms);
        for (long i = 0; i < g.n_coins; i++)
            sbuf_printf(&b, "%s\"%s\":%ld", i ? "," : "", coins[i].id, st.by_coin[i]);
        sbuf_adds(&b, "}}");
        pthread_mutex_unlock(&lock);
    } else if (strcmp(what, "reset") == 0) {
        pthread_mutex_lock(&lock);
        memset(&st, 0, sizeof st);
        memset(g.fault_at, 0, sizeof g.fault_at);
        pthread_mutex_unlock(&lock);
        sbuf_adds(&b, "{}");
    } else if (strcmp(what, "config") == 0) {
        int64_t day;
        if (simsrv_day(simsrv_arg(c, "last_day"), &day) == 0) {
            pthread_mutex_lock(&lock);
            g.last_day = day;
            pthread_mutex_unlock(&lock);
        }
        sbuf_adds(&b, "{}");
    } else {
        sbuf_adds(&b, "{}");
        return simsrv_send(c, 404, "application/json", &b, NULL);
    }
    return simsrv_send(c, 200, "application/json", &b, NULL);
}

static enum MHD_Result handle(struct MHD_Connection *c, const char *url, const char *method)
{
    if (strncmp(url, "/__sim/", 7) == 0)
        return sim_endpoint(c, url + 7);
    pthread_mutex_lock(&lock);
    st.requests++;
    pthread_mutex_unlock(&lock);
    long retry_s = 0;
    if (!rate_admit(&retry_s)) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", retry_s);
        const char *hdrs[] = { "Retry-After", ra, NULL };
        struct sbuf b = { 0 };
        sbuf_adds(&b, "{\"status\":{\"error_code\":429,\"error_message\":\"You've exceeded the Rate "
                  "Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to "
                  "our API plans for higher rate limits.\"}}");
        return simsrv_send(c, 429, "application/json", &b, hdrs);
    }
    if (g.demo_key) {
        const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-cg-demo-api-key");
        if (!k || strcmp(k, g.demo_key) != 0) {
            pthread_mutex_lock(&lock);
            st.r401++;
            pthread_mutex_unlock(&lock);
            return cg_status(c, 401, 10002, "API Key Missing or Invalid");
        }
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/api/v3/coins/markets") == 0)
        return markets(c);
    const char *pre = "/api/v3/coins/", *suf = "/market_chart/range";
    size_t pl = strlen(pre), sl = strlen(suf), ul = strlen(url);
    if (strcmp(method, "GET") == 0 && ul > pl + sl && strncmp(url, pre, pl) == 0 &&
        strcmp(url + ul - sl, suf) == 0) {
        char id[128];
        snprintf(id, sizeof id, "%.*s", (int)(ul - pl - sl), url + pl);
        return chart(c, id);
    }
    struct sbuf b = { 0 };
    sbuf_adds(&b, "{\"error\":\"Incorrect path. Please check https://www.coingecko.com/api/\"}");
    return send_json(c, 404, &b, NULL);
}

/* --dump ID FROM TO: id,daily,ts,price,volume for each daily point of [FROM, TO]. */
static int dump(char **argv)
{
    long ci = -1;
    for (long i = 0; i < g.n_coins; i++)
        if (strcmp(coins[i].id, argv[0]) == 0)
            ci = i;
    int64_t from, to;
    if (ci < 0 || simsrv_day(argv[1], &from) < 0 || simsrv_day(argv[2], &to) < 0) {
        fputs("coingecko_sim: --dump ID FROM TO\n", stderr);
        return 2;
    }
    if (from < listed_day(ci))
        from = listed_day(ci);
    if (to > g.last_day)
        to = g.last_day;
    for (int64_t d = from; d <= to; d++) {
        char p[40], v[40];
        point(ci, d * 86400, p, v, sizeof p);
        printf("%s,daily,%" PRId64 ",%s,%s\n", argv[0], d * 86400, p, v);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char usage_text[] =
    "usage: coingecko_sim [--port N] [--port-file F] [--coins N] [--last-day YYYY-MM-DD]\n"
    "                     [--limit N --limit-window-ms W] [--demo-key K] [--live-point]\n"
    "                     [--fault-KIND N]   KIND: html truncate bad-prices unordered\n"
    "       coingecko_sim [options] --dump ID FROM TO\n";

int main(int argc, char **argv)
{
    enum { O_PORT = 256, O_PORT_FILE, O_COINS, O_LAST, O_LIMIT, O_LIMIT_WIN, O_KEY, O_LIVE,
           O_DUMP, O_HELP, O_FAULT };
    static const struct option opts[] = {
        { "port", required_argument, NULL, O_PORT },
        { "port-file", required_argument, NULL, O_PORT_FILE },
        { "coins", required_argument, NULL, O_COINS },
        { "last-day", required_argument, NULL, O_LAST },
        { "limit", required_argument, NULL, O_LIMIT },
        { "limit-window-ms", required_argument, NULL, O_LIMIT_WIN },
        { "demo-key", required_argument, NULL, O_KEY },
        { "live-point", no_argument, NULL, O_LIVE },
        { "dump", no_argument, NULL, O_DUMP },
        { "help", no_argument, NULL, O_HELP },
        { "fault-html", required_argument, NULL, O_FAULT + F_HTML },
        { "fault-truncate", required_argument, NULL, O_FAULT + F_TRUNCATE },
        { "fault-bad-prices", required_argument, NULL, O_FAULT + F_BAD_PRICES },
        { "fault-unordered", required_argument, NULL, O_FAULT + F_UNORDERED },
        { NULL, 0, NULL, 0 },
    };
    int64_t port = 0, x;
    const char *port_file = NULL;
    bool dumping = false;
    g.last_day = simsrv_wall_ms() / 86400000 - 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_PORT: ok = simsrv_i64(optarg, &port) && port >= 0 && port < 65536; break;
        case O_PORT_FILE: port_file = optarg; break;
        case O_COINS:
            ok = simsrv_i64(optarg, &x) && x >= 1 && x <= (int64_t)N_COINS;
            g.n_coins = (long)x;
            break;
        case O_LAST: ok = simsrv_day(optarg, &g.last_day) == 0; break;
        case O_LIMIT: ok = simsrv_i64(optarg, &x) && x >= 1 && x <= 4096; g.limit = (long)x; break;
        case O_LIMIT_WIN: ok = simsrv_i64(optarg, &g.limit_window_ms) && g.limit_window_ms >= 1; break;
        case O_KEY: g.demo_key = optarg; break;
        case O_LIVE: g.live_point = true; break;
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
            fprintf(stderr, "coingecko_sim: bad option value %s\n", optarg);
            return 2;
        }
    }
    if (dumping) {
        if (argc - optind != 3) {
            fputs(usage_text, stderr);
            return 2;
        }
        return dump(argv + optind);
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    return simsrv_run("coingecko_sim", (long)port, port_file, handle);
}
