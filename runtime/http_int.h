/* Private to runtime/http.c, http_sources.c, http_wait.c, http_quota.c: a source's state. */
#ifndef DR_HTTP_INT_H
#define DR_HTTP_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "headers.h"
#include "http.h"
#include "ratelimit.h"

/* Atomics: the counters and the gate's last send time are plain int64_t
 * fields read and written only through the __atomic builtins (never C11
 * _Atomic), like the cancel flag the executor sets with __atomic_store_n. */
/* A rate-limited server typically admits requests with a strict token bucket of burst 1: a request
 * that arrives even slightly before 1/rate after the previous one gets 429.
 * Our reservations are exact, but between the reserved instant and the
 * request's arrival at the server lie the wake-up from clock_nanosleep, curl's
 * work and the network, and that delay varies from request to request (a late
 * request followed by a punctual one arrives closer than 1/rate). Two margins:
 *
 * PACE_MARGIN: reservations are spaced at 1/(rate * 0.983), 101.7 ms at 10/s,
 * 339.1 ms at 3/s, so the achieved rate is 98.3% of the limit (target: >= 98%).
 *
 * GATE_MARGIN: a thread can wake from its sleep a few ms late (measured up to
 * ~2 ms on an idle 2-vCPU VM, ~4 ms under CPU contention), and the request
 * after it, woken on time, would reach the server too soon. So when the
 * bucket holds one token (burst 1) a second gate sits right before the request
 * goes on the wire (CURLOPT_PREREQFUNCTION): no request passes it sooner than
 * 1/(rate * 0.987) after the previous one was sent (101.3 ms at 10/s: 1.3 ms of
 * room for what varies after the send, loopback and server wake-up, typically
 * 0.05-0.8 ms; 4.4 ms at 3/s). "Sent" is when the request passed the gate.
 * The gate spacing is shorter than the
 * reservation spacing, so a late request's delay is worked off again (0.4% of
 * an interval per request) instead of being carried forever. With a larger
 * burst the gate is off: bursts are then allowed. A delay after the send
 * larger than that room brings a 429: then both spacings widen by a learned
 * factor shared by the source's workers, and creep back to these margins
 * after clean answers (runtime/pacing.c). */
#define PACE_MARGIN 0.983
#define GATE_MARGIN 0.987

struct source {
    const char *name;           /* borrowed from cfg->sources, like the numbers below */
    char *base_url;             /* own copy */
    struct headers hdr;         /* read-only after source_init, shared by every client */
    struct ratelimit *rl;       /* NULL when no rate_limit_per_sec or limits; thread-safe itself */
    const char *used_header[16];/* per window of limits: the header reporting its use, or NULL */
    int64_t per_ns[16];         /* per window of limits: its period */
    struct calendar_window {    /* limits counted in PostgreSQL (reset: utc_day, utc_month, fixed) */
        int64_t cap;
        bool weighted;
        const char *unit;       /* "day" or "month": date_trunc's field; NULL: fixed, per_ms */
        int64_t per_ms;         /* fixed: windows of per_ms from the Unix epoch */
        char key[48];           /* dagrun.source_window.window_key, e.g. "requests/utc_day" */
    } cal[16];
    size_t n_cal;
    size_t n_windows;
    int ban_status;             /* an answer that bans the source (0: none) */
    pthread_mutex_t ban_lock;   /* guards the two below */
    int64_t banned_until_ns;    /* no request before this monotonic time; 0: none */
    char banned_why[160];       /* why, and until when (UTC) */
    int64_t gate_ns;            /* least spacing of sends at the gate; 0: no gate */
    int64_t last_send_ns;       /* the latest gate pass or send, whichever later (__atomic CAS) */
    int64_t gate_cur_ns;        /* gate_ns times the learned pacing factor (__atomic) */
    int64_t timeout_ms, connect_timeout_ms, retry_delay_ms, max_retry_delay_ms, max_body_bytes;
    int max_retries;
    /* This source's share of the totals below, by answer: [0] no HTTP answer, [status - 99]
     * HTTP 100..599; and its rate-limit wait. __atomic only. */
    int64_t by_status[501], wait_ns;
};

/* Immutable after http_sources_new except the atomic counters and the
 * calendar windows' connection. */
struct http_sources {
    struct source *src;
    size_t n;
    char *db_url;               /* where calendar windows are counted; NULL: no database */
    pthread_mutex_t db_lock;    /* guards db */
    PGconn *db;                 /* opened at the first request of a source with one */
    int64_t requests, responses_429, retries, rate_wait_ns;    /* __atomic only */
};

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* runtime/http_wait.c */

/* True when call's cancel flag is set (read atomically: another thread sets it). */
bool http_wait_cancelled(const struct http_call *call);

/* True when call has a deadline and now_ns (monotonic) is at or past it. */
bool http_wait_past_deadline(const struct http_call *call, int64_t now_ns);

/* Sleeps until the monotonic time until_ns in slices, outside any lock.
 * Returns 0, or -1 when cancelled or past the deadline (why says which). */
int http_wait_until(int64_t until_ns, const struct http_call *call, const char **why);

/* Retry-After: delta seconds or an HTTP-date. Returns ms, or -1 when absent
 * or unreadable. */
int64_t http_wait_retry_after_ms(const char *v);

/* Waits for the rate limiter's reservation of weight for the next attempt of src
 * (*granted_ns: the reserved instant). Returns 0, or -1 with *why (cancelled,
 * deadline passed). */
int http_wait_pace(struct http_sources *s, struct source *src, const struct http_call *call,
                   int64_t weight, int64_t *granted_ns, const char **why);

/* Brings src's window i in step with the server's count used of its clock-aligned
 * window (its used_header), for a request sent at sent_ns. */
void http_wait_sync_window(struct source *src, size_t i, int64_t used, int64_t sent_ns);

/* runtime/http_quota.c */

/* Takes weight from every calendar window of src at once (all or none), in
 * PostgreSQL. Returns 0, or -1 with why: a window is used up (until when it
 * reopens, also kept for http_parked_take) or the count could not be kept; no
 * request may go then. */
int http_quota_take(struct http_sources *s, struct source *src, int64_t weight, char *why,
                    size_t whylen);

#endif
