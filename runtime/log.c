/* Logging to stderr, as text for people or JSON lines; thread-safe. */
#include <stdlib.h>
#include "log.h"

#include <stdarg.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once by log_setup before threads start, read-only afterwards. */
static enum log_format g_format = LOG_TEXT;
static dr_log_level g_min = DR_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* one line at a time */

static const char *level_name(dr_log_level l)
{
    switch (l) {
    case DR_LOG_DEBUG: return "debug";
    case DR_LOG_INFO: return "info";
    case DR_LOG_WARN: return "warning";
    default: return "error";
    }
}

void log_setup(enum log_format fmt, dr_log_level min_level)
{
    g_format = fmt;
    g_min = min_level;
}

enum log_format log_get_format(void) { return g_format; }

bool log_enabled(dr_log_level level) { return level >= g_min; }

void log_vmsg(dr_log_level level, const char *run_id, const char *task, const char *item,
              const char *fmt, va_list ap)
{
    if (level < g_min)
        return;
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (g_format == LOG_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "ts", json_string(when));
        json_object_set_new(o, "level", json_string(level_name(level)));
        if (run_id)
            json_object_set_new(o, "run_id", json_string(run_id));
        if (task)
            json_object_set_new(o, "task", json_string(task));
        if (item)
            json_object_set_new(o, "item", json_string(item));
        json_object_set_new(o, "msg", json_string(msg));
        char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        pthread_mutex_lock(&g_lock);
        fprintf(stderr, "%s\n", line ? line : "{}");
        pthread_mutex_unlock(&g_lock);
        free(line);
        return;
    }
    char where[512] = "";
    if (task && item)
        snprintf(where, sizeof where, "%s[%s]: ", task, item);
    else if (task)
        snprintf(where, sizeof where, "%s: ", task);
    pthread_mutex_lock(&g_lock);
    fprintf(stderr, "%s %s%s%s%s\n", when + 11, level == DR_LOG_INFO ? "" : level_name(level),
            level == DR_LOG_INFO ? "" : ": ", where, msg);
    pthread_mutex_unlock(&g_lock);
}

void log_msg(dr_log_level level, const char *run_id, const char *task, const char *item,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, run_id, task, item, fmt, ap);
    va_end(ap);
}
