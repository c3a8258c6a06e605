/* test_faults.c: issue 4's fault tests, each ending in exact numbers.
 *
 *   1. kill -9 Redis under concurrent ingest, restart it empty: every write
 *      answered, and the board converges on PostgreSQL's count (0 differences)
 *      with an empty outbox;
 *   2. PostgreSQL cut off: writes 503 with Retry-After, the board still served,
 *      /readyz 503, nothing counted in Redis that PostgreSQL did not commit,
 *      and the same process recovers;
 *   3. SIGTERM under load: readiness fails first, every request sent gets a
 *      complete response, a slow request in flight completes, exit 0;
 *   4. the process dies between the PostgreSQL commit and the Redis update
 *      (fault point ingest-after-commit): the next service converges;
 *   5. Redis cut off, then restored: the board catches up within
 *      2 x leaderboard_sync_ms + 1 s (ADR 0003, "The staleness bound");
 *   6. FLUSHALL: detected and the board rebuilt, no manual step;
 *   7. a loss followed at once by ordinary traffic is detected as well;
 *   8. a view that commits after 2,500 later ones were applied still reaches
 *      the board (the worker's passes start over at the outbox's head);
 *   9. a backlog whose pass outlasts one deadline drains without a dropped
 *      connection (each outbox batch has a deadline of its own).
 *
 * Isolation: every test runs against a rig of its own, never the shared
 * stores:
 *   - a scratch database (CREATE DATABASE, `eventtrack migrate`, dropped by
 *     the suite's .fini; one left behind by a killed run is dropped by a later
 *     run after an hour). Not the shared test database: the leaderboard outbox
 *     is one queue per database, drained by the worker of every service
 *     connected to it -- the suite's own service and those of concurrent runs
 *     included -- each into *its* Redis. A view logged while this test's Redis
 *     was away would be applied to another Redis and deleted from the outbox,
 *     and the outbox could not be observed. (One Redis per database is the
 *     deployment the outbox assumes, ADR 0003.)
 *   - a redis-server of its own (no persistence, a free port, a temporary
 *     --dir), which the test may kill -9, restart empty or FLUSHALL
 *     (ET_IT_REDIS_SERVER names the binary; default: redis-server on PATH);
 *   - services spawned against them (spawn_service), through the suite's TCP
 *     proxy when a store must be cut and restored.
 * The tests probe both stores directly: the board is compared with the SQL
 * count of the logged views, speaker by speaker.
 *
 * Test 4 needs a build with -DET_FAULT_INJECTION=ON; without the fault point
 * it fails and says so.
 *
 * Measured figures (catch-up and recovery times) are printed to stderr on
 * lines starting with "faults:".
 */
#include "harness.h"
#include "rig.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis.h>
#include <libpq-fe.h>

/* Views of a conference logged in the rig's scratch database, and its outbox rows. */
static long long logged_views(const char *evt)
{
    return rig_db_ll("SELECT count(*) FROM analytics_events WHERE leaderboard_event_id = $1", PG_PARAMS(evt));
}

static long long outbox_rows(const char *evt)
{
    return rig_db_ll("SELECT count(*) FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
                     " WHERE e.leaderboard_event_id = $1",
                     PG_PARAMS(evt));
}

static void faults_init(void)
{
    it_setup();
    rig_init("faults");
}

TestSuite(faults, .init = faults_init, .fini = rig_fini, .timeout = 90);

/* ---- HTTP against a spawned service ------------------------------------------------- */

static char *org_at(const char *base)
{
    char *id = it_id("org");
    struct http_resp *r = http_post_json_at(
        base, "/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"Faults %s\",\"credits\":100}", id, id));
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    return id;
}

static char *event_at(const char *base, const char *org)
{
    char *id = it_id("evt");
    struct http_resp *r = http_post_json_at(
        base, "/v1/events",
        fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Conference %s\"}", id, org, id));
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    return id;
}

static char *session_at(const char *base, const char *evt, const char *speaker)
{
    char *id = it_id("ses");
    struct http_resp *r = http_post_json_at(
        base, "/v1/sessions",
        fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Talk %s\",\"speaker_id\":\"%s\"}", id, evt, id,
            speaker));
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    return id;
}

static char *view_body(const char *id, const char *session)
{
    return fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"att_%s\","
               "\"payload\":{\"session_id\":\"%s\",\"duration_seconds\":30}}",
               id, id, session);
}

/* {"batch":[...]} of n fresh views of one session; their ids are "<prefix>_<i>". */
static char *batch_body(const char *prefix, const char *session, size_t n)
{
    size_t cap = n * 200 + 32, len = 0;
    char *s = it_malloc(cap);
    len += (size_t)snprintf(s, cap, "{\"batch\":[");
    for (size_t i = 0; i < n; i++) {
        char *id = fmt("%s_%zu", prefix, i);
        char *v = view_body(id, session);
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", v);
        free(v);
        free(id);
    }
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void expect_batch(struct http_resp *r, long long accepted, long long duplicates)
{
    EXPECT_JSON(r, 200);
    cJSON *j = resp_json(r);
    cr_assert(jint_or(j, "accepted", -1) == accepted && jint_or(j, "duplicates", -1) == duplicates &&
                  jint_or(j, "rejected", -1) == 0,
              "%s: expected accepted=%lld duplicates=%lld rejected=0, got %.600s", r->what, accepted, duplicates,
              r->body);
}

static void expect_unavailable(struct http_resp *r)
{
    EXPECT_PROBLEM(r, 503, "store-unavailable");
    cr_assert(r->retry_after && strcmp(r->retry_after, "1") == 0, "%s: 503 without Retry-After: 1 (got %s)",
              r->what, r->retry_after ? r->retry_after : "none");
}

/* ---- the board in our Redis against PostgreSQL's count ------------------------------ */

/* Number of speakers whose score differs from the SQL count of their logged
 * views (a speaker missing on either side counts); *desc says which. */
static int board_diff(const char *evt, char **desc)
{
    PGresult *res = rig_db_query("SELECT leaderboard_speaker_id, count(*) FROM analytics_events"
                                 " WHERE leaderboard_event_id = $1 GROUP BY 1 ORDER BY 1",
                                 PG_PARAMS(evt));
    char *key = lb_key(evt);
    redisReply *z = rig_redis("ZRANGE %s 0 -1 WITHSCORES", key);
    cr_assert(z->type == REDIS_REPLY_ARRAY, "ZRANGE %s: not an array", key);
    int diffs = 0;
    char *d = it_strdup("");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *spk = PQgetvalue(res, i, 0);
        long long want = strtoll(PQgetvalue(res, i, 1), NULL, 10), got = -1;
        for (size_t k = 0; k + 1 < z->elements; k += 2)
            if (strcmp(z->element[k]->str, spk) == 0)
                got = (long long)strtod(z->element[k + 1]->str, NULL);
        if (got != want) {
            diffs++;
            char *next = fmt("%s %s: SQL %lld, Redis %s%lld;", d, spk, want, got < 0 ? "(absent) " : "",
                             got < 0 ? 0 : got);
            free(d);
            d = next;
        }
    }
    for (size_t k = 0; k + 1 < z->elements; k += 2) {
        bool known = false;
        for (int i = 0; i < PQntuples(res) && !known; i++)
            known = strcmp(PQgetvalue(res, i, 0), z->element[k]->str) == 0;
        if (!known) {
            diffs++;
            char *next = fmt("%s %s: not in SQL, Redis %s;", d, z->element[k]->str, z->element[k + 1]->str);
            free(d);
            d = next;
        }
    }
    freeReplyObject(z);
    PQclear(res);
    free(key);
    if (desc)
        *desc = d;
    else
        free(d);
    return diffs;
}

static long long own_score(const char *evt, const char *speaker)
{
    char *key = lb_key(evt);
    redisReply *r = rig_redis("ZSCORE %s %s", key, speaker);
    long long v = r->type == REDIS_REPLY_STRING ? (long long)strtod(r->str, NULL) : -1;
    freeReplyObject(r);
    free(key);
    return v;
}

static long long own_applied(const char *evt)
{
    char *key = lb_applied_key(evt);
    redisReply *r = rig_redis("SCARD %s", key);
    long long v = r->integer;
    freeReplyObject(r);
    free(key);
    return v;
}

static long long own_epoch(void)
{
    redisReply *r = rig_redis("GET eventtrack:epoch");
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* Polls until the board equals the SQL counts and the event's outbox is
 * empty; returns the milliseconds it took, or -1 after timeout_ms. */
static long long await_convergence(const char *evt, long long timeout_ms)
{
    long long t0 = it_now_ms();
    for (;;) {
        if (board_diff(evt, NULL) == 0 && outbox_rows(evt) == 0)
            return it_now_ms() - t0;
        if (it_now_ms() - t0 > timeout_ms)
            return -1;
        it_pause_ms(10);
    }
}

/* The board as the service serves it must equal the SQL counts too. */
static void expect_served_board(const char *base, const char *evt)
{
    char *path = fmt("/v1/events/%s/leaderboard?top_n=50", evt);
    struct http_resp *r = http_get_at(base, path);
    EXPECT_JSON(r, 200);
    cJSON *list = jget(resp_json(r), "leaderboard");
    cr_assert(cJSON_IsArray(list), "GET %s: no leaderboard array: %s", path, r->body);
    long long n = rig_db_ll("SELECT count(DISTINCT leaderboard_speaker_id) FROM analytics_events"
                            " WHERE leaderboard_event_id = $1",
                            PG_PARAMS(evt));
    cr_assert_eq(cJSON_GetArraySize(list), n, "GET %s: %d entries, SQL has %lld speakers: %s", path,
                 cJSON_GetArraySize(list), n, r->body);
    for (int i = 0; i < cJSON_GetArraySize(list); i++) {
        cJSON *e = cJSON_GetArrayItem(list, i);
        const char *spk = jstr(e, "speaker_id");
        long long score = jint_or(e, "score", -1);
        long long want = rig_db_ll("SELECT count(*) FROM analytics_events WHERE leaderboard_event_id = $1"
                                   " AND leaderboard_speaker_id = $2",
                                   PG_PARAMS(evt, spk ? spk : ""));
        cr_assert_eq(score, want, "GET %s: %s has score %lld, SQL counts %lld", path, spk ? spk : "?", score,
                     want);
    }
    http_resp_free(r);
}

/* ---- a load of analytics posts over one curl multi handle ----------------------------- */

struct shot {
    char *body;
    long status;                 /* 0: no HTTP response */
    CURLcode rc;
    char error[CURL_ERROR_SIZE];
    char reply[256];             /* start of the response body, for messages */
    size_t reply_len;
};

struct load {
    const char *base;
    size_t width;                /* requests in flight at once */
    struct shot **shots;         /* every request made, in order */
    size_t n, cap, done;
    bool stop;                   /* set by tick: make no new requests */
    /* The next body to post (owned by the load), or NULL for none now. */
    char *(*next)(struct load *l);
    /* Called on every turn of the loop, between completions. */
    void (*tick)(struct load *l);
    void *ctx;
};

static size_t shot_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct shot *s = ud;
    size_t n = size * nmemb, room = sizeof s->reply - 1 - s->reply_len;
    memcpy(s->reply + s->reply_len, data, n < room ? n : room);
    s->reply_len += n < room ? n : room;
    s->reply[s->reply_len] = '\0';
    return n;
}

static void load_run(struct load *l)
{
    CURLM *m = curl_multi_init();
    cr_assert(m, "curl_multi_init failed");
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)l->width + 1);
    char *auth = fmt("Authorization: Bearer %s", it_admin_key());
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, auth);
    char *url = fmt("%s/v1/analytics/events", l->base);
    size_t running = 0;
    for (;;) {
        if (l->tick)
            l->tick(l);
        while (!l->stop && running < l->width) {
            char *body = l->next(l);
            if (!body)
                break;
            if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 256;
                l->shots = realloc(l->shots, l->cap * sizeof *l->shots);
                cr_assert(l->shots, "out of memory");
            }
            struct shot *s = calloc(1, sizeof *s);
            cr_assert(s, "out of memory");
            s->body = body;
            l->shots[l->n++] = s;
            CURL *h = curl_easy_init();
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->body);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, shot_body);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->error);
            curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)s);
            curl_multi_add_handle(m, h);
            running++;
        }
        if (running == 0)
            break;
        int still;
        CURLMcode mc = curl_multi_perform(m, &still);
        cr_assert(mc == CURLM_OK, "curl_multi_perform: %s", curl_multi_strerror(mc));
        curl_multi_poll(m, NULL, 0, 5, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct shot *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            s->rc = msg->data.result;
            if (s->rc == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &s->status);
            CURL *h = msg->easy_handle;
            curl_multi_remove_handle(m, h);
            curl_easy_cleanup(h);
            running--;
            l->done++;
        }
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    free(url);
    free(auth);
}

/* ================================================================================== */
/* 1. kill -9 Redis under concurrent ingest, restart it empty                          */
/* ================================================================================== */

/* Redis is killed once KILL_BEFORE posts were answered and the worker had
 * KILL_AFTER_MS to drain their outbox rows (so some views are on the board
 * only, and a rebuild is the one way back for them); ingest goes on for
 * KILL_DOWN_MS and at least KILL_WHILE_DOWN answers without Redis. */
enum { KILL_SPEAKERS = 5, KILL_BEFORE = 150, KILL_AFTER_MS = 700, KILL_WHILE_DOWN = 120, KILL_DOWN_MS = 500 };

struct kill_run {
    char *sessions[KILL_SPEAKERS];
    char *prefix, *evt;
    int phase;                   /* 0 Redis up, 1 Redis killed, 2 stopping */
    long long started_at, killed_at;
    size_t done_at_kill, in_flight_at_kill;
    long long logged_at_kill, outbox_at_kill;
    size_t distinct, duplicates;
};

/* Speakers get 5:4:3:2:1 of the new views, so their scores differ; every
 * 8th request repeats the one sent 6 before it (often still in flight). */
static char *kill_next(struct load *l)
{
    struct kill_run *k = l->ctx;
    size_t i = l->n;
    if (i % 8 == 7) {
        k->duplicates++;
        return it_strdup(l->shots[i - 6]->body);
    }
    static const int share[15] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4};
    char *id = fmt("%s_%zu", k->prefix, i);
    char *body = view_body(id, k->sessions[share[k->distinct % 15]]);
    free(id);
    k->distinct++;
    return body;
}

static void kill_tick(struct load *l)
{
    struct kill_run *k = l->ctx;
    if (k->phase == 0 && l->done >= KILL_BEFORE && it_now_ms() - k->started_at >= KILL_AFTER_MS) {
        k->in_flight_at_kill = l->n - l->done;
        k->outbox_at_kill = outbox_rows(k->evt);
        k->logged_at_kill = logged_views(k->evt);
        rig_redis_kill9(); /* while requests are in flight */
        k->killed_at = it_now_ms();
        k->done_at_kill = l->done;
        k->phase = 1;
    } else if (k->phase == 1 && it_now_ms() - k->killed_at >= KILL_DOWN_MS &&
               l->done >= k->done_at_kill + KILL_WHILE_DOWN) {
        l->stop = true;
        k->phase = 2;
    }
}

Test(faults, redis_killed_under_concurrent_ingest_and_restarted_empty_converges_exactly)
{
    const char *args[] = {"--threads", "8", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    pid_t pid = rig_up(args, &b);

    char *org = org_at(b);
    char *evt = event_at(b, org);
    struct kill_run k = {.prefix = it_id("kv"), .evt = evt};
    char *speakers[KILL_SPEAKERS];
    for (int i = 0; i < KILL_SPEAKERS; i++) {
        speakers[i] = it_id("spk");
        k.sessions[i] = session_at(b, evt, speakers[i]);
    }

    struct load l = {.base = b, .width = 16, .next = kill_next, .tick = kill_tick, .ctx = &k};
    k.started_at = it_now_ms();
    load_run(&l);
    cr_assert_eq(k.phase, 2, "the load ended before Redis was killed and ingest continued without it");
    cr_assert(k.logged_at_kill > k.outbox_at_kill,
              "at the kill all %lld logged views were still in the outbox: nothing tests the rebuild",
              k.logged_at_kill);

    /* Every write answered, with or without Redis. */
    size_t created = 0, duplicate = 0, bad = 0;
    struct shot *first_bad = NULL;
    for (size_t i = 0; i < l.n; i++) {
        struct shot *s = l.shots[i];
        if (s->status == 201)
            created++;
        else if (s->status == 200)
            duplicate++;
        else if (bad++ == 0)
            first_bad = s;
    }
    cr_assert(bad == 0, "%zu of %zu analytics posts failed while Redis was killed; the first: status %ld (%s) %s",
              bad, l.n, first_bad->status, first_bad->rc == CURLE_OK ? "" : first_bad->error, first_bad->reply);
    cr_assert_eq(created, k.distinct, "%zu posts answered 201, but %zu distinct views were sent", created,
                 k.distinct);
    cr_assert_eq(duplicate, k.duplicates, "%zu posts answered 200, but %zu were repeats", duplicate, k.duplicates);
    cr_assert_eq(logged_views(evt), (long long)k.distinct, "PostgreSQL logged %lld views, %zu were accepted",
                 logged_views(evt), k.distinct);
    long long pending = outbox_rows(evt);

    /* Restart it empty, on the same port: nothing on it, not even the epoch. */
    long long t0 = it_now_ms();
    rig_redis_start(NULL);
    long long restart_ms = it_now_ms() - t0;
    char *key = lb_key(evt);
    redisReply *ex = rig_redis("EXISTS %s eventtrack:epoch", key);
    cr_assert_eq(ex->integer, 0, "the restarted redis-server is not empty");
    freeReplyObject(ex);

    long long took = await_convergence(evt, 10000);
    char *desc = NULL;
    int diffs = board_diff(evt, &desc);
    cr_assert(took >= 0, "10 s after Redis came back empty the board still differs from PostgreSQL for %d speaker(s):%s"
                         " (outbox rows left: %lld); see %s",
              diffs, desc, outbox_rows(evt), rig.service_log);
    cr_assert_eq(diffs, 0);
    cr_assert_eq(outbox_rows(evt), 0);
    /* The rebuilt dedup set holds every view (all within the rebuild's one-minute tail). */
    cr_assert_eq(own_applied(evt), (long long)k.distinct, "the applied set holds %lld ids, %zu views were logged",
                 own_applied(evt), k.distinct);
    expect_served_board(b, evt);
    fprintf(stderr,
            "faults: kill -9 Redis: %zu posts (%zu distinct views, %zu repeats); at the kill %lld views logged, %lld"
            " of them only on the board (outbox drained), %zu posts in flight; %zu answered while Redis was down;"
            " %lld outbox rows at the restart; board exact %lld ms after the empty Redis was up"
            " (restart took %lld ms)\n",
            l.n, k.distinct, k.duplicates, k.logged_at_kill, k.logged_at_kill - k.outbox_at_kill,
            k.in_flight_at_kill, l.done - k.done_at_kill, pending, took, restart_ms);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 2. PostgreSQL cut off                                                                */
/* ================================================================================== */

Test(faults, postgres_down_refuses_writes_serves_the_board_and_recovers_without_restart)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    struct proxy *px = proxy_start(pg_store_port());
    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    pid_t pid = rig_service(pg_conninfo(rig.db_name, proxy_port(px)), 0, args, NULL, &b);

    char *org = org_at(b);
    char *evt = event_at(b, org);
    char *spk = it_id("spk");
    char *ses = session_at(b, evt, spk);
    char *pre = it_id("pre");
    expect_batch(http_post_json_at(b, "/v1/analytics/events", batch_body(pre, ses, 3)), 3, 0);
    char *reg_body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                         "\"ticket_type\":\"standard\",\"price_paid\":1}",
                         ses, it_id("user"), org);
    EXPECT_JSON(http_post_json_at(b, "/v1/registrations", reg_body), 201);
    cr_assert_eq(own_score(evt, spk), 3);

    proxy_cut(px);

    struct http_resp *r = http_get_at(b, "/readyz");
    EXPECT_STATUS(r, 503);
    EXPECT_STR(resp_json(r), "postgres", "down");
    EXPECT_STR(resp_json(r), "redis", "ok");
    cr_assert(r->retry_after, "GET /readyz: 503 without Retry-After");
    char *late_reg = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                         "\"ticket_type\":\"standard\",\"price_paid\":1}",
                         ses, it_id("user"), org);
    char *single_id = it_id("cut");
    char *single = view_body(single_id, ses);
    char *batch_prefix = it_id("cutb");
    char *batch = batch_body(batch_prefix, ses, 3);
    for (int i = 0; i < 3; i++) { /* every worker thread's connection, not just one */
        expect_unavailable(http_post_json_at(b, "/v1/registrations", late_reg));
        expect_unavailable(http_post_json_at(b, "/v1/analytics/events", single));
        expect_unavailable(http_post_json_at(b, "/v1/analytics/events", batch));
    }

    /* Reads of the board are Redis only. */
    char *lb = fmt("/v1/events/%s/leaderboard", evt);
    r = http_get_at(b, lb);
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "leaderboard.0.speaker_id", spk);
    EXPECT_INT(resp_json(r), "leaderboard.0.score", 3);
    r = http_get_at(b, fmt("/v1/events/%s/leaderboard/speakers/%s", evt, spk));
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "score", 3);

    /* Nothing PostgreSQL refused reached Redis, not even later (two worker passes). */
    it_pause_ms(500);
    cr_assert_eq(own_score(evt, spk), 3, "the board moved while PostgreSQL refused every write");
    cr_assert_eq(own_applied(evt), 3, "the applied set grew while PostgreSQL refused every write");

    proxy_restore(px);

    /* The same service recovers by itself: poll with the refused view for at most 10 s. */
    long long t0 = it_now_ms();
    long status = 0;
    for (int i = 0; i < 200 && status != 201; i++) {
        if (i)
            it_pause_ms(50);
        r = http_post_json_at(b, "/v1/analytics/events", single);
        status = r->status;
        if (status != 201)
            expect_unavailable(r);
    }
    cr_assert_eq(status, 201, "the service did not take writes again within 10 s of PostgreSQL coming back");
    long long recovered = it_now_ms() - t0;
    /* 201 and "accepted": PostgreSQL had stored none of the refused posts. */
    expect_batch(http_post_json_at(b, "/v1/analytics/events", batch), 3, 0);
    EXPECT_JSON(http_post_json_at(b, "/v1/registrations", late_reg), 201);
    r = http_get_at(b, "/readyz");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "postgres", "ok");

    cr_assert_eq(logged_views(evt), 7);
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 2);
    cr_assert_eq(own_score(evt, spk), 7, "score %lld after 3 + 4 committed views", own_score(evt, spk));
    cr_assert_eq(own_applied(evt), 7);
    cr_assert(await_convergence(evt, 3000) >= 0, "the outbox of %s did not drain", evt);
    fprintf(stderr, "faults: PostgreSQL cut: writes accepted again %lld ms after it came back\n", recovered);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 3. SIGTERM during load                                                               */
/* ================================================================================== */

enum { TERM_LOADERS = 4, TERM_MIN_SENT = 40, TERM_GRACE_S = 1, TERM_DRAIN_S = 5, SLOW_VIEWS = 200, SLOW_PIECES = 20 };

struct loader {
    pthread_t thread;
    int index;
    const char *base, *session, *evt, *prefix;
    atomic_bool *stop;
    size_t sent, created, read_ok, failed;
    char first_failure[400];
};

/* Returns once the loaders (still running) have sent TERM_MIN_SENT
 * requests: the load runs before the signal, counted rather than assumed
 * after a fixed pause (500 ms gave 12 requests, not 40, at load average 25). */
static void wait_for_load(struct loader *ld)
{
    size_t n = 0;
    it_pause_ms(500);   /* at least as long as the fixed pause this replaces */
    for (long long t0 = it_now_ms(); n < TERM_MIN_SENT && it_now_ms() - t0 < 20000; it_pause_ms(20)) {
        n = 0;
        for (int i = 0; i < TERM_LOADERS; i++)
            n += __atomic_load_n(&ld[i].sent, __ATOMIC_RELAXED);
    }
    cr_assert(n >= TERM_MIN_SENT, "only %zu requests were sent in 20 s: the load did not run", n);
}

struct grow {
    char *p;
    size_t len;
};

static size_t grow_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct grow *g = ud;
    size_t n = size * nmemb;
    char *p = realloc(g->p, g->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + g->len, data, n);
    g->p = p;
    g->len += n;
    g->p[g->len] = '\0';
    return n;
}

/* A client that keeps sending (a view, a board read, ...) until told to stop,
 * as a load balancer would until the instance turns unready. No Criterion
 * assertion off the test's thread: it records, the test asserts. */
static void *loader_main(void *arg)
{
    struct loader *ld = arg;
    CURL *h = curl_easy_init();
    char *auth = fmt("Authorization: Bearer %s", it_admin_key());
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, auth);
    char *post_url = fmt("%s/v1/analytics/events", ld->base);
    char *read_url = fmt("%s/v1/events/%s/leaderboard", ld->base, ld->evt);
    for (size_t i = 0; !atomic_load(ld->stop); i++) {
        struct grow g = {0};
        char error[CURL_ERROR_SIZE] = "";
        char *body = NULL;
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
        bool post = i % 3 != 2;
        if (post) {
            char *id = fmt("%s_%d_%zu", ld->prefix, ld->index, i);
            body = view_body(id, ld->session);
            free(id);
            curl_easy_setopt(h, CURLOPT_URL, post_url);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        } else {
            curl_easy_setopt(h, CURLOPT_URL, read_url);
        }
        __atomic_add_fetch(&ld->sent, 1, __ATOMIC_RELAXED);  /* the test waits on it */
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && status == (post ? 201 : 200)) {
            if (post)
                ld->created++;
            else
                ld->read_ok++;
        } else if (ld->failed++ == 0) {
            snprintf(ld->first_failure, sizeof ld->first_failure, "%s %s: %s%ld %.200s", post ? "POST" : "GET",
                     post ? post_url : read_url, rc == CURLE_OK ? "status " : error[0] ? error : curl_easy_strerror(rc),
                     rc == CURLE_OK ? status : 0L, g.p ? g.p : "");
        }
        free(g.p);
        free(body);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(post_url);
    free(read_url);
    free(auth);
    return NULL;
}

/* A slow request: a batch whose body trickles in over ~2 s, so it is still
 * in flight when the grace period ends and the listener closes. */
struct slow {
    pthread_t thread;
    const char *base;
    char *body;
    size_t len, off;
    long long sent_first_ms, done_ms;
    CURLcode rc;
    long status;
    char error[CURL_ERROR_SIZE];
    struct grow reply;
};

static size_t slow_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct slow *s = ud;
    size_t piece = s->len / SLOW_PIECES + 1, n = size * nmemb;
    if (s->off == 0)
        __atomic_store_n(&s->sent_first_ms, it_now_ms(), __ATOMIC_RELEASE);
    else if (s->off < s->len)
        it_pause_ms(100);
    if (n > piece)
        n = piece;
    if (n > s->len - s->off)
        n = s->len - s->off;
    memcpy(dst, s->body + s->off, n);
    s->off += n;
    return n;
}

static void *slow_main(void *arg)
{
    struct slow *s = arg;
    CURL *h = curl_easy_init();
    char *auth = fmt("Authorization: Bearer %s", it_admin_key());
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, auth);
    char *url = fmt("%s/v1/analytics/events", s->base);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, slow_read);
    curl_easy_setopt(h, CURLOPT_READDATA, s);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s->reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->error);
    s->rc = curl_easy_perform(h);
    s->done_ms = it_now_ms();
    if (s->rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(url);
    free(auth);
    return NULL;
}

Test(faults, sigterm_under_load_answers_every_request_and_exits_0)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    char grace[8], drain[8];
    snprintf(grace, sizeof grace, "%d", TERM_GRACE_S);
    snprintf(drain, sizeof drain, "%d", TERM_DRAIN_S);
    const char *args[] = {"--threads", "4", "--shutdown-grace-seconds", grace, "--shutdown-drain-seconds", drain,
                          NULL};
    char *b = NULL;
    pid_t pid = rig_service(NULL, 0, args, NULL, &b);
    char *org = org_at(b);
    char *evt = event_at(b, org);
    char *ses = session_at(b, evt, it_id("spk"));
    http_close(); /* the set-up's keep-alive connection is not part of the load */

    atomic_bool stop = false;
    char *prefix = it_id("term");
    struct loader ld[TERM_LOADERS];
    for (int i = 0; i < TERM_LOADERS; i++) {
        ld[i] = (struct loader){.index = i, .base = b, .session = ses, .evt = evt, .prefix = prefix, .stop = &stop};
        cr_assert(pthread_create(&ld[i].thread, NULL, loader_main, &ld[i]) == 0);
    }
    wait_for_load(ld);

    struct slow slow = {.base = b, .body = batch_body(it_id("slow"), ses, SLOW_VIEWS)};
    slow.len = strlen(slow.body);
    cr_assert(pthread_create(&slow.thread, NULL, slow_main, &slow) == 0);
    long long t = it_now_ms();
    while (__atomic_load_n(&slow.sent_first_ms, __ATOMIC_ACQUIRE) == 0 && it_now_ms() - t < 3000)
        it_pause_ms(5);
    cr_assert(__atomic_load_n(&slow.sent_first_ms, __ATOMIC_ACQUIRE) > 0, "the slow batch did not start within 3 s");
    it_pause_ms(200); /* its head is surely in: the request is in flight */

    long long term_at = it_now_ms();
    cr_assert(kill(pid, SIGTERM) == 0);

    /* The load balancer: poll readiness, stop routing at the first 503. */
    long long unready_at = -1;
    size_t polls = 0, poll_failures = 0;
    char poll_failure[300] = "";
    while (it_now_ms() - term_at < 1000 * TERM_GRACE_S) {
        struct http_resp *r = http_get_at(b, "/readyz");
        polls++;
        if (r->status == 0 && poll_failures++ == 0)
            snprintf(poll_failure, sizeof poll_failure, "%s", r->error);
        if (r->status == 503) {
            EXPECT_STR(resp_json(r), "status", "draining");
            unready_at = it_now_ms();
            http_resp_free(r);
            /* The leaderboard's readiness drains with it, whatever Redis says. */
            r = http_get_at(b, "/readyz/read");
            EXPECT_STATUS(r, 503);
            EXPECT_STR(resp_json(r), "status", "draining");
            http_resp_free(r);
            break;
        }
        http_resp_free(r);
        it_pause_ms(10);
    }
    atomic_store(&stop, true);
    http_close();
    for (int i = 0; i < TERM_LOADERS; i++)
        pthread_join(ld[i].thread, NULL);
    long long load_stopped_at = it_now_ms();
    pthread_join(slow.thread, NULL);

    int st = 0;
    bool exited = rig_wait_exit(pid, 1000LL * (TERM_GRACE_S + TERM_DRAIN_S) + 2000, &st);
    long long exit_ms = it_now_ms() - term_at;
    if (exited)
        rig_forget_service(pid);
    cr_assert(exited, "the service had not exited %d s after SIGTERM (grace %d s + drain %d s + 2 s); see %s",
              TERM_GRACE_S + TERM_DRAIN_S + 2, TERM_GRACE_S, TERM_DRAIN_S, rig.service_log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "on SIGTERM the service ended with status 0x%x, expected exit 0",
              st);

    cr_assert(unready_at >= 0, "/readyz did not answer 503 within the %d s grace period after SIGTERM", TERM_GRACE_S);
    cr_assert_eq(poll_failures, 0, "%zu of %zu /readyz polls got no response: %s", poll_failures, polls,
                 poll_failure);
    size_t sent = 0, created = 0, failed = 0;
    for (int i = 0; i < TERM_LOADERS; i++) {
        sent += ld[i].sent;
        created += ld[i].created;
        failed += ld[i].failed;
        cr_assert(ld[i].failed == 0, "loader %d: %zu of %zu requests got no complete 2xx response; the first: %s", i,
                  ld[i].failed, ld[i].sent, ld[i].first_failure);
    }
    cr_assert(sent >= TERM_MIN_SENT, "only %zu requests were sent: the load did not run", sent);

    /* The slow batch was in flight when the listener closed, and completed. */
    cr_assert(slow.rc == CURLE_OK, "the slow batch in flight at shutdown got no response: %s",
              slow.error[0] ? slow.error : curl_easy_strerror(slow.rc));
    cr_assert_eq(slow.status, 200, "the slow batch got status %ld: %.300s", slow.status,
                 slow.reply.p ? slow.reply.p : "");
    cJSON *j = cJSON_Parse(slow.reply.p ? slow.reply.p : "");
    cr_assert(jint_or(j, "accepted", -1) == SLOW_VIEWS, "the slow batch: expected accepted=%d, got %.300s",
              SLOW_VIEWS, slow.reply.p);
    cJSON_Delete(j);
    cr_assert(slow.sent_first_ms < term_at && slow.done_ms > term_at + 1000 * TERM_GRACE_S,
              "the slow batch was not in flight across the end of the grace period (started %lld ms before SIGTERM,"
              " done %lld ms after): the test did not test the drain",
              term_at - slow.sent_first_ms, slow.done_ms - term_at);

    /* Every 201 is a logged view, and nothing else is. */
    cr_assert_eq(logged_views(evt), (long long)(created + SLOW_VIEWS),
                 "PostgreSQL logged %lld views; %zu posts answered 201 and the slow batch accepted %d",
                 logged_views(evt), created, SLOW_VIEWS);
    fprintf(stderr,
            "faults: SIGTERM under load: %zu requests from %d clients, 0 failed; unready %lld ms after SIGTERM,"
            " load stopped at %lld ms, slow batch done at %lld ms, exit 0 at %lld ms (grace %d s, drain %d s)\n",
            sent, TERM_LOADERS, unready_at - term_at, load_stopped_at - term_at, slow.done_ms - term_at, exit_ms,
            TERM_GRACE_S, TERM_DRAIN_S);
}

/* ================================================================================== */
/* 4. The process dies between the PostgreSQL commit and the Redis update               */
/* ================================================================================== */

Test(faults, process_dies_between_commit_and_redis_and_the_board_converges)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    /* The faulty service's worker makes one pass at start, then sleeps a
     * minute: the dying request's outbox row is left to the next service. */
    const char *faulty_args[] = {"--threads", "2", "--leaderboard-sync-ms", "60000", NULL};
    char *fb = NULL;
    pid_t faulty = rig_service(NULL, 0, faulty_args, "EVENTTRACK_FAULT=ingest-after-commit", &fb);
    char *org = org_at(fb); /* only analytics ingest has the fault point */
    char *evt = event_at(fb, org);
    char *spk = it_id("spk");
    char *ses = session_at(fb, evt, spk);
    char *vid = it_id("view");
    char *view = view_body(vid, ses);

    struct http_resp *r = http_post_json_at(fb, "/v1/analytics/events", view);
    if (r->status != 0) {
        http_close();
        rig_stop_service(faulty);
        cr_assert_fail("the service answered %ld instead of dying at the fault point ingest-after-commit:"
                       " this build has no fault points. Build with -DET_FAULT_INJECTION=ON"
                       " (cmake -S . -B build -DET_FAULT_INJECTION=ON) to run this test",
                       r->status);
    }
    int st = 0;
    bool died = rig_wait_exit(faulty, 5000, &st);
    if (died)
        rig_forget_service(faulty);
    cr_assert(died, "the connection failed (%s) but the service is still running", r->error);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 137, "the faulty service ended with status 0x%x, expected exit 137",
              st);
    http_close();

    /* Committed, queued, and not counted. */
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 AND leaderboard_event_id = $2"
                           " AND leaderboard_speaker_id = $3",
                           PG_PARAMS(vid, evt, spk)),
                 1, "the view is not in PostgreSQL: the process died before the commit");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
                           " WHERE e.event_id = $1",
                           PG_PARAMS(vid)),
                 1, "the committed view has no leaderboard_outbox row");
    cr_assert_eq(own_score(evt, spk), -1, "the view is on the board, though the process died before Redis");

    /* A healthy service (same stores) converges by itself. */
    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    long long t0 = it_now_ms();
    pid_t pid = rig_service(NULL, 0, args, NULL, &b);
    long long took = await_convergence(evt, 5 * 200 + 2000);
    cr_assert(took >= 0, "the board did not show the view within %d ms of a healthy service starting"
                         " (score %lld, outbox rows %lld); see %s",
              5 * 200 + 2000, own_score(evt, spk), outbox_rows(evt), rig.service_log);
    took = it_now_ms() - t0;
    cr_assert_eq(own_score(evt, spk), 1);
    cr_assert_eq(outbox_rows(evt), 0);

    /* The client's retry is a duplicate, and counts nothing. */
    r = http_post_json_at(b, "/v1/analytics/events", view);
    EXPECT_JSON(r, 200);
    bool dup = false;
    cr_assert(jbool(resp_json(r), "duplicate", &dup) && dup, "the retry was not reported as a duplicate: %s",
              r->body);
    it_pause_ms(2 * 200 + 100); /* two worker passes */
    cr_assert_eq(own_score(evt, spk), 1, "the retry changed the score");
    cr_assert_eq(logged_views(evt), 1);
    expect_served_board(b, evt);
    fprintf(stderr, "faults: died after commit: the view was on the board %lld ms after a healthy service was"
                    " started\n", took);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 5. Staleness bound after Redis was cut off                                           */
/* ================================================================================== */

enum { STALE_SYNC_MS = 200, STALE_VIEWS = 40 };

Test(faults, redis_cut_then_restored_catches_up_within_the_staleness_bound)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    struct proxy *px = proxy_start(rig.redis_port);
    char sync[16];
    snprintf(sync, sizeof sync, "%d", STALE_SYNC_MS);
    const char *args[] = {"--threads", "4", "--leaderboard-sync-ms", sync, NULL};
    char *b = NULL;
    pid_t pid = rig_service(NULL, proxy_port(px), args, NULL, &b);
    char *org = org_at(b);
    char *evt = event_at(b, org);
    char *spk[2] = {it_id("spk"), it_id("spk")};
    char *ses[2] = {session_at(b, evt, spk[0]), session_at(b, evt, spk[1])};
    expect_batch(http_post_json_at(b, "/v1/analytics/events", batch_body(it_id("base"), ses[0], 2)), 2, 0);
    cr_assert(await_convergence(evt, 3000) >= 0, "the board did not settle before the cut");

    proxy_cut(px);
    char *prefix = it_id("stale");
    for (int i = 0; i < STALE_VIEWS; i++) {
        struct http_resp *r =
            http_post_json_at(b, "/v1/analytics/events", view_body(fmt("%s_%d", prefix, i), ses[i % 4 == 3]));
        EXPECT_JSON(r, 201);
        http_resp_free(r);
    }
    struct http_resp *r = http_get_at(b, fmt("/v1/events/%s/leaderboard", evt));
    expect_unavailable(r);
    cr_assert_eq(outbox_rows(evt), STALE_VIEWS, "%lld outbox rows while Redis was away, %d views were logged",
                 outbox_rows(evt), STALE_VIEWS);
    cr_assert_eq(own_score(evt, spk[0]), 2, "the board moved while Redis was cut off");

    proxy_restore(px);
    long long restored = it_now_ms();
    /* The board is read straight from Redis, every 5 ms. */
    long long caught_up = -1;
    while (it_now_ms() - restored < 10000) {
        if (own_score(evt, spk[0]) == 2 + STALE_VIEWS * 3 / 4 && own_score(evt, spk[1]) == STALE_VIEWS / 4) {
            caught_up = it_now_ms() - restored;
            break;
        }
        it_pause_ms(5);
    }
    long long bound = 2 * STALE_SYNC_MS + 1000;
    fprintf(stderr, "faults: staleness: %d views logged while Redis was cut off were on the board %lld ms after it"
                    " came back (bound %lld ms = 2 x leaderboard_sync_ms %d + 1 s)\n",
            STALE_VIEWS, caught_up, bound, STALE_SYNC_MS);
    cr_assert(caught_up >= 0, "10 s after Redis came back the board still lacks views (scores %lld and %lld, want %d"
                              " and %d; outbox rows %lld); see %s",
              own_score(evt, spk[0]), own_score(evt, spk[1]), 2 + STALE_VIEWS * 3 / 4, STALE_VIEWS / 4,
              outbox_rows(evt), rig.service_log);
    cr_assert(caught_up <= bound, "the board caught up %lld ms after Redis came back, over the bound of %lld ms"
                                  " (2 x leaderboard_sync_ms %d + 1 s)",
              caught_up, bound, STALE_SYNC_MS);
    cr_assert(await_convergence(evt, 3000) >= 0, "the outbox of %s did not drain after the catch-up", evt);
    cr_assert_eq(own_applied(evt), 2 + STALE_VIEWS);
    expect_served_board(b, evt);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 6. FLUSHALL while serving                                                            */
/* ================================================================================== */

Test(faults, redis_flushall_is_detected_and_the_board_rebuilt)
{
    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    pid_t pid = rig_up(args, &b);
    char *org = org_at(b);
    char *evt = event_at(b, org);
    char *spk[3], *ses[3];
    for (int i = 0; i < 3; i++) {
        spk[i] = it_id("spk");
        ses[i] = session_at(b, evt, spk[i]);
    }
    char *batches[3];
    for (int i = 0; i < 3; i++) {
        batches[i] = batch_body(it_id("fl"), ses[i], (size_t)(12 - 3 * i));
        expect_batch(http_post_json_at(b, "/v1/analytics/events", batches[i]), 12 - 3 * i, 0);
    }
    for (int i = 0; i < 5; i++)
        EXPECT_JSON(http_post_json_at(b, "/v1/analytics/events", view_body(it_id("fls"), ses[2])), 201);
    cr_assert(await_convergence(evt, 3000) >= 0, "the board did not settle before FLUSHALL");
    cr_assert_eq(own_score(evt, spk[0]), 12);
    cr_assert_eq(own_score(evt, spk[2]), 6 + 5);

    /* Only that the flush happened is asserted here: with a 200 ms worker the
     * rebuild may already be under way by the time we could look. */
    redisReply *flushed = rig_redis("FLUSHALL");
    cr_assert(flushed && flushed->type == REDIS_REPLY_STATUS && strcmp(flushed->str, "OK") == 0,
              "FLUSHALL was not acknowledged");
    freeReplyObject(flushed);
    long long t0 = it_now_ms();
    long long took = await_convergence(evt, 5000);
    char *desc = NULL;
    int diffs = board_diff(evt, &desc);
    cr_assert(took >= 0, "5 s after FLUSHALL the board still differs from PostgreSQL for %d speaker(s):%s see %s",
              diffs, desc, rig.service_log);
    took = it_now_ms() - t0;
    cr_assert_eq(own_score(evt, spk[0]), 12);
    cr_assert_eq(own_score(evt, spk[1]), 9);
    cr_assert_eq(own_score(evt, spk[2]), 11);
    cr_assert_eq(own_applied(evt), 32, "the rebuilt applied set holds %lld ids, 32 views were logged",
                 own_applied(evt));
    /* The epoch restarts once every board of the database is rebuilt, and
     * this event's board may be among the first: wait for the pass to end. */
    for (long long waited = 0; own_epoch() <= 0 && waited < 5000; waited += 10)
        it_pause_ms(10);
    cr_assert(own_epoch() > 0, "no epoch marker 5 s after the rebuild");

    /* Retries after the rebuild are duplicates, and count nothing. */
    expect_batch(http_post_json_at(b, "/v1/analytics/events", batches[0]), 0, 12);
    it_pause_ms(2 * 200 + 100);
    cr_assert_eq(own_score(evt, spk[0]), 12);
    expect_served_board(b, evt);
    fprintf(stderr, "faults: FLUSHALL: board rebuilt exactly %lld ms after the flush (leaderboard_sync_ms 200)\n",
            took);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 7. A loss followed at once by traffic is still a loss                                */
/* ================================================================================== */

enum { BURST_SYNC_MS = 1000 };

struct burst {
    char *prefix, *session;
    size_t count, made;
};

static char *burst_next(struct load *l)
{
    struct burst *bu = l->ctx;
    if (bu->made == bu->count)
        return NULL;
    char *id = fmt("%s_%zu", bu->prefix, bu->made++);
    char *body = view_body(id, bu->session);
    free(id);
    return body;
}

/* Redis loses everything (FLUSHALL, or a restart without persistence) and
 * the service keeps taking views, as a live one does. Each write INCRs the
 * epoch from zero again; the worker must still see that Redis lost the
 * boards, however many writes came in before its next pass. */
Test(faults, redis_loss_followed_at_once_by_traffic_is_still_detected)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    char sync[16];
    snprintf(sync, sizeof sync, "%d", BURST_SYNC_MS);
    const char *args[] = {"--threads", "8", "--leaderboard-sync-ms", sync, NULL};
    char *b = NULL;
    pid_t pid = rig_service(NULL, 0, args, NULL, &b);
    char *org = org_at(b);
    char *evt = event_at(b, org);
    char *spk[2] = {it_id("spk"), it_id("spk")};
    char *ses[2] = {session_at(b, evt, spk[0]), session_at(b, evt, spk[1])};
    for (int i = 0; i < 4; i++)
        expect_batch(http_post_json_at(b, "/v1/analytics/events", batch_body(it_id("lb"), ses[0], 10)), 10, 0);
    cr_assert(await_convergence(evt, 5000) >= 0, "the board did not settle before the loss");

    /* Start right after a worker pass (the outbox row of one view drained),
     * so the burst below lands well before the next one. */
    EXPECT_JSON(http_post_json_at(b, "/v1/analytics/events", view_body(it_id("mark"), ses[0])), 201);
    long long t = it_now_ms();
    while (outbox_rows(evt) > 0 && it_now_ms() - t < 3 * BURST_SYNC_MS)
        it_pause_ms(2);
    cr_assert_eq(outbox_rows(evt), 0, "the worker did not drain the outbox");
    long long epoch_before = own_epoch();

    freeReplyObject(rig_redis("FLUSHALL"));
    long long flushed = it_now_ms();
    /* Enough traffic to climb a recreated counter past any small old value;
     * the service must notice the loss whatever the epoch's size. */
    struct burst bu = {.prefix = it_id("burst"), .session = ses[1], .count = 60};
    struct load l = {.base = b, .width = 16, .next = burst_next, .ctx = &bu};
    load_run(&l);
    long long burst_ms = it_now_ms() - flushed;
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(l.shots[i]->status, 201, "burst post %zu: status %ld %s", i, l.shots[i]->status,
                     l.shots[i]->reply);
    long long epoch_after_burst = own_epoch();

    long long took = await_convergence(evt, 2 * BURST_SYNC_MS + 3000);
    char *desc = NULL;
    int diffs = board_diff(evt, &desc);
    fprintf(stderr, "faults: loss + burst: epoch %lld before FLUSHALL, %lld after %zu views in %lld ms; board %s\n",
            epoch_before, epoch_after_burst, bu.count, burst_ms,
            took >= 0 ? fmt("exact %lld ms after the flush", it_now_ms() - flushed) : "never rebuilt");
    const char *why = epoch_before > 0 && epoch_after_burst >= epoch_before
                          ? " The views ingested right after the flush INCRed the epoch from 0 back to (or past) the"
                            " value the worker had seen, so its check (epoch missing or lower) found nothing amiss and"
                            " it never rebuilt: the views counted before the flush are gone from the board for good."
                          : "";
    cr_assert(took >= 0,
              "%lld ms after FLUSHALL the board still differs from PostgreSQL for %d speaker(s):%s Epoch %lld before"
              " the flush, %lld after %zu views were ingested right after it.%s See %s",
              2 * BURST_SYNC_MS + 3000LL, diffs, desc, epoch_before, epoch_after_burst, bu.count, why,
              rig.service_log);
    cr_assert_eq(own_score(evt, spk[0]), 41);
    cr_assert_eq(own_score(evt, spk[1]), (long long)bu.count);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 8. A view committed behind later ones                                                */
/* ================================================================================== */

/* The worker's pass resumes each outbox batch after the previous one's last
 * seq (store/leaderboard_sync.c), and starts every pass at 0 again: a view
 * whose seq was drawn before 2,500 others but which commits after they were
 * applied must still reach the board. Its transaction is held by the test, so
 * its outbox row is invisible while the worker passes over its seq. */
Test(faults, a_view_committed_behind_later_ones_reaches_the_board)
{
    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    pid_t pid = rig_up(args, &b);
    char *org = org_at(b), *evt = event_at(b, org);
    char *spk = it_id("spk"), *late_spk = it_id("spk_late");
    char *ses = session_at(b, evt, spk), *late_ses = session_at(b, evt, late_spk);

    PGconn *held = PQconnectdb(rig.db_url);
    cr_assert(PQstatus(held) == CONNECTION_OK, "%s", PQerrorMessage(held));
    const char *late[] = {it_id("late"), org, fmt("{\"session_id\":\"%s\"}", late_ses), evt, late_spk};
    PGresult *res = PQexec(held, "BEGIN");
    PQclear(res);
    res = PQexecParams(held,
                       "WITH ins AS (INSERT INTO analytics_events (event_id, event_type, user_id, organization_id,"
                       " occurred_at, payload, leaderboard_event_id, leaderboard_speaker_id)"
                       " VALUES ($1, 'session_view', 'att_late', $2, now(), $3::jsonb, $4, $5) RETURNING seq)"
                       " INSERT INTO leaderboard_outbox (seq) SELECT seq FROM ins RETURNING seq",
                       5, NULL, late, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s", PQresultErrorMessage(res));
    long long late_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);

    static const size_t ahead[] = {1000, 1000, 500};
    for (size_t i = 0; i < sizeof ahead / sizeof ahead[0]; i++)
        expect_batch(http_post_json_at(b, "/v1/analytics/events", batch_body(it_id("ahead"), ses, ahead[i])),
                     (long long)ahead[i], 0);
    cr_assert(await_convergence(evt, 5000) >= 0, "the 2,500 views ahead were not applied (see %s)", rig.service_log);
    cr_assert_gt(rig_db_ll("SELECT min(seq) FROM analytics_events WHERE leaderboard_speaker_id = $1", PG_PARAMS(spk)),
                 late_seq, "the held view's seq is not below the others: nothing is tested");
    cr_assert_eq(own_score(evt, late_spk), -1, "an uncommitted view is on the board");

    res = PQexec(held, "COMMIT");
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(held);
    long long took = await_convergence(evt, 5000);
    cr_assert(took >= 0, "the view committed behind 2,500 later ones never reached the board (see %s)",
              rig.service_log);
    cr_assert_eq(own_score(evt, late_spk), 1);
    cr_assert_eq(own_score(evt, spk), 2500);
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 9. A backlog longer than one deadline                                                */
/* ================================================================================== */

#define BACKLOG_VIEWS 20000          /* 20 outbox batches: one whole pass */
#define BACKLOG_VIEWS_SQL "20000"
#define BACKLOG_DEADLINE_MS "1000"

/* A pass drains up to 20 batches; each is a transaction with a request's
 * deadline of its own. Were the deadline the pass's, a backlog whose pass
 * outlasts it would have its connection dropped in the middle of a healthy
 * batch, again at every pass (store/leaderboard_sync.c). The backlog is
 * written straight into PostgreSQL while no service runs, as a burst a
 * replica's Redis did not take leaves it. The deadline is a second: one
 * batch takes 50-130 ms on the reference machine (more under ASan and a
 * loaded CI), a whole pass 1-2.6 s, so the pass outlasts it and a batch
 * does not. */
Test(faults, a_backlog_longer_than_one_deadline_drains_without_dropping_the_connection)
{
    const char *setup_args[] = {"--threads", "2", NULL};
    char *b = NULL;
    pid_t pid = rig_up(setup_args, &b);
    char *org = org_at(b), *evt = event_at(b, org), *spk = it_id("spk");
    char *ses = session_at(b, evt, spk);
    rig_expect_clean_stop(pid);

    cr_assert_eq(rig_db_ll("WITH ins AS (INSERT INTO analytics_events (event_id, event_type, user_id, organization_id,"
                           " occurred_at, payload, leaderboard_event_id, leaderboard_speaker_id)"
                           " SELECT 'backlog_' || i, 'session_view', 'att_' || i, $1, now(),"
                           " jsonb_build_object('session_id', $2::text), $3, $4"
                           " FROM generate_series(1, " BACKLOG_VIEWS_SQL ") i RETURNING seq),"
                           " outbox AS (INSERT INTO leaderboard_outbox (seq) SELECT seq FROM ins RETURNING 1)"
                           " SELECT count(*) FROM outbox", PG_PARAMS(org, ses, evt, spk)),
                 BACKLOG_VIEWS);

    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", "--request-deadline-ms",
                          BACKLOG_DEADLINE_MS, NULL};
    long long t0 = it_now_ms();
    pid = rig_service(NULL, 0, args, NULL, &b);
    long long took = await_convergence(evt, 60000);
    cr_assert(took >= 0, "the backlog of %d views did not drain within 60 s (see %s)", BACKLOG_VIEWS,
              rig.service_log);
    struct http_resp *m = http_get_at(b, "/metrics");
    cr_assert(strstr(m->body, "eventtrack_store_errors_total{store=\"postgres\"} 0") != NULL,
              "the worker lost PostgreSQL connections while draining a healthy backlog (deadline "
              BACKLOG_DEADLINE_MS " ms per batch; see %s)", rig.service_log);
    fprintf(stderr, "faults: a backlog of %d views drained in %lld ms with a %s ms deadline per batch\n",
            BACKLOG_VIEWS, it_now_ms() - t0, BACKLOG_DEADLINE_MS);
    cr_assert_eq(own_score(evt, spk), BACKLOG_VIEWS);
    rig_expect_clean_stop(pid);
}
