/* Unit tests for runtime/backoff.c: fixed cases and seeded properties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>

#include "backoff.h"
#include "prop.h"

static void test_backoff_doubles_without_jitter(void **state)
{
    (void)state;
    uint64_t rng = 1;
    assert_int_equal(backoff_delay_ms(100, 1, 0, 0, &rng), 100);
    assert_int_equal(backoff_delay_ms(100, 2, 0, 0, &rng), 200);
    assert_int_equal(backoff_delay_ms(100, 5, 0, 0, &rng), 1600);
    assert_int_equal(backoff_delay_ms(100, 5, 1000, 0, &rng), 1000);
    assert_int_equal(backoff_delay_ms(100, 0, 0, 0, &rng), 100);     /* attempt < 1: 1 */
    assert_int_equal(backoff_delay_ms(0, 7, 1000, 0.25, &rng), 0);
    assert_int_equal(backoff_delay_ms(-5, 3, 1000, 0.25, &rng), 0);
    /* No overflow, however many attempts. */
    assert_true(backoff_delay_ms(1000, 1000, 0, 1.0, &rng) > 0);
    assert_int_equal(backoff_delay_ms(INT64_MAX, 1000, 30000, 1.0, &rng), 30000);
}

static void test_backoff_rng_reproducible(void **state)
{
    (void)state;
    uint64_t a = 42, b = 42;
    for (int i = 0; i < 100; i++)
        assert_int_equal(backoff_rng(&a), backoff_rng(&b));
    uint64_t s1 = 7, s2 = 7;
    for (int i = 1; i < 20; i++)
        assert_int_equal(backoff_delay_ms(50, i, 30000, 0.25, &s1),
                         backoff_delay_ms(50, i, 30000, 0.25, &s2));
}

/* For random base, cap, jitter and attempts: the delay lies in
 * [min(base * 2^(n-1), cap), min(base * 2^(n-1) * (1 + jitter), cap)], never
 * above the cap, and the jitter-free delay never falls as attempts grow. */
static void test_backoff_properties(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    uint64_t g = seed;
    for (int c = 0; c < 20000; c++) {
        int64_t base = (int64_t)(prop_splitmix(&g) % 5000);
        int64_t cap = (int64_t)(prop_splitmix(&g) % 4 == 0 ? 0 : prop_splitmix(&g) % 100000 + 1);
        double jf = (double)(prop_splitmix(&g) % 101) / 100.0;
        int n = (int)(prop_splitmix(&g) % 80) + 1;
        uint64_t rng = prop_splitmix(&g);
        int64_t d = backoff_delay_ms(base, n, cap, jf, &rng);
        /* The jitter-free value, computed the slow way. */
        double exact = (double)base;
        for (int i = 1; i < n; i++)
            exact *= 2;
        double lo = exact, hi = exact + (double)(int64_t)(exact * jf);
        if (cap > 0) {
            lo = lo < (double)cap ? lo : (double)cap;
            hi = hi < (double)cap ? hi : (double)cap;
        }
        if (exact < 4e18 && ((double)d < lo - 1 || (double)d > hi + 1))
            fail_msg("seed %" PRIu64 " case %d: base %" PRId64 " attempt %d cap %" PRId64
                     " jitter %.2f: %" PRId64 " outside [%.0f, %.0f]", seed, c, base, n, cap, jf,
                     d, lo, hi);
        if (d < 0 || (cap > 0 && d > cap))
            fail_msg("seed %" PRIu64 " case %d: %" PRId64 " above the cap %" PRId64, seed, c, d,
                     cap);
        uint64_t z = 0;
        int64_t prev = backoff_delay_ms(base, n, cap, 0, &z);
        int64_t next = backoff_delay_ms(base, n + 1, cap, 0, &z);
        if (next < prev)
            fail_msg("seed %" PRIu64 " case %d: attempt %d gives %" PRId64 " after %" PRId64,
                     seed, c, n + 1, next, prev);
    }
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_backoff_doubles_without_jitter),
        cmocka_unit_test(test_backoff_rng_reproducible),
        cmocka_unit_test(test_backoff_properties),
    };
    return cmocka_run_group_tests_name("backoff", t, NULL, NULL);
}
