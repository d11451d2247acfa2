/* Test plugin: one param of each type, one required; calls no dr_* function. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "text", DR_T_STRING, "hello", false, "a string" },
    { "count", DR_T_INT, "5", false, "an int" },
    { "flag", DR_T_BOOL, "false", false, "a bool" },
    { "day", DR_T_DATE, "2024-01-01", false, "a date" },
    { "wait", DR_T_DURATION, "2s", false, "a duration" },
    { "symbols", DR_T_LIST, "[\"NSE\"]", false, "a list" },
    { "need", DR_T_STRING, NULL, true, "required, no default" },
    { "shared", DR_T_STRING, "x", false, "also declared by ok_plain, as a duration" },
    { NULL }
};

static dr_status typed_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "ok_typed",
    .summary = "test plugin with typed params", .params = params, .run = typed_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
