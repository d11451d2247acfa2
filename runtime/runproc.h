/* runtime-private: plugins never include this */
/* Run processes: starting `dagrun ... _run RUN_ID` (or the scheduler) as a child of this
 * binary, and naming the signal that killed one; what the scheduler and serve share. */
#ifndef DR_RUNPROC_H
#define DR_RUNPROC_H

#include <stdbool.h>
#include <sys/types.h>
#include "err.h"

/* How to start a child of this binary. */
struct runproc_opts {
    const char *self;           /* path of this binary */
    const char *config_path;    /* passed as -c when not NULL */
    bool stdout_to_stderr;      /* the child's stdout goes to our stderr */
    const char *drop_env;       /* name of an environment variable the child does not get, or NULL */
};

/* Starts `SELF [-c CONFIG] --log-format FMT ARGS...` (args NULL-terminated, at most 8) with
 * default signal dispositions and nothing blocked. Returns its pid, or -1 with err set. */
pid_t runproc_spawn(const struct runproc_opts *o, const char *const *args, struct dr_err *err);

/* This binary's path (from /proc/self/exe), allocated: the caller frees it. NULL with err set
 * ("cannot find this program's path: ...") when it cannot be read or out of memory. */
char *runproc_self(struct dr_err *err);

/* The usual name of a signal ("SIGSEGV"), or "a signal"; for a run's error. */
const char *runproc_signal_name(int sig);

#endif
