/* runtime-private: the executor's own state (executor, runplan, unit, ctx, retryheap and trigger.c) */
/* The executor's shared run state, its work units and dr_ctx: the coordinator (executor.c),
 * the unit runner (unit.c) and the dr_* API (ctx.c). */
#ifndef DR_EXEC_PRIVATE_H
#define DR_EXEC_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <dagrun/task.h>
#include "executor.h"
#include "workq.h"

/* Threads and ownership, in one place:
 * - The coordinator (the caller of executor_run) owns every field of struct exec
 *   marked "coordinator", struct tstate and struct lane, and the units that are
 *   not in a worker's hands.
 * - A unit is handed to a worker through exec.q (workq.c, under its lock) and
 *   back the same way; between the two only that worker touches it (and its
 *   lrec slots). The lock hand-off orders the accesses.
 * - What workers read while running: the spec, dag, params (read-only JSON,
 *   never increfed by workers), tstate[].output of tasks that ended before the
 *   unit was dispatched (never changed again until the workers are joined),
 *   lanes[] layout and keys (written before the lane's first dispatch), and
 *   plugin states (set by init before the first dispatch).
 * Lock order: exec.q.lock and exec.acc_lock are never held together. */

/* One lane task's record for one unit (an unmapped instance has one). */
struct lrec {
    int64_t start_ms, end_ms;   /* wall ms of the first call start and last call end */
    int agg;                    /* worst status of its calls (see unit.c), -1: never called */
    enum ti_state state;        /* final state, set when the unit ends */
    char *error;                /* last dr_error of its calls, or NULL; owned */
    json_t *output;             /* emitted output (last lane task / unmapped), owned */
    int n_out;                  /* emits accumulated into output */
    int sent;                   /* emits handed to the next lane task */
    char *checkpoint;           /* last dr_set_checkpoint, or NULL; owned */
};

/* One per map item (a million-item map holds a million): keep it small. What only a
 * running try needs (its deadline) lives in struct worker. */
struct unit {
    struct workq_item link;     /* first: queue and list link (exec.q.lock while queued, else
                                 * the owner); unit_of() goes back */
    struct lrec *recs;          /* one per lane task (1 when unmapped) */
    char *error;                /* unit error (timeout, commit, the failing task's), owned */
    int64_t due_ms;             /* retry due time (monotonic / fake clock) */
    long index;                 /* map index, -1 when unmapped */
    int task;                   /* unmapped task, or the lane head */
    int lane;                   /* -1 when unmapped */
    int try_number;             /* 1-based, set by the coordinator before dispatch */
    /* Results, written by the worker, read by the coordinator after hand-back. */
    int err_task;               /* lane position whose error is the unit's, or -1 */
    unsigned char status;       /* dr_status: unit outcome OK, SKIP, RETRY, FAIL, FATAL */
    bool cancelled;             /* ended by cancellation: rolled back, recorded cancelled */
    bool committed;             /* records were written and committed on the worker's conn */
    bool parked;                /* a window counted in PostgreSQL was used up: what it did is
                                 * kept, its records say pending, the run parks (queued) */
};

struct lane {
    int *tasks;                 /* dag task indexes, head first */
    int n;
    int over;                   /* task whose output is mapped */
    size_t n_items;             /* set at expansion */
    struct unit *units;         /* n_items, one calloc */
    struct lrec *recs;          /* n_items * n, one calloc */
    char *key_buf;              /* the n_items display keys, each ends with a NUL */
    uint32_t *key_off;          /* n_items offsets into key_buf (lane_key) */
    size_t n_ended;
};

enum phase { PH_WAITING, PH_RUNNING, PH_ENDED };

struct tstate {
    enum phase phase;
    enum ti_state state;        /* final (aggregate for mapped) state once ended */
    json_t *output;             /* ended: output (mapped: array of item outputs); owned */
    int lane, lane_pos;         /* -1 when unmapped */
    bool inited;                /* init ran (fini due) */
    void *pstate;               /* plugin state from init */
    int pool;                   /* index into exec.pools, -1: no limit */
    size_t n_ok, n_skip, n_fail;/* mapped: item tallies */
    struct unit unit;           /* unmapped: its one unit */
    struct lrec rec;            /* unmapped: its record */
};

struct pool_state {
    int slots, in_use;
    struct unit *head, *tail;   /* units waiting for a slot */
};

struct worker {
    struct exec *ex;
    pthread_t thread;
    PGconn *conn;               /* the running unit's, from ex->db; NULL between units */
    bool in_txn;                /* a BEGIN is open on conn */
    int sp_depth;               /* savepoints open */
    struct http_client *http;   /* lazily */
    struct ti_record *recbuf;   /* max lane length */
    int64_t deadline_ms;        /* the running try's (monotonic / fake clock), 0: none */
    /* The running unit's dr_count deltas, held until its work commits (unit.c). */
    struct held_count { char *name; long long delta; } *counts;
    size_t n_counts, cap_counts;
    size_t counts_floor;        /* entries below belong to an enclosing savepoint */
};

struct exec {
    const struct run_spec *spec;
    const struct dag *dag;
    const char *run_id;
    /* Read-only strings and JSON for the runtime's own params. */
    char logical_date[32], dis[32], die[32];
    json_t *rt_params;          /* object run_id/logical_date/...; coordinator creates, read-only */

    struct tstate *ts;          /* coordinator (see top) */
    struct lane *lanes;
    size_t n_lanes;
    int max_lane;
    struct pool_state *pools;
    size_t n_pools;

    struct workq q;             /* units to workers and back (its own lock) */

    int cancel;                 /* atomic (__atomic_*): workers stop early when nonzero */

    pthread_mutex_t acc_lock;   /* guards warnings, counters, park_until, park_why */
    json_t *warnings, *counters;
    int64_t park_until;         /* earliest reopening (Unix s) of a window that parked a unit */
    char park_why[400];         /* its refusal */

    struct worker *workers;
    int n_workers;

    /* The workers' database connections. A unit takes one at its first dr_db() and gives it
     * back when its transaction ends, so at most `max` transactions run at once however many
     * workers fetch, and they run on the same few backends (unit.c). */
    struct conn_pool {
        pthread_mutex_t lock;
        pthread_cond_t freed;
        PGconn **idle;          /* max entries; guarded by lock, as are the counts */
        int n_idle;
        int open;               /* idle and taken */
        int max;
    } db;
};

/* Map item i's display key in lane l. */
static inline const char *lane_key(const struct lane *l, size_t i)
{
    return l->key_buf + l->key_off[i];
}

/* The unit whose link is it (NULL for NULL). */
static inline struct unit *unit_of(struct workq_item *it)
{
    return it ? (struct unit *)((char *)it - offsetof(struct unit, link)) : NULL;
}

/* The unit after u in a queue or list, or NULL. */
static inline struct unit *unit_next(const struct unit *u)
{
    return unit_of(u->link.next);
}

/* The context a plugin callback gets: one call of one task. */
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

/* Monotonic ms (fake clock in tests). Any thread. */
int64_t unit_mono_ms(const struct exec *ex);
/* Wall ms for records (fake clock in tests). Any thread. */
int64_t unit_wall_ms(const struct exec *ex);

/* Runs one unit on worker w: every lane task call, emits, savepoints, the
 * transaction, and the unit's outcome and final per-task states in u. Worker
 * thread; u belongs to the caller for the call. */
void unit_run(struct worker *w, struct unit *u);

/* Calls def->init (or fini) for task i with a ctx that has params and no item.
 * init: returns 0, or -1 with *error set (malloc'd). Coordinator thread. */
int unit_call_init(struct exec *ex, int i, char **error);
void unit_call_fini(struct exec *ex, int i);

/* Closes the worker's connection and HTTP client. The worker's thread or after join. */
void unit_worker_cleanup(struct worker *w);

/* Fills out[0..n) (n = lane length, 1 when unmapped) with u's records; the
 * strings and outputs are borrowed from u and the lane. Any thread that owns u. */
void unit_build_records(const struct exec *ex, const struct unit *u, struct ti_record *out);

/* Frees an lrec's error/output and resets it to "never called". Owner of the unit. */
void unit_lrec_reset(struct lrec *r);

/* For the dr_* API (ctx.c), on the thread that runs the call: */
/* The real clock id's ms (CLOCK_MONOTONIC, CLOCK_REALTIME). Any thread. */
int64_t unit_clock_ms(clockid_t id);
/* Whether the run is being cancelled (workers stop early). Any thread. */
bool unit_cancelled(const struct exec *ex);
/* The call's map item key, or NULL when unmapped or in init/fini. */
const char *unit_item_key(const dr_ctx *c);
/* Hands one emitted value (json, or a blob) to the next lane task, inside a savepoint when
 * a transaction is open. Returns 0, or -1 when that call did not succeed. Worker thread. */
int unit_deliver(dr_ctx *c, const json_t *json, const char *btype, const void *blob, size_t len);
/* Holds a dr_count delta with the worker's running unit: it reaches the run's counters only
 * when the unit's transaction commits (no transaction: when it ends OK or SKIP). Worker
 * thread. */
void unit_count_hold(struct worker *w, const char *counter, long long delta);
/* Adds counters' deltas to the run's (under acc_lock). Any thread. */
void unit_count_add(struct exec *ex, const char *counter, long long delta);
/* The run's connection pool (connpool.c). connpool_init: at most max connections (at least
 * 1); 0 or -1 (out of memory). connpool_take: an idle connection, a new one while fewer
 * than max are open, else waits for one to be given back; NULL with err when the connection
 * fails or the run is cancelled meanwhile. connpool_give: back to the pool when it is sound
 * and outside a transaction, else closed (c may be NULL: a connection that failed to open).
 * Take and give: any worker thread; init and free: the coordinator, without workers. */
int connpool_init(struct exec *ex, int max);
void connpool_free(struct exec *ex);
PGconn *connpool_take(struct exec *ex, const char *url, struct dr_err *err);
void connpool_give(struct exec *ex, PGconn *c);
/* Runs a utility statement on the worker's connection; on failure keeps the first cause in
 * *why (malloc'd; why may be NULL). 0 or -1. Worker thread. */
int unit_worker_sql(struct worker *w, const char *sql, char **why);

#endif
