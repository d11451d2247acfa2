/* kite_sim candles: Kite intervals, IST calendar math, deterministic OHLCV bars, formatting */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "candles.h"

/* IST is UTC+05:30 all year (no DST): local seconds = UTC seconds + SIM_IST_OFFSET. */
#define SIM_IST_OFFSET 19800

/* Kite's intervals and the longest range (to_date - from_date, days) one request may ask for. */
static const struct sim_interval intervals[] = {
    { "minute", 1, 60 },     { "3minute", 3, 100 },   { "5minute", 5, 100 },
    { "10minute", 10, 100 }, { "15minute", 15, 200 }, { "30minute", 30, 200 },
    { "60minute", 60, 400 }, { "day", 0, 2000 },
};

/* The NSE session: bars start at 09:15 IST; the last one-minute bar starts at 15:29. */
#define SESSION_OPEN (9 * 3600 + 15 * 60)
#define SESSION_CLOSE (15 * 3600 + 30 * 60)

const struct sim_interval *candles_interval(const char *name)
{
    for (size_t i = 0; i < sizeof intervals / sizeof intervals[0]; i++)
        if (strcmp(intervals[i].name, name) == 0)
            return &intervals[i];
    return NULL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no range checks). Howard Hinnant's
 * days_from_civil / civil_from_days, like candles_civil_from_days below. */
static int64_t candles_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The date of a day number; inverse of candles_days_from_civil. */
static void candles_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Reads exactly n decimal digits; -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int month_days(int y, int m)
{
    static const int md[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

int candles_parse_time(const char *s, int64_t *local)
{
    int y = digits(s, 4), mo, d, hh = 0, mi = 0, ss = 0;
    if (y < 0 || s[4] != '-' || (mo = digits(s + 5, 2)) < 0 || s[7] != '-' ||
        (d = digits(s + 8, 2)) < 0)
        return -1;
    if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        return -1;
    const char *p = s + 10;
    if (*p == ' ' || *p == 'T' || *p == '+') {
        p++;
        if ((hh = digits(p, 2)) < 0 || p[2] != ':' || (mi = digits(p + 3, 2)) < 0)
            return -1;
        p += 5;
        if (*p == ':') {
            if ((ss = digits(p + 1, 2)) < 0)
                return -1;
            p += 3;
        }
        if (hh > 23 || mi > 59 || ss > 59)
            return -1;
    }
    if (*p != '\0')
        return -1;
    *local = candles_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 +
             mi * 60 + ss;
    return 0;
}

uint64_t candles_hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t words[4] = { a, b, c, d };
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 4; i++) {
        h ^= words[i];
        h += 0x9e3779b97f4a7c15ULL;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
    }
    return h;
}

double candles_unit(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return (double)(candles_hash(a, b, c, d) >> 11) * (1.0 / 9007199254740992.0);
}

/* Salts keep the hash streams of the different draws apart. */
enum { S_BASE = 1, S_PHASE, S_OPEN, S_CLOSE, S_HIGH, S_LOW, S_VOL, S_OI };

/* A token's price path: the base and sine phases of its level, drawn once per
 * candles_generate call, and the last level computed (an intraday bar's end is the next bar's
 * start, so each such level is computed once). */
struct path {
    double base, phase[4];
    bool have_last;
    int64_t last_secs;
    double last_level;
};

/* Draws the base and phases of `token`'s path; no level is remembered yet. */
static void path_init(struct path *p, uint64_t seed, int64_t token)
{
    p->base = 20.0 + 4000.0 * candles_unit(seed, (uint64_t)token, S_BASE, 0);
    for (int i = 0; i < 4; i++)
        p->phase[i] = 6.283185307179586 * candles_unit(seed, (uint64_t)token, S_PHASE, (uint64_t)i);
    p->have_last = false;
}

/* The smooth price level at local second `secs`: a sum of token-phased sines around a
 * token-specific base, so it is a pure function of (seed, token, secs). */
static double level(struct path *p, int64_t secs)
{
    static const double period[] = { 1700.0, 190.0, 23.0, 2.3 };
    static const double amp[] = { 0.35, 0.12, 0.04, 0.01 };
    if (p->have_last && p->last_secs == secs)
        return p->last_level;
    double t = (double)secs / 86400.0, x = 0;
    for (int i = 0; i < 4; i++)
        x += amp[i] * sin(6.283185307179586 * t / period[i] + p->phase[i]);
    p->have_last = true;
    p->last_secs = secs;
    p->last_level = p->base * exp(x);
    return p->last_level;
}

static int64_t to_ticks(double price)
{
    int64_t t = llround(price * 20.0);
    return t < 1 ? 1 : t;
}

static void make_bar(struct path *p, uint64_t seed, int64_t token, const struct sim_interval *iv,
                     int64_t day, int64_t local, struct candle *c)
{
    int minutes = iv->minutes ? iv->minutes : (SESSION_CLOSE - SESSION_OPEN) / 60;
    /* A day bar covers the session; its timestamp is midnight IST like Kite's. */
    int64_t start = iv->minutes ? local : day * 86400 + SESSION_OPEN;
    int64_t end = start + (int64_t)minutes * 60;
    if (end > day * 86400 + SESSION_CLOSE)
        end = day * 86400 + SESSION_CLOSE;
    uint64_t key = (uint64_t)local, ivk = (uint64_t)(iv->minutes ? iv->minutes : 1440);
    uint64_t tok = (uint64_t)token;
    double sigma = 0.0006 * sqrt((double)minutes);
    double u_o = candles_unit(seed ^ S_OPEN, tok, ivk, key);
    double u_c = candles_unit(seed ^ S_CLOSE, tok, ivk, key);
    double u_h = candles_unit(seed ^ S_HIGH, tok, ivk, key);
    double u_l = candles_unit(seed ^ S_LOW, tok, ivk, key);
    double o = level(p, start) * (1 + sigma * (u_o - 0.5));
    double cl = level(p, end) * (1 + sigma * (u_c - 0.5));
    double hi = (o > cl ? o : cl) * (1 + 0.8 * sigma * u_h);
    double lo = (o < cl ? o : cl) * (1 - 0.8 * sigma * u_l);
    c->ts = local - SIM_IST_OFFSET;
    c->open = to_ticks(o);
    c->close = to_ticks(cl);
    c->high = to_ticks(hi);
    c->low = to_ticks(lo);
    int64_t mx = c->open > c->close ? c->open : c->close;
    int64_t mn = c->open < c->close ? c->open : c->close;
    if (c->high < mx)
        c->high = mx;
    if (c->low > mn)
        c->low = mn;
    c->volume = (int64_t)((50.0 + 5000.0 * candles_unit(seed ^ S_VOL, tok, ivk, key)) *
                          sqrt((double)minutes));
    c->oi = 100000 + (int64_t)(candles_hash(seed ^ S_OI, tok, ivk, key) % 9000000);
}

struct candle *candles_generate(uint64_t seed, int64_t token, const struct sim_interval *iv,
                                int64_t first_day, int64_t from_local, int64_t to_local,
                                size_t *n)
{
    *n = 0;
    if (from_local > to_local)
        return NULL;
    int64_t d0 = floor_div(from_local, 86400), d1 = floor_div(to_local, 86400);
    if (d0 < first_day)
        d0 = first_day;
    if (d1 < d0)
        return NULL;
    size_t per_day = iv->minutes ? (size_t)((SESSION_CLOSE - SESSION_OPEN) / 60 + iv->minutes - 1) /
                                       (size_t)iv->minutes
                                 : 1;
    size_t cap = (size_t)(d1 - d0 + 1) * per_day, len = 0;
    struct candle *v = malloc(cap * sizeof *v);
    if (!v) {
        fputs("kite_sim: out of memory\n", stderr);
        abort();
    }
    struct path p;
    path_init(&p, seed, token);
    for (int64_t day = d0; day <= d1; day++) {
        int64_t wd = ((day + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
        if (wd == 0 || wd == 6)
            continue;
        if (!iv->minutes) {
            int64_t local = day * 86400;
            if (local >= from_local && local <= to_local)
                make_bar(&p, seed, token, iv, day, local, &v[len++]);
            continue;
        }
        for (int64_t s = SESSION_OPEN; s < SESSION_CLOSE; s += iv->minutes * 60) {
            int64_t local = day * 86400 + s;
            if (local >= from_local && local <= to_local)
                make_bar(&p, seed, token, iv, day, local, &v[len++]);
        }
    }
    if (!len) {
        free(v);
        return NULL;
    }
    *n = len;
    return v;
}

/* Writes v in decimal, zero-padded to at least `width` digits (width <= 20); returns the end
 * (no NUL written). */
static char *put_digits(char *p, uint64_t v, int width)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Writes v (0..99) as two digits; returns the end (no NUL written). */
static char *put_2digits(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

char *candles_fmt_price(char *buf, int64_t ticks)
{
    /* One tick is 5 paise, so the exact decimal comes from integers, never from %g: whole
     * rupees, then ".N" when the paise are a multiple of ten, else ".NN". */
    int64_t paise = ticks * 5;
    uint64_t a = paise < 0 ? 0 - (uint64_t)paise : (uint64_t)paise;
    uint64_t whole = a / 100, frac = a % 100;
    char *p = buf;
    if (paise < 0)
        *p++ = '-';
    p = put_digits(p, whole, 1);
    if (frac) {
        *p++ = '.';
        if (frac % 10 == 0)
            *p++ = (char)('0' + frac / 10);
        else
            p = put_2digits(p, (unsigned)frac);
    }
    *p = '\0';
    return buf;
}

char *candles_fmt_int(char *buf, int64_t v)
{
    char *p = buf;
    if (v < 0)
        *p++ = '-';
    p = put_digits(p, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 1);
    *p = '\0';
    return buf;
}

/* Writes local or UTC seconds as "YYYY-MM-DDTHH:MM:SS" and the zone suffix (printf's
 * "%04d-%02d-%02dT%02d:%02d:%02d%s": a negative year keeps its sign within the four places). */
static char *fmt_ts(char *buf, int64_t secs, const char *zone)
{
    int64_t day = floor_div(secs, 86400), rem = secs - day * 86400;
    int y, m, d;
    candles_civil_from_days(day, &y, &m, &d);
    char *p = buf;
    if (y < 0) {
        *p++ = '-';
        p = put_digits(p, 0 - (uint64_t)y, 3);
    } else {
        p = put_digits(p, (uint64_t)y, 4);
    }
    *p++ = '-';
    p = put_2digits(p, (unsigned)m);
    *p++ = '-';
    p = put_2digits(p, (unsigned)d);
    *p++ = 'T';
    p = put_2digits(p, (unsigned)(rem / 3600));
    *p++ = ':';
    p = put_2digits(p, (unsigned)(rem / 60 % 60));
    *p++ = ':';
    p = put_2digits(p, (unsigned)(rem % 60));
    strcpy(p, zone);
    return buf;
}

char *candles_fmt_ts_ist(char *buf, int64_t ts)
{
    return fmt_ts(buf, ts + SIM_IST_OFFSET, "+0530");
}

char *candles_fmt_ts_utc(char *buf, int64_t ts)
{
    return fmt_ts(buf, ts, "Z");
}
