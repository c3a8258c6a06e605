/*
 * store/group_commit.h - saves concurrent registrations together
 * (store/registrations.c, design note 7; docs/adr/0008).
 *
 * The scheduler only: queue, lanes, who leads. What "save one" and "save a
 * group" mean (the SQL) stays with the caller, passed in as two functions.
 */
#ifndef ET_STORE_GROUP_COMMIT_H
#define ET_STORE_GROUP_COMMIT_H

#include <stdbool.h>

#include "errors.h"
#include "model.h"

struct pg;

/* Saves one registration through the one-row path, deciding every refusal. */
typedef enum et_err (*group_alone_fn)(struct pg *db, struct registration *r, const char *tenant,
                                      struct problem *p);
/* Saves what it can of regs[0..n) in one statement; saved[i] tells which
 * (their fields are filled); returns how many. Never fails as a whole: what
 * is not saved runs alone. */
typedef int (*group_save_fn)(struct pg *db, struct registration *const *regs, int n, bool *saved);

/* Saves r, in a group when others are queued, else alone; on db, this
 * thread's connection, outside any transaction. */
enum et_err group_commit(struct pg *db, struct registration *r, const char *tenant,
                         group_alone_fn alone, group_save_fn save, struct problem *p);

/* For /metrics: groups saved, and registrations in them. */
void group_commit_stats(long *groups, long *grouped);

#endif
