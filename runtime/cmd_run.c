/* The commands that run DAGs: run, test and resume (launch.c runs them). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cron.h"
#include "date.h"

/* The invocation's output flags, for launch_run. */
static struct launch_env env_of(const struct cli *c)
{
    return (struct launch_env){ .cfg = c->cfg, .json = c->json, .tty = c->tty };
}

/* ---- signals: the first SIGINT/SIGTERM stops handing out work; a second one exits now
 * (work in flight rolls back in PostgreSQL, and the run stays resumable). ---- */

static volatile sig_atomic_t g_stop;   /* __atomic accesses: the executor's threads read it */

static void on_signal(int sig)
{
    (void)sig;
    if (__atomic_load_n(&g_stop, __ATOMIC_RELAXED))
        _exit(EXIT_FAILED);
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

/* ---- run / test ---- */

/* Whether a JUnit report can be written at path (its folder exists and is writable, and it
 * is not a folder), so that a run whose report would be lost does not start. 0, or -1 with
 * err. */
static int junit_checkable(const char *path, struct dr_err *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat sb;
    if (stat(dir, &sb) < 0)
        err_set(err, "--junit %s: folder %s: %s", path, dir, strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        err_set(err, "--junit %s: %s is not a folder", path, dir);
    else if (access(dir, W_OK) < 0)
        err_set(err, "--junit %s: folder %s: %s", path, dir, strerror(errno));
    else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        err_set(err, "--junit %s: is a folder", path);
    else
        return 0;
    err_hint(err, "the JUnit report could not be written: nothing was run");
    return -1;
}

static const char run_usage[] =
    "usage: dagrun run DAG [--conf JSON | --conf-file FILE] [--logical-date T]\n"
    "Runs DAG now (run_type manual) and waits for it. DAG is a dag_id or the path of a file\n"
    "in dags_dir (so that resume and the scheduler find it again).\n"
    "  --conf JSON        run params overriding every other source, e.g. '{\"limit\": 5}'\n"
    "  --conf-file FILE   the same, read from a JSON file\n"
    "  --logical-date T   the interval to run for (ISO-8601, default now), to re-run a past one:\n"
    "                     the run's data interval is T to the schedule's next time after T\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input (nothing ran), 3 partial,\n"
    "      4 queued (a source's counted window is used up: it goes on when that reopens)\n";

static const char test_usage[] =
    "usage: dagrun test DAG [--conf JSON | --conf-file FILE] [--logical-date T] [--junit FILE]\n"
    "Runs DAG as a test (run_type test): prints each task instance's result and writes\n"
    "JUnit XML (one testcase per task instance) to FILE (a FILE that cannot be written\n"
    "exits 2 before anything runs, or 1 when it fails after the run).\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input (nothing ran), 3 partial,\n"
    "      4 queued (a source's counted window is used up: it goes on when that reopens)\n";

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
    if (junit && junit_checkable(junit, &err) < 0) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
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
    struct dag *dag = cli_find_dag(c, name, true, &err);
    if (!dag) {
        err_print(&err);
        json_decref(l.conf);
        return EXIT_BAD_INPUT;
    }
    /* A past interval re-run by hand gets the interval its scheduled run would have had:
     * from the logical date to the schedule's next time after it. */
    int64_t next;
    if (when && dag->cron && cron_next(dag->cron, dag->tz, l.logical_date, &next) == 0)
        l.data_interval_end = next;
    cli_on_stop_signals(on_signal);
    struct launch_env env = env_of(c);
    int rc = launch_run(&env, dag, NULL, &l);   /* checks the conf, then opens the store */
    dag_free(dag);
    json_decref(l.conf);
    return rc;
}

int cmd_run(struct cli *c, int argc, char **argv) { return run_or_test(c, argc, argv, false); }

int cmd_test(struct cli *c, int argc, char **argv) { return run_or_test(c, argc, argv, true); }

/* ---- resume ---- */

static const char resume_usage[] =
    "usage: dagrun resume RUN_ID\n"
    "Re-runs what did not succeed in RUN_ID (failed, cancelled or interrupted items), with\n"
    "the run's own conf; what already succeeded is neither run nor fetched again.\n"
    "exit: 0 success, 1 failed or cancelled, 2 bad input, 3 partial,\n"
    "      4 queued (a source's counted window is used up: it goes on when that reopens)\n"
    CLI_RUN_ID_HELP;

int cmd_resume(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, resume_usage))
        return EXIT_OK;
    if (argc != 2 || argv[1][0] == '-') {
        fputs(resume_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    struct store *st = cli_open_store_or_report(c, &err);
    if (!st)
        return EXIT_FAILED;
    struct dag *dag = NULL;
    json_t *run = NULL;
    char id[256];
    int rc = cli_run_id(st, argv[1], id, sizeof id);
    if (rc != EXIT_OK)
        goto out;
    rc = EXIT_BAD_INPUT;
    if (!(run = store_run_get(st, id, &err))) {
        err_print(&err);
        goto out;
    }
    const char *state = json_string_value(json_object_get(run, "state"));
    const char *dag_id = json_string_value(json_object_get(run, "dag_id"));
    if (state && strcmp(state, "success") == 0) {
        printf("run %s already succeeded: nothing to resume\n", id);
        rc = EXIT_OK;
        goto out;
    }
    if (!dag_id || !(dag = cli_find_dag(c, dag_id, true, &err))) {
        if (dag_id)
            err_print(&err);
        goto out;
    }
    struct launch l = {
        .run_type = json_string_value(json_object_get(run, "run_type")),
        .resume_run_id = id,
        .stop = &g_stop,
    };
    json_t *conf = json_object_get(run, "conf");
    l.conf = json_is_object(conf) ? conf : NULL;
    if (launch_run_dates(run, &l, &err) < 0) {
        err_print(&err);
        goto out;
    }
    if (!l.run_type)
        l.run_type = "manual";
    cli_on_stop_signals(on_signal);
    struct launch_env env = env_of(c);
    rc = launch_run(&env, dag, st, &l);
out:
    json_decref(run);
    dag_free(dag);
    store_close(st);
    return rc;
}
