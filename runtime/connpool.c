/* connpool.c: the run's database connections for its units' transactions (struct conn_pool in
 * exec_private.h). A worker takes one when its unit first calls dr_db() and gives it back when
 * the unit's transaction has ended. */
#include "exec_private.h"

#include <stdlib.h>

#include "deadline.h"
#include "store.h"

int connpool_init(struct exec *ex, int max)
{
    if (max < 1)
        max = 1;
    if (!(ex->db.idle = calloc((size_t)max, sizeof *ex->db.idle)))
        return -1;
    pthread_mutex_init(&ex->db.lock, NULL);
    pthread_cond_init(&ex->db.freed, NULL);
    ex->db.max = max;
    ex->db.n_idle = ex->db.open = 0;
    return 0;
}

void connpool_free(struct exec *ex)
{
    if (!ex->db.idle)
        return;
    for (int i = 0; i < ex->db.n_idle; i++)
        PQfinish(ex->db.idle[i]);
    free(ex->db.idle);
    ex->db.idle = NULL;
    pthread_mutex_destroy(&ex->db.lock);
    pthread_cond_destroy(&ex->db.freed);
}

PGconn *connpool_take(struct exec *ex, const char *url, struct dr_err *err)
{
    struct conn_pool *p = &ex->db;
    pthread_mutex_lock(&p->lock);
    while (p->n_idle == 0 && p->open >= p->max) {
        if (unit_cancelled(ex)) {
            pthread_mutex_unlock(&p->lock);
            err_set(err, "run cancelled while waiting for a database connection");
            return NULL;
        }
        struct timespec until = deadline_in_ms(CLOCK_REALTIME, 200);  /* then the cancel flag again */
        pthread_cond_timedwait(&p->freed, &p->lock, &until);
    }
    if (p->n_idle > 0) {
        PGconn *c = p->idle[--p->n_idle];
        pthread_mutex_unlock(&p->lock);
        return c;
    }
    p->open++;
    pthread_mutex_unlock(&p->lock);
    PGconn *c = store_open_conn(url, err);
    if (!c)
        connpool_give(ex, NULL);
    return c;
}

void connpool_give(struct exec *ex, PGconn *c)
{
    struct conn_pool *p = &ex->db;
    bool keep = c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (c && !keep)
        PQfinish(c);
    pthread_mutex_lock(&p->lock);
    if (keep)
        p->idle[p->n_idle++] = c;
    else
        p->open--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}
