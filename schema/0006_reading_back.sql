-- 0006_reading_back.sql: cancellations with refunds, and the indexes of the lists (issue 15).
--
-- A cancelled registration keeps its row (the ledger names it) and gains
-- cancelled_at; its credit comes back as a `refund` ledger row of +1 naming
-- it. "One place per (session, user)" now holds among active registrations
-- only: the table-wide UNIQUE becomes a partial unique index of the SAME
-- name, so store/registrations.c, which recognises the violation by that
-- name, keeps answering 409 already-registered unchanged. A second unique
-- index makes "refunded at most once" a rule of the database, not only of
-- the statement that refunds (store/cancel.c).
--
-- The list indexes serve keyset pagination (docs/adr/0015-reading-back.md):
-- each is the list's filter column followed by its sort key and the id
-- tie-breaker, so a page is one index range scan, as cheap deep in a list as
-- at its start. Released migrations 0001-0005 are untouched.

ALTER TABLE registrations ADD COLUMN cancelled_at timestamptz;
ALTER TABLE registrations ADD CONSTRAINT registrations_cancelled_after
    CHECK (cancelled_at IS NULL OR cancelled_at >= registered_at);
ALTER TABLE registrations DROP CONSTRAINT registrations_one_per_user;
CREATE UNIQUE INDEX registrations_one_per_user
    ON registrations (session_id, user_id) WHERE cancelled_at IS NULL;

ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_kind_check;
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_check;
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_check1;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_kind_check
    CHECK (kind IN ('opening_balance', 'top_up', 'registration', 'refund'));
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_names_registration
    CHECK ((kind IN ('registration', 'refund')) = (registration_id IS NOT NULL));
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_delta_sign
    CHECK (CASE kind WHEN 'registration' THEN delta = -1
                     WHEN 'refund' THEN delta = 1
                     ELSE delta > 0 END);
CREATE UNIQUE INDEX credit_ledger_one_refund
    ON credit_ledger (registration_id) WHERE kind = 'refund';

-- Lists, newest first with the id as tie-breaker (docs/adr/0015).
CREATE INDEX events_list ON events (organization_id, created_at DESC, id DESC);
CREATE INDEX sessions_list ON sessions (event_id, created_at DESC, id DESC);
CREATE INDEX registrations_list ON registrations (session_id, registered_at DESC, id DESC);
CREATE INDEX credit_ledger_list ON credit_ledger (organization_id, id DESC);

-- Reading the analytics log (docs/adr/0015): one organization's rows by
-- time, for the list's pages and the counts' windows. It REPLACES
-- analytics_events_type_time, which no statement has ever read, so every
-- ingest still maintains the same number of indexes (measured: a second
-- btree cost ingest about 15%). No GIN index on payload: measured in ADR
-- 0015, it costs every ingest more than containment on an organization's
-- day, already narrowed by this index, gains from it.
DROP INDEX analytics_events_type_time;
CREATE INDEX analytics_events_org_time ON analytics_events (organization_id, occurred_at DESC, seq DESC);
