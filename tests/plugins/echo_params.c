/* Test plugin: its output is the run's own params as it sees them (run_id, logical_date,
 * data_interval_start, data_interval_end) and its `note` param, for the scheduler and
 * `--logical-date`/`--conf` tests to read back from task_instance.output. */
#include <dagrun/task.h>

static const dr_param params[] = {
    { "note", DR_T_STRING, "default", false, "echoed as is" },
    { NULL }
};

static dr_status echo_run(dr_ctx *ctx, void *state)
{
    (void)state;
    static const char *const names[] = { "run_id", "logical_date", "data_interval_start",
                                         "data_interval_end", "note" };
    json_t *out = json_object();
    if (!out)
        return DR_FAIL;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = dr_param_str(ctx, names[i]);
        json_object_set_new(out, names[i], v ? json_string(v) : json_null());
    }
    return dr_emit_json_new(ctx, out) < 0 ? DR_FAIL : DR_OK;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "echo_params",
    .summary = "test plugin: outputs the run params it sees", .params = params,
    .run = echo_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
