/* The executor's retry heap: units waiting for their retry, earliest due first. */
#include "retryheap.h"

#include <stdlib.h>

#include "exec_private.h"

int retryheap_push(struct retryheap *h, struct unit *u)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct unit **a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return -1;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->a[parent]->due_ms <= u->due_ms)
            break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = u;
    return 0;
}

struct unit *retryheap_pop(struct retryheap *h)
{
    struct unit *top = h->a[0];
    struct unit *last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h->a[c + 1]->due_ms < h->a[c]->due_ms)
            c++;
        if (last->due_ms <= h->a[c]->due_ms)
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (n)
        h->a[i] = last;
    return top;
}

int64_t retryheap_due(const struct retryheap *h)
{
    return h->n ? h->a[0]->due_ms : INT64_MAX;
}

void retryheap_clear(struct retryheap *h)
{
    h->n = 0;
}

void retryheap_free(struct retryheap *h)
{
    free(h->a);
    h->a = NULL;
    h->n = h->cap = 0;
}
