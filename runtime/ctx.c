/* The plugin-facing dr_* API and the worker side of a unit: lane calls, emits, transactions. */
#include "ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "http.h"
#include "log.h"
#include "store.h"

struct dr_ctx {
    struct exec *ex;
    struct worker *w;           /* NULL in init/fini (coordinator) */
    struct unit *u;             /* NULL in init/fini */
    int task;                   /* dag task index */
    int pos;                    /* lane position (0 when unmapped) */
    const json_t *lane_json;    /* what the previous lane task emitted for this call */
    const char *blob_type;
    const void *blob;
    size_t blob_len;
    bool has_error;
    char error[1024];           /* last dr_error */
};

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

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ctx_mono_ms(const struct exec *ex)
{
    const struct exec_clock *c = ex->spec->clock;
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t ctx_wall_ms(const struct exec *ex)
{
    const struct exec_clock *c = ex->spec->clock;
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return clock_ms(CLOCK_REALTIME);
}

static bool cancelled_flag(const struct exec *ex)
{
    return __atomic_load_n(&ex->cancel, __ATOMIC_ACQUIRE) != 0;
}

static const char *item_key(const dr_ctx *c)
{
    if (!c->u || c->u->lane < 0)
        return NULL;
    return c->ex->lanes[c->u->lane].keys[c->u->index];
}

static int lane_len(const struct exec *ex, const struct unit *u)
{
    return u->lane < 0 ? 1 : ex->lanes[u->lane].n;
}

static int lane_task(const struct exec *ex, const struct unit *u, int pos)
{
    return u->lane < 0 ? u->task : ex->lanes[u->lane].tasks[pos];
}

static void set_error(dr_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(dr_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    c->has_error = true;
}

void ctx_lrec_reset(struct lrec *r)
{
    free(r->error);
    json_decref(r->output);
    free(r->checkpoint);
    memset(r, 0, sizeof *r);
    r->agg = -1;
}

/* ---- SQL on the worker's connection ---- */

/* Runs a utility statement; on failure keeps the first cause in *why. */
static int worker_sql(struct worker *w, const char *sql, char **why)
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
        r->start_ms = ctx_wall_ms(ex);
    dr_status st = t->plugin->def->run(&c, ex->ts[ti].pstate);
    if ((unsigned)st > DR_FATAL) {
        set_error(&c, "run returned an invalid status %d", (int)st);
        st = DR_FAIL;
    }
    r->end_ms = ctx_wall_ms(ex);
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
static int deliver(dr_ctx *c, const json_t *json, const char *btype, const void *blob, size_t len)
{
    struct worker *w = c->w;
    struct unit *u = c->u;
    if (cancelled_flag(c->ex))
        return -1;
    u->recs[c->pos].sent++;
    bool had_txn = w->in_txn;
    char sp[48] = "";
    if (had_txn) {
        snprintf(sp, sizeof sp, "dr_lane_%d", ++w->sp_depth);
        char sql[80];
        snprintf(sql, sizeof sql, "SAVEPOINT %s", sp);
        if (worker_sql(w, sql, &u->error) < 0) {
            w->sp_depth--;
            return -1;
        }
    }
    dr_status st = call_task(w, u, c->pos + 1, json, btype, blob, len);
    bool ok = st == DR_OK || st == DR_SKIP;
    if (had_txn) {
        char sql[96];
        if (!ok) {
            snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT %s", sp);
            worker_sql(w, sql, &u->error);
        }
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT %s", sp);
        worker_sql(w, sql, &u->error);
        w->sp_depth--;
    } else if (w->in_txn && !ok) {
        /* The transaction was opened by this very call: all of it goes. */
        worker_sql(w, "ROLLBACK", &u->error);
        w->in_txn = false;
    }
    return ok ? 0 : -1;
}

/* ---- unit outcome ---- */

/* Sets each lane task's final state from the unit's outcome. */
static void finalize(struct exec *ex, struct unit *u)
{
    int n = lane_len(ex, u);
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

void ctx_build_records(const struct exec *ex, const struct unit *u, struct ti_record *out)
{
    int n = lane_len(ex, u);
    for (int pos = 0; pos < n; pos++) {
        const struct lrec *r = &u->recs[pos];
        out[pos] = (struct ti_record){
            .task_id = ex->dag->tasks[lane_task(ex, u, pos)].id,
            .map_index = u->index,
            .map_key = u->lane < 0 ? NULL : ex->lanes[u->lane].keys[u->index],
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

void ctx_run_unit(struct worker *w, struct unit *u)
{
    struct exec *ex = w->ex;
    int n = lane_len(ex, u);
    for (int pos = 0; pos < n; pos++)
        ctx_lrec_reset(&u->recs[pos]);
    free(u->error);
    u->error = NULL;
    u->cancelled = u->committed = false;
    u->err_task = -1;
    if (w->conn && PQstatus(w->conn) != CONNECTION_OK) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    w->in_txn = false;
    w->sp_depth = 0;

    const struct task *head = &ex->dag->tasks[u->task];
    u->try_start_ms = ctx_mono_ms(ex);
    u->deadline_ms = head->retry.timeout_ms > 0 ? u->try_start_ms + head->retry.timeout_ms : 0;

    call_task(w, u, 0, NULL, NULL, NULL, 0);
    /* A lane task that succeeded without emitting anything still hands over to the
     * next one, once, with no value (like Airflow's a[i] >> b[i]); DR_SKIP skips the rest. */
    for (int pos = 0; pos + 1 < n; pos++) {
        const struct lrec *r = &u->recs[pos];
        if (r->agg != RK_OK)
            break;
        if (!r->sent && u->recs[pos + 1].agg < 0) {
            dr_ctx c = { .ex = ex, .w = w, .u = u, .task = lane_task(ex, u, pos), .pos = pos };
            if (deliver(&c, NULL, NULL, NULL, 0) < 0)
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
    if (u->status != DR_FATAL && u->deadline_ms && ctx_mono_ms(ex) > u->deadline_ms) {
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
    if (cancelled_flag(ex) && (u->status == DR_FAIL || u->status == DR_RETRY))
        u->cancelled = true;

    if (w->in_txn) {
        bool commit = !u->cancelled && u->status != DR_RETRY;
        if (commit) {
            finalize(ex, u);
            struct dr_err e;
            err_clear(&e);
            ctx_build_records(ex, u, w->recbuf);
            char *why = NULL;
            if (store_ti_write_conn(w->conn, ex->run_id, w->recbuf, (size_t)n, &e) < 0) {
                size_t len = strlen(e.msg) + 32;
                if ((why = malloc(len)))
                    snprintf(why, len, "recording the item: %s", e.msg);
                worker_sql(w, "ROLLBACK", NULL);
            } else if (worker_sql(w, "COMMIT", &why) == 0) {
                u->committed = true;
            }
            if (!u->committed) {
                free(u->error);
                u->error = why ? why : strdup("commit failed");
                u->status = DR_RETRY;
                if (cancelled_flag(ex))
                    u->cancelled = true;
            }
        } else {
            worker_sql(w, "ROLLBACK", NULL);
        }
        w->in_txn = false;
        if (!u->committed)
            drop_checkpoints(u, n);     /* they described work that was rolled back */
    }
    finalize(ex, u);
}

/* ---- init / fini on the coordinator ---- */

int ctx_call_init(struct exec *ex, int i, char **error)
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

void ctx_call_fini(struct exec *ex, int i)
{
    const dr_task_def *def = ex->dag->tasks[i].plugin->def;
    if (!ex->ts[i].inited || !def->fini)
        return;
    dr_ctx c = { .ex = ex, .task = i };
    def->fini(&c, ex->ts[i].pstate);
}

void ctx_worker_cleanup(struct worker *w)
{
    if (w->conn)
        PQfinish(w->conn);
    w->conn = NULL;
    http_client_free(w->http);
    w->http = NULL;
}

/* ---- the public API ---- */

static const json_t *param(dr_ctx *ctx, const char *name)
{
    if (!ctx || !name)
        return NULL;
    json_t *const *params = ctx->ex->spec->params;
    const json_t *v = params && params[ctx->task] ? json_object_get(params[ctx->task], name) : NULL;
    return v ? v : json_object_get(ctx->ex->rt_params, name);
}

DR_EXPORT const char *dr_param_str(dr_ctx *ctx, const char *name)
{
    return json_string_value(param(ctx, name));
}

DR_EXPORT long long dr_param_int(dr_ctx *ctx, const char *name)
{
    const json_t *v = param(ctx, name);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return 0;
}

DR_EXPORT bool dr_param_bool(dr_ctx *ctx, const char *name)
{
    return json_is_true(param(ctx, name));
}

DR_EXPORT const json_t *dr_param_json(dr_ctx *ctx, const char *name)
{
    return param(ctx, name);
}

DR_EXPORT const json_t *dr_input(dr_ctx *ctx, const char *task_id)
{
    if (!ctx || !task_id)
        return NULL;
    const struct dag *d = ctx->ex->dag;
    const struct task *t = &d->tasks[ctx->task];
    int j = -1;
    if (t->map_idx >= 0 && strcmp(d->tasks[t->map_idx].id, task_id) == 0)
        j = t->map_idx;
    for (size_t k = 0; j < 0 && k < t->n_after; k++)
        if (strcmp(d->tasks[t->after_idx[k]].id, task_id) == 0)
            j = t->after_idx[k];
    if (j < 0)
        return NULL;    /* only upstreams: others may still be changing */
    const struct tstate *ts = &ctx->ex->ts[j];
    if (ts->lane >= 0 && ts->lane == ctx->ex->ts[ctx->task].lane)
        return ts->lane_pos == ctx->pos - 1 ? ctx->lane_json : NULL;
    return ts->phase == PH_ENDED ? ts->output : NULL;
}

DR_EXPORT const json_t *dr_map_item(dr_ctx *ctx)
{
    if (!ctx || !ctx->u || ctx->u->lane < 0)
        return NULL;
    const struct lane *l = &ctx->ex->lanes[ctx->u->lane];
    return json_array_get(ctx->ex->ts[l->over].output, (size_t)ctx->u->index);
}

DR_EXPORT long dr_map_index(dr_ctx *ctx)
{
    return ctx && ctx->u ? ctx->u->index : -1;
}

DR_EXPORT const json_t *dr_lane_json(dr_ctx *ctx)
{
    return ctx ? ctx->lane_json : NULL;
}

DR_EXPORT const void *dr_lane_blob(dr_ctx *ctx, const char **type, size_t *len)
{
    if (!ctx || !ctx->blob)
        return NULL;
    if (type)
        *type = ctx->blob_type;
    if (len)
        *len = ctx->blob_len;
    return ctx->blob;
}

static bool has_next(const dr_ctx *ctx)
{
    return ctx->u && ctx->u->lane >= 0 && ctx->pos + 1 < ctx->ex->lanes[ctx->u->lane].n;
}

DR_EXPORT int dr_emit_json_new(dr_ctx *ctx, json_t *value)
{
    if (!ctx || !value) {
        json_decref(value);
        return -1;
    }
    if (!ctx->u) {              /* init/fini: no output */
        json_decref(value);
        return -1;
    }
    if (has_next(ctx)) {
        int rc = deliver(ctx, value, NULL, NULL, 0);
        json_decref(value);
        return rc;
    }
    struct lrec *r = &ctx->u->recs[ctx->pos];
    if (r->n_out == 0) {
        r->output = value;
    } else {
        if (r->n_out == 1) {
            json_t *arr = json_array();
            json_array_append_new(arr, r->output);
            r->output = arr;
        }
        json_array_append_new(r->output, value);
    }
    r->n_out++;
    return 0;
}

DR_EXPORT int dr_emit_blob(dr_ctx *ctx, const char *type, const void *data, size_t len)
{
    if (!ctx || !ctx->u || !type || (!data && len))
        return -1;
    if (!has_next(ctx)) {
        /* Nothing consumes it (a lane's last task, or unmapped): dropped. */
        if (log_enabled(DR_LOG_DEBUG))
            log_msg(DR_LOG_DEBUG, ctx->ex->run_id, ctx->ex->dag->tasks[ctx->task].id,
                    item_key(ctx), "blob %s of %zu bytes has no next lane task: dropped", type,
                    len);
        return 0;
    }
    return deliver(ctx, NULL, type, data ? data : "", len);
}

DR_EXPORT void dr_log(dr_ctx *ctx, dr_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (ctx)
        log_vmsg(level, ctx->ex->run_id, ctx->ex->dag->tasks[ctx->task].id, item_key(ctx), fmt,
                 ap);
    else
        log_vmsg(level, NULL, NULL, NULL, fmt, ap);
    va_end(ap);
}

DR_EXPORT void dr_warn(dr_ctx *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!ctx)
        return;
    const char *task = ctx->ex->dag->tasks[ctx->task].id;
    const char *key = item_key(ctx);
    log_msg(DR_LOG_WARN, ctx->ex->run_id, task, key, "%s", msg);
    char full[1400];
    if (key)
        snprintf(full, sizeof full, "%s[%s]: %s", task, key, msg);
    else
        snprintf(full, sizeof full, "%s: %s", task, msg);
    pthread_mutex_lock(&ctx->ex->acc_lock);
    json_array_append_new(ctx->ex->warnings, json_string(full));
    pthread_mutex_unlock(&ctx->ex->acc_lock);
}

DR_EXPORT void dr_error(dr_ctx *ctx, const char *fmt, ...)
{
    if (!ctx)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    ctx->has_error = true;
}

DR_EXPORT void dr_count(dr_ctx *ctx, const char *counter, long long delta)
{
    if (!ctx || !counter)
        return;
    pthread_mutex_lock(&ctx->ex->acc_lock);
    json_t *v = json_object_get(ctx->ex->counters, counter);
    if (v)
        json_integer_set(v, json_integer_value(v) + delta);
    else
        json_object_set_new(ctx->ex->counters, counter, json_integer(delta));
    pthread_mutex_unlock(&ctx->ex->acc_lock);
}

DR_EXPORT bool dr_cancelled(dr_ctx *ctx)
{
    if (!ctx)
        return false;
    if (cancelled_flag(ctx->ex))
        return true;
    return ctx->u && ctx->u->deadline_ms && ctx_mono_ms(ctx->ex) >= ctx->u->deadline_ms;
}

DR_EXPORT void dr_set_checkpoint(dr_ctx *ctx, const char *text)
{
    if (!ctx || !ctx->u || ctx->u->lane < 0)
        return;
    struct lrec *r = &ctx->u->recs[ctx->pos];
    free(r->checkpoint);
    r->checkpoint = text ? strndup(text, 255) : NULL;
}

DR_EXPORT const char *dr_checkpoint(dr_ctx *ctx)
{
    if (!ctx || !ctx->u || ctx->u->lane < 0 || !ctx->ex->spec->prior)
        return NULL;
    const struct prior_task *pt = prior_find(ctx->ex->spec->prior, ctx->ex->dag->tasks[ctx->task].id);
    size_t i = (size_t)ctx->u->index;
    return pt && pt->checkpoints && i < pt->n_items ? pt->checkpoints[i] : NULL;
}

DR_EXPORT PGconn *dr_db(dr_ctx *ctx)
{
    if (!ctx)
        return NULL;
    struct worker *w = ctx->w;
    if (!w) {
        set_error(ctx, "no database connection outside run()");
        return NULL;
    }
    if (w->in_txn)
        return w->conn;
    const char *url = ctx->ex->spec->database_url;
    if (!url) {
        set_error(ctx, "no database configured");
        return NULL;
    }
    if (!w->conn) {
        struct dr_err e;
        err_clear(&e);
        if (!(w->conn = store_open_conn(url, &e))) {
            set_error(ctx, "%s", e.msg);
            return NULL;
        }
    }
    char *why = NULL;
    if (worker_sql(w, "BEGIN", &why) < 0) {
        set_error(ctx, "%s", why ? why : "BEGIN failed");
        free(why);
        PQfinish(w->conn);
        w->conn = NULL;
        return NULL;
    }
    w->in_txn = true;
    return w->conn;
}

static int http_call(dr_ctx *ctx, const char *source, const char *path, dr_http_sink sink,
                     void *ud, dr_http_response *resp)
{
    if (!resp)
        return -1;
    memset(resp, 0, sizeof *resp);
    if (!ctx || !ctx->w) {
        snprintf(resp->error, sizeof resp->error, "no HTTP outside run()");
        return -1;
    }
    struct exec *ex = ctx->ex;
    struct worker *w = ctx->w;
    if (!ex->spec->http) {
        snprintf(resp->error, sizeof resp->error, "no HTTP sources configured");
        return -1;
    }
    if (!w->http && !(w->http = http_client_new(ex->spec->http))) {
        snprintf(resp->error, sizeof resp->error, "cannot create an HTTP client");
        return -1;
    }
    int64_t deadline = 0;
    if (ctx->u && ctx->u->deadline_ms) {
        /* The try's deadline on the real monotonic clock that http.c reads. */
        int64_t left = ctx->u->deadline_ms - ctx_mono_ms(ex);
        deadline = clock_ms(CLOCK_MONOTONIC) + (left > 0 ? left : 0);
        if (deadline == 0)
            deadline = 1;
    }
    struct http_call call = {
        .cancel = &ex->cancel,
        .deadline_ms = deadline,
        .run_id = ex->run_id,
        .task = ex->dag->tasks[ctx->task].id,
        .item = item_key(ctx),
    };
    return http_get(w->http, source, path, sink, ud, resp, &call);
}

DR_EXPORT int dr_http_get(dr_ctx *ctx, const char *source, const char *path,
                          dr_http_response *resp)
{
    return http_call(ctx, source, path, NULL, NULL, resp);
}

DR_EXPORT int dr_http_get_stream(dr_ctx *ctx, const char *source, const char *path,
                                 dr_http_sink sink, void *ud, dr_http_response *resp)
{
    if (!sink) {
        if (resp) {
            memset(resp, 0, sizeof *resp);
            snprintf(resp->error, sizeof resp->error, "no sink given");
        }
        return -1;
    }
    return http_call(ctx, source, path, sink, ud, resp);
}

DR_EXPORT void dr_http_response_free(dr_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}
