/* libFuzzer target: cron_parse on the input and cron_next from several instants in three zones. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "date.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CRON_MAX_INPUT 256

static const char *const zone_names[] = { "UTC", "America/New_York", "Asia/Kolkata" };
#define N_ZONES (sizeof zone_names / sizeof zone_names[0])

/* Start instants: the epoch, around New York's 2024 DST changes, a leap day, 2026, 2099, the
 * day after the last Feb 29th on a Sunday before 3000, and the last supported day. */
static const int64_t starts[] = {
    0,
    1710050400,     /* 2024-03-10T06:00:00Z: New York spring-forward night */
    1730613600,     /* 2024-11-03T06:00:00Z: New York fall-back night */
    1709164800,     /* 2024-02-29T00:00:00Z */
    1767618000,     /* 2026-01-05T13:00:00Z */
    4102444799,     /* 2099-12-31T23:59:59Z */
    32003942400,    /* 2984-03-01T00:00:00Z */
    32503593600,    /* 2999-12-31T00:00:00Z */
};
#define N_STARTS (sizeof starts / sizeof starts[0])

static const struct tz *zones[N_ZONES];

static void die(const char *expr, const char *zone, int64_t after, const char *why, int64_t v)
{
    char a[32], b[32];
    date_format_instant(after, a, sizeof a);
    date_format_instant(v, b, sizeof b);
    fprintf(stderr, "fuzz_cron: \"%s\" in %s after %s: %s (%s)\n", expr, zone, a, why, b);
    abort();
}

static void load_zones(void)
{
    if (zones[0])
        return;
    for (size_t i = 0; i < N_ZONES; i++) {
        struct dr_err err;
        zones[i] = tz_get(zone_names[i], &err);
        if (!zones[i]) {
            fprintf(stderr, "fuzz_cron: %s\n", err.msg);
            abort();
        }
    }
}

/* The first day cron_next never reaches: 3000-01-01, local time. */
#define DAY_3000 376200LL

/* Fires from `after`, checking that each is later than the last and no later than
 * 2999-12-31 local time, that any instant between two fires leads to the same next
 * fire, and that "never" from an instant stays "never" from a later one. */
static void walk(const struct cron *c, const char *expr, size_t zi, int64_t after)
{
    const struct tz *z = zones[zi];
    for (int k = 0; k < 4; k++) {
        int64_t next = 0;
        if (cron_next(c, z, after, &next) < 0) {
            int64_t later = after + (DAY_3000 * 86400 - after) / 3;
            if (later > after && cron_next(c, z, later, &next) == 0)
                die(expr, zone_names[zi], later, "fires after a start from which it never fires", next);
            return;
        }
        if (next <= after)
            die(expr, zone_names[zi], after, "next is not after the start", next);
        if (next + tz_offset_at(z, next) >= DAY_3000 * 86400)
            die(expr, zone_names[zi], after, "next is past 2999-12-31 local time", next);
        int64_t again = 0;
        int64_t probe = after + (next - after) / 2;
        if (cron_next(c, z, probe, &again) < 0 || again != next)
            die(expr, zone_names[zi], probe, "a start between two fires gives another next", again);
        if (next - 1 != after && (cron_next(c, z, next - 1, &again) < 0 || again != next))
            die(expr, zone_names[zi], next - 1, "the second before a fire gives another next", again);
        after = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[CRON_MAX_INPUT + 1];
    if (size > CRON_MAX_INPUT)
        size = CRON_MAX_INPUT;
    memcpy(expr, data, size);
    expr[size] = '\0';
    load_zones();

    struct dr_err err;
    err_clear(&err);
    struct cron *c = cron_parse(expr, &err);
    if (!c) {
        if (!err.msg[0])
            die(expr, "-", 0, "refused without a message", 0);
        return 0;
    }
    if (!cron_text(c))
        die(expr, "-", 0, "cron_text is NULL", 0);
    /* One more start picked by the input, anywhere in 1900-2999. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    int64_t extra = -2208988800LL + (int64_t)(h % (32503680000ULL + 2208988800ULL));
    for (size_t zi = 0; zi < N_ZONES; zi++) {
        for (size_t si = 0; si < N_STARTS; si++)
            walk(c, expr, zi, starts[si]);
        walk(c, expr, zi, extra);
    }
    cron_free(c);
    return 0;
}
