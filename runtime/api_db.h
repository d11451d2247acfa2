/* runtime-private: plugins never include this */
/* The plugin API's verdict on a failed statement: retry it or fail. */
#ifndef DR_API_DB_H
#define DR_API_DB_H

#include <stdbool.h>

/* True when a statement that failed with SQLSTATE code is worth retrying:
 * class 08 (connection exception), 40 (transaction rollback: serialization
 * failure, deadlock), 53 (insufficient resources), 57 (operator intervention:
 * statement_timeout's 57014, a shutdown's 57P01) and 55P03 (lock_not_available,
 * from lock_timeout). False for anything else, NULL and "". Pure; any thread. */
bool api_db_transient(const char *sqlstate);

#endif
