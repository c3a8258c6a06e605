-- 0009_analytics_gin_without_pending_list.sql: the payload GIN index of 0008
-- takes each insert's entries straight into the index (fastupdate = off).
--
-- Why: with GIN's default fastupdate = on an insert appends to a pending list
-- and the insert that overflows it (gin_pending_list_limit, 4 MB) merges the
-- whole list into the index itself, while it holds its request. Under batch
-- ingest that merge stalled requests past the 5 s deadline and took single-
-- and batch-ingest below the ratios they had before 0008
-- (docs/adr/0015-reading-back.md, "The GIN index on payload"). Without the
-- list every insert pays its own small share, and no one pays for the others.
--
-- Given up: the pending list's batching, the cheaper of the two per row when
-- nothing is waiting on the insert that flushes it. Changing the option takes
-- an exclusive lock on the index for the catalog update only; entries already
-- in the list are merged by gin_clean_pending_list, once, here.
ALTER INDEX analytics_events_payload_gin SET (fastupdate = off);
SELECT gin_clean_pending_list('analytics_events_payload_gin'::regclass);
