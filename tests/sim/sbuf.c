/* kite_sim growable byte buffer for response bodies and CSV dumps */
/* A part of kite_sim.c, which #includes it (KITE_SIM_UNITY); compiled alone it is empty. See
 * the note in kite_sim.c for why the simulator has no header. */
#ifdef KITE_SIM_UNITY
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    char *p;        /* NUL-terminated after every append; owned; hand it on with sbuf_take */
    size_t len, cap;
};
/* Appends n bytes of s. Never fails (aborts when memory runs out). Any thread, own buffer. */
static void sbuf_add(struct sbuf *b, const char *s, size_t n);
/* Appends a NUL-terminated string. */
static void sbuf_adds(struct sbuf *b, const char *s);
/* Appends printf-formatted text. */
static void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (free() them) and leaves an empty buffer. Never NULL. */
static char *sbuf_take(struct sbuf *b, size_t *len);


static void sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fputs("kite_sim: out of memory\n", stderr);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    sbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *sbuf_take(struct sbuf *b, size_t *len)
{
    sbuf_reserve(b, 0);
    b->p[b->len] = '\0';
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

#endif
