/* Shared pieces of the commands: finding DAGs, opening the store, --conf, --help. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

bool cli_beside_binary(const char *dir, const char *name, char *buf, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= sizeof exe - 1)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    int w = snprintf(buf, len, "%s/%s%s%s", exe, dir, *name ? "/" : "", name);
    struct stat st;
    return w > 0 && (size_t)w < len && stat(buf, &st) == 0;
}

struct plugins *cli_plugins(struct cli *c)
{
    if (!c->plugins)
        c->plugins = plugins_open(c->cfg->plugin_dir);
    return c->plugins;
}

static bool looks_like_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && strcmp(s + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

/* Whether dags_dir lists the file whose resolved path is self: 1 or 0, or -1 with err. */
static int in_dags_dir(struct cli *c, const char *self, struct dr_err *err)
{
    char **files = dag_list_files(c->cfg->dags_dir, err);
    if (!files)
        return -1;
    int listed = 0;
    for (char **f = files; *f && !listed; f++) {
        char *real = realpath(*f, NULL);
        listed = real && strcmp(real, self) == 0;
        free(real);
    }
    dag_free_list(files);
    return listed;
}

/* Loads every DAG file in dags_dir looking for dag_id id. self: the resolved path of a file
 * in dags_dir that the caller loaded itself (not loaded again), or NULL. *found gets the DAG
 * when a file other than self defines id. A second file defining id is an error naming both.
 * 0, or -1 with err (*found NULL). */
static int scan_dags_dir(struct cli *c, const char *id, const char *self, struct dag **found,
                         struct dr_err *err)
{
    struct plugins *ps = cli_plugins(c);
    *found = NULL;
    char **files = dag_list_files(c->cfg->dags_dir, err);
    if (!files)
        return -1;
    /* A broken file may be the one asked for: remember the first error. */
    struct dr_err first;
    err_clear(&first);
    bool broken = false;
    char *found_path = NULL;
    int rc = -1;
    for (char **f = files; *f; f++) {
        if (self) {
            char *real = realpath(*f, NULL);
            bool same = real && strcmp(real, self) == 0;
            free(real);
            if (same)
                continue;
        }
        struct dr_err e;
        err_clear(&e);
        struct dag *d = dag_load(*f, ps, &e);
        if (!d) {
            if (!broken)
                first = e;
            broken = true;
            continue;
        }
        if (strcmp(d->dag_id, id) != 0) {
            dag_free(d);
            continue;
        }
        if (*found || self) {
            err_set(err, "dag_id \"%s\" is defined in two files: %s and %s", id,
                    *found ? found_path : self, *f);
            err_hint(err, "a dag_id names one DAG: rename or remove one of them");
            dag_free(d);
            goto out;
        }
        *found = d;
        if (!(found_path = strdup(*f))) {
            err_set(err, "out of memory");
            goto out;
        }
    }
    if (!*found && !self) {
        if (broken) {
            *err = first;
            err_hint(err, "no valid DAG \"%s\" in %s; the file above does not load", id,
                     c->cfg->dags_dir);
        } else {
            err_set(err, "no DAG \"%s\" in %s", id, c->cfg->dags_dir);
            err_hint(err, "dagrun list shows the DAGs");
        }
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        dag_free(*found);
        *found = NULL;
    }
    free(found_path);
    dag_free_list(files);
    return rc;
}

struct dag *cli_find_dag(struct cli *c, const char *id_or_path, bool for_run,
                         struct dr_err *err)
{
    struct dag *found = NULL;
    if (!looks_like_path(id_or_path))
        return scan_dags_dir(c, id_or_path, NULL, &found, err) < 0 ? NULL : found;

    struct dag *d = dag_load(id_or_path, cli_plugins(c), err);
    if (!d)
        return NULL;
    char *self = realpath(id_or_path, NULL);
    if (!self) {
        err_set(err, "%s: %s", id_or_path, strerror(errno));
        goto fail;
    }
    int listed = in_dags_dir(c, self, err);
    if (listed < 0)
        goto fail;
    if (!listed && for_run) {
        /* resume and the scheduler find a run's DAG by its dag_id in dags_dir */
        err_set(err, "%s is not in dags_dir (%s): a run of it could not be resumed", id_or_path,
                c->cfg->dags_dir);
        err_hint(err, "copy the file into %s, or set dags_dir in config.json to its folder; "
                      "dagrun validate and show read any file",
                 c->cfg->dags_dir);
        goto fail;
    }
    /* A file in dags_dir is one of the DAGs resume and the scheduler see: its dag_id must
     * be its own there. */
    if (listed && scan_dags_dir(c, d->dag_id, self, &found, err) < 0)
        goto fail;
    free(self);
    return d;
fail:
    free(self);
    dag_free(d);
    return NULL;
}

struct store *cli_open_store(struct cli *c, struct dr_err *err)
{
    return launch_open_store(c->cfg, err);
}

json_t *cli_parse_conf(const char *text, const char *file, struct dr_err *err)
{
    json_error_t je;
    json_t *v = file ? json_load_file(file, JSON_REJECT_DUPLICATES, &je)
                     : json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        err_set(err, "%s:%d:%d: %s", file ? file : "--conf", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        err_set(err, "%s: must be a JSON object", file ? file : "--conf");
        return NULL;
    }
    return v;
}

bool cli_wants_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return true;
        }
    return false;
}

int cli_run_id(struct store *st, const char *text, char *run_id, size_t len)
{
    struct dr_err err;
    err_clear(&err);
    int rc = store_run_find(st, text, run_id, len, &err);
    if (rc == 0)
        return EXIT_OK;
    err_print(&err);
    return rc > 0 ? EXIT_BAD_INPUT : EXIT_FAILED;
}

struct store *cli_open_store_or_report(struct cli *c, struct dr_err *err)
{
    err_clear(err);
    struct store *st = cli_open_store(c, err);
    if (!st)
        err_print(err);
    else
        err_clear(err);
    return st;
}

void cli_on_stop_signals(void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
