/* The db command: run-state housekeeping (db clean: run retention). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "duration.h"
#include "store_ops.h"

static const char db_usage[] =
    "usage: dagrun db clean --older-than AGE [--all] [--dag DAG] [--dry-run] [--json]\n"
    "Run-state housekeeping in the database's dagrun schema.\n"
    "  clean             deletes runs that ended more than AGE ago, with their task\n"
    "                    instances, and prints each one deleted\n"
    "  --older-than AGE  e.g. 90d, 12h (units ms, s, m, h, d; at most 365d)\n"
    "  --all             also failed, partial and cancelled runs; without it only successful\n"
    "                    runs go, and every run `dagrun resume` could still complete stays\n"
    "  --dag DAG         only this DAG's runs\n"
    "  --dry-run         print what would be deleted, delete nothing\n"
    "  --json            one JSON array of the runs instead of lines\n"
    "Queued and running runs are never deleted, nor a run a process holds at that moment.\n"
    "A DAG's pause flag and scheduler bookkeeping (dagrun.dag) are kept.\n"
    "exit: 0 done, 1 database error, 2 bad input\n";

static int db_clean(struct cli *c, int argc, char **argv)
{
    const char *age = NULL, *dag_id = NULL;
    bool all = false, dry = false, json = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--older-than") == 0 && i + 1 < argc)
            age = argv[++i];
        else if (strcmp(argv[i], "--dag") == 0 && i + 1 < argc)
            dag_id = argv[++i];
        else if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "db clean: unexpected argument \"%s\"\n%s", argv[i], db_usage);
            return EXIT_BAD_INPUT;
        }
    }
    struct dr_err err;
    err_clear(&err);
    int64_t ms;
    if (!age) {
        fprintf(stderr, "db clean: --older-than is required (e.g. --older-than 90d)\n%s",
                db_usage);
        return EXIT_BAD_INPUT;
    }
    if (duration_parse(age, &ms, &err) < 0) {
        err_prefix(&err, "db clean: --older-than \"%s\"", age);
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    struct store *st = cli_open_store(c, &err);
    if (!st) {
        err_print(&err);
        return EXIT_FAILED;
    }
    int rc = EXIT_OK;
    long runs = 0, tis = 0;
    json_t *done = json_array();
    for (;;) {
        json_t *batch = store_ops_clean(st, ms / 1000, all, dag_id, dry, &err);
        if (!batch) {
            err_print(&err);
            rc = EXIT_FAILED;
            break;
        }
        size_t i;
        json_t *r;
        json_array_foreach(batch, i, r) {
            long n = (long)json_integer_value(json_object_get(r, "task_instances"));
            runs++;
            tis += n;
            if (json && done)
                json_array_append(done, r);
            else if (!json)
                printf("%s %s (%s, %s, ended %s): %ld task instance%s\n",
                       dry ? "would delete" : "deleted",
                       json_string_value(json_object_get(r, "run_id")),
                       json_string_value(json_object_get(r, "dag_id")),
                       json_string_value(json_object_get(r, "state")),
                       json_string_value(json_object_get(r, "ended_at")), n, n == 1 ? "" : "s");
        }
        size_t got = json_array_size(batch);
        json_decref(batch);
        fflush(stdout);
        /* A dry run answers at once; a batch that deleted nothing means the rest are held. */
        if (dry || got == 0)
            break;
    }
    if (json) {
        char *t = done ? json_dumps(done, JSON_COMPACT) : NULL;
        if (t)
            puts(t);
        free(t);
    } else if (rc == EXIT_OK) {
        printf("%s %ld run%s and %ld task instance%s that ended over %s ago (%s)\n",
               dry ? "would delete" : "deleted", runs, runs == 1 ? "" : "s", tis,
               tis == 1 ? "" : "s", age,
               all ? "every ended state" : "success only; --all for failed, partial, cancelled");
    }
    json_decref(done);
    store_close(st);
    return rc;
}

int cmd_db(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, db_usage))
        return EXIT_OK;
    if (argc >= 2 && strcmp(argv[1], "clean") == 0)
        return db_clean(c, argc, argv);
    fputs(db_usage, stderr);
    return EXIT_BAD_INPUT;
}
