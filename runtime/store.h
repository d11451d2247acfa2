/* runtime-private: plugins never include this */
/* Run state in PostgreSQL (schema dagrun): runs, task instances, resume data. */
#ifndef DR_STORE_H
#define DR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "err.h"
#include "runstate.h"

/* Opens a connection with libpq (application_name "dagrun"). On failure the
 * message names the host/socket and the cause in one line, e.g.
 * `cannot connect to database at /tmp/pg.sock (port 5432): connection refused`,
 * never libpq's multi-line text and never the password. Any thread; the
 * connection belongs to the caller (PQfinish). */
PGconn *store_open_conn(const char *url, struct dr_err *err);

/* The coordinator's connection to the run state. One thread at a time. */
/* dagrun's advisory locks take two 32-bit keys: one of these fixed namespaces, and the
 * hash of the run id (a run's lock, session-level: store_owner.c) or of the dag id (a
 * transaction-level lock around counting a DAG's active runs: store_run_create_limited). */
#define STORE_RUN_LOCK_NS "1684107122"
#define STORE_DAG_LOCK_NS "1684107123"

struct store;
struct store *store_open(const char *url, struct dr_err *err);
void store_close(struct store *s);
PGconn *store_conn(struct store *s);

/* Applies schema.sql (idempotent) from path. */
int store_initdb(struct store *s, const char *schema_path, struct dr_err *err);

/* Creates a dag_run row in state queued and its dagrun.dag row if missing.
 * run_type: "scheduled", "manual", "test", "backfill". logical_date: Unix seconds.
 * data_interval_*: Unix seconds (equal to logical_date for manual runs).
 * Writes the new run id ("<dag_id>__<run_type>__<ISO logical date>" plus a
 * suffix for manual and test runs) into run_id. Returns 0; 1 when a scheduled
 * run for this DAG and logical date already exists (nothing written); -1 with err. */
int store_run_create(struct store *s, const char *dag_id, const char *run_type,
                     int64_t logical_date, int64_t data_interval_start,
                     int64_t data_interval_end, const json_t *conf, char *run_id,
                     size_t run_id_len, struct dr_err *err);
/* store_run_create holding max_active_runs across processes: when max_active > 0, the DAG's
 * queued and running runs are counted (into *active, may be NULL) and the run created in
 * one transaction under a transaction-level advisory lock on dag_id. Returns 2 (nothing
 * created) when max_active runs are active already; otherwise as store_run_create. */
int store_run_create_limited(struct store *s, const char *dag_id, const char *run_type,
                             int64_t logical_date, int64_t data_interval_start,
                             int64_t data_interval_end, const json_t *conf, int max_active,
                             int *active, char *run_id, size_t run_id_len, struct dr_err *err);
/* Sets the run's state (and error, may be NULL); stamps start/end times. */
int store_run_set_state(struct store *s, const char *run_id, enum run_state state,
                        const char *error, struct dr_err *err);
/* Records when a run parked by a used-up window of a source may go on (Unix s;
 * 0: clears it); kept while the run is queued, cleared by any other state. */
int store_run_set_resume_after(struct store *s, const char *run_id, int64_t unix_s,
                               struct dr_err *err);
/* Updates the heartbeat; *cancel_requested is set when `dagrun cancel` asked
 * this run to stop. */
int store_run_heartbeat(struct store *s, const char *run_id, bool *cancel_requested,
                        struct dr_err *err);
/* Appends warnings (array of strings) and merges counters (object of totals,
 * may be NULL) into the run. */
int store_run_add_warnings(struct store *s, const char *run_id, const json_t *warnings,
                           const json_t *counters, struct dr_err *err);
/* Asks a run to stop: 0, or -1 when no such run or it has ended. */
int store_run_request_cancel(struct store *s, const char *run_id, struct dr_err *err);

/* Takes a session-level advisory lock on run_id on this store's connection,
 * held until store_close (or until the process dies, when PostgreSQL drops
 * the session), and increments the run's fencing epoch (store_run_epoch).
 * *got is false when another live process holds it: that process is running
 * the run. */
int store_run_lock(struct store *s, const char *run_id, bool *got, struct dr_err *err);

/* Whether another process took run_id over from this store (its lock could not be re-taken
 * after a reconnect, or its fenced heartbeat or end state found a newer epoch). A lost run's
 * heartbeat reports a cancel request, and its end state, warnings and counters are refused. */
bool store_run_lost(struct store *s, const char *run_id);
/* The fencing epoch this store took with run_id's lock (0: not locked here). Read-only once
 * the lock is taken: workers may read it while the coordinator runs. */
int64_t store_run_epoch(struct store *s, const char *run_id);
/* Inside a worker's open transaction: takes a share lock on run_id's row while it still
 * carries epoch (0: no fence, returns 0), so the transaction commits only while this process
 * owns the run. 0; 1 with err when another process took the run over; -1 with err. */
int store_run_fence_conn(PGconn *conn, const char *run_id, int64_t epoch, struct dr_err *err);
/* When run_id's heartbeat is older than timeout_sec, terminates the database sessions of
 * other processes holding its lock (a stopped or cut-off process: store_run_fence_conn keeps
 * it from committing), so that store_run_lock can take it. *ended: some were. 0 or -1. */
int store_run_take_over(struct store *s, const char *run_id, int timeout_sec, bool *ended,
                        struct dr_err *err);
/* Clears a cancel request left on run_id (a resume starts afresh). 0 or -1. */
int store_run_clear_cancel(struct store *s, const char *run_id, struct dr_err *err);
/* Cancels run_id at once when no process runs it (its lock is free, or its heartbeat is older
 * than timeout_sec): state cancelled (resumable), cancel request cleared, epoch moved on.
 * *done: it was. 0 (also when the run is live or has ended: nothing done) or -1. */
int store_run_cancel_dead(struct store *s, const char *run_id, int timeout_sec, bool *done,
                          struct dr_err *err);

/* The run's row as an object {run_id, dag_id, run_type, logical_date,
 * data_interval_start, data_interval_end, conf, state, ...}; NULL with err
 * when unknown. New reference. */
json_t *store_run_get(struct store *s, const char *run_id, struct dr_err *err);

/* The run id that text names: a run id itself, or a unique suffix or prefix of one (`dagrun
 * runs` prints the end of each id). Writes the full id into run_id. Returns 0; 1 with err
 * when no run matches ("run X: no such run") or several do ("run X: ambiguous, it matches
 * a, b" naming up to five); -1 with err when the database failed. Every command that takes
 * a RUN_ID resolves it here (cli_run_id). */
int store_run_find(struct store *s, const char *text, char *run_id, size_t len,
                   struct dr_err *err);

/* Upserts task-instance records by (run, task, map index), in one statement
 * per call. store_ti_write uses the store's connection; store_ti_write_conn
 * uses a worker's connection inside its open transaction (so the item's state
 * commits with its data). */
int store_ti_write(struct store *s, const char *run_id, const struct ti_record *recs, size_t n,
                   struct dr_err *err);
int store_ti_write_conn(PGconn *conn, const char *run_id, const struct ti_record *recs,
                        size_t n, struct dr_err *err);

/* Loads what run_id already achieved (for resume). */
int store_prior_load(struct store *s, const char *run_id, struct prior *out,
                     struct dr_err *err);

/* Listing for the CLI: new JSON arrays/objects, NULL with err. */
json_t *store_runs_list(struct store *s, const char *dag_id, int limit, struct dr_err *err);
json_t *store_run_status(struct store *s, const char *run_id, struct dr_err *err);

/* Pause flag and scheduler bookkeeping. */
int store_dag_set_paused(struct store *s, const char *dag_id, bool paused, struct dr_err *err);
int store_dag_is_paused(struct store *s, const char *dag_id, bool *paused, struct dr_err *err);
/* Runs to resume: running with a heartbeat older than timeout_sec (the process died), or
 * queued for over 5 s (handed back by a stopped scheduler): array of run ids. */
json_t *store_runs_stale(struct store *s, int timeout_sec, struct dr_err *err);
/* Number of runs of dag_id in state queued or running. */
int store_runs_active(struct store *s, const char *dag_id, int *n, struct dr_err *err);
/* Logical date (Unix s) of the latest scheduled run of dag_id; 0 in *found when none. */
int store_last_scheduled(struct store *s, const char *dag_id, int64_t *logical_date,
                         bool *found, struct dr_err *err);

#endif
