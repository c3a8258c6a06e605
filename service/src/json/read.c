/*
 * json/read.c - the door from request bytes to validated C values (see read.h).
 */
#include "json/read.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "model.h"

static struct json_limits limits = {JSON_MAX_DEPTH, ANALYTICS_BATCH_MAX, NAME_MAX_CHARS};

void json_limits_set(const struct json_limits *l)
{
    limits = *l;
}

const struct json_limits *json_limits(void)
{
    return &limits;
}

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1; cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2; cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3; cp = c & 0x07;
        } else {
            return false;                       /* continuation byte or 0xc0/0xc1/0xf5+ */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n + 1;
    }
    return true;
}

size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/*
 * One pass over the raw bytes: depth of [ and { outside strings, \u0000
 * escapes inside them, and control characters anywhere but the four JSON
 * whitespace characters between tokens. cJSON would take any control byte
 * as whitespace and a raw one inside a string, which RFC 8259 forbids and
 * PostgreSQL's jsonb refuses (failing a whole batch). Other malformed input
 * is left for cJSON to refuse.
 */
static enum et_err json_precheck(const char *s, size_t len, struct problem *p)
{
    unsigned depth = 0;
    bool in_string = false;

    if (!utf8_valid(s, len))
        return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                           "the body is not valid UTF-8 text (or contains a NUL byte)");
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((unsigned char)c < 0x20 && (in_string || (c != ' ' && c != '\t' && c != '\r' && c != '\n')))
            return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                               "control character 0x%02x at byte %zu (escape it inside strings)",
                               (unsigned)(unsigned char)c, i);
        if (in_string) {
            if (c == '\\' && i + 1 < len) {
                if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
                    return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                                       "strings may not contain \\u0000");
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limits.max_depth)
                return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                                   "JSON nested deeper than %u levels", limits.max_depth);
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        }
    }
    return ET_OK;
}

enum et_err json_parse(const char *body, size_t len, cJSON **out, struct problem *p)
{
    const char *end = NULL;
    cJSON *root;

    *out = NULL;
    if (len == 0)
        return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON, "the request body is empty");
    /* cJSON skips a byte order mark that RFC 8259 8.1 forbids senders to add;
     * refused, so the tree and the text it came from start at the same byte
     * (json_text_bind and the payload spans walk the text). */
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                           "the body starts with a byte order mark; send JSON without one");
    if (json_precheck(body, len, p) != ET_OK)
        return p->err;
    /* The body is not NUL-terminated: parse by length, then demand that only
     * whitespace follows the value. */
    root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root == NULL)   /* `end` marks the error; cJSON_GetErrorPtr() is process-global */
        return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                           "the body is not well-formed JSON (error near byte %td)",
                           end ? end - body : (ptrdiff_t)0);
    for (; end < body + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(root);
            return problem_set(p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                               "unexpected data after the JSON value");
        }
    }
    /* What cJSON is too lenient about, and the number literals (text.c). */
    if (json_text_bind(body, len, root, p) != ET_OK) {
        cJSON_Delete(root);
        return p->err;
    }
    *out = root;
    return ET_OK;
}

bool jr_object(const cJSON *obj, const char *const *allowed, struct problem *p)
{
    const cJSON *item;
    bool ok = true;

    if (!cJSON_IsObject(obj)) {
        problem_field(p, "(body)", "must be a JSON object");
        return false;
    }
    cJSON_ArrayForEach(item, obj) {
        const char *const *a;
        for (a = allowed; *a && strcmp(*a, item->string) != 0; a++)
            ;
        if (*a == NULL) {
            problem_field(p, item->string, "unknown field");
            ok = false;
        }
    }
    return ok;
}

/* Presence: absent and JSON null both mean "not given". */
static const cJSON *jr_get(const cJSON *obj, const char *field, bool required, bool *ok,
                           struct problem *p)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);

    *ok = true;
    if (v == NULL || cJSON_IsNull(v)) {
        if (required) {
            problem_field(p, field, "is required");
            *ok = false;
        }
        return NULL;
    }
    return v;
}

/* A member that must be a string: its value, or NULL when absent (*ok: was
 * that allowed) or not a string (a field error, *ok false). */
static const char *jr_get_string(const cJSON *obj, const char *field, bool required, bool *ok,
                                 struct problem *p)
{
    const cJSON *v = jr_get(obj, field, required, ok, p);

    if (v == NULL)
        return NULL;
    if (!cJSON_IsString(v)) {
        problem_field(p, field, "must be a string");
        *ok = false;
        return NULL;
    }
    return v->valuestring;
}

bool jr_token(const cJSON *obj, const char *field, bool required, size_t max_len,
              char *out, struct problem *p)
{
    bool ok;
    const char *v = jr_get_string(obj, field, required, &ok, p);
    size_t n;

    out[0] = '\0';
    if (v == NULL)
        return ok;
    n = strlen(v);
    if (n > max_len || !id_valid(v, n)) {
        problem_field(p, field, "must be 1 to %zu characters from A-Z a-z 0-9 _ . : -", max_len);
        return false;
    }
    memcpy(out, v, n + 1);
    return true;
}

bool jr_id(const cJSON *obj, const char *field, bool required, char *out, struct problem *p)
{
    return jr_token(obj, field, required, ID_MAX, out, p);
}

bool jr_text(const cJSON *obj, const char *field, bool required, size_t max_chars,
             char *out, size_t out_size, struct problem *p)
{
    bool ok;
    const char *v = jr_get_string(obj, field, required, &ok, p);
    size_t n, chars;

    out[0] = '\0';
    if (v == NULL)
        return ok;
    n = strlen(v);
    chars = utf8_chars(v);
    if (chars == 0 || chars > max_chars || n >= out_size) {
        problem_field(p, field, "must be 1 to %zu characters", max_chars);
        return false;
    }
    memcpy(out, v, n + 1);
    return true;
}

/* The literal json_text_bind put on a number node; NULL for any other node. */
static const char *number_text(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return NULL;
    assert(v->valuestring != NULL);      /* every tree comes from json_parse */
    return v->valuestring;
}

/*
 * Integers are judged on the text: 4.9999999999999999999 is the double 5.0
 * and 9007199254740993 is no double at all. Only an integer literal is an
 * integer (5.0 and 5e0 are refused: a client that writes them computed a
 * number, and we will not guess which), and the range is checked on the
 * digits, so no value is ever rounded on its way to a balance.
 */
bool jr_int(const cJSON *obj, const char *field, bool required, long long min, long long max,
            long long *out, bool *present, struct problem *p)
{
    bool ok, neg, in_range;
    const cJSON *v = jr_get(obj, field, required, &ok, p);
    const char *s;
    unsigned long long mag = 0, limit;
    long long value;

    if (present)
        *present = v != NULL;
    if (v == NULL)
        return ok;
    if ((s = number_text(v)) == NULL) {
        problem_field(p, field, "must be an integer");
        return false;
    }
    if (strpbrk(s, ".eE") != NULL) {
        problem_field(p, field, "must be an integer, written without a fraction or exponent");
        return false;
    }
    neg = *s == '-';
    /* The magnitude may reach 2^63 for LLONG_MIN; past the limit it stops. */
    limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (s += neg; *s && mag <= limit; s++) {
        unsigned d = (unsigned)(*s - '0');
        mag = mag > (limit - d) / 10 ? limit + 1 : mag * 10 + d;
    }
    /* Only a magnitude within the limit is turned signed: 2^63 + 1 would not
     * fit the negation below (a fuzzer found it). */
    in_range = mag <= limit;
    if (in_range) {
        value = neg ? (mag == 0 ? 0 : -(long long)(mag - 1) - 1) : (long long)mag;
        in_range = value >= min && value <= max;
    }
    if (!in_range) {
        problem_field(p, field, "must be between %lld and %lld", min, max);
        return false;
    }
    *out = value;
    return true;
}

#define MONEY_WHOLE_MAX 99999999LL             /* NUMERIC(10,2) */

/* Cents of "<digits>[.<1 or 2 digits>]", or -1: a sign, an exponent, a third
 * decimal (even 1.500) or anything else is not money as the contract writes it. */
static long long money_cents(const char *s)
{
    long long whole = 0, frac = 0;
    int whole_digits = 0, frac_digits = 0;

    for (; *s >= '0' && *s <= '9'; s++, whole_digits++)
        if ((whole = whole * 10 + (*s - '0')) > MONEY_WHOLE_MAX)
            return -1;
    if (whole_digits == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9' && frac_digits < 3; s++, frac_digits++)
            frac = frac * 10 + (*s - '0');
        if (frac_digits == 0 || frac_digits > 2)
            return -1;
    }
    if (*s != '\0')
        return -1;
    return whole * 100 + (frac_digits == 1 ? frac * 10 : frac);
}

/*
 * Money arrives as a JSON number (99, 99.5) or a decimal string ("99.50")
 * and leaves as the canonical two-decimal string NUMERIC(10,2) prints. Both
 * forms are read as text with one grammar, so 19.999, -0 and -1e-15 are
 * refused rather than rounded to "20.00" or "0.00".
 */
bool jr_money(const cJSON *obj, const char *field, char *out, size_t out_size, struct problem *p)
{
    bool ok;
    const cJSON *v = jr_get(obj, field, true, &ok, p);
    const char *s = cJSON_IsString(v) ? v->valuestring : number_text(v);
    long long cents;

    if (v == NULL)
        return ok;
    if (s == NULL || (cents = money_cents(s)) < 0) {
        problem_field(p, field,
                      "must be an amount from 0 to 99999999.99 with at most two decimals");
        return false;
    }
    snprintf(out, out_size, "%lld.%02lld", cents / 100, cents % 100);
    return true;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

/*
 * RFC 3339 date-time, 2026-11-21T09:30:00(.123)?(Z|+01:00), on a real
 * calendar (Feb 29 in leap years only) in years 0001-9999, which PostgreSQL
 * stores as given; refusing here keeps its errors (and their raw text) out of
 * a batch. Second 60 (a leap second) is accepted, as PostgreSQL does, except
 * past 23:59:60 exactly: PostgreSQL refuses a time of day beyond 24:00:00.
 * Offsets reach +-15:59, PostgreSQL's limit (real zones span -12 to +14).
 */
bool rfc3339_valid(const char *s)
{
    size_t n = strlen(s);
    const char *z;
    int year, month, frac_nonzero = 0;

    if (n < 20 || n >= TIMESTAMP_BYTES)
        return false;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    year = num(s, 4);
    month = num(s + 5, 2);
    if (year < 1 || month < 1 || month > 12 || num(s + 8, 2) < 1 ||
        num(s + 8, 2) > days_in_month(year, month) || num(s + 11, 2) > 23 ||
        num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
        return false;
    z = s + 19;
    if (*z == '.') {
        int fd = 0;
        for (z++; *z >= '0' && *z <= '9'; z++, fd++)
            frac_nonzero |= *z != '0';
        if (fd == 0 || fd > 9)
            return false;
    }
    if (frac_nonzero && memcmp(s + 11, "23:59:60", 8) == 0)
        return false;
    if ((*z == 'Z' || *z == 'z') && z[1] == '\0')
        return true;
    return (*z == '+' || *z == '-') && digits(z + 1, 2) && z[3] == ':' && digits(z + 4, 2) &&
           z[6] == '\0' && num(z + 1, 2) <= 15 && num(z + 4, 2) <= 59;
}

bool jr_timestamp(const cJSON *obj, const char *field, char *out, size_t out_size,
                  struct problem *p)
{
    bool ok;
    const cJSON *v = jr_get(obj, field, false, &ok, p);

    out[0] = '\0';
    if (v == NULL)
        return ok;
    if (!cJSON_IsString(v) || !rfc3339_valid(v->valuestring) ||
        strlen(v->valuestring) >= out_size) {
        problem_field(p, field, "must be an RFC 3339 date-time such as 2026-11-21T09:30:00Z, "
                                "a real date in years 0001 to 9999");
        return false;
    }
    snprintf(out, out_size, "%s", v->valuestring);
    return true;
}

bool event_type_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}
