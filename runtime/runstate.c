/* Run and task-instance states: names, exit codes and resume records. */
#include "runstate.h"

#include <stdlib.h>
#include <string.h>

static const char *const run_names[] = { "queued", "running", "success", "partial", "failed",
                                         "cancelled" };
static const char *const ti_names[] = { "pending", "running", "success", "skipped", "failed",
                                        "upstream_failed", "cancelled" };

const char *run_state_name(enum run_state s)
{
    return (unsigned)s < sizeof run_names / sizeof *run_names ? run_names[s] : "unknown";
}

int run_state_parse(const char *s, enum run_state *out)
{
    for (size_t i = 0; i < sizeof run_names / sizeof *run_names; i++)
        if (strcmp(s, run_names[i]) == 0) {
            *out = (enum run_state)i;
            return 0;
        }
    return -1;
}

const char *ti_state_name(enum ti_state s)
{
    return (unsigned)s < sizeof ti_names / sizeof *ti_names ? ti_names[s] : "unknown";
}

int ti_state_parse(const char *s, enum ti_state *out)
{
    for (size_t i = 0; i < sizeof ti_names / sizeof *ti_names; i++)
        if (strcmp(s, ti_names[i]) == 0) {
            *out = (enum ti_state)i;
            return 0;
        }
    return -1;
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
