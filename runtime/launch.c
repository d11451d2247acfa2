/* Launching one DAG run: what run, test, resume and the scheduler share below their commands. */
#include "launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "date.h"
#include "executor.h"
#include "hook.h"
#include "http.h"
#include "log.h"
#include "preflight.h"
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

int launch_run(const struct launch_env *env, struct dag *dag, struct store *st, struct launch *l)
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
    struct store *own = NULL;

    /* The conf is checked here, once, for every caller: before anything is stored. */
    if (l->conf && dag_check_conf(dag, l->conf, &err) < 0) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    params = calloc(dag->n_tasks ? dag->n_tasks : 1, sizeof *params);
    if (!params)
        return EXIT_FAILED;
    for (size_t i = 0; i < dag->n_tasks; i++)
        if (!(params[i] = dag_resolve_params_at(dag, i, env->cfg, l->conf, l->data_interval_end,
                                                &err))) {
            err_print(&err);
            free_params(params, dag->n_tasks);
            return EXIT_BAD_INPUT;
        }
    int refused = preflight_credentials(dag, params, env->cfg, &err) < 0 ? EXIT_BAD_INPUT : 0;
    if (!refused && !st && !(st = own = launch_open_store(env->cfg, &err)))
        goto fail;
    if (refused || preflight_resources(dag, env->cfg, st, &err) < 0)
        goto fail_preflight;

    if (l->resume_run_id) {
        if (l->resume_run_id != l->run_id)   /* the scheduler passes run_id itself */
            snprintf(l->run_id, sizeof l->run_id, "%s", l->resume_run_id);
    } else if (!l->run_id[0]) {
        /* max_active_runs holds across processes: a run that would exceed it is refused,
         * not queued (a queued row is what a stopped scheduler hands back, and the next
         * scheduler would start it). */
        int active = 0;
        int made = store_run_create_limited(st, dag->dag_id, l->run_type, l->logical_date,
                                            l->data_interval_start, l->data_interval_end,
                                            l->conf, dag->max_active_runs, &active, l->run_id,
                                            sizeof l->run_id, &err);
        if (made < 0)
            goto fail;
        if (made == 2) {
            err_set(&err, "%s has %d active run%s (max_active_runs %d): this run is not "
                    "started", dag->dag_id, active, active == 1 ? "" : "s",
                    dag->max_active_runs);
            err_hint(&err, "dagrun runs %s lists them; run again when one has ended (a stale "
                     "one: dagrun resume or dagrun cancel RUN_ID)", dag->dag_id);
            goto fail;
        }
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
        /* A holder whose heartbeat is older than the timeout is stopped or cut off: its
         * session is ended and the run taken over (the epoch fences whatever it still has in
         * flight). */
        bool ended = false;
        if (!mine && l->resume_run_id && tries % 10 == 0 &&
            store_run_take_over(st, l->run_id, env->cfg->heartbeat_timeout_sec, &ended,
                                &err) < 0)
            goto fail;
        if (ended)
            log_msg(DR_LOG_WARN, l->run_id, NULL, NULL,
                    "taking the run over: its heartbeat is older than %d s",
                    env->cfg->heartbeat_timeout_sec);
    }
    if (!mine) {
        err_set(&err, "run %s is being run by another process", l->run_id);
        err_hint(&err, "dagrun cancel %s stops it", l->run_id);
        goto fail;
    }
    if (l->resume_run_id) {
        /* Read only now, under the lock: a run that ended while this waited for it is not
         * run again, and what it achieved is what the resume starts from. */
        json_t *run = store_run_get(st, l->run_id, &err);
        if (!run)
            goto fail;
        const char *state = json_string_value(json_object_get(run, "state"));
        bool done = state && strcmp(state, "success") == 0;
        json_decref(run);
        if (done) {
            printf("run %s already succeeded: nothing to resume\n", l->run_id);
            rc = EXIT_OK;
            goto out;
        }
        if (store_prior_load(st, l->run_id, &prior, &err) < 0)
            goto fail;
        have_prior = true;
        /* A cancel request aimed at an earlier process (one that died before it saw it)
         * would stop this resume at its first heartbeat. */
        if (store_run_clear_cancel(st, l->run_id, &err) < 0)
            goto fail;
    }
    if (store_run_set_state(st, l->run_id, RUN_RUNNING, NULL, &err) < 0)
        goto fail;
    log_msg(DR_LOG_INFO, l->run_id, NULL, NULL, "%s %s of %s",
            l->resume_run_id ? "resuming" : "started", l->run_type, dag->dag_id);

    if (!(http = http_sources_new(env->cfg, &err)))
        goto fail_run;
    struct report_opts ro = {
        .dag = dag,
        .run_id = l->run_id,
        .progress_bar = env->tty && !env->json && !l->print_instances,
        .json = env->json,
        .print_instances = l->print_instances,
        .keep_instances = l->junit_path != NULL,
    };
    if (!(rep = report_new(&ro))) {
        err_set(&err, "out of memory");
        goto fail_run;
    }
    int workers = dag->max_active_tasks ? dag->max_active_tasks : env->cfg->max_active_tasks;
    struct run_spec spec = {
        .dag = dag,
        .cfg = env->cfg,
        .params = params,
        .run_id = l->run_id,
        .run_type = l->run_type,
        .logical_date = l->logical_date,
        .data_interval_start = l->data_interval_start,
        .data_interval_end = l->data_interval_end,
        .workers = workers > 0 ? workers : 1,
        .database_url = env->cfg->database_url,
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
    /* Requests by source and HTTP status, and rate-limit waits, kept with the run's counters
     * (what /metrics and /health/sources read). */
    json_t *per_source = http_sources_counters(http);
    if (json_object_size(per_source) &&
        store_run_add_warnings(st, l->run_id, NULL, per_source, &err) < 0) {
        err_print(&err);
        err_clear(&err);
    }
    json_decref(per_source);
    if (res.state == RUN_CANCELLED && l->requeue_on_stop && l->stop &&
        __atomic_load_n(l->stop, __ATOMIC_RELAXED)) {
        res.state = RUN_QUEUED;
        log_msg(DR_LOG_INFO, l->run_id, NULL, NULL, "interrupted: queued for the next scheduler");
    }
    if (store_run_lost(st, l->run_id)) {
        /* Its new owner finishes the run and writes its end state. */
        report_summary(rep, &res, wall);
        err_set(&err, "run %s was taken over by another process: this process stopped "
                "working on it (items in flight rolled back) and left its end state to the "
                "new owner", l->run_id);
        err_hint(&err, "dagrun status %s shows the run", l->run_id);
        goto fail;
    }
    if (res.resume_after && store_run_set_resume_after(st, l->run_id, res.resume_after, &err) < 0)
        err_print(&err);
    if (store_run_set_state(st, l->run_id, res.state, res.error[0] ? res.error : NULL, &err) < 0)
        err_print(&err); /* the data is committed; only the run row lags */
    report_summary(rep, &res, wall);
    rc = run_state_exit_code(res.state);
    if (res.state == RUN_QUEUED && res.resume_after) {
        /* Not a failure and not done: a distinct code, so that a script neither alarms
         * nor takes the data as complete. */
        char at[32];
        time_t t = (time_t)res.resume_after;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char msg[400];
        snprintf(msg, sizeof msg, "run %s is queued until %s: a source's limit is used up "
                 "(dagrun status %s says which); the scheduler resumes it then, or dagrun "
                 "resume %s", l->run_id, at, l->run_id, l->run_id);
        if (env->json)  /* stdout holds JSON lines only */
            log_msg(DR_LOG_WARN, l->run_id, NULL, NULL, "%s", msg);
        else
            printf("%s\n", msg);
        rc = EXIT_QUEUED;
    }
    if (l->junit_path && report_write_junit(rep, l->junit_path, &res, wall, &err) < 0) {
        /* CI reads the report: a run whose report is lost does not pass. */
        err_prefix(&err, "could not write the JUnit report");
        err_print(&err);
        if (rc == EXIT_OK)
            rc = EXIT_FAILED;
    }
    hook_fire(dag->on_failure, &(struct hook_event){ l->run_id, dag->dag_id, l->run_type,
              res.error[0] ? res.error : NULL, res.state, l->logical_date });
    goto out;

fail_run:
    err_print(&err);
    if (!store_run_lost(st, l->run_id)) {
        struct dr_err e2;
        err_clear(&e2);
        store_run_set_state(st, l->run_id, RUN_FAILED, err.msg, &e2);
    }
    hook_fire(dag->on_failure, &(struct hook_event){ l->run_id, dag->dag_id, l->run_type,
              err.msg, RUN_FAILED, l->logical_date });
    rc = EXIT_FAILED;
    goto out;
fail:
    err_print(&err);
    rc = EXIT_FAILED;
    goto out;
fail_preflight:
    err_print(&err);
    rc = refused ? refused : EXIT_FAILED;
    /* A run the scheduler recorded for this launch ends failed with why, not queued. */
    if (st && l->run_id[0] && !l->resume_run_id) {
        struct dr_err e2;
        err_clear(&e2);
        store_run_set_state(st, l->run_id, RUN_FAILED, err.msg, &e2);
    }
out:
    run_result_free(&res);
    if (have_prior)
        prior_free(&prior);
    report_free(rep);
    http_sources_free(http);
    free_params(params, dag->n_tasks);
    store_close(own);
    return rc;
}

int launch_run_dates(const json_t *run, struct launch *l, struct dr_err *err)
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

struct store *launch_open_store(const struct config *cfg, struct dr_err *err)
{
    if (!cfg->database_url || !cfg->database_url[0]) {
        err_set(err, "no database configured");
        err_hint(err, "set DATABASE_URL or database_url in config.json");
        return NULL;
    }
    return store_open(cfg->database_url, err);
}
