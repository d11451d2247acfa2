/* runtime-private: plugins never include this */
/* Learned send spacing of one rate-limited source: wider after a 429, creeping back after. */
#ifndef DR_PACING_H
#define DR_PACING_H

#include <stdbool.h>
#include <stdint.h>

/* The factor multiplies the source's base spacing (reservations and the send
 * gate of http.c); 1.0 is the base margin, which a quiet machine never leaves.
 * A 429 widens it by PACING_STEP_UP, up to PACING_CAP, except within
 * PACING_COALESCE_NS of the last widening (the answers of requests already in
 * flight, or a Retry-After pause, tell of the same disturbance). Every
 * PACING_CLEAN_RUN answers in a row without a 429 narrow it by
 * PACING_STEP_DOWN, never below 1.0. At 10/s one step up is 1 ms more room
 * per request (1% of the rate); it is given back over 2 x 100 clean answers
 * (20 s). A 429 costs far more than a step: the server's Retry-After pause
 * (1 s, ten requests at 10/s) for every worker of the source. */
#define PACING_STEP_UP 0.01
#define PACING_STEP_DOWN 0.005
#define PACING_CLEAN_RUN 100
#define PACING_CAP 1.10
#define PACING_COALESCE_NS 1000000000LL

/* Plain data, no lock: the owner serializes calls (ratelimit.c holds its lock). */
struct pacing {
    double factor;          /* in [1.0, PACING_CAP] */
    int clean;              /* answers without a 429 since the factor last moved */
    int64_t widened_ns;     /* when a 429 last widened it; INT64_MIN / 4: never */
};

/* Starts at the base margin. Can't fail. */
void pacing_init(struct pacing *p);
/* Records one answer of the server (is_429: it said 429) at monotonic time
 * now_ns (injected for tests) and returns the factor that applies from now. */
double pacing_answer(struct pacing *p, bool is_429, int64_t now_ns);
/* The factor that applies now, in [1.0, PACING_CAP]. */
double pacing_factor(const struct pacing *p);

#endif
