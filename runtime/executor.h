/* runtime-private: plugins never include this */
/* The executor: runs one DAG run on a fixed pool of worker threads. */
#ifndef DR_EXECUTOR_H
#define DR_EXECUTOR_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "config.h"
#include "dag.h"
#include "err.h"
#include "http.h"
#include "runstate.h"
#include "store.h"

/* An injectable clock (tests). now_ms: monotonic milliseconds. wait_until:
 * called by the coordinator when nothing is running and the next thing to do
 * is a retry due at t_ms; a fake clock just advances to t_ms. NULL members:
 * the real clock. */
struct exec_clock {
    int64_t (*now_ms)(void *ud);
    void (*wait_until)(void *ud, int64_t t_ms);
    void *ud;
};

/* Observer callbacks, called on the coordinator thread (may be NULL). */
struct exec_hooks {
    void *ud;
    /* A task instance or lane item ended (after its last try). secs: wall
     * time of the last try. */
    void (*unit_done)(void *ud, const struct ti_record *rec, double secs);
    /* A unit will be retried after delay_ms. */
    void (*unit_retry)(void *ud, const struct ti_record *rec, int64_t delay_ms);
    /* done and total units known so far (total grows as mapped tasks expand). */
    void (*progress)(void *ud, size_t done, size_t total);
};

struct run_spec {
    const struct dag *dag;
    const struct config *cfg;           /* pools, heartbeat; may be NULL in tests */
    json_t *const *params;              /* resolved params per task (dag->n_tasks), borrowed */
    const char *run_id;                 /* NULL: "local" */
    const char *run_type;               /* "manual", "scheduled", "test" */
    int64_t logical_date;               /* Unix seconds */
    int64_t data_interval_start, data_interval_end;
    int workers;                        /* thread count, >= 1 */
    const char *database_url;           /* for workers' dr_db(); NULL: no database */
    struct store *store;                /* run-state persistence on the coordinator; NULL: none */
    struct http_sources *http;          /* NULL: dr_http_get fails */
    const struct prior *prior;          /* resume: what already succeeded; NULL: fresh */
    volatile sig_atomic_t *stop;        /* set nonzero (signal handler) to stop handing out work */
    const struct exec_clock *clock;     /* NULL: real */
    uint64_t seed;                      /* for retry jitter */
    const struct exec_hooks *hooks;     /* may be NULL */
};

struct run_result {
    enum run_state state;
    size_t units_ok, units_skipped, units_failed, units_cancelled;
    json_t *warnings;                   /* array of strings; owned */
    json_t *counters;                   /* object: counter -> total; owned */
    json_t *outputs;                    /* object: task id -> output (unmapped tasks); owned */
    char error[1024];                   /* the fatal or first error, "" when none */
    int64_t resume_after;               /* RUN_QUEUED because a window counted in PostgreSQL
                                         * was used up: when it reopens (Unix s); else 0 */
};

/* Runs the DAG to the end (or until stopped). Returns 0 with res filled (the
 * run's own outcome is res->state), or -1 with err when the run could not be
 * carried out at all (e.g. a plugin init failed to start, no threads).
 * Coordinator thread; creates and joins spec->workers threads. */
int executor_run(const struct run_spec *spec, struct run_result *res, struct dr_err *err);
void run_result_free(struct run_result *res);

#endif
