/*
 * config.c - loading and validating settings (see config.h).
 *
 * One table lists every setting with its type, bounds and help line; the
 * file parser, the environment reader, the flag parser and --help all walk
 * the same table, so a new setting is one line here.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum setting_type { SETTING_INT, SETTING_STRING };

struct setting {
    const char *key;        /* file key; env EVENTTRACK_<KEY>; flag --<key with '-' for '_'> */
    enum setting_type type;
    size_t offset;
    size_t size;            /* string capacity */
    long long min, max;     /* integer bounds */
    const char *help;
};

#define INT_SETTING(k, field, lo, hi, help) \
    {k, SETTING_INT, offsetof(struct config, field), 0, lo, hi, help}
#define STR_SETTING(k, field, help) \
    {k, SETTING_STRING, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0, 0, help}

static const struct setting settings[] = {
    STR_SETTING("bind", bind, "address to listen on (default 127.0.0.1)"),
    INT_SETTING("port", port, 0, 65535, "TCP port, 0 picks a free one (default 8080)"),
    STR_SETTING("database_url", database_url, "libpq connection string or URI (required)"),
    STR_SETTING("redis_url", redis_url,
                "redis://host:port[/db] or unix:///path[?db=N] (default redis://127.0.0.1:6379/0)"),
    INT_SETTING("threads", threads, 1, 256,
                "HTTP worker threads, each with one PostgreSQL and one Redis connection (default 16)"),
    INT_SETTING("max_body_bytes", max_body_bytes, 1024, 64LL << 20,
                "largest request body accepted (default 1048576)"),
    INT_SETTING("body_budget_bytes", body_budget_bytes, 1024, 1LL << 40,
                "memory for all request bodies being received at once, at least max_body_bytes; a"
                " request that would exceed it gets 503 (default 67108864)"),
    INT_SETTING("connection_timeout", connection_timeout, 1, 3600,
                "seconds before an idle or stalled client connection is closed (default 30)"),
    INT_SETTING("connection_limit", connection_limit, 1, 100000,
                "most client connections at once; more are answered 503 and closed (default 16384)"),
    INT_SETTING("per_ip_connection_limit", per_ip_connection_limit, 0, 100000,
                "most connections from one address, 0 for no limit (default 0)"),
    INT_SETTING("shutdown_grace_seconds", shutdown_grace_seconds, 0, 600,
                "seconds after SIGTERM during which /readyz fails but requests are still accepted, so a"
                " load balancer can stop routing first (default 3)"),
    INT_SETTING("shutdown_drain_seconds", shutdown_drain_seconds, 0, 600,
                "seconds in-flight requests get to finish on SIGTERM (default 10)"),
    STR_SETTING("admin_key", admin_key,
                "the admin bearer key, at least 32 visible ASCII characters (required by serve)"),
    INT_SETTING("rate_limit_requests", rate_limit_requests, 0, 1000000000,
                "requests one organization (all its keys together) may make per window, 0 for no limit"
                " (default 1000)"),
    INT_SETTING("rate_limit_window_seconds", rate_limit_window_seconds, 1, 3600,
                "length of the rate-limit window (default 10)"),
    INT_SETTING("auth_failure_limit", auth_failure_limit, 0, 1000000,
                "failed authentications one client address may make per window before it gets 429"
                " without a lookup, 0 for no limit (default 100)"),
    INT_SETTING("auth_failure_window_seconds", auth_failure_window_seconds, 1, 3600,
                "length of the failed-authentication window (default 60)"),
    INT_SETTING("negative_cache_seconds", negative_cache_seconds, 0, 300,
                "seconds an unknown bearer key is refused without a PostgreSQL lookup, 0 to look up"
                " every time (default 5)"),
    INT_SETTING("ingest_quota_per_day", ingest_quota_per_day, 0, 1000000000000LL,
                "analytics envelopes one organization may log per UTC day (docs/adr/0011),"
                " 0 for no quota (default 100000)"),
    INT_SETTING("json_max_depth", json_max_depth, 2, 64,
                "deepest nesting of a JSON request body (default 32)"),
    INT_SETTING("analytics_batch_max", analytics_batch_max, 1, 1000,
                "most envelopes in one analytics batch (default 1000)"),
    INT_SETTING("max_name_chars", max_name_chars, 1, 200,
                "longest organization or event name and session title (default 200)"),
    INT_SETTING("leaderboard_sync_ms", leaderboard_sync_ms, 10, 60000,
                "pause between passes of the worker that makes Redis catch up (default 500)"),
    INT_SETTING("applied_retention_hours", applied_retention_hours, 1, 24 * 365,
                "hours a board's dedup set outlives its last view (default 168)"),
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->command = CMD_SERVE;
    strcpy(cfg->bind, "127.0.0.1");
    cfg->port = 8080;
    strcpy(cfg->redis_url, "redis://127.0.0.1:6379/0");
    cfg->threads = 16;
    cfg->max_body_bytes = 1 << 20;
    cfg->body_budget_bytes = 64LL << 20;
    cfg->connection_timeout = 30;
    cfg->connection_limit = 16384;
    cfg->per_ip_connection_limit = 0;
    /* Non-zero by default: with 0 the listener closed while a load balancer
     * still routed here. 3 s outlasts HAProxy's fall 2 x inter 1 s plus one
     * check in flight (config/haproxy.cfg, docs/adr/0013-replicas.md). */
    cfg->shutdown_grace_seconds = 3;
    cfg->shutdown_drain_seconds = 10;
    cfg->rate_limit_requests = 1000;
    cfg->rate_limit_window_seconds = 10;
    cfg->auth_failure_limit = 100;
    cfg->auth_failure_window_seconds = 60;
    cfg->negative_cache_seconds = 5;
    cfg->ingest_quota_per_day = 100000;
    cfg->json_max_depth = 32;
    cfg->analytics_batch_max = 1000;
    cfg->max_name_chars = 200;
    cfg->leaderboard_sync_ms = 500;
    cfg->applied_retention_hours = 168;
}

/* Visible ASCII only, long enough to resist guessing. */
static bool admin_key_valid(const char *key)
{
    size_t n = 0;

    for (; key[n]; n++)
        if (key[n] < 0x21 || key[n] > 0x7e)
            return false;
    return n >= ADMIN_KEY_MIN_CHARS;
}

static bool fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

static const struct setting *setting_find(const char *key, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].key) == len && strncmp(settings[i].key, key, len) == 0)
            return &settings[i];
    return NULL;
}

/* Stores one value; `origin` ("config file line 3", "EVENTTRACK_PORT") names it in errors. */
static bool setting_apply(struct config *cfg, const struct setting *s, const char *value,
                          const char *origin, char *err, size_t err_size)
{
    char *field = (char *)cfg + s->offset;

    if (s->type == SETTING_STRING) {
        if (strlen(value) >= s->size)
            return fail(err, err_size, "setting %s (%s): longer than %zu characters", s->key,
                        origin, s->size - 1);
        strcpy(field, value);
        return true;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    /* strtoll would take " 80" and "+80": a setting is digits, nothing else. */
    if (errno || end == value || *end != '\0' || !(value[0] == '-' || (value[0] >= '0' && value[0] <= '9')) ||
        v < s->min || v > s->max)
        return fail(err, err_size, "setting %s (%s): \"%s\" is not an integer from %lld to %lld",
                    s->key, origin, value, s->min, s->max);
    memcpy(field, &v, sizeof v);
    return true;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool config_read_file(struct config *cfg, const char *path, bool must_exist, char *err,
                             size_t err_size)
{
    FILE *f = fopen(path, "r");
    char line[2048], origin[300];
    int lineno = 0;

    if (f == NULL) {
        if (!must_exist && errno == ENOENT)
            return true;
        return fail(err, err_size, "setting config: cannot read %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line), *eq, *key, *value;
        const struct setting *st;
        lineno++;
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        snprintf(origin, sizeof origin, "%s line %d", path, lineno);
        if (eq == NULL) {
            fclose(f);
            return fail(err, err_size, "setting config (%s): expected key = value", origin);
        }
        *eq = '\0';
        key = trim(s);
        value = trim(eq + 1);
        st = setting_find(key, strlen(key));
        if (st == NULL) {
            fclose(f);
            return fail(err, err_size, "setting %s (%s): unknown setting", key, origin);
        }
        if (!setting_apply(cfg, st, value, origin, err, err_size)) {
            fclose(f);
            return false;
        }
    }
    fclose(f);
    return true;
}

static bool config_read_env(struct config *cfg, char *err, size_t err_size)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        char name[64];
        const char *v;
        size_t k;
        strcpy(name, "EVENTTRACK_");
        for (k = 0; settings[i].key[k]; k++)
            name[11 + k] = (char)(settings[i].key[k] >= 'a' && settings[i].key[k] <= 'z'
                                      ? settings[i].key[k] - 32 : settings[i].key[k]);
        name[11 + k] = '\0';
        v = getenv(name);
        if (v && !setting_apply(cfg, &settings[i], v, name, err, err_size))
            return false;
    }
    return true;
}

/* "--database-url" -> the database_url setting. */
static const struct setting *flag_setting(const char *flag)
{
    char key[64];
    size_t n = strlen(flag);
    if (n >= sizeof key)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        key[i] = flag[i] == '-' ? '_' : flag[i];
    return setting_find(key, n);
}

static bool config_validate(struct config *cfg, char *err, size_t err_size)
{
    if (cfg->command == CMD_VERSION || cfg->command == CMD_HELP)
        return true;
    if (cfg->database_url[0] == '\0')
        return fail(err, err_size,
                    "setting database_url: missing (set EVENTTRACK_DATABASE_URL or --database-url)");
    if (cfg->command == CMD_MIGRATE)
        return true;
    /* Else a body of the largest accepted size could never be received. */
    if (cfg->body_budget_bytes < cfg->max_body_bytes)
        return fail(err, err_size, "setting body_budget_bytes: %lld is less than max_body_bytes (%lld)",
                    cfg->body_budget_bytes, cfg->max_body_bytes);
    if (!redis_url_parse(cfg->redis_url, &cfg->redis))
        return fail(err, err_size,
                    "setting redis_url: \"%s\" is not redis://host:port[/db] or unix:///path[?db=N]",
                    cfg->redis_url);
    if (cfg->command == CMD_SERVE && !admin_key_valid(cfg->admin_key))
        return fail(err, err_size,
                    "setting admin_key: %s (set EVENTTRACK_ADMIN_KEY to at least %d visible ASCII characters)",
                    cfg->admin_key[0] ? "too short or not visible ASCII" : "missing",
                    ADMIN_KEY_MIN_CHARS);
    return true;
}

bool config_load(int argc, char **argv, struct config *cfg, char *err, size_t err_size)
{
    const char *config_path = getenv("EVENTTRACK_CONFIG");
    bool explicit_path = config_path != NULL;
    int i, positional = 0;

    config_defaults(cfg);
    /* First pass: the command, its argument and --config, which decide what to read. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cfg->command = CMD_HELP;
            return true;
        }
        if (strcmp(a, "--version") == 0) {
            cfg->command = CMD_VERSION;
            return true;
        }
        if (strncmp(a, "--", 2) == 0) {
            const char *eq = strchr(a, '=');
            if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
                if (eq == NULL && i + 1 == argc)
                    return fail(err, err_size, "setting config: --config needs a path");
                config_path = eq ? eq + 1 : argv[i + 1];
                explicit_path = true;
            }
            if (eq == NULL)
                i++;        /* skip the flag's value */
            continue;
        }
        if (positional == 0) {
            if (strcmp(a, "serve") == 0)
                cfg->command = CMD_SERVE;
            else if (strcmp(a, "migrate") == 0)
                cfg->command = CMD_MIGRATE;
            else if (strcmp(a, "rebuild-leaderboards") == 0)
                cfg->command = CMD_REBUILD_LEADERBOARDS;
            else
                return fail(err, err_size, "unknown command \"%s\" (see eventtrack --help)", a);
        } else if (positional == 1 && cfg->command == CMD_REBUILD_LEADERBOARDS) {
            if (!id_valid(a, strlen(a)))
                return fail(err, err_size, "rebuild-leaderboards: \"%s\" is not a valid event id", a);
            snprintf(cfg->rebuild_event_id, sizeof cfg->rebuild_event_id, "%s", a);
        } else {
            return fail(err, err_size, "unexpected argument \"%s\" (see eventtrack --help)", a);
        }
        positional++;
    }

    if (!config_read_file(cfg, config_path ? config_path : "config/eventtrack.conf", explicit_path,
                          err, err_size))
        return false;
    if (!config_read_env(cfg, err, err_size))
        return false;

    /* Second pass: flags, which win over everything. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *value;
        char name[64];
        const struct setting *s;
        if (strncmp(a, "--", 2) != 0)
            continue;
        eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a - 2) : (int)strlen(a + 2), a + 2);
        if (eq == NULL && i + 1 == argc)
            return fail(err, err_size, "setting %s: --%s needs a value", name, name);
        value = eq ? eq + 1 : argv[++i];
        if (strcmp(name, "config") == 0)
            continue;
        s = flag_setting(name);
        if (s == NULL)
            return fail(err, err_size, "unknown flag --%s (see eventtrack --help)", name);
        char origin[80];
        snprintf(origin, sizeof origin, "flag --%s", name);
        if (!setting_apply(cfg, s, value, origin, err, err_size))
            return false;
    }
    return config_validate(cfg, err, err_size);
}

bool redis_url_parse(const char *url, struct redis_target *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/' || n >= sizeof out->socket_path)
            return false;
        memcpy(out->socket_path, path, n);
        if (q) {
            char *end;
            if (strncmp(q, "?db=", 4) != 0)
                return false;
            errno = 0;
            long db = strtol(q + 4, &end, 10);
            if (errno || end == q + 4 || *end || db < 0 || db > 1000)
                return false;
            out->db = (int)db;
        }
        return true;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return false;
    const char *host = url + 8, *colon = strrchr(host, ':'), *slash;
    char *end;
    if (colon == NULL || colon == host || (size_t)(colon - host) >= sizeof out->host)
        return false;
    memcpy(out->host, host, (size_t)(colon - host));
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || port < 1 || port > 65535)
        return false;
    out->port = (int)port;
    slash = end;
    if (*slash == '\0' || (slash[0] == '/' && slash[1] == '\0'))
        return true;
    if (*slash != '/')
        return false;
    long db = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || db < 0 || db > 1000)
        return false;
    out->db = (int)db;
    return true;
}

void config_usage(FILE *out)
{
    fprintf(out,
            "usage: eventtrack [serve | migrate | rebuild-leaderboards [EVENT_ID]] [--config PATH] [--KEY VALUE ...]\n"
            "       eventtrack --version | --help\n\n"
            "  serve                 run the HTTP API (the default)\n"
            "  migrate               apply the schema migrations (safe to run again)\n"
            "  rebuild-leaderboards  recompute Redis leaderboards from PostgreSQL (one event, or all)\n\n"
            "Settings (config file key, env EVENTTRACK_<KEY>, flag --<key>; later wins):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        char flag[64];
        size_t k;
        for (k = 0; settings[i].key[k]; k++)
            flag[k] = settings[i].key[k] == '_' ? '-' : settings[i].key[k];
        flag[k] = '\0';
        fprintf(out, "  --%-26s %s\n", flag, settings[i].help);
    }
}
