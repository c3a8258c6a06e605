/*
 * model.h - the nouns of EventTrack as C structs.
 *
 * Handlers, codecs and stores exchange these and nothing else: no cJSON tree,
 * PGresult or redisReply crosses a module boundary. Strings are fixed-size
 * arrays sized from the limits below (which the schema's CHECKs repeat), so a
 * struct owns all of its text and copying it is a plain assignment. The one
 * exception, an analytics payload of arbitrary size, is documented on its field.
 */
#ifndef ET_MODEL_H
#define ET_MODEL_H

#include <stdbool.h>

#include "errors.h"
#include "ids.h"

#define NAME_MAX_CHARS    200              /* organization and event names, session titles */
#define TEXT_BYTES(chars) ((chars) * 4 + 1) /* worst-case UTF-8 plus NUL */
#define REASON_MAX_CHARS  500
#define TICKET_TYPE_MAX   64
#define EVENT_TYPE_MAX    64
#define TIMESTAMP_BYTES   40
#define MONEY_BYTES       16               /* "99999999.99" */
#define CREDITS_MAX       1000000000LL              /* one opening balance or top-up */
#define BUCKET_CREDITS_MAX 134217728LL            /* schema/0004: each bucket's CHECK */
/* Rows an organization's balance is spread over (the credit_buckets setting,
 * store/organizations.c design note 4): at most schema/0004's 16 slots, at
 * least enough for an opening balance of CREDITS_MAX. */
/* Groups of one kind of write in flight at once (the group_commit_lanes
 * setting, store/group_commit.c). */
#define GROUP_LANES_DEFAULT 2
#define CREDIT_BUCKETS_DEFAULT 16
#define CREDIT_BUCKETS_MAX     16
#define CREDIT_BUCKETS_MIN     ((int)((CREDITS_MAX + BUCKET_CREDITS_MAX - 1) / BUCKET_CREDITS_MAX))
#define ANALYTICS_BATCH_MAX 1000                 /* the contract's largest batch */

struct organization {
    char id[ID_MAX + 1];                   /* empty in a create: the server picks one */
    char name[TEXT_BYTES(NAME_MAX_CHARS)];
    long long credits;
    char created_at[TIMESTAMP_BYTES];
};

/* An API key as issued: the secret is shown once and stored only hashed. */
#define API_KEY_SECRET_BYTES 69            /* "etk_" + 64 hex + NUL */
struct api_key {
    char id[ID_MAX + 1];
    char organization_id[ID_MAX + 1];
    char secret[API_KEY_SECRET_BYTES];
};

struct top_up {
    long long amount;
    char reason[TEXT_BYTES(REASON_MAX_CHARS)];   /* empty: none given */
};

struct event {
    char id[ID_MAX + 1];
    char organization_id[ID_MAX + 1];
    char name[TEXT_BYTES(NAME_MAX_CHARS)];
    char starts_at[TIMESTAMP_BYTES];       /* empty: not scheduled (JSON null) */
    char created_at[TIMESTAMP_BYTES];
};

struct session {
    char id[ID_MAX + 1];
    char event_id[ID_MAX + 1];
    char title[TEXT_BYTES(NAME_MAX_CHARS)];
    char speaker_id[ID_MAX + 1];
    char created_at[TIMESTAMP_BYTES];
};

struct registration {
    char id[ID_MAX + 1];
    char session_id[ID_MAX + 1];
    char user_id[ID_MAX + 1];
    char organization_id[ID_MAX + 1];
    char ticket_type[TICKET_TYPE_MAX + 1];
    char price_paid[MONEY_BYTES];          /* canonical "123.45" */
    char registered_at[TIMESTAMP_BYTES];
    char cancelled_at[TIMESTAMP_BYTES];    /* empty: active (JSON null) */
    long long credits_remaining;
};

/* One credit_ledger row, as the ledger list shows it. */
struct ledger_entry {
    char id[24];                           /* bigint identity, as text */
    char kind[24];                         /* opening_balance, top_up, registration, refund */
    long long delta;
    char registration_id[ID_MAX + 1];      /* empty: none (JSON null) */
    char reason[TEXT_BYTES(REASON_MAX_CHARS)]; /* empty: none (JSON null) */
    char created_at[TIMESTAMP_BYTES];
};

/* One logged analytics event, as GET /v1/analytics/events shows it. */
struct analytics_row {
    char event_id[ID_MAX + 1];
    char event_type[EVENT_TYPE_MAX + 1];
    char user_id[ID_MAX + 1];
    char occurred_at[TIMESTAMP_BYTES];
    char received_at[TIMESTAMP_BYTES];
    char seq[24];                          /* the log's order: the cursor's tie-breaker */
    char *payload;                         /* JSON text; owned, freed by analytics_rows_free */
};

/* One time bucket of GET /v1/analytics/counts. */
struct analytics_bucket {
    char start[TIMESTAMP_BYTES];
    long long count;
};

enum ingest_status { INGEST_CREATED, INGEST_DUPLICATE, INGEST_REJECTED };

/* One analytics envelope on its way in, and what became of it. */
struct analytics_event {
    char event_id[ID_MAX + 1];
    char event_type[EVENT_TYPE_MAX + 1];
    char user_id[ID_MAX + 1];
    char occurred_at[TIMESTAMP_BYTES];     /* empty: the server's now() */
    char *payload;                         /* the JSON object as sent; owned, free() it */
    char session_id[ID_MAX + 1];           /* payload.session_id of a session_view, else empty */
    char speaker_id[ID_MAX + 1];           /* payload.speaker_id of a session_view, else empty */
    /* outcome, filled by validation and ingest */
    enum ingest_status status;
    enum et_err error;                     /* when rejected */
    char error_detail[192];
};

struct leaderboard_entry {
    char speaker_id[ID_MAX + 1];
    long long score;
    long long rank;                        /* competition rank: 1, 1, 3 */
};

#endif
