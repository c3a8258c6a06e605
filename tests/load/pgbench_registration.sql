-- tests/load/pgbench_registration.sql - the limit for POST /v1/registrations:
-- pgbench running the service's own registration statement.
--
-- A template, not a runnable pgbench script: the statement below is a verbatim
-- copy of stmt_register in service/src/store/registrations.c, with its $n
-- parameters. scripts/bench first checks the copy against the SQL the binary
-- really prepares (tests/load/service_sql.c) and refuses to measure a stale
-- copy, then renders it for pgbench by replacing each $n by its `bind`
-- expression (tests/load/pgbench_render.awk). With `-M prepared` pgbench
-- sends each :variable as a text parameter, as the service does.
--
-- Variables from the command line (-D): org0 norgs sess0 spo, the prepared
-- organizations and sessions as in tests/load/registration.lua, and tt, price.
-- norgs=1000 spreads the credits; norgs=1 puts every debit on one row.
--
-- service-statement: registrations_create
-- bind $1 :rid
-- bind $2 :sid
-- bind $3 :oid
-- bind $4 :uid
-- bind $5 :tt
-- bind $6 :price
\set k random(0, :norgs - 1)
\set oid :org0 + :k
\set sid :sess0 + :k * :spo + random(0, :spo - 1)
\set rid random(1000000000000, 999999999999999999)
\set uid random(1000000000000, 999999999999999999)
WITH bucket AS (
  SELECT slot FROM credit_buckets
   WHERE organization_id = $3 AND credits > 0
     AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND s.organization_id = $3)
   ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED
), debit AS (
  UPDATE credit_buckets c SET credits = c.credits - 1
    FROM bucket WHERE c.organization_id = $3 AND c.slot = bucket.slot
  RETURNING c.slot, c.credits
), registration AS (
  INSERT INTO registrations (id, session_id, organization_id, user_id, ticket_type, price_paid)
  SELECT $1, $2, $3, $4, $5, $6::numeric FROM debit
  RETURNING id, price_paid, registered_at
), entry AS (
  INSERT INTO credit_ledger (organization_id, kind, delta, registration_id)
  SELECT $3, 'registration', -1, id FROM registration
)
SELECT r.price_paid, to_char((r.registered_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       d.credits + (SELECT coalesce(sum(c.credits), 0) FROM credit_buckets c
                     WHERE c.organization_id = $3 AND c.slot <> d.slot)
  FROM registration r, debit d;
