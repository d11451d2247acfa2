/* The DAG model: loading a DAG file (over yamltree.c) with its checks, linking the tasks, and
 * their topological order. Param values and their resolution are in params.c, finding DAG
 * files in dag_files.c. */
#include "dag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "duration.h"
#include "hook.h"
#include "params.h"
#include "readfile.h"
#include "yamltree.h"

#define DAG_MAX_BYTES (1 << 20)     /* a DAG file is a page of YAML; more is hostile */
#define DAG_MAX_TASKS 4096          /* keeps the O(n^2) checks below cheap */

/* Per-task source positions kept while loading. */
struct tinfo {
    const struct ynode *key, *plugin, *after, *map;
};

struct ld {
    const char *path;
    struct dr_err *err;
    struct plugins *ps;
    struct dag *d;
    struct tinfo *ti;
};

static int vat(struct ld *ld, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int vat(struct ld *ld, int line, int col, const char *fmt, va_list ap)
{
    return yamltree_verror(ld->err, ld->path, line, col, fmt, ap);
}

static int at(struct ld *ld, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int at(struct ld *ld, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vat(ld, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

static int at_node(struct ld *ld, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int at_node(struct ld *ld, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vat(ld, n->line, n->col, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- Small typed readers for scalars. */

/* "ctx: " when ctx is set, "" otherwise. */
static const char *pre(const char *ctx, char *buf, size_t len)
{
    if (!ctx || !*ctx)
        return "";
    snprintf(buf, len, "%s: ", ctx);
    return buf;
}

static int get_text(struct ld *ld, const struct ynode *v, const char *what, const char **out)
{
    if (v->kind != Y_SCALAR || yamltree_is_null(v))
        return at_node(ld, v, "%s: expected a string, got %s", what, yamltree_kind_name(v));
    *out = v->text;
    return 0;
}

static int get_int(struct ld *ld, const struct ynode *v, const char *what, int lo, int hi, int *out)
{
    struct dr_err e;
    err_clear(&e);
    json_t *j = v->kind == Y_SCALAR && !yamltree_is_null(v) ? params_from_text(DR_T_INT, v->text, &e) : NULL;
    if (!j)
        return at_node(ld, v, "%s: expected an integer, got %s", what,
                       v->kind == Y_SCALAR && !yamltree_is_null(v) ? v->text : yamltree_kind_name(v));
    json_int_t x = json_integer_value(j);
    json_decref(j);
    if (x < lo || x > hi)
        return at_node(ld, v, "%s: %lld out of range %d-%d", what, (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_bool(struct ld *ld, const struct ynode *v, const char *what, bool *out)
{
    struct dr_err e;
    err_clear(&e);
    json_t *j = v->kind == Y_SCALAR && v->plain ? params_from_text(DR_T_BOOL, v->text, &e) : NULL;
    if (!j)
        return at_node(ld, v, "%s: expected true or false", what);
    *out = json_is_true(j);
    json_decref(j);
    return 0;
}

static int get_duration(struct ld *ld, const struct ynode *v, const char *ctx, int64_t *ms)
{
    char pb[256];
    if (v->kind != Y_SCALAR || yamltree_is_null(v))
        return at_node(ld, v, "%sexpected a duration like 2s, got %s", pre(ctx, pb, sizeof pb), yamltree_kind_name(v));
    struct dr_err e;
    err_clear(&e);
    if (duration_parse(v->text, ms, &e) < 0)
        return at_node(ld, v, "%s%s", pre(ctx, pb, sizeof pb), e.msg);
    return 0;
}

static const char *const trigger_names[] = { "all_success", "all_done", "none_failed", "one_failed",
                                             "one_success" };

static int get_trigger(struct ld *ld, const struct ynode *v, const char *ctx, enum trigger_rule *tr)
{
    char pb[256];
    if (v->kind == Y_SCALAR)
        for (size_t i = 0; i < sizeof trigger_names / sizeof *trigger_names; i++)
            if (strcmp(v->text, trigger_names[i]) == 0) {
                *tr = (enum trigger_rule)i;
                return 0;
            }
    return at_node(ld, v, "%sbad trigger rule \"%s\" (takes: all_success, all_done, none_failed, "
                   "one_failed, one_success)", pre(ctx, pb, sizeof pb),
                   v->kind == Y_SCALAR ? v->text : yamltree_kind_name(v));
}

struct cmp_key {
    const struct ynode *k;
    size_t i;
};

static int cmp_keys(const void *a, const void *b)
{
    const struct cmp_key *x = a, *y = b;
    int c = strcmp(x->k->text, y->k->text);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* Reports the first key (in file order) that repeats an earlier one. O(n log n). */
static int check_dups(struct ld *ld, const struct ynode *m, const char *ctx, const char *what)
{
    size_t n = m->n / 2;
    if (n < 2)
        return 0;
    struct cmp_key *ks = malloc(n * sizeof *ks);
    if (!ks)
        return err_set(ld->err, "%s: out of memory", ld->path);
    for (size_t i = 0; i < n; i++)
        ks[i] = (struct cmp_key){ m->kids[2 * i], i };
    qsort(ks, n, sizeof *ks, cmp_keys);
    size_t worst = n;
    for (size_t i = 1; i < n; i++)
        if (strcmp(ks[i].k->text, ks[i - 1].k->text) == 0 && ks[i].i < worst)
            worst = ks[i].i;
    free(ks);
    if (worst == n)
        return 0;
    char pb[256];
    const struct ynode *k = m->kids[2 * worst];
    return at_node(ld, k, "%sduplicate %s \"%s\"", pre(ctx, pb, sizeof pb), what, k->text);
}

/* ---- The DAG. */

struct task_defaults {
    struct retry_policy retry;
    enum trigger_rule trigger;
    const char *pool;
};

/* Reads one retry/timeout/trigger/pool key. Returns 1 when handled, 0 when k is
 * not one of them, -1 on error. */
static int retry_key(struct ld *ld, const struct ynode *k, const struct ynode *v, const char *ctx,
                     struct retry_policy *r, enum trigger_rule *tr, const char **pool)
{
    char what[300];
    snprintf(what, sizeof what, "%s%s%s", ctx ? ctx : "", ctx && *ctx ? ": " : "", k->text);
    if (strcmp(k->text, "retries") == 0)
        return get_int(ld, v, what, 0, 100, &r->retries) < 0 ? -1 : 1;
    if (strcmp(k->text, "retry_delay") == 0)
        return get_duration(ld, v, ctx, &r->retry_delay_ms) < 0 ? -1 : 1;
    if (strcmp(k->text, "max_retry_delay") == 0)
        return get_duration(ld, v, ctx, &r->max_retry_delay_ms) < 0 ? -1 : 1;
    if (strcmp(k->text, "execution_timeout") == 0)
        return get_duration(ld, v, ctx, &r->timeout_ms) < 0 ? -1 : 1;
    if (strcmp(k->text, "retry_exponential_backoff") == 0)
        return get_bool(ld, v, what, &r->exponential) < 0 ? -1 : 1;
    if (strcmp(k->text, "trigger_rule") == 0)
        return get_trigger(ld, v, ctx, tr) < 0 ? -1 : 1;
    if (strcmp(k->text, "pool") == 0) {
        if (yamltree_is_null(v)) {
            *pool = NULL;
            return 1;
        }
        if (get_text(ld, v, what, pool) < 0)
            return -1;
        if (!plugin_valid_name(*pool))
            return at_node(ld, v, "%s: bad pool name \"%s\": must match [a-z][a-z0-9_]*", what, *pool);
        return 1;
    }
    return 0;
}

static int load_default_args(struct ld *ld, const struct ynode *m, struct task_defaults *td)
{
    if (m->kind != Y_MAP)
        return yamltree_is_null(m) ? 0 : at_node(ld, m, "default_args: expected a mapping, got %s", yamltree_kind_name(m));
    if (check_dups(ld, m, "default_args", "key") < 0)
        return -1;
    for (size_t i = 0; i < m->n; i += 2) {
        int rc = retry_key(ld, m->kids[i], m->kids[i + 1], "default_args", &td->retry, &td->trigger,
                           &td->pool);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return at_node(ld, m->kids[i], "default_args: unknown key \"%s\"", m->kids[i]->text);
    }
    return 0;
}

static int task_params(struct ld *ld, struct task *t, const struct ynode *m)
{
    char ctx[300];
    if (yamltree_is_null(m))
        return 0;
    if (m->kind != Y_MAP)
        return at_node(ld, m, "task \"%s\": params: expected a mapping, got %s", t->id, yamltree_kind_name(m));
    snprintf(ctx, sizeof ctx, "task \"%s\"", t->id);
    if (check_dups(ld, m, ctx, "param") < 0)
        return -1;
    for (size_t i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i], *v = m->kids[i + 1];
        const dr_param *p = params_find(t->plugin, k->text);
        if (!p) {
            char names[1024];
            params_names(t->plugin, names, sizeof names);
            return at_node(ld, k, "task \"%s\": unknown param \"%s\" (takes: %s)", t->id, k->text,
                           names[0] ? names : "nothing");
        }
        snprintf(ctx, sizeof ctx, "task \"%s\": param \"%s\"", t->id, k->text);
        json_t *j = params_from_yaml(v, p->type, ctx, ld->path, ld->err);
        if (!j)
            return -1;
        struct dr_err e;
        err_clear(&e);
        if (params_check_rule(t->plugin, k->text, j, &e) < 0) {
            json_decref(j);
            return at_node(ld, v, "%s: %s", ctx, e.msg);
        }
        json_object_set_new(t->params, k->text, j);
    }
    return 0;
}

static int load_task(struct ld *ld, size_t idx, const struct ynode *key, const struct ynode *val,
                     const struct task_defaults *td)
{
    struct task *t = &ld->d->tasks[idx];
    struct tinfo *ti = &ld->ti[idx];
    const struct ynode *params = NULL;
    const char *pool = td->pool;
    char ctx[300];
    const char *s = NULL;

    t->map_idx = -1;
    t->retry = td->retry;
    t->trigger = td->trigger;
    t->line = key->line;
    t->col = key->col;
    ti->key = key;
    if (!(t->id = strdup(key->text)) || !(t->params = json_object()))
        return err_set(ld->err, "%s: out of memory", ld->path);
    if (!plugin_valid_name(t->id))
        return at_node(ld, key, "bad task id \"%s\": must match [a-z][a-z0-9_]*", t->id);
    snprintf(ctx, sizeof ctx, "task \"%s\"", t->id);
    if (val->kind != Y_MAP)
        return at_node(ld, yamltree_is_null(val) ? key : val, "%s: expected a mapping like { plugin: name }, got %s",
                       ctx, yamltree_kind_name(val));
    if (check_dups(ld, val, ctx, "key") < 0)
        return -1;
    for (size_t i = 0; i < val->n; i += 2) {
        const struct ynode *k = val->kids[i], *v = val->kids[i + 1];
        int rc = retry_key(ld, k, v, ctx, &t->retry, &t->trigger, &pool);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        if (strcmp(k->text, "plugin") == 0) {
            if (get_text(ld, v, "plugin", &s) < 0)
                return -1;
            ti->plugin = v;
        } else if (strcmp(k->text, "after") == 0) {
            if (yamltree_is_null(v))
                continue;
            if (v->kind == Y_MAP)
                return at_node(ld, v, "%s: after: expected a task id or a list of them", ctx);
            ti->after = v;
        } else if (strcmp(k->text, "map") == 0) {
            if (get_text(ld, v, "map", &s) < 0)
                return -1;
            ti->map = v;
        } else if (strcmp(k->text, "params") == 0) {
            params = v;
        } else {
            return at_node(ld, k, "%s: unknown key \"%s\"", ctx, k->text);
        }
    }
    if (!ti->plugin)
        return at_node(ld, key, "%s: missing plugin", ctx);
    if (pool && !(t->pool = strdup(pool)))
        return err_set(ld->err, "%s: out of memory", ld->path);
    if (!(t->plugin_name = strdup(ti->plugin->text)))
        return err_set(ld->err, "%s: out of memory", ld->path);
    struct dr_err e;
    err_clear(&e);
    t->plugin = plugins_get(ld->ps, t->plugin_name, &e);
    if (!t->plugin) {
        at_node(ld, ti->plugin, "%s", e.msg);
        if (ld->err)
            memcpy(ld->err->hint, e.hint, sizeof e.hint);
        return -1;
    }
    if (ti->after) {
        size_t n = ti->after->kind == Y_SEQ ? ti->after->n : 1;
        t->after = calloc(n ? n : 1, sizeof *t->after);
        t->after_idx = calloc(n ? n : 1, sizeof *t->after_idx);
        if (!t->after || !t->after_idx)
            return err_set(ld->err, "%s: out of memory", ld->path);
        for (size_t i = 0; i < n; i++) {
            const struct ynode *a = ti->after->kind == Y_SEQ ? ti->after->kids[i] : ti->after;
            if (get_text(ld, a, "after", &s) < 0)
                return -1;
            if (!(t->after[t->n_after++] = strdup(s)))
                return err_set(ld->err, "%s: out of memory", ld->path);
        }
    }
    if (ti->map && !(t->map = strdup(ti->map->text)))
        return err_set(ld->err, "%s: out of memory", ld->path);
    return params ? task_params(ld, t, params) : 0;
}

static const struct ynode *after_node(const struct tinfo *ti, size_t i)
{
    return ti->after->kind == Y_SEQ ? ti->after->kids[i] : ti->after;
}

static int link_tasks(struct ld *ld)
{
    struct dag *d = ld->d;
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct task *t = &d->tasks[i];
        for (size_t j = 0; j < t->n_after; j++) {
            int x = dag_task_index(d, t->after[j]);
            if (x < 0)
                return at_node(ld, after_node(&ld->ti[i], j), "task \"%s\": after names unknown task \"%s\"",
                               t->id, t->after[j]);
            for (size_t k = 0; k < j; k++)
                if (t->after_idx[k] == x)
                    return at_node(ld, after_node(&ld->ti[i], j), "task \"%s\": \"%s\" listed twice in after",
                                   t->id, t->after[j]);
            t->after_idx[j] = x;
        }
        if (t->map) {
            int x = dag_task_index(d, t->map);
            if (x < 0)
                return at_node(ld, ld->ti[i].map, "task \"%s\": map names unknown task \"%s\"", t->id, t->map);
            if ((size_t)x == i)
                return at_node(ld, ld->ti[i].map, "task \"%s\": map names the task itself", t->id);
            t->map_idx = x;
        }
    }
    return 0;
}

/* Whether every upstream of task i (after and map) is marked in done. */
static bool deps_done(const struct task *t, const bool *done)
{
    for (size_t j = 0; j < t->n_after; j++)
        if (!done[t->after_idx[j]])
            return false;
    return t->map_idx < 0 || done[t->map_idx];
}

/* Topological order, lowest file index first among ready tasks. O(n^2 * deps),
 * n <= DAG_MAX_TASKS. On a cycle, names it. */
static int build_topo(struct ld *ld)
{
    struct dag *d = ld->d;
    size_t n = d->n_tasks, k = 0;
    bool *done = calloc(n ? n : 1, sizeof *done);
    int *seq = calloc(n + 1, sizeof *seq), *pos = malloc((n ? n : 1) * sizeof *pos);
    d->topo = calloc(n ? n : 1, sizeof *d->topo);
    if (!done || !seq || !pos || !d->topo) {
        free(done);
        free(seq);
        free(pos);
        return err_set(ld->err, "%s: out of memory", ld->path);
    }
    while (k < n) {
        size_t i;
        for (i = 0; i < n; i++)
            if (!done[i] && deps_done(&d->tasks[i], done))
                break;
        if (i == n)
            break;
        done[i] = true;
        d->topo[k++] = (int)i;
    }
    int rc = 0;
    if (k < n) {
        /* Every task left has an upstream that is also left: walk upstream until one repeats. */
        for (size_t i = 0; i < n; i++)
            pos[i] = -1;
        int cur = 0;
        while (done[cur])
            cur++;
        int m = 0;
        while (pos[cur] < 0) {
            pos[cur] = m;
            seq[m++] = cur;
            const struct task *t = &d->tasks[cur];
            int next = -1;
            for (size_t j = 0; j < t->n_after && next < 0; j++)
                if (!done[t->after_idx[j]])
                    next = t->after_idx[j];
            if (next < 0)
                next = t->map_idx;
            cur = next;
        }
        /* seq[pos[cur]..m) runs upstream; print it downstream, from the earliest task in the file. */
        int start = pos[cur], len = m - start, best = 0;
        for (int j = 1; j < len; j++)
            if (seq[start + j] < seq[start + best])
                best = j;
        char msg[1024] = "";
        for (int j = 0; j <= len; j++) {
            int idx = seq[start + ((best - j) % len + len) % len];
            snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%s%s", j ? " -> " : "", d->tasks[idx].id);
        }
        rc = at_node(ld, ld->ti[seq[start + best]].key, "cycle: %s", msg);
    }
    free(done);
    free(seq);
    free(pos);
    return rc;
}

/* DAG-level params: each must be declared by some task's plugin and fit every
 * declared type. Stored typed when all declaring plugins agree on the type,
 * else as written (a string, or a list of strings). */
static int dag_params(struct ld *ld, const struct ynode *m)
{
    struct dag *d = ld->d;
    if (yamltree_is_null(m))
        return 0;
    if (m->kind != Y_MAP)
        return at_node(ld, m, "params: expected a mapping, got %s", yamltree_kind_name(m));
    if (check_dups(ld, m, "params", "param") < 0)
        return -1;
    for (size_t i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i], *v = m->kids[i + 1];
        char ctx[300];
        snprintf(ctx, sizeof ctx, "param \"%s\"", k->text);
        json_t *first = NULL;
        bool mixed = false;
        int first_type = -1;
        for (size_t t = 0; t < d->n_tasks; t++) {
            const dr_param *p = params_find(d->tasks[t].plugin, k->text);
            if (!p)
                continue;
            json_t *j = params_from_yaml(v, p->type, ctx, ld->path, ld->err);
            if (!j) {
                json_decref(first);
                return -1;
            }
            struct dr_err e;
            err_clear(&e);
            if (params_check_rule(d->tasks[t].plugin, k->text, j, &e) < 0) {
                json_decref(j);
                json_decref(first);
                return at_node(ld, v, "%s (task \"%s\"): %s", ctx, d->tasks[t].id, e.msg);
            }
            if (!first) {
                first = j;
                first_type = (int)p->type;
            } else {
                mixed |= first_type != (int)p->type;
                json_decref(j);
            }
        }
        if (!first)
            return at_node(ld, k, "unknown param \"%s\": no task's plugin declares it", k->text);
        if (mixed && v->kind == Y_SCALAR) {
            json_decref(first);
            first = json_string(v->text);
        }
        json_object_set_new(d->params, k->text, first);
    }
    return 0;
}

static int check_required(struct ld *ld)
{
    struct dag *d = ld->d;
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct task *t = &d->tasks[i];
        if (!t->plugin->def->params)
            continue;
        for (const dr_param *p = t->plugin->def->params; p->name; p++)
            if (p->required && !p->def && !json_object_get(t->params, p->name) &&
                !json_object_get(d->params, p->name))
                return at_node(ld, ld->ti[i].key, "task \"%s\": missing required param \"%s\"", t->id, p->name);
    }
    return 0;
}

static int load_tasks(struct ld *ld, const struct ynode *m, const struct task_defaults *td)
{
    struct dag *d = ld->d;
    if (m->kind != Y_MAP || m->n == 0)
        return at_node(ld, m, "tasks: expected a mapping of task ids, got %s",
                       m->kind == Y_MAP ? "an empty one" : yamltree_kind_name(m));
    if (m->n / 2 > DAG_MAX_TASKS)
        return at_node(ld, m, "more than %d tasks", DAG_MAX_TASKS);
    if (check_dups(ld, m, NULL, "task id") < 0)
        return -1;
    size_t n = m->n / 2;
    d->tasks = calloc(n, sizeof *d->tasks);
    ld->ti = calloc(n, sizeof *ld->ti);
    if (!d->tasks || !ld->ti)
        return err_set(ld->err, "%s: out of memory", ld->path);
    for (size_t i = 0; i < n; i++) {
        d->n_tasks++;
        if (load_task(ld, i, m->kids[2 * i], m->kids[2 * i + 1], td) < 0)
            return -1;
    }
    return 0;
}

static int load_root(struct ld *ld, const struct ynode *root)
{
    struct dag *d = ld->d;
    struct task_defaults td = {
        .retry = { .retries = 0, .retry_delay_ms = 1000, .exponential = false,
                   .max_retry_delay_ms = 3600 * 1000, .timeout_ms = 0 },
        .trigger = TR_ALL_SUCCESS,
    };
    const struct ynode *tasks = NULL, *params = NULL, *zone = NULL;
    struct dr_err e;
    const char *s = NULL;

    if (root->kind != Y_MAP)
        return at_node(ld, root, "expected a mapping with dag_id and tasks, got %s", yamltree_kind_name(root));
    if (check_dups(ld, root, NULL, "key") < 0)
        return -1;
    for (size_t i = 0; i < root->n; i += 2) {
        const struct ynode *k = root->kids[i], *v = root->kids[i + 1];
        const char *key = k->text;
        err_clear(&e);
        if (strcmp(key, "dag_id") == 0) {
            if (get_text(ld, v, key, &s) < 0)
                return -1;
            if (!plugin_valid_name(s))
                return at_node(ld, v, "bad dag_id \"%s\": must match [a-z][a-z0-9_]*", s);
            if (strlen(s) > DAG_ID_MAX)
                return at_node(ld, v, "bad dag_id \"%.20s...\": %zu characters, at most %d (a run id "
                               "is the dag_id and up to 40 more)", s, strlen(s), DAG_ID_MAX);
            if (!(d->dag_id = strdup(s)))
                return err_set(ld->err, "%s: out of memory", ld->path);
        } else if (strcmp(key, "description") == 0) {
            if (yamltree_is_null(v))
                continue;
            if (get_text(ld, v, key, &s) < 0)
                return -1;
            if (!(d->description = strdup(s)))
                return err_set(ld->err, "%s: out of memory", ld->path);
        } else if (strcmp(key, "schedule") == 0) {
            if (yamltree_is_null(v))
                continue;
            if (get_text(ld, v, key, &s) < 0)
                return -1;
            if (!(d->cron = cron_parse(s, &e)))
                return at_node(ld, v, "%s", e.msg);
            if (!(d->schedule = strdup(s)))
                return err_set(ld->err, "%s: out of memory", ld->path);
        } else if (strcmp(key, "timezone") == 0) {
            if (get_text(ld, v, key, &s) < 0)
                return -1;
            if (!(d->tz = tz_get(s, &e)))
                return at_node(ld, v, "%s", e.msg);
            zone = v;
        } else if (strcmp(key, "start_date") == 0) {
            if (yamltree_is_null(v))
                continue;
            if (get_text(ld, v, key, &s) < 0)
                return -1;
            if (date_parse(s, &d->start_date, &e) < 0)
                return at_node(ld, v, "%s", e.msg);
        } else if (strcmp(key, "catchup") == 0) {
            if (get_bool(ld, v, key, &d->catchup) < 0)
                return -1;
        } else if (strcmp(key, "max_active_runs") == 0) {
            if (get_int(ld, v, key, 1, 1000, &d->max_active_runs) < 0)
                return -1;
        } else if (strcmp(key, "max_active_tasks") == 0) {
            if (get_int(ld, v, key, 1, 1024, &d->max_active_tasks) < 0)
                return -1;
        } else if (strcmp(key, "default_args") == 0) {
            if (load_default_args(ld, v, &td) < 0)
                return -1;
        } else if (strcmp(key, "params") == 0) {
            params = v;
        } else if (strcmp(key, "tasks") == 0) {
            tasks = v;
        } else if (strcmp(key, "on_failure") == 0) {
            if (!(d->on_failure = hook_parse(ld->path, v, ld->err)))
                return -1;
        } else {
            return at_node(ld, k, "unknown key \"%s\"", key);
        }
    }
    if (!d->dag_id)
        return at_node(ld, root, "missing dag_id");
    if (!tasks)
        return at_node(ld, root, "missing tasks");
    if (!zone) {
        err_clear(&e);
        if (!(d->tz = tz_get("UTC", &e)))
            return at_node(ld, root, "%s", e.msg);
    }
    if (load_tasks(ld, tasks, &td) < 0 || link_tasks(ld) < 0 || build_topo(ld) < 0)
        return -1;
    if (params && dag_params(ld, params) < 0)
        return -1;
    return check_required(ld);
}

struct dag *dag_load(const char *path, struct plugins *ps, struct dr_err *err)
{
    struct ld ld = { .path = path, .err = err, .ps = ps };
    size_t len = 0;
    struct ynode *root = NULL;
    struct dag *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path)) || !(d->params = json_object())) {
        err_set(err, "%s: out of memory", path);
        goto fail;
    }
    d->start_date = INT64_MIN;
    d->max_active_runs = 1;
    ld.d = d;
    char *buf = NULL;
    int rr = readfile_load(path, DAG_MAX_BYTES, &buf, &len, err);
    if (rr == READFILE_TOO_BIG)
        at(&ld, 1, 1, "file is %zu bytes, over the 1 MiB limit for a DAG", len);
    if (rr != 0)
        goto fail;
    rr = yamltree_parse(path, (const unsigned char *)buf, len, &root, err);
    free(buf);
    if (rr < 0)
        goto fail;
    if (!root) {
        at(&ld, 1, 1, "empty file: expected a mapping with dag_id and tasks");
        goto fail;
    }
    if (load_root(&ld, root) < 0)
        goto fail;
    yamltree_free(root);
    free(ld.ti);
    return d;
fail:
    yamltree_free(root);
    free(ld.ti);
    dag_free(d);
    return NULL;
}

void dag_free(struct dag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct task *t = &d->tasks[i];
        free(t->id);
        free(t->plugin_name);
        json_decref(t->params);
        for (size_t j = 0; j < t->n_after; j++)
            free(t->after[j]);
        free(t->after);
        free(t->after_idx);
        free(t->map);
        free(t->pool);
    }
    free(d->tasks);
    free(d->topo);
    free(d->path);
    free(d->dag_id);
    free(d->description);
    free(d->schedule);
    cron_free(d->cron);
    json_decref(d->params);
    hook_free(d->on_failure);
    free(d);
}

int dag_task_index(const struct dag *d, const char *id)
{
    for (size_t i = 0; d && id && i < d->n_tasks; i++)
        if (strcmp(d->tasks[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* ---- Run-time params (params.c). */

int dag_check_conf(const struct dag *d, const json_t *conf, struct dr_err *err)
{
    return params_check_conf(d, conf, err);
}

json_t *dag_resolve_params(const struct dag *d, size_t i, const struct config *cfg,
                           const json_t *conf, struct dr_err *err)
{
    return params_resolve(d, i, cfg, conf, NULL, err);
}

json_t *dag_resolve_params_at(const struct dag *d, size_t i, const struct config *cfg,
                              const json_t *conf, int64_t anchor, struct dr_err *err)
{
    return params_resolve(d, i, cfg, conf, &anchor, err);
}
