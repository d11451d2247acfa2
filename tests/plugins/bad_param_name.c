/* Test plugin the loader must refuse: a param name outside [a-z][a-z0-9_]*. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "Days", DR_T_INT, "1", false, "upper case" },
    { NULL }
};

static dr_status bad_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "bad_param_name",
    .summary = "refused", .params = params, .run = bad_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
