/* Unit tests for runtime/due.c: which scheduled intervals are due (catchup on and off,
 * start_date in the future, missed intervals, DST zones), without PostgreSQL. */
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
#include "due.h"
#include "when.h"

#define NONE INT64_MIN

/* A rule for expr in zone name; start "YYYY-MM-DD" or NULL. The cron leaks per test
 * (freed by free_rule). */
static struct due_rule rule(const char *expr, const char *name, const char *start, bool catchup)
{
    struct dr_err err;
    struct cron *c = cron_parse(expr, &err);
    if (!c)
        fail_msg("%s: %s", expr, err.msg);
    int64_t day = NONE;
    if (start) {
        char iso[32];
        snprintf(iso, sizeof iso, "%sT00:00:00Z", start);
        day = at(iso) / 86400;
    }
    return (struct due_rule){ .cron = c, .tz = zone(name), .start_date = day, .catchup = catchup };
}

static void free_rule(struct due_rule *r) { cron_free((struct cron *)r->cron); }

/* Asserts that the due intervals are exactly want (pairs of ISO instants, NULL-ended). */
static void expect(const struct due_rule *r, const char *last, const char *now, size_t max,
                   const char *const *want)
{
    struct due_interval out[64];
    size_t n = due_intervals(r, last != NULL, last ? at(last) : 0, at(now), out, max);
    size_t k = 0;
    for (; want[2 * k]; k++) {
        if (k >= n)
            fail_msg("interval %zu missing: want [%s, %s)", k, want[2 * k], want[2 * k + 1]);
        assert_int_equal(out[k].start, at(want[2 * k]));
        assert_int_equal(out[k].end, at(want[2 * k + 1]));
    }
    assert_int_equal(n, k);
}

static const char *const none[] = { NULL };

static void catchup_runs_every_missed_interval_from_start_date(void **state)
{
    (void)state;
    struct due_rule r = rule("@daily", "UTC", "2026-01-01", true);
    const char *const want[] = { "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
                                 "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z",
                                 "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", NULL };
    expect(&r, NULL, "2026-01-04T12:00:00Z", 64, want);
    /* max bounds the list: the oldest first. */
    const char *const two[] = { "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
                                "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", NULL };
    expect(&r, NULL, "2026-01-04T12:00:00Z", 2, two);
    free_rule(&r);
}

static void catchup_goes_on_after_the_last_scheduled_run(void **state)
{
    (void)state;
    struct due_rule r = rule("0 9 * * 1-5", "Asia/Kolkata", "2026-01-01", true);
    /* Last run: Monday 2026-03-02; now Friday 2026-03-06 10:00 IST: Tue..Thu ended and
     * Thursday's interval ends Friday 09:00 IST (03:30Z); an end equal to now is due. */
    const char *const want[] = { "2026-03-03T03:30:00Z", "2026-03-04T03:30:00Z",
                                 "2026-03-04T03:30:00Z", "2026-03-05T03:30:00Z",
                                 "2026-03-05T03:30:00Z", "2026-03-06T03:30:00Z", NULL };
    expect(&r, "2026-03-02T03:30:00Z", "2026-03-06T03:30:00Z", 64, want);
    /* A second before Friday's tick, Thursday's interval is not over. */
    const char *const two[] = { "2026-03-03T03:30:00Z", "2026-03-04T03:30:00Z",
                                "2026-03-04T03:30:00Z", "2026-03-05T03:30:00Z", NULL };
    expect(&r, "2026-03-02T03:30:00Z", "2026-03-06T03:29:59Z", 64, two);
    /* The weekend is one interval, Friday to Monday. */
    const char *const weekend[] = { "2026-03-06T03:30:00Z", "2026-03-09T03:30:00Z", NULL };
    expect(&r, "2026-03-05T03:30:00Z", "2026-03-09T04:00:00Z", 64, weekend);
    free_rule(&r);
}

static void catchup_off_fires_only_the_latest(void **state)
{
    (void)state;
    struct due_rule r = rule("@daily", "UTC", "2026-01-01", false);
    const char *const want[] = { "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", NULL };
    expect(&r, NULL, "2026-01-04T12:00:00Z", 64, want);
    expect(&r, "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z", 64, want);
    /* The latest was run already: nothing. */
    expect(&r, "2026-01-03T00:00:00Z", "2026-01-04T12:00:00Z", 64, none);
    /* No interval has ended yet. */
    expect(&r, NULL, "2026-01-01T23:59:59Z", 64, none);
    free_rule(&r);
}

static void no_start_date_means_the_latest_only(void **state)
{
    (void)state;
    struct due_rule r = rule("0 * * * *", "UTC", NULL, true);
    const char *const want[] = { "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", NULL };
    expect(&r, NULL, "2026-05-01T11:20:00Z", 64, want);
    free_rule(&r);
}

static void start_date_in_the_future_fires_nothing(void **state)
{
    (void)state;
    for (int catchup = 0; catchup < 2; catchup++) {
        struct due_rule r = rule("@hourly", "UTC", "2026-06-01", catchup);
        expect(&r, NULL, "2026-05-31T23:30:00Z", 64, none);
        /* The first interval after start_date ends at 01:00. */
        expect(&r, NULL, "2026-06-01T00:59:59Z", 64, none);
        const char *const first[] = { "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z", NULL };
        expect(&r, NULL, "2026-06-01T01:00:00Z", 64, first);
        free_rule(&r);
    }
}

static void start_date_is_midnight_in_the_dags_zone(void **state)
{
    (void)state;
    /* 2026-03-06 00:00 IST is 2026-03-05T18:30Z: the daily run for that day is due at the
     * next midnight IST, not at a UTC midnight. */
    struct due_rule r = rule("@daily", "Asia/Kolkata", "2026-03-06", true);
    const char *const want[] = { "2026-03-05T18:30:00Z", "2026-03-06T18:30:00Z", NULL };
    expect(&r, NULL, "2026-03-06T18:30:00Z", 64, want);
    expect(&r, NULL, "2026-03-06T18:29:59Z", 64, none);
    free_rule(&r);
}

static void dst_spring_forward_gives_a_short_interval(void **state)
{
    (void)state;
    /* London, 2026-03-29: 01:00 GMT -> 02:00 BST; that day lasts 23 hours. */
    struct due_rule r = rule("0 0 * * *", "Europe/London", "2026-03-28", true);
    const char *const want[] = { "2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z",
                                 "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z",
                                 "2026-03-29T23:00:00Z", "2026-03-30T23:00:00Z", NULL };
    expect(&r, NULL, "2026-03-31T12:00:00Z", 64, want);
    free_rule(&r);
    /* New York, 2026-03-08: 02:30 does not exist; the job fires at the gap's end (03:00
     * EDT, 07:00Z), once. */
    r = rule("30 2 * * *", "America/New_York", NULL, true);
    const char *const gap[] = { "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z",
                                "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", NULL };
    expect(&r, "2026-03-06T07:30:00Z", "2026-03-09T12:00:00Z", 64, gap);
    free_rule(&r);
}

static void dst_fall_back_gives_a_long_interval_fired_once(void **state)
{
    (void)state;
    /* New York, 2026-11-01: 01:30 happens twice (05:30Z EDT, 06:30Z EST); the job fires at
     * the first pass only, so the interval after it lasts 25 hours. */
    struct due_rule r = rule("30 1 * * *", "America/New_York", "2026-10-31", true);
    const char *const want[] = { "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z",
                                 "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", NULL };
    expect(&r, NULL, "2026-11-02T12:00:00Z", 64, want);
    free_rule(&r);
    /* Not catchup, between the two passes of 01:30: the latest interval ended at the first. */
    r = rule("30 1 * * *", "America/New_York", NULL, false);
    const char *const latest[] = { "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", NULL };
    expect(&r, NULL, "2026-11-01T06:45:00Z", 64, latest);
    free_rule(&r);
}

/* Backfill: every interval whose logical date is in [from, to], both ends included, ended
 * by now, whatever start_date and catchup say; the latest unfinished one is left out. */
static void between_takes_logical_dates_in_the_range_inclusive(void **state)
{
    (void)state;
    struct due_rule r = rule("30 18 * * 1-5", "Asia/Kolkata", "2030-01-01", false);
    /* Mon 2026-11-09 .. Fri 2026-11-13 in IST: 00:00 of the 9th to 23:59:59 of the 13th. */
    int64_t from = due_day_start(r.tz, at("2026-11-09T00:00:00Z") / 86400);
    int64_t to = due_day_start(r.tz, at("2026-11-14T00:00:00Z") / 86400) - 1;
    assert_int_equal(from, at("2026-11-08T18:30:00Z"));
    const char *const want[] = { "2026-11-09T13:00:00Z", "2026-11-10T13:00:00Z",
                                 "2026-11-10T13:00:00Z", "2026-11-11T13:00:00Z",
                                 "2026-11-11T13:00:00Z", "2026-11-12T13:00:00Z",
                                 "2026-11-12T13:00:00Z", "2026-11-13T13:00:00Z",
                                 "2026-11-13T13:00:00Z", "2026-11-16T13:00:00Z", NULL };
    struct due_interval out[8];
    size_t n = due_between(&r, from, to, at("2026-12-01T00:00:00Z"), out, 8);
    assert_int_equal(n, 5);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(out[k].start, at(want[2 * k]));
        assert_int_equal(out[k].end, at(want[2 * k + 1]));
    }
    /* A logical date exactly at `to` is in; max bounds the list, and from = last start + 1
     * goes on. */
    n = due_between(&r, at("2026-11-10T13:00:00Z"), at("2026-11-11T13:00:00Z"),
                    at("2026-12-01T00:00:00Z"), out, 1);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].start, at("2026-11-10T13:00:00Z"));
    n = due_between(&r, out[0].start + 1, at("2026-11-11T13:00:00Z"), at("2026-12-01T00:00:00Z"),
                    out, 8);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].start, at("2026-11-11T13:00:00Z"));
    /* Friday's interval ends Monday 13:00Z: not over at Monday noon, so not taken. */
    n = due_between(&r, from, to, at("2026-11-16T12:00:00Z"), out, 8);
    assert_int_equal(n, 4);
    free_rule(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(catchup_runs_every_missed_interval_from_start_date),
        cmocka_unit_test(catchup_goes_on_after_the_last_scheduled_run),
        cmocka_unit_test(catchup_off_fires_only_the_latest),
        cmocka_unit_test(no_start_date_means_the_latest_only),
        cmocka_unit_test(start_date_in_the_future_fires_nothing),
        cmocka_unit_test(start_date_is_midnight_in_the_dags_zone),
        cmocka_unit_test(dst_spring_forward_gives_a_short_interval),
        cmocka_unit_test(dst_fall_back_gives_a_long_interval_fired_once),
        cmocka_unit_test(between_takes_logical_dates_in_the_range_inclusive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
