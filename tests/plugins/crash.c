/* Test plugin: dies of SIGSEGV in run (a write through a null pointer), as a broken plugin
 * would; for the test that such a plugin fails only its run. */
#include <dagrun/task.h>

static const dr_param params[] = { { NULL } };

static dr_status crash_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    volatile int *volatile p = 0;
    *p = 1;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "crash",
    .summary = "test plugin that segfaults", .params = params, .run = crash_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
