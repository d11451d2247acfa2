/* fetch_candles: fetch one instrument's chunks of historical candles and emit them as dr_candle arrays. */
#include <dagrun/task.h>
#include <dagrun/candle.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Called for each dropped candle: ts is its timestamp text ("?" when none). */
typedef void (*fetch_candles_drop_fn)(void *ud, const char *ts, const char *why);

/* Kite's exchanges (NSE, BSE, NFO, CDS, MCX, BCD) all keep India Standard Time, +05:30 with no
 * daylight saving: Kite reads a request's from/to in it and stamps day candles at its
 * midnight, and compute_date_ranges reads stored candles in Asia/Kolkata. A plugin learns no
 * zone from the runtime, so the session's offset is this constant. */
#define SESSION_UTC_OFFSET 19800

/* The sane bounds of a candle's numbers (DESIGN.md "Candle rules"): a price is finite, above 0
 * and below PRICE_MAX; volume and oi are whole numbers from 0 to below COUNT_LIMIT (2^53, so
 * that every accepted count is exactly a double, however the JSON reader held it). */
#define PRICE_MAX 1e12
#define COUNT_LIMIT (INT64_C(1) << 53)

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
 * thread (plain arithmetic, no TZ). */
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
    /* The proleptic Gregorian calendar, as timegm computes it, without its cost. */
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    int64_t days = dr_days_from_civil(y, mo, d);
    *out = days * 86400 + h * 3600 + mi * 60 + se - (int64_t)sign * (oh * 3600 + om * 60);
    return 0;
}

/* Why c breaks the candle rules (DESIGN.md "Candle rules", with the bounds of PRICE_MAX and
 * COUNT_LIMIT), or NULL when it is sound. Pure; any thread. */
const char *fetch_candles_check(const dr_candle *c)
{
    if (!isfinite(c->open) || !isfinite(c->high) || !isfinite(c->low) || !isfinite(c->close))
        return "price is not finite";
    if (c->open <= 0 || c->high <= 0 || c->low <= 0 || c->close <= 0)
        return "price is not positive";
    if (c->open >= PRICE_MAX || c->high >= PRICE_MAX || c->low >= PRICE_MAX ||
        c->close >= PRICE_MAX)
        return "price is out of range (1e12 or more)";
    if (c->volume < 0)
        return "volume is negative";
    if (c->volume >= COUNT_LIMIT)
        return "volume is out of range (2^53 or more)";
    if (c->has_oi && c->oi < 0)
        return "oi is negative";
    if (c->has_oi && c->oi >= COUNT_LIMIT)
        return "oi is out of range (2^53 or more)";
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

/* A whole number: a JSON number with no fraction. Returns 0; -1 when it is not a whole number;
 * -2 when it is COUNT_LIMIT or more, -3 when it is -COUNT_LIMIT or less (beyond what a double
 * holds exactly, often beyond int64: fetch_candles_check's range, worded the same). */
static int whole(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v) || isnan(json_real_value(v)))
        return -1;
    double d = json_real_value(v);
    if (fabs(d) >= 0x1p53)
        return d > 0 ? -2 : -3;
    if (d != floor(d))
        return -1;
    *out = (int64_t)d;
    return 0;
}

static const char *whole_why(int w, const char *name)
{
    static const char *const why[2][3] = {
        { "volume is not a whole number", "volume is out of range (2^53 or more)",
          "volume is negative" },
        { "oi is not a whole number", "oi is out of range (2^53 or more)", "oi is negative" },
    };
    return why[name[0] == 'o'][-w - 1];
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
    int w = whole(f[5], &c->volume);
    if (w)
        return whole_why(w, "volume");
    if (f[6] && !json_is_null(f[6])) {
        w = whole(f[6], &c->oi);
        if (w)
            return whole_why(w, "oi");
        c->has_oi = 1;
    }
    return fetch_candles_check(c);
}

/* ---- the fast path: the common, fully sound response without a JSON tree ----
 * Kite's answer is almost always {"status":"success","data":{"candles":[[ts,o,h,l,c,v(,oi)],
 * ...]}} with every candle sound and in order. Building a Jansson tree of it costs several
 * times the rest of the pipeline in CPU and holds hundreds of bytes per candle, so that shape
 * is read directly. Anything else (another key, an escape, null, a candle object, a bad or
 * out-of-order candle, a number token of 64 characters or more, a count that is not an integer
 * token) makes the fast path give up without side effects, and the general Jansson path below
 * decides, sorts, drops and reports. Both read every number as strtod does. */

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes into buf (NUL-terminated). */
static bool scan_plain_string(struct scan *s, char *buf, size_t size)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return false;
    size_t n = 0;
    for (s->p++; s->p < s->end && *s->p != '"'; s->p++) {
        unsigned char ch = (unsigned char)*s->p;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\' || n + 1 >= size)
            return false;
        buf[n++] = (char)ch;
    }
    if (s->p >= s->end)
        return false;
    s->p++;
    buf[n] = '\0';
    return true;
}

/* A JSON number token (strict grammar). *is_int: no fraction and no exponent. */
static bool scan_number(struct scan *s, const char **start, size_t *len, bool *is_int)
{
    skip_ws(s);
    const char *p = s->p, *e = s->end;
    *start = p;
    *is_int = true;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return false;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p < e && *p == '.') {
        *is_int = false;
        if (++p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = false;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *len = (size_t)(p - *start);
    s->p = p;
    return *len < 64;
}

static bool scan_double(struct scan *s, double *out)
{
    const char *t;
    size_t len;
    bool is_int;
    if (!scan_number(s, &t, &len, &is_int))
        return false;
    /* Clinger's fast path: up to 15 digits m and up to 22 decimals k, m and 10^k are exact
     * doubles and one correctly rounded division gives what strtod gives. */
    static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
                                  1e22 };
    const char *p = t, *e = t + len;
    bool neg = *p == '-';
    int64_t m = 0;
    int nd = 0, k = -1;
    for (p += neg; p < e && nd <= 15; p++) {
        if (*p == '.') {
            k = 0;
            continue;
        }
        if (*p < '0' || *p > '9')
            break;
        m = m * 10 + (*p - '0');
        nd += m > 0;
        k += k >= 0;
    }
    if (p == e && nd <= 15 && k <= 22) {
        double v = (double)m;
        if (k > 0)
            v /= p10[k];
        *out = neg ? -v : v;    /* exactly strtod's double */
        return true;
    }
    /* The tree path reads every number with strtod (JSON_DECODE_INT_AS_REAL): so does this. */
    (void)is_int;
    char buf[64];
    memcpy(buf, t, len);
    buf[len] = '\0';
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

static bool scan_int(struct scan *s, int64_t *out)
{
    const char *t;
    size_t len;
    bool is_int;
    if (!scan_number(s, &t, &len, &is_int) || !is_int || len > (t[0] == '-' ? 19u : 18u))
        return false;
    bool neg = *t == '-';
    int64_t v = 0;
    for (size_t i = neg; i < len; i++)
        v = v * 10 + (t[i] - '0');
    *out = neg ? -v : v;
    return true;
}

/* The candles array's contents up to and including its ']'. */
static bool scan_candles(struct scan *s, dr_candle **out, size_t *n)
{
    size_t cap = 0;
    dr_candle *c = NULL;
    if (eat(s, ']'))
        return true;
    do {
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            dr_candle *g = realloc(c, cap * sizeof *c);
            if (!g)
                goto fail;
            c = g;
            *out = c;
        }
        dr_candle *k = &c[*n];
        memset(k, 0, sizeof *k);
        char ts[40];
        if (!eat(s, '[') || !scan_plain_string(s, ts, sizeof ts) ||
            fetch_candles_parse_ts(ts, &k->ts) < 0 || !eat(s, ',') || !scan_double(s, &k->open) ||
            !eat(s, ',') || !scan_double(s, &k->high) || !eat(s, ',') ||
            !scan_double(s, &k->low) || !eat(s, ',') || !scan_double(s, &k->close) ||
            !eat(s, ',') || !scan_int(s, &k->volume))
            goto fail;
        if (eat(s, ',')) {
            if (!scan_int(s, &k->oi))
                goto fail;
            k->has_oi = 1;
        }
        if (!eat(s, ']') || fetch_candles_check(k) || (*n > 0 && k->ts <= c[*n - 1].ts))
            goto fail;
        (*n)++;
    } while (eat(s, ','));
    if (eat(s, ']'))
        return true;
fail:
    free(c);
    *out = NULL;
    *n = 0;
    return false;
}

/* The fast parser. Returns true with *out (malloc'd, caller frees; NULL when *n is 0) and *n
 * set when body has the common shape and every candle is sound and later than the one before;
 * false (nothing allocated, nothing reported) otherwise. Whenever it returns true,
 * fetch_candles_parse_tree returns the same candles, bit for bit, and drops none
 * (test_task_fetch_candles and fuzz_candle_parsers check it). Pure; any thread. */
bool fetch_candles_parse_fast(const char *body, size_t len, dr_candle **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!body || memchr(body, '\0', len))
        return false;
    struct scan s = { body, body + len };
    bool status = false, data = false;
    char key[16];
    if (!eat(&s, '{'))
        return false;
    do {
        if (!scan_plain_string(&s, key, sizeof key) || !eat(&s, ':'))
            goto fail;
        if (!strcmp(key, "status") && !status) {
            char v[16];
            if (!scan_plain_string(&s, v, sizeof v) || strcmp(v, "success"))
                goto fail;
            status = true;
        } else if (!strcmp(key, "data") && !data) {
            if (!eat(&s, '{') || !scan_plain_string(&s, key, sizeof key) ||
                strcmp(key, "candles") || !eat(&s, ':') || !eat(&s, '[') ||
                !scan_candles(&s, out, n) || !eat(&s, '}'))
                goto fail;
            data = true;
        } else {
            goto fail;
        }
    } while (eat(&s, ','));
    if (!eat(&s, '}') || !status || !data)
        goto fail;
    skip_ws(&s);
    if (s.p != s.end)
        goto fail;
    if (*n == 0) {
        free(*out);
        *out = NULL;
    }
    return true;
fail:
    free(*out);
    *out = NULL;
    *n = 0;
    return false;
}

/* Writes Unix seconds ts as the session's wall time, "2024-01-02T00:00:00+0530". */
static void session_ts(char *buf, size_t size, int64_t ts)
{
    time_t local = (time_t)(ts + SESSION_UTC_OFFSET);
    struct tm tm;
    if (!gmtime_r(&local, &tm)) {
        snprintf(buf, size, "%lld", (long long)ts);
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d+%02d%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             SESSION_UTC_OFFSET / 3600, SESSION_UTC_OFFSET % 3600 / 60);
}

/* Why a candle is dropped as a duplicate: what, then the values of the one kept. */
static void duplicate_why(char *buf, size_t size, const dr_candle *kept, const char *what)
{
    snprintf(buf, size, "%s (open %.15g high %.15g low %.15g close %.15g volume %lld)", what,
             kept->open, kept->high, kept->low, kept->close, (long long)kept->volume);
}

struct order_key {
    int64_t ts;
    size_t at;          /* position among the sound candles of the answer */
};

static int order_cmp(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Puts c[0..*n) in time order (stable: the answer's order among equal times) and keeps the
 * first candle of each time, reporting the others with ts[i] (their text) through on_drop.
 * Returns 0, or -1 when out of memory (nothing changed). */
static int order_candles(dr_candle *c, const char **ts, size_t *n, fetch_candles_drop_fn on_drop,
                         void *ud)
{
    size_t i, m = *n;
    for (i = 1; i < m && c[i].ts > c[i - 1].ts; i++)
        ;
    if (i >= m)
        return 0;               /* already strictly increasing: the usual answer */
    struct order_key *k = malloc(m * sizeof *k);
    dr_candle *sorted = malloc(m * sizeof *sorted);
    if (!k || !sorted) {
        free(k);
        free(sorted);
        return -1;
    }
    for (i = 0; i < m; i++)
        k[i] = (struct order_key){ c[i].ts, i };
    qsort(k, m, sizeof *k, order_cmp);
    size_t kept = 0;
    for (i = 0; i < m; i++) {
        const dr_candle *x = &c[k[i].at];
        if (kept > 0 && x->ts == sorted[kept - 1].ts) {
            char why[256];
            duplicate_why(why, sizeof why, &sorted[kept - 1], "duplicate timestamp: kept the first of the answer's "
                          "candles at that time");
            if (on_drop)
                on_drop(ud, ts[k[i].at] ? ts[k[i].at] : "?", why);
            continue;
        }
        sorted[kept++] = *x;
    }
    memcpy(c, sorted, kept * sizeof *c);
    *n = kept;
    free(k);
    free(sorted);
    return 0;
}

/* json_loadb reading every number as a double (JSON_DECODE_INT_AS_REAL: an integer beyond
 * int64 is a candle out of range, not a body that is not JSON). A number beyond a double's
 * range is written over, in a copy, with 9e307 (as far beyond every candle bound), so that
 * only its candle is dropped; after 64 such numbers the body is refused. */
static json_t *load_numbers_as_reals(const char *body, size_t len, json_error_t *e)
{
    json_t *root = json_loadb(body, len, JSON_DECODE_INT_AS_REAL, e);
    char *copy = NULL;
    for (int tries = 0; !root && tries < 64; tries++) {
        if (json_error_code(e) != json_error_numeric_overflow || e->position <= 0 ||
            (size_t)e->position > len)
            break;
        if (!copy) {
            copy = malloc(len);
            if (!copy)
                break;
            memcpy(copy, body, len);
        }
        size_t end = (size_t)e->position, start = end;
        while (start > 0 && copy[start - 1] && strchr("0123456789+-.eE", copy[start - 1]))
            start--;
        bool neg = copy[start] == '-';
        if (end - start < 5u + neg)     /* "1e309" is the shortest overflowing number */
            break;
        memset(copy + start, ' ', end - start);
        memcpy(copy + start, neg ? "-9e307" : "9e307", 5u + neg);
        root = json_loadb(copy, len, JSON_DECODE_INT_AS_REAL, e);
    }
    free(copy);
    return root;
}

/* The general parser: a Jansson tree of the whole body. Returns what fetch_candles_parse
 * returns for a body whose Content-Type is acceptable. Pure apart from on_drop; any thread. */
int fetch_candles_parse_tree(const char *body, size_t len, dr_candle **out, size_t *n,
                             fetch_candles_drop_fn on_drop, void *ud, char error_type[64],
                             char msg[256])
{
    *out = NULL;
    *n = 0;
    error_type[0] = msg[0] = '\0';
    json_error_t e;
    json_t *root = load_numbers_as_reals(body ? body : "", body ? len : 0, &e);
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
        const char **tss = total ? malloc(total * sizeof *tss) : NULL;
        if (total && (!c || !tss)) {
            free(c);
            free(tss);
            snprintf(msg, 256, "out of memory for %zu candles", total);
            goto out;
        }
        const json_t *row;
        json_array_foreach(candles, i, row) {
            const char *ts = NULL;
            const char *why = candle_from_json(row, &c[*n], &ts);
            if (why) {
                if (on_drop)
                    on_drop(ud, ts ? ts : "?", why);
                continue;
            }
            tss[(*n)++] = ts;
        }
        /* Order within an answer is not the broker's promise: sort, drop true duplicates. */
        if (order_candles(c, tss, n, on_drop, ud) < 0) {
            free(c);
            free(tss);
            *n = 0;
            snprintf(msg, 256, "out of memory for %zu candles", total);
            goto out;
        }
        free(tss);
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

/* Parses a Kite historical-data response body.
 * Returns 0 with *out (malloc'd, caller frees; NULL when *n is 0) holding the
 * sound candles in strictly increasing time order, whatever their order in the
 * answer: every other candle (unsound, or a second one at the same time) is
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
    if (fetch_candles_parse_fast(body, len, out, n))
        return 0;
    return fetch_candles_parse_tree(body, len, out, n, on_drop, ud, error_type, msg);
}

/* Keeps, of the n candles in c (strictly increasing, as fetch_candles_parse leaves them),
 * those that belong to the chunk the request asked for, from's midnight to to's 23:59:59 in
 * the session's zone, and returns how many (moved to the front, still strictly increasing).
 * With day set, each candle is first moved to its session day's midnight (a day candle
 * stamped in another zone, "Z" or "-1400", is the same session day), and a second candle of
 * one day is dropped as a duplicate. Each dropped candle is reported through on_drop (may be
 * NULL) with its time in the session's zone. from and to are "YYYY-MM-DD". Pure apart from
 * on_drop; any thread. */
size_t fetch_candles_window(dr_candle *c, size_t n, const char *from, const char *to, bool day,
                            fetch_candles_drop_fn on_drop, void *ud)
{
    char a[32], b[32];
    int64_t lo, hi;
    snprintf(a, sizeof a, "%.10sT00:00:00+05:30", from);
    snprintf(b, sizeof b, "%.10sT23:59:59+05:30", to);
    if (fetch_candles_parse_ts(a, &lo) < 0 || fetch_candles_parse_ts(b, &hi) < 0) {
        lo = INT64_MIN;         /* not dates (fetch_run checks them): no window */
        hi = INT64_MAX;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        dr_candle x = c[i];
        char why[320];
        if (day) {
            int64_t local = x.ts + SESSION_UTC_OFFSET;
            int64_t d = local / 86400 - (local % 86400 < 0);
            x.ts = d * 86400 - SESSION_UTC_OFFSET;
        }
        const char *reason = NULL;
        if (x.ts < lo || x.ts > hi) {
            snprintf(why, sizeof why, "outside the requested %.10s..%.10s", from, to);
            reason = why;
        } else if (kept > 0 && x.ts <= c[kept - 1].ts) {
            duplicate_why(why, sizeof why, &c[kept - 1], "a second candle of one session day: "
                          "kept the earlier one");
            reason = why;
        }
        if (reason) {
            if (on_drop) {
                char ts[40];
                session_ts(ts, sizeof ts, c[i].ts);
                on_drop(ud, ts, reason);
            }
            continue;
        }
        c[kept++] = x;
    }
    return kept;
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

/* Chunks are handed down in batches of up to this many candles (1 MiB of dr_candle): each
 * batch is one COPY downstream, and PostgreSQL 15 spends about half a millisecond of setup
 * per COPY of 1,000 rows or more (its insert buffer's 1,000 tuple slots), so day candles
 * (2,000 per request) went as six COPYs per instrument where one does. A chunk of more than
 * half of it goes down alone, straight from the parser (60 days of minutes: ~15,750), so a
 * worker holds at most one chunk and one batch. */
#define BATCH_CANDLES 16384

struct item {
    dr_ctx *ctx;
    const char *key;
    long long token;
    const char *interval;
    const char *source;
    bool oi, continuous;
    char reached[32];       /* end of the last chunk handed down, "" for none */
    size_t dropped;         /* in the current chunk */
    long long candles;
    dr_candle *batch;       /* fetched chunks not yet handed down */
    size_t n_batch, cap_batch;  /* cap_batch doubles as needed, up to BATCH_CANDLES */
    char batch_from[32], batch_to[32];  /* the first and last day the batch covers */
};

static const char *reached(const struct item *it)
{
    return it->reached[0] ? it->reached : "nothing";
}

/* Hands the n candles c of from..to down the lane (one emit, none when n is 0) and records
 * that the item got to `to`. DR_OK, or DR_FAIL with the error set when the downstream task
 * failed or the run was cancelled. */
static dr_status hand_down(struct item *it, const dr_candle *c, size_t n, const char *from,
                           const char *to)
{
    if (n) {
        if (dr_emit_blob(it->ctx, DR_BLOB_CANDLES, c, n * sizeof *c) < 0) {
            dr_error(it->ctx, "fetch_candles %s %s..%s: downstream failed or run cancelled; "
                     "reached %s", it->key, from, to, reached(it));
            return DR_FAIL;
        }
        it->candles += (long long)n;
        dr_count(it->ctx, "candles", (long long)n);
    }
    snprintf(it->reached, sizeof it->reached, "%s", to);
    dr_set_checkpoint(it->ctx, to);
    return DR_OK;
}

/* Hands the batch down, if it holds any candles. */
static dr_status flush(struct item *it)
{
    size_t n = it->n_batch;
    it->n_batch = 0;
    return n ? hand_down(it, it->batch, n, it->batch_from, it->batch_to) : DR_OK;
}

/* Before an item fails: hands down what was fetched (a failed item commits what it did),
 * unless the run is cancelled (a cancelled item's work is rolled back). DR_OK, or flush's
 * failure. */
static dr_status flush_before_failure(struct item *it)
{
    if (dr_cancelled(it->ctx)) {
        it->n_batch = 0;
        return DR_OK;
    }
    return flush(it);
}

/* Adds chunk from..to's n candles c (sorted, all after the batch's) to the batch. A chunk of
 * more than half a batch goes down alone (and an empty one with nothing pending only records
 * its end), the batch before it, or before a chunk it has no room for. Takes c. DR_OK, or
 * the failure of handing down. */
static dr_status add_chunk(struct item *it, dr_candle *c, size_t n, const char *from,
                           const char *to)
{
    bool alone = n > BATCH_CANDLES / 2 || (!n && !it->n_batch);
    dr_status st = DR_OK;
    if (alone || it->n_batch + n > BATCH_CANDLES)
        st = flush(it);
    if (st == DR_OK && alone)
        st = hand_down(it, c, n, from, to);     /* a big chunk goes down as it is */
    if (alone || st != DR_OK) {
        free(c);
        return st;
    }
    if (!it->n_batch)
        snprintf(it->batch_from, sizeof it->batch_from, "%s", from);
    snprintf(it->batch_to, sizeof it->batch_to, "%s", to);
    if (it->n_batch + n > it->cap_batch) {
        size_t cap = it->cap_batch ? it->cap_batch : 2048;
        while (cap < it->n_batch + n)
            cap *= 2;
        if (cap > BATCH_CANDLES)        /* n_batch + n never is: the batch went down first */
            cap = BATCH_CANDLES;
        dr_candle *b = realloc(it->batch, cap * sizeof *b);
        if (!b) {
            free(c);
            dr_error(it->ctx, "fetch_candles %s %s..%s: out of memory", it->key, from, to);
            return DR_FAIL;
        }
        it->batch = b;
        it->cap_batch = cap;
    }
    if (n)                          /* an empty chunk may come as NULL */
        memcpy(it->batch + it->n_batch, c, n * sizeof *c);
    it->n_batch += n;
    free(c);
    return DR_OK;
}

static void on_drop(void *ud, const char *ts, const char *why)
{
    struct item *it = ud;
    it->dropped++;
    dr_count(it->ctx, "dropped", 1);
    dr_log(it->ctx, DR_LOG_WARN, "%s: dropped candle %s: %s", it->key, ts, why);
}

/* True when s is a real date "YYYY-MM-DD" (dr_date_parse's rules). */
static bool is_date(const char *s)
{
    int64_t days;
    return s && dr_date_parse(s, &days, NULL, 0) == 0;
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
        if (flush_before_failure(it) != DR_OK) {
            dr_http_response_free(&resp);
            return DR_FAIL;
        }
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
    if (prc == 0)       /* a candle outside the chunk would mislead the next run's start */
        n = fetch_candles_window(c, n, from, to, !strcmp(it->interval, "day"), on_drop, it);
    if (prc == 0 && ok_status) {
        if (it->dropped)
            dr_warn(ctx, "%s %s..%s: dropped %zu bad candles", it->key, from, to, it->dropped);
        return add_chunk(it, c, n, from, to);
    }
    free(c);
    if (flush_before_failure(it) != DR_OK)
        return DR_FAIL;
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
    /* A resumed item whose earlier try committed a prefix before failing goes on after it. */
    const char *done_to = dr_checkpoint(ctx);
    if (!is_date(done_to))
        done_to = NULL;
    size_t i, skipped = 0;
    const json_t *ch;
    dr_status st = DR_OK;
    json_array_foreach(chunks, i, ch) {
        const char *from = json_string_value(json_array_get(ch, 0));
        const char *to = json_string_value(json_array_get(ch, 1));
        if (!is_date(from) || !is_date(to)) {
            if ((st = flush_before_failure(&it)) == DR_OK)
                dr_error(ctx, "fetch_candles %s: chunk %zu is not [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]; "
                         "reached %s", it.key, i, reached(&it));
            st = DR_FAIL;
            break;
        }
        if (done_to && strcmp(to, done_to) <= 0) {
            snprintf(it.reached, sizeof it.reached, "%s", to);
            skipped++;
            continue;
        }
        if (dr_cancelled(ctx)) {
            dr_error(ctx, "fetch_candles %s: cancelled before %s..%s; reached %s", it.key, from,
                     to, reached(&it));
            st = DR_FAIL;
            break;
        }
        if ((st = fetch_chunk(&it, from, to)) != DR_OK)
            break;
    }
    if (st == DR_OK)
        st = flush(&it);
    free(it.batch);
    if (st != DR_OK)
        return st;
    if (skipped)
        dr_log(ctx, DR_LOG_INFO, "%s: %zu chunks through %s were stored by an earlier try", it.key,
               skipped, done_to);
    dr_log(ctx, DR_LOG_INFO, "%s: %zu chunks, %lld candles", it.key, json_array_size(chunks) - skipped,
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
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
