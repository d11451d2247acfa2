/* Unit tests for runtime/pacing.c: the learned spacing factor, with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "pacing.h"
#include "prop.h"

#define MS 1000000LL
#define SEC 1000000000LL

/* Answers one every 100 ms from *now: n of them, all clean. */
static double clean_answers(struct pacing *p, int64_t *now, int n)
{
    double f = pacing_factor(p);
    for (int i = 0; i < n; i++) {
        *now += 100 * MS;
        f = pacing_answer(p, false, *now);
    }
    return f;
}

static void test_pacing_quiet_stays_at_base(void **state)
{
    (void)state;
    struct pacing p;
    pacing_init(&p);
    assert_true(pacing_factor(&p) == 1.0);
    int64_t now = 0;
    assert_true(clean_answers(&p, &now, 10000) == 1.0);
}

static void test_pacing_429_widens_by_a_step(void **state)
{
    (void)state;
    struct pacing p;
    pacing_init(&p);
    int64_t now = 5 * SEC;
    double f = pacing_answer(&p, true, now);
    assert_true(fabs(f - (1.0 + PACING_STEP_UP)) < 1e-12);
    assert_true(pacing_factor(&p) == f);
    /* The other answers of the same disturbance: no further step. */
    assert_true(pacing_answer(&p, true, now + 10 * MS) == f);
    assert_true(pacing_answer(&p, true, now + PACING_COALESCE_NS - 1) == f);
    /* A 429 after the window is a new one. */
    double g = pacing_answer(&p, true, now + PACING_COALESCE_NS);
    assert_true(fabs(g - (1.0 + 2 * PACING_STEP_UP)) < 1e-12);
}

static void test_pacing_bounded_by_the_cap(void **state)
{
    (void)state;
    struct pacing p;
    pacing_init(&p);
    int64_t now = 0;
    double f = 1.0;
    for (int i = 0; i < 1000; i++) {
        now += PACING_COALESCE_NS;
        f = pacing_answer(&p, true, now);
        assert_true(f <= PACING_CAP);
    }
    assert_true(f == PACING_CAP);
}

static void test_pacing_creeps_back_to_base(void **state)
{
    (void)state;
    struct pacing p;
    pacing_init(&p);
    int64_t now = 0;
    pacing_answer(&p, true, now);
    double f = pacing_factor(&p);
    /* Fewer than a clean run: unchanged. */
    assert_true(clean_answers(&p, &now, PACING_CLEAN_RUN - 1) == f);
    /* Then one step down per run of clean answers, never up, until the base. */
    int steps = (int)ceil(PACING_STEP_UP / PACING_STEP_DOWN - 1e-9);
    for (int i = 1; i <= steps; i++) {
        double g = clean_answers(&p, &now, i == 1 ? 1 : PACING_CLEAN_RUN);
        assert_true(g < f);
        f = g;
    }
    assert_true(f == 1.0);
    assert_true(clean_answers(&p, &now, 10 * PACING_CLEAN_RUN) == 1.0);
}

static void test_pacing_429_restarts_the_clean_run(void **state)
{
    (void)state;
    struct pacing p;
    pacing_init(&p);
    int64_t now = 0;
    double f = pacing_answer(&p, true, now);
    for (int i = 0; i < PACING_CLEAN_RUN - 1; i++)
        pacing_answer(&p, false, now += MS);
    /* Coalesced with the first 429 (no wider), but the clean run starts over. */
    assert_true(pacing_answer(&p, true, now += MS) == f);
    for (int i = 0; i < PACING_CLEAN_RUN - 1; i++)
        assert_true(pacing_answer(&p, false, now += MS) == f);
    assert_true(pacing_answer(&p, false, now += MS) < f);
}

/* Seeded event sequences: the factor stays in [1, cap]; a 429 never narrows it and a clean
 * answer never widens it; and once the 429s stop, it is back at the base within
 * (cap - 1) / step_down clean runs. */
static void test_pacing_property(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    uint64_t rng = seed;
    int max_clean = (int)ceil((PACING_CAP - 1.0) / PACING_STEP_DOWN + 1e-9) * PACING_CLEAN_RUN;
    for (int round = 0; round < 200; round++) {
        struct pacing p;
        pacing_init(&p);
        int64_t now = (int64_t)(prop_splitmix(&rng) % (1000 * SEC));
        int n = 1 + (int)(prop_splitmix(&rng) % 3000);
        int per_mille_429 = (int)(prop_splitmix(&rng) % 200);
        for (int i = 0; i < n; i++) {
            now += (int64_t)(prop_splitmix(&rng) % (2 * SEC));
            bool is_429 = (int)(prop_splitmix(&rng) % 1000) < per_mille_429;
            double before = pacing_factor(&p);
            double f = pacing_answer(&p, is_429, now);
            if (f < 1.0 || f > PACING_CAP || (is_429 && f < before) || (!is_429 && f > before)) {
                fprintf(stderr, "pacing property failed: seed %" PRIu64 " (DR_TEST_SEED), round %d, "
                        "answer %d: %s took %.6f to %.6f\n", seed, round, i,
                        is_429 ? "429" : "ok", before, f);
                fail();
            }
        }
        double f = clean_answers(&p, &now, max_clean);
        if (f != 1.0) {
            fprintf(stderr, "pacing property failed: seed %" PRIu64 " (DR_TEST_SEED), round %d: "
                    "%.6f after %d clean answers\n", seed, round, f, max_clean);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pacing_quiet_stays_at_base),
        cmocka_unit_test(test_pacing_429_widens_by_a_step),
        cmocka_unit_test(test_pacing_bounded_by_the_cap),
        cmocka_unit_test(test_pacing_creeps_back_to_base),
        cmocka_unit_test(test_pacing_429_restarts_the_clean_run),
        cmocka_unit_test(test_pacing_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
