/* Retry backoff: exponential delays with jitter, one rule for the executor and the HTTP client. */
#include "backoff.h"

uint64_t backoff_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t backoff_delay_ms(int64_t base_ms, int attempt, int64_t cap_ms, double jitter_fraction,
                         uint64_t *rng_state)
{
    const int64_t limit = INT64_C(1) << 62;
    int64_t d = base_ms > 0 ? base_ms : 0;
    if (d > limit)
        d = limit;
    for (int i = 1; i < attempt && d < limit && (cap_ms <= 0 || d < cap_ms); i++)
        d = d > limit / 2 ? limit : d * 2;
    if (cap_ms > 0 && d > cap_ms)
        d = cap_ms;
    if (jitter_fraction < 0 || jitter_fraction != jitter_fraction)
        jitter_fraction = 0;
    if (jitter_fraction > 1)
        jitter_fraction = 1;
    /* Both d and the jitter are at most 2^62: their sum fits. */
    int64_t span = (int64_t)((double)d * jitter_fraction);
    if (span > 0)
        d += (int64_t)(backoff_rng(rng_state) % (uint64_t)(span + 1));
    if (cap_ms > 0 && d > cap_ms)
        d = cap_ms;
    return d;
}
