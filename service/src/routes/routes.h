/*
 * routes/routes.h - the HTTP handlers, one group per resource file.
 *
 * Handlers are named api_<resource>_<verb>. Each decodes and validates the
 * request completely, then calls the store, then encodes: nothing is written
 * before everything has been checked.
 */
#ifndef ET_ROUTES_H
#define ET_ROUTES_H

#include <stddef.h>

#include "http/http.h"

extern const struct route routes[];
extern const size_t routes_count;

/* organizations.c */
void api_organizations_create(struct request *req, struct response *res);
void api_organizations_get(struct request *req, struct response *res);
void api_credits_get(struct request *req, struct response *res);
void api_credits_top_up(struct request *req, struct response *res);

/* keys.c */
void api_keys_create(struct request *req, struct response *res);
void api_keys_revoke(struct request *req, struct response *res);

/* admission.c: the dispatcher's admit_fn (authentication, access, rate limit). */
enum et_err api_admit(struct request *req, const char *authorization, struct problem *p);

/* admission.c: the caller's ingest quota (the admin key has none). Take
 * counts the envelopes that passed validation, or refuses them all (429);
 * settle gives back those not logged (all of them unless `logged`, i.e. the
 * insert ran and marked the new ones INGEST_CREATED). */
struct analytics_event;
struct quota_ticket;
enum et_err ingest_quota_take(struct request *req, const struct analytics_event *events,
                              size_t count, struct quota_ticket *t, struct problem *p);
void ingest_quota_settle(struct request *req, const struct quota_ticket *t,
                         const struct analytics_event *events, size_t count, bool logged);

/* Is the caller's tenant (if any) this organization? Otherwise `not_found`
 * (404) or, for a reference in a body, a field error on `field` (422). */
bool tenant_owns(const struct request *req, const char *organization_id, const char *field,
                 struct problem *p);

/* events.c */
void api_events_create(struct request *req, struct response *res);
void api_events_get(struct request *req, struct response *res);
void api_sessions_create(struct request *req, struct response *res);
void api_sessions_get(struct request *req, struct response *res);

/* registrations.c */
void api_registrations_create(struct request *req, struct response *res);
void api_registrations_get(struct request *req, struct response *res);

/* lists.c */
void api_events_list(struct request *req, struct response *res);
void api_sessions_list(struct request *req, struct response *res);
void api_session_registrations_list(struct request *req, struct response *res);
void api_ledger_list(struct request *req, struct response *res);

/* lists.c: `limit`, 1 to LIST_LIMIT_MAX, default 50; false if invalid. */
bool list_limit_parse(const char *query, long long *limit);
/* lists.c: the `cursor` parameter, if any (*present), decoded for scope into
 * key and id; false after answering 400 invalid-cursor. */
struct cursor_scope;
bool list_cursor_parse(struct request *req, struct response *res, const struct cursor_scope *scope,
                       char *key, char *id, size_t id_size, bool *present);
/* lists.c: every list's answer, {"items": [...], "next_cursor": ...}:
 * list_page_begin opens it at the items; list_page_end closes them and
 * writes a cursor at (key, id) when more rows follow, else null. */
struct jw *list_page_begin(struct response *res);
void list_page_end(struct request *req, struct jw *w, const struct cursor_scope *scope, bool more,
                   const char *key, const char *id);
/* lists.c: calloc for a page of rows; NULL with p set to internal. */
void *rows_alloc(size_t count, size_t size, struct problem *p);

/* analytics_query.c */
void api_analytics_list(struct request *req, struct response *res);
void api_analytics_counts(struct request *req, struct response *res);

/* cancel.c */
void api_registrations_cancel(struct request *req, struct response *res);

/* analytics.c */
void api_analytics_ingest(struct request *req, struct response *res);

/* leaderboard.c */
void api_leaderboard_top(struct request *req, struct response *res);
void api_leaderboard_speaker(struct request *req, struct response *res);

/* widget.c */
void api_widget_page(struct request *req, struct response *res);
void api_widget_asset(struct request *req, struct response *res);

/* ops.c */
void api_healthz(struct request *req, struct response *res);
void api_readyz(struct request *req, struct response *res);
void api_readyz_read(struct request *req, struct response *res);
void api_metrics(struct request *req, struct response *res);

/* idempotent.c: runs `op` under the request's Idempotency-Key, if it has
 * one: then inside the transaction `txn` (open), else with txn NULL. */
struct store;
struct store_txn;
typedef void (*idempotent_op)(struct store *st, struct store_txn *txn, void *arg,
                              struct response *res);
void idempotent_run(struct request *req, struct response *res, idempotent_op op, void *arg);

#endif
