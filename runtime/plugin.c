/* Task plugins: the loader and registry of .so files, with their ABI checks. Param values
 * are in params.c. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "params.h"

/* Plugins sorted by name. Coordinator thread only: no lock. Entries are
 * pointers so that a plugin handed out stays put while the array grows. */
struct plugins {
    char *dir;
    struct plugin **items;
    size_t n, cap;
};

bool plugin_valid_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

struct plugins *plugins_open(const char *dir)
{
    struct plugins *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->dir = strdup(dir ? dir : ".");
    if (!ps->dir) {
        free(ps);
        return NULL;
    }
    return ps;
}

static void plugin_free(struct plugin *p)
{
    if (!p)
        return;
    if (p->handle)
        dlclose(p->handle);
    free(p->name);
    free(p->path);
    free(p);
}

void plugins_free(struct plugins *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++)
        plugin_free(ps->items[i]);
    free(ps->items);
    free(ps->dir);
    free(ps);
}

/* Index where name is or would be inserted; *found tells which. */
static size_t find_slot(const struct plugins *ps, const char *name, bool *found)
{
    size_t lo = 0, hi = ps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ps->items[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* The ABI and table checks, on a descriptor whose library is already open. */
static int check_def(const char *path, const char *name, const dr_task_def *def, struct dr_err *err)
{
    /* Every ABI from DR_ABI_VERSION_MIN up loads: later ABIs only added calls and fields at
     * the descriptor's end, and a field is read only when def->size covers it. */
    if (def->abi_version < DR_ABI_VERSION_MIN || def->abi_version > DR_ABI_VERSION)
        return err_set(err, "%s: plugin ABI %u, dagrun speaks ABI %d: rebuild it against this dagrun",
                       path, (unsigned)def->abi_version, DR_ABI_VERSION);
    if (def->size < DR_TASK_DEF_V1_SIZE)
        return err_set(err, "%s: plugin descriptor is %u bytes, dagrun expects at least %zu: "
                       "rebuild it against this dagrun", path, (unsigned)def->size,
                       (size_t)DR_TASK_DEF_V1_SIZE);
    if (!def->name || strcmp(def->name, name) != 0)
        return err_set(err, "%s: plugin calls itself \"%s\" but the file is %s.so: the names must match",
                       path, def->name ? def->name : "(null)", name);
    if (!def->run)
        return err_set(err, "%s: plugin has no run callback", path);
    const char *source_param = DR_TASK_DEF_HAS(def, source_param) ? def->source_param : NULL;
    if (source_param) {
        const dr_param *sp = NULL;
        for (size_t i = 0; def->params && def->params[i].name && i < 256 && !sp; i++)
            if (strcmp(def->params[i].name, source_param) == 0)
                sp = &def->params[i];
        if (!sp || sp->type != DR_T_STRING)
            return err_set(err, "%s: source_param \"%s\" is not a declared string param", path,
                           source_param);
    }
    if (!def->params)
        return 0;
    /* O(n^2) over the table: tables hold a handful of params. */
    for (size_t i = 0; def->params[i].name; i++) {
        const dr_param *p = &def->params[i];
        if (i >= 256)
            return err_set(err, "%s: param table has more than 256 entries (missing { NULL } end?)", path);
        if (!plugin_valid_name(p->name))
            return err_set(err, "%s: bad param name \"%s\": must match [a-z][a-z0-9_]*", path, p->name);
        if ((unsigned)p->type > DR_T_LIST)
            return err_set(err, "%s: param \"%s\": unknown type %d", path, p->name, (int)p->type);
        for (size_t j = 0; j < i; j++)
            if (strcmp(def->params[j].name, p->name) == 0)
                return err_set(err, "%s: param \"%s\" declared twice", path, p->name);
        if (p->def) {
            struct dr_err e;
            err_clear(&e);
            json_t *v = params_from_text(p->type, p->def, &e);
            if (!v)
                return err_set(err, "%s: param \"%s\": default does not parse as %s: %s", path, p->name,
                               params_type_name(p->type), e.msg);
            json_decref(v);
        }
    }
    return 0;
}

static struct plugin *load_one(const struct plugins *ps, const char *name, struct dr_err *err)
{
    if (!plugin_valid_name(name)) {
        err_set(err, "bad plugin name \"%s\": must match [a-z][a-z0-9_]*", name ? name : "");
        return NULL;
    }
    size_t len = strlen(ps->dir) + strlen(name) + 5;
    char *path = malloc(len);
    if (!path) {
        err_set(err, "out of memory");
        return NULL;
    }
    snprintf(path, len, "%s/%s.so", ps->dir, name);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        err_set(err, "unknown plugin \"%s\": no %s", name, path);
        err_hint(err, "plugins are built into plugin_dir (%s) by make", ps->dir);
        free(path);
        return NULL;
    }
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *de = dlerror();
        err_set(err, "%s: cannot load plugin: %s", path, de ? de : "unknown dlopen error");
        free(path);
        return NULL;
    }
    dlerror();
    void *sym = dlsym(h, DR_TASK_ENTRY_SYMBOL);
    if (!sym) {
        err_set(err, "%s: no %s symbol: not a dagrun plugin (dagrun speaks ABI %d)", path,
                DR_TASK_ENTRY_SYMBOL, DR_ABI_VERSION);
        goto fail;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
    dr_task_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const dr_task_def *def = entry();
    if (!def) {
        err_set(err, "%s: %s returned NULL", path, DR_TASK_ENTRY_SYMBOL);
        goto fail;
    }
    if (check_def(path, name, def, err) < 0)
        goto fail;
    struct plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        err_set(err, "out of memory");
        goto fail;
    }
    p->path = path;
    p->handle = h;
    p->def = def;
    return p;
fail:
    dlclose(h);
    free(path);
    return NULL;
}

const struct plugin *plugins_get(struct plugins *ps, const char *name, struct dr_err *err)
{
    bool found;
    size_t at = name ? find_slot(ps, name, &found) : (found = false, 0);
    if (found)
        return ps->items[at];
    struct plugin *p = load_one(ps, name, err);
    if (!p)
        return NULL;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        struct plugin **items = realloc(ps->items, cap * sizeof *items);
        if (!items) {
            plugin_free(p);
            err_set(err, "out of memory");
            return NULL;
        }
        ps->items = items;
        ps->cap = cap;
    }
    memmove(ps->items + at + 1, ps->items + at, (ps->n - at) * sizeof *ps->items);
    ps->items[at] = p;
    ps->n++;
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t plugins_load_all(struct plugins *ps, void (*cb)(void *ud, const struct dr_err *e), void *ud)
{
    struct dr_err e;
    DIR *d = opendir(ps->dir);
    if (!d) {
        char buf[256];
        err_set(&e, "%s: cannot open plugin_dir: %s", ps->dir,
                strerror_r(errno, buf, sizeof buf) == 0 ? buf : "error");
        if (cb)
            cb(ud, &e);
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0 || de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        names[n] = strndup(de->d_name, len - 3);
        if (names[n])
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    size_t loaded = 0;
    for (size_t i = 0; i < n; i++) {
        err_clear(&e);
        if (plugins_get(ps, names[i], &e))
            loaded++;
        else if (cb)
            cb(ud, &e);
        free(names[i]);
    }
    free(names);
    return loaded;
}

size_t plugins_count(const struct plugins *ps)
{
    return ps->n;
}

const struct plugin *plugins_at(const struct plugins *ps, size_t i)
{
    return i < ps->n ? ps->items[i] : NULL;
}
