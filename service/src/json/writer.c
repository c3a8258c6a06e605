/*
 * json/writer.c - streaming JSON writer (see writer.h).
 */
#include "json/writer.h"

#include <stdio.h>
#include <string.h>

#include "invariant.h"

void jw_init(struct jw *w, struct buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

/* Every value and key passes here first: it owns comma placement. */
static void jw_before_value(struct jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        if (w->has_items[w->depth - 1])
            buf_putc(w->out, ',');
        w->has_items[w->depth - 1] = true;
    }
}

/* Deeper than JW_MAX_DEPTH is a programming error: fail the buffer, so the
 * response becomes a 500 instead of malformed JSON. */
static void jw_open(struct jw *w, char c)
{
    if (w->out->failed)
        return;
    if (w->depth == JW_MAX_DEPTH) {
        w->out->failed = true;
        return;
    }
    jw_before_value(w);
    buf_putc(w->out, c);
    w->has_items[w->depth++] = false;
}

/* Closing right after a key (a key without its value) is a bug in the
 * caller's document shape. Once the buffer has failed (past JW_MAX_DEPTH, or
 * out of memory) the document is thrown away, so nothing more is checked or
 * written: the fuzzer drives that path on purpose. */
static void jw_close(struct jw *w, char c)
{
    if (w->out->failed)
        return;
    ET_ASSERT(!w->after_key);
    if (w->depth > 0)
        w->depth--;
    buf_putc(w->out, c);
}

void jw_object_begin(struct jw *w) { jw_open(w, '{'); }
void jw_object_end(struct jw *w) { jw_close(w, '}'); }
void jw_array_begin(struct jw *w) { jw_open(w, '['); }
void jw_array_end(struct jw *w) { jw_close(w, ']'); }

void jw_key(struct jw *w, const char *key)
{
    if (w->out->failed)
        return;                                   /* thrown away: see jw_close */
    ET_ASSERT(w->depth > 0 && !w->after_key);     /* a key belongs in an object, one per value */
    jw_before_value(w);
    json_escape(w->out, key, strlen(key));
    buf_putc(w->out, ':');
    w->after_key = true;
}

void jw_string(struct jw *w, const char *s)
{
    if (s == NULL) {
        jw_null(w);
        return;
    }
    jw_string_n(w, s, strlen(s));
}

void jw_string_n(struct jw *w, const char *s, size_t n)
{
    jw_before_value(w);
    json_escape(w->out, s, n);
}

/* Digits by hand: vsnprintf was a fifth of a leaderboard request's
 * instructions (callgrind), for at most 20 characters. */
void jw_int(struct jw *w, long long v)
{
    char digits[24], *end = digits + sizeof digits, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    jw_before_value(w);
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    buf_append(w->out, p, (size_t)(end - p));
}

void jw_bool(struct jw *w, bool v)
{
    jw_before_value(w);
    buf_puts(w->out, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
    jw_before_value(w);
    buf_puts(w->out, "null");
}

void jw_raw(struct jw *w, const char *json)
{
    jw_before_value(w);
    buf_puts(w->out, json);
}

void json_escape(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':  buf_puts(out, "\\\""); break;
        case '\\': buf_puts(out, "\\\\"); break;
        case '\n': buf_puts(out, "\\n"); break;
        case '\r': buf_puts(out, "\\r"); break;
        case '\t': buf_puts(out, "\\t"); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(out, esc, sizeof esc);
        }
        }
    }
    buf_append(out, s + run, n - run);
    buf_putc(out, '"');
}
