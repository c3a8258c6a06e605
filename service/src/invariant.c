/*
 * invariant.c - what ET_ASSERT does when an invariant is broken (see
 * invariant.h). Compiled in every build so that a Debug test binary can link
 * against a core built either way.
 */
#include "invariant.h"

#include <stdlib.h>

#include "log.h"

_Noreturn void invariant_failed(const char *cond, const char *file, int line, const char *func)
{
    et_log(LL_ERROR, "invariant", "%s:%d: %s: assertion failed: %s", file, line, func, cond);
    abort();
}
