/*
 * log.h - the one logger: every run-time message of the service goes here.
 *
 * One function stamps the time (UTC, milliseconds), the level, the component
 * and the id of the request being served, and writes one line to stderr: a
 * JSON object by default (log collectors parse it without a grammar), or
 * plain text for a terminal (setting log_format). Nothing else in
 * service/src writes to stderr at run time; main.c's command-line messages
 * (usage, a bad setting before the logger is configured) are the exception.
 *
 * The request id is thread-local: http/server.c sets it while a request's
 * handler runs on the worker thread, so a store that logs deep inside a verb
 * names the request without every signature carrying it.
 */
#ifndef ET_LOG_H
#define ET_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LL_DEBUG, LL_INFO, LL_WARN, LL_ERROR };

enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

/* Chooses the line format; call before any thread logs (main.c). */
void log_set_format(enum log_format format);

/* Parses "json" or "text"; false for anything else. */
bool log_format_parse(const char *name, enum log_format *out);

/* The request this thread is serving, or NULL for none. The string must stay
 * valid until it is replaced (it belongs to the request, http/server.c). */
void log_set_request_id(const char *id);

/* One line at `level` from `component` ("http", "postgres", ...). The
 * message is one line: a newline in it is escaped, never split. */
void et_log(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void et_vlog(enum log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
