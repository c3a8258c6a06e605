-- 0007_cluster_settings.sql: settings every replica must share, recorded once.
--
-- Some settings change what the replicas write to shared state, and two
-- replicas that disagree corrupt it: with a different applied_retention_hours
-- one replica forgets a board's dedup set while another still relies on it,
-- and a replayed view is counted twice (issue 17). The first replica to start
-- records its value here; every later one compares its own and refuses to
-- start on a difference (service/src/main.c, docs/adr/0013-replicas.md).
-- Changing one is deliberate: stop every replica, delete the row, start them
-- with the new value.
-- Expand-only: older binaries never read this table.

CREATE TABLE cluster_settings (
    name   text PRIMARY KEY,
    value  text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);
