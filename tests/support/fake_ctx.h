/* A fake dr_ctx for plugin unit tests: scripted inputs and HTTP, captured outputs. */
#ifndef DAGRUN_FAKE_CTX_H
#define DAGRUN_FAKE_CTX_H

#include <dagrun/task.h>
#include <dagrun/candle.h>

/* The entry of the plugin under test (its tasks/X.c is linked into the test). */
const dr_task_def *dr_task_entry(void);

/* One emitted blob, copied at emit time. */
struct fake_blob {
    char *type;
    void *data;
    size_t len;
};

/* Called on every emit when set (to chain a lane by hand); return 0 or -1. */
typedef int (*fake_emit_hook)(dr_ctx *ctx, const json_t *json, const char *blob_type,
                              const void *blob, size_t len, void *ud);

/* A new fake ctx whose params hold the defaults of def's param table (def may
 * be NULL) plus the runtime's own string params. Never NULL (aborts on OOM).
 * Free with fake_ctx_free. Single-threaded. */
dr_ctx *fake_ctx_new(const dr_task_def *def);
void fake_ctx_free(dr_ctx *ctx);

/* Scripting. The json text arguments are parsed (abort on bad JSON). */
void fake_ctx_set_param(dr_ctx *ctx, const char *name, const char *json_text);
void fake_ctx_set_map_item(dr_ctx *ctx, const char *json_text, long index);
void fake_ctx_set_input(dr_ctx *ctx, const char *task_id, const char *json_text);
void fake_ctx_set_input_new(dr_ctx *ctx, const char *task_id, json_t *value); /* steals */
void fake_ctx_set_lane_json(dr_ctx *ctx, const char *json_text);
void fake_ctx_set_lane_blob(dr_ctx *ctx, const char *type, const void *data, size_t len); /* borrowed */
void fake_ctx_set_db(dr_ctx *ctx, PGconn *db);       /* borrowed; NULL: dr_db fails */
void fake_ctx_set_cancelled(dr_ctx *ctx, bool cancelled);
/* What dr_checkpoint returns (an earlier process's checkpoint of this item). */
void fake_ctx_set_prior_checkpoint(dr_ctx *ctx, const char *text);
/* dr_emit_* returns -1 once `n` emits have succeeded (-1: never fail). */
void fake_ctx_fail_emit_after(dr_ctx *ctx, int n);
void fake_ctx_set_emit_hook(dr_ctx *ctx, fake_emit_hook hook, void *ud);
/* Queue an HTTP response (consumed in order). rc -1 = transport failure with
 * `body` as the error text. The body is copied. */
void fake_ctx_push_http(dr_ctx *ctx, int rc, long status, const char *content_type,
                        const char *body);
/* Streaming calls hand the body to the sink in pieces of this size (default 7). */
void fake_ctx_set_stream_piece(dr_ctx *ctx, size_t piece);

/* Inspection (all borrowed, valid until fake_ctx_free). */
const json_t *fake_ctx_emitted(dr_ctx *ctx);           /* array of emitted JSON values */
size_t fake_ctx_nblobs(dr_ctx *ctx);
const struct fake_blob *fake_ctx_blob(dr_ctx *ctx, size_t i);
long long fake_ctx_counter(dr_ctx *ctx, const char *name);  /* 0 when never counted */
const json_t *fake_ctx_logs(dr_ctx *ctx);              /* array of strings "LEVEL message" */
const json_t *fake_ctx_warnings(dr_ctx *ctx);          /* array of strings */
const char *fake_ctx_error(dr_ctx *ctx);               /* last dr_error, or NULL */
const char *fake_ctx_checkpoint(dr_ctx *ctx);          /* last dr_set_checkpoint, or NULL */
const json_t *fake_ctx_requests(dr_ctx *ctx);          /* array of "source path" strings */
size_t fake_ctx_http_left(dr_ctx *ctx);                /* scripted responses not consumed */
/* True when some captured string of arr contains needle. */
bool fake_ctx_has(const json_t *arr, const char *needle);

/* A throwaway PostgreSQL (tests/support/sandbox.h) with schema.sql applied
 * (or just the market-data tables when schema.sql is missing). Returns the
 * connection (autocommit), or NULL when no server could be started: the caller
 * skips. fake_db_stop closes db (may be NULL) and stops the sandbox. */
PGconn *fake_db_start(void);
void fake_db_stop(PGconn *db);
/* Runs one statement on db; 0, or -1 after printing the statement and the
 * server's error to stderr. */
int fake_db_exec(PGconn *db, const char *sql);

/* Seeds and PRNGs for property tests: tests/support/prop.h. */

#endif
