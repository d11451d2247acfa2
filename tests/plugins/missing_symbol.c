/* Test plugin the loader must refuse: it needs a function nobody defines, so RTLD_NOW fails. */
#include <dagrun/task.h>

__attribute__((visibility("default"))) int dr_test_function_nobody_defines(void);

static dr_status missing_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return dr_test_function_nobody_defines() ? DR_OK : DR_FAIL;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "missing_symbol",
    .summary = "refused", .run = missing_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
