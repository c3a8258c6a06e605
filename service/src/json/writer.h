/*
 * json/writer.h - streaming JSON output into a struct buf.
 *
 * Responses are written straight into the buffer MHD will send, with no
 * intermediate tree: fewer allocations on hot paths (the leaderboard read is
 * one buffer and a handful of appends). The writer places commas and escapes
 * strings; callers only state structure.
 */
#ifndef ET_JSON_WRITER_H
#define ET_JSON_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define JW_MAX_DEPTH 32

struct jw {
    struct buf *out;
    unsigned depth;
    bool after_key;
    bool has_items[JW_MAX_DEPTH];
};

void jw_init(struct jw *w, struct buf *out);
void jw_object_begin(struct jw *w);
void jw_object_end(struct jw *w);
void jw_array_begin(struct jw *w);
void jw_array_end(struct jw *w);
void jw_key(struct jw *w, const char *key);
void jw_string(struct jw *w, const char *s);              /* NULL writes null */
void jw_string_n(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, long long v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
void jw_raw(struct jw *w, const char *json);                /* already valid JSON */

/* Appends s as a quoted JSON string (no comma handling): for other builders. */
void json_escape(struct buf *out, const char *s, size_t n);

#endif
