/*
 * json/canonical.h - one text per JSON value, for "the same body" tests.
 *
 * Two request bodies are "the same" for an Idempotency-Key when they decode
 * to the same JSON value (docs/adr/0010). json_canonical() renders a value so
 * that equal values, and only they, give equal bytes:
 *   - no whitespace between tokens;
 *   - object members sorted by name, bytewise on the unescaped UTF-8; a name
 *     that occurs twice (after unescaping) is refused, since such a body has
 *     no single value (cJSON keeps the first, jsonb the last);
 *   - strings by their unescaped value, re-escaped one way: only '"', '\' and
 *     control characters are escaped (as \" \\ and \u00XX);
 *   - numbers by exact decimal value, read from the text as written (never
 *     through a double): [-]DIGITS[eEXP] with no leading or trailing zero in
 *     DIGITS, so 10, 1e1, 10.0 and 0.1e2 are all "1e1", and -0 is "0".
 * The output is itself JSON, so it can be logged or stored as text.
 */
#ifndef ET_JSON_CANONICAL_H
#define ET_JSON_CANONICAL_H

#include <stddef.h>

#include "buf.h"
#include "errors.h"

/*
 * Appends the canonical form of the JSON text s[0..len) to out. Returns
 * ET_OK, or ET_ERR_MALFORMED (not one JSON value, invalid UTF-8, a name twice,
 * nested deeper than JSON_CANONICAL_MAX_DEPTH) or ET_ERR_INVALID (an exponent
 * beyond +-10^15, far outside anything a field accepts) with p filled. On
 * error out may hold a partial rendering; the caller frees it either way.
 */
#define JSON_CANONICAL_MAX_DEPTH 64
enum et_err json_canonical(const char *s, size_t len, struct buf *out, struct problem *p);

#endif
