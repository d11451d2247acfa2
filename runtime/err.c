/* Error reports: formatting helpers for struct dr_err. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void err_clear(struct dr_err *e)
{
    if (!e)
        return;
    e->msg[0] = e->hint[0] = '\0';
    e->line = e->col = 0;
    e->offset = -1;
}

int err_set(struct dr_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    err_clear(e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int err_prefix(struct dr_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    char pre[1024], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
    return -1;
}

int err_hint(struct dr_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof e->hint, fmt, ap);
    va_end(ap);
    return -1;
}

void err_print(const struct dr_err *e)
{
    fprintf(stderr, "%s\n", e->msg[0] ? e->msg : "unknown error");
    if (e->hint[0])
        fprintf(stderr, "hint: %s\n", e->hint);
}
