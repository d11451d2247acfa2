/* Run-state queries of the operator's commands (backfill, clear, db clean), with
 * parameterized statements only; runs and task instances themselves are in store.c and
 * store_ti.c. */
#include "store_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

int store_ops_interval(struct store *s, const char *dag_id, int64_t logical, bool *succeeded,
                       bool *active, struct dr_err *err)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)logical);
    const char *v[] = { dag_id, t };
    PGresult *res = pgconn_exec(store_conn(s),
                                "SELECT coalesce(bool_or(state = 'success'), false),"
                                " coalesce(bool_or(state IN ('queued', 'running')), false)"
                                " FROM dagrun.dag_run"
                                " WHERE dag_id = $1 AND logical_date = to_timestamp($2::bigint)",
                                2, v, err, "read runs of %s", dag_id);
    if (!res)
        return -1;
    *succeeded = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    *active = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    return 0;
}

int store_ops_live_runs(struct store *s, const char *dag_id, int timeout_sec, int *n,
                        struct dr_err *err)
{
    char t[16];
    snprintf(t, sizeof t, "%d", timeout_sec);
    const char *v[] = { dag_id, t };
    PGresult *res = pgconn_exec(store_conn(s),
                                "SELECT count(*) FROM dagrun.dag_run WHERE dag_id = $1"
                                " AND (state = 'queued' OR (state = 'running'"
                                "  AND coalesce(heartbeat_at, started_at, queued_at)"
                                "   >= now() - make_interval(secs => $2::int)))",
                                2, v, err, "count active runs of %s", dag_id);
    if (!res)
        return -1;
    int64_t c = 0;
    int rc = pgconn_parse_i64(PQgetvalue(res, 0, 0), &c) == 0 ? 0
             : err_set(err, "count active runs of %s: bad count", dag_id);
    *n = (int)c;
    PQclear(res);
    return rc;
}
