/*
 * store/handle.h - how store/ files reach the connections behind a handle.
 * Only store/ includes this header; handlers hold a `struct store *` and pass
 * it to the verbs of store/store.h.
 */
#ifndef ET_STORE_HANDLE_H
#define ET_STORE_HANDLE_H

#include "store/store.h"

/* This request's PostgreSQL connection, opened on first use and kept for the
 * request (store/handle.c); NULL with p = unavailable when it cannot be. */
struct pg *store_pg(struct store *st, struct problem *p);

/* This thread's Redis connection; NULL with p = unavailable while Redis is
 * down (store/redis.c, design note 1). */
struct rds *store_rds(struct store *st, struct problem *p);

#endif
