/* Unit tests for runtime/ratelimit.c with injected clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
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


/* ---- windows (sources.<name>.limits) ---- */

static void test_ratelimit_windows_reject_bad_args(void **state)
{
    (void)state;
    struct ratelimit_window w = { .cap = 3, .per_ns = SEC };
    assert_null(ratelimit_new_windows(NULL, 0, 1, 1));
    assert_null(ratelimit_new_windows(&w, 1, 0, 1));
    assert_null(ratelimit_new_windows(&w, 1, 1.5, 1));
    w.cap = 0;
    assert_null(ratelimit_new_windows(&w, 1, 1, 1));
    w.cap = 3, w.per_ns = 10;
    assert_null(ratelimit_new_windows(&w, 1, 1, 1));
}

static void test_ratelimit_window_paces_evenly(void **state)
{
    (void)state;
    /* 3 per second, burst 1: a third of a second apart (rounded up). */
    struct ratelimit_window w = { .cap = 3, .per_ns = SEC };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 1, 1);
    assert_non_null(rl);
    for (int i = 0; i < 9; i++)
        assert_int_equal(ratelimit_reserve(rl, 0), i * 333333334LL);
    ratelimit_free(rl);
}

static void test_ratelimit_window_burst_is_counted(void **state)
{
    (void)state;
    /* A burst of 10 on a window of 3 per second: the count still caps it at 3. */
    struct ratelimit_window w = { .cap = 3, .per_ns = SEC };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 1, 10);
    assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), SEC);
    ratelimit_free(rl);
}

static void test_ratelimit_two_windows_together(void **state)
{
    (void)state;
    /* 3 per second and 10 per minute: ten go a third of a second apart, the
     * eleventh when the first has left the minute. */
    struct ratelimit_window w[] = { { .cap = 10, .per_ns = 60 * SEC },
                                    { .cap = 3, .per_ns = SEC } };
    struct ratelimit *rl = ratelimit_new_windows(w, 2, 1, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_reserve(rl, 0), i * 333333334LL);
    assert_int_equal(ratelimit_reserve(rl, 0), 60 * SEC);
    assert_int_equal(ratelimit_reserve(rl, 0), 60 * SEC + 333333334LL);
    assert_int_equal(ratelimit_used(rl, 0, 60 * SEC), 10);
    /* A month later everything has left both windows. */
    assert_int_equal(ratelimit_used(rl, 0, 86400 * 30 * SEC), 0);
    assert_int_equal(ratelimit_reserve(rl, 86400 * 30 * SEC), 86400 * 30 * SEC);
    ratelimit_free(rl);
}

static void test_ratelimit_weight_window(void **state)
{
    (void)state;
    /* 100 weight per minute with a request window beside it: weight 20 is
     * paced 12 s after it (60 s / 100 per unit), weight 2 then 1.2 s. */
    struct ratelimit_window w[] = { { .cap = 100, .per_ns = 60 * SEC, .weighted = true },
                                    { .cap = 1000, .per_ns = 3600 * SEC } };
    struct ratelimit *rl = ratelimit_new_windows(w, 2, 1, 1);
    assert_int_equal(ratelimit_reserve_weight(rl, 0, 20), 0);
    assert_int_equal(ratelimit_reserve_weight(rl, 0, 2), 12 * SEC);
    assert_int_equal(ratelimit_reserve_weight(rl, 0, 2), 13200 * MS);
    assert_int_equal(ratelimit_used(rl, 0, 14 * SEC), 24);
    assert_int_equal(ratelimit_used(rl, 1, 14 * SEC), 3);
    /* A weight over the cap waits for the whole window, not forever. */
    assert_true(ratelimit_reserve_weight(rl, 0, 500) < 200 * SEC);
    ratelimit_free(rl);
}

static void test_ratelimit_margin_widens_the_span(void **state)
{
    (void)state;
    /* At margin 0.98 a window of 49 per 1 s holds 49 per 1/0.98 s: spaced
     * 1/(49 * 0.98) s = 20.83 ms, the 50th lands after the first left. */
    struct ratelimit_window w = { .cap = 49, .per_ns = SEC };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 0.98, 49);
    for (int i = 0; i < 49; i++)
        assert_int_equal(ratelimit_reserve(rl, 0), 0);
    assert_int_equal(ratelimit_reserve(rl, 0), (int64_t)ceil(1e9 / 0.98));
    ratelimit_free(rl);
}

static void test_ratelimit_sync_counts_what_the_server_saw(void **state)
{
    (void)state;
    struct ratelimit_window w = { .cap = 6000, .per_ns = 60 * SEC, .weighted = true };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 1, 6000);
    assert_int_equal(ratelimit_reserve_weight(rl, 0, 2), 0);
    /* The server's minute [0, 60 s) holds 5990 (another process): 5988 are
     * not ours, only 10 are left. */
    ratelimit_sync(rl, 0, 5990, 1 * SEC, 60 * SEC, 1);
    assert_int_equal(ratelimit_used(rl, 0, 1 * SEC), 5990);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_reserve_weight(rl, 1 * SEC, 2), 1 * SEC);
    /* A lower figure never lowers the count. */
    ratelimit_sync(rl, 0, 3, 2 * SEC, 60 * SEC, 1);
    assert_int_equal(ratelimit_used(rl, 0, 2 * SEC), 6000);
    /* Full: the next goes when the server's minute ends (the other process's
     * units leave then, ours only a minute after they were granted). */
    assert_int_equal(ratelimit_reserve_weight(rl, 1 * SEC, 2), 60 * SEC);
    ratelimit_free(rl);
}

/* Grants not yet sent when the server counted are not in its figure: they
 * do not make the other client's share look smaller. */
static void test_ratelimit_sync_ignores_grants_after_the_answered_one(void **state)
{
    (void)state;
    struct ratelimit_window w = { .cap = 100, .per_ns = 10 * SEC, .weighted = true };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 1, 100);
    /* Eight requests granted 20 ms apart; the first one's answer says 52:
     * 50 are another client's, not 52 - 16. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(ratelimit_reserve_weight(rl, 1 * SEC + i * 20 * MS, 2), 1 * SEC + i * 20 * MS);
    ratelimit_sync(rl, 0, 52, 1 * SEC + 150 * MS, 10 * SEC, 1 * SEC + 1);
    assert_int_equal(ratelimit_used(rl, 0, 2 * SEC), 66);
    ratelimit_free(rl);
}

/* Our own grants of an earlier server window leave our span during the next
 * one: what the server reports then must stay counted until its window ends,
 * even though our count was higher when it said so. */
static void test_ratelimit_sync_outlives_our_older_grants(void **state)
{
    (void)state;
    struct ratelimit_window w = { .cap = 100, .per_ns = 10 * SEC, .weighted = true };
    struct ratelimit *rl = ratelimit_new_windows(&w, 1, 1, 100);
    /* 90 units of ours at 9 s, in the server's window [0, 10 s). */
    for (int i = 0; i < 45; i++)
        assert_int_equal(ratelimit_reserve_weight(rl, 9 * SEC, 2), 9 * SEC);
    /* At 10.5 s, in the window [10 s, 20 s), the server counts 80 (not ours). */
    ratelimit_sync(rl, 0, 80, 10500 * MS, 20 * SEC, 10500 * MS);
    /* Our 90 leave at 19 s: the 80 still hold until 20 s, so 20 more fit at
     * 19 s, and the next after that only at 20 s. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_reserve_weight(rl, 11 * SEC, 2), 19 * SEC);
    assert_int_equal(ratelimit_reserve_weight(rl, 11 * SEC, 2), 20 * SEC);
    ratelimit_free(rl);
}

static void test_ratelimit_long_window_memory_is_bounded(void **state)
{
    (void)state;
    /* 100000 per day, a request every 10 ms at most: more grants than slots,
     * the count stays exact and never lets more than the cap through. */
    struct ratelimit_window w[] = { { .cap = 100, .per_ns = SEC },
                                    { .cap = 100000, .per_ns = 86400 * SEC } };
    struct ratelimit *rl = ratelimit_new_windows(w, 2, 1, 1);
    int64_t t = 0;
    for (int i = 0; i < 100000; i++)
        t = ratelimit_reserve(rl, t);
    assert_int_equal(ratelimit_used(rl, 1, t), 100000);
    int64_t next = ratelimit_reserve(rl, t);
    assert_true(next >= 86400 * SEC);
    assert_true(next <= 86400 * SEC + 86400 * SEC / 1000);
    ratelimit_free(rl);
}

/* Property: random windows, weights, clocks and syncs; no span of any window's
 * period ever holds more than its cap, and grants come in order. */
static void test_ratelimit_windows_property(void **state)
{
    (void)state;
    uint64_t seed = prop_seed();
    uint64_t rng = seed;
    enum { N = 3000 };
    static int64_t at[N], wt[N];
    for (int round = 0; round < 40; round++) {
        struct ratelimit_window w[3];
        size_t nw = 1 + prop_xorshift(&rng) % 3;
        for (size_t i = 0; i < nw; i++) {
            w[i].cap = 1 + (int64_t)(prop_xorshift(&rng) % 50);
            w[i].per_ns = (int64_t)(1 + prop_xorshift(&rng) % 5000) * MS;
            w[i].weighted = prop_xorshift(&rng) % 2;
        }
        double margin = 0.95 + (double)(prop_xorshift(&rng) % 51) / 1000;
        int burst = 1 + (int)(prop_xorshift(&rng) % 5);
        struct ratelimit *rl = ratelimit_new_windows(w, nw, margin, burst);
        assert_non_null(rl);
        int64_t now = 0, prev = INT64_MIN;
        for (int i = 0; i < N; i++) {
            now += (int64_t)(prop_xorshift(&rng) % (50 * MS));
            wt[i] = 1 + (int64_t)(prop_xorshift(&rng) % 4);
            at[i] = ratelimit_reserve_weight(rl, now, wt[i]);
            if (at[i] < prev || at[i] < now)
                fail_msg("seed %" PRIu64 ": grant %d at %" PRId64 " before %" PRId64, seed, i,
                         at[i], prev > now ? prev : now);
            prev = at[i];
        }
        for (size_t k = 0; k < nw; k++) {
            int64_t sum = 0;
            size_t lo = 0;
            for (size_t hi = 0; hi < N; hi++) {
                int64_t c = w[k].weighted ? (wt[hi] > w[k].cap ? w[k].cap : wt[hi]) : 1;
                sum += c;
                while (at[lo] + w[k].per_ns <= at[hi]) {
                    sum -= w[k].weighted ? (wt[lo] > w[k].cap ? w[k].cap : wt[lo]) : 1;
                    lo++;
                }
                if (sum > w[k].cap)
                    fail_msg("seed %" PRIu64 ": round %d window %zu (%" PRId64 " per %" PRId64
                             " ms) holds %" PRId64 " at %" PRId64, seed, round, k, w[k].cap,
                             w[k].per_ns / MS, sum, at[hi]);
            }
        }
        ratelimit_free(rl);
    }
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
        cmocka_unit_test(test_ratelimit_windows_reject_bad_args),
        cmocka_unit_test(test_ratelimit_window_paces_evenly),
        cmocka_unit_test(test_ratelimit_window_burst_is_counted),
        cmocka_unit_test(test_ratelimit_two_windows_together),
        cmocka_unit_test(test_ratelimit_weight_window),
        cmocka_unit_test(test_ratelimit_margin_widens_the_span),
        cmocka_unit_test(test_ratelimit_sync_counts_what_the_server_saw),
        cmocka_unit_test(test_ratelimit_sync_outlives_our_older_grants),
        cmocka_unit_test(test_ratelimit_sync_ignores_grants_after_the_answered_one),
        cmocka_unit_test(test_ratelimit_long_window_memory_is_bounded),
        cmocka_unit_test(test_ratelimit_windows_property),
        cmocka_unit_test(test_ratelimit_answer_learns_spacing),
    };
    return cmocka_run_group_tests_name("ratelimit", t, NULL, NULL);
}
