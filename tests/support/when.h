/* Test support for the cron and time zone tests: an instant or a zone, or the
 * test fails. Header-only: it needs cmocka and the runtime's date.h and tz.h,
 * which the plugin tests do not link. Include after <cmocka.h>. */
#ifndef DAGRUN_TEST_WHEN_H
#define DAGRUN_TEST_WHEN_H

#include <stdint.h>

#include "date.h"
#include "tz.h"

/* The Unix time of an ISO-8601 instant such as "2026-03-08T07:00:00Z". */
static inline int64_t at(const char *iso)
{
    int64_t t;
    struct dr_err err;
    if (date_parse_instant(iso, &t, &err) != 0)
        fail_msg("%s: %s", iso, err.msg);
    return t;
}

/* The IANA zone `name`, e.g. "America/New_York". */
static inline const struct tz *zone(const char *name)
{
    struct dr_err err;
    const struct tz *z = tz_get(name, &err);
    if (!z)
        fail_msg("%s: %s", name, err.msg);
    return z;
}

#endif
