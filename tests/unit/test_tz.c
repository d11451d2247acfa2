/* Unit tests for runtime/tz.c: TZif zones, footer rules past the table, local <-> UTC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "prop.h"
#include "when.h"

static struct tm wall(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { 0 };
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return tm;
}

/* Runs first: with TZDIR pointing at an empty folder, UTC still works and others are unknown. */
static void test_tz_utc_without_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/dr_test_tz_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1); /* test process only, before any thread starts; TZ is never touched */
    struct dr_err err;
    const struct tz *z = tz_get("Etc/UTC", &err);
    assert_non_null(z);
    assert_int_equal(tz_offset_at(z, at("2026-06-01T00:00:00Z")), 0);
    assert_string_equal(tz_name(z), "Etc/UTC");
    assert_null(tz_get("Europe/Paris", &err));
    assert_string_equal(err.msg, "unknown time zone \"Europe/Paris\"");
    if (saved)
        setenv("TZDIR", saved, 1);
    else
        unsetenv("TZDIR");
    free(saved);
    rmdir(dir);
    assert_non_null(tz_get("Europe/Paris", &err)); /* failures are not cached */
}

static void test_tz_kolkata_fixed_offset(void **state)
{
    (void)state;
    const struct tz *z = zone("Asia/Kolkata");
    assert_int_equal(tz_offset_at(z, at("2026-03-06T00:00:00Z")), 19800);
    assert_int_equal(tz_offset_at(z, at("2060-07-01T00:00:00Z")), 19800);
    struct tm tm;
    tz_localtime(z, at("2026-03-06T03:30:00Z"), &tm);
    assert_int_equal(tm.tm_hour, 9);
    assert_int_equal(tm.tm_min, 0);
    assert_int_equal(tm.tm_wday, 5);
    assert_int_equal(tm.tm_gmtoff, 19800);
    assert_string_equal(tm.tm_zone, "IST");
    assert_string_equal(tz_name(z), "Asia/Kolkata");
}

static void test_tz_new_york_2026_changes(void **state)
{
    (void)state;
    const struct tz *z = zone("America/New_York");
    assert_int_equal(tz_offset_at(z, at("2026-03-08T06:59:59Z")), -18000);
    assert_int_equal(tz_offset_at(z, at("2026-03-08T07:00:00Z")), -14400);
    assert_int_equal(tz_offset_at(z, at("2026-11-01T05:59:59Z")), -14400);
    assert_int_equal(tz_offset_at(z, at("2026-11-01T06:00:00Z")), -18000);
    struct tm tm;
    tz_localtime(z, at("2026-03-08T07:00:00Z"), &tm);
    assert_int_equal(tm.tm_hour, 3);
    assert_int_equal(tm.tm_isdst, 1);
    assert_string_equal(tm.tm_zone, "EDT");
    tz_localtime(z, at("2026-11-01T06:30:00Z"), &tm);
    assert_int_equal(tm.tm_hour, 1);
    assert_int_equal(tm.tm_min, 30);
    assert_int_equal(tm.tm_isdst, 0);
    assert_string_equal(tm.tm_zone, "EST");
}

static void test_tz_london_2026_changes(void **state)
{
    (void)state;
    const struct tz *z = zone("Europe/London");
    assert_int_equal(tz_offset_at(z, at("2026-03-29T00:59:59Z")), 0);
    assert_int_equal(tz_offset_at(z, at("2026-03-29T01:00:00Z")), 3600);
    assert_int_equal(tz_offset_at(z, at("2026-10-25T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(z, at("2026-10-25T01:00:00Z")), 0);
}

/* Past 2037 the TZif table ends (or, for slim files, ends much earlier) and the footer rules. */
static void test_tz_footer_rule_past_2037(void **state)
{
    (void)state;
    const struct tz *ny = zone("America/New_York");
    /* 2045: second Sunday of March is 03-12, first Sunday of November is 11-05. */
    assert_int_equal(tz_offset_at(ny, at("2045-03-12T06:59:59Z")), -18000);
    assert_int_equal(tz_offset_at(ny, at("2045-03-12T07:00:00Z")), -14400);
    assert_int_equal(tz_offset_at(ny, at("2045-11-05T05:59:59Z")), -14400);
    assert_int_equal(tz_offset_at(ny, at("2045-11-05T06:00:00Z")), -18000);
    assert_int_equal(tz_offset_at(ny, at("2045-01-15T12:00:00Z")), -18000);
    const struct tz *lon = zone("Europe/London");
    /* 2050: last Sunday of March is 03-27, of October 10-30; changes at 01:00Z. */
    assert_int_equal(tz_offset_at(lon, at("2050-03-27T00:59:59Z")), 0);
    assert_int_equal(tz_offset_at(lon, at("2050-03-27T01:00:00Z")), 3600);
    assert_int_equal(tz_offset_at(lon, at("2050-10-30T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(lon, at("2050-10-30T01:00:00Z")), 0);
    /* Southern hemisphere: DST spans the new year. */
    const struct tz *syd = zone("Australia/Sydney");
    assert_int_equal(tz_offset_at(syd, at("2040-01-01T00:00:00Z")), 39600);
    assert_int_equal(tz_offset_at(syd, at("2040-07-01T00:00:00Z")), 36000);
}

static void test_tz_from_local_counts(void **state)
{
    (void)state;
    const struct tz *ny = zone("America/New_York");
    int64_t a = 0, b = 0;
    struct tm tm = wall(2026, 3, 8, 2, 30); /* in the spring gap */
    assert_int_equal(tz_from_local(ny, &tm, &a, &b), 0);
    assert_int_equal(a, at("2026-03-08T07:30:00Z")); /* read with EST: 03:30 EDT */
    tm = wall(2026, 3, 8, 3, 0);
    assert_int_equal(tz_from_local(ny, &tm, &a, &b), 1);
    assert_int_equal(a, at("2026-03-08T07:00:00Z"));
    assert_int_equal(b, a);
    tm = wall(2026, 3, 8, 1, 59);
    assert_int_equal(tz_from_local(ny, &tm, &a, NULL), 1);
    assert_int_equal(a, at("2026-03-08T06:59:00Z"));
    tm = wall(2026, 11, 1, 1, 30); /* in the fall overlap */
    assert_int_equal(tz_from_local(ny, &tm, &a, &b), 2);
    assert_int_equal(a, at("2026-11-01T05:30:00Z"));
    assert_int_equal(b, at("2026-11-01T06:30:00Z"));
    tm = wall(2026, 7, 4, 12, 0);
    assert_int_equal(tz_from_local(ny, &tm, &a, &b), 1);
    assert_int_equal(a, at("2026-07-04T16:00:00Z"));

    const struct tz *lon = zone("Europe/London");
    tm = wall(2026, 3, 29, 1, 15);
    assert_int_equal(tz_from_local(lon, &tm, &a, &b), 0);
    assert_int_equal(a, at("2026-03-29T01:15:00Z"));
    tm = wall(2026, 10, 25, 1, 15);
    assert_int_equal(tz_from_local(lon, &tm, &a, &b), 2);
    assert_int_equal(a, at("2026-10-25T00:15:00Z"));
    assert_int_equal(b, at("2026-10-25T01:15:00Z"));

    const struct tz *kol = zone("Asia/Kolkata");
    tm = wall(2026, 3, 6, 9, 0);
    assert_int_equal(tz_from_local(kol, &tm, &a, &b), 1);
    assert_int_equal(a, at("2026-03-06T03:30:00Z"));
    /* Fields out of range are normalised like mktime's: month 13 is January of the next year. */
    tm = wall(2025, 13, 6, 9, 0);
    assert_int_equal(tz_from_local(kol, &tm, &a, &b), 1);
    assert_int_equal(a, at("2026-01-06T03:30:00Z"));
}

/* Property: every instant is one of the instants its own wall time maps back to. */
static void test_tz_roundtrip_property(void **state)
{
    (void)state;
    static const char *names[] = { "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney",
                                   "Australia/Lord_Howe", "Pacific/Apia", "America/Sao_Paulo", "UTC" };
    uint64_t seed = prop_seed(), x = seed;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const struct tz *z = zone(names[i]);
        for (int k = 0; k < 20000; k++) {
            int64_t t = (int64_t)(prop_xorshift(&x) % 6000000000ULL) - 1000000000LL; /* 1938..2160 */
            struct tm tm;
            tz_localtime(z, t, &tm);
            int64_t a, b;
            int n = tz_from_local(z, &tm, &a, &b);
            if (n == 0 || (a != t && b != t) || tm.tm_gmtoff != tz_offset_at(z, t)) {
                print_error("seed %llu (DR_TEST_SEED): %s t=%lld n=%d a=%lld b=%lld\n", (unsigned long long)seed,
                            names[i], (long long)t, n, (long long)a, (long long)b);
                fail();
            }
        }
    }
}

static void test_tz_refuses_bad_names(void **state)
{
    (void)state;
    static const char *bad[] = { "../etc/passwd", "/etc/localtime", "Asia/../../etc/passwd", "", "Asia/Kol kata",
                                 "Asia/Kolkata;rm", "Europe\\London", "Ásia/Kolkata" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_err err;
        assert_null(tz_get(bad[i], &err));
        assert_non_null(strstr(err.msg, "bad time zone name"));
    }
    struct dr_err err;
    assert_null(tz_get("Mars/Olympus_Mons", &err));
    assert_string_equal(err.msg, "unknown time zone \"Mars/Olympus_Mons\"");
    assert_null(tz_get("Asia", &err)); /* a folder, not a zone */
    assert_null(tz_get(NULL, &err));
}

static void *get_zone_thread(void *arg)
{
    (void)arg;
    struct dr_err err;
    return (void *)tz_get("America/Chicago", &err);
}

static void test_tz_cache_shared_across_threads(void **state)
{
    (void)state;
    pthread_t th[8];
    void *res[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, get_zone_thread, NULL), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(th[i], &res[i]), 0);
    for (int i = 0; i < 8; i++) {
        assert_non_null(res[i]);
        assert_ptr_equal(res[i], res[0]);
    }
    assert_ptr_equal(zone("America/Chicago"), res[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tz_utc_without_files),
        cmocka_unit_test(test_tz_kolkata_fixed_offset),
        cmocka_unit_test(test_tz_new_york_2026_changes),
        cmocka_unit_test(test_tz_london_2026_changes),
        cmocka_unit_test(test_tz_footer_rule_past_2037),
        cmocka_unit_test(test_tz_from_local_counts),
        cmocka_unit_test(test_tz_roundtrip_property),
        cmocka_unit_test(test_tz_refuses_bad_names),
        cmocka_unit_test(test_tz_cache_shared_across_threads),
    };
    return cmocka_run_group_tests_name("tz", tests, NULL, NULL);
}
