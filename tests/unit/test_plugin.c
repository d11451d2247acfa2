/* Tests for runtime/plugin.c: loading test plugins, every refusal, typed param values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dag.h"
#include "params.h"
#include "plugin.h"

static char plugin_dir[512];

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("DR_BUILD");
    snprintf(plugin_dir, sizeof plugin_dir, "%s/tests/plugins", b && *b ? b : "build");
    return 0;
}

/* Loads name from the test plugin dir and expects a refusal containing each of the
 * NULL-terminated substrings. */
static void expect_refusal(const char *name, ...)
{
    struct plugins *ps = plugins_open(plugin_dir);
    assert_non_null(ps);
    struct dr_err e;
    err_clear(&e);
    assert_null(plugins_get(ps, name, &e));
    assert_int_equal(plugins_count(ps), 0);
    va_list ap;
    va_start(ap, name);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (!strstr(e.msg, s))
            fail_msg("plugin %s: message \"%s\" lacks \"%s\"", name, e.msg, s);
    }
    va_end(ap);
    plugins_free(ps);
}

static void test_plugin_loads_typed_plugin(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dr_err e;
    err_clear(&e);
    const struct plugin *p = plugins_get(ps, "ok_typed", &e);
    assert_non_null(p);
    assert_string_equal(p->name, "ok_typed");
    assert_string_equal(p->def->name, "ok_typed");
    assert_non_null(strstr(p->path, "/ok_typed.so"));
    assert_ptr_equal(plugins_get(ps, "ok_typed", &e), p);
    assert_int_equal(plugins_count(ps), 1);
    const dr_param *q = params_find(p, "wait");
    assert_non_null(q);
    assert_int_equal(q->type, DR_T_DURATION);
    assert_null(params_find(p, "nope"));
    plugins_free(ps);
}

static void test_plugin_refuses_other_abi(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want, "wrong_abi.so: plugin ABI %d, dagrun speaks ABI %d: rebuild it "
             "against this dagrun", DR_ABI_VERSION + 1, DR_ABI_VERSION);
    expect_refusal("wrong_abi", want, NULL);
}

static void test_plugin_refuses_missing_entry(void **state)
{
    (void)state;
    expect_refusal("no_entry", "no_entry.so", "no dr_task_entry", NULL);
}

static void test_plugin_refuses_name_mismatch(void **state)
{
    (void)state;
    expect_refusal("name_mismatch", "\"something_else\"", "name_mismatch.so", NULL);
}

static void test_plugin_refuses_small_descriptor(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "descriptor is %zu bytes, dagrun expects at least %zu",
             offsetof(dr_task_def, fini), (size_t)DR_TASK_DEF_V1_SIZE);
    expect_refusal("small_size", want, NULL);
}

static void test_plugin_refuses_missing_run(void **state)
{
    (void)state;
    expect_refusal("no_run", "no run callback", NULL);
}

static void test_plugin_refuses_bad_param_tables(void **state)
{
    (void)state;
    expect_refusal("bad_params", "param \"days\" declared twice", NULL);
    expect_refusal("bad_default", "param \"days\": default does not parse as int", "bad int \"many\"", NULL);
    expect_refusal("bad_param_name", "bad param name \"Days\"", NULL);
}

static void test_plugin_refuses_unresolved_symbol(void **state)
{
    (void)state;
    expect_refusal("missing_symbol", "missing_symbol.so: cannot load plugin", "dr_test_function_nobody_defines",
                   NULL);
}

static void test_plugin_refuses_bad_names(void **state)
{
    (void)state;
    expect_refusal("../tasks/x", "bad plugin name \"../tasks/x\"", NULL);
    expect_refusal("a/b", "bad plugin name", NULL);
    expect_refusal("..", "bad plugin name", NULL);
    expect_refusal("Upper", "bad plugin name", NULL);
    expect_refusal("", "bad plugin name", NULL);
    expect_refusal("1abc", "bad plugin name", NULL);
    expect_refusal("no_such_plugin", "unknown plugin \"no_such_plugin\"", "no_such_plugin.so", NULL);
}

static void count_cb(void *ud, const struct dr_err *e)
{
    (void)e;
    (*(int *)ud)++;
}

static void test_plugin_load_all_sorted(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    int refused = 0;
    size_t n = plugins_load_all(ps, count_cb, &refused);
    assert_true(n >= 2);
    assert_int_equal(plugins_count(ps), n);
    assert_true(refused >= 9);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(plugins_at(ps, i - 1)->name, plugins_at(ps, i)->name) < 0);
    assert_null(plugins_at(ps, n));
    plugins_free(ps);
}

static void text_ok(dr_type t, const char *text, const char *want_json)
{
    struct dr_err e;
    err_clear(&e);
    json_t *v = params_from_text(t, text, &e);
    if (!v)
        fail_msg("%s \"%s\": %s", params_type_name(t), text, e.msg);
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_string_equal(s, want_json);
    free(s);
    json_decref(v);
}

static void text_bad(dr_type t, const char *text, const char *want)
{
    struct dr_err e;
    err_clear(&e);
    json_t *v = params_from_text(t, text, &e);
    assert_null(v);
    if (!strstr(e.msg, want))
        fail_msg("%s \"%s\": \"%s\" lacks \"%s\"", params_type_name(t), text, e.msg, want);
}

static void test_params_from_text(void **state)
{
    (void)state;
    text_ok(DR_T_STRING, "day", "\"day\"");
    text_ok(DR_T_INT, "42", "42");
    text_ok(DR_T_INT, "-7", "-7");
    text_ok(DR_T_BOOL, "true", "true");
    text_ok(DR_T_BOOL, "false", "false");
    text_ok(DR_T_DATE, "2024-02-29", "\"2024-02-29\"");
    text_ok(DR_T_DATE, "today", "\"today\"");
    text_ok(DR_T_DATE, "yesterday", "\"yesterday\"");
    text_ok(DR_T_DURATION, "2s", "2000");
    text_ok(DR_T_DURATION, "5m", "300000");
    text_ok(DR_T_LIST, "[\"NSE\",\"BSE\"]", "[\"NSE\",\"BSE\"]");
    text_ok(DR_T_LIST, "[]", "[]");
    text_bad(DR_T_INT, "12x", "bad int \"12x\"");
    text_bad(DR_T_INT, "", "bad int");
    text_bad(DR_T_INT, "99999999999999999999", "out of range");
    text_bad(DR_T_BOOL, "maybe", "bad bool");
    text_bad(DR_T_DATE, "2023-02-29", "bad date");
    text_bad(DR_T_DURATION, "2x", "bad duration");
    text_bad(DR_T_LIST, "NSE", "bad list");
    text_bad(DR_T_LIST, "[1]", "not a string");
}

static void json_case(dr_type t, const char *in, const char *want_json)
{
    json_error_t je;
    json_t *j = json_loads(in, JSON_DECODE_ANY, &je);
    assert_non_null(j);
    struct dr_err e;
    err_clear(&e);
    json_t *v = params_from_json(t, j, &e);
    if (want_json) {
        if (!v)
            fail_msg("%s %s: %s", params_type_name(t), in, e.msg);
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_string_equal(s, want_json);
        free(s);
    } else {
        assert_null(v);
        assert_true(e.msg[0] != '\0');
    }
    json_decref(v);
    json_decref(j);
}

static void test_params_from_json(void **state)
{
    (void)state;
    json_case(DR_T_STRING, "\"x\"", "\"x\"");
    json_case(DR_T_STRING, "5", NULL);
    json_case(DR_T_INT, "5", "5");
    json_case(DR_T_INT, "\"5\"", NULL);                /* a string is no int */
    json_case(DR_T_BOOL, "\"true\"", NULL);
    json_case(DR_T_INT, "5.5", NULL);
    json_case(DR_T_BOOL, "true", "true");
    json_case(DR_T_BOOL, "1", NULL);
    json_case(DR_T_DATE, "\"2024-01-31\"", "\"2024-01-31\"");
    json_case(DR_T_DATE, "\"2024-01-32\"", NULL);
    json_case(DR_T_DURATION, "\"1h\"", "3600000");
    json_case(DR_T_DURATION, "250", "250");
    json_case(DR_T_DURATION, "-1", NULL);
    json_case(DR_T_LIST, "[\"a\"]", "[\"a\"]");
    json_case(DR_T_LIST, "[\"a\", 2]", NULL);
    json_case(DR_T_LIST, "\"a\"", NULL);
    json_case(DR_T_LIST, "null", NULL);
}

/* The date of end_date resolved for task "date_ranges" of dags/kite_historic.yaml at anchor,
 * with conf (JSON text or NULL). */
static void resolved_end(const struct dag *d, int64_t anchor, const char *conf, const char *want)
{
    json_error_t je;
    json_t *c = conf ? json_loads(conf, 0, &je) : NULL;
    struct dr_err e;
    err_clear(&e);
    json_t *r = dag_resolve_params_at(d, (size_t)dag_task_index(d, "date_ranges"), NULL, c, anchor, &e);
    if (!r)
        fail_msg("resolve: %s", e.msg);
    const char *got = json_string_value(json_object_get(r, "end_date"));
    if (!got || strcmp(got, want) != 0)
        fail_msg("anchor %lld conf %s: end_date %s, want %s", (long long)anchor, conf ? conf : "-",
                 got ? got : "(none)", want);
    json_decref(r);
    json_decref(c);
}

/* "today" and "yesterday" name days of the run (its data interval's end, in the DAG's zone),
 * resolved before any plugin sees them; a fixed date stays as it is. */
static void test_params_today_is_the_runs(void **state)
{
    (void)state;
    const char *b = getenv("DR_BUILD");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tasks", b && *b ? b : "build");
    struct plugins *ps = plugins_open(dir);
    assert_non_null(ps);
    struct dr_err e;
    err_clear(&e);
    struct dag *d = dag_load("dags/kite_historic.yaml", ps, &e);
    if (!d)
        fail_msg("load: %s", e.msg);
    /* The scheduled run for Monday 2024-06-10's interval ends Tuesday 18:30 IST (13:00Z). */
    resolved_end(d, 1718110800, NULL, "2024-06-11");
    resolved_end(d, 1718110800, "{\"end_date\": \"yesterday\"}", "2024-06-10");
    resolved_end(d, 1718110800, "{\"end_date\": \"2024-01-05\"}", "2024-01-05");
    /* 2024-06-11T19:00Z is already the 12th in Asia/Kolkata (00:30 IST). */
    resolved_end(d, 1718132400, NULL, "2024-06-12");
    resolved_end(d, 1718132399 - 1800, NULL, "2024-06-11");   /* 23:59:59 IST */
    char buf[16] = "";
    assert_int_equal(params_date_at("today", NULL, 1718132400, buf, sizeof buf), 1);
    assert_string_equal(buf, "2024-06-11");                      /* UTC */
    assert_int_equal(params_date_at("yesterday", NULL, -1, buf, sizeof buf), 1);
    assert_string_equal(buf, "1969-12-30");
    assert_int_equal(params_date_at("2024-01-01", NULL, 0, buf, sizeof buf), 0);
    dag_free(d);
    plugins_free(ps);
}

/* Rules (dr_param_rule) of the shipped plugins, and YAML's quoted scalars as strings. */
static void test_params_rules_and_quotes(void **state)
{
    (void)state;
    const char *b = getenv("DR_BUILD");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tasks", b && *b ? b : "build");
    struct plugins *ps = plugins_open(dir);
    struct dr_err e;
    err_clear(&e);
    const struct plugin *li = plugins_get(ps, "list_instruments", &e);
    if (!li)
        fail_msg("%s", e.msg);
    json_t *v = json_integer(-1);
    assert_int_equal(params_check_rule(li, "limit", v, &e), -1);
    assert_non_null(strstr(e.msg, "-1 is below the minimum 0"));
    json_decref(v);
    v = json_integer(0);
    assert_int_equal(params_check_rule(li, "limit", v, &e), 0);
    json_decref(v);
    v = json_string("2minute");
    err_clear(&e);
    assert_int_equal(params_check_rule(li, "candle_interval", v, &e), -1);
    assert_non_null(strstr(e.msg, "unknown value \"2minute\" (takes: minute, 3minute"));
    json_decref(v);
    for (const char *n = "compute_date_ranges"; n; n = strcmp(n, "chunk_ranges") ? "chunk_ranges" : NULL) {
        const struct plugin *p = plugins_get(ps, n, &e);
        assert_non_null(p);
        v = json_string("2minute");
        assert_int_equal(params_check_rule(p, "candle_interval", v, &e), -1);
        json_decref(v);
        v = json_string("15minute");
        assert_int_equal(params_check_rule(p, "candle_interval", v, &e), 0);
        json_decref(v);
    }
    plugins_free(ps);
    ps = plugins_open(plugin_dir);
    struct dag *d = dag_load("tests/fixtures/dags/bad/quoted_int.yaml", ps, &e);
    assert_null(d);
    assert_non_null(strstr(e.msg, "quoted_int.yaml:6:22: task \"a\": param \"count\": expected an int, "
                                  "got the quoted string \"5\""));
    d = dag_load("tests/fixtures/dags/bad/long_dag_id.yaml", ps, &e);
    assert_null(d);
    assert_non_null(strstr(e.msg, "long_dag_id.yaml:2:9: bad dag_id"));
    assert_non_null(strstr(e.msg, "101 characters, at most 100"));
    plugins_free(ps);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_plugin_loads_typed_plugin),
        cmocka_unit_test(test_plugin_refuses_other_abi),
        cmocka_unit_test(test_plugin_refuses_missing_entry),
        cmocka_unit_test(test_plugin_refuses_name_mismatch),
        cmocka_unit_test(test_plugin_refuses_small_descriptor),
        cmocka_unit_test(test_plugin_refuses_missing_run),
        cmocka_unit_test(test_plugin_refuses_bad_param_tables),
        cmocka_unit_test(test_plugin_refuses_unresolved_symbol),
        cmocka_unit_test(test_plugin_refuses_bad_names),
        cmocka_unit_test(test_plugin_load_all_sorted),
        cmocka_unit_test(test_params_from_text),
        cmocka_unit_test(test_params_from_json),
        cmocka_unit_test(test_params_today_is_the_runs),
        cmocka_unit_test(test_params_rules_and_quotes),
    };
    return cmocka_run_group_tests_name("plugin", t, setup, NULL);
}
