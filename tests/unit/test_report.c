/* Unit tests for runtime/report.c: the JUnit report's testcases and counts (a cancelled
 * instance is skipped, not failed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "readfile.h"
#include "report.h"

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_junit_cancelled_is_skipped(void **state)
{
    (void)state;
    struct task tasks[2] = { { .id = "fetch" }, { .id = "load" } };
    struct dag d = { .dag_id = "ci", .tasks = tasks, .n_tasks = 2 };
    struct report_opts o = { .dag = &d, .run_id = "ci__test__2026-01-01T00:00:00Z__abc123",
                             .keep_instances = true };
    struct report *r = report_new(&o);
    assert_non_null(r);
    const struct exec_hooks *h = report_hooks(r);
    struct ti_record rec = { .task_id = "fetch", .map_index = 0, .map_key = "NSE:A",
                             .state = TI_SUCCESS, .try_number = 1 };
    h->unit_done(h->ud, &rec, 0.1);
    rec = (struct ti_record){ .task_id = "fetch", .map_index = 1, .map_key = "NSE:B",
                              .state = TI_FAILED, .try_number = 3, .error = "HTTP 500" };
    h->unit_done(h->ud, &rec, 0.1);
    rec = (struct ti_record){ .task_id = "fetch", .map_index = 2, .map_key = "NSE:C",
                              .state = TI_CANCELLED, .try_number = 1 };
    h->unit_done(h->ud, &rec, 0.1);
    rec = (struct ti_record){ .task_id = "load", .map_index = -1, .state = TI_CANCELLED,
                              .try_number = 1, .error = "stopped by SIGINT" };
    h->unit_done(h->ud, &rec, 0.1);

    char path[4096];
    const char *b = getenv("DR_BUILD");
    snprintf(path, sizeof path, "%s/tests/test_report.xml", b && *b ? b : "build");
    struct run_result res = { .state = RUN_CANCELLED };
    struct dr_err err;
    err_clear(&err);
    assert_int_equal(report_write_junit(r, path, &res, 1.0, &err), 0);
    char *xml;
    size_t len;
    assert_int_equal(readfile_load(path, 1 << 20, &xml, &len, &err), 0);
    remove(path);

    assert_non_null(strstr(xml, "<testsuites name=\"dagrun\" tests=\"4\" failures=\"1\" "
                                "skipped=\"2\""));
    assert_non_null(strstr(xml, "tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"2\""));
    assert_int_equal(count(xml, "<failure "), 1);
    assert_non_null(strstr(xml, "<failure type=\"failed\" message=\"HTTP 500\">"));
    assert_int_equal(count(xml, "<skipped "), 2);
    assert_non_null(strstr(xml, "name=\"fetch[NSE:C]\" time=\"0.100\">\n"
                                "      <skipped message=\"cancelled: the run was cancelled "
                                "before it ended\"/>"));
    assert_non_null(strstr(xml, "name=\"load\" time=\"0.100\">\n"
                                "      <skipped message=\"cancelled: stopped by SIGINT\"/>"));
    free(xml);
    report_free(r);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_junit_cancelled_is_skipped),
    };
    return cmocka_run_group_tests_name("report", t, NULL, NULL);
}
