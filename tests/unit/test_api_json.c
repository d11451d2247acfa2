/* Tests for runtime/api_json.c: JSON read with every number kept as its own text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <dagrun/task.h>

static void expect_dump(const char *in, const char *want)
{
    char why[200];
    json_t *j = dr_json_loadb_exact(in, strlen(in), why, sizeof why);
    if (!j)
        fail_msg("%s: %s", in, why);
    char *got = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s", in, got, want);
    free(got);
    json_decref(j);
}

static void test_api_json_numbers_keep_their_text(void **state)
{
    (void)state;
    expect_dump("[230.0399932861328, 233.0, 1e-05, -0.5, 0, 12345678901234567890123]",
                "[\"230.0399932861328\",\"233.0\",\"1e-05\",\"-0.5\",\"0\","
                "\"12345678901234567890123\"]");
    expect_dump("{\"prices\":[[1711843200000,69702.3087473573]],\"x\":null,\"t\":true}",
                "{\"prices\":[[\"1711843200000\",\"69702.3087473573\"]],\"x\":null,\"t\":true}");
    expect_dump("[1E+3,2.5e-7]", "[\"1E+3\",\"2.5e-7\"]");
}

static void test_api_json_strings_untouched(void **state)
{
    (void)state;
    expect_dump("[\"12.5\", \"a \\\"3\\\" b\", \"-\", \"\\\\\", 4]",
                "[\"12.5\",\"a \\\"3\\\" b\",\"-\",\"\\\\\",\"4\"]");
    expect_dump("{\"1\": 2}", "{\"1\":\"2\"}");
}

static void test_api_json_refuses_what_is_not_json(void **state)
{
    (void)state;
    char why[200];
    const char *bad[] = { "<html>502</html>", "[1, 2", "{\"a\": 1,}", "", "[\"abc]" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = dr_json_loadb_exact(bad[i], strlen(bad[i]), why, sizeof why);
        if (j)
            fail_msg("%s: parsed", bad[i]);
        assert_true(why[0] != '\0');
    }
    assert_null(dr_json_loadb_exact("[1", 2, NULL, 0));
}

static void test_api_json_number_ok(void **state)
{
    (void)state;
    const char *good[] = { "0", "-0", "1.5", "230.0399932861328", "1e-05", "2E+10", "-3.0e7" };
    const char *bad[] = { "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.5", "abc", "1 ", "--1" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!dr_json_number_ok(good[i]))
            fail_msg("\"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (dr_json_number_ok(bad[i]))
            fail_msg("\"%s\" taken", bad[i]);
    assert_false(dr_json_number_ok(NULL));
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_api_json_numbers_keep_their_text),
        cmocka_unit_test(test_api_json_strings_untouched),
        cmocka_unit_test(test_api_json_refuses_what_is_not_json),
        cmocka_unit_test(test_api_json_number_ok),
    };
    return cmocka_run_group_tests_name("api_json", t, NULL, NULL);
}
