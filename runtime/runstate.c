/* Run and task-instance states: names, exit codes and resume records. */
#include "runstate.h"

#include <stdlib.h>
#include <string.h>

static const char *const run_names[] = { "queued", "running", "success", "partial", "failed",
                                         "cancelled" };
static const char *const ti_names[] = { "pending", "running", "success", "skipped", "failed",
                                        "upstream_failed", "cancelled" };

/* names[i], or "unknown" past the n names. */
static const char *name_at(const char *const *names, size_t n, unsigned i)
{
    return i < n ? names[i] : "unknown";
}

/* The index of s among the n names, or -1. */
static int index_of(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

#define N_RUN (sizeof run_names / sizeof *run_names)
#define N_TI (sizeof ti_names / sizeof *ti_names)

const char *run_state_name(enum run_state s) { return name_at(run_names, N_RUN, (unsigned)s); }

int run_state_parse(const char *s, enum run_state *out)
{
    int i = index_of(run_names, N_RUN, s);
    if (i < 0)
        return -1;
    *out = (enum run_state)i;
    return 0;
}

const char *ti_state_name(enum ti_state s) { return name_at(ti_names, N_TI, (unsigned)s); }

int ti_state_parse(const char *s, enum ti_state *out)
{
    int i = index_of(ti_names, N_TI, s);
    if (i < 0)
        return -1;
    *out = (enum ti_state)i;
    return 0;
}

int run_state_exit_code(enum run_state s)
{
    switch (s) {
    case RUN_SUCCESS: return 0;
    case RUN_PARTIAL: return 3;
    default: return 1;
    }
}

const struct prior_task *prior_find(const struct prior *p, const char *task_id)
{
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n_tasks; i++)
        if (strcmp(p->tasks[i].task_id, task_id) == 0)
            return &p->tasks[i];
    return NULL;
}

void prior_free(struct prior *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_tasks; i++) {
        free(p->tasks[i].task_id);
        json_decref(p->tasks[i].output);
        free(p->tasks[i].done);
        json_decref(p->tasks[i].item_outputs);
        for (size_t k = 0; p->tasks[i].checkpoints && k < p->tasks[i].n_items; k++)
            free(p->tasks[i].checkpoints[k]);
        free(p->tasks[i].checkpoints);
    }
    free(p->tasks);
    p->tasks = NULL;
    p->n_tasks = 0;
}
