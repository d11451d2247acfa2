/* runtime-private: plugins never include this */
/* Token-bucket rate limiter shared by threads; never sleeps under its lock. */
#ifndef DR_RATELIMIT_H
#define DR_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

/* rate: tokens per second (> 0); burst: bucket capacity (>= 1). */
struct ratelimit *ratelimit_new(double rate, int burst);
void ratelimit_free(struct ratelimit *rl);

/* Reserves one token and returns the monotonic time (ns) at which the caller
 * may send; the caller sleeps until then outside any lock. Reservations are
 * handed out in order and never exceed rate/burst. now_ns: the caller's
 * CLOCK_MONOTONIC reading (injected for tests). Thread-safe. */
int64_t ratelimit_reserve(struct ratelimit *rl, int64_t now_ns);
/* Pushes every later reservation back until at least not_before_ns (used when
 * the server answers 429 with Retry-After). Thread-safe. */
void ratelimit_hold(struct ratelimit *rl, int64_t not_before_ns);
/* Tells the limiter how the server answered (is_429: with 429) at now_ns:
 * the spacing of later reservations learns from it (pacing.h). Returns the
 * spacing factor that applies from now (1.0: the configured rate). Thread-safe. */
double ratelimit_answer(struct ratelimit *rl, bool is_429, int64_t now_ns);

#endif
