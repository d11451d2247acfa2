/* ${VAR} templates: finding the variables a string names, and expanding them from the environment. */
#include "envexpand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255

/* One step of the scan at p: sets *name (for ${NAME}) or *lit and *lit_len (literal
 * text) and returns the position after it; NULL with *why on a syntax error. */
static const char *step(const char *p, char *name, const char **lit, size_t *lit_len,
                        const char **why)
{
    name[0] = '\0';
    if (p[0] == '$' && p[1] == '$') {
        *lit = p;
        *lit_len = 1;
        return p + 2;
    }
    if (p[0] == '$' && p[1] == '{') {
        const char *end = strchr(p + 2, '}');
        if (!end) {
            *why = "unterminated ${ (write $$ for a literal $)";
            return NULL;
        }
        size_t nl = (size_t)(end - (p + 2));
        if (nl == 0 || nl > NAME_MAX_LEN) {
            *why = "bad variable name in ${...}";
            return NULL;
        }
        memcpy(name, p + 2, nl);
        name[nl] = '\0';
        return end + 1;
    }
    /* Literal text up to the next '$' (or one '$' that starts nothing). */
    const char *q = strchr(p + 1, '$');
    *lit = p;
    *lit_len = q ? (size_t)(q - p) : strlen(p);
    return p + *lit_len;
}

int envexpand_vars(const char *s, int (*fn)(void *ud, const char *name), void *ud, const char **why)
{
    char name[NAME_MAX_LEN + 1];
    const char *lit;
    size_t ll;
    for (const char *p = s; *p;) {
        p = step(p, name, &lit, &ll, why);
        if (!p)
            return -1;
        if (name[0] && fn) {
            int rc = fn(ud, name);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int envexpand_has_vars(const char *s)
{
    for (const char *p = s; (p = strchr(p, '$'));) {
        if (p[1] == '$')
            p += 2;
        else if (p[1] == '{')
            return 1;
        else
            p++;
    }
    return 0;
}

char *envexpand(const char *s, char *unset, size_t unset_size, const char **why)
{
    char name[NAME_MAX_LEN + 1];
    const char *lit;
    size_t ll, n = 0, cap = strlen(s) + 1;
    if (unset_size)
        unset[0] = '\0';
    char *out = malloc(cap);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    for (const char *p = s; *p;) {
        p = step(p, name, &lit, &ll, why);
        if (!p)
            goto fail;
        if (name[0]) {
            lit = getenv(name);
            if (!lit) {
                if (unset_size)
                    snprintf(unset, unset_size, "%s", name);
                *why = "environment variable is not set";
                goto fail;
            }
            ll = strlen(lit);
        }
        if (n + ll + 1 > cap) {
            cap = (n + ll + 1) * 2;
            char *o = realloc(out, cap);
            if (!o) {
                *why = "out of memory";
                goto fail;
            }
            out = o;
        }
        memcpy(out + n, lit, ll);
        n += ll;
    }
    out[n] = '\0';
    return out;
fail:
    /* A partial expansion may hold a secret already. */
    explicit_bzero(out, cap);
    free(out);
    return NULL;
}
