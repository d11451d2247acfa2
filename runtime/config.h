/* runtime-private: plugins never include this */
/* config.json: runtime defaults, sources, pools and per-DAG overrides. */
#ifndef DR_CONFIG_H
#define DR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "err.h"

/* A request header of a source (sources.<name>.headers). The value is kept as
 * written: its ${VAR} references are expanded by the HTTP client when it
 * builds the request, and a header whose value names a variable is secret. */
struct header_cfg {
    char *name;
    char *value;                /* e.g. "token ${API_KEY}:${ACCESS_TOKEN}" */
};

/* One rate window of a source (sources.<name>.limits[i]): at most cap
 * requests ({"requests": 3, "per": "1s"}) or cap units of request weight
 * ({"weight": 6000, "per": "1m"}) in any period of per_ms. used_header, when
 * given, names the answer header in which the server reports what it counts
 * in this window (a used-weight header). */
enum limit_reset { LIMIT_SLIDING, LIMIT_UTC_DAY, LIMIT_UTC_MONTH, LIMIT_FIXED };
struct limit_cfg {
    int64_t cap;
    int64_t per_ms;             /* LIMIT_SLIDING and LIMIT_FIXED */
    bool weighted;
    char *used_header;          /* NULL: none */
    enum limit_reset reset;     /* "reset": "utc_day" / "utc_month": a calendar window counted
                                 * in PostgreSQL (dagrun.source_window), shared by every process;
                                 * "fixed" with per: the same for windows of per aligned to the
                                 * Unix epoch (e.g. every 10 s) */
};

/* An HTTP data source (sources.<name>). Secrets are not stored here: only the
 * names of the environment variables that hold them, inside header values.
 * The deprecated api_key_env/access_token_env keys are translated at load into
 * headers[] "Authorization": "token ${API_KEY_ENV}:${ACCESS_TOKEN_ENV}". */
struct source_cfg {
    char *name;
    char *base_url;             /* no trailing '/' */
    struct header_cfg *headers; /* sent with every request, in this order */
    size_t n_headers;
    double rate_limit_per_sec;  /* 0: no limit; the shorthand of one window */
    struct limit_cfg *limits;   /* enforced together; none with rate_limit_per_sec */
    size_t n_limits;
    int ban_status;             /* an answer that stops the source until its Retry-After
                                 * (e.g. 418); 0: none */
    int burst;                  /* token bucket capacity, default 1 */
    int64_t timeout_ms;         /* whole request, default 30000 */
    int64_t connect_timeout_ms; /* default 10000 */
    int max_retries;            /* transient failures (5xx, timeouts, resets), default 5 */
    int64_t retry_delay_ms;     /* first backoff, default 500 */
    int64_t max_retry_delay_ms; /* backoff cap, default 30000 */
    int64_t max_body_bytes;     /* response size cap, default 64 MiB */
};

/* A pool (pools.<name>): at most `slots` instances of its tasks at once. */
struct pool_cfg {
    char *name;
    int slots;
};

struct config {
    char *path;                 /* the file read, or NULL for built-in defaults */
    char *dir;                  /* its folder: relative paths are resolved against it */
    char *database_url;         /* DATABASE_URL overrides; may be NULL */
    char *dags_dir;             /* absolute or relative to the cwd after resolution */
    char *plugin_dir;
    int max_active_tasks;       /* default 8 */
    int db_connections;         /* workers' transactions at once; 0 (default): one per core */
    char *log_format;           /* "auto", "text" or "json" */
    char *log_level;            /* "debug", "info", "warning", "error" */
    int heartbeat_sec;          /* default 5 */
    int heartbeat_timeout_sec;  /* a running run older than this is dead; default 60 */
    struct source_cfg *sources;
    size_t n_sources;
    struct pool_cfg *pools;
    size_t n_pools;
    json_t *dags;               /* the "dags" object (dag_id -> {params: {...}}), owned; never NULL */
    json_t *serve;              /* the "serve" object as written (serve_config.c checks it), owned, or NULL */
};

/* Reads path (NULL: "config.json" in the cwd if present, else built-in
 * defaults), expands ${ENV_VAR} in every string but header values (an unset
 * variable is an error naming it; header values are only checked), applies DATABASE_URL, resolves relative paths against the
 * file's folder, and checks every key (unknown keys are errors, reported as
 * "config.json: sources.main.rate_limit: unknown key"). Returns a new config
 * (config_free) or NULL with err. */
struct config *config_load(const char *path, struct dr_err *err);
void config_free(struct config *c);
const struct source_cfg *config_source(const struct config *c, const char *name);
const struct pool_cfg *config_pool(const struct config *c, const char *name);
/* The most database connections a run's workers hold at once: db_connections, or when it
 * is 0 (or c is NULL) one per processor core. At least 1. */
int config_db_connections(const struct config *c);
/* dags.<dag_id>.params, borrowed, or NULL. */
const json_t *config_dag_params(const struct config *c, const char *dag_id);

#endif
