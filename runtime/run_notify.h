/* runtime-private: plugins never include this */
/* A run's live reports to the servers listening on its database (NOTIFY), for what the run
 * does not store until it ends. */
#ifndef DR_RUN_NOTIFY_H
#define DR_RUN_NOTIFY_H

#include <libpq-fe.h>
#include "err.h"

/* Sends a warning of run_id at once to every `dagrun serve` on the database (channel
 * dagrun_warning, payload {"run_id": ..., "message": ...}; a message is cut to 4000 bytes).
 * Call it on a connection outside a transaction (the coordinator's store connection: a
 * NOTIFY inside a transaction is sent only when it commits). The run still stores its
 * warnings as today; servers do not send a warning twice. 0, or -1 with err. One thread at
 * a time per connection. */
int run_notify_warning(PGconn *conn, const char *run_id, const char *message,
                       struct dr_err *err);

#endif
