/* runtime-private: plugins never include this */
/* The executor's work queue: units for the workers, results back to the coordinator. */
#ifndef DR_WORKQ_H
#define DR_WORKQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Units cross threads here and only here, linked through the workq_item each of them
 * carries (struct workq_item, exec_private.h); a queue shared by several processes (PostgreSQL
 * SKIP LOCKED) would replace this file, not the executor. */
struct workq_item {
    struct workq_item *next;    /* the queue's lock while queued, else the item's owner */
};

struct workq {
    pthread_mutex_t lock;       /* guards every field below */
    pthread_cond_t work_cv;     /* workers wait here for units */
    pthread_cond_t done_cv;     /* the coordinator waits here for results (monotonic) */
    struct workq_item *ready_head, *ready_tail;
    struct workq_item *done_head;     /* results, newest first */
    int idle;                   /* workers waiting on work_cv */
    bool shutdown;              /* workers exit once set */
    bool halt;                  /* a unit ended DR_FATAL: workers take no more units */
    bool coord_waiting;         /* the coordinator waits on done_cv */
};

/* Returns 0, or -1 when the lock or condvars cannot be made. Coordinator. */
int workq_init(struct workq *q);
/* After every worker is joined. */
void workq_destroy(struct workq *q);

/* Appends the list head..tail (n items) and wakes at most n idle workers. Coordinator. */
void workq_push(struct workq *q, struct workq_item *head, struct workq_item *tail, size_t n);
/* Takes back every item no worker has started; returns the list. Coordinator. */
struct workq_item *workq_reclaim(struct workq *q);
/* Waits up to wait_ms (real monotonic ms; <= 0: no wait) for results and takes
 * them all; returns the list (NULL when none came). Coordinator. */
struct workq_item *workq_results(struct workq *q, int64_t wait_ms);
/* Makes the workers exit once they finish their item. Coordinator. */
void workq_shutdown(struct workq *q);

/* Blocks for the next item; NULL when the worker should exit (shutdown or
 * halt). Worker. */
struct workq_item *workq_pop(struct workq *q);
/* Hands a finished item back; halt: take no more units (DR_FATAL). Worker. */
void workq_finish(struct workq *q, struct workq_item *u, bool halt);

#endif
