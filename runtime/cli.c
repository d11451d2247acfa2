/* Shared pieces of the commands: finding DAGs, opening the store, --conf, --help. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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

struct dag *cli_find_dag(struct cli *c, const char *id_or_path, struct dr_err *err)
{
    struct plugins *ps = cli_plugins(c);
    if (looks_like_path(id_or_path))
        return dag_load(id_or_path, ps, err);

    char **files = dag_list_files(c->cfg->dags_dir, err);
    if (!files)
        return NULL;
    /* A broken file may be the one asked for: remember the first error. */
    struct dr_err first;
    err_clear(&first);
    bool broken = false;
    struct dag *found = NULL;
    for (char **f = files; *f && !found; f++) {
        struct dr_err e;
        err_clear(&e);
        struct dag *d = dag_load(*f, ps, &e);
        if (!d) {
            if (!broken)
                first = e;
            broken = true;
            continue;
        }
        if (strcmp(d->dag_id, id_or_path) == 0)
            found = d;
        else
            dag_free(d);
    }
    dag_free_list(files);
    if (found)
        return found;
    if (broken) {
        *err = first;
        err_hint(err, "no valid DAG \"%s\" in %s; the file above does not load", id_or_path,
                 c->cfg->dags_dir);
        return NULL;
    }
    err_set(err, "no DAG \"%s\" in %s", id_or_path, c->cfg->dags_dir);
    err_hint(err, "dagrun list shows the DAGs");
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
