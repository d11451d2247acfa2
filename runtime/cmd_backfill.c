/* The backfill command: one run (run_type backfill) per scheduled interval of a date range,
 * oldest first, skipping intervals that already have a successful run. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "date.h"
#include "due.h"
#include "log.h"
#include "store_ops.h"

/* A range naming more intervals than this is refused (a minutely schedule over years). */
enum { BACKFILL_MAX_INTERVALS = 100000 };

static const char backfill_usage[] =
    "usage: dagrun backfill DAG --from DATE --to DATE [--conf JSON | --conf-file FILE]\n"
    "                       [--max-active N] [--rerun]\n"
    "Runs DAG once per scheduled interval whose logical date lies in [--from, --to] and that\n"
    "has ended, oldest first, as run_type backfill (like `airflow dags backfill -s -e`). Each\n"
    "run covers its interval: `today` in its params is the date its interval ends.\n"
    "  --from, --to DATE  YYYY-MM-DD, whole days in the DAG's timezone, both included; or an\n"
    "                     ISO-8601 instant (2026-11-10T13:00:00Z), taken as given\n"
    "  --conf JSON        run params for every run, as for `dagrun run`\n"
    "  --conf-file FILE   the same, read from a JSON file\n"
    "  --max-active N     at most N runs at once (default 1); the DAG's max_active_runs, which\n"
    "                     counts its runs in every process, is respected as well\n"
    "  --rerun            also run intervals that already have a successful run\n"
    "An interval with a successful run (of any run type) is skipped unless --rerun; one with\n"
    "a queued or running run is always skipped. A second backfill of the same range runs\n"
    "only what did not succeed. Ctrl-C cancels the runs in flight and starts no more.\n"
    "exit: 0 every run succeeded (or nothing to do), 1 a run failed or was cancelled,\n"
    "      2 bad input (nothing ran), 3 some run partial, 4 some run queued until a source's\n"
    "      counted window reopens (the scheduler resumes it)\n";

/* Set by the first SIGINT/SIGTERM, read by every run's executor on its own thread: atomic
 * accesses (lock-free, so safe in a signal handler). */
static volatile sig_atomic_t g_stop;

static bool stopping(void)
{
    return __atomic_load_n(&g_stop, __ATOMIC_RELAXED) != 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (stopping())
        _exit(EXIT_FAILED);
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

/* One run of the backfill, on a thread of its own. */
struct bf_run {
    pthread_t thread;
    const struct launch_env *env;
    struct dag *dag;            /* shared, read-only */
    struct launch l;
    int rc;
    bool done;                  /* protected by bf_lock */
    bool joined;
};

static pthread_mutex_t bf_lock = PTHREAD_MUTEX_INITIALIZER;

static void *bf_thread(void *arg)
{
    struct bf_run *r = arg;
    r->rc = launch_run(r->env, r->dag, NULL, &r->l);
    pthread_mutex_lock(&bf_lock);
    r->done = true;
    pthread_mutex_unlock(&bf_lock);
    return NULL;
}

/* Joins the finished runs of runs[0..n); returns how many are still in flight. */
static int bf_reap(struct bf_run *runs, size_t n)
{
    int flying = 0;
    for (size_t i = 0; i < n; i++) {
        if (!runs[i].l.run_id[0] || runs[i].joined)
            continue;
        pthread_mutex_lock(&bf_lock);
        bool done = runs[i].done;
        pthread_mutex_unlock(&bf_lock);
        if (done) {
            pthread_join(runs[i].thread, NULL);
            runs[i].joined = true;
        } else {
            flying++;
        }
    }
    return flying;
}

/* --from/--to: a date is a whole day in zone z (from: its first instant, to: its last); an
 * instant is taken as given. 0, or -1 with err. */
static int parse_bound(const char *s, const struct tz *z, bool end, int64_t *out,
                       struct dr_err *err)
{
    int64_t day;
    if (strlen(s) == 10 && date_parse(s, &day, err) == 0) {
        *out = end ? due_day_start(z, day + 1) - 1 : due_day_start(z, day);
        return 0;
    }
    err_clear(err);
    if (date_parse_instant(s, out, err) < 0)
        return err_prefix(err, "%s \"%s\"", end ? "--to" : "--from", s);
    return 0;
}

/* Every interval of dag in [from, to] that has ended by now, oldest first: a new array in
 * *out (free) and its length, or -1 with err. */
static int collect_intervals(const struct dag *dag, int64_t from, int64_t to, int64_t now,
                             struct due_interval **out, size_t *n, struct dr_err *err)
{
    const struct due_rule rule = { .cron = dag->cron, .tz = dag->tz, .start_date = INT64_MIN };
    size_t cap = 64;
    struct due_interval *v = malloc(cap * sizeof *v);
    *n = 0;
    if (!v)
        return err_set(err, "out of memory");
    for (;;) {
        if (*n == cap) {
            if (cap >= BACKFILL_MAX_INTERVALS) {
                free(v);
                err_set(err, "backfill %s: over %d intervals in the range", dag->dag_id,
                        BACKFILL_MAX_INTERVALS);
                return err_hint(err, "backfill a shorter range at a time");
            }
            struct due_interval *w = realloc(v, cap * 2 * sizeof *v);
            if (!w) {
                free(v);
                return err_set(err, "out of memory");
            }
            v = w;
            cap *= 2;
        }
        size_t k = due_between(&rule, from, to, now, v + *n, cap - *n);
        if (k == 0)
            break;
        *n += k;
        from = v[*n - 1].start + 1;
    }
    *out = v;
    return 0;
}

/* The conf and params of a run, checked once before anything is stored: a bad one exits 2
 * with nothing run. 0, or -1 with err. */
static int check_params(const struct dag *dag, const struct config *cfg, const json_t *conf,
                        int64_t anchor, struct dr_err *err)
{
    if (conf && dag_check_conf(dag, conf, err) < 0)
        return -1;
    for (size_t i = 0; i < dag->n_tasks; i++) {
        json_t *p = dag_resolve_params_at(dag, i, cfg, conf, anchor, err);
        if (!p)
            return -1;
        json_decref(p);
    }
    return 0;
}

int cmd_backfill(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, backfill_usage))
        return EXIT_OK;
    const char *name = NULL, *from_s = NULL, *to_s = NULL, *conf_text = NULL, *conf_file = NULL;
    long max_active = 1;
    bool rerun = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from_s = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to_s = argv[++i];
        else if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc)
            conf_text = argv[++i];
        else if (strcmp(argv[i], "--conf-file") == 0 && i + 1 < argc)
            conf_file = argv[++i];
        else if (strcmp(argv[i], "--max-active") == 0 && i + 1 < argc) {
            char *end;
            max_active = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || max_active < 1 || max_active > 1000) {
                fprintf(stderr, "backfill: --max-active \"%s\": expected an integer 1-1000\n",
                        argv[i]);
                return EXIT_BAD_INPUT;
            }
        } else if (strcmp(argv[i], "--rerun") == 0)
            rerun = true;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n%s", argv[0], argv[i],
                    backfill_usage);
            return EXIT_BAD_INPUT;
        }
    }
    if (!name || !from_s || !to_s || (conf_text && conf_file)) {
        fputs(backfill_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    int rc = EXIT_BAD_INPUT;
    json_t *conf = NULL;
    struct dag *dag = NULL;
    struct store *st = NULL;
    struct due_interval *iv = NULL;
    struct bf_run *runs = NULL;
    size_t n = 0;
    int64_t from, to, now = (int64_t)time(NULL);

    if ((conf_text || conf_file) && !(conf = cli_parse_conf(conf_text, conf_file, &err)))
        goto bad;
    if (!(dag = cli_find_dag(c, name, true, &err)))
        goto bad;
    if (!dag->cron) {
        err_set(&err, "backfill %s: the DAG has no schedule, so no intervals", dag->dag_id);
        err_hint(&err, "dagrun run %s --logical-date T runs one interval", dag->dag_id);
        goto bad;
    }
    if (parse_bound(from_s, dag->tz, false, &from, &err) < 0 ||
        parse_bound(to_s, dag->tz, true, &to, &err) < 0)
        goto bad;
    if (from > to) {
        err_set(&err, "backfill %s: --from %s is after --to %s", dag->dag_id, from_s, to_s);
        goto bad;
    }
    if (collect_intervals(dag, from, to, now, &iv, &n, &err) < 0)
        goto bad;
    if (n == 0) {
        printf("backfill %s: no interval with a logical date in %s..%s has ended\n",
               dag->dag_id, from_s, to_s);
        rc = EXIT_OK;
        goto out;
    }
    if (check_params(dag, c->cfg, conf, iv[0].end, &err) < 0)
        goto bad;
    if (!(runs = calloc(n, sizeof *runs))) {
        err_set(&err, "out of memory");
        goto fail;
    }
    if (!(st = cli_open_store(c, &err)))
        goto fail;

    int slots = (int)max_active < dag->max_active_runs ? (int)max_active : dag->max_active_runs;
    /* Several runs at once share the terminal: no progress bars then. */
    struct launch_env env = { .cfg = c->cfg, .json = c->json, .tty = c->tty && slots == 1 };
    cli_on_stop_signals(on_signal);
    char a[32], b[32];
    date_format_instant(iv[0].start, a, sizeof a);
    date_format_instant(iv[n - 1].start, b, sizeof b);
    log_info("backfill %s: %zu interval%s, logical dates %s to %s, up to %d at once", dag->dag_id,
             n, n == 1 ? "" : "s", a, b, slots);

    size_t started = 0, skipped = 0;
    rc = EXIT_OK;
    for (size_t k = 0; k < n && !stopping(); k++) {
        /* Wait for a slot: ours (--max-active), then the DAG's across every process. */
        bool told = false;
        for (;;) {
            int live = 0, flying = bf_reap(runs, n);
            if (flying < slots) {
                if (store_ops_live_runs(st, dag->dag_id, c->cfg->heartbeat_timeout_sec, &live,
                                        &err) < 0)
                    goto fail_stop;
                if (live < dag->max_active_runs)
                    break;
                if (!told)
                    log_info("backfill %s: waiting: %d run%s of the DAG active, max_active_runs %d",
                             dag->dag_id, live, live == 1 ? "" : "s", dag->max_active_runs);
                told = true;
            }
            if (stopping())
                break;
            nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
        }
        if (stopping())
            break;
        bool succeeded, active;
        if (store_ops_interval(st, dag->dag_id, iv[k].start, &succeeded, &active, &err) < 0)
            goto fail_stop;
        date_format_instant(iv[k].start, a, sizeof a);
        if (active || (succeeded && !rerun)) {
            log_info("backfill %s: %s skipped: %s", dag->dag_id, a,
                     active ? "a run of it is queued or running" : "a run of it succeeded");
            skipped++;
            continue;
        }
        struct bf_run *r = &runs[k];
        r->env = &env;
        r->dag = dag;
        r->l = (struct launch){
            .run_type = "backfill",
            /* Each run thread gets its own copy: Jansson has no locks. */
            .conf = conf ? json_deep_copy(conf) : NULL,
            .logical_date = iv[k].start,
            .data_interval_start = iv[k].start,
            .data_interval_end = iv[k].end,
            .stop = &g_stop,
        };
        /* The row is made here, before the thread, so that the next slot count sees it. */
        char run_id[sizeof r->l.run_id];
        if (store_run_create(st, dag->dag_id, "backfill", iv[k].start, iv[k].start, iv[k].end,
                             conf, run_id, sizeof run_id, &err) != 0)
            goto fail_stop;
        snprintf(r->l.run_id, sizeof r->l.run_id, "%s", run_id);
        if (pthread_create(&r->thread, NULL, bf_thread, r) != 0) {
            struct dr_err e2;
            err_clear(&e2);
            store_run_set_state(st, run_id, RUN_FAILED, "backfill: cannot start a thread", &e2);
            err_set(&err, "backfill %s: cannot start a thread", dag->dag_id);
            r->joined = true;
            r->rc = EXIT_FAILED;
            json_decref(r->l.conf);
            r->l.conf = NULL;
            goto fail_stop;
        }
        started++;
    }
    goto wait;

fail_stop:
    err_print(&err);
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
    rc = EXIT_FAILED;
wait:
    while (bf_reap(runs, n) > 0)
        nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
    /* The worst outcome decides: failed or cancelled, then partial, then parked (queued
     * until a source's counted window reopens: the scheduler resumes those). */
    bool any_failed = rc == EXIT_FAILED, any_partial = false, any_queued = false;
    size_t ok = 0;
    for (size_t k = 0; k < n; k++) {
        if (!runs[k].l.run_id[0])
            continue;
        any_failed |= runs[k].rc != EXIT_OK && runs[k].rc != EXIT_PARTIAL &&
                      runs[k].rc != EXIT_QUEUED;
        any_partial |= runs[k].rc == EXIT_PARTIAL;
        any_queued |= runs[k].rc == EXIT_QUEUED;
        ok += runs[k].rc == EXIT_OK;
    }
    /* Stopped (Ctrl-C) before every interval ran: cancelled, as a run would be. */
    bool stopped = stopping() && started + skipped < n;
    any_failed |= stopped;
    rc = any_failed ? EXIT_FAILED : any_partial ? EXIT_PARTIAL : any_queued ? EXIT_QUEUED : EXIT_OK;
    if (c->json) {
        /* One JSON line beside the runs' own summaries. */
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:[]}", "backfill", dag->dag_id,
                              "intervals", (json_int_t)n, "runs_started", (json_int_t)started,
                              "succeeded", (json_int_t)ok, "skipped", (json_int_t)skipped,
                              "stopped", stopped, "runs");
        for (size_t k = 0; o && k < n; k++)
            if (runs[k].l.run_id[0])
                json_array_append_new(json_object_get(o, "runs"),
                                      json_pack("{s:s, s:i}", "run_id", runs[k].l.run_id,
                                                "exit_code", runs[k].rc));
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (t)
            puts(t);
        free(t);
        json_decref(o);
    } else {
        printf("backfill %s: %zu interval%s: %zu run (%zu succeeded), %zu skipped%s\n",
               dag->dag_id, n, n == 1 ? "" : "s", started, ok, skipped,
               stopped ? ", the rest not started (stopped)" : "");
        for (size_t k = 0; k < n; k++)
            if (runs[k].l.run_id[0])
                printf("  %s  %s\n", runs[k].l.run_id,
                       runs[k].rc == EXIT_OK        ? "success"
                       : runs[k].rc == EXIT_PARTIAL ? "partial"
                       : runs[k].rc == EXIT_QUEUED  ? "queued (a source's window is used up)"
                                                    : "failed or cancelled");
    }
    fflush(stdout);
    goto out;
bad:
    err_print(&err);
    rc = EXIT_BAD_INPUT;
    goto out;
fail:
    err_print(&err);
    rc = EXIT_FAILED;
out:
    for (size_t k = 0; runs && k < n; k++)
        json_decref(runs[k].l.conf);
    free(runs);
    free(iv);
    store_close(st);
    dag_free(dag);
    json_decref(conf);
    return rc;
}
