/* runtime-private: only store.c, store_owner.c, store_ti.c and preflight.c include this */
/* PostgreSQL connections and statements: opening with the password redacted, SQLSTATE-aware
 * error messages, the one-statement exec helper, and UTF-8 cleaning of text parameters. */
#ifndef DR_PGCONN_H
#define DR_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "err.h"

/* The passwords a connection string may hold, each as written and decoded (percent-encoding,
 * a quoted key=value's backslashes): the URL's whole user-info and its password (up to the
 * last '@' and as libpq reads it, up to the first), `password=` of a key=value string or a
 * URL's query, and libpq's own reading. Values shorter than 3 bytes are left out. */
struct pgconn_secrets {
    char **text;                /* owned, wiped on free */
    size_t n;
    bool oom;                   /* one could not be kept: every message is withheld */
};
/* Finds the secrets of url (NULL: none) into sc (pgconn_secrets_free). Pure but for
 * libpq's parser; any thread. */
void pgconn_find_secrets(const char *url, struct pgconn_secrets *sc);
void pgconn_secrets_free(struct pgconn_secrets *sc);
/* Replaces every secret of sc in the NUL-terminated buf by "***" (again until none is left;
 * a text that keeps spelling one, or any text when sc->oom, is withheld whole); the text
 * only shrinks. */
void pgconn_redact(char *buf, const struct pgconn_secrets *sc);
/* True when a libpq message says the process ran out of file descriptors (EMFILE). */
bool pgconn_out_of_fds(const char *libpq_msg);
/* Sets err to the message for a connection string libpq could not parse (libpq_msg:
 * its message; quoted pieces of the URL are hidden), redacted with sc. */
void pgconn_parse_message(struct dr_err *err, const char *libpq_msg,
                          const struct pgconn_secrets *sc);
/* Sets err to "cannot connect to database at <host (port)|socket>: <cause>" from libpq's
 * message and PQhost/PQport (NULL: defaults), or to the out-of-file-descriptors message
 * with a hint; redacted with sc. */
void pgconn_connect_message(struct dr_err *err, const char *libpq_msg, const char *host,
                            const char *port, const struct pgconn_secrets *sc);

/* The contract of store_open_conn (store.h), which calls this. Any thread. */
PGconn *pgconn_open(const char *url, struct dr_err *err);

/* Copies the first line of s (trimmed; NULL reads as "") into buf. */
void pgconn_first_line(const char *s, char *buf, size_t len);

/* Sets err to "<what>: <server's primary message>" (or libpq's first line when the
 * failure was not the server's, e.g. a lost connection), with a hint to run
 * `dagrun initdb` when the SQLSTATE says a schema, table or column is missing.
 * Always returns -1. */
int pgconn_err(struct dr_err *err, PGconn *conn, const PGresult *res, const char *what);

/* Runs one parameterized statement (all parameters text, NULL for SQL NULL). Returns the
 * result (caller PQclears) or NULL with err set to "<what>: <message>". */
PGresult *pgconn_exec(PGconn *conn, const char *sql, int n, const char *const *vals,
                      struct dr_err *err, const char *what_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* A whole decimal integer (a column value); 0, or -1 when s is not one. */
int pgconn_parse_i64(const char *s, int64_t *out);

/* A JSON string for s; bytes that are not valid UTF-8 are replaced by '?' (PostgreSQL and
 * Jansson both refuse them). NULL when out of memory. */
json_t *pgconn_json_str(const char *s);

/* A text parameter: s itself when it is valid UTF-8 (or NULL), else a cleaned copy kept in
 * *tmp (caller frees *tmp). */
const char *pgconn_text_param(const char *s, char **tmp);

/* Loads a JSON text returned by the server; NULL with err when it does not parse. */
json_t *pgconn_load_json(const char *text, const char *what, struct dr_err *err);

#endif
