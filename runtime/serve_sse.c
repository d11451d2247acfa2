/* `dagrun serve`: live run progress as Server-Sent Events, fed by PostgreSQL LISTEN/NOTIFY.
 *
 * schema.sql's triggers NOTIFY from the run's own transactions, while a server's listening
 * connection (application_name "dagrun serve") exists: channel dagrun_run (payload:
 * the run id) when a run's state, error, warnings or counters change, and dagrun_progress
 * (no payload) when task-instance records are written; a run may also send a warning as it
 * happens (run_notify.c, channel dagrun_warning). So progress reaches every server on
 * the database, whichever process or machine runs the run, and nobody polls the tables: one
 * hub thread per server LISTENs, and on a notification (at most every 100 ms, and every 5 s
 * in case one was lost) reads a snapshot of each watched run and sends what changed. */
#include <errno.h>
#include <stdatomic.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "serve.h"
#include "store.h"

struct watcher {
    struct serve_sse *hub;
    char run_id[160];
    struct MHD_Connection *conn;
    char *buf;                  /* events not yet sent; protected by hub.lock */
    size_t len, sent, cap;      /* protected by hub.lock */
    bool suspended;             /* protected by hub.lock */
    bool fresh;                 /* nothing sent yet: the first snapshot sends everything */
    bool ended;                 /* the end event is queued: close after it */
    /* what was sent (hub thread only) */
    char state[16];
    long long done, failed, total, tasks_done;
    int percent;
    size_t n_warnings;
    struct watcher *next;       /* protected by hub.lock */
};

struct serve_sse {
    struct serve *s;
    pthread_mutex_t lock;
    struct watcher *head;       /* protected by lock */
    size_t n;                   /* protected by lock */
    int wake;                   /* eventfd: a new watcher, or stop */
    atomic_int stopping;        /* set once by serve_sse_stop; read by every thread */
    pthread_t thread;
    bool started;
};

/* ---- a watcher's buffer ---- */

static void emit(struct watcher *w, const char *event, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!text)
        return;
    size_t need = strlen(event) + strlen(text) + 32;
    if (w->len + need > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + need)
            cap *= 2;
        char *grown = realloc(w->buf, cap);
        if (!grown) {
            free(text);
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    w->len += (size_t)snprintf(w->buf + w->len, w->cap - w->len, "event: %s\ndata: %s\n\n",
                               event, text);
    free(text);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct watcher *w = cls;
    struct serve_sse *hub = w->hub; /* outlives every stream */
    pthread_mutex_lock(&hub->lock);
    ssize_t rc;
    if (w->sent < w->len) {
        size_t n = w->len - w->sent < max ? w->len - w->sent : max;
        memcpy(buf, w->buf + w->sent, n);
        w->sent += n;
        if (w->sent == w->len)
            w->sent = w->len = 0;
        rc = (ssize_t)n;
    } else if (w->ended || atomic_load(&hub->stopping)) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        w->suspended = true;
        MHD_suspend_connection(w->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&hub->lock);
    return rc;
}

static void sse_free(void *cls)
{
    struct watcher *w = cls;
    struct serve_sse *hub = w->hub;
    pthread_mutex_lock(&hub->lock);
    for (struct watcher **pp = &hub->head; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            hub->n--;
            break;
        }
    pthread_mutex_unlock(&hub->lock);
    free(w->buf);
    free(w);
}

void serve_sse_open(struct serve_req *r, const char *run_id)
{
    struct serve_sse *hub = r->s->sse;
    struct watcher *w = calloc(1, sizeof *w);
    if (!w) {
        serve_reply_error(r, 500, "out of memory");
        return;
    }
    snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
    w->hub = hub;
    w->conn = r->conn;
    w->fresh = true;
    w->percent = -1;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, w, sse_free);
    if (!resp) {
        free(w);
        serve_reply_error(r, 500, "out of memory");
        return;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    /* A stream may stay quiet for long: the 10 s idle limit is for requests, not streams. */
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    pthread_mutex_lock(&hub->lock);
    w->next = hub->head;
    hub->head = w;
    hub->n++;
    /* "retry" tells EventSource clients how soon to reconnect. */
    static const char hello[] = "retry: 2000\n\n";
    w->buf = malloc(sizeof hello);
    if (w->buf) {
        memcpy(w->buf, hello, sizeof hello - 1);
        w->len = sizeof hello - 1;
        w->cap = sizeof hello;
    }
    pthread_mutex_unlock(&hub->lock);
    uint64_t one = 1;
    if (write(hub->wake, &one, sizeof one) < 0)
        log_debug("sse: wake: %s", strerror(errno));
    r->raw = resp;
    r->status = 200;
}

size_t serve_sse_count(struct serve *s)
{
    struct serve_sse *hub = s->sse;
    if (!hub)
        return 0;
    pthread_mutex_lock(&hub->lock);
    size_t n = hub->n;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

/* ---- snapshots ---- */

static const char snapshot_sql[] =
    "WITH m AS (SELECT map_index,"
    "  bool_and(state IN ('success', 'skipped')) AS ok,"
    "  bool_or(state IN ('failed', 'upstream_failed', 'cancelled')) AS bad,"
    "  count(*) AS n, max(map_key) AS key, max(coalesce(ended_at, started_at)) AS at"
    "  FROM dagrun.task_instance WHERE run_id = $1 AND map_index >= 0 GROUP BY map_index),"
    " k AS (SELECT count(DISTINCT task_id) AS tasks FROM dagrun.task_instance"
    "  WHERE run_id = $1 AND map_index >= 0)"
    " SELECT json_build_object('dag_id', r.dag_id, 'state', r.state, 'error', r.error,"
    "  'warnings', r.warnings, 'counters', r.counters,"
    "  'done', (SELECT count(*) FROM m, k WHERE m.ok AND NOT m.bad AND m.n >= k.tasks),"
    "  'failed', (SELECT count(*) FROM m WHERE m.bad),"
    "  'total', (SELECT coalesce(max(jsonb_array_length(t.output)), 0)"
    "   FROM dagrun.task_instance t WHERE t.run_id = $1 AND t.map_index = -1"
    "   AND jsonb_typeof(t.output) = 'array'),"
    "  'current', (SELECT m.key FROM m ORDER BY m.at DESC NULLS LAST LIMIT 1),"
    "  'tasks_done', (SELECT count(*) FROM dagrun.task_instance t WHERE t.run_id = $1"
    "   AND t.map_index = -1 AND t.state NOT IN ('pending', 'running')))"
    " FROM dagrun.dag_run r WHERE r.run_id = $1";

static bool terminal(const char *state)
{
    return strcmp(state, "success") == 0 || strcmp(state, "partial") == 0 ||
           strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0;
}

/* Queues on w the events that snap changes (hub thread, hub.lock held). n_unmapped (its
 * unmapped tasks) and mapped (it maps a task) describe the run's DAG (0 and false when it
 * is not loaded): a DAG that maps counts progress in items, another in tasks. */
static void diff(struct watcher *w, const json_t *snap, size_t n_unmapped, bool mapped)
{
    const char *state = json_string_value(json_object_get(snap, "state"));
    if (!state || w->ended)
        return;
    json_int_t done = json_integer_value(json_object_get(snap, "done"));
    json_int_t failed = json_integer_value(json_object_get(snap, "failed"));
    json_int_t total = json_integer_value(json_object_get(snap, "total"));
    json_int_t tasks_done = json_integer_value(json_object_get(snap, "tasks_done"));
    int percent;
    if (mapped)
        percent = total > 0 ? (int)((done + failed) * 100 / total) : 0;
    else
        percent = n_unmapped ? (int)(tasks_done * 100 / (json_int_t)n_unmapped) : 0;
    if (percent > 100)
        percent = 100;
    if (terminal(state) && strcmp(state, "success") == 0)
        percent = 100;
    if (percent < w->percent)
        percent = w->percent; /* a bar never moves back */
    if (w->fresh || strcmp(state, w->state) != 0)
        emit(w, "state", json_pack("{s:s,s:s,s:s}", "dag_run_id", w->run_id, "state",
                                   serve_airflow_run_state(state), "dagrun_state", state));
    if (w->fresh || done != w->done || failed != w->failed || total != w->total ||
        tasks_done != w->tasks_done || percent != w->percent)
        emit(w, "progress",
             json_pack("{s:I,s:I,s:I,s:i,s:O,s:I,s:i}", "items_done", done, "items_failed",
                       failed, "items_total", total, "percent", percent, "current_item",
                       json_object_get(snap, "current"), "tasks_done", tasks_done, "tasks_total",
                       (int)n_unmapped));
    /* n_warnings also counts the warnings sent live, before the run stored them. */
    const json_t *warns = json_object_get(snap, "warnings");
    for (size_t i = w->n_warnings; i < json_array_size(warns); i++)
        emit(w, "warning", json_pack("{s:O}", "message", json_array_get(warns, i)));
    if (json_array_size(warns) > w->n_warnings)
        w->n_warnings = json_array_size(warns);
    snprintf(w->state, sizeof w->state, "%s", state);
    w->done = done;
    w->failed = failed;
    w->total = total;
    w->tasks_done = tasks_done;
    w->percent = percent;
    w->fresh = false;
    if (terminal(state)) {
        emit(w, "end", json_pack("{s:s,s:s,s:s,s:O,s:O,s:I,s:I,s:I,s:i}", "dag_run_id",
                                 w->run_id, "state", serve_airflow_run_state(state),
                                 "dagrun_state", state, "error", json_object_get(snap, "error"),
                                 "counters", json_object_get(snap, "counters"), "items_done",
                                 done, "items_failed", failed, "items_total", total, "percent",
                                 percent));
        w->ended = true;
    }
}

/* Reads a snapshot of every watched run and queues what changed; resumes the streams that
 * have something to send. keepalive: also send a comment to every idle stream (a stream
 * whose client left is only noticed when something is written to it). */
static void refresh(struct serve_sse *hub, struct store *st, bool keepalive)
{
    struct serve *s = hub->s;
    /* The distinct run ids watched, copied out so that no query runs under the lock. */
    size_t cap = 0, n = 0;
    char (*ids)[160] = NULL;
    pthread_mutex_lock(&hub->lock);
    for (struct watcher *w = hub->head; w; w = w->next) {
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(ids[i], w->run_id) == 0;
        if (seen || w->ended)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *grown = realloc(ids, cap * sizeof *ids);
            if (!grown)
                break;
            ids = grown;
        }
        memcpy(ids[n++], w->run_id, sizeof ids[0]);
    }
    pthread_mutex_unlock(&hub->lock);
    for (size_t i = 0; i < n; i++) {
        struct dr_err err;
        err_clear(&err);
        const char *v[] = { ids[i] };
        json_t *snap = serve_db_json(st, snapshot_sql, 1, v, &err);
        if (!snap) {
            if (err.msg[0])
                log_warn("event stream of %s: %s", ids[i], err.msg);
            continue;
        }
        size_t n_unmapped = 0;
        bool mapped = false;
        pthread_mutex_lock(&s->dag_lock);
        const struct dag *d = serve_dag_find(s, json_string_value(json_object_get(snap, "dag_id")));
        for (size_t t = 0; d && t < d->n_tasks; t++) {
            if (d->tasks[t].map)
                mapped = true;
            else
                n_unmapped++;
        }
        pthread_mutex_unlock(&s->dag_lock);
        pthread_mutex_lock(&hub->lock);
        for (struct watcher *w = hub->head; w; w = w->next)
            if (strcmp(w->run_id, ids[i]) == 0)
                diff(w, snap, n_unmapped, mapped);
        pthread_mutex_unlock(&hub->lock);
        json_decref(snap);
    }
    free(ids);
    /* Resume outside the lock (MHD takes its own locks there). A suspended connection is
     * never closed by MHD, so its watcher cannot be freed in between. */
    struct MHD_Connection *wake[256];
    for (;;) {
        size_t k = 0;
        pthread_mutex_lock(&hub->lock);
        for (struct watcher *w = hub->head; w && k < 256; w = w->next) {
            if (!w->suspended)
                continue;
            if (keepalive && w->len == w->sent && !w->ended) {
                static const char ping[] = ": keepalive\n\n";
                if (w->cap < sizeof ping) {
                    char *grown = realloc(w->buf, sizeof ping);
                    if (!grown)
                        continue;
                    w->buf = grown;
                    w->cap = sizeof ping;
                }
                memcpy(w->buf, ping, sizeof ping - 1);
                w->sent = 0;
                w->len = sizeof ping - 1;
            }
            if (w->len > w->sent || w->ended || atomic_load(&hub->stopping)) {
                w->suspended = false;
                wake[k++] = w->conn;
            }
        }
        pthread_mutex_unlock(&hub->lock);
        for (size_t i = 0; i < k; i++)
            MHD_resume_connection(wake[i]);
        if (k < 256)
            break;
    }
}

/* A warning a run sent as it happened (run_notify.c): straight to its watchers, counted so
 * that the same warning stored with the run later is not sent again. */
static void live_warning(struct serve_sse *hub, const char *payload)
{
    json_t *o = json_loads(payload, 0, NULL);
    const char *run_id = json_string_value(json_object_get(o, "run_id"));
    const json_t *msg = json_object_get(o, "message");
    struct MHD_Connection *wake[256];
    size_t k = 0;
    pthread_mutex_lock(&hub->lock);
    for (struct watcher *w = hub->head; run_id && json_is_string(msg) && w; w = w->next) {
        /* A fresh watcher gets the stored warnings with its first snapshot, this one among
         * them once the run stores it. */
        if (w->fresh || w->ended || strcmp(w->run_id, run_id) != 0)
            continue;
        emit(w, "warning", json_pack("{s:O}", "message", msg));
        w->n_warnings++;
        if (w->suspended && k < 256) {
            w->suspended = false;
            wake[k++] = w->conn;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    for (size_t i = 0; i < k; i++)
        MHD_resume_connection(wake[i]);
    json_decref(o);
}

static struct store *listen_conn(struct serve_sse *hub)
{
    struct dr_err err;
    err_clear(&err);
    struct store *st = store_open(hub->s->c->cfg->database_url, &err);
    if (!st) {
        log_warn("event streams: %s (retrying)", err.msg);
        return NULL;
    }
    /* schema.sql's triggers NOTIFY only while a connection of this name exists. */
    PGresult *res0 = serve_db_exec(st, "SET application_name = 'dagrun serve'", 0, NULL, &err);
    PGresult *res = res0 ? serve_db_exec(st, "LISTEN dagrun_run", 0, NULL, &err) : NULL;
    PQclear(res0);
    PGresult *res2 = res ? serve_db_exec(st, "LISTEN dagrun_progress", 0, NULL, &err) : NULL;
    PGresult *res3 = res2 ? serve_db_exec(st, "LISTEN dagrun_warning", 0, NULL, &err) : NULL;
    bool ok = res && res2 && res3;
    PQclear(res);
    PQclear(res2);
    PQclear(res3);
    if (!ok) {
        log_warn("event streams: %s (retrying)", err.msg);
        store_close(st);
        return NULL;
    }
    return st;
}

static void *hub_thread(void *arg)
{
    struct serve_sse *hub = arg;
    struct store *st = NULL;
    int64_t last_refresh = 0, last_keepalive = serve_now_ms(), retry_at = 0;
    bool dirty = true;
    while (!atomic_load(&hub->stopping)) {
        int64_t now = serve_now_ms();
        if (!st && now >= retry_at) {
            st = listen_conn(hub);
            if (!st)
                retry_at = now + 2000;
            dirty = true; /* notifications may have been missed meanwhile */
        }
        /* At most one refresh per 100 ms: a burst of notifications becomes one. */
        int timeout = dirty ? (int)(last_refresh + 100 - now) : (int)(last_refresh + 5000 - now);
        if (timeout < 0)
            timeout = 0;
        if (!st && timeout > 2000)
            timeout = 2000;
        struct pollfd pf[2] = { { .fd = hub->wake, .events = POLLIN },
                                { .fd = st ? PQsocket(store_conn(st)) : -1, .events = POLLIN } };
        int rc = poll(pf, 2, timeout);
        if (atomic_load(&hub->stopping))
            break;
        if (rc > 0 && (pf[0].revents & POLLIN)) {
            uint64_t v;
            if (read(hub->wake, &v, sizeof v) < 0)
                log_debug("sse: wake read: %s", strerror(errno));
            dirty = true;
        }
        if (st && rc > 0 && pf[1].revents) {
            PGconn *pg = store_conn(st);
            if (!PQconsumeInput(pg)) {
                log_warn("event streams: lost the database connection (reconnecting)");
                store_close(st);
                st = NULL;
                continue;
            }
            PGnotify *nf;
            while ((nf = PQnotifies(pg))) {
                if (strcmp(nf->relname, "dagrun_warning") == 0)
                    live_warning(hub, nf->extra);
                else
                    dirty = true;
                PQfreemem(nf);
            }
        }
        now = serve_now_ms();
        bool keepalive = now - last_keepalive >= 15000;
        if (st && ((dirty && now - last_refresh >= 100) || now - last_refresh >= 5000 ||
                   keepalive)) {
            refresh(hub, st, keepalive);
            if (keepalive)
                last_keepalive = now;
            last_refresh = now;
            dirty = false;
            if (PQstatus(store_conn(st)) != CONNECTION_OK) {
                store_close(st);
                st = NULL;
            }
        }
    }
    store_close(st);
    return NULL;
}

int serve_sse_start(struct serve *s, struct dr_err *err)
{
    struct serve_sse *hub = calloc(1, sizeof *hub);
    if (!hub)
        return err_set(err, "out of memory");
    hub->s = s;
    pthread_mutex_init(&hub->lock, NULL);
    hub->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (hub->wake < 0) {
        free(hub);
        return err_set(err, "serve: eventfd: %s", strerror(errno));
    }
    s->sse = hub;
    if (pthread_create(&hub->thread, NULL, hub_thread, hub) != 0) {
        close(hub->wake);
        free(hub);
        s->sse = NULL;
        return err_set(err, "serve: cannot start the event-stream thread");
    }
    hub->started = true;
    return 0;
}

void serve_sse_stop(struct serve *s)
{
    struct serve_sse *hub = s->sse;
    if (!hub)
        return;
    if (!atomic_load(&hub->stopping)) {
        atomic_store(&hub->stopping, 1);
        uint64_t one = 1;
        if (write(hub->wake, &one, sizeof one) < 0)
            log_debug("sse: wake: %s", strerror(errno));
        if (hub->started)
            pthread_join(hub->thread, NULL);
        hub->started = false;
    }
    /* Every stream ends: suspended ones are resumed so that MHD can close them. */
    struct MHD_Connection *wake[256];
    for (;;) {
        size_t k = 0;
        pthread_mutex_lock(&hub->lock);
        for (struct watcher *w = hub->head; w && k < 256; w = w->next)
            if (w->suspended) {
                w->suspended = false;
                w->ended = true;
                wake[k++] = w->conn;
            }
        pthread_mutex_unlock(&hub->lock);
        for (size_t i = 0; i < k; i++)
            MHD_resume_connection(wake[i]);
        if (k < 256)
            break;
    }
}

void serve_sse_free(struct serve *s)
{
    struct serve_sse *hub = s->sse;
    if (!hub)
        return;
    close(hub->wake);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
    s->sse = NULL;
}
