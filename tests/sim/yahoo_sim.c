/* yahoo_sim: a Yahoo Finance chart API simulator (/v8/finance/chart/{symbol}) with its answer shapes, range limits and faults. */
/*
 * GET /v8/finance/chart/{symbol}?period1=&period2=&interval=  (1m 5m 15m 30m 60m 1h 1d)
 *   200 {"chart":{"result":[{"meta":{...,"firstTradeDate":...,"gmtoffset":...},
 *        "timestamp":[...],"indicators":{"quote":[{"high":[...],"low":[...],"close":[...],
 *        "volume":[...],"open":[...]}],"adjclose":[{"adjclose":[...]}]}}],"error":null}}
 *   candles with period1 <= ts < period2; a range without any: no "timestamp" key and
 *   "indicators":{"quote":[{}],"adjclose":[{}]}; some days (and minutes) are whole-candle nulls;
 *   prices are float32 values printed as the shortest double (230.0399932861328, 233.0);
 *   404 "No data found, symbol may be delisted" for an unknown symbol; 422 for 1m ranges over
 *   8 days, 5m-30m older than 60 days, 1h older than 730 days (before the wall clock's now).
 * Candles exist from each symbol's first trade day to the end of --last-day, Monday to
 * Friday but holidays (days since 1970 divisible by 29). --limit N --limit-window-ms W
 * answers 429 "Too Many Requests" over N requests in any W ms.
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

struct sym {
    const char *symbol, *name, *type, *exchange, *full_exchange, *currency, *tz, *tzname;
    int gmtoffset;              /* seconds east of UTC, fixed (no DST here) */
    const char *first_day;      /* first trading day */
    double base;
};
static const struct sym syms[] = {
    { "AAPL", "Apple Inc.", "EQUITY", "NMS", "NasdaqGS", "USD", "EST", "America/New_York",
      -18000, "1980-12-12", 180 },
    { "WSU.DE", "WashTec AG", "EQUITY", "GER", "XETRA", "EUR", "CET", "Europe/Berlin", 3600,
      "1997-05-02", 38 },
    { "^GSPC", "S&P 500", "INDEX", "SNP", "SNP", "USD", "EST", "America/New_York", -18000,
      "1927-12-30", 4500 },
    { "BRK-B", "Berkshire Hathaway Inc.", "EQUITY", "NYQ", "NYSE", "USD", "EST",
      "America/New_York", -18000, "1996-05-09", 350 },
    { "EURUSD=X", "EUR/USD", "CURRENCY", "CCY", "CCY", "USD", "GMT", "Europe/London", 0,
      "2003-12-01", 1.1 },
    { "NEWCO", "Newco Holdings Inc.", "EQUITY", "NMS", "NasdaqGS", "USD", "EST",
      "America/New_York", -18000, "2024-03-15", 25 },
    { "7203.T", "Toyota Motor Corporation", "EQUITY", "JPX", "Tokyo", "JPY", "JST", "Asia/Tokyo",
      32400, "2000-01-04", 2500 },
};
#define N_SYMS (sizeof syms / sizeof *syms)

enum fault { F_HTML, F_TRUNCATE, F_ERROR200, F_BAD_PRICES, F_UNORDERED, F_COUNT };

static struct {
    long n_syms;
    int64_t last_day;
    long limit;
    int64_t limit_window_ms;
    bool trailing;              /* intraday answers end with a point after period2 (the live one) */
    int64_t newco_day;          /* NEWCO's first trading day, when moved (--newco-first-day) */
    long fault_at[F_COUNT];
} g = { .n_syms = N_SYMS, .limit_window_ms = 1000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    long requests, chart, r429, r404, r422, by_sym[N_SYMS];
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

/* The shortest text that reads back as the double of float32 f, with ".0" on
 * whole numbers, as Yahoo prints its prices. */
static void fmt_f32(char *buf, size_t n, float f)
{
    double d = (double)f;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".e"))
        strncat(buf, ".0", n - strlen(buf) - 1);
}

struct iv {
    const char *name;
    int64_t secs;
    int64_t max_span, max_age;  /* 0: none */
};
static const struct iv ivs[] = {
    { "1m", 60, 8 * 86400, 0 }, { "5m", 300, 0, 60 * 86400 }, { "15m", 900, 0, 60 * 86400 },
    { "30m", 1800, 0, 60 * 86400 }, { "60m", 3600, 0, 730 * 86400 },
    { "1h", 3600, 0, 730 * 86400 }, { "1d", 86400, 0, 0 },
};

static const struct iv *iv_find(const char *s)
{
    for (size_t i = 0; s && i < sizeof ivs / sizeof *ivs; i++)
        if (strcmp(ivs[i].name, s) == 0)
            return &ivs[i];
    return NULL;
}

static long sym_find(const char *s)
{
    for (long i = 0; i < g.n_syms; i++)
        if (strcmp(syms[i].symbol, s) == 0)
            return i;
    return -1;
}

static int64_t first_day(long si)
{
    int64_t d = 0;
    if (g.newco_day && strcmp(syms[si].symbol, "NEWCO") == 0)
        return g.newco_day;
    simsrv_day(syms[si].first_day, &d);
    return d;
}

static bool trading_day(int64_t day)
{
    int64_t wd = ((day % 7) + 7 + 3) % 7;     /* 1970-01-01 was a Thursday: 0 = Monday */
    return wd < 5 && day % 29 != 0;
}

struct candle {
    int64_t ts, key;            /* key: the stored time (day candles: the UTC midnight of the date) */
    bool null;
    float o, h, l, c;
    long long v;
};

/* The candles of symbol si and interval iv with period1 <= ts < period2, up to max. */
static size_t candles(long si, const struct iv *iv, int64_t p1, int64_t p2, int64_t last_day,
                      struct candle *out, size_t max)
{
    const struct sym *s = &syms[si];
    int64_t open_sec = strcmp(s->type, "CURRENCY") == 0 ? 0 : 9 * 3600 + 1800;
    int64_t d0 = (p1 + s->gmtoffset) / 86400 - 1, d1 = (p2 + s->gmtoffset) / 86400 + 1;
    if (d0 < first_day(si))
        d0 = first_day(si);
    if (d1 > last_day)
        d1 = last_day;
    size_t n = 0;
    for (int64_t day = d0; day <= d1 && n < max; day++) {
        if (!trading_day(day))
            continue;
        int64_t open = day * 86400 - s->gmtoffset + open_sec;
        int per_day = iv->secs >= 86400 ? 1 : (int)(390 * 60 / iv->secs);
        for (int k = 0; k < per_day && n < max; k++) {
            int64_t ts = open + k * iv->secs;
            if (ts < p1 || ts >= p2)
                continue;
            uint64_t h = mix((uint64_t)si * 7919 + (uint64_t)ts * 31 + (uint64_t)iv->secs);
            struct candle c = { .ts = ts, .key = iv->secs >= 86400 ? day * 86400 : ts };
            c.null = iv->secs >= 86400 ? day % 31 == 7 : (day * 7 + k) % 97 == 5;
            double base = s->base * (1 + 0.2 * sin((double)day / 50.0));
            c.o = (float)(base * (1 + (double)(h % 1000) / 50000.0));
            c.c = (float)(base * (1 + (double)((h >> 10) % 1000) / 50000.0));
            c.h = (float)((c.o > c.c ? c.o : c.c) * (1 + (double)((h >> 20) % 100) / 100000.0));
            c.l = (float)((c.o < c.c ? c.o : c.c) * (1 - (double)((h >> 30) % 100) / 100000.0));
            c.v = (long long)((h >> 40) % 50000000);
            out[n++] = c;
        }
    }
    return n;
}

static enum MHD_Result chart_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *desc)
{
    struct sbuf b = { 0 };
    sbuf_printf(&b, "{\"chart\":{\"result\":null,\"error\":{\"code\":\"%s\",\"description\":\"%s\"}}}",
                code, desc);
    return simsrv_send(c, status, "application/json;charset=utf-8", &b, NULL);
}

static void put_array(struct sbuf *b, const char *key, const struct candle *v, size_t n, int which,
                      long fault)
{
    sbuf_printf(b, "\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_adds(b, ",");
        if (v[i].null) {
            sbuf_adds(b, "null");
            continue;
        }
        if (fault == F_BAD_PRICES && i == 0 && which == 4) {
            sbuf_adds(b, "-1.5");
            continue;
        }
        if (fault == F_BAD_PRICES && i == 1 && which == 0) {
            sbuf_adds(b, "\"abc\"");
            continue;
        }
        if (which == 3) {
            sbuf_printf(b, "%lld", v[i].v);
            continue;
        }
        char t[40];
        float f = which == 0 ? v[i].h : which == 1 ? v[i].l : which == 2 ? v[i].c : v[i].o;
        fmt_f32(t, sizeof t, f);
        sbuf_adds(b, t);
    }
    sbuf_adds(b, "]");
}

static bool rate_admit(void)
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
    }
    else
        st.r429++;
    pthread_mutex_unlock(&lock);
    return ok;
}

static void unescape(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < n; i++) {
        unsigned x;
        if (in[i] == '%' && sscanf(in + i + 1, "%2x", &x) == 1) {
            out[o++] = (char)x;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

static enum MHD_Result chart(struct MHD_Connection *c, const char *raw)
{
    pthread_mutex_lock(&lock);
    long nreq = ++st.chart;
    long fault = simsrv_fault_at(g.fault_at, F_COUNT, nreq);
    int64_t last_day = g.last_day;
    pthread_mutex_unlock(&lock);
    if (!rate_admit()) {
        struct sbuf b = { 0 };
        sbuf_adds(&b, "Too Many Requests\r\n");
        return simsrv_send(c, 429, "text/plain;charset=utf-8", &b, NULL);
    }
    char symbol[64];
    unescape(raw, symbol, sizeof symbol);
    long si = sym_find(symbol);
    if (si < 0) {
        pthread_mutex_lock(&lock);
        st.r404++;
        pthread_mutex_unlock(&lock);
        return chart_error(c, 404, "Not Found", "No data found, symbol may be delisted");
    }
    pthread_mutex_lock(&lock);
    st.by_sym[si]++;
    pthread_mutex_unlock(&lock);
    if (fault == F_HTML) {
        struct sbuf b = { 0 };
        sbuf_adds(&b, "<!doctype html><html><body>Will be right back...</body></html>");
        return simsrv_send(c, 200, "text/html;charset=utf-8", &b, NULL);
    }
    if (fault == F_ERROR200)
        return chart_error(c, 200, "Internal Server Error", "Temporary failure, try later");
    const char *ivs_ = simsrv_arg(c, "interval");
    const struct iv *iv = iv_find(ivs_ ? ivs_ : "1d");
    if (!iv) {
        char d[256];
        snprintf(d, sizeof d, "Invalid input - interval=%.20s is not supported. Valid intervals: "
                 "[1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d, 5d, 1wk, 1mo, 3mo]", ivs_);
        return chart_error(c, 400, "Bad Request", d);
    }
    int64_t p1, p2;
    if (!simsrv_i64(simsrv_arg(c, "period1"), &p1) || !simsrv_i64(simsrv_arg(c, "period2"), &p2) ||
        p2 < p1)
        return chart_error(c, 400, "Bad Request", "Invalid input - period1 and period2 are required");
    char d[300];
    int64_t now = simsrv_wall_ms() / 1000;
    if (iv->max_span && p2 - p1 > iv->max_span) {
        snprintf(d, sizeof d, "%s data not available for startTime=%" PRId64 " and endTime=%"
                 PRId64 ". Only 8 days worth of %s granularity data are allowed to be fetched per "
                 "request.", iv->name, p1, p2, iv->name);
        pthread_mutex_lock(&lock);
        st.r422++;
        pthread_mutex_unlock(&lock);
        return chart_error(c, 422, "Unprocessable Entity", d);
    }
    if (iv->max_age && p1 < now - iv->max_age) {
        snprintf(d, sizeof d, "%s data not available for startTime=%" PRId64 " and endTime=%"
                 PRId64 ". The requested range must be within the last %" PRId64 " days.",
                 iv->name, p1, p2, iv->max_age / 86400);
        pthread_mutex_lock(&lock);
        st.r422++;
        pthread_mutex_unlock(&lock);
        return chart_error(c, 422, "Unprocessable Entity", d);
    }
    size_t max = 20000;
    struct candle *v = malloc((max + 2) * sizeof *v);
    if (!v)
        return MHD_NO;
    size_t n = candles(si, iv, p1, p2, last_day, v, max);
    if (g.trailing && iv->secs < 86400 && n > 0) {
        v[n] = v[n - 1];
        v[n].ts = v[n].key = p2 + 86400 + 3600;
        n++;
    }
    if (fault == F_UNORDERED && n >= 3) {
        for (size_t i = 0; i < n / 2; i++) {
            struct candle x = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = x;
        }
        v[n] = v[n / 2];
        n++;
    }
    const struct sym *s = &syms[si];
    int64_t ftd = first_day(si) * 86400 - s->gmtoffset +
                  (strcmp(s->type, "CURRENCY") == 0 ? 0 : 9 * 3600 + 1800);
    struct sbuf b = { 0 };
    char price[40];
    fmt_f32(price, sizeof price, (float)s->base);
    sbuf_printf(&b, "{\"chart\":{\"result\":[{\"meta\":{\"currency\":\"%s\",\"symbol\":\"%s\","
                "\"exchangeName\":\"%s\",\"fullExchangeName\":\"%s\",\"instrumentType\":\"%s\","
                "\"firstTradeDate\":%" PRId64 ",\"regularMarketTime\":%" PRId64 ","
                "\"hasPrePostMarketData\":true,\"gmtoffset\":%d,\"timezone\":\"%s\","
                "\"exchangeTimezoneName\":\"%s\",\"regularMarketPrice\":%s,"
                "\"longName\":\"%s\",\"shortName\":\"%s\",\"chartPreviousClose\":%s,"
                "\"priceHint\":2,\"dataGranularity\":\"%s\",\"range\":\"\",\"validRanges\":"
                "[\"1d\",\"5d\",\"1mo\",\"3mo\",\"6mo\",\"1y\",\"2y\",\"5y\",\"10y\",\"ytd\",\"max\"]}",
                s->currency, s->symbol, s->exchange, s->full_exchange, s->type, ftd, now,
                s->gmtoffset, s->tz, s->tzname, price, s->name, s->name, price, iv->name);
    if (n == 0) {
        sbuf_adds(&b, ",\"indicators\":{\"quote\":[{}],\"adjclose\":[{}]}}],\"error\":null}}");
    } else {
        sbuf_adds(&b, ",\"timestamp\":[");
        for (size_t i = 0; i < n; i++)
            sbuf_printf(&b, "%s%" PRId64, i ? "," : "", v[i].ts);
        sbuf_adds(&b, "],\"indicators\":{\"quote\":[{");
        put_array(&b, "high", v, n, 0, fault);
        sbuf_adds(&b, ",");
        put_array(&b, "low", v, n, 1, fault);
        sbuf_adds(&b, ",");
        put_array(&b, "close", v, n, 2, fault);
        sbuf_adds(&b, ",");
        put_array(&b, "volume", v, n, 3, fault);
        sbuf_adds(&b, ",");
        put_array(&b, "open", v, n, 4, fault);
        sbuf_adds(&b, "}]");
        if (iv->secs >= 86400) {
            sbuf_adds(&b, ",\"adjclose\":[{");
            put_array(&b, "adjclose", v, n, 2, -1);
            sbuf_adds(&b, "}]");
        }
        sbuf_adds(&b, "}}],\"error\":null}}");
    }
    free(v);
    if (fault == F_TRUNCATE)
        b.len = b.len / 2, b.p[b.len] = '\0';
    return simsrv_send(c, 200, "application/json;charset=utf-8", &b, NULL);
}

static enum MHD_Result sim_endpoint(struct MHD_Connection *c, const char *what)
{
    struct sbuf b = { 0 };
    if (strcmp(what, "stats") == 0) {
        pthread_mutex_lock(&lock);
        sbuf_printf(&b, "{\"requests\":%ld,\"chart_requests\":%ld,\"responses_429\":%ld,"
                    "\"responses_404\":%ld,\"responses_422\":%ld,\"admitted\":%ld,"
                    "\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64 ",\"limit\":%ld,"
                    "\"window_ms\":%" PRId64 ",\"by_symbol\":{", st.requests, st.chart,
                    st.r429, st.r404, st.r422, st.admitted, st.first_ms, st.last_ms, g.limit,
                    g.limit_window_ms);
        for (long i = 0; i < g.n_syms; i++)
            sbuf_printf(&b, "%s\"%s\":%ld", i ? "," : "", syms[i].symbol, st.by_sym[i]);
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
    if (strcmp(method, "GET") == 0 && strncmp(url, "/v8/finance/chart/", 18) == 0 &&
        url[18] && !strchr(url + 18, '/'))
        return chart(c, url + 18);
    struct sbuf b = { 0 };
    sbuf_adds(&b, "<html><body>404 Not Found</body></html>");
    return simsrv_send(c, 404, "text/html", &b, NULL);
}

/* --dump SYMBOL INTERVAL FROM TO: symbol,interval,key,open,high,low,close,volume for each
 * candle (not null) whose key lies in [FROM 00:00, TO + 1 00:00) UTC. */
static int dump(char **argv)
{
    long si = sym_find(argv[0]);
    const struct iv *iv = iv_find(argv[1]);
    int64_t from, to;
    if (si < 0 || !iv || simsrv_day(argv[2], &from) < 0 || simsrv_day(argv[3], &to) < 0) {
        fputs("yahoo_sim: --dump SYMBOL INTERVAL FROM TO\n", stderr);
        return 2;
    }
    size_t max = 2000000;
    struct candle *v = malloc(max * sizeof *v);
    if (!v)
        return 1;
    size_t n = candles(si, iv, from * 86400 - 2 * 86400, (to + 3) * 86400, g.last_day, v, max);
    for (size_t i = 0; i < n; i++) {
        if (v[i].null || v[i].key < from * 86400 || v[i].key >= (to + 1) * 86400)
            continue;
        char o[40], h[40], l[40], c[40];
        fmt_f32(o, sizeof o, v[i].o);
        fmt_f32(h, sizeof h, v[i].h);
        fmt_f32(l, sizeof l, v[i].l);
        fmt_f32(c, sizeof c, v[i].c);
        printf("%s,%s,%" PRId64 ",%s,%s,%s,%s,%lld\n", argv[0], iv->name, v[i].key, o, h, l, c,
               v[i].v);
    }
    free(v);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char usage_text[] =
    "usage: yahoo_sim [--port N] [--port-file F] [--symbols N] [--last-day YYYY-MM-DD]\n"
    "                 [--limit N --limit-window-ms W] [--trailing-point]\n"
    "                 [--newco-first-day YYYY-MM-DD]\n"
    "                 [--fault-KIND N]   KIND: html truncate error200 bad-prices unordered\n"
    "       yahoo_sim [options] --dump SYMBOL INTERVAL FROM TO\n";

int main(int argc, char **argv)
{
    enum { O_PORT = 256, O_PORT_FILE, O_SYMBOLS, O_LAST, O_LIMIT, O_LIMIT_WIN, O_TRAILING, O_NEWCO, O_DUMP,
           O_HELP, O_FAULT };
    static const struct option opts[] = {
        { "port", required_argument, NULL, O_PORT },
        { "port-file", required_argument, NULL, O_PORT_FILE },
        { "symbols", required_argument, NULL, O_SYMBOLS },
        { "last-day", required_argument, NULL, O_LAST },
        { "limit", required_argument, NULL, O_LIMIT },
        { "limit-window-ms", required_argument, NULL, O_LIMIT_WIN },
        { "trailing-point", no_argument, NULL, O_TRAILING },
        { "newco-first-day", required_argument, NULL, O_NEWCO },
        { "dump", no_argument, NULL, O_DUMP },
        { "help", no_argument, NULL, O_HELP },
        { "fault-html", required_argument, NULL, O_FAULT + F_HTML },
        { "fault-truncate", required_argument, NULL, O_FAULT + F_TRUNCATE },
        { "fault-error200", required_argument, NULL, O_FAULT + F_ERROR200 },
        { "fault-bad-prices", required_argument, NULL, O_FAULT + F_BAD_PRICES },
        { "fault-unordered", required_argument, NULL, O_FAULT + F_UNORDERED },
        { NULL, 0, NULL, 0 },
    };
    int64_t port = 0, x;
    const char *port_file = NULL;
    bool dumping = false;
    simsrv_day("2024-06-28", &g.last_day);
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_PORT: ok = simsrv_i64(optarg, &port) && port >= 0 && port < 65536; break;
        case O_PORT_FILE: port_file = optarg; break;
        case O_SYMBOLS:
            ok = simsrv_i64(optarg, &x) && x >= 1 && x <= (int64_t)N_SYMS;
            g.n_syms = (long)x;
            break;
        case O_LAST: ok = simsrv_day(optarg, &g.last_day) == 0; break;
        case O_LIMIT: ok = simsrv_i64(optarg, &x) && x >= 1 && x <= 4096; g.limit = (long)x; break;
        case O_LIMIT_WIN: ok = simsrv_i64(optarg, &g.limit_window_ms) && g.limit_window_ms >= 1; break;
        case O_TRAILING: g.trailing = true; break;
        case O_NEWCO: ok = simsrv_day(optarg, &g.newco_day) == 0; break;
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
            fprintf(stderr, "yahoo_sim: bad option value %s\n", optarg);
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
    return simsrv_run("yahoo_sim", (long)port, port_file, handle);
}
