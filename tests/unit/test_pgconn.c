/* Tests for runtime/pgconn.c's connection errors: nothing of a connection string's password
 * is ever printed (parse errors, connect errors, libpq's messages), however it is written,
 * and a process out of file descriptors is said as such. No server is needed: every
 * connection string points at a socket directory that does not exist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgconn.h"
#include "store.h"

/* Opens url, which must fail, and checks that none of the forbidden texts is in the message. */
static void refused_without(const char *url, const char *const *forbidden)
{
    struct dr_err err;
    err_clear(&err);
    PGconn *c = store_open_conn(url, &err);
    assert_null(c);
    printf("# %s\n#   -> %s\n", url, err.msg);
    assert_true(err.msg[0] != '\0');
    for (size_t i = 0; forbidden[i]; i++)
        if (strstr(err.msg, forbidden[i])) {
            print_error("\"%s\" in \"%s\"\n", forbidden[i], err.msg);
            fail();
        }
}

static void test_open_bracket(void **state)
{
    (void)state;
    refused_without("postgresql://alice:s3cr3t@[::1/db", (const char *[]){ "s3cr3t", NULL });
}

static void test_slash_in_password(void **state)
{
    (void)state;
    /* libpq reads "alice" as the host and "s3" as the port. */
    refused_without("postgresql://alice:s3/cr3t@host/db",
                    (const char *[]){ "s3/cr3t", "cr3t", "port s3", "\"s3\"", NULL });
    refused_without("postgresql://alice:p@ss@/db?host=/nonexistent_dr_sock",
                    (const char *[]){ "p@ss", "ss@", NULL });
}

static void test_password_in_other_fields(void **state)
{
    (void)state;
    refused_without("postgresql://alice:hunter22@/db?host=/nonexistent_dr_sock&port=hunter22",
                    (const char *[]){ "hunter22", NULL });
    refused_without("postgresql://alice:hunter22@/hunter22?host=/nonexistent_dr_sock",
                    (const char *[]){ "hunter22", NULL });
    refused_without("postgresql://alice:p%2Fss%3Fwd@/db?host=/nonexistent_dr_sock&port=p%2Fss%3Fwd",
                    (const char *[]){ "p/ss?wd", "p%2Fss%3Fwd", NULL });
    refused_without("postgresql:///db?host=/nonexistent_dr_sock&password=qu3ry&port=qu3ry",
                    (const char *[]){ "qu3ry", NULL });
}

static void test_keyword_value(void **state)
{
    (void)state;
    refused_without("host=/nonexistent_dr_sock password=kvs3cr3t port=kvs3cr3t",
                    (const char *[]){ "kvs3cr3t", NULL });
    refused_without("host=/nonexistent_dr_sock password='kv s3cr3t' port=s3cr3t dbname",
                    (const char *[]){ "s3cr3t", NULL });
    refused_without("host=/nonexistent_dr_sock password = 'it\\'s' port='it\\'s'",
                    (const char *[]){ "it's", NULL });
    /* A password that "***" spells again must not loop. */
    refused_without("host=/nonexistent_dr_sock password=*** port=****",
                    (const char *[]){ "***", NULL });
}

static void test_long_and_many(void **state)
{
    (void)state;
    /* A password longer than the redactor keeps: no piece of it is shown. */
    char url[2000], pw[701];
    for (int i = 0; i < 700; i++)
        pw[i] = (char)('a' + i % 26);
    pw[700] = '\0';
    snprintf(url, sizeof url, "host=/nonexistent_dr_sock password=%s port=%s", pw, pw);
    refused_without(url, (const char *[]){ pw + 600, "abcdefghij", NULL });
    /* More password= than the redactor keeps: the last one is not shown either. */
    size_t l = (size_t)snprintf(url, sizeof url, "host=/nonexistent_dr_sock");
    for (int i = 0; i < 20; i++)
        l += (size_t)snprintf(url + l, sizeof url - l, " password=pw%02dxyz", i);
    snprintf(url + l, sizeof url - l, " port=pw19xyz");
    refused_without(url, (const char *[]){ "pw19xyz", NULL });
    /* A password that is a word of the messages. */
    refused_without("host=/nonexistent_dr_sock password=message port=message",
                    (const char *[]){ "message", NULL });
}

static void test_secrets_found(void **state)
{
    (void)state;
    struct pgconn_secrets sc;
    pgconn_find_secrets("postgresql://bob:a%40b%2Fc@[::1/db", &sc);
    char msg[] = "a%40b%2Fc and a@b/c and bob:a%40b%2Fc";
    pgconn_redact(msg, &sc);
    assert_string_equal(msg, "*** and *** and ***");
    pgconn_secrets_free(&sc);
}

static void test_out_of_fds(void **state)
{
    (void)state;
    struct pgconn_secrets sc = { .n = 0 };
    struct dr_err err;
    err_clear(&err);
    pgconn_connect_message(&err, "could not create socket: Too many open files\n", "/tmp", "5432",
                           &sc);
    assert_non_null(strstr(err.msg, "out of file descriptors"));
    assert_true(pgconn_out_of_fds("could not create socket: Too many open files"));
    assert_false(pgconn_out_of_fds("Connection refused"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_bracket),
        cmocka_unit_test(test_slash_in_password),
        cmocka_unit_test(test_password_in_other_fields),
        cmocka_unit_test(test_keyword_value),
        cmocka_unit_test(test_long_and_many),
        cmocka_unit_test(test_secrets_found),
        cmocka_unit_test(test_out_of_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
