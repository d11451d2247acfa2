/* runtime-private: plugins never include this */
/* Trigger rules: the executor's decision for a task whose upstreams may have ended. */
#ifndef DR_TRIGGER_H
#define DR_TRIGGER_H

#include "exec_private.h"

enum decision { D_WAIT, D_RUN, D_SKIP, D_UPSTREAM_FAILED };

/* The trigger decision for task i (its trigger_rule over the states of its upstreams
 * outside its lane, and of the task it maps over): D_WAIT while one has not ended.
 * Reads ex->ts and the DAG only. Coordinator thread. */
enum decision trigger_decide(const struct exec *ex, int i);

#endif
