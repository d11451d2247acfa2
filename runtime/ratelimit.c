/* Token-bucket rate limiter shared by threads: hands out send times, never sleeps. */
#include "ratelimit.h"
#include "pacing.h"

#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>

/* A GCRA ("generic cell rate algorithm") form of the token bucket: instead of
 * counting tokens we keep the theoretical arrival time `tat` of the next
 * request at the steady rate. A request may go at max(now, tat - tau), where
 * tau = (burst - 1) * interval is how far ahead of the steady schedule a full
 * bucket lets it run; the reservation then moves tat on by one interval. Any
 * window of length W therefore holds at most burst + W * rate reservations,
 * and once the burst is spent they are exactly one interval apart.
 * Shared state is read and written under the lock only: no atomics here (the
 * HTTP client's counters use the __atomic builtins on plain fields). */
struct ratelimit {
    pthread_mutex_t lock;
    int64_t interval_ns;        /* 1/rate rounded up, so the rate is never exceeded; constant */
    int64_t tau_ns;             /* (burst - 1) * interval_ns; constant */
    int64_t tat_ns;             /* protected by lock: theoretical arrival time */
    int64_t last_ns;            /* protected by lock: the latest time handed out (FIFO) */
    struct pacing pacing;       /* protected by lock: widens interval_ns after a 429 */
};

struct ratelimit *ratelimit_new(double rate, int burst)
{
    if (!(rate > 0) || burst < 1)
        return NULL;
    double iv = ceil(1e9 / rate);
    if (!(iv >= 1) || iv * burst > 1e17)
        return NULL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    if (pthread_mutex_init(&rl->lock, NULL) != 0) {
        free(rl);
        return NULL;
    }
    rl->interval_ns = (int64_t)iv;
    rl->tau_ns = (int64_t)(burst - 1) * rl->interval_ns;
    /* Far in the past: a fresh bucket is full, the first burst goes at once. */
    rl->tat_ns = rl->last_ns = INT64_MIN / 4;
    pacing_init(&rl->pacing);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

int64_t ratelimit_reserve(struct ratelimit *rl, int64_t now_ns)
{
    pthread_mutex_lock(&rl->lock);
    int64_t at = rl->tat_ns - rl->tau_ns;
    if (at < now_ns)
        at = now_ns;
    /* Callers read their clocks before taking the lock, so a later caller can
     * carry an earlier now; never hand out a time before one already given,
     * which keeps the grants in lock order (FIFO). This only ever delays. */
    if (at < rl->last_ns)
        at = rl->last_ns;
    rl->last_ns = at;
    rl->tat_ns = (rl->tat_ns > at ? rl->tat_ns : at)
                 + (int64_t)(rl->interval_ns * pacing_factor(&rl->pacing));
    pthread_mutex_unlock(&rl->lock);
    return at;
}

void ratelimit_hold(struct ratelimit *rl, int64_t not_before_ns)
{
    pthread_mutex_lock(&rl->lock);
    /* Empty the bucket as of not_before: the first later reservation goes at
     * not_before and the rest follow at the steady rate, with no burst right
     * after a server told us to slow down. */
    if (rl->tat_ns < not_before_ns + rl->tau_ns)
        rl->tat_ns = not_before_ns + rl->tau_ns;
    pthread_mutex_unlock(&rl->lock);
}

double ratelimit_answer(struct ratelimit *rl, bool is_429, int64_t now_ns)
{
    pthread_mutex_lock(&rl->lock);
    double f = pacing_answer(&rl->pacing, is_429, now_ns);
    pthread_mutex_unlock(&rl->lock);
    return f;
}
