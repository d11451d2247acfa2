/* Checks before a run starts: the credentials its sources need, and the file descriptors
 * and database connections it will use. */
#include "preflight.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "headers.h"
#include "pgconn.h"

/* The source task i loads from, or NULL when its plugin names no source param. */
static const char *task_source(const struct dag *dag, size_t i, json_t *const *params)
{
    const struct plugin *pl = dag->tasks[i].plugin;
    if (!pl || !pl->def || !DR_TASK_DEF_HAS(pl->def, source_param) || !pl->def->source_param)
        return NULL;
    return json_string_value(json_object_get(params[i], pl->def->source_param));
}

/* Appends one problem to msg ("; " between them). */
static void add_problem(char *msg, size_t size, const char *text)
{
    size_t l = strlen(msg);
    snprintf(msg + l, size - l, "%s%s", l ? "; " : "", text);
}

int preflight_credentials(const struct dag *dag, json_t *const *params, const struct config *cfg,
                          struct dr_err *err)
{
    char msg[sizeof err->msg] = "";
    const char *bad_task = NULL, *bad_param = NULL;
    for (size_t i = 0; i < dag->n_tasks; i++) {
        const char *name = task_source(dag, i, params);
        if (!name)
            continue;
        bool seen = false;      /* each source once, at its first task */
        for (size_t j = 0; j < i && !seen; j++) {
            const char *other = task_source(dag, j, params);
            seen = other && strcmp(other, name) == 0;
        }
        if (seen)
            continue;
        char line[512];
        const struct source_cfg *src = config_source(cfg, name);
        if (!src) {
            snprintf(line, sizeof line, "task %s: source %s is not in config.json (sources)",
                     dag->tasks[i].id, name);
            add_problem(msg, sizeof msg, line);
            bad_task = dag->tasks[i].id;
            bad_param = dag->tasks[i].plugin->def->source_param;
            continue;
        }
        struct headers h;
        struct dr_err e;
        err_clear(&e);
        if (headers_build(&h, src->name, src->headers, src->n_headers, &e) < 0) {
            add_problem(msg, sizeof msg, e.msg);
        } else if (h.unusable[0]) {
            snprintf(line, sizeof line, "source %s: %s (named in sources.%s.headers)", src->name,
                     h.unusable, src->name);
            add_problem(msg, sizeof msg, line);
        }
        headers_fini(&h);
    }
    if (!msg[0])
        return 0;
    err_set(err, "%s", msg);
    if (bad_task)
        err_hint(err, "add the source to config.json, or set the task's %s param", bad_param);
    else
        err_hint(err, "export the variables (or fix sources.<name>.headers in config.json)");
    return -1;
}

int preflight_workers(const struct dag *dag, const struct config *cfg)
{
    int w = dag->max_active_tasks ? dag->max_active_tasks : cfg->max_active_tasks;
    return w > 0 ? w : 1;
}

/* File descriptors open now (3 when /proc cannot say). */
static long fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 3;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own */
}

static int check_fds(int workers, struct dr_err *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    long open_now = fds_open();
    long need = (long)workers * PREFLIGHT_FDS_PER_WORKER + PREFLIGHT_FDS_EXTRA;
    long have = (long)rl.rlim_cur - open_now;
    if (need <= have)
        return 0;
    err_set(err, "the process is out of file descriptors: a run with %d worker%s needs up to %ld, "
            "%ld of ulimit -n %llu are free", workers, workers == 1 ? "" : "s", need,
            have > 0 ? have : 0, (unsigned long long)rl.rlim_cur);
    return err_hint(err, "raise the limit (ulimit -n %ld) or lower max_active_tasks",
                    open_now + need);
}

static const char sql_slots[] =
    "SELECT current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int"
    "   + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0),"
    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
    " (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user),"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    "   AND usename = current_user),"
    " (SELECT datconnlimit FROM pg_database WHERE datname = current_database()),"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    "   AND datname = current_database()),"
    " current_user, current_database()";

static int check_connections(int workers, int pool, struct store *st, struct dr_err *err)
{
    PGresult *res = pgconn_exec(store_conn(st), sql_slots, 0, NULL, err,
                                "reading the server's connection limits");
    if (!res)
        return -1;
    int64_t v[8] = { 0 };
    for (int i = 0; i < 8; i++)
        if (i != 2)
            pgconn_parse_i64(PQgetvalue(res, 0, i), &v[i]);
    bool super = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    int64_t need = (int64_t)(workers < pool ? workers : pool) + PREFLIGHT_RECORDER_CONNS;
    char why[512] = "";
    int64_t free_slots = v[0] - (super ? 0 : v[1]) - v[3];
    if (free_slots < need)
        snprintf(why, sizeof why, "max_connections %lld%s, %lld in use", (long long)v[0],
                 super ? "" : " less the reserved ones", (long long)v[3]);
    if (!super && v[4] >= 0 && v[4] - v[5] < free_slots) {
        free_slots = v[4] - v[5];
        snprintf(why, sizeof why, "role %s: CONNECTION LIMIT %lld, %lld in use",
                 PQgetvalue(res, 0, 8), (long long)v[4], (long long)v[5]);
    }
    if (!super && v[6] >= 0 && v[6] - v[7] < free_slots) {
        free_slots = v[6] - v[7];
        snprintf(why, sizeof why, "database %s: CONNECTION LIMIT %lld, %lld in use",
                 PQgetvalue(res, 0, 9), (long long)v[6], (long long)v[7]);
    }
    PQclear(res);
    if (free_slots >= need)
        return 0;
    err_set(err, "the database server has %lld free connection%s (%s); a run with %d worker%s "
            "needs up to %lld more (one per worker up to db_connections, %d here, and %d for "
            "the recorder)", (long long)(free_slots > 0 ? free_slots : 0),
            free_slots == 1 ? "" : "s", why, workers, workers == 1 ? "" : "s", (long long)need,
            pool, PREFLIGHT_RECORDER_CONNS);
    return err_hint(err, "lower max_active_tasks (in the DAG or config.json) or db_connections "
                    "(config.json), or raise the server's limit");
}

int preflight_resources(const struct dag *dag, const struct config *cfg, struct store *st,
                        struct dr_err *err)
{
    int workers = preflight_workers(dag, cfg);
    if (check_fds(workers, err) < 0)
        return -1;
    return check_connections(workers, config_db_connections(cfg), st, err);
}
