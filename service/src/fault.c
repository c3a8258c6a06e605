/*
 * fault.c - test-only fault points (see fault.h).
 */
#include "fault.h"

#ifdef ET_FAULT_INJECTION
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fault_point(const char *name)
{
    const char *armed = getenv("EVENTTRACK_FAULT");

    if (armed && strcmp(armed, name) == 0)
        _exit(137);         /* what a SIGKILL leaves: no cleanup, no flush */
}
#else
typedef int fault_points_compiled_out;   /* ISO C wants a translation unit to declare something */
#endif
