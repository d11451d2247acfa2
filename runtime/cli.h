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
#include "launch.h"
#include "plugin.h"
#include "store.h"

/* One invocation: the loaded config and, once opened, the plugin registry. */
struct cli {
    const char *config_path;    /* -c FILE, or NULL */
    struct config *cfg;
    struct plugins *plugins;    /* opened on first use (cli_plugins) */
    bool json;                  /* machine-readable output (not a terminal, or --log-format json) */
    bool tty;                   /* stderr is a terminal */
};

struct plugins *cli_plugins(struct cli *c);

/* Finds a DAG by id in cfg->dags_dir, or loads it from a path (an argument containing '/' or
 * ending in .yaml/.yml). A dag_id that two files in dags_dir define is refused, naming both.
 * for_run: a file outside dags_dir is refused (resume and the scheduler find a run's DAG by
 * id in dags_dir, so a run of it could not be resumed). NULL with err (the exit code is 2). */
struct dag *cli_find_dag(struct cli *c, const char *id_or_path, bool for_run,
                         struct dr_err *err);

/* Opens the run-state store from the config's database URL; NULL with err. */
struct store *cli_open_store(struct cli *c, struct dr_err *err);

/* cli_open_store, printing why not to stderr (the exit code for that is EXIT_FAILED). On
 * success err is left cleared, ready for the next store call. */
struct store *cli_open_store_or_report(struct cli *c, struct dr_err *err);

/* Installs fn as the handler of SIGINT and SIGTERM (the signals that stop a run). Main
 * thread, before threads start. */
void cli_on_stop_signals(void (*fn)(int));

/* Parses a --conf JSON text or --conf-file; new reference or NULL with err. */
json_t *cli_parse_conf(const char *text, const char *file, struct dr_err *err);

/* The commands: each returns the exit code. argv[0] is the command name. */
/* Resolves a RUN_ID operand (a run id, or a unique suffix or prefix of one: store_run_find)
 * into run_id. Returns EXIT_OK, or prints why not to stderr and returns the exit code:
 * EXIT_BAD_INPUT for an unknown or ambiguous id, EXIT_FAILED when the database failed. */
int cli_run_id(struct store *st, const char *text, char *run_id, size_t len);
/* The line that ends the usage of each command taking a RUN_ID. */
#define CLI_RUN_ID_HELP \
    "RUN_ID: the run id, or a unique end or start of it (the RUN ID that `dagrun runs` shows).\n"

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
int cmd_logs(struct cli *c, int argc, char **argv);

/* The installed file dir/name next to the binary (dir relative to the folder
 * /proc/self/exe is in, e.g. "../share/dagrun"), written to buf: true when it
 * exists, false (buf undefined) when not or when the binary's folder is unknown. */
bool cli_beside_binary(const char *dir, const char *name, char *buf, size_t len);
int cmd_backfill(struct cli *c, int argc, char **argv);     /* cmd_backfill.c */
int cmd_clear(struct cli *c, int argc, char **argv);        /* cmd_clear.c */
int cmd_db(struct cli *c, int argc, char **argv);           /* cmd_db.c */

/* True when argv has -h or --help; prints usage to stdout then. */
bool cli_wants_help(int argc, char **argv, const char *usage);

#endif
