/* IANA time zones: TZif (v1-v3) parsing, POSIX TZ footer rules, a locked process-wide cache. */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "date.h"
#include "readfile.h"

#define TZ_NAME_MAX   255
#define TZ_FILE_MAX   (1 << 20)
#define TZ_ABBR_MAX   16

struct ttinfo {
    int32_t off;        /* seconds east of UTC */
    bool isdst;
    uint8_t abbr;       /* index into abbrs */
};

/* One rule date of a POSIX TZ string: Jn, n or Mm.w.d, at `time` local seconds. */
struct rule_date {
    enum { RULE_JULIAN1, RULE_JULIAN0, RULE_MWD } kind;
    int n, m, w, d;
    long time;
};

/* The footer "EST5EDT,M3.2.0,M11.1.0": what holds after the last transition. */
struct footer {
    bool present;
    bool has_dst;
    long std_off, dst_off;                  /* seconds east of UTC */
    char std_abbr[TZ_ABBR_MAX], dst_abbr[TZ_ABBR_MAX];
    struct rule_date start, end;
};

/* Immutable once loaded and published in the cache. */
struct tz {
    char *name;
    size_t ntrans;
    int64_t *trans;         /* ascending transition instants */
    uint8_t *trans_type;    /* type in force from trans[i] */
    size_t ntypes;
    struct ttinfo *types;
    char *abbrs;            /* NUL-terminated strings, charcnt bytes plus a final NUL */
    struct footer foot;
    struct tz *next;        /* cache chain: written only under cache_lock before publication */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz *cache_head;   /* protected by cache_lock; entries live until exit */

/* ---------------------------------------------------------------- POSIX TZ footer */

static const char *parse_abbr(const char *p, char *out)
{
    size_t n = 0;
    if (*p == '<') {
        p++;
        while (*p && *p != '>') {
            if (n + 1 < TZ_ABBR_MAX)
                out[n++] = *p;
            p++;
        }
        if (*p != '>')
            return NULL;
        p++;
    } else {
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
            if (n + 1 < TZ_ABBR_MAX)
                out[n++] = *p;
            p++;
        }
    }
    out[n] = '\0';
    return n >= 1 ? p : NULL;
}

static const char *parse_num(const char *p, int lo, int hi, int *v)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int x = 0;
    while (*p >= '0' && *p <= '9') {
        x = x * 10 + (*p - '0');
        if (x > hi)
            return NULL;
        p++;
    }
    if (x < lo)
        return NULL;
    *v = x;
    return p;
}

/* [+-]hh[:mm[:ss]], hours up to 167 (RFC 8536 extension for rule times). */
static const char *parse_hms(const char *p, long *secs)
{
    int sign = 1, h, m = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!(p = parse_num(p, 0, 167, &h)))
        return NULL;
    if (*p == ':') {
        if (!(p = parse_num(p + 1, 0, 59, &m)))
            return NULL;
        if (*p == ':' && !(p = parse_num(p + 1, 0, 59, &s)))
            return NULL;
    }
    *secs = sign * (h * 3600L + m * 60L + s);
    return p;
}

static const char *parse_rule_date(const char *p, struct rule_date *r)
{
    if (*p == 'J') {
        r->kind = RULE_JULIAN1;
        p = parse_num(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = RULE_MWD;
        if (!(p = parse_num(p + 1, 1, 12, &r->m)) || *p != '.')
            return NULL;
        if (!(p = parse_num(p + 1, 1, 5, &r->w)) || *p != '.')
            return NULL;
        p = parse_num(p + 1, 0, 6, &r->d);
    } else {
        r->kind = RULE_JULIAN0;
        p = parse_num(p, 0, 365, &r->n);
    }
    if (!p)
        return NULL;
    r->time = 7200;
    if (*p == '/')
        p = parse_hms(p + 1, &r->time);
    return p;
}

/* Parses a POSIX TZ string; false when it is malformed (the caller then ignores it). */
static bool parse_footer(const char *s, struct footer *f)
{
    memset(f, 0, sizeof *f);
    const char *p = parse_abbr(s, f->std_abbr);
    long v;
    if (!p || !(p = parse_hms(p, &v)))
        return false;
    f->std_off = -v;                        /* POSIX offsets are west of UTC */
    f->present = true;
    if (*p == '\0')
        return true;
    if (!(p = parse_abbr(p, f->dst_abbr)))
        return false;
    f->has_dst = true;
    f->dst_off = f->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, &v)))
            return false;
        f->dst_off = -v;
    }
    if (*p == '\0') {                       /* no rule: the POSIX default, US rules */
        f->start = (struct rule_date){ .kind = RULE_MWD, .m = 3, .w = 2, .d = 0, .time = 7200 };
        f->end = (struct rule_date){ .kind = RULE_MWD, .m = 11, .w = 1, .d = 0, .time = 7200 };
        return true;
    }
    if (*p != ',' || !(p = parse_rule_date(p + 1, &f->start)) || *p != ',')
        return false;
    if (!(p = parse_rule_date(p + 1, &f->end)) || *p != '\0')
        return false;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Day number (days since 1970-01-01) of a rule date in year y. */
static int64_t rule_day(const struct rule_date *r, int y)
{
    int64_t jan1 = date_days_from_civil(y, 1, 1);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    switch (r->kind) {
    case RULE_JULIAN1:
        return jan1 + r->n - 1 + (leap && r->n >= 60);
    case RULE_JULIAN0:
        return jan1 + r->n;
    case RULE_MWD:
    default: {
        int64_t first = date_days_from_civil(y, r->m, 1);
        int64_t wd = floor_div(first + 4, 7);
        wd = (first + 4) - wd * 7;          /* 1970-01-01 was a Thursday (4) */
        int64_t day = first + (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
        int mdays = (int)(date_days_from_civil(r->m == 12 ? y + 1 : y, r->m == 12 ? 1 : r->m + 1, 1) - first);
        while (day - first >= mdays)
            day -= 7;
        return day;
    }
    }
}

/* The DST start and end instants of year y. */
static void footer_year(const struct footer *f, int y, int64_t *start, int64_t *end)
{
    *start = rule_day(&f->start, y) * 86400 + f->start.time - f->std_off;
    *end = rule_day(&f->end, y) * 86400 + f->end.time - f->dst_off;
}

static int year_of(int64_t t)
{
    int y, m, d;
    date_civil_from_days(floor_div(t, 86400), &y, &m, &d);
    return y;
}

static bool footer_isdst(const struct footer *f, int64_t t)
{
    if (!f->has_dst)
        return false;
    int64_t start, end;
    footer_year(f, year_of(t + f->std_off), &start, &end);
    if (start < end)
        return t >= start && t < end;
    return !(t >= end && t < start);        /* southern hemisphere: DST spans new year */
}

/* ---------------------------------------------------------------- lookups */

/* Offset, DST flag and abbreviation at t. */
static void lookup(const struct tz *z, int64_t t, long *off, int *isdst, const char **abbr)
{
    const struct footer *f = &z->foot;
    if (f->present && (z->ntrans == 0 || t >= z->trans[z->ntrans - 1])) {
        bool dst = footer_isdst(f, t);
        *off = dst ? f->dst_off : f->std_off;
        *isdst = dst;
        *abbr = dst ? f->dst_abbr : f->std_abbr;
        return;
    }
    size_t type = 0;
    if (z->ntrans > 0 && t >= z->trans[0]) {
        size_t lo = 0, hi = z->ntrans;      /* largest i with trans[i] <= t */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        type = z->trans_type[lo];
    }
    *off = z->types[type].off;
    *isdst = z->types[type].isdst;
    *abbr = z->abbrs + z->types[type].abbr;
}

/* The first instant after t where the offset may change, INT64_MAX when none. */
static int64_t next_transition(const struct tz *z, int64_t t)
{
    if (z->ntrans > 0 && t < z->trans[z->ntrans - 1]) {
        size_t lo = 0, hi = z->ntrans - 1;  /* smallest i with trans[i] > t */
        if (t < z->trans[0])
            return z->trans[0];
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->trans[mid] > t)
                hi = mid;
            else
                lo = mid;
        }
        return z->trans[hi];
    }
    const struct footer *f = &z->foot;
    if (!f->present || !f->has_dst)
        return INT64_MAX;
    int64_t best = INT64_MAX;
    int y = year_of(t);
    for (int yy = y - 1; yy <= y + 1; yy++) {
        int64_t s, e;
        footer_year(f, yy, &s, &e);
        if (s > t && s < best)
            best = s;
        if (e > t && e < best)
            best = e;
    }
    return best;
}

const char *tz_name(const struct tz *z)
{
    return z->name;
}

long tz_offset_at(const struct tz *z, int64_t t)
{
    long off;
    int isdst;
    const char *abbr;
    lookup(z, t, &off, &isdst, &abbr);
    return off;
}

void tz_localtime(const struct tz *z, int64_t t, struct tm *out)
{
    long off;
    int isdst;
    const char *abbr;
    lookup(z, t, &off, &isdst, &abbr);
    int64_t local = t + off;
    int64_t days = floor_div(local, 86400), secs = local - days * 86400;
    int y, m, d;
    date_civil_from_days(days, &y, &m, &d);
    memset(out, 0, sizeof *out);
    out->tm_year = y - 1900;
    out->tm_mon = m - 1;
    out->tm_mday = d;
    out->tm_hour = (int)(secs / 3600);
    out->tm_min = (int)(secs / 60 % 60);
    out->tm_sec = (int)(secs % 60);
    out->tm_wday = (int)(days - floor_div(days - 3, 7) * 7 - 3); /* 0 = Sunday */
    out->tm_yday = (int)(days - date_days_from_civil(y, 1, 1));
    out->tm_isdst = isdst;
    out->tm_gmtoff = off;
    out->tm_zone = abbr;
}

/* The earliest and latest UTC offsets can be is about +-26h, so every instant showing local
 * wall time L lies within L -+ 26h: the offsets worth trying are those in force there. */
#define TZ_WINDOW (27 * 3600)
#define TZ_MAX_OFFS 32

/* Returns 0, 1 or 2 instants showing wall time *local (month normalised like mktime; tm_isdst
 * ignored). In a gap *first and *second both get the reading with the pre-gap offset. Any thread. */
int tz_from_local(const struct tz *z, const struct tm *local, int64_t *first, int64_t *second)
{
    int64_t y = (int64_t)local->tm_year + 1900, mon = local->tm_mon;
    y += floor_div(mon, 12);
    mon -= floor_div(mon, 12) * 12;
    int64_t L = date_days_from_civil((int)y, (int)mon + 1, 1) * 86400 + (int64_t)(local->tm_mday - 1) * 86400 +
                (int64_t)local->tm_hour * 3600 + (int64_t)local->tm_min * 60 + local->tm_sec;

    /* Offsets in force in the window, and the transitions between them. */
    long offs[TZ_MAX_OFFS];
    int64_t trs[TZ_MAX_OFFS];
    int noffs = 0;
    int64_t t = L - TZ_WINDOW;
    offs[noffs] = tz_offset_at(z, t);
    trs[noffs++] = INT64_MIN;
    while (noffs < TZ_MAX_OFFS) {
        t = next_transition(z, t);
        if (t == INT64_MAX || t > L + TZ_WINDOW)
            break;
        long o = tz_offset_at(z, t);
        if (o == offs[noffs - 1])
            continue;
        offs[noffs] = o;
        trs[noffs++] = t;
    }

    int64_t found[TZ_MAX_OFFS];
    int nfound = 0;
    for (int i = 0; i < noffs; i++) {
        int64_t cand = L - offs[i];
        if (tz_offset_at(z, cand) != offs[i])
            continue;
        bool dup = false;
        for (int j = 0; j < nfound; j++)
            dup |= found[j] == cand;
        if (!dup)
            found[nfound++] = cand;
    }
    if (nfound == 0) {
        /* A gap: read the wall time with the offset in force before it. */
        int64_t before = L - tz_offset_at(z, L);
        for (int i = 1; i < noffs; i++) {
            if (offs[i] > offs[i - 1] && L >= trs[i] + offs[i - 1] && L < trs[i] + offs[i]) {
                before = L - offs[i - 1];
                break;
            }
        }
        if (first)
            *first = before;
        if (second)
            *second = before;
        return 0;
    }
    int64_t lo = found[0], hi = found[0];
    for (int j = 1; j < nfound; j++) {
        if (found[j] < lo)
            lo = found[j];
        if (found[j] > hi)
            hi = found[j];
    }
    if (first)
        *first = lo;
    if (second)
        *second = hi;
    return nfound == 1 ? 1 : 2;
}

/* ---------------------------------------------------------------- TZif loading */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static void tz_destroy(struct tz *z)
{
    if (!z)
        return;
    free(z->name);
    free(z->trans);
    free(z->trans_type);
    free(z->types);
    free(z->abbrs);
    free(z);
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chr;
};

static int read_header(const unsigned char *p, size_t len, struct tzif_counts *c, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *version = p[4] ? p[4] - '0' : 1;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chr = be32(p + 40);
    if (c->type == 0 || c->type > 256 || c->chr == 0 || c->time > 100000 || c->leap > 100000 ||
        (c->isut && c->isut != c->type) || (c->isstd && c->isstd != c->type))
        return -1;
    return 0;
}

static size_t block_size(const struct tzif_counts *c, int tsize)
{
    return (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chr +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Builds a zone from the bytes of a TZif file; NULL when malformed. */
static struct tz *tz_parse(const char *name, const unsigned char *buf, size_t len)
{
    struct tzif_counts c;
    int version, tsize = 4;
    if (read_header(buf, len, &c, &version) < 0)
        return NULL;
    const unsigned char *p = buf + 44;
    size_t left = len - 44;
    if (block_size(&c, 4) > left)
        return NULL;
    if (version >= 2) {
        p += block_size(&c, 4);
        left -= block_size(&c, 4);
        if (read_header(p, left, &c, &version) < 0)
            return NULL;
        p += 44;
        left -= 44;
        tsize = 8;
        if (block_size(&c, 8) > left)
            return NULL;
    }
    struct tz *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->name = strdup(name);
    z->ntrans = c.time;
    z->ntypes = c.type;
    z->trans = calloc(c.time ? c.time : 1, sizeof *z->trans);
    z->trans_type = calloc(c.time ? c.time : 1, 1);
    z->types = calloc(c.type, sizeof *z->types);
    z->abbrs = calloc(c.chr + 1, 1);
    if (!z->name || !z->trans || !z->trans_type || !z->types || !z->abbrs)
        goto bad;
    for (uint32_t i = 0; i < c.time; i++) {
        z->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        p += tsize;
        if (i > 0 && z->trans[i] <= z->trans[i - 1])
            goto bad;
    }
    for (uint32_t i = 0; i < c.time; i++) {
        if (p[i] >= c.type)
            goto bad;
        z->trans_type[i] = p[i];
    }
    p += c.time;
    for (uint32_t i = 0; i < c.type; i++, p += 6) {
        z->types[i].off = (int32_t)be32(p);
        z->types[i].isdst = p[4] != 0;
        if (p[5] >= c.chr || z->types[i].off < -89999 || z->types[i].off > 89999)
            goto bad;
        z->types[i].abbr = p[5];
    }
    memcpy(z->abbrs, p, c.chr);
    p += c.chr + (size_t)c.leap * (tsize + 4) + c.isstd + c.isut;
    left = len - (size_t)(p - buf);
    if (version >= 2 && left >= 2 && p[0] == '\n') {
        const unsigned char *nl = memchr(p + 1, '\n', left - 1);
        if (nl && nl - p - 1 < 128) {
            char s[128];
            memcpy(s, p + 1, (size_t)(nl - p - 1));
            s[nl - p - 1] = '\0';
            /* An empty or malformed footer leaves the last transition's type in force. */
            if (s[0] && !parse_footer(s, &z->foot))
                memset(&z->foot, 0, sizeof z->foot);
        }
    }
    return z;
bad:
    tz_destroy(z);
    return NULL;
}

static struct tz *tz_utc(const char *name)
{
    static const unsigned char utc[] = {
        'T', 'Z', 'i', 'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4,
        0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0,
    };
    return tz_parse(name, utc, sizeof utc);
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '+' || ch == '-' || ch == '/';
        if (!ok)
            return false;
    }
    return true;
}

static struct tz *tz_load(const char *name, struct dr_err *err)
{
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf;
    size_t len;
    bool is_utc = strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
    if (readfile_load(path, TZ_FILE_MAX, &buf, &len, NULL) != 0) {
        if (is_utc)
            return tz_utc(name);
        err_set(err, "unknown time zone \"%s\"", name);
        err_hint(err, "use an IANA name such as Asia/Kolkata or UTC (files under %s)", dir);
        return NULL;
    }
    struct tz *z = tz_parse(name, (const unsigned char *)buf, len);
    free(buf);
    if (!z) {
        if (is_utc)
            return tz_utc(name);
        err_set(err, "time zone \"%s\": %s is not a valid TZif file", name, path);
    }
    return z;
}

static const struct tz *cache_find(const char *name)
{
    for (const struct tz *z = cache_head; z; z = z->next)
        if (strcmp(z->name, name) == 0)
            return z;
    return NULL;
}

/* Returns the shared, immutable zone (never freed), or NULL with err. The file is read outside
 * cache_lock; two threads loading the same name at once keep the first published copy. Any thread. */
const struct tz *tz_get(const char *name, struct dr_err *err)
{
    if (!name || !name_ok(name)) {
        err_set(err, "bad time zone name \"%s\"", name ? name : "");
        if (err)
            err->offset = 0;
        err_hint(err, "use an IANA name such as Asia/Kolkata or UTC");
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    const struct tz *hit = cache_find(name);
    pthread_mutex_unlock(&cache_lock);
    if (hit)
        return hit;

    /* Load outside the lock (file I/O); a racing loader of the same name loses and frees. */
    struct tz *z = tz_load(name, err);
    if (!z)
        return NULL;
    pthread_mutex_lock(&cache_lock);
    hit = cache_find(name);
    if (!hit) {
        z->next = cache_head;
        cache_head = z;
        hit = z;
        z = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    tz_destroy(z);
    return hit;
}
