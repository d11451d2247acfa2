/* Logging to stderr, as text for people or JSON lines; thread-safe. */
#include <stdlib.h>
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>

#include "headers.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once by log_setup before threads start, read-only afterwards. */
static enum log_format g_format = LOG_TEXT;
static dr_log_level g_min = DR_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* one line at a time */
static char *g_status;          /* the sticky status line, under g_lock */
static bool g_status_shown;     /* drawn and not cleared, under g_lock */
static log_sink_fn g_sink;
static void *g_sink_ud;
static const struct headers *g_redact;
static size_t g_n_redact;
static atomic_ulong g_errors_outside;

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

void log_set_sink(log_sink_fn fn, void *ud)
{
    g_sink = fn;
    g_sink_ud = ud;
}

void log_redact_with(const struct headers *h, size_t n)
{
    g_redact = h;
    g_n_redact = h ? n : 0;
}

unsigned long log_errors_outside_runs(void) { return atomic_load(&g_errors_outside); }

void log_status(const char *line)
{
    pthread_mutex_lock(&g_lock);
    free(g_status);
    g_status = line ? strdup(line) : NULL;
    if (g_status)
        fprintf(stderr, "\r\033[K%s", g_status);
    else if (g_status_shown)
        fputs("\r\033[K", stderr);
    g_status_shown = g_status != NULL;
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}

/* Prints one line under g_lock: below the log lines, above the status line. */
static void put_line(const char *a, const char *b, const char *c, const char *d, const char *e)
{
    pthread_mutex_lock(&g_lock);
    if (g_status_shown)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "%s%s%s%s%s\n", a, b, c, d, e);
    if (g_status_shown) {
        fputs(g_status, stderr);
        fflush(stderr);
    }
    pthread_mutex_unlock(&g_lock);
}

void log_vmsg(dr_log_level level, const char *run_id, const char *task, const char *item,
              const char *fmt, va_list ap)
{
    bool to_sink = g_sink && run_id && task && level >= DR_LOG_INFO;
    if (level < g_min && !to_sink)
        return;
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (size_t i = 0; i < g_n_redact; i++)
        headers_redact(&g_redact[i], msg);
    if (level == DR_LOG_ERROR && !run_id)
        atomic_fetch_add(&g_errors_outside, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (to_sink)
        g_sink(g_sink_ud, level, run_id, task, item, when, msg);
    if (level < g_min)
        return;
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
        put_line(line ? line : "{}", "", "", "", "");
        free(line);
        return;
    }
    char where[512] = "";
    if (task && item)
        snprintf(where, sizeof where, "%s[%s]: ", task, item);
    else if (task)
        snprintf(where, sizeof where, "%s: ", task);
    char stamp[24];
    snprintf(stamp, sizeof stamp, "%s ", when + 11);
    put_line(stamp, level == DR_LOG_INFO ? "" : level_name(level),
             level == DR_LOG_INFO ? "" : ": ", where, msg);
}

void log_msg(dr_log_level level, const char *run_id, const char *task, const char *item,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, run_id, task, item, fmt, ap);
    va_end(ap);
}
