/* Test plugin: logs a line holding the value of the environment variable named by
 * param `var` (a credential), then fails the items whose map index is `fail_index`. */
#include <stdlib.h>
#include <dagrun/task.h>

static const dr_param params[] = {
    { "var", DR_T_STRING, "KITE_ACCESS_TOKEN", false, "variable whose value is logged" },
    { "fail_index", DR_T_INT, "1", false, "the item that fails (-1: none)" },
    { "lines", DR_T_INT, "1", false, "how many lines each item logs" },
    { NULL }
};

static dr_status secret_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *v = getenv(dr_param_str(ctx, "var"));
    long long n = dr_param_int(ctx, "lines");
    for (long long i = 0; i < n; i++)
        dr_log(ctx, DR_LOG_INFO, "line %lld: calling with token %s", i, v ? v : "(unset)");
    if (dr_map_index(ctx) == dr_param_int(ctx, "fail_index")) {
        dr_error(ctx, "item %lld fails on purpose", (long long)dr_map_index(ctx));
        return DR_FAIL;
    }
    return DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "log_secret",
    .summary = "test plugin that logs a credential and fails one item", .params = params,
    .run = secret_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
