/*
 * store/board.h - a leaderboard in Redis, as the three leaderboard files share
 * it: its keys, a view to apply, the epoch (store/leaderboards.c, notes 2-4).
 *
 * Private to store/leaderboards.c (reads, apply, epoch),
 * store/leaderboard_rebuild.c (note 5) and store/leaderboard_sync.c (the
 * convergence pass, notes 3, 4 and 6); nothing else includes it.
 */
#ifndef ET_STORE_BOARD_H
#define ET_STORE_BOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "ids.h"

struct rds;

#define BOARD_KEY_MAX (ID_MAX + 80)

/* A board's keys: the sorted set, its applied set (note 2), its version (note 9). */
struct board_keys {
    char board[BOARD_KEY_MAX];
    char applied[BOARD_KEY_MAX];
    char version[BOARD_KEY_MAX];
};

/* One view to count on a board. Borrowed pointers: the caller keeps the keys
 * and strings alive until board_apply_views returns. */
struct board_view {
    const struct board_keys *keys;
    const char *member;            /* the view's identity in the applied set: SQL_APPLIED_MEMBER */
    const char *speaker_id;
};

/* "eventtrack:lb:{E}" + suffix into out (BOARD_KEY_MAX bytes). */
void board_key(char *out, const char *event_id, const char *suffix);
void board_keys_of(struct board_keys *k, const char *event_id);

/* How long an applied set outlives its board's last view (note 6), as set by
 * leaderboard_configure. */
long long board_retention_seconds(void);

/* Counts the views through the apply script, then bumps the epoch; false if
 * Redis failed (some views may have landed: note 2 makes a retry safe). */
bool board_apply_views(struct rds *r, const struct board_view *views, size_t count);

/* Note 8: a write to a board may have landed. */
void board_note_write(void);

/* Note 4: bumps the epoch after writes; false if Redis failed. */
bool board_epoch_bump(struct rds *r);
/* After a full rebuild: the epoch restarts above anything seen before. */
bool board_epoch_reset(struct rds *r);
/* Did Redis lose writes this process saw acknowledged? false if Redis failed. */
bool board_redis_lost_data(struct rds *r, bool *lost);
/* The highest epoch this process saw acknowledged; 0: none yet. */
long long board_epoch_seen(void);

#endif
