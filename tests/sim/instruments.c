/* kite_sim instrument master: deterministic instruments and Kite's CSV dump of them */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "candles.h"
#include "instruments.h"
#include "sbuf.h"

/* The first instrument's exchange_token; instrument k has SIM_FIRST_EXCHANGE_TOKEN + k. */
#define SIM_FIRST_EXCHANGE_TOKEN 1001

static const char *const adjectives[] = {
    "ADITYA", "BHARAT", "CENTRAL", "DECCAN", "EASTERN", "GOLDEN", "HINDUSTAN", "INDIAN",
    "JAYA",   "KAVERI", "LAKSHMI", "MAHA",   "NATIONAL", "ORIENT", "PIONEER", "ROYAL",
};
static const char *const nouns[] = {
    "STEEL", "TEXTILES", "PHARMA", "CEMENT", "POWER", "FINANCE", "MOTORS", "CHEMICALS",
    "FOODS", "PAPER",    "PORTS",  "TEA",    "SUGAR", "AGRO",    "GLASS",  "CABLES",
};
static const char *const suffixes[] = { "LTD", "LIMITED", "INDUSTRIES", "CORP", "& CO" };

/* Every hostile name is valid UTF-8; together they exercise CSV quoting, SQL quoting, JSON
 * escaping and multi-byte text. */
static const char *const hostile_names[] = {
    "ACME \"QUOTED\" LTD",
    "COMMA, SEPARATED & CO",
    "BACK\\SLASH INDUSTRIES\\",
    "MULTI\nLINE\r\nHOLDINGS",
    "\xc3\x9cNICODE \xc3\x86\xc3\x98\xc3\x85 \xe6\x97\xa5\xe6\x9c\xac \xe0\xa4\x9c\xe0\xa4\xbc LTD",
    "x'); DROP TABLE instruments; --",
    "TAB\tAND 'SINGLE' QUOTES",
    "\"\",\"\"\n,",
};
/* Symbol suffixes for hostile mode; the SIMnnnn prefix keeps symbols unique. */
static const char *const hostile_symbols[] = {
    "", "\"Q", ",C", "\\B", "\nN", "\xc3\x9c", "x'); DROP TABLE instruments; --", "",
};

static int segment_code(const char *ex)
{
    static const struct { const char *ex; int code; } codes[] = {
        { "NSE", 1 }, { "NFO", 2 }, { "CDS", 3 }, { "BSE", 4 },
        { "BFO", 5 }, { "BCD", 6 }, { "MCX", 7 }, { "NCO", 8 },
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].ex, ex) == 0)
            return codes[i].code;
    return 9;
}

/* RFC 4180: a field with a comma, quote, CR or LF is quoted, its quotes doubled. */
static void csv_field(struct sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        sbuf_adds(b, s);
        return;
    }
    sbuf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sbuf_add(b, "\"", 1);
        sbuf_add(b, p, 1);
    }
    sbuf_add(b, "\"", 1);
}

static char *dup_printf(const char *a, const char *b, size_t k)
{
    struct sbuf s = { 0 };
    sbuf_printf(&s, "%s%04zu%s", a, k, b);
    return sbuf_take(&s, NULL);
}

int instruments_init(struct instruments *in, size_t n, const char *ex, uint64_t seed,
                     bool hostile)
{
    memset(in, 0, sizeof *in);
    if (!ex[0] || strlen(ex) >= sizeof in->exchange)
        return -1;
    snprintf(in->exchange, sizeof in->exchange, "%s", ex);
    in->segment_code = segment_code(ex);
    in->n = n;
    in->v = calloc(n ? n : 1, sizeof *in->v);
    if (!in->v)
        abort();
    struct sbuf csv = { 0 };
    sbuf_adds(&csv, "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,"
                    "strike,tick_size,lot_size,instrument_type,segment,exchange\r\n");
    in->header_len = csv.len;
    for (size_t k = 0; k < n; k++) {
        struct instrument *it = &in->v[k];
        it->exchange_token = SIM_FIRST_EXCHANGE_TOKEN + (int64_t)k;
        it->token = it->exchange_token * 256 + in->segment_code;
        uint64_t h = candles_hash(seed, (uint64_t)it->token, 0x4e414d45 /* "NAME" */, 0);
        if (hostile) {
            it->symbol = dup_printf("SIM", hostile_symbols[k % 8], k + 1);
            it->name = strdup(hostile_names[k % 8]);
        } else {
            it->symbol = dup_printf("SIM", "", k + 1);
            struct sbuf name = { 0 };
            sbuf_printf(&name, "%s %s %s", adjectives[h % 16], nouns[(h >> 8) % 16],
                        suffixes[(h >> 16) % 5]);
            it->name = sbuf_take(&name, NULL);
        }
        if (!it->name)
            abort();
        sbuf_printf(&csv, "%lld,%lld,", (long long)it->token, (long long)it->exchange_token);
        csv_field(&csv, it->symbol);
        sbuf_add(&csv, ",", 1);
        csv_field(&csv, it->name);
        sbuf_printf(&csv, ",0.0,,0.0,0.05,1,EQ,%s,%s\r\n", in->exchange, in->exchange);
    }
    in->csv = sbuf_take(&csv, &in->csv_len);
    return 0;
}

const struct instrument *instruments_find(const struct instruments *in, int64_t token)
{
    if (token < 0 || token % 256 != in->segment_code)
        return NULL;
    int64_t k = token / 256 - SIM_FIRST_EXCHANGE_TOKEN;
    if (k < 0 || (uint64_t)k >= in->n)
        return NULL;
    return &in->v[k];
}

void instruments_free(struct instruments *in)
{
    for (size_t k = 0; k < in->n; k++) {
        free(in->v[k].symbol);
        free(in->v[k].name);
    }
    free(in->v);
    free(in->csv);
    memset(in, 0, sizeof *in);
}
