/*
 * store/handle.c - one request's store handle (struct store, store/store.h).
 *
 * A handler gets the handle through req->store; every verb takes it. It
 * carries the request's deadline and opens this thread's connections lazily:
 * a request that never touches PostgreSQL (a leaderboard read, a refusal)
 * never checks a PostgreSQL connection.
 *
 * The PostgreSQL connection is fetched once and kept for the request: an
 * Idempotency-Key transaction spans several verbs, and all of them must run
 * on the connection that holds it. (Re-fetching could swap a broken
 * connection for a fresh one mid-transaction and commit half of a request.)
 * Redis is fetched on every use, as before the handle existed: the thread's
 * context is reconnected in place, on the schedule store/redis.c keeps.
 */
#include "store/handle.h"

#include "store/pg.h"
#include "store/redis.h"

void store_init(struct store *st, struct pg_pool *pg, struct rds_pool *redis,
                int64_t deadline_us)
{
    *st = (struct store){.pg_pool = pg, .rds_pool = redis, .deadline_us = deadline_us};
}

void store_init_conns(struct store *st, struct pg *db, struct rds *r)
{
    *st = (struct store){.pg = db, .rds = r};
}

/* The one place a handle opens PostgreSQL. pg_session() gives the
 * connection the pool's default deadline from now; a request's handle knows
 * when the request arrived, and that deadline is the one the client sees. */
struct pg *store_pg(struct store *st, struct problem *p)
{
    if (st->pg == NULL) {
        if (st->pg_pool == NULL)
            problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
        else if ((st->pg = pg_session(st->pg_pool, p)) != NULL && st->deadline_us != 0)
            pg_set_deadline(st->pg, st->deadline_us);
    }
    return st->pg;
}

struct rds *store_rds(struct store *st, struct problem *p)
{
    if (st->rds_pool != NULL)
        return rds_session(st->rds_pool, p);
    if (st->rds == NULL)
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
    return st->rds;
}
