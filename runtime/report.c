/* What a run shows people and CI: progress, per-instance lines, summary, JUnit XML. */
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Per-task tallies; a DAG has few tasks, so a linear search is cheap. */
struct tally {
    size_t by_state[TI_CANCELLED + 1];
    double secs;
};

struct instance {
    int task;                   /* index into dag->tasks */
    char *key;                  /* map key or NULL */
    enum ti_state state;
    int tries;
    double secs;
    char *error;
};

struct report {
    struct report_opts o;
    struct exec_hooks hooks;
    struct tally *tallies;      /* dag->n_tasks */
    struct instance *inst;      /* kept when keep_instances, or failures (first 50) */
    size_t n_inst, cap_inst, n_failures_kept;
    size_t done, total;
    int64_t last_draw_ms;       /* last bar drawn */
    int64_t last_line_ms;       /* last progress log line (not a terminal) */
    int64_t start_ms;           /* report_new: the wall clock's zero */
    bool drew;
};

enum { MAX_FAILURES_SHOWN = 20, MAX_FAILURES_KEPT = 50 };

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int task_index(const struct report *r, const char *id)
{
    for (size_t i = 0; i < r->o.dag->n_tasks; i++)
        if (strcmp(r->o.dag->tasks[i].id, id) == 0)
            return (int)i;
    return -1;
}

static void keep(struct report *r, int task, const struct ti_record *rec, double secs)
{
    if (r->n_inst == r->cap_inst) {
        size_t cap = r->cap_inst ? r->cap_inst * 2 : 64;
        struct instance *grown = realloc(r->inst, cap * sizeof *grown);
        if (!grown)
            return;
        r->inst = grown;
        r->cap_inst = cap;
    }
    struct instance *in = &r->inst[r->n_inst++];
    in->task = task;
    in->key = rec->map_key ? strdup(rec->map_key) : NULL;
    in->state = rec->state;
    in->tries = rec->try_number;
    in->secs = secs;
    in->error = rec->error ? strdup(rec->error) : NULL;
}

static void clear_bar(struct report *r)
{
    if (r->drew) {
        log_status(NULL);
        r->drew = false;
    }
}

/* The ended task instances by outcome; ok + skipped + failed + cancelled = ended. */
struct outcome {
    size_t ok, skipped, failed, cancelled, ended;
};

static struct outcome outcomes(const struct report *r)
{
    struct outcome o = { 0 };
    for (size_t i = 0; i < r->o.dag->n_tasks; i++) {
        const size_t *by = r->tallies[i].by_state;
        o.ok += by[TI_SUCCESS];
        o.skipped += by[TI_SKIPPED];
        o.failed += by[TI_FAILED] + by[TI_UPSTREAM_FAILED];
        o.cancelled += by[TI_CANCELLED];
    }
    o.ended = o.ok + o.skipped + o.failed + o.cancelled;
    return o;
}

static void draw_bar(struct report *r, bool force)
{
    int64_t now = mono_ms();
    if (!force && now - r->last_draw_ms < 100)
        return;
    r->last_draw_ms = now;
    struct outcome o = outcomes(r);
    double wall = (double)(now - r->start_ms) / 1000.0;
    if (r->o.progress_bar) {
        /* The units (an unmapped task instance or one lane item) drive the bar; the
         * task instances that ended are counted by outcome, and those add up. */
        const int width = 10;
        int fill = r->total ? (int)(width * r->done / r->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        /* ok + failed [+ skipped] [+ cancelled] = ended: the counts shown add up. */
        char line[256], more[96] = "";
        if (o.skipped)
            snprintf(more, sizeof more, " + %zu skipped", o.skipped);
        if (o.cancelled)
            snprintf(more + strlen(more), sizeof more - strlen(more), " + %zu cancelled",
                     o.cancelled);
        snprintf(line, sizeof line, "[%s] %zu/%zu units %.1fs | ended %zu = %zu ok + %zu failed%s",
                 bar, r->done, r->total, wall, o.ended, o.ok, o.failed, more);
        /* One terminal row: a wrapped line could not be cleared by "\r". */
        struct winsize ws;
        size_t cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
        if (strlen(line) >= cols)
            line[cols - 1] = '\0';
        log_status(line);
        r->drew = true;
    } else if (force || now - r->last_line_ms >= 10000) {
        /* Not a terminal: a progress log line every 10 s. */
        r->last_line_ms = now;
        log_msg(DR_LOG_INFO, r->o.run_id, NULL, NULL,
                "progress: units %zu/%zu; task instances ended %zu = ok %zu + skipped %zu + "
                "failed %zu + cancelled %zu; %.1fs",
                r->done, r->total, o.ended, o.ok, o.skipped, o.failed, o.cancelled, wall);
    }
}

static void on_unit_done(void *ud, const struct ti_record *rec, double secs)
{
    struct report *r = ud;
    int t = task_index(r, rec->task_id);
    if (t < 0)
        return;
    if ((unsigned)rec->state <= TI_CANCELLED)
        r->tallies[t].by_state[rec->state]++;
    r->tallies[t].secs += secs;
    bool failed = rec->state == TI_FAILED || rec->state == TI_UPSTREAM_FAILED;
    if (r->o.keep_instances)
        keep(r, t, rec, secs);
    else if (failed && r->n_failures_kept < MAX_FAILURES_KEPT) {
        keep(r, t, rec, secs);
        r->n_failures_kept++;
    }
    if (r->o.print_instances) {
        clear_bar(r);
        printf("%-10s %s%s%s%s (try %d, %.3fs)%s%s\n", ti_state_name(rec->state), rec->task_id,
               rec->map_key ? "[" : "", rec->map_key ? rec->map_key : "",
               rec->map_key ? "]" : "", rec->try_number, secs, rec->error ? ": " : "",
               rec->error ? rec->error : "");
        fflush(stdout);
    }
}

static void on_progress(void *ud, size_t done, size_t total)
{
    struct report *r = ud;
    r->done = done;
    r->total = total;
    draw_bar(r, false);
}

struct report *report_new(const struct report_opts *o)
{
    struct report *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->o = *o;
    r->tallies = calloc(o->dag->n_tasks ? o->dag->n_tasks : 1, sizeof *r->tallies);
    if (!r->tallies) {
        free(r);
        return NULL;
    }
    r->hooks.ud = r;
    r->hooks.unit_done = on_unit_done;
    r->hooks.progress = on_progress;
    r->last_line_ms = r->start_ms = mono_ms();
    return r;
}

const struct exec_hooks *report_hooks(struct report *r) { return &r->hooks; }

static size_t count_state(const struct report *r, enum ti_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < r->o.dag->n_tasks; i++)
        n += r->tallies[i].by_state[s];
    return n;
}

static void summary_json(struct report *r, const struct run_result *res, double wall)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("run_summary"));
    json_object_set_new(o, "run_id", json_string(r->o.run_id ? r->o.run_id : ""));
    json_object_set_new(o, "dag_id", json_string(r->o.dag->dag_id));
    json_object_set_new(o, "state", json_string(run_state_name(res->state)));
    json_object_set_new(o, "seconds", json_real(wall));
    json_t *tasks = json_object();
    for (size_t i = 0; i < r->o.dag->n_tasks; i++) {
        json_t *t = json_object();
        for (int s = TI_SUCCESS; s <= TI_CANCELLED; s++)
            if (r->tallies[i].by_state[s])
                json_object_set_new(t, ti_state_name((enum ti_state)s),
                                    json_integer((json_int_t)r->tallies[i].by_state[s]));
        json_object_set_new(tasks, r->o.dag->tasks[i].id, t);
    }
    json_object_set_new(o, "tasks", tasks);
    json_object_set(o, "counters", res->counters ? res->counters : json_object());
    json_object_set(o, "warnings", res->warnings ? res->warnings : json_array());
    json_t *failed = json_array();
    for (size_t i = 0; i < r->n_inst; i++) {
        const struct instance *in = &r->inst[i];
        if (in->state != TI_FAILED && in->state != TI_UPSTREAM_FAILED)
            continue;
        json_t *f = json_object();
        json_object_set_new(f, "task", json_string(r->o.dag->tasks[in->task].id));
        if (in->key)
            json_object_set_new(f, "item", json_string(in->key));
        json_object_set_new(f, "error", json_string(in->error ? in->error : ""));
        json_array_append_new(failed, f);
    }
    json_object_set_new(o, "failed", failed);
    if (res->error[0])
        json_object_set_new(o, "error", json_string(res->error));
    char *line = json_dumps(o, JSON_COMPACT);
    if (line)
        puts(line);
    free(line);
    json_decref(o);
}

void report_summary(struct report *r, const struct run_result *res, double wall)
{
    clear_bar(r);
    if (r->o.json) {
        summary_json(r, res, wall);
        fflush(stdout);
        return;
    }
    printf("\nrun %s: %s in %.1fs (wall time)\n", r->o.run_id ? r->o.run_id : "",
           run_state_name(res->state), wall);
    /* Task instances by outcome (they add up to ENDED); WORKER S sums the workers'
     * time, which exceeds the wall time when workers run in parallel. */
    printf("  %-20s %7s %7s %7s %9s %7s %9s\n", "TASK", "OK", "SKIPPED", "FAILED", "CANCELLED",
           "ENDED", "WORKER S");
    for (size_t k = 0; k < r->o.dag->n_tasks; k++) {
        int i = r->o.dag->topo[k];
        const struct tally *t = &r->tallies[i];
        size_t failed = t->by_state[TI_FAILED] + t->by_state[TI_UPSTREAM_FAILED];
        printf("  %-20s %7zu %7zu %7zu %9zu %7zu %9.1f\n", r->o.dag->tasks[i].id,
               t->by_state[TI_SUCCESS], t->by_state[TI_SKIPPED], failed,
               t->by_state[TI_CANCELLED],
               t->by_state[TI_SUCCESS] + t->by_state[TI_SKIPPED] + failed +
                   t->by_state[TI_CANCELLED],
               t->secs);
    }
    if (res->counters && json_object_size(res->counters)) {
        printf("  counters:");
        const char *key;
        json_t *val;
        bool first = true;
        json_object_foreach(res->counters, key, val) {
            printf("%s %s %lld", first ? "" : ",", key, (long long)json_integer_value(val));
            first = false;
        }
        printf("\n");
    }
    size_t nw = res->warnings ? json_array_size(res->warnings) : 0;
    if (nw) {
        printf("  warnings (%zu):\n", nw);
        for (size_t i = 0; i < nw && i < MAX_FAILURES_SHOWN; i++)
            printf("    %s\n", json_string_value(json_array_get(res->warnings, i)));
        if (nw > MAX_FAILURES_SHOWN)
            printf("    ... and %zu more (dagrun status %s)\n", nw - MAX_FAILURES_SHOWN,
                   r->o.run_id ? r->o.run_id : "RUN_ID");
    }
    size_t shown = 0, nfail = count_state(r, TI_FAILED) + count_state(r, TI_UPSTREAM_FAILED);
    for (size_t i = 0; i < r->n_inst && shown < MAX_FAILURES_SHOWN; i++) {
        const struct instance *in = &r->inst[i];
        if (in->state != TI_FAILED && in->state != TI_UPSTREAM_FAILED)
            continue;
        if (!shown)
            printf("  failed (%zu):\n", nfail);
        printf("    %s%s%s%s: %s\n", r->o.dag->tasks[in->task].id, in->key ? "[" : "",
               in->key ? in->key : "", in->key ? "]" : "",
               in->error ? in->error : ti_state_name(in->state));
        shown++;
    }
    if (nfail > shown && shown)
        printf("    ... and %zu more (dagrun status %s)\n", nfail - shown,
               r->o.run_id ? r->o.run_id : "RUN_ID");
    if (res->error[0])
        printf("  error: %s\n", res->error);
    const char *id = r->o.run_id ? r->o.run_id : "RUN_ID";
    if (res->state == RUN_FAILED || res->state == RUN_PARTIAL || res->state == RUN_CANCELLED)
        printf("next: dagrun resume %s\n      (what did not succeed: dagrun status %s --state "
               "%s)\n", id, id, res->state == RUN_CANCELLED ? "cancelled" : "failed");
    else
        printf("next: dagrun status %s\n", id);
    fflush(stdout);
}

/* XML text: escapes markup and drops bytes XML 1.0 cannot carry. */
static void xml_put(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        switch (ch) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
                fputc('?', f);
            else
                fputc(ch, f);
        }
    }
}

int report_write_junit(struct report *r, const char *path, const struct run_result *res,
                       double wall, struct dr_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return err_set(err, "%s: %s", path, strerror(errno));
    size_t tests = r->n_inst, failures = 0, skipped = 0;
    for (size_t i = 0; i < r->n_inst; i++) {
        enum ti_state s = r->inst[i].state;
        /* A cancelled instance did not fail: it was stopped, and a resume runs it. */
        failures += s == TI_FAILED || s == TI_UPSTREAM_FAILED;
        skipped += s == TI_SKIPPED || s == TI_CANCELLED;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"dagrun\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" "
               "time=\"%.3f\">\n", tests, failures, skipped, wall);
    fprintf(f, "  <testsuite name=\"");
    xml_put(f, r->o.dag->dag_id);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\" "
               "timestamp=\"%s\">\n", tests, failures, skipped, wall, stamp);
    fprintf(f, "    <properties>\n      <property name=\"run_id\" value=\"");
    xml_put(f, r->o.run_id);
    fprintf(f, "\"/>\n      <property name=\"state\" value=\"%s\"/>\n    </properties>\n",
            run_state_name(res->state));
    for (size_t i = 0; i < r->n_inst; i++) {
        const struct instance *in = &r->inst[i];
        const char *task = r->o.dag->tasks[in->task].id;
        fprintf(f, "    <testcase classname=\"");
        xml_put(f, r->o.dag->dag_id);
        fputc('.', f);
        xml_put(f, task);
        fprintf(f, "\" name=\"");
        xml_put(f, task);
        if (in->key) {
            fputc('[', f);
            xml_put(f, in->key);
            fputc(']', f);
        }
        fprintf(f, "\" time=\"%.3f\"", in->secs);
        if (in->state == TI_SUCCESS) {
            fprintf(f, "/>\n");
            continue;
        }
        fprintf(f, ">\n");
        if (in->state == TI_SKIPPED) {
            fprintf(f, "      <skipped message=\"");
            xml_put(f, in->error ? in->error : "nothing to do");
            fprintf(f, "\"/>\n");
        } else if (in->state == TI_CANCELLED) {
            fprintf(f, "      <skipped message=\"cancelled: ");
            xml_put(f, in->error ? in->error : "the run was cancelled before it ended");
            fprintf(f, "\"/>\n");
        } else {
            fprintf(f, "      <failure type=\"%s\" message=\"", ti_state_name(in->state));
            xml_put(f, in->error ? in->error : ti_state_name(in->state));
            fprintf(f, "\">");
            xml_put(f, in->error ? in->error : ti_state_name(in->state));
            fprintf(f, " (after %d tries)</failure>\n", in->tries);
        }
        fprintf(f, "    </testcase>\n");
    }
    fprintf(f, "  </testsuite>\n</testsuites>\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return err_set(err, "%s: %s", path, strerror(errno));
    }
    return 0;
}

void report_free(struct report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_inst; i++) {
        free(r->inst[i].key);
        free(r->inst[i].error);
    }
    free(r->inst);
    free(r->tallies);
    free(r);
}
