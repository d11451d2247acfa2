/* Running DAGs: run, test and resume, and the run path the scheduler shares. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cron.h"
#include "date.h"
#include "executor.h"
#include "http.h"
#include "log.h"
#include "report.h"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void free_params(json_t **params, size_t n)
{
    if (!params)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(params[i]);
    free(params);
}

int cli_run_dag(struct cli *c, struct dag *dag, struct store *st, struct launch *l)
{
    struct dr_err err;
    err_clear(&err);
    int rc = EXIT_FAILED;
    json_t **params = NULL;
    struct http_sources *http = NULL;
    struct report *rep = NULL;
    struct prior prior = { 0 };
    bool have_prior = false;
    struct run_result res = { 0 };

    if (l->conf && dag_check_conf(dag, l->conf, &err) < 0) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    params = calloc(dag->n_tasks ? dag->n_tasks : 1, sizeof *params);
    if (!params)
        return EXIT_FAILED;
    for (size_t i = 0; i < dag->n_tasks; i++)
        if (!(params[i] = dag_resolve_params(dag, i, c->cfg, l->conf, &err))) {
            err_print(&err);
            free_params(params, dag->n_tasks);
            return EXIT_BAD_INPUT;
        }

    if (l->resume_run_id) {
        if (l->resume_run_id != l->run_id)   /* the scheduler passes run_id itself */
            snprintf(l->run_id, sizeof l->run_id, "%s", l->resume_run_id);
        if (store_prior_load(st, l->run_id, &prior, &err) < 0)
            goto fail;
        have_prior = true;
    } else if (!l->run_id[0]) {
        int made = store_run_create(st, dag->dag_id, l->run_type, l->logical_date,
                                    l->data_interval_start, l->data_interval_end, l->conf,
                                    l->run_id, sizeof l->run_id, &err);
        if (made < 0)
            goto fail;
        if (made == 1) {
            err_set(&err, "a scheduled run of %s for this logical date exists already",
                    dag->dag_id);
            goto fail;
        }
    }
    /* One process at a time runs a run: a resume while the first process lives is refused,
     * and one after it died (kill -9, crash) goes ahead at once. */
    bool mine = false;
    for (int tries = 0; tries < 50 && !mine; tries++) {
        /* A process killed a moment ago still holds the lock until PostgreSQL notices its
         * closed connection: give that up to 5 s. */
        if (tries)
            nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
        if (store_run_lock(st, l->run_id, &mine, &err) < 0)
            goto fail;
    }
    if (!mine) {
        err_set(&err, "run %s is being run by another process", l->run_id);
        err_hint(&err, "dagrun cancel %s stops it", l->run_id);
        goto fail;
    }
    if (store_run_set_state(st, l->run_id, RUN_RUNNING, NULL, &err) < 0)
        goto fail;
    log_msg(DR_LOG_INFO, l->run_id, NULL, NULL, "%s %s of %s",
            l->resume_run_id ? "resuming" : "started", l->run_type, dag->dag_id);

    if (!(http = http_sources_new(c->cfg, &err)))
        goto fail_run;
    struct report_opts ro = {
        .dag = dag,
        .run_id = l->run_id,
        .progress_bar = c->tty && !c->json && !l->print_instances,
        .json = c->json,
        .print_instances = l->print_instances,
        .keep_instances = l->junit_path != NULL,
    };
    if (!(rep = report_new(&ro))) {
        err_set(&err, "out of memory");
        goto fail_run;
    }
    int workers = dag->max_active_tasks ? dag->max_active_tasks : c->cfg->max_active_tasks;
    struct run_spec spec = {
        .dag = dag,
        .cfg = c->cfg,
        .params = params,
        .run_id = l->run_id,
        .run_type = l->run_type,
        .logical_date = l->logical_date,
        .data_interval_start = l->data_interval_start,
        .data_interval_end = l->data_interval_end,
        .workers = workers > 0 ? workers : 1,
        .database_url = c->cfg->database_url,
        .store = st,
        .http = http,
        .prior = have_prior ? &prior : NULL,
        .stop = l->stop,
        .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32),
        .hooks = report_hooks(rep),
    };
    double t0 = wall_now();
    if (executor_run(&spec, &res, &err) < 0)
        goto fail_run;
    double wall = wall_now() - t0;
    if (res.state == RUN_CANCELLED && l->requeue_on_stop && l->stop && *l->stop) {
        res.state = RUN_QUEUED;
        log_msg(DR_LOG_INFO, l->run_id, NULL, NULL, "interrupted: queued for the next scheduler");
    }
    if (store_run_set_state(st, l->run_id, res.state, res.error[0] ? res.error : NULL, &err) < 0)
        err_print(&err); /* the data is committed; only the run row lags */
    report_summary(rep, &res, wall);
    if (l->junit_path && report_write_junit(rep, l->junit_path, &res, wall, &err) < 0)
        err_print(&err);
    rc = run_state_exit_code(res.state);
    goto out;

fail_run:
    err_print(&err);
    {
        struct dr_err e2;
        err_clear(&e2);
        store_run_set_state(st, l->run_id, RUN_FAILED, err.msg, &e2);
    }
    rc = EXIT_FAILED;
    goto out;
fail:
    err_print(&err);
    rc = EXIT_FAILED;
out:
    run_result_free(&res);
    if (have_prior)
        prior_free(&prior);
    report_free(rep);
    http_sources_free(http);
    free_params(params, dag->n_tasks);
    return rc;
}

/* ---- signals: the first SIGINT/SIGTERM stops handing out work; a second one exits now
 * (work in flight rolls back in PostgreSQL, and the run stays resumable). ---- */

static volatile int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (g_stop)
        _exit(EXIT_FAILED);
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- run / test ---- */

static const char run_usage[] =
    "usage: dagrun run DAG [--conf JSON | --conf-file FILE] [--logical-date T]\n"
    "Runs DAG now (run_type manual) and waits for it. DAG is a dag_id or a file path.\n"
    "  --conf JSON        run params overriding every other source, e.g. '{\"limit\": 5}'\n"
    "  --conf-file FILE   the same, read from a JSON file\n"
    "  --logical-date T   the interval to run for (ISO-8601, default now), to re-run a past one:\n"
    "                     the run's data interval is T to the schedule's next time after T\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input (nothing ran), 3 partial\n";

static const char test_usage[] =
    "usage: dagrun test DAG [--conf JSON | --conf-file FILE] [--logical-date T] [--junit FILE]\n"
    "Runs DAG as a test (run_type test): prints each task instance's result and writes\n"
    "JUnit XML (one testcase per task instance) to FILE.\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input (nothing ran), 3 partial\n";

static int run_or_test(struct cli *c, int argc, char **argv, bool test)
{
    const char *usage = test ? test_usage : run_usage;
    if (cli_wants_help(argc, argv, usage))
        return EXIT_OK;
    const char *name = NULL, *conf_text = NULL, *conf_file = NULL, *when = NULL, *junit = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc)
            conf_text = argv[++i];
        else if (strcmp(argv[i], "--conf-file") == 0 && i + 1 < argc)
            conf_file = argv[++i];
        else if (strcmp(argv[i], "--logical-date") == 0 && i + 1 < argc)
            when = argv[++i];
        else if (test && strcmp(argv[i], "--junit") == 0 && i + 1 < argc)
            junit = argv[++i];
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n%s", argv[0], argv[i], usage);
            return EXIT_BAD_INPUT;
        }
    }
    if (!name || (conf_text && conf_file)) {
        fputs(usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    struct launch l = {
        .run_type = test ? "test" : "manual",
        .logical_date = (int64_t)time(NULL),
        .junit_path = junit,
        .print_instances = test,
        .stop = &g_stop,
    };
    if (when && date_parse_instant(when, &l.logical_date, &err) < 0) {
        err_prefix(&err, "--logical-date \"%s\"", when);
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    l.data_interval_start = l.data_interval_end = l.logical_date;
    if ((conf_text || conf_file) && !(l.conf = cli_parse_conf(conf_text, conf_file, &err))) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    struct dag *dag = cli_find_dag(c, name, &err);
    if (!dag || (l.conf && dag_check_conf(dag, l.conf, &err) < 0)) {
        err_print(&err);
        dag_free(dag);
        json_decref(l.conf);
        return EXIT_BAD_INPUT;
    }
    /* A past interval re-run by hand gets the interval its scheduled run would have had:
     * from the logical date to the schedule's next time after it. */
    int64_t next;
    if (when && dag->cron && cron_next(dag->cron, dag->tz, l.logical_date, &next) == 0)
        l.data_interval_end = next;
    struct store *st = cli_open_store(c, &err);
    if (!st) {
        err_print(&err);
        dag_free(dag);
        json_decref(l.conf);
        return EXIT_FAILED;
    }
    install_signals();
    int rc = cli_run_dag(c, dag, st, &l);
    store_close(st);
    dag_free(dag);
    json_decref(l.conf);
    return rc;
}

int cmd_run(struct cli *c, int argc, char **argv) { return run_or_test(c, argc, argv, false); }

int cmd_test(struct cli *c, int argc, char **argv) { return run_or_test(c, argc, argv, true); }

/* ---- resume ---- */

int cli_run_dates(const json_t *run, struct launch *l, struct dr_err *err)
{
    const char *keys[] = { "logical_date", "data_interval_start", "data_interval_end" };
    int64_t *dst[] = { &l->logical_date, &l->data_interval_start, &l->data_interval_end };
    for (int i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(run, keys[i]));
        if (v && date_parse_instant(v, dst[i], err) < 0)
            return err_prefix(err, "run %s: %s", json_string_value(json_object_get(run, "run_id")),
                              keys[i]);
    }
    return 0;
}

static const char resume_usage[] =
    "usage: dagrun resume RUN_ID\n"
    "Re-runs what did not succeed in RUN_ID (failed, cancelled or interrupted items), with\n"
    "the run's own conf; what already succeeded is neither run nor fetched again.\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input, 3 partial\n";

int cmd_resume(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, resume_usage))
        return EXIT_OK;
    if (argc != 2 || argv[1][0] == '-') {
        fputs(resume_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    struct store *st = cli_open_store(c, &err);
    if (!st) {
        err_print(&err);
        return EXIT_FAILED;
    }
    int rc = EXIT_BAD_INPUT;
    struct dag *dag = NULL;
    json_t *run = store_run_get(st, argv[1], &err);
    if (!run) {
        err_print(&err);
        goto out;
    }
    const char *state = json_string_value(json_object_get(run, "state"));
    const char *dag_id = json_string_value(json_object_get(run, "dag_id"));
    if (state && strcmp(state, "success") == 0) {
        printf("run %s already succeeded: nothing to resume\n", argv[1]);
        rc = EXIT_OK;
        goto out;
    }
    if (!dag_id || !(dag = cli_find_dag(c, dag_id, &err))) {
        if (dag_id)
            err_print(&err);
        goto out;
    }
    struct launch l = {
        .run_type = json_string_value(json_object_get(run, "run_type")),
        .resume_run_id = argv[1],
        .stop = &g_stop,
    };
    json_t *conf = json_object_get(run, "conf");
    l.conf = json_is_object(conf) ? conf : NULL;
    if (cli_run_dates(run, &l, &err) < 0) {
        err_print(&err);
        goto out;
    }
    if (!l.run_type)
        l.run_type = "manual";
    install_signals();
    rc = cli_run_dag(c, dag, st, &l);
out:
    json_decref(run);
    dag_free(dag);
    store_close(st);
    return rc;
}
