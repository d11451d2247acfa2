/* Test plugin the loader must refuse: it exports no dr_task_entry. */
#include <dagrun/task.h>

DR_EXPORT int not_a_dagrun_plugin(void);

DR_EXPORT int not_a_dagrun_plugin(void)
{
    return 42;
}
