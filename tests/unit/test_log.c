/*
 * test_log.c - the one logger and the request id: every line is one valid
 * JSON object (or one text line) naming level, component and request, and
 * nothing a message or a client sends can break a line or forge another.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/request_id.h"
#include "log.h"

/* What et_log writes to stderr while fn runs (fd 2 pointed at a temp file). */
static char captured[8192];

static void capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    cr_assert(tmp != NULL && saved >= 0);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(captured, 1, sizeof captured - 1, tmp);
    captured[n] = '\0';
    fclose(tmp);
}

static void one_warning(void)
{
    log_set_request_id("req-1");
    et_log(LL_WARN, "redis", "connect failed: %s\n", "say \"hi\"\\\nnext line\x01 \xff end \xc3\xa9");
    log_set_request_id(NULL);
}

Test(log, json_line_has_every_field)
{
    cJSON *doc;

    log_set_format(LOG_FORMAT_JSON);
    capture(one_warning);
    cr_assert_eq(strchr(captured, '\n'), captured + strlen(captured) - 1, "not one line: %s", captured);
    doc = cJSON_Parse(captured);
    cr_assert_not_null(doc, "not JSON: %s", captured);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "level")->valuestring, "warn");
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "component")->valuestring, "redis");
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "request_id")->valuestring, "req-1");
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "msg")->valuestring,
                     "connect failed: say \"hi\"\\\nnext line\x01 \xef\xbf\xbd end \xc3\xa9");
    /* 2026-11-29T15:00:46.123Z */
    cr_assert_eq(strlen(cJSON_GetObjectItem(doc, "ts")->valuestring), 24);
    cr_assert_eq(cJSON_GetObjectItem(doc, "ts")->valuestring[23], 'Z');
    cJSON_Delete(doc);
}

static void no_request(void)
{
    et_log(LL_INFO, "worker", "caught up");
}

Test(log, no_request_no_request_id)
{
    cJSON *doc;

    log_set_format(LOG_FORMAT_JSON);
    capture(no_request);
    doc = cJSON_Parse(captured);
    cr_assert_not_null(doc, "not JSON: %s", captured);
    cr_assert_null(cJSON_GetObjectItem(doc, "request_id"));
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "level")->valuestring, "info");
    cJSON_Delete(doc);
}

static void long_message(void)
{
    static char big[5000];

    memset(big, '"', sizeof big - 1);     /* every byte doubles when escaped */
    et_log(LL_ERROR, "postgres", "%s", big);
}

Test(log, a_long_message_is_cut_not_split)
{
    cJSON *doc;

    log_set_format(LOG_FORMAT_JSON);
    capture(long_message);
    cr_assert_eq(strchr(captured, '\n'), captured + strlen(captured) - 1, "not one line");
    doc = cJSON_Parse(captured);
    cr_assert_not_null(doc, "a cut line is not JSON: %.200s", captured);
    cr_assert_gt(strlen(cJSON_GetObjectItem(doc, "msg")->valuestring), 500);
    cJSON_Delete(doc);
}

Test(log, text_format_is_one_plain_line)
{
    log_set_format(LOG_FORMAT_TEXT);
    capture(one_warning);
    log_set_format(LOG_FORMAT_JSON);
    cr_assert_eq(strchr(captured, '\n'), captured + strlen(captured) - 1, "not one line: %s", captured);
    cr_assert(strstr(captured, " warn redis [req-1]: connect failed: say \"hi\"\\\\u000anext line\\u0001 ")
                  != NULL, "%s", captured);
}

Test(log, format_names)
{
    enum log_format f;

    cr_assert(log_format_parse("json", &f) && f == LOG_FORMAT_JSON);
    cr_assert(log_format_parse("text", &f) && f == LOG_FORMAT_TEXT);
    cr_assert(!log_format_parse("JSON", &f));
    cr_assert(!log_format_parse("", &f));
}

struct rid_case {
    char header[160];
    bool kept;
};

ParameterizedTestParameters(request_id, assign)
{
    static struct rid_case cases[] = {
        {"abc-123", true},
        {"0f8fad5b-d9cb-469f-a165-70867728950e", true},
        {"a.b:c_d", true},
        {"", false},
        {"has space", false},
        {"quote\"", false},
        {"new\nline", false},
        {"caf\xc3\xa9", false},
        {"x{128}", false},      /* replaced below by 128 'x': the longest kept */
        {"x{129}", false},      /* 129 'x': one too long */
    };
    memset(cases[8].header, 'x', 128);
    cases[8].header[128] = '\0';
    cases[8].kept = true;
    memset(cases[9].header, 'x', 129);
    cases[9].header[129] = '\0';
    return cr_make_param_array(struct rid_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct rid_case *c, request_id, assign)
{
    char id[ID_MAX + 1];

    request_id_assign(id, c->header);
    if (c->kept) {
        cr_assert_str_eq(id, c->header);
    } else {
        cr_assert_eq(strlen(id), 33, "a generated id: %s", id);
        cr_assert(id_valid(id, strlen(id)), "%s", id);
    }
}

Test(request_id, generated_ids_differ)
{
    char a[ID_MAX + 1], b[ID_MAX + 1];

    request_id_assign(a, NULL);
    request_id_assign(b, NULL);
    cr_assert_str_neq(a, b);
    cr_assert_eq(strncmp(a, b, 17), 0, "one process, one prefix: %s %s", a, b);
}
