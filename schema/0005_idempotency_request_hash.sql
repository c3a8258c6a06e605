-- 0005_idempotency_request_hash.sql: "the same body" is the same JSON value.
--
-- An Idempotency-Key record used to keep the request as jsonb and compare a
-- retry with jsonb equality. jsonb keeps the last of two equal member names
-- where the service's decoder reads the first, so a retry naming bob after
-- alice could compare equal to alice's request and replay her 201 (issue
-- 11). A record now keeps the SHA-256 of the request's canonical text
-- (service/src/json/canonical.c: members sorted, strings unescaped, numbers
-- by exact decimal value, a repeated name refused), which is also smaller.
--
-- Rows written by an older binary keep `request` and have no hash; the new
-- binary never replays them (their scope cannot name the operation: see
-- docs/adr/0010-idempotency-key-scope.md), and the purge deletes them after
-- 25 hours. An older binary reading a new row finds `request` NULL, which
-- never compares equal, so it refuses the retry (422) rather than guess.

ALTER TABLE idempotency_keys ADD COLUMN request_sha256 bytea;
ALTER TABLE idempotency_keys ALTER COLUMN request DROP NOT NULL;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_request_known
    CHECK (request IS NOT NULL OR request_sha256 IS NOT NULL);
