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

/* The first line of s, without surrounding blanks, into buf. */
static void first_line(const char *s, char *buf, size_t len)
{
    if (!s)
        s = "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strcspn(s, "\r\n");
    if (n >= len)
        n = len - 1;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

DR_EXPORT dr_status dr_db_failed(dr_ctx *ctx, PGconn *db, const PGresult *res, const char *what)
{
    char line[1024];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    first_line(primary ? primary : db ? PQerrorMessage(db) : NULL, line, sizeof line);
    if (!line[0] && res)
        first_line(PQresultErrorMessage(res), line, sizeof line);
    dr_error(ctx, "%s: %s", what ? what : "database", line[0] ? line : "unknown database error");
    bool broken = !db || PQstatus(db) != CONNECTION_OK;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return broken || api_db_transient(code) ? DR_RETRY : DR_FAIL;
}
