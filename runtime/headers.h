/* runtime-private: plugins never include this */
/* A source's request headers: ${VAR} expansion, the secrets they carry, and their redaction. */
#ifndef DR_HEADERS_H
#define DR_HEADERS_H

#include <stddef.h>
#include <curl/curl.h>
#include "config.h"
#include "err.h"

/* The header lines of one source, built once. Read-only after headers_build:
 * any number of threads may use it at once. */
struct headers {
    struct curl_slist *list;    /* "Name: value" with ${VAR} expanded, in config order */
    char **secrets;             /* the values of the variables the headers name: never printed */
    size_t n_secrets;
    char unusable[320];         /* why the headers cannot be sent ("A and B are not set"), or "" */
    char cred_vars[256];        /* the variables the headers name ("A, B and C"), or "" */
};

/* Builds h from the n headers of the source named `source` (for messages):
 * expands each value's ${VAR} from the environment and keeps the variables'
 * values as secrets. A variable that is unset or empty, or a value holding a
 * line break once expanded, is not an error here: h->unusable says why, for
 * the first request to report (a source no DAG uses needs no credentials).
 * getenv is not safe against a concurrent setenv: call before threads start.
 * Returns 0, or -1 with err (a template syntax error, out of memory); h is
 * then still fit for headers_fini. */
int headers_build(struct headers *h, const char *source, const struct header_cfg *cfg, size_t n,
                  struct dr_err *err);
/* Zeroes every header line and secret, then frees them. */
void headers_fini(struct headers *h);

/* Replaces every secret of h (3 characters or more) in the NUL-terminated
 * buf by "***"; the text only shrinks. */
void headers_redact(const struct headers *h, char *buf);
/* The same over len bytes (no NUL needed); returns the new length. */
size_t headers_redact_body(const struct headers *h, char *body, size_t len);

#endif
