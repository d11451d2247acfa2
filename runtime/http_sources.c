/* The HTTP client's named sources: their settings, limiters and ban state built from
 * config.json, and their request counters. */
#include "http_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void source_fini(struct source *src)
{
    pthread_mutex_destroy(&src->ban_lock);
    free(src->base_url);
    headers_fini(&src->hdr);
    ratelimit_free(src->rl);
}

static int source_init(struct source *src, const struct source_cfg *sc, struct dr_err *err)
{
    pthread_mutex_init(&src->ban_lock, NULL);
    src->name = sc->name ? sc->name : "";
    if (!sc->base_url || !*sc->base_url)
        return err_set(err, "sources.%s: base_url is missing", src->name);
    src->base_url = strdup(sc->base_url);
    if (!src->base_url)
        return err_set(err, "sources.%s: out of memory", src->name);
    size_t bl = strlen(src->base_url);
    while (bl > 0 && src->base_url[bl - 1] == '/')
        src->base_url[--bl] = '\0';
    src->timeout_ms = sc->timeout_ms > 0 ? sc->timeout_ms : 30000;
    src->connect_timeout_ms = sc->connect_timeout_ms > 0 ? sc->connect_timeout_ms : 10000;
    src->max_retries = sc->max_retries >= 0 ? sc->max_retries : 0;
    src->retry_delay_ms = sc->retry_delay_ms >= 0 ? sc->retry_delay_ms : 0;
    src->max_retry_delay_ms = sc->max_retry_delay_ms > 0 ? sc->max_retry_delay_ms : 30000;
    src->max_body_bytes = sc->max_body_bytes > 0 ? sc->max_body_bytes : 64LL << 20;
    src->ban_status = sc->ban_status;
    size_t n = 0, pace = 0;
    struct ratelimit_window w[16];
    for (size_t i = 0; i < sc->n_limits && i < 16; i++) {
        const struct limit_cfg *lc = &sc->limits[i];
        if (lc->reset != LIMIT_SLIDING) {
            struct calendar_window *cw = &src->cal[src->n_cal++];
            cw->cap = lc->cap;
            cw->weighted = lc->weighted;
            if (lc->reset == LIMIT_FIXED) {
                cw->unit = NULL;
                cw->per_ms = lc->per_ms;
                snprintf(cw->key, sizeof cw->key, "%s/fixed_%" PRId64 "ms",
                         lc->weighted ? "weight" : "requests", cw->per_ms);
                continue;
            }
            cw->unit = lc->reset == LIMIT_UTC_DAY ? "day" : "month";
            cw->per_ms = 1;
            snprintf(cw->key, sizeof cw->key, "%s/utc_%s", lc->weighted ? "weight" : "requests",
                     cw->unit);
            continue;
        }
        w[n] = (struct ratelimit_window){ .cap = lc->cap, .per_ns = lc->per_ms * 1000000LL,
                                          .weighted = lc->weighted };
        src->used_header[n] = lc->used_header;
        src->per_ns[n] = w[n].per_ns;
        if (w[n].per_ns < w[pace].per_ns)
            pace = n;
        n++;
    }
    if (n > 0) {
        src->n_windows = n;
        src->rl = ratelimit_new_windows(w, n, PACE_MARGIN, sc->burst >= 1 ? sc->burst : 1);
        if (!src->rl)
            return err_set(err, "sources.%s: bad limits", src->name);
        /* The send gate spaces requests, not weight: only for a request window. */
        if (sc->burst <= 1 && !w[pace].weighted)
            src->gate_ns = (int64_t)((double)w[pace].per_ns / ((double)w[pace].cap * GATE_MARGIN));
    } else if (sc->rate_limit_per_sec > 0) {
        src->rl = ratelimit_new(sc->rate_limit_per_sec * PACE_MARGIN,
                                sc->burst >= 1 ? sc->burst : 1);
        if (!src->rl)
            return err_set(err, "sources.%s: bad rate limit %g/s, burst %d", src->name,
                           sc->rate_limit_per_sec, sc->burst);
        if (sc->burst <= 1)
            src->gate_ns = (int64_t)(1e9 / (sc->rate_limit_per_sec * GATE_MARGIN));
    }
    __atomic_store_n(&src->last_send_ns, INT64_MIN / 4, __ATOMIC_RELAXED);
    __atomic_store_n(&src->gate_cur_ns, src->gate_ns, __ATOMIC_RELAXED);
    return headers_build(&src->hdr, src->name, sc->headers, sc->n_headers, err);
}

struct http_sources *http_sources_new(const struct config *cfg, struct dr_err *err)
{
    struct http_sources *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "out of memory");
        return NULL;
    }
    size_t n = cfg ? cfg->n_sources : 0;
    pthread_mutex_init(&s->db_lock, NULL);
    s->src = calloc(n ? n : 1, sizeof *s->src);
    if (!s->src || (cfg && cfg->database_url && !(s->db_url = strdup(cfg->database_url)))) {
        free(s->src);
        pthread_mutex_destroy(&s->db_lock);
        free(s);
        err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s->n = i + 1;
        if (source_init(&s->src[i], &cfg->sources[i], err) < 0) {
            http_sources_free(s);
            return NULL;
        }
    }
    s->n = n;
    return s;
}

void http_sources_free(struct http_sources *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        source_fini(&s->src[i]);
    free(s->src);
    if (s->db)
        PQfinish(s->db);
    free(s->db_url);
    pthread_mutex_destroy(&s->db_lock);
    free(s);
}

void http_sources_stats(struct http_sources *s, struct http_stats *out)
{
    out->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
    out->responses_429 = __atomic_load_n(&s->responses_429, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&s->retries, __ATOMIC_RELAXED);
    out->rate_wait_ms = __atomic_load_n(&s->rate_wait_ns, __ATOMIC_RELAXED) / 1000000;
}

json_t *http_sources_counters(struct http_sources *s)
{
    json_t *all = json_object();
    for (size_t i = 0; all && i < s->n; i++) {
        struct source *src = &s->src[i];
        char key[200];
        for (int k = 0; k < 501; k++) {
            int64_t v = __atomic_load_n(&src->by_status[k], __ATOMIC_RELAXED);
            if (!v)
                continue;
            if (k)
                snprintf(key, sizeof key, "http:%s:%d", src->name, k + 99);
            else
                snprintf(key, sizeof key, "http:%s:none", src->name);
            json_object_set_new(all, key, json_integer(v));
        }
        int64_t wait = __atomic_load_n(&src->wait_ns, __ATOMIC_RELAXED) / 1000000;
        if (wait) {
            snprintf(key, sizeof key, "rate_wait_ms:%s", src->name);
            json_object_set_new(all, key, json_integer(wait));
        }
    }
    return all;
}
