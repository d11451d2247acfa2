/* runtime-private: plugins never include this */
/* Error reports handed back to the caller that knows the context. */
#ifndef DR_ERR_H
#define DR_ERR_H

#include <stddef.h>

/* A caller-supplied error report. Functions that fail fill it and return -1
 * (or NULL); the caller prints it once. msg is lower-case, factual, with no
 * trailing period; an optional hint goes into hint. */
struct dr_err {
    char msg[2048];
    char hint[512];
    int line, col;      /* 1-based source position, 0 when unknown */
    int offset;         /* 0-based offset into the parsed string, -1 when unknown */
};

/* Sets msg (printf-style), clears hint/line/col/offset; returns -1 so that
 * `return err_set(e, ...)` reads naturally. e may be NULL. */
int err_set(struct dr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts "prefix: " in front of the current msg; returns -1. */
int err_prefix(struct dr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the hint line; returns -1. */
int err_hint(struct dr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears e. */
void err_clear(struct dr_err *e);
/* Prints "msg\n" (and "hint: ...\n") to stderr. */
void err_print(const struct dr_err *e);

#endif
