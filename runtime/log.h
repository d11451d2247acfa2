/* runtime-private: plugins never include this */
/* Logging to stderr, as text for people or JSON lines; thread-safe. */
#ifndef DR_LOG_H
#define DR_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <dagrun/task.h>

enum log_format { LOG_TEXT, LOG_JSON };

/* Sets the format and the lowest level printed. Call from main before
 * threads start. auto: JSON when stderr is not a terminal. */
void log_setup(enum log_format fmt, dr_log_level min_level);
enum log_format log_get_format(void);
bool log_enabled(dr_log_level level);

/* One log line. run_id, task and item may be NULL. Any thread. The message
 * must never hold a secret: callers redact before logging. */
void log_msg(dr_log_level level, const char *run_id, const char *task, const char *item,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void log_vmsg(dr_log_level level, const char *run_id, const char *task, const char *item,
              const char *fmt, va_list ap);

/* The sticky status line (a progress bar) on a terminal: drawn below the log
 * lines, cleared before each line and redrawn after it. line NULL clears it
 * for good (the next output is plain). Any thread. */
void log_status(const char *line);

/* Where the lines of task instances also go (kept task logs): called under no
 * lock, from the logging thread, for every line with a run_id and a task whose
 * level is INFO or above (or enabled), after redaction. NULL: none. Set from
 * main before threads start, or after they all stopped. */
typedef void (*log_sink_fn)(void *ud, dr_log_level level, const char *run_id, const char *task,
                            const char *item, const char *when, const char *msg);
void log_set_sink(log_sink_fn fn, void *ud);

/* Secrets every line is redacted of ("***"), besides what callers redact:
 * n header sets that stay alive until log_redact_with(NULL, 0). Call from main
 * before threads start. */
struct headers;
void log_redact_with(const struct headers *h, size_t n);

/* How many error lines were logged with no run_id (the process's own errors,
 * e.g. a scheduler that cannot read the database). */
unsigned long log_errors_outside_runs(void);

#define log_info(...)  log_msg(DR_LOG_INFO, NULL, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(DR_LOG_WARN, NULL, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_msg(DR_LOG_ERROR, NULL, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(DR_LOG_DEBUG, NULL, NULL, NULL, __VA_ARGS__)

#endif
