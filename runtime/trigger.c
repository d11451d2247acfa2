/* Trigger rules: whether a task runs, is skipped or is upstream_failed once its upstreams end. */
#include "trigger.h"

enum decision trigger_decide(const struct exec *ex, int i)
{
    const struct task *t = &ex->dag->tasks[i];
    int lane = ex->ts[i].lane;
    size_t ok = 0, skip = 0, fail = 0, n = 0;
    for (size_t k = 0; k < t->n_after; k++) {
        int a = t->after_idx[k];
        const struct tstate *u = &ex->ts[a];
        if (lane >= 0 && u->lane == lane)
            continue;
        if (u->phase != PH_ENDED)
            return D_WAIT;
        n++;
        if (u->state == TI_SUCCESS)
            ok++;
        else if (u->state == TI_SKIPPED)
            skip++;
        else
            fail++;
    }
    enum decision d = D_RUN;
    switch (t->trigger) {
    case TR_ALL_SUCCESS: d = fail ? D_UPSTREAM_FAILED : skip ? D_SKIP : D_RUN; break;
    case TR_NONE_FAILED: d = fail ? D_UPSTREAM_FAILED : D_RUN; break;
    case TR_ALL_DONE: d = D_RUN; break;
    case TR_ONE_FAILED: d = !n || fail ? D_RUN : D_SKIP; break;
    case TR_ONE_SUCCESS: d = !n || ok ? D_RUN : fail ? D_UPSTREAM_FAILED : D_SKIP; break;
    }
    if (t->map_idx >= 0 && !(lane >= 0 && ex->ts[t->map_idx].lane == lane)) {
        const struct tstate *m = &ex->ts[t->map_idx];
        if (m->phase != PH_ENDED)
            return D_WAIT;
        if (d == D_RUN && m->state != TI_SUCCESS)
            d = m->state == TI_SKIPPED ? D_SKIP : D_UPSTREAM_FAILED;
    }
    return d;
}
