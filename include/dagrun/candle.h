/* The candle blob: the layout fetch_candles emits down a lane and upsert_candles reads. */
#ifndef DAGRUN_CANDLE_H
#define DAGRUN_CANDLE_H

#include <stdint.h>

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

#endif
