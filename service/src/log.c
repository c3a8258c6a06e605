/*
 * log.c - the one logger (see log.h).
 *
 * Design notes
 *  1. A line is built whole in a buffer on the stack and written with one
 *     write(2): lines of concurrent threads never interleave (a pipe keeps a
 *     write of up to PIPE_BUF bytes together), and nothing is allocated, so
 *     the logger works when memory is what ran out.
 *  2. A message longer than the buffer is cut, never split over lines; a cut
 *     or a stray byte never leaves invalid UTF-8 or broken JSON behind: bytes
 *     that do not form UTF-8 become U+FFFD.
 *  3. The format is chosen once at start and read without a lock after.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_MESSAGE_MAX 1024
#define LOG_LINE_MAX (2 * LOG_MESSAGE_MAX + 512)   /* escaping at most doubles, plus the fields */

static enum log_format format = LOG_FORMAT_JSON;
static _Thread_local const char *request_id;

static const char *const level_names[] = {
    [LL_DEBUG] = "debug", [LL_INFO] = "info", [LL_WARN] = "warn", [LL_ERROR] = "error",
};

struct line {
    char data[LOG_LINE_MAX];
    size_t len;
};

void log_set_format(enum log_format f)
{
    format = f;
}

bool log_format_parse(const char *name, enum log_format *out)
{
    if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else if (strcmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else
        return false;
    return true;
}

void log_set_request_id(const char *id)
{
    request_id = id;
}

/* Appends all of s or, when it does not fit, nothing (so a cut never splits
 * a character or an escape); 4 bytes stay free for the closing bytes. */
static void put(struct line *l, const char *s, size_t n)
{
    if (n > sizeof l->data - 4 - l->len)
        return;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
                : s[0] >= 0xe0 && s[0] < 0xf0 ? 3 : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;

    if (need == 0 || need > n)
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return need;
}

/* Text as a JSON string body (json) or as one line of text: control
 * characters escaped either way, so a message cannot forge a line. */
static void put_escaped(struct line *l, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);

    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        char esc[8];

        if (k == 0) {
            puts_(l, format == LOG_FORMAT_JSON ? "\\ufffd" : "\xef\xbf\xbd");
            i++;
            continue;
        }
        if (s[i] == '"' || s[i] == '\\') {
            if (format == LOG_FORMAT_JSON)
                puts_(l, "\\");
            put(l, (const char *)s + i, 1);
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            puts_(l, esc);
        } else {
            put(l, (const char *)s + i, k);
        }
        i += k;
    }
}

static void put_time(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
    puts_(l, stamp);
}

/* The fixed text around the fields, per format: one builder for both. */
static const struct {
    const char *open, *level, *component, *id_open, *id_close, *msg, *close;
} shapes[] = {
    [LOG_FORMAT_JSON] = {"{\"ts\":\"", "\",\"level\":\"", "\",\"component\":\"", "\",\"request_id\":\"", "",
                         "\",\"msg\":\"", "\"}\n"},
    [LOG_FORMAT_TEXT] = {"", " ", " ", " [", "]", ": ", "\n"},
};

static void build(struct line *l, enum log_level level, const char *component, const char *msg)
{
    const char *close = shapes[format].close;

    puts_(l, shapes[format].open);
    put_time(l);
    puts_(l, shapes[format].level);
    puts_(l, level_names[level]);
    puts_(l, shapes[format].component);
    put_escaped(l, component);
    if (request_id) {
        puts_(l, shapes[format].id_open);
        put_escaped(l, request_id);
        puts_(l, shapes[format].id_close);
    }
    puts_(l, shapes[format].msg);
    put_escaped(l, msg);
    /* put() kept 4 bytes free for the closing bytes. */
    memcpy(l->data + l->len, close, strlen(close));
    l->len += strlen(close);
}

void et_log(enum log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    et_vlog(level, component, fmt, ap);
    va_end(ap);
}

void et_vlog(enum log_level level, const char *component, const char *fmt, va_list ap)
{
    char msg[LOG_MESSAGE_MAX];
    struct line l = {.len = 0};
    size_t n;

    if ((unsigned)level > LL_ERROR)
        level = LL_ERROR;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')     /* a trailing newline is the line's, not the message's */
        msg[--n] = '\0';
    build(&l, level, component, msg);
    for (size_t off = 0; off < l.len;) {
        ssize_t w = write(STDERR_FILENO, l.data + off, l.len - off);
        if (w <= 0)
            break;                          /* nowhere to report a failing stderr */
        off += (size_t)w;
    }
}
