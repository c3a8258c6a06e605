/*
 * http/response.c - response builders and THE error table.
 *
 * Every error any layer reports becomes an HTTP status and an RFC 9457
 * problem document here and nowhere else. The status table is indexed by
 * et_err; a handler may refine the problem type (`slug`, a PT_ constant of
 * the same kind, errors.h) but never the status, so the same kind of failure
 * always answers the same way.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "invariant.h"
#include "json/writer.h"

/* The one kind -> HTTP mapping; the types of each kind, their slugs and
 * titles, are the table in errors.h. */
static const struct {
    int status;
    int retry_after;         /* seconds, 0: none */
} error_table[ET_ERR__COUNT] = {
    [ET_OK]              = {200, 0},
    [ET_ERR_MALFORMED]   = {400, 0},
    [ET_ERR_BAD_HEADER]  = {400, 0},
    [ET_ERR_INVALID]     = {422, 0},
    [ET_ERR_NOT_FOUND]   = {404, 0},
    [ET_ERR_CONFLICT]    = {409, 0},
    [ET_ERR_UNAUTHORIZED] = {401, 0},
    [ET_ERR_FORBIDDEN]   = {403, 0},
    [ET_ERR_RATE_LIMITED] = {429, 1},
    [ET_ERR_NO_CREDIT]   = {402, 0},
    [ET_ERR_METHOD]      = {405, 0},
    [ET_ERR_MEDIA_TYPE]  = {415, 0},
    [ET_ERR_TOO_LARGE]   = {413, 0},
    [ET_ERR_UNAVAILABLE] = {503, 1},
    [ET_ERR_INTERNAL]    = {500, 0},
    [ET_ERR_NOT_IMPLEMENTED] = {501, 0},
};

void respond_bytes(struct response *res, int status, const char *content_type, const void *data,
                   size_t len)
{
    buf_free(&res->body);
    res->status = status;
    res->content_type = content_type;
    buf_append(&res->body, data, len);
}

/* FNV-1a, 64 bits: a change of a single byte changes the tag; it is a cache
 * validator, not a security boundary. */
void respond_etag(struct response *res)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < res->body.len; i++) {
        h ^= (unsigned char)res->body.data[i];
        h *= 0x100000001b3u;
    }
    snprintf(res->etag, sizeof res->etag, "\"%016llx\"", (unsigned long long)h);
}

int http_status_of(enum et_err err)
{
    return err < ET_ERR__COUNT ? error_table[err].status : 500;
}

struct jw *respond_json(struct response *res, int status)
{
    buf_free(&res->body);
    res->status = status;
    res->content_type = "application/json";
    jw_init(&res->json, &res->body);
    return &res->json;
}

void respond_problem(struct response *res, const struct problem *p)
{
    enum et_err err = p->err < ET_ERR__COUNT && p->err != ET_OK ? p->err : ET_ERR_INTERNAL;
    const struct problem_type *type_row = problem_type_of(err, p->slug);
    struct jw *w = respond_json(res, error_table[err].status);
    char type[96];

    /* A type belongs to one kind (errors.h): another pairing is a bug at the
     * call site. A release build answers with the kind's default type. */
    ET_ASSERT(type_row != NULL && type_row->kind == err);
    if (type_row == NULL || type_row->kind != err)
        type_row = problem_type_of(err, NULL);

    res->content_type = "application/problem+json";
    res->retry_after = p->retry_after > 0 ? p->retry_after : error_table[err].retry_after;
    /* RFC 6750: a 401 names the scheme, and says when a token was refused. */
    if (err == ET_ERR_UNAUTHORIZED)
        res->www_authenticate = type_row->slug == PT_INVALID_TOKEN
                                    ? "Bearer realm=\"eventtrack\", error=\"invalid_token\""
                                    : "Bearer realm=\"eventtrack\"";
    snprintf(type, sizeof type, "/problems/%s", type_row->slug);
    jw_object_begin(w);
    jw_key(w, "type");   jw_string(w, type);
    jw_key(w, "title");  jw_string(w, type_row->title);
    jw_key(w, "status"); jw_int(w, error_table[err].status);
    jw_key(w, "detail"); jw_string(w, p->detail[0] ? p->detail : type_row->title);
    if (p->nfields > 0) {
        jw_key(w, "errors");
        jw_array_begin(w);
        for (size_t i = 0; i < p->nfields; i++) {
            jw_object_begin(w);
            jw_key(w, "field");   jw_string(w, p->fields[i].field);
            jw_key(w, "message"); jw_string(w, p->fields[i].message);
            jw_object_end(w);
        }
        jw_array_end(w);
    }
    jw_object_end(w);
}

void respond_error(struct response *res, enum et_err err, const char *slug, const char *fmt, ...)
{
    struct problem p = {.err = err, .slug = slug};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p.detail, sizeof p.detail, fmt, ap);
    va_end(ap);
    utf8_trim_partial(p.detail);
    respond_problem(res, &p);
}

/* Does an If-None-Match header name this ETag (or "*")? RFC 9110 13.1.2. */
bool etag_matches(const char *if_none_match, const char *etag)
{
    size_t n = strlen(etag);

    for (const char *p = if_none_match; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;                      /* weak comparison suffices for GET */
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
        p = strchr(p, ',');
    }
    return false;
}
