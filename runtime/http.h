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
 * configured rate holds across all workers. Credentials are read from the
 * environment variables the source names at creation; a missing variable is
 * not an error until a request needs it. */
struct http_sources;
struct http_sources *http_sources_new(const struct config *cfg, struct dr_err *err);
void http_sources_free(struct http_sources *s);

/* Totals since creation (thread-safe reads): requests sent, 429 answers,
 * retries, and milliseconds spent waiting for the rate limiter. */
struct http_stats {
    int64_t requests, responses_429, retries, rate_wait_ms;
};
void http_sources_stats(struct http_sources *s, struct http_stats *out);

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

/* The implementation behind dr_http_get / dr_http_get_stream (sink NULL:
 * buffer the body in resp->body). Paces by the source's rate limit, retries
 * 429 (after Retry-After when given, else backoff; these retries are not
 * counted against max_retries), 5xx, timeouts and resets up to max_retries
 * with exponential backoff and jitter, and refuses bodies over
 * max_body_bytes. TLS peer and host verification are always on. Never logs
 * or returns the Authorization header or the credential values. */
int http_get(struct http_client *c, const char *source, const char *path, dr_http_sink sink,
             void *ud, dr_http_response *resp, const struct http_call *call);

#endif
