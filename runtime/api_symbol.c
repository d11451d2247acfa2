/* The plugin API's symbol check: is a provider's symbol made only of its alphabet. */
#include <dagrun/task.h>

#include <string.h>

/* True when c is in set: single characters and ranges "a-z"; a '-' first or
 * last stands for itself. */
static bool in_set(unsigned char c, const char *set)
{
    size_t n = strlen(set);
    for (size_t i = 0; i < n; i++) {
        unsigned char lo = (unsigned char)set[i];
        if (i + 2 < n && set[i + 1] == '-') {
            if (c >= lo && c <= (unsigned char)set[i + 2])
                return true;
            i += 2;
        } else if (c == lo) {
            return true;
        }
    }
    return false;
}

DR_EXPORT bool dr_symbol_ok(const char *s, const char *alphabet, size_t max_len)
{
    if (!s || !alphabet || !*s || strlen(s) > max_len)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80 || !in_set(*p, alphabet))
            return false;
    return true;
}
