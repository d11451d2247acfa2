/* PostgreSQL's binary COPY format: inline writers for the field types candle tables use. */
#ifndef DAGRUN_COPYBIN_H
#define DAGRUN_COPYBIN_H

/* A plugin that stores rows by `COPY ... FROM STDIN (FORMAT binary)` writes the stream with
 * these: dr_copybin_header once, then per row dr_copybin_row (the field count) and one
 * writer per field, then dr_copybin_trailer. Each writer appends at p and returns the new
 * end; the caller sizes the buffer (DR_COPYBIN_*_MAX bytes per field at most). Pure, any
 * thread. The layouts are PostgreSQL's send/recv formats (src/backend/utils/adt), stable
 * since PostgreSQL 7.4; integer timestamps (the default since 8.4) are assumed. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DR_COPYBIN_HEADER_LEN 19
#define DR_COPYBIN_INT8_MAX 12          /* length word + 8 bytes */
#define DR_COPYBIN_NUMERIC_MAX 68       /* length word + 8 + up to 28 base-10000 digits */

static inline unsigned char *dr_copybin_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static inline unsigned char *dr_copybin_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return p + 4;
}

static inline unsigned char *dr_copybin_u64(unsigned char *p, uint64_t v)
{
    return dr_copybin_u32(dr_copybin_u32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

/* The 11-byte signature, flags and header-extension length. */
static inline unsigned char *dr_copybin_header(unsigned char *p)
{
    memcpy(p, "PGCOPY\n\377\r\n\0", 11);
    return dr_copybin_u32(dr_copybin_u32(p + 11, 0), 0);
}

static inline unsigned char *dr_copybin_trailer(unsigned char *p)
{
    return dr_copybin_u16(p, 0xFFFF);
}

static inline unsigned char *dr_copybin_row(unsigned char *p, uint16_t fields)
{
    return dr_copybin_u16(p, fields);
}

static inline unsigned char *dr_copybin_null(unsigned char *p)
{
    return dr_copybin_u32(p, 0xFFFFFFFFu);
}

static inline unsigned char *dr_copybin_int8(unsigned char *p, int64_t v)
{
    return dr_copybin_u64(dr_copybin_u32(p, 8), (uint64_t)v);
}

/* text (or any type whose binary form is its bytes); s need not be NUL-terminated. */
static inline unsigned char *dr_copybin_text(unsigned char *p, const char *s, size_t n)
{
    p = dr_copybin_u32(p, (uint32_t)n);
    memcpy(p, s, n);
    return p + n;
}

/* timestamptz from Unix seconds: microseconds since 2000-01-01 00:00 UTC. */
static inline unsigned char *dr_copybin_timestamptz(unsigned char *p, int64_t unix_seconds)
{
    return dr_copybin_int8(p, (unix_seconds - 946684800) * 1000000);
}

/* numeric from its base-10000 digit groups g[0..n) (most significant first; zero groups at
 * either end are dropped), the weight of g[0] (10000^weight), sign (0, or 0x4000 for a
 * negative) and display scale. Zero is written with weight 0 and sign 0. */
static inline unsigned char *dr_copybin_numeric_groups(unsigned char *p, const uint16_t *g,
                                                       int n, int weight, uint16_t sign,
                                                       int dscale)
{
    int first = 0;
    while (first < n && g[first] == 0) {
        first++;
        weight--;
    }
    while (n > first && g[n - 1] == 0)
        n--;
    int ng = n - first;
    if (ng == 0) {
        weight = 0;
        sign = 0;
    }
    p = dr_copybin_u32(p, (uint32_t)(8 + 2 * ng));
    p = dr_copybin_u16(p, (uint16_t)ng);
    p = dr_copybin_u16(p, (uint16_t)(int16_t)weight);
    p = dr_copybin_u16(p, sign);
    p = dr_copybin_u16(p, (uint16_t)dscale);
    for (int i = first; i < n; i++)
        p = dr_copybin_u16(p, g[i]);
    return p;
}

/* numeric from a decimal text as PostgreSQL's numeric input reads it (an optional '-',
 * digits with an optional '.', an optional exponent e[+-]NN), with the same display scale,
 * so the stored value and its text are those of COPY's text format for the same string.
 * Returns NULL for text that is not such a number or has over 100 digits. */
static inline unsigned char *dr_copybin_numeric(unsigned char *p, const char *s)
{
    unsigned char dig[112];        /* the decimal digits, left-padded to a group boundary */
    int n = 0, point = -1, frac = 0, exp = 0;
    uint16_t sign = 0;
    if (*s == '-' || *s == '+')
        sign = *s++ == '-' ? 0x4000 : 0;
    const int lead_room = 3;
    n = lead_room;
    int any = 0;
    for (; (*s >= '0' && *s <= '9') || *s == '.'; s++) {
        if (*s == '.') {
            if (point >= 0)
                return NULL;
            point = n - lead_room;
            continue;
        }
        any = 1;
        if (n == lead_room && *s == '0' && point < 0)
            continue;                  /* leading zeros of the integer part */
        if (n >= (int)sizeof dig - 4)
            return NULL;
        dig[n++] = (unsigned char)(*s - '0');
        if (point >= 0)
            frac++;
    }
    if (!any)
        return NULL;
    int ndec = n - lead_room;          /* digits kept */
    if (point < 0)
        point = ndec;
    else
        point = ndec - frac;           /* integer digits kept (leading zeros dropped) */
    if (*s == 'e' || *s == 'E') {
        s++;
        int esign = 1;
        if (*s == '-' || *s == '+')
            esign = *s++ == '-' ? -1 : 1;
        if (!(*s >= '0' && *s <= '9'))
            return NULL;
        for (; *s >= '0' && *s <= '9'; s++) {
            exp = exp * 10 + (*s - '0');
            if (exp > 1000)
                return NULL;
        }
        exp *= esign;
    }
    if (*s)
        return NULL;
    int dscale = frac - exp < 0 ? 0 : frac - exp;
    point += exp;                      /* decimal point after this many kept digits */
    /* Align the point to a base-10000 group: pad with zeros on the left. */
    int lead = ((4 - point % 4) % 4 + 4) % 4;
    unsigned char *d = dig + lead_room - lead;
    for (int i = 0; i < lead; i++)
        d[i] = 0;
    int len = ndec + lead;
    int pt = point + lead;             /* a multiple of 4 */
    while (len % 4)
        d[len++] = 0;
    int groups = len / 4;
    uint16_t g[28];
    for (int i = 0; i < groups; i++)
        g[i] = (uint16_t)(d[4 * i] * 1000 + d[4 * i + 1] * 100 + d[4 * i + 2] * 10 + d[4 * i + 3]);
    return dr_copybin_numeric_groups(p, g, groups, pt / 4 - 1, sign, dscale);
}

#endif
