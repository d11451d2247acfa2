/* `dagrun serve`: the database connections of request threads, and running a query on one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "store.h"

struct store *serve_db_get(struct serve *s, struct dr_err *err)
{
    struct store *conn = NULL;
    pthread_mutex_lock(&s->db_lock);
    if (s->n_idle)
        conn = s->idle[--s->n_idle];
    pthread_mutex_unlock(&s->db_lock);
    if (conn)
        return conn;
    return store_open(s->c->cfg->database_url, err);
}

void serve_db_put(struct serve *s, struct store *conn)
{
    if (!conn)
        return;
    PGconn *pg = store_conn(conn);
    if (PQstatus(pg) != CONNECTION_OK || PQtransactionStatus(pg) != PQTRANS_IDLE) {
        store_close(conn);
        return;
    }
    pthread_mutex_lock(&s->db_lock);
    if (s->n_idle == s->cap_idle) {
        size_t cap = s->cap_idle ? s->cap_idle * 2 : 8;
        struct store **grown = realloc(s->idle, cap * sizeof *grown);
        if (grown) {
            s->idle = grown;
            s->cap_idle = cap;
        }
    }
    /* At most 32 idle connections are kept; a burst beyond that closes its extras. */
    if (s->n_idle < s->cap_idle && s->n_idle < 32) {
        s->idle[s->n_idle++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&s->db_lock);
    if (conn)
        store_close(conn);
}

void serve_db_close_all(struct serve *s)
{
    pthread_mutex_lock(&s->db_lock);
    for (size_t i = 0; i < s->n_idle; i++)
        store_close(s->idle[i]);
    free(s->idle);
    s->idle = NULL;
    s->n_idle = s->cap_idle = 0;
    pthread_mutex_unlock(&s->db_lock);
}

/* Statements run as named prepared statements ("dr_serve_" and the text's FNV-1a hash),
 * prepared on a connection the first time it runs them, so that a busy API does not parse
 * and plan its few statements on every request. */
static void statement_name(const char *sql, char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    snprintf(name, len, "dr_serve_%016llx", (unsigned long long)h);
}

static bool no_such_statement(const PGresult *res)
{
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return code && strcmp(code, "26000") == 0;
}

PGresult *serve_db_exec(struct store *st, const char *sql, int n, const char *const *vals,
                        struct dr_err *err)
{
    PGconn *conn = store_conn(st);
    char name[32];
    statement_name(sql, name, sizeof name);
    PGresult *res = PQexecPrepared(conn, name, n, vals, NULL, NULL, 0);
    if (no_such_statement(res)) {
        PQclear(res);
        res = PQprepare(conn, name, sql, n, NULL);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            res = PQexecPrepared(conn, name, n, vals, NULL, NULL, 0);
        }
    }
    ExecStatusType rs = PQresultStatus(res);
    if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)
        return res;
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char line[512];
    snprintf(line, sizeof line, "%s", m ? m : PQerrorMessage(conn));
    line[strcspn(line, "\n")] = '\0';
    err_set(err, "database: %s%s%s%s", line, code ? " (" : "", code ? code : "", code ? ")" : "");
    if (code && (strcmp(code, "42P01") == 0 || strcmp(code, "42703") == 0))
        err_hint(err, "run dagrun initdb to create or upgrade the schema");
    PQclear(res);
    return NULL;
}

json_t *serve_db_json(struct store *conn, const char *sql, int n, const char *const *vals,
                      struct dr_err *err)
{
    err->msg[0] = '\0';
    PGresult *res = serve_db_exec(conn, sql, n, vals, err);
    if (!res)
        return NULL;
    json_t *v = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        json_error_t je;
        v = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, &je);
        if (!v)
            err_set(err, "database: unreadable JSON: %s", je.text);
    }
    PQclear(res);
    return v;
}
