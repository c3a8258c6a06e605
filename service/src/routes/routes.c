/*
 * routes/routes.c - THE route table: every URL the service answers, on one screen.
 *
 * Order matters only for reading. Before a handler runs, the dispatcher
 * (http/server.c) answers 404 for a path no pattern matches, 405 with Allow
 * for a known path and another method, 401/403/429 when routes/admission.c
 * does not admit the caller to a non-public route, and 415/413 for a
 * json_body route. Within ACCESS_TENANT routes, handlers confine an
 * organization key to its own organization (req_tenant).
 */
#include "routes/routes.h"

const struct route routes[] = {
    /* method     pattern                                                handler                   access         JSON body */
    {HTTP_POST,   "/v1/organizations",                                   api_organizations_create, ACCESS_ADMIN,  true},
    {HTTP_GET,    "/v1/organizations/{org_id}",                          api_organizations_get,    ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/organizations/{org_id}/credits",                  api_credits_get,          ACCESS_TENANT, false},
    {HTTP_POST,   "/v1/organizations/{org_id}/credits",                  api_credits_top_up,       ACCESS_ADMIN,  true},
    {HTTP_POST,   "/v1/organizations/{org_id}/keys",                     api_keys_create,          ACCESS_TENANT, false},
    {HTTP_DELETE, "/v1/organizations/{org_id}/keys/{key_id}",            api_keys_revoke,          ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/organizations/{org_id}/events",                   api_events_list,          ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/organizations/{org_id}/ledger",                   api_ledger_list,          ACCESS_TENANT, false},

    {HTTP_POST,   "/v1/events",                                          api_events_create,        ACCESS_TENANT, true},
    {HTTP_GET,    "/v1/events/{event_id}",                               api_events_get,           ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/events/{event_id}/sessions",                      api_sessions_list,        ACCESS_TENANT, false},
    {HTTP_POST,   "/v1/sessions",                                        api_sessions_create,      ACCESS_TENANT, true},
    {HTTP_GET,    "/v1/sessions/{session_id}",                           api_sessions_get,         ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/sessions/{session_id}/registrations",             api_session_registrations_list, ACCESS_TENANT, false},

    {HTTP_POST,   "/v1/registrations",                                   api_registrations_create, ACCESS_TENANT, true},
    {HTTP_GET,    "/v1/registrations/{registration_id}",                 api_registrations_get,    ACCESS_TENANT, false},
    {HTTP_DELETE, "/v1/registrations/{registration_id}",                 api_registrations_cancel, ACCESS_TENANT, false},

    {HTTP_POST,   "/v1/analytics/events",                                api_analytics_ingest,     ACCESS_TENANT, true},
    {HTTP_GET,    "/v1/analytics/events",                                api_analytics_list,       ACCESS_TENANT, false},
    {HTTP_GET,    "/v1/analytics/counts",                                api_analytics_counts,     ACCESS_TENANT, false},

    {HTTP_GET,    "/v1/events/{event_id}/leaderboard",                   api_leaderboard_top,      ACCESS_PUBLIC, false},
    {HTTP_GET,    "/v1/events/{event_id}/leaderboard/speakers/{speaker_id}", api_leaderboard_speaker, ACCESS_PUBLIC, false},

    {HTTP_GET,    "/widget/events/{event_id}",                           api_widget_page,          ACCESS_PUBLIC, false},
    {HTTP_GET,    "/widget/{file}",                                      api_widget_asset,         ACCESS_PUBLIC, false},

    {HTTP_GET,    "/healthz",                                            api_healthz,              ACCESS_PUBLIC, false},
    {HTTP_GET,    "/readyz",                                             api_readyz,               ACCESS_PUBLIC, false},
    {HTTP_GET,    "/readyz/read",                                        api_readyz_read,          ACCESS_PUBLIC, false},
    {HTTP_GET,    "/metrics",                                            api_metrics,              ACCESS_PUBLIC, false},
};

const size_t routes_count = sizeof routes / sizeof routes[0];
