/* The clear command: resets one task (or one item, or its failed items) of an ended run and
 * what depends on it, then runs the run again through the resume path. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "store_ops.h"

static const char clear_usage[] =
    "usage: dagrun clear RUN_ID TASK [--map-index N | --failed]\n"
    "Re-runs TASK of an ended run (like `airflow tasks clear`): resets its task instances and\n"
    "those of every task after it in the DAG, then resumes the run, so that only the cleared\n"
    "work runs (with the run's own conf and dates) and the run ends in a new state.\n"
    "  --map-index N   only item N of a mapped TASK\n"
    "  --failed        only TASK's failed (and upstream_failed) instances or items\n"
    "A mapped task's item is cleared in every task of its lane (the item runs and commits as\n"
    "one unit, from its start: its checkpoint is dropped); tasks after the lane, or mapped over\n"
    "the cleared task, are cleared whole. A queued or running run is refused: cancel it first.\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input (nothing changed), 3 partial,\n"
    "      4 queued (a source's counted window is used up: it goes on when that reopens)\n"
    CLI_RUN_ID_HELP;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (__atomic_load_n(&g_stop, __ATOMIC_RELAXED))
        _exit(EXIT_FAILED);
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);   /* read by the run's threads */
}

/* Marks in lane[] the tasks of task i's lane: the tasks mapped over the same task and joined
 * to it by `after` edges among themselves (either way). O(tasks * edges) per pass. */
static void mark_lane(const struct dag *d, int i, bool *lane)
{
    lane[i] = true;
    int map = d->tasks[i].map_idx;
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t k = 0; k < d->n_tasks; k++) {
            const struct task *t = &d->tasks[k];
            if (t->map_idx != map)
                continue;
            for (size_t j = 0; j < t->n_after; j++) {
                int up = t->after_idx[j];
                if (d->tasks[up].map_idx != map || lane[up] == lane[k])
                    continue;
                lane[up] = lane[k] = true;
                grew = true;
            }
        }
    }
}

/* Marks in down[] every task downstream of a marked task in from[] (after or map edges),
 * not counting the from[] tasks themselves. */
static void mark_downstream(const struct dag *d, const bool *from, bool *down)
{
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t k = 0; k < d->n_tasks; k++) {
            const struct task *t = &d->tasks[k];
            if (from[k] || down[k])
                continue;
            bool hit = t->map_idx >= 0 && (from[t->map_idx] || down[t->map_idx]);
            for (size_t j = 0; j < t->n_after && !hit; j++)
                hit = from[t->after_idx[j]] || down[t->after_idx[j]];
            if (hit)
                down[k] = grew = true;
        }
    }
}

static json_t *ids_of(const struct dag *d, const bool *set)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < d->n_tasks; k++)
        if (set[k] && json_array_append_new(a, json_string(d->tasks[k].id)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

int cmd_clear(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, clear_usage))
        return EXIT_OK;
    const char *run_id = NULL, *task_id = NULL;
    enum clear_pick pick = CLEAR_ALL;
    long index = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--map-index") == 0 && i + 1 < argc && pick == CLEAR_ALL) {
            char *end;
            index = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || index < 0 || index > 2147483647L) {
                fprintf(stderr, "clear: --map-index \"%s\": expected an integer 0 or more\n",
                        argv[i]);
                return EXIT_BAD_INPUT;
            }
            pick = CLEAR_INDEX;
        } else if (strcmp(argv[i], "--failed") == 0 && pick == CLEAR_ALL)
            pick = CLEAR_FAILED;
        else if (argv[i][0] != '-' && !run_id)
            run_id = argv[i];
        else if (argv[i][0] != '-' && !task_id)
            task_id = argv[i];
        else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n%s", argv[0], argv[i], clear_usage);
            return EXIT_BAD_INPUT;
        }
    }
    if (!run_id || !task_id) {
        fputs(clear_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    int rc = EXIT_BAD_INPUT;
    struct dag *dag = NULL;
    json_t *run = NULL, *items = NULL, *whole = NULL;
    bool *lane = NULL, *down = NULL;
    struct store *st = cli_open_store(c, &err);
    if (!st) {
        err_print(&err);
        return EXIT_FAILED;
    }
    char id[256];
    if ((rc = cli_run_id(st, run_id, id, sizeof id)) != EXIT_OK) {
        store_close(st);
        return rc;
    }
    rc = EXIT_BAD_INPUT;
    run_id = id;
    if (!(run = store_run_get(st, run_id, &err)))
        goto bad;
    const char *dag_id = json_string_value(json_object_get(run, "dag_id"));
    const char *state = json_string_value(json_object_get(run, "state"));
    if (state && (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0)) {
        err_set(&err, "clear run %s: the run is %s", run_id, state);
        err_hint(&err, "clear a run once it has ended: dagrun cancel %s stops it", run_id);
        goto bad;
    }
    if (!dag_id || !(dag = cli_find_dag(c, dag_id, true, &err)))
        goto bad;
    int ti = dag_task_index(dag, task_id);
    if (ti < 0) {
        err_set(&err, "clear run %s: DAG %s has no task \"%s\"", run_id, dag->dag_id, task_id);
        err_hint(&err, "dagrun show %s lists its tasks", dag->dag_id);
        goto bad;
    }
    bool mapped = dag->tasks[ti].map_idx >= 0;
    if (pick == CLEAR_INDEX && !mapped) {
        err_set(&err, "clear run %s: task %s is not mapped: --map-index does not apply", run_id,
                task_id);
        goto bad;
    }
    lane = calloc(dag->n_tasks, sizeof *lane);
    down = calloc(dag->n_tasks, sizeof *down);
    if (!lane || !down) {
        err_set(&err, "out of memory");
        goto fail;
    }
    if (mapped)
        mark_lane(dag, ti, lane);
    else
        lane[ti] = true;
    mark_downstream(dag, lane, down);
    /* Every instance picked: the lane goes whole with the rest. Some items: the lane's rows
     * of those map indexes, and everything after it whole. */
    if (pick == CLEAR_ALL) {
        for (size_t k = 0; k < dag->n_tasks; k++)
            down[k] = down[k] || lane[k];
        memset(lane, 0, dag->n_tasks * sizeof *lane);
    }
    if (!(items = ids_of(dag, lane)) || !(whole = ids_of(dag, down))) {
        err_set(&err, "out of memory");
        goto fail;
    }
    struct clear_result cr;
    if (store_ops_clear(st, run_id, task_id, pick, index, items, whole, &cr, &err) < 0)
        goto fail;
    if (cr.picked == 0 && pick == CLEAR_INDEX) {
        err_set(&err, "clear run %s: task %s has no item %ld", run_id, task_id, index);
        err_hint(&err, "dagrun status %s lists its task instances", run_id);
        goto bad;
    }
    if (cr.picked == 0) {
        printf("run %s: nothing to clear (%s has no %sinstance)\n", run_id, task_id,
               pick == CLEAR_FAILED ? "failed " : "");
        rc = EXIT_OK;
        goto out;
    }
    log_msg(DR_LOG_INFO, run_id, NULL, NULL, "cleared %ld task instance%s (%s%s)", cr.deleted,
            cr.deleted == 1 ? "" : "s", cr.sample, cr.deleted > 12 ? ", ..." : "");

    struct launch l = {
        .run_type = json_string_value(json_object_get(run, "run_type")),
        .resume_run_id = run_id,
        .stop = &g_stop,
    };
    json_t *conf = json_object_get(run, "conf");
    l.conf = json_is_object(conf) ? conf : NULL;
    if (launch_run_dates(run, &l, &err) < 0)
        goto fail;
    if (!l.run_type)
        l.run_type = "manual";
    cli_on_stop_signals(on_signal);
    struct launch_env env = { .cfg = c->cfg, .json = c->json, .tty = c->tty };
    rc = launch_run(&env, dag, st, &l);
    goto out;
bad:
    err_print(&err);
    rc = EXIT_BAD_INPUT;
    goto out;
fail:
    err_print(&err);
    rc = EXIT_FAILED;
out:
    free(lane);
    free(down);
    json_decref(items);
    json_decref(whole);
    json_decref(run);
    dag_free(dag);
    store_close(st);
    return rc;
}
