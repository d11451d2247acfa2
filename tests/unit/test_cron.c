/* Unit tests for runtime/cron.c: Vixie cron fields, names, macros, DST rules, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cron.h"
#include "prop.h"
#include "when.h"

/* ---------------------------------------------------------------- table of known schedules */

struct case_next {
    const char *expr, *zone, *from;
    const char *want[8];    /* successive fire times; NULL-terminated; "none" for -1 */
};

static const struct case_next cases[] = {
    /* India has no DST: 09:00 IST is 03:30Z on weekdays; 2026-03-06 is a Friday. */
    { "0 9 * * 1-5", "Asia/Kolkata", "2026-03-06T00:00:00Z",
      { "2026-03-06T03:30:00Z", "2026-03-09T03:30:00Z", "2026-03-10T03:30:00Z" } },
    { "30 18 * * 1-5", "Asia/Kolkata", "2026-03-06T13:00:00Z",
      { "2026-03-09T13:00:00Z", "2026-03-10T13:00:00Z" } },
    /* New York, spring 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z. Fixed-time jobs in the gap
     * fire once at its end; 03:00 EDT itself exists. */
    { "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
      { "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z" } },
    { "0,30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
      { "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z" } },
    { "30 2,3 * * *", "America/New_York", "2026-03-08T00:00:00Z",
      { "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z" } },
    { "0 3 * * *", "America/New_York", "2026-03-08T00:00:00Z", { "2026-03-08T07:00:00Z" } },
    /* Clock-following jobs: nothing in the gap. */
    { "*/30 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
      { "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z" } },
    { "15 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
      { "2026-03-08T06:15:00Z", "2026-03-08T07:15:00Z" } },
    { "*/15 2 * * *", "America/New_York", "2026-03-08T00:00:00Z",
      { "2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z" } },
    /* New York, fall 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z; 01:xx happens twice. */
    { "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
      { "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z" } },
    { "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", { "2026-11-02T06:30:00Z" } },
    { "*/30 1 * * *", "America/New_York", "2026-11-01T00:00:00Z",
      { "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z",
        "2026-11-02T06:00:00Z" } },
    { "@hourly", "America/New_York", "2026-11-01T04:30:00Z",
      { "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z" } },
    /* London, 2026-03-29: 01:00 GMT -> 02:00 BST at 01:00Z; 2026-10-25: 02:00 BST -> 01:00 GMT. */
    { "30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z",
      { "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z" } },
    { "*/20 1 * * *", "Europe/London", "2026-03-29T00:00:00Z",
      { "2026-03-30T00:00:00Z", "2026-03-30T00:20:00Z" } },
    { "30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z",
      { "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z" } },
    { "*/20 1 * * *", "Europe/London", "2026-10-25T00:00:00Z",
      { "2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:20:00Z",
        "2026-10-25T01:40:00Z", "2026-10-26T01:00:00Z" } },
    /* Lord Howe, 2026-10-04: a half-hour gap, 02:00 +10:30 -> 02:30 +11 at 15:30Z the day before.
     * Clock-following jobs fire from 02:30 on; a fixed 02:15 fires when the gap ends. */
    { "*/15 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:00:00Z",
      { "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "2026-10-04T15:00:00Z" } },
    { "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z",
      { "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z" } },
    /* Past the TZif table: the footer rule (2045-03-12 is the second Sunday of March). */
    { "30 2 * * *", "America/New_York", "2045-03-11T12:00:00Z",
      { "2045-03-12T07:00:00Z", "2045-03-13T06:30:00Z" } },
    /* Leap years and impossible days. */
    { "0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", { "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z" } },
    { "0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", { "none" } },
    { "0 0 31 4,6,9,11 *", "UTC", "2026-01-01T00:00:00Z", { "none" } },
    { "0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", { "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z" } },
    /* No horizon: February 29th on a Sunday (day of week "*\/7" starts with '*', so AND) comes
     * 28 or 40 years apart (2100 is not a leap year); the last one before 3000 is 2984. */
    { "0 0 29 2 */7", "UTC", "2026-01-01T00:00:00Z",
      { "2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z", "2128-02-29T00:00:00Z",
        "2156-02-29T00:00:00Z" } },
    { "0 0 29 2 */7", "UTC", "2032-03-01T00:00:00Z", { "2060-02-29T00:00:00Z" } },
    { "0 0 29 2 */7", "UTC", "2088-02-29T00:00:00Z", { "2128-02-29T00:00:00Z" } },
    { "0 0 29 2 */7", "America/New_York", "2026-01-01T00:00:00Z",
      { "2032-02-29T05:00:00Z", "2060-02-29T05:00:00Z" } },
    { "0 0 29 2 */7", "UTC", "2956-03-01T00:00:00Z", { "2984-02-29T00:00:00Z", "none" } },
    { "0 0 29 2 */7", "UTC", "2984-02-29T00:00:00Z", { "none" } },
    /* Both restricted: OR, so every Sunday in February fires too (2032-02-01 is a Sunday). */
    { "0 0 29 2 sun", "UTC", "2032-01-01T00:00:00Z",
      { "2032-02-01T00:00:00Z", "2032-02-08T00:00:00Z", "2032-02-15T00:00:00Z", "2032-02-22T00:00:00Z",
        "2032-02-29T00:00:00Z", "2033-02-06T00:00:00Z" } },
    /* Feb 29 every leap year: 2100, 2200, 2300 are not, 2400 is. */
    { "0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", { "2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z" } },
    { "0 0 29 2 *", "UTC", "2396-02-29T00:00:00Z", { "2400-02-29T00:00:00Z", "2404-02-29T00:00:00Z" } },
    { "0 12 29 2 *", "Asia/Kolkata", "2296-03-01T00:00:00Z", { "2304-02-29T06:30:00Z" } },
    /* "*\/10" in day of month counts as '*': AND with Sunday (2032-02-01 and -29 are Sundays;
     * the next Sunday on a 1st, 11th or 21st of February is 2035-02-11). */
    { "0 0 */10 2 0", "UTC", "2032-01-01T00:00:00Z", { "2032-02-01T00:00:00Z", "2035-02-11T00:00:00Z" } },
    /* Never, from anywhere. */
    { "0 0 31 2 *", "UTC", "2026-01-01T00:00:00Z", { "none" } },
    { "0 0 30 2 */7", "UTC", "1970-01-01T00:00:00Z", { "none" } },
    { "0 0 31 apr,jun,sep,nov */3", "UTC", "1970-01-01T00:00:00Z", { "none" } },
    { "0 0 31 4,6,9,11 */2", "Asia/Kolkata", "1970-01-01T00:00:00Z", { "none" } },
    /* Both restricted with an impossible day: the day of week still fires. */
    { "0 0 30 2 mon", "UTC", "2026-01-01T00:00:00Z", { "2026-02-02T00:00:00Z" } },
    /* The last supported year: fire times up to 2999-12-31 local, nothing after. */
    { "59 23 31 12 *", "UTC", "2999-12-31T00:00:00Z", { "2999-12-31T23:59:00Z", "none" } },
    { "* * * * *", "UTC", "2999-12-31T23:58:00Z", { "2999-12-31T23:59:00Z", "none" } },
    { "0 0 1 1 *", "UTC", "2999-12-31T00:00:00Z", { "none" } },
    { "30 23 31 12 *", "America/New_York", "2999-12-31T00:00:00Z", { "3000-01-01T04:30:00Z", "none" } },
    { "0 0 * * */7", "UTC", "2999-12-01T00:00:00Z",
      { "2999-12-08T00:00:00Z", "2999-12-15T00:00:00Z", "2999-12-22T00:00:00Z", "2999-12-29T00:00:00Z",
        "none" } },
    /* Day of month OR day of week when both are restricted (2026-01-01 is a Thursday). */
    { "0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z",
      { "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z",
        "2026-01-23T00:00:00Z", "2026-01-30T00:00:00Z", "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z" } },
    { "0 0 1-31/2 * 5", "UTC", "2026-01-01T00:00:00Z", { "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z" } },
    /* ... AND when either starts with '*', even "*\/2". */
    { "0 0 */2 * 5", "UTC", "2026-01-01T00:00:00Z",
      { "2026-01-09T00:00:00Z", "2026-01-23T00:00:00Z", "2026-02-13T00:00:00Z" } },
    { "0 0 */5 * 1", "UTC", "2026-01-01T00:00:00Z", { "2026-01-26T00:00:00Z", "2026-02-16T00:00:00Z" } },
    { "0 0 13 * */2", "UTC", "2026-01-01T00:00:00Z", { "2026-01-13T00:00:00Z", "2026-06-13T00:00:00Z" } },
    { "0 0 13 * *", "UTC", "2026-01-01T00:00:00Z", { "2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z" } },
    /* crontab(5)'s examples: "4:00 on the 1st and 15th of each month, plus every Friday";
     * "23 minutes after midnight, 2am, 4am ..., everyday"; "at 5 after 4 every Sunday". */
    { "0 4 1,15 * 5", "UTC", "2026-01-01T00:00:00Z",
      { "2026-01-01T04:00:00Z", "2026-01-02T04:00:00Z", "2026-01-09T04:00:00Z", "2026-01-15T04:00:00Z",
        "2026-01-16T04:00:00Z", "2026-01-23T04:00:00Z", "2026-01-30T04:00:00Z", "2026-02-01T04:00:00Z" } },
    { "23 0-23/2 * * *", "UTC", "2026-01-01T00:00:00Z",
      { "2026-01-01T00:23:00Z", "2026-01-01T02:23:00Z", "2026-01-01T04:23:00Z" } },
    { "5 4 * * sun", "UTC", "2026-01-01T00:00:00Z", { "2026-01-04T04:05:00Z", "2026-01-11T04:05:00Z" } },
    /* Names, any case; 0 and 7 are both Sunday. */
    { "0 12 * jan,JUL Mon-Fri", "UTC", "2026-01-31T00:00:00Z", { "2026-07-01T12:00:00Z", "2026-07-02T12:00:00Z" } },
    { "0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", { "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z" } },
    { "0 0 * * sun", "UTC", "2026-01-01T00:00:00Z", { "2026-01-04T00:00:00Z" } },
    { "0 0 * * 0", "UTC", "2026-01-01T00:00:00Z", { "2026-01-04T00:00:00Z" } },
    { "0 0 * * 5-7", "UTC", "2026-01-01T00:00:00Z",
      { "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z" } },
    { "0 0 1 dec-DEC *", "UTC", "2026-01-01T00:00:00Z", { "2026-12-01T00:00:00Z" } },
    /* Steps, ranges and lists. */
    { "10-20/5 * * * *", "UTC", "2026-01-01T00:16:00Z",
      { "2026-01-01T00:20:00Z", "2026-01-01T01:10:00Z", "2026-01-01T01:15:00Z" } },
    { "0 */6 * * *", "UTC", "2026-01-01T05:00:00Z", { "2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z" } },
    { "59 23 31 12 *", "UTC", "2026-01-01T00:00:00Z", { "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z" } },
    { "* * * * *", "UTC", "2026-01-01T00:00:30Z", { "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z" } },
    /* Macros (2026-03-06 is a Friday). */
    { "@yearly", "UTC", "2026-03-06T00:00:00Z", { "2027-01-01T00:00:00Z" } },
    { "@annually", "UTC", "2026-03-06T00:00:00Z", { "2027-01-01T00:00:00Z" } },
    { "@monthly", "UTC", "2026-03-06T00:00:00Z", { "2026-04-01T00:00:00Z" } },
    { "@weekly", "UTC", "2026-03-06T00:00:00Z", { "2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z" } },
    { "@daily", "UTC", "2026-03-06T00:00:00Z", { "2026-03-07T00:00:00Z" } },
    { "@midnight", "Asia/Kolkata", "2026-03-06T00:00:00Z", { "2026-03-06T18:30:00Z" } },
    { "@hourly", "UTC", "2026-03-06T00:00:00Z", { "2026-03-06T01:00:00Z" } },
};

static void test_cron_known_schedules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct case_next *k = &cases[i];
        struct dr_err err;
        struct cron *c = cron_parse(k->expr, &err);
        if (!c)
            fail_msg("\"%s\": %s", k->expr, err.msg);
        assert_string_equal(cron_text(c), k->expr);
        const struct tz *z = zone(k->zone);
        int64_t t = at(k->from);
        for (int j = 0; j < 8 && k->want[j]; j++) {
            int64_t next = 0;
            int rc = cron_next(c, z, t, &next);
            char got[32] = "none";
            if (rc == 0)
                date_format_instant(next, got, sizeof got);
            if (strcmp(got, k->want[j]) != 0)
                fail_msg("\"%s\" in %s after %s (step %d): got %s, want %s", k->expr, k->zone, k->from, j, got,
                         k->want[j]);
            t = next;
        }
        cron_free(c);
    }
}

/* ---------------------------------------------------------------- bad expressions */

static void test_cron_refuses_bad_expressions(void **state)
{
    (void)state;
    static const struct { const char *expr; int offset; const char *why; } bad[] = {
        { "30 18 * * 8", 10, "day of week 8 out of range 0-7" },
        { "60 * * * *", 0, "minute 60 out of range 0-59" },
        { "* 24 * * *", 2, "hour 24 out of range 0-23" },
        { "* * 0 * *", 4, "day of month 0 out of range 1-31" },
        { "* * 32 * *", 4, "day of month 32 out of range 1-31" },
        { "* * * 13 *", 6, "month 13 out of range 1-12" },
        { "* * * 0 *", 6, "month 0 out of range 1-12" },
        { "* * * foo *", 6, "unknown month \"foo\" (use 1-12 or jan-dec)" },
        { "* * * * funday", 8, "unknown day of week \"funday\" (use 0-7 or sun-sat)" },
        { "* * * * monday", 8, "unknown day of week \"monday\" (use 0-7 or sun-sat)" },
        { "* * * *", 7, "expected 5 fields (minute hour day-of-month month day-of-week), got 4" },
        { "", 0, "expected 5 fields (minute hour day-of-month month day-of-week), got 0" },
        { "* * * * * *", 10, "expected 5 fields (minute hour day-of-month month day-of-week), got more" },
        { "*/0 * * * *", 0, "minute: step 0 must be at least 1" },
        { "5-1 * * * *", 0, "minute range 5-1 is backwards" },
        { "0 0 * * fri-mon", 8, "day of week range 5-1 is backwards" },
        { "5/10 * * * *", 0, "minute: a step needs a range or * (e.g. 5-59/n)" },
        { "1,,2 * * * *", 0, "minute: empty list item" },
        { "1, * * * *", 0, "minute: empty list item" },
        { "a * * * *", 0, "minute \"a\" is not a number" },
        { "0 jan * * *", 2, "hour \"jan\" is not a number" },
        { "*x * * * *", 0, "minute: unexpected \"x\" after *" },
        { "1-2-3 * * * *", 0, "minute: unexpected \"-\"" },
        { "*/x * * * *", 0, "minute: step \"x\" is not a number" },
        { "0 0 1-/2 * *", 4, "day of month: missing value" },
        { "99999999999 * * * *", 0, "minute 99999999999 out of range 0-59" },
        { "@reboot", 0, "unknown macro \"@reboot\" (use @yearly, @annually, @monthly, @weekly, @daily, "
                        "@midnight or @hourly)" },
        { "@daily 5", 7, "nothing may follow a macro" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_err err;
        err.offset = -7;
        struct cron *c = cron_parse(bad[i].expr, &err);
        if (c)
            fail_msg("\"%s\" accepted", bad[i].expr);
        char want[512];
        snprintf(want, sizeof want, "bad cron \"%s\": %s", bad[i].expr, bad[i].why);
        assert_string_equal(err.msg, want);
        if (err.offset != bad[i].offset)
            fail_msg("\"%s\": offset %d, want %d", bad[i].expr, err.offset, bad[i].offset);
    }
}

static void test_cron_accepts_spacing_and_case(void **state)
{
    (void)state;
    static const char *ok[] = { "  0   9\t* *  1-5 ", "0 0 * JAN-mar SUN", "@DAILY", " @weekly ", "*/100 * * * *",
                                "0-59/59 0-23/23 1-31/30 1-12/11 0-7/7", "1,2,3-5,*/20 * * * *" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct dr_err err;
        struct cron *c = cron_parse(ok[i], &err);
        if (!c)
            fail_msg("\"%s\": %s", ok[i], err.msg);
        cron_free(c);
    }
    cron_free(NULL);
}

/* Starts outside the supported years: nothing after 2999, and the first second of year 1 for
 * any earlier start, with no overflow on the way (the asan build runs UBSan). */
static void test_cron_extreme_starts(void **state)
{
    (void)state;
    struct dr_err err;
    struct cron *c = cron_parse("0 0 1 1 *", &err);
    assert_non_null(c);
    static const char *const zones[] = { "UTC", "America/New_York", "Asia/Kolkata" };
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        const struct tz *z = zone(zones[i]);
        int64_t next = 123;
        assert_int_equal(cron_next(c, z, INT64_MAX, &next), -1);
        assert_int_equal(cron_next(c, z, date_days_from_civil(3000, 1, 2) * 86400, &next), -1);
        assert_int_equal(next, 123);
        int64_t year1 = date_days_from_civil(1, 1, 1) * 86400;
        assert_int_equal(cron_next(c, z, INT64_MIN, &next), 0);
        int64_t first = next;
        assert_int_equal(cron_next(c, z, year1 - 400LL * 86400, &next), 0);
        assert_int_equal(next, first);
        if (strcmp(zones[i], "UTC") == 0)
            assert_int_equal(first, year1);
        else
            assert_true(first > year1 - 86400 && first < year1 + 367 * 86400);   /* year 1 or 2 */
    }
    cron_free(c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The slowest searches there are: decades between fires, or none up to 2999. The answers are
 * asserted; the time per call is printed only (timing goals belong in tests/bench). */
static void test_cron_far_and_impossible_searches(void **state)
{
    (void)state;
    static const struct { const char *expr, *zone, *from, *want; int calls; } far[] = {
        { "0 0 29 2 */7", "UTC", "2088-03-01T00:00:00Z", "2128-02-29T00:00:00Z", 1000 },
        { "0 0 29 2 */7", "America/New_York", "2032-03-01T00:00:00Z", "2060-02-29T05:00:00Z", 1000 },
        { "0 0 30 2 *", "America/New_York", "2026-01-01T00:00:00Z", "none", 1000 },
        { "0 0 31 4,6,9,11 *", "Asia/Kolkata", "1970-01-01T00:00:00Z", "none", 1000 },
        { "* * 29 2 */7", "UTC", "1900-01-01T00:00:00Z", "1920-02-29T00:00:00Z", 1000 },
        { "0 0 29 2 */7", "Asia/Kolkata", "2984-03-01T00:00:00Z", "none", 1000 },
        /* Clock-following, only in New York's spring-forward hour (second Sunday of March at
         * 02:xx, since 2007): a matching day every year, none with a fire, to 2999. */
        { "*/30 2 8-14 3 */7", "America/New_York", "2026-01-01T00:00:00Z", "none", 100 },
        { "* 2 8-14 3 */7", "America/New_York", "2026-01-01T00:00:00Z", "none", 100 },
    };
    for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
        struct dr_err err;
        struct cron *c = cron_parse(far[i].expr, &err);
        if (!c)
            fail_msg("\"%s\": %s", far[i].expr, err.msg);
        const struct tz *z = zone(far[i].zone);
        int64_t from = at(far[i].from);
        double t0 = now_s();
        for (int k = 0; k < far[i].calls; k++) {
            int64_t next = 123;
            int rc = cron_next(c, z, from + k * 60, &next);
            char got[32] = "none";
            if (rc == 0)
                date_format_instant(next, got, sizeof got);
            else
                assert_int_equal(next, 123);
            if (strcmp(got, far[i].want) != 0)
                fail_msg("\"%s\" in %s after %s: got %s, want %s", far[i].expr, far[i].zone, far[i].from, got,
                         far[i].want);
        }
        double us = (now_s() - t0) * 1e6 / far[i].calls;
        print_message("cron_next \"%s\" in %s from %s: %.1f us per call (%d calls)\n", far[i].expr,
                      far[i].zone, far[i].from, us, far[i].calls);
        cron_free(c);
    }
}

/* ---------------------------------------------------------------- reference evaluator */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    return prop_xorshift(&rng_state);
}

static int rnd_in(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

/* A generated expression with the match sets the generator meant, built without cron.c. */
struct gen {
    char text[256];
    uint64_t bits[5];
    bool star[5];
};

static const int gen_lo[5] = { 0, 0, 1, 1, 0 }, gen_hi[5] = { 59, 23, 31, 12, 7 };
static const char *const gen_mon[] = { "jan", "FEB", "Mar", "apr", "May", "jun", "JUL", "aug", "sep", "Oct",
                                       "nov", "dec" };
static const char *const gen_dow[] = { "sun", "Mon", "TUE", "wed", "thu", "fri", "sat" };

static void gen_value(int f, int v, char *buf, size_t len)
{
    if (f == 3 && rnd() % 3 == 0)
        snprintf(buf, len, "%s", gen_mon[v - 1]);
    else if (f == 4 && v < 7 && rnd() % 3 == 0)
        snprintf(buf, len, "%s", gen_dow[v]);
    else
        snprintf(buf, len, "%d", v);
}

/* Appends one list item of field f to out, setting its values in *bits. */
static void gen_item(int f, bool allow_star, char *out, size_t len, uint64_t *bits)
{
    int lo = gen_lo[f], hi = gen_hi[f];
    int kind = rnd_in(allow_star ? 0 : 2, 4);
    char a_s[16], b_s[16];
    int a, b, step = 1;
    switch (kind) {
    case 0:
    case 1:
        a = lo;
        b = hi;
        if (kind == 1) {
            step = rnd_in(1, hi - lo + 1);
            snprintf(out + strlen(out), len - strlen(out), "*/%d", step);
        } else {
            snprintf(out + strlen(out), len - strlen(out), "*");
        }
        break;
    case 2:
        a = b = rnd_in(lo, hi);
        gen_value(f, a, a_s, sizeof a_s);
        snprintf(out + strlen(out), len - strlen(out), "%s", a_s);
        break;
    default:
        a = rnd_in(lo, hi);
        b = rnd_in(a, hi);
        gen_value(f, a, a_s, sizeof a_s);
        gen_value(f, b, b_s, sizeof b_s);
        if (kind == 4) {
            step = rnd_in(1, 12);
            snprintf(out + strlen(out), len - strlen(out), "%s-%s/%d", a_s, b_s, step);
        } else {
            snprintf(out + strlen(out), len - strlen(out), "%s-%s", a_s, b_s);
        }
        break;
    }
    for (int v = a; v <= b; v += step)
        *bits |= 1ULL << v;
}

/* frequent: keep day of month and month as '*' so that a DST window sees fires. */
static void gen_expr(struct gen *g, bool frequent)
{
    memset(g, 0, sizeof *g);
    for (int f = 0; f < 5; f++) {
        char field[96] = "";
        if (frequent && (f == 2 || f == 3)) {
            strcpy(field, "*");
            g->bits[f] = ((1ULL << (gen_hi[f] + 1)) - 1) & ~((1ULL << gen_lo[f]) - 1);
        } else {
            int items = rnd() % 4 == 0 ? rnd_in(2, 3) : 1;
            for (int i = 0; i < items; i++) {
                if (i)
                    strcat(field, ",");
                /* '*' mostly first, where it also sets the field's star flag. */
                gen_item(f, i == 0 || rnd() % 4 == 0, field, sizeof field, &g->bits[f]);
            }
        }
        g->star[f] = field[0] == '*';
        if (g->bits[4] & (1ULL << 7))
            g->bits[4] |= 1;
        snprintf(g->text + strlen(g->text), sizeof g->text - strlen(g->text), "%s%s", f ? " " : "", field);
    }
}

static bool gen_matches(const struct gen *g, const struct tm *tm)
{
    if (!(g->bits[0] >> tm->tm_min & 1) || !(g->bits[1] >> tm->tm_hour & 1) || !(g->bits[3] >> (tm->tm_mon + 1) & 1))
        return false;
    bool dm = g->bits[2] >> tm->tm_mday & 1, wm = g->bits[4] >> tm->tm_wday & 1;
    return g->star[2] || g->star[4] ? dm && wm : dm || wm;
}

/* Reference for a fixed-offset zone: walk minute by minute (whole days at a time when the day
 * cannot match), reading wall time with gmtime_r. Returns -1 when nothing fires by `until`. */
static int64_t ref_next_fixed(const struct gen *g, long offset, int64_t after, int64_t until)
{
    int64_t t = (after / 60 + 1) * 60;
    if (after < 0 && after % 60)
        t = (after / 60) * 60;
    while (t <= until) {
        time_t w = (time_t)(t + offset);
        struct tm tm;
        gmtime_r(&w, &tm);
        struct tm day = tm;
        /* Whole-day skip: test the day with an hour and minute the job has. */
        int h = __builtin_ctzll(g->bits[1]), m = __builtin_ctzll(g->bits[0]);
        day.tm_hour = h;
        day.tm_min = m;
        if (!gen_matches(g, &day)) {
            t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
            continue;
        }
        if (gen_matches(g, &tm))
            return t;
        t += 60;
    }
    return -1;
}

static void test_cron_matches_reference_fixed_offsets(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    rng_state = seed;
    static const struct { const char *zone; long off; } zones[] = { { "UTC", 0 }, { "Asia/Kolkata", 19800 } };
    for (int i = 0; i < 600; i++) {
        struct gen g;
        gen_expr(&g, false);
        struct dr_err err;
        struct cron *c = cron_parse(g.text, &err);
        if (!c) {
            print_error("seed %llu (DR_TEST_SEED): \"%s\": %s\n", (unsigned long long)seed, g.text, err.msg);
            fail();
        }
        int zi = i % 2;
        const struct tz *z = zone(zones[zi].zone);
        /* Kolkata has had +05:30 since 1945. */
        int64_t t = at("1990-01-01T00:00:00Z") + (int64_t)(rnd() % (60ULL * 365 * 86400));
        if (rnd() % 2)
            t -= t % 60;
        for (int step = 0; step < 4; step++) {
            int64_t until = t + 5LL * 366 * 86400;
            int64_t want = ref_next_fixed(&g, zones[zi].off, t, until), got = 0;
            int rc = cron_next(c, z, t, &got);
            bool ok = want >= 0 ? rc == 0 && got == want : rc == -1 || got > until;
            if (!ok) {
                char a[32], b[32], w[32];
                date_format_instant(t, a, sizeof a);
                date_format_instant(got, b, sizeof b);
                date_format_instant(want, w, sizeof w);
                print_error("seed %llu (DR_TEST_SEED): \"%s\" %s after %s: got %s (rc %d), want %s\n",
                            (unsigned long long)seed, g.text, zones[zi].zone, a, b, rc, want >= 0 ? w : "none");
                fail();
            }
            if (want < 0)
                break;
            t = want;
        }
        cron_free(c);
    }
}

/* Expressions whose days are rare or never come: days 28-31, February and the 30-day months,
 * day of week as "*\/k" (so ANDed with the day of month). */
static void gen_rare(struct gen *g)
{
    static const char *const short_mon[] = { "2", "feb", "4,6,9,11", "apr,jun,sep,nov", "2,4", "2-2/1",
                                             "feb,apr-apr" };
    static const uint64_t short_mon_bits[] = { 1 << 2, 1 << 2, 1 << 4 | 1 << 6 | 1 << 9 | 1 << 11,
                                               1 << 4 | 1 << 6 | 1 << 9 | 1 << 11, 1 << 2 | 1 << 4, 1 << 2,
                                               1 << 2 | 1 << 4 };
    memset(g, 0, sizeof *g);
    for (int f = 0; f < 5; f++) {
        char field[96] = "";
        int r = (int)(rnd() % 4);
        if (f == 2 && r < 2) {
            int a = rnd_in(28, 31), b = r ? rnd_in(a, 31) : a;
            snprintf(field, sizeof field, r ? "%d-%d" : "%d", a, b);
            for (int v = a; v <= b; v++)
                g->bits[f] |= 1ULL << v;
        } else if (f == 3 && r < 3) {
            int k = rnd_in(0, (int)(sizeof short_mon / sizeof short_mon[0]) - 1);
            snprintf(field, sizeof field, "%s", short_mon[k]);
            g->bits[f] = short_mon_bits[k];
        } else if (f == 4 && r < 2) {
            int k = rnd_in(1, 7);
            snprintf(field, sizeof field, "*/%d", k);
            for (int v = 0; v <= 7; v += k)
                g->bits[f] |= 1ULL << v;
        } else {
            gen_item(f, true, field, sizeof field, &g->bits[f]);
        }
        g->star[f] = field[0] == '*';
        snprintf(g->text + strlen(g->text), sizeof g->text - strlen(g->text), "%s%s", f ? " " : "", field);
    }
    if (g->bits[4] & (1ULL << 7))
        g->bits[4] |= 1;
}

static bool ref_leap(int y)
{
    return y % 400 == 0 || (y % 4 == 0 && y % 100 != 0);
}

/* Reference in UTC with no horizon but the last supported day, 2999-12-31: walk day by day with
 * a calendar of its own (date, weekday, leap years), then minute by minute within a matching
 * day. Returns -1 when nothing fires after `after` by 2999-12-31T23:59Z. */
static int64_t ref_next_utc(const struct gen *g, int64_t after)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int64_t first_min = after / 60 + 1 - (after < 0 && after % 60 ? 1 : 0);
    int64_t t = first_min * 60;
    int64_t day = t / 86400 - (t % 86400 < 0 ? 1 : 0);
    int start_min = (int)((t - day * 86400) / 60);
    time_t d0 = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&d0, &tm);
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday, wday = tm.tm_wday;
    for (; y <= 2999; day++, start_min = 0) {
        struct tm at_day = { .tm_mday = d, .tm_mon = m - 1, .tm_wday = wday };
        for (int mi = start_min; mi < 1440; mi++) {
            at_day.tm_hour = mi / 60;
            at_day.tm_min = mi % 60;
            if (mi == start_min && !(g->bits[3] >> m & 1))
                break;
            if (gen_matches(g, &at_day))
                return day * 86400 + mi * 60;
        }
        wday = (wday + 1) % 7;
        if (++d > (m == 2 && ref_leap(y) ? 29 : dim[m - 1])) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return INT64_MIN;
}

static void test_cron_matches_reference_to_2999(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    rng_state = seed ^ 0x2999;
    int64_t lo = at("1900-01-01T00:00:00Z"), hi = at("2999-12-31T23:59:59Z");
    int fired = 0, never = 0;
    for (int i = 0; i < 400; i++) {
        struct gen g;
        gen_rare(&g);
        struct dr_err err;
        struct cron *c = cron_parse(g.text, &err);
        if (!c) {
            print_error("seed %llu (DR_TEST_SEED): \"%s\": %s\n", (unsigned long long)seed, g.text, err.msg);
            fail();
        }
        /* Anywhere in the supported years, a quarter of them in the last decade. */
        int64_t t = rnd() % 4 ? lo + (int64_t)(rnd() % (uint64_t)(hi - lo)) : hi - (int64_t)(rnd() % (10ULL * 366 * 86400));
        if (rnd() % 2)
            t -= t % 60;
        for (int step = 0; step < 3; step++) {
            int64_t want = ref_next_utc(&g, t), got = 0;
            int rc = cron_next(c, NULL, t, &got);
            if (want != INT64_MIN ? rc != 0 || got != want : rc != -1) {
                char a[32], b[32], w[32];
                date_format_instant(t, a, sizeof a);
                date_format_instant(got, b, sizeof b);
                date_format_instant(want, w, sizeof w);
                print_error("seed %llu (DR_TEST_SEED): \"%s\" UTC after %s: got %s (rc %d), want %s\n",
                            (unsigned long long)seed, g.text, a, rc ? "none" : b, rc, want != INT64_MIN ? w : "none");
                fail();
            }
            if (want == INT64_MIN) {
                never++;
                break;
            }
            fired++;
            t = want;
        }
        cron_free(c);
    }
    print_message("seed %llu: %d fires and %d \"never\" agree with the day-by-day reference\n",
                  (unsigned long long)seed, fired, never);
}

/* Reference for DST zones, written from the rules rather than from cron.c's search: walk instants
 * minute by minute. A clock-following job fires whenever the wall clock shows a matching time.
 * A fixed-time job fires at a matching wall time unless the clock already showed it (a fall-back
 * repeat), and at the end of a gap if any skipped wall time matches. */
static int64_t ref_next_dst(const struct gen *g, const struct tz *z, int64_t after, int64_t until)
{
    bool fixed = !g->star[0] && !g->star[1];
    int64_t t = (after / 60 + 1) * 60;
    for (; t <= until; t += 60) {
        struct tm tm;
        tz_localtime(z, t, &tm);
        long o = tm.tm_gmtoff, op = tz_offset_at(z, t - 60);
        bool m = gen_matches(g, &tm);
        if (!fixed) {
            if (m)
                return t;
            continue;
        }
        if (m) {
            bool repeat = false;
            for (int64_t d = 1800; d <= 7200; d += 1800) {
                if (t - d + tz_offset_at(z, t - d) == t + o)
                    repeat = true;
            }
            if (!repeat)
                return t;
        }
        if (o > op) {
            for (int64_t w = t + op; w < t + o; w += 60) {
                time_t wt = (time_t)w;
                struct tm s;
                gmtime_r(&wt, &s);
                if (gen_matches(g, &s))
                    return t;
            }
        }
    }
    return -1;
}

static void test_cron_matches_reference_across_dst(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    rng_state = seed ^ 0x5bd1e995;
    static const char *changes[][2] = {
        { "America/New_York", "2026-03-08T07:00:00Z" }, { "America/New_York", "2026-11-01T06:00:00Z" },
        { "Europe/London", "2026-03-29T01:00:00Z" },    { "Europe/London", "2026-10-25T01:00:00Z" },
        { "America/New_York", "2041-03-10T07:00:00Z" }, { "Europe/London", "2047-10-27T01:00:00Z" },
    };
    for (int i = 0; i < 300; i++) {
        struct gen g;
        gen_expr(&g, true);
        struct dr_err err;
        struct cron *c = cron_parse(g.text, &err);
        if (!c) {
            print_error("seed %llu (DR_TEST_SEED): \"%s\": %s\n", (unsigned long long)seed, g.text, err.msg);
            fail();
        }
        int ci = (int)(rnd() % 6);
        const struct tz *z = zone(changes[ci][0]);
        int64_t t = at(changes[ci][1]) - 3 * 86400 + (int64_t)(rnd() % (5 * 86400));
        int64_t until = at(changes[ci][1]) + 9 * 86400;
        for (int step = 0; step < 30; step++) {
            int64_t want = ref_next_dst(&g, z, t, until), got = 0;
            int rc = cron_next(c, z, t, &got);
            bool ok = want >= 0 ? rc == 0 && got == want : rc == -1 || got > until;
            if (!ok) {
                char a[32], b[32], w[32];
                date_format_instant(t, a, sizeof a);
                date_format_instant(got, b, sizeof b);
                date_format_instant(want, w, sizeof w);
                print_error("seed %llu (DR_TEST_SEED): \"%s\" %s after %s: got %s (rc %d), want %s\n",
                            (unsigned long long)seed, g.text, changes[ci][0], a, b, rc, want >= 0 ? w : "none");
                fail();
            }
            if (want < 0)
                break;
            t = want;
        }
        cron_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_known_schedules),
        cmocka_unit_test(test_cron_refuses_bad_expressions),
        cmocka_unit_test(test_cron_accepts_spacing_and_case),
        cmocka_unit_test(test_cron_far_and_impossible_searches),
        cmocka_unit_test(test_cron_extreme_starts),
        cmocka_unit_test(test_cron_matches_reference_fixed_offsets),
        cmocka_unit_test(test_cron_matches_reference_across_dst),
        cmocka_unit_test(test_cron_matches_reference_to_2999),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
