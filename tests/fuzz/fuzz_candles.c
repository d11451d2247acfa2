/* libFuzzer target: the Kite historical-candles response parser of tasks/fetch_candles.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dagrun/task.h>
#include <dagrun/candle.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Non-static in tasks/fetch_candles.c (no header: declared here as defined there). */
typedef void (*fetch_candles_drop_fn)(void *ud, const char *ts, const char *why);
int fetch_candles_parse(const char *body, size_t len, const char *content_type,
                        dr_candle **out, size_t *n, fetch_candles_drop_fn on_drop, void *ud,
                        char error_type[64], char msg[256]);
int fetch_candles_parse_ts(const char *s, int64_t *out);
const char *fetch_candles_check(const dr_candle *c);

static void die(const char *why)
{
    fprintf(stderr, "fuzz_candles: %s\n", why);
    abort();
}

static void on_drop(void *ud, const char *ts, const char *why)
{
    size_t *drops = ud;
    if (!ts || !why)
        die("on_drop got NULL text");
    /* Touch every byte, so ASan sees a dangling or unterminated string. */
    if (strlen(ts) + strlen(why) == (size_t)-1)
        die("impossible");
    (*drops)++;
}

static void check_string(const char *s, size_t cap, const char *what)
{
    if (!memchr(s, '\0', cap))
        die(what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the Content-Type, the rest is the body. */
    static const char *const types[] = {
        NULL, "", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
        "text/html", "text/csv",
    };
    const char *ctype = NULL;
    const char *body = (const char *)data;
    size_t len = size;
    if (size > 0 && data[0] < 0x20) {
        ctype = types[data[0] % (sizeof types / sizeof types[0])];
        body++;
        len--;
    }
    /* The body is not NUL-terminated: copy it to an exact-size buffer so ASan
     * catches any read past len. */
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    if (len)
        memcpy(copy, body, len);

    dr_candle *out = (dr_candle *)0x1;
    size_t n = 12345, drops = 0;
    char etype[64], msg[256];
    memset(etype, 'x', sizeof etype);
    memset(msg, 'x', sizeof msg);
    int rc = fetch_candles_parse(len ? copy : NULL, len, ctype, &out, &n, on_drop, &drops, etype,
                                 msg);
    check_string(etype, sizeof etype, "error_type not terminated");
    check_string(msg, sizeof msg, "msg not terminated");
    if (rc == 0) {
        if ((n == 0) != (out == NULL))
            die("out must be NULL exactly when n is 0");
        for (size_t i = 0; i < n; i++) {
            if (fetch_candles_check(&out[i]))
                die("an emitted candle breaks the candle rules");
            if (i > 0 && out[i].ts <= out[i - 1].ts)
                die("emitted candles are not in strictly increasing time order");
            if (out[i].has_oi != 0 && out[i].has_oi != 1)
                die("has_oi is not 0 or 1");
        }
    } else if (rc == 1) {
        if (out != NULL || n != 0)
            die("error envelope with candles");
        /* error_type may be empty: {"error_type":""} is passed through as "" (only an
         * absent one becomes GeneralException), which fetch_candles_classify handles. */
    } else if (rc == -1) {
        if (out != NULL || n != 0)
            die("failure with candles");
        if (!msg[0])
            die("failure without a message");
    } else {
        die("return code not -1, 0 or 1");
    }
    free(out);

    /* The timestamp parser on the raw bytes too (NUL-terminated, short). */
    char ts[64];
    size_t tl = size < sizeof ts - 1 ? size : sizeof ts - 1;
    memcpy(ts, data, tl);
    ts[tl] = '\0';
    int64_t t;
    (void)fetch_candles_parse_ts(ts, &t);
    free(copy);
    return 0;
}
