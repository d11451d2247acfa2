/* Unit tests for tasks/chunk_ranges.c: the pure splitter (property test) and run() on a fake ctx. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dagrun/candle.h>

#include "fake_ctx.h"
#include "prop.h"

long chunk_ranges_limit(const char *interval);
size_t chunk_ranges_split(long from, long to, long limit, long (*out)[2], size_t cap);

static long day(const char *s)
{
    int64_t d = 0;
    assert_int_equal(dr_date_parse(s, &d, NULL, 0), 0);
    return (long)d;
}

static void test_chunk_ranges_dates_round_trip(void **state)
{
    (void)state;
    char buf[11];
    assert_int_equal(day("1970-01-01"), 0);
    assert_int_equal(day("1970-01-02"), 1);
    assert_int_equal(day("1969-12-31"), -1);
    assert_int_equal(day("2000-03-01") - day("2000-02-28"), 2);  /* 2000 is a leap year */
    assert_int_equal(day("1900-03-01") - day("1900-02-28"), 1);  /* 1900 is not */
    assert_int_equal(day("2024-03-01") - day("2024-02-28"), 2);
    dr_date_format(day("2024-02-29"), buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29");
    int64_t d = 7;
    const char *bad[] = { "2023-02-29", "2024-13-01", "2024-00-10", "2024-01-32", "2024-1-01",
                          "20240101", "2024-01-01x", "", "today", "2024/01/01", NULL };
    for (int i = 0; bad[i]; i++) {
        char why[128] = "";
        assert_int_equal(dr_date_parse(bad[i], &d, why, sizeof why), -1);
        assert_int_equal(d, 7);                 /* left alone */
        assert_non_null(strstr(why, "bad date"));
    }
    /* Every day of the years dates may name (1900-2999) in steps of 37. */
    for (long k = day("1900-01-01"); k <= day("2999-12-31"); k += 37) {
        dr_date_format(k, buf, sizeof buf);
        assert_int_equal(day(buf), k);
        int y, m, dd;
        dr_civil_from_days(k, &y, &m, &dd);
        assert_int_equal(dr_days_from_civil(y, m, dd), k);
    }
}

static void test_chunk_ranges_limits_per_interval(void **state)
{
    (void)state;
    assert_int_equal(chunk_ranges_limit("minute"), 60);
    assert_int_equal(chunk_ranges_limit("3minute"), 100);
    assert_int_equal(chunk_ranges_limit("5minute"), 100);
    assert_int_equal(chunk_ranges_limit("10minute"), 100);
    assert_int_equal(chunk_ranges_limit("15minute"), 200);
    assert_int_equal(chunk_ranges_limit("30minute"), 200);
    assert_int_equal(chunk_ranges_limit("60minute"), 400);
    assert_int_equal(chunk_ranges_limit("day"), 2000);
    assert_int_equal(chunk_ranges_limit("week"), -1);
    assert_int_equal(chunk_ranges_limit(NULL), -1);
}

/* The shared interval table, its text and chunk_ranges' limits name the same intervals. */
static void test_chunk_ranges_knows_every_candle_interval(void **state)
{
    (void)state;
    char text[256] = "";
    for (const char *const *i = dr_candle_intervals; *i; i++) {
        assert_true(chunk_ranges_limit(*i) > 0);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s",
                 i == dr_candle_intervals ? "" : ", ", *i);
    }
    assert_string_equal(text, DR_CANDLE_INTERVALS_TEXT);
    assert_true(dr_candle_table_ok("kite_ohlcv_historic"));
    assert_true(dr_candle_table_ok("_t2"));
    assert_false(dr_candle_table_ok(NULL));
    assert_false(dr_candle_table_ok(""));
    assert_false(dr_candle_table_ok("2t"));
    assert_false(dr_candle_table_ok("Candles"));
    assert_false(dr_candle_table_ok("x; drop table y"));
    assert_false(dr_candle_table_ok("a234567890123456789012345678901234567890123456789012345678901234"));
}

static void test_chunk_ranges_edges(void **state)
{
    (void)state;
    long c[8][2];
    long a = day("2024-01-01");
    assert_int_equal(chunk_ranges_split(a, a, 60, c, 8), 1);            /* from == to */
    assert_int_equal(c[0][0], a);
    assert_int_equal(c[0][1], a);
    assert_int_equal(chunk_ranges_split(a, a + 59, 60, c, 8), 1);       /* exactly limit days */
    assert_int_equal(c[0][1], a + 59);
    assert_int_equal(chunk_ranges_split(a, a + 60, 60, c, 8), 2);       /* limit + 1 */
    assert_int_equal(c[0][1], a + 59);
    assert_int_equal(c[1][0], a + 60);
    assert_int_equal(c[1][1], a + 60);
    assert_int_equal(chunk_ranges_split(a + 1, a, 60, c, 8), 0);        /* empty */
    assert_int_equal(chunk_ranges_split(a, a, 0, c, 8), 0);
    /* leap year: 2024-01-01..2024-12-31 is 366 days, 3 chunks of <= 183 would need limit 183 */
    assert_int_equal(chunk_ranges_split(day("2024-01-01"), day("2024-12-31"), 183, c, 8), 2);
    assert_int_equal(c[1][0], day("2024-07-02"));
    assert_int_equal(chunk_ranges_split(day("2023-01-01"), day("2023-12-31"), 183, c, 8), 2);
    assert_int_equal(c[1][1], day("2023-12-31"));
    /* count only, no output */
    assert_int_equal(chunk_ranges_split(day("1995-01-01"), day("2026-01-01"), 60, NULL, 0), 189);
}

static void test_chunk_ranges_property_cover_exact(void **state)
{
    (void)state;
    uint64_t seed = prop_seed(), s = seed;
    static long c[4096][2];
    static const long limits[] = { 60, 100, 200, 400, 2000 };
    for (int iter = 0; iter < 20000; iter++) {
        long from = (long)(prop_splitmix(&s) % 30000) - 10000;
        long len = (long)(prop_splitmix(&s) % 12000);
        long limit = (iter % 7 == 0) ? 3 + (long)(prop_splitmix(&s) % 2500)
                                     : limits[prop_splitmix(&s) % 5];
        if (iter % 11 == 0)
            len = limit * (long)(prop_splitmix(&s) % 5) + (long)(prop_splitmix(&s) % 3) - 1;
        long to = from + len;
        size_t n = chunk_ranges_split(from, to, limit, c, 4096);
        long days = to - from + 1;
        size_t want = days <= 0 ? 0 : (size_t)((days + limit - 1) / limit);
        if (n != want || n > 4096) {
            fprintf(stderr, "seed %llu: [%ld, %ld] limit %ld: %zu chunks, want %zu\n",
                    (unsigned long long)seed, from, to, limit, n, want);
            fail();
        }
        long next = from;
        for (size_t k = 0; k < n; k++) {
            if (c[k][0] != next || c[k][1] < c[k][0] || c[k][1] - c[k][0] > limit - 1) {
                fprintf(stderr, "seed %llu: [%ld, %ld] limit %ld: bad chunk %zu [%ld, %ld]\n",
                        (unsigned long long)seed, from, to, limit, k, c[k][0], c[k][1]);
                fail();
            }
            next = c[k][1] + 1;
        }
        if (n && next != to + 1) {
            fprintf(stderr, "seed %llu: [%ld, %ld] limit %ld: ends at %ld\n",
                    (unsigned long long)seed, from, to, limit, next - 1);
            fail();
        }
    }
}

static dr_ctx *ctx_with(const char *ranges)
{
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    if (ranges)
        fake_ctx_set_input(ctx, "date_ranges", ranges);
    return ctx;
}

static void test_chunk_ranges_run_emits_lane_items(void **state)
{
    (void)state;
    dr_ctx *ctx = ctx_with(
        "[{\"instrument_token\":408065,\"tradingsymbol\":\"INFY\",\"exchange\":\"NSE\","
        "\"from\":\"2024-01-01\",\"to\":\"2024-04-15\"},"
        "{\"instrument_token\":1,\"tradingsymbol\":\"X\",\"exchange\":\"BSE\","
        "\"from\":\"2024-05-02\",\"to\":\"2024-05-01\"}]");
    fake_ctx_set_param(ctx, "candle_interval", "\"minute\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_OK);
    const json_t *out = json_array_get(fake_ctx_emitted(ctx), 0);
    assert_int_equal(json_array_size(fake_ctx_emitted(ctx)), 1);
    assert_int_equal(json_array_size(out), 1);        /* the empty range is not emitted */
    const json_t *item = json_array_get(out, 0);
    assert_string_equal(json_string_value(json_object_get(item, "key")), "NSE:INFY");
    assert_int_equal(json_integer_value(json_object_get(item, "instrument_token")), 408065);
    assert_string_equal(json_string_value(json_object_get(item, "interval")), "minute");
    char *chunks = json_dumps(json_object_get(item, "chunks"), JSON_COMPACT);
    assert_string_equal(chunks, "[[\"2024-01-01\",\"2024-02-29\"],[\"2024-03-01\",\"2024-04-15\"]]");
    free(chunks);
    assert_int_equal(fake_ctx_counter(ctx, "chunks"), 2);
    fake_ctx_free(ctx);
}

static void test_chunk_ranges_run_max_days_and_errors(void **state)
{
    (void)state;
    const char *one = "[{\"instrument_token\":5,\"tradingsymbol\":\"A\",\"exchange\":\"NSE\","
                      "\"from\":\"2024-01-01\",\"to\":\"2024-01-10\"}]";
    dr_ctx *ctx = ctx_with(one);
    fake_ctx_set_param(ctx, "max_days", "3");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_OK);
    const json_t *item = json_array_get(json_array_get(fake_ctx_emitted(ctx), 0), 0);
    assert_int_equal(json_array_size(json_object_get(item, "chunks")), 4);
    fake_ctx_free(ctx);

    ctx = ctx_with(one);
    fake_ctx_set_param(ctx, "candle_interval", "\"week\"");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "unknown candle_interval \"week\""));
    fake_ctx_free(ctx);

    ctx = ctx_with(one);
    fake_ctx_set_param(ctx, "max_days", "2001");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    fake_ctx_free(ctx);

    ctx = ctx_with(NULL);
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "date_ranges"));
    fake_ctx_free(ctx);

    ctx = ctx_with("[{\"instrument_token\":5,\"tradingsymbol\":\"A\",\"exchange\":\"NSE\","
                   "\"from\":\"2024-02-30\",\"to\":\"2024-03-10\"}]");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_FAIL);
    fake_ctx_free(ctx);

    ctx = ctx_with("[]");
    assert_int_equal(dr_task_entry()->run(ctx, NULL), DR_SKIP);
    fake_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_ranges_dates_round_trip),
        cmocka_unit_test(test_chunk_ranges_limits_per_interval),
        cmocka_unit_test(test_chunk_ranges_knows_every_candle_interval),
        cmocka_unit_test(test_chunk_ranges_edges),
        cmocka_unit_test(test_chunk_ranges_property_cover_exact),
        cmocka_unit_test(test_chunk_ranges_run_emits_lane_items),
        cmocka_unit_test(test_chunk_ranges_run_max_days_and_errors),
    };
    return cmocka_run_group_tests_name("task_chunk_ranges", tests, NULL, NULL);
}
