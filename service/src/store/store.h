/*
 * store/store.h - the whole persistence interface of EventTrack, on one page.
 *
 * Handlers call these verbs and nothing below them. PostgreSQL is the source
 * of truth for everything; Redis holds the leaderboards, a view derived from
 * the analytics log that can always be rebuilt (docs/adr/0001). Every verb
 * returns ET_OK or fills the problem; none returns an HTTP status.
 */
#ifndef ET_STORE_H
#define ET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"
#include "model.h"

struct pg;
struct pg_pool;
struct rds;
struct rds_pool;
struct redis_target;

/* Lifecycle (main.c). Pools are process-wide handles; connections hang off
 * them per worker thread. One-off connections serve the CLI commands. */
struct pg_pool *pg_pool_new(const char *conninfo);
/* The deadline pg_session() gives each request, in ms; 0: none (store/pg.c note 6). */
void pg_pool_set_deadline(struct pg_pool *pool, long long deadline_ms);
void pg_pool_free(struct pg_pool *pool);                         /* NULL is a no-op */
/* Lets the pool's threads connect (the default) or refuses them with 503
 * (store/budget.c note 3); a refused thread drops its connection. */
void pg_pool_admit(struct pg_pool *pool, bool admitted);
/*
 * The PostgreSQL connection budget every replica shares (store/budget.c).
 * setting: pg_connection_budget (-1: the server's max_connections less its
 * superuser reserve less 10; > 0: that many; 0 means off and needs no
 * budget); need: this replica's threads + 2. budget_new copies conninfo and
 * borrows pool; budget_free (NULL is a no-op) ends the claim. budget_keep
 * claims the share or checks it is still held, admits or refuses the pool's
 * threads, and returns whether the share is held; one thread at a time.
 */
struct budget;
struct budget *budget_new(struct pg_pool *pool, const char *conninfo, long long setting,
                          long long need);
void budget_free(struct budget *b);
bool budget_keep(struct budget *b);
struct rds_pool *rds_pool_new(const struct redis_target *target);
/* Sentinel mode: asks the Sentinels where the primary is and, when it moved,
 * makes every thread reconnect before its next command (store/redis.c note
 * 5); a no-op otherwise. Bounded by the Sentinel timeouts; the background
 * worker calls it once a pass, one thread at a time. */
void rds_pool_follow(struct rds_pool *pool);
void rds_pool_free(struct rds_pool *pool);                       /* NULL is a no-op */
struct pg *pg_open(const char *conninfo, struct problem *p);
void pg_close(struct pg *db);                                    /* NULL is a no-op */
struct rds *rds_open(const struct redis_target *target, struct problem *p);
void rds_close(struct rds *r);                                   /* NULL is a no-op */

/*
 * The store handle: one per request (http/server.c keeps it beside the
 * request, req->store), one per pass of the background worker, one per CLI
 * command. It carries this thread's PostgreSQL and Redis connections, opened
 * on first use (store/handle.c), and the request's deadline. Every verb below
 * takes it. The fields belong to store/: others only call store_init*.
 */
struct store {
    struct pg_pool *pg_pool;       /* where this thread's connections come from; */
    struct rds_pool *rds_pool;     /* NULL for a handle over one-off connections */
    int64_t deadline_us;           /* CLOCK_MONOTONIC microseconds by which the request must be
                                      answered; 0: none */
    struct pg *pg;                 /* opened on first use, then kept for the request */
    struct rds *rds;               /* a one-off connection (store_init_conns) */
};
/* A handle over this thread's connections from the pools, opened lazily. */
void store_init(struct store *st, struct pg_pool *pg, struct rds_pool *redis,
                int64_t deadline_us);
/* A handle over one-off connections the caller opened and closes (CLI
 * commands); either may be NULL when the command needs only one store. */
void store_init_conns(struct store *st, struct pg *db, struct rds *r);

/*
 * A transaction the caller holds open on the handle's PostgreSQL connection
 * (the Idempotency-Key protocol: idempotency_begin opens it, finish or abort
 * ends it). A verb given one runs inside it and leaves the commit to its
 * holder; given NULL, the verb commits on its own.
 */
struct store_txn {
    bool open;
    /* Set by idempotency_begin: the key this transaction holds, for a write
     * that saves its record elsewhere (a registration saved in a group). */
    const struct idempotency_request *rq;
    /* Set by such a write: its effect and its record (status 201, the body
     * the caller renders from the same struct) were committed together by
     * another transaction; this one only holds the key's lock, and is
     * rolled back instead of finished. */
    bool recorded;
    /* The key is held by a session-level lock while no transaction is open
     * (idempotency_detach: a keyed registration waiting for a group). */
    bool held;
};

/* Health and gauges for /readyz and /metrics (store/health.c). They take the
 * pools, not a handle: they report on the process's stores, not on a
 * request's work (routes/ops.c passes req->app's pools). */
bool pg_ping(struct pg_pool *pool);
bool rds_ping(struct rds_pool *pool);
struct store_stats {
    long pg_connections, redis_connections;     /* open now */
    long pg_errors, redis_errors;               /* since start */
    long leaderboard_apply_failures;
    long registration_groups, registrations_grouped;
    long ingest_groups, ingest_grouped;         /* single-event ingests, likewise */
};
void store_stats(const struct pg_pool *pg, const struct rds_pool *redis, struct store_stats *out);

/* Organizations and credits (store/organizations.c). */
/* Creates the organization and its first API key (key->secret is the one
 * copy of the secret) in one statement. */
enum et_err organizations_create(struct store *st, struct organization *org, struct api_key *key,
                                 struct problem *p);
enum et_err organizations_get(struct store *st, const char *id, struct organization *out,
                              struct problem *p);
/* How many credit_buckets rows new credits are spread over, CREDIT_BUCKETS_MIN
 * .. CREDIT_BUCKETS_MAX (model.h; store/organizations.c, design note 4). Call
 * once at start, before any worker thread. */
void credits_configure(int credit_buckets);
enum et_err credits_balance(struct store *st, const char *organization_id, long long *balance,
                            struct problem *p);
enum et_err credits_top_up(struct store *st, const char *organization_id, const struct top_up *t,
                           long long *balance, struct problem *p);

/* API keys (store/keys.c). An unknown secret is remembered for
 * negative_cache_seconds (0: never); keys_recently_unknown answers 401 from
 * that memory without a lookup, and ET_OK when it does not know. */
enum et_err keys_recently_unknown(const char *secret, long long negative_cache_seconds,
                                  struct problem *p);
enum et_err keys_authenticate(struct store *st, const char *secret, long long negative_cache_seconds,
                              char *organization_id, char *key_id, struct problem *p);
enum et_err keys_create(struct store *st, const char *organization_id, struct api_key *key,
                        struct problem *p);
enum et_err keys_revoke(struct store *st, const char *organization_id, const char *key_id,
                        struct problem *p);

/* Rate limit per organization (store/ratelimit.c): counted in Redis, and in
 * this process while Redis is down or refuses writes. */
enum et_err ratelimit_hit(struct store *st, const char *organization_id, long long limit,
                          long long window_seconds, struct problem *p);

/* Ingest quota per organization and UTC day (store/quota.c). quota_take
 * counts n envelopes, or refuses them all (429, ingest-quota-exceeded) and
 * counts nothing; quota_give_back returns some of them (those not logged). */
struct quota_ticket {
    char organization_id[ID_MAX + 1];
    long long day;                 /* the UTC day they were counted on */
    long long taken;               /* envelopes counted by quota_take */
    bool in_process;               /* counted by this process: Redis refused */
};
enum et_err quota_take(struct store *st, const char *organization_id, long long n,
                       long long per_day, struct quota_ticket *t, struct problem *p);
void quota_give_back(struct store *st, const struct quota_ticket *t, long long n);

/*
 * Tenancy: verbs taking `tenant` only see resources of that organization
 * (NULL: any, for the admin key). Another tenant's resource is answered
 * exactly like a missing one.
 */

/* Events (conferences) and their sessions (store/events.c). */
enum et_err events_create(struct store *st, struct event *ev, struct problem *p);
enum et_err events_get(struct store *st, const char *id, const char *tenant, struct event *out,
                       struct problem *p);
enum et_err sessions_create(struct store *st, struct session *s, const char *tenant,
                            struct problem *p);
enum et_err sessions_get(struct store *st, const char *id, const char *tenant, struct session *out,
                         struct problem *p);

/* Registrations, constraint A (store/registrations.c). */
enum et_err registrations_create(struct store *st, struct store_txn *txn,
                                 struct registration *r, const char *tenant, struct problem *p);
enum et_err registrations_get(struct store *st, const char *id, const char *tenant,
                              struct registration *out, struct problem *p);
/* Cancels an active registration and refunds its credit in one statement
 * (store/cancel.c): ET_ERR_CONFLICT registration-cancelled when it already
 * is; *out is the cancelled registration with the balance left. */
enum et_err registrations_cancel(struct store *st, const char *id, const char *tenant,
                                 struct registration *out, struct problem *p);
/* Group commit (design note 7 there): groups saved and registrations in them. */
void registrations_group_stats(long *groups, long *grouped);
/* Single-event ingest's group commit (store/analytics.c, design note 6). */
void analytics_group_stats(long *groups, long *grouped);

/*
 * Lists, newest first, by keyset pagination (store/lists.c, docs/adr/0015).
 * A page is the rows strictly after (after_key, after_id) in the list's
 * order, at most `limit`; *more tells whether another page follows. The
 * listed resource (scope) must exist and, with a tenant, be its own:
 * otherwise not_found, exactly as a missing one. A row's position is
 * (created_at or registered_at, id), and for the ledger (id, id).
 */
#define LIST_LIMIT_MAX 200
struct list_query {
    const char *scope;             /* the organization, event or session listed */
    const char *tenant;            /* NULL: the admin, any */
    const char *filter;            /* status= or kind= value; NULL: none */
    const char *after_key;         /* the last row's position; NULL: first page */
    const char *after_id;
    long long limit;               /* 1 .. LIST_LIMIT_MAX */
};
/* The lists, and the struct each one's rows are. */
enum list_name {
    LIST_EVENTS,                   /* struct event, of an organization */
    LIST_SESSIONS,                 /* struct session, of an event */
    LIST_REGISTRATIONS,            /* struct registration, of a session (status=) */
    LIST_LEDGER,                   /* struct ledger_entry, of an organization (kind=) */
};
/* out: room for q->limit structs of the list's kind. */
enum et_err list_fetch(struct store *st, enum list_name list, const struct list_query *q,
                       void *out, size_t *count, bool *more, struct problem *p);

/*
 * Idempotency-Key (store/idempotency.c). A keyed request runs inside one
 * transaction with its stored response:
 *   idempotency_begin  -> ET_OK and *replay set: answer *status / body as stored;
 *                         ET_OK, no replay: *txn is open; run the operation
 *                         with it, on the same handle;
 *   idempotency_finish -> stores the response and commits (a non-2xx outcome
 *                         first rolls back whatever the operation did);
 *   idempotency_abort  -> rolls back, stores nothing (store failures, 5xx).
 */
struct idempotency_request {
    const char *scope;          /* caller, method and full path (docs/adr/0010) */
    const char *legacy_scope;   /* what an older binary wrote for this caller; NULL: none */
    const char *key;            /* the Idempotency-Key */
    const char *request;        /* the body's canonical text (json/canonical.h), "" if none */
};
enum et_err idempotency_begin(struct store *st, const struct idempotency_request *rq,
                              struct store_txn *txn, bool *replay, int *status, struct buf *body,
                              struct problem *p);
enum et_err idempotency_finish(struct store *st, struct store_txn *txn,
                               const struct idempotency_request *rq, int status, const char *body,
                               struct problem *p);
void idempotency_abort(struct store *st, struct store_txn *txn);
/* Deletes records older than max_age_hours, in batches; *purged counts them. */
enum et_err idempotency_purge(struct store *st, int max_age_hours, long long *purged,
                              struct problem *p);

/*
 * Analytics ingest, constraint C (store/analytics.c). Logs every envelope not
 * already rejected, in one statement, and marks each CREATED, DUPLICATE or
 * REJECTED (event-id conflict). `tenant` owns the events (their ids are
 * unique per tenant) and confines leaderboard effects to its own sessions
 * (NULL: the admin's namespace, any session). Newly created session_views
 * are then applied to the leaderboards in Redis; Redis trouble is counted and
 * logged, never returned (ADR 0001).
 */
enum et_err analytics_ingest(struct store *st, const char *tenant,
                             struct analytics_event *events, size_t count, struct problem *p);

/*
 * Reading the analytics log (store/analytics_query.c, docs/adr/0015). A
 * filter field left NULL does not filter; `payload` is a JSON object's text,
 * matched by containment (payload @> it). `tenant` NULL: every organization
 * (the admin). since <= occurred_at < until.
 */
struct analytics_filter {
    const char *tenant;
    const char *event_type;
    const char *user_id;
    const char *since, *until;     /* RFC 3339 */
    const char *payload;
};
/* Newest first by (occurred_at, seq), after (after_key, after_id) when set;
 * out has room for limit rows, whose payloads the caller frees with
 * analytics_rows_free. */
enum et_err analytics_list(struct store *st, const struct analytics_filter *f,
                           const char *after_key, const char *after_id, long long limit,
                           struct analytics_row *out, size_t *count, bool *more, struct problem *p);
void analytics_rows_free(struct analytics_row *rows, size_t count);   /* NULL is a no-op */
/* Counts per `bucket` ("minute", "hour", "day") from since to until, empty
 * buckets included, oldest first; out has room for `max` buckets. */
enum et_err analytics_counts(struct store *st, const struct analytics_filter *f,
                             const char *bucket, struct analytics_bucket *out, size_t max,
                             size_t *count, struct problem *p);

/*
 * Leaderboards, constraint B (store/leaderboards.c). Reads touch Redis only.
 * Writes apply committed views exactly once; leaderboard_sync is one pass of
 * the convergence worker (design notes in leaderboards.c).
 */
#define LEADERBOARD_TOP_MAX 100
/* Process-wide, set once at start: how long a board's applied set outlives its last view. */
void leaderboard_configure(long long applied_retention_seconds);
/* Changes after every board write of this process (leaderboards.c note 8). */
unsigned long long leaderboard_writes(void);
/* The top N into out[0..*count) and the board's version, the number of views
 * counted on it (leaderboards.c note 9; 0 for a board with none yet). */
enum et_err leaderboard_top(struct store *st, const char *event_id, long long top_n,
                            struct leaderboard_entry *out, size_t *count, long long *version,
                            struct problem *p);
enum et_err leaderboard_speaker(struct store *st, const char *event_id,
                                const char *speaker_id, struct leaderboard_entry *out,
                                struct problem *p);
struct board_increment {
    const char *event_id;          /* the conference */
    const char *speaker_id;
    const char *member;            /* the view's identity in the applied set: SQL_APPLIED_MEMBER */
};
enum et_err leaderboard_apply(struct store *st, const struct board_increment *inc,
                              size_t count, struct problem *p);
long leaderboard_apply_failures(void);

struct sync_stats {
    bool redis_lost;               /* Redis had lost acknowledged writes: all boards rebuilt */
    size_t rebuilt_boards;
    size_t applied;                /* outbox rows applied and removed */
};
enum et_err leaderboard_sync(struct store *st, struct sync_stats *stats, struct problem *p);
/* Recomputes one board (or all when event_id is NULL) from PostgreSQL and
 * swaps it in atomically. */
enum et_err leaderboard_rebuild(struct store *st, const char *event_id,
                                size_t *boards, size_t *events, struct problem *p);

/* Schema migrations (store/migrate.c). */
enum et_err migrate_run(struct store *st, size_t *applied, struct problem *p);
/* Number of embedded migrations not yet applied, or -1 if it cannot tell. */
long migrate_pending(struct store *st);

/* Records `value` for the setting `name` if no replica did yet; ET_OK when
 * the recorded value is `value`, ET_ERR_CONFLICT when it differs (copied to
 * recorded, truncated to recorded_size), else the store error (store/cluster.c). */
enum et_err cluster_setting_agree(struct store *st, const char *name, const char *value,
                                  char *recorded, size_t recorded_size, struct problem *p);

#endif
