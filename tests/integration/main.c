/* main.c: one service for the whole integration run.
 *
 * Criterion runs every test in its own re-executed worker process, so a
 * service started per test would cost a start-up each time. Instead this main
 * starts the real binary once (port 0, test stores from the environment),
 * exports its base URL as ET_IT_BASE_URL -- the environment is the one thing a
 * re-executed worker inherits -- runs every test, then stops the service and
 * fails the run if it died during the tests or did not shut down cleanly on
 * SIGTERM.
 *
 * ET_IT_BASE_URL already set in the environment: use that service instead of
 * starting one (for debugging a service run under gdb or valgrind).
 */
#include "harness.h"

#include <string.h>

#include <stdio.h>
#include <stdlib.h>

/* With -DET_SANITIZE=ON the test processes are built with AddressSanitizer
 * too. They are short-lived and own what they allocate until they exit
 * (harness.h), so leak reports from them are noise that would bury the ones
 * that matter: those of the service under test, whose stderr goes to the
 * service log. This hook only affects this executable. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

/*
 * After the run, the shared service's log must not show the symptoms of two
 * races the benchmark once found under load: a false "Redis lost
 * acknowledged writes" alarm (every board rebuilt for nothing), and MHD
 * failing to send because the slow-client watchdog shut a healthy
 * connection. The suite's concurrent tests drive both code paths hard.
 */
static bool service_log_clean(void)
{
    static const char *const symptoms[] = {"Redis lost acknowledged writes",
                                           "socket is no longer available for sending"};
    char line[4096];
    bool clean = true;
    FILE *f = fopen(service_log_path(), "r");

    if (f == NULL)
        return true;
    while (fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof symptoms / sizeof symptoms[0]; i++)
            if (strstr(line, symptoms[i])) {
                fprintf(stderr, "integration: FAILED: the service logged: %s", line);
                clean = false;
            }
    fclose(f);
    return clean;
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    /* A default per-test timeout, so a hung request fails one test instead of
     * the run; --timeout / CRITERION_TIMEOUT still win. Criterion caps every
     * suite's own .timeout at this value, so it is the longest any suite
     * declares (pg_failover makes a PostgreSQL cluster of its own: 30-50 s
     * on a loaded 2-core machine before its test begins). */
    criterion_options.timeout = 150;
    if (!criterion_handle_args(argc, argv, true)) {
        criterion_finalize(tests);
        return 0;
    }
    it_env_defaults();
    const char *given = getenv("ET_IT_BASE_URL");
    bool own_service = !(given && *given);
    if (own_service) {
        char *url = NULL;
        if (service_start(&url) != 0) {
            fprintf(stderr, "integration: the service did not start; no test was run\n");
            criterion_finalize(tests);
            return 2;
        }
        fprintf(stderr, "integration: service at %s (log: %s)\n", url, service_log_path());
        setenv("ET_IT_BASE_URL", url, 1);
        free(url);
    }
    int ok = criterion_run_all_tests(tests);
    criterion_finalize(tests);
    int bad_stop = own_service ? service_stop_status() : 0;
    bool clean_log = !own_service || service_log_clean();
    return ok && !bad_stop && clean_log ? 0 : 1;
}
