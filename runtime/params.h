/* runtime-private: plugins never include this */
/* Params: typed values, plugins' param tables, and a task's resolved params. */
#ifndef DR_PARAMS_H
#define DR_PARAMS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <dagrun/task.h>
#include "config.h"
#include "err.h"
#include "plugin.h"
#include "tz.h"
#include "yamltree.h"

struct dag;

/* "string", "int", "bool", "date", "duration", "list" ("unknown" otherwise). Pure. */
const char *params_type_name(dr_type t);

/* Converts a param value given as text (a default, a YAML scalar) to typed
 * JSON: STRING and DATE -> string (DATE checked), INT -> integer, BOOL ->
 * true/false, DURATION -> integer milliseconds, LIST -> array of strings
 * (text must be a JSON array of strings). New reference, or NULL with err. */
json_t *params_from_text(dr_type t, const char *text, struct dr_err *err);
/* Checks that a JSON value (from --conf or config.json) fits type t,
 * converting where needed (a duration string to ms, a date string checked).
 * New reference, or NULL with err. */
json_t *params_from_json(dr_type t, const json_t *v, struct dr_err *err);
/* Typed JSON for a YAML value of a param of type t (a LIST from a sequence of strings, the
 * others from a scalar as params_from_text). ctx names the param in messages; NULL with
 * err "path:line:col: ctx: message". New reference. */
json_t *params_from_yaml(const struct ynode *v, dr_type t, const char *ctx, const char *path,
                         struct dr_err *err);

/* Checks the typed value v of param name against plugin pl's rules (dr_param_rule: an
 * INT's minimum, a STRING's allowed values). Returns 0 (also when pl has no rule for
 * name), or -1 with err, e.g. "-1 is below the minimum 0" or "unknown value \"2minute\"
 * (takes: minute, ...)". Pure. */
int params_check_rule(const struct plugin *pl, const char *name, const json_t *v, struct dr_err *err);

/* The param `name` declared by plugin p, or NULL. */
const dr_param *params_find(const struct plugin *p, const char *name);
/* "a, b, c": the names p declares, in table order, into buf ("" when none). */
void params_names(const struct plugin *p, char *buf, size_t len);

/* A DATE param's "today" and "yesterday" name a day of the run, not of the clock: the
 * date, in zone (NULL: UTC), of the anchor instant (dag_resolve_params_at), and the day
 * before it. When text is one of them, writes that day as "YYYY-MM-DD" into buf (len >=
 * 11) and returns 1; returns 0 for any other text (buf untouched). Pure. */
int params_date_at(const char *text, const struct tz *zone, int64_t anchor, char *buf, size_t len);

/* The contracts of dag_check_conf and dag_resolve_params_at (dag.h), which call these
 * (dag_resolve_params passes anchor NULL: "today" and "yesterday" stay as written). */
int params_check_conf(const struct dag *d, const json_t *conf, struct dr_err *err);
json_t *params_resolve(const struct dag *d, size_t i, const struct config *cfg,
                       const json_t *conf, const int64_t *anchor, struct dr_err *err);

#endif
