/*
 * http/router.c - route matching and the small parsers around it (router.h).
 *
 * The table has a dozen entries: a linear scan over pre-split segments costs
 * less than the hash it would take to avoid it, and keeps the order of the
 * table meaningful to a reader.
 */
#include "http/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ids.h"

/* The name of each enum http_method, by its bit: one table for parsing,
 * Allow headers and metric labels. */
static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                           "OPTIONS"};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

enum http_method http_method_parse(const char *m)
{
    for (unsigned i = 0; i < NMETHODS; i++)
        if (strcmp(m, method_names[i]) == 0)
            return (enum http_method)(1u << i);
    return HTTP_OTHER;
}

const char *http_method_name(enum http_method method)
{
    for (unsigned i = 0; i < NMETHODS; i++)
        if ((unsigned)method == 1u << i)
            return method_names[i];
    return "other";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in place (plus_is_space for query strings); false on a bad escape. */
static bool percent_decode(char *s, bool plus_is_space)
{
    char *out = s;

    for (; *s; s++) {
        if (*s == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *out++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *out++ = plus_is_space && *s == '+' ? ' ' : *s;
        }
    }
    *out = '\0';
    return true;
}

/* Splits "/a/b/c" in place into segments; false if too many or malformed. */
static bool split_path(char *path, char **segs, size_t *n)
{
    *n = 0;
    if (path[0] != '/')
        return false;
    if (path[1] == '\0')
        return true;
    for (char *s = path + 1;;) {
        char *slash = strchr(s, '/');
        if (*n == ROUTE_MAX_SEGMENTS)
            return false;
        if (slash)
            *slash = '\0';
        if (!percent_decode(s, false))
            return false;
        segs[(*n)++] = s;
        if (!slash)
            return true;
        s = slash + 1;
    }
}

/* The path parameters of one candidate route, kept apart from the request so
 * that trying a route costs no copy of the whole request. */
struct match {
    const char *names[ROUTE_MAX_PARAMS];
    const char *values[ROUTE_MAX_PARAMS];
    size_t n;
};

/* Does the pattern match the segments? Fills m on success. */
static bool pattern_match(const char *pattern, char **segs, size_t nsegs, struct match *m)
{
    size_t i = 0;
    const char *p = pattern;

    m->n = 0;
    while (*p == '/') {
        const char *end = strchr(p + 1, '/');
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        const char *seg = p + 1;

        if (i == nsegs)
            return false;
        if (len >= 2 && seg[0] == '{' && seg[len - 1] == '}') {
            if (!id_valid(segs[i], strlen(segs[i])) || m->n == ROUTE_MAX_PARAMS)
                return false;
            m->names[m->n] = seg;              /* "{name}..." compared by req_param */
            m->values[m->n++] = segs[i];
        } else if (strlen(segs[i]) != len || memcmp(segs[i], seg, len) != 0) {
            return false;
        }
        i++;
        p += len + 1;
    }
    return i == nsegs;
}

/* Joins the decoded segments into req->path_buf: the whole path, which the
 * Idempotency-Key scope names (split_path cut the URI buffer into pieces).
 * False if it does not fit, which a matched path never hits (http.h). */
static bool path_join(char **segs, size_t nsegs, struct request *req)
{
    size_t used = 0;

    req->path_buf[0] = '/';
    req->path_buf[1] = '\0';
    for (size_t i = 0; i < nsegs; i++) {
        size_t len = strlen(segs[i]);
        if (used + 1 + len + 1 > sizeof req->path_buf)
            return false;
        req->path_buf[used++] = '/';
        memcpy(req->path_buf + used, segs[i], len + 1);
        used += len;
    }
    req->path = req->path_buf;
    return true;
}

const struct route *router_match(const struct route *table, size_t n, enum http_method method,
                                 char *path, struct request *req, unsigned *allowed)
{
    char *segs[ROUTE_MAX_SEGMENTS];
    size_t nsegs;
    const struct route *found = NULL;
    enum http_method want = method == HTTP_HEAD ? HTTP_GET : method;
    struct match m, chosen = {0};

    *allowed = 0;
    if (!split_path(path, segs, &nsegs))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(table[i].pattern, segs, nsegs, &m))
            continue;
        *allowed |= table[i].method | (table[i].method == HTTP_GET ? HTTP_HEAD : 0);
        if (found == NULL && table[i].method == want) {
            found = &table[i];
            chosen = m;
        }
    }
    if (found == NULL || !path_join(segs, nsegs, req))
        return NULL;
    req->nparams = chosen.n;
    for (size_t i = 0; i < chosen.n; i++) {
        req->param_names[i] = chosen.names[i];
        req->params[i] = chosen.values[i];
    }
    req->route = found;
    return found;
}

const char *req_param(const struct request *req, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < req->nparams; i++) {
        const char *n = req->param_names[i] + 1;       /* skip '{' */
        if (strncmp(n, name, len) == 0 && n[len] == '}')
            return req->params[i];
    }
    return NULL;
}

void http_allow_header(unsigned methods, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < NMETHODS; i++) {
        if (!(methods & (1u << i)))
            continue;
        int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", method_names[i]);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}

enum query_result query_get(const char *query, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = query;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
            size_t vlen = plen - nlen - 1;
            if (vlen >= size)
                return QUERY_INVALID;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return percent_decode(out, true) ? QUERY_FOUND : QUERY_INVALID;
        }
        if (plen == nlen && memcmp(p, name, nlen) == 0) {
            out[0] = '\0';
            return QUERY_FOUND;
        }
        p = amp ? amp + 1 : NULL;
    }
    return QUERY_ABSENT;
}

bool query_int(const char *query, const char *name, long long min, long long max, long long dflt,
               long long *out)
{
    char text[24], *end;
    long long v;

    *out = dflt;
    switch (query_get(query, name, text, sizeof text)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: return false;
    case QUERY_FOUND:   break;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] < '0' || text[0] > '9' || v < min ||
        v > max)
        return false;
    *out = v;
    return true;
}

bool bearer_token(const char *v, char *out, size_t size)
{
    size_t n = 0;

    if (v == NULL || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    for (v += 6; *v == ' ' || *v == '\t'; v++)
        ;
    for (; v[n] && v[n] != ' ' && v[n] != '\t'; n++)
        if (v[n] < 0x21 || v[n] > 0x7e || n + 1 >= size)
            return false;
    for (size_t i = n; v[i]; i++)          /* only whitespace may follow the token */
        if (v[i] != ' ' && v[i] != '\t')
            return false;
    if (n == 0)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

bool content_type_is_json(const char *v)
{
    static const char json[] = "application/json";
    const char *p;

    if (v == NULL)
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, json, sizeof json - 1) != 0)
        return false;
    p = v + sizeof json - 1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return true;
    if (*p != ';')
        return false;
    /* Parameters: only charset has a meaning for JSON, and it must be UTF-8. */
    for (p++; *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        if (len >= 8 && strncasecmp(p, "charset=", 8) == 0) {
            const char *cs = p + 8;
            size_t cl = len - 8;
            if (cl >= 2 && cs[0] == '"' && cs[cl - 1] == '"')
                cs++, cl -= 2;
            while (cl && (cs[cl - 1] == ' ' || cs[cl - 1] == '\t'))
                cl--;
            if (!((cl == 5 && strncasecmp(cs, "utf-8", 5) == 0) ||
                  (cl == 4 && strncasecmp(cs, "utf8", 4) == 0)))
                return false;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return true;
}
