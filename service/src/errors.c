/*
 * errors.c - building struct problem values (see errors.h).
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum et_err problem_set(struct problem *p, enum et_err err, const char *slug,
                        const char *fmt, ...)
{
    va_list ap;

    p->err = err;
    p->slug = slug;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    return err;
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
    snprintf(f->field, sizeof f->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}
