/* libFuzzer target: date_parse, date_parse_instant and duration_parse, with format/parse round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the text that broke a round trip, so libFuzzer keeps the input. */
static void fail(const char *what, const char *in, const char *out)
{
    fprintf(stderr, "fuzz_time: %s: input \"%s\" gave \"%s\"\n", what, in, out);
    abort();
}

static void check_date(const char *s)
{
    struct dr_err err;
    int64_t days, back;
    char buf[32];
    if (date_parse(s, &days, &err) < 0) {
        if (err.offset < -1 || err.offset > (int)strlen(s))
            fail("date_parse error offset out of range", s, err.msg);
        return;
    }
    date_format(days, buf, sizeof buf);
    if (strcmp(buf, s) != 0)
        fail("date_format(date_parse(s)) != s", s, buf);
    if (date_parse(buf, &back, &err) < 0 || back != days)
        fail("date round trip", s, buf);
    int y, m, d;
    date_civil_from_days(days, &y, &m, &d);
    if (!date_valid(y, m, d) || date_days_from_civil(y, m, d) != days)
        fail("civil round trip", s, buf);
}

static void check_instant(const char *s)
{
    struct dr_err err;
    int64_t t, back;
    char buf[64];
    if (date_parse_instant(s, &t, &err) < 0)
        return;
    date_format_instant(t, buf, sizeof buf);
    /* An offset may move the instant out of the accepted years (1900-2999). */
    long year = strtol(buf, NULL, 10);
    if (year < 1900 || year > 2999)
        return;
    if (date_parse_instant(buf, &back, &err) < 0)
        fail("date_parse_instant refuses date_format_instant output", s, buf);
    if (back != t)
        fail("instant round trip changed the value", s, buf);
}

static void check_duration(const char *s)
{
    struct dr_err err;
    int64_t ms, back;
    char buf[64];
    if (duration_parse(s, &ms, &err) < 0)
        return;
    if (ms < 0 || ms > 365LL * 86400 * 1000)
        fail("duration out of range", s, "");
    duration_format(ms, buf, sizeof buf);
    if (duration_parse(buf, &back, &err) < 0)
        fail("duration_parse refuses duration_format output", s, buf);
    if (back != ms)
        fail("duration round trip changed the value", s, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char s[257];
    memcpy(s, data, size);
    s[size] = '\0';
    check_date(s);
    check_instant(s);
    check_duration(s);
    return 0;
}
