/*
 * tests/fuzz/fuzz_request.c - libFuzzer harness over everything a request
 * passes through before the service needs the network: the request line and
 * headers (method, route table, path parameters, query string, Bearer token,
 * Content-Type), the body (json_parse and every decode_* of json/codec.h),
 * and what goes back out (the encode_* of a decoded body, the problem
 * document of a refused one, the JSON writer itself).
 *
 * Why: these functions see every byte a client controls. ASan and UBSan
 * catch memory and arithmetic errors; the checks below (ORACLE) catch wrong
 * answers: every response must parse back as JSON, be valid UTF-8, and carry
 * exactly the strings that were decoded.
 *
 * Input: the first byte picks the target, the rest is its input; bytes that
 * name no target are folded onto one, so every input reaches some code.
 *   'r'  request: "METHOD URI\nAuthorization\nContent-Type", as http/server.c
 *        and routes/admission.c see them (router_match over the real table)
 *   'm'  http_method_parse          'q' query_get: "name\nquery", differential
 *   'b'  bearer_token               'h' content_type_is_json
 *   'j'  json_parse                 'l' json_parse + decoders under other limits
 *   'o' 't' 'e' 's' 'g' 'a'         decode_organization_new, decode_top_up,
 *        decode_event_new, decode_session_new, decode_registration_new,
 *        decode_analytics, each followed by its encoder or problem document
 *   'w'  the JSON writer: a string round trip and a random well-formed document
 *   'f'  request framing (http/framing.c): "<flags>Name:value\nName:value...",
 *        flags bit 0 = HTTP/1.0; checked against properties of a framing that
 *        can be trusted (one length, or exactly one "chunked"), case-blind
 *   'c'  json_canonical (Idempotency-Key bodies): its output is valid UTF-8
 *        JSON and its own canonical form (a fixed point)
 * The body targets get the bytes exactly as received: not NUL-terminated, and
 * ending where libFuzzer's buffer ends, so ASan sees any read past the end.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "errors.h"
#include "http/framing.h"
#include "http/http.h"
#include "http/router.h"
#include "ids.h"
#include "json/canonical.h"
#include "json/codec.h"
#include "json/read.h"
#include "json/writer.h"
#include "model.h"
#include "routes/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed check is a crash: libFuzzer saves the input and stops. */
#define ORACLE(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_request: ORACLE failed at %s:%d: %s: ",      \
                    __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A NUL-terminated heap copy of exactly n bytes (cut at an embedded NUL, as a
 * C string API would see it): ASan bounds it at n + 1. */
static char *cstr(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, d, n);
    s[n] = '\0';
    return s;
}

/* Splits [*d, *d + *n) at the first '\n': returns the line, advances past it. */
static char *take_line(const uint8_t **d, size_t *n)
{
    const uint8_t *nl = memchr(*d, '\n', *n);
    size_t len = nl ? (size_t)(nl - *d) : *n;
    char *line = cstr(*d, len);

    *d += nl ? len + 1 : len;
    *n -= nl ? len + 1 : len;
    return line;
}

static bool has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

/* cJSON prints an infinite number (1e400) as null: such a tree cannot
 * round-trip, by cJSON's design. */
static bool all_finite(const cJSON *j)
{
    if (cJSON_IsNumber(j))
        return isfinite(j->valuedouble);
    for (const cJSON *c = j->child; c; c = c->next)
        if (!all_finite(c))
            return false;
    return true;
}

/* Trees equal in order, keys included (cJSON_Compare looks keys up by name,
 * so it calls {"a":1,"a":2} different from itself). */
static bool same_tree(const cJSON *a, const cJSON *b)
{
    const cJSON *x, *y;

    if ((a->type & 0xff) != (b->type & 0xff))
        return false;
    if ((a->string == NULL) != (b->string == NULL) ||
        (a->string && strcmp(a->string, b->string) != 0))
        return false;
    if (cJSON_IsNumber(a))     /* cJSON prints 15 digits when they read back within an ulp */
        return fabs(a->valuedouble - b->valuedouble) <=
               4 * DBL_EPSILON * fmax(fabs(a->valuedouble), fabs(b->valuedouble));
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
        if (!same_tree(x, y))
            return false;
    return x == NULL && y == NULL;
}

/* Values equal exactly: numbers by their literal, keys of members (not of
 * the two roots) included, in order. */
static bool same_exact(const cJSON *a, const cJSON *b)
{
    const cJSON *x, *y;

    if (a == NULL || b == NULL || (a->type & 0xff) != (b->type & 0xff))
        return false;
    if (cJSON_IsNumber(a) || cJSON_IsString(a))
        return a->valuestring && b->valuestring && strcmp(a->valuestring, b->valuestring) == 0;
    for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
        if (strcmp(x->string ? x->string : "", y->string ? y->string : "") != 0 || !same_exact(x, y))
            return false;
    return x == NULL && y == NULL;
}

static int tree_depth(const cJSON *j)
{
    int deepest = 0;
    const cJSON *c;

    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return 0;
    for (c = j->child; c; c = c->next) {
        int d = tree_depth(c);
        if (d > deepest)
            deepest = d;
    }
    return deepest + 1;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ORACLE (issue #11, point 3): an accepted tree names no member twice at any
 * level, and every number keeps its literal: strict RFC 8259 text that reads
 * back as the very double cJSON computed. */
static void check_names_and_numbers(const cJSON *j)
{
    size_t n = 0, k = 0;
    const char **names;

    if (cJSON_IsNumber(j)) {
        ORACLE(j->valuestring != NULL, "a number without its literal");
        ORACLE(json_number_strict(j->valuestring, strlen(j->valuestring)), "literal %s", j->valuestring);
        ORACLE(strtod(j->valuestring, NULL) == j->valuedouble || isnan(j->valuedouble),
               "literal %s is not the double %.17g", j->valuestring, j->valuedouble);
        return;
    }
    for (const cJSON *c = j->child; c; c = c->next) {
        check_names_and_numbers(c);
        n++;
    }
    if (!cJSON_IsObject(j) || n < 2)
        return;
    names = malloc(n * sizeof *names);
    if (names == NULL)
        abort();
    for (const cJSON *c = j->child; c; c = c->next)
        names[k++] = c->string;
    qsort(names, n, sizeof *names, name_cmp);
    for (k = 1; k < n; k++)
        ORACLE(strcmp(names[k - 1], names[k]) != 0, "member \"%s\" accepted twice", names[k]);
    free(names);
}

/* ORACLE: every number under j fits jsonb (a stored payload). */
static bool all_storable(const cJSON *j)
{
    if (cJSON_IsNumber(j))
        return json_number_storable(j->valuestring);
    for (const cJSON *c = j->child; c; c = c->next)
        if (!all_storable(c))
            return false;
    return true;
}

/* Howard Hinnant's days_from_civil and civil_from_days: a calendar written
 * apart from read.c's, so the two can disagree. */
static long days_from_civil(long y, long m, long d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, long *m, long *d)
{
    long era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* ORACLE: an accepted date is on the calendar (Feb 30 would come back as
 * Mar 2) and in years 0001 to 9999. */
static void check_calendar(const char *ts)
{
    long y, m, d, y2, m2, d2;

    if (ts[0] == '\0')
        return;
    y = atol(ts);
    m = atol(ts + 5);
    d = atol(ts + 8);
    civil_from_days(days_from_civil(y, m, d), &y2, &m2, &d2);
    ORACLE(y >= 1 && y <= 9999, "year of %s", ts);
    ORACLE(y2 == y && m2 == m && d2 == d, "%s is not a calendar date", ts);
}

/* The text of member `key` as written (a string's value, a number's literal,
 * which check_names_and_numbers holds faithful); NULL otherwise. Caller frees. */
static char *member_literal(const char *body, size_t len, const char *key)
{
    struct problem p = {0};
    cJSON *root = NULL, *v;
    char *lit = NULL;

    if (json_parse(body, len, &root, &p) != ET_OK)
        return NULL;
    v = cJSON_GetObjectItemCaseSensitive(root, key);
    if ((cJSON_IsString(v) || cJSON_IsNumber(v)) && v->valuestring)
        lit = strdup(v->valuestring);
    cJSON_Delete(root);
    return lit;
}

/* ORACLE: what the service sends is one JSON document of valid UTF-8. */
static cJSON *check_output(const struct buf *out, const char *what)
{
    cJSON *j;

    ORACLE(!out->failed && out->data != NULL && out->len > 0, "%s: the writer failed", what);
    ORACLE(strlen(out->data) == out->len, "%s: a NUL byte in the output", what);
    ORACLE(utf8_valid(out->data, out->len), "%s: output is not valid UTF-8: %s", what, out->data);
    j = cJSON_ParseWithLength(out->data, out->len);
    ORACLE(j != NULL, "%s: output does not parse back: %s", what, out->data);
    return j;
}

/* ORACLE: the document has `key` as the string `want` (NULL: JSON null). */
static void check_string(const cJSON *doc, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);

    if (want == NULL) {
        ORACLE(cJSON_IsNull(v), "\"%s\" should be null", key);
        return;
    }
    ORACLE(cJSON_IsString(v) && strcmp(v->valuestring, want) == 0,
           "\"%s\" does not round-trip: wrote \"%s\"", key, want);
}

static void check_int(const cJSON *doc, const char *key, long long want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);

    ORACLE(cJSON_IsNumber(v) && v->valuedouble == (double)want, "\"%s\" is not %lld", key, want);
}

/* ORACLE: a decoded text field is valid UTF-8 and fits its buffer. */
static void check_text(const char *s, size_t size, const char *what)
{
    size_t n = strnlen(s, size);

    ORACLE(n < size, "%s is not NUL-terminated", what);
    ORACLE(utf8_valid(s, n), "%s is not valid UTF-8", what);
}

static void check_id(const char *s, bool required, const char *what)
{
    size_t n = strnlen(s, ID_MAX + 1);

    ORACLE(n <= ID_MAX, "%s is longer than ID_MAX", what);
    ORACLE((n == 0 && !required) || id_valid(s, n), "%s is not a valid id: \"%s\"", what, s);
}

static void check_problem_struct(const struct problem *p)
{
    ORACLE(p->err > ET_OK && p->err < ET_ERR__COUNT, "refusal with err %d", (int)p->err);
    ORACLE(p->nfields <= PROBLEM_MAX_FIELDS, "nfields %zu", p->nfields);
    ORACLE(memchr(p->detail, '\0', sizeof p->detail) != NULL, "detail not terminated");
    for (size_t i = 0; i < p->nfields; i++) {
        ORACLE(memchr(p->fields[i].field, '\0', sizeof p->fields[i].field) != NULL, "field");
        ORACLE(memchr(p->fields[i].message, '\0', sizeof p->fields[i].message) != NULL, "msg");
    }
}

/* A refusal as the client gets it (http/response.c): parses, valid UTF-8. */
static void check_refusal(const struct problem *p)
{
    struct response res;
    cJSON *doc;

    check_problem_struct(p);
    memset(&res, 0, sizeof res);
    respond_problem(&res, p);
    doc = check_output(&res.body, "problem document");
    check_int(doc, "status", res.status);
    check_string(doc, "detail", p->detail[0] ? p->detail
                                             : cJSON_GetStringValue(cJSON_GetObjectItem(doc, "title")));
    cJSON_Delete(doc);
    buf_free(&res.body);
}

/* Starts a writer over a fresh buffer. */
static struct jw *writer(struct buf *out, struct jw *w)
{
    memset(out, 0, sizeof *out);
    jw_init(w, out);
    return w;
}

/* ---- request line and headers ------------------------------------------------ */

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                           "OPTIONS"};

static void fuzz_method(const char *m)
{
    enum http_method got = http_method_parse(m);
    enum http_method want = HTTP_OTHER;

    for (unsigned i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
        if (strcmp(m, method_names[i]) == 0)
            want = (enum http_method)(1u << i);
    ORACLE(got == want, "method \"%s\" parsed as %d", m, (int)got);
}

/* The pattern's {name}s, in order: compares req_param's answers to params[]. */
static void check_params(const struct route *r, const struct request *req, const char *path,
                         size_t path_size)
{
    const char *p = r->pattern;
    size_t k = 0;

    while ((p = strchr(p, '{')) != NULL) {
        const char *end = strchr(p, '}');
        char name[64];
        const char *v;

        ORACLE(end != NULL && (size_t)(end - p - 1) < sizeof name, "bad pattern %s", r->pattern);
        memcpy(name, p + 1, (size_t)(end - p - 1));
        name[end - p - 1] = '\0';
        v = req_param(req, name);
        ORACLE(k < req->nparams && v == req->params[k], "req_param(%s) on %s", name, r->pattern);
        ORACLE(v >= path && v < path + path_size, "param %s outside the path buffer", name);
        check_id(v, true, "a path parameter");
        p = end + 1;
        k++;
    }
    ORACLE(k == req->nparams, "%zu params for %s", req->nparams, r->pattern);
    ORACLE(req_param(req, "no_such_param") == NULL, "req_param of an unknown name");
}

static void fuzz_request(const uint8_t *d, size_t n)
{
    char *line = take_line(&d, &n);
    char *authorization = take_line(&d, &n);
    char *content_type = cstr(d, n);
    char *sp = strchr(line, ' ');
    const char *method = sp ? (*sp = '\0', line) : "GET";
    char *uri = sp ? sp + 1 : line;
    size_t uri_size = strlen(uri) + 1;
    char *path = malloc(uri_size), *q;
    struct request req;
    const struct route *r;
    unsigned allowed = 0;
    char allow[64], top_n[16], token[256];

    /* exchange_begin (http/server.c): split off the query, then route. */
    memcpy(path, uri, uri_size);
    q = strchr(path, '?');
    memset(&req, 0, sizeof req);
    req.method = http_method_parse(method);
    req.query = q ? q + 1 : "";
    if (q)
        *q = '\0';
    req.path = path;
    r = router_match(routes, routes_count, req.method, path, &req, &allowed);
    if (r == NULL) {
        ORACLE(!(allowed & req.method), "no route, yet %s is allowed (%#x)", method, allowed);
        http_allow_header(allowed, allow, sizeof allow);
        ORACLE(strlen(allow) < sizeof allow, "Allow header overflow");
        ORACLE((allowed == 0) == (allow[0] == '\0'), "Allow header \"%s\" for %#x", allow,
               allowed);
    } else {
        enum http_method want = req.method == HTTP_HEAD ? HTTP_GET : req.method;
        ORACLE(r >= routes && r < routes + routes_count, "route outside the table");
        ORACLE(r->method == want && req.route == r, "route %s for %s", r->pattern, method);
        ORACLE(allowed & req.method, "matched, yet %s is not in Allow (%#x)", method, allowed);
        check_params(r, &req, path, uri_size);
    }
    /* routes/leaderboard.c reads top_n; routes/admission.c the bearer token. */
    if (query_get(req.query, "top_n", top_n, sizeof top_n) == QUERY_FOUND)
        ORACLE(strlen(top_n) < sizeof top_n, "top_n overflow");
    if (bearer_token(authorization, token, sizeof token))
        ORACLE(strlen(token) > 0 && strlen(token) < sizeof token, "token length");
    (void)content_type_is_json(content_type);
    free(path);
    free(content_type);
    free(authorization);
    free(line);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A second, independent reading of router.h's query_get contract. */
static enum query_result query_reference(const char *query, const char *name, char *out,
                                         size_t size)
{
    size_t nlen = strlen(name);

    for (const char *seg = query; *seg;) {
        size_t slen = strcspn(seg, "&");
        if (slen >= nlen && strncmp(seg, name, nlen) == 0 &&
            (slen == nlen || seg[nlen] == '=')) {
            const char *v = slen == nlen ? seg + slen : seg + nlen + 1;
            size_t vlen = (size_t)(seg + slen - v), o = 0;
            if (vlen >= size)
                return QUERY_INVALID;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] == '%') {
                    int hi = i + 1 < vlen ? hexval(v[i + 1]) : -1;
                    int lo = i + 2 < vlen ? hexval(v[i + 2]) : -1;
                    if (hi < 0 || lo < 0 || hi * 16 + lo == 0)
                        return QUERY_INVALID;
                    out[o++] = (char)(hi * 16 + lo);
                    i += 2;
                } else {
                    out[o++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            out[o] = '\0';
            return QUERY_FOUND;
        }
        seg += slen;
        if (*seg == '&')
            seg++;
    }
    return QUERY_ABSENT;
}

static void fuzz_query(const uint8_t *d, size_t n)
{
    size_t size = n ? (size_t)d[0] % 64 + 1 : 16;
    char *name, *query, *out, *ref;
    enum query_result got, want;

    if (n)
        d++, n--;
    name = take_line(&d, &n);
    query = cstr(d, n);
    if (name[0] == '\0') {             /* the service never asks for an empty name */
        free(name);
        name = cstr((const uint8_t *)"top_n", 5);
    }
    out = malloc(size);
    ref = malloc(size);
    got = query_get(query, name, out, size);
    want = query_reference(query, name, ref, size);
    ORACLE(got == want, "query_get(\"%s\", \"%s\", %zu) = %d, expected %d", query, name, size,
           (int)got, (int)want);
    if (got == QUERY_FOUND)
        ORACLE(strcmp(out, ref) == 0, "query_get decoded \"%s\", expected \"%s\"", out, ref);
    free(ref);
    free(out);
    free(query);
    free(name);
}

static void fuzz_bearer(const uint8_t *d, size_t n)
{
    size_t size = n ? (size_t)d[0] % 80 + 1 : 256;
    char *v, *out;

    if (n)
        d++, n--;
    v = cstr(d, n);
    out = malloc(size);
    if (bearer_token(v, out, size)) {
        size_t len = strlen(out);
        ORACLE(len > 0 && len < size, "token of %zu bytes in %zu", len, size);
        ORACLE(strncasecmp(v, "bearer", 6) == 0, "a token from \"%s\"", v);
        ORACLE(strstr(v, out) != NULL, "token \"%s\" is not in \"%s\"", out, v);
        for (size_t i = 0; i < len; i++)
            ORACLE(out[i] >= 0x21 && out[i] <= 0x7e, "token byte %#x", (unsigned char)out[i]);
    }
    free(out);
    free(v);
}

static void fuzz_content_type(const uint8_t *d, size_t n)
{
    char *v = cstr(d, n);
    const char *t = v;

    if (content_type_is_json(v)) {
        while (*t == ' ' || *t == '\t')
            t++;
        ORACLE(strncasecmp(t, "application/json", 16) == 0, "JSON type \"%s\"", v);
    }
    free(v);
}

/* ---- request bodies ------------------------------------------------------------ */

static void fuzz_json(const char *body, size_t len)
{
    struct problem p = {0};
    cJSON *root = NULL;
    char *again;

    if (json_parse(body, len, &root, &p) != ET_OK) {
        ORACLE(root == NULL, "a tree on failure");
        check_refusal(&p);
        return;
    }
    ORACLE(root != NULL, "no tree on success");
    ORACLE(!has_nul(body, len) && utf8_valid(body, len), "accepted invalid UTF-8 or a NUL");
    ORACLE(tree_depth(root) <= (int)json_limits()->max_depth, "depth %d over the limit %u",
           tree_depth(root), json_limits()->max_depth);
    check_names_and_numbers(root);
    /* What cJSON prints of an accepted tree (analytics payloads are stored
     * that way) must be accepted again. */
    again = cJSON_PrintUnformatted(root);
    ORACLE(again != NULL, "cJSON_PrintUnformatted failed");
    {
        struct problem p2 = {0};
        cJSON *root2 = NULL;
        ORACLE(json_parse(again, strlen(again), &root2, &p2) == ET_OK,
               "reprinted body refused (%s): %s", p2.detail, again);
        ORACLE(!all_finite(root) || same_tree(root, root2),
               "reprinted body differs: %s", again);
        cJSON_Delete(root2);
    }
    cJSON_free(again);
    cJSON_Delete(root);
}

static const char created_at[] = "2026-11-21T09:30:00.000000Z";

static void fuzz_organization(const char *body, size_t len)
{
    struct organization o;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_organization_new(body, len, &o, &p) != ET_OK) {
        check_refusal(&p);
        return;
    }
    check_id(o.id, false, "organization.id");
    check_text(o.name, sizeof o.name, "organization.name");
    ORACLE(o.name[0] != '\0', "empty name accepted");
    ORACLE(o.credits >= 0 && o.credits <= CREDITS_MAX, "credits %lld", o.credits);
    if (o.id[0] == '\0')
        id_generate(o.id, "org");
    memcpy(o.created_at, created_at, sizeof created_at);
    encode_organization(writer(&out, &w), &o, "etk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    doc = check_output(&out, "organization");
    check_string(doc, "id", o.id);
    check_string(doc, "name", o.name);
    check_int(doc, "credits", o.credits);
    check_string(doc, "created_at", o.created_at);
    cJSON_Delete(doc);
    buf_free(&out);
}

static void fuzz_top_up(const char *body, size_t len)
{
    struct top_up t;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_top_up(body, len, &t, &p) != ET_OK) {
        check_refusal(&p);
        return;
    }
    ORACLE(t.amount >= 1 && t.amount <= CREDITS_MAX, "amount %lld", t.amount);
    {   /* exact: the literal sent is the integer credited, digit for digit */
        char *lit = member_literal(body, len, "amount"), want[32];
        snprintf(want, sizeof want, "%lld", t.amount);
        ORACLE(lit && strcmp(lit, want) == 0, "amount %s credited as %lld", lit ? lit : "?", t.amount);
        free(lit);
    }
    check_text(t.reason, sizeof t.reason, "top_up.reason");
    /* A top-up answers with the balance. */
    encode_balance(writer(&out, &w), "org_1", t.amount);
    doc = check_output(&out, "balance");
    check_int(doc, "balance", t.amount);
    cJSON_Delete(doc);
    buf_free(&out);
}

static void fuzz_event(const char *body, size_t len)
{
    struct event e;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_event_new(body, len, &e, &p) != ET_OK) {
        check_refusal(&p);
        return;
    }
    check_id(e.id, false, "event.id");
    check_id(e.organization_id, true, "event.organization_id");
    check_text(e.name, sizeof e.name, "event.name");
    ORACLE(e.starts_at[0] == '\0' || rfc3339_valid(e.starts_at), "starts_at %s", e.starts_at);
    check_calendar(e.starts_at);
    memcpy(e.created_at, created_at, sizeof created_at);
    encode_event(writer(&out, &w), &e);
    doc = check_output(&out, "event");
    check_string(doc, "id", e.id);
    check_string(doc, "organization_id", e.organization_id);
    check_string(doc, "name", e.name);
    check_string(doc, "starts_at", e.starts_at[0] ? e.starts_at : NULL);
    cJSON_Delete(doc);
    buf_free(&out);
}

static void fuzz_session(const char *body, size_t len)
{
    struct session s;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_session_new(body, len, &s, &p) != ET_OK) {
        check_refusal(&p);
        return;
    }
    check_id(s.id, false, "session.id");
    check_id(s.event_id, true, "session.event_id");
    check_id(s.speaker_id, true, "session.speaker_id");
    check_text(s.title, sizeof s.title, "session.title");
    memcpy(s.created_at, created_at, sizeof created_at);
    encode_session(writer(&out, &w), &s);
    doc = check_output(&out, "session");
    check_string(doc, "id", s.id);
    check_string(doc, "event_id", s.event_id);
    check_string(doc, "title", s.title);
    check_string(doc, "speaker_id", s.speaker_id);
    cJSON_Delete(doc);
    buf_free(&out);
}

static bool money_canonical(const char *s)
{
    size_t n = strlen(s), dot = strcspn(s, ".");

    if (dot == 0 || dot > 8 || n != dot + 3 || (s[0] == '0' && dot > 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if (i != dot && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

static void fuzz_registration(const char *body, size_t len)
{
    struct registration r;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_registration_new(body, len, &r, &p) != ET_OK) {
        check_refusal(&p);
        return;
    }
    check_id(r.session_id, true, "registration.session_id");
    check_id(r.user_id, true, "registration.user_id");
    check_id(r.organization_id, true, "registration.organization_id");
    ORACLE(strlen(r.ticket_type) <= TICKET_TYPE_MAX && id_valid(r.ticket_type, strlen(r.ticket_type)),
           "ticket_type \"%s\"", r.ticket_type);
    ORACLE(money_canonical(r.price_paid), "price_paid \"%s\" is not NUMERIC(10,2) text",
           r.price_paid);
    {   /* exact: no sign, no exponent, and the same decimal value as sent */
        char *lit = member_literal(body, len, "price_paid");
        const char *dot = lit ? strchr(lit, '.') : NULL;
        ORACLE(lit && !strpbrk(lit, "-+eE") && (!dot || strlen(dot + 1) <= 2), "price %s accepted",
               lit ? lit : "?");
        ORACLE(llround(strtod(lit, NULL) * 100) == llround(strtod(r.price_paid, NULL) * 100),
               "price %s stored as %s", lit, r.price_paid);
        free(lit);
    }
    id_generate(r.id, "reg");
    memcpy(r.registered_at, created_at, sizeof created_at);
    r.credits_remaining = 41;
    encode_registration(writer(&out, &w), &r);
    doc = check_output(&out, "registration");
    check_string(doc, "session_id", r.session_id);
    check_string(doc, "user_id", r.user_id);
    check_string(doc, "ticket_type", r.ticket_type);
    check_string(doc, "price_paid", r.price_paid);
    cJSON_Delete(doc);
    buf_free(&out);
}

static void fuzz_analytics(const char *body, size_t len)
{
    struct analytics_event *evs = NULL;
    struct leaderboard_entry *board;
    size_t count = 12345, nboard = 0;
    bool is_batch = false;
    struct problem p = {0};
    struct buf out;
    struct jw w;
    cJSON *doc;

    if (decode_analytics(body, len, &evs, &count, &is_batch, &p) != ET_OK) {
        ORACLE(evs == NULL && count == 0, "events left on failure");
        check_refusal(&p);
        return;
    }
    ORACLE(evs != NULL && count >= 1 && count <= json_limits()->batch_max, "count %zu", count);
    ORACLE(is_batch || count == 1, "single envelope, count %zu", count);
    board = calloc(count, sizeof *board);
    for (size_t i = 0; i < count; i++) {
        const struct analytics_event *ev = &evs[i];
        if (ev->status == INGEST_REJECTED) {
            /* routes/analytics.c sends error_detail back as a problem detail. */
            struct response res;
            ORACLE(is_batch, "a rejected single envelope decoded OK");
            ORACLE(memchr(ev->error_detail, '\0', sizeof ev->error_detail), "error_detail");
            ORACLE(ev->error > ET_OK && ev->error < ET_ERR__COUNT, "error %d", (int)ev->error);
            memset(&res, 0, sizeof res);
            respond_error(&res, ev->error, "validation-failed", "%s", ev->error_detail);
            doc = check_output(&res.body, "rejected envelope");
            check_string(doc, "detail", ev->error_detail);
            cJSON_Delete(doc);
            buf_free(&res.body);
            continue;
        }
        ORACLE(ev->status == INGEST_CREATED, "status %d before ingest", (int)ev->status);
        check_id(ev->event_id, true, "analytics.event_id");
        check_id(ev->user_id, true, "analytics.user_id");
        check_id(ev->session_id, false, "analytics.payload.session_id");
        check_id(ev->speaker_id, false, "analytics.payload.speaker_id");
        ORACLE(event_type_valid(ev->event_type), "event_type \"%s\"", ev->event_type);
        ORACLE(ev->occurred_at[0] == '\0' || rfc3339_valid(ev->occurred_at), "occurred_at");
        check_calendar(ev->occurred_at);
        /* The payload goes to a JSONB column: one object, as strict as a body. */
        {
            struct problem pp = {0};
            cJSON *payload = NULL;
            ORACLE(ev->payload != NULL, "accepted envelope without payload");
            ORACLE(json_parse(ev->payload, strlen(ev->payload), &payload, &pp) == ET_OK,
                   "stored payload refused (%s): %s", pp.detail, ev->payload);
            ORACLE(cJSON_IsObject(payload), "payload is not an object: %s", ev->payload);
            ORACLE(all_storable(payload), "stored payload holds a number jsonb refuses: %s", ev->payload);
            /* What is stored is what was validated: the member cJSON returns. */
            {
                struct problem bp = {0};
                cJSON *root = NULL, *env;
                ORACLE(json_parse(body, len, &root, &bp) == ET_OK, "body refused on a second parse");
                env = is_batch ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "batch"), (int)i) : root;
                ORACLE(same_exact(cJSON_GetObjectItemCaseSensitive(env, "payload"), payload),
                       "stored payload %s is not the validated member", ev->payload);
                cJSON_Delete(root);
            }
            cJSON_Delete(payload);
        }
        /* A session_view's speaker is what the leaderboards will show. */
        if (ev->speaker_id[0]) {
            memcpy(board[nboard].speaker_id, ev->speaker_id, sizeof ev->speaker_id);
            board[nboard].score = (long long)i;
            board[nboard].rank = (long long)nboard + 1;
            nboard++;
        }
    }
    encode_leaderboard(writer(&out, &w), "evt_1", (long long)nboard, board, nboard);
    doc = check_output(&out, "leaderboard");
    ORACLE(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "leaderboard")) == (int)nboard, "board");
    cJSON_Delete(doc);
    buf_free(&out);
    if (nboard > 0) {
        encode_speaker_rank(writer(&out, &w), "evt_1", &board[nboard - 1]);
        doc = check_output(&out, "speaker rank");
        check_string(doc, "speaker_id", board[nboard - 1].speaker_id);
        cJSON_Delete(doc);
        buf_free(&out);
    }
    free(board);
    analytics_events_free(evs, count);
}

/* Every body target again, under limits the configuration allows
 * (config.c: json_max_depth 2..64, analytics_batch_max 1..1000,
 * max_name_chars 1..200). Input: 4 limit bytes, a decoder byte, the body. */
static void fuzz_limits(const uint8_t *d, size_t n)
{
    static void (*const decoders[])(const char *, size_t) = {
        fuzz_json, fuzz_organization, fuzz_top_up, fuzz_event,
        fuzz_session, fuzz_registration, fuzz_analytics,
    };
    struct json_limits saved = *json_limits(), l;

    if (n < 5)
        return;
    l.max_depth = 2 + d[0] % 63;
    l.batch_max = 1 + (((size_t)d[1] << 8) | d[2]) % 1000;
    l.name_max_chars = 1 + d[3] % 200;
    json_limits_set(&l);
    decoders[d[4] % (sizeof decoders / sizeof decoders[0])]((const char *)d + 5, n - 5);
    json_limits_set(&saved);
}

/* ---- the JSON writer ----------------------------------------------------------- */

static void fuzz_writer(const uint8_t *d, size_t n)
{
    size_t split = n ? d[0] % 32 : 0;
    struct buf out;
    struct jw w;
    cJSON *doc;
    char *key;

    if (n)
        d++, n--;
    if (split > n)
        split = n;
    /* 1. {key: bytes}: escaping round-trips any valid UTF-8 exactly. */
    key = cstr(d, split);
    writer(&out, &w);
    jw_object_begin(&w);
    jw_key(&w, key);
    jw_string_n(&w, (const char *)d + split, n - split);
    jw_object_end(&w);
    ORACLE(!out.failed, "writer failed");
    doc = cJSON_ParseWithLength(out.data, out.len);
    ORACLE(doc != NULL, "escaped string does not parse: %s", out.data);
    if (utf8_valid(key, strlen(key)) && utf8_valid((const char *)d + split, n - split)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
        ORACLE(utf8_valid(out.data, out.len), "escaped output is not UTF-8");
        ORACLE(cJSON_IsString(v) && strlen(v->valuestring) == n - split &&
                   memcmp(v->valuestring, d + split, n - split) == 0,
               "string does not round-trip: %s", out.data);
    }
    cJSON_Delete(doc);
    buf_free(&out);
    free(key);

    /* 2. A document shaped by the bytes, always well-formed from the caller's
     * side: it must parse, with the nesting written, unless more than
     * JW_MAX_DEPTH levels were opened (then the writer must say it failed). */
    {
        char kinds[128];     /* '{' or '[' per open level */
        size_t depth = 0, opened = 0, tree = 0;
        writer(&out, &w);
        jw_array_begin(&w);
        kinds[depth++] = '[';
        opened = tree = 1;
        for (size_t i = 0; i < n && i < 4096; i++) {
            unsigned op = d[i] % 8;
            if (kinds[depth - 1] == '{' && op != 7)
                jw_key(&w, (i & 1) ? "k" : "\"\\");
            switch (op) {
            case 0:
            case 1:
                if (depth < sizeof kinds) {
                    kinds[depth++] = op ? '{' : '[';
                    op ? jw_object_begin(&w) : jw_array_begin(&w);
                } else {
                    jw_null(&w);
                }
                break;
            case 2: jw_int(&w, i % 3 == 0 ? LLONG_MIN : i % 3 == 1 ? LLONG_MAX : d[i] - 128); break;
            case 3: jw_bool(&w, d[i] & 8); break;
            case 4: jw_null(&w); break;
            case 5: jw_string(&w, (i & 2) ? "\x01\x1f\"\\/\xc3\xa9" : ""); break;
            case 6:
                jw_raw(&w, "[1,{\"a\":null}]");
                if (depth + 2 > tree)
                    tree = depth + 2;
                break;
            case 7:
                if (depth > 1) {
                    kinds[depth - 1] == '{' ? jw_object_end(&w) : jw_array_end(&w);
                    depth--;
                }
                break;
            }
            if (depth > opened)
                opened = depth;
            if (depth > tree)
                tree = depth;
        }
        while (depth > 0)
            kinds[--depth] == '{' ? jw_object_end(&w) : jw_array_end(&w);
        if (opened > JW_MAX_DEPTH) {
            ORACLE(out.failed, "%zu levels written without failing", opened);
        } else {
            doc = check_output(&out, "writer document");
            ORACLE(tree_depth(doc) == (int)tree, "depth %d, expected %zu", tree_depth(doc), tree);
            cJSON_Delete(doc);
        }
        buf_free(&out);
    }
}

/* ---- request framing ----------------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool tchar(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

/* The value with spaces and tabs cut at both ends, and its digits without
 * leading zeros ("" for zero); false unless it is 1*DIGIT. */
static bool digits_of(const char *v, size_t n, const char **d, size_t *dn)
{
    while (n > 0 && is_ows(*v)) {
        v++;
        n--;
    }
    while (n > 0 && is_ows(v[n - 1]))
        n--;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    while (n > 0 && *v == '0') {
        v++;
        n--;
    }
    *d = v;
    *dn = n;
    return true;
}

/* Splits d into "name:value" lines and feeds them to f (names upper-cased
 * when upper); collects what an accepted framing must satisfy. */
struct framing_facts {
    bool names_ok, lengths_agree, any_length, any_te;
    const char *digits;         /* the Content-Length digits, no leading zeros */
    size_t ndigits;
    char te[256];               /* every Transfer-Encoding value, OWS and commas removed */
    size_t te_len;
};

static void feed_framing(struct framing *f, const uint8_t *d, size_t n, bool upper, struct framing_facts *k)
{
    memset(k, 0, sizeof *k);
    k->names_ok = k->lengths_agree = true;
    framing_init(f);
    while (n > 0) {
        const uint8_t *nl = memchr(d, '\n', n);
        size_t len = nl ? (size_t)(nl - d) : n;
        const uint8_t *colon = memchr(d, ':', len);
        size_t name_len = colon ? (size_t)(colon - d) : len;
        const char *value = colon ? (const char *)colon + 1 : "";
        size_t value_len = colon ? len - name_len - 1 : 0;
        char name[64];
        /* Names are heap copies of exactly their bytes, so ASan sees any overread. */
        char *heap_name = cstr(d, name_len);
        char *heap_value = cstr((const uint8_t *)value, value_len);
        for (size_t i = 0; upper && i < name_len; i++)
            if (heap_name[i] >= 'a' && heap_name[i] <= 'z')
                heap_name[i] = (char)(heap_name[i] - 'a' + 'A');
        framing_field(f, heap_name, name_len, heap_value, value_len);

        snprintf(name, sizeof name, "%.*s", (int)(name_len < 63 ? name_len : 63), heap_name);
        for (size_t i = 0; i < name_len; i++)
            k->names_ok = k->names_ok && tchar((unsigned char)heap_name[i]);
        k->names_ok = k->names_ok && name_len > 0;
        if (name_len == 14 && strcasecmp(name, "Content-Length") == 0) {
            const char *dg;
            size_t dn;
            if (!digits_of(heap_value, value_len, &dg, &dn))
                k->lengths_agree = false;
            else if (k->any_length && (k->digits == NULL || dn != k->ndigits || memcmp(dg, k->digits, dn) != 0))
                k->lengths_agree = false;
            else {
                k->digits = value + (dg - heap_value);   /* stays valid: points into d */
                k->ndigits = dn;
            }
            k->any_length = true;
        } else if (name_len == 17 && strcasecmp(name, "Transfer-Encoding") == 0) {
            k->any_te = true;
            for (size_t i = 0; i < value_len && k->te_len < sizeof k->te - 1; i++)
                if (!is_ows(heap_value[i]) && heap_value[i] != ',')
                    k->te[k->te_len++] = (char)(heap_value[i] | 0x20);
        }
        free(heap_name);
        free(heap_value);
        if (!nl)
            break;
        n -= len + 1;
        d = nl + 1;
    }
}

static void fuzz_framing(const uint8_t *d, size_t n)
{
    struct framing f, g;
    struct framing_facts k, kg;
    struct problem p;
    const char *why = NULL, *why_g = NULL;
    bool http_1_0;

    if (n == 0)
        return;
    http_1_0 = d[0] & 1;
    feed_framing(&f, d + 1, n - 1, false, &k);
    enum framing_verdict v = framing_verdict(&f, http_1_0, &why);
    ORACLE(why != NULL && (v == FRAMING_OK) == (why[0] == '\0'), "verdict %d without a reason", (int)v);
    /* Header names are case-insensitive: the verdict is too. */
    feed_framing(&g, d + 1, n - 1, true, &kg);
    ORACLE(framing_verdict(&g, http_1_0, &why_g) == v, "the verdict depends on the case of a name");
    memset(&p, 0, sizeof p);
    ORACLE(framing_check(&f, http_1_0, &p) == (v == FRAMING_OK), "framing_check disagrees");
    if (v != FRAMING_OK) {
        check_refusal(&p);
        ORACLE(http_status_of(p.err) == (v == FRAMING_BAD ? 400 : 501), "status %d", http_status_of(p.err));
        return;
    }
    /* Accepted: there is exactly one way to find the end of the body. */
    ORACLE(k.names_ok, "a name that is not a token was accepted");
    ORACLE(!(k.any_length && k.any_te), "Content-Length with Transfer-Encoding was accepted");
    ORACLE(!k.any_te || !http_1_0, "Transfer-Encoding in HTTP/1.0 was accepted");
    ORACLE(!k.any_te || (k.te_len == 7 && memcmp(k.te, "chunked", 7) == 0),
           "Transfer-Encoding other than one chunked was accepted: %.*s", (int)k.te_len, k.te);
    ORACLE(k.lengths_agree, "differing or malformed Content-Lengths were accepted");
    ORACLE(f.has_length == k.any_length, "has_length");
    if (k.any_length && k.ndigits <= 18) {
        unsigned long long want = 0;
        for (size_t i = 0; i < k.ndigits; i++)
            want = want * 10 + (unsigned)(k.digits[i] - '0');
        ORACLE(f.length == want, "length %llu, want %llu", (unsigned long long)f.length, want);
    }
    ORACLE(!k.any_length || k.ndigits < 21 || f.length == UINT64_MAX, "an overflowing length is not saturated");
    ORACLE(framing_has_body(&f) == (k.any_te || (k.any_length && k.ndigits > 0)), "has_body");
}

/* 'c': equal values must give equal text, so the canonical text of a
 * canonical text is itself. */
static void fuzz_canonical(const char *body, size_t n)
{
    struct buf once = BUF_INIT, twice = BUF_INIT;
    struct problem p = {0};

    if (json_canonical(body, n, &once, &p) == ET_OK) {
        const char *text = once.data ? once.data : "";
        ORACLE(!has_nul(text, once.len) && utf8_valid(text, once.len), "canonical text not UTF-8: %s", text);
        ORACLE(json_canonical(text, once.len, &twice, &p) == ET_OK, "canonical text refused: %s (%s)", text,
               p.detail);
        ORACLE(twice.len == once.len && memcmp(twice.data, text, once.len) == 0,
               "not a fixed point: %s -> %s", text, twice.data ? twice.data : "");
    } else {
        ORACLE(p.detail[0] != '\0', "a refusal without a detail");
    }
    buf_free(&once);
    buf_free(&twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char targets[] = "rmqbhjltoesgawfc";
    const uint8_t *d = data + 1;
    const char *body = (const char *)data + 1;
    size_t n;
    char t, *s;

    if (size == 0)
        return 0;
    n = size - 1;
    t = strchr(targets, data[0]) && data[0] ? (char)data[0]
                                            : targets[data[0] % (sizeof targets - 1)];
    switch (t) {
    case 'r': fuzz_request(d, n); break;
    case 'm': s = cstr(d, n); fuzz_method(s); free(s); break;
    case 'q': fuzz_query(d, n); break;
    case 'b': fuzz_bearer(d, n); break;
    case 'h': fuzz_content_type(d, n); break;
    case 'j': fuzz_json(body, n); break;
    case 'l': fuzz_limits(d, n); break;
    case 'o': fuzz_organization(body, n); break;
    case 't': fuzz_top_up(body, n); break;
    case 'e': fuzz_event(body, n); break;
    case 's': fuzz_session(body, n); break;
    case 'g': fuzz_registration(body, n); break;
    case 'a': fuzz_analytics(body, n); break;
    case 'w': fuzz_writer(d, n); break;
    case 'f': fuzz_framing(d, n); break;
    case 'c': fuzz_canonical(body, n); break;
    }
    return 0;
}
