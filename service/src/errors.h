/*
 * errors.h - the one error vocabulary of EventTrack.
 *
 * Stores and validators speak in enum et_err and fill a struct problem with
 * a human detail and, for invalid input, the offending fields. They never
 * choose an HTTP status: http/response.c owns the single table that turns an
 * et_err into a status code and an RFC 9457 problem type, so the mapping can
 * be read (and changed) in one place.
 */
#ifndef ET_ERRORS_H
#define ET_ERRORS_H

#include <stddef.h>

enum et_err {
    ET_OK = 0,
    ET_ERR_MALFORMED,       /* the request cannot be parsed (bad JSON, bad query) */
    ET_ERR_BAD_HEADER,      /* a header has an impossible value */
    ET_ERR_INVALID,         /* well-formed, but a field is wrong or names nothing */
    ET_ERR_NOT_FOUND,       /* the addressed resource does not exist */
    ET_ERR_CONFLICT,        /* the request contradicts existing state */
    ET_ERR_UNAUTHORIZED,    /* no valid credentials */
    ET_ERR_FORBIDDEN,       /* valid credentials, not allowed to do this */
    ET_ERR_RATE_LIMITED,    /* too many requests for this key: retry later */
    ET_ERR_NO_CREDIT,       /* constraint A: the organization has no credit left */
    ET_ERR_METHOD,          /* known path, wrong method */
    ET_ERR_MEDIA_TYPE,      /* body is not application/json */
    ET_ERR_TOO_LARGE,       /* body over the configured limit */
    ET_ERR_UNAVAILABLE,     /* a store cannot be reached: retry later */
    ET_ERR_INTERNAL,        /* our fault */
    ET_ERR_NOT_IMPLEMENTED, /* the request needs a feature the server lacks (a transfer coding) */
    ET_ERR__COUNT
};

#define PROBLEM_MAX_FIELDS 8

struct field_error {
    char field[64];
    char message[160];
};

/*
 * What went wrong, for the client. `slug` refines the default problem type of
 * `err` (e.g. ET_ERR_CONFLICT + "already-registered"); NULL keeps the default.
 * Lives on the stack of the request; owns no heap memory.
 */
struct problem {
    enum et_err err;
    const char *slug;
    char detail[256];
    struct field_error fields[PROBLEM_MAX_FIELDS];
    size_t nfields;
    int retry_after;          /* seconds until a retry may succeed; 0: the default */
};

/* Sets err/slug/detail (printf-style) and returns err, for `return problem_set(...)`. */
enum et_err problem_set(struct problem *p, enum et_err err, const char *slug,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Cuts a trailing incomplete UTF-8 sequence left by a truncating copy, so a
 * client's multi-byte text cut at a field's size stays valid UTF-8. */
void utf8_trim_partial(char *s);

/* Forgets an earlier problem, to replace a generic one with a precise one. */
void problem_clear(struct problem *p);

/* Records one invalid field (ET_ERR_INVALID); extra fields beyond the cap are dropped. */
void problem_field(struct problem *p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
