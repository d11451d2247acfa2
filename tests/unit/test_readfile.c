/* Tests for runtime/readfile.c, the one whole-file reader: contents, the size cap, and what
 * is not a regular file (a FIFO is refused at once, never waited on), also through tz.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "readfile.h"
#include "tz.h"

static char dir[] = "/tmp/dr_test_readfile_XXXXXX";

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    alarm(60);      /* a reader that waits on a FIFO would hang: fail instead */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_readfile_contents(void **state)
{
    (void)state;
    char p[128];
    path_in(p, sizeof p, "a.txt");
    write_file(p, "ab\0cd", 5);
    char *buf;
    size_t len;
    struct dr_err e;
    err_clear(&e);
    assert_int_equal(readfile_load(p, 5, &buf, &len, &e), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "ab\0cd", 5);
    assert_int_equal(buf[5], '\0');
    free(buf);
    path_in(p, sizeof p, "empty.txt");
    write_file(p, "", 0);
    assert_int_equal(readfile_load(p, 5, &buf, &len, &e), 0);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
}

static void test_readfile_too_big(void **state)
{
    (void)state;
    char p[128];
    path_in(p, sizeof p, "big.txt");
    write_file(p, "123456", 6);
    char *buf = (char *)1;
    size_t len = 0;
    struct dr_err e;
    err_clear(&e);
    assert_int_equal(readfile_load(p, 5, &buf, &len, &e), READFILE_TOO_BIG);
    assert_null(buf);
    assert_int_equal(len, 6);
    assert_non_null(strstr(e.msg, "file is 6 bytes, over the limit of 5"));
}

static void test_readfile_refusals(void **state)
{
    (void)state;
    char p[128];
    char *buf;
    size_t len;
    struct dr_err e;
    path_in(p, sizeof p, "fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    err_clear(&e);
    assert_int_equal(readfile_load(p, 100, &buf, &len, &e), -1);
    assert_non_null(strstr(e.msg, "not a regular file"));
    err_clear(&e);
    assert_int_equal(readfile_load(dir, 100, &buf, &len, &e), -1);
    assert_non_null(strstr(e.msg, "not a regular file"));
    path_in(p, sizeof p, "missing");
    err_clear(&e);
    assert_int_equal(readfile_load(p, 100, &buf, &len, &e), -1);
    assert_non_null(strstr(e.msg, "No such file"));
    assert_int_equal(readfile_load(p, 100, &buf, &len, NULL), -1);
}

/* A zone file that is a FIFO is an unknown zone, not a wait for a writer. */
static void test_readfile_tz_fifo(void **state)
{
    (void)state;
    char p[128];
    path_in(p, sizeof p, "Fifo");
    assert_int_equal(mkdir(p, 0700), 0);
    path_in(p, sizeof p, "Fifo/Zone");
    assert_int_equal(mkfifo(p, 0600), 0);
    setenv("TZDIR", dir, 1);
    struct dr_err e;
    err_clear(&e);
    assert_null(tz_get("Fifo/Zone", &e));
    assert_non_null(strstr(e.msg, "unknown time zone \"Fifo/Zone\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readfile_contents),
        cmocka_unit_test(test_readfile_too_big),
        cmocka_unit_test(test_readfile_refusals),
        cmocka_unit_test(test_readfile_tz_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
