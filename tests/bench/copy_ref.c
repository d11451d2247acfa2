/* copy_ref: the reference for make bench's ingest figure: the same candles loaded by plain COPY.
 *
 *   copy_ref [--binary] URL CANDLES_CSV [CONNECTIONS]
 * CANDLES_CSV holds `kite_sim --dump-candles` rows without headers
 * (token,interval,ts_utc_iso,open,high,low,close,volume,oi), grouped by instrument. Before
 * timing, it reads them, looks up each token's tradingsymbol and exchange in `instruments`
 * and builds each instrument's COPY data in memory (text, or with --binary PostgreSQL's binary
 * format, prices as numeric from their decimal text); it opens CONNECTIONS (default 1)
 * connections. Timed: for each instrument, BEGIN; COPY kite_ohlcv_historic FROM STDIN; COMMIT,
 * the instruments shared by the connections. Prints "candles seconds" to stdout; exits 1 on
 * any database error. */
#include <dagrun/copybin.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct inst {
    char *copy;                 /* COPY text of its rows */
    size_t len, cap;
    long long token;
    size_t rows;
};

struct shared {
    struct inst *in;
    size_t n;
    size_t next;                /* guarded by lock */
    pthread_mutex_t lock;
    int failed;                 /* guarded by lock */
};

struct worker {
    struct shared *sh;
    PGconn *conn;
    pthread_t th;
};

static int binary;              /* --binary: COPY's binary format */

static void die(const char *what, PGconn *c)
{
    fprintf(stderr, "copy_ref: %s: %s", what, c ? PQerrorMessage(c) : "out of memory\n");
    exit(1);
}

static void append(struct inst *in, const char *s, size_t n)
{
    if (in->len + n + 1 > in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 1 << 16;
        while (cap < in->len + n + 1)
            cap *= 2;
        if (!(in->copy = realloc(in->copy, cap)))
            die("reading", NULL);
        in->cap = cap;
    }
    memcpy(in->copy + in->len, s, n);
    in->len += n;
}

static int ok_cmd(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "copy_ref: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static int load_one(PGconn *c, const struct inst *in)
{
    if (!ok_cmd(c, "BEGIN"))
        return -1;
    PGresult *r = PQexec(c, binary ? "COPY kite_ohlcv_historic (instrument_token, tradingsymbol, "
                                     "exchange, candle_interval, ts, open, high, low, close, "
                                     "volume, oi) FROM STDIN (FORMAT binary)"
                                   : "COPY kite_ohlcv_historic (instrument_token, tradingsymbol, "
                                     "exchange, candle_interval, ts, open, high, low, close, "
                                     "volume, oi) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        fprintf(stderr, "copy_ref: COPY: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    for (size_t off = 0; off < in->len; off += 65536) {
        size_t n = in->len - off < 65536 ? in->len - off : 65536;
        if (PQputCopyData(c, in->copy + off, (int)n) != 1)
            return -1;
    }
    if (PQputCopyEnd(c, NULL) != 1)
        return -1;
    int ok = 1;
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "copy_ref: COPY: %s", PQresultErrorMessage(r));
            ok = 0;
        }
        PQclear(r);
    }
    return ok && ok_cmd(c, "COMMIT") ? 0 : -1;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    for (;;) {
        pthread_mutex_lock(&sh->lock);
        size_t i = sh->next++;
        int stop = sh->failed;
        pthread_mutex_unlock(&sh->lock);
        if (stop || i >= sh->n)
            return NULL;
        if (load_one(w->conn, &sh->in[i]) < 0) {
            pthread_mutex_lock(&sh->lock);
            sh->failed = 1;
            pthread_mutex_unlock(&sh->lock);
            return NULL;
        }
    }
}

/* One row's binary COPY after the instrument's constant fields: the CSV fields
 * interval,ts,open,high,low,close,volume,oi of rest (NUL-separated by the caller). */
static int binary_row(struct inst *in, const unsigned char *prefix, size_t plen, char **f)
{
    unsigned char row[512], *o = row;
    memcpy(o, prefix, plen);
    o += plen;
    o = dr_copybin_text(o, f[0], strlen(f[0]));
    struct tm tm = { 0 };
    if (!strptime(f[1], "%Y-%m-%dT%H:%M:%SZ", &tm))
        return -1;
    o = dr_copybin_timestamptz(o, (int64_t)timegm(&tm));
    for (int i = 2; i < 6; i++)
        if (!(o = dr_copybin_numeric(o, f[i])))
            return -1;
    o = dr_copybin_int8(o, strtoll(f[6], NULL, 10));
    o = dr_copybin_int8(o, strtoll(f[7], NULL, 10));
    append(in, (const char *)row, (size_t)(o - row));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--binary")) {
        binary = 1;
        argv++;
        argc--;
    }
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: copy_ref [--binary] URL CANDLES_CSV [CONNECTIONS]\n");
        return 2;
    }
    char *end = NULL;
    long nconn = argc == 4 ? strtol(argv[3], &end, 10) : 1;
    if ((end && *end) || nconn < 1 || nconn > 64) {
        fprintf(stderr, "copy_ref: bad connection count\n");
        return 2;
    }
    PGconn *meta = PQconnectdb(argv[1]);
    if (PQstatus(meta) != CONNECTION_OK)
        die("connect", meta);
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    struct shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER };
    size_t cap = 0;
    char line[512], prefix[600] = "";
    unsigned char bprefix[600];
    size_t bplen = 0;
    size_t total = 0;
    while (fgets(line, sizeof line, f)) {
        char *tok = line, *rest = strchr(line, ',');
        if (!rest)
            continue;
        *rest++ = '\0';
        long long token = strtoll(tok, NULL, 10);
        if (!sh.n || sh.in[sh.n - 1].token != token) {
            if (sh.n == cap) {
                cap = cap ? cap * 2 : 256;
                if (!(sh.in = realloc(sh.in, cap * sizeof *sh.in)))
                    die("reading", NULL);
            }
            memset(&sh.in[sh.n], 0, sizeof sh.in[sh.n]);
            sh.in[sh.n++].token = token;
            const char *v[1] = { tok };
            PGresult *r = PQexecParams(meta, "SELECT tradingsymbol, exchange FROM instruments "
                                             "WHERE instrument_token = $1::bigint",
                                       1, NULL, v, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
                fprintf(stderr, "copy_ref: instrument %s not found\n", tok);
                return 1;
            }
            snprintf(prefix, sizeof prefix, "%s\t%s\t%s\t", tok, PQgetvalue(r, 0, 0),
                     PQgetvalue(r, 0, 1));
            unsigned char *o = dr_copybin_int8(dr_copybin_row(bprefix, 11), token);
            o = dr_copybin_text(o, PQgetvalue(r, 0, 0), strnlen(PQgetvalue(r, 0, 0), 200));
            o = dr_copybin_text(o, PQgetvalue(r, 0, 1), strnlen(PQgetvalue(r, 0, 1), 32));
            bplen = (size_t)(o - bprefix);
            PQclear(r);
            if (binary) {
                unsigned char h[DR_COPYBIN_HEADER_LEN];
                append(&sh.in[sh.n - 1], (const char *)h, (size_t)(dr_copybin_header(h) - h));
            }
        }
        struct inst *in = &sh.in[sh.n - 1];
        if (binary) {
            char *field[8], *p = rest;
            for (int i = 0; i < 8; i++) {
                field[i] = p;
                p += strcspn(p, ",\n");
                if (*p)
                    *p++ = '\0';
            }
            if (binary_row(in, bprefix, bplen, field) < 0) {
                fprintf(stderr, "copy_ref: bad row for instrument %s\n", tok);
                return 1;
            }
            in->rows++;
            total++;
            continue;
        }
        append(in, prefix, strlen(prefix));
        /* interval,ts,o,h,l,c,v,oi -> tab separated */
        for (char *p = rest; *p; p++)
            if (*p == ',')
                *p = '\t';
        append(in, rest, strlen(rest));
        in->rows++;
        total++;
    }
    fclose(f);
    PQfinish(meta);
    for (size_t i = 0; binary && i < sh.n; i++) {
        unsigned char t[2];
        append(&sh.in[i], (const char *)t, (size_t)(dr_copybin_trailer(t) - t));
    }
    struct worker *w = calloc((size_t)nconn, sizeof *w);
    if (!w)
        die("setup", NULL);
    for (long i = 0; i < nconn; i++) {
        w[i].sh = &sh;
        w[i].conn = PQconnectdb(argv[1]);
        if (PQstatus(w[i].conn) != CONNECTION_OK)
            die("connect", w[i].conn);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < nconn; i++)
        pthread_create(&w[i].th, NULL, work, &w[i]);
    for (long i = 0; i < nconn; i++)
        pthread_join(w[i].th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (sh.failed)
        return 1;
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%zu %.6f\n", total, secs);
    for (long i = 0; i < nconn; i++)
        PQfinish(w[i].conn);
    for (size_t i = 0; i < sh.n; i++)
        free(sh.in[i].copy);
    free(sh.in);
    free(w);
    return 0;
}
