/* kite_sim growable byte buffer for response bodies and CSV dumps */
#ifndef KITE_SIM_SBUF_H
#define KITE_SIM_SBUF_H

#include <stddef.h>

struct sbuf {
    char *p;        /* NUL-terminated after every append; owned; hand it on with sbuf_take */
    size_t len, cap;
};
/* Appends n bytes of s. Never fails (aborts when memory runs out). Any thread, own buffer. */
void sbuf_add(struct sbuf *b, const char *s, size_t n);
/* Appends a NUL-terminated string. */
void sbuf_adds(struct sbuf *b, const char *s);
/* Appends printf-formatted text. */
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (free() them) and leaves an empty buffer. Never NULL. */
char *sbuf_take(struct sbuf *b, size_t *len);

#endif
