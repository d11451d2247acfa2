/* runtime-private: only executor.c and runplan.c include this (the executor's run plan) */
/* The run's plan: the executor's state laid out from the DAG before the first dispatch. */
#ifndef DR_RUNPLAN_H
#define DR_RUNPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "exec_private.h"

/* Fills ex (spec and dag set) for a run: run_id and the runtime params (run_id and the
 * ISO-8601 UTC logical date and data interval), empty warnings and counters, per-task
 * state, the lanes (consecutive tasks mapped over the same task, chained by after, whose
 * trigger rule needs the predecessor's success) and the pool of each task. Returns 0, or
 * -1 with err (out of memory); runplan_free frees what was made either way. Coordinator. */
int runplan_init(struct exec *ex, struct dr_err *err);

/* Lays lane l (headed by task head) out over the map items `items` (an array): its units
 * (try 1, one per item), their records (never called) and display keys (an item's "key"
 * member, the item itself when a string or number, else its index). Returns 0, or -1 when
 * out of memory (runplan_free frees the part made). Coordinator. */
int runplan_expand(struct exec *ex, struct lane *l, int head, const json_t *items);

/* Whether a resumed run already finished item i in every task of lane l. Coordinator. */
bool runplan_prior_item_done(const struct exec *ex, const struct lane *l, size_t i);

/* Frees everything runplan_init and runplan_expand made (not the workers, queue or lock).
 * Coordinator, after the workers are joined. */
void runplan_free(struct exec *ex);

#endif
