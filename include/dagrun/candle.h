/* What the candle plugins share: the blob layout fetch_candles emits down a lane and
 * upsert_candles reads, the candle intervals they take, and the candle table's name rule. */
#ifndef DAGRUN_CANDLE_H
#define DAGRUN_CANDLE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* A contract between two plugins, not with the runtime, which passes blobs on
 * without reading them (dr_emit_blob, dr_lane_blob). Change the layout only
 * together with its name: a reader checks the type before the length. */
#define DR_BLOB_CANDLES "dr_candle/v1"

/* One candle; a blob of type DR_BLOB_CANDLES is an array of these. */
typedef struct dr_candle {
    int64_t ts;         /* candle start, Unix seconds UTC */
    double open, high, low, close;
    int64_t volume;
    int64_t oi;         /* valid when has_oi */
    int32_t has_oi;
    int32_t reserved;
} dr_candle;

/* The candle intervals (the broker's names), NULL-terminated: the one_of of a
 * candle_interval param's dr_param_rule. DR_CANDLE_INTERVALS_TEXT lists the same, for
 * help texts and messages. */
static const char *const dr_candle_intervals[] = { "minute", "3minute", "5minute", "10minute",
                                                   "15minute", "30minute", "60minute", "day",
                                                   NULL };
#define DR_CANDLE_INTERVALS_TEXT \
    "minute, 3minute, 5minute, 10minute, 15minute, 30minute, 60minute, day"

/* True when s may name a candle table: a plain lower-case SQL name ([a-z_][a-z0-9_]*, at
 * most 63 bytes), the same unquoted or quoted. Pure; any thread. */
static inline bool dr_candle_table_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 63 || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

#endif
