/* The run's plan, built from the DAG before the first dispatch and freed after the last:
 * per-task state, lanes (the mapped tasks that run item by item in one unit), pools, the
 * runtime's own params; and a lane's expansion over the items it maps. */
#include "runplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"

static int build_lanes(struct exec *ex, struct dr_err *err)
{
    const struct dag *d = ex->dag;
    size_t n = d->n_tasks;
    ex->lanes = calloc(n ? n : 1, sizeof *ex->lanes);
    if (!ex->lanes)
        return err_set(err, "out of memory");
    /* A lane: consecutive tasks mapped over the same task, chained by after. A
     * task joins its predecessor's lane when exactly one of its upstreams maps
     * over the same task, that upstream ends its lane, and its trigger rule
     * needs the predecessor's success anyway (all_success, none_failed). */
    for (size_t k = 0; k < n; k++) {
        int i = d->topo[k];
        const struct task *t = &d->tasks[i];
        if (t->map_idx < 0)
            continue;
        int pred = -1, cnt = 0;
        for (size_t a = 0; a < t->n_after; a++)
            if (d->tasks[t->after_idx[a]].map_idx == t->map_idx) {
                pred = t->after_idx[a];
                cnt++;
            }
        struct lane *l = NULL;
        if (cnt == 1 && (t->trigger == TR_ALL_SUCCESS || t->trigger == TR_NONE_FAILED) &&
            ex->ts[pred].lane >= 0) {
            struct lane *pl = &ex->lanes[ex->ts[pred].lane];
            if (pl->tasks[pl->n - 1] == pred)
                l = pl;
        }
        if (!l) {
            l = &ex->lanes[ex->n_lanes++];
            if (!(l->tasks = calloc(n, sizeof *l->tasks)))
                return err_set(err, "out of memory");
            l->over = t->map_idx;
        }
        ex->ts[i].lane = (int)(l - ex->lanes);
        ex->ts[i].lane_pos = l->n;
        l->tasks[l->n++] = i;
        if (l->n > ex->max_lane)
            ex->max_lane = l->n;
    }
    return 0;
}

static int build_pools(struct exec *ex, struct dr_err *err)
{
    const struct config *cfg = ex->spec->cfg;
    if (!cfg || !cfg->n_pools)
        return 0;
    ex->pools = calloc(cfg->n_pools, sizeof *ex->pools);
    if (!ex->pools)
        return err_set(err, "out of memory");
    ex->n_pools = cfg->n_pools;
    for (size_t p = 0; p < cfg->n_pools; p++)
        ex->pools[p].slots = cfg->pools[p].slots > 0 ? cfg->pools[p].slots : 1;
    for (size_t i = 0; i < ex->dag->n_tasks; i++) {
        const char *name = ex->dag->tasks[i].pool;
        for (size_t p = 0; name && p < cfg->n_pools; p++)
            if (strcmp(cfg->pools[p].name, name) == 0)
                ex->ts[i].pool = (int)p;
    }
    return 0;
}

int runplan_init(struct exec *ex, struct dr_err *err)
{
    const struct run_spec *spec = ex->spec;
    ex->run_id = spec->run_id ? spec->run_id : "local";
    date_format_instant(spec->logical_date, ex->logical_date, sizeof ex->logical_date);
    date_format_instant(spec->data_interval_start, ex->dis, sizeof ex->dis);
    date_format_instant(spec->data_interval_end, ex->die, sizeof ex->die);
    ex->rt_params = json_pack("{s:s, s:s, s:s, s:s}", "run_id", ex->run_id, "logical_date",
                              ex->logical_date, "data_interval_start", ex->dis,
                              "data_interval_end", ex->die);
    ex->warnings = json_array();
    ex->counters = json_object();
    ex->ts = calloc(spec->dag->n_tasks ? spec->dag->n_tasks : 1, sizeof *ex->ts);
    if (!ex->rt_params || !ex->warnings || !ex->counters || !ex->ts)
        return err_set(err, "out of memory");
    for (size_t i = 0; i < spec->dag->n_tasks; i++) {
        ex->ts[i].lane = ex->ts[i].lane_pos = -1;
        ex->ts[i].pool = -1;
        ex->ts[i].rec.agg = -1;
    }
    return build_lanes(ex, err) < 0 || build_pools(ex, err) < 0 ? -1 : 0;
}

/* Appends the display key of map item `index` to l->key_buf at *used: its "key" member, the
 * item itself when a string or number, else the map index. 0, or -1 when out of memory or
 * past what the 32-bit offsets reach. */
static int add_key(struct lane *l, size_t *used, size_t *cap, const json_t *item, size_t index)
{
    char buf[64];
    const char *k = buf;
    const json_t *m = json_is_object(item) ? json_object_get(item, "key") : NULL;
    if (json_is_string(m))
        k = json_string_value(m);
    else if (json_is_string(item))
        k = json_string_value(item);
    else if (json_is_integer(item))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(item));
    else if (json_is_real(item))
        snprintf(buf, sizeof buf, "%.17g", json_real_value(item));
    else
        snprintf(buf, sizeof buf, "%zu", index);
    size_t n = strlen(k) + 1;
    if (*used > UINT32_MAX || n > UINT32_MAX - *used)
        return -1;
    if (*used + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *used + n)
            c *= 2;
        char *p = realloc(l->key_buf, c);
        if (!p)
            return -1;
        l->key_buf = p;
        *cap = c;
    }
    memcpy(l->key_buf + *used, k, n);
    l->key_off[index] = (uint32_t)*used;
    *used += n;
    return 0;
}

int runplan_expand(struct exec *ex, struct lane *l, int head, const json_t *items)
{
    size_t n = json_array_size(items);
    l->n_items = n;
    l->units = calloc(n, sizeof *l->units);
    l->recs = calloc(n * (size_t)l->n, sizeof *l->recs);
    l->key_off = calloc(n, sizeof *l->key_off);
    if (!l->units || !l->recs || !l->key_off)
        return -1;
    for (size_t i = 0; i < n * (size_t)l->n; i++)
        l->recs[i].agg = -1;
    size_t used = 0, cap = 0;
    for (size_t i = 0; i < n; i++)
        if (add_key(l, &used, &cap, json_array_get(items, i), i) < 0)
            return -1;
    if (used < cap) {       /* give back the doubling's slack */
        char *p = realloc(l->key_buf, used ? used : 1);
        if (p)
            l->key_buf = p;
    }
    for (size_t i = 0; i < n; i++) {
        struct unit *u = &l->units[i];
        u->task = head;
        u->lane = ex->ts[head].lane;
        u->index = (long)i;
        u->try_number = 1;
        u->recs = &l->recs[i * (size_t)l->n];
    }
    return 0;
}

bool runplan_prior_item_done(const struct exec *ex, const struct lane *l, size_t i)
{
    if (!ex->spec->prior)
        return false;
    for (int pos = 0; pos < l->n; pos++) {
        const struct prior_task *pt = prior_find(ex->spec->prior, ex->dag->tasks[l->tasks[pos]].id);
        if (!pt || !pt->mapped || i >= pt->n_items || !pt->done || !pt->done[i])
            return false;
    }
    return true;
}

void runplan_free(struct exec *ex)
{
    if (ex->ts) {
        for (size_t i = 0; i < ex->dag->n_tasks; i++) {
            json_decref(ex->ts[i].output);
            unit_lrec_reset(&ex->ts[i].rec);
            free(ex->ts[i].unit.error);
        }
    }
    for (size_t k = 0; k < ex->n_lanes; k++) {
        struct lane *l = &ex->lanes[k];
        for (size_t i = 0; l->recs && i < l->n_items * (size_t)l->n; i++)
            unit_lrec_reset(&l->recs[i]);
        for (size_t i = 0; l->units && i < l->n_items; i++)
            free(l->units[i].error);
        free(l->tasks);
        free(l->units);
        free(l->recs);
        free(l->key_buf);
        free(l->key_off);
    }
    free(ex->lanes);
    free(ex->ts);
    free(ex->pools);
    json_decref(ex->rt_params);
    json_decref(ex->warnings);
    json_decref(ex->counters);
}
