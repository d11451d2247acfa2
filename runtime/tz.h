/* runtime-private: plugins never include this */
/* IANA time zones read from the system's TZif files; thread-safe, never touches TZ. */
#ifndef DR_TZ_H
#define DR_TZ_H

#include <stdint.h>
#include <time.h>
#include "err.h"

/* A loaded zone is immutable and may be read from any thread. */
struct tz;

/* Returns the zone for an IANA name ("Asia/Kolkata", "UTC"), loading the
 * TZif file from /usr/share/zoneinfo (or $TZDIR) on first use and caching it
 * for the life of the process (the cache is locked; callers never free the
 * result). Names with "..", a leading '/', or outside [A-Za-z0-9_+-/] are
 * refused. NULL with err when unknown. Any thread. */
const struct tz *tz_get(const char *name, struct dr_err *err);
const char *tz_name(const struct tz *z);

/* Seconds east of UTC in force at instant t (Unix seconds). */
long tz_offset_at(const struct tz *z, int64_t t);
/* Local broken-down time at instant t (tm_gmtoff/tm_isdst set). */
void tz_localtime(const struct tz *z, int64_t t, struct tm *out);
/* Maps a local wall time (fields tm_year, tm_mon, tm_mday, tm_hour, tm_min,
 * tm_sec, as in struct tm) to instants. Returns how many instants show that
 * wall time: 0 in a spring-forward gap, 1 normally, 2 in a fall-back overlap;
 * *first and *second (when non-NULL) get the earlier and later one. In a gap,
 * *first gets the instant the wall time would have with the offset in force
 * before the gap (e.g. 02:30 on a New York spring day -> 07:30Z = 03:30 EDT). */
int tz_from_local(const struct tz *z, const struct tm *local, int64_t *first, int64_t *second);

#endif
