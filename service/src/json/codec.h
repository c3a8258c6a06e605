/*
 * json/codec.h - request bodies in, resources out.
 *
 * One decoder per request body: it parses, validates every field and fills a
 * struct from model.h, or fills a problem listing every bad field. One encoder
 * per resource. Handlers see only structs, so the wire format lives here.
 */
#ifndef ET_JSON_CODEC_H
#define ET_JSON_CODEC_H

#include <stddef.h>

#include "buf.h"
#include "errors.h"
#include "json/writer.h"
#include "model.h"


enum et_err decode_organization_new(const char *body, size_t len, struct organization *out,
                                    struct problem *p);
enum et_err decode_top_up(const char *body, size_t len, struct top_up *out, struct problem *p);
enum et_err decode_event_new(const char *body, size_t len, struct event *out, struct problem *p);
enum et_err decode_session_new(const char *body, size_t len, struct session *out,
                               struct problem *p);
enum et_err decode_registration_new(const char *body, size_t len, struct registration *out,
                                    struct problem *p);

/*
 * An analytics body: one envelope or {"batch": [...]}. On ET_OK, *events is
 * an array of *count envelopes (free with analytics_events_free), *is_batch
 * tells which form was sent. A bad envelope inside a batch does not fail the
 * decode: it is marked INGEST_REJECTED with its reason. A bad single envelope
 * fails the decode with the problem.
 */
enum et_err decode_analytics(const char *body, size_t len, struct analytics_event **events,
                             size_t *count, bool *is_batch, struct problem *p);
void analytics_events_free(struct analytics_event *events, size_t count);

/* api_key: the new organization's first key, shown once; NULL to omit. */
void encode_organization(struct jw *w, const struct organization *o, const char *api_key);
void encode_balance(struct jw *w, const char *organization_id, long long balance);
void encode_event(struct jw *w, const struct event *e);
void encode_session(struct jw *w, const struct session *s);
void encode_registration(struct jw *w, const struct registration *r);
/* An attendee in a list: the registration without credits_remaining, which
 * is a property of the organization, not of a row. */
void encode_attendee(struct jw *w, const struct registration *r);
/* version: the board's version (store/leaderboards.c note 9), before the list. */
void encode_leaderboard(struct jw *w, const char *event_id, long long version,
                        const struct leaderboard_entry *e, size_t n);
void encode_speaker_rank(struct jw *w, const char *event_id, const struct leaderboard_entry *e);

#endif
