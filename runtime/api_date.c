/* The plugin API's date and instant calls: runtime/date.c behind dr_* names. */
#include <dagrun/task.h>
#include <stdio.h>

#include "date.h"

DR_EXPORT int64_t dr_days_from_civil(int y, int m, int d)
{
    return date_days_from_civil(y, m, d);
}

DR_EXPORT void dr_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    date_civil_from_days(days, y, m, d);
}

/* Runs parse on s; on failure copies its message into why (may be NULL) and returns -1. */
static int parse_with(int (*parse)(const char *, int64_t *, struct dr_err *), const char *s,
                      int64_t *out, char *why, size_t whylen)
{
    struct dr_err err;
    err_clear(&err);
    if (parse(s, out, &err) == 0)
        return 0;
    if (why && whylen)
        snprintf(why, whylen, "%s", err.msg);
    return -1;
}

DR_EXPORT int dr_date_parse(const char *s, int64_t *days, char *why, size_t whylen)
{
    return parse_with(date_parse, s, days, why, whylen);
}

DR_EXPORT void dr_date_format(int64_t days, char *buf, size_t len)
{
    date_format(days, buf, len);
}

DR_EXPORT int dr_instant_parse(const char *s, int64_t *t, char *why, size_t whylen)
{
    return parse_with(date_parse_instant, s, t, why, whylen);
}

DR_EXPORT void dr_instant_format(int64_t t, char *buf, size_t len)
{
    date_format_instant(t, buf, len);
}
