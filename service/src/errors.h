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

/*
 * THE problem types: X(constant, error kind, slug, title), one row each. A
 * type belongs to exactly one kind, and so to one HTTP status (http/
 * response.c maps kinds to statuses); the first row of a kind is its
 * default, sent when a problem names no type. The title names the type, not
 * the status. Code names a type by its constant (PT_STORE_UNAVAILABLE), never
 * by its text (scripts/check-layers, rule E); tests/unit/test_response.c
 * checks every row's slug and status together.
 */
#define ET_PROBLEM_TYPES(X) \
    X(PT_OK, ET_OK, "ok", "OK") \
    X(PT_MALFORMED_JSON, ET_ERR_MALFORMED, "malformed-json", "Malformed request") \
    X(PT_INVALID_QUERY, ET_ERR_MALFORMED, "invalid-query", "Invalid query parameter") \
    X(PT_INVALID_CURSOR, ET_ERR_MALFORMED, "invalid-cursor", "Invalid cursor") \
    X(PT_INVALID_HEADER, ET_ERR_BAD_HEADER, "invalid-header", "Invalid header") \
    X(PT_INVALID_FRAMING, ET_ERR_BAD_HEADER, "invalid-framing", "Invalid message framing") \
    X(PT_VALIDATION_FAILED, ET_ERR_INVALID, "validation-failed", "Validation failed") \
    X(PT_IDEMPOTENCY_KEY_REUSED, ET_ERR_INVALID, "idempotency-key-reused", "Idempotency key reused") \
    X(PT_NOT_FOUND, ET_ERR_NOT_FOUND, "not-found", "Not found") \
    X(PT_CONFLICT, ET_ERR_CONFLICT, "conflict", "Conflict") \
    X(PT_ALREADY_REGISTERED, ET_ERR_CONFLICT, "already-registered", "Already registered") \
    X(PT_REGISTRATION_CANCELLED, ET_ERR_CONFLICT, "registration-cancelled", "Registration already cancelled") \
    X(PT_ALREADY_EXISTS, ET_ERR_CONFLICT, "already-exists", "Already exists") \
    X(PT_EVENT_ID_CONFLICT, ET_ERR_CONFLICT, "event-id-conflict", "Event id conflict") \
    X(PT_IDEMPOTENCY_KEY_IN_PROGRESS, ET_ERR_CONFLICT, "idempotency-key-in-progress", "Request with this key in progress") \
    X(PT_UNAUTHORIZED, ET_ERR_UNAUTHORIZED, "unauthorized", "Unauthorized") \
    X(PT_INVALID_TOKEN, ET_ERR_UNAUTHORIZED, "invalid-token", "Invalid credentials") \
    X(PT_FORBIDDEN, ET_ERR_FORBIDDEN, "forbidden", "Forbidden") \
    X(PT_RATE_LIMITED, ET_ERR_RATE_LIMITED, "rate-limited", "Too many requests") \
    X(PT_INGEST_QUOTA_EXCEEDED, ET_ERR_RATE_LIMITED, "ingest-quota-exceeded", "Too many requests") \
    X(PT_TOO_MANY_FAILED_AUTHENTICATIONS, ET_ERR_RATE_LIMITED, "too-many-failed-authentications", "Too many requests") \
    X(PT_INSUFFICIENT_CREDITS, ET_ERR_NO_CREDIT, "insufficient-credits", "Insufficient credits") \
    X(PT_METHOD_NOT_ALLOWED, ET_ERR_METHOD, "method-not-allowed", "Method not allowed") \
    X(PT_UNSUPPORTED_MEDIA_TYPE, ET_ERR_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type") \
    X(PT_PAYLOAD_TOO_LARGE, ET_ERR_TOO_LARGE, "payload-too-large", "Payload too large") \
    X(PT_STORE_UNAVAILABLE, ET_ERR_UNAVAILABLE, "store-unavailable", "Service unavailable") \
    X(PT_OUTCOME_UNKNOWN, ET_ERR_UNAVAILABLE, "outcome-unknown", "Outcome unknown") \
    X(PT_SERVER_BUSY, ET_ERR_UNAVAILABLE, "server-busy", "Server busy") \
    X(PT_TOO_MANY_CONNECTIONS, ET_ERR_UNAVAILABLE, "too-many-connections", "Too many connections") \
    X(PT_INTERNAL_ERROR, ET_ERR_INTERNAL, "internal-error", "Internal server error") \
    X(PT_UNSUPPORTED_TRANSFER_CODING, ET_ERR_NOT_IMPLEMENTED, "unsupported-transfer-coding", "Not implemented")

/* Each type's slug, as a constant to pass as a problem's slug. */
#define ET_PROBLEM_SLUG_DECL(name, kind, slug, title) extern const char name[];
ET_PROBLEM_TYPES(ET_PROBLEM_SLUG_DECL)
#undef ET_PROBLEM_SLUG_DECL

struct problem_type {
    const char *slug;         /* /problems/<slug>; one of the PT_ constants */
    enum et_err kind;
    const char *title;
};

/* The row of a slug (NULL: the default of kind), or NULL when the slug is in
 * no row. */
const struct problem_type *problem_type_of(enum et_err kind, const char *slug);

/* All rows, for tests: *count is set to their number. */
const struct problem_type *problem_types(size_t *count);

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
