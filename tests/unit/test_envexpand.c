/* Unit tests for runtime/envexpand.c: ${VAR} templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envexpand.h"

static int collect(void *ud, const char *name)
{
    char *out = ud;
    size_t l = strlen(out);
    snprintf(out + l, 256 - l, "[%s]", name);
    return 0;
}

static void test_envexpand_vars_listed(void **state)
{
    (void)state;
    char got[256] = "";
    const char *why = NULL;
    assert_int_equal(envexpand_vars("token ${A_KEY}:${B_TOK} $$ {x} $x ${A_KEY}", collect, got,
                                    &why), 0);
    assert_string_equal(got, "[A_KEY][B_TOK][A_KEY]");
    assert_int_equal(envexpand_vars("a ${UNTERMINATED", collect, got, &why), -1);
    assert_string_equal(why, "unterminated ${ (write $$ for a literal $)");
    assert_int_equal(envexpand_vars("${}", NULL, NULL, &why), -1);
    assert_string_equal(why, "bad variable name in ${...}");
    assert_true(envexpand_has_vars("x ${Y}"));
    assert_false(envexpand_has_vars("x $${Y} $Z"));
}

static void test_envexpand_expands(void **state)
{
    (void)state;
    char unset[64];
    const char *why = NULL;
    char *s = envexpand("token ${DR_T_KEY}:${DR_T_TOK} costs $$5 and $x", unset, sizeof unset,
                        &why);
    assert_non_null(s);
    assert_string_equal(s, "token k:tok costs $5 and $x");
    free(s);
    s = envexpand("${DR_T_KEY}${DR_T_SURELY_UNSET}", unset, sizeof unset, &why);
    assert_null(s);
    assert_string_equal(unset, "DR_T_SURELY_UNSET");
    s = envexpand("", unset, sizeof unset, &why);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    setenv("DR_T_KEY", "k", 1);
    setenv("DR_T_TOK", "tok", 1);
    unsetenv("DR_T_SURELY_UNSET");
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_envexpand_vars_listed),
        cmocka_unit_test(test_envexpand_expands),
    };
    return cmocka_run_group_tests_name("envexpand", t, NULL, NULL);
}
