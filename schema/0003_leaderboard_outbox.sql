-- 0003_leaderboard_outbox.sql: the views PostgreSQL has committed that Redis
-- may not have counted yet.
--
-- The ingest statement inserts a row here for every new event with a
-- leaderboard effect, in the same statement as the event itself, so the two
-- commit together. The request then applies the view to Redis at once; a
-- background worker (store/leaderboards.c) applies every row again through
-- the same idempotent script and deletes the rows Redis acknowledged. A
-- crash between the commit and the Redis update, or Redis being down, thus
-- delays a view on the board but never loses it. Events logged before this
-- migration are covered by the rebuild the worker runs when it first finds
-- Redis without its epoch marker.

CREATE TABLE leaderboard_outbox (
    seq        bigint      PRIMARY KEY REFERENCES analytics_events (seq) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leaderboard_outbox_created_at ON leaderboard_outbox (created_at);

-- A rebuild replays the views received since its snapshot began; this index
-- finds a board's recent views without scanning the whole board.
CREATE INDEX analytics_events_leaderboard_recent
    ON analytics_events (leaderboard_event_id, received_at)
    WHERE leaderboard_event_id IS NOT NULL;
