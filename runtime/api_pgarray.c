/* The plugin API's PostgreSQL array literals: a list param as text[] (dr_pg_text_array). */
#include <dagrun/task.h>

#include <stdlib.h>

DR_EXPORT char *dr_pg_text_array(const json_t *list, bool *not_strings)
{
    size_t cap = 3, i, off = 0;
    const json_t *v;
    *not_strings = false;
    if (list && !json_is_array(list)) {
        *not_strings = true;
        return NULL;
    }
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) {
            *not_strings = true;
            return NULL;
        }
        cap += 2 * json_string_length(v) + 3;
    }
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[off++] = '{';
    json_array_foreach(list, i, v) {
        if (i)
            buf[off++] = ',';
        buf[off++] = '"';
        for (const char *s = json_string_value(v); *s; s++) {
            if (*s == '"' || *s == '\\')
                buf[off++] = '\\';
            buf[off++] = *s;
        }
        buf[off++] = '"';
    }
    buf[off++] = '}';
    buf[off] = '\0';
    return buf;
}
