/*
 * errors.c - building struct problem values (see errors.h).
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ET_PROBLEM_SLUG_DEF(name, kind, slug, title) const char name[] = slug;
ET_PROBLEM_TYPES(ET_PROBLEM_SLUG_DEF)
#undef ET_PROBLEM_SLUG_DEF

static const struct problem_type problem_table[] = {
#define ET_PROBLEM_ROW(name, kind, slug, title) {name, kind, title},
    ET_PROBLEM_TYPES(ET_PROBLEM_ROW)
#undef ET_PROBLEM_ROW
};
#define NPROBLEM_TYPES (sizeof problem_table / sizeof problem_table[0])

const struct problem_type *problem_type_of(enum et_err kind, const char *slug)
{
    for (size_t i = 0; i < NPROBLEM_TYPES; i++)
        if (slug ? strcmp(slug, problem_table[i].slug) == 0 : problem_table[i].kind == kind)
            return &problem_table[i];
    return NULL;
}

const struct problem_type *problem_types(size_t *count)
{
    *count = NPROBLEM_TYPES;
    return problem_table;
}

enum et_err problem_set(struct problem *p, enum et_err err, const char *slug,
                        const char *fmt, ...)
{
    va_list ap;

    p->err = err;
    p->slug = slug;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    utf8_trim_partial(p->detail);
    return err;
}

void utf8_trim_partial(char *s)
{
    size_t n = strlen(s), start = n, need;
    unsigned char lead;

    /* Find the start of the last sequence (at most 3 continuation bytes back). */
    while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
        start--;
    if (start == 0)
        return;
    lead = (unsigned char)s[start - 1];
    if (lead < 0xc0)
        return;                     /* ASCII: nothing cut */
    need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (n - (start - 1) < need)
        s[start - 1] = '\0';
}

void problem_clear(struct problem *p)
{
    memset(p, 0, sizeof *p);
}

void problem_field(struct problem *p, const char *field, const char *fmt, ...)
{
    va_list ap;
    struct field_error *f;

    p->err = ET_ERR_INVALID;
    if (p->nfields == PROBLEM_MAX_FIELDS)
        return;
    f = &p->fields[p->nfields++];
    snprintf(f->field, sizeof f->field, "%s", field);   /* may be a client's key */
    utf8_trim_partial(f->field);
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    utf8_trim_partial(f->message);
}
