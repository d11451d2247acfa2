/* Test plugin the loader must refuse: an ABI newer than this dagrun's. */
#include <dagrun/task.h>

static dr_status bad_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION + 1, .size = sizeof def, .name = "wrong_abi",
    .summary = "refused", .params = NULL, .run = bad_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
