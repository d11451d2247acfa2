/* Tests for runtime/preflight.c: the credentials of every source a DAG's tasks load from
 * (through their plugin's source_param) are checked before a run, and a run needing more
 * file descriptors than RLIMIT_NOFILE leaves is refused before the database is touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "dag.h"
#include "plugin.h"
#include "preflight.h"

static char dir[] = "/tmp/dr_test_preflight_XXXXXX";
static char plugin_dir[512];

static void write_file(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("DR_BUILD");
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    if (b && *b == '/')
        snprintf(plugin_dir, sizeof plugin_dir, "%s/tasks", b);
    else
        snprintf(plugin_dir, sizeof plugin_dir, "%s/%s/tasks", cwd, b && *b ? b : "build");
    if (!mkdtemp(dir))
        return -1;
    unsetenv("DATABASE_URL");
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{ \"plugin_dir\": \"%s\", \"sources\": {\n"
             "  \"kite\": { \"base_url\": \"http://127.0.0.1:1\", \"headers\": {\n"
             "     \"Authorization\": \"token ${DR_PF_KEY}:${DR_PF_TOKEN}\" } },\n"
             "  \"other\": { \"base_url\": \"http://127.0.0.1:1\", \"headers\": {\n"
             "     \"X-Key\": \"${DR_PF_OTHER}\" } },\n"
             "  \"open\": { \"base_url\": \"http://127.0.0.1:1\" } } }\n", plugin_dir);
    write_file("config.json", cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Loads the DAG text as a file, resolves its params and runs preflight_credentials.
 * Returns its result; err holds the message. */
static int check_dag(const char *yaml, struct dr_err *err)
{
    char cpath[600], dpath[600];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    snprintf(dpath, sizeof dpath, "%s/d.yaml", dir);
    write_file("d.yaml", yaml);
    struct dr_err e;
    err_clear(&e);
    struct config *cfg = config_load(cpath, &e);
    assert_non_null(cfg);
    struct plugins *ps = plugins_open(cfg->plugin_dir);
    struct dag *d = dag_load(dpath, ps, &e);
    if (!d)
        print_error("%s\n", e.msg);
    assert_non_null(d);
    json_t *params[8] = { 0 };
    assert_true(d->n_tasks <= 8);
    for (size_t i = 0; i < d->n_tasks; i++)
        assert_non_null(params[i] = dag_resolve_params(d, i, cfg, NULL, &e));
    err_clear(err);
    int rc = preflight_credentials(d, params, cfg, err);
    for (size_t i = 0; i < d->n_tasks; i++)
        json_decref(params[i]);
    dag_free(d);
    plugins_free(ps);
    config_free(cfg);
    return rc;
}

static const char two_tasks[] =
    "dag_id: pf\ntasks:\n"
    "  a: { plugin: load_instruments }\n"
    "  b: { plugin: load_instruments, params: { source: other }, after: [a] }\n";

static void test_unset_named(void **state)
{
    (void)state;
    struct dr_err err;
    setenv("DR_PF_KEY", "key_123", 1);
    unsetenv("DR_PF_TOKEN");
    setenv("DR_PF_OTHER", "other_123", 1);
    assert_int_equal(check_dag(two_tasks, &err), -1);
    assert_non_null(strstr(err.msg, "source kite: DR_PF_TOKEN is not set (named in sources.kite.headers)"));
    assert_null(strstr(err.msg, "other"));
    assert_null(strstr(err.msg, "key_123"));

    setenv("DR_PF_TOKEN", "", 1);   /* empty is unset */
    unsetenv("DR_PF_OTHER");
    assert_int_equal(check_dag(two_tasks, &err), -1);
    assert_non_null(strstr(err.msg, "source kite: DR_PF_TOKEN is not set"));
    assert_non_null(strstr(err.msg, "source other: DR_PF_OTHER is not set (named in sources.other.headers)"));

    setenv("DR_PF_TOKEN", "tok_123", 1);
    setenv("DR_PF_OTHER", "other_123", 1);
    assert_int_equal(check_dag(two_tasks, &err), 0);
}

static void test_only_used_sources(void **state)
{
    (void)state;
    struct dr_err err;
    unsetenv("DR_PF_KEY");
    unsetenv("DR_PF_TOKEN");
    unsetenv("DR_PF_OTHER");
    /* A source no task loads from needs nothing; one without headers needs nothing. */
    assert_int_equal(check_dag("dag_id: pf\ntasks:\n  a: { plugin: load_instruments, params: { source: open } }\n",
                               &err), 0);
    assert_int_equal(check_dag("dag_id: pf\ntasks:\n  a: { plugin: load_instruments, params: { source: nowhere } }\n",
                               &err), -1);
    assert_non_null(strstr(err.msg, "task a: source nowhere is not in config.json"));
}

static void test_fds(void **state)
{
    (void)state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 12;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct dag d = { .max_active_tasks = 4 };
    struct config cfg = { .max_active_tasks = 8 };
    struct dr_err err;
    err_clear(&err);
    /* Refused before the store (NULL here) is used. */
    int rc = preflight_resources(&d, &cfg, NULL, &err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "out of file descriptors: a run with 4 workers needs up to 20"));
    assert_int_equal(preflight_workers(&d, &cfg), 4);
    d.max_active_tasks = 0;
    assert_int_equal(preflight_workers(&d, &cfg), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unset_named),
        cmocka_unit_test(test_only_used_sources),
        cmocka_unit_test(test_fds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
