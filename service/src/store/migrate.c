/*
 * store/migrate.c - applying schema/ migrations.
 *
 * Design notes:
 *  1. A migration normally runs in its own transaction together with the row
 *     that records it in schema_migrations, so it is applied entirely or not
 *     at all, and running `eventtrack migrate` again applies nothing twice.
 *  2. A migration whose header (its leading comment lines) holds the line
 *     `-- eventtrack:no-transaction` runs outside any transaction, one
 *     statement at a time, because some statements refuse a transaction
 *     block: CREATE INDEX CONCURRENTLY, which builds an index while the table
 *     keeps taking writes. Its row is written only after every statement
 *     succeeded, so an interrupted one runs again, whole, next time: each of
 *     its statements must therefore be harmless to repeat (IF NOT EXISTS).
 *  3. An interrupted or failed CREATE INDEX CONCURRENTLY leaves its index
 *     behind INVALID (pg_index.indisvalid false): never used by a query but
 *     still maintained by every write, and IF NOT EXISTS would keep it. Before
 *     such a statement runs again, an INVALID index of the name it creates is
 *     dropped (DROP INDEX CONCURRENTLY, which does not block writes either).
 *  4. A session-level advisory lock serialises concurrent migrators (two
 *     replicas, the Kubernetes Job). It is taken by polling
 *     pg_try_advisory_lock, never by waiting inside pg_advisory_lock: a
 *     waiter blocked in a statement holds a snapshot, CREATE INDEX
 *     CONCURRENTLY waits for every older snapshot to go, and the two would
 *     deadlock (PostgreSQL then aborts one of them).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "embedded.h"
#include "log.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/store.h"

#define MIGRATE_LOCK_ID "7310562"   /* arbitrary, fixed: the advisory lock of migrations */
#define MIGRATE_NO_TX_MARK "-- eventtrack:no-transaction"   /* design note 2 */
#define MIGRATE_LOCK_POLL_NS (200 * 1000 * 1000)             /* design note 4 */
#define MIGRATE_NAME_MAX 128         /* an index name as written: NAMEDATALEN, quoted */

static const struct pg_stmt stmt_applied = {
    "migrate_applied", "SELECT 1 FROM schema_migrations WHERE version = $1", 1};
static const struct pg_stmt stmt_record = {
    "migrate_record", "INSERT INTO schema_migrations (version) VALUES ($1)", 1};
static const struct pg_stmt stmt_try_lock = {
    "migrate_try_lock", "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_ID ")", 0};
/* t when an index of that name exists and is INVALID (design note 3). */
static const struct pg_stmt stmt_invalid = {
    "migrate_invalid_index",
    "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid", 1};

/* Runs SQL text of an embedded migration (all of it, one statement of it,
 * or the DROP of design note 3 naming an index it creates): build-time text,
 * never input, hence PQexec (scripts/check-sql vets `text` here only). */
static enum et_err migrate_exec_text(struct pg *db, const char *name, const char *text,
                                     struct problem *p)
{
    PGresult *res = PQexec(pg_conn(db), text);
    enum et_err err = ET_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        err = problem_set(p, ET_ERR_INTERNAL, NULL, "migration %s failed: %s", name,
                          PQresultErrorMessage(res));
    PQclear(res);
    return err;
}

static bool migrate_is_applied(struct pg *db, const char *version, bool *applied,
                               struct problem *p)
{
    const char *params[] = {version};
    PGresult *res = pg_exec(db, &stmt_applied, params, p);

    if (res == NULL)
        return false;
    *applied = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

/* Design note 2: the mark must be one of the comment lines the file opens
 * with, alone on its line, so a mention further down changes nothing. */
static bool migrate_is_non_transactional(const char *text)
{
    size_t mark = strlen(MIGRATE_NO_TX_MARK);

    for (const char *line = text; *line != '\0';) {
        const char *end = line + strcspn(line, "\n");
        const char *t = end;

        while (t > line && isspace((unsigned char)t[-1]))
            t--;
        if ((size_t)(t - line) == mark && strncmp(line, MIGRATE_NO_TX_MARK, mark) == 0)
            return true;
        if (t > line && strncmp(line, "--", 2) != 0)
            return false;
        line = *end ? end + 1 : end;
    }
    return false;
}

/* Past a quoted run starting at s (', " or a $tag$ dollar quote), or past a
 * comment; s itself when none starts there. prev: the character before s
 * ('\0' at the start), which tells E'...' and identifiers with a $ apart. */
static const char *sql_skip_quoted(const char *s, char prev)
{
    if (s[0] == '-' && s[1] == '-')
        return s + strcspn(s, "\n");
    if (s[0] == '/' && s[1] == '*') {
        int depth = 0;    /* PostgreSQL nests block comments */
        const char *c = s;
        do {
            if (c[0] == '/' && c[1] == '*')
                depth++, c++;
            else if (c[0] == '*' && c[1] == '/')
                depth--, c++;
            c += *c ? 1 : 0;
        } while (depth > 0 && *c);
        return c;
    }
    if (*s == '\'' || *s == '"') {
        bool backslash = *s == '\'' && (prev == 'E' || prev == 'e');
        const char *c = s + 1;
        while (*c && !(*c == *s && c[1] != *s)) {
            c += (*c == *s || (backslash && *c == '\\')) && c[1] ? 2 : 1;
        }
        return *c ? c + 1 : c;
    }
    if (*s == '$' && !isalnum((unsigned char)prev) && prev != '_' && !isdigit((unsigned char)s[1])) {
        size_t tag = 1 + strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
        if (s[tag] == '$') {
            const char *close = s + tag + 1;
            while ((close = strchr(close, '$')) != NULL && strncmp(close, s, tag + 1) != 0)
                close++;
            return close ? close + tag + 1 : s + strlen(s);
        }
    }
    return s;
}

/* The next statement of text at or after s: its start in *start and its
 * length up to (not including) its `;`; 0 when only blanks and comments are
 * left. The end of what was read is *start + returned length (+1 for `;`). */
static size_t sql_next_statement(const char *s, const char **start)
{
    const char *c = s, *next;

    for (;;) {    /* blanks, comments and empty statements (";;") are skipped */
        while (isspace((unsigned char)*c) || *c == ';')
            c++;
        if ((c[0] == '-' && c[1] == '-') || (c[0] == '/' && c[1] == '*'))
            c = sql_skip_quoted(c, '\0');
        else
            break;
    }
    *start = c;
    while (*c && *c != ';')
        c = (next = sql_skip_quoted(c, c > s ? c[-1] : '\0')) != c ? next : c + 1;
    return (size_t)(c - *start);
}

/* The index a CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] <name>
 * statement names, copied as written into name; false for any other
 * statement or an unnamed index. */
static bool sql_concurrent_index_name(const char *stmt, char name[MIGRATE_NAME_MAX])
{
    static const char *const words[] = {"create", "unique", "index", "concurrently", "if", "not", "exists"};
    static const bool optional[] = {false, true, false, false, true, true, true};
    const char *c = stmt;

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        while (isspace((unsigned char)*c))
            c++;
        if (strncasecmp(c, words[i], n) == 0 && !isalnum((unsigned char)c[n]) && c[n] != '_')
            c += n;
        else if (!optional[i])
            return false;
    }
    while (isspace((unsigned char)*c))
        c++;
    size_t len = *c == '"' ? (size_t)(sql_skip_quoted(c, ' ') - c) : strcspn(c, " \t\r\n(");
    if (len == 0 || len >= MIGRATE_NAME_MAX || (len == 2 && strncasecmp(c, "on", 2) == 0))
        return false;
    memcpy(name, c, len);
    name[len] = '\0';
    return true;
}

/* Design note 3: drops the INVALID index a CREATE INDEX CONCURRENTLY of stmt
 * would otherwise skip over. */
static enum et_err migrate_drop_invalid(struct pg *db, const char *migration, const char *stmt,
                                        struct problem *p)
{
    char name[MIGRATE_NAME_MAX], drop[MIGRATE_NAME_MAX + 64];
    const char *params[] = {name};
    PGresult *res;
    bool invalid;

    if (!sql_concurrent_index_name(stmt, name))
        return ET_OK;
    if ((res = pg_exec(db, &stmt_invalid, params, p)) == NULL)
        return p->err;
    invalid = PQntuples(res) > 0;
    PQclear(res);
    if (!invalid)
        return ET_OK;
    et_log(LL_WARN, "migrate", "%s: index %s is INVALID (an interrupted build): dropping and rebuilding it",
           migration, name);
    snprintf(drop, sizeof drop, "DROP INDEX CONCURRENTLY IF EXISTS %s", name);
    return migrate_exec_text(db, migration, drop, p);
}

/* Design note 2: each statement alone, in autocommit; the record last. */
static enum et_err migrate_apply_non_transactional(struct pg *db, const struct embedded_file *m,
                                                   struct problem *p)
{
    const char *params[] = {m->name};
    const char *at = m->data, *start;
    enum et_err err = ET_OK;
    size_t len;
    PGresult *res;

    while (err == ET_OK && (len = sql_next_statement(at, &start)) > 0) {
        char *stmt = strndup(start, len);    /* freed below */

        if (stmt == NULL)
            err = problem_set(p, ET_ERR_INTERNAL, NULL, "migration %s: out of memory", m->name);
        else if ((err = migrate_drop_invalid(db, m->name, stmt, p)) == ET_OK)
            err = migrate_exec_text(db, m->name, stmt, p);
        free(stmt);
        at = start + len + (start[len] == ';');
    }
    if (err == ET_OK && (res = pg_exec(db, &stmt_record, params, p)) != NULL)
        PQclear(res);
    else if (err == ET_OK)
        err = p->err;
    return err;
}

/* Design note 1: the migration and its record in one transaction. */
static enum et_err migrate_apply_transactional(struct pg *db, const struct embedded_file *m,
                                               struct problem *p)
{
    const char *params[] = {m->name};
    enum et_err err;
    PGresult *res;

    if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
        return err;
    if ((err = migrate_exec_text(db, m->name, m->data, p)) == ET_OK &&
        (res = pg_exec(db, &stmt_record, params, p)) != NULL) {
        PQclear(res);
        err = pg_command(db, "COMMIT", p);
    } else {
        err = p->err;
    }
    if (err != ET_OK)
        pg_rollback(db);
    return err;
}

/* Design note 4: polls until this session holds the migrations' lock. */
static enum et_err migrate_lock(struct pg *db, struct problem *p)
{
    for (bool said = false;; said = true) {
        PGresult *res = pg_exec(db, &stmt_try_lock, NULL, p);
        bool held;

        if (res == NULL)
            return p->err;
        held = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (held)
            return ET_OK;
        if (!said)
            et_log(LL_INFO, "migrate", "another migrate is running: waiting for it to finish");
        nanosleep(&(struct timespec){0, MIGRATE_LOCK_POLL_NS}, NULL);
    }
}

enum et_err migrate_run(struct store *st, size_t *applied, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    enum et_err err;

    if (db == NULL)
        return p->err;
    *applied = 0;
    if ((err = migrate_lock(db, p)) != ET_OK)
        return err;
    err = pg_command(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version text PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())", p);
    for (size_t i = 0; err == ET_OK && i < migrations_count; i++) {
        const struct embedded_file *m = &migrations[i];
        bool done;

        if (!migrate_is_applied(db, m->name, &done, p)) {
            err = p->err;
            break;
        }
        if (done)
            continue;
        err = migrate_is_non_transactional(m->data) ? migrate_apply_non_transactional(db, m, p)
                                                    : migrate_apply_transactional(db, m, p);
        if (err != ET_OK)
            break;
        et_log(LL_INFO, "migrate", "applied %s", m->name);
        (*applied)++;
    }
    struct problem ignored = {0};
    pg_command(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_ID ")", &ignored);
    return err;
}

long migrate_pending(struct store *st)
{
    struct problem ignored = {0};
    struct pg *db = store_pg(st, &ignored);
    PGresult *res = db ? PQexec(pg_conn(db), "SELECT version FROM schema_migrations") : NULL;
    long pending = (long)migrations_count;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool no_table = state && strcmp(state, SQLSTATE_UNDEFINED_TABLE) == 0;
        PQclear(res);
        return no_table ? pending : -1;
    }
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < migrations_count; i++)
            if (strcmp(PQgetvalue(res, r, 0), migrations[i].name) == 0)
                pending--;
    PQclear(res);
    return pending;
}
