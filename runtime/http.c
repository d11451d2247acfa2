/* HTTP GET through named sources: libcurl, rate limits, retries, redaction. */
#include "http.h"
#include "http_int.h"

#include <curl/curl.h>
#include <errno.h>
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

#include "headers.h"
#include "log.h"
#include "ratelimit.h"

struct http_client {
    struct http_sources *s;
    CURL *curl;                 /* one handle, reused: its connection cache gives keep-alive */
    uint64_t rng;               /* jitter (backoff_rng) */
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- helpers ---- */

static void fmt_bytes(char *out, size_t n, int64_t b)
{
    if (b >= 1048576 && b % 1048576 == 0)
        snprintf(out, n, "%" PRId64 " MiB", b / 1048576);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, n, "%" PRId64 " KiB", b / 1024);
    else
        snprintf(out, n, "%" PRId64 " bytes", b);
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
    return http_wait_cancelled(a->call) ? 1 : 0;
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
            if (http_wait_until(earliest, a->call, &why) < 0) {
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
}

/* The handle keeps pointers into http_get's frame: clear them. */
static void unprepare(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, NULL);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
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
        if (http_wait_pace(s, src, call, weight, &sent_ns, &why) < 0) {
            set_error(resp, src, url, "%s", why);
            goto out;
        }
        char quota_why[400];
        if (src->n_cal && http_quota_take(s, src, weight, quota_why, sizeof quota_why) < 0) {
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
        if (rc == CURLE_ABORTED_BY_CALLBACK && (http_wait_cancelled(call) || a.gate_failed)) {
            set_error(resp, src, url, "%s",
                      http_wait_cancelled(call) ? "cancelled" : "deadline passed");
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
                http_wait_sync_window(src, i, a.used[i], sent_ns);
        struct http_outcome o = {
            .transport = rc == CURLE_OK ? HTTP_ANSWERED
                         : transient_curl(rc) ? HTTP_TRANSIENT_ERROR : HTTP_BROKEN,
            .status = status, .delivered = a.delivered,
            .retry_after_ms = status == 429 || (status && status == src->ban_status)
                              ? http_wait_retry_after_ms(a.retry_after) : -1,
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
        if (http_wait_until(mono_ns() + d.wait_ms * 1000000LL, call, &why) < 0) {
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
