/* Rate limiter shared by threads: hands out send times under a token bucket and counted windows, never sleeps. */
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
 * bucket lets it run; the reservation then moves tat on by one interval per
 * unit of its cost. Any window of length W therefore holds at most
 * burst + W * rate reservations, and once the burst is spent they are exactly
 * one interval apart.
 *
 * Windows ("3 requests per 1s", "6000 weight per 1m", "10000 requests per 1d")
 * are counted: each keeps the grants of its last span = per / margin in a ring
 * of slots, and a request goes only once the slots that would push the span
 * over cap have left it. Grants closer together than span / 1024 share a slot
 * that leaves the span with its latest grant (never earlier than any of its
 * grants would), so a window's memory is bounded (at most ~1045 live slots)
 * whatever its cap, at a cost of at most 0.1% of the span at its edge.
 * The window with the shortest period also paces through the bucket above,
 * so that a server admitting one request every 1/rate (a bucket of burst 1)
 * sees them evenly spread rather than a burst of cap.
 * Shared state is read and written under the lock only: no atomics here (the
 * HTTP client's counters use the __atomic builtins on plain fields). */

#define RING 2048               /* slots per window; > 1045, see above */
#define MERGE_DIV 1024          /* grants within span / MERGE_DIV share a slot */

struct slot {
    int64_t first_ns, last_ns, units;
};

struct window {
    int64_t cap, per_ns, span_ns, merge_ns;
    bool weighted;
    struct slot *ring;          /* protected by lock: RING slots, oldest at head */
    size_t head, n;
    int64_t total;              /* protected by lock: the units of the n live slots */
    int64_t ph_units, ph_until; /* protected by lock: units the server counted that we did
                                 * not (ratelimit_sync), counted before ph_until */
};

struct ratelimit {
    pthread_mutex_t lock;
    int64_t interval_ns;        /* per unit of cost; 1/rate rounded up, so the rate is never exceeded */
    int64_t tau_ns;             /* (burst - 1) * interval_ns; constant */
    bool pace_weighted;         /* the pacing window counts weight: cost = weight */
    int64_t tat_ns;             /* protected by lock: theoretical arrival time */
    int64_t last_ns;            /* protected by lock: the latest time handed out (FIFO) */
    struct pacing pacing;       /* protected by lock: widens the spacing after a 429 */
    struct window *win;         /* constant array, slots protected by lock */
    size_t n_win;
};

static struct ratelimit *rl_alloc(double iv, int burst)
{
    if (!(iv >= 1) || burst < 1 || iv * burst > 1e17)
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

struct ratelimit *ratelimit_new(double rate, int burst)
{
    if (!(rate > 0))
        return NULL;
    return rl_alloc(ceil(1e9 / rate), burst);
}

struct ratelimit *ratelimit_new_windows(const struct ratelimit_window *w, size_t n,
                                        double margin, int burst)
{
    if (!w || n == 0 || !(margin > 0 && margin <= 1))
        return NULL;
    size_t pace = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].cap < 1 || w[i].cap > 1000000000LL || w[i].per_ns < 1000000
            || w[i].per_ns > 400LL * 86400 * 1000000000LL)
            return NULL;
        if (w[i].per_ns < w[pace].per_ns)
            pace = i;
    }
    struct ratelimit *rl = rl_alloc(ceil((double)w[pace].per_ns / ((double)w[pace].cap * margin)),
                                    burst);
    if (!rl)
        return NULL;
    rl->pace_weighted = w[pace].weighted;
    rl->win = calloc(n, sizeof *rl->win);
    if (!rl->win)
        goto fail;
    rl->n_win = n;
    for (size_t i = 0; i < n; i++) {
        struct window *x = &rl->win[i];
        x->cap = w[i].cap;
        x->weighted = w[i].weighted;
        x->per_ns = w[i].per_ns;
        x->span_ns = (int64_t)ceil((double)w[i].per_ns / margin);
        x->merge_ns = x->span_ns / MERGE_DIV;
        if (!(x->ring = calloc(RING, sizeof *x->ring)))
            goto fail;
    }
    return rl;
fail:
    ratelimit_free(rl);
    return NULL;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n_win; i++)
        free(rl->win[i].ring);
    free(rl->win);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

static struct slot *slot_at(struct window *x, size_t k)
{
    return &x->ring[(x->head + k) % RING];
}

static int64_t win_cost(const struct window *x, int64_t weight)
{
    int64_t c = x->weighted ? weight : 1;
    return c > x->cap ? x->cap : c;
}

/* The earliest time >= at when cost more fits in window x: the slots and the
 * server's extra units leave in the order of their ends. */
static int64_t win_earliest(struct window *x, int64_t at, int64_t cost)
{
    bool ph = x->ph_units > 0 && at < x->ph_until;
    int64_t used = x->total + (ph ? x->ph_units : 0);
    size_t k = 0;
    while (used + cost > x->cap && (k < x->n || ph)) {
        int64_t end = k < x->n ? slot_at(x, k)->last_ns + x->span_ns : INT64_MAX;
        if (ph && x->ph_until <= end) {
            end = x->ph_until;
            used -= x->ph_units;
            ph = false;
        } else {
            used -= slot_at(x, k)->units;
            k++;
        }
        if (end > at)
            at = end;
    }
    return at;
}

/* Drops the slots that left the span by now_ns. */
static void win_prune(struct window *x, int64_t now_ns)
{
    if (x->ph_units && x->ph_until <= now_ns)
        x->ph_units = 0;
    while (x->n > 0 && x->ring[x->head].last_ns + x->span_ns <= now_ns) {
        x->total -= x->ring[x->head].units;
        x->head = (x->head + 1) % RING;
        x->n--;
    }
}

/* Counts units at at_ns, which is not before any grant counted so far. */
static void win_add(struct window *x, int64_t at_ns, int64_t units)
{
    x->total += units;
    if (x->n > 0) {
        struct slot *s = slot_at(x, x->n - 1);
        if (at_ns - s->first_ns < x->merge_ns || x->n == RING) {
            if (at_ns > s->last_ns)
                s->last_ns = at_ns;
            s->units += units;
            return;
        }
    }
    *slot_at(x, x->n) = (struct slot){ .first_ns = at_ns, .last_ns = at_ns, .units = units };
    x->n++;
}

int64_t ratelimit_reserve_weight(struct ratelimit *rl, int64_t now_ns, int64_t weight)
{
    if (weight < 1)
        weight = 1;
    pthread_mutex_lock(&rl->lock);
    int64_t cost = rl->pace_weighted ? weight : 1;
    int64_t at = rl->tat_ns - rl->tau_ns;
    if (at < now_ns)
        at = now_ns;
    /* Callers read their clocks before taking the lock, so a later caller can
     * carry an earlier now; never hand out a time before one already given,
     * which keeps the grants in lock order (FIFO). This only ever delays. */
    if (at < rl->last_ns)
        at = rl->last_ns;
    /* Each window's condition only gets easier later, so one pass finds the
     * earliest time every window allows. */
    for (size_t i = 0; i < rl->n_win; i++)
        at = win_earliest(&rl->win[i], at, win_cost(&rl->win[i], weight));
    for (size_t i = 0; i < rl->n_win; i++) {
        win_prune(&rl->win[i], at);
        win_add(&rl->win[i], at, win_cost(&rl->win[i], weight));
    }
    rl->last_ns = at;
    rl->tat_ns = (rl->tat_ns > at ? rl->tat_ns : at)
                 + (int64_t)((double)(cost * rl->interval_ns) * pacing_factor(&rl->pacing));
    pthread_mutex_unlock(&rl->lock);
    return at;
}

int64_t ratelimit_reserve(struct ratelimit *rl, int64_t now_ns)
{
    return ratelimit_reserve_weight(rl, now_ns, 1);
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

static int64_t win_used(struct window *x, int64_t now_ns)
{
    int64_t used = x->ph_units > 0 && now_ns < x->ph_until ? x->ph_units : 0;
    for (size_t k = 0; k < x->n; k++) {
        struct slot *s = slot_at(x, k);
        if (s->last_ns + x->span_ns > now_ns)
            used += s->units;
    }
    return used;
}

int64_t ratelimit_used(struct ratelimit *rl, size_t window, int64_t now_ns)
{
    if (window >= rl->n_win)
        return 0;
    pthread_mutex_lock(&rl->lock);
    int64_t used = win_used(&rl->win[window], now_ns);
    pthread_mutex_unlock(&rl->lock);
    return used;
}

void ratelimit_sync(struct ratelimit *rl, size_t window, int64_t used, int64_t now_ns,
                    int64_t window_end_ns, int64_t sent_ns)
{
    if (window >= rl->n_win || used <= 0 || window_end_ns <= now_ns)
        return;
    pthread_mutex_lock(&rl->lock);
    struct window *x = &rl->win[window];
    /* Our grants since the server's window began stay counted here until it
     * ends (a span is longer than the window); the rest of what the server
     * counts is another client's, or ours from before a restart: it is
     * counted until the server's window ends, plus the span's margin for the
     * two clocks' difference. Only grants up to sent_ns (the answered
     * request's own) can be in the server's figure: later ones are still on
     * their way. Slots that straddle either edge are left out of ours, which only
     * makes the extra larger. */
    int64_t start = window_end_ns - x->per_ns, ours = 0;
    for (size_t k = 0; k < x->n; k++) {
        const struct slot *sl = slot_at(x, k);
        if (sl->first_ns >= start && sl->last_ns <= sent_ns)
            ours += sl->units;
    }
    int64_t extra = used - ours, until = window_end_ns + (x->span_ns - x->per_ns);
    if (extra > 0) {
        if (x->ph_units > 0 && x->ph_until > now_ns && x->ph_until >= until) {
            if (extra > x->ph_units)
                x->ph_units = extra;
        } else {
            x->ph_units = extra;
            x->ph_until = until;
        }
    }
    pthread_mutex_unlock(&rl->lock);
}

double ratelimit_answer(struct ratelimit *rl, bool is_429, int64_t now_ns)
{
    pthread_mutex_lock(&rl->lock);
    double f = pacing_answer(&rl->pacing, is_429, now_ns);
    pthread_mutex_unlock(&rl->lock);
    return f;
}
