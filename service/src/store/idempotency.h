/*
 * store/idempotency.h - what a keyed write inside store/ needs of its key
 * beyond store/store.h's begin/finish/abort: a registration saved in a group
 * (store/registrations.c, design note 8). Only store/ includes this header;
 * handlers never see a key detached from its transaction.
 */
#ifndef ET_STORE_IDEMPOTENCY_H
#define ET_STORE_IDEMPOTENCY_H

#include "store/store.h"

/* The records of n requests answered `status` with bodies[i], in one
 * statement inside the caller's transaction (a group of keyed registrations). */
enum et_err idempotency_record_group(struct pg *db, const struct idempotency_request *const *rqs,
                                     const char *const *bodies, int n, int status, struct problem *p);
/* For a keyed write that waits for another thread's transaction (a
 * registration in a group: store/idempotency.c, design note 7). detach keeps
 * the key, at session level, and ends txn, so the wait holds no lock a
 * table's DDL could queue behind; reattach opens txn again, as
 * idempotency_begin left it (the key locked, SAVEPOINT op); release gives
 * back a key still held, and is a no-op otherwise. */
enum et_err idempotency_detach(struct store *st, struct store_txn *txn, struct problem *p);
enum et_err idempotency_reattach(struct store *st, struct store_txn *txn, struct problem *p);
void idempotency_release(struct store *st, struct store_txn *txn);

#endif
