-- tests/load/scale_load.sql - grows the analytics log of scripts/bench's
-- scratch database for the "constraint B at scale" section: inserts the
-- session_views numbered :from .. :to for conference :event (organization
-- :org), spread unevenly over :speakers speakers, with the leaderboard columns
-- set as the ingest statement sets them. psql variables: from to event org
-- sess0 speakers.
--
-- A bulk load, not the ingest path: millions of rows through the service
-- would take longer than the whole benchmark. Three costs are moved out of
-- the way, all inside ONE transaction, so the schema is back exactly as it
-- was (or the load never happened) when it ends:
--   * the indexes and the unique/primary-key constraints of analytics_events
--     (and the foreign keys that point at it) are dropped and rebuilt from
--     their own definitions afterwards: one sorted build instead of millions
--     of single inserts;
--   * the et_id domain's CHECK (a regular expression, about 4 us per value,
--     five values per row, measured here) is dropped and re-added NOT VALID:
--     every row written later is checked as before; these rows are valid by
--     construction ('gen-N', 'uN', digits, 'spk-NN');
--   * foreign-key triggers are skipped (session_replication_role = replica):
--     the organization and the conference exist.
\set ON_ERROR_STOP on
BEGIN;
SELECT set_config('bench.from', :'from', true), set_config('bench.to', :'to', true),
       set_config('bench.event', :'event', true), set_config('bench.org', :'org', true),
       set_config('bench.sess0', :'sess0', true), set_config('bench.speakers', :'speakers', true)
\g /dev/null
SET LOCAL session_replication_role = replica;
SET LOCAL maintenance_work_mem = '256MB';
DO $$
DECLARE
    ddl text[] := '{}';
    r record;
    stmt text;
    domain_check text;
BEGIN
    -- Remember, then drop: foreign keys pointing at the table, its primary
    -- key and unique constraints, its other indexes, the domain's CHECK.
    FOR r IN SELECT c.conrelid::regclass AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
               FROM pg_constraint c
              WHERE c.confrelid = 'analytics_events'::regclass AND c.contype = 'f' LOOP
        ddl := ddl || format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname, r.def);
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
    FOR r IN SELECT c.conname, pg_get_constraintdef(c.oid) AS def
               FROM pg_constraint c
              WHERE c.conrelid = 'analytics_events'::regclass AND c.contype IN ('p', 'u') LOOP
        ddl := array_prepend(format('ALTER TABLE analytics_events ADD CONSTRAINT %I %s', r.conname, r.def), ddl);
        EXECUTE format('ALTER TABLE analytics_events DROP CONSTRAINT %I', r.conname);
    END LOOP;
    FOR r IN SELECT i.indexrelid::regclass AS idx, pg_get_indexdef(i.indexrelid) AS def
               FROM pg_index i
              WHERE i.indrelid = 'analytics_events'::regclass LOOP
        ddl := array_prepend(r.def, ddl);
        EXECUTE format('DROP INDEX %s', r.idx);
    END LOOP;
    SELECT pg_get_constraintdef(oid) INTO domain_check FROM pg_constraint
     WHERE contypid = 'et_id'::regtype AND conname = 'et_id_check';
    IF domain_check IS NOT NULL THEN
        ALTER DOMAIN et_id DROP CONSTRAINT et_id_check;
    END IF;

    INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at,
                                  payload, leaderboard_event_id, leaderboard_speaker_id)
    SELECT 'gen-' || g, 'session_view', 'u' || (g % 50000), current_setting('bench.org'),
           now() - (g % 2592000) * interval '1 second',
           jsonb_build_object('session_id', (current_setting('bench.sess0')::bigint + sp)::text,
                              'speaker_id', 'spk-' || lpad(sp::text, 2, '0')),
           current_setting('bench.event'), 'spk-' || lpad(sp::text, 2, '0')
      FROM (SELECT g, floor(current_setting('bench.speakers')::int * power(random(), 2))::int AS sp
              FROM generate_series(current_setting('bench.from')::bigint,
                                   current_setting('bench.to')::bigint) AS g) AS s;

    -- Rebuild in order: indexes and keys first, then the foreign keys to them.
    FOREACH stmt IN ARRAY ddl LOOP
        EXECUTE stmt;
    END LOOP;
    IF domain_check IS NOT NULL THEN
        EXECUTE format('ALTER DOMAIN et_id ADD CONSTRAINT et_id_check %s NOT VALID', domain_check);
    END IF;
END
$$;
COMMIT;
VACUUM ANALYZE analytics_events;
