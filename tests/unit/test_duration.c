/* Unit tests for runtime/duration.c: parsing and formatting of 250ms, 2s, 5m, 1h, 1d. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "duration.h"

static void test_duration_parses_valid(void **state)
{
    (void)state;
    static const struct { const char *s; int64_t ms; } ok[] = {
        { "250ms", 250 }, { "2s", 2000 }, { "5m", 300000 }, { "1h", 3600000 }, { "1d", 86400000 },
        { "0", 0 }, { "0s", 0 }, { "0ms", 0 }, { "365d", 31536000000LL }, { "8760h", 31536000000LL },
        { "31536000000ms", 31536000000LL }, { "90s", 90000 }, { "007s", 7000 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct dr_err err;
        int64_t ms = -1;
        if (duration_parse(ok[i].s, &ms, &err) != 0)
            fail_msg("%s: %s", ok[i].s, err.msg);
        assert_int_equal(ms, ok[i].ms);
    }
}

static void test_duration_refuses_invalid(void **state)
{
    (void)state;
    static const struct { const char *s; int offset; const char *msg; } bad[] = {
        { "1.5s", 1, "bad duration \"1.5s\": fractional values are not allowed (use a smaller unit: 1500ms)" },
        { "-1s", 0, "bad duration \"-1s\": negative durations are not allowed" },
        { "5x", 1, "bad duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)" },
        { "", 0, "bad duration \"\": empty (use e.g. 250ms, 2s, 5m, 1h, 1d)" },
        { "366d", 0, "bad duration \"366d\": over 365 days" },
        { "31536000001ms", 0, "bad duration \"31536000001ms\": over 365 days" },
        { "99999999999999999999s", 0, "bad duration \"99999999999999999999s\": over 365 days" },
        { "9223372036854775807d", 0, "bad duration \"9223372036854775807d\": over 365 days" },
        { "5", 1, "bad duration \"5\": missing unit (ms, s, m, h or d)" },
        { "s", 0, "bad duration \"s\": expected a number followed by ms, s, m, h or d" },
        { " 5s", 0, "bad duration \" 5s\": expected a number followed by ms, s, m, h or d" },
        { "+5s", 0, "bad duration \"+5s\": expected a number followed by ms, s, m, h or d" },
        { "5 s", 1, "bad duration \"5 s\": unknown unit \" s\" (use ms, s, m, h or d)" },
        { "5S", 1, "bad duration \"5S\": unknown unit \"S\" (use ms, s, m, h or d)" },
        { "5sec", 1, "bad duration \"5sec\": unknown unit \"sec\" (use ms, s, m, h or d)" },
        { "1h30m", 1, "bad duration \"1h30m\": unknown unit \"h30m\" (use ms, s, m, h or d)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_err err;
        int64_t ms = 42;
        assert_int_equal(duration_parse(bad[i].s, &ms, &err), -1);
        assert_string_equal(err.msg, bad[i].msg);
        assert_int_equal(err.offset, bad[i].offset);
        assert_int_equal(ms, 42);
    }
}

static void test_duration_formats_shortest(void **state)
{
    (void)state;
    static const struct { int64_t ms; const char *s; } t[] = {
        { 0, "0s" }, { 250, "250ms" }, { 2000, "2s" }, { 300000, "5m" }, { 3600000, "1h" }, { 86400000, "1d" },
        { 90000, "90s" }, { 1500, "1500ms" }, { 5400000, "90m" }, { 31536000000LL, "365d" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[32];
        duration_format(t[i].ms, buf, sizeof buf);
        assert_string_equal(buf, t[i].s);
        struct dr_err err;
        int64_t back;
        assert_int_equal(duration_parse(buf, &back, &err), 0);
        assert_int_equal(back, t[i].ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parses_valid),
        cmocka_unit_test(test_duration_refuses_invalid),
        cmocka_unit_test(test_duration_formats_shortest),
    };
    return cmocka_run_group_tests_name("duration", tests, NULL, NULL);
}
