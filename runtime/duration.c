/* Durations such as 250ms, 2s, 5m, 1h, 1d: parsing into milliseconds and formatting back. */
#include "duration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DURATION_MAX_MS (365LL * 86400 * 1000)

static int fail(struct dr_err *err, int offset, const char *s, const char *why)
{
    err_set(err, "bad duration \"%s\": %s", s, why);
    if (err)
        err->offset = offset;
    return -1;
}

int duration_parse(const char *s, int64_t *ms, struct dr_err *err)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    if (!s || !*s)
        return fail(err, 0, s ? s : "", "empty (use e.g. 250ms, 2s, 5m, 1h, 1d)");
    if (*s == '-')
        return fail(err, 0, s, "negative durations are not allowed");
    if (*s < '0' || *s > '9')
        return fail(err, 0, s, "expected a number followed by ms, s, m, h or d");
    /* strtoll would also take blanks and signs: the first character is a digit, checked above. */
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    int upos = (int)(end - s);
    if (errno == ERANGE)
        return fail(err, 0, s, "over 365 days");
    if (*end == '.' || *end == ',')
        return fail(err, upos, s, "fractional values are not allowed (use a smaller unit: 1500ms)");
    if (*end == '\0') {
        if (v != 0)
            return fail(err, upos, s, "missing unit (ms, s, m, h or d)");
        *ms = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].name) != 0)
            continue;
        if (v > DURATION_MAX_MS / units[i].ms)
            return fail(err, 0, s, "over 365 days");
        *ms = (int64_t)v * units[i].ms;
        return 0;
    }
    char why[128];
    snprintf(why, sizeof why, "unknown unit \"%.16s\" (use ms, s, m, h or d)", end);
    return fail(err, upos, s, why);
}

void duration_format(int64_t ms, char *buf, size_t len)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].name);
            return;
        }
    }
    snprintf(buf, len, "%" PRId64 "ms", ms);
}
