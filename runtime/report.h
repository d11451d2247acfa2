/* runtime-private: plugins never include this */
/* What a run shows people and CI: progress, per-instance lines, summary, JUnit XML. */
#ifndef DR_REPORT_H
#define DR_REPORT_H

#include <stdbool.h>
#include "dag.h"
#include "err.h"
#include "executor.h"

struct report_opts {
    const struct dag *dag;
    const char *run_id;
    bool progress_bar;          /* draw a progress bar on stderr (a terminal) */
    bool json;                  /* summary as one JSON line on stdout instead of a table */
    bool print_instances;       /* one line per ended task instance on stdout (`dagrun test`) */
    bool keep_instances;        /* keep every instance for JUnit */
};

struct report;

/* A new report for one run; its hooks go into run_spec.hooks. The hooks run
 * on the coordinator thread only. NULL on out-of-memory. */
struct report *report_new(const struct report_opts *o);
const struct exec_hooks *report_hooks(struct report *r);
/* Prints the summary (table or JSON line) to stdout. */
void report_summary(struct report *r, const struct run_result *res, double wall_secs);
/* Writes JUnit XML: one testcase per task instance; a failed or upstream_failed instance is
 * a <failure>, a skipped one <skipped/>, and so is a cancelled one (its message starts
 * "cancelled: ": stopped, not failed, and a resume runs it). 0, or -1 with err. */
int report_write_junit(struct report *r, const char *path, const struct run_result *res,
                       double wall_secs, struct dr_err *err);
void report_free(struct report *r);

#endif
