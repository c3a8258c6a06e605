/*
 * test_config.c - config_load (defaults < file < environment < flags, commands, and the
 * one-line errors that name the bad setting) and redis_url_parse. Each test runs in its
 * own process, in an empty temporary directory, with every EVENTTRACK_* variable unset.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

static char tmpdir[64];
static char cfg_path[128];

static void unset_eventtrack_env(void)
{
    for (;;) {
        char name[256];
        size_t n;
        char **e;
        for (e = environ; *e && strncmp(*e, "EVENTTRACK_", 11) != 0; e++)
            ;
        if (*e == NULL)
            return;
        n = strcspn(*e, "=");
        cr_assert_lt(n, sizeof name);
        memcpy(name, *e, n);
        name[n] = '\0';
        unsetenv(name);
    }
}

#define VALID_ADMIN_KEY "0123456789abcdef0123456789abcdef"

static void setup(void)
{
    unset_eventtrack_env();
    /* serve needs an admin key; the tests of that rule unset it again. */
    setenv("EVENTTRACK_ADMIN_KEY", VALID_ADMIN_KEY, 1);
    strcpy(tmpdir, "/tmp/et-config-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    cr_assert_eq(chdir(tmpdir), 0);
    snprintf(cfg_path, sizeof cfg_path, "%s/test.conf", tmpdir);
}

static void teardown(void)
{
    char path[160];

    unlink(cfg_path);
    snprintf(path, sizeof path, "%s/config/eventtrack.conf", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config", tmpdir);
    rmdir(path);
    if (chdir("/") == 0)
        rmdir(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static struct config cfg;
static char err[512];

/* config_load over a NULL-terminated argument list (argv[0] supplied). */
#define LOAD(...) load((const char *const[]){"eventtrack", __VA_ARGS__, NULL})
#define LOAD0() load((const char *const[]){"eventtrack", NULL})

static bool load(const char *const *args)
{
    char *argv[32];
    int argc = 0;

    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    memset(&cfg, 0xAA, sizeof cfg);
    err[0] = '\0';
    return config_load(argc, argv, &cfg, err, sizeof err);
}

static void assert_fails(bool ok, const char *want)
{
    cr_assert_not(ok, "loaded, want error: %s", want);
    cr_assert_str_eq(err, want);
}

Test(config, defaults)
{
    cr_assert(LOAD("--database-url", "postgres://db"), "%s", err);
    cr_assert_eq(cfg.command, CMD_SERVE);
    cr_assert_str_eq(cfg.rebuild_event_id, "");
    cr_assert_str_eq(cfg.bind, "127.0.0.1");
    cr_assert_eq(cfg.port, 8080);
    cr_assert_str_eq(cfg.database_url, "postgres://db");
    cr_assert_str_eq(cfg.redis_url, "redis://127.0.0.1:6379/0");
    cr_assert_str_eq(cfg.redis.host, "127.0.0.1");
    cr_assert_eq(cfg.redis.port, 6379);
    cr_assert_str_eq(cfg.redis.socket_path, "");
    cr_assert_eq(cfg.redis.db, 0);
    cr_assert_eq(cfg.threads, 16);
    cr_assert_eq(cfg.max_body_bytes, 1048576);
    cr_assert_eq(cfg.connection_timeout, 30);
    cr_assert_eq(cfg.connection_limit, 16384);
    cr_assert_eq(cfg.per_ip_connection_limit, 0);
    cr_assert_eq(cfg.shutdown_grace_seconds, 3);
    cr_assert_eq(cfg.shutdown_drain_seconds, 10);
    cr_assert_str_eq(cfg.admin_key, VALID_ADMIN_KEY);
    cr_assert_eq(cfg.rate_limit_requests, 1000);
    cr_assert_eq(cfg.rate_limit_window_seconds, 10);
    cr_assert_eq(cfg.json_max_depth, 32);
    cr_assert_eq(cfg.analytics_batch_max, 1000);
    cr_assert_eq(cfg.max_name_chars, 200);
}

Test(config, serve_needs_an_admin_key_of_32_visible_characters)
{
    unsetenv("EVENTTRACK_ADMIN_KEY");
    assert_fails(LOAD("--database-url", "postgres://db"),
                 "setting admin_key: missing (set EVENTTRACK_ADMIN_KEY to at least 32 visible ASCII characters)");
    assert_fails(LOAD("--database-url", "postgres://db", "--admin-key", "0123456789abcdef0123456789abcde"),
                 "setting admin_key: too short or not visible ASCII (set EVENTTRACK_ADMIN_KEY to at least 32 visible ASCII characters)");
    assert_fails(LOAD("--database-url", "postgres://db", "--admin-key", "0123456789abcdef 0123456789abcdef"),
                 "setting admin_key: too short or not visible ASCII (set EVENTTRACK_ADMIN_KEY to at least 32 visible ASCII characters)");
    /* The other commands never authenticate anyone. */
    cr_assert(LOAD("migrate", "--database-url", "postgres://db"), "%s", err);
    cr_assert(LOAD("rebuild-leaderboards", "--database-url", "postgres://db"), "%s", err);
}

Test(config, missing_database_url_names_it)
{
    static const char *const want =
        "setting database_url: missing (set EVENTTRACK_DATABASE_URL or --database-url)";

    assert_fails(LOAD0(), want);
    assert_fails(LOAD("migrate"), want);
    assert_fails(LOAD("rebuild-leaderboards"), want);
    setenv("EVENTTRACK_DATABASE_URL", "", 1);
    assert_fails(LOAD0(), want);
}

Test(config, precedence_file_env_flags)
{
    write_file(cfg_path, "port = 1111\n"
                         "threads = 3\n"
                         "connection_limit = 50\n"
                         "bind = 10.0.0.1\n"
                         "database_url = file-db\n"
                         "redis_url = redis://file:1/1\n");
    setenv("EVENTTRACK_PORT", "2222", 1);
    setenv("EVENTTRACK_THREADS", "4", 1);
    setenv("EVENTTRACK_DATABASE_URL", "env-db", 1);
    setenv("EVENTTRACK_REDIS_URL", "redis://env:2/2", 1);

    cr_assert(LOAD("--config", cfg_path, "--threads", "5", "--database-url=flag-db"), "%s", err);
    cr_assert_eq(cfg.connection_limit, 50, "file over default");
    cr_assert_str_eq(cfg.bind, "10.0.0.1", "file over default");
    cr_assert_eq(cfg.port, 2222, "env over file");
    cr_assert_str_eq(cfg.redis_url, "redis://env:2/2", "env over file");
    cr_assert_str_eq(cfg.redis.host, "env");
    cr_assert_eq(cfg.redis.port, 2);
    cr_assert_eq(cfg.redis.db, 2);
    cr_assert_eq(cfg.threads, 5, "flag over env");
    cr_assert_str_eq(cfg.database_url, "flag-db", "flag over env");
    cr_assert_eq(cfg.max_body_bytes, 1048576, "default");
}

Test(config, config_path_forms)
{
    write_file(cfg_path, "database_url = from-file\nport = 7\n");

    cr_assert(LOAD("--config=" "/nonexistent/but/overridden", "--config", cfg_path), "%s", err);
    cr_assert_eq(cfg.port, 7, "the last --config wins");
    {
        char flag[160];
        snprintf(flag, sizeof flag, "--config=%s", cfg_path);
        cr_assert(LOAD(flag), "%s", err);
        cr_assert_str_eq(cfg.database_url, "from-file");
    }
    setenv("EVENTTRACK_CONFIG", cfg_path, 1);
    cr_assert(LOAD0(), "%s", err);
    cr_assert_eq(cfg.port, 7);
}

Test(config, default_file_in_working_directory)
{
    cr_assert_eq(mkdir("config", 0700), 0);
    write_file("config/eventtrack.conf", "database_url = cwd-db\nthreads = 2\n");
    cr_assert(LOAD0(), "%s", err);
    cr_assert_str_eq(cfg.database_url, "cwd-db");
    cr_assert_eq(cfg.threads, 2);
}

Test(config, default_file_optional)
{
    /* The empty working directory has no config/eventtrack.conf: not an error. */
    cr_assert(LOAD("--database-url", "x"), "%s", err);
    cr_assert_eq(cfg.threads, 16);
}

Test(config, explicit_missing_file_refused)
{
    assert_fails(LOAD("--config", "/nonexistent/et.conf", "--database-url", "x"),
                 "setting config: cannot read /nonexistent/et.conf: No such file or directory");
    setenv("EVENTTRACK_CONFIG", "/nonexistent/env.conf", 1);
    assert_fails(LOAD("--database-url", "x"),
                 "setting config: cannot read /nonexistent/env.conf: No such file or directory");
}

Test(config, file_comments_blank_lines_and_spacing)
{
    write_file(cfg_path, "# a comment\n"
                         "\n"
                         "   \t\n"
                         "  port\t=\t 9090  \r\n"
                         "database_url = host=localhost dbname=et\n"
                         "bind=0.0.0.0");   /* no final newline */
    cr_assert(LOAD("--config", cfg_path), "%s", err);
    cr_assert_eq(cfg.port, 9090);
    cr_assert_str_eq(cfg.database_url, "host=localhost dbname=et");
    cr_assert_str_eq(cfg.bind, "0.0.0.0");
}

Test(config, unknown_file_key_names_key_and_line)
{
    char want[256];

    write_file(cfg_path, "# settings\nport = 1\nbogus_key = 2\n");
    snprintf(want, sizeof want, "setting bogus_key (%s line 3): unknown setting", cfg_path);
    assert_fails(LOAD("--config", cfg_path, "--database-url", "x"), want);
}

Test(config, file_line_without_equals)
{
    char want[256];

    write_file(cfg_path, "port 8080\n");
    snprintf(want, sizeof want, "setting config (%s line 1): expected key = value", cfg_path);
    assert_fails(LOAD("--config", cfg_path, "--database-url", "x"), want);
}

Test(config, bad_integer_in_file_names_setting_and_line)
{
    char want[256];

    write_file(cfg_path, "\nport = abc\n");
    snprintf(want, sizeof want,
             "setting port (%s line 2): \"abc\" is not an integer from 0 to 65535", cfg_path);
    assert_fails(LOAD("--config", cfg_path, "--database-url", "x"), want);
}

Test(config, bad_integer_in_env_names_variable)
{
    setenv("EVENTTRACK_THREADS", "0", 1);
    assert_fails(LOAD("--database-url", "x"),
                 "setting threads (EVENTTRACK_THREADS): \"0\" is not an integer from 1 to 256");
    setenv("EVENTTRACK_THREADS", "", 1);
    assert_fails(LOAD("--database-url", "x"),
                 "setting threads (EVENTTRACK_THREADS): \"\" is not an integer from 1 to 256");
}

struct int_flag_case {
    char flag[40];
    char value[32];
    char want[160];   /* "" : accepted */
};

ParameterizedTestParameters(config, integer_flags)
{
    static struct int_flag_case cases[] = {
        {"--port", "0", ""},
        {"--port", "65535", ""},
        {"--port", "65536", "setting port (flag --port): \"65536\" is not an integer from 0 to 65535"},
        {"--port", "-1", "setting port (flag --port): \"-1\" is not an integer from 0 to 65535"},
        {"--port", "80x", "setting port (flag --port): \"80x\" is not an integer from 0 to 65535"},
        {"--port", "8.0", "setting port (flag --port): \"8.0\" is not an integer from 0 to 65535"},
        {"--port", "99999999999999999999",
         "setting port (flag --port): \"99999999999999999999\" is not an integer from 0 to 65535"},
        {"--threads", "256", ""},
        {"--threads", "257", "setting threads (flag --threads): \"257\" is not an integer from 1 to 256"},
        {"--max-body-bytes", "1023",
         "setting max_body_bytes (flag --max-body-bytes): \"1023\" is not an integer from 1024 to 67108864"},
        {"--max_body_bytes", "67108864", ""},
        {"--connection-timeout", "3601",
         "setting connection_timeout (flag --connection-timeout): \"3601\" is not an integer from 1 to 3600"},
        {"--per-ip-connection-limit", "0", ""},
        {"--shutdown-drain-seconds", "601",
         "setting shutdown_drain_seconds (flag --shutdown-drain-seconds): \"601\" is not an integer from 0 to 600"},
    };
    return cr_make_param_array(struct int_flag_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct int_flag_case *c, config, integer_flags)
{
    bool ok = LOAD("--database-url", "x", c->flag, c->value);

    if (c->want[0] == '\0')
        cr_assert(ok, "%s %s: %s", c->flag, c->value, err);
    else
        assert_fails(ok, c->want);
}

/* Else no body of the largest accepted size could ever be received. */
Test(config, body_budget_must_hold_the_largest_body)
{
    cr_assert(LOAD("--database-url", "x"), "%s", err);
    cr_assert_eq(cfg.body_budget_bytes, 64LL << 20, "default");
    cr_assert(LOAD("--database-url", "x", "--max-body-bytes", "4096", "--body-budget-bytes", "4096"), "%s", err);
    assert_fails(LOAD("--database-url", "x", "--max-body-bytes", "4096", "--body-budget-bytes", "4095"),
                 "setting body_budget_bytes: 4095 is less than max_body_bytes (4096)");
    assert_fails(LOAD("--database-url", "x", "--max-body-bytes", "67108864", "--body-budget-bytes", "67108863"),
                 "setting body_budget_bytes: 67108863 is less than max_body_bytes (67108864)");
}

Test(config, flag_values_with_equals)
{
    cr_assert(LOAD("--database-url=host=db dbname=et", "--port=0", "--redis_url=unix:///r.sock?db=4"),
              "%s", err);
    cr_assert_str_eq(cfg.database_url, "host=db dbname=et");
    cr_assert_eq(cfg.port, 0);
    cr_assert_str_eq(cfg.redis.socket_path, "/r.sock");
    cr_assert_eq(cfg.redis.db, 4);
}

Test(config, string_too_long)
{
    char bind[80];

    memset(bind, 'a', 64);
    bind[64] = '\0';
    assert_fails(LOAD("--database-url", "x", "--bind", bind),
                 "setting bind (flag --bind): longer than 63 characters");
    bind[63] = '\0';
    cr_assert(LOAD("--database-url", "x", "--bind", bind), "%s", err);
    cr_assert_eq(strlen(cfg.bind), 63);
}

Test(config, flag_errors)
{
    assert_fails(LOAD("--database-url", "x", "--nope", "1"),
                 "unknown flag --nope (see eventtrack --help)");
    assert_fails(LOAD("--database-url", "x", "--port"), "setting port: --port needs a value");
    assert_fails(LOAD("--database-url", "x", "--config"), "setting config: --config needs a path");
}

Test(config, help_and_version)
{
    cr_assert(LOAD("--help"));
    cr_assert_eq(cfg.command, CMD_HELP);
    cr_assert(LOAD("-h"));
    cr_assert_eq(cfg.command, CMD_HELP);
    cr_assert(LOAD("migrate", "--help"));
    cr_assert_eq(cfg.command, CMD_HELP);
    cr_assert(LOAD("--version"));
    cr_assert_eq(cfg.command, CMD_VERSION);
    /* neither needs a database_url nor reads a config file */
    cr_assert(LOAD("--config", "/nonexistent/et.conf", "--version"));
    cr_assert_eq(cfg.command, CMD_VERSION);
}

Test(config, commands)
{
    cr_assert(LOAD("serve", "--database-url", "x"), "%s", err);
    cr_assert_eq(cfg.command, CMD_SERVE);
    cr_assert(LOAD("migrate", "--database-url", "x"), "%s", err);
    cr_assert_eq(cfg.command, CMD_MIGRATE);
}

Test(config, migrate_does_not_need_redis)
{
    cr_assert(LOAD("migrate", "--database-url", "x", "--redis-url", "bogus"), "%s", err);
    cr_assert_eq(cfg.command, CMD_MIGRATE);
    assert_fails(LOAD("serve", "--database-url", "x", "--redis-url", "bogus"),
                 "setting redis_url: \"bogus\" is not redis://host:port[/db] or unix:///path[?db=N]"
                 " or redis-sentinel://host:port,.../MASTER[/db]");
}

Test(config, rebuild_leaderboards)
{
    cr_assert(LOAD("rebuild-leaderboards", "--database-url", "x"), "%s", err);
    cr_assert_eq(cfg.command, CMD_REBUILD_LEADERBOARDS);
    cr_assert_str_eq(cfg.rebuild_event_id, "");

    cr_assert(LOAD("--database-url", "x", "rebuild-leaderboards", "evt_2026.main"), "%s", err);
    cr_assert_eq(cfg.command, CMD_REBUILD_LEADERBOARDS);
    cr_assert_str_eq(cfg.rebuild_event_id, "evt_2026.main");
}

Test(config, rebuild_leaderboards_bad_event_id)
{
    char id[140];

    assert_fails(LOAD("rebuild-leaderboards", "a b", "--database-url", "x"),
                 "rebuild-leaderboards: \"a b\" is not a valid event id");
    assert_fails(LOAD("rebuild-leaderboards", "", "--database-url", "x"),
                 "rebuild-leaderboards: \"\" is not a valid event id");
    memset(id, 'e', 129);
    id[129] = '\0';
    cr_assert_not(LOAD("rebuild-leaderboards", id, "--database-url", "x"));
    cr_assert(strstr(err, "is not a valid event id") != NULL, "%s", err);
    id[128] = '\0';
    cr_assert(LOAD("rebuild-leaderboards", id, "--database-url", "x"), "%s", err);
    cr_assert_str_eq(cfg.rebuild_event_id, id);
}

Test(config, unknown_command_and_extra_arguments)
{
    assert_fails(LOAD("frobnicate", "--database-url", "x"),
                 "unknown command \"frobnicate\" (see eventtrack --help)");
    assert_fails(LOAD("serve", "extra", "--database-url", "x"),
                 "unexpected argument \"extra\" (see eventtrack --help)");
    assert_fails(LOAD("rebuild-leaderboards", "e1", "e2", "--database-url", "x"),
                 "unexpected argument \"e2\" (see eventtrack --help)");
}

Test(config, usage_lists_every_flag)
{
    static const char *const flags[] = {
        "--bind", "--port", "--database-url", "--redis-url", "--threads", "--max-body-bytes",
        "--connection-timeout", "--connection-limit", "--per-ip-connection-limit",
        "--shutdown-drain-seconds", "rebuild-leaderboards",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cr_assert_not_null(f);
    config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_assert(strstr(text, flags[i]) != NULL, "usage lacks %s", flags[i]);
    free(text);
}

/* ------------------------------------------------------------------ redis_url_parse */

struct redis_case {
    char url[48];
    bool ok;
    char host[16];
    int port;
    char socket_path[24];
    int db;
};

ParameterizedTestParameters(redis_url, table)
{
    static struct redis_case cases[] = {
        {"redis://h:1/2", true, "h", 1, "", 2},
        {"redis://h:6379", true, "h", 6379, "", 0},
        {"redis://h:6379/", true, "h", 6379, "", 0},
        {"redis://127.0.0.1:26379/0", true, "127.0.0.1", 26379, "", 0},
        {"redis://cache.local:65535/1000", true, "cache.local", 65535, "", 1000},
        {"unix:///tmp/r.sock?db=3", true, "", 0, "/tmp/r.sock", 3},
        {"unix:///tmp/r.sock", true, "", 0, "/tmp/r.sock", 0},
        {"", false, "", 0, "", 0},
        {"h:1", false, "", 0, "", 0},
        {"http://h:1", false, "", 0, "", 0},
        {"rediss://h:1", false, "", 0, "", 0},
        {"REDIS://h:1", false, "", 0, "", 0},
        {"redis://h", false, "", 0, "", 0},
        {"redis://:6379", false, "", 0, "", 0},
        {"redis://h:", false, "", 0, "", 0},
        {"redis://h:0", false, "", 0, "", 0},
        {"redis://h:65536", false, "", 0, "", 0},
        {"redis://h:abc", false, "", 0, "", 0},
        {"redis://h:1x", false, "", 0, "", 0},
        {"redis://h:1/x", false, "", 0, "", 0},
        {"redis://h:1/-1", false, "", 0, "", 0},
        {"redis://h:1/1001", false, "", 0, "", 0},
        {"redis://h:1/2/3", false, "", 0, "", 0},
        {"redis://h:1?db=2", false, "", 0, "", 0},
        {"unix://", false, "", 0, "", 0},
        {"unix://tmp/r.sock", false, "", 0, "", 0},
        {"unix://?db=1", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?db=", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?db=x", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?db=-1", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?db=1001", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?db=1&x=2", false, "", 0, "", 0},
        {"unix:///tmp/r.sock?foo=1", false, "", 0, "", 0},
    };
    return cr_make_param_array(struct redis_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct redis_case *c, redis_url, table)
{
    struct redis_target t;

    memset(&t, 0x55, sizeof t);
    cr_assert_eq(redis_url_parse(c->url, &t), c->ok, "redis_url_parse(\"%s\")", c->url);
    if (!c->ok)
        return;
    cr_assert_str_eq(t.host, c->host, "%s", c->url);
    cr_assert_eq(t.port, c->port, "%s", c->url);
    cr_assert_str_eq(t.socket_path, c->socket_path, "%s", c->url);
    cr_assert_eq(t.db, c->db, "%s", c->url);
}

Test(redis_url, over_long_host_and_path_refused)
{
    char url[400];
    struct redis_target t;

    snprintf(url, sizeof url, "redis://%0256d:6379", 0);     /* host of 256 characters */
    cr_assert_not(redis_url_parse(url, &t));
    snprintf(url, sizeof url, "redis://%0255d:6379", 0);     /* 255 fits */
    cr_assert(redis_url_parse(url, &t));
    cr_assert_eq(strlen(t.host), 255);
    snprintf(url, sizeof url, "unix:///%0255d", 0);          /* path of 256 characters */
    cr_assert_not(redis_url_parse(url, &t));
}

Test(redis_url, password_and_acl_user)
{
    struct redis_target t;

    cr_assert(redis_url_parse("redis://:s3cret@h:1/2", &t));
    cr_assert_str_eq(t.user, "");
    cr_assert_str_eq(t.password, "s3cret");
    cr_assert_str_eq(t.host, "h");
    cr_assert_eq(t.port, 1);
    cr_assert_eq(t.db, 2);
    cr_assert(redis_url_parse("redis://app:p@ss@h:1", &t), "the last '@' ends the password");
    cr_assert_str_eq(t.user, "app");
    cr_assert_str_eq(t.password, "p@ss");
    cr_assert_eq(t.master_name[0], '\0');
    cr_assert_not(redis_url_parse("redis://nopassword@h:1", &t), "the ':' is required");
    cr_assert_not(redis_url_parse("redis://user:@h:1", &t), "an empty password is refused");
    cr_assert_not(redis_url_parse("redis://:p@:1", &t));
}

Test(redis_url, sentinel_forms)
{
    struct redis_target t;

    cr_assert(redis_url_parse("redis-sentinel://127.0.0.1:23010,127.0.0.1:23011,h3:3/mymaster/4", &t));
    cr_assert_eq(t.sentinel_count, 3);
    cr_assert_str_eq(t.sentinels[0].host, "127.0.0.1");
    cr_assert_eq(t.sentinels[0].port, 23010);
    cr_assert_eq(t.sentinels[1].port, 23011);
    cr_assert_str_eq(t.sentinels[2].host, "h3");
    cr_assert_eq(t.sentinels[2].port, 3);
    cr_assert_str_eq(t.master_name, "mymaster");
    cr_assert_eq(t.db, 4);
    cr_assert_str_eq(t.host, "");
    cr_assert(redis_url_parse("redis-sentinel://u:pw@s:1/m", &t));
    cr_assert_eq(t.sentinel_count, 1);
    cr_assert_str_eq(t.user, "u");
    cr_assert_str_eq(t.password, "pw");
    cr_assert_str_eq(t.master_name, "m");
    cr_assert_eq(t.db, 0);

    static const char *const bad[] = {
        "redis-sentinel://s:1",          "redis-sentinel://s:1/",     "redis-sentinel:///m",
        "redis-sentinel://s:1,/m",       "redis-sentinel://s/m",      "redis-sentinel://s:1,t/m",
        "redis-sentinel://s:1/m/x",      "redis-sentinel://s:1/m/1/2", "redis-sentinel://s:0/m",
        "redis-sentinel://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9/m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(redis_url_parse(bad[i], &t), "%s", bad[i]);
}
