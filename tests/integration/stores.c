/* stores.c: direct probes of the test PostgreSQL and Redis (see harness.h).
 *
 * They exist to prove what HTTP answers cannot: that a request changed
 * nothing, or exactly one row and one score. One connection of each per test
 * process, opened on first use; queries are parameterised; Redis is reached
 * through the URL the service gets (SELECT of its db).
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>
#include <libpq-fe.h>

/* ---- PostgreSQL ------------------------------------------------------------------- */

static PGconn *g_pg;

static PGconn *pg(void)
{
    if (g_pg && PQstatus(g_pg) == CONNECTION_OK)
        return g_pg;
    if (g_pg)
        PQfinish(g_pg);
    const char *url = getenv("EVENTTRACK_DATABASE_URL");
    if (!url || !*url)
        url = IT_DEFAULT_DATABASE_URL;
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {url, "eventtrack-integration-tests", NULL};
    g_pg = PQconnectdbParams(keys, vals, 1);
    cr_assert(PQstatus(g_pg) == CONNECTION_OK, "cannot connect to the test database %s: %s", url,
              PQerrorMessage(g_pg));
    return g_pg;
}

static PGresult *pg_run(const char *sql, const char *const *params, ExecStatusType want)
{
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *res = PQexecParams(pg(), sql, n, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == want, "SQL failed: %s\n  %s", sql, PQresultErrorMessage(res));
    return res;
}

char *pg_text(const char *sql, const char *const *params)
{
    PGresult *res = pg_run(sql, params, PGRES_TUPLES_OK);
    cr_assert(PQntuples(res) == 1 && PQnfields(res) >= 1, "SQL returned %d rows, expected 1: %s",
              PQntuples(res), sql);
    char *v = PQgetisnull(res, 0, 0) ? NULL : it_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

long long pg_ll(const char *sql, const char *const *params)
{
    char *v = pg_text(sql, params);
    if (!v)
        return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    cr_assert(*end == '\0', "SQL value \"%s\" is not an integer: %s", v, sql);
    free(v);
    return n;
}

void pg_exec(const char *sql, const char *const *params)
{
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *res = PQexecParams(pg(), sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(res);
    cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "SQL failed: %s\n  %s", sql,
              PQresultErrorMessage(res));
    PQclear(res);
}

/* The server's log: ET_IT_PG_LOG, else where deploy/local/stores.sh puts it,
 * beside the data directory (<dir>/.local/postgres -> <dir>/.local/log). */
static char *pg_log_path(void)
{
    const char *env = getenv("ET_IT_PG_LOG");
    if (env && *env)
        return it_strdup(env);
    char *data = pg_text("SELECT current_setting('data_directory')", NULL);
    char *slash = data ? strrchr(data, '/') : NULL;
    cr_assert(slash, "cannot tell where the PostgreSQL log is: set ET_IT_PG_LOG");
    *slash = '\0';
    char *path = fmt("%s/log/postgres.log", data);
    free(data);
    return path;
}

long pg_log_size(void)
{
    char *path = pg_log_path();
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read the PostgreSQL log %s (set ET_IT_PG_LOG)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    free(path);
    return n;
}

char *pg_log_since(long offset)
{
    char *path = pg_log_path();
    char *text = it_file_since(path, offset);
    free(path);
    return text;
}

/* ---- Redis ------------------------------------------------------------------------- */

static redisContext *g_redis;

struct redis_url {
    char host[256], pass[256];
    int port, db;
};

/* redis://[:password@]host[:port][/db] */
static struct redis_url redis_url_parts(void)
{
    const char *url = getenv("EVENTTRACK_REDIS_URL");
    if (!url || !*url)
        url = IT_DEFAULT_REDIS_URL;
    cr_assert(strncmp(url, "redis://", 8) == 0, "the suite only understands redis:// URLs, got %s", url);
    struct redis_url u = {.host = "127.0.0.1", .port = 6379};
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(u.pass, sizeof u.pass, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl)
        snprintf(u.host, sizeof u.host, "%.*s", (int)hl, p);
    p += hl;
    if (*p == ':') {
        char *end;
        u.port = (int)strtol(p + 1, &end, 10);
        p = end;
    }
    if (*p == '/' && p[1])
        u.db = (int)strtol(p + 1, NULL, 10);
    return u;
}

int redis_store_port(void)
{
    return redis_url_parts().port;
}

char *redis_url_via(int port)
{
    struct redis_url u = redis_url_parts();
    if (u.pass[0])
        return fmt("redis://:%s@127.0.0.1:%d/%d", u.pass, port, u.db);
    return fmt("redis://127.0.0.1:%d/%d", port, u.db);
}

static PQconninfoOption *pg_url_parts(void)
{
    const char *url = getenv("EVENTTRACK_DATABASE_URL");
    if (!url || !*url)
        url = IT_DEFAULT_DATABASE_URL;
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(url, &err);
    cr_assert(o, "cannot parse EVENTTRACK_DATABASE_URL %s: %s", url, err ? err : "");
    return o;
}

int pg_store_port(void)
{
    PQconninfoOption *o = pg_url_parts();
    int port = 5432;
    for (PQconninfoOption *x = o; x->keyword; x++)
        if (strcmp(x->keyword, "port") == 0 && x->val && *x->val)
            port = atoi(x->val);
    PQconninfoFree(o);
    return port;
}

char *pg_url_via(int port)
{
    return pg_conninfo(NULL, port);
}

char *pg_conninfo(const char *dbname, int port)
{
    PQconninfoOption *o = pg_url_parts();
    char *s = port > 0 ? fmt("host=127.0.0.1 port=%d", port) : it_strdup("");
    for (PQconninfoOption *x = o; x->keyword; x++) {
        if (!x->val || !*x->val || (dbname && !strcmp(x->keyword, "dbname")) ||
            (port > 0 && (!strcmp(x->keyword, "host") || !strcmp(x->keyword, "hostaddr") ||
                          !strcmp(x->keyword, "port"))))
            continue;
        /* key='value' with ' and \\ escaped */
        size_t n = strlen(x->val);
        char *v = it_malloc(2 * n + 1), *d = v;
        for (const char *q = x->val; *q; q++) {
            if (*q == '\'' || *q == '\\')
                *d++ = '\\';
            *d++ = *q;
        }
        *d = '\0';
        char *next = fmt("%s %s='%s'", s, x->keyword, v);
        free(v);
        free(s);
        s = next;
    }
    PQconninfoFree(o);
    if (dbname) {
        char *full = fmt("%s dbname='%s'", s, dbname);
        free(s);
        s = full;
    }
    return s;
}

static redisContext *redis(void)
{
    if (g_redis && !g_redis->err)
        return g_redis;
    if (g_redis)
        redisFree(g_redis);
    struct redis_url u = redis_url_parts();
    struct timeval tv = {5, 0};
    g_redis = redisConnectWithTimeout(u.host, u.port, tv);
    cr_assert(g_redis && !g_redis->err, "cannot connect to the test Redis %s:%d: %s", u.host, u.port,
              g_redis ? g_redis->errstr : "out of memory");
    redisReply *r;
    if (u.pass[0]) {
        r = redisCommand(g_redis, "AUTH %s", u.pass);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "Redis AUTH failed");
        freeReplyObject(r);
    }
    r = redisCommand(g_redis, "SELECT %d", u.db);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "Redis SELECT %d failed", u.db);
    freeReplyObject(r);
    return g_redis;
}

static redisReply *redis_v(const char *format, va_list ap)
{
    redisReply *r = redisvCommand(redis(), format, ap);
    cr_assert(r, "Redis command %s failed: %s", format, g_redis->errstr);
    cr_assert(r->type != REDIS_REPLY_ERROR, "Redis command %s failed: %s", format, r->str);
    return r;
}

long long redis_ll(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    redisReply *r = redis_v(format, ap);
    va_end(ap);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

char *redis_text(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    redisReply *r = redis_v(format, ap);
    va_end(ap);
    char *v = NULL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        v = it_strdup(r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        v = fmt("%lld", r->integer);
    freeReplyObject(r);
    return v;
}

char *lb_key(const char *event_id)
{
    return fmt("eventtrack:lb:{%s}", event_id); /* hash tag: both keys of an event in one slot */
}

char *lb_applied_key(const char *event_id)
{
    return fmt("eventtrack:lb:{%s}:applied", event_id);
}

long long redis_score(const char *event_id, const char *speaker)
{
    char *key = lb_key(event_id);
    char *s = redis_text("ZSCORE %s %s", key, speaker);
    free(key);
    if (!s)
        return -1;
    char *end;
    double d = strtod(s, &end);
    cr_assert(*end == '\0' && d == (double)(long long)d, "ZSCORE gave a non-integer score \"%s\"", s);
    free(s);
    return (long long)d;
}

/* The applied set may be a set or a sorted set; ask its type. */
bool redis_applied_has(const char *event_id, const char *id)
{
    /* Members are tenant-qualified, "org/event_id"; the suite sends its
     * events with the admin key, whose namespace is the empty tenant. */
    char *key = lb_applied_key(event_id);
    char *member = fmt("/%s", id);
    bool has = redis_ll("SISMEMBER %s %s", key, member) == 1;

    free(member);
    free(key);
    return has;
}

long long redis_applied_count(const char *event_id)
{
    char *key = lb_applied_key(event_id);
    char *type = redis_text("TYPE %s", key);
    long long n = 0;
    if (type && strcmp(type, "set") == 0)
        n = redis_ll("SCARD %s", key);
    else if (type && strcmp(type, "zset") == 0)
        n = redis_ll("ZCARD %s", key);
    else if (type && strcmp(type, "hash") == 0)
        n = redis_ll("HLEN %s", key);
    free(type);
    free(key);
    return n;
}
