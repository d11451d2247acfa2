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

#endif
