/* Unit tests for runtime/tables.c and the log sink of runtime/log.c: short run ids, the
 * 80-column runs table, state filters; log lines handed to the sink redacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "headers.h"
#include "log.h"
#include "tables.h"

static void test_short_id(void **state)
{
    (void)state;
    assert_string_equal(tables_short_id("kite_historic__manual__2026-12-02T05:03:02Z__632c3b"),
                        "632c3b");
    assert_string_equal(tables_short_id("plain"), "plain");
    assert_string_equal(tables_short_id("ends__"), "ends__");
}

static void test_keep_state(void **state)
{
    (void)state;
    json_t *a = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "state", "failed", "state", "success",
                          "state", "failed", "state", "failed");
    tables_keep_state(a, "failed", 2);
    assert_int_equal(json_array_size(a), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(a, i), "state")),
                            "failed");
    tables_keep_state(a, "success", 0);
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
    assert_true(tables_state_valid("partial", false));
    assert_false(tables_state_valid("upstream_failed", false));
    assert_true(tables_state_valid("upstream_failed", true));
    assert_false(tables_state_valid("bogus", true));
}

/* The runs table: every line fits 80 columns, long DAG ids are cut with "~". */
static void test_runs_table_fits(void **state)
{
    (void)state;
    json_t *runs = json_pack(
        "[{s:s,s:s,s:s,s:s,s:s,s:f,s:i,s:i,s:i}]", "run_id",
        "a_very_long_dag_identifier_indeed__scheduled__2026-12-02T05:03:02Z__632c3b", "dag_id",
        "a_very_long_dag_identifier_indeed", "run_type", "scheduled", "logical_date",
        "2026-12-02T05:03:02Z", "state", "cancelled", "duration_s", 123456.7, "items_ok",
        123456, "items_skipped", 12, "items_failed", 1234);
    char path[] = "/tmp/test_tables.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    tables_print_runs(runs, false);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strlen(line) > 80)
            fail_msg("over 80 columns: %s", line);
        n++;
        if (n == 2) {
            assert_non_null(strstr(line, "632c3b a_very_long_dag~ sched  2026-12-02 05:03 cancelled 34h17m 123k/12/1.2k"));
            assert_non_null(strstr(line, "cancelled"));
        }
    }
    assert_int_equal(n, 3);
    fclose(f);
    unlink(path);
    json_decref(runs);
}

static char g_seen[1024];

static void capture(void *ud, dr_log_level level, const char *run_id, const char *task,
                    const char *item, const char *when, const char *msg)
{
    (void)ud, (void)level, (void)when;
    snprintf(g_seen, sizeof g_seen, "%s|%s|%s|%s", run_id, task, item ? item : "-", msg);
}

/* A task's lines reach the sink redacted of the sources' secrets; others do not reach it. */
static void test_log_sink_redacts(void **state)
{
    (void)state;
    setenv("TEST_TABLES_TOKEN", "s3cr3t_tok", 1);
    struct header_cfg hc = { .name = (char *)"Authorization", .value = (char *)"token ${TEST_TABLES_TOKEN}" };
    struct headers h;
    struct dr_err err;
    assert_int_equal(headers_build(&h, "src", &hc, 1, &err), 0);
    log_setup(LOG_TEXT, DR_LOG_ERROR);   /* nothing printed; the sink still gets INFO */
    log_redact_with(&h, 1);
    log_set_sink(capture, NULL);
    g_seen[0] = '\0';
    log_msg(DR_LOG_INFO, "run1", "fetch", "NSE:INFY", "calling with s3cr3t_tok now");
    assert_string_equal(g_seen, "run1|fetch|NSE:INFY|calling with *** now");
    g_seen[0] = '\0';
    log_msg(DR_LOG_INFO, "run1", NULL, NULL, "not a task's line");
    assert_string_equal(g_seen, "");
    log_msg(DR_LOG_DEBUG, "run1", "fetch", NULL, "debug is not kept unless enabled");
    assert_string_equal(g_seen, "");
    unsigned long before = log_errors_outside_runs();
    log_msg(DR_LOG_ERROR, NULL, NULL, NULL, "a scheduler error");
    log_msg(DR_LOG_ERROR, "run1", NULL, NULL, "a run's error");
    assert_int_equal(log_errors_outside_runs(), before + 1);
    log_set_sink(NULL, NULL);
    log_redact_with(NULL, 0);
    headers_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_id),
        cmocka_unit_test(test_keep_state),
        cmocka_unit_test(test_runs_table_fits),
        cmocka_unit_test(test_log_sink_redacts),
    };
    return cmocka_run_group_tests_name("tables", tests, NULL, NULL);
}
