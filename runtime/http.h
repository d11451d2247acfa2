/* runtime-private: plugins never include this */
/* HTTP GET through named sources: libcurl, rate limits, retries, redaction. */
#ifndef DR_HTTP_H
#define DR_HTTP_H

#include <stdint.h>
#include <dagrun/task.h>
#include "config.h"
#include "err.h"

/* The sources of a config with their shared rate limiters. Thread-safe after
 * creation: every worker's client uses the same limiter per source, so the
 * configured rate holds across all workers. Each source's headers
 * (sources.<name>.headers) are built here, once, before workers start: their
 * ${VAR} references are expanded from the environment, and the values of those
 * variables are secrets, never logged or returned (replaced by "***" in
 * errors, log lines and non-2xx bodies). A missing variable is not an error
 * until a request needs it. */
struct http_sources;
struct http_sources *http_sources_new(const struct config *cfg, struct dr_err *err);
void http_sources_free(struct http_sources *s);

/* Totals since creation (thread-safe reads): requests sent, 429 answers,
 * retries, and milliseconds spent waiting for the rate limiter. */
struct http_stats {
    int64_t requests, responses_429, retries, rate_wait_ms;
};
void http_sources_stats(struct http_sources *s, struct http_stats *out);

/* The same per source, as a run stores them with its counters (summed over its resumes):
 * {"http:SOURCE:STATUS": attempts, ..., "rate_wait_ms:SOURCE": ms}, for the sources used;
 * STATUS is the HTTP status, or "none" for an attempt that got no HTTP answer. A new
 * object (thread-safe reads), or NULL when out of memory. */
json_t *http_sources_counters(struct http_sources *s);

/* One worker's client: owns one reused CURL handle (keep-alive). Use from one
 * thread only. */
struct http_client;
struct http_client *http_client_new(struct http_sources *s);
void http_client_free(struct http_client *c);

/* Context for log lines and for stopping early. */
struct http_call {
    const volatile int *cancel;     /* nonzero: give up (no new attempt) */
    int64_t deadline_ms;            /* CLOCK_MONOTONIC ms after which to give up; 0: none */
    const char *run_id, *task, *item;
};

/* ---- what one attempt's outcome means (pure; tested without a server) ---- */

#define HTTP_MAX_CONSECUTIVE_429 50

enum http_transport {
    HTTP_ANSWERED,              /* the server answered: status is set */
    HTTP_TRANSIENT_ERROR,       /* timeout, refused or reset connection, DNS: worth a retry */
    HTTP_BROKEN,                /* any other transport error (TLS, bad URL): not retried */
};

struct http_outcome {
    enum http_transport transport;
    long status;                /* HTTP_ANSWERED: the status code */
    size_t delivered;           /* body bytes already handed to a streaming sink */
    int64_t retry_after_ms;     /* the answer's Retry-After in ms; -1: absent or unreadable */
};

/* Carried from one attempt of a request to the next; starts zeroed. */
struct http_retry_state {
    int transient;              /* retries of transient failures so far (max_retries bounds) */
    int in_a_row_429;           /* consecutive 429 answers (HTTP_MAX_CONSECUTIVE_429 bounds) */
};

struct http_policy {
    int max_retries;
    int64_t retry_delay_ms;     /* first backoff (a 429 without Retry-After: 1000 when 0) */
    int64_t max_retry_delay_ms; /* cap of every wait, Retry-After included */
};

enum http_step {
    HTTP_STEP_DONE,             /* return the answer (2xx, or a 4xx for the caller to judge) */
    HTTP_STEP_AUTH,             /* 401/403: return the answer; the credentials were refused */
    HTTP_STEP_RETRY,            /* 5xx or transient transport error: retry after wait_ms */
    HTTP_STEP_WAIT_429,         /* 429: every worker of the source waits wait_ms (Retry-After,
                                 * capped, or backoff), then retry; not counted as a retry */
    HTTP_STEP_GIVE_UP,          /* retries (or the 429 bound) used up: the last outcome stands */
    HTTP_STEP_FAIL,             /* a transport error not retried, or part of the body delivered */
};

struct http_decision {
    enum http_step step;
    int64_t wait_ms;            /* RETRY and WAIT_429: how long to wait first */
};

/* Decides what the outcome o of an attempt means, updating st (counts) and
 * drawing backoff jitter (25 %) from *rng (backoff_rng). Pure apart from those. */
struct http_decision http_next_step(const struct http_outcome *o, struct http_retry_state *st,
                                    const struct http_policy *p, uint64_t *rng);

/* The implementation behind dr_http_get / dr_http_get_stream (sink NULL:
 * buffer the body in resp->body). Paces by the source's rate limit, retries
 * 429 (after Retry-After when given, else backoff; these retries are not
 * counted against max_retries), 5xx, timeouts and resets up to max_retries
 * with exponential backoff and jitter, and refuses bodies over
 * max_body_bytes. TLS peer and host verification are always on. A 401 or 403
 * answer is returned (status set) with an error naming the variables the
 * source's headers use. Never logs or returns a header value holding a
 * variable, nor the value of any variable the headers name. */
int http_get(struct http_client *c, const char *source, const char *path, dr_http_sink sink,
             void *ud, dr_http_response *resp, const struct http_call *call);
/* http_get for a request of the given weight (>= 1): the source's weight
 * windows (sources.<name>.limits) count it as weight, its request windows as
 * one. Answers carrying a window's used_header bring the limiter in step with
 * the server's count. An answer with the source's ban_status is never
 * retried: it is returned (status set, the error saying until when), and
 * until its Retry-After passes (none given: for the life of the process) no
 * request of the source is sent: each returns 0 at once with that status, no
 * body, attempts 0 and an error starting "not sent". */
/* Sets the weight of the calling thread's next http_get (once; 0 or less:
 * weight 1), for callers that reach http_get through a layer that does not
 * carry it (dr_http_get_weighted). */
void http_next_weight(int64_t weight);
/* When the calling thread's latest http_get was refused because a window
 * counted in PostgreSQL was used up (DR_HTTP_NOT_SENT): the Unix time (s) at
 * which that window reopens, with why (naming the source, the window and the
 * time) copied to why; else 0. Clears what it returns: each refusal is taken
 * once. */
int64_t http_parked_take(char *why, size_t whylen);
int http_get_weighted(struct http_client *c, const char *source, const char *path, int64_t weight,
                      dr_http_sink sink, void *ud, dr_http_response *resp,
                      const struct http_call *call);

#endif
