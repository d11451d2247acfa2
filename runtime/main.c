/* dagrun: the command-line entry point; parses global options and dispatches. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "headers.h"
#include "log.h"
#include "tasklog.h"

#define DAGRUN_VERSION "0.9.0"
#include "serve.h"

static const char usage[] =
    "usage: dagrun [--version] [-c CONFIG] [--log-format auto|text|json] [--log-level LEVEL] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  validate [PATH...]         check DAG files (default: every file in dags_dir)\n"
    "  list [--wide]              list the DAGs in dags_dir (paused, next run)\n"
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
    "  runs [DAG] [--state S] [--limit N] [--wide | --json]\n"
    "                             recent runs\n"
    "  status RUN_ID [--state S] [--json]\n"
    "                             a run's task instances, errors and warnings\n"
    "  resume RUN_ID              re-run what did not succeed in a run\n"
    "  cancel RUN_ID              ask a running run to stop\n"
    "  pause DAG | unpause DAG    stop or restart scheduled runs of a DAG\n"
    "  logs RUN_ID [TASK [ITEM]] [--follow]\n"
    "                             a run's kept task logs\n"
    "  serve [--listen ADDR:PORT] [--no-scheduler]\n"
    "                             the REST API, web page, health and metrics, and the scheduler\n"
    "  backfill DAG --from DATE --to DATE [--conf JSON] [--max-active N] [--rerun]\n"
    "                             one run per scheduled interval of a range\n"
    "  clear RUN_ID TASK [--map-index N | --failed]\n"
    "                             re-run a task (or item) of an ended run, and what follows it\n"
    "  db clean --older-than AGE [--all] [--dry-run]\n"
    "                             delete ended runs older than AGE (run retention)\n"
    "\n"
    "`dagrun COMMAND --help` describes each command.\n"
    "config: -c FILE, else $DAGRUN_CONFIG, ./config.json, ~/.config/dagrun/config.json,\n"
    "PREFIX/etc/dagrun/config.json (beside bin/), /etc/dagrun/config.json; none: defaults,\n"
    "said on stderr. plugin_dir defaults to PREFIX/lib/dagrun for an installed dagrun.\n"
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
    { "logs", cmd_logs },
    { "serve", cmd_serve },       { "_run", cmd_serve_run },  /* _run: serve's run processes */
    { "backfill", cmd_backfill }, { "clear", cmd_clear },   { "db", cmd_db },
};

/* The commands that run DAGs keep their task logs. */
static bool runs_dags(const char *name)
{
    return strcmp(name, "run") == 0 || strcmp(name, "test") == 0 ||
           strcmp(name, "resume") == 0 || strcmp(name, "scheduler") == 0;
}

/* The config file when -c names none: $DAGRUN_CONFIG, ./config.json, the user's
 * ($XDG_CONFIG_HOME or ~/.config)/dagrun/config.json, PREFIX/etc/dagrun/config.json beside
 * the binary, /etc/dagrun/config.json; the first that exists, in buf. NULL: none. */
static const char *find_config(char *buf, size_t len)
{
    const char *env = getenv("DAGRUN_CONFIG");
    if (env && *env)
        return env;   /* named: config_load says it if it is missing */
    if (access("config.json", F_OK) == 0)
        return "config.json";
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, len, "%s/dagrun/config.json", xdg);
    else if (home && *home)
        snprintf(buf, len, "%s/.config/dagrun/config.json", home);
    else
        buf[0] = '\0';
    if (buf[0] && access(buf, F_OK) == 0)
        return buf;
    if (cli_beside_binary("../etc/dagrun", "config.json", buf, len))
        return buf;
    if (access("/etc/dagrun/config.json", F_OK) == 0)
        return "/etc/dagrun/config.json";
    return NULL;
}

/* plugin_dir when the config names none: PREFIX/lib/dagrun for an installed binary, the
 * build tree's tasks/ beside a built one; the built-in default otherwise. */
static void default_plugin_dir(struct cli *c)
{
    if (c->cfg->path) {
        json_t *root = json_load_file(c->cfg->path, 0, NULL);
        bool named = root && json_object_get(root, "plugin_dir");
        json_decref(root);
        if (named)
            return;
    }
    char dir[4096];
    if (!cli_beside_binary("../lib/dagrun", "", dir, sizeof dir) &&
        !cli_beside_binary("tasks", "", dir, sizeof dir))
        return;
    char *copy = strdup(dir);
    if (copy) {
        free(c->cfg->plugin_dir);
        c->cfg->plugin_dir = copy;
    }
}

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
    /* Buffers of a megabyte or more (a minute chunk's answer and its candles) come from the
     * system and go back to it when freed; smaller ones stay in the heap. By default glibc
     * raises that threshold to the largest block freed so far, after which such buffers
     * churn through every worker's heap: the process then held more after five years of
     * candles than after one (make bench, memory rows: 32.6 against 29.2 MB). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    struct cli c = { 0 };
    const char *log_format = NULL, *log_level = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("dagrun %s (plugin ABI %d..%d)\n", DAGRUN_VERSION, DR_ABI_VERSION_MIN,
                   DR_ABI_VERSION);
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
    char found[4096];
    bool help = false;
    for (int k = i + 1; k < argc; k++)
        help |= strcmp(argv[k], "-h") == 0 || strcmp(argv[k], "--help") == 0;
    if (!c.config_path && !(c.config_path = find_config(found, sizeof found)) && !help)
        fprintf(stderr, "dagrun: no config.json found (-c FILE, $DAGRUN_CONFIG, ./config.json, "
                        "~/.config/dagrun/config.json, PREFIX/etc/dagrun/config.json, "
                        "/etc/dagrun/config.json): using the built-in defaults (dags_dir "
                        "./dags, no sources, DATABASE_URL or libpq's defaults)\n");
    if (c.config_path && access(c.config_path, F_OK) != 0) {
        fprintf(stderr, "dagrun: config file %s: %s\nhint: give one with -c FILE or "
                        "$DAGRUN_CONFIG; `dagrun --help` says where dagrun looks\n",
                c.config_path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    c.cfg = config_load(c.config_path, &err);
    if (!c.cfg) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    default_plugin_dir(&c);
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

    /* A closed stdout (`dagrun run X | head -1`) is a write error, never a death that would
     * leave the run "running": the run goes on to its end and is recorded. */
    signal(SIGPIPE, SIG_IGN);

    /* libcurl's global state is set up once, before any thread starts. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "dagrun: libcurl initialisation failed\n");
        config_free(c.cfg);
        return EXIT_FAILED;
    }

    /* Every log line is redacted of the sources' credentials, a plugin's lines too. */
    struct headers *secrets = calloc(c.cfg->n_sources ? c.cfg->n_sources : 1, sizeof *secrets);
    size_t n_secrets = 0;
    for (size_t k = 0; secrets && k < c.cfg->n_sources; k++) {
        struct dr_err ignored;
        const struct source_cfg *src = &c.cfg->sources[k];
        headers_build(&secrets[n_secrets++], src->name, src->headers, src->n_headers, &ignored);
    }
    log_redact_with(secrets, n_secrets);
    /* After curl_global_init: the writer thread's libpq may set up TLS too. */
    if (runs_dags(cmd->name) && tasklog_start(c.cfg->database_url, &err) < 0)
        err_print(&err);
    int rc = cmd->fn(&c, argc - i, argv + i);
    tasklog_stop();
    if (fflush(stdout) != 0 || ferror(stdout))
        fprintf(stderr, "dagrun: warning: standard output could not be written (closed?): the "
                        "command still ran to its end\n");
    log_redact_with(NULL, 0);
    for (size_t k = 0; k < n_secrets; k++)
        headers_fini(&secrets[k]);
    free(secrets);
    plugins_free(c.plugins);
    config_free(c.cfg);
    curl_global_cleanup();
    return rc;
}
