/* runtime-private: plugins never include this */
/* Kept task logs: the log lines of each task instance and item, written to dagrun.task_log
 * by a thread of their own, with a size cap per instance. */
#ifndef DR_TASKLOG_H
#define DR_TASKLOG_H

#include "err.h"

enum { TASKLOG_CAP_BYTES = 64 * 1024 };   /* per task instance or item; the rest is counted */

/* Starts keeping the lines log.c hands over (log_set_sink) for database_url
 * (NULL: libpq's defaults). The writer connects on its first batch; a database
 * it cannot write to is warned about once and the lines are dropped, never the
 * run. Call from main before threads start. 0, or -1 with err. */
int tasklog_start(const char *database_url, struct dr_err *err);

/* Writes what is buffered (and a "N lines dropped" line per capped instance),
 * stops the writer and unhooks the sink. Call after every run ended. */
void tasklog_stop(void);

#endif
