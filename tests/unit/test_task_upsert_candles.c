/* Unit tests for tasks/upsert_candles.c: price text, fast COPY and merge paths on a sandbox PostgreSQL. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_ctx.h"
#include "prop.h"

int upsert_candles_format_price(char *buf, size_t size, double v);

#define ITEM "{\"key\":\"NSE:INFY\",\"instrument_token\":408065,\"tradingsymbol\":\"INFY\"," \
             "\"exchange\":\"NSE\",\"interval\":\"day\",\"chunks\":[]}"

static PGconn *db;

static int db_setup(void **state)
{
    (void)state;
    db = fake_db_start();
    return 0;
}

static int db_teardown(void **state)
{
    (void)state;
    fake_db_stop(db);
    return 0;
}

static void exec(const char *sql)
{
    assert_int_equal(fake_db_exec(db, sql), 0);
}

static char *query1(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_query(const char *sql, const char *want)
{
    char *got = query1(sql);
    if (strcmp(got, want))
        fprintf(stderr, "%s\n  got  %s\n  want %s\n", sql, got, want);
    assert_string_equal(got, want);
    free(got);
}

/* Runs upsert_candles over the candles inside a transaction of its own. */
static dr_status upsert(const char *item, const dr_candle *c, size_t n, const char *table,
                        dr_ctx **out)
{
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_map_item(ctx, item, 0);
    fake_ctx_set_lane_blob(ctx, DR_BLOB_CANDLES, c, n * sizeof *c);
    if (table)
        fake_ctx_set_param(ctx, "table", table);
    exec("BEGIN");
    dr_status st = dr_task_entry()->run(ctx, NULL);
    exec("COMMIT");
    *out = ctx;
    return st;
}

static void test_upsert_candles_price_text_is_shortest(void **state)
{
    (void)state;
    char buf[32];
    upsert_candles_format_price(buf, sizeof buf, 1698.15);
    assert_string_equal(buf, "1698.15");
    upsert_candles_format_price(buf, sizeof buf, 1705);
    assert_string_equal(buf, "1705");
    upsert_candles_format_price(buf, sizeof buf, 0.1 + 0.2);
    assert_string_equal(buf, "0.30000000000000004");
    uint64_t seed = prop_seed(), s = seed;
    for (int i = 0; i < 100000; i++) {
        double v = (double)(prop_splitmix(&s) % 100000000) / 100.0;
        if (i % 3 == 0)
            v = (double)(prop_splitmix(&s) >> 11) / (double)(1ULL << 40);
        upsert_candles_format_price(buf, sizeof buf, v);
        char shorter[32];
        snprintf(shorter, sizeof shorter, "%.14g", v);
        bool ok = strtod(buf, NULL) == v &&
                  (strtod(shorter, NULL) != v || strlen(buf) <= strlen(shorter));
        if (!ok) {
            fprintf(stderr, "seed %llu: %.17g written as %s\n", (unsigned long long)seed, v, buf);
            fail();
        }
    }
}

/* A random price of the kinds brokers send: ticks, many decimals, tiny and huge values. */
static double random_price(uint64_t *s)
{
    uint64_t r = prop_splitmix(s);
    switch (r % 5) {
    case 0: return (double)(prop_splitmix(s) % 100000000 + 1) / 100.0;
    case 1: return (double)(prop_splitmix(s) % 1000000 + 1) / 20.0;
    case 2: return (double)((prop_splitmix(s) >> 11) + 1) / (double)(1ULL << 40);
    case 3: return (double)((prop_splitmix(s) >> 11) + 1) * 1e-12;
    default: return (double)(prop_splitmix(s) % 999999999999ULL + 1);
    }
}

/* The binary COPY path stores, value for value and digit for digit, what COPY's text
 * format stores for the same candles: every numeric's text (display scale included), the
 * timestamp, volume and oi, over seeded random candles (pre-1970 and far-future times too). */
static void test_upsert_candles_binary_copy_stores_text_values(void **state)
{
    (void)state;
    if (!db)
        skip();
    exec("TRUNCATE kite_ohlcv_historic");
    exec("DROP TABLE IF EXISTS want");
    exec("CREATE TABLE want (ts timestamptz, open numeric, high numeric, low numeric, "
         "close numeric, volume bigint, oi bigint)");
    uint64_t seed = prop_seed(), s = seed;
    enum { N = 3000 };
    dr_candle *c = calloc(N, sizeof *c);
    assert_non_null(c);
    int64_t t = -2208988800 + (int64_t)(prop_splitmix(&s) % 86400);   /* 1900-01-01 */
    for (size_t i = 0; i < N; i++) {
        t += 1 + (int64_t)(prop_splitmix(&s) % (86400 * 40));
        c[i] = (dr_candle){ .ts = t, .open = random_price(&s), .high = random_price(&s),
                            .low = random_price(&s), .close = random_price(&s),
                            .volume = (int64_t)(prop_splitmix(&s) >> (prop_splitmix(&s) % 64)) / 2,
                            .oi = (int64_t)(prop_splitmix(&s) % 1000000), .has_oi = i % 3 != 0 };
        char p[4][32], ts[32], v[32], oi[32];
        const double pr[4] = { c[i].open, c[i].high, c[i].low, c[i].close };
        for (int k = 0; k < 4; k++)
            upsert_candles_format_price(p[k], sizeof p[k], pr[k]);
        snprintf(ts, sizeof ts, "%lld", (long long)c[i].ts);
        snprintf(v, sizeof v, "%lld", (long long)c[i].volume);
        snprintf(oi, sizeof oi, "%lld", (long long)c[i].oi);
        const char *vals[7] = { ts, p[0], p[1], p[2], p[3], v, c[i].has_oi ? oi : NULL };
        PGresult *r = PQexecParams(db, "INSERT INTO want VALUES (to_timestamp($1::bigint), $2, $3, "
                                       "$4, $5, $6, $7)", 7, NULL, vals, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    dr_ctx *ctx;
    assert_int_equal(upsert(ITEM, c, N, NULL, &ctx), DR_OK);
    fake_ctx_free(ctx);
    char *diff = query1("SELECT count(*) FROM want w FULL JOIN kite_ohlcv_historic k USING (ts) "
                        "WHERE (w.open::text, w.high::text, w.low::text, w.close::text, w.volume, "
                        "w.oi) IS DISTINCT FROM (k.open::text, k.high::text, k.low::text, "
                        "k.close::text, k.volume, k.oi)");
    if (strcmp(diff, "0"))
        fprintf(stderr, "seed %llu: %s of %d candles differ\n", (unsigned long long)seed, diff, N);
    assert_string_equal(diff, "0");
    free(diff);
    free(c);
    exec("DROP TABLE want");
}

static void candles(dr_candle *c, size_t n, int64_t start)
{
    for (size_t i = 0; i < n; i++) {
        c[i] = (dr_candle){ .ts = start + (int64_t)i * 86400, .open = 1698.15, .high = 1705,
                            .low = 1690.05 + (double)(i % 7) * 0.01, .close = 1700.5,
                            .volume = (int64_t)i * 10, .oi = (int64_t)i, .has_oi = i % 2 };
    }
}

static void test_upsert_candles_insert_then_merge(void **state)
{
    (void)state;
    if (!db)
        skip();
    exec("TRUNCATE kite_ohlcv_historic");
    dr_candle c[4];
    candles(c, 3, 1704067200 - 19800);      /* 2024-01-01 00:00 IST */
    dr_ctx *ctx;
    assert_int_equal(upsert(ITEM, c, 3, NULL, &ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "inserted"), 3);
    assert_int_equal(fake_ctx_counter(ctx, "unchanged"), 0);
    fake_ctx_free(ctx);
    assert_query("SELECT count(*) FROM kite_ohlcv_historic", "3");
    assert_query("SELECT open::text || ' ' || low::text || ' ' || coalesce(oi::text, 'null') || ' ' "
                 "|| to_char(ts AT TIME ZONE 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI') || ' ' || "
                 "tradingsymbol || ' ' || candle_interval FROM kite_ohlcv_historic ORDER BY ts LIMIT 1",
                 "1698.15 1690.05 null 2024-01-01 00:00 INFY day");

    /* the same chunk again: a unique violation, then the merge finds nothing changed */
    assert_int_equal(upsert(ITEM, c, 3, NULL, &ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "inserted"), 0);
    assert_int_equal(fake_ctx_counter(ctx, "updated"), 0);
    assert_int_equal(fake_ctx_counter(ctx, "unchanged"), 3);
    fake_ctx_free(ctx);

    /* one value changed, one candle new */
    candles(c, 4, 1704067200 - 19800);
    c[1].close = 1701.25;
    assert_int_equal(upsert(ITEM, c, 4, NULL, &ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "inserted"), 1);
    assert_int_equal(fake_ctx_counter(ctx, "updated"), 1);
    assert_int_equal(fake_ctx_counter(ctx, "unchanged"), 2);
    fake_ctx_free(ctx);
    assert_query("SELECT count(*) FROM kite_ohlcv_historic", "4");
    assert_query("SELECT string_agg(close::text, ',' ORDER BY ts) FROM kite_ohlcv_historic",
                 "1700.5,1701.25,1700.5,1700.5");
}

static void test_upsert_candles_large_chunk_and_escaping(void **state)
{
    (void)state;
    if (!db)
        skip();
    exec("TRUNCATE kite_ohlcv_historic");
    size_t n = 6000;                           /* several 64 KB COPY pieces */
    dr_candle *c = calloc(n, sizeof *c);
    candles(c, n, 0);
    const char *item = "{\"key\":\"NSE:A\\tB\",\"instrument_token\":7,\"tradingsymbol\":\"A\\tB\\\\C\","
                       "\"exchange\":\"NSE\",\"interval\":\"minute\"}";
    dr_ctx *ctx;
    assert_int_equal(upsert(item, c, n, NULL, &ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "inserted"), (long long)n);
    fake_ctx_free(ctx);
    assert_query("SELECT count(*) FROM kite_ohlcv_historic WHERE tradingsymbol = E'A\\tB\\\\C'", "6000");
    assert_int_equal(upsert(item, c, n, NULL, &ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "unchanged"), (long long)n);
    fake_ctx_free(ctx);
    free(c);
}

static void test_upsert_candles_errors(void **state)
{
    (void)state;
    dr_candle c[1];
    candles(c, 1, 1704067200);
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, ITEM, 0);
    fake_ctx_set_lane_blob(ctx, DR_BLOB_CANDLES, c, sizeof c);
    fake_ctx_set_param(ctx, "table", "\"x; DROP TABLE y\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "not a plain lower-case name"));
    fake_ctx_free(ctx);

    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, ITEM, 0);
    fake_ctx_set_lane_json(ctx, "{}");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "expected a dr_candle/v1 blob"));
    fake_ctx_free(ctx);

    if (!db)
        skip();
    exec("BEGIN");
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_map_item(ctx, ITEM, 0);
    fake_ctx_set_lane_blob(ctx, DR_BLOB_CANDLES, c, sizeof c);
    fake_ctx_set_param(ctx, "table", "\"no_such_table\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_string_equal(fake_ctx_error(ctx), "upsert_candles NSE:INFY 2024-01-01..2024-01-01: "
                        "relation \"no_such_table\" does not exist");
    fake_ctx_free(ctx);
    exec("SELECT 1");                    /* the transaction is still usable */
    exec("COMMIT");
}

/* A statement that waits past lock_timeout (SQLSTATE 55P03) is passing trouble: DR_RETRY,
 * with the server's message after the item and range (dr_db_failed). */
static void test_upsert_candles_lock_timeout_is_retried(void **state)
{
    (void)state;
    if (!db)
        skip();
    char info[1024];
    snprintf(info, sizeof info, "host=%s port=%s dbname=%s user=%s", PQhost(db), PQport(db),
             PQdb(db), PQuser(db));
    PGconn *other = PQconnectdb(info);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    assert_int_equal(fake_db_exec(other, "BEGIN"), 0);
    assert_int_equal(fake_db_exec(other, "LOCK TABLE kite_ohlcv_historic IN ACCESS EXCLUSIVE MODE"), 0);
    dr_candle c[1];
    candles(c, 1, 1704067200);
    exec("BEGIN");
    exec("SET LOCAL lock_timeout = '100ms'");
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_map_item(ctx, ITEM, 0);
    fake_ctx_set_lane_blob(ctx, DR_BLOB_CANDLES, c, sizeof c);
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_RETRY);
    assert_string_equal(fake_ctx_error(ctx), "upsert_candles NSE:INFY 2024-01-01..2024-01-01: "
                        "canceling statement due to lock timeout");
    fake_ctx_free(ctx);
    exec("ROLLBACK");
    assert_int_equal(fake_db_exec(other, "ROLLBACK"), 0);
    PQfinish(other);
}

/* A connection of its own to the test database. */
static PGconn *connect_other(void)
{
    char info[1024];
    snprintf(info, sizeof info, "host=%s port=%s dbname=%s user=%s", PQhost(db), PQport(db),
             PQdb(db), PQuser(db));
    PGconn *c = PQconnectdb(info);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

struct job {
    void *state;
    PGconn *conn;
    long long token;
    dr_status st;
};

/* One worker: upsert_candles on a connection of its own, in a transaction of its own. */
static void *upsert_job(void *arg)
{
    struct job *j = arg;
    char item[256];
    snprintf(item, sizeof item, "{\"key\":\"NSE:T%lld\",\"instrument_token\":%lld,"
             "\"tradingsymbol\":\"T\",\"exchange\":\"NSE\",\"interval\":\"day\"}", j->token,
             j->token);
    dr_candle c[2];
    candles(c, 2, 1704067200);
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, j->conn);
    fake_ctx_set_map_item(ctx, item, 0);
    fake_ctx_set_lane_blob(ctx, DR_BLOB_CANDLES, c, sizeof c);
    fake_db_exec(j->conn, "BEGIN");
    j->st = dr_task_entry()->run(ctx, j->state);
    fake_db_exec(j->conn, "COMMIT");
    fake_ctx_free(ctx);
    return NULL;
}

/* Sessions whose COPY waits for a lock on the candle table. */
static int copies_waiting(void)
{
    char *v = query1("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                     "AND query LIKE 'COPY%'");
    int n = atoi(v);
    free(v);
    return n;
}

/* Three workers upsert while the table is locked: with copy_streams N, N COPYs reach the
 * server (and wait there for the lock) and the others wait for one of them to end. */
static void check_streams(const char *streams, int want)
{
    PGconn *holder = connect_other();
    assert_int_equal(fake_db_exec(holder, "BEGIN"), 0);
    assert_int_equal(fake_db_exec(holder, "LOCK TABLE kite_ohlcv_historic IN SHARE MODE"), 0);
    dr_ctx *ictx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_param(ictx, "copy_streams", streams);
    void *state = NULL;
    assert_int_equal(dr_task_entry()->init(ictx, &state), 0);
    struct job j[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        j[i] = (struct job){ .state = state, .conn = connect_other(), .token = 900 + i };
        assert_int_equal(pthread_create(&th[i], NULL, upsert_job, &j[i]), 0);
    }
    for (int k = 0; k < 500 && copies_waiting() < want; k++)      /* up to 10 s on a busy machine */
        usleep(20000);
    usleep(200000);                     /* time for a COPY beyond the limit to show up */
    assert_int_equal(copies_waiting(), want);
    assert_int_equal(fake_db_exec(holder, "ROLLBACK"), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(j[i].st, DR_OK);
        PQfinish(j[i].conn);
    }
    dr_task_entry()->fini(ictx, state);
    fake_ctx_free(ictx);
    PQfinish(holder);
}

static void test_upsert_candles_copy_streams(void **state)
{
    (void)state;
    if (!db)
        skip();
    exec("TRUNCATE kite_ohlcv_historic");
    check_streams("1", 1);
    exec("TRUNCATE kite_ohlcv_historic");
    check_streams("2", 2);
    assert_query("SELECT count(*) FROM kite_ohlcv_historic", "6");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_candles_price_text_is_shortest),
        cmocka_unit_test(test_upsert_candles_binary_copy_stores_text_values),
        cmocka_unit_test(test_upsert_candles_insert_then_merge),
        cmocka_unit_test(test_upsert_candles_large_chunk_and_escaping),
        cmocka_unit_test(test_upsert_candles_errors),
        cmocka_unit_test(test_upsert_candles_lock_timeout_is_retried),
        cmocka_unit_test(test_upsert_candles_copy_streams),
    };
    return cmocka_run_group_tests_name("task_upsert_candles", tests, db_setup, db_teardown);
}
