/* Task-instance records written by a thread of their own (see recorder.h). */
#include "recorder.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* At most this many writers, each with its own connection, started when a batch is handed
 * over while every writer is busy. The coordinator hands over at most one batch more than
 * there are writers, then waits rather than run further ahead of the database. */
enum { N_WRITERS = 2 };

/* What the batch owns of one record; the record (a borrowing view, as store_ti_write takes
 * it) points at these. */
struct owned {
    char *error, *checkpoint;
    json_t *output;
};

struct batch {
    struct batch *next;
    struct ti_record *recs;     /* views: task id and map key borrowed, the rest in own[] */
    struct owned *own;          /* parallel to recs */
    size_t n, cap;
};

struct writer {
    struct recorder *rc;
    struct store *st;
    pthread_t thread;
};

struct recorder {
    const char *run_id;
    const char *url;
    struct writer w[N_WRITERS];
    int n_writers;              /* 0: batches are written on fallback at once */
    bool no_more;               /* a writer could not start: no more tries */
    struct store *fallback;
    pthread_mutex_t lock;
    pthread_cond_t cv;          /* a batch came or was written, or the recorder closes */
    struct batch *head, *tail;  /* handed over: head is being written */
    size_t waiting;
    bool closing;
    struct batch *open;         /* being filled by the coordinator (no lock) */
    size_t lost;                /* records the store refused (lock) */
    char error[512];            /* the first refusal (lock) */
};

static void owned_release(struct owned *o)
{
    free(o->error);
    free(o->checkpoint);
    json_decref(o->output);
    *o = (struct owned){ 0 };
}

static void batch_free(struct batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        owned_release(&b->own[i]);
    free(b->recs);
    free(b->own);
    free(b);
}

static void note_lost(struct recorder *rc, size_t n, const char *msg)
{
    log_msg(DR_LOG_ERROR, rc->run_id, NULL, NULL, "recording %zu task instances: %s", n, msg);
    pthread_mutex_lock(&rc->lock);
    rc->lost += n;
    if (!rc->error[0])
        snprintf(rc->error, sizeof rc->error, "%s", msg);
    pthread_mutex_unlock(&rc->lock);
}

static void write_batch(struct recorder *rc, struct store *s, struct batch *b)
{
    struct dr_err e;
    err_clear(&e);
    if (b->n && store_ti_write(s, rc->run_id, b->recs, b->n, &e) < 0)
        note_lost(rc, b->n, e.msg);
    batch_free(b);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct recorder *rc = w->rc;
    pthread_mutex_lock(&rc->lock);
    for (;;) {
        while (!rc->head && !rc->closing)
            pthread_cond_wait(&rc->cv, &rc->lock);
        struct batch *b = rc->head;
        if (!b)
            break;
        rc->head = b->next;
        if (!rc->head)
            rc->tail = NULL;
        pthread_mutex_unlock(&rc->lock);
        write_batch(rc, w->st, b);
        pthread_mutex_lock(&rc->lock);
        rc->waiting--;
        pthread_cond_broadcast(&rc->cv);
    }
    pthread_mutex_unlock(&rc->lock);
    return NULL;
}

struct recorder *recorder_start(const char *url, struct store *fallback, const char *run_id)
{
    struct recorder *rc = calloc(1, sizeof *rc);
    if (!rc)
        return NULL;
    rc->run_id = run_id;
    rc->url = url;
    rc->no_more = !url;
    rc->fallback = fallback;
    pthread_mutex_init(&rc->lock, NULL);
    pthread_cond_init(&rc->cv, NULL);
    return rc;
}

/* Coordinator thread: one more writer. */
static void start_writer(struct recorder *rc)
{
    struct writer *w = &rc->w[rc->n_writers];
    struct dr_err e;
    err_clear(&e);
    w->rc = rc;
    if (!(w->st = store_open(rc->url, &e))) {
        log_msg(DR_LOG_WARN, rc->run_id, NULL, NULL, "recording task instances: %s", e.msg);
        rc->no_more = true;
    } else if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        store_close(w->st);
        rc->no_more = true;
    } else {
        rc->n_writers++;
    }
}

size_t recorder_add(struct recorder *rc, const struct ti_record *r)
{
    if (!rc->open && !(rc->open = calloc(1, sizeof *rc->open))) {
        note_lost(rc, 1, "out of memory");
        return 0;
    }
    struct batch *b = rc->open;
    char *error = r->error ? strdup(r->error) : NULL;
    char *checkpoint = r->checkpoint ? strdup(r->checkpoint) : NULL;
    if ((r->error && !error) || (r->checkpoint && !checkpoint))
        goto oom;
    size_t slot = b->n;
    /* An unmapped task's running record may still be here: one row may appear only once
     * per upsert statement. O(batch) for the few unmapped tasks. */
    for (size_t i = 0; r->map_index < 0 && i < b->n && slot == b->n; i++)
        if (b->recs[i].map_index < 0 && strcmp(b->recs[i].task_id, r->task_id) == 0) {
            slot = i;
            owned_release(&b->own[i]);
        }
    if (slot == b->n) {
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            struct ti_record *p = realloc(b->recs, cap * sizeof *p);
            if (!p)
                goto oom;
            b->recs = p;
            struct owned *q = realloc(b->own, cap * sizeof *q);
            if (!q)
                goto oom;
            b->own = q;
            b->cap = cap;
        }
        b->n++;
    }
    /* A reference of the batch's own on the (shared, read-only) output. */
    struct owned *o = &b->own[slot];
    *o = (struct owned){ error, checkpoint, json_incref((json_t *)r->output) };
    b->recs[slot] = *r;
    b->recs[slot].error = o->error;
    b->recs[slot].checkpoint = o->checkpoint;
    b->recs[slot].output = o->output;
    return b->n;
oom:
    free(error);
    free(checkpoint);
    note_lost(rc, 1, "out of memory");
    return b->n;
}

/* Hands the open batch to the writers; may_start: a writer may be started for it. */
static void hand_over(struct recorder *rc, bool may_start)
{
    struct batch *b = rc->open;
    if (!b)
        return;
    rc->open = NULL;
    pthread_mutex_lock(&rc->lock);
    bool busy = rc->waiting >= (size_t)rc->n_writers;
    pthread_mutex_unlock(&rc->lock);
    if (busy && may_start && !rc->no_more && rc->n_writers < N_WRITERS)
        start_writer(rc);
    if (!rc->n_writers) {
        write_batch(rc, rc->fallback, b);
        return;
    }
    pthread_mutex_lock(&rc->lock);
    while (rc->waiting > (size_t)rc->n_writers)
        pthread_cond_wait(&rc->cv, &rc->lock);
    if (rc->tail)
        rc->tail->next = b;
    else
        rc->head = b;
    rc->tail = b;
    rc->waiting++;
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->lock);
}

void recorder_flush(struct recorder *rc)
{
    hand_over(rc, true);
}

size_t recorder_close(struct recorder *rc, char *msg, size_t msg_len)
{
    if (!rc)
        return 0;
    hand_over(rc, false);   /* the last batch: not worth a new connection */
    pthread_mutex_lock(&rc->lock);
    rc->closing = true;
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->lock);
    for (int i = 0; i < rc->n_writers; i++) {
        pthread_join(rc->w[i].thread, NULL);
        store_close(rc->w[i].st);
    }
    size_t lost = rc->lost;
    if (lost && msg_len)
        snprintf(msg, msg_len, "%s", rc->error);
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->lock);
    free(rc);
    return lost;
}
