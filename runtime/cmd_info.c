/* Commands that read DAGs and plugins without running anything: validate, list, show, plugins, next. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "date.h"
#include "duration.h"
#include "params.h"

/* ---- validate ---- */

static const char validate_usage[] =
    "usage: dagrun validate [PATH...]\n"
    "Checks DAG files (a PATH may be a file or a folder; default: dags_dir).\n"
    "Prints one line per file; errors as file:line:col: message. Exit 0 if all are valid, 2 if not.\n";

struct seen {
    char *id, *path;
};

/* Records that path defines id; -1 (with the message printed) when another file did. */
static int seen_add(struct seen **seen, size_t *n_seen, const char *path, const char *id)
{
    for (size_t i = 0; i < *n_seen; i++)
        if (strcmp((*seen)[i].id, id) == 0) {
            fprintf(stderr, "%s: dag_id \"%s\" is also defined in %s\n", path, id,
                    (*seen)[i].path);
            return -1;
        }
    struct seen *grown = realloc(*seen, (*n_seen + 1) * sizeof **seen);
    if (!grown)
        return -1;
    *seen = grown;
    (*seen)[*n_seen].id = strdup(id);
    (*seen)[*n_seen].path = strdup(path);
    (*n_seen)++;
    return 0;
}

static void seen_free(struct seen *seen, size_t n_seen)
{
    for (size_t i = 0; i < n_seen; i++) {
        free(seen[i].id);
        free(seen[i].path);
    }
    free(seen);
}

static int validate_one(struct cli *c, const char *path, struct seen **seen, size_t *n_seen)
{
    struct dr_err err;
    err_clear(&err);
    struct dag *d = dag_load(path, cli_plugins(c), &err);
    if (!d) {
        err_print(&err);
        return -1;
    }
    if (seen_add(seen, n_seen, path, d->dag_id) < 0) {
        dag_free(d);
        return -1;
    }
    printf("ok %s (%s, %zu tasks)\n", path, d->dag_id, d->n_tasks);
    dag_free(d);
    return 0;
}

int cmd_validate(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, validate_usage))
        return EXIT_OK;
    int bad = 0;
    struct seen *seen = NULL;
    size_t n_seen = 0;
    const char *deflt[] = { c->cfg->dags_dir };
    const char **paths = argc > 1 ? (const char **)argv + 1 : deflt;
    int n = argc > 1 ? argc - 1 : 1;
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) < 0) {
            fprintf(stderr, "%s: %s\n", paths[i], strerror(errno));
            bad++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad += validate_one(c, paths[i], &seen, &n_seen) < 0;
            continue;
        }
        struct dr_err err;
        err_clear(&err);
        char **files = dag_list_files(paths[i], &err);
        if (!files) {
            err_print(&err);
            bad++;
            continue;
        }
        for (char **f = files; *f; f++)
            bad += validate_one(c, *f, &seen, &n_seen) < 0;
        dag_free_list(files);
    }
    seen_free(seen, n_seen);
    return bad ? EXIT_BAD_INPUT : EXIT_OK;
}

/* ---- list ---- */

static const char list_usage[] =
    "usage: dagrun list [--wide]\n"
    "Lists the DAGs in dags_dir: id, schedule, time zone, next scheduled run (UTC; none while\n"
    "paused), paused (\"?\" when the database cannot be read), tasks; --wide: and the file.\n";

static void next_fire(const struct dag *d, char *buf, size_t len)
{
    int64_t next;
    if (!d->cron || cron_next(d->cron, d->tz, (int64_t)time(NULL), &next) < 0) {
        snprintf(buf, len, "-");
        return;
    }
    date_format_instant(next, buf, len);
}

int cmd_list(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, list_usage))
        return EXIT_OK;
    bool wide = argc == 2 && strcmp(argv[1], "--wide") == 0;
    if (argc > 2 || (argc == 2 && !wide)) {
        fputs(list_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    /* The paused flags live in the database: without one, the list still shows the files. */
    struct store *st = cli_open_store(c, &err);
    err_clear(&err);
    char **files = dag_list_files(c->cfg->dags_dir, &err);
    if (!files) {
        err_print(&err);
        store_close(st);
        return EXIT_BAD_INPUT;
    }
    int bad = 0;
    struct seen *seen = NULL;
    size_t n_seen = 0;
    printf("%-18s %-13s %-13s %-16s %-6s %5s%s\n", "DAG", "SCHEDULE", "TIMEZONE",
           "NEXT RUN (UTC)", "PAUSED", "TASKS", wide ? "  FILE" : "");
    for (char **f = files; *f; f++) {
        struct dag *d = dag_load(*f, cli_plugins(c), &err);
        if (!d) {
            err_print(&err);
            bad++;
            continue;
        }
        if (seen_add(&seen, &n_seen, *f, d->dag_id) < 0) {
            dag_free(d);
            bad++;
            continue;
        }
        char next[32];
        next_fire(d, next, sizeof next);
        bool paused = false;
        struct dr_err perr;
        err_clear(&perr);
        const char *pz = !st ? "?"
                         : store_dag_is_paused(st, d->dag_id, &paused, &perr) < 0 ? "?"
                         : paused ? "yes" : "no";
        if (paused)
            snprintf(next, sizeof next, "- (paused)");
        else if (strlen(next) >= 16 && next[10] == 'T') {
            next[10] = ' ';
            next[16] = '\0';   /* minutes: cron fires on whole minutes */
        }
        printf("%-18s %-13s %-13s %-16s %-6s %5zu%s%s\n", d->dag_id,
               d->schedule ? d->schedule : "-", tz_name(d->tz), next, pz, d->n_tasks,
               wide ? "  " : "", wide ? *f : "");
        dag_free(d);
    }
    dag_free_list(files);
    seen_free(seen, n_seen);
    store_close(st);
    return bad ? EXIT_BAD_INPUT : EXIT_OK;
}

/* ---- show ---- */

static const char show_usage[] =
    "usage: dagrun show DAG [--dot] [--conf JSON | --conf-file F]\n"
    "Prints the DAG's tasks, their dependencies and their resolved params (plugin defaults,\n"
    "DAG and task params, config.json and --conf applied). --dot prints a Graphviz graph.\n";

static const char *trigger_name(enum trigger_rule t)
{
    static const char *const names[] = { "all_success", "all_done", "none_failed", "one_failed",
                                          "one_success" };
    return names[t];
}

static void print_dot(const struct dag *d)
{
    printf("digraph \"%s\" {\n  rankdir=LR;\n  node [shape=box];\n", d->dag_id);
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct task *t = &d->tasks[i];
        printf("  \"%s\" [label=\"%s\\n(%s)%s\"];\n", t->id, t->id, t->plugin_name,
               t->map ? "\\nmapped" : "");
        for (size_t k = 0; k < t->n_after; k++)
            printf("  \"%s\" -> \"%s\";\n", t->after[k], t->id);
        if (t->map) {
            bool also_after = false;
            for (size_t k = 0; k < t->n_after; k++)
                also_after |= strcmp(t->after[k], t->map) == 0;
            if (!also_after)
                printf("  \"%s\" -> \"%s\" [style=dashed, label=\"map\"];\n", t->map, t->id);
        }
    }
    printf("}\n");
}

int cmd_show(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, show_usage))
        return EXIT_OK;
    const char *name = NULL, *conf_text = NULL, *conf_file = NULL;
    bool dot = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dot") == 0)
            dot = true;
        else if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc)
            conf_text = argv[++i];
        else if (strcmp(argv[i], "--conf-file") == 0 && i + 1 < argc)
            conf_file = argv[++i];
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fputs(show_usage, stderr);
            return EXIT_BAD_INPUT;
        }
    }
    if (!name) {
        fputs(show_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    json_t *conf = NULL;
    if ((conf_text || conf_file) && !(conf = cli_parse_conf(conf_text, conf_file, &err))) {
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    struct dag *d = cli_find_dag(c, name, false, &err);
    if (!d || (conf && dag_check_conf(d, conf, &err) < 0)) {
        err_print(&err);
        dag_free(d);
        json_decref(conf);
        return EXIT_BAD_INPUT;
    }
    int rc = EXIT_OK;
    if (dot) {
        print_dot(d);
        goto out;
    }
    char next[32];
    next_fire(d, next, sizeof next);
    printf("dag_id:       %s\nfile:         %s\n", d->dag_id, d->path);
    if (d->description)
        printf("description:  %s\n", d->description);
    printf("schedule:     %s (%s), next %s\n", d->schedule ? d->schedule : "none", tz_name(d->tz),
           next);
    if (d->start_date != INT64_MIN) {
        char sd[16];
        date_format(d->start_date, sd, sizeof sd);
        printf("start_date:   %s, catchup %s\n", sd, d->catchup ? "true" : "false");
    }
    printf("max_active_runs: %d, max_active_tasks: %d\n", d->max_active_runs,
           d->max_active_tasks ? d->max_active_tasks : c->cfg->max_active_tasks);
    printf("tasks (in execution order):\n");
    for (size_t k = 0; k < d->n_tasks; k++) {
        const struct task *t = &d->tasks[d->topo[k]];
        printf("  %s  (plugin %s)\n", t->id, t->plugin_name);
        if (t->n_after) {
            printf("    after:    ");
            for (size_t a = 0; a < t->n_after; a++)
                printf("%s%s", a ? ", " : "", t->after[a]);
            printf("  [%s]\n", trigger_name(t->trigger));
        }
        if (t->map)
            printf("    map:      one instance per item of %s\n", t->map);
        if (t->pool)
            printf("    pool:     %s\n", t->pool);
        char delay[32], maxd[32], tmo[32];
        duration_format(t->retry.retry_delay_ms, delay, sizeof delay);
        duration_format(t->retry.max_retry_delay_ms, maxd, sizeof maxd);
        duration_format(t->retry.timeout_ms, tmo, sizeof tmo);
        printf("    retries:  %d, delay %s%s, max %s, timeout %s\n", t->retry.retries, delay,
               t->retry.exponential ? " exponential" : "", maxd,
               t->retry.timeout_ms ? tmo : "none");
        json_t *params = dag_resolve_params(d, (size_t)d->topo[k], c->cfg, conf, &err);
        if (!params) {
            err_print(&err);
            rc = EXIT_BAD_INPUT;
            continue;
        }
        const char *key;
        json_t *val;
        json_object_foreach(params, key, val) {
            char *text = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("    param %-16s %s\n", key, text ? text : "?");
            free(text);
        }
        json_decref(params);
    }
out:
    dag_free(d);
    json_decref(conf);
    return rc;
}

/* ---- plugins ---- */

static const char plugins_usage[] =
    "usage: dagrun plugins\n"
    "Lists the task plugins in plugin_dir with their params: name, type, default, required, help.\n";

static void report_refused(void *ud, const struct dr_err *e)
{
    int *bad = ud;
    err_print(e);
    (*bad)++;
}

int cmd_plugins(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, plugins_usage))
        return EXIT_OK;
    struct plugins *ps = cli_plugins(c);
    int bad = 0;
    plugins_load_all(ps, report_refused, &bad);
    for (size_t i = 0; i < plugins_count(ps); i++) {
        const struct plugin *p = plugins_at(ps, i);
        printf("%s%s - %s\n", i ? "\n" : "", p->name, p->def->summary ? p->def->summary : "");
        if (!p->def->params || !p->def->params[0].name) {
            printf("  (no params)\n");
            continue;
        }
        printf("  %-18s %-9s %-14s %-9s %s\n", "PARAM", "TYPE", "DEFAULT", "REQUIRED", "HELP");
        for (const dr_param *pp = p->def->params; pp->name; pp++)
            printf("  %-18s %-9s %-14s %-9s %s\n", pp->name, params_type_name(pp->type),
                   pp->def ? pp->def : "-", pp->required ? "yes" : "no", pp->help ? pp->help : "");
    }
    return bad ? EXIT_BAD_INPUT : EXIT_OK;
}

/* ---- next ---- */

static const char next_usage[] =
    "usage: dagrun next (DAG | --cron EXPR [--tz ZONE]) [--from T] [-n N]\n"
    "Prints the next N (default 5) fire times after T (default now) as UTC ISO-8601 lines,\n"
    "e.g. 2026-01-05T13:00:00Z. The schedule is read in the DAG's time zone, or in ZONE\n"
    "(default UTC) with --cron. T is ISO-8601 (2026-03-06T00:00:00Z, 2026-03-06T05:30+05:30).\n";

int cmd_next(struct cli *c, int argc, char **argv)
{
    if (cli_wants_help(argc, argv, next_usage))
        return EXIT_OK;
    const char *dag_name = NULL, *expr = NULL, *zone = NULL, *from = NULL;
    long n = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cron") == 0 && i + 1 < argc)
            expr = argv[++i];
        else if (strcmp(argv[i], "--tz") == 0 && i + 1 < argc)
            zone = argv[++i];
        else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            n = strtol(argv[++i], &end, 10);
            if (errno || *end || n < 1 || n > 100000) {
                fprintf(stderr, "next: -n takes a whole number from 1 to 100000\n");
                return EXIT_BAD_INPUT;
            }
        } else if (argv[i][0] != '-' && !dag_name)
            dag_name = argv[i];
        else {
            fputs(next_usage, stderr);
            return EXIT_BAD_INPUT;
        }
    }
    if (!!dag_name == !!expr || (dag_name && zone)) {
        fputs(next_usage, stderr);
        return EXIT_BAD_INPUT;
    }
    struct dr_err err;
    err_clear(&err);
    int64_t t = (int64_t)time(NULL);
    if (from && date_parse_instant(from, &t, &err) < 0) {
        err_prefix(&err, "--from \"%s\"", from);
        err_print(&err);
        return EXIT_BAD_INPUT;
    }
    struct dag *d = NULL;
    struct cron *own = NULL;
    const struct cron *cr;
    const struct tz *z;
    if (dag_name) {
        if (!(d = cli_find_dag(c, dag_name, false, &err))) {
            err_print(&err);
            return EXIT_BAD_INPUT;
        }
        if (!d->cron) {
            fprintf(stderr, "next: DAG \"%s\" has no schedule\n", d->dag_id);
            dag_free(d);
            return EXIT_BAD_INPUT;
        }
        cr = d->cron;
        z = d->tz;
    } else {
        if (!(own = cron_parse(expr, &err)) || !(z = tz_get(zone ? zone : "UTC", &err))) {
            err_print(&err);
            cron_free(own);
            return EXIT_BAD_INPUT;
        }
        cr = own;
    }
    int rc = EXIT_OK;
    for (long k = 0; k < n; k++) {
        if (cron_next(cr, z, t, &t) < 0) {
            if (k == 0) {
                fprintf(stderr, "next: \"%s\" never fires up to 2999-12-31\n", cron_text(cr));
                rc = EXIT_BAD_INPUT;
            }
            break;
        }
        char buf[32];
        date_format_instant(t, buf, sizeof buf);
        puts(buf);
    }
    cron_free(own);
    dag_free(d);
    return rc;
}
