/* runtime-private: plugins never include this */
/* Run and task-instance states, shared by the executor and the store. */
#ifndef DR_RUNSTATE_H
#define DR_RUNSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum run_state { RUN_QUEUED, RUN_RUNNING, RUN_SUCCESS, RUN_PARTIAL, RUN_FAILED, RUN_CANCELLED };

/* Item states follow the download-job vocabulary; upstream_failed is a task
 * that never ran because its trigger rule was not met. */
enum ti_state {
    TI_PENDING, TI_RUNNING, TI_SUCCESS, TI_SKIPPED, TI_FAILED, TI_UPSTREAM_FAILED,
    TI_CANCELLED
};

const char *run_state_name(enum run_state s);     /* "success", ... */
int run_state_parse(const char *s, enum run_state *out);
const char *ti_state_name(enum ti_state s);
int ti_state_parse(const char *s, enum ti_state *out);
/* The process exit code for a finished run: 0 success, 1 failed or
 * cancelled, 3 partial. */
int run_state_exit_code(enum run_state s);

/* One task instance (or one lane item of a mapped task) as recorded. */
struct ti_record {
    const char *task_id;
    long map_index;             /* -1 when not mapped */
    const char *map_key;        /* e.g. "NSE:INFY"; NULL when not mapped */
    enum ti_state state;
    int try_number;             /* 1 on the first try */
    int64_t start_ms, end_ms;   /* Unix ms; 0 when not started/ended */
    const char *error;          /* NULL when none */
    const json_t *output;       /* small JSON output, NULL when none */
    const char *checkpoint;     /* NULL: keep the stored one */
};

/* What a run already achieved, loaded for a resume. */
struct prior_task {
    char *task_id;
    enum ti_state state;        /* for an unmapped task */
    json_t *output;             /* its stored output, owned, may be NULL */
    bool mapped;
    size_t n_items;             /* mapped: size of done[] and outputs */
    unsigned char *done;        /* mapped: 1 where the item ended success or skipped */
    json_t *item_outputs;       /* mapped: array (index = map index) of outputs or null, owned */
    char **checkpoints;         /* mapped: n_items stored checkpoints or NULLs, owned */
};

struct prior {
    struct prior_task *tasks;
    size_t n_tasks;
};

const struct prior_task *prior_find(const struct prior *p, const char *task_id);
void prior_free(struct prior *p);

#endif
