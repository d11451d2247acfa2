/* Test plugin the loader must refuse: a descriptor smaller than ABI 1's (it stops before fini). */
#include <dagrun/task.h>

static dr_status bad_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = offsetof(dr_task_def, fini), .name = "small_size",
    .summary = "refused", .params = NULL, .run = bad_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
