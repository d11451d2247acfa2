/* Calendar dates and ISO-8601 instants in UTC arithmetic, with no dependence on TZ. */
#include "date.h"

#include <stdio.h>
#include <string.h>

#define DATE_YEAR_MIN 1900
#define DATE_YEAR_MAX 2999

/* Howard Hinnant's days_from_civil: exact for the whole proleptic Gregorian calendar. */
int64_t date_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;                                  /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* Howard Hinnant's civil_from_days, the inverse of date_days_from_civil. */
void date_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                        /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   /* [0, 399] */
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                      /* [0, 11] */
    int dd = (int)(doy - (153 * mp + 2) / 5 + 1);
    int mm = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (mm <= 2));
    *m = mm;
    *d = dd;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

bool date_valid(int y, int m, int d)
{
    return m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

/* Reads exactly n ASCII digits at s[*pos]; returns the value or -1 (pos at the first non-digit). */
static int digits(const char *s, int *pos, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[*pos];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
        (*pos)++;
    }
    return v;
}

static int fail(struct dr_err *err, int offset, const char *what, const char *s, const char *fmt_tail)
{
    err_set(err, "bad %s \"%s\": %s", what, s, fmt_tail);
    if (err)
        err->offset = offset;
    return -1;
}

/* Parses YYYY-MM-DD at s[*pos] (pos advanced past it); what names the value in messages. */
static int parse_ymd(const char *s, int *pos, const char *what, int64_t *days, struct dr_err *err)
{
    char msg[96];
    int y, m, d;
    int start = *pos;
    if ((y = digits(s, pos, 4)) < 0)
        return fail(err, *pos, what, s, "expected YYYY-MM-DD");
    if (s[*pos] != '-')
        return fail(err, *pos, what, s, "expected YYYY-MM-DD");
    (*pos)++;
    int mpos = *pos;
    if ((m = digits(s, pos, 2)) < 0 || s[*pos] != '-')
        return fail(err, *pos, what, s, "expected YYYY-MM-DD");
    (*pos)++;
    int dpos = *pos;
    if ((d = digits(s, pos, 2)) < 0)
        return fail(err, *pos, what, s, "expected YYYY-MM-DD");
    if (y < DATE_YEAR_MIN || y > DATE_YEAR_MAX) {
        snprintf(msg, sizeof msg, "year %d out of range %d-%d", y, DATE_YEAR_MIN, DATE_YEAR_MAX);
        return fail(err, start, what, s, msg);
    }
    if (m < 1 || m > 12) {
        snprintf(msg, sizeof msg, "month %d out of range 1-12", m);
        return fail(err, mpos, what, s, msg);
    }
    if (d < 1 || d > days_in_month(y, m)) {
        snprintf(msg, sizeof msg, "day %d out of range 1-%d for %04d-%02d", d, days_in_month(y, m), y, m);
        return fail(err, dpos, what, s, msg);
    }
    *days = date_days_from_civil(y, m, d);
    return 0;
}

int date_parse(const char *s, int64_t *days, struct dr_err *err)
{
    int pos = 0;
    int64_t v;
    if (!s)
        s = "";
    if (parse_ymd(s, &pos, "date", &v, err) < 0)
        return -1;
    if (s[pos] != '\0')
        return fail(err, pos, "date", s, "unexpected text after YYYY-MM-DD");
    *days = v;
    return 0;
}

void date_format(int64_t days, char *buf, size_t len)
{
    int y, m, d;
    date_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04d-%02d-%02d", y, m, d);
}

int date_parse_instant(const char *s, int64_t *t, struct dr_err *err)
{
    static const char *what = "timestamp";
    char msg[96];
    int pos = 0;
    int64_t days;
    if (!s)
        s = "";
    if (parse_ymd(s, &pos, what, &days, err) < 0)
        return -1;
    int64_t secs = 0;
    if (s[pos] == '\0') {
        *t = days * 86400;
        return 0;
    }
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')
        return fail(err, pos, what, s, "expected 'T' after the date");
    pos++;
    int hpos = pos, hh, mi, ss = 0;
    if ((hh = digits(s, &pos, 2)) < 0 || s[pos] != ':')
        return fail(err, pos, what, s, "expected HH:MM after the date");
    pos++;
    int mipos = pos;
    if ((mi = digits(s, &pos, 2)) < 0)
        return fail(err, pos, what, s, "expected HH:MM after the date");
    int spos = pos + 1;
    if (s[pos] == ':') {
        pos++;
        if ((ss = digits(s, &pos, 2)) < 0)
            return fail(err, pos, what, s, "expected two digits of seconds");
    }
    if (hh > 23) {
        snprintf(msg, sizeof msg, "hour %d out of range 0-23", hh);
        return fail(err, hpos, what, s, msg);
    }
    if (mi > 59) {
        snprintf(msg, sizeof msg, "minute %d out of range 0-59", mi);
        return fail(err, mipos, what, s, msg);
    }
    if (ss > 59) {
        snprintf(msg, sizeof msg, "second %d out of range 0-59", ss);
        return fail(err, spos, what, s, msg);
    }
    secs = days * 86400 + hh * 3600 + mi * 60 + ss;
    long off = 0;
    char c = s[pos];
    if (c == 'Z' || c == 'z') {
        pos++;
    } else if (c == '+' || c == '-') {
        int opos = pos;
        pos++;
        int oh, om = 0;
        if ((oh = digits(s, &pos, 2)) < 0)
            return fail(err, opos, what, s, "expected offset +HH:MM, +HHMM or +HH");
        if (s[pos] == ':') {
            pos++;
            if ((om = digits(s, &pos, 2)) < 0)
                return fail(err, opos, what, s, "expected offset +HH:MM, +HHMM or +HH");
        } else if (s[pos] >= '0' && s[pos] <= '9') {
            if ((om = digits(s, &pos, 2)) < 0)
                return fail(err, opos, what, s, "expected offset +HH:MM, +HHMM or +HH");
        }
        if (oh > 23 || om > 59) {
            snprintf(msg, sizeof msg, "offset out of range");
            return fail(err, opos, what, s, msg);
        }
        off = (oh * 3600L + om * 60L) * (c == '-' ? -1 : 1);
    }
    if (s[pos] != '\0')
        return fail(err, pos, what, s, "unexpected text after the time");
    *t = secs - off;
    return 0;
}

void date_split_instant(int64_t t, int *y, int *m, int *d, int *secs)
{
    int64_t days = t / 86400, rem = t % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    date_civil_from_days(days, y, m, d);
    *secs = (int)rem;
}

void date_format_instant(int64_t t, char *buf, size_t len)
{
    int y, m, d, rem;
    date_split_instant(t, &y, &m, &d, &rem);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, rem / 3600, rem / 60 % 60,
             rem % 60);
}
