/* fail: fails the first `times` tries of each instance or item, then succeeds; for tests. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <dagrun/task.h>

/* Tries seen per map index (slot 0: unmapped), shared by the workers. */
struct fail_state {
    pthread_mutex_t lock;       /* guards tries, cap */
    long long *tries;
    size_t cap;
};

static int fail_init(dr_ctx *ctx, void **state)
{
    const char *mode = dr_param_str(ctx, "mode");
    if (mode && strcmp(mode, "fail") && strcmp(mode, "retry") && strcmp(mode, "fatal")) {
        dr_error(ctx, "mode must be fail, retry or fatal, got \"%s\"", mode);
        return -1;
    }
    struct fail_state *s = calloc(1, sizeof *s);
    if (!s) {
        dr_error(ctx, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    *state = s;
    return 0;
}

/* Counts this try of the current instance or item; returns its number (1 = first), -1 on OOM. */
static long long count_try(struct fail_state *s, long index)
{
    size_t slot = index < 0 ? 0 : (size_t)index + 1;
    long long n = -1;
    pthread_mutex_lock(&s->lock);
    if (slot >= s->cap) {
        size_t cap = s->cap ? s->cap : 16;
        while (cap <= slot)
            cap *= 2;
        long long *t = realloc(s->tries, cap * sizeof *t);
        if (!t)
            goto out;
        memset(t + s->cap, 0, (cap - s->cap) * sizeof *t);
        s->tries = t;
        s->cap = cap;
    }
    n = ++s->tries[slot];
out:
    pthread_mutex_unlock(&s->lock);
    return n;
}

static dr_status fail_run(dr_ctx *ctx, void *state)
{
    long long times = dr_param_int(ctx, "times");
    const char *mode = dr_param_str(ctx, "mode");
    long long n = count_try(state, dr_map_index(ctx));
    if (n < 0) {
        dr_error(ctx, "out of memory");
        return DR_FAIL;
    }
    if (times >= 0 && n > times)
        return DR_OK;
    dr_error(ctx, "failing on purpose (try %lld)", n);
    if (mode && strcmp(mode, "fail") == 0)
        return DR_FAIL;
    if (mode && strcmp(mode, "fatal") == 0)
        return DR_FATAL;
    return DR_RETRY;
}

static void fail_fini(dr_ctx *ctx, void *state)
{
    (void)ctx;
    struct fail_state *s = state;
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->tries);
    free(s);
}

static const dr_param params[] = {
    { "times", DR_T_INT, "-1", false, "how many tries fail before one succeeds; -1: all" },
    { "mode", DR_T_STRING, "retry", false, "how to fail: fail, retry or fatal" },
    { NULL },
};

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "fail",
    .summary = "fail the first tries of each instance or item, then succeed",
    .params = params,
    .init = fail_init,
    .run = fail_run,
    .fini = fail_fini,
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
