/* kite_sim: a Kite Connect v3 broker simulator (instrument dump, historical candles) for tests */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "candles.h"
#include "instruments.h"
#include "sbuf.h"

/* The usage block: `kite_sim --help` prints exactly this text. */
static const char usage_text[] =
"usage: kite_sim [options]                 serve the simulated Kite Connect v3 API\n"
"       kite_sim [options] --dump-candles TOKEN INTERVAL FROM TO\n"
"\n"
"Speaks Kite's wire format so sources.kite.base_url can point here or at the real API.\n"
"Listens on 127.0.0.1 only. Once ready it writes the port to --port-file (atomically) and\n"
"prints `kite_sim listening on http://127.0.0.1:PORT` to stdout. SIGTERM/SIGINT stop it\n"
"cleanly (exit 0). Diagnostics go to stderr.\n"
"\n"
"server options:\n"
"  --port N              TCP port, 0 = any free port (default 0)\n"
"  --port-file F         write the chosen port (decimal + newline) to F\n"
"  --instruments N       instruments in the master (default 50)\n"
"  --exchange EX         their exchange and segment (default NSE)\n"
"  --history-start D     first day with candles, YYYY-MM-DD (default 1995-01-02)\n"
"  --seed S              seeds names, prices and faults (default 1)\n"
"  --api-key K           expected api_key (default sim_key)\n"
"  --access-token T      expected access_token (default sim_token)\n"
"  --rate R              historical requests/s admitted, 0 = unlimited (default 3)\n"
"  --burst B             token bucket depth (default 1 = strictly evenly spaced)\n"
"  --no-retry-after      429 answers carry no Retry-After header\n"
"  --object-candles      candles as objects {\"date\",\"open\",...} instead of arrays\n"
"  --hostile-candles     every candle answer newest-first, with a second copy of its newest\n"
"                        candle and one more candle dated 2099-01-01 (outside the request)\n"
"  --hostile-names       names/symbols with quotes, commas, backslashes, newlines,\n"
"                        unicode and SQL (x'); DROP TABLE instruments; --)\n"
"  --cache-answers MB    reuse fault-free candle answers, up to MB MiB (0 = off, default), so\n"
"                        benchmarks time the client, not candle generation; kept on reset\n"
"  --verbose             log every request to stderr\n"
"  --help                this text\n"
"\n"
"fault options (P = probability 0..1 per admitted historical request, drawn independently\n"
"from --seed and the request's sequence number since start/reset):\n"
"  --fault-5xx P         500 GeneralException, alternating with 502/503/504 NetworkException\n"
"  --fault-slow P        sleep --slow-ms MS (default 2000) before answering\n"
"  --fault-truncate P    200, body is a valid prefix of the JSON, then Connection: close\n"
"  --fault-malformed P   one candle malformed: close missing, string price, null candle or\n"
"                        null price\n"
"  --fault-reset P       connection dropped mid-body (fewer bytes than Content-Length)\n"
"  --fault-wrong-type P  200 with Content-Type text/html and an HTML body\n"
"  --fault-wrong-shape P valid JSON of the wrong shape ({\"candles\":{\"a\":1}}, ...)\n"
"  --fault-bad-prices P  one candle with a negative or zero price, high < low, or \"NaN\"\n"
"  --fault-endless P     200 chunked body that never ends until the client hangs up\n"
"  --fault-429-storm N   answer the next N historical requests 429 regardless of the bucket\n"
"  When several draw true for one request, one body fault wins in this order: 5xx,\n"
"  wrong-type, wrong-shape, endless, reset, truncate; malformed and bad-prices edit the\n"
"  candles of whatever candle body remains; slow combines with all. Only applied faults\n"
"  are counted.\n"
"\n"
"endpoints (Kite's need `Authorization: token KEY:TOKEN`, else 403 TokenException;\n"
"a missing `X-Kite-Version: 3` is logged, not refused):\n"
"  GET /instruments, /instruments/EX     CSV, CRLF line ends, RFC 4180 quoting, text/csv;\n"
"                                        another exchange gets the header only\n"
"  GET /instruments/historical/TOKEN/INTERVAL?from=..&to=..[&oi=1][&continuous=0]\n"
"      from/to: YYYY-MM-DD[( |+|T)HH:MM[:SS]] in IST (a bare date is 00:00:00).\n"
"      Order of checks: auth (403), token/interval/dates/range (400 InputException:\n"
"      invalid token, invalid interval, invalid from date, invalid to date,\n"
"      from date after to date, interval exceeds max limit: N days with\n"
"      N = minute 60, 3/5/10minute 100, 15/30minute 200, 60minute 400, day 2000 counted\n"
"      as to_date - from_date), 429 storm, rate limit (429 NetworkException \"Too many\n"
"      requests\", Retry-After: 1), faults, then 200\n"
"      {\"status\":\"success\",\"data\":{\"candles\":[[\"2017-12-15T09:15:00+0530\",o,h,l,c,v(,oi)]]}}\n"
"      Bars: Mon-Fri from --history-start, no end limit; day bars at T00:00:00+0530,\n"
"      intraday bars from 09:15 (aligned there) while start <= 15:29; only bars whose\n"
"      start lies in [from, to]. Each bar is a pure function of (seed, token, interval,\n"
"      timestamp). Prices on a 0.05 tick, shortest decimal (1705, 1699.25).\n"
"  GET /__sim/stats      JSON (no auth; /__sim/* requests are not counted):\n"
"      requests, historical_requests, instrument_requests: requests to Kite endpoints\n"
"      by_status {\"200\": n, ...}: Kite endpoint answers by HTTP status\n"
"      candles_served: candles in complete 200 candle bodies (malformed/bad-price ones\n"
"        included; truncated, reset and endless ones not)\n"
"      peak_rps: most historical requests admitted by the rate limiter (passed auth,\n"
"        validation and the bucket) within any sliding 1 s window (t-1s, t]; without\n"
"        faults these are exactly the 200s\n"
"      first_ts, last_ts: CLOCK_MONOTONIC seconds of the first/last historical request\n"
"        (null before any)\n"
"      requests_by_token {\"<token>\": n}: historical requests by numeric token\n"
"      faults_injected {\"5xx\",\"slow\",\"truncate\",\"malformed\",\"reset\",\"wrong_type\",\n"
"        \"wrong_shape\",\"bad_prices\",\"endless\",\"429_storm\"}\n"
"      missing_kite_version: Kite requests without X-Kite-Version: 3\n"
"  GET|POST /__sim/reset zero the stats, the fault sequence, the rate bucket and the\n"
"                        peak window (not the --cache-answers cache)\n"
"  POST /__sim/hook      records the body (a webhook receiver, up to 1 MiB a body)\n"
"  GET /__sim/hooks      the bodies received, oldest first: [{content_type, body}], body\n"
"                        parsed when it is JSON\n"
"  GET /__sim/config?KEY=VALUE&...  change settings at run time and print them all:\n"
"      rate, burst, retry_after (0|1), slow_ms, object_candles (0|1), hostile_candles (0|1),\n"
"      fault_5xx, fault_slow, fault_truncate, fault_malformed, fault_reset, fault_wrong_type,\n"
"      fault_wrong_shape, fault_bad_prices, fault_endless, fault_429_storm (count),\n"
"      reject_from (YYYY-MM-DD: a historical request whose range reaches that day gets\n"
"      400 InputException, as for an instrument with no data there; empty: off).\n"
"      All keys are checked before any applies (400 on a bad one). Setting rate or\n"
"      burst empties the bucket.\n"
"\n"
"--dump-candles TOKEN INTERVAL FROM TO\n"
"  prints to stdout, with LF line ends, the header `token,interval,ts_utc_iso,open,high,\n"
"  low,close,volume,oi` and one row per bar the server would serve for that request\n"
"  (same --seed, --history-start, --instruments and --exchange), ts like\n"
"  2017-12-15T03:45:00Z, prices shortest decimal, oi always. The max-days limit is not\n"
"  applied. Exits 0, or 2 on a bad argument.\n";

/* ---- settings ---- */

enum fault { F_5XX, F_SLOW, F_TRUNCATE, F_MALFORMED, F_RESET, F_WRONG_TYPE, F_WRONG_SHAPE,
             F_BAD_PRICES, F_ENDLESS, F_COUNT, F_STORM = F_COUNT };
static const char *const fault_names[F_COUNT + 1] = {
    "5xx", "slow", "truncate", "malformed", "reset", "wrong_type", "wrong_shape",
    "bad_prices", "endless", "429_storm",
};

struct config {
    char api_key[128], access_token[128];
    double rate;            /* historical requests per second; 0 = unlimited */
    long burst;             /* >= 1 */
    bool retry_after;
    long slow_ms;
    bool object_candles;
    bool hostile_candles;   /* newest-first, a duplicate and a far-future candle */
    double p[F_COUNT];      /* fault probabilities */
    int64_t reject_from;    /* 0, or IST local seconds: later ranges get 400 */
};

/* Read-only once the server starts. */
static struct instruments g_inst;
static uint64_t g_seed = 1;
static int64_t g_first_day;
static bool g_verbose;

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config g_cfg;     /* guarded by cfg_lock */
static long long g_storm;       /* 429-storm answers left; guarded by cfg_lock */

/* ---- stats ---- */

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {                 /* every field guarded by stats_lock */
    unsigned long long requests, historical, instrument, candles, missing_version;
    unsigned long long by_status[600];
    unsigned long long faults[F_COUNT + 1];
    unsigned long long seq;     /* historical requests since start/reset: fault draw index */
    unsigned long long n5xx;    /* 5xx faults so far: picks 500 or 502/503/504 */
    double first_ts, last_ts;
    bool have_ts;
    json_t *by_token;           /* {"<token>": n} */
} g_stats;

/* Rate limiter: GCRA (a token bucket measured at arrival) plus the peak-rate window. */
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {                 /* every field guarded by rl_lock */
    int64_t tat;                /* theoretical arrival time of the next request, ns */
    int64_t *ring;              /* admission times within the last second, oldest first */
    size_t cap, head, count;
    size_t peak;
} g_rl;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kite_sim: %s\n", line);
}

static void config_snapshot(struct config *out)
{
    pthread_mutex_lock(&cfg_lock);
    *out = g_cfg;
    pthread_mutex_unlock(&cfg_lock);
}

/* Returns true when the request is admitted; records it in the peak window then. */
static bool limiter_admit(double rate, long burst)
{
    pthread_mutex_lock(&rl_lock);
    int64_t now = now_ns();
    bool ok = true;
    if (rate > 0) {
        int64_t t = (int64_t)(1e9 / rate + 0.5);
        int64_t tau = (int64_t)(burst - 1) * t;
        if (now < g_rl.tat - tau)
            ok = false;
        else
            g_rl.tat = (g_rl.tat > now ? g_rl.tat : now) + t;
    }
    if (ok) {
        while (g_rl.count && g_rl.ring[g_rl.head] <= now - 1000000000) {
            g_rl.head = (g_rl.head + 1) % g_rl.cap;
            g_rl.count--;
        }
        if (g_rl.count == g_rl.cap) {
            size_t cap = g_rl.cap ? g_rl.cap * 2 : 64;
            int64_t *ring = malloc(cap * sizeof *ring);
            if (!ring)
                abort();
            for (size_t i = 0; i < g_rl.count; i++)
                ring[i] = g_rl.ring[(g_rl.head + i) % g_rl.cap];
            free(g_rl.ring);
            g_rl.ring = ring;
            g_rl.cap = cap;
            g_rl.head = 0;
        }
        g_rl.ring[(g_rl.head + g_rl.count) % g_rl.cap] = now;
        g_rl.count++;
        if (g_rl.count > g_rl.peak)
            g_rl.peak = g_rl.count;
    }
    pthread_mutex_unlock(&rl_lock);
    return ok;
}

static void limiter_reset(bool window_too)
{
    pthread_mutex_lock(&rl_lock);
    g_rl.tat = 0;
    if (window_too) {
        g_rl.count = g_rl.head = 0;
        g_rl.peak = 0;
    }
    pthread_mutex_unlock(&rl_lock);
}

/* ---- responses ---- */

static void json_str(struct sbuf *b, const char *s)
{
    sbuf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = { '\\', (char)*p };
            sbuf_add(b, e, 2);
        } else if (*p < 0x20) {
            sbuf_printf(b, "\\u%04x", *p);
        } else {
            sbuf_add(b, (const char *)p, 1);
        }
    }
    sbuf_add(b, "\"", 1);
}

/* Queues a malloc'ed body (taken) with a status and content type. */
static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 struct sbuf *body, const char *hdr, const char *hval)
{
    size_t len;
    char *p = sbuf_take(body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hdr)
        MHD_add_response_header(r, hdr, hval);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *msg, const char *hdr, const char *hval)
{
    struct sbuf b = { 0 };
    sbuf_adds(&b, "{\"status\":\"error\",\"message\":");
    json_str(&b, msg);
    sbuf_adds(&b, ",\"error_type\":");
    json_str(&b, type);
    sbuf_adds(&b, ",\"data\":null}");
    return send_body(c, status, "application/json", &b, hdr, hval);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    if (!s)
        return MHD_NO;
    struct sbuf b = { 0 };
    sbuf_adds(&b, s);
    free(s);
    return send_body(c, status, "application/json", &b, NULL, NULL);
}

/* A body served through a callback: cut short (reset) or repeated forever (endless). */
struct stream {
    char *p;
    size_t len;
    size_t cut;         /* reset: bytes sent before the error; endless: length of the head */
};

static ssize_t reset_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    if (pos >= s->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = s->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, s->p + pos, n);
    return (ssize_t)n;
}

static ssize_t endless_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    /* p = head + unit; after the head the unit repeats forever. */
    struct stream *s = cls;
    size_t unit = s->len - s->cut, n = 0;
    while (n < max) {
        uint64_t at = pos + n;
        size_t off = at < s->cut ? (size_t)at : s->cut + (size_t)((at - s->cut) % unit);
        size_t k = s->len - off;
        if (at < s->cut && k > s->cut - (size_t)at)
            k = s->cut - (size_t)at;
        if (k > max - n)
            k = max - n;
        memcpy(buf + n, s->p + off, k);
        n += k;
    }
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    free(s->p);
    free(s);
}

static enum MHD_Result send_stream(struct MHD_Connection *c, struct sbuf *body, bool endless,
                                   size_t cut)
{
    struct stream *s = malloc(sizeof *s);
    if (!s)
        abort();
    s->p = sbuf_take(body, &s->len);
    s->cut = cut;
    struct MHD_Response *r = MHD_create_response_from_callback(
        endless ? MHD_SIZE_UNKNOWN : s->len, 16384, endless ? endless_reader : reset_reader, s,
        stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- candles on the wire ---- */

enum { MAL_MISSING, MAL_STRING, MAL_NULL_CANDLE, MAL_NULL_PRICE, MAL_KINDS };
enum { BAD_NEGATIVE, BAD_ZERO, BAD_HIGH_LOW, BAD_NAN, BAD_KINDS };

/* Writes one candle; mal/bad = -1 for a clean one. */
static void write_candle(struct sbuf *b, const struct candle *cd, bool oi, bool objects, int mal,
                         int bad)
{
    static const char *const keys[] = { "\"date\":", "\"open\":", "\"high\":", "\"low\":",
                                        "\"close\":", "\"volume\":", "\"oi\":" };
    if (mal == MAL_NULL_CANDLE) {
        sbuf_adds(b, "null");
        return;
    }
    char f[7][40];
    f[0][0] = '"';
    candles_fmt_ts_ist(f[0] + 1, cd->ts);
    strcat(f[0], "\"");
    int64_t o = cd->open, h = cd->high, l = cd->low, cl = cd->close;
    if (bad == BAD_NEGATIVE)
        l = -l;
    else if (bad == BAD_ZERO)
        o = 0;
    else if (bad == BAD_HIGH_LOW) {
        int64_t t = h;
        h = l;
        l = t == h ? t + 1 : t;
    }
    candles_fmt_price(f[1], o);
    candles_fmt_price(f[2], h);
    candles_fmt_price(f[3], l);
    candles_fmt_price(f[4], cl);
    if (bad == BAD_NAN)
        strcpy(f[4], "\"NaN\"");
    candles_fmt_int(f[5], cd->volume);
    candles_fmt_int(f[6], cd->oi);
    if (mal == MAL_STRING) {
        char q[40];
        snprintf(q, sizeof q, "\"%s\"", f[1]);
        strcpy(f[1], q);
    } else if (mal == MAL_NULL_PRICE)
        strcpy(f[4], "null");
    /* The row is assembled on the stack and appended once: keys (objects) and fields. */
    char row[7 * (10 + 40) + 2], *p = row;
    *p++ = objects ? '{' : '[';
    for (int i = 0; i < (oi ? 7 : 6); i++) {
        if (i == 4 && mal == MAL_MISSING)
            continue;
        if (p > row + 1)
            *p++ = ',';
        if (objects)
            p = stpcpy(p, keys[i]);
        p = stpcpy(p, f[i]);
    }
    *p++ = objects ? '}' : ']';
    sbuf_add(b, row, (size_t)(p - row));
}

static void write_candles(struct sbuf *b, const struct candle *v, size_t n, bool oi,
                          bool objects, size_t mal_at, int mal, size_t bad_at, int bad,
                          bool hostile)
{
    sbuf_adds(b, "{\"status\":\"success\",\"data\":{\"candles\":[");
    for (size_t k = 0; k < n; k++) {
        size_t i = hostile ? n - 1 - k : k;
        if (k)
            sbuf_add(b, ",", 1);
        write_candle(b, &v[i], oi, objects, i == mal_at ? mal : -1, i == bad_at ? bad : -1);
    }
    if (hostile && n) {
        struct candle future = v[n - 1];
        future.ts = 4070889000;                 /* 2099-01-01T00:00:00+0530 */
        sbuf_add(b, ",", 1);
        write_candle(b, &v[n - 1], oi, objects, -1, -1);
        sbuf_add(b, ",", 1);
        write_candle(b, &future, oi, objects, -1, -1);
    }
    sbuf_adds(b, "]}}");
}

/* ---- answer cache (--cache-answers) ---- */

/* Everything a fault-free candle body's bytes depend on besides the read-only globals
 * (seed, history start, instruments); `continuous` is not read, so it changes nothing. */
struct ans_key {
    int64_t token, from, to;
    const struct sim_interval *iv;
    bool oi, objects, hostile;
};

/* A cached 200 body: immutable once inserted, never freed. */
struct answer {
    struct ans_key k;
    size_t n;                   /* candles in it, for candles_served */
    size_t len;
    char *body;
};

static size_t g_cache_max;      /* bytes; 0 = off; read-only once the server starts */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct {                 /* every field guarded by cache_lock */
    struct answer **slot;       /* open addressing, linear probing; cap a power of two */
    size_t cap, count;
    size_t bytes;               /* bodies plus their entries, held to g_cache_max */
} g_cache;

/* The slot holding k, or the empty slot where it belongs (cap > 0, never full). */
static struct answer **cache_slot(struct answer **slot, size_t cap, const struct ans_key *k)
{
    uint64_t flags = (uint64_t)k->oi | (uint64_t)k->objects << 1 | (uint64_t)k->hostile << 2;
    uint64_t h = candles_hash((uint64_t)k->token, (uint64_t)k->from, (uint64_t)k->to,
                              (uint64_t)(uintptr_t)k->iv << 3 | flags);
    for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        const struct ans_key *e = slot[i] ? &slot[i]->k : NULL;
        if (!e || (e->token == k->token && e->from == k->from && e->to == k->to &&
                   e->iv == k->iv && e->oi == k->oi && e->objects == k->objects &&
                   e->hostile == k->hostile))
            return &slot[i];
    }
}

/* The cached answer for k, or NULL. */
static const struct answer *cache_get(const struct ans_key *k)
{
    pthread_rwlock_rdlock(&cache_lock);
    const struct answer *a = g_cache.cap ? *cache_slot(g_cache.slot, g_cache.cap, k) : NULL;
    pthread_rwlock_unlock(&cache_lock);
    return a;
}

/* Caches the body in *b under k, taking it, unless k is there already or the cache would
 * outgrow --cache-answers; returns the new entry, or NULL (b untouched). */
static const struct answer *cache_put(const struct ans_key *k, size_t n, struct sbuf *b)
{
    struct answer *a = NULL;
    pthread_rwlock_wrlock(&cache_lock);
    size_t cost = b->len + sizeof *a;
    if (g_cache.bytes + cost > g_cache_max)
        goto out;
    if ((g_cache.count + 1) * 2 > g_cache.cap) {
        size_t cap = g_cache.cap ? g_cache.cap * 2 : 1024;
        struct answer **slot = calloc(cap, sizeof *slot);
        if (!slot)
            abort();
        for (size_t i = 0; i < g_cache.cap; i++)
            if (g_cache.slot[i])
                *cache_slot(slot, cap, &g_cache.slot[i]->k) = g_cache.slot[i];
        free(g_cache.slot);
        g_cache.slot = slot;
        g_cache.cap = cap;
    }
    struct answer **s = cache_slot(g_cache.slot, g_cache.cap, k);
    if (*s)
        goto out;
    if (!(a = malloc(sizeof *a)))
        abort();
    a->k = *k;
    a->n = n;
    a->body = sbuf_take(b, &a->len);
    *s = a;
    g_cache.count++;
    g_cache.bytes += cost;
out:
    pthread_rwlock_unlock(&cache_lock);
    return a;
}

/* Sends a cached answer straight from the cache (no copy) and counts its candles. */
static enum MHD_Result send_answer(struct MHD_Connection *c, const struct answer *a)
{
    pthread_mutex_lock(&stats_lock);
    g_stats.candles += a->n;
    pthread_mutex_unlock(&stats_lock);
    struct MHD_Response *r = MHD_create_response_from_buffer(a->len, a->body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- historical ---- */

struct hist_req {
    const struct instrument *inst;
    const struct sim_interval *iv;
    int64_t from, to;           /* IST local seconds */
    bool oi;
};

/* Validates a historical request; on failure stores Kite's message in *msg. */
static int hist_parse(struct MHD_Connection *c, const char *tok_s, const char *iv_s,
                      struct hist_req *r, const char **msg, char *buf, size_t buflen)
{
    char *end;
    errno = 0;
    long long tok = strtoll(tok_s, &end, 10);
    if (!*tok_s || *end || errno || !(r->inst = instruments_find(&g_inst, tok))) {
        *msg = "invalid token";
        return -1;
    }
    if (!(r->iv = candles_interval(iv_s))) {
        *msg = "invalid interval";
        return -1;
    }
    const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
    if (!from || candles_parse_time(from, &r->from) < 0) {
        *msg = "invalid from date";
        return -1;
    }
    if (!to || candles_parse_time(to, &r->to) < 0) {
        *msg = "invalid to date";
        return -1;
    }
    if (r->from > r->to) {
        *msg = "from date after to date";
        return -1;
    }
    int64_t days = r->to / 86400 - r->from / 86400;
    if (days > r->iv->max_days) {
        snprintf(buf, buflen, "interval exceeds max limit: %d days", r->iv->max_days);
        *msg = buf;
        return -1;
    }
    const char *oi = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "oi");
    r->oi = oi && strcmp(oi, "1") == 0;
    return 0;
}

static bool draw(unsigned long long seq, enum fault f, double p)
{
    return p > 0 && candles_unit(g_seed, seq, 0xfa17, (uint64_t)f) < p;
}

static void count_fault(enum fault f)
{
    pthread_mutex_lock(&stats_lock);
    g_stats.faults[f]++;
    pthread_mutex_unlock(&stats_lock);
}

static enum MHD_Result historical(struct MHD_Connection *c, const char *tok_s, const char *iv_s,
                                  const struct config *cfg, unsigned long long seq,
                                  unsigned *status)
{
    struct hist_req r;
    const char *msg;
    char msgbuf[64];
    if (hist_parse(c, tok_s, iv_s, &r, &msg, msgbuf, sizeof msgbuf) < 0) {
        *status = 400;
        return send_error(c, 400, "InputException", msg, NULL, NULL);
    }
    if (cfg->reject_from && r.to >= cfg->reject_from) {
        *status = 400;
        return send_error(c, 400, "InputException", "invalid to date", NULL, NULL);
    }
    bool storm = false;
    pthread_mutex_lock(&cfg_lock);
    if (g_storm > 0) {
        g_storm--;
        storm = true;
    }
    pthread_mutex_unlock(&cfg_lock);
    if (storm)
        count_fault(F_STORM);
    if (storm || !limiter_admit(cfg->rate, cfg->burst)) {
        *status = 429;
        return send_error(c, 429, "NetworkException", "Too many requests",
                          cfg->retry_after ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
    }
    bool hit[F_COUNT], clean = true;
    for (int f = 0; f < F_COUNT; f++) {
        hit[f] = draw(seq, (enum fault)f, cfg->p[f]);
        clean = clean && !hit[f];
    }
    /* Only fault-free answers are cached and served from the cache. */
    struct ans_key key = { r.inst->token, r.from, r.to, r.iv, r.oi, cfg->object_candles,
                           cfg->hostile_candles };
    bool cacheable = g_cache_max && clean;
    const struct answer *a = cacheable ? cache_get(&key) : NULL;
    if (a) {
        *status = 200;
        return send_answer(c, a);
    }
    if (hit[F_SLOW]) {
        count_fault(F_SLOW);
        struct timespec ts = { cfg->slow_ms / 1000, (cfg->slow_ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    struct sbuf b = { 0 };
    uint64_t h = candles_hash(g_seed, seq, 0xb0d1, 0);
    if (hit[F_5XX]) {
        static const unsigned codes[] = { 502, 503, 504 };
        static const char *const msgs[] = { "Bad gateway", "Service unavailable",
                                            "Gateway timed out" };
        pthread_mutex_lock(&stats_lock);
        unsigned long long k = g_stats.n5xx++;
        g_stats.faults[F_5XX]++;
        pthread_mutex_unlock(&stats_lock);
        if (k % 2 == 0) {
            *status = 500;
            return send_error(c, 500, "GeneralException",
                              "Something went wrong, please try again later", NULL, NULL);
        }
        *status = codes[(k / 2) % 3];
        return send_error(c, *status, "NetworkException", msgs[(k / 2) % 3], NULL, NULL);
    }
    *status = 200;
    if (hit[F_WRONG_TYPE]) {
        count_fault(F_WRONG_TYPE);
        sbuf_adds(&b, "<html>\r\n<head><title>Kite Connect</title></head>\r\n<body>\r\n"
                      "<h1>We'll be back shortly</h1>\r\n</body>\r\n</html>\r\n");
        return send_body(c, 200, "text/html; charset=utf-8", &b, NULL, NULL);
    }
    if (hit[F_WRONG_SHAPE]) {
        static const char *const shapes[] = {
            "{\"status\":\"success\",\"data\":{\"candles\":{\"a\":1}}}",
            "{\"status\":\"success\",\"data\":{}}",
            "{\"status\":\"success\",\"data\":{\"candles\":[1,2,3]}}",
            "{\"status\":\"success\",\"data\":null}",
            "{\"status\":\"success\",\"data\":{\"candles\":\"none\"}}",
            "[]",
        };
        count_fault(F_WRONG_SHAPE);
        sbuf_adds(&b, shapes[h % 6]);
        return send_body(c, 200, "application/json", &b, NULL, NULL);
    }
    size_t n;
    struct candle *v = candles_generate(g_seed, r.inst->token, r.iv, g_first_day, r.from, r.to, &n);
    if (hit[F_ENDLESS]) {
        count_fault(F_ENDLESS);
        sbuf_adds(&b, "{\"status\":\"success\",\"data\":{\"candles\":[");
        size_t head = b.len;
        struct candle one = { .ts = 1513309500, .open = 34090, .high = 34100, .low = 33985,
                              .close = 34056, .volume = 2499, .oi = 0 };
        write_candle(&b, n ? &v[0] : &one, r.oi, cfg->object_candles, -1, -1);
        sbuf_add(&b, ",", 1);
        free(v);
        return send_stream(c, &b, true, head);
    }
    size_t mal_at = SIZE_MAX, bad_at = SIZE_MAX;
    int mal = -1, bad = -1;
    if (hit[F_MALFORMED] && n) {
        count_fault(F_MALFORMED);
        mal_at = (size_t)((h >> 8) % n);
        mal = (int)((h >> 40) % MAL_KINDS);
    }
    if (hit[F_BAD_PRICES] && n) {
        count_fault(F_BAD_PRICES);
        bad_at = (size_t)((h >> 16) % n);
        bad = (int)((h >> 48) % BAD_KINDS);
    }
    write_candles(&b, v, n, r.oi, cfg->object_candles, mal_at, mal, bad_at, bad,
                  cfg->hostile_candles);
    free(v);
    if (hit[F_RESET]) {
        count_fault(F_RESET);
        return send_stream(c, &b, false, b.len / 2 ? b.len / 2 : 1);
    }
    if (hit[F_TRUNCATE]) {
        count_fault(F_TRUNCATE);
        b.len = b.len / 2 ? b.len / 2 : 1;
        b.p[b.len] = '\0';
        return send_body(c, 200, "application/json", &b, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (cacheable && (a = cache_put(&key, n, &b)))
        return send_answer(c, a);
    pthread_mutex_lock(&stats_lock);
    g_stats.candles += n;
    pthread_mutex_unlock(&stats_lock);
    return send_body(c, 200, "application/json", &b, NULL, NULL);
}

/* ---- the /__sim/ endpoints ---- */

static json_t *config_json(void)
{
    struct config cfg;
    pthread_mutex_lock(&cfg_lock);
    cfg = g_cfg;
    long long storm = g_storm;
    pthread_mutex_unlock(&cfg_lock);
    json_t *o = json_pack("{s:f, s:i, s:b, s:i, s:b, s:I}", "rate", cfg.rate, "burst",
                          (int)cfg.burst, "retry_after", cfg.retry_after, "slow_ms",
                          (int)cfg.slow_ms, "object_candles", cfg.object_candles,
                          "fault_429_storm", (json_int_t)storm);
    char day[16] = "";
    time_t rf = (time_t)cfg.reject_from;
    struct tm tm;
    if (rf && gmtime_r(&rf, &tm))
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
    json_object_set_new(o, "reject_from", json_string(day));
    for (int f = 0; f < F_COUNT; f++) {
        char key[32];
        snprintf(key, sizeof key, "fault_%s", fault_names[f]);
        json_object_set_new(o, key, json_real(cfg.p[f]));
    }
    return o;
}

struct cfg_update {
    struct config cfg;
    long long storm;            /* -1 = unchanged */
    bool rate_changed;
    char err[200];
};

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (long)v;
    return 0;
}

/* Applies one setting (CLI or /__sim/config spelling with '_') to *u; -1 on a bad one. */
static int config_set(struct cfg_update *u, const char *key, const char *val)
{
    long l;
    double d;
    if (!val)
        val = "";
    if (strcmp(key, "rate") == 0) {
        if (parse_double(val, 0, 1e9, &u->cfg.rate) < 0)
            goto bad;
        u->rate_changed = true;
    } else if (strcmp(key, "burst") == 0) {
        if (parse_long(val, 1, 1000000, &u->cfg.burst) < 0)
            goto bad;
        u->rate_changed = true;
    } else if (strcmp(key, "retry_after") == 0 || strcmp(key, "object_candles") == 0) {
        if (parse_long(val, 0, 1, &l) < 0)
            goto bad;
        *(key[0] == 'r' ? &u->cfg.retry_after : &u->cfg.object_candles) = l;
    } else if (strcmp(key, "hostile_candles") == 0) {
        if (parse_long(val, 0, 1, &l) < 0)
            goto bad;
        u->cfg.hostile_candles = l;
    } else if (strcmp(key, "slow_ms") == 0) {
        if (parse_long(val, 0, 3600000, &u->cfg.slow_ms) < 0)
            goto bad;
    } else if (strcmp(key, "reject_from") == 0) {
        char t[32];
        snprintf(t, sizeof t, "%.10s 00:00:00", val);
        u->cfg.reject_from = 0;
        if (*val && (strlen(val) != 10 || candles_parse_time(t, &u->cfg.reject_from) < 0 ||
                     u->cfg.reject_from == 0))
            goto bad;
    } else if (strcmp(key, "fault_429_storm") == 0) {
        if (parse_long(val, 0, 1000000000, &l) < 0)
            goto bad;
        u->storm = l;
    } else if (strncmp(key, "fault_", 6) == 0) {
        for (int f = 0; f < F_COUNT; f++) {
            if (strcmp(key + 6, fault_names[f]) == 0) {
                if (parse_double(val, 0, 1, &d) < 0)
                    goto bad;
                u->cfg.p[f] = d;
                return 0;
            }
        }
        goto unknown;
    } else {
        goto unknown;
    }
    return 0;
bad:
    snprintf(u->err, sizeof u->err, "bad value for %.40s: %.40s", key, val);
    return -1;
unknown:
    snprintf(u->err, sizeof u->err, "unknown setting %.40s", key);
    return -1;
}

static enum MHD_Result config_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct cfg_update *u = cls;
    return config_set(u, key, value) < 0 ? MHD_NO : MHD_YES;
}

static void stats_reset(void)
{
    pthread_mutex_lock(&stats_lock);
    json_t *by_token = g_stats.by_token;
    json_object_clear(by_token);
    memset(&g_stats, 0, sizeof g_stats);
    g_stats.by_token = by_token;
    pthread_mutex_unlock(&stats_lock);
    limiter_reset(true);
}

static json_t *stats_json(void)
{
    pthread_mutex_lock(&rl_lock);
    size_t peak = g_rl.peak;
    pthread_mutex_unlock(&rl_lock);
    pthread_mutex_lock(&stats_lock);
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
                          "requests", (json_int_t)g_stats.requests,
                          "historical_requests", (json_int_t)g_stats.historical,
                          "instrument_requests", (json_int_t)g_stats.instrument,
                          "candles_served", (json_int_t)g_stats.candles,
                          "peak_rps", (json_int_t)peak,
                          "missing_kite_version", (json_int_t)g_stats.missing_version);
    json_t *st = json_object(), *fl = json_object();
    for (int s = 100; s < 600; s++) {
        if (g_stats.by_status[s]) {
            char key[8];
            snprintf(key, sizeof key, "%d", s);
            json_object_set_new(st, key, json_integer((json_int_t)g_stats.by_status[s]));
        }
    }
    for (int f = 0; f <= F_COUNT; f++)
        json_object_set_new(fl, fault_names[f], json_integer((json_int_t)g_stats.faults[f]));
    json_object_set_new(o, "by_status", st);
    json_object_set_new(o, "faults_injected", fl);
    json_object_set_new(o, "requests_by_token", json_deep_copy(g_stats.by_token));
    json_object_set_new(o, "first_ts", g_stats.have_ts ? json_real(g_stats.first_ts) : json_null());
    json_object_set_new(o, "last_ts", g_stats.have_ts ? json_real(g_stats.last_ts) : json_null());
    pthread_mutex_unlock(&stats_lock);
    return o;
}

/* Bodies POSTed to /__sim/hook (a webhook receiver for dagrun's on_failure), oldest first:
 * {"content_type": ..., "body": parsed JSON or the text}. Protected by hooks_lock. */
static json_t *g_hooks;
static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
enum { HOOK_BODY_MAX = 1 << 20 };

/* A POST to /__sim/hook being received: its body so far. */
struct hook_upload {
    struct sbuf b;
};

static enum MHD_Result hook_received(struct MHD_Connection *c, struct hook_upload *u)
{
    size_t len;
    char *body = sbuf_take(&u->b, &len);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    json_t *rec = json_pack("{s:s, s:o}", "content_type", ct ? ct : "",
                            "body", j ? j : json_stringn(body, len));
    free(body);
    pthread_mutex_lock(&hooks_lock);
    if (!g_hooks)
        g_hooks = json_array();
    json_array_append_new(g_hooks, rec);
    pthread_mutex_unlock(&hooks_lock);
    return send_json(c, 200, json_pack("{s:s}", "status", "success"));
}

static enum MHD_Result sim_endpoint(struct MHD_Connection *c, const char *what, const char *method)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(what, "hooks") == 0 && get) {
        pthread_mutex_lock(&hooks_lock);
        json_t *h = g_hooks ? json_deep_copy(g_hooks) : json_array();
        pthread_mutex_unlock(&hooks_lock);
        return send_json(c, 200, h);
    }
    if (strcmp(what, "stats") == 0 && get)
        return send_json(c, 200, stats_json());
    if (strcmp(what, "reset") == 0 && (get || strcmp(method, "POST") == 0)) {
        stats_reset();
        return send_json(c, 200, json_pack("{s:s}", "status", "success"));
    }
    if (strcmp(what, "config") == 0 && get) {
        struct cfg_update u = { .storm = -1 };
        config_snapshot(&u.cfg);
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, config_arg, &u);
        if (u.err[0])
            return send_error(c, 400, "InputException", u.err, NULL, NULL);
        pthread_mutex_lock(&cfg_lock);
        g_cfg = u.cfg;
        if (u.storm >= 0)
            g_storm = u.storm;
        pthread_mutex_unlock(&cfg_lock);
        if (u.rate_changed)
            limiter_reset(false);
        return send_json(c, 200, config_json());
    }
    return send_error(c, 404, "GeneralException", "Route not found", NULL, NULL);
}

/* ---- dispatch ---- */

static bool authorized(struct MHD_Connection *c, const struct config *cfg)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncmp(a, "token ", 6) != 0)
        return false;
    a += 6;
    size_t kl = strlen(cfg->api_key);
    return strncmp(a, cfg->api_key, kl) == 0 && a[kl] == ':' &&
           strcmp(a + kl + 1, cfg->access_token) == 0;
}

static enum MHD_Result kite_endpoint(struct MHD_Connection *c, const char *url, bool get,
                                     unsigned *status)
{
    struct config cfg;
    config_snapshot(&cfg);
    bool hist = strncmp(url, "/instruments/historical/", 24) == 0;
    bool inst = !hist && (strcmp(url, "/instruments") == 0 ||
                          (strncmp(url, "/instruments/", 13) == 0 && url[13] &&
                           !strchr(url + 13, '/')));
    /* Split /instruments/historical/TOKEN/INTERVAL. */
    char tok_s[32] = "", iv_s[32] = "";
    if (hist) {
        const char *t = url + 24, *slash = strchr(t, '/');
        size_t tl = slash ? (size_t)(slash - t) : strlen(t);
        if (tl < sizeof tok_s)
            memcpy(tok_s, t, tl), tok_s[tl] = '\0';
        else
            strcpy(tok_s, "x");
        if (slash && strlen(slash + 1) < sizeof iv_s && !strchr(slash + 1, '/'))
            strcpy(iv_s, slash + 1);
    }
    unsigned long long seq = 0;
    pthread_mutex_lock(&stats_lock);
    g_stats.requests++;
    if (hist) {
        double t = (double)now_ns() / 1e9;
        g_stats.historical++;
        seq = g_stats.seq++;
        if (!g_stats.have_ts)
            g_stats.first_ts = t;
        g_stats.last_ts = t;
        g_stats.have_ts = true;
        if (tok_s[0] && strspn(tok_s, "0123456789") == strlen(tok_s)) {
            json_t *n = json_object_get(g_stats.by_token, tok_s);
            json_object_set_new(g_stats.by_token, tok_s,
                                json_integer(n ? json_integer_value(n) + 1 : 1));
        }
    } else if (inst) {
        g_stats.instrument++;
    }
    pthread_mutex_unlock(&stats_lock);

    if (!hist && !inst) {
        *status = 404;
        return send_error(c, 404, "GeneralException", "Route not found", NULL, NULL);
    }
    if (!get) {
        *status = 405;
        return send_error(c, 405, "GeneralException", "Method not allowed", NULL, NULL);
    }
    if (!authorized(c, &cfg)) {
        *status = 403;
        return send_error(c, 403, "TokenException", "Incorrect `api_key` or `access_token`.",
                          NULL, NULL);
    }
    const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Kite-Version");
    if (!ver || strcmp(ver, "3") != 0) {
        pthread_mutex_lock(&stats_lock);
        g_stats.missing_version++;
        pthread_mutex_unlock(&stats_lock);
        logf_("%s without X-Kite-Version: 3", hist ? "historical request" : "instrument request");
    }
    if (hist)
        return historical(c, tok_s, iv_s, &cfg, seq, status);
    struct sbuf b = { 0 };
    const char *ex = url[12] ? url + 13 : NULL;
    if (!ex || strcmp(ex, g_inst.exchange) == 0)
        sbuf_add(&b, g_inst.csv, g_inst.csv_len);
    else
        sbuf_add(&b, g_inst.csv, g_inst.header_len);
    *status = 200;
    return send_body(c, 200, "text/csv", &b, NULL, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    static int marker;
    (void)cls;
    (void)version;
    (void)upload;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* Answer only once MHD has read the whole request (and dropped any body): a response
     * queued on the first call, before that, makes MHD close the connection (no keep-alive). */
    if (!*con_cls) {
        *con_cls = &marker;
        if (strcmp(method, "POST") == 0 && strcmp(url, "/__sim/hook") == 0) {
            struct hook_upload *u = calloc(1, sizeof *u);
            if (u)
                *con_cls = u;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (*con_cls != &marker) {
            struct hook_upload *u = *con_cls;
            if (u->b.len + *upload_size <= HOOK_BODY_MAX)
                sbuf_add(&u->b, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (*con_cls != &marker) {
        struct hook_upload *u = *con_cls;
        *con_cls = &marker;
        enum MHD_Result r = hook_received(c, u);
        free(u);
        return r;
    }
    if (strncmp(url, "/__sim/", 7) == 0)
        return sim_endpoint(c, url + 7, method);
    unsigned status = 500;
    enum MHD_Result ret = kite_endpoint(c, url, get, &status);
    pthread_mutex_lock(&stats_lock);
    if (status < 600)
        g_stats.by_status[status]++;
    pthread_mutex_unlock(&stats_lock);
    if (g_verbose)
        logf_("%s %.200s -> %u", method, url, status);
    return ret;
}

/* ---- main ---- */

static int dump_candles(char **argv)
{
    char *end;
    errno = 0;
    long long tok = strtoll(argv[0], &end, 10);
    const struct instrument *inst = NULL;
    if (!*argv[0] || *end || errno || !(inst = instruments_find(&g_inst, tok))) {
        logf_("--dump-candles: unknown token %s", argv[0]);
        return 2;
    }
    const struct sim_interval *iv = candles_interval(argv[1]);
    if (!iv) {
        logf_("--dump-candles: invalid interval %s", argv[1]);
        return 2;
    }
    int64_t from, to;
    if (candles_parse_time(argv[2], &from) < 0 || candles_parse_time(argv[3], &to) < 0) {
        logf_("--dump-candles: bad date (want YYYY-MM-DD[ HH:MM:SS])");
        return 2;
    }
    if (from > to) {
        logf_("--dump-candles: from date after to date");
        return 2;
    }
    size_t n;
    struct candle *v = candles_generate(g_seed, inst->token, iv, g_first_day, from, to, &n);
    printf("token,interval,ts_utc_iso,open,high,low,close,volume,oi\n");
    for (size_t i = 0; i < n; i++) {
        char ts[32], o[32], h[32], l[32], c[32];
        printf("%lld,%s,%s,%s,%s,%s,%s,%lld,%lld\n", (long long)inst->token, iv->name,
               candles_fmt_ts_utc(ts, v[i].ts), candles_fmt_price(o, v[i].open),
               candles_fmt_price(h, v[i].high), candles_fmt_price(l, v[i].low),
               candles_fmt_price(c, v[i].close), (long long)v[i].volume, (long long)v[i].oi);
    }
    free(v);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

enum {
    O_PORT = 256, O_PORT_FILE, O_INSTRUMENTS, O_EXCHANGE, O_HISTORY_START, O_SEED, O_API_KEY,
    O_ACCESS_TOKEN, O_RATE, O_BURST, O_NO_RETRY_AFTER, O_SLOW_MS, O_STORM, O_OBJECT_CANDLES,
    O_HOSTILE_CANDLES,
    O_HOSTILE, O_CACHE, O_DUMP, O_VERBOSE, O_HELP, O_FAULT /* + enum fault */
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, O_PORT },
        { "port-file", required_argument, NULL, O_PORT_FILE },
        { "instruments", required_argument, NULL, O_INSTRUMENTS },
        { "exchange", required_argument, NULL, O_EXCHANGE },
        { "history-start", required_argument, NULL, O_HISTORY_START },
        { "seed", required_argument, NULL, O_SEED },
        { "api-key", required_argument, NULL, O_API_KEY },
        { "access-token", required_argument, NULL, O_ACCESS_TOKEN },
        { "rate", required_argument, NULL, O_RATE },
        { "burst", required_argument, NULL, O_BURST },
        { "no-retry-after", no_argument, NULL, O_NO_RETRY_AFTER },
        { "slow-ms", required_argument, NULL, O_SLOW_MS },
        { "fault-429-storm", required_argument, NULL, O_STORM },
        { "object-candles", no_argument, NULL, O_OBJECT_CANDLES },
        { "hostile-candles", no_argument, NULL, O_HOSTILE_CANDLES },
        { "hostile-names", no_argument, NULL, O_HOSTILE },
        { "cache-answers", required_argument, NULL, O_CACHE },
        { "dump-candles", no_argument, NULL, O_DUMP },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "help", no_argument, NULL, O_HELP },
        { "fault-5xx", required_argument, NULL, O_FAULT + F_5XX },
        { "fault-slow", required_argument, NULL, O_FAULT + F_SLOW },
        { "fault-truncate", required_argument, NULL, O_FAULT + F_TRUNCATE },
        { "fault-malformed", required_argument, NULL, O_FAULT + F_MALFORMED },
        { "fault-reset", required_argument, NULL, O_FAULT + F_RESET },
        { "fault-wrong-type", required_argument, NULL, O_FAULT + F_WRONG_TYPE },
        { "fault-wrong-shape", required_argument, NULL, O_FAULT + F_WRONG_SHAPE },
        { "fault-bad-prices", required_argument, NULL, O_FAULT + F_BAD_PRICES },
        { "fault-endless", required_argument, NULL, O_FAULT + F_ENDLESS },
        { NULL, 0, NULL, 0 },
    };
    struct cfg_update u = { .storm = 0 };
    snprintf(u.cfg.api_key, sizeof u.cfg.api_key, "sim_key");
    snprintf(u.cfg.access_token, sizeof u.cfg.access_token, "sim_token");
    u.cfg.rate = 3;
    u.cfg.burst = 1;
    u.cfg.retry_after = true;
    u.cfg.slow_ms = 2000;
    long port = 0, n_inst = 50;
    const char *port_file = NULL, *exchange = "NSE", *history = "1995-01-02";
    bool hostile = false, dump = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case O_PORT:
            if (parse_long(optarg, 0, 65535, &port) < 0)
                goto bad_arg;
            break;
        case O_PORT_FILE: port_file = optarg; break;
        case O_INSTRUMENTS:
            if (parse_long(optarg, 1, 1000000, &n_inst) < 0)
                goto bad_arg;
            break;
        case O_EXCHANGE: exchange = optarg; break;
        case O_HISTORY_START: history = optarg; break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno)
                goto bad_arg;
            g_seed = s;
            break;
        }
        case O_API_KEY:
        case O_ACCESS_TOKEN: {
            char *dst = opt == O_API_KEY ? u.cfg.api_key : u.cfg.access_token;
            if (!*optarg || strlen(optarg) >= sizeof u.cfg.api_key || strchr(optarg, ':'))
                goto bad_arg;
            strcpy(dst, optarg);
            break;
        }
        case O_RATE: key = "rate"; break;
        case O_BURST: key = "burst"; break;
        case O_SLOW_MS: key = "slow_ms"; break;
        case O_STORM: key = "fault_429_storm"; break;
        case O_NO_RETRY_AFTER: u.cfg.retry_after = false; break;
        case O_OBJECT_CANDLES: u.cfg.object_candles = true; break;
        case O_HOSTILE_CANDLES: u.cfg.hostile_candles = true; break;
        case O_HOSTILE: hostile = true; break;
        case O_CACHE: {
            long mb;
            if (parse_long(optarg, 0, 1L << 20, &mb) < 0)
                goto bad_arg;
            g_cache_max = (size_t)mb << 20;
            break;
        }
        case O_DUMP: dump = true; break;
        case O_VERBOSE: g_verbose = true; break;
        case O_HELP: fputs(usage_text, stdout); return 0;
        default:
            if (opt >= O_FAULT && opt < O_FAULT + F_COUNT) {
                char k[32];
                snprintf(k, sizeof k, "fault_%s", fault_names[opt - O_FAULT]);
                if (config_set(&u, k, optarg) < 0)
                    goto bad_arg;
                break;
            }
            fputs("try kite_sim --help\n", stderr);
            return 2;
        }
        if (key && config_set(&u, key, optarg) < 0)
            goto bad_arg;
        continue;
    bad_arg:
        logf_("bad option value %s; try kite_sim --help", optarg);
        return 2;
    }
    int64_t hs;
    if (candles_parse_time(history, &hs) < 0 || hs % 86400) {
        logf_("bad --history-start %s (want YYYY-MM-DD)", history);
        return 2;
    }
    g_first_day = hs / 86400;
    if (dump ? argc - optind != 4 : argc != optind) {
        fputs(dump ? "kite_sim: --dump-candles takes TOKEN INTERVAL FROM TO\n"
                   : "kite_sim: unexpected argument; try kite_sim --help\n", stderr);
        return 2;
    }
    if (instruments_init(&g_inst, (size_t)n_inst, exchange, g_seed, hostile) < 0) {
        logf_("bad --exchange %s", exchange);
        return 2;
    }
    if (dump) {
        int rc = dump_candles(argv + optind);
        instruments_free(&g_inst);
        return rc;
    }
    g_cfg = u.cfg;
    g_storm = u.storm;
    g_stats.by_token = json_object();

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
        MHD_OPTION_END);
    if (!d) {
        logf_("cannot listen on 127.0.0.1:%ld", port);
        instruments_free(&g_inst);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : (unsigned)port;
    int rc = 0;
    if (port_file && write_port_file(port_file, bound) < 0) {
        logf_("cannot write port file %s: %s", port_file, strerror(errno));
        rc = 1;
    } else {
        printf("kite_sim listening on http://127.0.0.1:%u\n", bound);
        fflush(stdout);
        logf_("%zu instruments on %s, seed %llu, rate %g/s burst %ld", g_inst.n, g_inst.exchange,
              (unsigned long long)g_seed, g_cfg.rate, g_cfg.burst);
        int sig = 0;
        sigwait(&sigs, &sig);
        logf_("signal %d, stopping", sig);
    }
    MHD_stop_daemon(d);
    instruments_free(&g_inst);
    json_decref(g_stats.by_token);
    free(g_rl.ring);
    return rc;
}
