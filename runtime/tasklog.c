/* Kept task logs: the log lines of each task instance and item, written to dagrun.task_log
 * by a thread of their own, with a size cap per instance. */
#include "tasklog.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"

/* One buffered line. */
struct line {
    char *run_id, *task, *item;     /* item NULL: not mapped */
    char when[32];
    dr_log_level level;
    char *msg;
};

/* Bytes kept and lines dropped per instance (run, task, item). */
struct inst {
    char *key;                      /* run_id \x1f task \x1f item */
    size_t bytes;
    unsigned long dropped;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stopping, warned;
    char *url;
    PGconn *conn;
    struct line *pending;
    size_t n_pending, cap_pending;
    struct inst *insts;             /* open addressing, cap a power of two */
    size_t n_insts, cap_insts;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

enum { WAKE_AT = 2000, MAX_INSTS = 1 << 16 };

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The instance's tally, or NULL (out of memory, or too many instances). Under g.lock. */
static void push_dropped(void);

/* Forgets every instance's tally (after writing its dropped count): a scheduler that runs
 * for months keeps a bounded table; an instance seen again starts a new 64 KiB. */
static void insts_reset(void)
{
    push_dropped();
    for (size_t i = 0; i < g.cap_insts; i++)
        free(g.insts[i].key);
    memset(g.insts, 0, g.cap_insts * sizeof *g.insts);
    g.n_insts = 0;
}

static struct inst *inst_get(const char *key)
{
    if (g.n_insts >= MAX_INSTS)
        insts_reset();
    if (g.n_insts * 2 >= g.cap_insts) {
        size_t cap = g.cap_insts ? g.cap_insts * 2 : 1024;
        struct inst *t = calloc(cap, sizeof *t);
        if (!t)
            return NULL;
        for (size_t i = 0; i < g.cap_insts; i++) {
            if (!g.insts[i].key)
                continue;
            size_t j = hash(g.insts[i].key) & (cap - 1);
            while (t[j].key)
                j = (j + 1) & (cap - 1);
            t[j] = g.insts[i];
        }
        free(g.insts);
        g.insts = t;
        g.cap_insts = cap;
    }
    size_t j = hash(key) & (g.cap_insts - 1);
    while (g.insts[j].key) {
        if (strcmp(g.insts[j].key, key) == 0)
            return &g.insts[j];
        j = (j + 1) & (g.cap_insts - 1);
    }
    if (!(g.insts[j].key = strdup(key)))
        return NULL;
    g.n_insts++;
    return &g.insts[j];
}

static void line_free(struct line *l)
{
    free(l->run_id);
    free(l->task);
    free(l->item);
    free(l->msg);
}

/* Appends a line to the buffer; under g.lock. */
static void push(dr_log_level level, const char *run_id, const char *task, const char *item,
                 const char *when, const char *msg)
{
    if (g.n_pending == g.cap_pending) {
        size_t cap = g.cap_pending ? g.cap_pending * 2 : 256;
        struct line *p = realloc(g.pending, cap * sizeof *p);
        if (!p)
            return;
        g.pending = p;
        g.cap_pending = cap;
    }
    struct line *l = &g.pending[g.n_pending];
    memset(l, 0, sizeof *l);
    l->run_id = strdup(run_id);
    l->task = strdup(task);
    l->item = item ? strdup(item) : NULL;
    l->msg = strdup(msg);
    snprintf(l->when, sizeof l->when, "%s", when);
    l->level = level;
    if (!l->run_id || !l->task || (item && !l->item) || !l->msg) {
        line_free(l);
        return;
    }
    g.n_pending++;
}

static void sink(void *ud, dr_log_level level, const char *run_id, const char *task,
                 const char *item, const char *when, const char *msg)
{
    (void)ud;
    char key[1024];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", run_id, task, item ? item : "");
    size_t len = strlen(msg) + 1;
    pthread_mutex_lock(&g.lock);
    struct inst *in = inst_get(key);
    if (in && in->bytes + len > TASKLOG_CAP_BYTES) {
        in->dropped++;
    } else {
        if (in)
            in->bytes += len;
        push(level, run_id, task, item, when, msg);
        if (g.n_pending >= WAKE_AT)
            pthread_cond_signal(&g.wake);
    }
    pthread_mutex_unlock(&g.lock);
}

/* A growable text buffer for PostgreSQL array literals. */
struct buf {
    char *s;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* One array element: quoted with \ and " escaped, or NULL. */
static void put_elem(struct buf *b, const char *v, bool first)
{
    put(b, first ? "{" : ",", 1);
    if (!v) {
        put(b, "NULL", 4);
        return;
    }
    put(b, "\"", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\", 1);
        put(b, p, 1);
    }
    put(b, "\"", 1);
}

static const char *level_name(dr_log_level l)
{
    return l == DR_LOG_DEBUG ? "debug" : l == DR_LOG_INFO ? "info" : l == DR_LOG_WARN ? "warning"
                                                                                       : "error";
}

/* Writes n lines in one statement; lines of runs with no dag_run row are skipped. */
static void write_lines(struct line *ls, size_t n)
{
    if (!n)
        return;
    if (!g.conn && g.warned)
        return;   /* said once: no second connect (and its timeout) per batch */
    if (!g.conn) {
        g.conn = PQconnectdb(g.url ? g.url : "");
        if (PQstatus(g.conn) != CONNECTION_OK) {
            if (!g.warned)
                fprintf(stderr, "dagrun: warning: task logs are not kept: cannot connect to the "
                                "database\n");
            g.warned = true;
            PQfinish(g.conn);
            g.conn = NULL;
            return;
        }
    }
    struct buf col[6] = { 0 };
    for (size_t i = 0; i < n; i++) {
        put_elem(&col[0], ls[i].run_id, i == 0);
        put_elem(&col[1], ls[i].task, i == 0);
        put_elem(&col[2], ls[i].item, i == 0);
        put_elem(&col[3], ls[i].when, i == 0);
        put_elem(&col[4], level_name(ls[i].level), i == 0);
        put_elem(&col[5], ls[i].msg, i == 0);
    }
    bool oom = false;
    const char *vals[6];
    for (int c = 0; c < 6; c++) {
        put(&col[c], "}", 1);
        oom |= col[c].oom;
        vals[c] = col[c].s;
    }
    if (!oom) {
        PGresult *res = PQexecParams(
            g.conn,
            "INSERT INTO dagrun.task_log (run_id, task_id, map_key, ts, level, line) "
            "SELECT u.r, u.t, u.m, u.w, u.l, u.x FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::timestamptz[], $5::text[], $6::text[]) WITH ORDINALITY "
            "AS u(r, t, m, w, l, x, o) "
            "WHERE EXISTS (SELECT 1 FROM dagrun.dag_run d WHERE d.run_id = u.r) ORDER BY u.o",
            6, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (!g.warned)
                fprintf(stderr, "dagrun: warning: task logs are not kept: %s%s",
                        PQresultErrorMessage(res),
                        state && strcmp(state, "42P01") == 0
                            ? "hint: run `dagrun initdb` to create dagrun.task_log\n"
                            : "");
            g.warned = true;
            if (PQstatus(g.conn) != CONNECTION_OK) {
                PQfinish(g.conn);
                g.conn = NULL;
            }
        }
        PQclear(res);
    }
    for (int c = 0; c < 6; c++)
        free(col[c].s);
}

/* The "N lines dropped" lines of the capped instances; under g.lock. */
static void push_dropped(void)
{
    char when[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (size_t i = 0; i < g.cap_insts; i++) {
        struct inst *in = &g.insts[i];
        if (!in->key || !in->dropped)
            continue;
        char *run = in->key, *task = strchr(run, '\x1f'), *item;
        if (!task || !(item = strchr(task + 1, '\x1f')))
            continue;
        *task++ = '\0';
        *item++ = '\0';
        char msg[160];
        snprintf(msg, sizeof msg, "%lu lines dropped (the log of one instance keeps %d KiB)",
                 in->dropped, TASKLOG_CAP_BYTES / 1024);
        push(DR_LOG_WARN, run, task, *item ? item : NULL, when, msg);
        task[-1] = '\x1f';
        item[-1] = '\x1f';
        in->dropped = 0;
    }
}

static void *writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.lock);
    for (;;) {
        if (g.stopping)
            push_dropped();
        if (!g.n_pending) {
            if (g.stopping)
                break;
            struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 500);
            pthread_cond_timedwait(&g.wake, &g.lock, &ts);
            continue;
        }
        struct line *batch = g.pending;
        size_t n = g.n_pending;
        g.pending = NULL;
        g.n_pending = g.cap_pending = 0;
        pthread_mutex_unlock(&g.lock);
        write_lines(batch, n);
        for (size_t i = 0; i < n; i++)
            line_free(&batch[i]);
        free(batch);
        pthread_mutex_lock(&g.lock);
    }
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

int tasklog_start(const char *database_url, struct dr_err *err)
{
    if (g.running)
        return 0;
    if (database_url && !(g.url = strdup(database_url)))
        return err_set(err, "out of memory");
    g.stopping = false;
    if (pthread_create(&g.thread, NULL, writer, NULL) != 0) {
        free(g.url);
        g.url = NULL;
        return err_set(err, "cannot start the task log writer thread");
    }
    g.running = true;
    log_set_sink(sink, NULL);
    return 0;
}

void tasklog_stop(void)
{
    if (!g.running)
        return;
    pthread_mutex_lock(&g.lock);
    g.stopping = true;
    pthread_cond_signal(&g.wake);
    pthread_mutex_unlock(&g.lock);
    pthread_join(g.thread, NULL);
    log_set_sink(NULL, NULL);
    g.running = false;
    if (g.conn)
        PQfinish(g.conn);
    g.conn = NULL;
    for (size_t i = 0; i < g.cap_insts; i++)
        free(g.insts[i].key);
    free(g.insts);
    g.insts = NULL;
    free(g.pending);
    g.pending = NULL;
    g.cap_pending = 0;
    g.n_insts = g.cap_insts = 0;
    free(g.url);
    g.url = NULL;
}
