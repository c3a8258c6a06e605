/*
 * http/framing.c - the request framing rules of RFC 9112 section 6 (see
 * framing.h), applied to every header field of a request.
 *
 * Why here and not in libmicrohttpd: 0.9.75's parse_connection_headers looks
 * up only the FIRST "Transfer-Encoding" and the FIRST "Content-Length" field
 * (MHD_lookup_connection_value_n), so "Content-Length: 5" + "Content-Length: 6"
 * is read as 5, "Content-Length" + "Transfer-Encoding: chunked" as chunked, and
 * any coding other than "chunked" as a body of unknown length that it waits
 * for until the connection times out. A proxy in front that picks the other
 * header frames the stream differently from us: the bytes it thinks are the
 * body we would serve as the next request (request smuggling). Its header
 * line parser also keeps whitespace before the colon in the name (the check is
 * under strict_for_client <= -1), so "Transfer-Encoding : chunked" is a field
 * MHD ignores and some proxies honour. Every such request is refused, and
 * the connection closed, before anything is read from its body.
 *
 * Design notes:
 *   1. Fields are fed one by one, so the caller needs no allocation and the
 *      fuzzer can feed raw bytes (nothing here assumes a terminating NUL).
 *   2. Content-Length: exactly 1*DIGIT after trimming spaces and tabs; the list
 *      form "5, 5" that RFC 9110 8.6 lets a server accept is refused, as MHD
 *      already refuses it in the first field. Repeated identical values are
 *      accepted (RFC 9110 8.6); different ones are not.
 *   3. Transfer-Encoding: the elements of every such field, in order, must be
 *      exactly one "chunked" and nothing else. A coding we do not implement
 *      (gzip, identity, x-anything, chunked with parameters) is 501, as RFC
 *      9112 6.1 asks; a field that cannot be a coding list at all, chunked
 *      twice, or Transfer-Encoding together with Content-Length is 400.
 */
#include "http/framing.h"

#include <strings.h>

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    size_t n = 0;

    while (want[n])
        n++;
    return len == n && strncasecmp(name, want, n) == 0;
}

/* Trims spaces and tabs at both ends of [*s, *s + *n). */
static void trim_ows(const char **s, size_t *n)
{
    while (*n > 0 && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*s)[*n - 1]))
        (*n)--;
}

static void content_length(struct framing *f, const char *v, size_t n)
{
    uint64_t value = 0;

    trim_ows(&v, &n);
    if (n == 0) {
        f->bad_length = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned digit = (unsigned)(unsigned char)v[i] - '0';
        if (digit > 9) {
            f->bad_length = true;
            return;
        }
        /* Saturate: any length this large is refused later as too large. */
        value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
    }
    /* Two saturated lengths compare equal though their digits may differ:
     * a second length beside one too large to represent is a conflict. */
    if (f->has_length && (f->length != value || value == UINT64_MAX))
        f->length_conflict = true;
    f->has_length = true;
    f->length = value;
}

/* One element of a Transfer-Encoding list: token [ OWS ";" parameters ]. */
static void coding(struct framing *f, const char *e, size_t n)
{
    size_t name = 0;

    while (name < n && is_tchar((unsigned char)e[name]))
        name++;
    if (name == 0) {
        f->bad_coding = true;
        return;
    }
    f->codings++;
    size_t rest = name;
    while (rest < n && is_ows(e[rest]))
        rest++;
    if (rest < n && e[rest] != ';') {
        f->bad_coding = true;          /* "chunked x": not a list of codings */
        return;
    }
    if (name_is(e, name, "chunked") && rest == n)
        f->chunked++;
    else if (name_is(e, name, "chunked"))
        f->bad_coding = true;          /* chunked takes no parameters */
    else
        f->unknown_coding = true;
}

static void transfer_encoding(struct framing *f, const char *v, size_t n)
{
    f->te_fields++;
    while (n > 0) {
        size_t len = 0;
        while (len < n && v[len] != ',')
            len++;
        const char *e = v;
        size_t elen = len;
        trim_ows(&e, &elen);
        if (elen > 0)                  /* empty list elements are allowed (RFC 9110 5.6.1) */
            coding(f, e, elen);
        v += len;
        n -= len;
        if (n > 0) {                   /* skip the comma */
            v++;
            n--;
        }
    }
}

void framing_init(struct framing *f)
{
    *f = (struct framing){0};
}

void framing_field(struct framing *f, const char *name, size_t name_len, const char *value,
                   size_t value_len)
{
    if (!is_token(name, name_len))
        f->bad_name = true;
    else if (name_is(name, name_len, "Content-Length"))
        content_length(f, value, value_len);
    else if (name_is(name, name_len, "Transfer-Encoding"))
        transfer_encoding(f, value, value_len);
}

enum framing_verdict framing_verdict(const struct framing *f, bool http_1_0, const char **why)
{
    enum framing_verdict v = FRAMING_BAD;

    if (f->bad_name)
        *why = "a header name is not a token (is there whitespace before its colon?)";
    else if (f->bad_length)
        *why = "Content-Length must be a single decimal number";
    else if (f->length_conflict)
        *why = "two Content-Length headers with different values";
    else if (f->has_length && f->te_fields > 0)
        *why = "both Content-Length and Transfer-Encoding: send exactly one of them";
    else if (f->te_fields > 0 && http_1_0)
        *why = "Transfer-Encoding does not exist in HTTP/1.0";
    else if (f->te_fields > 0 && (f->bad_coding || f->codings == 0))
        *why = "Transfer-Encoding is not a list of transfer codings";
    else if (f->unknown_coding) {
        *why = "the only transfer coding this server implements is chunked";
        v = FRAMING_UNKNOWN_CODING;
    } else if (f->chunked > 1) {
        *why = "the chunked transfer coding is applied more than once";
    } else {
        *why = "";
        v = FRAMING_OK;
    }
    return v;
}

bool framing_check(const struct framing *f, bool http_1_0, struct problem *p)
{
    const char *why;
    enum framing_verdict v = framing_verdict(f, http_1_0, &why);

    if (v == FRAMING_UNKNOWN_CODING)
        problem_set(p, ET_ERR_NOT_IMPLEMENTED, NULL, "%s", why);
    else if (v != FRAMING_OK)
        problem_set(p, ET_ERR_BAD_HEADER, PT_INVALID_FRAMING, "%s", why);
    return v == FRAMING_OK;
}

bool framing_has_body(const struct framing *f)
{
    return f->te_fields > 0 || (f->has_length && f->length > 0);
}
