/* Test plugin: warns its message once and succeeds; for the test that a run's warnings reach
 * its event stream as they happen. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "message", DR_T_STRING, "a warning", false, "what to warn" },
    { NULL },
};

static dr_status warn_run(dr_ctx *ctx, void *state)
{
    (void)state;
    dr_warn(ctx, "%s", dr_param_str(ctx, "message"));
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "warn",
    .summary = "test plugin that warns once", .params = params, .run = warn_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
