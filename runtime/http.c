/* HTTP GET through named sources: libcurl, rate limits, retries, redaction. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backoff.h"
#include "duration.h"
#include "headers.h"
#include "log.h"
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
 * 0.05-0.8 ms; 4.4 ms at 3/s). "Sent" is when curl reports the headers written
 * (on_debug), which on a busy machine can be milliseconds after the request
 * passed the gate. The gate spacing is shorter than the
 * reservation spacing, so a late request's delay is worked off again (0.4% of
 * an interval per request) instead of being carried forever. With a larger
 * burst the gate is off: bursts are then allowed. A delay after the send
 * larger than that room brings a 429: then both spacings widen by a learned
 * factor shared by the source's workers, and creep back to these margins
 * after clean answers (runtime/pacing.c). */
#define PACE_MARGIN 0.983
#define GATE_MARGIN 0.987

#define SLEEP_SLICE_MS 100     /* a cancel is noticed within this while waiting */
#define BACKOFF_429_MS 1000    /* first wait after a 429 without Retry-After */
#define JITTER 0.25            /* of a backoff delay, so that workers that failed together spread out */

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

struct http_client {
    struct http_sources *s;
    CURL *curl;                 /* one handle, reused: its connection cache gives keep-alive */
    uint64_t rng;               /* jitter (backoff_rng) */
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- helpers ---- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fmt_bytes(char *out, size_t n, int64_t b)
{
    if (b >= 1048576 && b % 1048576 == 0)
        snprintf(out, n, "%" PRId64 " MiB", b / 1048576);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, n, "%" PRId64 " KiB", b / 1024);
    else
        snprintf(out, n, "%" PRId64 " bytes", b);
}

/* ---- sources ---- */

static void source_fini(struct source *src)
{
    pthread_mutex_destroy(&src->ban_lock);
    free(src->base_url);
    headers_fini(&src->hdr);
    ratelimit_free(src->rl);
}

static int source_init(struct source *src, const struct source_cfg *sc, struct dr_err *err)
{
    pthread_mutex_init(&src->ban_lock, NULL);
    src->name = sc->name ? sc->name : "";
    if (!sc->base_url || !*sc->base_url)
        return err_set(err, "sources.%s: base_url is missing", src->name);
    src->base_url = strdup(sc->base_url);
    if (!src->base_url)
        return err_set(err, "sources.%s: out of memory", src->name);
    size_t bl = strlen(src->base_url);
    while (bl > 0 && src->base_url[bl - 1] == '/')
        src->base_url[--bl] = '\0';
    src->timeout_ms = sc->timeout_ms > 0 ? sc->timeout_ms : 30000;
    src->connect_timeout_ms = sc->connect_timeout_ms > 0 ? sc->connect_timeout_ms : 10000;
    src->max_retries = sc->max_retries >= 0 ? sc->max_retries : 0;
    src->retry_delay_ms = sc->retry_delay_ms >= 0 ? sc->retry_delay_ms : 0;
    src->max_retry_delay_ms = sc->max_retry_delay_ms > 0 ? sc->max_retry_delay_ms : 30000;
    src->max_body_bytes = sc->max_body_bytes > 0 ? sc->max_body_bytes : 64LL << 20;
    src->ban_status = sc->ban_status;
    size_t n = 0, pace = 0;
    struct ratelimit_window w[16];
    for (size_t i = 0; i < sc->n_limits && i < 16; i++) {
        const struct limit_cfg *lc = &sc->limits[i];
        if (lc->reset != LIMIT_SLIDING) {
            struct calendar_window *cw = &src->cal[src->n_cal++];
            cw->cap = lc->cap;
            cw->weighted = lc->weighted;
            if (lc->reset == LIMIT_FIXED) {
                cw->unit = NULL;
                cw->per_ms = lc->per_ms;
                snprintf(cw->key, sizeof cw->key, "%s/fixed_%" PRId64 "ms",
                         lc->weighted ? "weight" : "requests", cw->per_ms);
                continue;
            }
            cw->unit = lc->reset == LIMIT_UTC_DAY ? "day" : "month";
            cw->per_ms = 1;
            snprintf(cw->key, sizeof cw->key, "%s/utc_%s", lc->weighted ? "weight" : "requests",
                     cw->unit);
            continue;
        }
        w[n] = (struct ratelimit_window){ .cap = lc->cap, .per_ns = lc->per_ms * 1000000LL,
                                          .weighted = lc->weighted };
        src->used_header[n] = lc->used_header;
        src->per_ns[n] = w[n].per_ns;
        if (w[n].per_ns < w[pace].per_ns)
            pace = n;
        n++;
    }
    if (n > 0) {
        src->n_windows = n;
        src->rl = ratelimit_new_windows(w, n, PACE_MARGIN, sc->burst >= 1 ? sc->burst : 1);
        if (!src->rl)
            return err_set(err, "sources.%s: bad limits", src->name);
        /* The send gate spaces requests, not weight: only for a request window. */
        if (sc->burst <= 1 && !w[pace].weighted)
            src->gate_ns = (int64_t)((double)w[pace].per_ns / ((double)w[pace].cap * GATE_MARGIN));
    } else if (sc->rate_limit_per_sec > 0) {
        src->rl = ratelimit_new(sc->rate_limit_per_sec * PACE_MARGIN,
                                sc->burst >= 1 ? sc->burst : 1);
        if (!src->rl)
            return err_set(err, "sources.%s: bad rate limit %g/s, burst %d", src->name,
                           sc->rate_limit_per_sec, sc->burst);
        if (sc->burst <= 1)
            src->gate_ns = (int64_t)(1e9 / (sc->rate_limit_per_sec * GATE_MARGIN));
    }
    __atomic_store_n(&src->last_send_ns, INT64_MIN / 4, __ATOMIC_RELAXED);
    __atomic_store_n(&src->gate_cur_ns, src->gate_ns, __ATOMIC_RELAXED);
    return headers_build(&src->hdr, src->name, sc->headers, sc->n_headers, err);
}

struct http_sources *http_sources_new(const struct config *cfg, struct dr_err *err)
{
    struct http_sources *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "out of memory");
        return NULL;
    }
    size_t n = cfg ? cfg->n_sources : 0;
    pthread_mutex_init(&s->db_lock, NULL);
    s->src = calloc(n ? n : 1, sizeof *s->src);
    if (!s->src || (cfg && cfg->database_url && !(s->db_url = strdup(cfg->database_url)))) {
        free(s->src);
        pthread_mutex_destroy(&s->db_lock);
        free(s);
        err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s->n = i + 1;
        if (source_init(&s->src[i], &cfg->sources[i], err) < 0) {
            http_sources_free(s);
            return NULL;
        }
    }
    s->n = n;
    return s;
}

void http_sources_free(struct http_sources *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        source_fini(&s->src[i]);
    free(s->src);
    if (s->db)
        PQfinish(s->db);
    free(s->db_url);
    pthread_mutex_destroy(&s->db_lock);
    free(s);
}

void http_sources_stats(struct http_sources *s, struct http_stats *out)
{
    out->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
    out->responses_429 = __atomic_load_n(&s->responses_429, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&s->retries, __ATOMIC_RELAXED);
    out->rate_wait_ms = __atomic_load_n(&s->rate_wait_ns, __ATOMIC_RELAXED) / 1000000;
}

json_t *http_sources_counters(struct http_sources *s)
{
    json_t *all = json_object();
    for (size_t i = 0; all && i < s->n; i++) {
        struct source *src = &s->src[i];
        char key[200];
        for (int k = 0; k < 501; k++) {
            int64_t v = __atomic_load_n(&src->by_status[k], __ATOMIC_RELAXED);
            if (!v)
                continue;
            if (k)
                snprintf(key, sizeof key, "http:%s:%d", src->name, k + 99);
            else
                snprintf(key, sizeof key, "http:%s:none", src->name);
            json_object_set_new(all, key, json_integer(v));
        }
        int64_t wait = __atomic_load_n(&src->wait_ns, __ATOMIC_RELAXED) / 1000000;
        if (wait) {
            snprintf(key, sizeof key, "rate_wait_ms:%s", src->name);
            json_object_set_new(all, key, json_integer(wait));
        }
    }
    return all;
}

/* ---- clients ---- */

struct http_client *http_client_new(struct http_sources *s)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->s = s;
    c->curl = curl_easy_init();
    if (!c->curl) {
        http_client_free(c);
        return NULL;
    }
    c->rng = (uint64_t)mono_ns() ^ ((uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ULL);
    if (!c->rng)
        c->rng = 1;
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* never carry credentials elsewhere */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dagrun");
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c);
}

static bool cancelled(const struct http_call *call);

/* ---- one attempt ---- */

struct attempt {
    struct http_client *c;
    dr_http_sink sink;
    void *ud;
    int64_t cap;                /* max_body_bytes */
    int64_t received;           /* decoded body bytes seen this attempt */
    size_t delivered;           /* bytes handed to the sink */
    char *body;                 /* buffered body (non-streaming, or a non-2xx answer) */
    size_t len, size;
    long status;                /* known once the headers are in */
    bool over_cap, sink_stopped, oom;
    char retry_after[64];       /* the last Retry-After header value, or "" */
    int64_t used[16];           /* per window: what the server reports in its used_header */
    bool used_seen[16];
    const struct http_call *call;
    struct source *src;
    struct http_sources *s;
    bool gate_failed;           /* cancelled or past the deadline at the gate */
};

static bool append(struct attempt *a, const char *data, size_t n)
{
    if (a->len + n + 1 > a->size) {
        size_t sz = a->size ? a->size : 4096;
        while (sz < a->len + n + 1)
            sz *= 2;
        char *p = realloc(a->body, sz);
        if (!p)
            return false;
        a->body = p;
        a->size = sz;
    }
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = '\0';
    return true;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    a->received += (int64_t)n;
    if (a->received > a->cap) {
        /* CURLOPT_MAXFILESIZE_LARGE only sees a declared Content-Length; a
         * chunked or compressed body is cut off here. */
        a->over_cap = true;
        return 0;
    }
    if (!a->status)
        curl_easy_getinfo(a->c->curl, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->sink && a->status >= 200 && a->status < 300) {
        if (n && a->sink(a->ud, data, n) != 0) {
            a->sink_stopped = true;
            return 0;
        }
        a->delivered += n;
        return n;
    }
    if (!append(a, data, n)) {
        a->oom = true;
        return 0;
    }
    return n;
}

/* A header naming a window's use (sources.<name>.limits[i].used_header):
 * records its whole number in a->used[i]. True when the header was one. */
static bool used_header(struct attempt *a, const char *data, size_t n)
{
    for (size_t i = 0; i < a->src->n_windows; i++) {
        const char *h = a->src->used_header[i];
        size_t hl = h ? strlen(h) : 0;
        if (!hl || n <= hl || data[hl] != ':' || strncasecmp(data, h, hl) != 0)
            continue;
        long long v = 0;
        size_t k = hl + 1;
        while (k < n && (data[k] == ' ' || data[k] == '\t'))
            k++;
        size_t digits = 0;
        while (k < n && data[k] >= '0' && data[k] <= '9' && v < 1000000000000LL)
            v = v * 10 + (data[k++] - '0'), digits++;
        if (digits) {
            a->used[i] = v;
            a->used_seen[i] = true;
        }
        return true;
    }
    return false;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the last one. */
        a->retry_after[0] = '\0';
        a->status = 0;
        memset(a->used_seen, 0, sizeof a->used_seen);
    } else if (used_header(a, data, n)) {
    } else if (n > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        const char *v = data + 12;
        size_t vl = n - 12;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof a->retry_after)
            vl = sizeof a->retry_after - 1;
        memcpy(a->retry_after, v, vl);
        a->retry_after[vl] = '\0';
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    struct attempt *a = ud;
    return cancelled(a->call) ? 1 : 0;
}

static int sleep_until(int64_t until_ns, const struct http_call *call, const char **why);

/* Called by curl (CURLOPT_VERBOSE, gate on) once a request's headers are on
 * the wire: from then on the gate counts the next spacing from this send, not
 * from when the request passed the gate. On a busy machine a thread can lose
 * the CPU between the two for milliseconds (measured beside two CPU hogs:
 * 2 ms at the 90th percentile, 7 ms at the 99th), more than the gate's room,
 * and the next request, on time, would reach the server too soon after it. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)h, (void)data, (void)size;
    struct attempt *a = ud;
    if (type != CURLINFO_HEADER_OUT || !a)
        return 0;
    int64_t now = mono_ns();
    int64_t last = __atomic_load_n(&a->src->last_send_ns, __ATOMIC_ACQUIRE);
    while (last < now && !__atomic_compare_exchange_n(&a->src->last_send_ns, &last, now, true,
                                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    return 0;
}

/* Called by curl on this thread just before the request is sent: the send
 * spacing gate described at PACE_MARGIN. Lock-free (compare and swap). */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    (void)ip, (void)local_ip, (void)port, (void)local_port;
    struct attempt *a = ud;
    struct source *src = a->src;
    if (!src->gate_ns)
        return CURL_PREREQFUNC_OK;
    int64_t last = __atomic_load_n(&src->last_send_ns, __ATOMIC_ACQUIRE);
    for (;;) {
        int64_t now = mono_ns();
        int64_t earliest = last + __atomic_load_n(&src->gate_cur_ns, __ATOMIC_RELAXED);
        if (now < earliest) {
            const char *why;
            if (sleep_until(earliest, a->call, &why) < 0) {
                a->gate_failed = true;
                return CURL_PREREQFUNC_ABORT;
            }
            __atomic_fetch_add(&a->s->rate_wait_ns, earliest - now, __ATOMIC_RELAXED);
            __atomic_fetch_add(&src->wait_ns, earliest - now, __ATOMIC_RELAXED);
            now = mono_ns();
        }
        /* Another request may have passed while we slept: then wait for it. */
        if (__atomic_compare_exchange_n(&src->last_send_ns, &last, now, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return CURL_PREREQFUNC_OK;
    }
}

/* ---- waiting ---- */

/* The flag is set by another thread: read it atomically (the setter should
 * use __atomic_store_n), so the race is defined and tsan stays quiet. */
static bool cancelled(const struct http_call *call)
{
    return call && call->cancel && __atomic_load_n((const int *)call->cancel, __ATOMIC_ACQUIRE);
}

static bool past_deadline(const struct http_call *call, int64_t now_ns)
{
    return call && call->deadline_ms > 0 && now_ns / 1000000 >= call->deadline_ms;
}

/* Sleeps until the monotonic time until_ns in slices, outside any lock.
 * Returns 0, or -1 when cancelled or past the deadline (why says which). */
static int sleep_until(int64_t until_ns, const struct http_call *call, const char **why)
{
    for (;;) {
        if (cancelled(call)) {
            *why = "cancelled";
            return -1;
        }
        int64_t now = mono_ns();
        if (past_deadline(call, now)) {
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
static int64_t retry_after_ms(const char *v)
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

/* True when a failed transfer's cause is a process out of file descriptors: curl's errno
 * says EMFILE/ENFILE, or (curl often keeps only "Couldn't connect") no socket can be opened. */
static bool out_of_fds(CURL *h)
{
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno == EMFILE || os_errno == ENFILE)
        return true;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        close(fd);
        return false;
    }
    return errno == EMFILE || errno == ENFILE;
}

static bool transient_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static void set_error(dr_http_response *resp, const struct source *src, const char *url,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_error(dr_http_response *resp, const struct source *src, const char *url,
                      const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(resp->error, sizeof resp->error, "GET %s: %s", url, msg);
    headers_redact(&src->hdr, resp->error);
}

/* A retry's warning, with the source's secrets redacted. */
static void log_retry(const struct source *src, const struct http_call *call, const char *url,
                      const char *what, const struct http_decision *d, int transient)
{
    char msg[700];
    if (d->step == HTTP_STEP_WAIT_429)
        snprintf(msg, sizeof msg, "GET %s: %s, retry in %" PRId64 " ms", url, what, d->wait_ms);
    else
        snprintf(msg, sizeof msg, "GET %s: %s, retry %d/%d in %" PRId64 " ms", url, what,
                 transient, src->max_retries, d->wait_ms);
    headers_redact(&src->hdr, msg);
    log_msg(DR_LOG_WARN, call ? call->run_id : NULL, call ? call->task : NULL,
            call ? call->item : NULL, "%s", msg);
}

/* Sets up the handle for one request of src; the attempt a receives. */
static void prepare(CURL *h, struct source *src, const char *url, struct attempt *a)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, src->hdr.list);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)src->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)src->max_body_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, a);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, a);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, a);
    curl_easy_setopt(h, CURLOPT_VERBOSE, src->gate_ns ? 1L : 0L);
}

/* The handle keeps pointers into http_get's frame: clear them. */
static void unprepare(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, NULL);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, NULL);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
}

/* Waits for the rate limiter's reservation for the next attempt (every
 * attempt, retries included: reserve under the limiter's lock, sleep here
 * outside it). Returns 0, or -1 with *why (cancelled, deadline passed). */
static int pace(struct http_sources *s, struct source *src, const struct http_call *call,
                int64_t weight, int64_t *granted_ns, const char **why)
{
    int64_t now = mono_ns();
    *granted_ns = now;
    if (cancelled(call) || past_deadline(call, now)) {
        *why = cancelled(call) ? "cancelled" : "deadline passed";
        return -1;
    }
    if (src->rl) {
        int64_t at = ratelimit_reserve_weight(src->rl, now, weight);
        *granted_ns = at;
        if (at > now) {
            __atomic_fetch_add(&s->rate_wait_ns, at - now, __ATOMIC_RELAXED);
            __atomic_fetch_add(&src->wait_ns, at - now, __ATOMIC_RELAXED);
            if (sleep_until(at, call, why) < 0)
                return -1;
        }
        if (cancelled(call) || past_deadline(call, mono_ns())) {
            *why = cancelled(call) ? "cancelled" : "deadline passed";
            return -1;
        }
    }
    return 0;
}

/* The server's count of window i (its used_header), for its current window
 * aligned to the clock (a minute window starts on the minute): the window
 * ends at the next multiple of per on the wall clock. */
static void sync_window(struct source *src, size_t i, int64_t used, int64_t sent_ns)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now = mono_ns();
    int64_t wall_ns = (int64_t)wall.tv_sec * 1000000000LL + wall.tv_nsec;
    int64_t per = src->per_ns[i];
    int64_t left = per - wall_ns % per;
    ratelimit_sync(src->rl, i, used, now, now + left, sent_ns);
}

/* ---- calendar windows, counted in PostgreSQL ---- */

/* The start of the current window, UTC: of the day or month ($3), or with $3
 * NULL of the window of $6 ms from the Unix epoch ("reset": "fixed"). */
#define WINDOW_START(unit, per)                                                           \
    "coalesce(date_trunc(" unit "::text, now() AT TIME ZONE 'UTC'), to_timestamp(floor("   \
    "extract(epoch FROM now()) * 1000 / " per "::bigint) * " per "::bigint / 1000.0) "     \
    "AT TIME ZONE 'UTC')"

/* Takes units from the current window, unless that would go over cap: no row
 * comes back then. */
static const char take_sql[] =
    "INSERT INTO dagrun.source_window AS w (source, window_key, period_start, used) "
    "VALUES ($1, $2, " WINDOW_START("$3", "$6") ", $4::bigint) "
    "ON CONFLICT (source, window_key, period_start) DO UPDATE SET used = w.used + EXCLUDED.used "
    "WHERE w.used + EXCLUDED.used <= $5::bigint "
    "RETURNING used";
/* When the current window ends: UTC text and Unix seconds. */
static const char reopen_sql[] =
    "SELECT to_char(e, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ceil(extract(epoch FROM e))::bigint "
    "FROM (SELECT " WINDOW_START("$1", "$2") " + coalesce(('1 ' || $1::text)::interval, "
    "make_interval(secs => $2::bigint / 1000.0)) AS e) x";

/* This thread's latest refusal by a used-up window (see http_parked_take). */
static _Thread_local struct { int64_t until; char why[400]; } parked;

int64_t http_parked_take(char *why, size_t whylen)
{
    int64_t until = parked.until;
    if (until && why && whylen)
        snprintf(why, whylen, "%s", parked.why);
    parked.until = 0;
    return until;
}

static bool db_ok(PGconn *db)
{
    return db && PQstatus(db) == CONNECTION_OK;
}

/* Runs sql with params on s->db (s->db_lock held); NULL after filling why. */
static PGresult *db_exec(struct http_sources *s, const char *sql, int n, const char *const *v,
                         ExecStatusType want, char *why, size_t whylen)
{
    PGresult *r = PQexecParams(s->db, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == want)
        return r;
    const char *m = PQresultErrorMessage(r);
    snprintf(why, whylen, "%.*s", (int)strcspn(m && *m ? m : PQerrorMessage(s->db), "\n"),
             m && *m ? m : PQerrorMessage(s->db));
    PQclear(r);
    return NULL;
}

/* Takes weight from every calendar window of src at once (all or none), on the
 * sources' own connection (autocommit: the count stands whatever the item's
 * transaction does). Returns 0, or -1 with why: a window is used up (until
 * when it reopens) or the count could not be kept; no request may go then. */
static int calendar_take(struct http_sources *s, struct source *src, int64_t weight, char *why,
                         size_t whylen)
{
    if (!s->db_url) {
        snprintf(why, whylen, "sources.%s: its limits counted by calendar need a database "
                 "(database_url)", src->name);
        return -1;
    }
    int rc = -1;
    pthread_mutex_lock(&s->db_lock);
    if (!db_ok(s->db)) {
        if (s->db)
            PQfinish(s->db);
        s->db = PQconnectdb(s->db_url);
        if (!db_ok(s->db)) {
            snprintf(why, whylen, "sources.%s: cannot count its limits: %.*s", src->name,
                     (int)strcspn(PQerrorMessage(s->db), "\n"), PQerrorMessage(s->db));
            goto out;
        }
    }
    char e[300];
    PGresult *r = db_exec(s, "BEGIN", 0, NULL, PGRES_COMMAND_OK, e, sizeof e);
    if (!r) {
        snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
        goto out;
    }
    PQclear(r);
    for (size_t i = 0; i < src->n_cal; i++) {
        const struct calendar_window *cw = &src->cal[i];
        char units[24], cap[24], per[24];
        int64_t u = cw->weighted ? weight : 1;
        snprintf(units, sizeof units, "%" PRId64, u > cw->cap ? cw->cap : u);
        snprintf(cap, sizeof cap, "%" PRId64, cw->cap);
        snprintf(per, sizeof per, "%" PRId64, cw->per_ms);
        const char *v[6] = { src->name, cw->key, cw->unit, units, cap, per };
        if (!(r = db_exec(s, take_sql, 6, v, PGRES_TUPLES_OK, e, sizeof e))) {
            snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
            goto rollback;
        }
        int rows = PQntuples(r);
        PQclear(r);
        if (rows == 0) {
            char at[40] = "?", period[48];
            int64_t until = 0;
            const char *v1[2] = { cw->unit, per };
            if ((r = db_exec(s, reopen_sql, 2, v1, PGRES_TUPLES_OK, e, sizeof e))) {
                snprintf(at, sizeof at, "%s", PQgetvalue(r, 0, 0));
                until = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
                PQclear(r);
            }
            if (cw->unit) {
                snprintf(period, sizeof period, "UTC %s", cw->unit);
            } else {
                char d[24];
                duration_format(cw->per_ms, d, sizeof d);
                snprintf(period, sizeof period, "%s (fixed windows)", d);
            }
            snprintf(why, whylen, "sources.%s: its %" PRId64 " %s per %s are used up; the "
                     "window reopens at %s", src->name, cw->cap,
                     cw->weighted ? "weight" : "requests", period, at);
            if (until > 0) {
                parked.until = until;
                snprintf(parked.why, sizeof parked.why, "%s", why);
            }
            goto rollback;
        }
    }
    if ((r = db_exec(s, "COMMIT", 0, NULL, PGRES_COMMAND_OK, e, sizeof e))) {
        PQclear(r);
        rc = 0;
    } else {
        snprintf(why, whylen, "sources.%s: cannot count its limits: %s", src->name, e);
    }
    goto out;
rollback:
    PQclear(PQexec(s->db, "ROLLBACK"));
out:
    pthread_mutex_unlock(&s->db_lock);
    return rc;
}

/* ---- the request ---- */

/* The weight of this thread's next http_get (0: 1), see http_next_weight. */
static _Thread_local int64_t next_weight;

void http_next_weight(int64_t weight)
{
    next_weight = weight;
}

int http_get(struct http_client *c, const char *source, const char *path, dr_http_sink sink,
             void *ud, dr_http_response *resp, const struct http_call *call)
{
    int64_t weight = next_weight > 0 ? next_weight : 1;
    next_weight = 0;
    return http_get_weighted(c, source, path, weight, sink, ud, resp, call);
}

/* True (resp filled: the ban status, no body, an error saying until when)
 * when src is banned: no request may be sent. */
static bool banned(struct source *src, const char *url, dr_http_response *resp)
{
    pthread_mutex_lock(&src->ban_lock);
    bool ban = src->banned_until_ns && mono_ns() < src->banned_until_ns;
    if (ban)
        snprintf(resp->error, sizeof resp->error, "GET %s: not sent: %s", url, src->banned_why);
    pthread_mutex_unlock(&src->ban_lock);
    if (!ban)
        return false;
    resp->status = src->ban_status;
    headers_redact(&src->hdr, resp->error);
    return true;
}

/* A ban answer: no request of the source goes before Retry-After (a
 * Retry-After of seconds or a date; none: for the rest of this process).
 * The ban's text (the latest end) goes to why. */
static void ban(struct source *src, int64_t retry_after_ms, char *why, size_t whylen)
{
    char until[64] = "further notice (no Retry-After)";
    if (retry_after_ms >= 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        time_t t = now.tv_sec + (time_t)((retry_after_ms + 999) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ (Retry-After)", &tm);
    }
    int64_t end = retry_after_ms >= 0 ? mono_ns() + retry_after_ms * 1000000LL : INT64_MAX;
    pthread_mutex_lock(&src->ban_lock);
    /* A ban only ever moves its end out. */
    if (end > src->banned_until_ns) {
        src->banned_until_ns = end;
        snprintf(src->banned_why, sizeof src->banned_why, "sources.%s is banned until %s after "
                 "an HTTP %d answer", src->name, until, src->ban_status);
    }
    snprintf(why, whylen, "%s", src->banned_why);
    pthread_mutex_unlock(&src->ban_lock);
}

int http_get_weighted(struct http_client *c, const char *source, const char *path, int64_t weight,
                      dr_http_sink sink, void *ud, dr_http_response *resp,
                      const struct http_call *call)
{
    memset(resp, 0, sizeof *resp);
    struct http_sources *s = c->s;
    size_t si = 0;
    while (si < s->n && strcmp(s->src[si].name, source) != 0)
        si++;
    if (si == s->n) {
        snprintf(resp->error, sizeof resp->error, "unknown source \"%s\"", source);
        return -1;
    }
    struct source *src = &s->src[si];
    if (src->hdr.unusable[0]) {
        snprintf(resp->error, sizeof resp->error, "%s: %s", src->name, src->hdr.unusable);
        return -1;
    }
    size_t ul = strlen(src->base_url) + strlen(path) + 1;
    char *url = malloc(ul);
    if (!url) {
        snprintf(resp->error, sizeof resp->error, "%s: out of memory", src->name);
        return -1;
    }
    snprintf(url, ul, "%s%s", src->base_url, path);
    if (src->ban_status && banned(src, url, resp)) {
        resp->body = strdup("");
        free(url);
        return resp->body ? 0 : -1;
    }

    CURL *h = c->curl;
    struct attempt a = { .c = c, .sink = sink, .ud = ud, .cap = src->max_body_bytes,
                         .call = call, .src = src, .s = s };
    prepare(h, src, url, &a);
    const struct http_policy policy = { .max_retries = src->max_retries,
                                        .retry_delay_ms = src->retry_delay_ms,
                                        .max_retry_delay_ms = src->max_retry_delay_ms };
    struct http_retry_state st = { 0 };
    int ret = -1;
    char cap_text[32];
    fmt_bytes(cap_text, sizeof cap_text, src->max_body_bytes);

    for (;;) {
        const char *why = NULL;
        if (src->ban_status && banned(src, url, resp)) {
            ret = 0;
            goto out;
        }
        int64_t sent_ns;
        if (pace(s, src, call, weight, &sent_ns, &why) < 0) {
            set_error(resp, src, url, "%s", why);
            goto out;
        }
        char quota_why[400];
        if (src->n_cal && calendar_take(s, src, weight, quota_why, sizeof quota_why) < 0) {
            set_error(resp, src, url, "not sent: %s", quota_why);
            resp->status = DR_HTTP_NOT_SENT;
            goto out;
        }
        int64_t timeout = src->timeout_ms;
        if (call && call->deadline_ms > 0) {
            int64_t left = call->deadline_ms - mono_ns() / 1000000;
            if (left < timeout)
                timeout = left > 1 ? left : 1;
        }
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);

        a.received = 0;
        a.len = 0;
        if (a.body)
            a.body[0] = '\0';
        a.status = 0;
        a.over_cap = a.sink_stopped = a.oom = a.gate_failed = false;
        a.retry_after[0] = '\0';
        memset(a.used_seen, 0, sizeof a.used_seen);
        c->errbuf[0] = '\0';
        resp->attempts++;
        __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        __atomic_fetch_add(&src->by_status[status >= 100 && status < 600 ? status - 99 : 0], 1,
                           __ATOMIC_RELAXED);

        /* Stops of our own making come first: they are not the server's answer. */
        if (a.over_cap || rc == CURLE_FILESIZE_EXCEEDED) {
            set_error(resp, src, url, "response body over the %s cap", cap_text);
            goto out;
        }
        if (a.sink_stopped) {
            set_error(resp, src, url, "stopped by the receiver after %zu bytes", a.delivered);
            goto out;
        }
        if (a.oom) {
            set_error(resp, src, url, "out of memory reading the response");
            goto out;
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK && (cancelled(call) || a.gate_failed)) {
            set_error(resp, src, url, "%s", cancelled(call) ? "cancelled" : "deadline passed");
            goto out;
        }
        /* Out of file descriptors: no retry can help, say so at once. */
        if (rc != CURLE_OK && transient_curl(rc) && out_of_fds(h)) {
            set_error(resp, src, url, "the process is out of file descriptors (raise ulimit -n "
                      "or lower max_active_tasks)");
            goto out;
        }

        /* The server's own count of a window keeps the limiter in step. */
        for (size_t i = 0; src->rl && i < src->n_windows; i++)
            if (a.used_seen[i])
                sync_window(src, i, a.used[i], sent_ns);
        struct http_outcome o = {
            .transport = rc == CURLE_OK ? HTTP_ANSWERED
                         : transient_curl(rc) ? HTTP_TRANSIENT_ERROR : HTTP_BROKEN,
            .status = status, .delivered = a.delivered,
            .retry_after_ms = status == 429 || (status && status == src->ban_status)
                              ? retry_after_ms(a.retry_after) : -1,
        };
        if (rc == CURLE_OK && src->ban_status && status == src->ban_status) {
            /* Never retried: every worker of the source stops sending. */
            char ban_text[160];
            ban(src, o.retry_after_ms, ban_text, sizeof ban_text);
            resp->status = status;
            set_error(resp, src, url, "HTTP %ld: %s", status, ban_text);
            ret = 0;
            goto out;
        }
        if (status == 429)
            __atomic_fetch_add(&s->responses_429, 1, __ATOMIC_RELAXED);
        if (rc == CURLE_OK && src->rl)      /* the spacing learns from every answer */
            __atomic_store_n(&src->gate_cur_ns, (int64_t)(src->gate_ns * ratelimit_answer(
                                 src->rl, status == 429, mono_ns())), __ATOMIC_RELAXED);
        struct http_decision d = http_next_step(&o, &st, &policy, &c->rng);
        const char *cause = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
        char what[96];
        switch (d.step) {
        case HTTP_STEP_DONE:
            resp->status = status;
            if (status < 200 || status > 299)
                set_error(resp, src, url, "HTTP %ld", status);
            ret = 0;
            goto out;
        case HTTP_STEP_AUTH:
            resp->status = status;
            if (src->hdr.cred_vars[0])
                set_error(resp, src, url, "HTTP %ld: credentials refused; check %s (named in "
                          "sources.%s.headers)", status, src->hdr.cred_vars, src->name);
            else
                set_error(resp, src, url, "HTTP %ld", status);
            ret = 0;
            goto out;
        case HTTP_STEP_GIVE_UP:
            if (o.transport == HTTP_ANSWERED) {
                resp->status = status;
                if (status == 429)
                    set_error(resp, src, url, "HTTP 429 %d times in a row; giving up",
                              st.in_a_row_429);
                else
                    set_error(resp, src, url, "HTTP %ld after %d attempts", status,
                              resp->attempts);
                ret = 0;
            } else {
                set_error(resp, src, url, "%s (after %d attempts)", cause, resp->attempts);
            }
            goto out;
        case HTTP_STEP_FAIL:
            if (a.delivered > 0)
                set_error(resp, src, url, "%s after %zu bytes were delivered", cause,
                          a.delivered);
            else
                set_error(resp, src, url, "%s", cause);
            goto out;
        case HTTP_STEP_WAIT_429:
            /* Every worker of this source backs off, not only this one. */
            if (src->rl)
                ratelimit_hold(src->rl, mono_ns() + d.wait_ms * 1000000LL);
            snprintf(what, sizeof what, "HTTP 429%s", o.retry_after_ms >= 0 ? " (Retry-After)"
                                                                             : "");
            break;
        case HTTP_STEP_RETRY:
            if (o.transport == HTTP_ANSWERED)
                snprintf(what, sizeof what, "HTTP %ld", status);
            else
                snprintf(what, sizeof what, "%s", cause);
            break;
        }
        __atomic_fetch_add(&s->retries, 1, __ATOMIC_RELAXED);
        log_retry(src, call, url, what, &d, st.transient);
        if (sleep_until(mono_ns() + d.wait_ms * 1000000LL, call, &why) < 0) {
            set_error(resp, src, url, "%s (%s, waiting to retry)", why, what);
            goto out;
        }
    }
out:
    if (ret == 0) {
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
        if (!a.body && !append(&a, "", 0)) {
            ret = -1;
            set_error(resp, src, url, "out of memory reading the response");
        }
    }
    if (ret == 0) {
        /* An error answer may quote what was sent: no secret leaves here. */
        if (resp->status < 200 || resp->status > 299) {
            a.len = headers_redact_body(&src->hdr, a.body, a.len);
            a.body[a.len] = '\0';
        }
        resp->body = a.body;
        resp->len = a.len;
    } else {
        free(a.body);
    }
    unprepare(h);
    free(url);
    return ret;
}
