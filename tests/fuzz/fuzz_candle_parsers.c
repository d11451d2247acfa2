/* libFuzzer target: the two candle parsers of tasks/fetch_candles.c agree on every body. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dagrun/task.h>
#include <dagrun/candle.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Non-static in tasks/fetch_candles.c (no header: declared here as defined there). */
typedef void (*fetch_candles_drop_fn)(void *ud, const char *ts, const char *why);
bool fetch_candles_parse_fast(const char *body, size_t len, dr_candle **out, size_t *n);
int fetch_candles_parse_tree(const char *body, size_t len, dr_candle **out, size_t *n,
                             fetch_candles_drop_fn on_drop, void *ud, char error_type[64],
                             char msg[256]);

static void die(const char *why)
{
    fprintf(stderr, "fuzz_candle_parsers: %s\n", why);
    abort();
}

static void on_drop(void *ud, const char *ts, const char *why)
{
    size_t *drops = ud;
    if (!ts || !why || strlen(ts) + strlen(why) == (size_t)-1)
        die("on_drop got no text");
    (*drops)++;
}

/* The whole input is the body. Whenever the fast parser takes it, the Jansson tree must
 * return the same candles, bit for bit (doubles included), and drop none; when the fast
 * parser gives up it must leave nothing behind. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan catches any read past the end. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    if (size)
        memcpy(body, data, size);
    dr_candle *f = (dr_candle *)0x1, *t = NULL;
    size_t nf = 12345, nt = 0, drops = 0;
    char etype[64], msg[256];
    bool fast = fetch_candles_parse_fast(size ? body : NULL, size, &f, &nf);
    int rc = fetch_candles_parse_tree(size ? body : NULL, size, &t, &nt, on_drop, &drops, etype,
                                      msg);
    if (!fast && (f != NULL || nf != 0))
        die("the fast parser gave up but left candles");
    if (fast) {
        if ((nf == 0) != (f == NULL))
            die("fast: out must be NULL exactly when n is 0");
        if (rc != 0)
            die("the fast parser took a body the tree refuses");
        if (drops)
            die("the fast parser took a body whose candles the tree drops");
        if (nf != nt || (nf && memcmp(f, t, nf * sizeof *f)))
            die("the two parsers read different candles");
    }
    if (rc == 0)
        for (size_t i = 1; i < nt; i++)
            if (t[i].ts <= t[i - 1].ts)
                die("tree: candles are not in strictly increasing time order");
    free(f);
    free(t);
    free(body);
    return 0;
}
