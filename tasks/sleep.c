/* sleep: waits ms milliseconds in small steps, stopping early when cancelled. */
#include <time.h>

#include <dagrun/task.h>

static dr_status sleep_run(dr_ctx *ctx, void *state)
{
    (void)state;
    long long ms = dr_param_int(ctx, "ms");
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (dr_cancelled(ctx)) {
            dr_error(ctx, "cancelled before %lld ms were up", ms);
            return DR_FAIL;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long spent = (long long)(now.tv_sec - start.tv_sec) * 1000 +
                          (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= ms)
            return DR_OK;
        long long step = ms - spent < 10 ? ms - spent : 10;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = step * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static const dr_param params[] = {
    { "ms", DR_T_INT, "100", false, "how long to sleep, in milliseconds" },
    { NULL },
};

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "sleep",
    .summary = "sleep for a while, stopping early when cancelled",
    .params = params,
    .run = sleep_run,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
