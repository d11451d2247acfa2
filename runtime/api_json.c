/* The plugin API's exact JSON reading: every number kept as its own text, never through a double. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies text with each number outside a string wrapped in quotes, so that
 * Jansson reads it as a string holding the number's text; then parses that.
 * A number is the longest run of [-+0-9.eE] starting with '-' or a digit, so
 * the transform never changes a string's contents or the structure; text that
 * is not JSON stays not JSON (a stray run quoted is still out of place). */
DR_EXPORT json_t *dr_json_loadb_exact(const char *text, size_t len, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    /* Each number grows by two quotes: at worst every other byte starts one. */
    size_t cap = len + len + 2;
    char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        if (why && whylen)
            snprintf(why, whylen, "out of memory for %zu bytes", len);
        return NULL;
    }
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            buf[o++] = c;
            if (c == '\\' && i + 1 < len)
                buf[o++] = text[++i];
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
            buf[o++] = c;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            buf[o++] = '"';
            while (i < len && (text[i] == '-' || text[i] == '+' || text[i] == '.' ||
                               text[i] == 'e' || text[i] == 'E' ||
                               (text[i] >= '0' && text[i] <= '9')))
                buf[o++] = text[i++];
            buf[o++] = '"';
            i--;
        } else {
            buf[o++] = c;
        }
    }
    json_error_t je;
    json_t *j = json_loadb(buf, o, 0, &je);
    free(buf);
    if (!j && why && whylen)
        snprintf(why, whylen, "%s", je.text);
    return j;
}

/* True when s is a JSON number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. */
DR_EXPORT bool dr_json_number_ok(const char *s)
{
    const char *p = s;
    if (!p)
        return false;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}
