/* rig.c: a scratch database and a redis-server of a test's own (see rig.h).
 *
 * Moved here from test_faults.c and test_admission.c, which had each grown
 * a copy. What differed between the copies is now a parameter: the suite's
 * name (log files, database prefix, temporary directory), whether the test
 * holds a connection to its scratch database (test_admission.c must not: it
 * waits for the database to have no backend at all), the redis-server's
 * extra arguments, and whether an error reply of Redis is a failure.
 *
 * Processes started here die with the test process (PR_SET_PDEATHSIG), so a
 * run killed before its .fini leaves no redis-server behind; its scratch
 * database carries its creation time as a comment and is dropped by a later
 * run after an hour.
 */
#define _GNU_SOURCE 1 /* mkdtemp, close_range */
#include "rig.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct rig rig;

static void kill_and_reap(pid_t pid);
static PGconn *admin_db(void);
static char *admin_exec(const char *sql);
static void drop_stale_databases(void);
static int free_port(void);
static const char *redis_server_path(void);
static pid_t redis_spawn(const char *const *extra_args);
static bool redis_await(void);
static redisReply *redis_vcmd(bool allow_error, const char *format, va_list ap);

void rig_init(const char *name)
{
    memset(&rig, 0, sizeof rig);
    rig.name = name;
    rig.service_log = fmt("%s/integration-service-%s.log", ET_IT_LOG_DIR, name);
    rig.redis_log = fmt("%s/integration-redis-%s.log", ET_IT_LOG_DIR, name);
}

static void kill_and_reap(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

void rig_fini(void)
{
    http_close();
    for (int i = 0; i < RIG_MAX_SERVICES; i++)
        kill_and_reap(rig.services[i]);
    kill_and_reap(rig.redis_pid);
    rig_redis_drop();
    if (rig.redis_dir[0]) {
        char *cmd = fmt("rm -rf '%s'", rig.redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "%s: could not remove %s\n", rig.name, rig.redis_dir);
        free(cmd);
    }
    if (rig.db)
        PQfinish(rig.db);
    if (rig.db_name && rig.admin) {
        char *err = admin_exec(fmt("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", rig.db_name));
        if (err)
            fprintf(stderr, "%s: could not drop the scratch database %s: %s", rig.name, rig.db_name, err);
        free(err);
    }
    if (rig.admin)
        PQfinish(rig.admin);
    const char *name = rig.name;
    memset(&rig, 0, sizeof rig);
    rig.name = name;
}

/* ---- the scratch database ---------------------------------------------------------- */

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

/* Runs one statement on the test database; returns NULL or the error text
 * (caller frees). Never asserts: rig_fini uses it too. */
static char *admin_exec(const char *sql)
{
    PGresult *res = PQexec(admin_db(), sql);
    ExecStatusType s = PQresultStatus(res);
    char *err = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? NULL : it_strdup(PQresultErrorMessage(res));
    PQclear(res);
    return err;
}

/* Scratch databases of this suite's runs that were killed before their .fini:
 * gone after an hour (a younger one may belong to a run still going). */
static void drop_stale_databases(void)
{
    char *sql = fmt("SELECT datname FROM pg_database WHERE datname LIKE 'et\\_%s\\_%%'"
                    " AND coalesce(shobj_description(oid, 'pg_database'), '') ~ '^[0-9]{1,15}$'"
                    " AND shobj_description(oid, 'pg_database')::bigint"
                    "     < extract(epoch FROM now())::bigint - 3600",
                    rig.name);
    PGresult *res = PQexec(admin_db(), sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(res); i++)
            free(admin_exec(fmt("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", PQgetvalue(res, i, 0))));
    PQclear(res);
    free(sql);
}

void rig_db_create(bool hold)
{
    drop_stale_databases();
    char *prefix = fmt("et_%s", rig.name);
    rig.db_name = it_id(prefix);
    free(prefix);
    char *err = admin_exec(fmt("CREATE DATABASE \"%s\"", rig.db_name));
    cr_assert(err == NULL, "CREATE DATABASE %s failed (the test role needs CREATEDB): %s", rig.db_name, err);
    free(admin_exec(fmt("COMMENT ON DATABASE \"%s\" IS '%lld'", rig.db_name, (long long)time(NULL))));
    rig.db_url = pg_conninfo(rig.db_name, 0);

    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url);
    const char *argv[] = {ET_BINARY_PATH, "migrate", NULL};
    const char *env[] = {env_db, NULL};
    struct run run = run_binary(argv, env, 60000);
    cr_assert(!run.timed_out && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "eventtrack migrate of the scratch database %s failed: %s", rig.db_name, run.err);
    if (hold) {
        rig.db = PQconnectdb(rig.db_url);
        cr_assert(PQstatus(rig.db) == CONNECTION_OK, "cannot connect to %s: %s", rig.db_name,
                  PQerrorMessage(rig.db));
    }
}

static PGresult *db_query_on(PGconn *c, const char *sql, const char *const *params)
{
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "SQL failed on %s: %s\n  %s", rig.db_name, sql,
              PQresultErrorMessage(res));
    return res;
}

PGresult *rig_db_query(const char *sql, const char *const *params)
{
    cr_assert(rig.db, "rig_db_query needs rig_db_create(true)");
    return db_query_on(rig.db, sql, params);
}

long long rig_db_ll(const char *sql, const char *const *params)
{
    PGconn *c = rig.db;
    if (!c) {
        /* Closed before returning: never seen by a measure of the database. */
        c = PQconnectdb(rig.db_url);
        cr_assert(PQstatus(c) == CONNECTION_OK, "cannot connect to %s: %s", rig.db_name, PQerrorMessage(c));
    }
    PGresult *res = db_query_on(c, sql, params);
    cr_assert(PQntuples(res) == 1, "SQL returned %d rows, expected 1: %s", PQntuples(res), sql);
    long long v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (c != rig.db)
        PQfinish(c);
    return v;
}

/* ---- our own redis-server ---------------------------------------------------------- */

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

void rig_redis_drop(void)
{
    if (rig.rc)
        redisFree(rig.rc);
    rig.rc = NULL;
}

redisContext *rig_redis_try(void)
{
    if (rig.rc && !rig.rc->err)
        return rig.rc;
    rig_redis_drop();
    struct timeval tv = {2, 0};
    rig.rc = redisConnectWithTimeout("127.0.0.1", rig.redis_port, tv);
    if (rig.rc && !rig.rc->err)
        redisSetTimeout(rig.rc, tv);
    return rig.rc && !rig.rc->err ? rig.rc : NULL;
}

/* The redis-server binary: ET_IT_REDIS_SERVER, else redis-server on PATH.
 * Found once per process; the string is kept for its life. */
static const char *redis_server_path(void)
{
    static char *path;
    const char *bin = getenv("ET_IT_REDIS_SERVER");
    if (path)
        return path;
    if (bin && *bin)
        return path = it_strdup(bin);
    const char *dirs = getenv("PATH");
    for (const char *d = dirs && *dirs ? dirs : "/usr/local/bin:/usr/bin:/bin"; *d;) {
        size_t n = strcspn(d, ":");
        char *candidate = fmt("%.*s/redis-server", (int)n, d);
        if (access(candidate, X_OK) == 0)
            return path = candidate;
        free(candidate);
        d += n + (d[n] == ':');
    }
    cr_assert_fail("redis-server not found on PATH: install redis-server or set ET_IT_REDIS_SERVER");
    return NULL;
}

/* Forks and execs redis-server on rig.redis_port; returns its pid. */
static pid_t redis_spawn(const char *const *extra_args)
{
    enum { FIXED = 13, MAX_EXTRA = 16 };
    char port[16];
    snprintf(port, sizeof port, "%d", rig.redis_port);
    const char *bin = redis_server_path();
    const char *argv[FIXED + MAX_EXTRA + 1] = {bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
                                               "--appendonly", "no", "--dir", rig.redis_dir, "--daemonize", "no"};
    size_t n = FIXED;
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        cr_assert(i < MAX_EXTRA, "too many redis-server arguments");
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;
    const char *log_path = rig.redis_log;
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls here. Dies with the test process,
         * even when a killed run gives it no chance to clean up. */
        int null = open("/dev/null", O_RDONLY);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 ||
            prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        close_range(3, ~0U, 0); /* none of the test's connections */
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to 5 s for rig.redis_pid to answer PING; false (and no process
 * left) when it exited, e.g. because its port was taken meanwhile, or did
 * not answer. */
static bool redis_await(void)
{
    long long deadline = it_now_ms() + 5000;
    while (it_now_ms() < deadline) {
        int st;
        if (waitpid(rig.redis_pid, &st, WNOHANG) == rig.redis_pid) {
            rig.redis_pid = 0;
            return false;
        }
        redisContext *c = rig_redis_try();
        redisReply *r = c ? redisCommand(c, "PING") : NULL;
        bool up = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (up)
            return true;
        rig_redis_drop();
        it_pause_ms(10);
    }
    kill_and_reap(rig.redis_pid);
    rig.redis_pid = 0;
    return false;
}

void rig_redis_start(const char *const *extra_args)
{
    if (!rig.redis_dir[0]) {
        snprintf(rig.redis_dir, sizeof rig.redis_dir, "/tmp/et-%s-redis-XXXXXX", rig.name);
        cr_assert(mkdtemp(rig.redis_dir), "mkdtemp: %s", strerror(errno));
    }
    bool first = rig.redis_port == 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (first)
            rig.redis_port = free_port();
        rig.redis_pid = redis_spawn(extra_args);
        if (redis_await())
            return;
        if (!first)
            break; /* the same port again: no other choice */
    }
    cr_assert_fail("redis-server did not start on port %d; see %s", rig.redis_port, rig.redis_log);
}

void rig_redis_kill9(void)
{
    kill_and_reap(rig.redis_pid);
    rig.redis_pid = 0;
    rig_redis_drop();
}

static redisReply *redis_vcmd(bool allow_error, const char *format, va_list ap)
{
    redisContext *c = rig_redis_try();
    cr_assert(c, "cannot connect to the test's redis-server on port %d", rig.redis_port);
    redisReply *r = redisvCommand(c, format, ap);
    cr_assert(r, "Redis command %s failed: %s", format, c->errstr);
    cr_assert(allow_error || r->type != REDIS_REPLY_ERROR, "Redis command %s failed: %s", format, r->str);
    return r;
}

redisReply *rig_redis(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    redisReply *r = redis_vcmd(false, format, ap);
    va_end(ap);
    return r;
}

redisReply *rig_redis_any(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    redisReply *r = redis_vcmd(true, format, ap);
    va_end(ap);
    return r;
}

char *rig_redis_url(int port)
{
    return fmt("redis://127.0.0.1:%d/0", port);
}

/* ---- services ---------------------------------------------------------------------- */

pid_t rig_service(const char *db_url, int redis_port, const char *const *args, const char *extra_env,
                  char **base)
{
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", db_url ? db_url : rig.db_url);
    char *env_redis = fmt("EVENTTRACK_REDIS_URL=%s", rig_redis_url(redis_port ? redis_port : rig.redis_port));
    const char *env[] = {env_db, env_redis, extra_env ? extra_env : "EVENTTRACK_FAULT", NULL};
    pid_t pid = spawn_service(args, env, rig.service_log, base);
    for (int i = 0; i < RIG_MAX_SERVICES; i++)
        if (rig.services[i] == 0) {
            rig.services[i] = pid;
            break;
        }
    return pid;
}

pid_t rig_up(const char *const *args, char **base)
{
    rig_db_create(true);
    rig_redis_start(NULL);
    return rig_service(NULL, 0, args, NULL, base);
}

void rig_forget_service(pid_t pid)
{
    for (int i = 0; i < RIG_MAX_SERVICES; i++)
        if (rig.services[i] == pid)
            rig.services[i] = 0;
}

int rig_stop_service(pid_t pid)
{
    http_close(); /* no idle keep-alive connection of ours left behind */
    int st = stop_spawned_service(pid);
    rig_forget_service(pid);
    return st;
}

void rig_expect_clean_stop(pid_t pid)
{
    int st = rig_stop_service(pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the service did not exit 0 on SIGTERM (status 0x%x); see %s",
              st, rig.service_log);
}

bool rig_wait_exit(pid_t pid, long long timeout_ms, int *status)
{
    long long deadline = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        it_pause_ms(5);
    }
}
