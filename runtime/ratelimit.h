/* runtime-private: plugins never include this */
/* Rate limiter shared by threads: a token bucket, plus request and weight windows; never sleeps under its lock. */
#ifndef DR_RATELIMIT_H
#define DR_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* One window of a source's limits (sources.<name>.limits): at most cap
 * requests (weighted false) or cap units of request weight (weighted true)
 * in any period of per_ns. */
struct ratelimit_window {
    int64_t cap;                /* >= 1 */
    int64_t per_ns;             /* >= 1 ms */
    bool weighted;
};

/* rate: tokens per second (> 0); burst: bucket capacity (>= 1). */
struct ratelimit *ratelimit_new(double rate, int burst);
/* Several windows enforced together. The window with the shortest period (the
 * first of equals) also paces: its grants are spread evenly at margin (0 <
 * margin <= 1) of its rate, with burst grants allowed at once. Every window is
 * also counted: no span of per_ns / margin holds grants of more than cap, so
 * a server counting the window on its own clock (sliding or by the calendar)
 * never sees more than cap in one window. Returns NULL on bad arguments. */
struct ratelimit *ratelimit_new_windows(const struct ratelimit_window *w, size_t n,
                                        double margin, int burst);
void ratelimit_free(struct ratelimit *rl);

/* Reserves one token and returns the monotonic time (ns) at which the caller
 * may send; the caller sleeps until then outside any lock. Reservations are
 * handed out in order and never exceed rate/burst. now_ns: the caller's
 * CLOCK_MONOTONIC reading (injected for tests). Thread-safe. */
int64_t ratelimit_reserve(struct ratelimit *rl, int64_t now_ns);
/* The same for a request of the given weight (>= 1): a request window counts
 * it as one, a weight window as weight (a weight over a window's cap counts
 * as the cap: it waits for the whole window). ratelimit_reserve is weight 1. */
int64_t ratelimit_reserve_weight(struct ratelimit *rl, int64_t now_ns, int64_t weight);
/* Pushes every later reservation back until at least not_before_ns (used when
 * the server answers 429 with Retry-After). Thread-safe. */
void ratelimit_hold(struct ratelimit *rl, int64_t not_before_ns);
/* The server says window (index into the windows given) holds used units in
 * its own window, which ends at window_end_ns (monotonic; e.g. a used-weight
 * header counting the current clock minute), in its answer to the
 * request granted at sent_ns: what it counts beyond this limiter's grants
 * from that window's start to sent_ns (another process's requests) is
 * counted here too until the window ends, so the two stay in step. Never
 * lowers the count. Thread-safe. */
void ratelimit_sync(struct ratelimit *rl, size_t window, int64_t used, int64_t now_ns,
                    int64_t window_end_ns, int64_t sent_ns);
/* What the window counts at now_ns (for tests and logs). Thread-safe. */
int64_t ratelimit_used(struct ratelimit *rl, size_t window, int64_t now_ns);

/* Tells the limiter how the server answered (is_429: with 429) at now_ns:
 * the spacing of later reservations learns from it (pacing.h). Returns the
 * spacing factor that applies from now (1.0: the configured rate). Thread-safe. */
double ratelimit_answer(struct ratelimit *rl, bool is_429, int64_t now_ns);

#endif
