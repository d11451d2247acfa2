/* Unit tests for runtime/store.c against a real PostgreSQL sandbox (tests/pg_sandbox.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prop.h"
#include "recorder.h"
#include "sandbox.h"
#include "store.h"

static char *g_url;             /* the sandbox's URL (sandbox_dir() is its folder) */
static struct store *g_st;

/* Runs a constant SQL statement of this file with at most one text parameter ($1) and
 * returns the first value (new string; NULL for SQL NULL or no rows). */
static char *sql1(const char *sql, const char *param)
{
    const char *v[] = { param };
    PGresult *res = PQexecParams(store_conn(g_st), sql, param ? 1 : 0, NULL, v, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    char *out = NULL;
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        out = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static long sql_long(const char *sql, const char *param)
{
    char *s = sql1(sql, param);
    assert_non_null(s);
    long v = strtol(s, NULL, 10);
    free(s);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    if (!(g_url = sandbox_start("store-test")))
        return -1;
    struct dr_err err;
    err_clear(&err);
    if (!(g_st = store_open(g_url, &err))) {
        fprintf(stderr, "test_store: %s\n", err.msg);
        goto fail;
    }
    for (int i = 0; i < 2; i++)     /* twice: the schema is idempotent */
        if (store_initdb(g_st, "schema.sql", &err) < 0) {
            fprintf(stderr, "test_store: initdb #%d: %s\n", i + 1, err.msg);
            goto fail;
        }
    return 0;
fail:
    store_close(g_st);
    g_st = NULL;
    sandbox_stop();
    free(g_url);
    g_url = NULL;
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(g_st);
    g_st = NULL;
    sandbox_stop();
    free(g_url);
    g_url = NULL;
    return 0;
}

/* Creates a run and returns its id in buf; fails the test on error. */
static void make_run(const char *dag, const char *type, int64_t t, const json_t *conf, char *buf,
                     size_t len)
{
    struct dr_err err;
    err_clear(&err);
    int rc = store_run_create(g_st, dag, type, t, t, t + 3600, conf, buf, len, &err);
    if (rc != 0)
        fail_msg("create run: %d %s", rc, err.msg);
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* 2026-01-05T13:00:00Z */
#define T0 1767618000LL

static void test_store_initdb_idempotent_and_reports_line(void **state)
{
    (void)state;
    struct dr_err err;
    err_clear(&err);
    assert_int_equal(store_initdb(g_st, "schema.sql", &err), 0);
    assert_int_equal(sql_long("SELECT count(*) FROM pg_tables WHERE schemaname = 'dagrun'", NULL),
                     5);   /* dag, dag_run, task_instance, task_log, source_window */
    assert_int_equal(sql_long("SELECT count(*) FROM pg_tables WHERE tablename IN"
                              " ('instruments', 'kite_ohlcv_historic', 'assets', 'ohlcv')", NULL), 4);
    assert_int_equal(sql_long("SELECT count(*) FROM pg_indexes WHERE indexname IN"
                              " ('instruments_exchange_type_idx', 'dag_run_scheduled_uq',"
                              " 'dag_run_dag_queued_idx', 'dag_run_state_idx')", NULL), 4);

    char path[128];
    snprintf(path, sizeof path, "%s/bad.sql", sandbox_dir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("BEGIN;\n-- Ünïcödé ₹ 日本語\nCREATE TABLE IF NOT EXISTS ok_t (a int);\n"
          "CREATE TABLE x (a nosuchtype);\nCOMMIT;\n", f);
    fclose(f);
    assert_int_equal(store_initdb(g_st, path, &err), -1);
    assert_non_null(strstr(err.msg, "bad.sql:4: "));
    assert_non_null(strstr(err.msg, "nosuchtype"));
    /* The failed file left nothing behind and the connection is usable. */
    assert_int_equal(sql_long("SELECT count(*) FROM pg_tables WHERE tablename = 'ok_t'", NULL), 0);
    assert_int_equal(store_initdb(g_st, "/nonexistent/schema.sql", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/schema.sql: "));
}

static void test_store_run_create_scheduled_unique(void **state)
{
    (void)state;
    char id[256], id2[256];
    struct dr_err err;
    err_clear(&err);
    make_run("kite_historic", "scheduled", T0, NULL, id, sizeof id);
    assert_string_equal(id, "kite_historic__scheduled__2026-01-05T13:00:00Z");
    assert_int_equal(store_run_create(g_st, "kite_historic", "scheduled", T0, T0, T0 + 60, NULL,
                                      id2, sizeof id2, &err), 1);
    assert_string_equal(id2, id);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.dag_run WHERE dag_id = $1",
                              "kite_historic"), 1);

    /* Manual runs of the same date never collide. */
    char m1[256], m2[256];
    make_run("kite_historic", "manual", T0, NULL, m1, sizeof m1);
    make_run("kite_historic", "manual", T0, NULL, m2, sizeof m2);
    assert_string_not_equal(m1, m2);
    const char *pre = "kite_historic__manual__2026-01-05T13:00:00Z__";
    assert_memory_equal(m1, pre, strlen(pre));
    assert_int_equal(strlen(m1), strlen(pre) + 6);
    assert_int_equal(strspn(m1 + strlen(pre), "0123456789abcdef"), 6);

    json_t *run = store_run_get(g_st, id, &err);
    assert_non_null(run);
    assert_string_equal(jstr(run, "state"), "queued");
    assert_string_equal(jstr(run, "run_type"), "scheduled");
    assert_string_equal(jstr(run, "logical_date"), "2026-01-05T13:00:00Z");
    assert_string_equal(jstr(run, "data_interval_end"), "2026-01-05T14:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(run, "pid")), getpid());
    assert_non_null(jstr(run, "hostname"));
    assert_true(json_is_null(json_object_get(run, "started_at")));
    json_decref(run);

    int64_t last = 0;
    bool found = false;
    assert_int_equal(store_last_scheduled(g_st, "kite_historic", &last, &found, &err), 0);
    assert_true(found);
    assert_int_equal(last, T0);
    assert_int_equal(store_last_scheduled(g_st, "never_ran", &last, &found, &err), 0);
    assert_false(found);

    assert_int_equal(store_run_create(g_st, "kite_historic", "bogus", T0, T0, T0, NULL, id2,
                                      sizeof id2, &err), -1);
    assert_null(store_run_get(g_st, "no_such_run", &err));
    assert_non_null(strstr(err.msg, "run no_such_run: no such run"));
    /* A buffer too small for the id is an error, not a truncation. */
    char tiny[16];
    assert_int_equal(store_run_create(g_st, "kite_historic", "manual", T0, T0, T0, NULL, tiny,
                                      sizeof tiny, &err), -1);
}

static void test_store_run_state_stamps_times(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("state_dag", "manual", T0, NULL, id, sizeof id);
    assert_int_equal(store_run_set_state(g_st, id, RUN_RUNNING, NULL, &err), 0);
    json_t *run = store_run_get(g_st, id, &err);
    assert_string_equal(jstr(run, "state"), "running");
    assert_non_null(jstr(run, "started_at"));
    assert_non_null(jstr(run, "heartbeat_at"));
    assert_null(jstr(run, "ended_at"));
    assert_true(json_is_number(json_object_get(run, "heartbeat_age_s")));
    json_decref(run);

    assert_int_equal(store_run_set_state(g_st, id, RUN_FAILED, "boom at item 3", &err), 0);
    run = store_run_get(g_st, id, &err);
    assert_string_equal(jstr(run, "state"), "failed");
    assert_string_equal(jstr(run, "error"), "boom at item 3");
    assert_non_null(jstr(run, "ended_at"));
    assert_true(json_is_number(json_object_get(run, "duration_s")));
    json_decref(run);

    /* A resume runs it again: the end time and error go away. */
    assert_int_equal(store_run_set_state(g_st, id, RUN_RUNNING, NULL, &err), 0);
    run = store_run_get(g_st, id, &err);
    assert_null(jstr(run, "ended_at"));
    assert_null(jstr(run, "error"));
    json_decref(run);
    assert_int_equal(store_run_set_state(g_st, id, RUN_SUCCESS, NULL, &err), 0);
    assert_int_equal(store_run_set_state(g_st, "nope", RUN_SUCCESS, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "nope"));
}

static void test_store_heartbeat_and_cancel(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("cancel_dag", "manual", T0, NULL, id, sizeof id);
    assert_int_equal(store_run_set_state(g_st, id, RUN_RUNNING, NULL, &err), 0);
    bool cancel = true;
    assert_int_equal(store_run_heartbeat(g_st, id, &cancel, &err), 0);
    assert_false(cancel);
    int n = -1;
    assert_int_equal(store_runs_active(g_st, "cancel_dag", &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_run_request_cancel(g_st, id, &err), 0);
    assert_int_equal(store_run_heartbeat(g_st, id, &cancel, &err), 0);
    assert_true(cancel);
    assert_int_equal(store_run_set_state(g_st, id, RUN_CANCELLED, NULL, &err), 0);
    assert_int_equal(store_runs_active(g_st, "cancel_dag", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_run_request_cancel(g_st, id, &err), -1);
    assert_non_null(strstr(err.msg, "has ended (cancelled)"));
    assert_int_equal(store_run_request_cancel(g_st, "ghost", &err), -1);
    assert_non_null(strstr(err.msg, "no such run"));
    assert_int_equal(store_run_heartbeat(g_st, "ghost", &cancel, &err), -1);
    /* Resuming the cancelled run clears the old request. */
    assert_int_equal(store_run_set_state(g_st, id, RUN_RUNNING, NULL, &err), 0);
    assert_int_equal(store_run_heartbeat(g_st, id, &cancel, &err), 0);
    assert_false(cancel);
    assert_int_equal(store_run_set_state(g_st, id, RUN_SUCCESS, NULL, &err), 0);
}

/* Fencing: a process whose run another process took over (a new epoch) cannot commit an
 * item, heartbeat, or write the end state; its heartbeat reports the loss as a cancel. */
static void test_store_fence_after_takeover(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("fence_dag", "manual", T0, NULL, id, sizeof id);
    struct store *a = store_open(g_url, &err);
    assert_non_null(a);
    bool got = false;
    assert_int_equal(store_run_lock(a, id, &got, &err), 0);
    assert_true(got);
    int64_t epoch = store_run_epoch(a, id);
    assert_true(epoch > 0);
    assert_int_equal(store_run_set_state(a, id, RUN_RUNNING, NULL, &err), 0);

    PGconn *w = store_open_conn(g_url, &err);
    assert_non_null(w);
    PQclear(PQexec(w, "BEGIN"));
    assert_int_equal(store_run_fence_conn(w, id, epoch, &err), 0);
    PQclear(PQexec(w, "COMMIT"));

    /* Another process takes the run over: the epoch moves on. */
    assert_int_equal(sql_long("UPDATE dagrun.dag_run SET epoch = epoch + 1 WHERE run_id = $1"
                              " RETURNING 0", id), 0);
    PQclear(PQexec(w, "BEGIN"));
    assert_int_equal(store_run_fence_conn(w, id, epoch, &err), 1);
    assert_non_null(strstr(err.msg, "took the run over"));
    PQclear(PQexec(w, "ROLLBACK"));
    PQfinish(w);

    /* Its new owner's success stays when this process records the item cancelled. */
    struct ti_record rec = { .task_id = "fetch", .map_index = 0, .map_key = "NSE:A",
                             .state = TI_SUCCESS, .try_number = 1 };
    assert_int_equal(store_ti_write(g_st, id, &rec, 1, &err), 0);
    rec.state = TI_CANCELLED;
    rec.try_number = 2;
    assert_int_equal(store_ti_write(g_st, id, &rec, 1, &err), 0);
    char *st = sql1("SELECT state FROM dagrun.task_instance WHERE run_id = $1", id);
    assert_string_equal(st, "success");
    free(st);

    assert_false(store_run_lost(a, id));
    bool cancel = false;
    assert_int_equal(store_run_heartbeat(a, id, &cancel, &err), 0);
    assert_true(cancel);
    assert_true(store_run_lost(a, id));
    assert_int_equal(store_run_set_state(a, id, RUN_SUCCESS, NULL, &err), -1);
    json_t *run = store_run_get(g_st, id, &err);
    assert_string_equal(jstr(run, "state"), "running");
    json_decref(run);
    store_close(a);
}

/* max_active_runs through the database: the slot is counted where the run is created. */
static void test_store_run_create_limited(void **state)
{
    (void)state;
    char id1[256], id2[256];
    struct dr_err err;
    err_clear(&err);
    int active = -1;
    assert_int_equal(store_run_create_limited(g_st, "limit_dag", "manual", T0, T0, T0, NULL, 1,
                                              &active, id1, sizeof id1, &err), 0);
    assert_int_equal(active, 0);
    assert_int_equal(store_run_create_limited(g_st, "limit_dag", "manual", T0, T0, T0, NULL, 1,
                                              &active, id2, sizeof id2, &err), 2);
    assert_int_equal(active, 1);
    assert_int_equal(store_run_set_state(g_st, id1, RUN_SUCCESS, NULL, &err), 0);
    assert_int_equal(store_run_create_limited(g_st, "limit_dag", "manual", T0, T0, T0, NULL, 1,
                                              &active, id2, sizeof id2, &err), 0);
    assert_int_equal(store_run_set_state(g_st, id2, RUN_SUCCESS, NULL, &err), 0);
}

static void test_store_warnings_and_counters_merge(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("warn_dag", "manual", T0, NULL, id, sizeof id);
    json_t *w1 = json_pack("[s]", "3 bad candles dropped");
    json_t *c1 = json_pack("{s:i, s:f, s:s}", "candles", 100, "secs", 1.5, "mode", "a");
    json_t *w2 = json_pack("[s, s]", "second", "third");
    json_t *c2 = json_pack("{s:i, s:i, s:s}", "candles", 23, "new", 4, "mode", "b");
    assert_int_equal(store_run_add_warnings(g_st, id, w1, c1, &err), 0);
    assert_int_equal(store_run_add_warnings(g_st, id, w2, c2, &err), 0);
    assert_int_equal(store_run_add_warnings(g_st, id, NULL, NULL, &err), 0);
    assert_int_equal(store_run_add_warnings(g_st, "ghost", w1, NULL, &err), -1);
    json_t *run = store_run_get(g_st, id, &err);
    const json_t *w = json_object_get(run, "warnings");
    assert_int_equal(json_array_size(w), 3);
    assert_string_equal(json_string_value(json_array_get(w, 0)), "3 bad candles dropped");
    assert_string_equal(json_string_value(json_array_get(w, 2)), "third");
    const json_t *c = json_object_get(run, "counters");
    assert_int_equal(json_integer_value(json_object_get(c, "candles")), 123);
    assert_true(json_number_value(json_object_get(c, "secs")) == 1.5);
    assert_int_equal(json_integer_value(json_object_get(c, "new")), 4);
    assert_string_equal(jstr(c, "mode"), "b");
    json_decref(run);
    json_decref(w1);
    json_decref(c1);
    json_decref(w2);
    json_decref(c2);
}

#define N_BIG 10000

static void test_store_ti_write_batch_and_upsert(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("batch_dag", "manual", T0, NULL, id, sizeof id);
    struct ti_record *r = calloc(N_BIG, sizeof *r);
    char (*keys)[24] = calloc(N_BIG, sizeof *keys);
    json_t *out = json_pack("{s:i}", "candles", 42);
    assert_non_null(r);
    assert_non_null(keys);
    for (int i = 0; i < N_BIG; i++) {
        snprintf(keys[i], sizeof keys[i], "NSE:SYM%d", i);
        r[i] = (struct ti_record){ .task_id = "fetch", .map_index = i, .map_key = keys[i],
                                   .state = TI_SUCCESS, .try_number = 1,
                                   .start_ms = T0 * 1000 + i, .end_ms = T0 * 1000 + i + 250,
                                   .output = out };
    }
    assert_int_equal(store_ti_write(g_st, id, r, N_BIG, &err), 0);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     N_BIG);
    char *s = sql1("SELECT to_char(ended_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') || ' ' ||"
                   " output::text FROM dagrun.task_instance WHERE run_id = $1 AND map_index = 7",
                   id);
    assert_string_equal(s, "13:00:00.257 {\"candles\": 42}");
    free(s);

    /* Upsert 100 of them as failed on try 2; a duplicate key in one batch keeps the last. */
    for (int i = 0; i < 100; i++) {
        r[i].state = TI_FAILED;
        r[i].try_number = 2;
        r[i].error = "HTTP 400: bad instrument";
        r[i].output = NULL;
    }
    r[100] = r[0];
    r[100].state = TI_SKIPPED;
    r[100].error = NULL;
    assert_int_equal(store_ti_write(g_st, id, r, 101, &err), 0);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1"
                              " AND state = 'failed' AND try_number = 2 AND output IS NULL", id),
                     99);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1"
                              " AND state = 'skipped' AND map_index = 0 AND error IS NULL", id), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     N_BIG);
    assert_int_equal(store_ti_write(g_st, id, r, 0, &err), 0);
    /* A write the database refuses (here a check constraint): an error, one line. */
    free(sql1("ALTER TABLE dagrun.task_instance ADD CONSTRAINT no_ghost"
              " CHECK (run_id <> 'ghost_run') NOT VALID", NULL));
    assert_int_equal(store_ti_write(g_st, "ghost_run", r, 1, &err), -1);
    assert_null(strchr(err.msg, '\n'));
    assert_non_null(strstr(err.msg, "ghost_run"));
    free(sql1("ALTER TABLE dagrun.task_instance DROP CONSTRAINT no_ghost", NULL));
    json_decref(out);
    free(keys);
    free(r);
}

/* A random text for a record field: hostile bytes (tabs, newlines, backslashes, quotes),
 * multibyte UTF-8, and now and then invalid UTF-8 or NULL. */
static char *random_text(uint64_t *rng, bool may_be_null)
{
    static const char *const parts[] = { "a", "Z9", "\t", "\n", "\r\n", "\\", "\\N", "'",
                                          "\"", "%s", "\u20b9", "\u65e5\u672c", "\U0001F680",
                                          "\xff", "\xc3", "\xed\xa0\x80", ",", " ", "{}" };
    if (may_be_null && prop_splitmix(rng) % 5 == 0)
        return NULL;
    size_t n = prop_splitmix(rng) % 12, len = 0;
    char *s = calloc(1, 12 * 8 + 1);
    for (size_t i = 0; i < n; i++) {
        const char *p = parts[prop_splitmix(rng) % (sizeof parts / sizeof *parts)];
        memcpy(s + len, p, strlen(p));
        len += strlen(p);
    }
    return s;
}

/* Property: a batch that goes by COPY (binary) stores exactly what the upsert stores when the
 * same records are written one at a time, for seeded random records. A trigger notes which
 * statement inserted each row, so a COPY that fell back to the upsert cannot pass. */
static void test_store_ti_copy_matches_upsert(void **state)
{
    (void)state;
    enum { N = 200 };
    uint64_t seed = prop_seed();
    uint64_t rng = seed;
    char a[256], b[256];
    struct dr_err err;
    err_clear(&err);
    make_run("copy_dag", "manual", T0, NULL, a, sizeof a);
    make_run("copy_dag", "manual", T0, NULL, b, sizeof b);
    free(sql1("CREATE TABLE public.ti_via (run_id text, via text)", NULL));
    free(sql1("CREATE FUNCTION public.ti_via() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
              " INSERT INTO public.ti_via VALUES (NEW.run_id, split_part(current_query(), ' ', 1));"
              " RETURN NEW; END $$", NULL));
    free(sql1("CREATE TRIGGER ti_via BEFORE INSERT ON dagrun.task_instance"
              " FOR EACH ROW EXECUTE FUNCTION public.ti_via()", NULL));
    struct ti_record r[N];
    char *texts[N][4];
    json_t *outs[N];
    static const enum ti_state states[] = { TI_SUCCESS, TI_FAILED, TI_SKIPPED, TI_CANCELLED,
                                            TI_UPSTREAM_FAILED, TI_RUNNING };
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 4; k++)
            texts[i][k] = random_text(&rng, k > 0);
        outs[i] = NULL;
        if (prop_splitmix(&rng) % 3 == 0)
            outs[i] = json_pack("{s:s?, s:I, s:[f, b, n]}", "s", texts[i][1], "n",
                                (json_int_t)(prop_splitmix(&rng) % 1000000), "a", 0.5, 1);
        int64_t start = prop_splitmix(&rng) % 4 == 0 ? 0
                        : T0 * 1000 + (int64_t)(prop_splitmix(&rng) % 100000000);
        r[i] = (struct ti_record){
            .task_id = texts[i][0], .map_index = i % 7 == 0 ? -1 : i,
            .map_key = texts[i][1], .state = states[prop_splitmix(&rng) % 6],
            .try_number = (int)(prop_splitmix(&rng) % 9), .start_ms = start,
            .end_ms = start ? start + (int64_t)(prop_splitmix(&rng) % 5000) : 0,
            .error = texts[i][2], .output = outs[i], .checkpoint = texts[i][3],
        };
    }
    /* Task ids must differ per map index -1 row: one row per (task, map index). */
    for (int i = 0; i < N; i += 7) {
        char *t = malloc(32);
        snprintf(t, 32, "unmapped-%d", i);
        free(texts[i][0]);
        r[i].task_id = texts[i][0] = t;
    }
    assert_int_equal(store_ti_write(g_st, a, r, N, &err), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(store_ti_write(g_st, b, &r[i], 1, &err), 0);
    free(sql1("DROP TRIGGER ti_via ON dagrun.task_instance", NULL));

    assert_int_equal(sql_long("SELECT count(*) FROM public.ti_via WHERE run_id = $1"
                              " AND via = 'COPY'", a), N);
    assert_int_equal(sql_long("SELECT count(*) FROM public.ti_via WHERE run_id = $1"
                              " AND via = 'INSERT'", b), N);
    static const char cols[] = "task_id, map_index, map_key, state, try_number, started_at,"
                               " ended_at, error, output, checkpoint";
    char q[1024];
    snprintf(q, sizeof q, "SELECT count(*) FROM ((SELECT %s FROM dagrun.task_instance"
             " WHERE run_id = $1) EXCEPT ALL (SELECT %s FROM dagrun.task_instance"
             " WHERE run_id = '%s')) d", cols, cols, b);
    long differ = sql_long(q, a);
    if (differ)
        fail_msg("%ld of %d records differ between COPY and upsert (DR_TEST_SEED=%llu)",
                 differ, N, (unsigned long long)seed);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", b),
                     N);
    free(sql1("DROP TABLE public.ti_via", NULL));
    free(sql1("DROP FUNCTION public.ti_via()", NULL));
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 4; k++)
            free(texts[i][k]);
        json_decref(outs[i]);
    }
}

static void test_store_ti_write_conn_rolls_back(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("tx_dag", "manual", T0, NULL, id, sizeof id);
    PGconn *c = store_open_conn(g_url, &err);
    assert_non_null(c);
    struct ti_record rec = { .task_id = "upsert", .map_index = 3, .map_key = "NSE:INFY",
                             .state = TI_SUCCESS, .try_number = 1 };
    PQclear(PQexec(c, "BEGIN"));
    assert_int_equal(store_ti_write_conn(c, id, &rec, 1, &err), 0);
    PQclear(PQexec(c, "ROLLBACK"));
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     0);
    PQclear(PQexec(c, "BEGIN"));
    assert_int_equal(store_ti_write_conn(c, id, &rec, 1, &err), 0);
    PQclear(PQexec(c, "COMMIT"));
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     1);
    char *app = NULL;
    PGresult *res = PQexec(c, "SELECT current_setting('application_name')");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        app = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    /* "dagrun/PID/HOST": a takeover finds a stopped process's sessions by it */
    char want[32];
    snprintf(want, sizeof want, "dagrun/%d/", (int)getpid());
    assert_non_null(app);
    assert_memory_equal(app, want, strlen(want));
    free(app);
    PQfinish(c);
}

static void test_store_prior_load_reconstructs(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("prior_dag", "manual", T0, NULL, id, sizeof id);
    json_t *lo = json_pack("[s, s]", "NSE:INFY", "NSE:TCS");
    json_t *o0 = json_pack("{s:i}", "rows", 10);
    json_t *o2 = json_string("two");
    struct ti_record r[] = {
        { .task_id = "chunks", .map_index = -1, .state = TI_SUCCESS, .try_number = 1,
          .output = lo },
        { .task_id = "fetch", .map_index = 0, .state = TI_SUCCESS, .output = o0 },
        { .task_id = "fetch", .map_index = 1, .state = TI_FAILED, .error = "x" },
        { .task_id = "fetch", .map_index = 2, .state = TI_SKIPPED, .output = o2 },
        { .task_id = "fetch", .map_index = 4, .state = TI_RUNNING },
        { .task_id = "report", .map_index = -1, .state = TI_UPSTREAM_FAILED },
    };
    assert_int_equal(store_ti_write(g_st, id, r, sizeof r / sizeof *r, &err), 0);
    struct prior p;
    assert_int_equal(store_prior_load(g_st, id, &p, &err), 0);
    assert_int_equal(p.n_tasks, 3);
    const struct prior_task *t = prior_find(&p, "chunks");
    assert_non_null(t);
    assert_false(t->mapped);
    assert_int_equal(t->state, TI_SUCCESS);
    assert_true(json_equal(t->output, lo));
    t = prior_find(&p, "fetch");
    assert_non_null(t);
    assert_true(t->mapped);
    assert_int_equal(t->n_items, 5);
    const unsigned char want[5] = { 1, 0, 1, 0, 0 };
    assert_memory_equal(t->done, want, 5);
    assert_int_equal(json_array_size(t->item_outputs), 5);
    assert_true(json_equal(json_array_get(t->item_outputs, 0), o0));
    assert_true(json_is_null(json_array_get(t->item_outputs, 1)));
    assert_true(json_equal(json_array_get(t->item_outputs, 2), o2));
    t = prior_find(&p, "report");
    assert_int_equal(t->state, TI_UPSTREAM_FAILED);
    assert_null(t->output);
    prior_free(&p);

    assert_int_equal(store_prior_load(g_st, "empty_run", &p, &err), 0);
    assert_int_equal(p.n_tasks, 0);
    prior_free(&p);
    json_decref(lo);
    json_decref(o0);
    json_decref(o2);
}

/* More rows than one page of the paged load (20000): tasks that straddle pages, the last
 * item's checkpoint and output, and every done flag come back. */
static void test_store_prior_load_pages(void **state)
{
    (void)state;
    char id[256];
    struct dr_err err;
    err_clear(&err);
    make_run("pages_dag", "manual", T0, NULL, id, sizeof id);
    PGconn *c = store_open_conn(g_url, &err);
    assert_non_null(c);
    const char *v[] = { id };
    PGresult *r = PQexecParams(c,
        "INSERT INTO dagrun.task_instance (run_id, task_id, map_index, state, try_number,"
        " output, checkpoint)"
        " SELECT $1, t, i, CASE WHEN i % 7 = 3 THEN 'failed' ELSE 'success' END, 1,"
        "  CASE WHEN i = 29999 THEN '{\"last\": true}'::jsonb END,"
        "  CASE WHEN i % 1000 = 999 THEN 'cp' || i END"
        " FROM unnest(array['a', 'b']) t, generate_series(0, 29999) i"
        " UNION ALL SELECT $1, 'c', -1, 'success', 1, '[1]', NULL",
        1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    struct prior p;
    assert_int_equal(store_prior_load(g_st, id, &p, &err), 0);
    assert_int_equal(p.n_tasks, 3);
    for (int k = 0; k < 2; k++) {
        const struct prior_task *t = prior_find(&p, k ? "b" : "a");
        assert_non_null(t);
        assert_int_equal(t->n_items, 30000);
        size_t done = 0, cps = 0;
        for (size_t i = 0; i < t->n_items; i++) {
            assert_int_equal(t->done[i], i % 7 != 3);
            done += t->done[i];
            cps += t->checkpoints[i] != NULL;
        }
        assert_int_equal(done, 30000 - 30000 / 7 - (30000 % 7 > 3));
        assert_int_equal(cps, 30);
        assert_string_equal(t->checkpoints[29999], "cp29999");
        assert_true(json_is_true(json_object_get(json_array_get(t->item_outputs, 29999), "last")));
    }
    const struct prior_task *t = prior_find(&p, "c");
    assert_non_null(t);
    assert_false(t->mapped);
    assert_int_equal(json_array_size(t->output), 1);
    prior_free(&p);
}

static void test_store_runs_list_and_status(void **state)
{
    (void)state;
    char a[256], b[256];
    struct dr_err err;
    err_clear(&err);
    make_run("list_dag", "scheduled", T0, NULL, a, sizeof a);
    make_run("list_dag", "scheduled", T0 + 86400, NULL, b, sizeof b);
    /* Deterministic order: a was queued an hour earlier. */
    free(sql1("UPDATE dagrun.dag_run SET queued_at = queued_at - interval '1 hour'"
              " WHERE run_id = $1", a));
    assert_int_equal(store_run_set_state(g_st, b, RUN_RUNNING, NULL, &err), 0);
    struct ti_record r[] = {
        { .task_id = "list", .map_index = -1, .state = TI_SUCCESS, .try_number = 1,
          .start_ms = T0 * 1000, .end_ms = T0 * 1000 + 1500 },
        { .task_id = "fetch", .map_index = 0, .map_key = "NSE:INFY", .state = TI_SUCCESS,
          .try_number = 1, .start_ms = T0 * 1000 + 2000, .end_ms = T0 * 1000 + 3000 },
        { .task_id = "fetch", .map_index = 1, .map_key = "NSE:TCS", .state = TI_FAILED,
          .try_number = 3, .start_ms = T0 * 1000 + 2000, .end_ms = T0 * 1000 + 2500,
          .error = "400 InputException" },
        { .task_id = "fetch", .map_index = 2, .map_key = "NSE:SBIN", .state = TI_SKIPPED,
          .try_number = 1, .start_ms = T0 * 1000 + 2100, .end_ms = T0 * 1000 + 2200 },
        { .task_id = "upsert", .map_index = 0, .state = TI_PENDING },
    };
    assert_int_equal(store_ti_write(g_st, b, r, sizeof r / sizeof *r, &err), 0);
    assert_int_equal(store_run_set_state(g_st, b, RUN_PARTIAL, "1 of 3 items failed", &err), 0);

    json_t *l = store_runs_list(g_st, "list_dag", 10, &err);
    assert_non_null(l);
    assert_int_equal(json_array_size(l), 2);
    json_t *first = json_array_get(l, 0);
    assert_string_equal(jstr(first, "run_id"), b);
    assert_string_equal(jstr(first, "state"), "partial");
    assert_string_equal(jstr(first, "logical_date"), "2026-01-06T13:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(first, "items_ok")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "items_skipped")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "items_failed")), 1);
    assert_true(json_is_number(json_object_get(first, "duration_s")));
    assert_string_equal(jstr(json_array_get(l, 1), "run_id"), a);
    assert_true(json_is_null(json_object_get(json_array_get(l, 1), "duration_s")));
    json_decref(l);
    l = store_runs_list(g_st, "list_dag", 1, &err);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = store_runs_list(g_st, NULL, 0, &err);
    assert_true(json_array_size(l) >= 2);
    json_decref(l);
    l = store_runs_list(g_st, "no_dag", 5, &err);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);

    json_t *s = store_run_status(g_st, b, &err);
    assert_non_null(s);
    const json_t *run = json_object_get(s, "run");
    assert_string_equal(jstr(run, "error"), "1 of 3 items failed");
    assert_true(json_is_object(json_object_get(run, "conf")));
    assert_true(json_is_array(json_object_get(run, "warnings")));
    const json_t *tasks = json_object_get(s, "tasks");
    assert_int_equal(json_array_size(tasks), 5);
    /* Ordered by start time, then task and index; never-started last. */
    assert_string_equal(jstr(json_array_get(tasks, 0), "task_id"), "list");
    assert_string_equal(jstr(json_array_get(tasks, 0), "started_at"), "2026-01-05T13:00:00Z");
    assert_true(json_number_value(json_object_get(json_array_get(tasks, 0), "duration_s")) ==
                1.5);
    assert_string_equal(jstr(json_array_get(tasks, 1), "map_key"), "NSE:INFY");
    assert_string_equal(jstr(json_array_get(tasks, 2), "map_key"), "NSE:TCS");
    assert_string_equal(jstr(json_array_get(tasks, 2), "error"), "400 InputException");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tasks, 2), "try_number")),
                     3);
    assert_string_equal(jstr(json_array_get(tasks, 3), "map_key"), "NSE:SBIN");
    assert_string_equal(jstr(json_array_get(tasks, 4), "task_id"), "upsert");
    assert_true(json_is_null(json_object_get(json_array_get(tasks, 4), "started_at")));
    const json_t *by = json_object_get(json_object_get(s, "summary"), "by_task");
    const json_t *f = json_object_get(by, "fetch");
    assert_int_equal(json_integer_value(json_object_get(f, "success")), 1);
    assert_int_equal(json_integer_value(json_object_get(f, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(f, "skipped")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(by, "upsert"),
                                                        "pending")), 1);
    json_decref(s);

    s = store_run_status(g_st, a, &err);  /* a run with no task instances */
    assert_int_equal(json_array_size(json_object_get(s, "tasks")), 0);
    assert_int_equal(json_object_size(json_object_get(json_object_get(s, "summary"), "by_task")),
                     0);
    json_decref(s);
    assert_null(store_run_status(g_st, "ghost", &err));
    assert_non_null(strstr(err.msg, "ghost"));
}

static void test_store_pause_flags(void **state)
{
    (void)state;
    struct dr_err err;
    err_clear(&err);
    bool p = true;
    assert_int_equal(store_dag_is_paused(g_st, "pause_dag", &p, &err), 0);
    assert_false(p);
    assert_int_equal(store_dag_set_paused(g_st, "pause_dag", true, &err), 0);
    assert_int_equal(store_dag_is_paused(g_st, "pause_dag", &p, &err), 0);
    assert_true(p);
    assert_int_equal(store_dag_set_paused(g_st, "pause_dag", false, &err), 0);
    assert_int_equal(store_dag_is_paused(g_st, "pause_dag", &p, &err), 0);
    assert_false(p);
}

static void test_store_stale_runs(void **state)
{
    (void)state;
    char live[256], dead[256];
    struct dr_err err;
    err_clear(&err);
    make_run("stale_dag", "manual", T0, NULL, live, sizeof live);
    make_run("stale_dag", "manual", T0, NULL, dead, sizeof dead);
    assert_int_equal(store_run_set_state(g_st, live, RUN_RUNNING, NULL, &err), 0);
    assert_int_equal(store_run_set_state(g_st, dead, RUN_RUNNING, NULL, &err), 0);
    free(sql1("UPDATE dagrun.dag_run SET heartbeat_at = now() - interval '1 hour'"
              " WHERE run_id = $1", dead));
    json_t *ids = store_runs_stale(g_st, 600, &err);
    assert_non_null(ids);
    bool has_dead = false, has_live = false;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        has_dead |= strcmp(json_string_value(v), dead) == 0;
        has_live |= strcmp(json_string_value(v), live) == 0;
    }
    assert_true(has_dead);
    assert_false(has_live);
    json_decref(ids);
    json_t *run = store_run_get(g_st, dead, &err);
    assert_true(json_number_value(json_object_get(run, "heartbeat_age_s")) >= 3599);
    json_decref(run);
    int n = 0;
    assert_int_equal(store_runs_active(g_st, "stale_dag", &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_run_set_state(g_st, dead, RUN_FAILED, "stale", &err), 0);
    assert_int_equal(store_run_set_state(g_st, live, RUN_SUCCESS, NULL, &err), 0);
}

static void test_store_connect_failure_is_one_line(void **state)
{
    (void)state;
    struct dr_err err;
    err_clear(&err);
    char url[256];
    snprintf(url, sizeof url,
             "postgresql://postgres:s3cretpw@/dagrun?host=%s/nowhere&port=54329", sandbox_dir());
    assert_null(store_open(url, &err));
    char want[200];
    snprintf(want, sizeof want, "cannot connect to database at socket %s/nowhere/.s.PGSQL.54329: ",
             sandbox_dir());
    if (!strstr(err.msg, want))
        fail_msg("got: %s", err.msg);
    assert_null(strchr(err.msg, '\n'));
    assert_null(strstr(err.msg, "Is the server running"));
    assert_null(strstr(err.msg, "s3cretpw"));
    assert_non_null(strstr(err.msg, "No such file or directory"));

    /* A URL libpq cannot parse: its pieces (maybe the password) are not echoed. */
    assert_null(store_open_conn("postgresql://u:pa%zzss@host/db", &err));
    assert_non_null(strstr(err.msg, "invalid database url"));
    assert_null(strstr(err.msg, "pa%zzss"));
    assert_null(strstr(err.msg, "%zz"));
}

static void test_store_hostile_strings_round_trip(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        "x'); DROP TABLE instruments; --",
        "it's \"quoted\" \\ back\\slash $1 $$ %s %n",
        "line one\nline two\r\n\ttabbed",
        "Ünïcödé ₹ 日本語 🚀",
        "",
    };
    char id[256];
    struct dr_err err;
    err_clear(&err);
    json_t *conf = json_object();
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%zu", i);
        json_object_set_new(conf, k, json_string(hostile[i]));
    }
    json_object_set_new(conf, hostile[0], json_string("key too"));
    make_run("hostile_dag", "manual", T0, conf, id, sizeof id);
    struct ti_record r[sizeof hostile / sizeof *hostile];
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++)
        r[i] = (struct ti_record){ .task_id = "t", .map_index = (long)i, .map_key = hostile[i],
                                   .state = TI_FAILED, .try_number = 1, .error = hostile[i] };
    assert_int_equal(store_ti_write(g_st, id, r, sizeof r / sizeof *r, &err), 0);
    assert_int_equal(store_run_set_state(g_st, id, RUN_FAILED, hostile[0], &err), 0);
    json_t *warn = json_pack("[s, s]", hostile[1], hostile[2]);
    assert_int_equal(store_run_add_warnings(g_st, id, warn, NULL, &err), 0);

    json_t *s = store_run_status(g_st, id, &err);
    assert_non_null(s);
    const json_t *run = json_object_get(s, "run");
    assert_true(json_equal(json_object_get(run, "conf"), conf));
    assert_string_equal(jstr(run, "error"), hostile[0]);
    assert_true(json_equal(json_object_get(run, "warnings"), warn));
    const json_t *tasks = json_object_get(s, "tasks");
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        assert_string_equal(jstr(json_array_get(tasks, i), "error"), hostile[i]);
        assert_string_equal(jstr(json_array_get(tasks, i), "map_key"), hostile[i]);
    }
    json_decref(s);
    assert_int_equal(sql_long("SELECT count(*) FROM pg_tables WHERE tablename = 'instruments'",
                              NULL), 1);

    /* Invalid UTF-8 in an error is stored with the bad bytes replaced, not refused. */
    struct ti_record bad = { .task_id = "t", .map_index = 99, .state = TI_FAILED,
                             .error = "bad \xff\xfe bytes \xc3" };
    assert_int_equal(store_ti_write(g_st, id, &bad, 1, &err), 0);
    char *e = sql1("SELECT error FROM dagrun.task_instance WHERE run_id = $1 AND map_index = 99",
                   id);
    assert_string_equal(e, "bad ?? bytes ?");
    free(e);
    assert_int_equal(store_run_set_state(g_st, id, RUN_FAILED, "bad \xff", &err), 0);
    json_decref(warn);
    json_decref(conf);
}

/* ---- recorder.c: the coordinator's records, written by threads of their own ---- */

/* n mapped records of task at map indexes from.. into the recorder; returns the batch size. */
static size_t add_items(struct recorder *rc, const char *task, long from, long n)
{
    size_t open = 0;
    for (long i = from; i < from + n; i++) {
        struct ti_record r = { .task_id = task, .map_index = i, .map_key = "k",
                               .state = TI_SUCCESS, .try_number = 1,
                               .start_ms = T0 * 1000 + i, .end_ms = T0 * 1000 + i + 1 };
        open = recorder_add(rc, &r);
    }
    return open;
}

static void add_unmapped(struct recorder *rc, const char *task, enum ti_state st)
{
    char err[] = "gone after add";
    struct ti_record r = { .task_id = task, .map_index = -1, .state = st, .try_number = 1,
                           .start_ms = T0 * 1000, .end_ms = st == TI_RUNNING ? 0 : T0 * 1000 + 5,
                           .error = st == TI_FAILED ? err : NULL };
    recorder_add(rc, &r);
    memset(err, 'x', sizeof err - 1);   /* the recorder copied the error */
}

/* Batches handed over back to back (so a second writer starts and they overlap): every record
 * is stored, and a task's running record, in an earlier batch than its end, never replaces
 * the end whichever writer commits first. */
static void test_recorder_writes_every_batch(void **state)
{
    (void)state;
    char id[256];
    make_run("recorder_dag", "manual", T0, NULL, id, sizeof id);
    struct recorder *rc = recorder_start(g_url, g_st, id);
    assert_non_null(rc);
    char tasks[20][8];      /* task ids are borrowed until recorder_close */
    for (int k = 0; k < 20; k++) {
        snprintf(tasks[k], sizeof tasks[k], "u%d", k);
        add_unmapped(rc, tasks[k], TI_RUNNING);
        assert_int_equal(add_items(rc, "lane", k * 2000L, 2000), k ? 2002 : 2001);
        recorder_flush(rc);
        add_unmapped(rc, tasks[k], k % 2 ? TI_SUCCESS : TI_FAILED);
    }
    add_unmapped(rc, "u0", TI_RUNNING);     /* replaces u0's end in the open batch */
    add_unmapped(rc, "u0", TI_SUCCESS);
    char msg[256] = "";
    assert_int_equal(recorder_close(rc, msg, sizeof msg), 0);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1"
                              " AND task_id = 'lane'", id), 40000);
    assert_int_equal(sql_long("SELECT count(DISTINCT map_index) FROM dagrun.task_instance"
                              " WHERE run_id = $1 AND task_id = 'lane' AND state = 'success'",
                              id), 40000);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1"
                              " AND map_index = -1 AND state = 'success'", id), 11);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1"
                              " AND map_index = -1 AND state = 'failed'"
                              " AND error = 'gone after add'", id), 9);
}

/* No connection of its own: the batches are written at once on the fallback store. */
static void test_recorder_falls_back_to_the_callers_connection(void **state)
{
    (void)state;
    char id[256];
    make_run("recorder_dag", "manual", T0, NULL, id, sizeof id);
    struct recorder *rc = recorder_start("postgresql:///none?host=/nonexistent", g_st, id);
    assert_non_null(rc);
    add_items(rc, "lane", 0, 100);
    recorder_flush(rc);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     100);
    add_items(rc, "lane", 100, 5);
    assert_int_equal(recorder_close(rc, NULL, 0), 0);
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     105);
}

/* Records the database refuses are counted, with the first error, never dropped silently. */
static void test_recorder_counts_refused_records(void **state)
{
    (void)state;
    free(sql1("ALTER TABLE dagrun.task_instance ADD CONSTRAINT no_ghost"
              " CHECK (task_id <> 'ghost') NOT VALID", NULL));
    char id[256];
    make_run("recorder_dag", "manual", T0, NULL, id, sizeof id);
    struct recorder *rc = recorder_start(g_url, g_st, id);
    add_items(rc, "lane", 0, 50);
    recorder_flush(rc);
    add_items(rc, "ghost", 0, 40);
    recorder_flush(rc);
    add_items(rc, "lane", 50, 50);
    char msg[256] = "";
    assert_int_equal(recorder_close(rc, msg, sizeof msg), 40);
    assert_non_null(strstr(msg, "no_ghost"));
    free(sql1("ALTER TABLE dagrun.task_instance DROP CONSTRAINT no_ghost", NULL));
    assert_int_equal(sql_long("SELECT count(*) FROM dagrun.task_instance WHERE run_id = $1", id),
                     100);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_store_initdb_idempotent_and_reports_line),
        cmocka_unit_test(test_store_run_create_scheduled_unique),
        cmocka_unit_test(test_store_run_state_stamps_times),
        cmocka_unit_test(test_store_heartbeat_and_cancel),
        cmocka_unit_test(test_store_fence_after_takeover),
        cmocka_unit_test(test_store_run_create_limited),
        cmocka_unit_test(test_store_warnings_and_counters_merge),
        cmocka_unit_test(test_store_ti_write_batch_and_upsert),
        cmocka_unit_test(test_store_ti_copy_matches_upsert),
        cmocka_unit_test(test_recorder_writes_every_batch),
        cmocka_unit_test(test_recorder_falls_back_to_the_callers_connection),
        cmocka_unit_test(test_recorder_counts_refused_records),
        cmocka_unit_test(test_store_ti_write_conn_rolls_back),
        cmocka_unit_test(test_store_prior_load_reconstructs),
        cmocka_unit_test(test_store_prior_load_pages),
        cmocka_unit_test(test_store_runs_list_and_status),
        cmocka_unit_test(test_store_pause_flags),
        cmocka_unit_test(test_store_stale_runs),
        cmocka_unit_test(test_store_connect_failure_is_one_line),
        cmocka_unit_test(test_store_hostile_strings_round_trip),
    };
    return cmocka_run_group_tests_name("store", t, group_setup, group_teardown);
}
