/* Run ownership: the run lock (a session-level advisory lock), its fencing epoch, the fence
 * that a worker's commit takes, the takeover of a run whose process stopped, and the cancel of
 * a run whose process is gone. One process runs a run at a time. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "store_private.h"

static const char sql_run_lock[] = "SELECT pg_try_advisory_lock(" STORE_RUN_LOCK_NS ", hashtext($1))";
static const char sql_run_unlock[] = "SELECT pg_advisory_unlock(" STORE_RUN_LOCK_NS ", hashtext($1))";
/* A takeover: the new owner's epoch. */
static const char sql_run_bump[] =
    "UPDATE dagrun.dag_run SET epoch = epoch + 1 WHERE run_id = $1 RETURNING epoch";
/* The fence inside a worker's transaction: a share lock on the run row while it still carries
 * this process's epoch. A takeover's epoch increment waits for the commits that hold it, and
 * a commit after the increment finds no row. */
static const char sql_run_fence[] =
    "SELECT 1 FROM dagrun.dag_run WHERE run_id = $1 AND epoch = $2::bigint FOR SHARE";

struct store_lock *store_lock_of(struct store *s, const char *run_id)
{
    for (size_t i = 0; s && i < s->n_locks; i++)
        if (strcmp(s->locks[i].run_id, run_id) == 0)
            return &s->locks[i];
    return NULL;
}

const char *store_epoch_param(struct store *s, const char *run_id, char *buf, size_t len)
{
    const struct store_lock *l = store_lock_of(s, run_id);
    if (!l || l->epoch <= 0)
        return NULL;
    snprintf(buf, len, "%lld", (long long)l->epoch);
    return buf;
}

void store_mark_lost(struct store_lock *l)
{
    if (!l || l->lost)
        return;
    l->lost = true;
    log_error("run %s: another process took the run over (this process could not hold its "
              "lock): stopping without writing its end state", l->run_id);
}

void store_locks_retake(struct store *s)
{
    for (size_t i = 0; i < s->n_locks; i++) {
        struct store_lock *l = &s->locks[i];
        if (l->lost)
            continue;
        const char *v[] = { l->run_id };
        PGresult *r = PQexecParams(s->conn, "SELECT pg_try_advisory_lock(" STORE_RUN_LOCK_NS
                                   ", hashtext($1)), (SELECT epoch FROM dagrun.dag_run"
                                   " WHERE run_id = $1)", 1, NULL, v, NULL, NULL, 0);
        int64_t now_epoch = 0;
        bool held = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                    strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        if (held && l->epoch > 0 &&
            (PQgetisnull(r, 0, 1) ||
             pgconn_parse_i64(PQgetvalue(r, 0, 1), &now_epoch) < 0 ||
             now_epoch != l->epoch))
            held = false;
        PQclear(r);
        if (!held) {
            log_error("run %s: could not take its lock again after reconnecting",
                      l->run_id);
            store_mark_lost(l);
        }
    }
}

int store_run_lock(struct store *s, const char *run_id, bool *got, struct dr_err *err)
{
    const char *v[] = { run_id };
    PGresult *res = store_sexec(s, sql_run_lock, 1, v,
                         err, "lock run %s", run_id);
    if (!res)
        return -1;
    *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!*got)
        return 0;
    /* The takeover: from here on, statements fenced on the previous epoch find nothing. */
    if (!(res = store_sexec(s, sql_run_bump, 1, v, err, "lock run %s", run_id)))
        return -1;
    int64_t epoch = 0;
    if (PQntuples(res) == 1)
        pgconn_parse_i64(PQgetvalue(res, 0, 0), &epoch);
    PQclear(res);
    struct store_lock *old = store_lock_of(s, run_id);
    if (old) {                  /* locked again on this session: a new epoch */
        old->epoch = epoch;
        old->lost = false;
        return 0;
    }
    /* remembered, to take it again after a reconnect */
    struct store_lock *l = realloc(s->locks, (s->n_locks + 1) * sizeof *l);
    if (l) {
        s->locks = l;
        if ((l[s->n_locks].run_id = strdup(run_id))) {
            l[s->n_locks].epoch = epoch;
            l[s->n_locks].lost = false;
            s->n_locks++;
        }
    }
    return 0;
}

bool store_run_lost(struct store *s, const char *run_id)
{
    const struct store_lock *l = store_lock_of(s, run_id);
    return l && l->lost;
}

int64_t store_run_epoch(struct store *s, const char *run_id)
{
    const struct store_lock *l = store_lock_of(s, run_id);
    return l ? l->epoch : 0;
}

int store_run_fence_conn(PGconn *conn, const char *run_id, int64_t epoch, struct dr_err *err)
{
    if (epoch <= 0)
        return 0;
    char eb[24];
    snprintf(eb, sizeof eb, "%lld", (long long)epoch);
    const char *v[] = { run_id, eb };
    PGresult *res = pgconn_exec(conn, sql_run_fence, 2, v, err, "fence of run %s", run_id);
    if (!res)
        return -1;
    int rc = PQntuples(res) == 1 ? 0 : 1;
    PQclear(res);
    if (rc)
        err_set(err, "run %s: another process took the run over", run_id);
    return rc;
}

/* The backends of other sessions holding run_id's lock, terminated when the run's heartbeat
 * is older than $2 seconds (their process is stopped or cut off: its run is taken over). */
static const char sql_run_take_over[] =
    "WITH r AS (SELECT pid, hostname FROM dagrun.dag_run WHERE run_id = $1"
    /* any state: a run cancelled while its process was stopped is still held by it */
    "  AND coalesce(heartbeat_at, started_at, queued_at)"
    "   < now() - make_interval(secs => $2::int)),"
    " holders AS (SELECT l.pid FROM pg_locks l, r"
    "  WHERE l.locktype = 'advisory' AND l.granted"
    "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    "  AND l.classid = " STORE_RUN_LOCK_NS "::bigint::oid AND l.objsubid = 2"
    "  AND l.objid = (hashtext($1)::bigint & 4294967295)::oid"
    /* the same process's other sessions: workers stopped inside their transactions */
    "  UNION SELECT a.pid FROM pg_stat_activity a, r"
    "  WHERE a.application_name = left('dagrun/' || r.pid || '/' || coalesce(r.hostname, ''), 63))"
    " SELECT count(pg_terminate_backend(h.pid)) FROM holders h WHERE h.pid <> pg_backend_pid()";

int store_run_take_over(struct store *s, const char *run_id, int timeout_sec, bool *ended,
                        struct dr_err *err)
{
    char t[16];
    snprintf(t, sizeof t, "%d", timeout_sec > 0 ? timeout_sec : 60);
    const char *v[] = { run_id, t };
    PGresult *res = store_sexec(s, sql_run_take_over, 2, v, err, "take over run %s", run_id);
    if (!res)
        return -1;
    *ended = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    return 0;
}

/* A run whose process is gone is cancelled here, fenced like a takeover (epoch + 1), with
 * its cancel request cleared. */
static const char sql_run_cancel_dead[] =
    "UPDATE dagrun.dag_run SET state = 'cancelled', cancel_requested = false,"
    " ended_at = now(), epoch = epoch + 1,"
    " error = coalesce(error, 'cancelled while its process was gone')"
    " WHERE run_id = $1 AND state IN ('queued', 'running')"
    "  AND ($2::boolean OR coalesce(heartbeat_at, started_at, queued_at)"
    "   < now() - make_interval(secs => $3::int))"
    " RETURNING 1";

int store_run_cancel_dead(struct store *s, const char *run_id, int timeout_sec, bool *done,
                          struct dr_err *err)
{
    *done = false;
    const char *v[] = { run_id };
    /* Its lock free: no process runs it. Held while the row is updated, so none starts. */
    PGresult *res = store_sexec(s, sql_run_lock, 1, v, err, "cancel run %s", run_id);
    if (!res)
        return -1;
    bool free_lock = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    char t[16];
    snprintf(t, sizeof t, "%d", timeout_sec > 0 ? timeout_sec : 60);
    const char *v2[] = { run_id, free_lock ? "true" : "false", t };
    int rc = -1;
    res = store_sexec(s, sql_run_cancel_dead, 3, v2, err, "cancel run %s", run_id);
    if (res) {
        *done = PQntuples(res) == 1;
        rc = 0;
        PQclear(res);
    }
    if (free_lock) {
        struct dr_err e2;
        err_clear(&e2);
        PQclear(store_sexec(s, sql_run_unlock, 1, v, &e2, "cancel run %s", run_id));
    }
    return rc;
}
