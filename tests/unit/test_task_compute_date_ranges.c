/* Unit tests for tasks/compute_date_ranges.c: the pure range rule and the SQL path on a sandbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "fake_ctx.h"
#include "prop.h"

int compute_date_ranges_pick(const char *next_stored, const char *bootstrap, const char *end,
                             const char **from, const char **to);

static void random_date(uint64_t *s, char out[11])
{
    time_t t = (time_t)(prop_splitmix(s) % (86400LL * 365 * 60)) + 86400LL * 365 * 20;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static void test_compute_date_ranges_pick_property(void **state)
{
    (void)state;
    uint64_t seed = prop_seed(), s = seed;
    for (int i = 0; i < 20000; i++) {
        char next[11], boot[11], end[11];
        random_date(&s, next);
        random_date(&s, boot);
        random_date(&s, end);
        if (i % 5 == 0)
            memcpy(end, next, 11);                       /* next == end: one day left */
        bool stored = prop_splitmix(&s) % 2;
        const char *from = NULL, *to = NULL;
        int keep = compute_date_ranges_pick(stored ? next : NULL, boot, end, &from, &to);
        const char *want_from = stored ? next : boot;
        int want_keep = strcmp(want_from, end) <= 0;
        if (keep != want_keep || from != want_from || to != end) {
            fprintf(stderr, "seed %llu: next %s boot %s end %s stored %d -> keep %d\n",
                    (unsigned long long)seed, next, boot, end, stored, keep);
            fail();
        }
    }
}

/* ---- SQL path on a real PostgreSQL ---- */

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

#define INSTRUMENTS "[{\"instrument_token\":11,\"tradingsymbol\":\"A\",\"exchange\":\"NSE\"}," \
                    "{\"instrument_token\":12,\"tradingsymbol\":\"B\",\"exchange\":\"NSE\"}," \
                    "{\"instrument_token\":13,\"tradingsymbol\":\"C\",\"exchange\":\"BSE\"}," \
                    "{\"instrument_token\":14,\"tradingsymbol\":\"D\",\"exchange\":\"NSE\"}]"

static const json_t *range_of(dr_ctx *ctx, long long token)
{
    const json_t *out = json_array_get(fake_ctx_emitted(ctx), 0);
    size_t i;
    const json_t *r;
    json_array_foreach(out, i, r)
        if (json_integer_value(json_object_get(r, "instrument_token")) == token)
            return r;
    return NULL;
}

static const char *field(const json_t *r, const char *name)
{
    return json_string_value(json_object_get(r, name));
}

static void test_compute_date_ranges_sql_ist_days(void **state)
{
    (void)state;
    if (!db)
        skip();
    exec("TRUNCATE kite_ohlcv_historic");
    /* 11: last candle 2024-03-10 23:59:59 IST; 12: 2024-03-11 00:00 IST (still 03-10 in UTC);
     * 13: nothing stored; 14: up to date (its next day is after end_date);
     * a minute candle of 11 later than its day candles must not count. */
    exec("INSERT INTO kite_ohlcv_historic (instrument_token, tradingsymbol, exchange, "
         "candle_interval, ts, open, high, low, close, volume) VALUES "
         "(11, 'A', 'NSE', 'day', '2024-03-01 00:00+05:30', 1, 1, 1, 1, 0),"
         "(11, 'A', 'NSE', 'day', '2024-03-10 18:29:59+00', 1, 1, 1, 1, 0),"
         "(11, 'A', 'NSE', 'minute', '2024-05-01 09:15+05:30', 1, 1, 1, 1, 0),"
         "(12, 'B', 'NSE', 'day', '2024-03-10 18:30:00+00', 1, 1, 1, 1, 0),"
         "(14, 'D', 'NSE', 'day', '2024-06-30 00:00+05:30', 1, 1, 1, 1, 0)");
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "bootstrap_date", "\"2020-01-01\"");
    fake_ctx_set_param(ctx, "end_date", "\"2024-06-30\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_OK);
    assert_int_equal(json_array_size(json_array_get(fake_ctx_emitted(ctx), 0)), 3);
    assert_string_equal(field(range_of(ctx, 11), "from"), "2024-03-11");
    assert_string_equal(field(range_of(ctx, 12), "from"), "2024-03-12");
    assert_string_equal(field(range_of(ctx, 13), "from"), "2020-01-01");
    assert_string_equal(field(range_of(ctx, 13), "to"), "2024-06-30");
    assert_string_equal(field(range_of(ctx, 13), "exchange"), "BSE");
    assert_string_equal(field(range_of(ctx, 11), "tradingsymbol"), "A");
    assert_null(range_of(ctx, 14));
    assert_int_equal(fake_ctx_counter(ctx, "up_to_date"), 1);
    assert_true(fake_ctx_has(fake_ctx_logs(ctx), "1 up to date"));
    fake_ctx_free(ctx);

    /* minute candles; end_date as the runtime resolved it */
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "candle_interval", "\"minute\"");
    fake_ctx_set_param(ctx, "end_date", "\"2024-06-11\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_OK);
    assert_string_equal(field(range_of(ctx, 11), "from"), "2024-05-02");
    assert_string_equal(field(range_of(ctx, 12), "from"), "1995-01-01");
    assert_string_equal(field(range_of(ctx, 12), "to"), "2024-06-11");
    fake_ctx_free(ctx);

    /* "today" is the runtime's to resolve (against the run's interval), never the clock's:
     * unresolved, it is refused before any query. */
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "end_date", "\"today\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "must be dates YYYY-MM-DD"));
    fake_ctx_free(ctx);

    /* the table upsert_candles writes is the one read: another table, nothing stored */
    PQclear(PQexec(db, "CREATE TABLE IF NOT EXISTS other_candles (LIKE kite_ohlcv_historic)"));
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "end_date", "\"2024-06-30\"");
    fake_ctx_set_param(ctx, "bootstrap_date", "\"2024-01-01\"");
    fake_ctx_set_param(ctx, "table", "\"other_candles\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_OK);
    assert_string_equal(field(range_of(ctx, 11), "from"), "2024-01-01");
    fake_ctx_free(ctx);
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "end_date", "\"2024-06-30\"");
    fake_ctx_set_param(ctx, "table", "\"x; DROP TABLE y\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "not a plain lower-case name"));
    fake_ctx_free(ctx);

    /* everything up to date: empty output, skipped */
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "end_date", "\"2024-03-10\"");
    fake_ctx_set_param(ctx, "bootstrap_date", "\"2024-03-11\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_SKIP);
    assert_int_equal(json_array_size(json_array_get(fake_ctx_emitted(ctx), 0)), 0);
    assert_int_equal(fake_ctx_counter(ctx, "up_to_date"), 4);
    fake_ctx_free(ctx);
}

static void test_compute_date_ranges_bad_input(void **state)
{
    (void)state;
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);       /* no upstream output */
    assert_non_null(strstr(fake_ctx_error(ctx), "list_instruments"));
    fake_ctx_free(ctx);

    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_input(ctx, "list_instruments", "[{\"instrument_token\":\"x\"}]");
    fake_ctx_set_db(ctx, db);
    if (db)
        assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    fake_ctx_free(ctx);

    if (!db)
        skip();
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_db(ctx, db);
    fake_ctx_set_input(ctx, "list_instruments", INSTRUMENTS);
    fake_ctx_set_param(ctx, "end_date", "\"2024-02-30\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "must be dates YYYY-MM-DD"));
    fake_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_compute_date_ranges_pick_property),
    };
    const struct CMUnitTest sql[] = {
        cmocka_unit_test(test_compute_date_ranges_sql_ist_days),
        cmocka_unit_test(test_compute_date_ranges_bad_input),
    };
    int failed = cmocka_run_group_tests_name("task_compute_date_ranges", pure, NULL, NULL);
    return failed + cmocka_run_group_tests_name("task_compute_date_ranges_sql", sql, db_setup,
                                                db_teardown);
}
