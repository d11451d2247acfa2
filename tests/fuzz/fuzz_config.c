/* libFuzzer target: the input as config.json (config_load) and as a --conf object (dag_check_conf). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "dag.h"
#include "log.h"
#include "plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONF_MAX_INPUT (64 * 1024)

/* A small DAG on the real plugins, written once per process. */
static const char dag_text[] =
    "# fuzz_config: the DAG --conf objects are checked against\n"
    "dag_id: fuzz_conf\n"
    "schedule: \"30 18 * * 1-5\"\n"
    "timezone: Asia/Kolkata\n"
    "params:\n"
    "  candle_interval: day\n"
    "  bootstrap_date: 2020-01-01\n"
    "  exchanges: [NSE]\n"
    "tasks:\n"
    "  list_instruments: { plugin: list_instruments, params: { limit: 5 } }\n"
    "  date_ranges: { plugin: compute_date_ranges, after: [list_instruments],\n"
    "                 params: { end_date: today } }\n"
    "  chunks:      { plugin: chunk_ranges, after: [date_ranges], params: { max_days: 100 } }\n"
    "  fetch:       { plugin: fetch_candles, map: chunks, params: { oi: true } }\n"
    "  upsert:      { plugin: upsert_candles, map: chunks, after: [fetch] }\n";

static struct plugins *plugins;
static struct dag *conf_dag;
static char dir[256], cfg_path[300], dag_path[300];

static void die(const char *why, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s: %s\n", why, detail);
    abort();
}

static void cleanup(void)
{
    dag_free(conf_dag);
    plugins_free(plugins);
    unlink(cfg_path);
    unlink(dag_path);
    rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        die("cannot write", path);
    if (size && fwrite(data, 1, size, f) != size)
        die("short write", path);
    if (fclose(f) != 0)
        die("cannot close", path);
}

static void setup(void)
{
    if (conf_dag)
        return;
    log_setup(LOG_TEXT, DR_LOG_ERROR);
    /* Variables for ${...} expansion; the value of one refers to another. */
    setenv("DR_FUZZ_URL", "postgresql:///dagrun?host=/tmp", 0);
    setenv("DR_FUZZ_REF", "${DR_FUZZ_URL}$$", 0);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_config.%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0)
        die("cannot make the temp folder", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(dag_path, sizeof dag_path, "%s/fuzz_conf.yaml", dir);
    write_file(dag_path, dag_text, sizeof dag_text - 1);

    const char *b = getenv("DR_BUILD");
    char pdir[512];
    snprintf(pdir, sizeof pdir, "%s/tasks", b && *b ? b : "build");
    if (!(plugins = plugins_open(pdir)))
        die("plugins_open failed", pdir);
    struct dr_err err;
    err_clear(&err);
    if (!(conf_dag = dag_load(dag_path, plugins, &err)))
        die("cannot load the conf DAG (build the plugins first: make)", err.msg);
    atexit(cleanup);
}

/* A loaded config keeps its promises: named sources and pools are found, ... */
static void check_config(const struct config *c)
{
    if (!c->dags || !json_is_object(c->dags))
        die("config without a dags object", cfg_path);
    if (!c->dags_dir || !c->plugin_dir)
        die("config without dags_dir or plugin_dir", cfg_path);
    for (size_t i = 0; i < c->n_sources; i++) {
        const struct source_cfg *s = &c->sources[i];
        if (!s->name || config_source(c, s->name) != s)
            die("config_source does not find a source", s->name ? s->name : "?");
        if (!s->base_url)
            die("source without base_url", s->name);
        size_t n = strlen(s->base_url);
        if (n && s->base_url[n - 1] == '/')
            die("base_url keeps a trailing '/'", s->base_url);
        if (s->rate_limit_per_sec < 0)
            die("negative rate limit", s->name);
    }
    for (size_t i = 0; i < c->n_pools; i++)
        if (!c->pools[i].name || config_pool(c, c->pools[i].name) != &c->pools[i])
            die("config_pool does not find a pool", c->pools[i].name ? c->pools[i].name : "?");
}

static void resolve_all(const struct config *cfg, const json_t *conf, bool must_work)
{
    for (size_t i = 0; i < conf_dag->n_tasks; i++) {
        struct dr_err err;
        err_clear(&err);
        json_t *p = dag_resolve_params(conf_dag, i, cfg, conf, &err);
        if (!p && must_work)
            die("dag_check_conf took the conf but dag_resolve_params refused it", err.msg);
        json_decref(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CONF_MAX_INPUT)
        return 0;
    setup();

    /* As config.json. */
    write_file(cfg_path, data, size);
    struct dr_err err;
    err_clear(&err);
    struct config *cfg = config_load(cfg_path, &err);
    if (cfg) {
        check_config(cfg);
        resolve_all(cfg, NULL, false);
    } else if (!err.msg[0]) {
        die("config refused without a message", cfg_path);
    } else if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "fuzz_config: config: %s\n", err.msg);
    }

    /* As --conf (a C string: the text stops at the first NUL, as on a command line). */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    err_clear(&err);
    json_t *conf = cli_parse_conf(text, NULL, &err);
    if (conf) {
        if (!json_is_object(conf))
            die("cli_parse_conf returned a non-object", text);
        err_clear(&err);
        if (dag_check_conf(conf_dag, conf, &err) == 0)
            resolve_all(NULL, conf, true);
        else if (!err.msg[0])
            die("conf refused without a message", text);
        else if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "fuzz_config: conf: %s\n", err.msg);
        if (cfg)
            resolve_all(cfg, conf, false);
        json_decref(conf);
    }
    free(text);
    config_free(cfg);
    return 0;
}
