/* `dagrun serve`: the HTTP server (libmicrohttpd): limits, authentication, routing, replies. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>

#include "log.h"
#include "serve.h"

struct serve_http {
    struct MHD_Daemon *d;
    atomic_uint open;           /* connections open now */
    char *tls_cert, *tls_key;   /* PEM texts, owned */
};

/* One request's state across the handler's calls. */
struct req_ctx {
    int64_t start_ms;           /* when its request line arrived */
    bool started;               /* the handler saw its headers */
    bool too_big, too_slow;
    char *body;
    size_t len, cap;
};

static const double lat_bounds[SERVE_LAT_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,  0.1,    0.25,  0.5,  1.0 };

/* ---- replies ---- */

void serve_reply_text(struct serve_req *r, int status, const char *ctype, const char *text,
                      size_t len)
{
    free(r->out);
    r->out = malloc(len + 1);
    if (r->out) {
        memcpy(r->out, text, len);
        r->out[len] = '\0';
    }
    r->out_len = r->out ? len : 0;
    r->status = r->out ? status : 500;
    r->content_type = ctype;
}

void serve_reply_json(struct serve_req *r, int status, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) {
        serve_reply_text(r, 500, "application/json", "{\"detail\":\"out of memory\"}", 26);
        return;
    }
    free(r->out);
    r->out = text;
    r->out_len = strlen(text);
    r->status = status;
    r->content_type = "application/json";
}

void serve_reply_error(struct serve_req *r, int status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    serve_reply_json(r, status, json_pack("{s:s}", "detail", msg));
}

const char *serve_query(struct serve_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

long serve_query_int(struct serve_req *r, const char *name, long def, long max)
{
    const char *v = serve_query(r, name);
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (!v[0] || *end || n < 0 || n > max) {
        json_t *d = json_pack("{s:[{s:[s,s],s:s,s:s}]}", "detail", "loc", "query", name, "msg",
                              "Input should be a valid integer, in range", "type", "int_parsing");
        serve_reply_json(r, 422, d);
        return -1;
    }
    return n;
}

/* ---- JSON depth: counted on the text before parsing, so a deep document is never built ---- */

static int json_depth(const char *s, size_t n)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"')
            in_str = true;
        else if (ch == '{' || ch == '[') {
            if (++depth > max)
                max = depth;
        } else if (ch == '}' || ch == ']')
            depth--;
    }
    return max;
}

/* ---- authentication ---- */

/* Compares the Authorization header with "Bearer TOKEN" in time that depends only on the
 * lengths, never on where the first difference is. */
static bool token_ok(struct serve *s, const char *header)
{
    if (!s->token)
        return true;
    if (!header || strncmp(header, "Bearer ", 7) != 0)
        return false;
    const char *got = header + 7;
    size_t n = strlen(got);
    unsigned char diff = n != s->token_len;
    for (size_t i = 0; i < s->token_len; i++)
        diff |= (unsigned char)(s->token[i] ^ (i < n ? got[i] : 0));
    return diff == 0;
}

static bool needs_token(struct serve *s, const char *url)
{
    if (strncmp(url, "/api/", 5) == 0)
        return true;
    if (strcmp(url, "/metrics") == 0 || strncmp(url, "/health", 7) == 0)
        return s->cfg.protect_metrics;
    return false;
}

/* ---- routing ---- */

/* Splits url's path into at most max segments (in place in buf). */
static int split_path(char *buf, char **parts, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p && n < max; p = strtok_r(NULL, "/", &save))
        parts[n++] = p;
    return n;
}

static void route(struct serve_req *r)
{
    struct serve *s = r->s;
    if (needs_token(s, r->url) &&
        !token_ok(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"))) {
        serve_reply_error(r, 401, "Not authenticated");
        return;
    }
    if (serve_health_route(r) || serve_page_route(r))
        return;
    if (strncmp(r->url, "/api/v2/", 8) == 0) {
        size_t n = strlen(r->url);
        char *buf = malloc(n + 1);
        if (!buf) {
            serve_reply_error(r, 500, "out of memory");
            return;
        }
        memcpy(buf, r->url, n + 1);
        char *parts[16];
        int np = split_path(buf, parts, 16);
        bool done = serve_api_route(r, parts + 2, np - 2);
        free(buf);
        if (done)
            return;
    }
    serve_reply_error(r, 404, "Not Found");
}

/* ---- libmicrohttpd callbacks ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)uri;
    (void)conn;
    struct req_ctx *x = calloc(1, sizeof *x);
    if (x)
        x->start_ms = serve_now_ms();
    return x;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req_ctx *x = *con_cls;
    if (x) {
        free(x->body);
        free(x);
    }
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)conn;
    (void)socket_ctx;
    struct serve *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&s->http->open, 1);
    else
        atomic_fetch_sub(&s->http->open, 1);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct serve_req *r, bool close)
{
    struct MHD_Response *resp = r->raw;
    if (!resp) {
        resp = MHD_create_response_from_buffer(r->out_len, r->out ? r->out : (char *)"",
                                               r->out ? MHD_RESPMEM_MUST_FREE
                                                      : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        r->out = NULL; /* the response owns it now */
        MHD_add_response_header(resp, "Content-Type",
                                r->content_type ? r->content_type : "application/json");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    if (close)
        MHD_add_response_header(resp, "Connection", "close");
    if (r->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result quick(struct MHD_Connection *conn, int status, const char *detail)
{
    struct serve_req r = { .status = status };
    char body[256];
    int n = snprintf(body, sizeof body, "{\"detail\":\"%s\"}", detail);
    serve_reply_text(&r, status, "application/json", body, (size_t)n);
    return send_reply(conn, &r, true);
}

static void record_latency(struct serve *s, double secs)
{
    pthread_mutex_lock(&s->stat_lock);
    int b = 0;
    while (b < SERVE_LAT_BUCKETS && secs > lat_bounds[b])
        b++;
    s->lat_count[b]++;
    s->lat_sum += secs;
    s->lat_total++;
    pthread_mutex_unlock(&s->stat_lock);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct serve *s = cls;
    struct req_ctx *x = *con_cls;
    if (!x)
        return MHD_NO;
    if (!x->started) {
        x->started = true;
        if (atomic_load(&s->http->open) > s->cfg.max_connections)
            return quick(conn, 503, "too many connections");
        if (serve_now_ms() - x->start_ms > SERVE_TIMEOUT_SEC * 1000)
            return quick(conn, 408, "request headers took too long");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > SERVE_MAX_BODY)
            return quick(conn, 413, "request body over 1 MiB");
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (serve_now_ms() - x->start_ms > SERVE_TIMEOUT_SEC * 1000)
            x->too_slow = true;
        if (x->too_big || x->too_slow)
            return MHD_YES;
        if (x->len + n > SERVE_MAX_BODY) {
            x->too_big = true;
            free(x->body);
            x->body = NULL;
            x->len = x->cap = 0;
            return MHD_YES;
        }
        if (x->len + n + 1 > x->cap) {
            size_t cap = x->cap ? x->cap : 4096;
            while (cap < x->len + n + 1)
                cap *= 2;
            char *grown = realloc(x->body, cap);
            if (!grown)
                return MHD_NO;
            x->body = grown;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload_data, n);
        x->len += n;
        x->body[x->len] = '\0';
        return MHD_YES;
    }
    if (x->too_big)
        return quick(conn, 413, "request body over 1 MiB");
    if (x->too_slow)
        return quick(conn, 408, "request body took too long");

    struct serve_req r = {
        .s = s, .method = method, .url = url, .conn = conn, .body = x->body, .body_len = x->len,
        .status = 500,
    };
    if (x->len) {
        if (json_depth(x->body, x->len) > SERVE_MAX_DEPTH)
            return quick(conn, 400, "JSON nested deeper than 64 levels");
        json_error_t je;
        r.json = json_loadb(x->body, x->len, JSON_REJECT_DUPLICATES, &je);
        if (!r.json) {
            char msg[300];
            snprintf(msg, sizeof msg, "request body is not JSON: %s at line %d, column %d",
                     je.text, je.line, je.column);
            serve_reply_json(&r, 400, json_pack("{s:s}", "detail", msg));
        }
    }
    if (!x->len || r.json)
        route(&r);
    json_decref(r.json);
    bool measured = !r.raw && strcmp(url, "/metrics") != 0;
    enum MHD_Result ok = send_reply(conn, &r, false);
    free(r.out);
    if (measured)
        record_latency(s, (double)(serve_now_ms() - x->start_ms) / 1000.0);
    return ok;
}

/* ---- start and stop ---- */

static char *read_pem(const char *path, struct dr_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "serve: cannot read %s", path);
        return NULL;
    }
    char *buf = malloc(65536 + 1);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n == 65536) {
        free(buf);
        err_set(err, "serve: %s is empty or over 64 KiB", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int serve_http_start(struct serve *s, struct dr_err *err)
{
    const char *listen = s->cfg.listen;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return err_set(err, "serve: listen \"%s\": expected ADDR:PORT", listen);
    char host[128], port[16];
    size_t hn = (size_t)(colon - listen);
    if (hn >= sizeof host || strlen(colon + 1) >= sizeof port)
        return err_set(err, "serve: listen \"%s\": expected ADDR:PORT", listen);
    memcpy(host, listen, hn);
    host[hn] = '\0';
    if (host[0] == '[' && hn > 2 && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = '\0';
    }
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0)
        return err_set(err, "serve: listen \"%s\": %s", listen, gai_strerror(gai));

    struct serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return err_set(err, "out of memory");
    }
    int rc = -1;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->cfg.tls_cert) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            err_set(err, "serve: this libmicrohttpd was built without TLS");
            goto out;
        }
        if (!(h->tls_cert = read_pem(s->cfg.tls_cert, err)) ||
            !(h->tls_key = read_pem(s->cfg.tls_key, err)))
            goto out;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls[] = {
        { h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert },
        { h->tls_key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->tls_key },
        { MHD_OPTION_END, 0, NULL },
    };
    s->http = h;   /* the callbacks count connections in it */
    /* MHD refuses connections past its limit at accept; the ones past max_connections but
     * under MHD's limit get a 503, so a client learns why. */
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
        MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections + 64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_TIMEOUT_SEC,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
    if (!h->d)
        err_set(err, "serve: cannot listen on %s (in use, or not an address of this machine)",
                listen);
    else
        rc = 0;
out:
    freeaddrinfo(ai);
    if (rc < 0) {
        s->http = NULL;
        free(h->tls_cert);
        free(h->tls_key);
        free(h);
    }
    return rc;
}

void serve_http_stop(struct serve *s)
{
    struct serve_http *h = s->http;
    if (!h)
        return;
    if (h->d) {
        MHD_quiesce_daemon(h->d);
        serve_sse_stop(s); /* resumes and ends every stream */
        MHD_stop_daemon(h->d);
    }
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
    s->http = NULL;
}

unsigned serve_http_port(struct serve *s)
{
    const union MHD_DaemonInfo *i =
        s->http && s->http->d ? MHD_get_daemon_info(s->http->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    return i ? i->port : 0;
}
