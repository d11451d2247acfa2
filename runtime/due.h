/* runtime-private: plugins never include this */
/* Which scheduled intervals are due: the scheduler's firing rule, pure (no database, no clock). */
#ifndef DR_DUE_H
#define DR_DUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cron.h"
#include "tz.h"

/* A DAG's schedule, as the firing rule reads it. */
struct due_rule {
    const struct cron *cron;    /* the schedule */
    const struct tz *tz;        /* its zone */
    int64_t start_date;         /* day number (date.h) in tz, or INT64_MIN when absent */
    bool catchup;               /* every missed interval, or only the latest */
};

/* One data interval [start, end) between two consecutive cron ticks; its logical date is
 * start (as in Airflow). */
struct due_interval {
    int64_t start, end;
};

/* The intervals of r due at now (end <= now), oldest first, into out[0..max); returns how
 * many. has_last/last: the logical date of the DAG's latest scheduled run, which is not due
 * again. catchup: every due interval after last (or from start_date's midnight in the zone
 * when there is no last run; only the latest when there is neither). Not catchup: only the
 * latest due interval, and none when it is not after last or starts before start_date.
 * Pure; any thread. */
size_t due_intervals(const struct due_rule *r, bool has_last, int64_t last, int64_t now,
                     struct due_interval *out, size_t max);

/* The intervals of r whose logical date (start) lies in [from, to] (Unix seconds, both
 * included) and that have ended by now (end <= now), oldest first, into out[0..max); returns
 * how many. To go on past max, call again with from = the last start + 1. start_date and
 * catchup do not apply: a backfill names its range. Pure; any thread. */
size_t due_between(const struct due_rule *r, int64_t from, int64_t to, int64_t now,
                   struct due_interval *out, size_t max);

/* Midnight at the start of day number `days` (date.h) in zone z, as Unix seconds (the first
 * pass of it when the zone repeats it, the instant after the gap when it skips it). Pure. */
int64_t due_day_start(const struct tz *z, int64_t days);

#endif
