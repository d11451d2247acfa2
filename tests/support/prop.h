/* Test support: seeds and small PRNGs for property tests (DR_TEST_SEED). */
#ifndef DAGRUN_TEST_PROP_H
#define DAGRUN_TEST_PROP_H

#include <stdint.h>

/* The seed of a property test: DR_TEST_SEED when it holds a whole decimal
 * number (0 included), else `fallback`. The test prints the seed it used on
 * failure, so that DR_TEST_SEED=<seed> replays the same cases. */
uint64_t prop_seed_or(uint64_t fallback);

/* prop_seed_or with a fallback taken from the clock (a different run each time). */
uint64_t prop_seed(void);

/* xorshift64 (13, 7, 17): advances *state and returns the new state. A state
 * of 0 (where xorshift would stay stuck) is taken as 1. */
uint64_t prop_xorshift(uint64_t *state);

/* splitmix64: advances *state and returns the next value; any state is fine. */
uint64_t prop_splitmix(uint64_t *state);

#endif
