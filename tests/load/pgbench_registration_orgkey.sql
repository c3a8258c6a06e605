-- tests/load/pgbench_registration_orgkey.sql - the limit for a registration
-- made with an organization key: the service's key lookup, then its
-- registration statement, two round trips as in the service (routes/admission.c
-- looks the key up on the first callback; the rate limit is off in the bench).
--
-- A template like pgbench_registration.sql (read its header): both statements
-- are verbatim copies, checked against the binary's SQL before each run.
-- pgbench cannot build the service's "etk_<hex>" secrets, so scripts/bench
-- gives each prepared organization k one more key whose secret is the
-- decimal number key0 + k (same table, same index, same hash).
--
-- service-statement: keys_authenticate
-- bind $1 :secret
-- service-statement: registrations_create
-- bind $1 :rid
-- bind $2 :sid
-- bind $3 :oid
-- bind $4 :uid
-- bind $5 :tt
-- bind $6 :price
\set k random(0, :norgs - 1)
\set secret :key0 + :k
\set oid :org0 + :k
\set sid :sess0 + :k * :spo + random(0, :spo - 1)
\set rid random(1000000000000, 999999999999999999)
\set uid random(1000000000000, 999999999999999999)
SELECT id, organization_id FROM api_keys
 WHERE secret_sha256 = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL;
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
