/* Tests for runtime/api_db.c: which SQLSTATEs a plugin's failed statement is retried for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api_db.h"

static void test_api_db_transient_table(void **state)
{
    (void)state;
    static const struct { const char *code; bool retry; const char *what; } cases[] = {
        { "08000", true, "connection_exception" },
        { "08003", true, "connection_does_not_exist" },
        { "08006", true, "connection_failure" },
        { "08P01", true, "protocol_violation" },
        { "40001", true, "serialization_failure" },
        { "40P01", true, "deadlock_detected" },
        { "40002", true, "transaction_integrity_constraint_violation" },
        { "53000", true, "insufficient_resources" },
        { "53100", true, "disk_full" },
        { "53200", true, "out_of_memory" },
        { "53300", true, "too_many_connections" },
        { "57014", true, "query_canceled (statement_timeout)" },
        { "57P01", true, "admin_shutdown" },
        { "57P03", true, "cannot_connect_now" },
        { "55P03", true, "lock_not_available (lock_timeout)" },
        { "55000", false, "object_not_in_prerequisite_state" },
        { "55006", false, "object_in_use" },
        { "23505", false, "unique_violation" },
        { "22001", false, "string_data_right_truncation" },
        { "42P01", false, "undefined_table" },
        { "42501", false, "insufficient_privilege" },
        { "3F000", false, "invalid_schema_name" },
        { "XX000", false, "internal_error" },
        { "25P02", false, "in_failed_sql_transaction" },
        { "0800", false, "too short" },
        { "080000", false, "too long" },
        { "", false, "empty" },
        { NULL, false, "no SQLSTATE" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (api_db_transient(cases[i].code) != cases[i].retry)
            fail_msg("%s (%s): want %s", cases[i].code ? cases[i].code : "NULL", cases[i].what,
                     cases[i].retry ? "retry" : "fail");
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_api_db_transient_table),
    };
    return cmocka_run_group_tests_name("api_db", t, NULL, NULL);
}
