/* runtime-private: plugins never include this */
/* Retry backoff: exponential delays with jitter, one rule for the executor and the HTTP client. */
#ifndef DR_BACKOFF_H
#define DR_BACKOFF_H

#include <stdint.h>

/* splitmix64: advances *state and returns the next value; any state is fine
 * (0 included). Not thread-safe: each user keeps its own state. */
uint64_t backoff_rng(uint64_t *state);

/* The wait before retry number `attempt` (1 for the first retry):
 * base_ms * 2^(attempt - 1), plus a jitter drawn uniformly from
 * [0, delay * jitter_fraction], the whole capped at cap_ms (cap_ms <= 0: no
 * cap). attempt < 1 counts as 1, base_ms < 0 as 0, jitter_fraction outside
 * [0, 1] is clamped. The jitter spreads out workers that failed together.
 * Never overflows (the doubling stops at the cap or at 2^62). Returns a value
 * in [min(base, cap), cap], and 0 when base_ms is 0. */
int64_t backoff_delay_ms(int64_t base_ms, int attempt, int64_t cap_ms, double jitter_fraction,
                         uint64_t *rng_state);

#endif
