/*
 * tests/load/service_sql.c - prints the SQL the service really prepares, so
 * scripts/bench can check that the pgbench scripts in tests/load/ still run
 * the service's own statements (a stale copy would measure the wrong limit).
 *
 * It compiles the store files themselves into this program (their statements
 * are file-static), and links the rest of eventtrack_core for the symbols they
 * call; nothing here runs any of that code.
 *
 *   service_sql NAME    prints the statement prepared as NAME, exit 1 if none
 */
#include <stdio.h>
#include <string.h>

#include "store/registrations.c"
#include "store/analytics.c"
#include "store/keys.c"

static const struct pg_stmt *const statements[] = {&stmt_register, &stmt_ingest,
                                                   &stmt_authenticate};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: service_sql STATEMENT_NAME\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        if (strcmp(statements[i]->name, argv[1]) == 0) {
            printf("%s\n", statements[i]->sql);
            return 0;
        }
    }
    fprintf(stderr, "service_sql: no statement named %s\n", argv[1]);
    return 1;
}
