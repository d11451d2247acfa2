/* Tests for runtime/dag.c and the plugin loader's ABI rule: bad fixtures, good DAGs, params, descriptor sizes. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dag.h"
#include "date.h"
#include "hook.h"
#include "plugin.h"

#define DAGS "tests/fixtures/dags/"

static char plugin_dir[512];

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("DR_BUILD");
    snprintf(plugin_dir, sizeof plugin_dir, "%s/tests/plugins", b && *b ? b : "build");
    unsetenv("DATABASE_URL");
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one bad fixture against its "# expect: LINE:COL: text" line; returns 0 or
 * -1 after printing why. */
static int check_bad(struct plugins *ps, const char *path)
{
    char first[512] = "";
    FILE *f = fopen(path, "rb");
    if (!f || !fgets(first, sizeof first, f)) {
        if (f)
            fclose(f);
        print_error("%s: cannot read line 1\n", path);
        return -1;
    }
    fclose(f);
    first[strcspn(first, "\n")] = '\0';
    int line, col, used = 0;
    if (sscanf(first, "# expect: %d:%d: %n", &line, &col, &used) != 2 || used == 0) {
        print_error("%s: line 1 is not \"# expect: LINE:COL: message\"\n", path);
        return -1;
    }
    const char *want = first + used;
    struct dr_err e;
    err_clear(&e);
    struct dag *d = dag_load(path, ps, &e);
    if (d) {
        dag_free(d);
        print_error("%s: loaded, expected %d:%d: %s\n", path, line, col, want);
        return -1;
    }
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, line, col);
    if (strncmp(e.msg, prefix, strlen(prefix)) != 0 || !strstr(e.msg + strlen(prefix), want) ||
        e.line != line || e.col != col) {
        print_error("%s:\n  want %s... %s\n  got  %s (line %d col %d)\n", path, prefix, want, e.msg, e.line, e.col);
        return -1;
    }
    return 0;
}

static void test_loader_bad_fixtures(void **state)
{
    (void)state;
    DIR *dp = opendir(DAGS "bad");
    assert_non_null(dp);
    char *names[512];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && n < 512) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_name);
    assert_true(n >= 30);
    struct plugins *ps = plugins_open(plugin_dir);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, DAGS "bad/%s", names[i]);
        if (check_bad(ps, path) < 0)
            failed++;
        free(names[i]);
    }
    plugins_free(ps);
    if (failed)
        fail_msg("%d of %zu bad fixtures did not fail as expected", failed, n);
}

static void test_loader_refuses_file_over_1mib(void **state)
{
    (void)state;
    char path[] = "/tmp/dr_loader_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("dag_id: big\n", f);
    while (ftell(f) <= (1 << 20))
        fputs("# padding padding padding padding padding padding padding\n", f);
    fclose(f);
    struct plugins *ps = plugins_open(plugin_dir);
    struct dr_err e;
    err_clear(&e);
    struct dag *d = dag_load(path, ps, &e);
    unlink(path);
    plugins_free(ps);
    assert_null(d);
    char want[128];
    snprintf(want, sizeof want, "%s:1:1: file is ", path);
    if (!strstr(e.msg, want) || !strstr(e.msg, "over the 1 MiB limit"))
        fail_msg("got \"%s\"", e.msg);
}

static struct dag *load_good(struct plugins *ps, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, DAGS "good/%s", name);
    struct dr_err e;
    err_clear(&e);
    struct dag *d = dag_load(path, ps, &e);
    if (!d)
        fail_msg("%s", e.msg);
    return d;
}

static const char *json_text(const json_t *v)
{
    static char buf[512];
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(buf, sizeof buf, "%s", s ? s : "(null)");
    free(s);
    return buf;
}

/* on_failure: the argv kept word for word (no shell splitting or expansion), the webhook
 * as written (its ${VAR} is read when it fires), the timeout; none when absent. */
static void test_loader_reads_on_failure(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dr_err e;
    err_clear(&e);
    struct dag *d = dag_load(DAGS "hook/on_failure.yaml", ps, &e);
    if (!d)
        fail_msg("%s", e.msg);
    assert_non_null(d->on_failure);
    char **a = d->on_failure->argv;
    assert_non_null(a);
    assert_string_equal(a[0], "/usr/local/bin/notify");
    assert_string_equal(a[1], "two words");
    assert_string_equal(a[2], "$(not expanded)");
    assert_null(a[3]);
    assert_string_equal(d->on_failure->webhook, "https://hooks.example.com/${HOOK_TOKEN}");
    assert_int_equal(d->on_failure->timeout_ms, 5000);
    dag_free(d);
    d = load_good(ps, "kite_like.yaml");
    assert_null(d->on_failure);
    dag_free(d);
    plugins_free(ps);
}

static void test_loader_good_kite_like(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dag *d = load_good(ps, "kite_like.yaml");
    assert_string_equal(d->dag_id, "kite_like");
    assert_string_equal(d->description, "Daily candles, incremental");
    assert_string_equal(d->schedule, "30 18 * * 1-5");
    assert_non_null(d->cron);
    assert_string_equal(tz_name(d->tz), "Asia/Kolkata");
    char day[16];
    date_format(d->start_date, day, sizeof day);
    assert_string_equal(day, "2025-01-01");
    assert_false(d->catchup);
    assert_int_equal(d->max_active_runs, 2);
    assert_int_equal(d->max_active_tasks, 4);
    assert_int_equal(d->n_tasks, 5);
    static const char *ids[] = { "list", "ranges", "chunks", "fetch", "upsert" };
    for (int i = 0; i < 5; i++) {
        assert_string_equal(d->tasks[i].id, ids[i]);
        assert_int_equal(dag_task_index(d, ids[i]), i);
        assert_int_equal(d->topo[i], i);
    }
    assert_int_equal(dag_task_index(d, "nope"), -1);
    const struct task *list = &d->tasks[0], *ranges = &d->tasks[1], *chunks = &d->tasks[2],
                      *fetch = &d->tasks[3], *upsert = &d->tasks[4];
    assert_string_equal(list->plugin_name, "ok_typed");
    assert_string_equal(list->plugin->name, "ok_typed");
    assert_int_equal(list->line, 22);
    assert_int_equal(list->col, 3);
    assert_int_equal(list->n_after, 0);
    assert_int_equal(list->map_idx, -1);
    assert_string_equal(json_text(list->params),
                        "{\"count\":7,\"day\":\"2024-02-29\",\"flag\":true,\"symbols\":[\"NSE\",\"BSE\"],\"wait\":250}");
    assert_int_equal(ranges->n_after, 1);                  /* after: a single string */
    assert_string_equal(ranges->after[0], "list");
    assert_int_equal(ranges->after_idx[0], 0);
    assert_int_equal(chunks->after_idx[0], 1);
    assert_int_equal(chunks->trigger, TR_ALL_DONE);
    assert_int_equal(chunks->retry.retries, 0);            /* task overrides default_args */
    assert_int_equal(chunks->retry.retry_delay_ms, 2000);  /* ...only where it says so */
    assert_string_equal(fetch->map, "chunks");
    assert_int_equal(fetch->map_idx, 2);
    assert_int_equal(fetch->n_after, 0);
    assert_string_equal(fetch->pool, "other");
    assert_string_equal(upsert->pool, "kite");
    assert_int_equal(upsert->map_idx, 2);
    assert_int_equal(upsert->after_idx[0], 3);
    assert_int_equal(upsert->trigger, TR_ALL_SUCCESS);
    /* default_args feed every task. */
    assert_int_equal(list->retry.retries, 3);
    assert_int_equal(list->retry.retry_delay_ms, 2000);
    assert_true(list->retry.exponential);
    assert_int_equal(list->retry.max_retry_delay_ms, 300000);
    assert_int_equal(list->retry.timeout_ms, 1800000);
    assert_int_equal(upsert->retry.timeout_ms, 3600000);
    /* DAG params: typed when the plugins agree, as written when they do not (shared). */
    assert_string_equal(json_text(d->params), "{\"interval\":\"minute\",\"need\":\"from_dag\",\"shared\":\"5m\"}");
    dag_free(d);
    plugins_free(ps);
}

static void test_loader_good_block_style(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dag *d = load_good(ps, "block_style.yaml");
    assert_null(d->schedule);
    assert_null(d->cron);
    assert_null(d->description);
    assert_string_equal(tz_name(d->tz), "UTC");
    assert_true(d->start_date == INT64_MIN);
    assert_int_equal(d->max_active_runs, 1);
    assert_int_equal(d->max_active_tasks, 0);
    /* c a b d in the file: a, then b, then c; d is ready early but comes later in the file. */
    int want[] = { 1, 2, 0, 3 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(d->topo[i], want[i]);
    assert_int_equal(d->tasks[0].after_idx[0], 2);
    assert_int_equal(d->tasks[2].after_idx[0], 1);
    assert_null(d->tasks[2].pool);
    const struct task *t = &d->tasks[1];
    assert_int_equal(t->retry.retries, 0);
    assert_int_equal(t->retry.retry_delay_ms, 1000);
    assert_false(t->retry.exponential);
    assert_int_equal(t->retry.max_retry_delay_ms, 3600000);
    assert_int_equal(t->retry.timeout_ms, 0);
    assert_int_equal(t->trigger, TR_ALL_SUCCESS);
    assert_string_equal(json_text(d->tasks[3].params), "{\"need\":\"quoted\",\"symbols\":[\"NSE\"],\"text\":\"\"}");
    dag_free(d);
    plugins_free(ps);
}

static json_t *jparse(const char *s)
{
    json_error_t je;
    json_t *v = json_loads(s, 0, &je);
    if (!v)
        fail_msg("bad test JSON %s: %s", s, je.text);
    return v;
}

static void conf_case(const struct dag *d, const char *conf, const char *want)
{
    json_t *c = jparse(conf);
    struct dr_err e;
    err_clear(&e);
    int rc = dag_check_conf(d, c, &e);
    json_decref(c);
    if (!want) {
        if (rc != 0)
            fail_msg("%s: %s", conf, e.msg);
        return;
    }
    assert_int_equal(rc, -1);
    if (!strstr(e.msg, want))
        fail_msg("%s: \"%s\" lacks \"%s\"", conf, e.msg, want);
}

static void test_loader_check_conf(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dag *d = load_good(ps, "kite_like.yaml");
    conf_case(d, "{}", NULL);
    conf_case(d, "{\"interval\": \"5minute\", \"count\": 3, \"wait\": \"1s\", \"symbols\": [\"NSE\"]}", NULL);
    conf_case(d, "{\"shared\": \"10s\"}", NULL);
    conf_case(d, "{\"nope\": 1}", "--conf: unknown key \"nope\" (takes: count, day, flag, from, interval, need, "
                                  "shared, symbols, text, to, wait)");
    conf_case(d, "{\"count\": \"many\"}", "--conf: param \"count\"");
    conf_case(d, "{\"from\": \"2024-02-30\"}", "bad date");
    conf_case(d, "{\"symbols\": \"NSE\"}", "expected a list");
    /* shared is a string for ok_typed and a duration for ok_plain: it must fit both. */
    conf_case(d, "{\"shared\": \"abc\"}", "bad duration");
    dag_free(d);
    plugins_free(ps);
}

static json_t *resolve(const struct dag *d, const char *task, const struct config *cfg, const char *conf)
{
    json_t *c = conf ? jparse(conf) : NULL;
    struct dr_err e;
    err_clear(&e);
    json_t *r = dag_resolve_params(d, (size_t)dag_task_index(d, task), cfg, c, &e);
    json_decref(c);
    if (!r)
        fail_msg("resolve %s: %s", task, e.msg);
    return r;
}

static void test_loader_resolve_precedence(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    struct dag *d = load_good(ps, "kite_like.yaml");
    struct dr_err e;
    err_clear(&e);
    struct config *cfg = config_load("tests/fixtures/config/dag_params.json", &e);
    if (!cfg)
        fail_msg("%s", e.msg);

    /* plugin default < DAG params < task params. */
    json_t *r = resolve(d, "fetch", NULL, NULL);
    assert_string_equal(json_text(r),
                        "{\"from\":\"2024-01-01\",\"interval\":\"minute\",\"shared\":300000,\"to\":\"today\"}");
    json_decref(r);
    /* < config.json dags.<id>.params (interval, from). */
    r = resolve(d, "fetch", cfg, NULL);
    assert_string_equal(json_text(r),
                        "{\"from\":\"2023-01-01\",\"interval\":\"3minute\",\"shared\":300000,\"to\":\"today\"}");
    json_decref(r);
    /* < --conf. */
    r = resolve(d, "fetch", cfg, "{\"interval\": \"5minute\", \"to\": \"2024-06-30\", \"shared\": \"1m\"}");
    assert_string_equal(json_text(r),
                        "{\"from\":\"2023-01-01\",\"interval\":\"5minute\",\"shared\":60000,\"to\":\"2024-06-30\"}");
    json_decref(r);
    /* The same DAG param typed per plugin: a string for ok_typed. */
    r = resolve(d, "list", cfg, "{\"count\": 9}");
    assert_string_equal(json_text(r),
                        "{\"count\":9,\"day\":\"2024-02-29\",\"flag\":true,\"need\":\"from_dag\",\"shared\":\"5m\","
                        "\"symbols\":[\"NSE\",\"BSE\"],\"text\":\"hello\",\"wait\":250}");
    json_decref(r);
    r = resolve(d, "upsert", NULL, "{\"need\": \"from_conf\"}");
    assert_string_equal(json_string_value(json_object_get(r, "need")), "from_conf");
    assert_int_equal(json_integer_value(json_object_get(r, "wait")), 2000);
    json_decref(r);

    /* Unknown keys in --conf or in config.json's dags.<id>.params are errors. */
    json_t *c = jparse("{\"nope\": 1}");
    err_clear(&e);
    assert_null(dag_resolve_params(d, 0, cfg, c, &e));
    assert_non_null(strstr(e.msg, "--conf: unknown key \"nope\""));
    json_decref(c);
    config_free(cfg);
    err_clear(&e);
    cfg = config_load("tests/fixtures/config/dag_params_unknown.json", &e);
    assert_non_null(cfg);
    assert_null(dag_resolve_params(d, 0, cfg, NULL, &e));
    assert_non_null(strstr(e.msg, "dags.kite_like.params: unknown key \"nope\""));
    config_free(cfg);
    dag_free(d);
    plugins_free(ps);
}

static void test_loader_list_files(void **state)
{
    (void)state;
    struct dr_err e;
    err_clear(&e);
    char **files = dag_list_files(DAGS "good", &e);
    assert_non_null(files);
    assert_string_equal(files[0], DAGS "good/block_style.yaml");
    assert_string_equal(files[1], DAGS "good/kite_like.yaml");
    assert_null(files[2]);
    dag_free_list(files);
    files = dag_list_files(DAGS, &e);
    assert_non_null(files);
    size_t n = 0;
    for (; files[n]; n++)
        if (n)
            assert_true(strcmp(files[n - 1], files[n]) < 0);
    assert_true(n >= 32);
    dag_free_list(files);
    assert_null(dag_list_files(DAGS "no_such_dir", &e));
    assert_non_null(strstr(e.msg, "no_such_dir"));
}

/* Loads test plugin name; returns it, or NULL with the refusal in msg. */
static const struct plugin *load_plugin(struct plugins *ps, const char *name, char *msg, size_t len)
{
    struct dr_err e;
    err_clear(&e);
    const struct plugin *p = plugins_get(ps, name, &e);
    snprintf(msg, len, "%s", p ? "" : e.msg);
    return p;
}

static void test_loader_accepts_v1_descriptor(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    char msg[2048];
    const struct plugin *p = load_plugin(ps, "v1_layout", msg, sizeof msg);
    if (!p)
        fail_msg("v1_layout refused: %s", msg);
    assert_int_equal(p->def->abi_version, 1);
    assert_int_equal(p->def->size, DR_TASK_DEF_V1_SIZE);
    assert_true(DR_TASK_DEF_V1_SIZE < sizeof(dr_task_def));
    assert_false(DR_TASK_DEF_HAS(p->def, source_param));
    assert_true(DR_TASK_DEF_HAS(p->def, fini));
    plugins_free(ps);
}

static void test_loader_refuses_descriptor_below_v1(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    char msg[2048], want[128];
    assert_null(load_plugin(ps, "small_size", msg, sizeof msg));
    snprintf(want, sizeof want, "small_size.so: plugin descriptor is %zu bytes, dagrun expects at least %zu",
             offsetof(dr_task_def, fini), (size_t)DR_TASK_DEF_V1_SIZE);
    if (!strstr(msg, want))
        fail_msg("\"%s\" lacks \"%s\"", msg, want);
    plugins_free(ps);
}

static void test_loader_refuses_newer_abi(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    char msg[2048], want[160];
    assert_null(load_plugin(ps, "wrong_abi", msg, sizeof msg));
    snprintf(want, sizeof want, "/wrong_abi.so: plugin ABI %d, dagrun speaks ABI %d: rebuild it "
             "against this dagrun", DR_ABI_VERSION + 1, DR_ABI_VERSION);
    if (!strstr(msg, want))
        fail_msg("\"%s\" lacks \"%s\"", msg, want);
    assert_int_equal(plugins_count(ps), 0);
    plugins_free(ps);
}

static void test_loader_reads_source_param_of_v2(void **state)
{
    (void)state;
    struct plugins *ps = plugins_open(plugin_dir);
    char msg[2048];
    const struct plugin *p = load_plugin(ps, "ok_source", msg, sizeof msg);
    if (!p)
        fail_msg("ok_source refused: %s", msg);
    assert_true(DR_TASK_DEF_HAS(p->def, source_param));
    assert_string_equal(p->def->source_param, "source");
    assert_null(load_plugin(ps, "bad_source_param", msg, sizeof msg));
    assert_non_null(strstr(msg, "source_param \"source\" is not a declared string param"));
    plugins_free(ps);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_loader_bad_fixtures),
        cmocka_unit_test(test_loader_refuses_file_over_1mib),
        cmocka_unit_test(test_loader_good_kite_like),
        cmocka_unit_test(test_loader_good_block_style),
        cmocka_unit_test(test_loader_check_conf),
        cmocka_unit_test(test_loader_resolve_precedence),
        cmocka_unit_test(test_loader_list_files),
        cmocka_unit_test(test_loader_accepts_v1_descriptor),
        cmocka_unit_test(test_loader_refuses_descriptor_below_v1),
        cmocka_unit_test(test_loader_refuses_newer_abi),
        cmocka_unit_test(test_loader_reads_source_param_of_v2),
        cmocka_unit_test(test_loader_reads_on_failure),
    };
    return cmocka_run_group_tests_name("loader", t, setup, NULL);
}
