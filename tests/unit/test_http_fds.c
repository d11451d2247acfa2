/* Tests for runtime/http.c out of file descriptors: a request that cannot open a socket
 * (EMFILE) says the process is out of file descriptors at once, without retrying. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "http.h"

static void test_emfile(void **state)
{
    (void)state;
    struct source_cfg src = {
        .name = "kite", .base_url = "http://127.0.0.1:1", .burst = 1, .timeout_ms = 5000,
        .connect_timeout_ms = 2000, .max_retries = 3, .retry_delay_ms = 10,
        .max_retry_delay_ms = 5000, .max_body_bytes = 1 << 20,
    };
    struct config cfg = { .sources = &src, .n_sources = 1 };
    struct dr_err err = { 0 };
    struct http_sources *s = http_sources_new(&cfg, &err);
    assert_non_null(s);
    struct http_client *c = http_client_new(s);
    assert_non_null(c);

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    dr_http_response resp;
    int rc = http_get(c, "kite", "/x", NULL, NULL, &resp, NULL);
    while (n > 0)
        close(fds[--n]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    printf("# %s (%d attempt%s)\n", resp.error, resp.attempts, resp.attempts == 1 ? "" : "s");
    assert_int_equal(rc, -1);
    assert_non_null(strstr(resp.error, "out of file descriptors"));
    assert_int_equal(resp.attempts, 1);
    free(resp.body);
    http_client_free(c);
    http_sources_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
