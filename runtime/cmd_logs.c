/* The logs command: a run's kept task logs (dagrun.task_log), optionally followed. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tasklog.h"

static const char logs_usage[] =
    "usage: dagrun logs RUN_ID [TASK [ITEM]] [--follow]\n"
    "Prints the kept log lines of a run's task instances (what the runtime and the plugin\n"
    "logged for each, secrets redacted), oldest first, as TIME LEVEL TASK[ITEM]: LINE.\n"
    "TASK limits them to one task; ITEM to one item of a mapped task, by its key (e.g.\n"
    "NSE:INFY) or its map index. Each instance keeps 64 KiB of lines; the rest is counted\n"
    "in a last \"N lines dropped\" line. Logs are kept as long as their run.\n"
    "  --follow   keep printing new lines until the run ends\n"
    CLI_RUN_ID_HELP;

/* Prints the lines after *last_id; 0, or -1 with err. */
static int print_since(PGconn *conn, const char *run, const char *task, const char *item,
                       long long *last_id, struct dr_err *err)
{
    char last[32];
    snprintf(last, sizeof last, "%lld", *last_id);
    const char *vals[4] = { run, task, item, last };
    PGresult *res = PQexecParams(
        conn,
        "SELECT l.id, to_char(l.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
        "l.level, l.task_id, l.map_key, l.line FROM dagrun.task_log l "
        "WHERE l.run_id = $1 AND ($2::text IS NULL OR l.task_id = $2) "
        "AND ($3::text IS NULL OR l.map_key = $3 OR l.map_key = (SELECT ti.map_key FROM "
        "dagrun.task_instance ti WHERE ti.run_id = $1 AND ti.task_id = l.task_id "
        "AND ti.map_index::text = $3)) AND l.id > $4::bigint ORDER BY l.id",
        4, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err_set(err, "reading the task logs: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        *last_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        bool mapped = !PQgetisnull(res, i, 4);
        printf("%s %-7s %s%s%s%s: %s\n", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
               PQgetvalue(res, i, 3), mapped ? "[" : "", mapped ? PQgetvalue(res, i, 4) : "",
               mapped ? "]" : "", PQgetvalue(res, i, 5));
    }
    PQclear(res);
    return fflush(stdout) == 0 ? 0 : err_set(err, "standard output: %s", strerror(errno));
}

int cmd_logs(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, logs_usage))
        return EXIT_OK;
    const char *ops[3] = { NULL, NULL, NULL };
    int n_ops = 0;
    bool follow = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
            follow = true;
        else if (argv[i][0] != '-' && n_ops < 3)
            ops[n_ops++] = argv[i];
        else {
            fputs(logs_usage, stderr);
            return EXIT_BAD_INPUT;
        }
    }
    if (!n_ops) {
        fputs(logs_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    char id[256];
    int rc = cli_run_id(st, ops[0], id, sizeof id);
    if (rc != EXIT_OK)
        goto out;
    long long last = 0;
    for (;;) {
        if (print_since(store_conn(st), id, ops[1], ops[2], &last, &err) < 0) {
            err_print(&err);
            rc = EXIT_FAILED;
            goto out;
        }
        if (!follow)
            break;
        json_t *r = store_run_get(st, id, &err);
        const char *state = r ? json_string_value(json_object_get(r, "state")) : NULL;
        bool active = state && (strcmp(state, "running") == 0 || strcmp(state, "queued") == 0);
        json_decref(r);
        if (!active) {
            /* The writer flushes when its process ends: one last look. */
            if (print_since(store_conn(st), id, ops[1], ops[2], &last, &err) < 0) {
                err_print(&err);
                rc = EXIT_FAILED;
            }
            break;
        }
        struct timespec ts = { 1, 0 };
        nanosleep(&ts, NULL);
    }
out:
    store_close(st);
    return rc;
}
