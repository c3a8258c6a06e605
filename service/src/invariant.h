/*
 * invariant.h - ET_ASSERT: internal invariants a programmer can break.
 *
 * For what only a bug in this code can make false (a route index past the
 * table, a JSON writer closing what it did not open, a buffer used after it
 * was handed over), never for input: bad input is an error answer
 * (errors.h), never an abort. Active in Debug and sanitizer builds
 * (ET_ASSERTS, set by CMakeLists.txt), where a broken invariant stops the
 * process at once, with a log line naming the file, line and condition,
 * instead of being absorbed and surfacing later as a wrong answer. In release
 * builds the condition is not evaluated (it must have no side effects) and
 * the code after it copes as it did before.
 */
#ifndef ET_INVARIANT_H
#define ET_INVARIANT_H

#ifdef ET_ASSERTS
#define ET_ASSERT(cond) ((cond) ? (void)0 : invariant_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define ET_ASSERT(cond) ((void)sizeof(cond))
#endif

/* Logs the broken invariant and aborts (a core file for the debugger). */
_Noreturn void invariant_failed(const char *cond, const char *file, int line, const char *func);

#endif
