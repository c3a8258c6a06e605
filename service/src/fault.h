/*
 * fault.h - test-only fault points, compiled out of release builds.
 *
 * A fault point names a moment the fault tests need to interrupt (the
 * process dying between a PostgreSQL commit and the Redis update, say). In a
 * build with -DET_FAULT_INJECTION=ON, the process exits abruptly at the point
 * whose name is in EVENTTRACK_FAULT, as a kill -9 would leave it; in any
 * other build the macro is empty and no trace of it remains in the binary.
 */
#ifndef ET_FAULT_H
#define ET_FAULT_H

#ifdef ET_FAULT_INJECTION
void fault_point(const char *name);
#else
#define fault_point(name) ((void)0)
#endif

#endif
