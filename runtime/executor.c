/* The executor: the coordinator of one DAG run and its pool of worker threads. */
#include "executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec_private.h"
#include "backoff.h"
#include "log.h"
#include "recorder.h"
#include "retryheap.h"
#include "run_notify.h"
#include "runplan.h"
#include "trigger.h"

enum { FLUSH_MS = 200, FLUSH_RECORDS = 4000, POLL_MS = 100 };

/* Coordinator-only state of one executor_run, next to struct exec. */
struct coord {
    struct exec *ex;
    struct run_result *res;
    uint64_t rng;               /* jitter PRNG state (backoff_rng) */
    size_t in_flight;           /* units handed to the queue and not yet back */
    bool stopping;              /* *stop or a cancel request was seen, or parked */
    bool parked;                /* a used-up window parked a unit: the run ends queued */
    bool fatal;                 /* a unit returned DR_FATAL */
    bool dirty;                 /* a task ended: rescan the waiting ones */
    struct retryheap retries;   /* units waiting for their retry */
    struct unit *batch_head, *batch_tail;   /* units to push to the ready queue */
    size_t n_batch;
    struct recorder *rec;       /* task-instance records to the store; NULL: no store */
    size_t n_pend;              /* records in the recorder's open batch */
    int64_t pend_since;         /* mono ms of the oldest of them */
    size_t records_lost;        /* records the store refused (after reconnecting): run failed */
    int64_t next_heartbeat;
    size_t done, total;         /* progress */
    size_t warnings_sent;       /* ex->warnings already sent live (run_notify_warning) */
    struct ti_record *recbuf;   /* max lane length */
};

static bool stop_requested(const struct run_spec *spec)
{
    return spec->stop && __atomic_load_n(spec->stop, __ATOMIC_RELAXED) != 0;
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct exec *ex = w->ex;
    struct unit *u;
    while ((u = unit_of(workq_pop(&ex->q)))) {
        unit_run(w, u);
        bool halt = u->status == DR_FATAL && !u->cancelled;
        if (halt)   /* units in flight may stop early; the coordinator takes the queue back */
            __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
        workq_finish(&ex->q, &u->link, halt);
    }
    unit_worker_cleanup(w);
    return NULL;
}

/* Pushes the coordinator's batch to the ready queue. */
static void flush_dispatch(struct coord *co)
{
    if (!co->batch_head)
        return;
    workq_push(&co->ex->q, &co->batch_head->link, &co->batch_tail->link, co->n_batch);
    co->in_flight += co->n_batch;
    co->batch_head = co->batch_tail = NULL;
    co->n_batch = 0;
}

/* Takes back the units no worker has started (stop, fatal). They are recorded nowhere. */
static void reclaim_ready(struct coord *co)
{
    struct exec *ex = co->ex;
    struct unit *u = unit_of(workq_reclaim(&ex->q));
    for (; u; u = unit_next(u)) {
        co->in_flight--;
        int p = ex->ts[u->task].pool;
        if (p >= 0)
            ex->pools[p].in_use--;
    }
    for (u = co->batch_head; u; u = unit_next(u)) {
        int p = ex->ts[u->task].pool;
        if (p >= 0)
            ex->pools[p].in_use--;
    }
    co->batch_head = co->batch_tail = NULL;
    co->n_batch = 0;
    retryheap_clear(&co->retries);
}

/* Queues u for a worker, or for its pool when the pool is full. */
static void dispatch(struct coord *co, struct unit *u)
{
    struct exec *ex = co->ex;
    u->link.next = NULL;
    int p = ex->ts[u->task].pool;
    if (p >= 0) {
        struct pool_state *ps = &ex->pools[p];
        if (ps->in_use >= ps->slots) {
            if (ps->tail)
                ps->tail->link.next = &u->link;
            else
                ps->head = u;
            ps->tail = u;
            return;
        }
        ps->in_use++;
    }
    if (co->batch_tail)
        co->batch_tail->link.next = &u->link;
    else
        co->batch_head = u;
    co->batch_tail = u;
    co->n_batch++;
}

static void pool_release(struct coord *co, int p)
{
    if (p < 0)
        return;
    struct pool_state *ps = &co->ex->pools[p];
    ps->in_use--;
    if (co->stopping || co->fatal || !ps->head)
        return;
    struct unit *u = ps->head;
    ps->head = unit_next(u);
    if (!ps->head)
        ps->tail = NULL;
    dispatch(co, u);
}

/* ---- records and hooks ---- */

static void flush_records(struct coord *co)
{
    if (co->n_pend)
        recorder_flush(co->rec);
    co->n_pend = 0;
}

/* Queues a record for the store. */
static void add_record(struct coord *co, const struct ti_record *r)
{
    if (!co->rec)
        return;
    if (!co->n_pend)
        co->pend_since = unit_mono_ms(co->ex);
    co->n_pend = recorder_add(co->rec, r);
    if (co->n_pend >= FLUSH_RECORDS)
        flush_records(co);
}

static void hook_done(struct coord *co, const struct ti_record *r)
{
    const struct exec_hooks *h = co->ex->spec->hooks;
    if (h && h->unit_done) {
        double secs = r->start_ms && r->end_ms > r->start_ms
                          ? (double)(r->end_ms - r->start_ms) / 1000.0 : 0;
        h->unit_done(h->ud, r, secs);
    }
}

static void progress(struct coord *co)
{
    const struct exec_hooks *h = co->ex->spec->hooks;
    if (h && h->progress)
        h->progress(h->ud, co->done, co->total);
}

/* Keeps the run's first error, with the task and item in front unless the message already
 * starts with the plugin's name (plugins write whole lines: "fetch_candles NSE:INFY ..."). */
static void first_error(struct coord *co, const char *task, const char *key, const char *msg)
{
    if (co->res->error[0] || !msg)
        return;
    int i = dag_task_index(co->ex->spec->dag, task);
    const char *plugin = i >= 0 ? co->ex->spec->dag->tasks[i].plugin_name : NULL;
    size_t n = plugin ? strlen(plugin) : 0;
    if (plugin && strncmp(msg, plugin, n) == 0 && (msg[n] == ' ' || msg[n] == ':'))
        snprintf(co->res->error, sizeof co->res->error, "%s", msg);
    else if (key)
        snprintf(co->res->error, sizeof co->res->error, "%s[%s]: %s", task, key, msg);
    else
        snprintf(co->res->error, sizeof co->res->error, "%s: %s", task, msg);
}

/* ---- task state ---- */

static void end_task(struct coord *co, int i, enum ti_state st)
{
    struct tstate *t = &co->ex->ts[i];
    t->phase = PH_ENDED;
    t->state = st;
    co->dirty = true;
}

/* Ends a task (or a whole lane) that will not run, with a record per task. */
static void end_not_run(struct coord *co, int i, enum ti_state st, const char *error)
{
    struct exec *ex = co->ex;
    const struct tstate *t = &ex->ts[i];
    int n = t->lane >= 0 ? ex->lanes[t->lane].n : 1;
    int64_t now = unit_wall_ms(ex);
    for (int pos = 0; pos < n; pos++) {
        int ti = t->lane >= 0 ? ex->lanes[t->lane].tasks[pos] : i;
        /* Keep the error alive until the records are flushed: on the task's rec. */
        struct lrec *r = &ex->ts[ti].rec;
        unit_lrec_reset(r);
        r->error = error ? strdup(error) : NULL;
        struct ti_record rec = {
            .task_id = ex->dag->tasks[ti].id, .map_index = -1, .state = st,
            .start_ms = st == TI_FAILED ? now : 0, .end_ms = now, .error = r->error,
        };
        end_task(co, ti, st);
        ex->ts[ti].state = st;
        add_record(co, &rec);
        hook_done(co, &rec);
        if (st == TI_FAILED) {
            ex->ts[ti].n_fail = 1;
            first_error(co, ex->dag->tasks[ti].id, NULL, error);
        }
    }
    co->done++;
}

/* ---- starting tasks ---- */

static void start_unmapped(struct coord *co, int i)
{
    struct exec *ex = co->ex;
    struct tstate *t = &ex->ts[i];
    const struct task *task = &ex->dag->tasks[i];
    const struct prior_task *pt = ex->spec->prior ? prior_find(ex->spec->prior, task->id) : NULL;
    if (pt && !pt->mapped && (pt->state == TI_SUCCESS || pt->state == TI_SKIPPED)) {
        t->output = json_incref(pt->output);
        end_task(co, i, pt->state);
        co->done++;
        return;
    }
    char *error = NULL;
    if (unit_call_init(ex, i, &error) < 0) {
        end_not_run(co, i, TI_FAILED, error);
        free(error);
        return;
    }
    t->phase = PH_RUNNING;
    struct unit *u = &t->unit;
    u->task = i;
    u->lane = -1;
    u->index = -1;
    u->try_number = 1;
    u->recs = &t->rec;
    if (ex->spec->store) {
        struct ti_record rec = {
            .task_id = task->id, .map_index = -1, .state = TI_RUNNING, .try_number = 1,
            .start_ms = unit_wall_ms(ex),
        };
        add_record(co, &rec);
    }
    dispatch(co, u);
}

static void end_lane(struct coord *co, struct lane *l);
static void item_ended(struct coord *co, struct lane *l, size_t index);

static void start_lane(struct coord *co, int head)
{
    struct exec *ex = co->ex;
    struct lane *l = &ex->lanes[ex->ts[head].lane];
    const struct task *over = &ex->dag->tasks[l->over];
    const json_t *items = ex->ts[l->over].output;
    char msg[256];
    if (!json_is_array(items)) {
        if (!items)
            snprintf(msg, sizeof msg, "map over \"%s\": it produced no output", over->id);
        else
            snprintf(msg, sizeof msg, "map over \"%s\": its output is not an array", over->id);
        end_not_run(co, head, TI_FAILED, msg);
        return;
    }
    size_t n = json_array_size(items);
    if (n == 0) {
        end_not_run(co, head, TI_SKIPPED, NULL);
        return;
    }
    if (runplan_expand(ex, l, head, items) < 0) {
        end_not_run(co, head, TI_FAILED, "out of memory");
        return;
    }
    co->total += n - 1;     /* the lane counted as one unit until now */
    for (int pos = 0; pos < l->n; pos++)
        ex->ts[l->tasks[pos]].phase = PH_RUNNING;

    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = !runplan_prior_item_done(ex, l, i);
    if (any) {
        for (int pos = 0; pos < l->n; pos++) {
            char *error = NULL;
            if (unit_call_init(ex, l->tasks[pos], &error) < 0) {
                snprintf(msg, sizeof msg, "init of %s: %s", ex->dag->tasks[l->tasks[pos]].id,
                         error ? error : "failed");
                free(error);
                co->total -= n - 1;
                end_not_run(co, head, TI_FAILED, msg);
                return;
            }
        }
    }
    const struct prior_task *last =
        ex->spec->prior ? prior_find(ex->spec->prior, ex->dag->tasks[l->tasks[l->n - 1]].id) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct unit *u = &l->units[i];
        if (runplan_prior_item_done(ex, l, i)) {
            for (int pos = 0; pos < l->n; pos++)
                u->recs[pos].state = TI_SUCCESS;
            if (last && last->item_outputs) {
                json_t *o = json_array_get(last->item_outputs, i);
                if (o && !json_is_null(o))
                    u->recs[l->n - 1].output = json_incref(o);
            }
            item_ended(co, l, i);
            continue;
        }
        dispatch(co, u);
    }
}

/* Starts or settles every waiting task whose upstreams have ended. O(tasks) per pass. */
static void schedule(struct coord *co)
{
    struct exec *ex = co->ex;
    while (co->dirty && !co->stopping && !co->fatal) {
        co->dirty = false;
        for (size_t k = 0; k < ex->dag->n_tasks; k++) {
            int i = ex->dag->topo[k];
            struct tstate *t = &ex->ts[i];
            if (t->phase != PH_WAITING || (t->lane >= 0 && t->lane_pos > 0))
                continue;
            enum decision d = D_RUN;
            if (t->lane >= 0) {
                const struct lane *l = &ex->lanes[t->lane];
                for (int pos = 0; pos < l->n && d == D_RUN; pos++)
                    d = trigger_decide(co->ex, l->tasks[pos]);
                /* A later member still waiting must hold the lane back. */
                for (int pos = 0; pos < l->n && d != D_WAIT; pos++)
                    if (trigger_decide(co->ex, l->tasks[pos]) == D_WAIT)
                        d = D_WAIT;
            } else {
                d = trigger_decide(co->ex, i);
            }
            if (d == D_WAIT)
                continue;
            if (d == D_SKIP)
                end_not_run(co, i, TI_SKIPPED, NULL);
            else if (d == D_UPSTREAM_FAILED)
                end_not_run(co, i, TI_UPSTREAM_FAILED, NULL);
            else if (t->lane >= 0)
                start_lane(co, i);
            else
                start_unmapped(co, i);
        }
    }
}

/* ---- results ---- */

static int64_t retry_delay(struct coord *co, const struct retry_policy *p, int try_number)
{
    return backoff_delay_ms(p->retry_delay_ms, p->exponential ? try_number : 1,
                            p->max_retry_delay_ms, 0.10, &co->rng);
}

/* Whether a task reads task i's output: one that runs after it or maps over it. */
static bool output_read(const struct dag *d, int i)
{
    for (size_t k = 0; k < d->n_tasks; k++) {
        if (d->tasks[k].map_idx == i)
            return true;
        for (size_t a = 0; a < d->tasks[k].n_after; a++)
            if (d->tasks[k].after_idx[a] == i)
                return true;
    }
    return false;
}

static void end_lane(struct coord *co, struct lane *l)
{
    struct exec *ex = co->ex;
    for (int pos = 0; pos < l->n; pos++) {
        int ti = l->tasks[pos];
        struct tstate *t = &ex->ts[ti];
        /* The array of item outputs only for a task downstream (a pointer per item). */
        json_t *arr = output_read(ex->dag, ti) ? json_array() : NULL;
        for (size_t i = 0; arr && i < l->n_items; i++) {
            json_t *o = l->recs[i * (size_t)l->n + pos].output;
            json_array_append(arr, o ? o : json_null());
        }
        t->output = arr;
        end_task(co, ti, t->n_fail ? TI_FAILED : t->n_ok ? TI_SUCCESS : TI_SKIPPED);
    }
}

static void item_ended(struct coord *co, struct lane *l, size_t index)
{
    struct exec *ex = co->ex;
    for (int pos = 0; pos < l->n; pos++) {
        struct tstate *t = &ex->ts[l->tasks[pos]];
        switch (l->recs[index * (size_t)l->n + pos].state) {
        case TI_SUCCESS: t->n_ok++; break;
        case TI_SKIPPED: t->n_skip++; break;
        case TI_FAILED: case TI_UPSTREAM_FAILED: t->n_fail++; break;
        default: break;
        }
    }
    co->done++;
    if (++l->n_ended == l->n_items)
        end_lane(co, l);
}

static void set_fatal(struct coord *co)
{
    if (co->fatal)
        return;
    co->fatal = true;
    reclaim_ready(co);
    __atomic_store_n(&co->ex->cancel, 1, __ATOMIC_RELEASE);
}

/* A unit came back parked (a window counted in PostgreSQL is used up): it is
 * recorded pending and does not end; nothing new starts, the units in flight
 * finish, and the run ends queued until the window reopens. */
static void park(struct coord *co, struct unit *u, int n)
{
    struct exec *ex = co->ex;
    for (int pos = 0; pos < n; pos++)
        if (!u->committed)
            add_record(co, &co->recbuf[pos]);
    if (co->parked)
        return;
    co->parked = true;
    if (!co->stopping) {
        co->stopping = true;
        reclaim_ready(co);
    }
    pthread_mutex_lock(&ex->acc_lock);
    char msg[600];
    snprintf(msg, sizeof msg, "%s: the run is queued until then; the items not done stay pending",
             ex->park_why);
    json_array_append_new(ex->warnings, json_string(msg));
    pthread_mutex_unlock(&ex->acc_lock);
    log_msg(DR_LOG_WARN, ex->run_id, NULL, NULL, "%s (%zu units in flight finish)", msg,
            co->in_flight);
}

static void handle_result(struct coord *co, struct unit *u)
{
    struct exec *ex = co->ex;
    const struct task *head = &ex->dag->tasks[u->task];
    int n = u->lane < 0 ? 1 : ex->lanes[u->lane].n;
    co->in_flight--;
    pool_release(co, ex->ts[u->task].pool);
    unit_build_records(ex, u, co->recbuf);
    const char *key = u->lane < 0 ? NULL : lane_key(&ex->lanes[u->lane], (size_t)u->index);

    if (u->parked) {
        park(co, u, n);
        return;
    }
    if (u->status == DR_RETRY && !u->cancelled) {
        if (!co->stopping && !co->fatal && u->try_number <= head->retry.retries) {
            int64_t delay = retry_delay(co, &head->retry, u->try_number);
            u->due_ms = unit_mono_ms(ex) + delay;
            const struct exec_hooks *h = ex->spec->hooks;
            int ep = u->err_task >= 0 ? u->err_task : 0;
            if (h && h->unit_retry)
                h->unit_retry(h->ud, &co->recbuf[ep], delay);
            if (log_enabled(DR_LOG_INFO))
                log_msg(DR_LOG_INFO, ex->run_id, head->id, key, "try %d failed: %s; retry in %lld ms",
                        u->try_number, co->recbuf[ep].error ? co->recbuf[ep].error : "retry",
                        (long long)delay);
            u->try_number++;
            if (retryheap_push(&co->retries, u) == 0)
                return;
        }
        if (co->stopping || co->fatal) {
            /* Not retried because the run stops: the unit was rolled back. */
            u->cancelled = true;
            for (int pos = 0; pos < n; pos++)
                u->recs[pos].state = TI_CANCELLED;
            unit_build_records(ex, u, co->recbuf);
        }
    }
    if (u->status == DR_FATAL && !u->cancelled && !co->fatal) {
        /* The first fatal error is the run's error, over any earlier failure. */
        int ep = u->err_task >= 0 ? u->err_task : 0;
        const char *msg = co->recbuf[ep].error ? co->recbuf[ep].error : "fatal error";
        co->res->error[0] = '\0';
        first_error(co, co->recbuf[ep].task_id, key, msg);
        set_fatal(co);
    }
    for (int pos = 0; pos < n; pos++) {
        if (!u->committed)
            add_record(co, &co->recbuf[pos]);
        hook_done(co, &co->recbuf[pos]);
    }
    if (u->cancelled)
        co->res->units_cancelled++;
    else if (u->status == DR_OK)
        co->res->units_ok++;
    else if (u->status == DR_SKIP)
        co->res->units_skipped++;
    else {
        co->res->units_failed++;
        int ep = u->err_task >= 0 ? u->err_task : 0;
        first_error(co, co->recbuf[ep].task_id, key, co->recbuf[ep].error ? co->recbuf[ep].error : "failed");
    }
    if (u->lane < 0) {
        struct tstate *t = &ex->ts[u->task];
        t->output = u->recs[0].output;
        u->recs[0].output = NULL;
        t->state = u->recs[0].state;
        if (t->state == TI_FAILED)
            t->n_fail = 1;
        co->done++;
        end_task(co, u->task, t->state);
    } else {
        item_ended(co, &ex->lanes[u->lane], (size_t)u->index);
    }
}

/* Waits for results, a due retry, a records flush or the next poll of *stop,
 * whichever comes first, and returns the results that came (a list). */
static struct unit *wait_results(struct coord *co)
{
    struct exec *ex = co->ex;
    const struct run_spec *spec = ex->spec;
    bool fake = spec->clock && spec->clock->now_ms;
    int64_t now = unit_mono_ms(ex);
    int64_t due = retryheap_due(&co->retries);
    if (co->in_flight == 0) {
        if (due == INT64_MAX)
            return NULL;
        if (fake) {
            /* Nothing runs: virtual time jumps to the retry. */
            if (spec->clock->wait_until)
                spec->clock->wait_until(spec->clock->ud, due);
            return NULL;
        }
    }
    int64_t wait = POLL_MS;
    if (due != INT64_MAX && due - now < wait)
        wait = due - now;
    if (co->n_pend && co->pend_since + FLUSH_MS - now < wait)
        wait = co->pend_since + FLUSH_MS - now;
    return unit_of(workq_results(&ex->q, wait));
}

/* Sends the warnings collected since the last call to the servers watching the run, as they
 * happen (they are stored with the run at its end as before). On the store's connection,
 * outside a transaction, from the coordinator thread only. */
static void notify_warnings(struct coord *co)
{
    struct exec *ex = co->ex;
    PGconn *conn = ex->spec->store ? store_conn(ex->spec->store) : NULL;
    if (!conn || PQtransactionStatus(conn) != PQTRANS_IDLE)
        return;
    for (;;) {
        char *msg = NULL;
        pthread_mutex_lock(&ex->acc_lock);
        if (co->warnings_sent < json_array_size(ex->warnings)) {
            const char *m = json_string_value(json_array_get(ex->warnings, co->warnings_sent));
            msg = strdup(m ? m : "");
            co->warnings_sent++;
        }
        pthread_mutex_unlock(&ex->acc_lock);
        if (!msg)
            return;
        struct dr_err e;
        err_clear(&e);
        if (run_notify_warning(conn, ex->run_id, msg, &e) < 0)
            log_msg(DR_LOG_WARN, ex->run_id, NULL, NULL, "%s", e.msg);
        free(msg);
    }
}

static void run_loop(struct coord *co)
{
    struct exec *ex = co->ex;
    const struct run_spec *spec = ex->spec;
    int hb_ms = (spec->cfg && spec->cfg->heartbeat_sec > 0 ? spec->cfg->heartbeat_sec : 5) * 1000;
    co->next_heartbeat = unit_mono_ms(ex) + hb_ms;
    co->dirty = true;
    for (;;) {
        if (!co->stopping && stop_requested(spec)) {
            /* Take the queue back first, so no worker starts a unit only to cancel it. */
            co->stopping = true;
            reclaim_ready(co);
            __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
            log_msg(DR_LOG_INFO, ex->run_id, NULL, NULL,
                    "stopping: %zu units in flight finish, nothing new starts", co->in_flight);
        }
        schedule(co);
        int64_t now = unit_mono_ms(ex);
        while (retryheap_due(&co->retries) <= now && !co->stopping && !co->fatal)
            dispatch(co, retryheap_pop(&co->retries));
        flush_dispatch(co);
        progress(co);

        bool all_ended = true;
        for (size_t i = 0; i < ex->dag->n_tasks && all_ended; i++)
            all_ended = ex->ts[i].phase == PH_ENDED;
        if (co->in_flight == 0 && (co->stopping || co->fatal || (all_ended && !co->retries.n)))
            break;
        if (co->in_flight == 0 && !co->retries.n && !co->dirty) {
            /* Nothing runs, nothing is due and nothing can start: a bug, not a hang. */
            snprintf(co->res->error, sizeof co->res->error, "internal: the run is stuck");
            co->fatal = true;
            break;
        }

        struct unit *done = wait_results(co);
        while (done) {
            struct unit *next = unit_next(done);
            handle_result(co, done);
            done = next;
        }
        notify_warnings(co);

        now = unit_mono_ms(ex);
        if (co->n_pend && now - co->pend_since >= FLUSH_MS)
            flush_records(co);
        if (spec->store && now >= co->next_heartbeat) {
            co->next_heartbeat = now + hb_ms;
            bool cancel = false;
            struct dr_err e;
            err_clear(&e);
            if (store_run_heartbeat(spec->store, ex->run_id, &cancel, &e) < 0)
                log_msg(DR_LOG_WARN, ex->run_id, NULL, NULL, "heartbeat: %s", e.msg);
            else if (cancel && !co->stopping) {
                co->stopping = true;
                reclaim_ready(co);
                __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
                log_msg(DR_LOG_INFO, ex->run_id, NULL, NULL, "cancel requested: stopping");
            }
        }
    }
}

static enum run_state final_state(struct coord *co)
{
    struct exec *ex = co->ex;
    bool all_ended = true;
    for (size_t i = 0; i < ex->dag->n_tasks; i++)
        all_ended = all_ended && ex->ts[i].phase == PH_ENDED;
    if (co->fatal || co->records_lost)
        return RUN_FAILED;      /* a run whose state was not all stored cannot say success */
    if (co->parked)
        return RUN_QUEUED;
    if (co->stopping && (!all_ended || co->res->units_cancelled))
        return RUN_CANCELLED;
    bool partial = false;
    for (size_t i = 0; i < ex->dag->n_tasks; i++) {
        const struct tstate *t = &ex->ts[i];
        if (t->lane < 0 || !ex->lanes[t->lane].n_items) {
            if (t->state == TI_FAILED)
                return RUN_FAILED;
        } else if (t->n_fail) {
            if (!t->n_ok && !t->n_skip)
                return RUN_FAILED;
            partial = true;
        }
    }
    return partial ? RUN_PARTIAL : RUN_SUCCESS;
}

int executor_run(const struct run_spec *spec, struct run_result *res, struct dr_err *err)
{
    memset(res, 0, sizeof *res);
    if (!spec || !spec->dag || spec->workers < 1)
        return err_set(err, "executor: no DAG or no workers");
    struct exec ex_s = { .spec = spec, .dag = spec->dag };
    struct exec *ex = &ex_s;
    struct coord co = { .ex = ex, .res = res, .rng = spec->seed };
    int rc = -1;
    if (runplan_init(ex, err) < 0)
        goto out;
    co.recbuf = calloc((size_t)(ex->max_lane > 0 ? ex->max_lane : 1), sizeof *co.recbuf);
    if (!co.recbuf) {
        err_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < spec->dag->n_tasks; i++)
        if (ex->ts[i].lane < 0 || ex->ts[i].lane_pos == 0)
            co.total++;

    if (spec->store && !(co.rec = recorder_start(spec->database_url, spec->store, ex->run_id))) {
        err_set(err, "out of memory");
        goto out;
    }
    if (workq_init(&ex->q) < 0) {
        err_set(err, "cannot create the work queue");
        goto out;
    }
    pthread_mutex_init(&ex->acc_lock, NULL);
    if (connpool_init(ex, config_db_connections(spec->cfg)) < 0) {
        err_set(err, "out of memory");
        goto out_sync;
    }

    ex->workers = calloc((size_t)spec->workers, sizeof *ex->workers);
    if (!ex->workers) {
        err_set(err, "out of memory");
        goto out_sync;
    }
    for (int i = 0; i < spec->workers; i++) {
        struct worker *w = &ex->workers[ex->n_workers];
        w->ex = ex;
        w->recbuf = calloc((size_t)(ex->max_lane > 0 ? ex->max_lane : 1), sizeof *w->recbuf);
        if (!w->recbuf || pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            free(w->recbuf);
            w->recbuf = NULL;
            break;
        }
        ex->n_workers++;
    }
    if (ex->n_workers == 0) {
        err_set(err, "cannot start worker threads");
        goto out_sync;
    }
    if (ex->n_workers < spec->workers)
        log_msg(DR_LOG_WARN, ex->run_id, NULL, NULL, "started %d of %d worker threads",
                ex->n_workers, spec->workers);

    run_loop(&co);

    workq_shutdown(&ex->q);
    for (int i = 0; i < ex->n_workers; i++) {
        pthread_join(ex->workers[i].thread, NULL);
        free(ex->workers[i].recbuf);
    }
    for (size_t i = 0; i < spec->dag->n_tasks; i++)
        unit_call_fini(ex, (int)i);
    char lost_msg[512];
    size_t lost = recorder_close(co.rec, lost_msg, sizeof lost_msg);
    co.rec = NULL;
    if (lost) {
        co.records_lost += lost;
        if (!res->error[0])
            snprintf(res->error, sizeof res->error, "recording task instances: %s", lost_msg);
    }

    res->state = final_state(&co);
    if (res->state == RUN_QUEUED)
        res->resume_after = ex->park_until;
    res->warnings = ex->warnings;
    res->counters = ex->counters;
    ex->warnings = ex->counters = NULL;
    res->outputs = json_object();
    for (size_t i = 0; i < spec->dag->n_tasks; i++)
        if (ex->ts[i].lane < 0 && ex->ts[i].output)
            json_object_set(res->outputs, spec->dag->tasks[i].id, ex->ts[i].output);
    if (spec->store) {
        struct dr_err e;
        err_clear(&e);
        if (store_run_add_warnings(spec->store, ex->run_id, res->warnings, res->counters, &e) < 0)
            log_msg(DR_LOG_ERROR, ex->run_id, NULL, NULL, "recording warnings: %s", e.msg);
    }
    rc = 0;
out_sync:
    free(ex->workers);
    connpool_free(ex);
    pthread_mutex_destroy(&ex->acc_lock);
    workq_destroy(&ex->q);
out:
    free(co.recbuf);
    retryheap_free(&co.retries);
    recorder_close(co.rec, NULL, 0);
    runplan_free(ex);
    if (rc < 0)
        run_result_free(res);
    return rc;
}

void run_result_free(struct run_result *res)
{
    if (!res)
        return;
    json_decref(res->warnings);
    json_decref(res->counters);
    json_decref(res->outputs);
    res->warnings = res->counters = res->outputs = NULL;
}
