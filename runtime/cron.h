/* runtime-private: plugins never include this */
/* Cron schedules with Vixie cron semantics, evaluated in an IANA time zone. */
#ifndef DR_CRON_H
#define DR_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include "err.h"
#include "tz.h"

struct cron;

/* Parses a 5-field expression (minute hour day-of-month month day-of-week;
 * lists, ranges, steps, names jan-dec and sun-sat, 7 = Sunday) or a macro
 * (@yearly @annually @monthly @weekly @daily @midnight @hourly). Returns a new
 * cron (free with cron_free), or NULL with err: e.g. `bad cron "30 18 * * 8":
 * day of week 8 out of range 0-7`, err->offset at the bad field. */
struct cron *cron_parse(const char *expr, struct dr_err *err);
void cron_free(struct cron *c);
/* The expression as given. */
const char *cron_text(const struct cron *c);

/* The first fire time strictly after `after` (Unix seconds), reading the
 * schedule in zone z, with Vixie cron's DST rules (fixed-time jobs fire once
 * on each matching day: at the end of a spring-forward gap, and at the first
 * pass of a fall-back overlap; jobs with '*' in minute or hour follow the
 * clock). The search has no horizon short of the supported years: returns 0,
 * or -1 only when nothing fires after `after` up to 2999-12-31 in zone z
 * (e.g. "0 0 30 2 *" from anywhere; "0 0 29 2 *\/7", Feb 29th on a Sunday, from
 * 2984-03-01). Years and months that cannot match are skipped a step each,
 * so a fire decades away costs microseconds. Any `after` is accepted: one
 * before year 1 searches from year 1. Pure; any thread. */
int cron_next(const struct cron *c, const struct tz *z, int64_t after, int64_t *next);

#endif
