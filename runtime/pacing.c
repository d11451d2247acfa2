/* Learned send spacing of one rate-limited source: wider after a 429, creeping back after. */
#include "pacing.h"

/* An AIMD rule on the spacing: a 429 means the requests reached the server
 * closer than the margin allowed for (on a busy machine, a thread or the
 * server woke late), so the spacing grows by a step at once; evidence that
 * the margin is enough (a run of clean answers) gives it back a smaller step
 * at a time, so a machine that stays busy settles just above what it needs
 * and one that quiets down returns to the base margin. */

void pacing_init(struct pacing *p)
{
    p->factor = 1.0;
    p->clean = 0;
    p->widened_ns = INT64_MIN / 4;
}

double pacing_answer(struct pacing *p, bool is_429, int64_t now_ns)
{
    if (is_429) {
        p->clean = 0;
        if (now_ns - p->widened_ns >= PACING_COALESCE_NS) {
            p->widened_ns = now_ns;
            p->factor += PACING_STEP_UP;
            if (p->factor > PACING_CAP)
                p->factor = PACING_CAP;
        }
    } else if (++p->clean >= PACING_CLEAN_RUN) {
        p->clean = 0;
        p->factor -= PACING_STEP_DOWN;
        /* Steps of binary fractions drift: snap to the base when within half a step. */
        if (p->factor < 1.0 + PACING_STEP_DOWN / 2)
            p->factor = 1.0;
    }
    return p->factor;
}

double pacing_factor(const struct pacing *p)
{
    return p->factor;
}
