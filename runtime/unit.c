/* The unit runner: one unit (an unmapped instance, or one map item through its lane) on a
 * worker, with its lane calls, emits handed down the lane, the worker's transaction and
 * savepoints, the unit's outcome and its task-instance records; and init/fini. */
#include "exec_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "http.h"
#include "log.h"
#include "store.h"


/* Status ranks: a task's calls and a unit's tasks aggregate to the worst. */
enum { RK_SKIP, RK_OK, RK_FAIL, RK_RETRY, RK_FATAL };

static int rank_of(dr_status s)
{
    switch (s) {
    case DR_OK: return RK_OK;
    case DR_SKIP: return RK_SKIP;
    case DR_RETRY: return RK_RETRY;
    case DR_FATAL: return RK_FATAL;
    default: return RK_FAIL;
    }
}

static dr_status status_of(int rank)
{
    static const dr_status s[] = { DR_SKIP, DR_OK, DR_FAIL, DR_RETRY, DR_FATAL };
    return s[rank];
}

int64_t unit_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t unit_mono_ms(const struct exec *ex)
{
    const struct exec_clock *c = ex->spec->clock;
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return unit_clock_ms(CLOCK_MONOTONIC);
}

int64_t unit_wall_ms(const struct exec *ex)
{
    const struct exec_clock *c = ex->spec->clock;
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return unit_clock_ms(CLOCK_REALTIME);
}

bool unit_cancelled(const struct exec *ex)
{
    return __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE) != 0;
}

const char *unit_item_key(const dr_ctx *c)
{
    if (!c->u || c->u->lane < 0)
        return NULL;
    return lane_key(&c->ex->lanes[c->u->lane], (size_t)c->u->index);
}

static int lane_len(const struct exec *ex, const struct unit *u)
{
    return u->lane < 0 ? 1 : ex->lanes[u->lane].n;
}

static int lane_task(const struct exec *ex, const struct unit *u, int pos)
{
    return u->lane < 0 ? u->task : ex->lanes[u->lane].tasks[pos];
}

void unit_lrec_reset(struct lrec *r)
{
    free(r->error);
    json_decref(r->output);
    free(r->checkpoint);
    memset(r, 0, sizeof *r);
    r->agg = -1;
}

/* ---- counters held until the unit's work commits ---- */

void unit_count_add(struct exec *ex, const char *counter, long long delta)
{
    pthread_mutex_lock(&ex->acc_lock);
    json_t *v = json_object_get(ex->counters, counter);
    if (v)
        json_integer_set(v, json_integer_value(v) + delta);
    else
        json_object_set_new(ex->counters, counter, json_integer(delta));
    pthread_mutex_unlock(&ex->acc_lock);
}

void unit_count_hold(struct worker *w, const char *counter, long long delta)
{
    for (size_t i = w->counts_floor; i < w->n_counts; i++)
        if (strcmp(w->counts[i].name, counter) == 0) {
            w->counts[i].delta += delta;
            return;
        }
    if (w->n_counts == w->cap_counts) {
        size_t cap = w->cap_counts ? w->cap_counts * 2 : 8;
        struct held_count *c = realloc(w->counts, cap * sizeof *c);
        if (!c)
            return;
        w->counts = c;
        w->cap_counts = cap;
    }
    char *name = strdup(counter);
    if (!name)
        return;
    w->counts[w->n_counts++] = (struct held_count){ .name = name, .delta = delta };
}

/* Drops the held deltas from entry `from` on (their work was rolled back). */
static void counts_drop(struct worker *w, size_t from)
{
    for (size_t i = from; i < w->n_counts; i++)
        free(w->counts[i].name);
    if (w->n_counts > from)
        w->n_counts = from;
}

/* Adds the held deltas to the run's counters (the unit's work stands) or drops them. */
static void counts_settle(struct worker *w, bool keep)
{
    for (size_t i = 0; keep && i < w->n_counts; i++)
        unit_count_add(w->ex, w->counts[i].name, w->counts[i].delta);
    counts_drop(w, 0);
    w->counts_floor = 0;
}

/* ---- SQL on the worker's connection ---- */

/* Runs a utility statement; on failure keeps the first cause in *why. */
int unit_worker_sql(struct worker *w, const char *sql, char **why)
{
    if (!w->conn)
        return -1;
    PGresult *r = PQexec(w->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && why && !*why) {
        const char *m = PQresultErrorMessage(r);
        if (!m || !*m)
            m = PQerrorMessage(w->conn);
        char line[512];
        snprintf(line, sizeof line, "%s", m && *m ? m : "connection lost");
        line[strcspn(line, "\n")] = '\0';
        size_t n = strlen(sql) + strlen(line) + 8;
        if ((*why = malloc(n)))
            snprintf(*why, n, "%s: %s", sql, line);
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* ---- one call of one lane task ---- */

static dr_status call_task(struct worker *w, struct unit *u, int pos, const json_t *lane_json,
                           const char *btype, const void *blob, size_t blen)
{
    struct exec *ex = w->ex;
    int ti = lane_task(ex, u, pos);
    const struct task *t = &ex->dag->tasks[ti];
    struct lrec *r = &u->recs[pos];
    dr_ctx c = {
        .ex = ex, .w = w, .u = u, .task = ti, .pos = pos, .lane_json = lane_json,
        .blob_type = btype, .blob = blob, .blob_len = blen,
    };
    if (r->agg < 0)
        r->start_ms = unit_wall_ms(ex);
    dr_status st = t->plugin->def->run(&c, ex->ts[ti].pstate);
    if ((unsigned)st > DR_FATAL) {
        dr_error(&c, "run returned an invalid status %d", (int)st);
        st = DR_FAIL;
    }
    r->end_ms = unit_wall_ms(ex);
    if (c.has_error && st != DR_OK && st != DR_SKIP) {
        free(r->error);
        r->error = strdup(c.error);
    }
    int rk = rank_of(st);
    if (rk > r->agg)
        r->agg = rk;
    return st;
}

/* Hands one emitted value to the next lane task, inside a savepoint when a
 * transaction is open. Returns 0, or -1 when that call did not succeed. */
int unit_deliver(dr_ctx *c, const json_t *json, const char *btype, const void *blob, size_t len)
{
    struct worker *w = c->w;
    struct unit *u = c->u;
    if (unit_cancelled(c->ex))
        return -1;
    u->recs[c->pos].sent++;
    bool had_txn = w->in_txn;
    size_t counts_mark = w->n_counts, outer_floor = w->counts_floor;
    char sp[48] = "";
    if (had_txn) {
        snprintf(sp, sizeof sp, "dr_lane_%d", ++w->sp_depth);
        char sql[80];
        snprintf(sql, sizeof sql, "SAVEPOINT %s", sp);
        if (unit_worker_sql(w, sql, &u->error) < 0) {
            w->sp_depth--;
            return -1;
        }
    }
    w->counts_floor = counts_mark;
    dr_status st = call_task(w, u, c->pos + 1, json, btype, blob, len);
    w->counts_floor = outer_floor;
    bool ok = st == DR_OK || st == DR_SKIP;
    if (!ok && (had_txn || w->in_txn))
        counts_drop(w, counts_mark);    /* that call's work is rolled back below */
    if (had_txn) {
        char sql[96];
        if (!ok) {
            snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT %s", sp);
            unit_worker_sql(w, sql, &u->error);
        }
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT %s", sp);
        unit_worker_sql(w, sql, &u->error);
        w->sp_depth--;
    } else if (w->in_txn && !ok) {
        /* The transaction was opened by this very call: all of it goes. */
        unit_worker_sql(w, "ROLLBACK", &u->error);
        w->in_txn = false;
    }
    return ok ? 0 : -1;
}

/* ---- unit outcome ---- */

/* A unit that failed because a window counted in PostgreSQL was used up is
 * parked, not failed: what it did commits (as a failed item's would), its
 * records say pending, and the run learns when the window reopens. */
static void park_unit(struct worker *w, struct unit *u)
{
    char why[400];
    int64_t until = http_parked_take(why, sizeof why);
    /* A unit error (timeout, a failed savepoint) is a failure of its own. */
    if (!until || u->cancelled || u->error || (u->status != DR_FAIL && u->status != DR_RETRY))
        return;
    u->parked = true;
    u->status = DR_FAIL;        /* not retried: kept, not rolled back */
    struct exec *ex = w->ex;
    pthread_mutex_lock(&ex->acc_lock);
    if (!ex->park_until || until < ex->park_until) {
        ex->park_until = until;
        snprintf(ex->park_why, sizeof ex->park_why, "%s", why);
    }
    pthread_mutex_unlock(&ex->acc_lock);
}

/* Sets each lane task's final state from the unit's outcome. */
static void finalize(struct exec *ex, struct unit *u)
{
    int n = lane_len(ex, u);
    if (u->parked) {
        for (int pos = 0; pos < n; pos++)
            u->recs[pos].state = TI_PENDING;
        return;
    }
    bool failed_before = false;
    bool unit_failed = u->status == DR_FAIL || u->status == DR_RETRY || u->status == DR_FATAL;
    for (int pos = 0; pos < n; pos++) {
        struct lrec *r = &u->recs[pos];
        if (u->cancelled)
            r->state = TI_CANCELLED;
        else if (r->agg < 0)
            r->state = failed_before || unit_failed ? TI_UPSTREAM_FAILED : TI_SKIPPED;
        else if (r->agg >= RK_FAIL || (u->error && unit_failed))
            r->state = TI_FAILED;      /* a unit-level failure fails all that ran */
        else
            r->state = r->agg == RK_OK ? TI_SUCCESS : TI_SKIPPED;
        if (r->agg >= RK_FAIL)
            failed_before = true;
    }
    if (u->cancelled)
        return;
    struct lrec *head = &u->recs[0];
    if (u->error && unit_failed) {
        /* A failure of the unit itself (timeout, commit): it is the head's. */
        head->state = TI_FAILED;
        free(head->error);
        head->error = strdup(u->error);
    } else if (head->state == TI_FAILED && !head->error && u->err_task > 0) {
        const char *down = ex->dag->tasks[lane_task(ex, u, u->err_task)].id;
        size_t len = strlen(down) + 16;
        if ((head->error = malloc(len)))
            snprintf(head->error, len, "%s failed", down);
    }
}

static void drop_checkpoints(struct unit *u, int n)
{
    for (int pos = 0; pos < n; pos++) {
        free(u->recs[pos].checkpoint);
        u->recs[pos].checkpoint = NULL;
    }
}

void unit_build_records(const struct exec *ex, const struct unit *u, struct ti_record *out)
{
    int n = lane_len(ex, u);
    for (int pos = 0; pos < n; pos++) {
        const struct lrec *r = &u->recs[pos];
        out[pos] = (struct ti_record){
            .task_id = ex->dag->tasks[lane_task(ex, u, pos)].id,
            .map_index = u->index,
            .map_key = u->lane < 0 ? NULL : lane_key(&ex->lanes[u->lane], (size_t)u->index),
            .state = r->state,
            .try_number = u->try_number,
            .start_ms = r->start_ms,
            .end_ms = r->end_ms,
            .error = r->error,
            .output = r->output,
            .checkpoint = r->checkpoint,
        };
    }
}

void unit_run(struct worker *w, struct unit *u)
{
    struct exec *ex = w->ex;
    int n = lane_len(ex, u);
    for (int pos = 0; pos < n; pos++)
        unit_lrec_reset(&u->recs[pos]);
    free(u->error);
    u->error = NULL;
    u->cancelled = u->committed = u->parked = false;
    u->err_task = -1;
    http_parked_take(NULL, 0);
    w->in_txn = false;
    w->sp_depth = 0;

    const struct task *head = &ex->dag->tasks[u->task];
    int64_t try_start_ms = unit_mono_ms(ex);
    w->deadline_ms = head->retry.timeout_ms > 0 ? try_start_ms + head->retry.timeout_ms : 0;

    call_task(w, u, 0, NULL, NULL, NULL, 0);
    /* A lane task that succeeded without emitting anything still hands over to the
     * next one, once, with no value (like Airflow's a[i] >> b[i]); DR_SKIP skips the rest. */
    for (int pos = 0; pos + 1 < n; pos++) {
        const struct lrec *r = &u->recs[pos];
        if (r->agg != RK_OK)
            break;
        if (!r->sent && u->recs[pos + 1].agg < 0) {
            dr_ctx c = { .ex = ex, .w = w, .u = u, .task = lane_task(ex, u, pos), .pos = pos };
            if (unit_deliver(&c, NULL, NULL, NULL, 0) < 0)
                break;
        }
    }

    /* The outcome: the worst call; its origin is the deepest task with that rank. */
    int worst = -1;
    for (int pos = 0; pos < n; pos++)
        if (u->recs[pos].agg >= worst && u->recs[pos].agg >= 0) {
            worst = u->recs[pos].agg;
            u->err_task = pos;
        }
    if (worst >= RK_FAIL) {
        u->status = status_of(worst);
    } else {
        u->status = u->recs[0].agg == RK_SKIP ? DR_SKIP : DR_OK;
        u->err_task = -1;
    }
    if (u->status != DR_FATAL && w->deadline_ms && unit_mono_ms(ex) > w->deadline_ms) {
        char d[32];
        duration_format(head->retry.timeout_ms, d, sizeof d);
        free(u->error);
        size_t len = strlen(d) + 40;
        if ((u->error = malloc(len)))
            snprintf(u->error, len, "execution timeout %s exceeded", d);
        u->status = DR_RETRY;
    } else if (u->error && u->status != DR_FATAL) {
        u->status = DR_RETRY;       /* a savepoint failed: the connection is in doubt */
    }
    if (unit_cancelled(ex) && (u->status == DR_FAIL || u->status == DR_RETRY))
        u->cancelled = true;
    park_unit(w, u);

    bool txn = w->in_txn;
    if (w->in_txn) {
        bool commit = !u->cancelled && u->status != DR_RETRY;
        if (commit) {
            finalize(ex, u);
            struct dr_err e;
            err_clear(&e);
            unit_build_records(ex, u, w->recbuf);
            char *why = NULL;
            /* Fenced: commits only while this process still owns the run. */
            int fenced = ex->spec->store
                ? store_run_fence_conn(w->conn, ex->run_id,
                                       store_run_epoch(ex->spec->store, ex->run_id), &e) : 0;
            if (fenced != 0) {
                if (fenced > 0)     /* taken over: nothing more from this process */
                    __atomic_store_n(&ex->cancel, 1, __ATOMIC_RELEASE);
                why = strdup(e.msg);
                unit_worker_sql(w, "ROLLBACK", NULL);
            } else if (store_ti_write_conn(w->conn, ex->run_id, w->recbuf, (size_t)n, &e) < 0) {
                size_t len = strlen(e.msg) + 32;
                if ((why = malloc(len)))
                    snprintf(why, len, "recording the item: %s", e.msg);
                unit_worker_sql(w, "ROLLBACK", NULL);
            } else if (unit_worker_sql(w, "COMMIT", &why) == 0) {
                u->committed = true;
            }
            if (!u->committed) {
                free(u->error);
                u->error = why ? why : strdup("commit failed");
                u->status = DR_RETRY;
                if (unit_cancelled(ex))
                    u->cancelled = true;
            }
        } else {
            unit_worker_sql(w, "ROLLBACK", NULL);
        }
        w->in_txn = false;
        if (!u->committed)
            drop_checkpoints(u, n);     /* they described work that was rolled back */
    }
    counts_settle(w, txn ? u->committed
                         : !u->cancelled && (u->status == DR_OK || u->status == DR_SKIP));
    if (w->conn) {
        connpool_give(ex, w->conn);
        w->conn = NULL;
    }
    finalize(ex, u);
}

/* ---- init / fini on the coordinator ---- */

int unit_call_init(struct exec *ex, int i, char **error)
{
    const dr_task_def *def = ex->dag->tasks[i].plugin->def;
    *error = NULL;
    ex->ts[i].inited = true;
    if (!def->init)
        return 0;
    dr_ctx c = { .ex = ex, .task = i };
    void *state = NULL;
    if (def->init(&c, &state) != 0) {
        ex->ts[i].inited = false;
        *error = strdup(c.has_error ? c.error : "init failed");
        return -1;
    }
    ex->ts[i].pstate = state;
    return 0;
}

void unit_call_fini(struct exec *ex, int i)
{
    const dr_task_def *def = ex->dag->tasks[i].plugin->def;
    if (!ex->ts[i].inited || !def->fini)
        return;
    dr_ctx c = { .ex = ex, .task = i };
    def->fini(&c, ex->ts[i].pstate);
}

void unit_worker_cleanup(struct worker *w)
{
    if (w->conn)
        connpool_give(w->ex, w->conn);
    w->conn = NULL;
    http_client_free(w->http);
    w->http = NULL;
    counts_drop(w, 0);
    free(w->counts);
    w->counts = NULL;
    w->cap_counts = 0;
}
