/* runtime-private: plugins never include this */
/* DAGs: the in-memory form of a DAG YAML file, and its loader. */
#ifndef DR_DAG_H
#define DR_DAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "config.h"
#include "cron.h"
#include "err.h"
#include "plugin.h"
#include "tz.h"

struct hook;

enum trigger_rule { TR_ALL_SUCCESS, TR_ALL_DONE, TR_NONE_FAILED, TR_ONE_FAILED, TR_ONE_SUCCESS };

struct retry_policy {
    int retries;                /* default 0 */
    int64_t retry_delay_ms;     /* default 1000 */
    bool exponential;           /* default false */
    int64_t max_retry_delay_ms; /* default 1 h */
    int64_t timeout_ms;         /* execution_timeout; 0: none */
};

struct task {
    char *id;
    char *plugin_name;
    const struct plugin *plugin;    /* borrowed from the plugins registry */
    json_t *params;             /* task params, typed per the plugin's table; owned */
    char **after;               /* upstream task ids */
    size_t n_after;
    int *after_idx;             /* indexes into dag->tasks */
    char *map;                  /* task whose output array this task maps over, or NULL */
    int map_idx;                /* -1 when not mapped */
    char *pool;                 /* NULL: none */
    enum trigger_rule trigger;
    struct retry_policy retry;
    int line, col;              /* where the task is defined */
};

/* The longest dag_id: a run id is "<dag_id>__<run type>__<logical date>__<suffix>", up to 40
 * characters more than the dag_id, and must fit launch.h's run_id[160]. */
#define DAG_ID_MAX 100

struct dag {
    char *path;                 /* file it came from */
    char *dag_id;
    char *description;          /* may be NULL */
    char *schedule;             /* NULL: manual only */
    struct cron *cron;          /* parsed schedule or NULL; owned */
    const struct tz *tz;        /* timezone (default UTC) */
    int64_t start_date;         /* day number (date.h), or INT64_MIN when absent */
    bool catchup;               /* default false */
    int max_active_runs;        /* default 1 */
    int max_active_tasks;       /* 0: from config */
    json_t *params;             /* DAG params as written (typed by the plugins that take them); owned */
    struct task *tasks;         /* in file order */
    size_t n_tasks;
    int *topo;                  /* task indexes in a topological order (file order among ties) */
    struct hook *on_failure;    /* on_failure: (hook.h), or NULL; owned */
};

/* Loads and validates a DAG file against the plugins (loading them as
 * needed). Refuses files over 1 MiB, nesting deeper than 32, aliases and
 * anchors, several documents, invalid UTF-8; unknown keys; missing,
 * malformed or duplicate ids; unknown plugins; params not declared by the
 * plugin or of the wrong type (a DAG-level param must be declared by at least
 * one task's plugin); missing required params; after/map naming a missing
 * task; cycles (the message names the cycle: a -> b -> a); bad cron, zone,
 * duration, date or trigger rule. On error returns NULL and err->msg is
 * "path:line:col: message" (line and col 1-based, also in err->line/col).
 * Returns a new dag (dag_free). Coordinator thread only. */
struct dag *dag_load(const char *path, struct plugins *ps, struct dr_err *err);
void dag_free(struct dag *d);
/* Index of task `id`, or -1. */
int dag_task_index(const struct dag *d, const char *id);

/* Checks a --conf object against the DAG: every key must be a DAG param or a
 * param declared by one of its tasks' plugins, with the right type. Returns 0
 * or -1 with err ("--conf: unknown key \"x\" (takes: a, b, c)"). */
int dag_check_conf(const struct dag *d, const json_t *conf, struct dr_err *err);

/* The resolved params of task i: every param its plugin declares, from
 * (lowest to highest) the plugin default, the DAG params, the task params,
 * config.json dags.<dag_id>.params, then conf (may be NULL). Values are typed
 * JSON (see params_from_text). A required param left unset is an
 * error. Returns a new object, or NULL with err. */
json_t *dag_resolve_params(const struct dag *d, size_t i, const struct config *cfg,
                           const json_t *conf, struct dr_err *err);
/* The same for a run: a DATE param's "today" / "yesterday" become the date of anchor (and
 * the day before) in the DAG's timezone (params_date_at). A run passes its
 * data_interval_end: for a scheduled, backfill or --logical-date run the end of the
 * interval it covers, for a plain manual run the instant it was started. dag_resolve_params
 * leaves them as written (for showing a DAG's params, which belong to no run). */
json_t *dag_resolve_params_at(const struct dag *d, size_t i, const struct config *cfg,
                              const json_t *conf, int64_t anchor, struct dr_err *err);

/* dag_files.c: lists the *.yaml / *.yml files under dir (recursively, sorted). Returns a
 * NULL-terminated malloc'd array of malloc'd paths, or NULL with err. */
char **dag_list_files(const char *dir, struct dr_err *err);
void dag_free_list(char **paths);

#endif
