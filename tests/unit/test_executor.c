/* Unit tests for runtime/executor.c and runtime/ctx.c with test-local plugins and a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"
#include "log.h"
#include "prop.h"

/* ---- fixture: an event log shared by the test plugins ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static char g_events[40000][48];    /* guarded by g_lock */
static size_t g_n_events;           /* guarded by g_lock */
static int g_concurrent, g_max_concurrent; /* guarded by g_lock */
static int g_tries[64];             /* guarded by g_lock: tries per map index + 1 */
static bool g_flag;                 /* guarded by g_lock */
static volatile sig_atomic_t g_stop; /* written with __atomic by plugins and hooks */

static void ev(dr_ctx *ctx, const char *what)
{
    const char *id = dr_param_str(ctx, "name");
    pthread_mutex_lock(&g_lock);
    if (g_n_events < sizeof g_events / sizeof *g_events)
        snprintf(g_events[g_n_events++], sizeof *g_events, "%s%s:%ld", id ? id : "?", what,
                 dr_map_index(ctx));
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_lock);
}

/* Index of the first event equal to s, or -1. */
static long find_ev(const char *s)
{
    for (size_t i = 0; i < g_n_events; i++)
        if (strcmp(g_events[i], s) == 0)
            return (long)i;
    return -1;
}

static size_t count_ev_prefix(const char *p)
{
    size_t n = 0;
    for (size_t i = 0; i < g_n_events; i++)
        n += strncmp(g_events[i], p, strlen(p)) == 0;
    return n;
}

/* ---- fake clock ---- */

static int64_t g_now;               /* __atomic */
static int64_t g_waits[16];         /* coordinator only */
static int g_n_waits;

static int64_t fake_now(void *ud)
{
    (void)ud;
    return __atomic_load_n(&g_now, __ATOMIC_SEQ_CST);
}

static void fake_wait(void *ud, int64_t t)
{
    (void)ud;
    if (g_n_waits < 16)
        g_waits[g_n_waits++] = t;
    if (t > fake_now(NULL))
        __atomic_store_n(&g_now, t, __ATOMIC_SEQ_CST);
}

static const struct exec_clock g_clock = { .now_ms = fake_now, .wait_until = fake_wait };

/* ---- hooks: records seen by the coordinator ---- */

struct seen {
    char task[32];
    long index;
    enum ti_state state;
    int try_number;
    char error[160];
    char output[200];
    char key[32];
};
static struct seen *g_seen;         /* coordinator only */
static size_t g_n_seen, g_cap_seen;
static int64_t g_retry_delays[16];
static int g_n_retries;
static size_t g_stop_after;         /* set *stop once this many units are done (0: never) */

static void on_done(void *ud, const struct ti_record *r, double secs)
{
    (void)ud;
    (void)secs;
    if (g_n_seen == g_cap_seen) {
        g_cap_seen = g_cap_seen ? g_cap_seen * 2 : 256;
        g_seen = realloc(g_seen, g_cap_seen * sizeof *g_seen);
        assert_non_null(g_seen);
    }
    struct seen *s = &g_seen[g_n_seen++];
    memset(s, 0, sizeof *s);
    snprintf(s->task, sizeof s->task, "%s", r->task_id);
    s->index = r->map_index;
    s->state = r->state;
    s->try_number = r->try_number;
    if (r->error)
        snprintf(s->error, sizeof s->error, "%s", r->error);
    if (r->map_key)
        snprintf(s->key, sizeof s->key, "%s", r->map_key);
    if (r->output) {
        char *t = json_dumps(r->output, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(s->output, sizeof s->output, "%s", t ? t : "");
        free(t);
    }
    if (g_stop_after && g_n_seen >= g_stop_after)
        __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
}

static void on_retry(void *ud, const struct ti_record *r, int64_t delay)
{
    (void)ud;
    (void)r;
    if (g_n_retries < 16)
        g_retry_delays[g_n_retries++] = delay;
}

static const struct exec_hooks g_hooks = { .unit_done = on_done, .unit_retry = on_retry };

static const struct seen *seen(const char *task, long index)
{
    for (size_t i = g_n_seen; i-- > 0;)
        if (strcmp(g_seen[i].task, task) == 0 && g_seen[i].index == index)
            return &g_seen[i];
    return NULL;
}

static enum ti_state seen_state(const char *task, long index)
{
    const struct seen *s = seen(task, index);
    return s ? s->state : (enum ti_state)-1;
}

/* ---- test plugins ---- */

static const dr_param no_params[] = { { NULL } };

static dr_status p_ok_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    return DR_OK;
}

static dr_status p_status_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    const char *s = dr_param_str(ctx, "status");
    long only = dr_param_json(ctx, "only") ? (long)dr_param_int(ctx, "only") : -2;
    if ((only != -2 && dr_map_index(ctx) != only) || !s || strcmp(s, "ok") == 0) {
        dr_error(ctx, "an error that is not stored when the task succeeds");
        return dr_emit_json_new(ctx, json_integer(dr_map_index(ctx))) ? DR_FAIL : DR_OK;
    }
    dr_error(ctx, "status %s on purpose", s);
    if (strcmp(s, "skip") == 0)
        return DR_SKIP;
    if (strcmp(s, "fail") == 0)
        return DR_FAIL;
    if (strcmp(s, "retry") == 0)
        return DR_RETRY;
    return DR_FATAL;
}

/* Emits the JSON array given in param "list" (or n objects {"key":"k<i>"}). */
static dr_status p_list_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    const json_t *l = dr_param_json(ctx, "list");
    if (l)
        return dr_emit_json_new(ctx, json_deep_copy(l)) ? DR_FAIL : DR_OK;
    json_t *arr = json_array();
    long long n = dr_param_int(ctx, "n");
    for (long long i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%lld", i);
        json_array_append_new(arr, json_pack("{s:s, s:I}", "key", k, "i", (json_int_t)i));
    }
    return dr_emit_json_new(ctx, arr) ? DR_FAIL : DR_OK;
}

/* Fails (with param status) the first `times` tries of each item. */
static dr_status p_flaky_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    long i = dr_map_index(ctx) + 1;
    pthread_mutex_lock(&g_lock);
    int n = ++g_tries[i];
    pthread_mutex_unlock(&g_lock);
    dr_count(ctx, "calls", 1);      /* counted only for the try that ends OK */
    if (n > dr_param_int(ctx, "times"))
        return DR_OK;
    dr_error(ctx, "flaky try %d", n);
    const char *s = dr_param_str(ctx, "status");
    return s && strcmp(s, "fail") == 0 ? DR_FAIL : DR_RETRY;
}

/* Head of a streaming lane: emits `n` chunks {"c": k} per item. */
static dr_status p_stream_head_run(dr_ctx *ctx, void *st)
{
    (void)st;
    long long n = dr_param_int(ctx, "n");
    for (long long k = 0; k < n; k++) {
        ev(ctx, "emit");
        if (dr_emit_json_new(ctx, json_pack("{s:I}", "c", (json_int_t)k)) < 0)
            return DR_FAIL;
    }
    dr_count(ctx, "chunks", n);
    return DR_OK;
}

/* Next lane task: checks chunks arrive in order, passes them on as the item output. */
static dr_status p_stream_next_run(dr_ctx *ctx, void *st)
{
    (void)st;
    const json_t *v = dr_lane_json(ctx);
    if (!v) {
        dr_error(ctx, "no lane value");
        return DR_FAIL;
    }
    char what[24];
    snprintf(what, sizeof what, "got%lld", (long long)json_integer_value(json_object_get(v, "c")));
    ev(ctx, what);
    long long bad = dr_param_int(ctx, "fail_chunk");
    if (bad > 0 && json_integer_value(json_object_get(v, "c")) == bad &&
        dr_map_index(ctx) == 0) {
        dr_error(ctx, "bad chunk %lld", bad);
        return DR_FAIL;
    }
    dr_emit_json_new(ctx, json_deep_copy(v));
    return DR_OK;
}

/* After all items: records what dr_input gives for its mapped upstream. */
static char g_input[4096];          /* written by one worker, read after the run */
static dr_status p_collect_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    const char *up = dr_param_str(ctx, "up");
    const json_t *in = dr_input(ctx, up ? up : "");
    char *t = in ? json_dumps(in, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    pthread_mutex_lock(&g_lock);
    snprintf(g_input, sizeof g_input, "%s", t ? t : "NULL");
    pthread_mutex_unlock(&g_lock);
    free(t);
    return DR_OK;
}

/* Item 0 blocks until item 1's second task ran (lanes must not wait for each other). */
static dr_status p_block0_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    if (dr_map_index(ctx) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        pthread_mutex_lock(&g_lock);
        while (find_ev("second:1") < 0)
            if (pthread_cond_timedwait(&g_cv, &g_lock, &ts) != 0) {
                g_flag = true;      /* timed out: item 1 waited for item 0 */
                break;
            }
        pthread_mutex_unlock(&g_lock);
    }
    return dr_emit_json_new(ctx, json_integer(dr_map_index(ctx))) ? DR_FAIL : DR_OK;
}

/* Pretends to work for 31 virtual minutes on its first try, then reports. */
static dr_status p_slowpoke_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    pthread_mutex_lock(&g_lock);
    int n = ++g_tries[0];
    pthread_mutex_unlock(&g_lock);
    if (dr_cancelled(ctx))
        return DR_FAIL;
    if (n == 1) {
        __atomic_add_fetch(&g_now, 31 * 60 * 1000, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&g_lock);
        g_flag = dr_cancelled(ctx);
        pthread_mutex_unlock(&g_lock);
    }
    return DR_OK;
}

/* Item 0 stops the run, then every started item waits for dr_cancelled. */
static dr_status p_stopper_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    if (dr_map_index(ctx) == 0)
        __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
    for (long spins = 0; !dr_cancelled(ctx) && spins < 5000000; spins++)
        sched_yield();
    if (dr_cancelled(ctx)) {
        dr_error(ctx, "cancelled");
        return DR_FAIL;
    }
    return DR_OK;
}

/* Tracks how many instances run at once. */
static dr_status p_conc_run(dr_ctx *ctx, void *st)
{
    (void)st;
    pthread_mutex_lock(&g_lock);
    if (++g_concurrent > g_max_concurrent)
        g_max_concurrent = g_concurrent;
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < 200; i++)
        sched_yield();
    pthread_mutex_lock(&g_lock);
    g_concurrent--;
    pthread_mutex_unlock(&g_lock);
    ev(ctx, "");
    return DR_OK;
}

static dr_status p_warn_run(dr_ctx *ctx, void *st)
{
    (void)st;
    dr_warn(ctx, "odd item %ld", dr_map_index(ctx));
    dr_count(ctx, "things", 2);
    return dr_emit_json_new(ctx, json_true()) ? DR_FAIL : DR_OK;
}

/* Emits `n` blobs of k+1 ints each (value k) per call. */
static dr_status p_blob_head_run(dr_ctx *ctx, void *st)
{
    (void)st;
    int buf[8];
    for (int k = 0; k < 4; k++) {
        for (int j = 0; j <= k; j++)
            buf[j] = k;
        if (dr_emit_blob(ctx, "test/ints", buf, (size_t)(k + 1) * sizeof *buf) < 0)
            return DR_FAIL;
    }
    return DR_OK;
}

/* Sums the blobs it gets; emits the sum per call (so the item output is an array). */
static dr_status p_blob_sum_run(dr_ctx *ctx, void *st)
{
    (void)st;
    const char *type = NULL;
    size_t len = 0;
    const int *v = dr_lane_blob(ctx, &type, &len);
    if (!v || !type || strcmp(type, "test/ints") || dr_lane_json(ctx)) {
        dr_error(ctx, "no blob");
        return DR_FAIL;
    }
    long sum = 0;
    for (size_t i = 0; i < len / sizeof *v; i++)
        sum += v[i];
    return dr_emit_json_new(ctx, json_integer(sum)) ? DR_FAIL : DR_OK;
}

/* Emits two values (unmapped: the output becomes their array), and peeks at inputs. */
static dr_status p_twice_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    if (dr_input(ctx, "not_an_upstream") || dr_map_item(ctx) || dr_lane_json(ctx) ||
        dr_map_index(ctx) != -1) {
        dr_error(ctx, "unexpected inputs");
        return DR_FAIL;
    }
    if (strcmp(dr_param_str(ctx, "run_id"), "test_run") ||
        strcmp(dr_param_str(ctx, "logical_date"), "2026-01-01T00:00:00Z") ||
        dr_param_int(ctx, "nope") != 0 || dr_param_bool(ctx, "nope")) {
        dr_error(ctx, "bad runtime params");
        return DR_FAIL;
    }
    /* No database and no HTTP sources in these runs: clear failures, no crash. */
    if (dr_db(ctx)) {
        dr_error(ctx, "dr_db without a database");
        return DR_FAIL;
    }
    dr_http_response resp;
    if (dr_http_get(ctx, "kite", "/x", &resp) != -1 || !strstr(resp.error, "no HTTP sources")) {
        dr_error(ctx, "dr_http_get without sources");
        return DR_FAIL;
    }
    dr_http_response_free(&resp);
    dr_emit_json_new(ctx, json_string("one"));
    dr_emit_json_new(ctx, json_string("two"));
    return DR_OK;
}

static int g_inits, g_finis;        /* coordinator only */
static int p_counted_init(dr_ctx *ctx, void **st)
{
    (void)ctx;
    g_inits++;
    *st = &g_inits;
    return 0;
}
static void p_counted_fini(dr_ctx *ctx, void *st)
{
    (void)ctx;
    assert_ptr_equal(st, &g_inits);
    g_finis++;
}
static int p_badinit_init(dr_ctx *ctx, void **st)
{
    (void)st;
    dr_error(ctx, "no credentials");
    return -1;
}

#define DEF(var, nm, runfn, ...)                                                          \
    static const dr_task_def var = { .abi_version = DR_ABI_VERSION, .size = sizeof var,  \
                                     .name = nm, .summary = nm, .params = no_params,     \
                                     .run = runfn, __VA_ARGS__ }
DEF(d_ok, "ok", p_ok_run);
DEF(d_status, "status", p_status_run);
DEF(d_list, "list", p_list_run);
DEF(d_flaky, "flaky", p_flaky_run);
DEF(d_shead, "shead", p_stream_head_run);
DEF(d_snext, "snext", p_stream_next_run);
DEF(d_collect, "collect", p_collect_run);
DEF(d_block0, "block0", p_block0_run);
DEF(d_slowpoke, "slowpoke", p_slowpoke_run);
DEF(d_stopper, "stopper", p_stopper_run);
DEF(d_conc, "conc", p_conc_run);
DEF(d_warn, "warn", p_warn_run);
DEF(d_bhead, "bhead", p_blob_head_run);
DEF(d_bsum, "bsum", p_blob_sum_run);
DEF(d_twice, "twice", p_twice_run);
DEF(d_counted, "counted", p_ok_run, .init = p_counted_init, .fini = p_counted_fini);
DEF(d_badinit, "badinit", p_ok_run, .init = p_badinit_init);

/* ---- building DAGs in memory ---- */

struct tdef {
    const char *id;
    const dr_task_def *def;
    const char *after[4];
    const char *map;
    enum trigger_rule trigger;
    struct retry_policy retry;
    const char *pool;
    const char *params;         /* JSON object text, or NULL */
};

struct built {
    struct dag d;
    struct plugin *plugins;
    json_t **params;
};

static int find_id(const struct tdef *defs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i].id, id) == 0)
            return (int)i;
    fail_msg("no task %s", id);
    return -1;
}

static struct built *build(const struct tdef *defs, size_t n)
{
    struct built *b = calloc(1, sizeof *b);
    b->d.dag_id = "t";
    b->d.n_tasks = n;
    b->d.tasks = calloc(n, sizeof *b->d.tasks);
    b->d.topo = calloc(n, sizeof *b->d.topo);
    b->plugins = calloc(n, sizeof *b->plugins);
    b->params = calloc(n, sizeof *b->params);
    for (size_t i = 0; i < n; i++) {
        struct task *t = &b->d.tasks[i];
        t->id = (char *)defs[i].id;
        b->plugins[i].name = (char *)defs[i].def->name;
        b->plugins[i].def = defs[i].def;
        t->plugin = &b->plugins[i];
        t->map_idx = defs[i].map ? find_id(defs, n, defs[i].map) : -1;
        t->map = (char *)defs[i].map;
        t->trigger = defs[i].trigger;
        t->retry = defs[i].retry;
        t->pool = (char *)defs[i].pool;
        t->after_idx = calloc(4, sizeof *t->after_idx);
        for (int k = 0; k < 4 && defs[i].after[k]; k++)
            t->after_idx[t->n_after++] = find_id(defs, n, defs[i].after[k]);
        json_error_t je;
        b->params[i] = defs[i].params ? json_loads(defs[i].params, 0, &je) : json_object();
        assert_non_null(b->params[i]);
        json_object_set_new(b->params[i], "name", json_string(defs[i].id));
    }
    /* Kahn's algorithm, file order among ties. */
    bool *placed = calloc(n, sizeof *placed);
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < n; i++) {
            if (placed[i])
                continue;
            bool ready = true;
            const struct task *t = &b->d.tasks[i];
            for (size_t a = 0; a < t->n_after; a++)
                ready = ready && placed[t->after_idx[a]];
            if (t->map_idx >= 0)
                ready = ready && placed[t->map_idx];
            if (ready) {
                placed[i] = true;
                b->d.topo[k] = (int)i;
                break;
            }
        }
    }
    free(placed);
    return b;
}

static void built_free(struct built *b)
{
    for (size_t i = 0; i < b->d.n_tasks; i++) {
        free(b->d.tasks[i].after_idx);
        json_decref(b->params[i]);
    }
    free(b->d.tasks);
    free(b->d.topo);
    free(b->plugins);
    free(b->params);
    free(b);
}

static void reset(void)
{
    g_n_events = 0;
    g_concurrent = g_max_concurrent = 0;
    memset(g_tries, 0, sizeof g_tries);
    g_flag = false;
    g_stop = 0;
    g_now = 1000000;
    g_n_waits = 0;
    g_n_seen = 0;
    g_n_retries = 0;
    g_stop_after = 0;
    g_inits = g_finis = 0;
    g_input[0] = '\0';
}

struct opts {
    int workers;
    const struct prior *prior;
    const struct config *cfg;
    uint64_t seed;
};

static struct run_result run_full(const struct tdef *defs, size_t n, struct opts o)
{
    struct built *b = build(defs, n);
    struct run_spec spec = {
        .dag = &b->d,
        .cfg = o.cfg,
        .params = b->params,
        .run_id = "test_run",
        .run_type = "test",
        .logical_date = 1767225600,
        .data_interval_start = 1767225600,
        .data_interval_end = 1767225600,
        .workers = o.workers ? o.workers : 2,
        .prior = o.prior,
        .stop = &g_stop,
        .clock = &g_clock,
        .seed = o.seed ? o.seed : 42,
        .hooks = &g_hooks,
    };
    struct run_result res;
    struct dr_err err;
    err_clear(&err);
    int rc = executor_run(&spec, &res, &err);
    if (rc != 0)
        fail_msg("executor_run: %s", err.msg);
    built_free(b);
    return res;
}

#define RUN(defs, ...) run_full(defs, sizeof defs / sizeof *defs, (struct opts){ __VA_ARGS__ })

/* ---- tests ---- */

static void test_executor_topological_order(void **state)
{
    (void)state;
    reset();
    /* File order is not execution order: d depends on c, c on a and b. */
    const struct tdef defs[] = {
        { .id = "d", .def = &d_ok, .after = { "c" } },
        { .id = "c", .def = &d_ok, .after = { "a", "b" } },
        { .id = "b", .def = &d_ok, .after = { "a" } },
        { .id = "a", .def = &d_ok },
    };
    struct run_result res = RUN(defs, .workers = 3);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(g_n_events, 4);
    assert_true(find_ev("a:-1") < find_ev("b:-1"));
    assert_true(find_ev("b:-1") < find_ev("c:-1"));
    assert_true(find_ev("c:-1") < find_ev("d:-1"));
    assert_int_equal(res.units_ok, 4);
    assert_int_equal(seen_state("d", -1), TI_SUCCESS);
    run_result_free(&res);
}

static void test_executor_params_and_runtime_params(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "a", .def = &d_list, .params = "{\"list\": [1, 2]}" },
        { .id = "b", .def = &d_collect, .after = { "a" }, .params = "{\"up\": \"a\"}" },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_string_equal(g_input, "[1,2]");
    json_t *out = json_object_get(res.outputs, "a");
    assert_non_null(out);
    assert_int_equal(json_array_size(out), 2);
    run_result_free(&res);
}

/* Upstreams: ok succeeds, bad fails, skp skips. */
static void test_executor_trigger_rules(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "ok", .def = &d_status, .params = "{\"status\": \"ok\"}" },
        { .id = "bad", .def = &d_status, .params = "{\"status\": \"fail\"}" },
        { .id = "skp", .def = &d_status, .params = "{\"status\": \"skip\"}" },
        { .id = "as_ok", .def = &d_ok, .after = { "ok" } },
        { .id = "as_bad", .def = &d_ok, .after = { "ok", "bad" } },
        { .id = "as_skp", .def = &d_ok, .after = { "ok", "skp" } },
        { .id = "ad", .def = &d_ok, .after = { "bad", "skp" }, .trigger = TR_ALL_DONE },
        { .id = "nf_skp", .def = &d_ok, .after = { "ok", "skp" }, .trigger = TR_NONE_FAILED },
        { .id = "nf_bad", .def = &d_ok, .after = { "ok", "bad" }, .trigger = TR_NONE_FAILED },
        { .id = "of_bad", .def = &d_ok, .after = { "ok", "bad" }, .trigger = TR_ONE_FAILED },
        { .id = "of_ok", .def = &d_ok, .after = { "ok", "skp" }, .trigger = TR_ONE_FAILED },
        { .id = "os_ok", .def = &d_ok, .after = { "bad", "ok" }, .trigger = TR_ONE_SUCCESS },
        { .id = "os_bad", .def = &d_ok, .after = { "bad", "skp" }, .trigger = TR_ONE_SUCCESS },
        { .id = "os_skp", .def = &d_ok, .after = { "skp" }, .trigger = TR_ONE_SUCCESS },
        { .id = "chain", .def = &d_ok, .after = { "as_bad" } },
        { .id = "chain_ad", .def = &d_ok, .after = { "as_bad" }, .trigger = TR_ALL_DONE },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_FAILED);   /* "bad" is an unmapped failure */
    assert_int_equal(seen_state("as_ok", -1), TI_SUCCESS);
    assert_int_equal(seen_state("as_bad", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(seen_state("as_skp", -1), TI_SKIPPED);
    assert_int_equal(seen_state("ad", -1), TI_SUCCESS);
    assert_int_equal(seen_state("nf_skp", -1), TI_SUCCESS);
    assert_int_equal(seen_state("nf_bad", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(seen_state("of_bad", -1), TI_SUCCESS);
    assert_int_equal(seen_state("of_ok", -1), TI_SKIPPED);
    assert_int_equal(seen_state("os_ok", -1), TI_SUCCESS);
    assert_int_equal(seen_state("os_bad", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(seen_state("os_skp", -1), TI_SKIPPED);
    assert_int_equal(seen_state("chain", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(seen_state("chain_ad", -1), TI_SUCCESS);
    assert_int_equal(find_ev("as_bad:-1"), -1);     /* never ran */
    assert_string_equal(seen("bad", -1)->error, "status fail on purpose");
    assert_string_equal(res.error, "bad: status fail on purpose");
    run_result_free(&res);
}

static void test_executor_retry_backoff_exact_times(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "f", .def = &d_flaky, .params = "{\"times\": 10}",
          .retry = { .retries = 3, .retry_delay_ms = 1000, .exponential = true } },
    };
    struct run_result res = RUN(defs, .seed = 7);
    assert_int_equal(res.state, RUN_FAILED);
    assert_int_equal(g_n_retries, 3);
    assert_int_equal(g_tries[0], 4);
    int64_t t = 1000000;
    for (int k = 0; k < 3; k++) {
        int64_t base = 1000LL << k;
        assert_in_range(g_retry_delays[k], base, base + base / 10);
        t += g_retry_delays[k];
        assert_int_equal(g_waits[k], t);    /* due exactly now + delay */
    }
    const struct seen *s = seen("f", -1);
    assert_int_equal(s->state, TI_FAILED);
    assert_int_equal(s->try_number, 4);
    assert_string_equal(s->error, "flaky try 4");
    /* The same seed gives the same jitter. */
    int64_t first[3];
    memcpy(first, g_retry_delays, sizeof first);
    run_result_free(&res);
    reset();
    res = RUN(defs, .seed = 7);
    assert_memory_equal(first, g_retry_delays, sizeof first);
    run_result_free(&res);
}

static void test_executor_retry_then_success_and_cap(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "f", .def = &d_flaky, .params = "{\"times\": 3}",
          .retry = { .retries = 3, .retry_delay_ms = 1000, .exponential = true,
                     .max_retry_delay_ms = 1500 } },
        { .id = "g", .def = &d_ok, .after = { "f" } },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(g_n_retries, 3);
    assert_in_range(g_retry_delays[0], 1000, 1100);
    assert_int_equal(g_retry_delays[1], 1500);
    assert_int_equal(g_retry_delays[2], 1500);
    assert_int_equal(seen("f", -1)->try_number, 4);
    assert_int_equal(seen_state("g", -1), TI_SUCCESS);
    /* The three tries that asked for a retry counted nothing: only the one that ended OK. */
    assert_int_equal(json_integer_value(json_object_get(res.counters, "calls")), 1);
    run_result_free(&res);
    /* Not exponential: the same delay each time, plus jitter. */
    reset();
    const struct tdef lin[] = {
        { .id = "f", .def = &d_flaky, .params = "{\"times\": 2}",
          .retry = { .retries = 5, .retry_delay_ms = 50 } },
    };
    res = RUN(lin);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(g_n_retries, 2);
    assert_in_range(g_retry_delays[0], 50, 55);
    assert_in_range(g_retry_delays[1], 50, 55);
    run_result_free(&res);
}

static void test_executor_fail_is_not_retried(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "f", .def = &d_flaky, .params = "{\"times\": 10, \"status\": \"fail\"}",
          .retry = { .retries = 3, .retry_delay_ms = 1000 } },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_FAILED);
    assert_int_equal(g_tries[0], 1);
    assert_int_equal(g_n_retries, 0);
    assert_int_equal(res.units_failed, 1);
    assert_null(json_object_get(res.counters, "calls"));    /* it failed: nothing stands */
    run_result_free(&res);
}

static void test_executor_fatal_stops_the_run(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 200}" },
        { .id = "m", .def = &d_status, .map = "l",
          .params = "{\"status\": \"fatal\", \"only\": 3}" },
        { .id = "after", .def = &d_ok, .after = { "m" }, .trigger = TR_ALL_DONE },
    };
    struct run_result res = RUN(defs, .workers = 1);
    assert_int_equal(res.state, RUN_FAILED);
    assert_string_equal(res.error, "m[k3]: status fatal on purpose");
    assert_int_equal(count_ev_prefix("m:"), 4);    /* one worker: nothing after item 3 */
    assert_int_equal(find_ev("after:-1"), -1);
    assert_int_equal(seen_state("m", 3), TI_FAILED);
    run_result_free(&res);
}

static void test_executor_mapped_partial_and_all_failed(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 5}" },
        { .id = "m", .def = &d_status, .map = "l", .params = "{\"status\": \"fail\", \"only\": 2}" },
        { .id = "n", .def = &d_ok, .map = "l", .after = { "m" } },
        { .id = "z", .def = &d_ok, .after = { "n" } },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_PARTIAL);
    assert_int_equal(seen_state("m", 2), TI_FAILED);
    assert_int_equal(seen_state("n", 2), TI_UPSTREAM_FAILED);
    assert_int_equal(seen_state("n", 1), TI_SUCCESS);
    assert_int_equal(seen_state("z", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(res.units_ok, 4 + 1);
    assert_int_equal(res.units_failed, 1);
    run_result_free(&res);

    reset();
    const struct tdef all[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "m", .def = &d_status, .map = "l", .params = "{\"status\": \"fail\"}" },
    };
    res = RUN(all);
    assert_int_equal(res.state, RUN_FAILED);
    run_result_free(&res);
}

static void test_executor_map_over_non_array_and_empty(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"list\": {\"a\": 1}}" },
        { .id = "m", .def = &d_ok, .map = "l" },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_FAILED);
    assert_int_equal(seen_state("m", -1), TI_FAILED);
    assert_string_equal(seen("m", -1)->error, "map over \"l\": its output is not an array");
    run_result_free(&res);

    reset();
    const struct tdef empty[] = {
        { .id = "l", .def = &d_list, .params = "{\"list\": []}" },
        { .id = "m", .def = &d_ok, .map = "l" },
        { .id = "z", .def = &d_ok, .after = { "m" } },
    };
    res = RUN(empty);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(seen_state("m", -1), TI_SKIPPED);
    assert_int_equal(seen_state("z", -1), TI_SKIPPED);
    run_result_free(&res);
}

/* Item 0's head blocks until item 1's second task ran: lanes never wait for other items. */
static void test_executor_lane_items_do_not_wait(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 4}" },
        { .id = "first", .def = &d_block0, .map = "l" },
        { .id = "second", .def = &d_collect, .map = "l", .after = { "first" },
          .params = "{\"up\": \"first\"}" },
    };
    struct run_result res = RUN(defs, .workers = 2);
    assert_int_equal(res.state, RUN_SUCCESS);
    long s1 = find_ev("second:1");
    assert_true(s1 >= 0);
    /* first:0 waited for second:1 without timing out, and only then reached second:0. */
    assert_false(g_flag);
    assert_true(find_ev("second:0") > s1);
    /* Each item's second task ran right after its first (same unit, chained by emit). */
    for (int i = 1; i < 4; i++) {
        char a[16], b2[16];
        snprintf(a, sizeof a, "first:%d", i);
        snprintf(b2, sizeof b2, "second:%d", i);
        assert_true(find_ev(a) < find_ev(b2));
    }
    run_result_free(&res);
}

static void test_executor_streaming_emits_in_order(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "h", .def = &d_shead, .map = "l", .params = "{\"n\": 4}" },
        { .id = "nx", .def = &d_snext, .map = "l", .after = { "h" } },
        { .id = "all", .def = &d_collect, .after = { "nx" }, .params = "{\"up\": \"nx\"}" },
    };
    struct run_result res = RUN(defs, .workers = 2);
    assert_int_equal(res.state, RUN_SUCCESS);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            char e[24], g[24];
            snprintf(e, sizeof e, "hemit:%d", i);
            snprintf(g, sizeof g, "nxgot%d:%d", k, i);
            long gi = find_ev(g);
            assert_true(gi >= 0);
            if (k < 3) {
                char g2[24];
                snprintf(g2, sizeof g2, "nxgot%d:%d", k + 1, i);
                assert_true(gi < find_ev(g2));
            }
            (void)e;
        }
    /* The lane's last task emitted 4 values per item: the item output is their array. */
    const char *want = "[[{\"c\":0},{\"c\":1},{\"c\":2},{\"c\":3}],"
                       "[{\"c\":0},{\"c\":1},{\"c\":2},{\"c\":3}],"
                       "[{\"c\":0},{\"c\":1},{\"c\":2},{\"c\":3}]]";
    assert_string_equal(g_input, want);
    assert_int_equal(json_integer_value(json_object_get(res.counters, "chunks")), 12);
    assert_int_equal(seen_state("h", 1), TI_SUCCESS);
    assert_int_equal(seen_state("nx", 1), TI_SUCCESS);
    run_result_free(&res);
}

/* A failing delivery fails the item with the downstream task's error; the head stops. */
static void test_executor_streaming_downstream_failure(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 2}" },
        { .id = "h", .def = &d_shead, .map = "l", .params = "{\"n\": 4}" },
        { .id = "nx", .def = &d_snext, .map = "l", .after = { "h" },
          .params = "{\"fail_chunk\": 2}" },
    };
    struct run_result res = RUN(defs, .workers = 1);
    assert_int_equal(res.state, RUN_PARTIAL);
    assert_int_equal(count_ev_prefix("hemit:0"), 3);    /* stopped after chunk 2 failed */
    assert_int_equal(seen_state("nx", 0), TI_FAILED);
    assert_string_equal(seen("nx", 0)->error, "bad chunk 2");
    assert_int_equal(seen_state("h", 0), TI_FAILED);
    assert_string_equal(seen("h", 0)->error, "nx failed");
    assert_string_equal(res.error, "nx[k0]: bad chunk 2");
    assert_int_equal(seen_state("nx", 1), TI_SUCCESS);
    run_result_free(&res);
}

static void test_executor_lane_without_emits_runs_each_task(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "a", .def = &d_ok, .map = "l" },
        { .id = "b", .def = &d_ok, .map = "l", .after = { "a" } },
        { .id = "c", .def = &d_status, .map = "l", .after = { "b" },
          .params = "{\"status\": \"skip\", \"only\": 1}" },
        { .id = "d", .def = &d_ok, .map = "l", .after = { "c" } },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_SUCCESS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(seen_state("a", i), TI_SUCCESS);
        assert_int_equal(seen_state("b", i), TI_SUCCESS);
    }
    assert_int_equal(seen_state("c", 1), TI_SKIPPED);
    assert_int_equal(seen_state("d", 1), TI_SKIPPED);   /* a skip skips the rest of the lane */
    assert_int_equal(seen_state("d", 0), TI_SUCCESS);   /* c emitted its index to d */
    assert_string_equal(seen("a", 2)->key, "k2");
    run_result_free(&res);
}

static void test_executor_blob_streaming_and_keys(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list,
          .params = "{\"list\": [\"NSE:INFY\", 17, {\"key\": \"x\"}, {\"a\": 1}, [1]]}" },
        { .id = "h", .def = &d_bhead, .map = "l" },
        { .id = "s", .def = &d_bsum, .map = "l", .after = { "h" } },
        { .id = "all", .def = &d_collect, .after = { "s" }, .params = "{\"up\": \"s\"}" },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_string_equal(seen("s", 0)->key, "NSE:INFY");
    assert_string_equal(seen("s", 1)->key, "17");
    assert_string_equal(seen("s", 2)->key, "x");
    assert_string_equal(seen("s", 3)->key, "3");
    assert_string_equal(seen("s", 4)->key, "4");
    assert_string_equal(seen("s", 4)->output, "[0,2,6,12]");
    assert_string_equal(g_input, "[[0,2,6,12],[0,2,6,12],[0,2,6,12],[0,2,6,12],[0,2,6,12]]");
    run_result_free(&res);
}

static void test_executor_unmapped_emits_twice_is_array(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "t", .def = &d_twice },
        { .id = "u", .def = &d_collect, .after = { "t" }, .params = "{\"up\": \"t\"}" },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_string_equal(g_input, "[\"one\",\"two\"]");
    assert_string_equal(seen("t", -1)->output, "[\"one\",\"two\"]");
    run_result_free(&res);
}

static void test_executor_ten_thousand_items(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 10000}" },
        { .id = "a", .def = &d_list, .map = "l", .params = "{\"list\": 1}" },
        { .id = "b", .def = &d_ok, .map = "l", .after = { "a" } },
        { .id = "z", .def = &d_ok, .after = { "b" } },
    };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct run_result res = RUN(defs, .workers = 2);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("10000-item lane of 2 tasks: %.3f s (%.1f us/item, events logged)\n", secs,
                  secs * 1e6 / 10000);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(res.units_ok, 10002);
    assert_int_equal(count_ev_prefix("b:"), 10000);
    assert_int_equal(seen_state("z", -1), TI_SUCCESS);
    assert_int_equal(g_n_seen, 2 + 20000);
    run_result_free(&res);
}

static void test_executor_execution_timeout(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "s", .def = &d_slowpoke, .retry = { .timeout_ms = 30 * 60 * 1000 } },
    };
    struct run_result res = RUN(defs);
    assert_int_equal(res.state, RUN_FAILED);
    assert_true(g_flag);    /* dr_cancelled turned true after the deadline */
    assert_string_equal(seen("s", -1)->error, "execution timeout 30m exceeded");
    run_result_free(&res);

    /* With a retry left, the second (fast) try succeeds. */
    reset();
    const struct tdef again[] = {
        { .id = "s", .def = &d_slowpoke,
          .retry = { .retries = 1, .retry_delay_ms = 10, .timeout_ms = 30 * 60 * 1000 } },
    };
    res = RUN(again);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(g_n_retries, 1);
    assert_int_equal(seen("s", -1)->try_number, 2);
    run_result_free(&res);
}

static void test_executor_cancel_via_stop(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 50}" },
        { .id = "m", .def = &d_stopper, .map = "l" },
        { .id = "z", .def = &d_ok, .after = { "m" } },
    };
    struct run_result res = RUN(defs, .workers = 2);
    assert_int_equal(res.state, RUN_CANCELLED);
    size_t ran = count_ev_prefix("m:");
    assert_in_range(ran, 1, 2);
    assert_int_equal(res.units_cancelled, ran);
    assert_int_equal(seen_state("m", 0), TI_CANCELLED);
    assert_null(seen("m", 10));     /* pending items are recorded nowhere */
    assert_int_equal(find_ev("z:-1"), -1);
    run_result_free(&res);

    /* Stop between units: what is done stays done, the rest never starts. */
    reset();
    g_stop_after = 3;
    const struct tdef seq[] = {
        { .id = "a", .def = &d_ok },
        { .id = "b", .def = &d_ok, .after = { "a" } },
        { .id = "c", .def = &d_ok, .after = { "b" } },
        { .id = "d", .def = &d_ok, .after = { "c" } },
        { .id = "e", .def = &d_ok, .after = { "d" } },
    };
    res = RUN(seq, .workers = 2);
    assert_int_equal(res.state, RUN_CANCELLED);
    assert_int_equal(g_n_events, 3);
    run_result_free(&res);
}

static void test_executor_resume_skips_done(void **state)
{
    (void)state;
    reset();
    struct prior_task pts[3] = { 0 };
    pts[0].task_id = "l";
    pts[0].state = TI_SUCCESS;
    pts[0].output = json_pack("[s,s,s,s]", "w", "x", "y", "z");
    unsigned char done[4] = { 1, 0, 1, 0 };
    pts[1].task_id = "a";
    pts[1].mapped = true;
    pts[1].n_items = 4;
    pts[1].done = done;
    pts[2].task_id = "b";
    pts[2].mapped = true;
    pts[2].n_items = 4;
    pts[2].done = done;
    pts[2].item_outputs = json_pack("[s,n,s,n]", "old0", "old2");
    struct prior prior = { .tasks = pts, .n_tasks = 3 };
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 99}" },
        { .id = "a", .def = &d_list, .map = "l", .params = "{\"list\": 5}" },
        { .id = "b", .def = &d_block0, .map = "l", .after = { "a" } },
        { .id = "c", .def = &d_collect, .after = { "b" }, .params = "{\"up\": \"b\"}" },
    };
    struct run_result res = RUN(defs, .prior = &prior);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(find_ev("l:-1"), -1);      /* restored, not re-run */
    assert_int_equal(find_ev("a:0"), -1);
    assert_int_equal(find_ev("a:2"), -1);
    assert_true(find_ev("a:1") >= 0);
    assert_true(find_ev("b:3") >= 0);
    assert_string_equal(g_input, "[\"old0\",1,\"old2\",3]");
    assert_null(seen("a", 0));
    run_result_free(&res);
    json_decref(pts[0].output);
    json_decref(pts[2].item_outputs);
}

static void test_executor_pool_limits_concurrency(void **state)
{
    (void)state;
    reset();
    struct pool_cfg pc = { .name = "narrow", .slots = 2 };
    struct config cfg = { .pools = &pc, .n_pools = 1, .heartbeat_sec = 5 };
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 60}" },
        { .id = "m", .def = &d_conc, .map = "l", .pool = "narrow" },
        { .id = "u", .def = &d_conc, .map = "l", .pool = "unknown_pool" },
    };
    struct run_result res = RUN(defs, .workers = 4, .cfg = &cfg);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(count_ev_prefix("m:"), 60);
    assert_int_equal(count_ev_prefix("u:"), 60);
    /* u is a lane of its own over l, so both lanes run together: at most 2 + 2. */
    assert_in_range(g_max_concurrent, 1, 4);
    run_result_free(&res);

    reset();
    const struct tdef only[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 60}" },
        { .id = "m", .def = &d_conc, .map = "l", .pool = "narrow" },
    };
    res = RUN(only, .workers = 4, .cfg = &cfg);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_in_range(g_max_concurrent, 1, 2);
    run_result_free(&res);
}

static void test_executor_warnings_counters_init_fini(void **state)
{
    (void)state;
    reset();
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "w", .def = &d_warn, .map = "l" },
        { .id = "c1", .def = &d_counted, .map = "l", .after = { "w" } },
        { .id = "c2", .def = &d_counted, .after = { "c1" } },
    };
    struct run_result res = RUN(defs, .workers = 3);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(json_array_size(res.warnings), 3);
    assert_int_equal(json_integer_value(json_object_get(res.counters, "things")), 6);
    bool found = false;
    for (size_t i = 0; i < json_array_size(res.warnings); i++)
        found = found || strcmp(json_string_value(json_array_get(res.warnings, i)),
                                "w[k1]: odd item 1") == 0;
    assert_true(found);
    assert_int_equal(g_inits, 2);
    assert_int_equal(g_finis, 2);
    run_result_free(&res);

    reset();
    const struct tdef bad[] = {
        { .id = "b", .def = &d_badinit },
        { .id = "z", .def = &d_ok, .after = { "b" } },
    };
    res = RUN(bad);
    assert_int_equal(res.state, RUN_FAILED);
    assert_string_equal(seen("b", -1)->error, "no credentials");
    assert_int_equal(seen_state("z", -1), TI_UPSTREAM_FAILED);
    assert_int_equal(g_n_events, 0);
    run_result_free(&res);
}

/* Property: random DAG shapes with random outcomes always end, and every task gets a state. */
static void test_executor_random_dags_terminate(void **state)
{
    (void)state;
    uint64_t seed = prop_seed_or(12345);
    static const char *ids[] = { "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7" };
    static const char *status[] = { "{\"status\":\"ok\"}", "{\"status\":\"skip\"}",
                                    "{\"status\":\"fail\"}", "{\"status\":\"retry\"}" };
    uint64_t s = seed;
    for (int round = 0; round < 40; round++) {
        reset();
        struct tdef defs[8];
        memset(defs, 0, sizeof defs);
        for (int i = 0; i < 8; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t r = s >> 33;
            defs[i].id = ids[i];
            defs[i].def = &d_status;
            defs[i].params = status[r % 4];
            defs[i].trigger = (enum trigger_rule)((r >> 3) % 5);
            defs[i].retry.retries = (int)((r >> 6) % 2);
            defs[i].retry.retry_delay_ms = 5;
            int na = 0;
            for (int j = 0; j < i && na < 3; j++)
                if ((r >> (10 + j)) & 1)
                    defs[i].after[na++] = ids[j];
        }
        struct run_result res = run_full(defs, 8, (struct opts){ .workers = 3, .seed = s });
        for (int i = 0; i < 8; i++)
            if (!seen(ids[i], -1))
                fail_msg("seed %llu round %d: task %s has no record",
                         (unsigned long long)seed, round, ids[i]);
        run_result_free(&res);
    }
}

/* ---- with PostgreSQL: transactions, savepoints, commit failures (tests/pg_sandbox.sh) ---- */

#include <unistd.h>
#include "sandbox.h"
#include "store.h"

static char *g_url;                 /* the sandbox's URL; NULL when none runs */
static struct store *g_st;
static char g_run_id[256];

static void pg_stop(void)
{
    store_close(g_st);
    g_st = NULL;
    sandbox_stop();
    free(g_url);
    g_url = NULL;
}

static void sql(const char *q)
{
    PGresult *r = PQexec(store_conn(g_st), q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
}

static long sql_long(const char *q)
{
    PGresult *r = PQexec(store_conn(g_st), q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static char *sql_text(const char *q)
{
    PGresult *r = PQexec(store_conn(g_st), q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    char *out = PQntuples(r) ? strdup(PQgetvalue(r, 0, 0)) : strdup("");
    PQclear(r);
    return out;
}

static int pg_setup(void **state)
{
    (void)state;
    if (!(g_url = sandbox_start("exec-test")))
        return -1;
    struct dr_err err;
    err_clear(&err);
    if (!(g_st = store_open(g_url, &err)) || store_initdb(g_st, "schema.sql", &err) < 0) {
        fprintf(stderr, "test_executor: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int pg_teardown(void **state)
{
    (void)state;
    pg_stop();
    return 0;
}

/* A fresh run row (task_instance references dag_run) and a fresh data table. */
static void pg_fresh(const char *table_sql)
{
    struct dr_err err;
    err_clear(&err);
    static int n;
    if (store_run_create(g_st, "exec_test", "test", 1767225600 + n, 1767225600 + n,
                         1767225600 + n, NULL, g_run_id, sizeof g_run_id, &err) < 0)
        fail_msg("store_run_create: %s", err.msg);
    n++;
    sql("DROP TABLE IF EXISTS exec_t");
    sql(table_sql);
}

/* A run on the test database; cfg may be NULL. */
static struct run_result run_db_cfg(const struct tdef *defs, size_t n, int workers,
                                    const struct config *cfg)
{
    struct built *b = build(defs, n);
    struct run_spec spec = {
        .dag = &b->d, .cfg = cfg, .params = b->params, .run_id = g_run_id, .run_type = "test",
        .workers = workers, .database_url = g_url, .store = g_st, .stop = &g_stop,
        .seed = 1, .hooks = &g_hooks,
    };
    struct run_result res;
    struct dr_err err;
    err_clear(&err);
    if (executor_run(&spec, &res, &err) != 0)
        fail_msg("executor_run: %s", err.msg);
    built_free(b);
    return res;
}

static struct run_result run_db(const struct tdef *defs, size_t n, int workers)
{
    return run_db_cfg(defs, n, workers, NULL);
}

static int item_try(dr_ctx *ctx, bool count)
{
    long i = dr_map_index(ctx) + 1;
    pthread_mutex_lock(&g_lock);
    int n = count ? ++g_tries[i] : g_tries[i];
    pthread_mutex_unlock(&g_lock);
    return n;
}

static bool exec_ok(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

/* Lane head for the DB tests: counts the item's try, emits 4 chunks. */
static dr_status p_dbhead_run(dr_ctx *ctx, void *st)
{
    (void)st;
    item_try(ctx, true);
    for (int k = 0; k < 4; k++) {
        if (dr_emit_json_new(ctx, json_integer(k)) < 0) {
            dr_error(ctx, "reached chunk %d", k);
            return DR_FAIL;
        }
        char cp[16];
        snprintf(cp, sizeof cp, "%d", k);
        dr_set_checkpoint(ctx, cp);
    }
    return DR_OK;
}

/* "item:checkpoint" of task h's items, in order ("-" for none). */
static char *h_checkpoints(void)
{
    char q[256];
    snprintf(q, sizeof q, "SELECT string_agg(map_index || ':' || coalesce(checkpoint, '-'), ','"
             " ORDER BY map_index) FROM dagrun.task_instance WHERE run_id = '%s' AND task_id = 'h'",
             g_run_id);
    return sql_text(q);
}

/* Inserts (item, chunk); param mode: "fail" fails item 0 chunk 2 after its insert,
 * "retry" asks for a retry of item 1 chunk 3 on its first try. */
static dr_status p_dbnext_run(dr_ctx *ctx, void *st)
{
    (void)st;
    PGconn *c = dr_db(ctx);
    if (!c)
        return DR_RETRY;
    long item = dr_map_index(ctx);
    long long chunk = json_integer_value(dr_lane_json(ctx));
    char q[128];
    snprintf(q, sizeof q, "INSERT INTO exec_t VALUES (%ld, %lld)", item, chunk);
    if (!exec_ok(c, q)) {
        dr_error(ctx, "insert failed: %s", PQerrorMessage(c));
        return DR_FAIL;
    }
    dr_count(ctx, "inserted", 1);   /* must end up equal to the rows that committed */
    const char *mode = dr_param_str(ctx, "mode");
    if (mode && strcmp(mode, "fail") == 0 && item == 0 && chunk == 2) {
        dr_error(ctx, "bad chunk 2");
        return DR_FAIL;
    }
    if (mode && strcmp(mode, "retry") == 0 && item == 1 && chunk == 3 && item_try(ctx, false) == 1) {
        dr_error(ctx, "transient");
        return DR_RETRY;
    }
    return DR_OK;
}

/* Unmapped/mapped: inserts its key; param mode "dup" inserts twice on try 1 (a deferred
 * unique violation makes COMMIT fail), "kill" drops its own connection on try 1. */
static dr_status p_dbone_run(dr_ctx *ctx, void *st)
{
    (void)st;
    int t = item_try(ctx, true);
    PGconn *c = dr_db(ctx);
    if (!c)
        return DR_RETRY;
    char q[128];
    snprintf(q, sizeof q, "INSERT INTO exec_t VALUES (%ld, %d)", dr_map_index(ctx), t);
    if (!exec_ok(c, q))
        return DR_FAIL;
    const char *mode = dr_param_str(ctx, "mode");
    if (t == 1 && mode && strcmp(mode, "dup") == 0 && dr_map_index(ctx) == 0)
        exec_ok(c, q);
    if (t == 1 && mode && strcmp(mode, "kill") == 0 && dr_map_index(ctx) == 0)
        exec_ok(c, "SELECT pg_terminate_backend(pg_backend_pid())");
    return DR_OK;
}

/* Waits (up to 20 s real time) until the run is cancelled. */
static dr_status p_waiter_run(dr_ctx *ctx, void *st)
{
    (void)st;
    ev(ctx, "");
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!dr_cancelled(ctx)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 20)
            return DR_OK;
        struct timespec pause = { 0, 5 * 1000000 };
        nanosleep(&pause, NULL);
    }
    dr_error(ctx, "cancelled");
    return DR_FAIL;
}

/* Holds its item's transaction until g_hold_want items hold one (at most 5 s), then 20 ms
 * more, and notes how many held one at once and on which backends (g_hold_*; set by the
 * test). */
static int g_hold_want, g_hold_now, g_hold_max, g_hold_pids[64], g_hold_npids;

static dr_status p_dbhold_run(dr_ctx *ctx, void *st)
{
    (void)st;
    PGconn *c = dr_db(ctx);
    if (!c)
        return DR_RETRY;
    int pid = PQbackendPID(c);
    pthread_mutex_lock(&g_lock);
    if (++g_hold_now > g_hold_max)
        g_hold_max = g_hold_now;
    bool seen = false;
    for (int i = 0; i < g_hold_npids; i++)
        seen |= g_hold_pids[i] == pid;
    if (!seen && g_hold_npids < 64)
        g_hold_pids[g_hold_npids++] = pid;
    pthread_mutex_unlock(&g_lock);
    char q[128];
    snprintf(q, sizeof q, "INSERT INTO exec_t VALUES (%ld, 1)", dr_map_index(ctx));
    bool ok = exec_ok(c, q);
    struct timespec pause = { 0, 1000000 };
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&g_lock);
        bool met = g_hold_max >= g_hold_want;
        pthread_mutex_unlock(&g_lock);
        if (met)
            break;
        nanosleep(&pause, NULL);
    }
    pause.tv_nsec = 20 * 1000000;       /* room for one more holder, if the pool let it in */
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&g_lock);
    g_hold_now--;
    pthread_mutex_unlock(&g_lock);
    return ok ? DR_OK : DR_FAIL;
}

DEF(d_waiter, "waiter", p_waiter_run);
DEF(d_dbhold, "dbhold", p_dbhold_run);
DEF(d_dbhead, "dbhead", p_dbhead_run);
DEF(d_dbnext, "dbnext", p_dbnext_run);
DEF(d_dbone, "dbone", p_dbone_run);

static void test_executor_db_failed_chunk_keeps_prefix(void **state)
{
    (void)state;
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, chunk int)");
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "h", .def = &d_dbhead, .map = "l" },
        { .id = "nx", .def = &d_dbnext, .map = "l", .after = { "h" },
          .params = "{\"mode\": \"fail\"}" },
    };
    struct run_result res = run_db(defs, 3, 2);
    assert_int_equal(res.state, RUN_PARTIAL);
    /* Item 0: chunks 0 and 1 committed, chunk 2 rolled back to its savepoint. */
    char *got = sql_text("SELECT string_agg(item || ':' || chunk, ',' ORDER BY item, chunk) FROM exec_t");
    assert_string_equal(got, "0:0,0:1,1:0,1:1,1:2,1:3,2:0,2:1,2:2,2:3");
    free(got);
    char q[512];
    snprintf(q, sizeof q, "SELECT state || '|' || coalesce(error, '') FROM dagrun.task_instance "
             "WHERE run_id = '%s' AND task_id = 'nx' AND map_index = 0", g_run_id);
    got = sql_text(q);
    assert_string_equal(got, "failed|bad chunk 2");
    free(got);
    snprintf(q, sizeof q, "SELECT count(*) FROM dagrun.task_instance WHERE run_id = '%s' "
             "AND state = 'success'", g_run_id);
    assert_int_equal(sql_long(q), 1 + 2 * 2);
    got = h_checkpoints();      /* item 0 committed chunks 0 and 1 */
    assert_string_equal(got, "0:1,1:3,2:3");
    free(got);
    assert_int_equal(json_integer_value(json_object_get(res.counters, "inserted")),
                     sql_long("SELECT count(*) FROM exec_t"));
    run_result_free(&res);
}

static void test_executor_db_retry_rolls_back_the_item(void **state)
{
    (void)state;
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, chunk int)");
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "h", .def = &d_dbhead, .map = "l",
          .retry = { .retries = 2, .retry_delay_ms = 5 } },
        { .id = "nx", .def = &d_dbnext, .map = "l", .after = { "h" },
          .params = "{\"mode\": \"retry\"}" },
    };
    struct run_result res = run_db(defs, 3, 2);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(sql_long("SELECT count(*) FROM exec_t WHERE item = 1"), 4);
    assert_int_equal(sql_long("SELECT count(*) FROM exec_t"), 12);
    assert_int_equal(seen("nx", 1)->try_number, 2);
    /* Item 1's first try inserted 4 rows and was rolled back: they are not counted. */
    assert_int_equal(json_integer_value(json_object_get(res.counters, "inserted")), 12);
    run_result_free(&res);

    /* With no retry left, item 1's work is rolled back and so is its checkpoint. */
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, chunk int)");
    const struct tdef once[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "h", .def = &d_dbhead, .map = "l" },
        { .id = "nx", .def = &d_dbnext, .map = "l", .after = { "h" },
          .params = "{\"mode\": \"retry\"}" },
    };
    res = run_db(once, 3, 2);
    assert_int_equal(res.state, RUN_PARTIAL);
    assert_int_equal(sql_long("SELECT count(*) FROM exec_t WHERE item = 1"), 0);
    char *got = h_checkpoints();
    assert_string_equal(got, "0:3,1:-,2:3");
    free(got);
    assert_int_equal(json_integer_value(json_object_get(res.counters, "inserted")),
                     sql_long("SELECT count(*) FROM exec_t"));
    run_result_free(&res);
}

static void test_executor_db_commit_failure_is_retried(void **state)
{
    (void)state;
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, try int, "
             "UNIQUE (item) DEFERRABLE INITIALLY DEFERRED)");
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 2}" },
        { .id = "m", .def = &d_dbone, .map = "l", .params = "{\"mode\": \"dup\"}",
          .retry = { .retries = 1, .retry_delay_ms = 5 } },
    };
    struct run_result res = run_db(defs, 2, 1);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(sql_long("SELECT try FROM exec_t WHERE item = 0"), 2);
    assert_int_equal(seen("m", 0)->try_number, 2);
    assert_int_equal(g_n_retries, 1);
    run_result_free(&res);
}

static void test_executor_db_lost_connection_reconnects(void **state)
{
    (void)state;
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, try int)");
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 3}" },
        { .id = "m", .def = &d_dbone, .map = "l", .params = "{\"mode\": \"kill\"}",
          .retry = { .retries = 1, .retry_delay_ms = 5 } },
    };
    struct run_result res = run_db(defs, 2, 1);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(sql_long("SELECT count(*) FROM exec_t"), 3);
    assert_int_equal(sql_long("SELECT try FROM exec_t WHERE item = 0"), 2);
    assert_int_equal(g_n_retries, 1);
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM dagrun.task_instance WHERE run_id = '%s' "
             "AND state = 'success'", g_run_id);
    assert_int_equal(sql_long(q), 4);
    run_result_free(&res);
}

/* `dagrun cancel` sets cancel_requested; the coordinator's heartbeat sees it and stops. */
static void test_executor_db_cancel_request_via_heartbeat(void **state)
{
    (void)state;
    reset();
    pg_fresh("CREATE TABLE exec_t (item int)");
    struct dr_err err;
    err_clear(&err);
    if (store_run_set_state(g_st, g_run_id, RUN_RUNNING, NULL, &err) < 0 ||
        store_run_request_cancel(g_st, g_run_id, &err) < 0)
        fail_msg("cancel: %s", err.msg);
    struct config cfg = { .heartbeat_sec = 1 };
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 10}" },
        { .id = "m", .def = &d_waiter, .map = "l" },
    };
    struct run_result res = run_db_cfg(defs, 2, 2, &cfg);
    assert_int_equal(res.state, RUN_CANCELLED);
    assert_in_range(count_ev_prefix("m:"), 1, 2);
    assert_int_equal(res.units_cancelled, count_ev_prefix("m:"));
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM dagrun.task_instance WHERE run_id = '%s' "
             "AND task_id = 'm' AND state = 'cancelled'", g_run_id);
    assert_int_equal(sql_long(q), (long)count_ev_prefix("m:"));
    run_result_free(&res);
}

/* Six workers, twelve items that each hold a transaction: with db_connections N, N items
 * hold one at once and no more, all on N backends, and every item commits. */
static void check_db_connections(int n)
{
    reset();
    pg_fresh("CREATE TABLE exec_t (item int, chunk int)");
    g_hold_now = g_hold_max = g_hold_npids = 0;
    g_hold_want = n;
    struct config cfg = { .heartbeat_sec = 1, .db_connections = n };
    const struct tdef defs[] = {
        { .id = "l", .def = &d_list, .params = "{\"n\": 12}" },
        { .id = "m", .def = &d_dbhold, .map = "l" },
    };
    struct run_result res = run_db_cfg(defs, 2, 6, &cfg);
    assert_int_equal(res.state, RUN_SUCCESS);
    assert_int_equal(sql_long("SELECT count(*) FROM exec_t"), 12);
    assert_int_equal(g_hold_max, n);
    assert_int_equal(g_hold_npids, n);
    run_result_free(&res);
}

static void test_executor_db_connections_bound_the_transactions(void **state)
{
    (void)state;
    check_db_connections(1);
    check_db_connections(3);
}

int main(void)
{
    log_setup(LOG_TEXT, DR_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_topological_order),
        cmocka_unit_test(test_executor_params_and_runtime_params),
        cmocka_unit_test(test_executor_trigger_rules),
        cmocka_unit_test(test_executor_retry_backoff_exact_times),
        cmocka_unit_test(test_executor_retry_then_success_and_cap),
        cmocka_unit_test(test_executor_fail_is_not_retried),
        cmocka_unit_test(test_executor_fatal_stops_the_run),
        cmocka_unit_test(test_executor_mapped_partial_and_all_failed),
        cmocka_unit_test(test_executor_map_over_non_array_and_empty),
        cmocka_unit_test(test_executor_lane_items_do_not_wait),
        cmocka_unit_test(test_executor_streaming_emits_in_order),
        cmocka_unit_test(test_executor_streaming_downstream_failure),
        cmocka_unit_test(test_executor_lane_without_emits_runs_each_task),
        cmocka_unit_test(test_executor_blob_streaming_and_keys),
        cmocka_unit_test(test_executor_unmapped_emits_twice_is_array),
        cmocka_unit_test(test_executor_ten_thousand_items),
        cmocka_unit_test(test_executor_execution_timeout),
        cmocka_unit_test(test_executor_cancel_via_stop),
        cmocka_unit_test(test_executor_resume_skips_done),
        cmocka_unit_test(test_executor_pool_limits_concurrency),
        cmocka_unit_test(test_executor_warnings_counters_init_fini),
        cmocka_unit_test(test_executor_random_dags_terminate),
    };
    int failed = cmocka_run_group_tests_name("executor", tests, NULL, NULL);
    const struct CMUnitTest db_tests[] = {
        cmocka_unit_test(test_executor_db_failed_chunk_keeps_prefix),
        cmocka_unit_test(test_executor_db_retry_rolls_back_the_item),
        cmocka_unit_test(test_executor_db_commit_failure_is_retried),
        cmocka_unit_test(test_executor_db_lost_connection_reconnects),
        cmocka_unit_test(test_executor_db_cancel_request_via_heartbeat),
        cmocka_unit_test(test_executor_db_connections_bound_the_transactions),
    };
    failed += cmocka_run_group_tests_name("executor_db", db_tests, pg_setup, pg_teardown);
    return failed;
}
