/* Unit tests for runtime/ratelimit.c with injected clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prop.h"
#include "pacing.h"
#include "ratelimit.h"

#define MS 1000000LL
#define SEC 1000000000LL

static void test_ratelimit_rejects_bad_args(void **state)
{
    (void)state;
    assert_null(ratelimit_new(0, 1));
    assert_null(ratelimit_new(-1, 1));
    assert_null(ratelimit_new(10, 0));
    ratelimit_free(NULL);
}

static void test_ratelimit_exact_spacing(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 1);
    assert_non_null(rl);
    int64_t now = 5 * SEC;
    for (int i = 0; i < 20; i++)
        assert_int_equal(ratelimit_reserve(rl, now), now + i * 100 * MS);
    ratelimit_free(rl);
}

static void test_ratelimit_never_exceeds_configured_rate(void **state)
{
    (void)state;
    /* 3/s does not divide a second into whole nanoseconds: round up, never down. */
    struct ratelimit *rl = ratelimit_new(3, 1);
    int64_t a = ratelimit_reserve(rl, 0);
    int64_t b = ratelimit_reserve(rl, 0);
    assert_true(b - a >= 333333334);
    ratelimit_free(rl);
}

static void test_ratelimit_burst_then_steady(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), 100 * MS);
    assert_int_equal(ratelimit_reserve(rl, 0), 200 * MS);
    /* Idle for long: the bucket fills up again, but only to the burst. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_reserve(rl, 10 * SEC), 10 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 10 * SEC), 10 * SEC + 100 * MS);
    ratelimit_free(rl);
}

static void test_ratelimit_partial_refill(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_reserve(rl, 0), 0);
    /* 250 ms later two tokens came back (one every 100 ms). */
    assert_int_equal(ratelimit_reserve(rl, 250 * MS), 250 * MS);
    assert_int_equal(ratelimit_reserve(rl, 250 * MS), 250 * MS);
    assert_int_equal(ratelimit_reserve(rl, 250 * MS), 300 * MS);
    ratelimit_free(rl);
}

static void test_ratelimit_hold_pushes_back(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 3);
    assert_int_equal(ratelimit_reserve(rl, 0), 0);
    ratelimit_hold(rl, 5 * SEC);
    /* After a hold the bucket starts empty: no burst right after a 429. */
    assert_int_equal(ratelimit_reserve(rl, 100 * MS), 5 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 100 * MS), 5 * SEC + 100 * MS);
    assert_int_equal(ratelimit_reserve(rl, 6 * SEC), 6 * SEC);
    /* A hold in the past changes nothing: by 6 s the bucket refilled. */
    ratelimit_hold(rl, 1 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 6 * SEC), 6 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 6 * SEC), 6 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 6 * SEC), 6 * SEC + 100 * MS);
    ratelimit_free(rl);
}

static void test_ratelimit_fifo_with_stale_clock(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 4);
    assert_int_equal(ratelimit_reserve(rl, 1 * SEC), 1 * SEC);
    /* A caller that read its clock earlier but got the lock later never goes
     * before one already granted. */
    assert_int_equal(ratelimit_reserve(rl, 900 * MS), 1 * SEC);
    ratelimit_free(rl);
}

/* ---- many threads at once, with a shared fake clock ---- */

#define N_THREADS 8
#define PER_THREAD 400

struct shared {
    struct ratelimit *rl;
    _Atomic int64_t clock;      /* fake CLOCK_MONOTONIC advanced by every thread */
    int64_t max_step;           /* largest clock advance per reservation */
    unsigned seed;
    int64_t times[N_THREADS][PER_THREAD];
};

struct worker {
    struct shared *sh;
    int id;
};

static void *reserve_many(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = ((uint64_t)sh->seed << 8 | (uint64_t)w->id) * 0x9E3779B97F4A7C15ULL + 1;
    for (int i = 0; i < PER_THREAD; i++) {
        int64_t step = sh->max_step ? (int64_t)(prop_xorshift(&rng) % (uint64_t)sh->max_step) : 0;
        int64_t now = atomic_fetch_add(&sh->clock, step) + step;
        sh->times[w->id][i] = ratelimit_reserve(sh->rl, now);
        if (i > 0 && sh->times[w->id][i] < sh->times[w->id][i - 1]) {
            sh->times[w->id][i] = -1;   /* reported by the checker */
        }
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void run_concurrent(double rate, int burst, int64_t max_step, unsigned seed)
{
    struct shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->rl = ratelimit_new(rate, burst);
    sh->max_step = max_step;
    sh->seed = seed;
    atomic_init(&sh->clock, 0);
    pthread_t th[N_THREADS];
    struct worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){ sh, i };
        assert_int_equal(pthread_create(&th[i], NULL, reserve_many, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);

    enum { N = N_THREADS * PER_THREAD };
    int64_t *all = malloc(N * sizeof *all);
    assert_non_null(all);
    for (int i = 0; i < N_THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) {
            if (sh->times[i][j] < 0)
                fail_msg("seed %u: thread %d got an earlier time than before at %d", seed, i, j);
            all[i * PER_THREAD + j] = sh->times[i][j];
        }
    qsort(all, N, sizeof *all, cmp_i64);
    int64_t iv = (int64_t)(1e9 / rate);
    /* Every window [all[i], all[i] + W) holds at most burst + W * rate. */
    const int64_t windows[] = { 1, iv / 2, iv, 3 * iv, 10 * iv + 7, 100 * iv };
    for (size_t k = 0; k < sizeof windows / sizeof *windows; k++) {
        int64_t win = windows[k];
        int64_t cap = burst + (int64_t)((double)win * rate / 1e9);
        size_t hi = 0;
        for (size_t lo = 0; lo < N; lo++) {
            if (hi < lo)
                hi = lo;
            while (hi < N && all[hi] < all[lo] + win)
                hi++;
            if ((int64_t)(hi - lo) > cap)
                fail_msg("seed %u: %zu reservations in %" PRId64 " ns from %" PRId64
                         " (cap %" PRId64 ")", seed, hi - lo, win, all[lo], cap);
        }
    }
    if ((double)max_step * 3 <= 1e9 / rate) {
        /* The clock runs at most a third of the rate: once the first burst is
         * spent (allowing for the clock steps of threads that have not
         * reserved yet) the bucket never refills, so the reservations are
         * evenly spaced. */
        for (size_t i = (size_t)(2 * burst + N_THREADS); i < N; i++)
            if (all[i] - all[i - 1] < iv)
                fail_msg("seed %u: reservations %zu and %zu only %" PRId64 " ns apart", seed,
                         i - 1, i, all[i] - all[i - 1]);
    }
    free(all);
    ratelimit_free(sh->rl);
    free(sh);
}

static void test_ratelimit_threads_spacing_after_burst(void **state)
{
    (void)state;
    unsigned seed = (unsigned)prop_seed();
    run_concurrent(50, 1, 0, seed);
    run_concurrent(50, 5, 1 * MS, seed);
    run_concurrent(3, 3, 100 * MS, seed);
}

static void test_ratelimit_threads_window_cap_with_idle_gaps(void **state)
{
    (void)state;
    unsigned seed = (unsigned)prop_seed();
    /* The clock often jumps past the schedule, so the bucket refills and
     * bursts again: the window cap must still hold. */
    run_concurrent(10, 4, 400 * MS, seed);
    run_concurrent(100, 1, 30 * MS, seed);
}

/* A 429 widens the spacing of later reservations (pacing.h); clean answers give it back. */
static void test_ratelimit_answer_learns_spacing(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 1);
    assert_true(ratelimit_answer(rl, false, 0) == 1.0);
    assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), 100 * MS);
    double f = ratelimit_answer(rl, true, 0);
    assert_true(f > 1.0 && f <= PACING_CAP);
    /* The reservation already handed out stands; the ones after it are wider apart. */
    int64_t wide = (int64_t)(100 * MS * f);
    assert_int_equal(ratelimit_reserve(rl, 0), 200 * MS);
    assert_int_equal(ratelimit_reserve(rl, 0), 200 * MS + wide);
    assert_int_equal(ratelimit_reserve(rl, 0), 200 * MS + 2 * wide);
    /* After enough clean answers the configured spacing is back. */
    double g = f;
    for (int i = 0; i < 100 * PACING_CLEAN_RUN && g > 1.0; i++)
        g = ratelimit_answer(rl, false, (int64_t)i * MS);
    assert_true(g == 1.0);
    int64_t t = ratelimit_reserve(rl, 0);
    assert_int_equal(ratelimit_reserve(rl, 0), t + 100 * MS);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_ratelimit_rejects_bad_args),
        cmocka_unit_test(test_ratelimit_exact_spacing),
        cmocka_unit_test(test_ratelimit_never_exceeds_configured_rate),
        cmocka_unit_test(test_ratelimit_burst_then_steady),
        cmocka_unit_test(test_ratelimit_partial_refill),
        cmocka_unit_test(test_ratelimit_hold_pushes_back),
        cmocka_unit_test(test_ratelimit_fifo_with_stale_clock),
        cmocka_unit_test(test_ratelimit_threads_spacing_after_burst),
        cmocka_unit_test(test_ratelimit_threads_window_cap_with_idle_gaps),
        cmocka_unit_test(test_ratelimit_answer_learns_spacing),
    };
    return cmocka_run_group_tests_name("ratelimit", t, NULL, NULL);
}
