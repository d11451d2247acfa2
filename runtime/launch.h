/* runtime-private: plugins never include this */
/* Launching one DAG run: what run, test, resume and the scheduler share below their commands. */
#ifndef DR_LAUNCH_H
#define DR_LAUNCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "config.h"
#include "dag.h"
#include "err.h"
#include "store.h"

/* Exit codes (DESIGN.md "CLI"). */
/* EXIT_QUEUED: the run parked because a source's counted window is used up (not a failure,
 * not done either: it goes on when the window reopens). */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_BAD_INPUT = 2, EXIT_PARTIAL = 3, EXIT_QUEUED = 4 };

/* Where a run's report goes: the invocation's output flags. */
struct launch_env {
    const struct config *cfg;   /* the loaded config (workers, HTTP sources, database) */
    bool json;                  /* summary as one JSON line (not a terminal, or --log-format json) */
    bool tty;                   /* stderr is a terminal: a progress bar may be drawn */
};

/* What to run: a new run of dag, or a resume of run_id. */
struct launch {
    const char *run_type;       /* "manual", "scheduled", "test" */
    json_t *conf;               /* run conf (borrowed), may be NULL */
    int64_t logical_date;       /* Unix seconds */
    int64_t data_interval_start, data_interval_end;
    const char *resume_run_id;  /* resume this run instead of creating one (may be run_id) */
    const char *junit_path;     /* write JUnit XML here, or NULL */
    bool print_instances;       /* `dagrun test`: one line per task instance */
    volatile sig_atomic_t *stop; /* set by a signal handler or the scheduler */
    bool requeue_on_stop;       /* stopped through *stop: back to queued, not cancelled (the
                                 * scheduler's runs, which the next scheduler resumes) */
    char run_id[160];           /* out: the run's id */
};

/* Runs (or resumes) one DAG run end to end: conf check (the only one: a bad conf exits 2
 * before anything is stored), params, run row, lock, executor, final state, summary, JUnit.
 * dag is loaded and linked against the plugins. st: the caller's store connection, or NULL
 * to open one from env->cfg (after the conf check) for this run. Returns the exit code: a
 * JUnit report that cannot be written makes a successful run exit 1. Coordinator thread;
 * the scheduler calls it from one thread per run. */
int launch_run(const struct launch_env *env, struct dag *dag, struct store *st, struct launch *l);

/* Reads a stored run's logical date and data interval (store_run_get's object) into l.
 * 0, or -1 with err. */
int launch_run_dates(const json_t *run, struct launch *l, struct dr_err *err);

/* Opens the run-state store from cfg's database URL; NULL with err. */
struct store *launch_open_store(const struct config *cfg, struct dr_err *err);

#endif
