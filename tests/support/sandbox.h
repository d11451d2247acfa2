/* Test support: one throwaway PostgreSQL per test process (tests/pg_sandbox.sh). */
#ifndef DAGRUN_TEST_SANDBOX_H
#define DAGRUN_TEST_SANDBOX_H

/* Starts a sandbox server in a new folder /tmp/dagrun-<tag>-XXXXXX (run from
 * the repo root). Returns its libpq URL (malloc'd: the caller frees it), or
 * NULL after printing why to stderr (the folder is then removed). One sandbox
 * at a time: NULL when one already runs. The first start registers
 * sandbox_stop with atexit. Single-threaded. */
char *sandbox_start(const char *tag);

/* The running sandbox's folder (its unix socket lives there), or "" when none
 * runs. Borrowed: valid until sandbox_stop. */
const char *sandbox_dir(void);

/* Stops the sandbox and deletes its folder; does nothing when none runs.
 * Prints to stderr when the stop script fails. */
void sandbox_stop(void);

#endif
