/*
 * json/text.c - a second look at the JSON text cJSON accepted (see read.h).
 *
 * cJSON is lenient where PostgreSQL's jsonb, which stores analytics payloads,
 * is strict, and it keeps less than the text says:
 *  - a number is whatever strtod takes of [0-9+-.eE] (+1, 01, .5, 1.), kept as
 *    a double: 4.9999999999999999999 becomes 5, 1e-70000 becomes 0;
 *  - an object may name a member twice; cJSON's lookup returns the first,
 *    jsonb keeps the last, so the value validated is not the value stored.
 * json_text_bind walks the text and the tree together (cJSON keeps members
 * and elements in text order, so the n-th child is the n-th value written),
 * refuses non-RFC 8259 numbers and repeated names, and hands every number
 * node its literal so that readers judge a number as it was written.
 * The spans below locate a value by its position in the tree, never by
 * searching for its name: "pay\u006coad" is the member named payload.
 *
 * All functions here take text that json_parse() accepted (or, for
 * json_text_bind, that cJSON parsed): they do not re-check its syntax.
 */
#include "json/read.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* jsonb numerics (PostgreSQL 15, utils/adt/numeric.c): the exponent must stay
 * below INT_MAX / 2 in size (set_var_from_str), the display scale fits 14
 * bits and the weight, in base-10000 digits, an int16 (make_result). */
#define PG_EXPONENT_LIMIT (INT_MAX / 2)
#define PG_DSCALE_MAX 0x3FFF
#define PG_WEIGHT_MIN (-32768)
#define PG_WEIGHT_MAX 32767
#define PG_DEC_DIGITS 4

#define NAME_SHOWN 64            /* bytes of a repeated name quoted in the detail */

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* The index just past the value starting at s[i] (valid JSON assumed). */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    unsigned depth = 0;
    bool in_string = false;

    if (i < len && s[i] != '"' && s[i] != '{' && s[i] != '[') {      /* number or literal */
        while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
               s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            i++;
        return i;
    }
    for (; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"' && (in_string = false, depth == 0))
                return i + 1;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return len;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? exactly. */
bool json_number_strict(const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && is_digit(s[i]))
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t from = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == from)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t from;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        from = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == from)
            return false;
    }
    return i == n;
}

static long floor_div(long a, long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/*
 * Whether jsonb can store the number literal s (RFC 8259 syntax assumed), by
 * the arithmetic of numeric.c rather than by trying: the decimal weight of
 * the first significant digit gives the base-10000 weight that make_result
 * checks, and the digits after the point, less the exponent, the scale.
 */
bool json_number_storable(const char *s)
{
    long int_digits = 0, frac_digits = 0, first_sig = -1, pos = 0, exponent = 0;
    const char *c = s;

    if (*c == '-')
        c++;
    for (; is_digit(*c); c++, pos++, int_digits++)
        if (*c != '0' && first_sig < 0)
            first_sig = pos;
    if (*c == '.')
        for (c++; is_digit(*c); c++, pos++, frac_digits++)
            if (*c != '0' && first_sig < 0)
                first_sig = pos;
    if (*c == 'e' || *c == 'E') {
        bool neg = *++c == '-';
        if (*c == '+' || *c == '-')
            c++;
        for (; is_digit(*c); c++) {
            exponent = exponent * 10 + (*c - '0');
            if (exponent >= PG_EXPONENT_LIMIT)
                return false;            /* "value overflows numeric format" */
        }
        if (neg)
            exponent = -exponent;
    }
    if (frac_digits - exponent > PG_DSCALE_MAX)
        return false;
    if (first_sig >= 0) {                /* zero has weight 0 */
        long weight = floor_div(int_digits - 1 - first_sig + exponent, PG_DEC_DIGITS);
        if (weight < PG_WEIGHT_MIN || weight > PG_WEIGHT_MAX)
            return false;
    }
    return true;
}

/* ---- the walk of json_text_bind ----------------------------------------------- */

struct walk {
    const char *s;
    size_t len, i;
    const char **names;          /* scratch: one object's member names */
    size_t cap;
    struct problem *p;
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting finds a repeated name in O(n log n): an object may have 100,000
 * members in a 1 MiB body. cJSON has already unescaped the names, so "a"
 * and "\u0061" compare equal here. */
static enum et_err check_names(struct walk *w, const cJSON *obj)
{
    size_t n = 0;

    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return ET_OK;
    if (n > w->cap) {
        const char **grown = realloc(w->names, n * sizeof *grown);
        if (grown == NULL)
            return problem_set(w->p, ET_ERR_INTERNAL, NULL, "out of memory");
        w->names = grown;
        w->cap = n;
    }
    n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        w->names[n++] = c->string;
    qsort(w->names, n, sizeof *w->names, name_cmp);
    for (size_t k = 1; k < n; k++) {
        if (strcmp(w->names[k - 1], w->names[k]) == 0) {
            /* A long name is cut at a character boundary: the detail stays UTF-8. */
            const char *name = w->names[k];
            size_t cut = strlen(name);
            if (cut > NAME_SHOWN) {
                for (cut = NAME_SHOWN; ((unsigned char)name[cut] & 0xc0) == 0x80; cut--)
                    ;
            }
            return problem_set(w->p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                               "an object names the member \"%.*s%s\" twice", (int)cut, name,
                               name[cut] ? "..." : "");
        }
    }
    return ET_OK;
}

/* The number at w->i: strict syntax, and its literal on the node. */
static enum et_err bind_number(struct walk *w, cJSON *node)
{
    size_t start = w->i, n;
    char *lit;

    while (w->i < w->len && (is_digit(w->s[w->i]) || w->s[w->i] == '-' || w->s[w->i] == '+' ||
                             w->s[w->i] == '.' || w->s[w->i] == 'e' || w->s[w->i] == 'E'))
        w->i++;
    n = w->i - start;
    if (!json_number_strict(w->s + start, n))
        return problem_set(w->p, ET_ERR_MALFORMED, PT_MALFORMED_JSON,
                           "the number at byte %zu is not written as JSON allows (RFC 8259)", start);
    /* cJSON_Delete frees valuestring of any node with cJSON's allocator. */
    if ((lit = cJSON_malloc(n + 1)) == NULL)
        return problem_set(w->p, ET_ERR_INTERNAL, NULL, "out of memory");
    memcpy(lit, w->s + start, n);
    lit[n] = '\0';
    node->valuestring = lit;
    return ET_OK;
}

static enum et_err bind_value(struct walk *w, cJSON *node);

/* An object or array at w->i: each child's value in turn (and, in an
 * object, the name and ':' before it). */
static enum et_err bind_container(struct walk *w, cJSON *node, bool object)
{
    enum et_err err = object ? check_names(w, node) : ET_OK;

    w->i++;                                           /* '{' or '[' */
    for (cJSON *c = node->child; c && err == ET_OK; c = c->next) {
        w->i = skip_ws(w->s, w->len, w->i);
        if (w->s[w->i] == ',')
            w->i = skip_ws(w->s, w->len, w->i + 1);
        if (object) {
            w->i = skip_ws(w->s, w->len, skip_value(w->s, w->len, w->i));   /* the name */
            assert(w->i < w->len && w->s[w->i] == ':');
            w->i = skip_ws(w->s, w->len, w->i + 1);
        }
        err = bind_value(w, c);
    }
    if (err == ET_OK) {
        w->i = skip_ws(w->s, w->len, w->i);
        assert(w->i < w->len && w->s[w->i] == (object ? '}' : ']'));
        w->i++;
    }
    return err;
}

static enum et_err bind_value(struct walk *w, cJSON *node)
{
    w->i = skip_ws(w->s, w->len, w->i);
    assert(w->i < w->len);
    switch (node->type & 0xff) {
    case cJSON_Object:
        return bind_container(w, node, true);
    case cJSON_Array:
        return bind_container(w, node, false);
    case cJSON_Number:
        return bind_number(w, node);
    default:                                          /* string, true, false, null */
        w->i = skip_value(w->s, w->len, w->i);
        return ET_OK;
    }
}

enum et_err json_text_bind(const char *s, size_t len, cJSON *root, struct problem *p)
{
    struct walk w = {.s = s, .len = len, .p = p};
    enum et_err err = bind_value(&w, root);

    free(w.names);
    return err;
}

/* ---- spans ----------------------------------------------------------------------- */

bool json_member_span(const char *s, size_t len, const cJSON *obj, const cJSON *member,
                      size_t *start, size_t *end)
{
    size_t i = skip_ws(s, len, 0);

    if (!cJSON_IsObject(obj) || i >= len || s[i] != '{')
        return false;
    i = skip_ws(s, len, i + 1);
    for (const cJSON *c = obj->child; c && i < len && s[i] == '"'; c = c->next) {
        i = skip_ws(s, len, skip_value(s, len, i));       /* the name, then ':' */
        i = skip_ws(s, len, i + 1);
        *start = i;
        *end = skip_value(s, len, i);
        if (c == member)
            return true;
        i = skip_ws(s, len, *end);
        if (i < len && s[i] == ',')
            i = skip_ws(s, len, i + 1);
    }
    return false;
}

bool json_element_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *end)
{
    size_t i = *pos;

    if (i == 0) {
        i = skip_ws(s, len, 0);
        if (i >= len || s[i] != '[')
            return false;
        i++;
    }
    i = skip_ws(s, len, i);
    if (i < len && s[i] == ',')
        i = skip_ws(s, len, i + 1);
    if (i >= len || s[i] == ']')
        return false;
    *start = i;
    *end = *pos = skip_value(s, len, i);
    return true;
}
