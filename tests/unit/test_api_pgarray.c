/* Tests for runtime/api_pgarray.c: a list param as a PostgreSQL text[] literal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <dagrun/task.h>

/* The literal of the JSON text, or NULL; *bad as dr_pg_text_array sets it. */
static char *literal(const char *json, bool *bad)
{
    json_t *list = json ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;
    char *s = dr_pg_text_array(list, bad);
    json_decref(list);
    return s;
}

static void test_api_pgarray_literals(void **state)
{
    (void)state;
    bool bad = true;
    char *s = literal("[\"NSE\",\"BSE\"]", &bad);
    assert_string_equal(s, "{\"NSE\",\"BSE\"}");
    assert_false(bad);
    free(s);
    s = literal("[]", &bad);
    assert_string_equal(s, "{}");
    free(s);
    s = literal(NULL, &bad);
    assert_string_equal(s, "{}");
    free(s);
    /* Quotes and backslashes are escaped; commas and braces stay inside the quotes. */
    s = literal("[\"a\\\"b\",\"c\\\\d\",\"e,{f}\",\"\"]", &bad);
    assert_string_equal(s, "{\"a\\\"b\",\"c\\\\d\",\"e,{f}\",\"\"}");
    free(s);
}

static void test_api_pgarray_not_strings(void **state)
{
    (void)state;
    bool bad = false;
    assert_null(literal("[\"NSE\",1]", &bad));
    assert_true(bad);
    bad = false;
    assert_null(literal("[null]", &bad));
    assert_true(bad);
    bad = false;
    assert_null(literal("\"NSE\"", &bad));
    assert_true(bad);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_api_pgarray_literals),
        cmocka_unit_test(test_api_pgarray_not_strings),
    };
    return cmocka_run_group_tests_name("api_pgarray", t, NULL, NULL);
}
