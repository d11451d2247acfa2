/* Reading a whole small file with size and FIFO guards: the one reader of the runtime. */
#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sets err to "path: <strerror(e)>", or "path: fallback" when it has no text. */
static int errno_err(struct dr_err *err, const char *path, int e, const char *fallback)
{
    char eb[128];
    return err_set(err, "%s: %s", path, strerror_r(e, eb, sizeof eb) == 0 ? eb : fallback);
}

int readfile_load(const char *path, size_t max, char **buf, size_t *len, struct dr_err *err)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno_err(err, path, errno, "cannot open");
    int rc = -1;
    char *p = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err_set(err, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
        *len = (size_t)st.st_size;
        err_set(err, "%s: file is %lld bytes, over the limit of %zu", path,
                (long long)st.st_size, max);
        rc = READFILE_TOO_BIG;
        goto out;
    }
    /* Read one byte more than fstat said, to notice a file that grew meanwhile. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    if (!(p = malloc(cap + 1))) {
        err_set(err, "%s: out of memory", path);
        goto out;
    }
    while (n < cap) {
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            errno_err(err, path, errno, "read error");
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n == cap) {
        err_set(err, "%s: file changed while being read", path);
        goto out;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    p = NULL;
    rc = 0;
out:
    free(p);
    close(fd);
    return rc;
}
