/* kite_sim instrument master: deterministic instruments and Kite's CSV dump of them */
#ifndef KITE_SIM_INSTRUMENTS_H
#define KITE_SIM_INSTRUMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct instrument {
    int64_t token, exchange_token;
    char *symbol, *name;        /* owned */
};
struct instruments {
    struct instrument *v;       /* owned; v[k].exchange_token = SIM_FIRST_EXCHANGE_TOKEN + k */
    size_t n;
    char exchange[16];
    int segment_code;           /* low byte of every token (NSE 1, BSE 4, ...) */
    char *csv;                  /* owned: header + all rows, CRLF line ends */
    size_t csv_len;
    size_t header_len;          /* the first header_len bytes of csv are the header line */
};

/* Builds n instruments for exchange `ex` from `seed` (names only; tokens depend on k and the
 * exchange alone, so they are stable across seeds). hostile: names and some symbols carry
 * quotes, commas, backslashes, newlines, unicode and SQL. Returns 0, or -1 on a bad argument
 * (exchange empty or longer than 15 bytes). Main thread, before serving. */
int instruments_init(struct instruments *in, size_t n, const char *ex, uint64_t seed,
                     bool hostile);
/* The instrument with this token, or NULL. Borrowed. Any thread (the table is read-only). */
const struct instrument *instruments_find(const struct instruments *in, int64_t token);
/* Frees everything instruments_init allocated. */
void instruments_free(struct instruments *in);

#endif
