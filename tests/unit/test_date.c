/* Unit tests for runtime/date.c: civil day arithmetic, YYYY-MM-DD and ISO-8601 instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "date.h"
#include "prop.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    return prop_xorshift(&rng_state);
}

static void test_date_known_days(void **state)
{
    (void)state;
    assert_int_equal(date_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(date_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(date_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(date_days_from_civil(2026, 3, 6), 20518);
    assert_int_equal(date_days_from_civil(1900, 1, 1), -25567);
    int y, m, d;
    date_civil_from_days(-719468, &y, &m, &d);
    assert_int_equal(y, 0);
    assert_int_equal(m, 3);
    assert_int_equal(d, 1);
}

/* Property: civil -> days -> civil is the identity, and consecutive days are consecutive dates. */
static void test_date_roundtrip_property(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    rng_state = seed;
    for (int i = 0; i < 200000; i++) {
        int64_t days = (int64_t)(rng_next() % 2000000) - 1000000;
        int y, m, d, y2, m2, d2;
        date_civil_from_days(days, &y, &m, &d);
        if (!date_valid(y, m, d) || date_days_from_civil(y, m, d) != days) {
            print_error("seed %llu (DR_TEST_SEED): day %lld -> %d-%d-%d\n", (unsigned long long)seed,
                        (long long)days, y, m, d);
            fail();
        }
        date_civil_from_days(days + 1, &y2, &m2, &d2);
        bool next_ok = (y2 == y && m2 == m && d2 == d + 1) || (y2 == y && m2 == m + 1 && d2 == 1) ||
                       (y2 == y + 1 && m2 == 1 && d2 == 1 && m == 12 && d == 31);
        if (!next_ok) {
            print_error("seed %llu (DR_TEST_SEED): day after %d-%d-%d is %d-%d-%d\n", (unsigned long long)seed, y,
                        m, d, y2, m2, d2);
            fail();
        }
    }
}

static void test_date_valid_leap_rules(void **state)
{
    (void)state;
    assert_true(date_valid(2024, 2, 29));
    assert_false(date_valid(2023, 2, 29));
    assert_true(date_valid(2000, 2, 29));
    assert_false(date_valid(1900, 2, 29));
    assert_false(date_valid(2024, 4, 31));
    assert_false(date_valid(2024, 13, 1));
    assert_false(date_valid(2024, 0, 1));
    assert_false(date_valid(2024, 1, 0));
}

static void test_date_parse_valid(void **state)
{
    (void)state;
    static const struct { const char *s; int y, m, d; } ok[] = {
        { "2024-02-29", 2024, 2, 29 }, { "1995-01-01", 1995, 1, 1 }, { "1900-01-01", 1900, 1, 1 },
        { "2999-12-31", 2999, 12, 31 }, { "2026-03-06", 2026, 3, 6 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct dr_err err;
        int64_t days;
        assert_int_equal(date_parse(ok[i].s, &days, &err), 0);
        assert_int_equal(days, date_days_from_civil(ok[i].y, ok[i].m, ok[i].d));
        char buf[16];
        date_format(days, buf, sizeof buf);
        assert_string_equal(buf, ok[i].s);
    }
}

static void test_date_parse_refuses_bad(void **state)
{
    (void)state;
    static const struct { const char *s; int offset; const char *msg; } bad[] = {
        { "2023-02-29", 8, "bad date \"2023-02-29\": day 29 out of range 1-28 for 2023-02" },
        { "2024-04-31", 8, "bad date \"2024-04-31\": day 31 out of range 1-30 for 2024-04" },
        { "2024-13-01", 5, "bad date \"2024-13-01\": month 13 out of range 1-12" },
        { "2024-00-10", 5, "bad date \"2024-00-10\": month 0 out of range 1-12" },
        { "1899-12-31", 0, "bad date \"1899-12-31\": year 1899 out of range 1900-2999" },
        { "3000-01-01", 0, "bad date \"3000-01-01\": year 3000 out of range 1900-2999" },
        { "2024-1-01", 6, "bad date \"2024-1-01\": expected YYYY-MM-DD" },
        { "24-01-01", 2, "bad date \"24-01-01\": expected YYYY-MM-DD" },
        { "", 0, "bad date \"\": expected YYYY-MM-DD" },
        { "2024-01-01x", 10, "bad date \"2024-01-01x\": unexpected text after YYYY-MM-DD" },
        { "2024-01-01T00:00", 10, "bad date \"2024-01-01T00:00\": unexpected text after YYYY-MM-DD" },
        { "today", 0, "bad date \"today\": expected YYYY-MM-DD" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_err err;
        int64_t days = 12345;
        assert_int_equal(date_parse(bad[i].s, &days, &err), -1);
        assert_string_equal(err.msg, bad[i].msg);
        assert_int_equal(err.offset, bad[i].offset);
        assert_int_equal(days, 12345);
    }
}

static void test_date_parse_instant_valid(void **state)
{
    (void)state;
    static const struct { const char *s; int64_t t; } ok[] = {
        { "2026-01-05T13:00:00Z", 1767618000 },
        { "2026-01-05T13:00Z", 1767618000 },
        { "2026-01-05 13:00:00", 1767618000 },
        { "2026-01-05T13:00:00", 1767618000 },
        { "2026-01-05", 1767571200 },
        { "2026-01-05T18:30:00+05:30", 1767618000 },
        { "2026-01-05T18:30:00+0530", 1767618000 },
        { "2017-12-15T09:15:00+0530", 1513309500 },
        { "2026-01-05T08:00:00-05", 1767618000 },
        { "2026-01-05T08:00:00-05:00", 1767618000 },
        { "1970-01-01T00:00:00Z", 0 },
        { "1969-12-31T23:59:59Z", -1 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct dr_err err;
        int64_t t;
        if (date_parse_instant(ok[i].s, &t, &err) != 0)
            fail_msg("%s: %s", ok[i].s, err.msg);
        assert_int_equal(t, ok[i].t);
    }
}

static void test_date_parse_instant_refuses_bad(void **state)
{
    (void)state;
    static const struct { const char *s; int offset; } bad[] = {
        { "2026-01-05T24:00:00Z", 11 }, { "2026-01-05T13:60Z", 14 }, { "2026-01-05T13:00:60Z", 17 },
        { "2026-01-05T13", 13 },        { "2026-01-05X13:00", 10 },  { "2026-01-05T13:00:00+5", 19 },
        { "2026-01-05T13:00:00+25:00", 19 }, { "2026-01-05T13:00:00Zjunk", 20 }, { "2026-02-30T00:00Z", 8 },
        { "2026-01-05T13:00:00.5Z", 19 }, { "", 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_err err;
        int64_t t = 7;
        if (date_parse_instant(bad[i].s, &t, &err) != -1)
            fail_msg("%s: accepted", bad[i].s);
        assert_int_equal(t, 7);
        assert_non_null(strstr(err.msg, "bad timestamp \""));
        if (err.offset != bad[i].offset)
            fail_msg("%s: offset %d, want %d (%s)", bad[i].s, err.offset, bad[i].offset, err.msg);
    }
}

static void test_date_format_instant(void **state)
{
    (void)state;
    char buf[32];
    date_format_instant(1767618000, buf, sizeof buf);
    assert_string_equal(buf, "2026-01-05T13:00:00Z");
    date_format_instant(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    date_format_instant(951782400, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
}

/* Property: format then parse returns the same instant. */
static void test_date_instant_roundtrip_property(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    rng_state = seed;
    for (int i = 0; i < 100000; i++) {
        int64_t t = (int64_t)(rng_next() % (32503680000LL + 2208988800LL)) - 2208988800LL;
        char buf[32];
        date_format_instant(t, buf, sizeof buf);
        int64_t back;
        struct dr_err err;
        if (date_parse_instant(buf, &back, &err) != 0 || back != t) {
            print_error("seed %llu (DR_TEST_SEED): %lld -> %s\n", (unsigned long long)seed, (long long)t, buf);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_known_days),
        cmocka_unit_test(test_date_roundtrip_property),
        cmocka_unit_test(test_date_valid_leap_rules),
        cmocka_unit_test(test_date_parse_valid),
        cmocka_unit_test(test_date_parse_refuses_bad),
        cmocka_unit_test(test_date_parse_instant_valid),
        cmocka_unit_test(test_date_parse_instant_refuses_bad),
        cmocka_unit_test(test_date_format_instant),
        cmocka_unit_test(test_date_instant_roundtrip_property),
    };
    return cmocka_run_group_tests_name("date", tests, NULL, NULL);
}
