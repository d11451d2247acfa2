/* runtime-private: plugins never include this */
/* Durations such as 250ms, 2s, 5m, 1h, 1d. */
#ifndef DR_DURATION_H
#define DR_DURATION_H

#include <stdint.h>
#include "err.h"

/* Parses "<digits><unit>" with unit ms, s, m, h or d (also a bare "0").
 * Stores milliseconds in *ms. Refuses empty, negative, fractional, unknown
 * units and values over 365 days. Returns 0, or -1 with err (err->offset at
 * the offending character). */
int duration_parse(const char *s, int64_t *ms, struct dr_err *err);
/* Writes the shortest exact form ("2s", "250ms", "5m") into buf. */
void duration_format(int64_t ms, char *buf, size_t len);

#endif
