/* The plugin-facing dr_* API (include/dagrun/task.h) over the executor's state: params,
 * inputs, emits, logs, warnings, counters, checkpoints, the database and HTTP. */
#include "exec_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "store.h"

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
        int rc = unit_deliver(ctx, value, NULL, NULL, 0);
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
                    unit_item_key(ctx), "blob %s of %zu bytes has no next lane task: dropped", type,
                    len);
        return 0;
    }
    return unit_deliver(ctx, NULL, type, data ? data : "", len);
}

DR_EXPORT void dr_log(dr_ctx *ctx, dr_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (ctx)
        log_vmsg(level, ctx->ex->run_id, ctx->ex->dag->tasks[ctx->task].id, unit_item_key(ctx), fmt,
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
    const char *key = unit_item_key(ctx);
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
    if (ctx->w && ctx->u)
        unit_count_hold(ctx->w, counter, delta);   /* counted if the unit's work commits */
    else
        unit_count_add(ctx->ex, counter, delta);   /* init/fini */
}

DR_EXPORT bool dr_cancelled(dr_ctx *ctx)
{
    if (!ctx)
        return false;
    if (unit_cancelled(ctx->ex))
        return true;
    return ctx->u && ctx->w->deadline_ms && unit_mono_ms(ctx->ex) >= ctx->w->deadline_ms;
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
        dr_error(ctx, "no database connection outside run()");
        return NULL;
    }
    if (w->in_txn)
        return w->conn;
    const char *url = ctx->ex->spec->database_url;
    if (!url) {
        dr_error(ctx, "no database configured");
        return NULL;
    }
    if (!w->conn) {
        struct dr_err e;
        err_clear(&e);
        if (!(w->conn = connpool_take(ctx->ex, url, &e))) {
            dr_error(ctx, "%s", e.msg);
            return NULL;
        }
    }
    char *why = NULL;
    if (unit_worker_sql(w, "BEGIN", &why) < 0) {
        dr_error(ctx, "%s", why ? why : "BEGIN failed");
        free(why);
        PQfinish(w->conn);
        w->conn = NULL;
        connpool_give(ctx->ex, NULL);
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
    if (ctx->u && ctx->w->deadline_ms) {
        /* The try's deadline on the real monotonic clock that http.c reads. */
        int64_t left = ctx->w->deadline_ms - unit_mono_ms(ex);
        deadline = unit_clock_ms(CLOCK_MONOTONIC) + (left > 0 ? left : 0);
        if (deadline == 0)
            deadline = 1;
    }
    struct http_call call = {
        .cancel = &ex->cancel,
        .deadline_ms = deadline,
        .run_id = ex->run_id,
        .task = ex->dag->tasks[ctx->task].id,
        .item = unit_item_key(ctx),
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

/* dr_http_get with a request weight: http.c takes it from this thread. */
DR_EXPORT int dr_http_get_weighted(dr_ctx *ctx, const char *source, const char *path, int weight,
                                   dr_http_response *resp)
{
    http_next_weight(weight);
    int rc = dr_http_get(ctx, source, path, resp);
    http_next_weight(0);
    return rc;
}
