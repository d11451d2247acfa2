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

#endif
