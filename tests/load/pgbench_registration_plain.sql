-- tests/load/pgbench_registration_plain.sql - the PLAIN single-row design of
-- the registration (every debit on the organization's one balance row, its
-- lock held through the commit), frozen here as the reference of the
-- "registration, all on one organization" target: at least 3x this figure
-- (issue 5; docs/perf/machine-limits.md measured about 600 tx/s).
--
-- Deliberately NOT checked against the service's SQL: it is the design the
-- service had when this benchmark was written (store/registrations.c,
-- stmt_register, before schema/0004 split balances into buckets), kept so
-- that the 3x target keeps its baseline. Since organizations has no credits
-- column any more, the one balance row lives in bench_plain_balances, and its
-- rows go to copies of registrations and credit_ledger, all of which
-- scripts/bench creates in its scratch database just for this run. scripts/bench runs it with -D norgs=1 only
-- when the service's statement differs from it; while they are the same, the
-- one-organization pgbench figure is that baseline. Rendered like the other
-- templates (pgbench_render.awk).
--
-- service-statement: (frozen)
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
WITH debit AS (
  UPDATE bench_plain_balances o SET credits = o.credits - 1
   WHERE o.organization_id = $3 AND o.credits > 0
     AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND s.organization_id = $3)
  RETURNING o.credits
), registration AS (
  INSERT INTO bench_plain_registrations (id, session_id, organization_id, user_id, ticket_type, price_paid)
  SELECT $1, $2, $3, $4, $5, $6::numeric FROM debit
  RETURNING id, price_paid, registered_at
), entry AS (
  INSERT INTO bench_plain_ledger (organization_id, kind, delta, registration_id)
  SELECT $3, 'registration', -1, id FROM registration
)
SELECT r.price_paid, to_char((r.registered_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), d.credits
  FROM registration r, debit d;
