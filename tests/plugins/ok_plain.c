/* Test plugin: a few optional params, like fetch_candles' interval/from/to. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "interval", DR_T_STRING, "day", false, "candle interval" },
    { "from", DR_T_DATE, "2020-01-01", false, "first day" },
    { "to", DR_T_DATE, "today", false, "last day" },
    { "shared", DR_T_DURATION, "1s", false, "also declared by ok_typed, as a string" },
    { NULL }
};

static dr_status plain_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "ok_plain",
    .summary = "test plugin with optional params", .params = params, .run = plain_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
