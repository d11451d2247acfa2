/* runtime-private: plugins never include this */
/* Checks before a run starts: the credentials its sources need, and the file descriptors
 * and database connections it will use. Each fails at once with what to change, where the
 * run would otherwise fail late (after retries) or crawl. */
#ifndef DR_PREFLIGHT_H
#define DR_PREFLIGHT_H

#include <jansson.h>
#include "config.h"
#include "dag.h"
#include "err.h"
#include "store.h"

/* File descriptors a run holds at most, beyond those open when it starts: per worker its
 * database connection, its HTTP connection and one for the resolver; the recorder's two
 * connections; a few files read or written on the way (zones, JUnit). */
#define PREFLIGHT_FDS_PER_WORKER 3
#define PREFLIGHT_FDS_EXTRA 8
/* Database connections a run opens beyond its own: up to two recorder writers, and one per
 * worker up to config_db_connections (the workers' pool, opened as units first need them). */
#define PREFLIGHT_RECORDER_CONNS 2

/* Every source a task of dag loads from (the value of the param its plugin names in
 * `source_param`, from params[i], the task's resolved params) must exist in cfg, and
 * every ${VAR} its headers name must be set and not empty. -1 with err naming each
 * source, its variables and the config key ("source acme: ACME_TOKEN is not set
 * (named in sources.acme.headers)"): the caller exits 2 before the run is recorded.
 * Reads the environment: call before the run's threads start. */
int preflight_credentials(const struct dag *dag, json_t *const *params, const struct config *cfg,
                          struct dr_err *err);

/* The number of workers a run of dag gets (the DAG's max_active_tasks, else the config's;
 * at least 1). Pure. */
int preflight_workers(const struct dag *dag, const struct config *cfg);

/* The run's file descriptors (RLIMIT_NOFILE against those open now plus what the run
 * holds at most, see above) and database connections (its workers' and recorder's against
 * the server's free slots: max_connections less the reserved ones and those in use, and
 * the role's and the database's CONNECTION LIMIT) are available. -1 with err saying which
 * and with a hint (raise ulimit -n, lower max_active_tasks or db_connections). st: the
 * run's store, its connection used from this thread only. */
int preflight_resources(const struct dag *dag, const struct config *cfg, struct store *st,
                        struct dr_err *err);

#endif
