/* Test plugin the loader must refuse: no run callback. */
#include <dagrun/task.h>

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION, .size = sizeof def, .name = "no_run",
    .summary = "refused", .params = NULL, .run = NULL,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
