/* Tables for people at 80 columns: the runs list, and filters on listed rows. */
#include "tables.h"

#include <stdio.h>
#include <string.h>

const char *tables_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

long long tables_num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v)
                              : json_is_real(v) ? (long long)json_real_value(v) : 0;
}

const char *tables_short_id(const char *run_id)
{
    const char *p = NULL;
    for (const char *q = run_id; (q = strstr(q, "__")); q += 2)
        p = q + 2;
    return p && *p ? p : run_id;
}

/* A duration in at most 6 characters: 9.9s, 59.9s, 59m59s, 99h59m, 999h. */
static void short_duration(const json_t *d, char *buf, size_t len)
{
    if (!json_is_number(d)) {
        snprintf(buf, len, "-");
        return;
    }
    double s = json_number_value(d);
    long long t = (long long)s;
    if (s < 60)
        snprintf(buf, len, "%.1fs", s);
    else if (t < 3600)
        snprintf(buf, len, "%lldm%02llds", t / 60, t % 60);
    else if (t < 100 * 3600)
        snprintf(buf, len, "%lldh%02lldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, len, "%lldh", t / 3600);
}

/* A count in at most 4 characters: 999, 9.9k, 999k, 9.9M, 999M. */
static void short_count(long long n, char *buf, size_t len)
{
    if (n < 1000)
        snprintf(buf, len, "%lld", n);
    else if (n < 10000)
        snprintf(buf, len, "%.1fk", (double)(n / 100) / 10.0);
    else if (n < 1000000)
        snprintf(buf, len, "%lldk", n / 1000);
    else if (n < 10000000)
        snprintf(buf, len, "%.1fM", (double)(n / 100000) / 10.0);
    else
        snprintf(buf, len, "%lldM", n / 1000000);
}

/* The run type in 6 characters. */
static const char *short_type(const char *t)
{
    return strcmp(t, "scheduled") == 0 ? "sched" : strcmp(t, "backfill") == 0 ? "bfill" : t;
}

void tables_print_runs(const json_t *runs, bool wide)
{
    size_t i;
    json_t *r;
    if (wide) {
        printf("%-58s %-10s %-21s %-10s %-21s %9s %6s %6s %6s\n", "RUN ID", "TYPE",
               "LOGICAL DATE", "STATE", "STARTED", "DURATION", "OK", "SKIP", "FAIL");
        json_array_foreach(runs, i, r) {
            char dur[32] = "-";
            json_t *d = json_object_get(r, "duration_s");
            if (json_is_number(d))
                snprintf(dur, sizeof dur, "%.1fs", json_number_value(d));
            printf("%-58s %-10s %-21s %-10s %-21s %9s %6lld %6lld %6lld\n", tables_str(r, "run_id"),
                   tables_str(r, "run_type"), tables_str(r, "logical_date"), tables_str(r, "state"),
                   tables_str(r, "started_at"), dur, tables_num(r, "items_ok"), tables_num(r, "items_skipped"),
                   tables_num(r, "items_failed"));
        }
        return;
    }
    /* 6 + 16 + 6 + 16 + 9 + 6 + 14 and 6 spaces: 79 columns. */
    printf("%-6s %-16s %-6s %-16s %-9s %6s %s\n", "RUN ID", "DAG", "TYPE", "LOGICAL DATE",
           "STATE", "TIME", "OK/SKIP/FAIL");
    json_array_foreach(runs, i, r) {
        char dur[16], dag[17], when[17];
        short_duration(json_object_get(r, "duration_s"), dur, sizeof dur);
        const char *d = tables_str(r, "dag_id");
        if (strlen(d) > 16)
            snprintf(dag, sizeof dag, "%.15s~", d);
        else
            snprintf(dag, sizeof dag, "%s", d);
        snprintf(when, sizeof when, "%s", tables_str(r, "logical_date"));
        if (strlen(when) > 10 && when[10] == 'T')
            when[10] = ' ';
        char ok[8], skip[8], fail[8];
        short_count(tables_num(r, "items_ok"), ok, sizeof ok);
        short_count(tables_num(r, "items_skipped"), skip, sizeof skip);
        short_count(tables_num(r, "items_failed"), fail, sizeof fail);
        printf("%-6.6s %-16s %-6.6s %-16s %-9.9s %6s %s/%s/%s\n",
               tables_short_id(tables_str(r, "run_id")), dag, short_type(tables_str(r, "run_type")), when,
               tables_str(r, "state"), dur, ok, skip, fail);
    }
    if (json_array_size(runs))
        printf("RUN ID: the end of the run id (full: --wide or --json); sched: scheduled\n");
}

void tables_keep_state(json_t *arr, const char *state, long limit)
{
    size_t i = 0, kept = 0;
    while (i < json_array_size(arr)) {
        const char *s = json_string_value(json_object_get(json_array_get(arr, i), "state"));
        if (s && strcmp(s, state) == 0 && (limit <= 0 || kept < (size_t)limit)) {
            kept++;
            i++;
        } else
            json_array_remove(arr, i);
    }
}

bool tables_state_valid(const char *state, bool ti)
{
    static const char *const run[] = { "queued", "running", "success", "partial", "failed",
                                       "cancelled", NULL };
    static const char *const inst[] = { "pending", "running", "success", "skipped", "failed",
                                        "upstream_failed", "cancelled", NULL };
    for (const char *const *p = ti ? inst : run; *p; p++)
        if (strcmp(*p, state) == 0)
            return true;
    return false;
}
