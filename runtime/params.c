/* Params: typed values (from text, JSON or YAML), the param tables of plugins, checking
 * run-time values (--conf, config.json) against a DAG, and resolving a task's params. */
#include "params.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "dag.h"
#include "duration.h"
#include "tz.h"

const char *params_type_name(dr_type t)
{
    switch (t) {
    case DR_T_STRING: return "string";
    case DR_T_INT: return "int";
    case DR_T_BOOL: return "bool";
    case DR_T_DATE: return "date";
    case DR_T_DURATION: return "duration";
    case DR_T_LIST: return "list";
    }
    return "unknown";
}

static json_t *int_from_text(const char *text, struct dr_err *err)
{
    const char *s = text;
    if (*s == '+' || *s == '-')
        s++;
    if (*s < '0' || *s > '9')
        goto bad;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE) {
        err_set(err, "bad int \"%s\": out of range", text);
        return NULL;
    }
    if (*end != '\0')
        goto bad;
    return json_integer(v);
bad:
    err_set(err, "bad int \"%s\": expected digits", text);
    if (err)
        err->offset = 0;
    return NULL;
}

static json_t *bool_from_text(const char *text, struct dr_err *err)
{
    static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
    static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcmp(text, yes[i]) == 0)
            return json_true();
        if (strcmp(text, no[i]) == 0)
            return json_false();
    }
    err_set(err, "bad bool \"%s\": expected true or false", text);
    return NULL;
}

static json_t *list_from_text(const char *text, struct dr_err *err)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v || !json_is_array(v)) {
        json_decref(v);
        err_set(err, "bad list %s: expected a JSON array of strings", text);
        return NULL;
    }
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it)) {
            json_decref(v);
            err_set(err, "bad list %s: item %zu is not a string", text, i + 1);
            return NULL;
        }
    }
    return v;
}

json_t *params_from_text(dr_type t, const char *text, struct dr_err *err)
{
    if (!text)
        return (void)err_set(err, "missing value"), NULL;
    switch (t) {
    case DR_T_STRING:
        return json_string(text);
    case DR_T_INT:
        return int_from_text(text, err);
    case DR_T_BOOL:
        return bool_from_text(text, err);
    case DR_T_DATE: {
        if (strcmp(text, "today") == 0 || strcmp(text, "yesterday") == 0)
            return json_string(text);
        int64_t days;
        if (date_parse(text, &days, err) < 0)
            return NULL;
        return json_string(text);
    }
    case DR_T_DURATION: {
        int64_t ms;
        if (duration_parse(text, &ms, err) < 0)
            return NULL;
        return json_integer(ms);
    }
    case DR_T_LIST:
        return list_from_text(text, err);
    }
    err_set(err, "unknown param type %d", (int)t);
    return NULL;
}

json_t *params_from_json(dr_type t, const json_t *v, struct dr_err *err)
{
    if (!v || json_is_null(v))
        return (void)err_set(err, "expected %s %s, got null", t == DR_T_INT ? "an" : "a",
                             params_type_name(t)), NULL;
    switch (t) {
    case DR_T_STRING:
        if (json_is_string(v))
            return json_string(json_string_value(v));
        break;
    case DR_T_INT:
        /* JSON says what a value is: "5" is a string, not an int (nor "true" a bool). */
        if (json_is_integer(v))
            return json_integer(json_integer_value(v));
        break;
    case DR_T_BOOL:
        if (json_is_boolean(v))
            return json_boolean(json_is_true(v));
        break;
    case DR_T_DATE:
        if (json_is_string(v))
            return params_from_text(t, json_string_value(v), err);
        break;
    case DR_T_DURATION:
        if (json_is_integer(v)) {
            if (json_integer_value(v) < 0)
                return (void)err_set(err, "bad duration %lld: negative", json_integer_value(v)), NULL;
            return json_integer(json_integer_value(v));
        }
        if (json_is_string(v))
            return params_from_text(t, json_string_value(v), err);
        break;
    case DR_T_LIST:
        if (json_is_array(v)) {
            size_t i;
            json_t *it;
            json_array_foreach(v, i, it) {
                if (!json_is_string(it))
                    return (void)err_set(err, "expected a list of strings: item %zu is not a string",
                                         i + 1), NULL;
            }
            return json_deep_copy(v);
        }
        break;
    }
    static const char *const kinds[] = { "object", "array", "string", "integer", "real", "true",
                                         "false", "null" };
    int k = (int)json_typeof(v);
    err_set(err, "expected %s %s, got %s", t == DR_T_INT ? "an" : "a", params_type_name(t),
            k >= 0 && k < 8 ? kinds[k] : "value");
    return NULL;
}

const dr_param *params_find(const struct plugin *p, const char *name)
{
    if (!p || !p->def->params || !name)
        return NULL;
    for (const dr_param *q = p->def->params; q->name; q++)
        if (strcmp(q->name, name) == 0)
            return q;
    return NULL;
}

void params_names(const struct plugin *p, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!p->def->params)
        return;
    for (const dr_param *q = p->def->params; q->name; q++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", q == p->def->params ? "" : ", ", q->name);
}

json_t *params_from_yaml(const struct ynode *v, dr_type t, const char *ctx, const char *path,
                         struct dr_err *err)
{
    if (t == DR_T_LIST) {
        if (v->kind != Y_SEQ) {
            yamltree_error(err, path, v->line, v->col, "%s: expected a list like [a, b], got %s", ctx, yamltree_kind_name(v));
            return NULL;
        }
        json_t *a = json_array();
        for (size_t i = 0; a && i < v->n; i++) {
            const struct ynode *it = v->kids[i];
            if (it->kind != Y_SCALAR || yamltree_is_null(it)) {
                json_decref(a);
                yamltree_error(err, path, it->line, it->col, "%s: list items must be strings, got %s", ctx, yamltree_kind_name(it));
                return NULL;
            }
            json_array_append_new(a, json_string(it->text));
        }
        return a;
    }
    if (v->kind != Y_SCALAR || yamltree_is_null(v)) {
        yamltree_error(err, path, v->line, v->col, "%s: expected %s %s, got %s", ctx, t == DR_T_INT ? "an" : "a", params_type_name(t),
                yamltree_kind_name(v));
        return NULL;
    }
    /* A quoted scalar is a string, as in JSON: '5' or "true" is no int or bool. */
    if (v->quoted && (t == DR_T_INT || t == DR_T_BOOL)) {
        yamltree_error(err, path, v->line, v->col, "%s: expected %s %s, got the quoted string \"%s\" "
                       "(write it without quotes)", ctx, t == DR_T_INT ? "an" : "a", params_type_name(t), v->text);
        return NULL;
    }
    struct dr_err e;
    err_clear(&e);
    json_t *j = params_from_text(t, v->text, &e);
    if (!j)
        yamltree_error(err, path, v->line, v->col, "%s: %s", ctx, e.msg);
    return j;
}

int params_check_rule(const struct plugin *pl, const char *name, const json_t *v, struct dr_err *err)
{
    const dr_task_def *def = pl ? pl->def : NULL;
    if (!def || !name || !v || !DR_TASK_DEF_HAS(def, rules) || !def->rules)
        return 0;
    for (const dr_param_rule *r = def->rules; r->name; r++) {
        if (strcmp(r->name, name) != 0)
            continue;
        if (json_is_integer(v) && json_integer_value(v) < r->min)
            return err_set(err, "%lld is below the minimum %lld", json_integer_value(v), r->min);
        if (json_is_string(v) && r->one_of) {
            const char *s = json_string_value(v);
            bool found = false;
            char names[1024] = "";
            for (const char *const *o = r->one_of; *o; o++) {
                found |= strcmp(*o, s) == 0;
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         o == r->one_of ? "" : ", ", *o);
            }
            if (!found)
                return err_set(err, "unknown value \"%s\" (takes: %s)", s, names);
        }
    }
    return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a, b, c": every param any task's plugin declares, sorted, unique. */
static void all_param_names(const struct dag *d, char *buf, size_t len)
{
    size_t n = 0, cap = 0;
    const char **names = NULL;
    for (size_t i = 0; i < d->n_tasks; i++) {
        const dr_param *p = d->tasks[i].plugin->def->params;
        for (; p && p->name; p++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                const char **nn = realloc(names, cap * sizeof *nn);
                if (!nn)
                    break;
                names = nn;
            }
            names[n++] = p->name;
        }
    }
    buf[0] = '\0';
    if (names)
        qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "", names[i]);
    free(names);
}

/* Checks an object of run-time values (from --conf or config.json) against the
 * DAG's tasks; where names the source in messages. */
static int check_values(const struct dag *d, const json_t *obj, const char *where, struct dr_err *err)
{
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return err_set(err, "%s: expected a JSON object", where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool known = false;
        for (size_t i = 0; i < d->n_tasks; i++) {
            const dr_param *p = params_find(d->tasks[i].plugin, k);
            if (!p)
                continue;
            known = true;
            struct dr_err e;
            err_clear(&e);
            json_t *j = params_from_json(p->type, v, &e);
            if (!j || params_check_rule(d->tasks[i].plugin, k, j, &e) < 0) {
                json_decref(j);
                return err_set(err, "%s: param \"%s\" (task \"%s\"): %s", where, k, d->tasks[i].id, e.msg);
            }
            json_decref(j);
        }
        if (!known) {
            char names[2048];
            all_param_names(d, names, sizeof names);
            return err_set(err, "%s: unknown key \"%s\" (takes: %s)", where, k, names);
        }
    }
    return 0;
}

int params_check_conf(const struct dag *d, const json_t *conf, struct dr_err *err)
{
    return check_values(d, conf, "--conf", err);
}

int params_date_at(const char *text, const struct tz *zone, int64_t anchor, char *buf, size_t len)
{
    int64_t back;
    if (strcmp(text, "today") == 0)
        back = 0;
    else if (strcmp(text, "yesterday") == 0)
        back = 1;
    else
        return 0;
    int64_t local = anchor + (zone ? tz_offset_at(zone, anchor) : 0);
    int64_t day = (local >= 0 ? local : local - 86399) / 86400;   /* floor */
    date_format(day - back, buf, len);
    return 1;
}

json_t *params_resolve(const struct dag *d, size_t i, const struct config *cfg, const json_t *conf,
                       const int64_t *anchor, struct dr_err *err)
{
    if (i >= d->n_tasks) {
        err_set(err, "no task %zu in %s", i, d->dag_id);
        return NULL;
    }
    const struct task *t = &d->tasks[i];
    const json_t *cp = config_dag_params(cfg, d->dag_id);
    char cwhere[512];
    snprintf(cwhere, sizeof cwhere, "%s: dags.%s.params", cfg && cfg->path ? cfg->path : "config.json",
             d->dag_id);
    if (check_values(d, cp, cwhere, err) < 0 || check_values(d, conf, "--conf", err) < 0)
        return NULL;
    json_t *out = json_object();
    if (!out) {
        err_set(err, "out of memory");
        return NULL;
    }
    for (const dr_param *p = t->plugin->def->params; p && p->name; p++) {
        struct dr_err e;
        err_clear(&e);
        json_t *v = NULL;
        const json_t *x;
        /* Each layer replaces the one below; the last layer that has the name wins. */
        if (p->def && !(v = params_from_text(p->type, p->def, &e)))
            goto bad;
        if ((x = json_object_get(d->params, p->name))) {
            json_decref(v);
            if (!(v = params_from_json(p->type, x, &e)))
                goto bad;
        }
        if ((x = json_object_get(t->params, p->name))) {
            json_decref(v);
            v = json_deep_copy(x);
        }
        if (cp && (x = json_object_get(cp, p->name))) {
            json_decref(v);
            if (!(v = params_from_json(p->type, x, &e)))
                goto bad;
        }
        if (conf && (x = json_object_get(conf, p->name))) {
            json_decref(v);
            if (!(v = params_from_json(p->type, x, &e)))
                goto bad;
        }
        if (!v) {
            if (p->required) {
                err_set(err, "task \"%s\": missing required param \"%s\"", t->id, p->name);
                err_hint(err, "set it in the DAG's params, config.json dags.%s.params or --conf", d->dag_id);
                json_decref(out);
                return NULL;
            }
            continue;
        }
        char day[16];
        if (anchor && p->type == DR_T_DATE && json_is_string(v) &&
            params_date_at(json_string_value(v), d->tz, *anchor, day, sizeof day)) {
            json_decref(v);
            if (!(v = json_string(day))) {
                err_set(err, "out of memory");
                json_decref(out);
                return NULL;
            }
        }
        if (params_check_rule(t->plugin, p->name, v, &e) < 0) {
            json_decref(v);
            goto bad;
        }
        json_object_set_new(out, p->name, v);
        continue;
bad:
        err_set(err, "task \"%s\": param \"%s\": %s", t->id, p->name, e.msg);
        json_decref(out);
        return NULL;
    }
    return out;
}
