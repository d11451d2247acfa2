/* runtime-private: plugins never include this */
/* `dagrun serve`: the state its parts share (HTTP, API, health, SSE, run processes, store). */
#ifndef DR_SERVE_H
#define DR_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "cli.h"

/* serve.* in config.json, with the defaults filled in. */
struct serve_config {
    char *listen;               /* "ADDR:PORT" (default 127.0.0.1:8080) */
    char *token_env;            /* environment variable holding the API token, or NULL */
    unsigned max_connections;   /* default 1024 */
    bool protect_metrics;       /* /health* and /metrics need the token too */
    char *tls_cert, *tls_key;   /* PEM files, or NULL: plain HTTP */
};

/* Limits of one request (README "The service"). */
enum {
    SERVE_MAX_BODY = 1024 * 1024,   /* larger bodies: 413 */
    SERVE_MAX_DEPTH = 64,           /* deeper JSON: 400 */
    SERVE_TIMEOUT_SEC = 10,         /* headers and body must arrive within this: 408 */
};

/* The API latency histogram's upper bounds in seconds (Prometheus buckets). */
#define SERVE_LAT_BUCKETS 10

struct serve_http;
struct serve_sse;
struct serve_runs;

/* One dagrun serve process. Fields set before the HTTP server starts are read-only after. */
struct serve {
    struct cli *c;
    struct serve_config cfg;
    char *token;                /* the API token (never logged), or NULL */
    size_t token_len;
    bool scheduler;             /* run the scheduler loop too */
    char *self;                 /* path of this binary, for the run processes */
    int64_t started_at;         /* Unix s */

    /* Database connections for request threads: a stack of idle ones. */
    pthread_mutex_t db_lock;
    struct store **idle;        /* protected by db_lock */
    size_t n_idle, cap_idle;    /* protected by db_lock */

    /* DAGs read from dags_dir, reloaded when a file changes. */
    pthread_mutex_t dag_lock;   /* guards the list and every dag in it; never held with db_lock */
    struct serve_dag *dags;     /* protected by dag_lock */
    size_t n_dags;
    int64_t dags_scanned_ms;    /* protected by dag_lock */

    /* API latency histogram (requests other than /metrics and event streams). */
    pthread_mutex_t stat_lock;
    uint64_t lat_count[SERVE_LAT_BUCKETS + 1]; /* protected by stat_lock; last: +Inf */
    double lat_sum;             /* protected by stat_lock */
    uint64_t lat_total;         /* protected by stat_lock */

    struct serve_http *http;
    struct serve_sse *sse;
    struct serve_runs *runs;
    atomic_int stop;            /* set by SIGTERM/SIGINT (lock-free: safe in a handler) */
};

struct serve_dag {
    char *path;
    int64_t mtime_ns;
    struct dag *dag;            /* NULL when the file does not load */
    char *error;                /* its load error, or NULL */
};

/* ---- serve_http.c: the HTTP server ---- */

/* One request being answered: what the handlers read and fill in. */
struct serve_req {
    struct serve *s;
    const char *method, *url;
    struct MHD_Connection *conn;
    const char *body;           /* NUL-terminated request body, or NULL */
    size_t body_len;
    json_t *json;               /* the body parsed (depth-checked), or NULL */
    /* the answer */
    int status;
    char *out;                  /* body, malloc'd */
    size_t out_len;
    const char *content_type;   /* static string */
    struct MHD_Response *raw;   /* a ready response instead of out (SSE), or NULL */
};

/* Starts the server on s->cfg.listen (TLS when configured). 0, or -1 with err. */
int serve_http_start(struct serve *s, struct dr_err *err);
/* Stops accepting and answering; resumes suspended streams first. */
void serve_http_stop(struct serve *s);
/* Answers a JSON body (steals v; NULL: 500). */
void serve_reply_json(struct serve_req *r, int status, json_t *v);
/* Answers {"detail": msg} with status (Airflow's HTTPExceptionResponse). */
void serve_reply_error(struct serve_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers a text body (copied). */
void serve_reply_text(struct serve_req *r, int status, const char *ctype, const char *text,
                      size_t len);
/* A query parameter, or NULL. */
const char *serve_query(struct serve_req *r, const char *name);
/* Parses a non-negative integer query parameter; def when absent; -1 on a bad value (after
 * answering 422). */
long serve_query_int(struct serve_req *r, const char *name, long def, long max);

/* ---- serve_api.c: the Airflow REST API subset ---- */

/* Answers an /api/v2/... request; false when no route matched (404 is the caller's). */
bool serve_api_route(struct serve_req *r, char **parts, int n);
/* Airflow's DagRunState for a dagrun run state. */
const char *serve_airflow_run_state(const char *state);

/* ---- serve_health.c: /health, /health/queue, /health/sources, /metrics ---- */

bool serve_health_route(struct serve_req *r);

/* ---- serve_sse.c: live progress as Server-Sent Events ---- */

int serve_sse_start(struct serve *s, struct dr_err *err);
/* Ends every stream and the hub thread (idempotent); serve_sse_free once the server stopped. */
void serve_sse_stop(struct serve *s);
void serve_sse_free(struct serve *s);
/* Answers GET .../dagRuns/{run_id}/events with a stream (the run exists). */
void serve_sse_open(struct serve_req *r, const char *run_id);
/* Number of open streams. */
size_t serve_sse_count(struct serve *s);
/* The port the server listens on (for --listen ADDR:0). */
unsigned serve_http_port(struct serve *s);

/* ---- serve_page.c: the web page ---- */

bool serve_page_route(struct serve_req *r);

/* ---- serve_runs.c: run processes ---- */

int serve_runs_init(struct serve *s, struct dr_err *err);
/* Starts a process for run_id (`dagrun _run RUN_ID`). 0, or -1 with err. Any thread. */
int serve_runs_start(struct serve *s, const char *run_id, struct dr_err *err);
/* Interrupts this server's process of run_id (SIGINT: the run ends cancelled); true when
 * there was one. */
bool serve_runs_interrupt(struct serve *s, const char *run_id);
/* Reaps ended processes and records runs whose process died of a signal as failed;
 * restarts the scheduler process. Main thread. */
void serve_runs_reap(struct serve *s);
/* SIGTERM to every process (runs are handed back as queued), then waits for them. */
void serve_runs_stop(struct serve *s);
/* Processes running now. */
size_t serve_runs_count(struct serve *s);
/* The hidden `dagrun _run RUN_ID` command that a run process executes. */
int cmd_serve_run(struct cli *c, int argc, char **argv);

/* ---- serve_db.c: the queries serve makes (libpq, parameters only) ---- */

/* Borrows a connection (opened if none is idle); NULL with err. */
struct store *serve_db_get(struct serve *s, struct dr_err *err);
/* Returns it (closed instead when broken). */
void serve_db_put(struct serve *s, struct store *conn);
void serve_db_close_all(struct serve *s);
/* Runs sql with text params; a result with PGRES_TUPLES_OK or PGRES_COMMAND_OK, or NULL
 * with err. */
PGresult *serve_db_exec(struct store *conn, const char *sql, int n, const char *const *vals,
                        struct dr_err *err);
/* The first column of the first row parsed as JSON (new reference), or NULL: with err on
 * failure, without (err->msg empty) when there is no row. */
json_t *serve_db_json(struct store *conn, const char *sql, int n, const char *const *vals,
                      struct dr_err *err);

/* ---- serve.c ---- */

/* Finds a DAG by id under dag_lock (reloading changed files at most every 2 s); the caller
 * holds s->dag_lock while it uses the result. NULL when there is none. */
struct dag *serve_dag_find(struct serve *s, const char *dag_id);
/* Rescans dags_dir if due; caller holds dag_lock. */
void serve_dags_refresh(struct serve *s);
int cmd_serve(struct cli *c, int argc, char **argv);
int64_t serve_now_ms(void);

#endif
