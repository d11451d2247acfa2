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

#define log_info(...)  log_msg(DR_LOG_INFO, NULL, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(DR_LOG_WARN, NULL, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_msg(DR_LOG_ERROR, NULL, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(DR_LOG_DEBUG, NULL, NULL, NULL, __VA_ARGS__)

#endif
