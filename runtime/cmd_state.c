/* Commands on the run state in PostgreSQL: initdb, runs, status, cancel, pause, unpause. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tables.h"

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

/* The state to show: a queued or running run whose heartbeat is older than timeout_sec is
 * "running (stale 68s)": its process is gone (or stopped) and `dagrun resume` continues it.
 * Returns whether it is stale. */
static bool state_text(const json_t *run, int timeout_sec, char *buf, size_t len)
{
    const char *state = tables_str(run, "state");
    const json_t *age = json_object_get(run, "heartbeat_age_s");
    bool live = strcmp(state, "running") == 0 || strcmp(state, "queued") == 0;
    const char *until = json_string_value(json_object_get(run, "resume_after"));
    if (until && strcmp(state, "queued") == 0) {
        /* Parked by a used-up window of a source: not stale, waiting for it to reopen. */
        snprintf(buf, len, "queued until %s", until);
        return false;
    }
    if (live && json_is_number(age) && json_number_value(age) > (timeout_sec > 0 ? timeout_sec : 60)) {
        snprintf(buf, len, "%s (stale %.0fs)", state, json_number_value(age));
        return true;
    }
    snprintf(buf, len, "%s", state);
    return false;
}

/* Prints the usage to stderr; returns the exit code for bad arguments. */
static int usage_error(const char *usage)
{
    fputs(usage, stderr);
    return EXIT_BAD_INPUT;
}

/* True when the arguments are exactly one operand (not an option). */
static bool one_operand(int argc, char **argv)
{
    return argc == 2 && argv[1][0] != '-';
}

/* Parses [OPERAND] [--json] [--limit N] (--limit only when limit is not NULL).
 * Returns 0, or an exit code after printing why. */
static int parse_list_args(int argc, char **argv, const char *usage, const char **operand,
                           bool *json, long *limit)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else if (limit && strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            *limit = strtol(argv[++i], &end, 10);
            if (errno || *end || *limit < 1 || *limit > 100000) {
                fprintf(stderr, "%s: --limit takes a whole number from 1 to 100000\n", argv[0]);
                return EXIT_BAD_INPUT;
            }
        } else if (argv[i][0] != '-' && !*operand)
            *operand = argv[i];
        else
            return usage_error(usage);
    }
    return 0;
}

/* ---- initdb ---- */

static const char initdb_usage[] =
    "usage: dagrun initdb [--schema FILE]\n"
    "Creates or updates the market-data tables and the dagrun run-state schema (idempotent).\n"
    "FILE defaults to schema.sql beside config.json, else ./schema.sql, else the installed\n"
    "one (PREFIX/share/dagrun/schema.sql, beside the binary's bin/).\n";

int cmd_initdb(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, initdb_usage))
        return EXIT_OK;
    const char *schema = NULL;
    char beside[4096];
    if (argc == 3 && strcmp(argv[1], "--schema") == 0)
        schema = argv[2];
    else if (argc != 1)
        return usage_error(initdb_usage);
    else {
        snprintf(beside, sizeof beside, "%s/schema.sql", c->cfg->dir ? c->cfg->dir : ".");
        schema = access(beside, R_OK) == 0 ? beside : "schema.sql";
        if (schema != beside && access(schema, R_OK) != 0 &&
            cli_beside_binary("../share/dagrun", "schema.sql", beside, sizeof beside))
            schema = beside;   /* an installed dagrun: PREFIX/share/dagrun/schema.sql */
    }
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    int rc = EXIT_OK;
    if (store_initdb(st, schema, &err) < 0) {
        err_print(&err);
        rc = EXIT_FAILED;
    } else
        printf("schema applied from %s\n", schema);
    store_close(st);
    return rc;
}

/* ---- runs ---- */

static const char runs_usage[] =
    "usage: dagrun runs [DAG] [--state STATE] [--limit N] [--wide | --json]\n"
    "Recent runs, newest first (default 20): run id, DAG, type, logical date, state,\n"
    "duration, and items ok/skipped/failed, in 80 columns with the end of the run id;\n"
    "--wide: the full run id and start time; --state: only runs in STATE (queued, running,\n"
    "success, partial, failed, cancelled).\n";

int cmd_runs(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, runs_usage))
        return EXIT_OK;
    const char *dag = NULL, *state = NULL;
    long limit = 20;
    bool json = false, wide = false;
    char *args[32];
    int n = 0;
    if (argc > 32)
        return usage_error(runs_usage);
    for (int k = 0; k < argc; k++) {   /* --state and --wide; the rest as for every list */
        if (k && strcmp(argv[k], "--state") == 0 && k + 1 < argc)
            state = argv[++k];
        else if (k && strcmp(argv[k], "--wide") == 0)
            wide = true;
        else
            args[n++] = argv[k];
    }
    if (state && !tables_state_valid(state, false))
        return usage_error(runs_usage);
    int rc = parse_list_args(n, args, runs_usage, &dag, &json, &limit);
    if (rc)
        return rc;
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    json_t *runs = store_runs_list(st, dag, state ? 100000 : (int)limit, &err);
    store_close(st);
    if (runs && state)
        tables_keep_state(runs, state, limit);
    if (!runs) {
        err_print(&err);
        return EXIT_FAILED;
    }
    int timeout = c->cfg->heartbeat_timeout_sec;
    const char *stale_id = NULL, *parked_id = NULL;
    char parked_shown[64] = "";
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) {
        char shown[64];
        bool stale = state_text(r, timeout, shown, sizeof shown);
        if (strncmp(shown, "queued until ", 13) == 0) {
            if (!parked_id) {
                parked_id = tables_str(r, "run_id");
                snprintf(parked_shown, sizeof parked_shown, "%s", shown);
            }
            if (wide && !json)
                json_object_set_new(r, "state", json_string(shown));
        }
        json_object_set_new(r, "stale", json_boolean(stale));
        if (stale && !stale_id)
            stale_id = tables_str(r, "run_id");
        /* The table shows a stale run as such (the JSON keeps its state and "stale"). */
        if (stale && !json)
            json_object_set_new(r, "state", json_string(wide ? shown : "stale"));
    }
    if (json)
        print_json(runs);
    else {
        tables_print_runs(runs, wide);
        if (!json_array_size(runs))
            printf("(no %s%sruns%s%s)\n", state ? state : "", state ? " " : "", dag ? " of " : "",
                   dag ? dag : "");
        if (stale_id)
            printf("stale: no heartbeat for over %d s, its process is gone; "
                   "dagrun resume %s continues it\n", timeout > 0 ? timeout : 60, stale_id);
        if (parked_id && !wide)
            printf("%s: %s (a source's limit is used up; dagrun status says which)\n",
                   parked_id, parked_shown);
    }
    json_decref(runs);
    return EXIT_OK;
}

/* ---- status ---- */

static const char status_usage[] =
    "usage: dagrun status RUN_ID [--state STATE] [--json]\n"
    "A run's state, conf, warnings and error, then its task instances with states, tries,\n"
    "durations and errors (per item for mapped tasks); --state: only the instances in STATE\n"
    "(pending, running, success, skipped, failed, upstream_failed, cancelled).\n"
    CLI_RUN_ID_HELP;

int cmd_status(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, status_usage))
        return EXIT_OK;
    const char *id = NULL, *state = NULL;
    bool json = false;
    char *args[32];
    int n = 0;
    if (argc > 32)
        return usage_error(status_usage);
    for (int k = 0; k < argc; k++) {
        if (k && strcmp(argv[k], "--state") == 0 && k + 1 < argc)
            state = argv[++k];
        else
            args[n++] = argv[k];
    }
    if (state && !tables_state_valid(state, true))
        return usage_error(status_usage);
    int rc = parse_list_args(n, args, status_usage, &id, &json, NULL);
    if (rc)
        return rc;
    if (!id)
        return usage_error(status_usage);
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    char full[256];
    if ((rc = cli_run_id(st, id, full, sizeof full)) != EXIT_OK) {
        store_close(st);
        return rc;
    }
    json_t *s = store_run_status(st, full, &err);
    store_close(st);
    if (!s) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    if (state)
        tables_keep_state(json_object_get(s, "tasks"), state, 0);
    json_t *run = json_object_get(s, "run");
    char shown[64];
    bool stale = state_text(run, c->cfg->heartbeat_timeout_sec, shown, sizeof shown);
    json_object_set_new(run, "stale", json_boolean(stale));
    if (json) {
        print_json(s);
        json_decref(s);
        return EXIT_OK;
    }
    printf("run:          %s\ndag:          %s\ntype:         %s\nlogical date: %s\n"
           "state:        %s\nstarted:      %s\nended:        %s\n",
           tables_str(run, "run_id"), tables_str(run, "dag_id"), tables_str(run, "run_type"),
           tables_str(run, "logical_date"), shown, tables_str(run, "started_at"),
           tables_str(run, "ended_at"));
    if (stale)
        printf("hint:         no heartbeat for over %d s, its process is gone; "
               "dagrun resume %s continues it\n",
               c->cfg->heartbeat_timeout_sec > 0 ? c->cfg->heartbeat_timeout_sec : 60,
               tables_str(run, "run_id"));
    const json_t *conf = json_object_get(run, "conf");
    if (json_is_object(conf) && json_object_size(conf)) {
        char *t = json_dumps(conf, JSON_COMPACT);
        printf("conf:         %s\n", t ? t : "");
        free(t);
    }
    if (json_is_string(json_object_get(run, "error")))
        printf("error:        %s\n", tables_str(run, "error"));
    const json_t *counters = json_object_get(run, "counters");
    if (json_is_object(counters) && json_object_size(counters)) {
        char *t = json_dumps(counters, JSON_COMPACT);
        printf("counters:     %s\n", t ? t : "");
        free(t);
    }
    const json_t *warnings = json_object_get(run, "warnings");
    size_t i;
    json_t *w;
    if (json_array_size(warnings)) {
        printf("warnings (%zu):\n", json_array_size(warnings));
        json_array_foreach(warnings, i, w) printf("  %s\n", json_string_value(w));
    }
    const json_t *tasks = json_object_get(s, "tasks");
    printf("\n%-20s %-24s %-16s %5s %9s  %s\n", "TASK", "ITEM", "STATE", "TRY", "SECONDS",
           "ERROR");
    json_array_foreach(tasks, i, w) {
        char secs[32] = "-";
        json_t *d = json_object_get(w, "duration_s");
        if (json_is_number(d))
            snprintf(secs, sizeof secs, "%.2f", json_number_value(d));
        const char *key = json_string_value(json_object_get(w, "map_key"));
        char item[32] = "";
        if (!key && tables_num(w, "map_index") >= 0)
            snprintf(item, sizeof item, "%lld", tables_num(w, "map_index"));
        printf("%-20s %-24s %-16s %5lld %9s  %s\n", tables_str(w, "task_id"), key ? key : item,
               tables_str(w, "state"), tables_num(w, "try_number"), secs,
               json_is_string(json_object_get(w, "error")) ? tables_str(w, "error") : "");
    }
    json_decref(s);
    return EXIT_OK;
}

/* ---- cancel ---- */

static const char cancel_usage[] =
    "usage: dagrun cancel RUN_ID\n"
    "Asks a queued or running run to stop. The process running it notices within a few\n"
    "seconds, stops handing out work, lets items in flight finish or roll back, and marks the\n"
    "run cancelled; `dagrun resume RUN_ID` completes it later. A run whose process is gone\n"
    "(its heartbeat older than heartbeat_timeout_sec) is marked cancelled at once.\n"
    CLI_RUN_ID_HELP;

int cmd_cancel(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, cancel_usage))
        return EXIT_OK;
    if (!one_operand(argc, argv))
        return usage_error(cancel_usage);
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    bool done = false;
    char id[256];
    int rc = cli_run_id(st, argv[1], id, sizeof id);
    if (rc != EXIT_OK)
        goto out;
    /* A run whose process is gone would never see the request: it is cancelled here. */
    if (store_run_cancel_dead(st, id, c->cfg->heartbeat_timeout_sec, &done, &err) < 0) {
        err_print(&err);
        rc = EXIT_FAILED;
    } else if (done)
        printf("%s cancelled: its process was gone; dagrun resume %s continues it\n", id, id);
    else if (store_run_request_cancel(st, id, &err) < 0) {
        err_print(&err);
        rc = EXIT_BAD_INPUT;
    } else
        printf("cancel requested for %s\n", id);
out:
    store_close(st);
    return rc;
}

/* ---- pause / unpause ---- */

static const char pause_usage[] =
    "usage: dagrun pause DAG | dagrun unpause DAG\n"
    "A paused DAG gets no scheduled runs; manual runs (dagrun run) still work.\n";

int cmd_pause(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, pause_usage))
        return EXIT_OK;
    if (!one_operand(argc, argv))
        return usage_error(pause_usage);
    bool paused = strcmp(argv[0], "pause") == 0;
    struct dr_err err;
    err_clear(&err);
    struct dag *d = cli_find_dag(c, argv[1], false, &err);
    if (!d) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st) {
        dag_free(d);
        return EXIT_FAILED;
    }
    int rc = EXIT_OK;
    if (store_dag_set_paused(st, d->dag_id, paused, &err) < 0) {
        err_print(&err);
        rc = EXIT_FAILED;
    } else
        printf("%s %s\n", d->dag_id, paused ? "paused" : "unpaused");
    store_close(st);
    dag_free(d);
    return rc;
}
