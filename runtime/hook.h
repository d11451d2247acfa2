/* runtime-private: plugins never include this */
/* A DAG's failure hook: a command (argv, no shell) and/or a webhook, told about a failed run. */
#ifndef DR_HOOK_H
#define DR_HOOK_H

#include <stdint.h>
#include "err.h"
#include "runstate.h"
#include "yamltree.h"

/* on_failure: {command: [argv...], webhook: URL, timeout: 30s}; command or webhook, or both. */
struct hook {
    char **argv;                /* NULL-terminated, or NULL: no command; owned */
    char *webhook;              /* URL template (${VAR} expanded when it fires), or NULL; owned */
    int64_t timeout_ms;         /* each of the two is stopped after this long; default 30 s */
};

#define HOOK_TIMEOUT_MS 30000

/* Reads the on_failure mapping v of DAG file path. Refuses unknown keys, an empty or
 * non-string argv, an argv of over 256 items, a webhook that is not http(s):// (or starts
 * with a ${VAR}: the scheme is checked when it fires), a bad or
 * zero timeout, and a mapping with neither command nor webhook. A new hook (hook_free), or
 * NULL with err "path:line:col: on_failure: ...". */
struct hook *hook_parse(const char *path, const struct ynode *v, struct dr_err *err);
void hook_free(struct hook *h);

/* What the hook is told. Strings are borrowed; error and run_type may be NULL. */
struct hook_event {
    const char *run_id, *dag_id, *run_type, *error;
    enum run_state state;
    int64_t logical_date;       /* Unix s */
};

/* Fires h (may be NULL: nothing) when ev->state is failed or partial: runs the command with
 * the environment plus DAGRUN_RUN_ID, DAGRUN_DAG_ID, DAGRUN_RUN_TYPE, DAGRUN_STATE,
 * DAGRUN_ERROR and DAGRUN_LOGICAL_DATE (execve through posix_spawnp: no shell reads them),
 * and POSTs the same fields as one JSON object to the webhook. Each is bounded by
 * h->timeout_ms (the command's process group is killed then); a failure or timeout is
 * logged and changes nothing else. Blocks its caller for up to twice the timeout. Any
 * thread, after the run's state is stored. */
void hook_fire(const struct hook *h, const struct hook_event *ev);

#endif
