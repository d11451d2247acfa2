/* runtime-private: plugins never include this */
/* Run-state queries of the operator's commands: backfill, clear and db clean. */
#ifndef DR_STORE_OPS_H
#define DR_STORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "err.h"
#include "store.h"

/* What dag_id's runs of logical date `logical` (Unix s) are, whatever their run type:
 * *succeeded when one ended success, *active when one is queued or running. 0, or -1 with
 * err. Coordinator thread (the store's one user). */
int store_ops_interval(struct store *s, const char *dag_id, int64_t logical, bool *succeeded,
                       bool *active, struct dr_err *err);

/* Runs of dag_id that hold a max_active_runs slot: queued, or running with a heartbeat
 * younger than timeout_sec (a running run whose process died holds none). 0, or -1. */
int store_ops_live_runs(struct store *s, const char *dag_id, int timeout_sec, int *n,
                        struct dr_err *err);

/* How `dagrun clear` picks the instances of its task. */
enum clear_pick { CLEAR_ALL, CLEAR_INDEX, CLEAR_FAILED };

/* What store_ops_clear did. */
struct clear_result {
    long picked;                /* instances of the task picked (0: nothing was changed) */
    long deleted;               /* task-instance rows reset, downstream included */
    char sample[512];           /* the first of them, "task[3], final, ..." */
};

/* Resets task instances of run_id, an ended run (success, partial, failed, cancelled) that
 * no process holds: picks the instances of task_id (every one, map index `index`, or those
 * failed or upstream_failed), then in one transaction deletes, in the tasks named by
 * item_tasks (a JSON array of task ids), the rows of the picked map indexes, and in
 * whole_tasks every row; the run is set queued (cancel request cleared), so that a resume
 * runs exactly what was deleted, and a scheduler takes it up if the caller dies first.
 * Nothing changes when nothing is picked. 0 (also when nothing was picked), or -1 with err:
 * no such run, or it is queued, running or held by another process. */
int store_ops_clear(struct store *s, const char *run_id, const char *task_id, enum clear_pick pick,
                    long index, const json_t *item_tasks, const json_t *whole_tasks,
                    struct clear_result *out, struct dr_err *err);

/* One batch of `dagrun db clean`: the runs of dag_id (NULL: every DAG) that ended over
 * older_s seconds ago in state success (all: also partial, failed, cancelled; never queued
 * or running), oldest first. dry_run: every such run, nothing deleted. Otherwise up to 100 of
 * them that no process holds are deleted with their task instances, in one transaction.
 * Returns a new array of {run_id, dag_id, state, ended_at, task_instances} (what was, or
 * would be, deleted); empty when nothing (more) is to be deleted. NULL with err. */
json_t *store_ops_clean(struct store *s, int64_t older_s, bool all, const char *dag_id,
                        bool dry_run, struct dr_err *err);

#endif
