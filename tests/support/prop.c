/* Test support: seeds and small PRNGs for property tests (DR_TEST_SEED). */
#include "prop.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint64_t prop_seed_or(uint64_t fallback)
{
    const char *s = getenv("DR_TEST_SEED");
    if (s && *s >= '0' && *s <= '9') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0' && errno == 0)
            return v;
    }
    return fallback;
}

uint64_t prop_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return prop_seed_or(((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec);
}

uint64_t prop_xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

uint64_t prop_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
