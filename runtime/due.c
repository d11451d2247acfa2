/* Which scheduled intervals are due: the scheduler's firing rule, pure (no database, no clock). */
#include "due.h"

#include <time.h>

#include "date.h"

int64_t due_day_start(const struct tz *z, int64_t days)
{
    int y, m, d;
    date_civil_from_days(days, &y, &m, &d);
    struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
    int64_t first = days * 86400, second;
    tz_from_local(z, &tm, &first, &second);
    return first;
}

size_t due_intervals(const struct due_rule *r, bool has_last, int64_t last, int64_t now,
                     struct due_interval *out, size_t max)
{
    if (!r->cron || max == 0)
        return 0;
    int64_t floor = r->start_date != INT64_MIN ? due_day_start(r->tz, r->start_date) : INT64_MIN;
    /* The first interval starts at the first tick at or after max(start_date, last run + 1s). */
    int64_t from = has_last ? last : (floor != INT64_MIN ? floor - 1 : INT64_MIN);
    if (!r->catchup || from == INT64_MIN) {
        /* Only the latest due interval: the last two ticks at or before now. Looking back two
         * years bounds the walk; a schedule that fires less often has nothing due here. */
        int64_t probe = now - 366LL * 86400 * 2, a = INT64_MIN, b = INT64_MIN, t;
        if (from != INT64_MIN && from > probe)
            probe = from;
        while (cron_next(r->cron, r->tz, probe, &t) == 0 && t <= now) {
            a = b;
            b = t;
            probe = t;
        }
        if (a == INT64_MIN || (has_last && a <= last) || (floor != INT64_MIN && a < floor))
            return 0;
        out[0] = (struct due_interval){ a, b };
        return 1;
    }
    size_t n = 0;
    int64_t start, end;
    while (n < max && cron_next(r->cron, r->tz, from, &start) == 0 &&
           cron_next(r->cron, r->tz, start, &end) == 0 && end <= now) {
        out[n++] = (struct due_interval){ start, end };
        from = start;
    }
    return n;
}

size_t due_between(const struct due_rule *r, int64_t from, int64_t to, int64_t now,
                   struct due_interval *out, size_t max)
{
    size_t n = 0;
    int64_t start, end;
    if (!r->cron)
        return 0;
    while (n < max && cron_next(r->cron, r->tz, from - 1, &start) == 0 && start <= to &&
           cron_next(r->cron, r->tz, start, &end) == 0 && end <= now) {
        out[n++] = (struct due_interval){ start, end };
        from = start + 1;
    }
    return n;
}
