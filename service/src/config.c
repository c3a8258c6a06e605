/*
 * config.c - loading and validating settings (see config.h).
 *
 * One table lists every setting with its type, bounds and help line; the
 * file parser, the environment reader, the flag parser and --help all walk
 * the same table, so a new setting is one line here.
 */
#include "config.h"
#include "log.h"
#include "model.h"

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
    long long int_default;
    const char *str_default; /* NULL: none (a required setting, or empty) */
    const char *help;       /* --help appends "(default X)" from the default */
};

/* The default is written once, here: config_defaults() and --help both read it. */
#define INT_SETTING(k, field, lo, hi, def, help) \
    {k, SETTING_INT, offsetof(struct config, field), 0, lo, hi, def, NULL, help}
#define STR_SETTING(k, field, def, help) \
    {k, SETTING_STRING, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0, 0, 0, def, help}

static const struct setting settings[] = {
    STR_SETTING("bind", bind, "127.0.0.1", "address to listen on"),
    INT_SETTING("port", port, 0, 65535, 8080, "TCP port, 0 picks a free one"),
    STR_SETTING("database_url", database_url, NULL, "libpq connection string or URI (required)"),
    STR_SETTING("redis_url", redis_url, "redis://127.0.0.1:6379/0",
                "redis://[[user]:password@]host:port[/db], unix:///path[?db=N] or"
                " redis-sentinel://[[user]:password@]h1:p1,h2:p2/MASTER[/db]"),
    INT_SETTING("threads", threads, 1, 256, 16,
                "HTTP worker threads, each with one PostgreSQL and one Redis connection"),
    /* Enforced by default: N replicas x (threads + 2) must fit max_connections,
     * and one replica too many used to take the others' connections away
     * (docs/adr/0013-replicas.md decision 5, store/budget.c). */
    INT_SETTING("pg_connection_budget", pg_connection_budget, -1, 1000000, -1,
                "PostgreSQL connections all replicas on one database share; each claims threads + 2"
                " at start, and one that cannot answers 503 to what needs PostgreSQL and fails"
                " /readyz; -1: the server's max_connections less superuser_reserved_connections"
                " less 10, 0: not enforced; every replica must use the same value"),
    INT_SETTING("max_body_bytes", max_body_bytes, 1024, 64LL << 20, 1 << 20,
                "largest request body accepted"),
    INT_SETTING("body_budget_bytes", body_budget_bytes, 1024, 1LL << 40, 64LL << 20,
                "memory for all request bodies being received at once, at least max_body_bytes; a"
                " request that would exceed it gets 503"),
    INT_SETTING("connection_timeout", connection_timeout, 1, 3600, 30,
                "seconds before an idle or stalled client connection is closed"),
    INT_SETTING("connection_limit", connection_limit, 1, 100000, 16384,
                "most client connections at once; more are answered 503 and closed"),
    INT_SETTING("per_ip_connection_limit", per_ip_connection_limit, 0, 100000, 0,
                "most connections from one address, 0 for no limit"),
    /* Non-zero by default: with 0 the listener closed while a load balancer
     * still routed here. 3 s outlasts HAProxy's fall 2 x inter 1 s plus one
     * check in flight (config/haproxy.cfg, docs/adr/0013-replicas.md). */
    INT_SETTING("shutdown_grace_seconds", shutdown_grace_seconds, 0, 600, 3,
                "seconds after SIGTERM during which /readyz fails but requests are still accepted, so a"
                " load balancer can stop routing first"),
    INT_SETTING("shutdown_drain_seconds", shutdown_drain_seconds, 0, 600, 10,
                "seconds in-flight requests get to finish on SIGTERM"),
    STR_SETTING("admin_key", admin_key, NULL,
                "the admin bearer key, at least 32 visible ASCII characters (required by serve)"),
    INT_SETTING("rate_limit_requests", rate_limit_requests, 0, 1000000000, 1000,
                "requests one organization (all its keys together) may make per window, 0 for no limit"),
    INT_SETTING("rate_limit_window_seconds", rate_limit_window_seconds, 1, 3600, 10,
                "length of the rate-limit window"),
    INT_SETTING("auth_failure_limit", auth_failure_limit, 0, 1000000, 100,
                "failed authentications one client address may make per window before it gets 429"
                " without a lookup, 0 for no limit"),
    INT_SETTING("auth_failure_window_seconds", auth_failure_window_seconds, 1, 3600, 60,
                "length of the failed-authentication window"),
    INT_SETTING("negative_cache_seconds", negative_cache_seconds, 0, 300, 5,
                "seconds an unknown bearer key is refused without a PostgreSQL lookup, 0 to look up"
                " every time"),
    INT_SETTING("ingest_quota_per_day", ingest_quota_per_day, 0, 1000000000000LL, 100000,
                "analytics envelopes one organization may log per UTC day (docs/adr/0011),"
                " 0 for no quota"),
    INT_SETTING("json_max_depth", json_max_depth, 2, 64, 32,
                "deepest nesting of a JSON request body"),
    INT_SETTING("analytics_batch_max", analytics_batch_max, 1, 1000, 1000,
                "most envelopes in one analytics batch"),
    INT_SETTING("max_name_chars", max_name_chars, 1, 200, 200,
                "longest organization or event name and session title"),
    INT_SETTING("request_deadline_ms", request_deadline_ms, 100, 600000, 5000,
                "milliseconds a request may wait on PostgreSQL before the connection is dropped and"
                " the answer is 503 with Retry-After"),
    INT_SETTING("leaderboard_sync_ms", leaderboard_sync_ms, 10, 60000, 500,
                "pause between passes of the worker that makes Redis catch up"),
    INT_SETTING("applied_retention_hours", applied_retention_hours, 1, 24 * 365, 168,
                "hours a board's dedup set outlives its last view"),
    INT_SETTING("group_commit_lanes", group_commit_lanes, 1, 64, GROUP_LANES_DEFAULT,
                "groups of registrations (and of single-event ingests) saved at once; fewer lanes,"
                " bigger groups (docs/adr/0016)"),
    INT_SETTING("credit_buckets", credit_buckets, CREDIT_BUCKETS_MIN, CREDIT_BUCKETS_MAX,
                CREDIT_BUCKETS_DEFAULT,
                "rows an organization's new credits are spread over; safe to change on a live database"
                " (docs/adr/0007)"),
    STR_SETTING("log_format", log_format, "json",
                "json: one JSON object per log line on stderr; text: plain lines for a terminal"),
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->command = CMD_SERVE;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *st = &settings[i];
        char *field = (char *)cfg + st->offset;
        if (st->type == SETTING_INT)
            memcpy(field, &st->int_default, sizeof st->int_default);
        else if (st->str_default)
            snprintf(field, st->size, "%s", st->str_default);
    }
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
    enum log_format format;

    if (cfg->command == CMD_VERSION || cfg->command == CMD_HELP)
        return true;
    if (!log_format_parse(cfg->log_format, &format))
        return fail(err, err_size, "setting log_format: \"%s\" is not json or text", cfg->log_format);
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
                    "setting redis_url: \"%s\" is not redis://host:port[/db] or unix:///path[?db=N]"
                    " or redis-sentinel://host:port,.../MASTER[/db]",
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

/* host:port in s[0..n), into host (size hsize) and port; false if malformed. */
static bool parse_host_port(const char *s, size_t n, char *host, size_t hsize, int *port)
{
    const char *colon = NULL;
    char digits[8];
    char *end;

    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hsize)
        return false;
    size_t dn = n - (size_t)(colon + 1 - s);
    if (dn == 0 || dn >= sizeof digits)
        return false;
    memcpy(digits, colon + 1, dn);
    digits[dn] = '\0';
    errno = 0;
    long v = strtol(digits, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)v;
    return true;
}

/* A "/N" database suffix, or nothing; false if malformed. */
static bool parse_db(const char *s, int *db)
{
    char *end;

    if (*s == '\0' || (s[0] == '/' && s[1] == '\0'))
        return true;
    if (*s != '/')
        return false;
    errno = 0;
    long v = strtol(s + 1, &end, 10);
    if (errno || end == s + 1 || *end || v < 0 || v > 1000)
        return false;
    *db = (int)v;
    return true;
}

/* "[user]:password@" before the last '@' (a password may itself hold '@');
 * *rest is what follows it. The ':' is required, as in api.md. */
static bool parse_userinfo(const char *s, struct redis_target *out, const char **rest)
{
    const char *at = strrchr(s, '@'), *colon;

    *rest = s;
    if (at == NULL)
        return true;
    colon = memchr(s, ':', (size_t)(at - s));
    if (colon == NULL || (size_t)(colon - s) >= sizeof out->user ||
        (size_t)(at - colon - 1) >= sizeof out->password || at == colon + 1)
        return false;
    memcpy(out->user, s, (size_t)(colon - s));
    memcpy(out->password, colon + 1, (size_t)(at - colon - 1));
    *rest = at + 1;
    return true;
}

/* h1:p1,h2:p2,.../MASTER[/db] */
static bool parse_sentinel(const char *s, struct redis_target *out)
{
    const char *slash = strchr(s, '/'), *name, *name_end;

    if (slash == NULL)
        return false;
    for (const char *p = s; p < slash;) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        struct redis_endpoint *e;
        if (out->sentinel_count == REDIS_MAX_SENTINELS)
            return false;
        e = &out->sentinels[out->sentinel_count++];
        if (!parse_host_port(p, (size_t)(end - p), e->host, sizeof e->host, &e->port))
            return false;
        p = comma ? comma + 1 : slash;
        if (comma && p == slash)
            return false;
    }
    name = slash + 1;
    name_end = strchr(name, '/');
    if (name_end == NULL)
        name_end = name + strlen(name);
    if (out->sentinel_count == 0 || name_end == name ||
        (size_t)(name_end - name) >= sizeof out->master_name)
        return false;
    memcpy(out->master_name, name, (size_t)(name_end - name));
    return parse_db(name_end, &out->db);
}

bool redis_url_parse(const char *url, struct redis_target *out)
{
    const char *rest;

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
    if (strncmp(url, "redis-sentinel://", 17) == 0)
        return parse_userinfo(url + 17, out, &rest) && parse_sentinel(rest, out);
    if (strncmp(url, "redis://", 8) != 0 || !parse_userinfo(url + 8, out, &rest))
        return false;
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    return parse_host_port(rest, n, out->host, sizeof out->host, &out->port) &&
           parse_db(rest + n, &out->db);
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
        if (settings[i].type == SETTING_INT)
            fprintf(out, "  --%-26s %s (default %lld)\n", flag, settings[i].help, settings[i].int_default);
        else if (settings[i].str_default)
            fprintf(out, "  --%-26s %s (default %s)\n", flag, settings[i].help, settings[i].str_default);
        else
            fprintf(out, "  --%-26s %s\n", flag, settings[i].help);
    }
}
