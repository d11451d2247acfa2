/* runtime-private: plugins never include this */
/* The executor's retry heap: units waiting for their retry, earliest due first. */
#ifndef DR_RETRYHEAP_H
#define DR_RETRYHEAP_H

#include <stddef.h>
#include <stdint.h>

struct unit;

/* A binary min-heap of units by unit.due_ms. Zero-initialised: empty. The
 * coordinator's alone (no lock). */
struct retryheap {
    struct unit **a;
    size_t n, cap;
};

/* Adds u (its due_ms set). Returns 0, or -1 when out of memory (u not added). */
int retryheap_push(struct retryheap *h, struct unit *u);
/* Removes and returns the unit due first; the heap must not be empty. */
struct unit *retryheap_pop(struct retryheap *h);
/* The earliest due time, or INT64_MAX when empty. */
int64_t retryheap_due(const struct retryheap *h);
/* Forgets every unit (their owner keeps them); the storage stays for reuse. */
void retryheap_clear(struct retryheap *h);
/* Frees the storage. */
void retryheap_free(struct retryheap *h);

#endif
