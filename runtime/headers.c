/* A source's request headers: ${VAR} expansion, the secrets they carry, and their redaction. */
#include "headers.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envexpand.h"

#define MIN_SECRET 3           /* shorter values are not redacted (they would mangle messages) */

static void wipe_free(char *p)
{
    if (!p)
        return;
    explicit_bzero(p, strlen(p));
    free(p);
}

void headers_fini(struct headers *h)
{
    for (struct curl_slist *i = h->list; i; i = i->next)
        if (i->data)
            explicit_bzero(i->data, strlen(i->data));
    curl_slist_free_all(h->list);
    for (size_t i = 0; i < h->n_secrets; i++)
        wipe_free(h->secrets[i]);
    free(h->secrets);
    memset(h, 0, sizeof *h);
}

/* Replaces every occurrence of a secret in buf by "***". */
void headers_redact(const struct headers *h, char *buf)
{
    for (size_t i = 0; i < h->n_secrets; i++) {
        const char *sec = h->secrets[i];
        size_t sl = strlen(sec);
        if (sl < MIN_SECRET)
            continue;
        char *p = buf;
        /* "***" is no longer than the secret: the text only shrinks. */
        while ((p = strstr(p, sec))) {
            memmove(p + 3, p + sl, strlen(p + sl) + 1);
            memcpy(p, "***", 3);
            p += 3;
        }
    }
}

/* Redacts the secrets in a buffered body of len bytes in place (no NUL needed);
 * returns the new length. */
size_t headers_redact_body(const struct headers *h, char *body, size_t len)
{
    for (size_t i = 0; i < h->n_secrets; i++) {
        const char *sec = h->secrets[i];
        size_t sl = strlen(sec), o = 0;
        if (sl < MIN_SECRET)
            continue;
        for (size_t r = 0; r < len;) {
            if (r + sl <= len && memcmp(body + r, sec, sl) == 0) {
                memcpy(body + o, "***", 3);
                o += 3;
                r += sl;
            } else {
                body[o++] = body[r++];
            }
        }
        len = o;
    }
    return len;
}


#define MAX_LISTED_VARS 16

/* What the scan of the header values found. */
struct scan {
    struct headers *h;
    char vars[MAX_LISTED_VARS][256];    /* the variables named, each once */
    bool unset[MAX_LISTED_VARS];
    int n_vars;
    bool any_unset, oom;
};

/* "A", "A and B", "A, B and C": the variables of sc with want_unset (or all). */
static void list_vars(const struct scan *sc, bool only_unset, char *out, size_t size)
{
    int total = 0, k = 0;
    for (int i = 0; i < sc->n_vars; i++)
        total += !only_unset || sc->unset[i];
    out[0] = '\0';
    for (int i = 0; i < sc->n_vars; i++) {
        if (only_unset && !sc->unset[i])
            continue;
        size_t l = strlen(out);
        snprintf(out + l, size - l, "%s%s", k == 0 ? "" : k == total - 1 ? " and " : ", ",
                 sc->vars[i]);
        k++;
    }
}

/* Per ${VAR} of a header value: note the variable, keep its value as a secret
 * (read once, here, before workers start: getenv is not safe against a
 * concurrent setenv), or note it unset. */
static int scan_var(void *ud, const char *name)
{
    struct scan *sc = ud;
    struct headers *h = sc->h;
    int i = 0;
    while (i < sc->n_vars && strcmp(sc->vars[i], name) != 0)
        i++;
    if (i < sc->n_vars)
        return 0;
    const char *v = getenv(name);
    bool unset = !v || !*v;
    sc->any_unset |= unset;
    if (sc->n_vars < MAX_LISTED_VARS) {
        snprintf(sc->vars[sc->n_vars], sizeof sc->vars[0], "%s", name);
        sc->unset[sc->n_vars++] = unset;
    }
    if (unset)
        return 0;
    for (size_t j = 0; j < h->n_secrets; j++)
        if (strcmp(h->secrets[j], v) == 0)
            return 0;
    char **p = realloc(h->secrets, (h->n_secrets + 1) * sizeof *p);
    if (p)
        h->secrets = p;
    if (!p || !(p[h->n_secrets] = strdup(v))) {
        sc->oom = true;
        return 1;
    }
    h->n_secrets++;
    return 0;
}

/* Builds the source's header lines from sc->headers: the variables they name
 * become secrets; an unset variable or a value with a line break makes the
 * source unusable (said at the first request, not here). */
int headers_build(struct headers *h, const char *source, const struct header_cfg *cfg, size_t n,
                  struct dr_err *err)
{
    memset(h, 0, sizeof *h);
    struct scan scan = { .h = h };
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (envexpand_vars(cfg[i].value, scan_var, &scan, &why) != 0 && !scan.oom)
            return err_set(err, "sources.%s.headers.%s: %s", source, cfg[i].name, why);
        if (scan.oom)
            return err_set(err, "sources.%s: out of memory", source);
    }
    list_vars(&scan, false, h->cred_vars, sizeof h->cred_vars);
    if (scan.any_unset) {
        char unset[256];
        list_vars(&scan, true, unset, sizeof unset);
        snprintf(h->unusable, sizeof h->unusable, "%s %s not set", unset,
                 strstr(unset, " and ") ? "are" : "is");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        char unset[256];
        char *v = envexpand(cfg[i].value, unset, sizeof unset, &why);
        if (!v)
            return err_set(err, "sources.%s.headers.%s: %s%s%s", source, cfg[i].name,
                           why, unset[0] ? ": " : "", unset);
        size_t ln = strlen(cfg[i].name) + 2 + strlen(v) + 1;
        char *line = malloc(ln);
        if (line)
            snprintf(line, ln, "%s: %s", cfg[i].name, v);
        bool broken = strpbrk(v, "\r\n") != NULL;
        wipe_free(v);
        if (!line)
            return err_set(err, "sources.%s: out of memory", source);
        if (broken) {
            wipe_free(line);
            snprintf(h->unusable, sizeof h->unusable,
                     "headers.%s: a variable it names holds a line break", cfg[i].name);
            return 0;
        }
        struct curl_slist *l = curl_slist_append(h->list, line);
        wipe_free(line);
        if (!l)
            return err_set(err, "sources.%s: out of memory", source);
        h->list = l;
    }
    return 0;
}

