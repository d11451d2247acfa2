/* Unit tests for tasks/fetch_candles.c: parser, candle rules (property test), HTTP outcomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "fake_ctx.h"
#include "prop.h"

typedef void (*fetch_candles_drop_fn)(void *ud, const char *ts, const char *why);
int fetch_candles_parse_ts(const char *s, int64_t *out);
const char *fetch_candles_check(const dr_candle *c);
int fetch_candles_parse(const char *body, size_t len, const char *content_type,
                        dr_candle **out, size_t *n, fetch_candles_drop_fn on_drop, void *ud,
                        char error_type[64], char msg[256]);
dr_status fetch_candles_classify(long status, const char *error_type);
size_t fetch_candles_window(dr_candle *c, size_t n, const char *from, const char *to, bool day,
                            fetch_candles_drop_fn on_drop, void *ud);
bool fetch_candles_parse_fast(const char *body, size_t len, dr_candle **out, size_t *n);
int fetch_candles_parse_tree(const char *body, size_t len, dr_candle **out, size_t *n,
                             fetch_candles_drop_fn on_drop, void *ud, char error_type[64],
                             char msg[256]);

/* Inside the repository, relative to its top (where the tests run from). */
#define FIXTURES "tests/fixtures/kite"
#define ITEM "{\"key\":\"NSE:INFY\",\"instrument_token\":408065,\"tradingsymbol\":\"INFY\"," \
             "\"exchange\":\"NSE\",\"interval\":\"day\",\"chunks\":[[\"2024-01-01\",\"2024-03-01\"]," \
             "[\"2024-03-02\",\"2024-05-01\"],[\"2024-05-02\",\"2024-06-30\"]]}"
#define JSON "application/json"

static void count_drop(void *ud, const char *ts, const char *why)
{
    (void)ts;
    (void)why;
    (*(int *)ud)++;
}

static int parse(const char *body, const char *ctype, dr_candle **c, size_t *n, int *drops,
                 char *etype, char *msg)
{
    *drops = 0;
    return fetch_candles_parse(body, strlen(body), ctype, c, n, count_drop, drops, etype, msg);
}

static void test_fetch_candles_parse_ts_forms(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(fetch_candles_parse_ts("2017-12-15T09:15:00+0530", &t), 0);
    assert_int_equal(t, 1513309500);
    assert_int_equal(fetch_candles_parse_ts("2017-12-15T09:15:00+05:30", &t), 0);
    assert_int_equal(t, 1513309500);
    assert_int_equal(fetch_candles_parse_ts("2017-12-15T03:45:00Z", &t), 0);
    assert_int_equal(t, 1513309500);
    assert_int_equal(fetch_candles_parse_ts("2017-12-14 23:45:00-0400", &t), 0);
    assert_int_equal(t, 1513309500);
    const char *bad[] = { "2017-12-15T09:15:00", "2017-12-15", "2017-02-30T09:15:00+0530",
                          "2017-12-15T24:00:00+0530", "2017-12-15T09:15:00+053",
                          "2017-12-15T09:15:00+0530x", "x017-12-15T09:15:00+0530", "", NULL };
    for (int i = 0; bad[i]; i++)
        assert_int_equal(fetch_candles_parse_ts(bad[i], &t), -1);
}

static void test_fetch_candles_parse_shapes(void **state)
{
    (void)state;
    dr_candle *c;
    size_t n;
    int drops;
    char et[64], msg[256];
    /* arrays, 6 and 7 elements, integer prices and a whole real volume */
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"candles\":["
                           "[\"2017-12-15T09:15:00+0530\",1704.5,1705,1699.25,1702.8,2499],"
                           "[\"2017-12-15T09:16:00+0530\",1702,1702,1698.15,1698.15,1271.0,13667775]]}}",
                           JSON "; charset=utf-8", &c, &n, &drops, et, msg), 0);
    assert_int_equal(n, 2);
    assert_int_equal(drops, 0);
    assert_true(c[0].high == 1705 && c[0].low == 1699.25 && c[0].volume == 2499 && !c[0].has_oi);
    assert_true(c[1].open == 1702 && c[1].close == 1698.15 && c[1].volume == 1271);
    assert_true(c[1].has_oi && c[1].oi == 13667775);
    assert_int_equal(c[1].ts - c[0].ts, 60);
    free(c);
    /* objects, oi optional */
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"candles\":["
                           "{\"date\":\"2024-01-01T00:00:00+0530\",\"open\":10,\"high\":12,"
                           "\"low\":9.5,\"close\":11,\"volume\":0},"
                           "{\"date\":\"2024-01-02T00:00:00+05:30\",\"open\":11,\"high\":11,"
                           "\"low\":11,\"close\":11,\"volume\":5,\"oi\":7}]}}",
                           "", &c, &n, &drops, et, msg), 0);
    assert_int_equal(n, 2);
    assert_true(!c[0].has_oi && c[1].has_oi && c[1].oi == 7 && c[0].low == 9.5);
    free(c);
    /* empty */
    assert_int_equal(parse("{\"status\":\"success\",\"data\":{\"candles\":[]}}", JSON, &c, &n,
                           &drops, et, msg), 0);
    assert_int_equal(n, 0);
    assert_null(c);
}

static void test_fetch_candles_parse_errors(void **state)
{
    (void)state;
    static const struct { const char *body, *ctype; int rc; const char *msg; } cases[] = {
        { "{a:b}", JSON, -1, "not JSON" },
        { "<html>", "text/html", -1, "unexpected Content-Type \"text/html\"" },
        { "[1]", JSON, -1, "not a JSON object" },
        { "{\"status\":\"success\"}", JSON, -1, "data is missing" },
        { "{\"status\":\"success\",\"data\":[]}", JSON, -1, "data is not an object" },
        { "{\"status\":\"success\",\"data\":{}}", JSON, -1, "candles is missing" },
        { "{\"status\":\"success\",\"data\":{\"candles\":{}}}", JSON, -1, "candles is not an array" },
        { "{\"status\":\"ok\",\"data\":{\"candles\":[]}}", JSON, -1, "status is not" },
        { "{\"status\":\"error\",\"message\":\"invalid token\",\"error_type\":\"TokenException\"}",
          JSON, 1, "invalid token" },
        { "{\"status\":\"error\",\"message\":\"m\"}", JSON, 1, "m" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dr_candle *c;
        size_t n;
        int drops;
        char et[64], msg[256];
        assert_int_equal(parse(cases[i].body, cases[i].ctype, &c, &n, &drops, et, msg), cases[i].rc);
        assert_non_null(strstr(msg, cases[i].msg));
        assert_null(c);
    }
}

static void test_fetch_candles_classify(void **state)
{
    (void)state;
    assert_int_equal(fetch_candles_classify(403, "TokenException"), DR_FATAL);
    assert_int_equal(fetch_candles_classify(200, "TokenException"), DR_FATAL);
    assert_int_equal(fetch_candles_classify(403, NULL), DR_FATAL);
    assert_int_equal(fetch_candles_classify(400, "InputException"), DR_FAIL);
    assert_int_equal(fetch_candles_classify(200, "InputException"), DR_FAIL);
    assert_int_equal(fetch_candles_classify(429, "NetworkException"), DR_RETRY);
    assert_int_equal(fetch_candles_classify(200, "NetworkException"), DR_RETRY);
    assert_int_equal(fetch_candles_classify(503, "GeneralException"), DR_RETRY);
    assert_int_equal(fetch_candles_classify(0, NULL), DR_RETRY);
    assert_int_equal(fetch_candles_classify(404, NULL), DR_FAIL);
}

/* ---- property test: random candles, some broken on purpose ---- */

static void put_ts(char *buf, size_t size, int64_t t, int form)
{
    time_t local = (time_t)(t + (form == 2 ? 0 : 19800));
    struct tm tm;
    gmtime_r(&local, &tm);
    static const char *zones[] = { "+0530", "+05:30", "Z" };
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, zones[form]);
}

static json_t *num(double v)
{
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(v);
}

static void test_fetch_candles_property_drops_exactly_bad(void **state)
{
    (void)state;
    uint64_t seed = prop_seed(), s = seed;
    for (int iter = 0; iter < 3000; iter++) {
        size_t k = prop_splitmix(&s) % 40;
        json_t *arr = json_array();
        dr_candle *want = calloc(k + 1, sizeof *want);
        size_t nwant = 0, nbad = 0;
        int64_t cur = 1500000000 + (int64_t)(prop_splitmix(&s) % 100000000);
        for (size_t i = 0; i < k; i++) {
            cur += 60 + (int64_t)(prop_splitmix(&s) % 86400);
            dr_candle c = { .ts = cur };
            c.low = 1 + (double)(prop_splitmix(&s) % 500000) / 100;
            c.high = c.low + (double)(prop_splitmix(&s) % 10000) / 100;
            /* Between low and high: the clamp keeps rounding (x = 100) from landing a step
             * above high, which would make a "good" candle bad. */
            c.open = fmin(c.high, c.low + (c.high - c.low) * (double)(prop_splitmix(&s) % 101) / 100);
            c.close = fmin(c.high, c.low + (c.high - c.low) * (double)(prop_splitmix(&s) % 101) / 100);
            c.volume = (int64_t)(prop_splitmix(&s) % 10000000);
            c.has_oi = prop_splitmix(&s) % 2;
            c.oi = c.has_oi ? (int64_t)(prop_splitmix(&s) % 1000000) : 0;
            int bad = prop_splitmix(&s) % 4 == 0 ? 1 + (int)(prop_splitmix(&s) % 12) : 0;
            if ((bad == 10 || bad == 11) && nwant == 0)
                bad = 0;                       /* needs an earlier kept candle */
            int64_t ts = cur;
            json_t *v[7];
            char tsbuf[48];
            switch (bad) {
            case 1: c.open = -c.open; break;
            case 2: c.low = fmin(c.open, c.close) + 0.05; break;
            case 3: c.high = fmax(c.open, c.close) - 0.05; break;
            case 4: c.volume = -1 - c.volume; break;
            case 5: c.has_oi = 1; c.oi = -5; break;
            case 6: c.close = 0; break;
            case 10: ts = want[nwant - 1].ts; break;        /* duplicate */
            case 11: c.ts = ts = want[nwant - 1].ts - 60; break;   /* out of order: kept */
            default: break;
            }
            put_ts(tsbuf, sizeof tsbuf, ts, (int)(prop_splitmix(&s) % 3));
            if (bad == 7)
                snprintf(tsbuf, sizeof tsbuf, "2024-13-01T09:15:00+0530");
            v[0] = json_string(tsbuf);
            v[1] = num(c.open);
            v[2] = num(c.high);
            v[3] = num(c.low);
            v[4] = num(c.close);
            v[5] = bad == 9 ? json_real((double)c.volume + 0.5)
                   : prop_splitmix(&s) % 5 == 0 ? json_real((double)c.volume) : json_integer(c.volume);
            v[6] = c.has_oi ? json_integer(c.oi) : NULL;
            if (bad == 8) {
                json_decref(v[2]);
                v[2] = json_string("12.5");
            }
            json_t *row;
            if (prop_splitmix(&s) % 2) {
                row = json_array();
                for (int f = 0; f < 7; f++)
                    if (v[f])
                        json_array_append_new(row, v[f]);
                if (bad == 12) {                       /* 8 or 9 elements */
                    json_array_append_new(row, json_integer(1));
                    json_array_append_new(row, json_integer(1));
                }
            } else {
                static const char *names[] = { "date", "open", "high", "low", "close", "volume", "oi" };
                row = json_object();
                for (int f = 0; f < 7; f++)
                    if (v[f])
                        json_object_set_new(row, names[f], v[f]);
                if (bad == 12)
                    json_object_del(row, "volume");
            }
            json_array_append_new(arr, row);
            if (bad == 11)
                bad = 0;
            if (bad) {
                nbad++;
            } else {
                if (fetch_candles_check(&c))
                    fail_msg("seed %llu iter %d: generated good candle %d is invalid: %s",
                             (unsigned long long)seed, iter, i, fetch_candles_check(&c));
                want[nwant++] = c;
            }
        }
        /* What the parser must keep: the good candles in time order, the first of each time
         * (insertion sort: stable); a later one at a time already kept is dropped. */
        for (size_t i = 1; i < nwant; i++)
            for (size_t j = i; j > 0 && want[j].ts < want[j - 1].ts; j--) {
                dr_candle t = want[j];
                want[j] = want[j - 1];
                want[j - 1] = t;
            }
        size_t kept = 0;
        for (size_t i = 0; i < nwant; i++) {
            if (kept > 0 && want[i].ts == want[kept - 1].ts) {
                nbad++;
                continue;
            }
            want[kept++] = want[i];
        }
        nwant = kept;
        json_t *root = json_pack("{s:s, s:{s:o}}", "status", "success", "data", "candles", arr);
        char *body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        dr_candle *got;
        size_t n;
        int drops;
        char et[64], msg[256];
        int rc = parse(body, JSON, &got, &n, &drops, et, msg);
        bool ok = rc == 0 && n == nwant && (size_t)drops == nbad;
        for (size_t i = 0; ok && i < n; i++)
            ok = !fetch_candles_check(&got[i]) && got[i].ts == want[i].ts &&
                 got[i].open == want[i].open && got[i].high == want[i].high &&
                 got[i].low == want[i].low && got[i].close == want[i].close &&
                 got[i].volume == want[i].volume && got[i].has_oi == want[i].has_oi &&
                 (!got[i].has_oi || got[i].oi == want[i].oi) && (i == 0 || got[i].ts > got[i - 1].ts);
        if (!ok)
            fprintf(stderr, "seed %llu iter %d: rc %d, %zu kept (want %zu), %d dropped (want %zu)\n%s\n",
                    (unsigned long long)seed, iter, rc, n, nwant, drops, nbad, body);
        free(body);
        free(got);
        free(want);
        if (!ok)
            fail();
    }
}

/* ---- run() with scripted HTTP ---- */

static const char *ok_body(const char *day)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"status\":\"success\",\"data\":{\"candles\":["
             "[\"%sT00:00:00+0530\",100,110,90,105,1000,5]]}}", day);
    return buf;
}

static dr_ctx *fetch_ctx(void)
{
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, ITEM, 0);
    return ctx;
}

static dr_status run(dr_ctx *ctx)
{
    return dr_task_entry()->run(ctx, NULL);
}

static void test_fetch_candles_run_all_chunks(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-01-02"));
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"status\":\"success\",\"data\":{\"candles\":[]}}");
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-05-03"));
    assert_int_equal(run(ctx), DR_OK);
    assert_int_equal(fake_ctx_nblobs(ctx), 1);            /* small chunks go down as one */
    const struct fake_blob *b = fake_ctx_blob(ctx, 0);
    assert_string_equal(b->type, DR_BLOB_CANDLES);
    assert_int_equal(b->len, 2 * sizeof(dr_candle));
    const dr_candle *c = b->data;
    assert_true(c[1].close == 105 && c[1].oi == 5 && c[1].has_oi && c[0].ts < c[1].ts);
    assert_string_equal(fake_ctx_checkpoint(ctx), "2024-06-30");
    assert_string_equal(json_string_value(json_array_get(fake_ctx_requests(ctx), 0)),
                        "kite /instruments/historical/408065/day?from=2024-01-01+00:00:00"
                        "&to=2024-03-01+23:59:59&oi=1");
    assert_int_equal(fake_ctx_counter(ctx, "candles"), 2);
    assert_int_equal(fake_ctx_counter(ctx, "requests"), 3);
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_set_param(ctx, "oi", "false");
    fake_ctx_set_param(ctx, "continuous", "true");
    fake_ctx_set_param(ctx, "source", "\"sim\"");
    for (int i = 0; i < 3; i++)
        fake_ctx_push_http(ctx, 0, 200, JSON, "{\"status\":\"success\",\"data\":{\"candles\":[]}}");
    assert_int_equal(run(ctx), DR_SKIP);                 /* no candles at all */
    assert_string_equal(json_string_value(json_array_get(fake_ctx_requests(ctx), 2)),
                        "sim /instruments/historical/408065/day?from=2024-05-02+00:00:00"
                        "&to=2024-06-30+23:59:59&continuous=1");
    fake_ctx_free(ctx);
}

static void test_fetch_candles_run_403_is_fatal(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 403, JSON, "{\"status\":\"error\",\"message\":\"Incorrect "
                       "`api_key` or `access_token`.\",\"error_type\":\"TokenException\"}");
    assert_int_equal(run(ctx), DR_FATAL);
    assert_non_null(strstr(fake_ctx_error(ctx), "HTTP 403 TokenException from kite: Incorrect"));
    assert_non_null(strstr(fake_ctx_error(ctx), "KITE_ACCESS_TOKEN"));
    assert_int_equal(fake_ctx_http_left(ctx), 0);
    fake_ctx_free(ctx);
}

static void test_fetch_candles_run_400_keeps_prefix(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-01-02"));
    fake_ctx_push_http(ctx, 0, 400, JSON, "{\"status\":\"error\",\"message\":\"invalid from date"
                       "\",\"error_type\":\"InputException\"}");
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-05-03"));
    assert_int_equal(run(ctx), DR_FAIL);
    assert_int_equal(fake_ctx_nblobs(ctx), 1);
    assert_string_equal(fake_ctx_error(ctx), "fetch_candles NSE:INFY 2024-03-02..2024-05-01: "
                        "HTTP 400 InputException: invalid from date; reached 2024-03-01");
    assert_int_equal(fake_ctx_http_left(ctx), 1);        /* stopped at the failing chunk */
    assert_string_equal(fake_ctx_checkpoint(ctx), "2024-03-01");
    fake_ctx_free(ctx);
}

/* n minute candles from 09:15 IST of day (YYYY-MM-DD) on, as Kite's answer. */
static char *minute_body(const char *day, int n)
{
    struct tm tm = { 0 };
    assert_non_null(strptime(day, "%Y-%m-%d", &tm));
    int64_t t = (int64_t)timegm(&tm) + 9 * 3600 + 15 * 60;
    size_t cap = 64 + (size_t)n * 64, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    len += (size_t)snprintf(b, cap, "{\"status\":\"success\",\"data\":{\"candles\":[");
    for (int i = 0; i < n; i++, t += 60) {
        time_t tt = (time_t)t;
        struct tm x;
        gmtime_r(&tt, &x);
        len += (size_t)snprintf(b + len, cap - len, "%s[\"%04d-%02d-%02dT%02d:%02d:00+0530\","
                                "100,110,90,105,%d,5]", i ? "," : "", x.tm_year + 1900,
                                x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min, i);
    }
    snprintf(b + len, cap - len, "]}}");
    return b;
}

/* Chunks go down the lane in batches of up to 16,384 candles: a chunk that does not fit
 * sends the batch first, a chunk of more than half a batch goes alone (after the batch), the
 * rest at the end; the checkpoint follows what went down, and a failure hands down the batch
 * before it (a failed item keeps what it did). */
static void test_fetch_candles_run_batches(void **state)
{
    (void)state;
    static const char item[] = "{\"key\":\"NSE:M\",\"instrument_token\":7,\"interval\":\"minute\","
        "\"chunks\":[[\"2024-01-01\",\"2024-01-05\"],[\"2024-01-06\",\"2024-01-10\"],"
        "[\"2024-01-11\",\"2024-01-15\"],[\"2024-01-16\",\"2024-01-31\"],"
        "[\"2024-02-01\",\"2024-02-01\"],[\"2024-02-02\",\"2024-02-12\"],"
        "[\"2024-02-13\",\"2024-02-13\"]]}";
    const char *day[7] = { "2024-01-01", "2024-01-06", "2024-01-11", "2024-01-16", "2024-02-01",
                           "2024-02-02", "2024-02-13" };
    const int n[7] = { 6000, 6000, 6000, 20000, 5, 9000, 7 };
    const size_t want[5] = { 12000, 6000, 20000, 5, 9000 };
    dr_ctx *ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, item, 0);
    for (int i = 0; i < 7; i++) {
        char *b = minute_body(day[i], n[i]);
        fake_ctx_push_http(ctx, 0, 200, JSON, b);
        free(b);
    }
    assert_int_equal(run(ctx), DR_OK);
    assert_int_equal(fake_ctx_nblobs(ctx), 6);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(fake_ctx_blob(ctx, i)->len, want[i] * sizeof(dr_candle));
    assert_int_equal(fake_ctx_blob(ctx, 5)->len, 7 * sizeof(dr_candle));
    const dr_candle *c = fake_ctx_blob(ctx, 0)->data;
    for (size_t i = 1; i < 12000; i++)              /* the first two chunks, in order */
        assert_true(c[i].ts > c[i - 1].ts);
    assert_int_equal(c[6000].volume, 0);            /* the second chunk's first candle */
    assert_int_equal(fake_ctx_counter(ctx, "candles"), 47012);
    assert_string_equal(fake_ctx_checkpoint(ctx), "2024-02-13");
    fake_ctx_free(ctx);

    /* The third request fails for good: the first two chunks go down first. */
    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, item, 0);
    char *b = minute_body(day[0], 100);
    fake_ctx_push_http(ctx, 0, 200, JSON, b);
    fake_ctx_push_http(ctx, 0, 200, JSON, b);
    free(b);
    fake_ctx_push_http(ctx, 0, 400, JSON, "{\"status\":\"error\",\"message\":\"bad\","
                       "\"error_type\":\"InputException\"}");
    assert_int_equal(run(ctx), DR_FAIL);
    assert_int_equal(fake_ctx_nblobs(ctx), 1);
    assert_int_equal(fake_ctx_blob(ctx, 0)->len, 100 * sizeof(dr_candle));  /* the second
                                                        * answer's candles are outside its chunk */
    assert_string_equal(fake_ctx_checkpoint(ctx), "2024-01-10");
    assert_string_equal(fake_ctx_error(ctx), "fetch_candles NSE:M 2024-01-11..2024-01-15: "
                        "HTTP 400 InputException: bad; reached 2024-01-10");
    fake_ctx_free(ctx);
}

/* A resumed item goes on after the chunks its checkpoint says are stored. */
static void test_fetch_candles_run_resumes_after_checkpoint(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_set_prior_checkpoint(ctx, "2024-03-01");
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-03-04"));
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-05-03"));
    assert_int_equal(run(ctx), DR_OK);
    assert_int_equal(json_array_size(fake_ctx_requests(ctx)), 2);
    assert_string_equal(json_string_value(json_array_get(fake_ctx_requests(ctx), 0)),
                        "kite /instruments/historical/408065/day?from=2024-03-02+00:00:00"
                        "&to=2024-05-01+23:59:59&oi=1");
    assert_string_equal(fake_ctx_checkpoint(ctx), "2024-06-30");
    fake_ctx_free(ctx);

    ctx = fetch_ctx();                                   /* not a date: fetch everything */
    fake_ctx_set_prior_checkpoint(ctx, "x");
    for (int i = 0; i < 3; i++)
        fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-01-02"));
    run(ctx);
    assert_int_equal(json_array_size(fake_ctx_requests(ctx)), 3);
    fake_ctx_free(ctx);
}

/* A checkpoint or chunk is a real date (dr_date_parse), not just digits in the shape of one;
 * the descriptor names its source param so the runtime can check credentials up front. */
static void test_fetch_candles_real_dates_and_source_param(void **state)
{
    (void)state;
    assert_true(DR_TASK_DEF_HAS(dr_task_entry(), source_param));
    assert_non_null(dr_task_entry()->source_param);
    assert_string_equal(dr_task_entry()->source_param, "source");

    dr_ctx *ctx = fetch_ctx();                           /* 2024-02-30: fetch everything */
    fake_ctx_set_prior_checkpoint(ctx, "2024-02-30");
    for (int i = 0; i < 3; i++)
        fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-01-02"));
    run(ctx);
    assert_int_equal(json_array_size(fake_ctx_requests(ctx)), 3);
    fake_ctx_free(ctx);

    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, "{\"key\":\"NSE:X\",\"instrument_token\":1,\"interval\":\"day\","
                          "\"chunks\":[[\"2024-01-01\",\"2024-13-01\"]]}", 0);
    assert_int_equal(run(ctx), DR_FAIL);
    assert_int_equal(json_array_size(fake_ctx_requests(ctx)), 0);
    fake_ctx_free(ctx);
}

static void test_fetch_candles_run_error_in_200_body(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON,
                       "{\"error_type\": \"InputException\", \"message\": \"missing or invalid params\"}");
    assert_int_equal(run(ctx), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "NSE:INFY 2024-01-01..2024-03-01: HTTP 200 "
                           "InputException: missing or invalid params; reached nothing"));
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"error_type\":\"NetworkException\",\"message\":\"x\"}");
    assert_int_equal(run(ctx), DR_RETRY);
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"error_type\":\"TokenException\",\"message\":\"x\"}");
    assert_int_equal(run(ctx), DR_FATAL);
    fake_ctx_free(ctx);
}

static void test_fetch_candles_run_transient_and_bad(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 503, "text/html", "<html>bad gateway</html>");
    assert_int_equal(run(ctx), DR_RETRY);
    assert_non_null(strstr(fake_ctx_error(ctx), "HTTP 503"));
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, -1, 0, "", "connection reset by peer");
    assert_int_equal(run(ctx), DR_RETRY);
    assert_non_null(strstr(fake_ctx_error(ctx), "connection reset by peer"));
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"status\":\"success\",\"data\":{\"candles\":7}}");
    assert_int_equal(run(ctx), DR_FAIL);
    assert_non_null(strstr(fake_ctx_error(ctx), "fetch_candles NSE:INFY 2024-01-01..2024-03-01: "
                           "bad response: candles is not an array"));
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, "application/rdf+xml", "<rdf:Description/>");
    assert_int_equal(run(ctx), DR_RETRY);                /* undecodable: retried */
    assert_non_null(strstr(fake_ctx_error(ctx), "NSE:INFY 2024-01-01..2024-03-01: bad response: "
                           "unexpected Content-Type"));
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"status\":\"success\",\"data\":{\"candles\":[[\"2024");
    assert_int_equal(run(ctx), DR_RETRY);                /* truncated body */
    assert_non_null(strstr(fake_ctx_error(ctx), "bad response: not JSON"));
    fake_ctx_free(ctx);
}

static void test_fetch_candles_run_drops_warn_emit_fail_cancel(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, "{\"status\":\"success\",\"data\":{\"candles\":["
                       "[\"2024-01-02T00:00:00+0530\",100,110,90,105,1000],"
                       "[\"2024-01-02T00:00:00+0530\",100,110,90,105,1000],"
                       "[\"2024-01-03T00:00:00+0530\",100,99,90,105,1000],"
                       "[\"2024-01-04T00:00:00+0530\",100,110,90,105,1000]]}}");
    fake_ctx_fail_emit_after(ctx, 0);
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-03-05"));
    fake_ctx_push_http(ctx, 0, 200, JSON, ok_body("2024-05-03"));
    assert_int_equal(run(ctx), DR_FAIL);                  /* the one emit fails */
    assert_int_equal(fake_ctx_counter(ctx, "dropped"), 2);
    assert_true(fake_ctx_has(fake_ctx_warnings(ctx),
                             "NSE:INFY 2024-01-01..2024-03-01: dropped 2 bad candles"));
    assert_true(fake_ctx_has(fake_ctx_logs(ctx), "NSE:INFY: dropped candle 2024-01-03T00:00:00+0530"));
    assert_int_equal(fake_ctx_nblobs(ctx), 0);
    assert_string_equal(fake_ctx_error(ctx), "fetch_candles NSE:INFY 2024-01-01..2024-06-30: "
                        "downstream failed or run cancelled; reached nothing");
    assert_int_equal(fake_ctx_counter(ctx, "candles"), 0);
    fake_ctx_free(ctx);

    ctx = fetch_ctx();
    fake_ctx_set_cancelled(ctx, true);
    assert_int_equal(run(ctx), DR_FAIL);
    assert_int_equal(json_array_size(fake_ctx_requests(ctx)), 0);
    fake_ctx_free(ctx);

    ctx = fake_ctx_new(dr_task_entry());
    fake_ctx_set_map_item(ctx, "{\"key\":\"NSE:X\",\"instrument_token\":1,\"interval\":\"da/y\","
                          "\"chunks\":[]}", 0);
    assert_int_equal(run(ctx), DR_FAIL);
    fake_ctx_free(ctx);
}

/* ---- order, range and number edges (issue 12 items 2, 3 and 6) ---- */

struct drops {
    int n;
    char text[8][400];      /* "ts: why" of the first eight */
};

static void keep_drop(void *ud, const char *ts, const char *why)
{
    struct drops *d = ud;
    if (d->n < 8)
        snprintf(d->text[d->n], sizeof d->text[d->n], "%s: %s", ts, why);
    d->n++;
}

static int parse_keep(const char *body, dr_candle **c, size_t *n, struct drops *d)
{
    char et[64], msg[256];
    memset(d, 0, sizeof *d);
    return fetch_candles_parse(body, strlen(body), JSON, c, n, keep_drop, d, et, msg);
}

#define BODY(rows) "{\"status\":\"success\",\"data\":{\"candles\":[" rows "]}}"

/* Newest-first (or shuffled) answers keep every candle, in time order; only a second candle
 * at the same time is dropped, and the warning says which one was kept. */
static void test_fetch_candles_parse_out_of_order_kept(void **state)
{
    (void)state;
    dr_candle *c;
    size_t n;
    struct drops d;
    assert_int_equal(parse_keep(BODY("[\"2024-01-04T00:00:00+0530\",104,110,90,105,4],"
                                     "[\"2024-01-03T00:00:00+0530\",103,110,90,105,3],"
                                     "[\"2024-01-02T00:00:00+0530\",102,110,90,105,2],"
                                     "[\"2024-01-01T00:00:00+0530\",101,110,90,105,1]"),
                                &c, &n, &d), 0);
    assert_int_equal(n, 4);
    assert_int_equal(d.n, 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].open == 101 + (double)i && c[i].volume == 1 + (int64_t)i);
        assert_true(i == 0 || c[i].ts - c[i - 1].ts == 86400);
    }
    free(c);
    /* a true duplicate: the first in the answer stays, the second is named */
    assert_int_equal(parse_keep(BODY("[\"2024-01-03T00:00:00+0530\",103,110,90,105,3],"
                                     "[\"2024-01-02T00:00:00+0530\",102,110,90,105,2],"
                                     "[\"2024-01-02T00:00:00+05:30\",99,110,90,105,9]"),
                                &c, &n, &d), 0);
    assert_int_equal(n, 2);
    assert_true(c[0].open == 102 && c[0].volume == 2 && c[1].open == 103);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.text[0], "2024-01-02T00:00:00+05:30: duplicate timestamp: kept the "
                           "first of the answer's candles at that time (open 102 high 110 low 90 "
                           "close 105 volume 2)"));
    free(c);
}

/* Numbers at the edges are one candle's trouble, never the chunk's. */
static void test_fetch_candles_parse_number_edges(void **state)
{
    (void)state;
    static const struct { const char *row, *why; } cases[] = {
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,9223372036854775808]",
          "volume is out of range (2^53 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,1e19]",
          "volume is out of range (2^53 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,-99999999999999999999999]",
          "volume is negative" },
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,9007199254740992]",
          "volume is out of range (2^53 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,1e400]",
          "volume is out of range (2^53 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,110,90,105,1,1e19]",
          "oi is out of range (2^53 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,1e308,90,105,1]",
          "price is out of range (1e12 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",1e12,1e12,1e12,1e12,1]",
          "price is out of range (1e12 or more)" },
        { "[\"2024-01-02T00:00:00+0530\",100,1e999,90,105,1]",
          "price is out of range (1e12 or more)" },
        { "{\"date\":\"2024-01-02T00:00:00+0530\",\"open\":100,\"high\":110,\"low\":90,"
          "\"close\":105,\"volume\":1.5}", "volume is not a whole number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, BODY("[\"2024-01-01T00:00:00+0530\",100,110,90,105,1],%s,"
                                         "[\"2024-01-03T00:00:00+0530\",100,110,90,105,9007199254740991]"),
                 cases[i].row);
        dr_candle *c;
        size_t n;
        struct drops d;
        int rc = parse_keep(body, &c, &n, &d);
        if (rc != 0 || n != 2 || d.n != 1 || !strstr(d.text[0], cases[i].why))
            fail_msg("case %zu: rc %d, %zu kept, %d dropped (%s), want 2 kept and \"%s\"", i, rc,
                     n, d.n, d.text[0], cases[i].why);
        assert_true(c[1].volume == 9007199254740991);
        free(c);
    }
}

/* A candle outside the chunk's [from, to] (in the session's zone) is dropped and named. */
static void test_fetch_candles_window_range(void **state)
{
    (void)state;
    dr_candle c[5] = { { .ts = 0 } };
    const char *ts[] = { "2023-12-31T23:59:59+0530", "2024-01-01T00:00:00+0530",
                         "2024-03-01T23:59:59+0530", "2024-03-02T00:00:00+0530",
                         "2999-12-31T00:00:00+0530" };
    for (int i = 0; i < 5; i++)
        assert_int_equal(fetch_candles_parse_ts(ts[i], &c[i].ts), 0);
    struct drops d = { 0 };
    size_t n = fetch_candles_window(c, 5, "2024-01-01", "2024-03-01", false, keep_drop, &d);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].ts, 1704047400);
    assert_int_equal(d.n, 3);
    assert_string_equal(d.text[0], "2023-12-31T23:59:59+0530: outside the requested "
                        "2024-01-01..2024-03-01");
    assert_string_equal(d.text[2], "2999-12-31T00:00:00+0530: outside the requested "
                        "2024-01-01..2024-03-01");
}

/* Day candles stamped in another zone land on their session day's midnight; a second candle
 * of one day is dropped as a duplicate. */
static void test_fetch_candles_window_day_session(void **state)
{
    (void)state;
    dr_candle *c;
    size_t n;
    struct drops d;
    assert_int_equal(parse_keep(BODY("[\"2024-01-02T00:00:00+0530\",100,110,90,105,1],"
                                     "[\"2024-01-02T00:00:00Z\",100,110,90,105,2],"
                                     "[\"2024-01-03T00:00:00-1400\",100,110,90,105,3],"
                                     "[\"2024-01-04T00:00:00+0000\",100,110,90,105,4],"
                                     "[\"2024-01-04T18:30:00Z\",100,110,90,105,5]"),
                                &c, &n, &d), 0);
    assert_int_equal(n, 5);
    n = fetch_candles_window(c, n, "2024-01-01", "2024-03-01", true, keep_drop, &d);
    assert_int_equal(n, 4);
    int64_t want[4];
    assert_int_equal(fetch_candles_parse_ts("2024-01-02T00:00:00+0530", &want[0]), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c[i].ts, want[0] + 86400 * i);
    assert_true(c[0].volume == 1 && c[1].volume == 3 && c[2].volume == 4 && c[3].volume == 5);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.text[0], "2024-01-02T05:30:00+0530: a second candle of one session "
                           "day: kept the earlier one (open 100 high 110 low 90 close 105 "
                           "volume 1)"));
    free(c);
    /* minute candles keep their instant */
    dr_candle m = { .ts = 1704153600 };     /* 2024-01-02T00:00:00Z */
    assert_int_equal(fetch_candles_window(&m, 1, "2024-01-02", "2024-01-02", false, NULL, NULL), 1);
    assert_int_equal(m.ts, 1704153600);
}

/* The run: a far-future candle is dropped, counted and warned about with the instrument and
 * its time; a newest-first answer stores every candle, in order, so the next run's start
 * (max stored + 1 day in compute_date_ranges) skips none. */
static void test_fetch_candles_run_range_and_order(void **state)
{
    (void)state;
    dr_ctx *ctx = fetch_ctx();
    fake_ctx_push_http(ctx, 0, 200, JSON, BODY("[\"2024-02-29T00:00:00+0530\",103,110,90,105,3],"
                                               "[\"2099-01-01T00:00:00+0530\",100,110,90,105,9],"
                                               "[\"2024-01-03T00:00:00+0530\",102,110,90,105,2],"
                                               "[\"2024-01-02T00:00:00Z\",101,110,90,105,1]"));
    fake_ctx_push_http(ctx, 0, 200, JSON, BODY(""));
    fake_ctx_push_http(ctx, 0, 200, JSON, BODY(""));
    assert_int_equal(run(ctx), DR_OK);
    assert_int_equal(fake_ctx_counter(ctx, "dropped"), 1);
    assert_int_equal(fake_ctx_counter(ctx, "candles"), 3);
    assert_true(fake_ctx_has(fake_ctx_logs(ctx), "NSE:INFY: dropped candle "
                             "2099-01-01T00:00:00+0530: outside the requested 2024-01-01..2024-03-01"));
    assert_true(fake_ctx_has(fake_ctx_warnings(ctx),
                             "NSE:INFY 2024-01-01..2024-03-01: dropped 1 bad candles"));
    assert_int_equal(fake_ctx_nblobs(ctx), 1);
    const struct fake_blob *b = fake_ctx_blob(ctx, 0);
    assert_int_equal(b->len, 3 * sizeof(dr_candle));
    const dr_candle *c = b->data;
    int64_t day2;
    assert_int_equal(fetch_candles_parse_ts("2024-01-02T00:00:00+0530", &day2), 0);
    assert_int_equal(c[0].ts, day2);                    /* moved to the session's midnight */
    assert_true(c[0].open == 101 && c[1].open == 102 && c[2].open == 103);
    assert_int_equal(c[1].ts, day2 + 86400);
    assert_true(c[2].ts > c[1].ts);
    fake_ctx_free(ctx);
}

/* ---- two parsers, one truth: the fast parser and the Jansson tree agree ---- */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof tmp);
    if (b->len + (size_t)k + 1 > b->cap) {
        b->cap = (b->len + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, tmp, (size_t)k + 1);
    b->len += (size_t)k;
}

/* A price near v in one of the textual forms a JSON writer may use, or an edge. */
static void gen_price(struct sb *b, uint64_t *s, double v, bool *plain)
{
    static const char *edges[] = { "1e308", "1e400", "-0", "0", "1e-400", "999999999999.99",
                                   "1000000000000", "12345678901234567890123", "0.1e1", "1E+2",
                                   "4.9406564584124654e-324", "0.30000000000000004",
                                   "123456789012345678", "1234567890.1234567890123456789",
                                   "-1", "1.", ".5", "01", "1e", "+1", "NaN", "Infinity" };
    switch (prop_splitmix(s) % 9) {
    case 0: sb_add(b, "%lld", (long long)v); break;
    case 1: sb_add(b, "%.2f", v); break;
    case 2: sb_add(b, "%.17g", v); break;
    case 3: sb_add(b, "%llde-2", (long long)(v * 100)); break;
    case 4: sb_add(b, "%.3E", v); break;
    case 5: sb_add(b, "%.30f", v); break;
    case 6: sb_add(b, "%.15g", v); break;
    case 7:
        if (prop_splitmix(s) % 3 == 0) {
            sb_add(b, "%s", edges[prop_splitmix(s) % (sizeof edges / sizeof edges[0])]);
            *plain = false;
        } else {
            sb_add(b, "%.1f", v);
        }
        break;
    default: sb_add(b, "%.4f", v); break;
    }
}

static void gen_count(struct sb *b, uint64_t *s, long long v, bool *plain)
{
    static const char *edges[] = { "9223372036854775808", "9223372036854775807",
                                   "9007199254740992", "9007199254740991", "-0", "1e19", "00",
                                   "1e3", "5.0", "5.5", "-1", "99999999999999999999999999",
                                   "1e400", "\"7\"", "null", "true" };
    unsigned r = (unsigned)(prop_splitmix(s) % 12);
    if (r == 0) {
        sb_add(b, "%s", edges[prop_splitmix(s) % (sizeof edges / sizeof edges[0])]);
        *plain = false;
    } else {
        sb_add(b, "%lld", v);
    }
}

/* A body mostly in the fast parser's shape, with edges and hostile turns. *plain is left
 * true only for a body the fast parser is built to take when every candle is sound. */
static char *gen_body(uint64_t *s, size_t *len, bool *plain)
{
    struct sb b = { NULL, 0, 0 };
    *plain = true;
    const char *ws = prop_splitmix(s) % 4 == 0 ? " \n\t" : "";
    bool dup_key = prop_splitmix(s) % 20 == 0, esc_key = prop_splitmix(s) % 20 == 0;
    bool extra = prop_splitmix(s) % 20 == 0, data_first = prop_splitmix(s) % 4 == 0;
    if (dup_key || esc_key || extra)
        *plain = false;
    sb_add(&b, "{%s", ws);
    char status[64];
    snprintf(status, sizeof status, "\"%s\":%s\"success\"", esc_key ? "st\\u0061tus" : "status", ws);
    if (!data_first)
        sb_add(&b, "%s,%s", status, ws);
    sb_add(&b, "\"data\":%s{\"candles\":%s[", ws, ws);
    size_t k = prop_splitmix(s) % 12;
    int64_t t = 1600000000 + (int64_t)(prop_splitmix(s) % 100000000);
    for (size_t i = 0; i < k; i++) {
        unsigned turn = (unsigned)(prop_splitmix(s) % 30);
        t += turn == 0 ? 0 : turn == 1 ? -120 : 60 + (int64_t)(prop_splitmix(s) % 3600);
        if (turn <= 1)
            *plain = false;
        char ts[48];
        put_ts(ts, sizeof ts, t, (int)(prop_splitmix(s) % 3));
        if (turn == 2) {                       /* an escape inside the timestamp */
            ts[4] = '\0';
            char tail[48];
            snprintf(tail, sizeof tail, "%s", ts + 5);
            snprintf(ts + 4, sizeof ts - 4, "\\u002d%.30s", tail);
            *plain = false;
        }
        double low = 1 + (double)(prop_splitmix(s) % 200000) / 100;
        double high = low + (double)(prop_splitmix(s) % 1000) / 100;
        sb_add(&b, "%s%s[\"%s\",%s", i ? "," : "", ws, ts, ws);
        if (turn == 3) {
            sb_add(&b, "[1],");                /* nested */
            *plain = false;
        }
        gen_price(&b, s, low + (high - low) / 2, plain);
        sb_add(&b, ",%s", ws);
        gen_price(&b, s, high, plain);
        sb_add(&b, ",");
        gen_price(&b, s, low, plain);
        sb_add(&b, ",");
        gen_price(&b, s, low + (high - low) / 3, plain);
        sb_add(&b, ",");
        gen_count(&b, s, (long long)(prop_splitmix(s) % 100000000), plain);
        if (prop_splitmix(s) % 2) {
            sb_add(&b, ",%s", ws);
            if (turn == 4) {
                sb_add(&b, "null");
                *plain = false;
            } else {
                gen_count(&b, s, (long long)(prop_splitmix(s) % 1000000), plain);
            }
        }
        sb_add(&b, "%s]", ws);
    }
    sb_add(&b, "]%s}", ws);
    if (data_first)
        sb_add(&b, ",%s", status);
    if (dup_key)
        sb_add(&b, prop_splitmix(s) % 2 ? ",\"status\":\"success\"" : ",\"data\":{\"candles\":[]}");
    if (extra)
        sb_add(&b, ",\"x\":{\"y\":[1,{\"z\":null}]}");
    sb_add(&b, "}%s", ws);
    if (prop_splitmix(s) % 15 == 0 && b.len > 0) {         /* truncated in flight */
        b.len = (size_t)(prop_splitmix(s) % b.len);
        b.p[b.len] = '\0';
        *plain = false;
    }
    if (prop_splitmix(s) % 30 == 0 && b.len > 0) {         /* one byte flipped */
        b.p[prop_splitmix(s) % b.len] ^= (char)(1u << (prop_splitmix(s) % 7));
        *plain = false;
    }
    *len = b.len;
    return b.p;
}

/* Whenever the fast parser takes a body, the tree returns the same candles bit for bit and
 * drops none; a plain body of sound candles in order is taken by the fast parser. */
static void test_fetch_candles_two_parsers_agree(void **state)
{
    (void)state;
    uint64_t seed = prop_seed(), s = seed;
    size_t fast_taken = 0, tree_only = 0;
    for (int iter = 0; iter < 20000; iter++) {
        bool plain;
        size_t len;
        char *body = gen_body(&s, &len, &plain);
        dr_candle *f = NULL, *t = NULL;
        size_t nf = 0, nt = 0;
        struct drops d = { 0 };
        char et[64], msg[256];
        bool fast = fetch_candles_parse_fast(body, len, &f, &nf);
        int rc = fetch_candles_parse_tree(body, len, &t, &nt, keep_drop, &d, et, msg);
        const char *why = NULL;
        if (fast) {
            fast_taken++;
            if (rc != 0)
                why = "the fast parser took a body the tree refuses";
            else if (d.n != 0)
                why = "the fast parser took a body whose candles the tree drops";
            else if (nf != nt || (nf && memcmp(f, t, nf * sizeof *f)))
                why = "the two parsers read different candles";
        } else if (rc == 0 && d.n == 0) {
            tree_only++;
            /* plain and sound: the fast path must not give up on Kite's everyday answer */
            bool ordered = true;
            for (size_t i = 1; i < nt; i++)
                ordered = ordered && t[i].ts > t[i - 1].ts;
            if (plain && ordered)
                why = "the fast parser gave up on a plain body of sound candles";
        }
        if (why)
            fail_msg("seed %llu iter %d: %s (fast %d n %zu; tree rc %d n %zu drops %d: %s %s)\n%s",
                     (unsigned long long)seed, iter, why, fast, nf, rc, nt, d.n, d.text[0], msg,
                     body);
        free(f);
        free(t);
        free(body);
    }
    assert_true(fast_taken > 1000);         /* the generator exercises the comparison */
    (void)tree_only;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* The fixtures of tests/fixtures/kite (written from Kite's documented format): the test is
 * skipped when they are absent (a partial checkout), never read from elsewhere. */
static void test_fetch_candles_kite_fixtures_parse(void **state)
{
    (void)state;
    static const char *files[] = { "historical_minute.json", "historical_day_oi.json",
                                   "error_TokenException.json", "error_InputException.json",
                                   "error_NetworkException.json", "error_gateway.html" };
    char *b[6];
    size_t len[6];
    for (int i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, FIXTURES "/%s", files[i]);
        b[i] = slurp(path, &len[i]);
        if (!b[i]) {
            for (int j = 0; j < i; j++)
                free(b[j]);
            print_message("fixture %s absent: skipped\n", path);
            skip();
        }
    }
    dr_candle *c;
    size_t n;
    int drops = 0;
    char et[64], msg[256];
    assert_int_equal(fetch_candles_parse(b[0], len[0], JSON, &c, &n, count_drop, &drops, et, msg), 0);
    assert_int_equal(n, 4);
    assert_int_equal(drops, 0);
    int64_t t;
    assert_int_equal(fetch_candles_parse_ts("2024-03-11T09:15:00+05:30", &t), 0);
    assert_int_equal(c[0].ts, t);
    assert_int_equal(c[3].ts - c[0].ts, 180);
    assert_true(c[0].high == 1618 && c[1].low == 1611.15 && c[3].volume == 5120 && !c[0].has_oi);
    free(c);
    assert_int_equal(fetch_candles_parse(b[1], len[1], JSON, &c, &n, count_drop, &drops, et, msg), 0);
    assert_int_equal(n, 3);
    assert_true(c[0].has_oi && c[0].oi == 14125650 && c[2].close == 21997.7);
    assert_int_equal(fetch_candles_window(c, n, "2024-03-11", "2024-03-13", true, count_drop,
                                          &drops), 3);     /* already at the session's midnight */
    assert_int_equal(drops, 0);
    free(c);
    static const char *types[] = { "TokenException", "InputException", "NetworkException" };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fetch_candles_parse(b[2 + i], len[2 + i], JSON, &c, &n, NULL, NULL, et,
                                             msg), 1);
        assert_string_equal(et, types[i]);
        assert_null(c);
    }
    assert_int_equal(fetch_candles_parse(b[5], len[5], "text/html", &c, &n, NULL, NULL, et, msg), -1);
    assert_string_equal(et, "DataException");
    assert_int_equal(fetch_candles_parse(b[5], len[5], JSON, &c, &n, NULL, NULL, et, msg), -1);
    assert_non_null(strstr(msg, "not JSON"));
    for (int i = 0; i < 6; i++)
        free(b[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_candles_parse_ts_forms),
        cmocka_unit_test(test_fetch_candles_parse_shapes),
        cmocka_unit_test(test_fetch_candles_parse_errors),
        cmocka_unit_test(test_fetch_candles_classify),
        cmocka_unit_test(test_fetch_candles_property_drops_exactly_bad),
        cmocka_unit_test(test_fetch_candles_run_all_chunks),
        cmocka_unit_test(test_fetch_candles_run_403_is_fatal),
        cmocka_unit_test(test_fetch_candles_run_400_keeps_prefix),
        cmocka_unit_test(test_fetch_candles_run_resumes_after_checkpoint),
        cmocka_unit_test(test_fetch_candles_run_batches),
        cmocka_unit_test(test_fetch_candles_run_error_in_200_body),
        cmocka_unit_test(test_fetch_candles_real_dates_and_source_param),
        cmocka_unit_test(test_fetch_candles_run_transient_and_bad),
        cmocka_unit_test(test_fetch_candles_run_drops_warn_emit_fail_cancel),
        cmocka_unit_test(test_fetch_candles_kite_fixtures_parse),
        cmocka_unit_test(test_fetch_candles_parse_out_of_order_kept),
        cmocka_unit_test(test_fetch_candles_parse_number_edges),
        cmocka_unit_test(test_fetch_candles_window_range),
        cmocka_unit_test(test_fetch_candles_window_day_session),
        cmocka_unit_test(test_fetch_candles_run_range_and_order),
        cmocka_unit_test(test_fetch_candles_two_parsers_agree),
    };
    return cmocka_run_group_tests_name("task_fetch_candles", tests, NULL, NULL);
}
