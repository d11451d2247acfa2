/* emit_list: emits a JSON array of n objects {"key":"item-<i>","i":i} to map over. */
#include <stdio.h>

#include <dagrun/task.h>

static dr_status emit_list_run(dr_ctx *ctx, void *state)
{
    (void)state;
    long long n = dr_param_int(ctx, "n");
    if (n < 0) {
        dr_error(ctx, "n must be >= 0, got %lld", n);
        return DR_FAIL;
    }
    json_t *arr = json_array();
    for (long long i = 0; i < n; i++) {
        char key[40];
        snprintf(key, sizeof key, "item-%lld", i);
        json_array_append_new(arr, json_pack("{s:s, s:I}", "key", key, "i", (json_int_t)i));
    }
    return dr_emit_json_new(ctx, arr) == 0 ? DR_OK : DR_FAIL;
}

static const dr_param params[] = {
    { "n", DR_T_INT, "3", false, "how many items" },
    { NULL },
};

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "emit_list",
    .summary = "emit a list of n items to map over",
    .params = params,
    .run = emit_list_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
