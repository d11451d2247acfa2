/* runtime-private: only store.c, store_owner.c and store_ti.c include this (the store's own state) */
/* The coordinator's store connection, shared by the files that implement store.h. */
#ifndef DR_STORE_PRIVATE_H
#define DR_STORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "err.h"


/* A run this store's session locked (store_run_lock), and the fencing epoch it took. */
struct store_lock {
    char *run_id;
    int64_t epoch;              /* dag_run.epoch after this process's takeover; 0: no row */
    bool lost;                  /* another process took the run over: write nothing more */
};

struct store {
    PGconn *conn;               /* owned; used by one thread at a time */
    char *url;                  /* for reconnecting; may hold a password: wiped on close */
    struct store_lock *locks;   /* runs locked with store_run_lock: re-taken on reconnect */
    size_t n_locks;
};

/* pgconn_exec on the store's connection, reconnecting once (store_reconnect) when the
 * connection was lost. Returns the result (caller PQclears) or NULL with err. */
PGresult *store_sexec(struct store *s, const char *sql, int n, const char *const *vals,
                      struct dr_err *err, const char *what_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Reopens a lost connection with backoff (100 ms doubling to 2 s, for up to 30 s) and
 * re-takes the run locks; a lock that cannot be re-taken, or whose run's epoch moved on
 * (another process took the run over), is marked lost. Returns true when connected again. Sleeps: the coordinator
 * waits here, its workers keep their own connections. */
bool store_reconnect(struct store *s);

/* The lock this store holds on run_id, or NULL. s may be NULL. */
struct store_lock *store_lock_of(struct store *s, const char *run_id);
/* The epoch a fenced statement of run_id must find, as text in buf, or NULL (no fence). */
const char *store_epoch_param(struct store *s, const char *run_id, char *buf, size_t len);
/* Marks a lock lost (another process took its run over), logging it once. l may be NULL. */
void store_mark_lost(struct store_lock *l);
/* After a reconnect: takes each run lock again on s->conn; a lock that cannot be taken, or
 * whose run's epoch moved on, is marked lost. Statements fail quietly (the lock is lost). */
void store_locks_retake(struct store *s);

#endif
