/* libFuzzer target: dag_load on the input as a DAG file, against the real task plugins. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dag.h"
#include "log.h"
#include "plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct plugins *plugins;     /* opened once: plugins stay loaded for the process */
static char path[256];              /* this process's temp DAG file, rewritten per input */

static void cleanup(void)
{
    if (path[0])
        unlink(path);
}

static void setup(void)
{
    if (plugins)
        return;
    log_setup(LOG_TEXT, DR_LOG_ERROR);
    const char *b = getenv("DR_BUILD");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tasks", b && *b ? b : "build");
    if (access(dir, R_OK) != 0)
        fprintf(stderr, "fuzz_dag: warning: no plugin dir %s (run make): every plugin is unknown\n",
                dir);
    plugins = plugins_open(dir);
    if (!plugins) {
        fprintf(stderr, "fuzz_dag: plugins_open(%s) failed\n", dir);
        abort();
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz_dag.%ld.yaml", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    atexit(cleanup);
}

static void die(const char *why, const char *detail)
{
    fprintf(stderr, "fuzz_dag: %s: %s\n", why, detail);
    abort();
}

/* Checks what a loaded DAG promises: ids, indexes, a topological order. */
static void check_dag(const struct dag *d)
{
    if (!d->dag_id || !d->dag_id[0])
        die("loaded DAG without an id", d->path ? d->path : "?");
    if (!d->tz)
        die("loaded DAG without a zone", d->dag_id);
    if (d->schedule && !d->cron)
        die("schedule without a parsed cron", d->schedule);
    char *seen = calloc(d->n_tasks ? d->n_tasks : 1, 1);
    if (!seen)
        return;
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct task *t = &d->tasks[i];
        if (!t->id || !t->plugin || dag_task_index(d, t->id) != (int)i)
            die("task id does not index back to its task", t->id ? t->id : "?");
        if (t->map_idx < -1 || t->map_idx >= (int)d->n_tasks || (t->map_idx >= 0) != (t->map != NULL))
            die("bad map index", t->id);
        for (size_t k = 0; k < t->n_after; k++)
            if (t->after_idx[k] < 0 || t->after_idx[k] >= (int)d->n_tasks)
                die("bad after index", t->id);
    }
    /* topo is a permutation in which every upstream (after, map) comes first. */
    for (size_t k = 0; k < d->n_tasks; k++) {
        int i = d->topo[k];
        if (i < 0 || i >= (int)d->n_tasks || seen[i])
            die("topo is not a permutation", d->dag_id);
        const struct task *t = &d->tasks[i];
        for (size_t a = 0; a < t->n_after; a++)
            if (!seen[t->after_idx[a]])
                die("topo puts a task before its upstream", t->id);
        if (t->map_idx >= 0 && !seen[t->map_idx])
            die("topo puts a task before the task it maps over", t->id);
        seen[i] = 1;
    }
    free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    FILE *f = fopen(path, "wb");
    if (!f)
        die("cannot write the temp DAG", path);
    if (size && fwrite(data, 1, size, f) != size)
        die("short write", path);
    if (fclose(f) != 0)
        die("cannot close the temp DAG", path);

    struct dr_err err;
    err_clear(&err);
    struct dag *d = dag_load(path, plugins, &err);
    if (!d) {
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "fuzz_dag: %s\n", err.msg);
        if (!err.msg[0])
            die("refused without a message", path);
        if (strncmp(err.msg, path, strlen(path)) != 0)
            die("error does not start with the file name", err.msg);
        return 0;
    }
    check_dag(d);
    /* The resolved params of every task, without config or conf. */
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct dr_err e;
        err_clear(&e);
        json_t *p = dag_resolve_params(d, i, NULL, NULL, &e);
        json_decref(p);
    }
    /* The schedule in the DAG's own zone (any zone name the loader took). */
    int64_t next;
    if (d->cron && cron_next(d->cron, d->tz, 1767618000, &next) == 0 && next <= 1767618000)
        die("cron_next is not after the start", d->schedule);
    dag_free(d);
    return 0;
}
