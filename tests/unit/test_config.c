/* Tests for runtime/config.c: defaults, every key, ${ENV} expansion, overrides and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define FIX "tests/fixtures/config/"

static int setup(void **state)
{
    (void)state;
    unsetenv("DATABASE_URL");
    setenv("DR_TEST_DBHOST", "db.example", 1);
    setenv("DR_TEST_PORT", "18080", 1);
    unsetenv("DR_TEST_SURELY_UNSET_VAR");
    return 0;
}

static void test_config_builtin_defaults(void **state)
{
    (void)state;
    char cwd[4096], tmpl[] = "/tmp/dr_config_test_XXXXXX";
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(mkdtemp(tmpl));
    assert_int_equal(chdir(tmpl), 0);
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(NULL, &e);
    assert_int_equal(chdir(cwd), 0);
    rmdir(tmpl);
    if (!c)
        fail_msg("%s", e.msg);
    assert_null(c->path);
    assert_null(c->database_url);
    assert_string_equal(c->dags_dir, "dags");
    assert_string_equal(c->plugin_dir, "build/tasks");
    assert_int_equal(c->max_active_tasks, 8);
    assert_int_equal(c->db_connections, 0);
    assert_int_equal(config_db_connections(c), (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_string_equal(c->log_format, "auto");
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->heartbeat_sec, 5);
    assert_int_equal(c->heartbeat_timeout_sec, 60);
    assert_int_equal(c->n_sources, 0);
    assert_int_equal(c->n_pools, 0);
    assert_non_null(c->dags);
    assert_null(config_source(c, "kite"));
    assert_null(config_dag_params(c, "x"));
    config_free(c);
}

static void test_config_repo_file_has_kite(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(NULL, &e);   /* the repo's ./config.json */
    if (!c)
        fail_msg("%s", e.msg);
    assert_string_equal(c->path, "config.json");
    assert_string_equal(c->dags_dir, "dags");
    assert_string_equal(c->plugin_dir, "build/tasks");
    assert_null(c->database_url);
    const struct source_cfg *k = config_source(c, "kite");
    assert_non_null(k);
    assert_string_equal(k->base_url, "https://api.kite.trade");
    /* Kite's headers live in its config block, with the secrets unexpanded. */
    assert_int_equal(k->n_headers, 2);
    assert_string_equal(k->headers[0].name, "X-Kite-Version");
    assert_string_equal(k->headers[0].value, "3");
    assert_string_equal(k->headers[1].name, "Authorization");
    assert_string_equal(k->headers[1].value, "token ${KITE_API_KEY}:${KITE_ACCESS_TOKEN}");
    assert_true(k->rate_limit_per_sec == 3.0);
    assert_int_equal(k->burst, 1);
    assert_int_equal(k->timeout_ms, 30000);
    assert_int_equal(k->connect_timeout_ms, 10000);
    assert_int_equal(k->max_retries, 5);
    assert_int_equal(k->retry_delay_ms, 500);
    assert_int_equal(k->max_retry_delay_ms, 30000);
    assert_int_equal(k->max_body_bytes, 64LL << 20);
    assert_int_equal(config_pool(c, "kite")->slots, 8);
    config_free(c);
}

static void test_config_full_file_expands_env(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(FIX "full.json", &e);
    if (!c)
        fail_msg("%s", e.msg);
    assert_string_equal(c->database_url, "postgresql://u@db.example/dagrun");
    assert_string_equal(c->dir, "tests/fixtures/config");
    assert_string_equal(c->dags_dir, "tests/fixtures/config/my_dags");
    assert_string_equal(c->plugin_dir, "/opt/dagrun/tasks");
    assert_int_equal(c->max_active_tasks, 3);
    assert_int_equal(config_db_connections(c), 3);
    assert_string_equal(c->log_format, "json");
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(c->heartbeat_sec, 2);
    assert_int_equal(c->heartbeat_timeout_sec, 30);
    const struct source_cfg *s = config_source(c, "sim");
    assert_non_null(s);
    assert_string_equal(s->base_url, "http://127.0.0.1:18080");   /* trailing '/' dropped */
    assert_int_equal(s->n_headers, 0);
    assert_true(s->rate_limit_per_sec == 0.0);
    assert_int_equal(s->burst, 5);
    assert_int_equal(s->timeout_ms, 1000);
    assert_int_equal(s->connect_timeout_ms, 200);
    assert_int_equal(s->max_retries, 2);
    assert_int_equal(s->retry_delay_ms, 10);
    assert_int_equal(s->max_retry_delay_ms, 100);
    assert_int_equal(s->max_body_bytes, 1048576);
    assert_int_equal(config_pool(c, "kite")->slots, 4);
    assert_null(config_pool(c, "other"));
    const json_t *p = config_dag_params(c, "kite_historic");
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "end_date")), "2024-01-31");
    assert_string_equal(json_string_value(json_object_get(p, "note")), "cost $5");
    config_free(c);
}

static void test_config_database_url_env_overrides(void **state)
{
    (void)state;
    setenv("DATABASE_URL", "postgresql:///override", 1);
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(FIX "full.json", &e);
    unsetenv("DATABASE_URL");
    if (!c)
        fail_msg("%s", e.msg);
    assert_string_equal(c->database_url, "postgresql:///override");
    config_free(c);
}

static void expect_error(const char *file, const char *want1, const char *want2)
{
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(file, &e);
    if (c) {
        config_free(c);
        fail_msg("%s: loaded, expected \"%s\"", file, want1);
    }
    if (!strstr(e.msg, want1) || (want2 && !strstr(e.msg, want2)))
        fail_msg("%s: \"%s\" lacks \"%s\" / \"%s\"", file, e.msg, want1, want2 ? want2 : "");
}

static void test_config_unknown_keys(void **state)
{
    (void)state;
    expect_error(FIX "unknown_nested.json", FIX "unknown_nested.json: sources.kite.rate_limit: unknown key",
                 NULL);
    expect_error(FIX "unknown_top.json", FIX "unknown_top.json: shedule: unknown key", NULL);
    expect_error(FIX "bad_dags.json", "dags.kite.parms: unknown key", NULL);
}

static void test_config_unset_variable_is_named(void **state)
{
    (void)state;
    expect_error(FIX "unset_var.json", "database_url: environment variable DR_TEST_SURELY_UNSET_VAR is not set",
                 NULL);
}

static void test_config_bad_values(void **state)
{
    (void)state;
    expect_error(FIX "bad_type.json", "max_active_tasks: expected an integer", NULL);
    expect_error(FIX "bad_url.json", "sources.kite.base_url: must start with http:// or https://", NULL);
    expect_error(FIX "no_host.json", "sources.kite.base_url: has no host", NULL);   /* found by fuzz_config */
    expect_error(FIX "bad_format.json", "log_format: \"xml\" is not one of auto, text, json", NULL);
    expect_error(FIX "bad_pool.json", "pools.kite.slots: 0 out of range", NULL);
    /* A rate a run would never finish at: a floor, with the file and the key. */
    expect_error(FIX "tiny_rate.json", FIX "tiny_rate.json: sources.kite.rate_limit_per_sec: "
                 "expected 0 (no limit) or a number from 0.001", NULL);
    expect_error(FIX "duplicate.json", FIX "duplicate.json:2:", "duplicate");
    expect_error(FIX "syntax.json", FIX "syntax.json:2:", NULL);
    expect_error(FIX "no_such_file.json", FIX "no_such_file.json", NULL);
}

/* Header values stay as written: an unset variable in one is not a load error
 * (the HTTP client says so when a request needs it), and $$ stays too. */
static void test_config_headers_kept_unexpanded(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(FIX "headers.json", &e);
    if (!c)
        fail_msg("%s", e.msg);
    const struct source_cfg *s = config_source(c, "acme");
    assert_non_null(s);
    assert_int_equal(s->n_headers, 3);
    assert_string_equal(s->headers[0].name, "X-Acme-Key");
    assert_string_equal(s->headers[0].value, "${DR_TEST_SURELY_UNSET_VAR}");
    assert_string_equal(s->headers[1].value, "free $$ tier");
    assert_string_equal(s->headers[2].name, "Authorization");
    assert_string_equal(s->headers[2].value, "Bearer ${DR_TEST_SURELY_UNSET_VAR}");
    config_free(c);
}

/* The deprecated api_key_env/access_token_env become the header they stood for. */
static void test_config_legacy_credentials_translated(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(FIX "legacy_auth.json", &e);
    if (!c)
        fail_msg("%s", e.msg);
    const struct source_cfg *s = config_source(c, "old");
    assert_int_equal(s->n_headers, 2);
    assert_string_equal(s->headers[0].name, "X-Version");
    assert_string_equal(s->headers[1].name, "Authorization");
    assert_string_equal(s->headers[1].value, "token ${OLD_KEY}:${OLD_TOKEN}");
    s = config_source(c, "keyonly");
    assert_int_equal(s->n_headers, 1);
    assert_string_equal(s->headers[0].value, "token ${ONLY_KEY}");
    config_free(c);
    expect_error(FIX "legacy_conflict.json",
                 "sources.old: api_key_env and headers.Authorization both given", NULL);
}

static void test_config_bad_headers(void **state)
{
    (void)state;
    expect_error(FIX "bad_header_name.json", "sources.acme.headers.X Key: bad header name", NULL);
    expect_error(FIX "bad_header_value.json", "sources.acme.headers.X-Key: a header value cannot "
                 "hold a line break", NULL);
    expect_error(FIX "bad_header_var.json", "sources.acme.headers.X-Key: unterminated ${", NULL);
    expect_error(FIX "bad_header_twice.json", "sources.acme.headers.x-key: header given twice", NULL);
    expect_error(FIX "bad_headers_type.json", "sources.acme.headers: expected an object", NULL);
}

/* sources.<name>.limits: windows of requests or weight, used headers, bans. */
static void test_config_limits(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    struct config *c = config_load(FIX "limits.json", &e);
    if (!c)
        fail_msg("%s", e.msg);
    const struct source_cfg *s = config_source(c, "binance");
    assert_int_equal(s->n_limits, 4);
    assert_true(s->limits[0].weighted);
    assert_int_equal(s->limits[0].cap, 6000);
    assert_int_equal(s->limits[0].per_ms, 60000);
    assert_string_equal(s->limits[0].used_header, "X-MBX-USED-WEIGHT-1M");
    assert_false(s->limits[1].weighted);
    assert_int_equal(s->limits[1].cap, 10000);
    assert_int_equal(s->limits[1].per_ms, 86400000);
    assert_null(s->limits[1].used_header);
    assert_int_equal(s->limits[1].reset, LIMIT_SLIDING);
    assert_int_equal(s->limits[2].reset, LIMIT_UTC_MONTH);
    assert_int_equal(s->limits[2].cap, 300000);
    assert_int_equal(s->limits[3].reset, LIMIT_FIXED);
    assert_int_equal(s->limits[3].per_ms, 10000);
    assert_int_equal(s->ban_status, 418);
    assert_true(s->rate_limit_per_sec == 0.0);
    config_free(c);
    expect_error(FIX "bad_limits_both.json", "sources.a: rate_limit_per_sec and limits both given", NULL);
    expect_error(FIX "bad_limits_per.json", "sources.a.limits[0].per:", NULL);
    expect_error(FIX "bad_limits_key.json", "sources.a.limits[0].burst: unknown key", NULL);
    expect_error(FIX "bad_limits_two_caps.json", "sources.a.limits[0]: give one of requests and weight", NULL);
    expect_error(FIX "bad_limits_empty.json", "sources.a.limits: expected a list of 1 to 16 windows", NULL);
    expect_error(FIX "bad_limits_reset.json", "sources.a.limits[0].reset: expected \"utc_day\", \"utc_month\" or \"fixed\"", NULL);
    expect_error(FIX "bad_limits_fixed_no_per.json", "sources.a.limits[0]: needs requests (or weight) and per", NULL);
    expect_error(FIX "bad_limits_reset_per.json", "sources.a.limits[0]: give per (a sliding window) or reset", NULL);
}

/* config_load accepts a NULL err: a refused file gives NULL, never a write through NULL. */
static void test_config_null_err(void **state)
{
    (void)state;
    assert_null(config_load(FIX "syntax.json", NULL));
    char dir[] = "/tmp/dr_test_config_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/big.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < (1 << 20) + 1; i++)
        fputc(' ', f);
    fclose(f);
    assert_null(config_load(path, NULL));
    struct dr_err e;
    err_clear(&e);
    assert_null(config_load(path, &e));
    assert_non_null(strstr(e.msg, "over the 1 MiB limit for a config"));
    assert_int_equal(e.line, 1);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_config_builtin_defaults),
        cmocka_unit_test(test_config_repo_file_has_kite),
        cmocka_unit_test(test_config_full_file_expands_env),
        cmocka_unit_test(test_config_database_url_env_overrides),
        cmocka_unit_test(test_config_unknown_keys),
        cmocka_unit_test(test_config_unset_variable_is_named),
        cmocka_unit_test(test_config_bad_values),
        cmocka_unit_test(test_config_headers_kept_unexpanded),
        cmocka_unit_test(test_config_legacy_credentials_translated),
        cmocka_unit_test(test_config_bad_headers),
        cmocka_unit_test(test_config_limits),
        cmocka_unit_test(test_config_null_err),
    };
    return cmocka_run_group_tests_name("config", t, setup, NULL);
}
