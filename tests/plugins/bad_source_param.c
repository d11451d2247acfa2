/* Test plugin the loader must refuse: source_param names a param that is not a string. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "source", DR_T_INT, "1", false, "not a source name" },
    { NULL, 0, NULL, false, NULL }
};

static dr_status bad_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "bad_source_param",
    .summary = "refused", .params = params, .run = bad_run, .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
