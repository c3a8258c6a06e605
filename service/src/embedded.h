/*
 * embedded.h - files compiled into the binary by cmake/embed.cmake.
 *
 * migrations[]: schema/NNNN_*.sql in file-name order, name without ".sql".
 * widget_assets[]: every file of web/widget, name with its extension.
 * data is NUL-terminated; size excludes the NUL.
 */
#ifndef ET_EMBEDDED_H
#define ET_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
    const char *name;
    const char *data;
    size_t size;
};

extern const struct embedded_file migrations[];
extern const size_t migrations_count;
extern const struct embedded_file widget_assets[];
extern const size_t widget_assets_count;

#endif
