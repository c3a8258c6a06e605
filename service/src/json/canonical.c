/*
 * json/canonical.c - the canonical text of a JSON value (see canonical.h).
 *
 * A parser of its own rather than cJSON's tree: cJSON keeps numbers as
 * doubles (4.9999999999999999999 and 5 would compare equal, 1e400 becomes
 * null) and keeps the first of two equal member names, so its tree cannot
 * tell which bodies are the same value. This file reads the text once, by
 * recursive descent bounded by JSON_CANONICAL_MAX_DEPTH, and writes the
 * canonical form as it goes; an object's members are rendered into a scratch
 * buffer first and then written out in name order.
 *
 * Design notes
 *  1. Strings are decoded to their UTF-8 bytes. An escaped UTF-16 surrogate
 *     that is not half of a pair (legal JSON text, though no Unicode) is kept
 *     as its 3-byte generalised UTF-8 form while decoding, so names still
 *     sort and compare bytewise, and written back as a \uXXXX escape, so the
 *     output stays valid UTF-8. Raw input cannot contain those bytes: raw
 *     text is validated as strict UTF-8.
 *  2. Numbers: value = DIGITS x 10^EXP with DIGITS stripped of leading and
 *     trailing zeros. The written exponent is capped at 10^15 so that EXP
 *     (exponent, minus fraction digits, plus stripped zeros, each bounded by
 *     the body's length) can never overflow 64 bits.
 */
#include "json/canonical.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define EXPONENT_MAX 1000000000000000LL      /* design note 2 */

struct cursor {
    const char *s;
    size_t len, i;
    unsigned depth;
    struct problem *p;
};

/* One member while its object is read: offsets into the scratch buffer
 * (which may move as it grows), then pointers once it is complete. */
struct member {
    size_t name_off, name_len, value_off, value_len;
    const char *name, *value;
};

static bool value(struct cursor *c, struct buf *out);

static bool fail(struct cursor *c, enum et_err err, const char *what)
{
    if (c->p->err == ET_OK)
        problem_set(c->p, err, NULL, "%s (near byte %zu)", what, c->i);
    return false;
}

static void skip_ws(struct cursor *c)
{
    while (c->i < c->len && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                             c->s[c->i] == '\r'))
        c->i++;
}

static bool literal(struct cursor *c, const char *word, struct buf *out)
{
    size_t n = strlen(word);

    if (c->len - c->i < n || memcmp(c->s + c->i, word, n) != 0)
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON");
    c->i += n;
    buf_append(out, word, n);
    return true;
}

/* Length of the strict UTF-8 sequence at s[0..avail), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
        cp > 0x10ffff)
        return 0;
    return n;
}

static void put_utf8(struct buf *out, unsigned cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {                   /* lone surrogates too: design note 1 */
        b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    buf_append(out, b, n);
}

/* Four hex digits at s[i..i+4); -1 if not. */
static long hex4(const char *s, size_t len, size_t i)
{
    long v = 0;

    if (len - i < 4)
        return -1;
    for (size_t k = i; k < i + 4; k++) {
        char h = s[k];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* \uXXXX at c->i (just past the backslash and 'u'), a pair when there is one. */
static bool unicode_escape(struct cursor *c, struct buf *raw)
{
    long hi = hex4(c->s, c->len, c->i), lo;

    if (hi < 0)
        return fail(c, ET_ERR_MALFORMED, "a \\u escape needs four hex digits");
    c->i += 4;
    if (hi >= 0xd800 && hi <= 0xdbff && c->len - c->i >= 6 && c->s[c->i] == '\\' &&
        c->s[c->i + 1] == 'u' && (lo = hex4(c->s, c->len, c->i + 2)) >= 0xdc00 && lo <= 0xdfff) {
        c->i += 6;
        put_utf8(raw, (unsigned)(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)));
        return true;
    }
    put_utf8(raw, (unsigned)hi);
    return true;
}

/* Decodes the string at c->i (at its '"') into its bytes (design note 1). */
static bool string_decode(struct cursor *c, struct buf *raw)
{
    static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";

    if (c->i >= c->len || c->s[c->i] != '"')
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON");
    for (c->i++; c->i < c->len;) {
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch == '"') {
            c->i++;
            return true;
        }
        if (ch < 0x20)
            return fail(c, ET_ERR_MALFORMED, "a control character inside a string");
        if (ch != '\\') {
            size_t n = utf8_sequence((const unsigned char *)c->s + c->i, c->len - c->i);
            if (n == 0)
                return fail(c, ET_ERR_MALFORMED, "the body is not valid UTF-8 text");
            buf_append(raw, c->s + c->i, n);
            c->i += n;
            continue;
        }
        if (c->i + 1 >= c->len)
            break;
        char e = c->s[c->i + 1];
        c->i += 2;
        if (e == 'u') {
            if (!unicode_escape(c, raw))
                return false;
            continue;
        }
        const char *at = e ? strchr(escapes, e) : NULL;
        if (at == NULL || (at - escapes) % 2 != 0)
            return fail(c, ET_ERR_MALFORMED, "an unknown escape in a string");
        buf_putc(raw, at[1]);
    }
    return fail(c, ET_ERR_MALFORMED, "an unterminated string");
}

/* Writes decoded bytes as a canonical JSON string. */
static void string_emit(struct buf *out, const char *raw, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)raw[i];
        if (ch == '"' || ch == '\\') {
            buf_putc(out, '\\');
            buf_putc(out, (char)ch);
        } else if (ch < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            buf_append(out, esc, sizeof esc);
        } else if (ch == 0xed && i + 2 < len && (unsigned char)raw[i + 1] >= 0xa0) {
            /* a lone surrogate (design note 1) */
            unsigned cp = 0xd000u | (((unsigned char)raw[i + 1] & 0x3fu) << 6) |
                          ((unsigned char)raw[i + 2] & 0x3fu);
            char esc[6] = {'\\', 'u', hex[cp >> 12], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
                           hex[cp & 15]};
            buf_append(out, esc, sizeof esc);
            i += 2;
        } else {
            buf_putc(out, (char)ch);
        }
    }
    buf_putc(out, '"');
}

static bool string_value(struct cursor *c, struct buf *out)
{
    struct buf raw = BUF_INIT;
    bool ok = string_decode(c, &raw);

    if (ok)
        string_emit(out, raw.data ? raw.data : "", raw.len);
    buf_free(&raw);
    return ok;
}

static size_t digits(struct cursor *c)
{
    size_t start = c->i;

    while (c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9')
        c->i++;
    return c->i - start;
}

/* The k-th digit of the integer part followed by the fraction part. */
static char digit_at(const char *ip, size_t ni, const char *fp, size_t k)
{
    return k < ni ? ip[k] : fp[k - ni];
}

/* Design note 2. */
static bool number(struct cursor *c, struct buf *out)
{
    bool negative = c->s[c->i] == '-';
    const char *ip, *fp = "";
    size_t ni, nf = 0, first, last, total;
    long long exp = 0;

    c->i += negative;
    ip = c->s + c->i;
    if ((ni = digits(c)) == 0 || (ni > 1 && ip[0] == '0'))
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (a number)");
    if (c->i < c->len && c->s[c->i] == '.') {
        c->i++;
        fp = c->s + c->i;
        if ((nf = digits(c)) == 0)
            return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (a number)");
    }
    if (c->i < c->len && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        bool minus = false;
        c->i++;
        if (c->i < c->len && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            minus = c->s[c->i++] == '-';
        const char *ep = c->s + c->i;
        size_t ne = digits(c);
        if (ne == 0)
            return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (a number)");
        for (size_t k = 0; k < ne; k++) {
            exp = exp * 10 + (ep[k] - '0');
            if (exp > EXPONENT_MAX)
                return fail(c, ET_ERR_INVALID, "a number's exponent is out of range");
        }
        exp = minus ? -exp : exp;
    }
    total = ni + nf;
    for (first = 0; first < total && digit_at(ip, ni, fp, first) == '0'; first++)
        ;
    if (first == total) {                        /* zero, whatever its sign or exponent */
        buf_putc(out, '0');
        return true;
    }
    for (last = total - 1; digit_at(ip, ni, fp, last) == '0'; last--)
        ;
    if (negative)
        buf_putc(out, '-');
    for (size_t k = first; k <= last; k++)
        buf_putc(out, digit_at(ip, ni, fp, k));
    exp = exp - (long long)nf + (long long)(total - 1 - last);
    if (exp != 0)
        buf_printf(out, "e%lld", exp);
    return true;
}

static int member_order(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int d = memcmp(x->name, y->name, n);

    return d ? d : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Writes the members gathered in scratch (offsets in m) in name order. */
static bool members_emit(struct cursor *c, struct buf *scratch, struct member *m, size_t n,
                         struct buf *out)
{
    for (size_t k = 0; k < n; k++) {             /* offsets -> pointers, now that it is built */
        m[k].name = scratch->data + m[k].name_off;
        m[k].value = scratch->data + m[k].value_off;
    }
    qsort(m, n, sizeof *m, member_order);
    buf_putc(out, '{');
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && member_order(&m[k - 1], &m[k]) == 0)
            return fail(c, ET_ERR_MALFORMED, "an object has the same member name twice");
        if (k > 0)
            buf_putc(out, ',');
        string_emit(out, m[k].name, m[k].name_len);
        buf_putc(out, ':');
        buf_append(out, m[k].value, m[k].value_len);
    }
    buf_putc(out, '}');
    return true;
}

/* One "name": value pair into scratch, its offsets into *m. */
static bool member(struct cursor *c, struct buf *scratch, struct member *m)
{
    m->name_off = scratch->len;
    if (!string_decode(c, scratch))
        return false;
    m->name_len = scratch->len - m->name_off;
    skip_ws(c);
    if (c->i >= c->len || c->s[c->i] != ':')
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (expected ':')");
    c->i++;
    m->value_off = scratch->len;
    if (!value(c, scratch))
        return false;
    m->value_len = scratch->len - m->value_off;
    return true;
}

static bool object(struct cursor *c, struct buf *out)
{
    struct buf scratch = BUF_INIT;
    struct member *m = NULL;
    size_t n = 0, cap = 0;
    bool ok = false;

    c->i++;                                      /* '{' */
    skip_ws(c);
    if (c->i < c->len && c->s[c->i] == '}') {
        c->i++;
        buf_puts(out, "{}");
        return true;
    }
    for (;;) {
        if (n == cap) {
            struct member *grown = realloc(m, (cap = cap ? cap * 2 : 8) * sizeof *m);
            if (grown == NULL) {
                fail(c, ET_ERR_INTERNAL, "out of memory");
                goto done;
            }
            m = grown;
        }
        skip_ws(c);
        if (!member(c, &scratch, &m[n++]))
            goto done;
        skip_ws(c);
        if (c->i < c->len && c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->i < c->len && c->s[c->i] == '}')
            break;
        fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (expected ',' or '}')");
        goto done;
    }
    c->i++;
    if (scratch.failed) {
        fail(c, ET_ERR_INTERNAL, "out of memory");
        goto done;
    }
    ok = members_emit(c, &scratch, m, n, out);
done:
    free(m);
    buf_free(&scratch);
    return ok;
}

static bool array(struct cursor *c, struct buf *out)
{
    c->i++;                                      /* '[' */
    buf_putc(out, '[');
    skip_ws(c);
    if (c->i < c->len && c->s[c->i] == ']') {
        c->i++;
        buf_putc(out, ']');
        return true;
    }
    for (bool first = true;; first = false) {
        if (!first)
            buf_putc(out, ',');
        if (!value(c, out))
            return false;
        skip_ws(c);
        if (c->i < c->len && c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->i < c->len && c->s[c->i] == ']')
            break;
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (expected ',' or ']')");
    }
    c->i++;
    buf_putc(out, ']');
    return true;
}

static bool value(struct cursor *c, struct buf *out)
{
    bool ok;

    skip_ws(c);
    if (c->i >= c->len)
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON (a value is missing)");
    switch (c->s[c->i]) {
    case '{':
    case '[':
        if (++c->depth > JSON_CANONICAL_MAX_DEPTH)
            return fail(c, ET_ERR_MALFORMED, "JSON nested too deeply");
        ok = c->s[c->i] == '{' ? object(c, out) : array(c, out);
        c->depth--;
        return ok;
    case '"':
        return string_value(c, out);
    case 't':
        return literal(c, "true", out);
    case 'f':
        return literal(c, "false", out);
    case 'n':
        return literal(c, "null", out);
    default:
        if (c->s[c->i] == '-' || (c->s[c->i] >= '0' && c->s[c->i] <= '9'))
            return number(c, out);
        return fail(c, ET_ERR_MALFORMED, "the body is not well-formed JSON");
    }
}

enum et_err json_canonical(const char *s, size_t len, struct buf *out, struct problem *p)
{
    struct cursor c = {s, len, 0, 0, p};

    p->err = ET_OK;
    if (!value(&c, out))
        return p->err;
    skip_ws(&c);
    if (c.i != len) {
        fail(&c, ET_ERR_MALFORMED, "unexpected data after the JSON value");
        return p->err;
    }
    if (out->failed)
        return problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
    return ET_OK;
}
