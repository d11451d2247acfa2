/* A source's calendar windows (reset: utc_day, utc_month, fixed), counted in PostgreSQL
 * (dagrun.source_window) so that restarts and other processes share the count. */
#include "http_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

/* The start of the current window, UTC: of the day or month ($3), or with $3
 * NULL of the window of $6 ms from the Unix epoch ("reset": "fixed"). */
#define WINDOW_START(unit, per)                                                           \
    "coalesce(date_trunc(" unit "::text, now() AT TIME ZONE 'UTC'), to_timestamp(floor("   \
    "extract(epoch FROM now()) * 1000 / " per "::bigint) * " per "::bigint / 1000.0) "     \
    "AT TIME ZONE 'UTC')"

/* Takes units from the current window, unless that would go over cap: no row
 * comes back then. */
static const char take_sql[] =
    "INSERT INTO dagrun.source_window AS w (source, window_key, period_start, used) "
    "VALUES ($1, $2, " WINDOW_START("$3", "$6") ", $4::bigint) "
    "ON CONFLICT (source, window_key, period_start) DO UPDATE SET used = w.used + EXCLUDED.used "
    "WHERE w.used + EXCLUDED.used <= $5::bigint "
    "RETURNING used";
/* When the current window ends: UTC text and Unix seconds. */
static const char reopen_sql[] =
    "SELECT to_char(e, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ceil(extract(epoch FROM e))::bigint "
    "FROM (SELECT " WINDOW_START("$1", "$2") " + coalesce(('1 ' || $1::text)::interval, "
    "make_interval(secs => $2::bigint / 1000.0)) AS e) x";

/* This thread's latest refusal by a used-up window (see http_parked_take). */
static _Thread_local struct { int64_t until; char why[400]; } parked;

int64_t http_parked_take(char *why, size_t whylen)
{
    int64_t until = parked.until;
    if (until && why && whylen)
        snprintf(why, whylen, "%s", parked.why);
    parked.until = 0;
    return until;
}

static bool db_ok(PGconn *db)
{
    return db && PQstatus(db) == CONNECTION_OK;
}

/* Runs sql with params on s->db (s->db_lock held); NULL after filling why. */
static PGresult *db_exec(struct http_sources *s, const char *sql, int n, const char *const *v,
                         ExecStatusType want, char *why, size_t whylen)
{
    PGresult *r = PQexecParams(s->db, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == want)
        return r;
    const char *m = PQresultErrorMessage(r);
    snprintf(why, whylen, "%.*s", (int)strcspn(m && *m ? m : PQerrorMessage(s->db), "\n"),
             m && *m ? m : PQerrorMessage(s->db));
    PQclear(r);
    return NULL;
}

/* Takes weight from every calendar window of src at once (all or none), on the
 * sources' own connection (autocommit: the count stands whatever the item's
 * transaction does). Returns 0, or -1 with why: a window is used up (until
 * when it reopens) or the count could not be kept; no request may go then. */
int http_quota_take(struct http_sources *s, struct source *src, int64_t weight, char *why,
                    size_t whylen)
{
    if (!s->db_url) {
        snprintf(why, whylen, "sources.%s: its limits counted by calendar need a database "
                 "(database_url)", src->name);
        return -1;
    }
    int rc = -1;
    pthread_mutex_lock(&s->db_lock);
    if (!db_ok(s->db)) {
        if (s->db)
            PQfinish(s->db);
        s->db = PQconnectdb(s->db_url);
        if (!db_ok(s->db)) {
            snprintf(why, whylen, "sources.%s: cannot count its limits: %.*s", src->name,
                     (int)strcspn(PQerrorMessage(s->db), "\n"), PQerrorMessage(s->db));
            goto out;
        }
    }
    char e[300];
    PGresult *r = db_exec(s, "BEGIN", 0, NULL, PGRES_COMMAND_OK, e, sizeof e);
    if (!r) {
        snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
        goto out;
    }
    PQclear(r);
    for (size_t i = 0; i < src->n_cal; i++) {
        const struct calendar_window *cw = &src->cal[i];
        char units[24], cap[24], per[24];
        int64_t u = cw->weighted ? weight : 1;
        snprintf(units, sizeof units, "%" PRId64, u > cw->cap ? cw->cap : u);
        snprintf(cap, sizeof cap, "%" PRId64, cw->cap);
        snprintf(per, sizeof per, "%" PRId64, cw->per_ms);
        const char *v[6] = { src->name, cw->key, cw->unit, units, cap, per };
        if (!(r = db_exec(s, take_sql, 6, v, PGRES_TUPLES_OK, e, sizeof e))) {
            snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
            goto rollback;
        }
        int rows = PQntuples(r);
        PQclear(r);
        if (rows == 0) {
            char at[40] = "?", period[48];
            int64_t until = 0;
            const char *v1[2] = { cw->unit, per };
            if ((r = db_exec(s, reopen_sql, 2, v1, PGRES_TUPLES_OK, e, sizeof e))) {
                snprintf(at, sizeof at, "%s", PQgetvalue(r, 0, 0));
                until = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
                PQclear(r);
            }
            if (cw->unit) {
                snprintf(period, sizeof period, "UTC %s", cw->unit);
            } else {
                char d[24];
                duration_format(cw->per_ms, d, sizeof d);
                snprintf(period, sizeof period, "%s (fixed windows)", d);
            }
            snprintf(why, whylen, "sources.%s: its %" PRId64 " %s per %s are used up; the "
                     "window reopens at %s", src->name, cw->cap,
                     cw->weighted ? "weight" : "requests", period, at);
            if (until > 0) {
                parked.until = until;
                snprintf(parked.why, sizeof parked.why, "%s", why);
            }
            goto rollback;
        }
    }
    if ((r = db_exec(s, "COMMIT", 0, NULL, PGRES_COMMAND_OK, e, sizeof e))) {
        PQclear(r);
        rc = 0;
    } else {
        snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
    }
    goto out;
rollback:
    PQclear(PQexec(s->db, "ROLLBACK"));
out:
    pthread_mutex_unlock(&s->db_lock);
    return rc;
}
