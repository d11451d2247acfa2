/* upsert_candles: write one chunk of candles from the lane into PostgreSQL, merging with what is stored. */
#include <dagrun/task.h>
#include <dagrun/candle.h>
#include <dagrun/copybin.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIECE (64 * 1024)   /* COPY data is sent in pieces of about this size */
#define PREFIX_MAX 300      /* field count, token and the three texts (at most 264 bytes) */
#define ROW_MAX (PREFIX_MAX + 12 + 4 * DR_COPYBIN_NUMERIC_MAX + 2 * 12 + 2)  /* + trailer */

static const dr_param params[] = {
    { "table", DR_T_STRING, "kite_ohlcv_historic", false,
      "target table ([a-z_][a-z0-9_]*, with kite_ohlcv_historic's columns and primary key)" },
    { "copy_streams", DR_T_INT, "0", false,
      "most COPYs sent at once by the run's workers (0: one per processor core here)" },
    { NULL, 0, NULL, false, NULL }
};

static const dr_param_rule rules[] = {
    { "copy_streams", 0, NULL },
    { NULL, 0, NULL }
};

/* The run's COPY streams: workers beyond `free` wait for one to end. More COPYs at once
 * than the cores can run cost PostgreSQL more CPU for the same rows (its backends contend
 * for the table's extension and WAL locks), so the other workers go on fetching meanwhile. */
struct streams {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    long free;              /* guarded by lock */
};

static int upsert_init(dr_ctx *ctx, void **state)
{
    long n = (long)dr_param_int(ctx, "copy_streams");
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    struct streams *s = calloc(1, sizeof *s);
    if (!s) {
        dr_error(ctx, "upsert_candles: out of memory");
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);
    s->free = n > 0 ? n : 1;
    *state = s;
    return 0;
}

static void upsert_fini(dr_ctx *ctx, void *state)
{
    (void)ctx;
    struct streams *s = state;
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->freed);
    free(s);
}

static void stream_take(struct streams *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->free == 0)
        pthread_cond_wait(&s->freed, &s->lock);
    s->free--;
    pthread_mutex_unlock(&s->lock);
}

static void stream_give(struct streams *s)
{
    pthread_mutex_lock(&s->lock);
    s->free++;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

static const char columns[] =
    "instrument_token, tradingsymbol, exchange, candle_interval, ts, open, high, low, close, "
    "volume, oi";

/* True when v is a whole number of ticks (at most two decimals, exchange prices) below 1e13:
 * then *cents / 100 is the decimal that reads back as v, with at most 15 significant digits,
 * so %.15g would print exactly it (trailing zeros stripped). */
static bool whole_ticks(double v, int64_t *cents)
{
    if (!(v >= 0.01 && v < 1e13))
        return false;
    double r = nearbyint(v * 100.0);
    *cents = (int64_t)r;
    return r / 100.0 == v;
}

/* Writes v as the shortest decimal text that reads back as the same double,
 * so 1698.15 is stored as 1698.15. Returns the length. Pure; any thread. */
int upsert_candles_format_price(char *buf, size_t size, double v)
{
    /* Whole ticks are written without snprintf and strtod. */
    int64_t ir;
    if (size >= 24 && whole_ticks(v, &ir)) {
        long long ip = ir / 100;
        int frac = (int)(ir % 100);
        char tmp[24];
        int k = 0;
        do
            tmp[k++] = (char)('0' + ip % 10);
        while ((ip /= 10) > 0);
        int n = 0;
        while (k > 0)
            buf[n++] = tmp[--k];
        if (frac) {
            buf[n++] = '.';
            buf[n++] = (char)('0' + frac / 10);
            if (frac % 10)
                buf[n++] = (char)('0' + frac % 10);
        }
        buf[n] = '\0';
        return n;
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return n;
}

/* A price as numeric, the same value and display scale as dr_copybin_numeric gives for
 * upsert_candles_format_price's text. Prices of whole ticks (at most two decimals, the
 * text's fast path) are built from their cents without going through text. */
static unsigned char *price_numeric(unsigned char *o, double v)
{
    int64_t cents;
    if (whole_ticks(v, &cents)) {
        int64_t ip = cents / 100;
        int frac = (int)(cents % 100);
        uint16_t g[6];              /* base-10000 groups, most significant first */
        int n = 0, k = 0;
        uint16_t ig[4];
        for (; ip > 0; ip /= 10000)
            ig[k++] = (uint16_t)(ip % 10000);
        while (k > 0)
            g[n++] = ig[--k];
        int weight = n - 1;         /* -1 when there is no integer part */
        if (frac)
            g[n++] = (uint16_t)(frac * 100);
        return dr_copybin_numeric_groups(o, g, n, weight, 0,
                                         frac == 0 ? 0 : frac % 10 == 0 ? 1 : 2);
    }
    char txt[32];
    upsert_candles_format_price(txt, sizeof txt, v);
    return dr_copybin_numeric(o, txt);  /* the shortest round-trip text always parses */
}

/* One binary COPY row for candle c after the item's constant fields (prefix, plen bytes,
 * field count included). Prices go as numeric from their shortest decimal text, so each is
 * stored as the same numeric that COPY's text format would store. Returns the length. */
static size_t copy_row(unsigned char *buf, const unsigned char *prefix, size_t plen,
                       const dr_candle *c)
{
    unsigned char *o = buf;
    memcpy(o, prefix, plen);
    o = dr_copybin_timestamptz(o + plen, c->ts);
    const double pr[4] = { c->open, c->high, c->low, c->close };
    for (int i = 0; i < 4; i++)
        o = price_numeric(o, pr[i]);
    o = dr_copybin_int8(o, c->volume);
    o = c->has_oi ? dr_copybin_int8(o, c->oi) : dr_copybin_null(o);
    return (size_t)(o - buf);
}

/* Runs `sql` (a COPY ... FROM STDIN) and streams the candles in pieces.
 * Returns the COPY's final result (caller clears; check its status). */
static PGresult *copy_candles(PGconn *db, const char *sql, const unsigned char *prefix,
                              size_t plen, const dr_candle *c, size_t n)
{
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return res;
    PQclear(res);
    unsigned char *buf = malloc(PIECE + ROW_MAX);
    bool ok = buf != NULL;
    size_t len = ok ? (size_t)(dr_copybin_header(buf) - buf) : 0;
    for (size_t i = 0; ok && i < n; i++) {
        len += copy_row(buf + len, prefix, plen, &c[i]);
        if (i + 1 == n)
            len = (size_t)(dr_copybin_trailer(buf + len) - buf);
        if (len >= PIECE || i + 1 == n) {
            ok = PQputCopyData(db, (const char *)buf, (int)len) == 1;
            len = 0;
        }
    }
    free(buf);
    PQputCopyEnd(db, ok ? NULL : "upsert_candles: could not send COPY data");
    res = PQgetResult(db);
    PGresult *extra;
    while ((extra = PQgetResult(db)))
        PQclear(extra);
    return res;
}

static bool exec_ok(PGconn *db, const char *sql, PGresult **err)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return true;
    }
    *err = r;
    return false;
}

struct chunk {
    dr_ctx *ctx;
    PGconn *db;
    const char *key;
    char range[32];         /* "2024-01-01..2024-03-01": the candles' first and last UTC day */
    const char *target;     /* quoted identifier */
    const unsigned char *prefix;  /* binary COPY of a row's field count and constant columns */
    size_t plen;
    const dr_candle *c;
    size_t n;
};

/* The slow path: COPY into this connection's temporary table, then merge,
 * touching only rows whose values changed. Returns NULL, or the failing result. */
static PGresult *merge(struct chunk *ch, long long *inserted, long long *updated)
{
    PGresult *res = NULL;
    PGresult *r = PQexec(ch->db, "SELECT to_regclass('pg_temp.dr_upsert_candles') IS NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return r;
    bool missing = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exec_ok(ch->db, missing
                     ? "CREATE TEMP TABLE dr_upsert_candles (instrument_token bigint, "
                       "tradingsymbol text, exchange text, candle_interval text, ts timestamptz, "
                       "open numeric, high numeric, low numeric, close numeric, volume bigint, "
                       "oi bigint) ON COMMIT DELETE ROWS"
                     : "TRUNCATE pg_temp.dr_upsert_candles", &res))
        return res;
    char copy[256];
    snprintf(copy, sizeof copy, "COPY pg_temp.dr_upsert_candles (%s) FROM STDIN (FORMAT binary)",
             columns);
    res = copy_candles(ch->db, copy, ch->prefix, ch->plen, ch->c, ch->n);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return res;
    PQclear(res);
    char *sql = NULL;
    size_t size = 2048 + strlen(ch->target);
    if (!(sql = malloc(size)))
        return PQmakeEmptyPGresult(ch->db, PGRES_FATAL_ERROR);
    snprintf(sql, size,
             "WITH m AS (INSERT INTO %s AS t (%s) "
             "SELECT DISTINCT ON (instrument_token, candle_interval, ts) %s "
             "FROM pg_temp.dr_upsert_candles ORDER BY instrument_token, candle_interval, ts "
             "ON CONFLICT (instrument_token, candle_interval, ts) DO UPDATE SET "
             "tradingsymbol = EXCLUDED.tradingsymbol, exchange = EXCLUDED.exchange, "
             "open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
             "close = EXCLUDED.close, volume = EXCLUDED.volume, oi = EXCLUDED.oi, "
             "ingested_at = now() "
             "WHERE (t.tradingsymbol, t.exchange, t.open, t.high, t.low, t.close, t.volume, t.oi) "
             "IS DISTINCT FROM (EXCLUDED.tradingsymbol, EXCLUDED.exchange, EXCLUDED.open, "
             "EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.oi) "
             "RETURNING (xmax = 0) AS inserted) "
             "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM m",
             ch->target, columns, columns);
    res = PQexec(ch->db, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return res;
    *inserted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *updated = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return NULL;
}

/* Writes the chunk: COPY straight into the target (all new rows: the common
 * case of an incremental run), or on a unique violation the merge. Returns
 * NULL, or the failing result. */
static PGresult *write_chunk(struct chunk *ch, long long *inserted, long long *updated)
{
    PGresult *res = NULL;
    if (!exec_ok(ch->db, "SAVEPOINT dr_upsert_candles", &res))
        return res;
    char copy[256];
    snprintf(copy, sizeof copy, "COPY %.120s (%s) FROM STDIN (FORMAT binary)", ch->target,
             columns);
    res = copy_candles(ch->db, copy, ch->prefix, ch->plen, ch->c, ch->n);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        *inserted = (long long)ch->n;
        *updated = 0;
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool conflict = state && !strcmp(state, "23505");
        PGresult *rb = NULL;
        if (!exec_ok(ch->db, "ROLLBACK TO SAVEPOINT dr_upsert_candles", &rb)) {
            PQclear(rb);
            return res;
        }
        if (!conflict)
            return res;
        PQclear(res);
        if ((res = merge(ch, inserted, updated))) {
            if (!exec_ok(ch->db, "ROLLBACK TO SAVEPOINT dr_upsert_candles", &rb))
                PQclear(rb);
            return res;
        }
    }
    if (!exec_ok(ch->db, "RELEASE SAVEPOINT dr_upsert_candles", &res))
        return res;
    return NULL;
}

/* The UTC day of Unix seconds ts as "YYYY-MM-DD" into out (floor division, so a time
 * before 1970 lands on the right day). */
static void day_of(int64_t ts, char out[DR_DATE_LEN])
{
    int64_t days = ts / 86400;
    if (ts % 86400 < 0)
        days--;
    dr_date_format(days, out, DR_DATE_LEN);
}

static dr_status upsert_run(dr_ctx *ctx, void *state)
{
    const json_t *item = dr_map_item(ctx);
    struct chunk ch = { .ctx = ctx, .key = json_string_value(json_object_get(item, "key")) };
    const json_t *tok = json_object_get(item, "instrument_token");
    const char *sym = json_string_value(json_object_get(item, "tradingsymbol"));
    const char *exch = json_string_value(json_object_get(item, "exchange"));
    const char *interval = json_string_value(json_object_get(item, "interval"));
    const char *table = dr_param_str(ctx, "table");
    const char *type = NULL;
    size_t len = 0;
    ch.c = dr_lane_blob(ctx, &type, &len);
    if (!ch.key)
        ch.key = "?";
    if (!dr_candle_table_ok(table)) {
        dr_error(ctx, "upsert_candles: table \"%s\" is not a plain lower-case name "
                 "([a-z_][a-z0-9_]*)", table ? table : "");
        return DR_FAIL;
    }
    if (!ch.c || !type || strcmp(type, DR_BLOB_CANDLES) || len % sizeof(dr_candle)) {
        dr_error(ctx, "upsert_candles %s: expected a %s blob from the previous lane task "
                 "(run after fetch_candles in the same lane)", ch.key, DR_BLOB_CANDLES);
        return DR_FAIL;
    }
    if (!json_is_integer(tok) || !sym || !exch || !interval) {
        dr_error(ctx, "upsert_candles %s: map item needs instrument_token, tradingsymbol, "
                 "exchange and interval", ch.key);
        return DR_FAIL;
    }
    ch.n = len / sizeof(dr_candle);
    if (ch.n == 0)
        return DR_OK;
    for (size_t i = 0; i < ch.n; i++)
        if (!isfinite(ch.c[i].open) || !isfinite(ch.c[i].high) || !isfinite(ch.c[i].low) ||
            !isfinite(ch.c[i].close)) {
            dr_error(ctx, "upsert_candles %s: candle %zu has a price that is not finite", ch.key, i);
            return DR_FAIL;
        }
    char first[DR_DATE_LEN], last[DR_DATE_LEN];
    day_of(ch.c[0].ts, first);
    day_of(ch.c[ch.n - 1].ts, last);
    snprintf(ch.range, sizeof ch.range, "%s..%s", first, last);
    if (!(ch.db = dr_db(ctx)))
        return DR_RETRY;
    unsigned char prefix[PREFIX_MAX], *p = prefix;
    p = dr_copybin_row(p, 11);
    p = dr_copybin_int8(p, (int64_t)json_integer_value(tok));
    p = dr_copybin_text(p, sym, strnlen(sym, 200));
    p = dr_copybin_text(p, exch, strnlen(exch, 32));
    p = dr_copybin_text(p, interval, strnlen(interval, 32));
    ch.prefix = prefix;
    ch.plen = (size_t)(p - prefix);
    char *target = PQescapeIdentifier(ch.db, table, strlen(table));
    if (!target) {
        dr_error(ctx, "upsert_candles %s %s: %s", ch.key, ch.range, PQerrorMessage(ch.db));
        return PQstatus(ch.db) != CONNECTION_OK ? DR_RETRY : DR_FAIL;
    }
    ch.target = target;
    long long inserted = 0, updated = 0;
    if (state)
        stream_take(state);
    PGresult *err = write_chunk(&ch, &inserted, &updated);
    if (state)
        stream_give(state);
    PQfreemem(target);
    if (err) {
        char what[512];
        snprintf(what, sizeof what, "upsert_candles %s %s", ch.key, ch.range);
        dr_status st = dr_db_failed(ctx, ch.db, err, what);
        PQclear(err);
        return st;
    }
    dr_count(ctx, "inserted", inserted);
    dr_count(ctx, "updated", updated);
    dr_count(ctx, "unchanged", (long long)ch.n - inserted - updated);
    dr_log(ctx, DR_LOG_DEBUG, "%s %s: %zu candles, %lld inserted, %lld updated", ch.key, ch.range,
           ch.n, inserted, updated);
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "upsert_candles",
    .summary = "write a chunk of candles into PostgreSQL, updating only changed rows",
    .params = params,
    .init = upsert_init,
    .run = upsert_run,
    .fini = upsert_fini,
    .rules = rules,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
