/* Benchmark of the executor's own overhead: a list task, then a mapped lane of no-op tasks,
 * in-process, with no database (make bench builds it as build/benchtools/bench_engine and
 * reports its figure beside the engine row).
 *   build/benchtools/bench_engine [items] [lane_length] [workers]
 * Prints the wall time per item; speed is reported here, never asserted in tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"
#include "log.h"

static const dr_param no_params[] = { { NULL } };

static dr_status list_run(dr_ctx *ctx, void *st)
{
    (void)st;
    long long n = dr_param_int(ctx, "n");
    json_t *a = json_array();
    for (long long i = 0; i < n; i++)
        json_array_append_new(a, json_integer(i));
    return dr_emit_json_new(ctx, a) ? DR_FAIL : DR_OK;
}

static dr_status pass_run(dr_ctx *ctx, void *st)
{
    (void)st;
    (void)ctx;
    return DR_OK;
}

static const dr_task_def list_def = { .abi_version = DR_ABI_VERSION, .size = sizeof list_def,
                                      .name = "list", .summary = "list", .params = no_params,
                                      .run = list_run };
static const dr_task_def pass_def = { .abi_version = DR_ABI_VERSION, .size = sizeof pass_def,
                                      .name = "pass", .summary = "pass", .params = no_params,
                                      .run = pass_run };

static long arg(int argc, char **argv, int i, long def)
{
    if (argc <= i)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v < 1 || v > 10000000) {
        fprintf(stderr, "bench_engine: bad argument \"%s\"\n", argv[i]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long items = arg(argc, argv, 1, 100000), lane = arg(argc, argv, 2, 2);
    long workers = arg(argc, argv, 3, 2);
    log_setup(LOG_TEXT, DR_LOG_ERROR);
    size_t n = (size_t)lane + 1;
    struct task *tasks = calloc(n, sizeof *tasks);
    struct plugin *plugins = calloc(n, sizeof *plugins);
    json_t **params = calloc(n, sizeof *params);
    int *topo = calloc(n, sizeof *topo);
    int *after = calloc(n, sizeof *after);
    char (*ids)[24] = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "t%zu", i);
        tasks[i].id = ids[i];
        plugins[i].def = i == 0 ? &list_def : &pass_def;
        tasks[i].plugin = &plugins[i];
        tasks[i].map_idx = i == 0 ? -1 : 0;
        if (i > 1) {
            after[i] = (int)i - 1;
            tasks[i].after_idx = &after[i];
            tasks[i].n_after = 1;
        }
        params[i] = i == 0 ? json_pack("{s:I}", "n", (json_int_t)items) : json_object();
        topo[i] = (int)i;
    }
    struct dag d = { .dag_id = "bench", .tasks = tasks, .n_tasks = n, .topo = topo };
    struct run_spec spec = { .dag = &d, .params = params, .run_id = "bench", .run_type = "test",
                             .workers = (int)workers, .seed = 1 };
    struct run_result res;
    struct dr_err err;
    err_clear(&err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (executor_run(&spec, &res, &err) < 0) {
        err_print(&err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld items x %ld lane tasks on %ld workers: %.3f s, %.2f us/item, state %s\n", items,
           lane, workers, secs, secs * 1e6 / (double)items, run_state_name(res.state));
    run_result_free(&res);
    for (size_t i = 0; i < n; i++)
        json_decref(params[i]);
    free(tasks);
    free(plugins);
    free(params);
    free(topo);
    free(after);
    free(ids);
    return 0;
}
