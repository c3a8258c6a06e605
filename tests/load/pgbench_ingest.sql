-- tests/load/pgbench_ingest.sql - the limit for POST /v1/analytics/events:
-- pgbench running the service's own ingest statement, with one event or a
-- batch per statement (-D batch=1 or -D batch=100).
--
-- A template like pgbench_registration.sql (read its header): the statement
-- is a verbatim copy of stmt_ingest in service/src/store/analytics.c, checked
-- against the binary's SQL before each run.
--
-- $1 is the JSON array of envelopes the service writes (store/analytics.c,
-- input_json), here built by the bound expression: `batch` session_views with
-- new event ids, each naming one of the prepared sessions sess0 .. sess0 +
-- nsess - 1, so the leaderboard join and the outbox insert do their work.
-- jsonb_agg builds jsonb where the service sends text for ::jsonb to parse:
-- that parse is the one part of the service's statement not measured here.
-- $2 is the tenant: NULL, as for the admin key the service rows use.
--
-- service-statement: analytics_ingest
-- bind $1 (SELECT jsonb_agg(jsonb_build_object('i', g, 'event_id', 'pg' || :e::text || '-' || g, 'event_type', 'session_view', 'user_id', 'u' || g, 'occurred_at', NULL, 'payload', jsonb_build_object('session_id', (:sess0::bigint + (:s::bigint + g) % :nsess::bigint)::text), 'session_id', (:sess0::bigint + (:s::bigint + g) % :nsess::bigint)::text, 'speaker_id', NULL) ORDER BY g) FROM generate_series(0, :batch::int - 1) AS g)
-- bind $2 NULL
\set e random(1000000000000, 999999999999999999)
\set s random(0, :nsess - 1)
WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    i int, event_id text, event_type text, user_id text, occurred_at timestamptz,
    payload jsonb, session_id text, speaker_id text)),
 ins AS (INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at,
                                       payload, leaderboard_event_id, leaderboard_speaker_id)
 SELECT i.event_id, i.event_type, i.user_id, $2::text, coalesce(i.occurred_at, now()),
        i.payload, s.event_id, CASE WHEN s.id IS NOT NULL
                               THEN coalesce(i.speaker_id, s.speaker_id) END
   FROM input i
   LEFT JOIN sessions s ON i.event_type = 'session_view' AND s.id = i.session_id
                       AND ($2::text IS NULL OR s.organization_id = $2::text)
  ORDER BY i.i
 ON CONFLICT (organization_id, event_id) DO NOTHING
 RETURNING seq, event_id, leaderboard_event_id, leaderboard_speaker_id,
           coalesce(organization_id, '') || '/' || event_id AS member
), outbox AS (
 INSERT INTO leaderboard_outbox (seq) SELECT seq FROM ins WHERE leaderboard_event_id IS NOT NULL
)
 SELECT event_id, leaderboard_event_id, leaderboard_speaker_id, member FROM ins;
