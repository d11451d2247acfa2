/* A run's live reports to the servers listening on its database (NOTIFY). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "run_notify.h"

int run_notify_warning(PGconn *conn, const char *run_id, const char *message,
                       struct dr_err *err)
{
    /* NOTIFY payloads must stay under 8000 bytes. */
    char cut[4001];
    size_t n = strlen(message);
    if (n > 4000)
        n = 4000;
    while (n > 0 && n < strlen(message) && ((unsigned char)message[n] & 0xC0) == 0x80)
        n--; /* not inside a UTF-8 sequence */
    memcpy(cut, message, n);
    cut[n] = '\0';
    json_t *o = json_pack("{s:s,s:s}", "run_id", run_id, "message", cut);
    char *payload = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!payload)
        return err_set(err, "warning of run %s: not UTF-8, or out of memory", run_id);
    const char *v[] = { payload };
    PGresult *res = PQexecParams(conn, "SELECT pg_notify('dagrun_warning', $1)", 1, NULL, v,
                                 NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        rc = err_set(err, "warning of run %s: %s", run_id, m ? m : "the database refused it");
    }
    PQclear(res);
    free(payload);
    return rc;
}
