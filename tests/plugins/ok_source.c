/* Test plugin the loader must accept: ABI 2 with source_param naming its string param "source". */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "source", DR_T_STRING, "kite", false, "config.json source to send requests through" },
    { NULL, 0, NULL, false, NULL }
};

static dr_status source_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "ok_source",
    .summary = "declares its source param", .params = params, .run = source_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
