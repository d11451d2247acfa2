/* config.json: reading, ${ENV} expansion, key checks and built-in defaults. */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duration.h"
#include "envexpand.h"
#include "plugin.h"
#include "readfile.h"

/* A config is a page of JSON: a bigger file (or a FIFO, /dev/zero) is refused
 * before parsing, like a DAG file over 1 MiB. Nesting is bounded by jansson
 * (JSON_PARSER_MAX_DEPTH, 2048), invalid UTF-8 is refused by jansson too; both
 * are reported as file:line:col. */
#define CONFIG_MAX_BYTES (1 << 20)

/* Loading state: the file name for messages and the config being filled. */
struct cl {
    const char *file;           /* as named in messages */
    struct config *c;
    struct dr_err *err;
};

/* Expands ${VAR} and $$ (envexpand). Returns a malloc'd string or NULL with err
 * (the message names the variable, never a value). */
static char *expand(const struct cl *l, const char *where, const char *s)
{
    char unset[256];
    const char *why = NULL;
    char *out = envexpand(s, unset, sizeof unset, &why);
    if (out)
        return out;
    if (unset[0]) {
        err_set(l->err, "%s: %s: environment variable %s is not set", l->file, where, unset);
        err_hint(l->err, "export %s, or write $$ for a literal $", unset);
    } else if (strcmp(why, "out of memory") == 0) {
        err_set(l->err, "out of memory");
    } else {
        err_set(l->err, "%s: %s: %s", l->file, where, why);
    }
    return NULL;
}

/* Expands every string of v in place (object keys stay as written). */
static int expand_tree(const struct cl *l, const char *where, json_t *v)
{
    char sub[512];
    if (json_is_string(v)) {
        char *s = expand(l, where, json_string_value(v));
        if (!s)
            return -1;
        int rc = json_string_set(v, s);
        free(s);
        return rc < 0 ? err_set(l->err, "%s: %s: not valid UTF-8 after expansion", l->file, where) : 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *it;
        json_object_foreach(v, k, it) {
            snprintf(sub, sizeof sub, "%s%s%s", where[0] ? where : "", where[0] ? "." : "", k);
            if (expand_tree(l, sub, it) < 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it) {
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            if (expand_tree(l, sub, it) < 0)
                return -1;
        }
    }
    return 0;
}

/* Expands every string of the config except the values of sources.<name>.headers:
 * those are expanded by the HTTP client when it builds its requests, so that a
 * secret never sits in the config (or in a message quoting it). */
static int expand_config(const struct cl *l, json_t *root)
{
    char where[512];
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "sources") != 0 || !json_is_object(v)) {
            if (expand_tree(l, k, v) < 0)
                return -1;
            continue;
        }
        const char *sk;
        json_t *sv;
        json_object_foreach(v, sk, sv) {
            const char *fk;
            json_t *fv;
            if (!json_is_object(sv)) {
                snprintf(where, sizeof where, "sources.%s", sk);
                if (expand_tree(l, where, sv) < 0)
                    return -1;
                continue;
            }
            json_object_foreach(sv, fk, fv) {
                snprintf(where, sizeof where, "sources.%s.%s", sk, fk);
                if (strcmp(fk, "headers") != 0 && expand_tree(l, where, fv) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int unknown(const struct cl *l, const char *where, const char *key)
{
    return err_set(l->err, "%s: %s%s%s: unknown key", l->file, where, where[0] ? "." : "", key);
}

static int bad(const struct cl *l, const char *where, const char *what)
{
    return err_set(l->err, "%s: %s: %s", l->file, where, what);
}

static int get_str(const struct cl *l, const char *where, const json_t *v, char **out)
{
    if (!json_is_string(v))
        return bad(l, where, "expected a string");
    char *s = strdup(json_string_value(v));
    if (!s)
        return err_set(l->err, "out of memory");
    free(*out);
    *out = s;
    return 0;
}

static int get_int(const struct cl *l, const char *where, const json_t *v, long long lo, long long hi,
                   long long *out)
{
    if (!json_is_integer(v))
        return bad(l, where, "expected an integer");
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return err_set(l->err, "%s: %s: %lld out of range %lld-%lld", l->file, where, x, lo, hi);
    *out = x;
    return 0;
}

static int get_small(const struct cl *l, const char *where, const json_t *v, int lo, int hi, int *out)
{
    long long x = 0;
    if (get_int(l, where, v, lo, hi, &x) < 0)
        return -1;
    *out = (int)x;
    return 0;
}

static int one_of(const struct cl *l, const char *where, const json_t *v, const char *const *allowed,
                  char **out)
{
    if (get_str(l, where, v, out) < 0)
        return -1;
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, *out) == 0)
            return 0;
    char list[256] = "";
    for (const char *const *a = allowed; *a; a++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
    return err_set(l->err, "%s: %s: \"%s\" is not one of %s", l->file, where, *out, list);
}

/* RFC 9110 token characters: what a header name may hold. */
static bool header_name_ok(const char *n)
{
    if (!*n)
        return false;
    for (const unsigned char *p = (const unsigned char *)n; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return false;
    return true;
}

static int add_header(const struct cl *l, struct source_cfg *s, const char *name, const char *value)
{
    struct header_cfg *h = realloc(s->headers, (s->n_headers + 1) * sizeof *h);
    if (!h)
        return err_set(l->err, "out of memory");
    s->headers = h;
    h = &s->headers[s->n_headers];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return err_set(l->err, "out of memory");
    }
    s->n_headers++;
    return 0;
}

/* sources.<name>.headers: {"Name": "value with ${VAR}"}; values are kept as
 * written (checked here, expanded by the HTTP client). */
static int read_headers(const struct cl *l, const char *where, const json_t *obj, struct source_cfg *s)
{
    char sub[768];
    const char *k;
    json_t *v;
    if (!json_is_object(obj))
        return bad(l, where, "expected an object of header name -> value");
    json_object_foreach((json_t *)obj, k, v) {
        snprintf(sub, sizeof sub, "%s.%s", where, k);
        if (!header_name_ok(k))
            return bad(l, sub, "bad header name (letters, digits and !#$%&'*+-.^_`|~ only)");
        if (!json_is_string(v))
            return bad(l, sub, "expected a string");
        const char *val = json_string_value(v), *why = NULL;
        if (strpbrk(val, "\r\n"))
            return bad(l, sub, "a header value cannot hold a line break");
        if (envexpand_vars(val, NULL, NULL, &why) < 0)
            return bad(l, sub, why);
        for (size_t i = 0; i < s->n_headers; i++)
            if (strcasecmp(s->headers[i].name, k) == 0)
                return bad(l, sub, "header given twice (names are case-insensitive)");
        if (add_header(l, s, k, val) < 0)
            return -1;
    }
    return 0;
}

/* sources.<name>.limits: [{"requests"|"weight": N, "per": DURATION
 * [, "used_header": NAME]}, ...]. */
static int read_limits(const struct cl *l, const char *where, const json_t *arr, struct source_cfg *s)
{
    char sub[768], sub2[800];
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 16)
        return bad(l, where, "expected a list of 1 to 16 windows, e.g. [{\"requests\": 3, \"per\": \"1s\"}]");
    s->limits = calloc(json_array_size(arr), sizeof *s->limits);
    if (!s->limits)
        return err_set(l->err, "out of memory");
    size_t i;
    json_t *w;
    json_array_foreach(arr, i, w) {
        snprintf(sub, sizeof sub, "%s[%zu]", where, i);
        struct limit_cfg *lc = &s->limits[s->n_limits++];
        if (!json_is_object(w))
            return bad(l, sub, "expected an object such as {\"requests\": 3, \"per\": \"1s\"}");
        const char *k;
        json_t *v;
        bool have_cap = false, have_per = false;
        json_object_foreach(w, k, v) {
            snprintf(sub2, sizeof sub2, "%s.%s", sub, k);
            long long x = 0;
            if (strcmp(k, "requests") == 0 || strcmp(k, "weight") == 0) {
                if (have_cap)
                    return bad(l, sub, "give one of requests and weight");
                if (get_int(l, sub2, v, 1, 1000000000, &x) < 0)
                    return -1;
                lc->cap = x;
                lc->weighted = k[0] == 'w';
                have_cap = true;
            } else if (strcmp(k, "per") == 0) {
                struct dr_err e = { 0 };
                if (!json_is_string(v))
                    return bad(l, sub2, "expected a duration such as \"1s\", \"1m\", \"1d\"");
                if (duration_parse(json_string_value(v), &lc->per_ms, &e) < 0)
                    return bad(l, sub2, e.msg);
                if (lc->per_ms < 1)
                    return bad(l, sub2, "must be at least 1ms");
                have_per = true;
            } else if (strcmp(k, "reset") == 0) {
                const char *r = json_is_string(v) ? json_string_value(v) : "";
                if (strcmp(r, "utc_day") == 0)
                    lc->reset = LIMIT_UTC_DAY;
                else if (strcmp(r, "utc_month") == 0)
                    lc->reset = LIMIT_UTC_MONTH;
                else if (strcmp(r, "fixed") == 0)
                    lc->reset = LIMIT_FIXED;
                else
                    return bad(l, sub2, "expected \"utc_day\", \"utc_month\" or \"fixed\"");
            } else if (strcmp(k, "used_header") == 0) {
                if (get_str(l, sub2, v, &lc->used_header) < 0)
                    return -1;
                if (!header_name_ok(lc->used_header))
                    return bad(l, sub2, "bad header name");
            } else {
                return unknown(l, sub, k);
            }
        }
        if (!have_cap || (!have_per && (lc->reset == LIMIT_SLIDING || lc->reset == LIMIT_FIXED)))
            return bad(l, sub, "needs requests (or weight) and per (or reset)");
        if (have_per && (lc->reset == LIMIT_UTC_DAY || lc->reset == LIMIT_UTC_MONTH))
            return bad(l, sub, "give per (a sliding window) or reset (a calendar window), not both");
        if (lc->used_header && lc->reset != LIMIT_SLIDING)
            return bad(l, sub, "used_header is for windows with per");
    }
    return 0;
}

static int read_source_keys(const struct cl *l, const char *name, const json_t *obj,
                            struct source_cfg *s, char **key_env, char **token_env)
{
    char where[512];
    const char *k;
    json_t *v;
    long long x;
    s->burst = 1;
    s->timeout_ms = 30000;
    s->connect_timeout_ms = 10000;
    s->max_retries = 5;
    s->retry_delay_ms = 500;
    s->max_retry_delay_ms = 30000;
    s->max_body_bytes = 64LL << 20;
    if (!(s->name = strdup(name)))
        return err_set(l->err, "out of memory");
    snprintf(where, sizeof where, "sources.%s", name);
    if (!json_is_object(obj))
        return bad(l, where, "expected an object");
    char base[512];
    snprintf(base, sizeof base, "%s", where);
    json_object_foreach((json_t *)obj, k, v) {
        snprintf(where, sizeof where, "%s.%s", base, k);
        int rc;
        if (strcmp(k, "base_url") == 0)
            rc = get_str(l, where, v, &s->base_url);
        else if (strcmp(k, "headers") == 0)
            rc = read_headers(l, where, v, s);
        else if (strcmp(k, "limits") == 0)
            rc = read_limits(l, where, v, s);
        else if (strcmp(k, "ban_status") == 0)
            rc = get_small(l, where, v, 400, 599, &s->ban_status);
        else if (strcmp(k, "api_key_env") == 0)
            rc = json_is_null(v) ? 0 : get_str(l, where, v, key_env);
        else if (strcmp(k, "access_token_env") == 0)
            rc = json_is_null(v) ? 0 : get_str(l, where, v, token_env);
        else if (strcmp(k, "rate_limit_per_sec") == 0) {
            /* Below 0.001 (one request in 1000 s) a "limit" is a run that never ends. */
            double r = json_is_number(v) ? json_number_value(v) : -1;
            if (!(r == 0 || (r >= 0.001 && r <= 1e6)))
                return bad(l, where, "expected 0 (no limit) or a number from 0.001 to 1000000");
            s->rate_limit_per_sec = json_number_value(v);
            rc = 0;
        } else if (strcmp(k, "burst") == 0)
            rc = get_small(l, where, v, 1, 1000000, &s->burst);
        else if (strcmp(k, "timeout_ms") == 0)
            rc = get_int(l, where, v, 1, 86400000, &x), s->timeout_ms = rc ? s->timeout_ms : x;
        else if (strcmp(k, "connect_timeout_ms") == 0)
            rc = get_int(l, where, v, 1, 86400000, &x), s->connect_timeout_ms = rc ? s->connect_timeout_ms : x;
        else if (strcmp(k, "max_retries") == 0)
            rc = get_small(l, where, v, 0, 100, &s->max_retries);
        else if (strcmp(k, "retry_delay_ms") == 0)
            rc = get_int(l, where, v, 0, 86400000, &x), s->retry_delay_ms = rc ? s->retry_delay_ms : x;
        else if (strcmp(k, "max_retry_delay_ms") == 0)
            rc = get_int(l, where, v, 0, 86400000, &x), s->max_retry_delay_ms = rc ? s->max_retry_delay_ms : x;
        else if (strcmp(k, "max_body_bytes") == 0)
            rc = get_int(l, where, v, 1, 1LL << 40, &x), s->max_body_bytes = rc ? s->max_body_bytes : x;
        else
            return unknown(l, base, k);
        if (rc < 0)
            return -1;
    }
    if (!s->base_url)
        return err_set(l->err, "%s: %s: missing base_url", l->file, base);
    snprintf(where, sizeof where, "%s.base_url", base);
    if (strncmp(s->base_url, "http://", 7) != 0 && strncmp(s->base_url, "https://", 8) != 0)
        return bad(l, where, "must start with http:// or https://");
    /* Trailing slashes go, but not those of the scheme ("http:///" has no host). */
    size_t len = strlen(s->base_url), scheme = (size_t)(strstr(s->base_url, "://") + 3 - s->base_url);
    while (len > scheme && s->base_url[len - 1] == '/')
        s->base_url[--len] = '\0';
    const char *host = s->base_url + scheme;
    if (!*host || *host == '/')
        return bad(l, where, "has no host");
    if (s->max_retry_delay_ms < s->retry_delay_ms)
        return err_set(l->err, "%s: %s: max_retry_delay_ms is below retry_delay_ms", l->file, base);
    if (s->n_limits && s->rate_limit_per_sec > 0)
        return err_set(l->err, "%s: %s: rate_limit_per_sec and limits both given; keep limits "
                       "(rate_limit_per_sec R is the window {\"requests\": R, \"per\": \"1s\"})",
                       l->file, base);
    if (s->ban_status == 429)
        return err_set(l->err, "%s: %s.ban_status: 429 is retried, it cannot be a ban", l->file, base);
    return 0;
}

/* The keys of sources.<name>, then the deprecated api_key_env/access_token_env
 * translated into the header they stood for:
 * "Authorization: token ${API_KEY_ENV}:${ACCESS_TOKEN_ENV}". */
static int read_source(const struct cl *l, const char *name, const json_t *obj, struct source_cfg *s)
{
    char *key_env = NULL, *token_env = NULL;
    int rc = read_source_keys(l, name, obj, s, &key_env, &token_env);
    if (rc == 0 && !key_env && token_env)
        rc = err_set(l->err, "%s: sources.%s: access_token_env without api_key_env", l->file, name);
    if (rc == 0 && key_env) {
        for (size_t i = 0; rc == 0 && i < s->n_headers; i++)
            if (strcasecmp(s->headers[i].name, "Authorization") == 0)
                rc = err_set(l->err, "%s: sources.%s: api_key_env and headers.Authorization both "
                             "given; keep only headers.Authorization", l->file, name);
        char value[600];
        if (rc == 0 && (strlen(key_env) > 255 || (token_env && strlen(token_env) > 255)))
            rc = err_set(l->err, "%s: sources.%s: api_key_env: bad variable name", l->file, name);
        if (rc == 0) {
            snprintf(value, sizeof value, "token ${%s}%s%s%s", key_env, token_env ? ":${" : "",
                     token_env ? token_env : "", token_env ? "}" : "");
            rc = add_header(l, s, "Authorization", value);
        }
    }
    free(key_env);
    free(token_env);
    return rc;
}

static int read_sources(const struct cl *l, const json_t *obj)
{
    if (!json_is_object(obj))
        return bad(l, "sources", "expected an object");
    size_t n = json_object_size(obj);
    l->c->sources = calloc(n ? n : 1, sizeof *l->c->sources);
    if (!l->c->sources)
        return err_set(l->err, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        struct source_cfg *s = &l->c->sources[l->c->n_sources++];
        if (read_source(l, k, v, s) < 0)
            return -1;
    }
    return 0;
}

static int read_pools(const struct cl *l, const json_t *obj)
{
    if (!json_is_object(obj))
        return bad(l, "pools", "expected an object");
    size_t n = json_object_size(obj);
    l->c->pools = calloc(n ? n : 1, sizeof *l->c->pools);
    if (!l->c->pools)
        return err_set(l->err, "out of memory");
    const char *k;
    json_t *v;
    char where[512];
    json_object_foreach((json_t *)obj, k, v) {
        struct pool_cfg *p = &l->c->pools[l->c->n_pools++];
        if (!(p->name = strdup(k)))
            return err_set(l->err, "out of memory");
        snprintf(where, sizeof where, "pools.%s", k);
        if (!json_is_object(v))
            return bad(l, where, "expected an object like {\"slots\": 4}");
        const char *pk;
        json_t *pv;
        p->slots = 0;
        json_object_foreach(v, pk, pv) {
            if (strcmp(pk, "slots") != 0)
                return unknown(l, where, pk);
            snprintf(where, sizeof where, "pools.%s.slots", k);
            if (get_small(l, where, pv, 1, 100000, &p->slots) < 0)
                return -1;
        }
        if (p->slots == 0)
            return err_set(l->err, "%s: pools.%s: missing slots", l->file, k);
    }
    return 0;
}

static int read_dags(const struct cl *l, json_t *obj)
{
    if (!json_is_object(obj))
        return bad(l, "dags", "expected an object");
    const char *k;
    json_t *v;
    char where[512];
    json_object_foreach(obj, k, v) {
        snprintf(where, sizeof where, "dags.%s", k);
        if (!plugin_valid_name(k))
            return bad(l, where, "bad dag_id: must match [a-z][a-z0-9_]*");
        if (!json_is_object(v))
            return bad(l, where, "expected an object like {\"params\": {...}}");
        const char *dk;
        json_t *dv;
        json_object_foreach(v, dk, dv) {
            if (strcmp(dk, "params") != 0)
                return unknown(l, where, dk);
            if (!json_is_object(dv))
                return err_set(l->err, "%s: %s.params: expected an object", l->file, where);
        }
    }
    json_decref(l->c->dags);
    l->c->dags = json_incref(obj);
    return 0;
}

/* Puts dir/p in place of a relative p. */
static int resolve_path(const struct cl *l, char **p)
{
    if (!*p || (*p)[0] == '/' || strcmp(l->c->dir, ".") == 0)
        return 0;
    size_t len = strlen(l->c->dir) + strlen(*p) + 2;
    char *s = malloc(len);
    if (!s)
        return err_set(l->err, "out of memory");
    snprintf(s, len, "%s/%s", l->c->dir, *p);
    free(*p);
    *p = s;
    return 0;
}

static int read_root(const struct cl *l, json_t *root)
{
    static const char *const formats[] = { "auto", "text", "json", NULL };
    static const char *const levels[] = { "debug", "info", "warning", "error", NULL };
    struct config *c = l->c;
    if (!json_is_object(root))
        return err_set(l->err, "%s: expected a JSON object at the top", l->file);
    if (expand_config(l, root) < 0)
        return -1;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        int rc;
        if (strcmp(k, "database_url") == 0)
            rc = json_is_null(v) ? 0 : get_str(l, k, v, &c->database_url);
        else if (strcmp(k, "dags_dir") == 0)
            rc = get_str(l, k, v, &c->dags_dir);
        else if (strcmp(k, "plugin_dir") == 0)
            rc = get_str(l, k, v, &c->plugin_dir);
        else if (strcmp(k, "max_active_tasks") == 0)
            rc = get_small(l, k, v, 1, 1024, &c->max_active_tasks);
        else if (strcmp(k, "db_connections") == 0)
            rc = get_small(l, k, v, 0, 1024, &c->db_connections);
        else if (strcmp(k, "log_format") == 0)
            rc = one_of(l, k, v, formats, &c->log_format);
        else if (strcmp(k, "log_level") == 0)
            rc = one_of(l, k, v, levels, &c->log_level);
        else if (strcmp(k, "heartbeat_sec") == 0)
            rc = get_small(l, k, v, 1, 3600, &c->heartbeat_sec);
        else if (strcmp(k, "heartbeat_timeout_sec") == 0)
            rc = get_small(l, k, v, 1, 86400, &c->heartbeat_timeout_sec);
        else if (strcmp(k, "pools") == 0)
            rc = read_pools(l, v);
        else if (strcmp(k, "sources") == 0)
            rc = read_sources(l, v);
        else if (strcmp(k, "dags") == 0)
            rc = read_dags(l, v);
        else if (strcmp(k, "serve") == 0 && json_is_object(v))
            rc = (c->serve = json_incref(v)) ? 0 : -1; /* its keys are checked by serve_config.c */
        else if (strcmp(k, "serve") == 0)
            rc = bad(l, "serve", "expected an object");
        else
            return unknown(l, "", k);
        if (rc < 0)
            return -1;
    }
    if (c->heartbeat_timeout_sec <= c->heartbeat_sec)
        return err_set(l->err, "%s: heartbeat_timeout_sec (%d) must be greater than heartbeat_sec (%d)",
                       l->file, c->heartbeat_timeout_sec, c->heartbeat_sec);
    return 0;
}

static struct config *defaults(void)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dir = strdup(".");
    c->dags_dir = strdup("dags");
    c->plugin_dir = strdup("build/tasks");
    c->log_format = strdup("auto");
    c->log_level = strdup("info");
    c->dags = json_object();
    c->max_active_tasks = 8;
    c->heartbeat_sec = 5;
    c->heartbeat_timeout_sec = 60;
    if (!c->dir || !c->dags_dir || !c->plugin_dir || !c->log_format || !c->log_level || !c->dags) {
        config_free(c);
        return NULL;
    }
    return c;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

struct config *config_load(const char *path, struct dr_err *err)
{
    struct config *c = defaults();
    if (!c)
        return (void)err_set(err, "out of memory"), NULL;
    struct stat st;
    if (!path && stat("config.json", &st) == 0)
        path = "config.json";
    if (path) {
        struct cl l = { .file = path, .c = c, .err = err };
        json_error_t je;
        size_t len = 0;
        char *text = NULL;
        int rr = readfile_load(path, CONFIG_MAX_BYTES, &text, &len, err);
        if (rr == READFILE_TOO_BIG) {
            err_set(err, "%s:1:1: file is over the 1 MiB limit for a config", path);
            if (err)
                err->line = err->col = 1;
        }
        if (rr != 0)
            goto fail;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        free(text);
        if (!root) {
            if (je.line > 0) {
                err_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
                if (err) {
                    err->line = je.line;
                    err->col = je.column;
                }
            } else {
                err_set(err, "%s: %s", path, je.text);
            }
            goto fail;
        }
        free(c->dir);
        c->path = strdup(path);
        c->dir = dir_of(path);
        if (!c->path || !c->dir) {
            json_decref(root);
            err_set(err, "out of memory");
            goto fail;
        }
        int rc = read_root(&l, root);
        json_decref(root);
        if (rc < 0 || resolve_path(&l, &c->dags_dir) < 0 || resolve_path(&l, &c->plugin_dir) < 0)
            goto fail;
    }
    const char *env = getenv("DATABASE_URL");
    if (env && *env) {
        free(c->database_url);
        if (!(c->database_url = strdup(env))) {
            err_set(err, "out of memory");
            goto fail;
        }
    }
    return c;
fail:
    config_free(c);
    return NULL;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->dir);
    free(c->database_url);
    free(c->dags_dir);
    free(c->plugin_dir);
    free(c->log_format);
    free(c->log_level);
    for (size_t i = 0; i < c->n_sources; i++) {
        struct source_cfg *s = &c->sources[i];
        free(s->name);
        free(s->base_url);
        for (size_t j = 0; j < s->n_headers; j++) {
            free(s->headers[j].name);
            free(s->headers[j].value);
        }
        free(s->headers);
        for (size_t j = 0; j < s->n_limits; j++)
            free(s->limits[j].used_header);
        free(s->limits);
    }
    free(c->sources);
    for (size_t i = 0; i < c->n_pools; i++)
        free(c->pools[i].name);
    free(c->pools);
    json_decref(c->dags);
    json_decref(c->serve);
    free(c);
}

const struct source_cfg *config_source(const struct config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_sources; i++)
        if (strcmp(c->sources[i].name, name) == 0)
            return &c->sources[i];
    return NULL;
}

const struct pool_cfg *config_pool(const struct config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_pools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return &c->pools[i];
    return NULL;
}

int config_db_connections(const struct config *c)
{
    long n = c && c->db_connections > 0 ? c->db_connections : sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

const json_t *config_dag_params(const struct config *c, const char *dag_id)
{
    if (!c || !c->dags || !dag_id)
        return NULL;
    const json_t *d = json_object_get(c->dags, dag_id);
    const json_t *p = d ? json_object_get(d, "params") : NULL;
    return json_is_object(p) ? p : NULL;
}
