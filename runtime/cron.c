/* Cron schedules with Vixie cron semantics (fields, names, macros, DST), read in an IANA zone. */
#include "cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "date.h"

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

struct field_spec {
    const char *what;       /* in messages: "day of week 8 out of range 0-7" */
    int lo, hi;
    const char *const *names;
    const char *name_hint;
};

static const char *const mon_names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul",
                                         "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

static const struct field_spec specs[F_COUNT] = {
    { "minute", 0, 59, NULL, NULL },
    { "hour", 0, 23, NULL, NULL },
    { "day of month", 1, 31, NULL, NULL },
    { "month", 1, 12, mon_names, "jan-dec" },
    { "day of week", 0, 7, dow_names, "sun-sat" },
};

struct cron {
    char *text;
    uint64_t bits[F_COUNT];     /* bit v set when value v matches; dow 7 folded into 0 */
    bool star[F_COUNT];         /* the field starts with '*' (Vixie's *_STAR flags) */
    /* Filled by plan() from the above, so that cron_next skips a month or a year in one step. */
    uint32_t dow_days[7];       /* bit d: day d of a month whose 1st is weekday w has a matching weekday */
    uint16_t year_months[2][7]; /* bit m: month m has a matching day, by leap year and Jan 1's weekday */
    bool no_day;                /* no kind of year has a matching day (Feb 30): never fires */
};

static void plan(struct cron *c);

static const struct { const char *name, *expr; } macros[] = {
    { "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

void cron_free(struct cron *c)
{
    if (!c)
        return;
    free(c->text);
    free(c);
}

const char *cron_text(const struct cron *c)
{
    return c->text;
}

/* Reports an error about the expression, pointing at offset (0-based) in it. */
static struct cron *fail(struct cron *c, struct dr_err *err, const char *expr, int offset, const char *why)
{
    err_set(err, "bad cron \"%s\": %s", expr, why);
    if (err)
        err->offset = offset;
    cron_free(c);
    return NULL;
}

/* Reads a number or (where the field has them) a name from s[*i] up to a char in stop.
 * Returns 0, or -1 with why filled. */
static int get_value(const char *s, size_t len, size_t *i, const struct field_spec *sp, int *v, char *why,
                     size_t whylen)
{
    size_t start = *i;
    while (*i < len && s[*i] != ',' && s[*i] != '-' && s[*i] != '/')
        (*i)++;
    size_t n = *i - start;
    if (n == 0) {
        snprintf(why, whylen, "%s: missing value", sp->what);
        return -1;
    }
    const char *tok = s + start;
    if (tok[0] >= '0' && tok[0] <= '9') {
        long x = 0;
        for (size_t k = 0; k < n; k++) {
            if (tok[k] < '0' || tok[k] > '9') {
                snprintf(why, whylen, "%s \"%.*s\" is not a number", sp->what, (int)n, tok);
                return -1;
            }
            if (x < 100000)
                x = x * 10 + (tok[k] - '0');
        }
        if (x >= 100000) {
            snprintf(why, whylen, "%s %.*s out of range %d-%d", sp->what, (int)(n > 24 ? 24 : n), tok, sp->lo,
                     sp->hi);
            return -1;
        }
        *v = (int)x;
        return 0;
    }
    if (sp->names) {
        for (int k = 0; sp->names[k]; k++) {
            if (n == 3 && strncasecmp(tok, sp->names[k], 3) == 0) {
                *v = k + sp->lo;
                return 0;
            }
        }
        snprintf(why, whylen, "unknown %s \"%.*s\" (use %d-%d or %s)", sp->what, (int)n, tok, sp->lo, sp->hi,
                 sp->name_hint);
        return -1;
    }
    snprintf(why, whylen, "%s \"%.*s\" is not a number", sp->what, (int)n, tok);
    return -1;
}

static int check_range(const struct field_spec *sp, int v, char *why, size_t whylen)
{
    if (v < sp->lo || v > sp->hi) {
        snprintf(why, whylen, "%s %d out of range %d-%d", sp->what, v, sp->lo, sp->hi);
        return -1;
    }
    return 0;
}

/* Parses one field (s, len: not NUL-terminated) into bits, as Vixie's get_list/get_range do. */
static int parse_field(const char *s, size_t len, const struct field_spec *sp, uint64_t *bits, char *why,
                       size_t whylen)
{
    size_t i = 0;
    *bits = 0;
    for (;;) {
        int a, b, step = 1;
        if (i >= len || s[i] == ',') {
            snprintf(why, whylen, "%s: empty list item", sp->what);
            return -1;
        }
        if (s[i] == '*') {
            a = sp->lo;
            b = sp->hi;
            i++;
            if (i < len && s[i] != ',' && s[i] != '/') {
                snprintf(why, whylen, "%s: unexpected \"%c\" after *", sp->what, s[i]);
                return -1;
            }
        } else {
            if (get_value(s, len, &i, sp, &a, why, whylen) < 0 || check_range(sp, a, why, whylen) < 0)
                return -1;
            b = a;
            if (i < len && s[i] == '-') {
                i++;
                if (get_value(s, len, &i, sp, &b, why, whylen) < 0 || check_range(sp, b, why, whylen) < 0)
                    return -1;
                if (a > b) {
                    snprintf(why, whylen, "%s range %d-%d is backwards", sp->what, a, b);
                    return -1;
                }
            } else if (i < len && s[i] == '/') {
                /* Vixie cron takes a step only after '*' or a range. */
                snprintf(why, whylen, "%s: a step needs a range or * (e.g. %d-%d/n)", sp->what, a, sp->hi);
                return -1;
            }
        }
        if (i < len && s[i] == '/') {
            i++;
            size_t st = i;
            long x = 0;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (x < 100000)
                    x = x * 10 + (s[i] - '0');
                i++;
            }
            if (i == st || (i < len && s[i] != ',')) {
                snprintf(why, whylen, "%s: step \"%.*s\" is not a number", sp->what, (int)(len - st), s + st);
                return -1;
            }
            if (x == 0) {
                snprintf(why, whylen, "%s: step 0 must be at least 1", sp->what);
                return -1;
            }
            step = (int)x;
        }
        if (i < len && s[i] == '-') {
            snprintf(why, whylen, "%s: unexpected \"-\"", sp->what);
            return -1;
        }
        for (int v = a; v <= b; v += step)
            *bits |= 1ULL << v;
        if (i >= len)
            return 0;
        i++;                            /* the ',' */
        if (i >= len) {
            snprintf(why, whylen, "%s: empty list item", sp->what);
            return -1;
        }
    }
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Returns a new cron owned by the caller (cron_free), or NULL with err (offset at the bad field).
 * Pure; any thread. */
struct cron *cron_parse(const char *expr, struct dr_err *err)
{
    char why[256];
    if (!expr)
        expr = "";
    struct cron *c = calloc(1, sizeof *c);
    if (!c || !(c->text = strdup(expr))) {
        cron_free(c);
        err_set(err, "out of memory");
        return NULL;
    }
    size_t base = 0;
    while (is_blank(expr[base]))
        base++;
    const char *s = expr + base;
    if (s[0] == '@') {
        size_t n = 0;
        while (s[n] && !is_blank(s[n]))
            n++;
        size_t k = n;
        while (is_blank(s[k]))
            k++;
        if (s[k] != '\0')
            return fail(c, err, expr, (int)(base + k), "nothing may follow a macro");
        for (size_t m = 0; m < sizeof macros / sizeof macros[0]; m++) {
            if (strlen(macros[m].name) == n && strncasecmp(s, macros[m].name, n) == 0) {
                struct dr_err sub;
                struct cron *mc = cron_parse(macros[m].expr, &sub);
                if (!mc)
                    return fail(c, err, expr, (int)base, sub.msg);
                free(mc->text);
                mc->text = c->text;
                c->text = NULL;
                cron_free(c);
                return mc;
            }
        }
        snprintf(why, sizeof why, "unknown macro \"%.*s\" (use @yearly, @annually, @monthly, @weekly, @daily, "
                 "@midnight or @hourly)", (int)(n > 32 ? 32 : n), s);
        return fail(c, err, expr, (int)base, why);
    }

    size_t pos = base;
    int nf = 0;
    while (expr[pos]) {
        size_t start = pos;
        while (expr[pos] && !is_blank(expr[pos]))
            pos++;
        if (nf == F_COUNT) {
            snprintf(why, sizeof why, "expected 5 fields (minute hour day-of-month month day-of-week), got more");
            return fail(c, err, expr, (int)start, why);
        }
        const struct field_spec *sp = &specs[nf];
        if (parse_field(expr + start, pos - start, sp, &c->bits[nf], why, sizeof why) < 0)
            return fail(c, err, expr, (int)start, why);
        c->star[nf] = expr[start] == '*';
        nf++;
        while (is_blank(expr[pos]))
            pos++;
    }
    if (nf < F_COUNT) {
        snprintf(why, sizeof why, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", nf);
        return fail(c, err, expr, (int)pos, why);
    }
    if (c->bits[F_DOW] & (1ULL << 7))   /* 7 is Sunday too */
        c->bits[F_DOW] = (c->bits[F_DOW] & ~(1ULL << 7)) | 1;
    plan(c);
    return c;
}

/* ---------------------------------------------------------------- evaluation */

/* The last local day searched: 2999-12-31, the last day date.c reads or writes. */
#define CRON_YEAR_MAX 2999

static bool has(uint64_t bits, int v)
{
    return (bits >> v) & 1;
}

static int weekday(int64_t days)
{
    return (int)(((days + 4) % 7 + 7) % 7);     /* 1970-01-01 was a Thursday */
}

/* Days in month m of year y, from date.c's calendar. */
static int month_length(int y, int m)
{
    int n = 28;
    while (n < 31 && date_valid(y, m, n + 1))
        n++;
    return n;
}

/* Bit d set for each day d of the month (length n, its 1st on weekday w1) that matches day of
 * month and day of week: Vixie cron ANDs them when either field starts with '*' (even "*\/2"),
 * and ORs them when both are restricted. */
static uint32_t month_days(const struct cron *c, int n, int w1)
{
    uint32_t valid = (uint32_t)(((1ULL << n) - 1) << 1);
    uint32_t dm = (uint32_t)c->bits[F_DOM] & valid, wm = c->dow_days[w1] & valid;
    return c->star[F_DOM] || c->star[F_DOW] ? dm & wm : dm | wm;
}

/* Fills the tables that let cron_next skip whole months and years: 14 kinds of year (leap or
 * not, times the weekday of January 1st) and, for each, which months can match. */
static void plan(struct cron *c)
{
    for (int w = 0; w < 7; w++) {
        c->dow_days[w] = 0;
        for (int d = 1; d <= 31; d++) {
            if (has(c->bits[F_DOW], (w + d - 1) % 7))
                c->dow_days[w] |= 1u << d;
        }
    }
    for (int leap = 0; leap < 2; leap++) {
        for (int w = 0; w < 7; w++) {
            uint16_t months = 0;
            int w1 = w;                         /* weekday of the month's 1st */
            for (int m = 1; m <= 12; m++) {
                int n = month_length(leap ? 2000 : 2001, m);   /* a leap year and a common one */
                if (has(c->bits[F_MON], m) && month_days(c, n, w1))
                    months |= (uint16_t)(1u << m);
                w1 = (w1 + n) % 7;
            }
            c->year_months[leap][w] = months;
        }
    }
    c->no_day = true;
    for (int k = 0; k < 14; k++) {
        if (c->year_months[k / 7][k % 7])
            c->no_day = false;
    }
}

/* The first local day at or after `day` whose date matches month, day of month and day of week,
 * or INT64_MAX when none does by 2999-12-31. O(1) per year and per month skipped: a year whose
 * kind has no matching month costs one step, a month with no matching day one more. */
static int64_t next_day(const struct cron *c, int64_t day)
{
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    while (y <= CRON_YEAR_MAX) {
        bool leap = date_valid(y, 2, 29);
        uint16_t months = c->year_months[leap][weekday(date_days_from_civil(y, 1, 1))];
        months &= (uint16_t)~((1u << m) - 1);   /* this month and later */
        if (!months) {
            y++;
            m = d = 1;
            continue;
        }
        int mm = __builtin_ctz(months);
        if (mm != m) {
            m = mm;
            d = 1;
        }
        int64_t first = date_days_from_civil(y, m, 1);
        uint32_t days = month_days(c, month_length(y, m), weekday(first)) & ~((1u << d) - 1);
        if (days)
            return first + __builtin_ctz(days) - 1;
        if (++m > 12) {
            y++;
            m = 1;
        }
        d = 1;
    }
    return INT64_MAX;
}

/* The end of the spring-forward gap that contains the wall time whose old-offset reading is
 * `after_gap` (a time past the transition): the transition instant, found by bisection. */
static int64_t gap_end(const struct tz *z, int64_t wall, int64_t after_gap)
{
    long o_new = tz_offset_at(z, after_gap);
    int64_t lo = wall - o_new, hi = after_gap;   /* lo is before the transition */
    long o_lo = tz_offset_at(z, lo);
    if (o_lo == o_new)
        return after_gap;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (tz_offset_at(z, mid) == o_lo)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/* Instants for wall time `wall` (local seconds since the epoch). */
struct wall_hit {
    int n;                  /* tz_from_local's count */
    int64_t first, second;  /* for n == 0: first = the gap's end when asked for, else the reading
                             * with the offset before the gap (later than the gap's end) */
};

/* The gap's end costs a bisection (~15 zone lookups): only fixed-time jobs, which fire there,
 * ask for it. */
static struct wall_hit map_wall(const struct tz *z, int64_t wall, bool want_gap_end)
{
    struct tm tm = { 0 };
    int y, m, d, secs;
    date_split_instant(wall, &y, &m, &d, &secs);
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = secs / 3600;
    tm.tm_min = secs / 60 % 60;
    struct wall_hit h;
    h.n = tz_from_local(z, &tm, &h.first, &h.second);
    if (h.n == 0 && want_gap_end)
        h.first = gap_end(z, wall, h.first);
    if (h.n == 0)
        h.second = h.first;
    return h;
}

/* Returns 0 with *next, or -1 (nothing fires by 2999-12-31 local time; *next untouched). z NULL
 * means UTC. A date that never comes (Feb 30) returns at once. Otherwise visits matching local
 * days only (next_day skips years and months that cannot match in one step each), then one zone
 * lookup per matching hour and per matching minute. The slowest case is a clock-following job
 * whose every matching day has its hour in a spring-forward gap ("* 2 8-14 3 *\/7" in New York):
 * two lookups a year to 2999, ~1-2 ms. Pure; any thread. */
int cron_next(const struct cron *c, const struct tz *z, int64_t after, int64_t *next)
{
    if (c->no_day || (!z && !(z = tz_get("UTC", NULL))))
        return -1;
    /* Keep the arithmetic in range: nothing fires after 2999 (27h covers any zone's offset), and
     * a start before year 1 searches from its first second. */
    static const int64_t t_min = -62135596800LL;                    /* 0001-01-01T00:00:00Z */
    int64_t t_max = (date_days_from_civil(CRON_YEAR_MAX + 1, 1, 1)) * 86400 + 27 * 3600;
    if (after >= t_max)
        return -1;
    if (after < t_min)
        after = t_min - 1;
    bool fixed = !c->star[F_MIN] && !c->star[F_HOUR];
    int64_t local = after + tz_offset_at(z, after);
    int64_t day = (local >= 0 ? local / 86400 : (local - 86399) / 86400) - 1;
    int64_t best = INT64_MAX;
    int first_min = __builtin_ctzll(c->bits[F_MIN]), last_min = 63 - __builtin_clzll(c->bits[F_MIN]);

    while ((day = next_day(c, day)) != INT64_MAX) {
        /* Every instant of a later wall time is after every instant of an earlier one, and
         * offsets are under 27h: once a day starts past best, nothing better can come. */
        if (best != INT64_MAX && day * 86400 - 27 * 3600 > best)
            break;
        for (int h = 0; h < 24; h++) {
            if (!has(c->bits[F_HOUR], h))
                continue;
            int64_t hour_wall = day * 86400 + h * 3600;
            /* Skip an hour whose latest instant is not after `after`: one lookup per hour
             * instead of one per minute. In a gap, the old offset's reading is later than
             * anything the hour's minutes give, so it bounds them without a bisection. */
            struct wall_hit lh = map_wall(z, hour_wall + last_min * 60, false);
            if ((lh.n == 2 ? lh.second : lh.first) <= after)
                continue;
            /* A clock-following job skips a gap: when the hour's first and last minutes are
             * both in one (read with the same offset before it), so is every minute between,
             * as no zone changes its offset twice in an hour. Two lookups, not sixty. */
            if (!fixed && lh.n == 0) {
                struct wall_hit fh = map_wall(z, hour_wall + first_min * 60, false);
                if (fh.n == 0 && hour_wall + first_min * 60 - fh.first == hour_wall + last_min * 60 - lh.first)
                    continue;
            }
            for (int mi = 0; mi <= last_min; mi++) {
                if (!has(c->bits[F_MIN], mi))
                    continue;
                struct wall_hit w = map_wall(z, hour_wall + mi * 60, fixed);
                if (w.n == 0 && !fixed)
                    continue;           /* clock-following jobs skip the gap */
                if (w.first > best)
                    goto done;
                int64_t cand;
                if (w.n == 0) {
                    cand = w.first;     /* fixed-time jobs fire when the gap ends */
                } else if (w.n == 1 || fixed) {
                    cand = w.first;     /* fixed-time jobs fire at the first pass only */
                } else {
                    cand = w.first > after ? w.first : w.second;
                }
                if (cand > after && cand < best)
                    best = cand;
            }
        }
        day++;
    }
done:
    if (best == INT64_MAX)
        return -1;
    *next = best;
    return 0;
}
