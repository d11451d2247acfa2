/* Tests for runtime/api_date.c: the plugin API's date and instant calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dagrun/task.h>

static void test_api_date_instants(void **state)
{
    (void)state;
    int64_t t = 42;
    char buf[DR_INSTANT_LEN], why[256];
    assert_int_equal(dr_instant_parse("2024-01-01T09:15:00+0530", &t, why, sizeof why), 0);
    assert_int_equal(t, 1704080700);
    dr_instant_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2024-01-01T03:45:00Z");
    assert_int_equal(dr_instant_parse("2024-01-01", &t, NULL, 0), 0);
    assert_int_equal(t, 1704067200);
    assert_int_equal(dr_instant_parse("1969-12-31T23:59:59Z", &t, NULL, 0), 0);
    assert_int_equal(t, -1);
    dr_instant_format(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    t = 42;
    assert_int_equal(dr_instant_parse("2024-01-01T25:00:00Z", &t, why, sizeof why), -1);
    assert_int_equal(t, 42);
    assert_string_equal(why, "bad timestamp \"2024-01-01T25:00:00Z\": hour 25 out of range 0-23");
    assert_int_equal(dr_instant_parse(NULL, &t, NULL, 0), -1);
}

static void test_api_date_days(void **state)
{
    (void)state;
    int64_t d = 7;
    char buf[DR_DATE_LEN], why[8];
    assert_int_equal(dr_date_parse("2024-02-29", &d, NULL, 0), 0);
    assert_int_equal(d, dr_days_from_civil(2024, 2, 29));
    dr_date_format(d, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29");
    int y, m, dd;
    dr_civil_from_days(0, &y, &m, &dd);
    assert_true(y == 1970 && m == 1 && dd == 1);
    assert_int_equal(dr_date_parse("2023-02-29", &d, why, sizeof why), -1);
    assert_string_equal(why, "bad dat");              /* truncated to whylen */
    assert_int_equal(d, dr_days_from_civil(2024, 2, 29));
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_api_date_instants),
        cmocka_unit_test(test_api_date_days),
    };
    return cmocka_run_group_tests_name("api_date", t, NULL, NULL);
}
