/* test_admission.c: what refusals cost, and the limits that hold when Redis
 * refuses writes (issue 11, points 8 and 12; docs/adr/0011).
 *
 *   1. An unknown bearer key repeated 400 times costs PostgreSQL a bounded
 *      number of transactions (the negative cache), while 20 distinct unknown
 *      keys cost at least 20 (the control: the measure sees lookups).
 *   2. A client address with more than --auth-failure-limit failed
 *      authentications gets 429 too-many-failed-authentications, and those
 *      refusals cost PostgreSQL nothing; the admin key still passes; after
 *      Retry-After the address is looked up again.
 *   3. With Redis full (maxmemory reached under noeviction: every write gets
 *      OOM), the per-organization rate limit still limits (exactly the limit
 *      per window) and the ingest quota still refuses the excess, storing
 *      none of a refused request.
 *
 * How PostgreSQL's work is measured: pg_stat_database.xact_commit of a
 * scratch database that only the service under test uses. A backend
 * publishes its counts when it exits, so each measure stops the service and
 * waits for its backends to be gone and the count to settle (bounded loops).
 *
 * Isolation, as in test_faults.c: a scratch database (dropped by .fini; one
 * left by a killed run is dropped by a later run after an hour) and a
 * redis-server of its own (no persistence; ET_IT_REDIS_SERVER names the
 * binary), so that the leaderboard worker of a test service never drains
 * the shared database's outbox into a Redis no one reads.
 *
 * Figures are printed to stderr on lines starting with "admission:".
 */
#define _GNU_SOURCE 1 /* mkdtemp, close_range */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>
#include <libpq-fe.h>

static const char *LOG = ET_IT_LOG_DIR "/integration-service-admission.log";
static const char *REDIS_LOG = ET_IT_LOG_DIR "/integration-redis-admission.log";

static struct {
    PGconn *admin;          /* the shared test database: CREATE / DROP DATABASE, statistics */
    char *db_name;          /* scratch database, NULL when none */
    char *db_url;
    int redis_port;
    pid_t redis_pid;
    char redis_dir[64];
    redisContext *rc;
    pid_t service;
} rig;

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the scratch database ----------------------------------------------------------- */

static PGconn *admin_db(void)
{
    if (rig.admin && PQstatus(rig.admin) == CONNECTION_OK)
        return rig.admin;
    if (rig.admin)
        PQfinish(rig.admin);
    const char *url = getenv("EVENTTRACK_DATABASE_URL");
    rig.admin = PQconnectdb(url && *url ? url : IT_DEFAULT_DATABASE_URL);
    cr_assert(PQstatus(rig.admin) == CONNECTION_OK, "cannot connect to the test database: %s",
              PQerrorMessage(rig.admin));
    return rig.admin;
}

/* One value of a query on the shared test database; NULL for SQL NULL. */
static char *admin_value(const char *sql, const char *const *params)
{
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *res = PQexecParams(admin_db(), sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "SQL failed: %s\n  %s", sql,
              PQresultErrorMessage(res));
    char *v = st == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
                  ? it_strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return v;
}

/* The test database's conninfo with another database name. */
static char *conninfo(const char *dbname)
{
    const char *url = getenv("EVENTTRACK_DATABASE_URL");
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(url && *url ? url : IT_DEFAULT_DATABASE_URL, &err);
    cr_assert(o, "cannot parse EVENTTRACK_DATABASE_URL: %s", err ? err : "");
    char *s = it_strdup("");
    for (PQconninfoOption *x = o; x->keyword; x++) {
        if (!x->val || !*x->val || !strcmp(x->keyword, "dbname"))
            continue;
        cr_assert(!strpbrk(x->val, "'\\ "), "unexpected character in the setting %s", x->keyword);
        char *next = fmt("%s %s='%s'", s, x->keyword, x->val);
        free(s);
        s = next;
    }
    PQconninfoFree(o);
    char *full = fmt("%s dbname='%s'", s, dbname);
    free(s);
    return full;
}

static void scratch_db_create(void)
{
    PGresult *res = PQexec(admin_db(),
                           "SELECT datname FROM pg_database WHERE datname LIKE 'et\\_admission\\_%'"
                           " AND coalesce(shobj_description(oid, 'pg_database'), '') ~ '^[0-9]{1,15}$'"
                           " AND shobj_description(oid, 'pg_database')::bigint"
                           "     < extract(epoch FROM now())::bigint - 3600");
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
        free(admin_value(fmt("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", PQgetvalue(res, i, 0)), NULL));
    PQclear(res);
    rig.db_name = it_id("et_admission");
    free(admin_value(fmt("CREATE DATABASE \"%s\"", rig.db_name), NULL));
    free(admin_value(fmt("COMMENT ON DATABASE \"%s\" IS '%lld'", rig.db_name, (long long)time(NULL)), NULL));
    rig.db_url = conninfo(rig.db_name);
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url);
    const char *argv[] = {ET_BINARY_PATH, "migrate", NULL};
    const char *env[] = {env_db, NULL};
    struct run run = run_binary(argv, env, 60000);
    cr_assert(!run.timed_out && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "eventtrack migrate of the scratch database %s failed: %s", rig.db_name, run.err);
}

/* One integer of a query on the scratch database, on a connection of its own
 * (closed at once: never counted while a measure runs). */
static long long sdb_ll(const char *sql, const char *const *params)
{
    PGconn *c = PQconnectdb(rig.db_url);
    cr_assert(PQstatus(c) == CONNECTION_OK, "cannot connect to %s: %s", rig.db_name, PQerrorMessage(c));
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "SQL failed on %s: %s\n  %s",
              rig.db_name, sql, PQresultErrorMessage(res));
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return v;
}

/* Transactions committed in the scratch database, once every backend of it
 * is gone and the count has settled (a backend publishes its counts as it
 * exits, just after it leaves pg_stat_activity). */
static long long settled_commits(void)
{
    const char *const p[] = {rig.db_name, NULL};
    long long deadline = it_now_ms() + 10000, last = -1;
    while (it_now_ms() < deadline) {
        char *busy = admin_value("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", p);
        char *v = admin_value("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", p);
        long long now = v ? atoll(v) : -1;
        bool idle = busy && atoll(busy) == 0;
        free(busy);
        free(v);
        if (idle && now == last)
            return now;
        last = idle ? now : -1;
        pause_ms(300);
    }
    cr_assert_fail("the scratch database %s did not settle within 10 s", rig.db_name);
    return -1;
}

/* ---- our own redis-server ------------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
              "cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *rc_get(void)
{
    if (rig.rc && !rig.rc->err)
        return rig.rc;
    if (rig.rc)
        redisFree(rig.rc);
    struct timeval tv = {2, 0};
    rig.rc = redisConnectWithTimeout("127.0.0.1", rig.redis_port, tv);
    if (rig.rc && !rig.rc->err)
        redisSetTimeout(rig.rc, tv);
    return rig.rc && !rig.rc->err ? rig.rc : NULL;
}

/* A command on our redis-server: its reply (caller frees), asserting it answered. */
static redisReply *rcmd(const char *format, ...)
{
    redisContext *c = rc_get();
    cr_assert(c, "cannot connect to the test's redis-server on port %d", rig.redis_port);
    va_list ap;
    va_start(ap, format);
    redisReply *r = redisvCommand(c, format, ap);
    va_end(ap);
    cr_assert(r, "Redis command %s failed: %s", format, c->errstr);
    return r;
}

static const char *redis_server_path(void)
{
    const char *bin = getenv("ET_IT_REDIS_SERVER");
    if (bin && *bin)
        return bin;
    const char *dirs = getenv("PATH");
    for (const char *d = dirs && *dirs ? dirs : "/usr/local/bin:/usr/bin:/bin"; *d;) {
        size_t n = strcspn(d, ":");
        char *candidate = fmt("%.*s/redis-server", (int)n, d);
        if (access(candidate, X_OK) == 0)
            return candidate;
        free(candidate);
        d += n + (d[n] == ':');
    }
    cr_assert_fail("redis-server not found on PATH: install redis-server or set ET_IT_REDIS_SERVER");
    return NULL;
}

/* An empty redis-server without persistence, up and answering PING. */
static void redis_start(void)
{
    snprintf(rig.redis_dir, sizeof rig.redis_dir, "/tmp/et-admission-redis-XXXXXX");
    cr_assert(mkdtemp(rig.redis_dir), "mkdtemp: %s", strerror(errno));
    for (int attempt = 0; attempt < 3; attempt++) {
        rig.redis_port = free_port();
        char port[16];
        snprintf(port, sizeof port, "%d", rig.redis_port);
        const char *bin = redis_server_path();
        const char *argv[] = {bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--maxmemory-policy", "noeviction", "--dir", rig.redis_dir, "--daemonize", "no",
                              NULL};
        pid_t parent = getpid();
        rig.redis_pid = fork();
        cr_assert(rig.redis_pid >= 0, "fork: %s", strerror(errno));
        if (rig.redis_pid == 0) {
            int null = open("/dev/null", O_RDONLY);
            int log = open(REDIS_LOG, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 ||
                prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
                _exit(126);
            close_range(3, ~0U, 0);
            execv(bin, (char *const *)argv);
            _exit(127);
        }
        long long deadline = it_now_ms() + 5000;
        while (it_now_ms() < deadline) {
            if (waitpid(rig.redis_pid, NULL, WNOHANG) == rig.redis_pid) {
                rig.redis_pid = 0;
                break;                      /* the port was taken meanwhile: another one */
            }
            redisContext *c = rc_get();
            redisReply *r = c ? redisCommand(c, "PING") : NULL;
            bool up = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (up)
                return;
            pause_ms(10);
        }
        if (rig.redis_pid > 0) {
            kill(rig.redis_pid, SIGKILL);
            waitpid(rig.redis_pid, NULL, 0);
            rig.redis_pid = 0;
        }
    }
    cr_assert_fail("redis-server did not start; see %s", REDIS_LOG);
}

/* ---- the rig's lifecycle -------------------------------------------------------------- */

static void admission_init(void)
{
    it_setup();
    memset(&rig, 0, sizeof rig);
    scratch_db_create();
    redis_start();
}

static void stop_service(void)
{
    if (rig.service > 0) {
        http_close();
        int st = stop_spawned_service(rig.service);
        rig.service = 0;
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the service did not exit 0 on SIGTERM (0x%x); see %s",
                  st, LOG);
    }
}

static void admission_fini(void)
{
    http_close();
    if (rig.service > 0) {
        kill(rig.service, SIGKILL);
        waitpid(rig.service, NULL, 0);
    }
    if (rig.redis_pid > 0) {
        kill(rig.redis_pid, SIGKILL);
        waitpid(rig.redis_pid, NULL, 0);
    }
    if (rig.rc)
        redisFree(rig.rc);
    if (rig.redis_dir[0]) {
        char *cmd = fmt("rm -rf '%s'", rig.redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "admission: could not remove %s\n", rig.redis_dir);
        free(cmd);
    }
    if (rig.db_name && rig.admin) {
        PGresult *res = PQexec(rig.admin, fmt("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", rig.db_name));
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fprintf(stderr, "admission: could not drop %s: %s", rig.db_name, PQresultErrorMessage(res));
        PQclear(res);
    }
    if (rig.admin)
        PQfinish(rig.admin);
    memset(&rig, 0, sizeof rig);
}

TestSuite(admission, .init = admission_init, .fini = admission_fini, .timeout = 90);

/* A service on the scratch database and our Redis. The leaderboard worker
 * is slowed down so that its passes do not blur the transaction counts. */
static char *start(const char *const *args)
{
    const char *all[24] = {"--threads", "4", "--leaderboard-sync-ms", "60000"};
    size_t n = 4;
    for (size_t i = 0; args && args[i] && n < 23; i++)
        all[n++] = args[i];
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url);
    char *env_redis = fmt("EVENTTRACK_REDIS_URL=redis://127.0.0.1:%d/0", rig.redis_port);
    const char *env[] = {env_db, env_redis, "EVENTTRACK_FAULT", NULL};
    char *base = NULL;
    rig.service = spawn_service(all, env, LOG, &base);
    return base;
}

static struct http_resp *get_as(const char *base, const char *path, const char *key)
{
    struct http_req rq = {.method = "GET", .path = path, .auth = key, .base = base};
    return http_do(&rq);
}

static struct http_resp *post_as(const char *base, const char *path, const char *body, const char *key)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json", .body = body,
                          .auth = key, .base = base};
    return http_do(&rq);
}

/* An organization with its first key, made with the admin key. */
static char *org_at(const char *base, char **api_key)
{
    char *id = it_id("org");
    struct http_resp *r = post_as(base, "/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"Adm %s\"}", id, id),
                                  NULL);
    EXPECT_JSON(r, 201);
    *api_key = it_strdup(jstr(resp_json(r), "api_key"));
    http_resp_free(r);
    return id;
}

static char *unknown_token(void)
{
    return fmt("etk_%s", it_id("unknown"));
}

/* ---- 1. the negative cache ------------------------------------------------------------ */

Test(admission, an_unknown_key_repeated_costs_postgresql_a_bounded_number_of_lookups)
{
    /* The address limit is off: this test is about the cache alone. */
    const char *args[] = {"--auth-failure-limit", "0", "--negative-cache-seconds", "30", NULL};
    enum { DISTINCT = 20, REPEATS = 400, SLACK = 40 };

    /* Control: distinct unknown keys are each looked up. */
    long long c0 = settled_commits();
    char *b = start(args);
    for (int i = 0; i < DISTINCT; i++) {
        struct http_resp *r = get_as(b, "/v1/organizations/org_none", unknown_token());
        EXPECT_PROBLEM(r, 401, "invalid-token");
        http_resp_free(r);
    }
    stop_service();
    long long c1 = settled_commits();
    fprintf(stderr, "admission: %d distinct unknown keys: %lld PostgreSQL transactions\n", DISTINCT, c1 - c0);
    cr_assert(c1 - c0 >= DISTINCT, "%d distinct unknown keys cost only %lld transactions: the measure does not"
              " see the lookups", DISTINCT, c1 - c0);

    /* One unknown key, repeated: looked up once. */
    b = start(args);
    char *token = unknown_token();
    for (int i = 0; i < REPEATS; i++) {
        struct http_resp *r = get_as(b, "/v1/organizations/org_none", token);
        EXPECT_PROBLEM(r, 401, "invalid-token");
        cr_assert(r->www_authenticate && strncmp(r->www_authenticate, "Bearer", 6) == 0);
        http_resp_free(r);
    }
    stop_service();
    long long c2 = settled_commits();
    fprintf(stderr, "admission: one unknown key x %d: %lld PostgreSQL transactions (service start and stop"
            " included)\n", REPEATS, c2 - c1);
    cr_assert(c2 - c1 <= SLACK, "one unknown key sent %d times cost %lld PostgreSQL transactions (at most %d"
              " expected: one lookup, plus the service's own start and stop)", REPEATS, c2 - c1, SLACK);
}

/* ---- 2. failed authentications per address -------------------------------------------- */

/* Sends unknown keys until the first 429 (at most `bound` requests); returns
 * how many got 401 before it and sets *retry to its Retry-After. */
static int failures_until_refused(const char *base, const char *path, int bound, long max_retry, long *retry)
{
    for (int failed = 0; failed < bound; failed++) {
        struct http_resp *r = get_as(base, path, unknown_token());
        if (r->status == 429) {
            EXPECT_PROBLEM(r, 429, "too-many-failed-authentications");
            char *end = NULL;
            *retry = r->retry_after ? strtol(r->retry_after, &end, 10) : -1;
            cr_assert(r->retry_after && *end == '\0' && *retry >= 1 && *retry <= max_retry,
                      "Retry-After %s (1..%ld expected)", r->retry_after ? r->retry_after : "none", max_retry);
            http_resp_free(r);
            return failed;
        }
        EXPECT_PROBLEM(r, 401, "invalid-token");
        http_resp_free(r);
    }
    cr_assert_fail("%d unknown keys from one address and no 429", bound);
    return -1;
}

/* The windows are fixed, so a burst may straddle the end of one: then the
 * address gets its LIMIT failures once more (never more than once here, the
 * window being an hour). The counts below allow for that and no more. */
Test(admission, failed_authentications_per_address_then_429_without_a_lookup)
{
    enum { LIMIT = 10, MORE = 300, SLACK = 40 };
    const char *args[] = {"--auth-failure-limit", "10", "--auth-failure-window-seconds", "3600", NULL};

    long long c0 = settled_commits();
    char *b = start(args);
    char *key = NULL;
    char *org = org_at(b, &key);
    char *path = fmt("/v1/organizations/%s", org);
    long retry = 0;
    int failed = failures_until_refused(b, path, 3 * LIMIT, 3600, &retry);
    cr_assert(failed >= LIMIT && failed <= 2 * LIMIT, "%d failures before the first 429 (limit %d)", failed, LIMIT);
    int looked_up = 0;
    struct http_resp *r;
    for (int i = 0; i < MORE; i++) {
        r = get_as(b, path, unknown_token());
        if (r->status == 401)
            looked_up++;
        else
            EXPECT_PROBLEM(r, 429, "too-many-failed-authentications");
        http_resp_free(r);
    }
    cr_assert(looked_up <= LIMIT, "%d of %d unknown keys from a refused address were looked up", looked_up, MORE);
    /* A valid organization key from this address waits with the rest (telling
     * it apart would take the lookup); the admin key is never refused. */
    r = get_as(b, path, key);
    cr_assert(r->status == 429 || looked_up > 0, "a valid key from a refused address got %ld", r->status);
    http_resp_free(r);
    r = get_as(b, path, NULL);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
    /* A missing key costs nothing and is not counted: still a plain 401. */
    r = get_as(b, path, "");
    EXPECT_STATUS(r, 401);
    http_resp_free(r);
    stop_service();
    long long c1 = settled_commits();
    fprintf(stderr, "admission: %d failed authentications then %d more (%d looked up): %lld PostgreSQL"
            " transactions\n", failed, MORE, looked_up, c1 - c0);
    cr_assert(c1 - c0 >= LIMIT && c1 - c0 <= 2 * LIMIT + SLACK,
              "%d failures and %d refusals cost %lld PostgreSQL transactions (expected %d to %d: the refusals"
              " must cost none)", failed, MORE, c1 - c0, LIMIT, 2 * LIMIT + SLACK);

    /* With a short window: refused, then, once Retry-After has passed, looked up again. */
    const char *short_args[] = {"--auth-failure-limit", "10", "--auth-failure-window-seconds", "2", NULL};
    b = start(short_args);
    (void)failures_until_refused(b, path, 10 * LIMIT, 2, &retry);
    pause_ms(retry * 1000 + 100);
    r = get_as(b, path, key);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
    r = get_as(b, path, unknown_token());
    EXPECT_PROBLEM(r, 401, "invalid-token");
    http_resp_free(r);
}

/* ---- 3. Redis full -------------------------------------------------------------------- */

static char *view_batch(const char *session, int n, char **ids)
{
    char *s = it_strdup("{\"batch\":[");
    for (int i = 0; i < n; i++) {
        ids[i] = it_id("view");
        char *next = fmt("%s%s{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"u_%s\","
                         "\"payload\":{\"session_id\":\"%s\"}}", s, i ? "," : "", ids[i], ids[i], session);
        free(s);
        s = next;
    }
    char *out = fmt("%s]}", s);
    free(s);
    return out;
}

static long long logged(char **ids, int n)
{
    long long found = 0;
    for (int i = 0; i < n; i++)
        found += sdb_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(ids[i]));
    return found;
}

/* A service on our Redis with every write refused from now on (maxmemory
 * reached under noeviction: OOM), and an organization with a session made
 * before. Returns the number of keys Redis holds, which must not change. */
static long long redis_full(char **base, const char *const *args, char **key, char **org, char **ses)
{
    *base = start(args);
    *org = org_at(*base, key);
    char *evt = it_id("evt");
    struct http_resp *r = post_as(*base, "/v1/events",
                                  fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"E\"}", evt, *org),
                                  NULL);
    EXPECT_JSON(r, 201);
    *ses = it_id("ses");
    r = post_as(*base, "/v1/sessions",
                fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"T\",\"speaker_id\":\"spk\"}", *ses, evt),
                NULL);
    EXPECT_JSON(r, 201);
    freeReplyObject(rcmd("CONFIG SET maxmemory 1"));
    redisReply *oom = rcmd("SET probe 1");
    cr_assert(oom->type == REDIS_REPLY_ERROR && strncmp(oom->str, "OOM", 3) == 0,
              "the test's Redis accepted a write with maxmemory 1: %s", oom->str ? oom->str : "?");
    freeReplyObject(oom);
    redisReply *keys = rcmd("DBSIZE");
    long long n = keys->integer;
    freeReplyObject(keys);
    return n;
}

static void expect_keys(long long before)
{
    redisReply *keys = rcmd("DBSIZE");
    cr_assert_eq(keys->integer, before, "Redis went from %lld to %lld keys while it refused every write", before,
                 keys->integer);
    freeReplyObject(keys);
}

Test(admission, with_redis_refusing_writes_the_rate_limit_still_limits)
{
    enum { RATE = 5, WINDOW = 3 };
    const char *args[] = {"--rate-limit-requests", "5", "--rate-limit-window-seconds", "3", NULL};
    char *b, *key, *org, *ses;
    long long keys_before = redis_full(&b, args, &key, &org, &ses);

    /* Requests until the first 429, whose Retry-After leads to a fresh
     * window: then exactly RATE of many pass. */
    char *path = fmt("/v1/organizations/%s", org);
    struct http_resp *r;
    long retry = 0;
    for (int i = 0; i < 3 * RATE && retry == 0; i++) {
        r = get_as(b, path, key);
        if (r->status == 429) {
            EXPECT_PROBLEM(r, 429, "rate-limited");
            retry = strtol(r->retry_after, NULL, 10);
        } else {
            EXPECT_JSON(r, 200);
        }
        http_resp_free(r);
    }
    cr_assert(retry >= 1 && retry <= WINDOW, "no 429 with Retry-After 1..%d after %d requests", WINDOW, 3 * RATE);
    /* Until the first 429: RATE + 1 requests, well within the window. */
    pause_ms(retry * 1000 + 100);
    int admitted = 0;
    for (long status = 200; status == 200 && admitted <= 4 * RATE;) {
        r = get_as(b, path, key);
        status = r->status;
        if (status == 429)
            EXPECT_PROBLEM(r, 429, "rate-limited");
        else
            EXPECT_JSON(r, 200);
        admitted += status == 200;
        http_resp_free(r);
    }
    fprintf(stderr, "admission: Redis refusing writes: %d requests admitted in a window, then 429 (limit %d)\n",
            admitted, RATE);
    cr_assert_eq(admitted, RATE, "with Redis refusing writes, %d requests were admitted in one window (limit %d)",
                 admitted, RATE);
    expect_keys(keys_before);
}

Test(admission, with_redis_refusing_writes_the_ingest_quota_still_holds)
{
    enum { QUOTA = 4 };
    const char *args[] = {"--ingest-quota-per-day", "4", NULL};
    char *b, *key, *org, *ses;
    long long keys_before = redis_full(&b, args, &key, &org, &ses);

    /* 3 views pass, the next 3 are refused whole (nothing logged), 1 more fits. */
    char *ids_a[3], *ids_b[3], *ids_c[1];
    struct http_resp *r = post_as(b, "/v1/analytics/events", view_batch(ses, 3, ids_a), key);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 3);
    r = post_as(b, "/v1/analytics/events", view_batch(ses, 3, ids_b), key);
    EXPECT_PROBLEM(r, 429, "ingest-quota-exceeded");
    cr_assert(r->retry_after && atol(r->retry_after) >= 1 && atol(r->retry_after) <= 86400,
              "Retry-After %s: the seconds to 00:00 UTC expected", r->retry_after ? r->retry_after : "none");
    cr_assert_eq(logged(ids_b, 3), 0, "a batch refused by the quota logged some of its envelopes");
    r = post_as(b, "/v1/analytics/events", view_batch(ses, 1, ids_c), key);
    EXPECT_JSON(r, 200);
    cr_assert_eq(logged(ids_a, 3) + logged(ids_c, 1), QUOTA);
    r = post_as(b, "/v1/analytics/events", view_batch(ses, 1, ids_c), key);
    EXPECT_PROBLEM(r, 429, "ingest-quota-exceeded");
    cr_assert_eq(sdb_ll("SELECT count(*) FROM analytics_events WHERE organization_id = $1", PG_PARAMS(org)), QUOTA);
    expect_keys(keys_before);
}
