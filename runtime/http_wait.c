/* How an HTTP request waits: for the rate limiter, for a retry (the retry decision), and
 * never past its cancel flag or deadline. */
#include "http_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "backoff.h"

#define SLEEP_SLICE_MS 100     /* a cancel is noticed within this while waiting */
#define BACKOFF_429_MS 1000    /* first wait after a 429 without Retry-After */
#define JITTER 0.25            /* of a backoff delay, so that workers that failed together spread out */

/* The flag is set by another thread: read it atomically (the setter should
 * use __atomic_store_n), so the race is defined and tsan stays quiet. */
bool http_wait_cancelled(const struct http_call *call)
{
    return call && call->cancel && __atomic_load_n((const int *)call->cancel, __ATOMIC_ACQUIRE);
}

bool http_wait_past_deadline(const struct http_call *call, int64_t now_ns)
{
    return call && call->deadline_ms > 0 && now_ns / 1000000 >= call->deadline_ms;
}

/* Sleeps until the monotonic time until_ns in slices, outside any lock.
 * Returns 0, or -1 when cancelled or past the deadline (why says which). */
int http_wait_until(int64_t until_ns, const struct http_call *call, const char **why)
{
    for (;;) {
        if (http_wait_cancelled(call)) {
            *why = "cancelled";
            return -1;
        }
        int64_t now = mono_ns();
        if (http_wait_past_deadline(call, now)) {
            *why = "deadline passed";
            return -1;
        }
        if (now >= until_ns)
            return 0;
        int64_t wake = until_ns;
        if (wake - now > SLEEP_SLICE_MS * 1000000LL)
            wake = now + SLEEP_SLICE_MS * 1000000LL;
        struct timespec ts = { .tv_sec = wake / 1000000000LL, .tv_nsec = wake % 1000000000LL };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
}

/* Retry-After: delta seconds or an HTTP-date. Returns ms, or -1 when absent
 * or unreadable. */
int64_t http_wait_retry_after_ms(const char *v)
{
    if (!*v)
        return -1;
    char *end;
    errno = 0;
    long long secs = strtoll(v, &end, 10);
    if (end != v && *end == '\0' && errno == 0) {
        if (secs < 0)
            return -1;
        return secs > 86400 * 365 ? 86400LL * 365 * 1000 : secs * 1000;
    }
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = ((int64_t)when - now.tv_sec) * 1000 - now.tv_nsec / 1000000;
    return ms < 0 ? 0 : ms;
}

struct http_decision http_next_step(const struct http_outcome *o, struct http_retry_state *st,
                                    const struct http_policy *p, uint64_t *rng)
{
    struct http_decision d = { .step = HTTP_STEP_DONE, .wait_ms = 0 };
    if (o->transport == HTTP_ANSWERED && o->status == 429) {
        /* Not counted against max_retries, but bounded. */
        if (++st->in_a_row_429 >= HTTP_MAX_CONSECUTIVE_429) {
            d.step = HTTP_STEP_GIVE_UP;
            return d;
        }
        d.step = HTTP_STEP_WAIT_429;
        if (o->retry_after_ms >= 0)
            d.wait_ms = o->retry_after_ms > p->max_retry_delay_ms ? p->max_retry_delay_ms
                                                                  : o->retry_after_ms;
        else
            d.wait_ms = backoff_delay_ms(p->retry_delay_ms > 0 ? p->retry_delay_ms
                                                               : BACKOFF_429_MS,
                                         st->in_a_row_429, p->max_retry_delay_ms, JITTER, rng);
        return d;
    }
    st->in_a_row_429 = 0;
    if (o->transport == HTTP_ANSWERED) {
        if (o->status == 401 || o->status == 403)
            d.step = HTTP_STEP_AUTH;
        else if (o->status >= 500 && o->status <= 599)
            d.step = st->transient >= p->max_retries ? HTTP_STEP_GIVE_UP : HTTP_STEP_RETRY;
        else
            d.step = HTTP_STEP_DONE;
    } else if (o->transport == HTTP_BROKEN || o->delivered > 0) {
        /* Not worth retrying; or the sink already holds part of the body and a
         * retry would deliver it twice. */
        d.step = HTTP_STEP_FAIL;
    } else {
        d.step = st->transient >= p->max_retries ? HTTP_STEP_GIVE_UP : HTTP_STEP_RETRY;
    }
    if (d.step == HTTP_STEP_RETRY) {
        st->transient++;
        d.wait_ms = backoff_delay_ms(p->retry_delay_ms, st->transient, p->max_retry_delay_ms,
                                     JITTER, rng);
    }
    return d;
}

/* Waits for the rate limiter's reservation for the next attempt (every
 * attempt, retries included: reserve under the limiter's lock, sleep here
 * outside it). Returns 0, or -1 with *why (cancelled, deadline passed). */
int http_wait_pace(struct http_sources *s, struct source *src, const struct http_call *call,
                   int64_t weight, int64_t *granted_ns, const char **why)
{
    int64_t now = mono_ns();
    *granted_ns = now;
    if (http_wait_cancelled(call) || http_wait_past_deadline(call, now)) {
        *why = http_wait_cancelled(call) ? "cancelled" : "deadline passed";
        return -1;
    }
    if (src->rl) {
        int64_t at = ratelimit_reserve_weight(src->rl, now, weight);
        *granted_ns = at;
        if (at > now) {
            __atomic_fetch_add(&s->rate_wait_ns, at - now, __ATOMIC_RELAXED);
            __atomic_fetch_add(&src->wait_ns, at - now, __ATOMIC_RELAXED);
            if (http_wait_until(at, call, why) < 0)
                return -1;
        }
        if (http_wait_cancelled(call) || http_wait_past_deadline(call, mono_ns())) {
            *why = http_wait_cancelled(call) ? "cancelled" : "deadline passed";
            return -1;
        }
    }
    return 0;
}

/* The server's count of window i (its used_header), for its current window
 * aligned to the clock (a minute window starts on the minute): the window
 * ends at the next multiple of per on the wall clock. */
void http_wait_sync_window(struct source *src, size_t i, int64_t used, int64_t sent_ns)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now = mono_ns();
    int64_t wall_ns = (int64_t)wall.tv_sec * 1000000000LL + wall.tv_nsec;
    int64_t per = src->per_ns[i];
    int64_t left = per - wall_ns % per;
    ratelimit_sync(src->rl, i, used, now, now + left, sent_ns);
}
