/* The plugin API's verdict on a failed statement: retry it or fail (dr_db_failed). */
#include "api_db.h"

#include <dagrun/task.h>
#include <string.h>

bool api_db_transient(const char *sqlstate)
{
    static const char *const classes[] = { "08", "40", "53", "57" };
    if (!sqlstate || strlen(sqlstate) != 5)
        return false;
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (!strncmp(sqlstate, classes[i], 2))
            return true;
    return !strcmp(sqlstate, "55P03");
}

DR_EXPORT dr_status dr_db_failed(dr_ctx *ctx, PGconn *db, const PGresult *res, const char *what)
{
    /* The server's primary message, else libpq's (a lost connection); its first line only. */
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg)
        msg = db ? PQerrorMessage(db) : "";
    if (!*msg && res)
        msg = PQresultErrorMessage(res);
    if (!msg[0] || msg[0] == '\n')
        msg = "unknown database error";
    int n = (int)strcspn(msg, "\r\n");
    dr_error(ctx, "%s: %.*s", what ? what : "database", n, msg);
    bool broken = !db || PQstatus(db) != CONNECTION_OK;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return broken || api_db_transient(code) ? DR_RETRY : DR_FAIL;
}
