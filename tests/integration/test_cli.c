/* test_cli.c: the binary's other faces -- --version, --help, fail-fast
 * configuration (one clear line naming the bad setting, no stack of errors),
 * `migrate` being idempotent, and `rebuild-leaderboards EVENT_ID` restoring a
 * damaged Redis board from PostgreSQL exactly (the recovery path when Redis
 * loses data).
 *
 * Each runs ET_BINARY_PATH as a child with a bounded wait; the running
 * service of the suite is only used to make the data a rebuild starts from.
 */
#define _GNU_SOURCE 1 /* strcasestr */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TestSuite(cli, .init = it_setup);

static bool exited_with(const struct run *r, int code)
{
    return !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (const char *line = s; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len)
            n++;
        line = end ? end + 1 : line + len;
    }
    return n;
}

/* Fails fast: a non-zero exit within 10 s, exactly one line on stderr, naming
 * the setting. */
static void expect_config_refusal(const char *const *argv, const char *const *env, const char *setting)
{
    struct run r = run_binary(argv, env, 10000);
    cr_assert(!r.timed_out, "%s %s did not stop within 10 s with a bad %s (it should refuse to start)", argv[0],
              argv[1], setting);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
              "expected a non-zero exit status for a bad %s; stderr: %s", setting, r.err);
    cr_assert_eq(count_lines(r.err), 1, "expected exactly one line on stderr for a bad %s, got:\n%s", setting,
                 r.err);
    cr_assert(strcasestr(r.err, setting) != NULL, "the error line does not name %s: %s", setting, r.err);
}

Test(cli, version)
{
    const char *argv[] = {ET_BINARY_PATH, "--version", NULL};
    struct run r = run_binary(argv, NULL, 10000);
    cr_assert(exited_with(&r, 0), "--version did not exit 0; stderr: %s", r.err);
    cr_assert(strstr(r.out, ET_VERSION) != NULL, "--version printed \"%s\", expected it to contain %s",
              r.out, ET_VERSION);
}

Test(cli, help_lists_the_sub_commands)
{
    const char *argv[] = {ET_BINARY_PATH, "--help", NULL};
    struct run r = run_binary(argv, NULL, 10000);
    cr_assert(exited_with(&r, 0), "--help did not exit 0; stderr: %s", r.err);
    const char *words[] = {"serve", "migrate", "rebuild-leaderboards", "--config", "--port"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        cr_assert(strstr(r.out, words[i]) != NULL, "--help does not mention %s:\n%s", words[i], r.out);
}

Test(cli, unknown_sub_command_fails)
{
    const char *argv[] = {ET_BINARY_PATH, "frobnicate", NULL};
    struct run r = run_binary(argv, NULL, 10000);
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
              "an unknown sub-command did not fail; stderr: %s", r.err);
    cr_assert(strstr(r.err, "frobnicate") != NULL, "the error does not name the unknown command: %s", r.err);
}

Test(cli, bad_port_flag_fails_fast_with_one_line)
{
    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "notaport", "--bind", "127.0.0.1", NULL};
    expect_config_refusal(argv, NULL, "port");
}

Test(cli, bad_port_env_fails_fast_with_one_line)
{
    const char *argv[] = {ET_BINARY_PATH, "serve", NULL};
    const char *env[] = {"EVENTTRACK_PORT=70000", NULL};
    expect_config_refusal(argv, env, "port");
}

Test(cli, bad_redis_url_fails_fast_with_one_line)
{
    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", NULL};
    const char *env[] = {"EVENTTRACK_REDIS_URL=http://127.0.0.1:1/", NULL};
    expect_config_refusal(argv, env, "redis_url");
}

Test(cli, serve_refuses_to_start_without_an_admin_key)
{
    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", NULL};
    const char *env[] = {"EVENTTRACK_ADMIN_KEY", NULL};
    expect_config_refusal(argv, env, "admin_key");
}

Test(cli, migrate_is_idempotent)
{
    const char *argv[] = {ET_BINARY_PATH, "migrate", NULL};
    for (int i = 0; i < 2; i++) {
        struct run r = run_binary(argv, NULL, 60000);
        cr_assert(exited_with(&r, 0), "migrate run %d failed; stderr: %s", i + 1, r.err);
    }
    cr_assert_eq(pg_ll("SELECT count(*) FROM information_schema.tables WHERE table_name = 'registrations'", NULL),
                 1);
}

Test(cli, rebuild_leaderboards_restores_a_damaged_board)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *base = it_id("spk");
    char *a = fmt("%s_a", base), *b = fmt("%s_b", base), *c = fmt("%s_c", base);
    char *ses = make_session(evt, a);
    char *dup_id = it_id("view");
    char *user = it_id("att");
    struct http_resp *r = post_view(dup_id, ses, NULL, user);
    EXPECT_JSON(r, 201);
    const struct view views[] = {{ses, a}, {ses, b}, {ses, b}, {ses, b}, {ses, c}, {ses, c}};
    post_views(views, 6);
    const struct board_entry want[] = {{b, 3, 1}, {c, 2, 2}, {a, 2, 2}};
    EXPECT_BOARD(evt, "", want, 3);

    /* Damage this event's keys only: a wrong score, a lost member, a lost
     * applied set. */
    char *key = lb_key(evt), *applied = lb_applied_key(evt);
    redis_ll("ZADD %s 99 %s", key, a);
    redis_ll("ZREM %s %s", key, b);
    redis_ll("DEL %s", applied);

    const char *argv[] = {ET_BINARY_PATH, "rebuild-leaderboards", evt, NULL};
    struct run run = run_binary(argv, NULL, 60000);
    cr_assert(exited_with(&run, 0), "rebuild-leaderboards %s failed; stderr: %s", evt, run.err);

    EXPECT_BOARD(evt, "", want, 3);
    cr_assert_eq(redis_applied_count(evt), 7, "the applied set was not rebuilt");
    /* Still idempotent after the rebuild: a retry of a counted event is a duplicate. */
    r = post_view(dup_id, ses, NULL, user);
    EXPECT_JSON(r, 200);
    EXPECT_BOARD(evt, "", want, 3);
}

/* Replicas share PostgreSQL, and applied_retention_hours decides when a
 * board's dedup set may be forgotten: a replica that disagrees with the
 * value recorded by the first one (the suite's own service, with the
 * default) refuses to start, naming the setting and both values, and
 * changes nothing; one with the same value starts. */
Test(cli, a_replica_with_a_different_shared_setting_refuses_to_start)
{
    cr_assert_eq(pg_ll("SELECT value::bigint FROM cluster_settings WHERE name = 'applied_retention_hours'", NULL),
                 168, "the suite's service did not record its applied_retention_hours");
    static const char *const table_sql =
        "SELECT string_agg(name || '=' || value || '@' || set_at, ',' ORDER BY name) FROM cluster_settings";
    char *table = pg_text(table_sql, NULL);
    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", "--applied-retention-hours", "169", NULL};
    struct run r = run_binary(argv, NULL, 10000);
    cr_assert(!r.timed_out, "a replica with applied_retention_hours 169 (others 168) did not stop within 10 s");
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
              "a replica with a different applied_retention_hours started; stderr: %s", r.err);
    cr_assert(strstr(r.err, "applied_retention_hours") && strstr(r.err, "169") && strstr(r.err, "168"),
              "the refusal does not name the setting and both values: %s", r.err);
    cr_assert_eq(pg_ll("SELECT value::bigint FROM cluster_settings WHERE name = 'applied_retention_hours'", NULL),
                 168, "the refused replica changed the recorded value");
    cr_assert_str_eq(pg_text(table_sql, NULL), table, "the refused replica changed cluster_settings");
}
