/* The dagrun plugin API: the only header a task plugin includes. */
#ifndef DAGRUN_TASK_H
#define DAGRUN_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. Bump it once per release that adds calls or
 * descriptor fields; the loader still loads every ABI from DR_ABI_VERSION_MIN
 * up (a plugin built against an older header keeps working) and refuses a
 * newer one. ABI 2 added the date and database-error calls and `source_param`. */
#define DR_ABI_VERSION 2
#define DR_ABI_VERSION_MIN 1

#define DR_EXPORT __attribute__((visibility("default")))

/* Opaque: only the dr_* accessors below touch it. One ctx is one task
 * instance (or one lane item of a mapped task) on one worker thread; it is
 * valid only during the callback it was passed to. */
typedef struct dr_ctx dr_ctx;

typedef enum {
    DR_OK,      /* done */
    DR_SKIP,    /* nothing to do (e.g. no data) */
    DR_RETRY,   /* transient: the runtime retries with backoff */
    DR_FAIL,    /* this instance or item failed; the run goes on */
    DR_FATAL    /* stop the whole run (e.g. credentials rejected) */
} dr_status;

typedef enum {
    DR_T_STRING,
    DR_T_INT,
    DR_T_BOOL,
    DR_T_DATE,      /* YYYY-MM-DD, or "today" / "yesterday", which the runtime
                     * turns into the run's dates (data_interval_end's day in
                     * the DAG's timezone, and the day before): a plugin reads
                     * YYYY-MM-DD */
    DR_T_DURATION,  /* 250ms, 2s, 5m, 1h, 1d; read as milliseconds */
    DR_T_LIST       /* a list of strings; default written as JSON, e.g. ["NSE"] */
} dr_type;

typedef enum { DR_LOG_DEBUG, DR_LOG_INFO, DR_LOG_WARN, DR_LOG_ERROR } dr_log_level;

/* A plugin's param table ends with { NULL }. */
typedef struct dr_param {
    const char *name;       /* [a-z][a-z0-9_]* */
    dr_type type;
    const char *def;        /* default as text, NULL for none */
    bool required;
    const char *help;       /* one line */
} dr_param;

/* What a param's value may be beyond its type, for values that would fail only
 * after the run has started. The runtime checks every value (plugin default,
 * DAG and task params, config.json, --conf) against these at validate, at
 * --conf time and before a run records anything, without running plugin code.
 * A table ends with { NULL }. */
typedef struct dr_param_rule {
    const char *name;           /* a declared INT or STRING param */
    long long min;              /* INT: the smallest value allowed */
    const char *const *one_of;  /* STRING: the values allowed, NULL-terminated;
                                 * NULL for any */
} dr_param_rule;

/* The descriptor grows only at the end. `size` says how much of it the plugin
 * was built with: the loader refuses a size below DR_TASK_DEF_V1_SIZE and
 * reads a field added later only when `size` covers it (DR_TASK_DEF_HAS), so a
 * plugin built against an older, smaller layout loads and gets the defaults
 * (NULL) for the fields it does not have. */
typedef struct dr_task_def {
    uint32_t abi_version;   /* DR_ABI_VERSION: first field, never moves */
    uint32_t size;          /* sizeof(dr_task_def): new fields only go at the end */
    const char *name;       /* must equal the .so's file name without .so */
    const char *summary;    /* one line */
    const dr_param *params;
    /* Once per run before any instance, on the coordinator thread; optional.
     * *state is handed to run() and fini(); run() may be called from several
     * worker threads at once with the same state, so state must be read-only
     * there or protected by the plugin. Return 0, or -1 (after dr_error) to
     * fail the task. */
    int (*init)(dr_ctx *ctx, void **state);
    /* Once per instance or map item, on a worker thread. */
    dr_status (*run)(dr_ctx *ctx, void *state);
    /* Once per run after the last instance; optional. */
    void (*fini)(dr_ctx *ctx, void *state);
    /* ---- ABI 1 ends here (DR_TASK_DEF_V1_SIZE). */
    /* ABI 2: the name of this plugin's STRING param that names the config.json
     * source it sends requests through (e.g. "source"), or NULL when it sends
     * none. A param rather than a fixed source name, because the DAG chooses
     * the source; with it the runtime can tell which sources (and so which
     * credentials) a run will use before it starts. The loader refuses a name
     * that is not a declared STRING param. */
    const char *source_param;
    /* ABI 2: limits on this plugin's param values (dr_param_rule), or NULL. */
    const dr_param_rule *rules;
} dr_task_def;

/* The size of the ABI 1 descriptor (it ended with fini): the smallest the
 * loader accepts. */
#define DR_TASK_DEF_V1_SIZE (offsetof(dr_task_def, fini) + sizeof(((dr_task_def *)0)->fini))
/* True when descriptor def was built with field (its size covers it). */
#define DR_TASK_DEF_HAS(def, field) \
    ((def)->size >= offsetof(dr_task_def, field) + sizeof((def)->field))

/* The one symbol a plugin exports:
 *   DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; } */
typedef const dr_task_def *(*dr_task_entry_fn)(void);
#define DR_TASK_ENTRY_SYMBOL "dr_task_entry"

/* ---- Params: resolved by the runtime (plugin default < DAG params < task
 * params < config.json dags.<id>.params < --conf). The runtime also provides
 * "logical_date", "data_interval_start", "data_interval_end" (ISO-8601 UTC)
 * and "run_id" as strings to every task. Reading an undeclared name returns
 * NULL / 0 / false. */
DR_EXPORT const char *dr_param_str(dr_ctx *ctx, const char *name);      /* borrowed */
DR_EXPORT long long dr_param_int(dr_ctx *ctx, const char *name);        /* INT; DURATION in ms */
DR_EXPORT bool dr_param_bool(dr_ctx *ctx, const char *name);
DR_EXPORT const json_t *dr_param_json(dr_ctx *ctx, const char *name);   /* any type; borrowed */

/* ---- Inputs (all borrowed: never decref, never keep past run()). */
/* The output of upstream task `task_id` (named in after or map). For a mapped
 * upstream outside this task's lane: an array of its items' outputs in map
 * index order (null where an item produced none). NULL if none. */
DR_EXPORT const json_t *dr_input(dr_ctx *ctx, const char *task_id);
/* The current map item, or NULL when this task is not mapped. */
DR_EXPORT const json_t *dr_map_item(dr_ctx *ctx);
/* The current map index, or -1 when this task is not mapped. */
DR_EXPORT long dr_map_index(dr_ctx *ctx);
/* Inside a lane: what the previous task of the lane emitted for this call,
 * as JSON (dr_lane_json) or as a typed blob (dr_lane_blob; *type and *len are
 * set). NULL when this task is the head of its lane or the other kind was
 * emitted. */
DR_EXPORT const json_t *dr_lane_json(dr_ctx *ctx);
DR_EXPORT const void *dr_lane_blob(dr_ctx *ctx, const char **type, size_t *len);

/* ---- Output. In a lane, each emit runs the next task of the lane on the
 * emitted value before returning (same thread, same transaction), so an item
 * streams chunk by chunk. Outside a lane (or from the lane's last task), the
 * emitted JSON becomes this instance's output: a second emit turns the output
 * into an array of all values emitted. Return 0, or -1 when the downstream
 * lane task failed or the run is cancelled: stop and return DR_FAIL. */
DR_EXPORT int dr_emit_json_new(dr_ctx *ctx, json_t *value);   /* steals value */
/* A blob goes only to the next lane task; data is read during the call and
 * not kept. type names the layout, e.g. DR_BLOB_CANDLES. */
DR_EXPORT int dr_emit_blob(dr_ctx *ctx, const char *type, const void *data, size_t len);

/* ---- Logging, warnings, errors, progress. The runtime adds run, task and
 * item. Never print to stdout from a plugin. */
DR_EXPORT void dr_log(dr_ctx *ctx, dr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning is logged and stored on the run (shown in status and summary). */
DR_EXPORT void dr_warn(dr_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error stored on this instance or item when run() returns DR_FAIL,
 * DR_FATAL or DR_RETRY; the last call wins. */
DR_EXPORT void dr_error(dr_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds delta to a named counter (e.g. "candles", "dropped"); counters are
 * summed per task and per run and shown in the summary. Thread-safe. */
DR_EXPORT void dr_count(dr_ctx *ctx, const char *counter, long long delta);
/* True once the run is cancelled or this try's execution_timeout passed:
 * stop soon and return DR_FAIL (or DR_RETRY). */
DR_EXPORT bool dr_cancelled(dr_ctx *ctx);

/* ---- Checkpoints: how far a lane item got, for a resumed run. A call may
 * record a short text (at most 255 bytes; e.g. the last date it handed down);
 * it is stored with the item's state in the item's transaction, so it is true
 * of what was committed, and dropped when the item's transaction rolls back.
 * dr_checkpoint returns what an earlier process stored for this task and item
 * (NULL when none): a resumed item can skip the work it already committed.
 * Both are no-ops (NULL) outside a mapped task. */
DR_EXPORT void dr_set_checkpoint(dr_ctx *ctx, const char *text);
DR_EXPORT const char *dr_checkpoint(dr_ctx *ctx);      /* borrowed */

/* ---- Database: the worker's own connection. The first call in an instance
 * or lane item opens a transaction that the runtime commits together with the
 * item's recorded state when the item ends (or rolls back when it is retried).
 * Never BEGIN/COMMIT yourself. NULL (after an error is set) when no database
 * is configured or reachable. */
DR_EXPORT PGconn *dr_db(dr_ctx *ctx);

/* ---- HTTP through a named source of config.json (base_url, credentials from
 * the environment, rate limit, timeouts, retries on 429/5xx/timeouts/resets
 * with backoff and Retry-After, response size cap, redaction). */
typedef struct dr_http_response {
    long status;            /* HTTP status of the final attempt; 0 on transport failure */
    char *body;             /* NUL-terminated, malloc'd; free with dr_http_response_free */
    size_t len;
    char content_type[128]; /* "" when absent */
    int attempts;           /* requests sent, retries included */
    char error[512];        /* why it failed, credentials redacted; "" on success */
} dr_http_response;

/* GET base_url + path (path starts with '/', query already encoded). Returns
 * 0 when a response arrived (any status: a final 4xx/5xx after retries is
 * still 0, look at resp->status), -1 when none did (transport failure after
 * retries, cancelled, body over the cap); resp->error says why. Always call
 * dr_http_response_free afterwards. */
DR_EXPORT int dr_http_get(dr_ctx *ctx, const char *source, const char *path,
                          dr_http_response *resp);
/* The same, streaming: sink gets the body in pieces as they arrive when the
 * status is 2xx (return nonzero from sink to abort); resp->body then holds
 * nothing, or the error body for a non-2xx status. */
typedef int (*dr_http_sink)(void *ud, const char *data, size_t len);
DR_EXPORT int dr_http_get_stream(dr_ctx *ctx, const char *source, const char *path,
                                 dr_http_sink sink, void *ud, dr_http_response *resp);
DR_EXPORT void dr_http_response_free(dr_http_response *resp);

/* ---- Database errors. After a failed statement on dr_db's connection (res
 * is its result, NULL when libpq returned none): sets the error to
 * "<what>: <the server's primary message>" (or libpq's, e.g. for a lost
 * connection) and returns DR_RETRY when the failure is passing - the
 * connection is broken, or SQLSTATE class 08 (connection), 40 (serialization
 * failure, deadlock), 53 (insufficient resources), 57 (operator intervention:
 * statement_timeout, shutdown) or 55P03 (lock_timeout) - else DR_FAIL. The
 * caller still PQclears res. Any worker thread. */
DR_EXPORT dr_status dr_db_failed(dr_ctx *ctx, PGconn *db, const PGresult *res, const char *what);

/* ---- Dates and instants: UTC arithmetic on the proleptic Gregorian calendar,
 * never reading TZ. Pure; any thread; no ctx. A day number counts days since
 * 1970-01-01 (negative before); an instant is Unix seconds. */
#define DR_DATE_LEN 11      /* "YYYY-MM-DD" and its NUL */
#define DR_INSTANT_LEN 21   /* "YYYY-MM-DDTHH:MM:SSZ" and its NUL */
DR_EXPORT int64_t dr_days_from_civil(int y, int m, int d);      /* any y; m 1-12; d 1-31 */
DR_EXPORT void dr_civil_from_days(int64_t days, int *y, int *m, int *d);
/* Parses exactly "YYYY-MM-DD" (a real date, year 1900-2999) into *days.
 * Returns 0, or -1 leaving *days alone; the reason, e.g. `bad date
 * "2023-02-30": day 30 out of range 1-28 for 2023-02`, goes to why (may be
 * NULL; truncated to whylen). */
DR_EXPORT int dr_date_parse(const char *s, int64_t *days, char *why, size_t whylen);
/* Writes days as "YYYY-MM-DD" into buf (len >= DR_DATE_LEN). */
DR_EXPORT void dr_date_format(int64_t days, char *buf, size_t len);
/* Parses an ISO-8601 instant "YYYY-MM-DDTHH:MM[:SS]" then "Z", "+HH:MM",
 * "+HHMM" or "+HH" (or nothing: UTC); a space may stand for 'T' and a bare
 * date means midnight UTC. Returns 0 with Unix seconds in *t, or -1 as
 * dr_date_parse. */
DR_EXPORT int dr_instant_parse(const char *s, int64_t *t, char *why, size_t whylen);
/* Writes t as "YYYY-MM-DDTHH:MM:SSZ" into buf (len >= DR_INSTANT_LEN). */
DR_EXPORT void dr_instant_format(int64_t t, char *buf, size_t len);

/* ---- Request weights (added in ABI 2). dr_http_get for a request that
 * costs weight (>= 1; less is taken as 1) in the source's weight windows
 * (sources.<name>.limits entries {"weight": N, "per": ...}), as the provider
 * publishes it (Binance: klines 2, exchangeInfo 20); request windows count it
 * as one. A source with ban_status configured answers a banned request at once
 * with resp->status set to that status, attempts 0 and nothing sent: the
 * plugin should stop (DR_FATAL). */
DR_EXPORT int dr_http_get_weighted(dr_ctx *ctx, const char *source, const char *path, int weight,
                                   dr_http_response *resp);
/* resp->status of a request not sent because a calendar window of the source
 * (limits with "reset": "utc_day" or "utc_month", counted in PostgreSQL) is
 * used up; resp->error says when it reopens. Retrying before then is futile:
 * the item should stop (DR_FAIL); the next run goes on from its checkpoint. */
#define DR_HTTP_NOT_SENT (-1)

/* ---- Exact numbers (added in ABI 2). Parses JSON text like json_loadb, but
 * every number becomes a JSON string holding the number's own text (230.0399932861328
 * stays "230.0399932861328", 1e-05 stays "1e-05"), so that a price reaches a
 * numeric column without passing through a double. NULL when text is not
 * JSON, the reason in why (may be NULL). Pure; any thread; no ctx. */
DR_EXPORT json_t *dr_json_loadb_exact(const char *text, size_t len, char *why, size_t whylen);
/* True when s is the text of a JSON number (what dr_json_loadb_exact keeps). */
DR_EXPORT bool dr_json_number_ok(const char *s);

/* ---- Array parameters (added in ABI 2). A PostgreSQL text[] literal of list
 * (an array of strings; NULL stands for an empty one), each element quoted:
 * {"NSE","BSE"}, for a statement's $n::text[]. NULL when list is not an array
 * of strings (*not_strings set true) or out of memory (*not_strings false).
 * Caller frees. Pure; any thread; no ctx. */
DR_EXPORT char *dr_pg_text_array(const json_t *list, bool *not_strings);

/* ---- Symbols (added in ABI 2). True when s is 1 to max_len characters, each
 * in alphabet: single ASCII characters and ranges, e.g. "A-Z0-9._-" (a '-'
 * first or last stands for itself). Plugins refuse a symbol outside their
 * provider's alphabet before any request. Pure; any thread; no ctx. */
DR_EXPORT bool dr_symbol_ok(const char *s, const char *alphabet, size_t max_len);

/* The candle blob that fetch_candles emits and upsert_candles reads is a
 * contract between those two plugins: <dagrun/candle.h>. */

#ifdef __cplusplus
}
#endif
#endif
