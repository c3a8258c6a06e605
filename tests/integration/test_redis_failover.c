/* test_redis_failover.c: issue 14's Redis fault tests, on a real Sentinel lab.
 *
 *   1. the Redis primary killed under mixed load (views, board reads,
 *      registrations); Sentinel promotes the replica; the old primary comes
 *      back at its old address, first as a primary, then as a replica:
 *      every view and registration 2xx, the board equal to the log within
 *      the bound of ADR 0014, and no READONLY reply ever reached the service;
 *   2. acknowledged-write loss with two service processes: replication cut,
 *      views applied and the outbox drained on the primary, the primary
 *      killed and the replica (which never got them) promoted: the board
 *      equals the log after convergence, and one process rebuilt it;
 *   3. a Redis that is (or becomes) a replica: /readyz says "down", views
 *      still succeed, and once it is a primary again the board catches up
 *      (a plain redis:// URL and the rig's own redis-server);
 *   4. AUTH: a password, an ACL user, and a wrong password (Redis "down",
 *      views still accepted);
 *   5. a planned switchover (SENTINEL FAILOVER, the old primary alive and
 *      still answering ROLE master for seconds): every view posted from 3 s
 *      after the Sentinels name the new primary is counted there, and the
 *      board equals the log once the old primary is a replica.
 *
 * Each test runs its own lab, deploy/local/ha/redis.sh with ET_HA_DIR under
 * /tmp and ten free ports (ET_HA_PORT_BASE), two Redis and three Sentinels
 * with down-after-milliseconds 3000; plus the rig's scratch database and
 * services spawned with EVENTTRACK_REDIS_URL=redis-sentinel://... . A test
 * takes about 30-45 s, most of it Sentinel's own timers (discovery at start,
 * 3 s to declare the primary down, the old primary's conversion).
 *
 * Measured figures are printed on lines starting with "redis_failover:".
 */
#include "harness.h"
#include "rig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis.h>
#include <libpq-fe.h>

static struct {
    char dir[64];
    int base;
    char *log;
    pid_t services[4];
} lab;

/* The repository root, from this file's path (CMake passes it absolute). */
static char *repo_root(void)
{
    char *root = it_strdup(__FILE__);
    char *cut = strstr(root, "/tests/integration/");
    cr_assert(cut, "cannot find the repository from %s", __FILE__);
    *cut = '\0';
    return root;
}

static bool port_free(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Ten free consecutive ports below the ephemeral range (a race with another
 * program is possible, and the lab then fails to start and says so), in
 * 27000-31999, or in ET_REDIS_LAB_PORTS=LOW-HIGH when several checkouts share
 * a machine and each keeps to a range of its own. */
static int free_base(void)
{
    int low = 27000, high = 31999;
    const char *range = getenv("ET_REDIS_LAB_PORTS");

    if (range && (sscanf(range, "%d-%d", &low, &high) != 2 || low < 1024 || high > 32767 || high - low < 9))
        cr_assert_fail("ET_REDIS_LAB_PORTS=%s: want LOW-HIGH, at least ten ports in 1024-32767", range);
    unsigned blocks = (unsigned)(high - low + 1) / 10u;
    for (int attempt = 0; attempt < 200; attempt++) {
        int base = low + (int)(((unsigned)getpid() * 7u + (unsigned)attempt * 13u) % blocks) * 10;
        bool ok = true;
        for (int i = 0; i < 10 && ok; i++)
            ok = port_free(base + i);
        if (ok)
            return base;
    }
    cr_assert_fail("no ten free consecutive ports in %d-%d", low, high);
    return 0;
}

/* Runs deploy/local/ha/redis.sh ARGS on this test's lab; returns its stdout. */
static char *lab_run(const char *cmd, const char *node)
{
    char *script = fmt("%s/deploy/local/ha/redis.sh", repo_root());
    const char *argv[] = {script, cmd, node, NULL};
    const char *env[] = {fmt("ET_HA_PORT_BASE=%d", lab.base), fmt("ET_HA_DIR=%s", lab.dir), NULL};
    struct run r = run_binary(argv, env, 60000);
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
              "redis.sh %s %s failed (status 0x%x): %s%s", cmd, node ? node : "", r.status, r.out, r.err);
    return r.out;
}

static void lab_stop(const char *dir)
{
    char *script = fmt("%s/deploy/local/ha/redis.sh", repo_root());
    const char *argv[] = {script, "stop", NULL};
    const char *env[] = {fmt("ET_HA_PORT_BASE=%d", lab.base ? lab.base : 27000), fmt("ET_HA_DIR=%s", dir), NULL};
    struct run r = run_binary(argv, env, 60000);
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fprintf(stderr, "redis_failover: lab stop in %s failed: %s%s\n", dir, r.out, r.err);
    const char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    run_binary(rm, NULL, 30000);
}

/* A test killed by its timeout runs no .fini: its lab is stopped here, by a
 * later run, once the test process that owned it is gone. */
static void stale_labs_stop(void)
{
    glob_t g;

    if (glob("/tmp/et-redis_failover-*/owner", 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "r");
        int owner = 0;
        if (f == NULL || fscanf(f, "%d", &owner) != 1)
            owner = 0;
        if (f)
            fclose(f);
        if (owner > 0 && (kill(owner, 0) == 0 || errno != ESRCH))
            continue;
        char *dir = it_strdup(g.gl_pathv[i]);
        dir[strlen(dir) - strlen("/owner")] = '\0';
        lab_stop(dir);
    }
    globfree(&g);
}

static void lab_init(void)
{
    it_setup();
    rig_init("redis_failover");
    stale_labs_stop();
    snprintf(lab.dir, sizeof lab.dir, "/tmp/et-redis_failover-XXXXXX");
    cr_assert(mkdtemp(lab.dir), "mkdtemp");
    FILE *owner = fopen(fmt("%s/owner", lab.dir), "w");
    cr_assert(owner, "cannot write %s/owner", lab.dir);
    fprintf(owner, "%d\n", (int)getpid());
    fclose(owner);
    lab.base = free_base();
    lab.log = fmt("%s/integration-service-redis_failover-%d.log", ET_IT_LOG_DIR, (int)getpid());
}

static void lab_fini(void)
{
    for (int i = 0; i < 4; i++)
        if (lab.services[i] > 0)
            stop_spawned_service(lab.services[i]);
    if (lab.base)
        lab_stop(lab.dir);
    rig_fini();
}

/* Sentinel's timers take 30-40 s of a test on an idle machine, and much
 * more on a loaded one (main.c gives other tests 60 s). The lab starts in the
 * background while the database and the services get ready (a service simply
 * finds no Redis until then). */
TestSuite(redis_failover, .init = lab_init, .fini = lab_fini, .timeout = 150);

static pid_t lab_start_async(void)
{
    char *script = fmt("%s/deploy/local/ha/redis.sh", repo_root());
    const char *argv[] = {script, "start", NULL};
    const char *changes[] = {fmt("ET_HA_PORT_BASE=%d", lab.base), fmt("ET_HA_DIR=%s", lab.dir), NULL};
    char **envp = env_with(changes);
    char *out = fmt("%s/start.log", lab.dir);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork");
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execve(script, (char *const *)argv, envp);
        _exit(127);
    }
    return pid;
}

static void lab_start_wait(pid_t pid)
{
    int status = 0;
    cr_assert(rig_wait_exit(pid, 45000, &status), "the lab did not start within 45 s; see %s/start.log", lab.dir);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the lab did not start (status 0x%x); see %s/start.log",
              status, lab.dir);
}

/* ---- the lab's nodes ---------------------------------------------------------------- */

static const char *node_password;   /* AUTH for the test's own probes, NULL: none */

static redisContext *node_ctx(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        if (node_password)
            freeReplyObject(redisCommand(c, "AUTH %s", node_password));
        return c;
    }
    redisFree(c);
    return NULL;
}

/* The primary's port as the first Sentinel that answers names it, or 0. */
static int sentinel_master(void)
{
    for (int i = 2; i <= 4; i++) {
        redisContext *c = node_ctx(lab.base + i);
        redisReply *r = c ? redisCommand(c, "SENTINEL get-master-addr-by-name eventtrack") : NULL;
        int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
        freeReplyObject(r);
        redisFree(c);
        if (port)
            return port;
    }
    return 0;
}

/* "master", "slave", or "" when the node does not answer. */
static char *node_role(int port)
{
    redisContext *c = node_ctx(port);
    redisReply *r = c ? redisCommand(c, "ROLE") : NULL;
    char *role = it_strdup(r && r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "");
    freeReplyObject(r);
    redisFree(c);
    return role;
}

static redisReply *node_cmd(int port, const char *format, const char *arg)
{
    redisContext *c = node_ctx(port);
    cr_assert(c, "Redis on port %d does not answer", port);
    redisReply *r = redisCommand(c, format, arg);
    cr_assert(r, "Redis on port %d: %s failed", port, format);
    redisFree(c);
    return r;
}

/* ---- the service and the board -------------------------------------------------------- */

/* A service on the rig's scratch database and the Redis at url. */
static pid_t service_on(const char *url, char **base)
{
    const char *args[] = {"--threads", "4", "--leaderboard-sync-ms", "200", NULL};
    const char *env[] = {fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url), fmt("EVENTTRACK_REDIS_URL=%s", url),
                         "EVENTTRACK_FAULT", NULL};
    pid_t pid = spawn_service(args, env, lab.log, base);
    for (int i = 0; i < 4; i++)
        if (lab.services[i] == 0) {
            lab.services[i] = pid;
            break;
        }
    return pid;
}

static pid_t service_on_lab(char **base)
{
    char *url = lab_run("url", NULL);
    url[strcspn(url, "\n")] = '\0';
    return service_on(fmt("%s/0", url), base);
}

/* A view with the given id; NULL if it was accepted, else what went wrong. */
static char *ha_view_id(const char *base, const char *session, const char *id)
{
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"att_%s\","
                     "\"payload\":{\"session_id\":\"%s\",\"duration_seconds\":30}}",
                     id, id, session);
    struct http_resp *r = http_post_json_at(base, "/v1/analytics/events", body);
    char *err = r->status / 100 == 2 ? NULL : fmt("POST view: %ld %.300s", r->status, r->body);
    http_resp_free(r);
    return err;
}

static char *ha_view(const char *base, const char *session)
{
    return ha_view_id(base, session, it_id("v"));
}

static char *create(const char *base, const char *path, const char *body)
{
    struct http_resp *r = http_post_json_at(base, path, body);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    return NULL;
}

/* Speakers whose score on the Redis at port differs from the log's count. */
static int board_diff(int port, const char *evt)
{
    PGresult *res = rig_db_query("SELECT leaderboard_speaker_id, count(*) FROM analytics_events"
                                 " WHERE leaderboard_event_id = $1 GROUP BY 1",
                                 PG_PARAMS(evt));
    redisContext *c = node_ctx(port);
    int diffs = c ? 0 : -1;
    for (int i = 0; c && i < PQntuples(res); i++) {
        redisReply *z = redisCommand(c, "ZSCORE %s %s", lb_key(evt), PQgetvalue(res, i, 0));
        long long got = z && z->type == REDIS_REPLY_STRING ? (long long)strtod(z->str, NULL) : -1;
        diffs += got != strtoll(PQgetvalue(res, i, 1), NULL, 10);
        freeReplyObject(z);
    }
    redisFree(c);
    PQclear(res);
    return diffs;
}

static long long outbox_rows(void)
{
    return rig_db_ll("SELECT count(*) FROM leaderboard_outbox", NULL);
}

/* Waits (bounded) for the board on the Sentinel's primary to equal the log
 * and the outbox to be empty; the milliseconds it took, or -1. */
static long long await_board(const char *evt, long long timeout_ms)
{
    long long t0 = it_now_ms();
    while (it_now_ms() - t0 < timeout_ms) {
        int port = sentinel_master();
        if (port && board_diff(port, evt) == 0 && outbox_rows() == 0)
            return it_now_ms() - t0;
        it_pause_ms(50);
    }
    return -1;
}

static long long log_size(void)
{
    struct stat st;
    return stat(lab.log, &st) == 0 ? (long long)st.st_size : 0;
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = text; (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    return n;
}

/* Credits of a test's organization: more than its mix can spend. The mix
 * registers once per 8 views for as long as the failover takes (up to 80 s):
 * 1,000 credits ran out at about 8,000 views on a quiet machine, whereas
 * 100,000 would take 800,000 views, 10,000 a second. */
#define HA_CREDITS 100000

/* An organization, a conference and n sessions of n speakers on base. */
static void conference(const char *base, char **org, char **evt, char **sessions, int n)
{
    *org = it_id("org");
    *evt = it_id("evt");
    create(base, "/v1/organizations",
           fmt("{\"id\":\"%s\",\"name\":\"HA %s\",\"credits\":%d}", *org, *org, HA_CREDITS));
    create(base, "/v1/events", fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"HA %s\"}", *evt, *org, *evt));
    for (int i = 0; i < n; i++) {
        sessions[i] = it_id("ses");
        create(base, "/v1/sessions",
               fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Talk\",\"speaker_id\":\"%s\"}", sessions[i],
                   *evt, it_id("spk")));
    }
}

/* The lab started while one service on it gets a scratch database and a
 * conference of 3 sessions (the two overlap: the lab takes seconds). */
static void conference_on_lab(char **base, char **org, char **evt, char *sessions[3])
{
    pid_t starting = lab_start_async();
    rig_db_create(true);
    service_on_lab(base);
    conference(*base, org, evt, sessions, 3);
    lab_start_wait(starting);
}

/* ================================================================================== */
/* 1. The primary killed under mixed load                                             */
/* ================================================================================== */

struct mixed {
    const char *base, *org, *evt;
    char **sessions;
    long views, reads, reads_503, registrations;
    long long first_503_ms, last_503_ms;   /* board reads refused, relative to the kill */
};

/* One round of the mix; asserts views and registrations are 2xx. The board
 * may answer 503 while no primary is known (a read with no store). */
static void mixed_round(struct mixed *m, long long kill_ms, bool must_read)
{
    char *err = ha_view(m->base, m->sessions[m->views % 3]);
    cr_assert(err == NULL, "%s (view %ld, %lld ms after the kill)", err, m->views, it_now_ms() - kill_ms);
    m->views++;
    struct http_resp *r = http_get_at(m->base, fmt("/v1/events/%s/leaderboard?top_n=5", m->evt));
    m->reads++;
    if (r->status == 503 && !must_read) {
        m->reads_503++;
        if (m->first_503_ms < 0)
            m->first_503_ms = it_now_ms() - kill_ms;
        m->last_503_ms = it_now_ms() - kill_ms;
    } else {
        EXPECT_JSON(r, 200);
    }
    http_resp_free(r);
    if (m->views % 8 == 0) {
        char *reg = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":1}",
                        m->sessions[0], it_id("user"), m->org);
        struct http_resp *g = http_post_json_at(m->base, "/v1/registrations", reg);
        EXPECT_JSON(g, 201);
        http_resp_free(g);
        m->registrations++;
    }
}

Test(redis_failover, primary_killed_under_mixed_load_every_view_2xx_and_board_converges)
{
    char *base = NULL, *org, *evt, *sessions[3];
    conference_on_lab(&base, &org, &evt, sessions);
    cr_assert_eq(sentinel_master(), lab.base, "the lab did not start with redis1 as its primary");
    struct mixed m = {.base = base, .org = org, .evt = evt, .sessions = sessions, .first_503_ms = -1};

    for (int i = 0; i < 16; i++)
        mixed_round(&m, it_now_ms(), true);
    long long kill_ms = it_now_ms();
    lab_run("kill", "redis1");
    /* Until Sentinel names the replica (bounded by failover-timeout 10 s + 3 s). */
    long long switched_ms = -1;
    while (it_now_ms() - kill_ms < 20000 && switched_ms < 0) {
        mixed_round(&m, kill_ms, false);
        if (sentinel_master() == lab.base + 1)
            switched_ms = it_now_ms() - kill_ms;
    }
    cr_assert(switched_ms >= 0, "Sentinel did not promote the replica within 20 s");
    lab_run("restart", "redis1");
    long long restarted_ms = it_now_ms() - kill_ms;
    /* The old primary answers as a primary until Sentinel converts it. */
    long long replica_ms = -1;
    while (it_now_ms() - kill_ms < 60000 && replica_ms < 0) {
        mixed_round(&m, kill_ms, false);
        if (strcmp(node_role(lab.base), "slave") == 0)
            replica_ms = it_now_ms() - kill_ms;
    }
    cr_assert(replica_ms >= 0, "the old primary was not turned into a replica within 60 s");
    /* Sentinel has reconfigured everything: nothing may fail any more. */
    for (int i = 0; i < 16; i++)
        mixed_round(&m, kill_ms, true);
    long long took = await_board(evt, 10000);
    cr_assert(took >= 0, "the board on the new primary differs from the log 10 s after the last view; see %s",
              lab.log);
    /* The returned node copies the new primary's data (a full resync). */
    long long t_copy = it_now_ms();
    while (board_diff(lab.base, evt) != 0) {
        cr_assert(it_now_ms() - t_copy < 10000, "the old primary, now a replica, still has another board after 10 s");
        it_pause_ms(50);
    }
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)),
                 m.registrations, "a registration answered 201 is missing");
    char *all = it_file_since(lab.log, 0);
    cr_assert_eq(count_in(all, "READONLY"), 0, "the service met READONLY; see %s", lab.log);
    fprintf(stderr,
            "redis_failover: kill -9 of the primary: Sentinel switched after %lld ms; board reads refused"
            " from %lld to %lld ms (%ld of %ld reads); old primary restarted at %lld ms, a replica at %lld ms;"
            " %ld views, %ld registrations, all 2xx; board equal to the log %lld ms after the last view\n",
            switched_ms, m.first_503_ms, m.last_503_ms, m.reads_503, m.reads, restarted_ms, replica_ms, m.views,
            m.registrations, took);
}

/* ================================================================================== */
/* 2. Acknowledged writes lost by a failover, two processes                            */
/* ================================================================================== */

Test(redis_failover, acknowledged_views_lost_by_failover_are_rebuilt_by_one_of_two_processes)
{
    pid_t starting = lab_start_async();
    rig_db_create(true);
    char *a = NULL, *b = NULL, *org, *evt, *sessions[3];
    service_on_lab(&a);
    service_on_lab(&b);
    conference(a, &org, &evt, sessions, 3);
    lab_start_wait(starting);
    for (int i = 0; i < 12; i++)
        cr_assert_null(ha_view(i % 2 ? a : b, sessions[i % 3]));
    cr_assert(await_board(evt, 10000) >= 0, "the board did not settle before the cut");

    /* Cut replication for good: the replica cannot authenticate any more. */
    freeReplyObject(node_cmd(lab.base + 1, "CONFIG SET masterauth %s", "not-the-password"));
    freeReplyObject(node_cmd(lab.base, "CLIENT KILL TYPE %s", "replica"));
    long long t0 = it_now_ms();
    for (;;) {
        redisReply *info = node_cmd(lab.base + 1, "INFO %s", "replication");
        bool down = strstr(info->str, "master_link_status:down") != NULL;
        freeReplyObject(info);
        if (down)
            break;
        cr_assert(it_now_ms() - t0 < 5000, "the replica still follows the primary");
        it_pause_ms(50);
    }
    for (int i = 0; i < 12; i++)
        cr_assert_null(ha_view(i % 2 ? a : b, sessions[i % 3]));
    cr_assert(await_board(evt, 10000) >= 0, "the views were not applied and drained on the primary");
    cr_assert_gt(board_diff(lab.base + 1, evt), 0, "the replica got the views: nothing would be lost");

    long long mark = log_size();
    long long kill_ms = it_now_ms();
    lab_run("kill", "redis1");
    while (sentinel_master() != lab.base + 1) {
        cr_assert(it_now_ms() - kill_ms < 20000, "Sentinel did not promote the replica within 20 s");
        it_pause_ms(100);
    }
    long long switched = it_now_ms() - kill_ms;
    long long took = await_board(evt, 15000);
    cr_assert(took >= 0, "15 s after the promotion the board still misses acknowledged views; see %s", lab.log);
    /* Both processes keep serving, and only one rebuilt. */
    for (int i = 0; i < 4; i++)
        cr_assert_null(ha_view(i % 2 ? a : b, sessions[i % 3]));
    cr_assert(await_board(evt, 5000) >= 0, "views after the rebuild did not reach the board");
    char *since = it_file_since(lab.log, mark);
    int rebuilds = count_in(since, "rebuilding every board");
    cr_assert_eq(rebuilds, 1, "%d rebuilds after the failover (want one process to rebuild); see %s", rebuilds,
                 lab.log);
    fprintf(stderr,
            "redis_failover: acknowledged-write loss, two processes: promoted after %lld ms; board equal to the"
            " log %lld ms later; %d rebuild\n",
            switched, took, rebuilds);
}

/* ================================================================================== */
/* 3. A replica is not a usable Redis                                                  */
/* ================================================================================== */

static char *readyz_redis(const char *base)
{
    struct http_resp *r = http_get_at(base, "/readyz");
    EXPECT_JSON(r, 200);
    char *v = it_strdup(jstr(resp_json(r), "redis"));
    http_resp_free(r);
    return v;
}

Test(redis_failover, a_replica_is_down_for_readyz_and_writes_wait_in_the_outbox)
{
    const char *args[] = {"--threads", "2", "--leaderboard-sync-ms", "200", NULL};
    char *b = NULL;
    pid_t pid = rig_up(args, &b);
    char *org, *evt, *sessions[1];
    conference(b, &org, &evt, sessions, 1);
    cr_assert_str_eq(readyz_redis(b), "ok");
    cr_assert_null(ha_view(b, sessions[0]));

    /* Demoted under the service's feet: its next write meets READONLY. Port 1
     * never answers, so the replica stays a replica with its data. */
    struct stat before;
    long offset = stat(rig.service_log, &before) == 0 ? (long)before.st_size : 0;
    freeReplyObject(rig_redis("REPLICAOF 127.0.0.1 1"));
    for (int i = 0; i < 5; i++)
        cr_assert_null(ha_view(b, sessions[0]));
    cr_assert_str_eq(readyz_redis(b), "down", "/readyz says ok while Redis is a replica");
    struct http_resp *g = http_get_at(b, fmt("/v1/events/%s/leaderboard", evt));
    cr_assert(g->status == 200 || g->status == 503, "GET leaderboard on a replica: %ld", g->status);
    http_resp_free(g);
    cr_assert_gt(rig_db_ll("SELECT count(*) FROM leaderboard_outbox", NULL), 0,
                 "views were acknowledged while Redis could not take them");

    freeReplyObject(rig_redis("REPLICAOF NO ONE"));
    long long t0 = it_now_ms();
    while (strcmp(readyz_redis(b), "ok") != 0 || board_diff(rig.redis_port, evt) != 0 || outbox_rows() != 0) {
        cr_assert(it_now_ms() - t0 < 10000, "10 s after REPLICAOF NO ONE the board still differs; see %s",
                  rig.service_log);
        it_pause_ms(50);
    }
    char *log = it_file_since(rig.service_log, offset);
    cr_assert(strstr(log, "READONLY"), "the service never met READONLY: the test did not test it");
    rig_expect_clean_stop(pid);
}

/* ================================================================================== */
/* 4. AUTH                                                                            */
/* ================================================================================== */

Test(redis_failover, password_and_acl_user_authenticate_and_a_wrong_password_is_redis_down)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    /* The rig's own connection stays authenticated once a password is set. */
    freeReplyObject(rig_redis("ACL SETUSER app on >app-pw ~* &* +@all"));
    freeReplyObject(rig_redis("CONFIG SET requirepass %s", "s3cret"));
    node_password = "s3cret";
    char *with_password = NULL, *with_user = NULL, *wrong = NULL;
    service_on(fmt("redis://:s3cret@127.0.0.1:%d/0", rig.redis_port), &with_password);
    service_on(fmt("redis://app:app-pw@127.0.0.1:%d/0", rig.redis_port), &with_user);
    service_on(fmt("redis://:not-s3cret@127.0.0.1:%d/0", rig.redis_port), &wrong);
    cr_assert_str_eq(readyz_redis(with_password), "ok");
    cr_assert_str_eq(readyz_redis(with_user), "ok");
    cr_assert_str_eq(readyz_redis(wrong), "down", "a wrong password must not count as a usable Redis");

    char *org, *evt, *sessions[1];
    conference(with_password, &org, &evt, sessions, 1);
    cr_assert_null(ha_view(with_password, sessions[0]));
    cr_assert_null(ha_view(with_user, sessions[0]));
    cr_assert_null(ha_view(wrong, sessions[0]), "a view must not depend on Redis");
    long long t0 = it_now_ms();
    while (board_diff(rig.redis_port, evt) != 0 || outbox_rows() != 0) {
        cr_assert(it_now_ms() - t0 < 10000, "the board did not reach the log's 3 views; see %s", lab.log);
        it_pause_ms(50);
    }
    char *log = it_file_since(lab.log, 0);
    cr_assert(strstr(log, "AUTH failed"), "the wrong password was not reported; see %s", lab.log);
}

/* ================================================================================== */
/* 5. A planned switchover: the old primary alive, writes must follow the Sentinels    */
/* ================================================================================== */

/* Whether the board on the Redis at port has counted the view (its member in
 * the applied set: leaderboards.c's keys, pg.h's SQL_APPLIED_MEMBER). */
static bool view_counted_on(int port, const char *evt, const char *view_id)
{
    PGresult *res = rig_db_query("SELECT coalesce(organization_id, '') || '/' || event_id FROM analytics_events"
                                 " WHERE event_id = $1",
                                 PG_PARAMS(view_id));
    cr_assert_eq(PQntuples(res), 1, "view %s is not in the log", view_id);
    redisContext *c = node_ctx(port);
    redisReply *r = c ? redisCommand(c, "SISMEMBER %s %s", lb_applied_key(evt), PQgetvalue(res, 0, 0)) : NULL;
    bool counted = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    redisFree(c);
    PQclear(res);
    return counted;
}

/* Polls (bounded) until the view is counted on the Redis at port: the request
 * applies it at once, the worker's next pass from the outbox otherwise. */
static bool view_reaches(int port, const char *evt, const char *view_id, long long within_ms)
{
    long long t0 = it_now_ms();
    for (;;) {
        if (view_counted_on(port, evt, view_id))
            return true;
        if (it_now_ms() - t0 >= within_ms)
            return false;
        it_pause_ms(20);
    }
}

#define SWITCH_BOUND_MS 3000   /* the bound: a pass (200 ms here) and a round trip, with room */
#define SWITCH_PROBE_MS 5000   /* views posted this long after the Sentinels name the new primary */

Test(redis_failover, planned_switchover_moves_writes_within_a_pass)
{
    char *base = NULL, *org, *evt, *sessions[3];
    conference_on_lab(&base, &org, &evt, sessions);
    int old_port = lab.base, new_port = lab.base + 1;
    cr_assert_eq(sentinel_master(), old_port, "the lab did not start with redis1 as its primary");
    for (int i = 0; i < 6; i++)
        cr_assert_null(ha_view(base, sessions[i % 3]));
    cr_assert(await_board(evt, 10000) >= 0, "the board did not settle before the switchover");

    long long t0 = it_now_ms();
    redisReply *ok = node_cmd(lab.base + 2, "SENTINEL FAILOVER %s", "eventtrack");
    cr_assert(ok->type == REDIS_REPLY_STATUS, "SENTINEL FAILOVER: %s", ok->str ? ok->str : "?");
    freeReplyObject(ok);
    while (sentinel_master() != new_port) {
        cr_assert(it_now_ms() - t0 < 20000, "the Sentinels did not name redis2 within 20 s");
        it_pause_ms(20);
    }
    long long named = it_now_ms();
    cr_assert_str_eq(node_role(old_port), "master", "the old primary was demoted at once: nothing to test");

    /* Views with unique ids; each must be counted on the new primary within
     * a pass once SWITCH_BOUND_MS have passed since the naming. */
    long long first_on_new = -1, last_missed = -1;
    int views = 0, late_missed = 0;
    while (it_now_ms() - named < SWITCH_PROBE_MS) {
        char *id = it_id("v");
        long long sent = it_now_ms() - named;
        cr_assert_null(ha_view_id(base, sessions[views % 3], id));
        views++;
        if (view_counted_on(new_port, evt, id)) {
            if (first_on_new < 0)
                first_on_new = sent;
        } else if (sent >= SWITCH_BOUND_MS && !view_reaches(new_port, evt, id, 500)) {
            late_missed++;
            last_missed = sent;
        } else {
            last_missed = sent;
        }
    }
    bool still_master = strcmp(node_role(old_port), "master") == 0;
    fprintf(stderr,
            "redis_failover: planned switchover: the Sentinels named redis2 %lld ms after SENTINEL FAILOVER;"
            " first view counted there at once %lld ms after the naming, last one not counted at once %lld ms"
            " after; %d view(s) posted %d-%d ms after the naming not on the new primary within 500 ms (%d views in all);"
            " the old primary %s\n",
            named - t0, first_on_new, last_missed, late_missed, SWITCH_BOUND_MS, SWITCH_PROBE_MS, views,
            still_master ? "still answered ROLE master" : "was already a replica");
    cr_assert_eq(late_missed, 0,
                 "%d view(s) posted more than %d ms after the Sentinels named the new primary were not counted"
                 " there (the service kept writing to the old primary?); see %s",
                 late_missed, SWITCH_BOUND_MS, lab.log);

    /* Sentinel turns the old primary into a replica; then the board equals the log. */
    while (strcmp(node_role(old_port), "slave") != 0) {
        cr_assert(it_now_ms() - named < 40000, "the old primary was not turned into a replica within 40 s");
        it_pause_ms(100);
    }
    long long demoted = it_now_ms() - named;
    long long took = await_board(evt, 10000);
    cr_assert(took >= 0, "the board on the new primary differs from the log 10 s after the demotion; see %s",
              lab.log);
    long long logged = rig_db_ll("SELECT count(*) FROM analytics_events WHERE leaderboard_event_id = $1",
                                 PG_PARAMS(evt));
    cr_assert_eq(logged, 6 + views, "the log has %lld views, %d were accepted", logged, 6 + views);
    fprintf(stderr, "redis_failover: planned switchover: old primary a replica %lld ms after the naming; board"
                    " equal to the log (%lld views) %lld ms later\n",
            demoted, logged, took);
}
