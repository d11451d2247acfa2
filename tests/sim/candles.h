/* kite_sim candles: Kite intervals, IST calendar math, deterministic OHLCV bars, formatting */
#ifndef KITE_SIM_CANDLES_H
#define KITE_SIM_CANDLES_H

#include <stddef.h>
#include <stdint.h>

struct sim_interval {
    const char *name;   /* Kite name: "minute", "3minute", ..., "day" */
    int minutes;        /* bar length; 0 for day */
    int max_days;       /* longest request Kite accepts: to_date - from_date in days */
};

/* Kite interval by name, or NULL when Kite has no such interval. Any thread. */
const struct sim_interval *candles_interval(const char *name);

/* Parses "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" or the same with 'T' or '+' between date and
 * time, read as IST wall time. Stores local (IST) seconds since the epoch in *local.
 * Returns 0, or -1 on anything else (nothing stored). Any thread. */
int candles_parse_time(const char *s, int64_t *local);

/* One bar. Prices are in ticks of 0.05 (price = ticks / 20). */
struct candle {
    int64_t ts;                 /* bar start, UTC seconds since the epoch */
    int64_t open, high, low, close;
    int64_t volume, oi;
};

/* Generates the bars of `token` at `iv` whose start lies in [from_local, to_local] (IST local
 * seconds, both inclusive), Mon-Fri only, never before day `first_day` (days since epoch).
 * Each bar is a pure function of (seed, token, interval, bar start): any two requests agree on
 * the bars they share. Returns a malloc'ed array (caller frees; NULL when *n is 0). Any thread. */
struct candle *candles_generate(uint64_t seed, int64_t token, const struct sim_interval *iv,
                                int64_t first_day, int64_t from_local, int64_t to_local,
                                size_t *n);

/* Writes a tick count as Kite prints a price: the shortest decimal ("1705", "1699.25",
 * "1698.1", "-3.5"). buf needs 32 bytes. Returns buf. */
char *candles_fmt_price(char *buf, int64_t ticks);
/* Writes v as printf's "%lld" does. buf needs 21 bytes. Returns buf. */
char *candles_fmt_int(char *buf, int64_t v);
/* Writes a UTC timestamp as Kite does, in IST: "2017-12-15T09:15:00+0530". buf >= 32 bytes. */
char *candles_fmt_ts_ist(char *buf, int64_t ts);
/* Writes a UTC timestamp as "2017-12-15T03:45:00Z". buf >= 32 bytes. */
char *candles_fmt_ts_utc(char *buf, int64_t ts);

/* Stateless 64-bit mix of four words (splitmix64 rounds). Same inputs, same output. */
uint64_t candles_hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* candles_hash mapped to [0, 1). */
double candles_unit(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

#endif
