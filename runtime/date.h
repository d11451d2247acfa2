/* runtime-private: plugins never include this */
/* Calendar dates and ISO-8601 timestamps, with no dependence on TZ. */
#ifndef DR_DATE_H
#define DR_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

/* Days since 1970-01-01 for a proleptic Gregorian date; any range. */
int64_t date_days_from_civil(int y, int m, int d);
void date_civil_from_days(int64_t days, int *y, int *m, int *d);
bool date_valid(int y, int m, int d);

/* Parses "YYYY-MM-DD" (a real date, year 1900-2999). Returns 0 and the day
 * number, or -1 with err (offset set). */
int date_parse(const char *s, int64_t *days, struct dr_err *err);
/* "YYYY-MM-DD" into buf (11 bytes at least). */
void date_format(int64_t days, char *buf, size_t len);

/* Parses an ISO-8601 instant: "YYYY-MM-DDTHH:MM[:SS]" followed by "Z",
 * "+HH:MM", "+HHMM" or "+HH" (a space may stand for 'T'); a bare date means
 * midnight UTC; no offset means UTC. Stores Unix seconds. Returns 0 or -1. */
int date_parse_instant(const char *s, int64_t *t, struct dr_err *err);
/* The UTC calendar day of Unix seconds t and the seconds into it (0-86399), with floor
 * division: a time before 1970 lands on its own day. Pure; any thread. */
void date_split_instant(int64_t t, int *y, int *m, int *d, int *secs);
/* "2026-01-05T13:00:00Z" into buf (21 bytes at least). */
void date_format_instant(int64_t t, char *buf, size_t len);

#endif
