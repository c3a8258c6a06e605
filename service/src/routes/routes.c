/*
 * routes/routes.c - THE route table: every URL the service answers, on one screen.
 *
 * Order matters only for reading. The dispatcher (http/server.c) answers 404
 * for a path no pattern matches, 405 with Allow for a known path and another
 * method, and 415/413 for a json_body route before its handler runs.
 */
#include "routes/routes.h"

const struct route routes[] = {
    /* method     pattern                                                handler                   JSON body */
    {HTTP_POST, "/v1/organizations",                                     api_organizations_create, true},
    {HTTP_GET,  "/v1/organizations/{org_id}",                            api_organizations_get,    false},
    {HTTP_GET,  "/v1/organizations/{org_id}/credits",                    api_credits_get,          false},
    {HTTP_POST, "/v1/organizations/{org_id}/credits",                    api_credits_top_up,       true},

    {HTTP_POST, "/v1/events",                                            api_events_create,        true},
    {HTTP_GET,  "/v1/events/{event_id}",                                 api_events_get,           false},
    {HTTP_POST, "/v1/sessions",                                          api_sessions_create,      true},
    {HTTP_GET,  "/v1/sessions/{session_id}",                             api_sessions_get,         false},

    {HTTP_POST, "/v1/registrations",                                     api_registrations_create, true},
    {HTTP_GET,  "/v1/registrations/{registration_id}",                   api_registrations_get,    false},

    {HTTP_POST, "/v1/analytics/events",                                  api_analytics_ingest,     true},

    {HTTP_GET,  "/v1/events/{event_id}/leaderboard",                     api_leaderboard_top,      false},
    {HTTP_GET,  "/v1/events/{event_id}/leaderboard/speakers/{speaker_id}", api_leaderboard_speaker, false},

    {HTTP_GET,  "/healthz",                                              api_healthz,              false},
    {HTTP_GET,  "/readyz",                                               api_readyz,               false},
    {HTTP_GET,  "/metrics",                                              api_metrics,              false},
};

const size_t routes_count = sizeof routes / sizeof routes[0];
