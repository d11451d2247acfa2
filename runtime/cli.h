/* runtime-private: plugins never include this */
/* The dagrun command line: shared state of one invocation and the commands. */
#ifndef DR_CLI_H
#define DR_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "config.h"
#include "dag.h"
#include "err.h"
#include "plugin.h"
#include "store.h"

/* Exit codes (DESIGN.md "CLI"). */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_BAD_INPUT = 2, EXIT_PARTIAL = 3 };

/* One invocation: the loaded config and, once opened, the plugin registry. */
struct cli {
    const char *config_path;    /* -c FILE, or NULL */
    struct config *cfg;
    struct plugins *plugins;    /* opened on first use (cli_plugins) */
    bool json;                  /* machine-readable output (not a terminal, or --log-format json) */
    bool tty;                   /* stderr is a terminal */
};

struct plugins *cli_plugins(struct cli *c);

/* Finds a DAG by id in cfg->dags_dir, or loads it from a path (an argument
 * containing '/' or ending in .yaml/.yml). NULL with err (the exit code is 2). */
struct dag *cli_find_dag(struct cli *c, const char *id_or_path, struct dr_err *err);

/* Opens the run-state store from the config's database URL; NULL with err. */
struct store *cli_open_store(struct cli *c, struct dr_err *err);

/* What to run: a new run of dag, or a resume of run_id. */
struct launch {
    const char *run_type;       /* "manual", "scheduled", "test" */
    json_t *conf;               /* --conf object (borrowed), may be NULL */
    int64_t logical_date;       /* Unix seconds */
    int64_t data_interval_start, data_interval_end;
    const char *resume_run_id;  /* resume this run instead of creating one (may be run_id) */
    const char *junit_path;     /* write JUnit XML here, or NULL */
    bool print_instances;       /* `dagrun test`: one line per task instance */
    volatile int *stop;         /* set by a signal handler or the scheduler */
    bool requeue_on_stop;       /* stopped through *stop: back to queued, not cancelled (the
                                 * scheduler's runs, which the next scheduler resumes) */
    char run_id[160];           /* out: the run's id */
};

/* Runs (or resumes) one DAG run end to end: params, run row, executor,
 * final state, summary, JUnit. Returns the exit code. Coordinator thread. */
int cli_run_dag(struct cli *c, struct dag *dag, struct store *st, struct launch *l);

/* Reads a stored run's logical date and data interval (store_run_get's
 * object) into l. 0, or -1 with err. */
int cli_run_dates(const json_t *run, struct launch *l, struct dr_err *err);

/* Parses a --conf JSON text or --conf-file; new reference or NULL with err. */
json_t *cli_parse_conf(const char *text, const char *file, struct dr_err *err);

/* The commands: each returns the exit code. argv[0] is the command name. */
int cmd_validate(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_show(struct cli *c, int argc, char **argv);
int cmd_plugins(struct cli *c, int argc, char **argv);
int cmd_next(struct cli *c, int argc, char **argv);
int cmd_initdb(struct cli *c, int argc, char **argv);
int cmd_run(struct cli *c, int argc, char **argv);
int cmd_test(struct cli *c, int argc, char **argv);
int cmd_resume(struct cli *c, int argc, char **argv);
int cmd_runs(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_cancel(struct cli *c, int argc, char **argv);
int cmd_pause(struct cli *c, int argc, char **argv);
int cmd_scheduler(struct cli *c, int argc, char **argv);

/* True when argv has -h or --help; prints usage to stdout then. */
bool cli_wants_help(int argc, char **argv, const char *usage);

#endif
