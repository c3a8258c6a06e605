/* harness.c: HTTP over libcurl, JSON checks, resources made over HTTP and the
 * suite's fixtures (see harness.h). The stores' probes are in stores.c, the
 * processes (the suite's service, other runs of the binary, the proxy) in
 * process.c.
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* The advisory lock every test holds shared and the bad-input table holds
 * exclusively ("ETIT"). */
#define IT_LOCK_KEY "1163151700"

char *it_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        perror("strdup");
        abort();
    }
    return d;
}

void *it_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        abort();
    }
    return p;
}

char *fmt(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *s = it_malloc((size_t)n + 1);
    va_start(ap, format);
    vsnprintf(s, (size_t)n + 1, format, ap);
    va_end(ap);
    return s;
}

char *repeat_char(char c, size_t n)
{
    char *s = it_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

void it_pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

char *it_file_since(const char *path, long offset)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    long n = end > offset ? end - offset : 0;
    char *text = it_malloc((size_t)n + 1);
    fseek(f, offset, SEEK_SET);
    text[fread(text, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return text;
}

static unsigned long long random_u64(void)
{
    unsigned long long v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
            v = 0;
        close(fd);
    }
    if (!v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((unsigned long long)ts.tv_sec << 20) ^ (unsigned long long)ts.tv_nsec ^
            ((unsigned long long)getpid() << 40);
    }
    return v;
}

char *it_id(const char *tag)
{
    static char run[9];
    static unsigned counter;
    if (!run[0])
        snprintf(run, sizeof run, "%08llx", random_u64() & 0xffffffffULL);
    return fmt("%s_%s_%ld_%u", tag, run, (long)getpid(), ++counter);
}

long long it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- environment ------------------------------------------------------------ */

void it_env_defaults(void)
{
    setenv("EVENTTRACK_DATABASE_URL", IT_DEFAULT_DATABASE_URL, 0);
    setenv("EVENTTRACK_REDIS_URL", IT_DEFAULT_REDIS_URL, 0);
    /* No load balancer watches the services the suite starts and stops by
     * the dozen: the default grace (3 s) would only slow every stop. The
     * test of the grace sets it by flag. */
    setenv("EVENTTRACK_SHUTDOWN_GRACE_SECONDS", "0", 0);
    const char *k = getenv("EVENTTRACK_ADMIN_KEY");
    if (!k || !*k) {
        char key[64];
        snprintf(key, sizeof key, "it-admin-%016llx%016llx", random_u64(), random_u64());
        setenv("EVENTTRACK_ADMIN_KEY", key, 1);
    }
}

const char *it_base_url(void)
{
    const char *u = getenv("ET_IT_BASE_URL");
    cr_assert(u && *u, "ET_IT_BASE_URL is not set: run the integration_tests binary itself "
                       "(its main starts the service), not a single test in isolation");
    return u;
}

const char *it_admin_key(void)
{
    const char *k = getenv("EVENTTRACK_ADMIN_KEY");
    cr_assert(k && *k, "EVENTTRACK_ADMIN_KEY is not set");
    return k;
}

/* ---- HTTP ------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct transfer {
    struct buf body, headers;
    const char *upload;   /* chunked upload source */
    size_t upload_len, upload_off;
    struct curl_slist *hdrs;
    struct http_resp *resp;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    buf_add(&t->body, data, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
        t->headers.len = 0; /* a new response (after 100 Continue): keep only the last */
    buf_add(&t->headers, data, n);
    return n;
}

static size_t on_upload(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t n = size * nmemb;
    size_t left = t->upload_len - t->upload_off;
    if (n > left)
        n = left;
    if (n > 65536)
        n = 65536;
    memcpy(dst, t->upload + t->upload_off, n);
    t->upload_off += n;
    return n;
}

static char *header_value(const char *block, const char *name)
{
    if (!block)
        return NULL;
    size_t nl = strlen(name);
    char *found = NULL;
    const char *line = block;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = end;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            free(found);
            found = it_malloc((size_t)(e - v) + 1);
            memcpy(found, v, (size_t)(e - v));
            found[e - v] = '\0';
        }
        line = *end ? end + 1 : end;
    }
    return found;
}

static CURL *g_curl;

static void curl_init_once(void)
{
    static bool done;
    if (!done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        done = true;
    }
}

static void setup_easy(CURL *h, const struct http_req *rq, struct transfer *t)
{
    struct http_resp *r = t->resp;
    const char *method = rq->method ? rq->method : "GET";
    char *url = fmt("%s%s", rq->base ? rq->base : it_base_url(), rq->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->error);

    size_t len = rq->body ? (rq->len ? rq->len : strlen(rq->body)) : 0;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (rq->body && rq->chunked) {
        t->upload = rq->body;
        t->upload_len = len;
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, t);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (rq->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }

    if (rq->body && rq->chunked)
        t->hdrs = curl_slist_append(t->hdrs, "Transfer-Encoding: chunked");
    char *line;
    if (rq->content_type) {
        line = fmt("Content-Type: %s", rq->content_type);
        t->hdrs = curl_slist_append(t->hdrs, line);
        free(line);
    } else {
        t->hdrs = curl_slist_append(t->hdrs, "Content-Type:"); /* curl would add one for POST bodies */
    }
    /* A body over the 1 MiB limit keeps "Expect: 100-continue" so the server
     * can refuse it before it is sent; everything else skips the round trip. */
    if (len <= 1024 * 1024)
        t->hdrs = curl_slist_append(t->hdrs, "Expect:");
    if (!rq->auth) {
        line = fmt("Authorization: Bearer %s", it_admin_key());
        t->hdrs = curl_slist_append(t->hdrs, line);
        free(line);
    } else if (*rq->auth) {
        line = fmt("Authorization: Bearer %s", rq->auth);
        t->hdrs = curl_slist_append(t->hdrs, line);
        free(line);
    }
    if (rq->idem_key) {
        line = *rq->idem_key ? fmt("Idempotency-Key: %s", rq->idem_key) : it_strdup("Idempotency-Key;");
        t->hdrs = curl_slist_append(t->hdrs, line);
        free(line);
    }
    for (const char *const *x = rq->headers; x && *x; x++)
        t->hdrs = curl_slist_append(t->hdrs, *x);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->hdrs);

    r->what = fmt("%s %s%s%.*s%s", method, rq->path, rq->body ? " " : "",
                  rq->body ? (int)(len > 300 ? 300 : len) : 0, rq->body ? rq->body : "",
                  len > 300 ? "..." : "");
}

static void finish_easy(CURL *h, CURLcode rc, struct transfer *t)
{
    struct http_resp *r = t->resp;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    else {
        r->status = 0;
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
    }
    r->body = t->body.p ? t->body.p : it_strdup("");
    r->len = t->body.len;
    r->headers = t->headers.p ? t->headers.p : it_strdup("");
    r->content_type = header_value(r->headers, "Content-Type");
    r->allow = header_value(r->headers, "Allow");
    r->retry_after = header_value(r->headers, "Retry-After");
    r->location = header_value(r->headers, "Location");
    r->www_authenticate = header_value(r->headers, "WWW-Authenticate");
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
}

struct http_resp *http_do(const struct http_req *rq)
{
    curl_init_once();
    if (!g_curl)
        g_curl = curl_easy_init();
    else
        curl_easy_reset(g_curl); /* keeps the live connection */
    cr_assert(g_curl, "curl_easy_init failed");
    struct http_resp *r = calloc(1, sizeof *r);
    struct transfer t = {.resp = r};
    setup_easy(g_curl, rq, &t);
    CURLcode rc = curl_easy_perform(g_curl);
    finish_easy(g_curl, rc, &t);
    return r;
}

void http_close(void)
{
    if (g_curl)
        curl_easy_cleanup(g_curl);
    g_curl = NULL;
}

void http_parallel(struct http_par *reqs, size_t n)
{
    curl_init_once();
    CURLM *m = curl_multi_init();
    cr_assert(m, "curl_multi_init failed");
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n + 1);
    CURL **hs = it_malloc(n * sizeof *hs);
    struct transfer *ts = calloc(n, sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        hs[i] = curl_easy_init();
        reqs[i].resp = calloc(1, sizeof *reqs[i].resp);
        ts[i].resp = reqs[i].resp;
        setup_easy(hs[i], &reqs[i].req, &ts[i]);
        curl_easy_setopt(hs[i], CURLOPT_PRIVATE, (char *)&ts[i]);
        curl_multi_add_handle(m, hs[i]);
    }
    int running = 1;
    while (running) {
        CURLMcode mc = curl_multi_perform(m, &running);
        cr_assert(mc == CURLM_OK, "curl_multi_perform: %s", curl_multi_strerror(mc));
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct transfer *t;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            finish_easy(msg->easy_handle, msg->data.result, t);
        }
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
    }
    curl_multi_cleanup(m);
    free(hs);
    free(ts);
}

struct http_resp *http_request(const char *method, const char *path, const char *content_type,
                               const char *body, size_t len)
{
    struct http_req rq = {.method = method, .path = path, .content_type = content_type,
                          .body = body, .len = len};
    return http_do(&rq);
}

struct http_resp *http_get(const char *path)
{
    return http_get_as(path, NULL);
}

struct http_resp *http_get_as(const char *path, const char *auth)
{
    struct http_req rq = {.method = "GET", .path = path, .auth = auth};
    return http_do(&rq);
}

struct http_resp *http_get_at(const char *base, const char *path)
{
    return http_get_at_as(base, path, NULL);
}

struct http_resp *http_get_at_as(const char *base, const char *path, const char *auth)
{
    struct http_req rq = {.method = "GET", .path = path, .auth = auth, .base = base};
    return http_do(&rq);
}

struct http_resp *http_post_json(const char *path, const char *body)
{
    return http_post_json_as(path, body, NULL);
}

struct http_resp *http_post_json_as(const char *path, const char *body, const char *auth)
{
    return http_post_json_at_as(NULL, path, body, auth);
}

struct http_resp *http_post_json_at(const char *base, const char *path, const char *body)
{
    return http_post_json_at_as(base, path, body, NULL);
}

struct http_resp *http_post_json_at_as(const char *base, const char *path, const char *body,
                                       const char *auth)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json",
                          .body = body, .auth = auth, .base = base};
    return http_do(&rq);
}

struct http_resp *http_post_json_idem(const char *path, const char *body, const char *key)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json",
                          .body = body, .idem_key = key};
    return http_do(&rq);
}

void http_resp_free(struct http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    free(r->content_type);
    free(r->allow);
    free(r->retry_after);
    free(r->location);
    free(r->www_authenticate);
    free(r->what);
    cJSON_Delete(r->json);
    free(r);
}

/* ---- JSON ---------------------------------------------------------------------- */

cJSON *resp_json(struct http_resp *r)
{
    if (!r->json && r->body && r->len)
        r->json = cJSON_ParseWithLength(r->body, r->len);
    return r->json;
}

cJSON *jget(const cJSON *o, const char *path)
{
    if (!o || !path)
        return NULL;
    char *copy = it_strdup(path);
    const cJSON *cur = o;
    char *save = NULL;
    for (char *part = strtok_r(copy, ".", &save); part && cur; part = strtok_r(NULL, ".", &save)) {
        if (cJSON_IsArray(cur) && isdigit((unsigned char)part[0]))
            cur = cJSON_GetArrayItem(cur, atoi(part));
        else if (cJSON_IsObject(cur))
            cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        else
            cur = NULL;
    }
    free(copy);
    return (cJSON *)cur;
}

const char *jstr(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool jint(const cJSON *o, const char *path, long long *out)
{
    const cJSON *v = jget(o, path);
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (d != (double)(long long)d)
        return false;
    *out = (long long)d;
    return true;
}

long long jint_or(const cJSON *o, const char *path, long long dflt)
{
    long long v;
    return jint(o, path, &v) ? v : dflt;
}

bool jbool(const cJSON *o, const char *path, bool *out)
{
    const cJSON *v = jget(o, path);
    if (!cJSON_IsBool(v))
        return false;
    *out = cJSON_IsTrue(v);
    return true;
}

/* ---- checks ---------------------------------------------------------------------- */

static char g_msg[8192];

static const char *fail(struct http_resp *r, const char *format, ...) __attribute__((format(printf, 2, 3)));
static const char *fail(struct http_resp *r, const char *format, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(why, sizeof why, format, ap);
    va_end(ap);
    if (r->status == 0)
        snprintf(g_msg, sizeof g_msg, "%s\n  -> %s\n  transfer failed: %s", r->what, why, r->error);
    else
        snprintf(g_msg, sizeof g_msg, "%s\n  -> %s\n  got %ld, Content-Type %s, body: %.1500s%s", r->what, why,
                 r->status, r->content_type ? r->content_type : "(none)", r->body,
                 r->len > 1500 ? "..." : "");
    return g_msg;
}

static bool media_type_is(const char *ct, const char *want)
{
    if (!ct)
        return false;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

const char *check_status(struct http_resp *r, long status)
{
    if (r->status != status)
        return fail(r, "expected status %ld", status);
    return NULL;
}

const char *check_json(struct http_resp *r, long status)
{
    if (r->status != status)
        return fail(r, "expected status %ld", status);
    if (!media_type_is(r->content_type, "application/json"))
        return fail(r, "expected Content-Type application/json");
    if (!cJSON_IsObject(resp_json(r)))
        return fail(r, "expected a JSON object body");
    return NULL;
}

const char *check_problem(struct http_resp *r, long status, const char *slug, const char *field)
{
    if (r->status != status)
        return fail(r, "expected status %ld (%s)", status, slug);
    if (!media_type_is(r->content_type, "application/problem+json"))
        return fail(r, "expected Content-Type application/problem+json");
    cJSON *j = resp_json(r);
    if (!cJSON_IsObject(j))
        return fail(r, "expected a problem+json object body");
    char *type = fmt("/problems/%s", slug);
    const char *got = jstr(j, "type");
    bool ok = got && strcmp(got, type) == 0;
    free(type);
    if (!ok)
        return fail(r, "expected type \"/problems/%s\"", slug);
    long long st;
    if (!jint(j, "status", &st) || st != status)
        return fail(r, "expected body status %ld", status);
    if (!jstr(j, "title"))
        return fail(r, "expected a title string");
    if (field) {
        const cJSON *errs = jget(j, "errors");
        const cJSON *e;
        bool named = false;
        cJSON_ArrayForEach(e, errs) {
            const char *f = jstr(e, "field");
            if (f && strcmp(f, field) == 0 && jstr(e, "message"))
                named = true;
        }
        if (!named)
            return fail(r, "expected errors[] to hold {\"field\": \"%s\", \"message\": ...}", field);
    }
    return NULL;
}

/* ---- resources ----------------------------------------------------------------- */

char *make_org_key(long long credits, char **api_key)
{
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Integration org %s\",\"credits\":%lld}", id, id, credits);
    struct http_resp *r = http_post_json("/v1/organizations", body);
    EXPECT_JSON(r, 201);
    if (api_key) {
        const char *k = jstr(resp_json(r), "api_key");
        cr_assert(k && *k, "POST /v1/organizations: no api_key in %s", r->body);
        *api_key = it_strdup(k);
    }
    http_resp_free(r);
    free(body);
    return id;
}

char *make_org(long long credits)
{
    return make_org_key(credits, NULL);
}

char *make_event(const char *org)
{
    char *id = it_id("evt");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Conference %s\"}", id, org, id);
    struct http_resp *r = http_post_json("/v1/events", body);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    free(body);
    return id;
}

char *make_session(const char *event, const char *speaker)
{
    char *id = it_id("ses");
    char *body = fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Talk %s\",\"speaker_id\":\"%s\"}", id,
                     event, id, speaker);
    struct http_resp *r = http_post_json("/v1/sessions", body);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    free(body);
    return id;
}

struct http_resp *post_registration(const char *session, const char *user, const char *org, const char *idem_key)
{
    char *body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                     "\"ticket_type\":\"standard\",\"price_paid\":99.0}",
                     session, user, org);
    struct http_resp *r = http_post_json_idem("/v1/registrations", body, idem_key);
    free(body);
    return r;
}

struct http_resp *post_view(const char *event_id, const char *session, const char *speaker, const char *user)
{
    char *id_part = event_id ? fmt("\"event_id\":\"%s\",", event_id) : it_strdup("");
    char *spk_part = speaker ? fmt(",\"speaker_id\":\"%s\"", speaker) : it_strdup("");
    char *body = fmt("{%s\"event_type\":\"session_view\",\"user_id\":\"%s\","
                     "\"payload\":{\"session_id\":\"%s\"%s,\"duration_seconds\":120}}",
                     id_part, user, session, spk_part);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    free(id_part);
    free(spk_part);
    free(body);
    return r;
}

long long get_balance(const char *org)
{
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *r = http_get(path);
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "organization_id", org);
    long long b = -1;
    cr_assert(jint(resp_json(r), "balance", &b), "GET %s: balance is not an integer: %s", path, r->body);
    http_resp_free(r);
    free(path);
    return b;
}

void post_views(const struct view *views, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *batch = cJSON_AddArrayToObject(root, "batch");
    for (size_t i = 0; i < n; i++) {
        cJSON *env = cJSON_CreateObject();
        char *id = it_id("view");
        char *user = it_id("att");
        cJSON_AddStringToObject(env, "event_id", id);
        cJSON_AddStringToObject(env, "event_type", "session_view");
        cJSON_AddStringToObject(env, "user_id", user);
        cJSON *payload = cJSON_AddObjectToObject(env, "payload");
        cJSON_AddStringToObject(payload, "session_id", views[i].session);
        if (views[i].speaker)
            cJSON_AddStringToObject(payload, "speaker_id", views[i].speaker);
        cJSON_AddNumberToObject(payload, "duration_seconds", 60);
        cJSON_AddItemToArray(batch, env);
        free(id);
        free(user);
    }
    char *body = cJSON_PrintUnformatted(root);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 200);
    cJSON *j = resp_json(r);
    cr_assert(jint_or(j, "accepted", -1) == (long long)n && jint_or(j, "duplicates", -1) == 0 &&
                  jint_or(j, "rejected", -1) == 0,
              "batch of %zu new session_views: expected accepted=%zu duplicates=0 rejected=0, got %.1000s", n,
              n, r->body);
    http_resp_free(r);
    free(body);
    cJSON_Delete(root);
}

const char *check_board(const char *event_id, const char *query, const struct board_entry *want, size_t n)
{
    char *path = fmt("/v1/events/%s/leaderboard%s", event_id, query ? query : "");
    /* A leaderboard read is public: no Authorization. */
    struct http_resp *r = http_get_as(path, "");
    free(path);
    const char *m = check_json(r, 200);
    if (m)
        return m;
    cJSON *j = resp_json(r);
    const char *ev = jstr(j, "event_id");
    if (!ev || strcmp(ev, event_id) != 0)
        return fail(r, "expected event_id \"%s\"", event_id);
    cJSON *list = jget(j, "leaderboard");
    if (!cJSON_IsArray(list))
        return fail(r, "expected a leaderboard array");
    char want_s[4096] = "";
    size_t off = 0;
    for (size_t i = 0; i < n && off < sizeof want_s; i++)
        off += (size_t)snprintf(want_s + off, sizeof want_s - off, "%s{rank %lld, %s, score %lld}",
                                i ? ", " : "", want[i].rank, want[i].speaker, want[i].score);
    if ((size_t)cJSON_GetArraySize(list) != n)
        return fail(r, "expected %zu entries: [%s]", n, want_s);
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(list, (int)i);
        const char *spk = jstr(e, "speaker_id");
        long long score, rank;
        if (!spk || strcmp(spk, want[i].speaker) != 0 || !jint(e, "score", &score) ||
            score != want[i].score || !jint(e, "rank", &rank) || rank != want[i].rank)
            return fail(r, "entry %zu differs; expected [%s]", i, want_s);
    }
    http_resp_free(r);
    return NULL;
}

/* ---- fixtures ------------------------------------------------------------------------ */

void it_setup(void)
{
    (void)it_base_url();
    pg_exec("SELECT pg_advisory_lock_shared(" IT_LOCK_KEY ")", NULL);
}

void it_setup_exclusive(void)
{
    (void)it_base_url();
    pg_exec("SELECT pg_advisory_lock(" IT_LOCK_KEY ")", NULL);
}

