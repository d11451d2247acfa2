/* runtime-private: plugins never include this */
/* Tables for people at 80 columns: the runs list, and filters on listed rows. */
#ifndef DR_TABLES_H
#define DR_TABLES_H

#include <stdbool.h>
#include <jansson.h>

/* The string o[key], or "-" when absent or not a string. Borrowed from o. */
const char *tables_str(const json_t *o, const char *key);
/* The number o[key] as a whole number (a real is truncated), or 0 when absent. */
long long tables_num(const json_t *o, const char *key);

/* The short form of a run id: its random suffix (after the last "__"), or the
 * whole id when it has none. Points into run_id. */
const char *tables_short_id(const char *run_id);

/* Prints runs (store_runs_list's array) as a table to stdout: 80 columns with
 * the short run id, or every column with the full id when wide. */
void tables_print_runs(const json_t *runs, bool wide);

/* Keeps the elements of arr whose "state" is state, at most limit of them
 * (limit <= 0: all). arr is changed in place. */
void tables_keep_state(json_t *arr, const char *state, long limit);

/* True when state names a run state (queued, running, success, partial, failed,
 * cancelled) or, with ti, a task-instance state. */
bool tables_state_valid(const char *state, bool ti);

#endif
