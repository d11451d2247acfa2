/* runtime-private: plugins never include this */
/* Task plugins: loading .so files from plugin_dir and checking their ABI. */
#ifndef DR_PLUGIN_H
#define DR_PLUGIN_H

#include <stdbool.h>
#include <dagrun/task.h>
#include "err.h"

struct plugin {
    char *name;
    char *path;
    void *handle;               /* dlopen handle */
    const dr_task_def *def;
};

/* All plugins of one plugin_dir. Loads on demand; use from one thread (the
 * coordinator) only. The plugins stay loaded until plugins_free. */
struct plugins;

/* True when s matches [a-z][a-z0-9_]*: the rule for plugin, DAG, task, pool
 * and param names (so a name never holds '/' or ".."). NULL or "" is false.
 * Pure; any thread. */
bool plugin_valid_name(const char *s);

struct plugins *plugins_open(const char *dir);
void plugins_free(struct plugins *ps);

/* Returns the plugin `name` from dir/<name>.so, loading it on first use.
 * Refuses, before running any plugin code but the entry function: names not
 * matching [a-z][a-z0-9_]* (so no '/' or ".."), a missing file, a missing
 * dr_task_entry, an abi_version outside DR_ABI_VERSION_MIN..DR_ABI_VERSION
 * ("build/tasks/x.so: plugin ABI 3, dagrun speaks ABI 2: rebuild it against
 * this dagrun"), a size below DR_TASK_DEF_V1_SIZE, a name that differs from
 * the file's, no run callback, a source_param (read only when the size covers
 * it) that is not a declared string param, and an unsound param table (bad or duplicate names, defaults that
 * do not parse as their type). NULL with err. */
const struct plugin *plugins_get(struct plugins *ps, const char *name, struct dr_err *err);

/* Loads every *.so in dir, in name order. Returns the number loaded; errors
 * for the ones refused are reported through cb (may be NULL). */
size_t plugins_load_all(struct plugins *ps, void (*cb)(void *ud, const struct dr_err *e), void *ud);
size_t plugins_count(const struct plugins *ps);
const struct plugin *plugins_at(const struct plugins *ps, size_t i);

#endif
