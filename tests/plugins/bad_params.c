/* Test plugin the loader must refuse: a param declared twice. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "days", DR_T_INT, "1", false, "first" },
    { "days", DR_T_INT, "2", false, "again" },
    { NULL }
};

static dr_status bad_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "bad_params",
    .summary = "refused", .params = params, .run = bad_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
