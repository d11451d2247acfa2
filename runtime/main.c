/* dagrun: the command-line entry point; parses global options and dispatches. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

static const char usage[] =
    "usage: dagrun [-c CONFIG] [--log-format auto|text|json] [--log-level LEVEL] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  validate [PATH...]         check DAG files (default: every file in dags_dir)\n"
    "  list                       list the DAGs in dags_dir\n"
    "  show DAG [--dot]           tasks, dependencies and resolved params (--dot: Graphviz)\n"
    "  plugins                    the task plugins and their params\n"
    "  next (DAG | --cron EXPR [--tz ZONE]) [--from T] [-n N]\n"
    "                             the next fire times, as UTC ISO-8601 lines\n"
    "  initdb [--schema FILE]     create or update the tables (schema.sql)\n"
    "  run DAG [--conf JSON | --conf-file F] [--logical-date T]\n"
    "                             run a DAG now (run_type manual)\n"
    "  test DAG [--conf ...] [--junit FILE]\n"
    "                             run a DAG as a test (run_type test), JUnit report\n"
    "  scheduler [--once]         fire runs on the DAGs' cron schedules\n"
    "  runs [DAG] [--limit N] [--json]\n"
    "                             recent runs\n"
    "  status RUN_ID [--json]     a run's task instances, errors and warnings\n"
    "  resume RUN_ID              re-run what did not succeed in a run\n"
    "  cancel RUN_ID              ask a running run to stop\n"
    "  pause DAG | unpause DAG    stop or restart scheduled runs of a DAG\n"
    "  backfill DAG --from DATE --to DATE [--conf JSON] [--max-active N] [--rerun]\n"
    "                             one run per scheduled interval of a range\n"
    "  clear RUN_ID TASK [--map-index N | --failed]\n"
    "                             re-run a task (or item) of an ended run, and what follows it\n"
    "  db clean --older-than AGE [--all] [--dry-run]\n"
    "                             delete ended runs older than AGE (run retention)\n"
    "\n"
    "`dagrun COMMAND --help` describes each command.\n"
    "exit codes: 0 success, 1 run failed, 2 bad input (nothing ran), 3 partial\n";

struct command {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv);
};

static const struct command commands[] = {
    { "validate", cmd_validate }, { "list", cmd_list },       { "show", cmd_show },
    { "plugins", cmd_plugins },   { "next", cmd_next },       { "initdb", cmd_initdb },
    { "run", cmd_run },           { "test", cmd_test },       { "resume", cmd_resume },
    { "runs", cmd_runs },         { "status", cmd_status },   { "cancel", cmd_cancel },
    { "pause", cmd_pause },       { "unpause", cmd_pause },   { "scheduler", cmd_scheduler },
    { "backfill", cmd_backfill }, { "clear", cmd_clear },   { "db", cmd_db },
};

static int parse_level(const char *s, dr_log_level *out)
{
    static const char *const names[] = { "debug", "info", "warning", "error" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (dr_log_level)i;
            return 0;
        }
    return -1;
}

int main(int argc, char **argv)
{
    struct cli c = { 0 };
    const char *log_format = NULL, *log_level = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return EXIT_OK;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            c.config_path = argv[++i];
        } else if (strcmp(a, "--log-format") == 0 && i + 1 < argc) {
            log_format = argv[++i];
        } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
            log_level = argv[++i];
        } else {
            fprintf(stderr, "dagrun: unknown option %s\n%s", a, usage);
            return EXIT_BAD_INPUT;
        }
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return EXIT_BAD_INPUT;
    }
    const struct command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof *commands; k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            cmd = &commands[k];
    if (!cmd) {
        fprintf(stderr, "dagrun: unknown command \"%s\"\nhint: dagrun --help lists the commands\n",
                argv[i]);
        return EXIT_BAD_INPUT;
    }

    struct dr_err err;
    err_clear(&err);
    c.cfg = config_load(c.config_path, &err);
    if (!c.cfg) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    if (!log_format)
        log_format = c.cfg->log_format ? c.cfg->log_format : "auto";
    if (!log_level)
        log_level = c.cfg->log_level ? c.cfg->log_level : "info";
    dr_log_level level;
    if (parse_level(log_level, &level) < 0) {
        fprintf(stderr, "dagrun: bad log level \"%s\" (debug, info, warning, error)\n", log_level);
        config_free(c.cfg);
        return EXIT_BAD_INPUT;
    }
    c.tty = isatty(STDERR_FILENO);
    if (strcmp(log_format, "json") == 0)
        c.json = true;
    else if (strcmp(log_format, "text") == 0)
        c.json = false;
    else if (strcmp(log_format, "auto") == 0)
        c.json = !c.tty;
    else {
        fprintf(stderr, "dagrun: bad log format \"%s\" (auto, text, json)\n", log_format);
        config_free(c.cfg);
        return EXIT_BAD_INPUT;
    }
    log_setup(c.json ? LOG_JSON : LOG_TEXT, level);

    /* libcurl's global state is set up once, before any thread starts. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "dagrun: libcurl initialisation failed\n");
        config_free(c.cfg);
        return EXIT_FAILED;
    }
    int rc = cmd->fn(&c, argc - i, argv + i);
    plugins_free(c.plugins);
    config_free(c.cfg);
    curl_global_cleanup();
    return rc;
}
