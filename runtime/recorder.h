/* runtime-private: plugins never include this */
/* Task-instance records on their way to the run state. The coordinator fills a batch and
 * hands it over; writer threads of the recorder's own (up to two, each with its own database
 * connection, started when a batch is handed over while every writer is busy) write the
 * batches, so the coordinator goes on dispatching while PostgreSQL takes the previous ones.
 * Batches may commit out of order: store_ti_write's upsert never lets an unmapped task's
 * "running" record replace its end. */
#ifndef DR_RECORDER_H
#define DR_RECORDER_H

#include <stddef.h>
#include "runstate.h"
#include "store.h"

struct recorder;

/* A recorder for run_id whose writers connect to url. While no writer runs (none needed yet,
 * or none could connect or start: a warning), batches are written at once on fallback, by the
 * caller's thread. NULL when out of memory. */
struct recorder *recorder_start(const char *url, struct store *fallback, const char *run_id);

/* Adds r to the open batch: the task id and map key are borrowed (they must live until
 * recorder_close), the error, output and checkpoint are copied. A record of an unmapped task
 * replaces that task's record still in the open batch. Returns the open batch's size. */
size_t recorder_add(struct recorder *rc, const struct ti_record *r);

/* Hands the open batch to the writers; waits while one batch more than there are writers is
 * already handed over and not yet written. */
void recorder_flush(struct recorder *rc);

/* Flushes, waits until every batch is written and frees rc. Returns how many records the
 * store refused (0: all written); msg gets the first error. rc may be NULL. */
size_t recorder_close(struct recorder *rc, char *msg, size_t msg_len);

#endif
