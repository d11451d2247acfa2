/* The executor's work queue: units for the workers, results back to the coordinator. */
#include "workq.h"

#include <errno.h>
#include <time.h>

#include "deadline.h"

int workq_init(struct workq *q)
{
    *q = (struct workq){ 0 };
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0 && (rc = pthread_mutex_init(&q->lock, NULL)) == 0) {
        if ((rc = pthread_cond_init(&q->work_cv, NULL)) == 0) {
            if ((rc = pthread_cond_init(&q->done_cv, &ca)) != 0)
                pthread_cond_destroy(&q->work_cv);
        }
        if (rc != 0)
            pthread_mutex_destroy(&q->lock);
    }
    pthread_condattr_destroy(&ca);
    return rc == 0 ? 0 : -1;
}

void workq_destroy(struct workq *q)
{
    pthread_cond_destroy(&q->done_cv);
    pthread_cond_destroy(&q->work_cv);
    pthread_mutex_destroy(&q->lock);
}

void workq_push(struct workq *q, struct workq_item *head, struct workq_item *tail, size_t n)
{
    if (!head)
        return;
    pthread_mutex_lock(&q->lock);
    if (q->ready_tail)
        q->ready_tail->next = head;
    else
        q->ready_head = head;
    q->ready_tail = tail;
    tail->next = NULL;
    /* One wake-up per unit, never more than the idle workers: no broadcast storms. */
    size_t wake = n < (size_t)q->idle ? n : (size_t)q->idle;
    for (size_t i = 0; i < wake; i++)
        pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->lock);
}

struct workq_item *workq_reclaim(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    struct workq_item *u = q->ready_head;
    q->ready_head = q->ready_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return u;
}

struct workq_item *workq_results(struct workq *q, int64_t wait_ms)
{
    struct timespec ts = deadline_in_ms(CLOCK_MONOTONIC, wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&q->lock);
    q->coord_waiting = true;
    while (!q->done_head && wait_ms > 0)
        if (pthread_cond_timedwait(&q->done_cv, &q->lock, &ts) == ETIMEDOUT)
            break;
    q->coord_waiting = false;
    struct workq_item *done = q->done_head;
    q->done_head = NULL;
    pthread_mutex_unlock(&q->lock);
    return done;
}

void workq_shutdown(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_cond_broadcast(&q->work_cv);
    pthread_mutex_unlock(&q->lock);
}

struct workq_item *workq_pop(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    while ((!q->ready_head || q->halt) && !q->shutdown) {
        q->idle++;
        pthread_cond_wait(&q->work_cv, &q->lock);
        q->idle--;
    }
    struct workq_item *u = NULL;
    if (q->ready_head && !q->halt) {
        u = q->ready_head;
        q->ready_head = u->next;
        if (!q->ready_head)
            q->ready_tail = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    return u;
}

void workq_finish(struct workq *q, struct workq_item *u, bool halt)
{
    pthread_mutex_lock(&q->lock);
    if (halt)
        q->halt = true;
    u->next = q->done_head;
    q->done_head = u;
    /* Only the coordinator waits on done_cv, and only when it says so. */
    if (q->coord_waiting)
        pthread_cond_signal(&q->done_cv);
    pthread_mutex_unlock(&q->lock);
}
