/* Test plugin the loader must accept: built against ABI 1's smaller descriptor (no source_param). */
#include <dagrun/task.h>

/* dr_task_def as ABI 1's task.h declared it: it ended with fini. */
struct v1_task_def {
    uint32_t abi_version;
    uint32_t size;
    const char *name;
    const char *summary;
    const dr_param *params;
    int (*init)(dr_ctx *ctx, void **state);
    dr_status (*run)(dr_ctx *ctx, void *state);
    void (*fini)(dr_ctx *ctx, void *state);
};

static dr_status v1_run(dr_ctx *ctx, void *state)
{
    (void)ctx;
    (void)state;
    return DR_OK;
}

/* The bytes after the v1 descriptor look like a source_param naming no param: a loader
 * that read past `size` would refuse the plugin. */
static const struct {
    struct v1_task_def def;
    const char *after;
} blob = {
    .def = { .abi_version = 1, .size = sizeof(struct v1_task_def), .name = "v1_layout",
             .summary = "an ABI 1 plugin", .params = NULL, .run = v1_run },
    .after = "not_a_param",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return (const dr_task_def *)&blob.def; }
