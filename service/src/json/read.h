/*
 * json/read.h - parsing request bodies and reading typed, validated fields.
 *
 * json_parse() is the only door from bytes to a cJSON tree. It checks what
 * cJSON would accept too kindly before cJSON sees the bytes: invalid UTF-8,
 * raw NUL bytes and \u0000 escapes (which would silently cut C strings),
 * and nesting deeper than the limit (cJSON's own limit is 1000 frames of
 * recursion); and after: an object naming a member twice, a number RFC 8259
 * forbids (json_text_bind, below). Field readers record every problem in a
 * struct problem and return false, so a decoder reports all bad fields at
 * once; numbers they read from the literal, never from the double.
 */
#ifndef ET_JSON_READ_H
#define ET_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "errors.h"

/*
 * Limits of what a request body may be. Process-wide: set once by main()
 * from the configuration before any worker thread starts, read-only after.
 * The defaults are the contract's maxima.
 */
#define JSON_MAX_DEPTH 32              /* default nesting limit */

struct json_limits {
    unsigned max_depth;          /* nesting of arrays and objects */
    size_t batch_max;            /* analytics envelopes per batch */
    size_t name_max_chars;       /* names and titles */
};
void json_limits_set(const struct json_limits *limits);
const struct json_limits *json_limits(void);

/* On ET_OK, *out is a tree the caller frees with cJSON_Delete(). */
enum et_err json_parse(const char *body, size_t len, cJSON **out, struct problem *p);

/* True when s[0..len) is valid UTF-8 with no NUL byte. */
bool utf8_valid(const char *s, size_t len);
size_t utf8_chars(const char *s);

/* Fails (field "(body)") unless obj is an object whose keys are all listed. */
bool jr_object(const cJSON *obj, const char *const *allowed, struct problem *p);

/* Each reader: absent and !required -> true with *present=false where given;
 * absent and required, or wrong -> a field error and false. */
bool jr_id(const cJSON *obj, const char *field, bool required, char *out, struct problem *p);
bool jr_text(const cJSON *obj, const char *field, bool required, size_t max_chars,
             char *out, size_t out_size, struct problem *p);
bool jr_token(const cJSON *obj, const char *field, bool required, size_t max_len,
              char *out, struct problem *p);
bool jr_int(const cJSON *obj, const char *field, bool required, long long min, long long max,
            long long *out, bool *present, struct problem *p);
bool jr_money(const cJSON *obj, const char *field, char *out, size_t out_size, struct problem *p);
bool jr_timestamp(const cJSON *obj, const char *field, char *out, size_t out_size,
                  struct problem *p);

/*
 * json/text.c: a second look at the text cJSON parsed. json_text_bind (run
 * by json_parse) refuses what RFC 8259 and jsonb refuse but cJSON takes --
 * numbers such as +1, 01, .5 and 1., and an object naming a member twice
 * after unescaping ("a" and "\u0061") -- and gives every number node of the
 * tree its literal as written, in node->valuestring (freed by cJSON_Delete):
 * readers judge numbers by that text, never by the double.
 */
enum et_err json_text_bind(const char *s, size_t len, cJSON *root, struct problem *p);
/* s[0..n) is a number as RFC 8259 writes it. */
bool json_number_strict(const char *s, size_t n);
/* The literal (strict syntax) fits PostgreSQL's numeric, which jsonb uses:
 * 1e-70000 and 1e1000000 do not. */
bool json_number_storable(const char *literal);

/*
 * Byte spans inside JSON text that json_parse() already accepted, so a value
 * can be passed on byte for byte as the client wrote it and as the validator
 * saw it (cJSON keeps numbers as doubles: re-printing would turn 1e400 into
 * null and round big integers).
 * json_member_span: in the object text s[0..len), whose tree is obj, the
 * value of `member` (a child of obj), found by its position in the tree:
 * never by its name, which the text may spell with escapes.
 * json_element_next: the next element of the array text s[0..len), from
 * *pos (0 to start); false after the last.
 */
bool json_member_span(const char *s, size_t len, const cJSON *obj, const cJSON *member,
                      size_t *start, size_t *end);
bool json_element_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *end);

/* Pure syntax checks, shared with the query-string and header parsers. */
bool rfc3339_valid(const char *s);
bool event_type_valid(const char *s);

#endif
