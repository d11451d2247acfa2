/* noop: does nothing and succeeds; for tests and CI DAGs. */
#include <dagrun/task.h>

static dr_status noop_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_param params[] = { { NULL } };

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "noop",
    .summary = "do nothing and succeed",
    .params = params,
    .run = noop_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
