-- 0004_credit_buckets.sql: an organization's balance split over 16 rows.
--
-- A registration used to debit organizations.credits, one row per
-- organization. When a big conference opens, every registration for it
-- queues on that row's lock, held through each commit's WAL flush, and the
-- organization is capped at about 600 registrations/s (docs/adr/0007). The
-- balance now lives in 16 credit_buckets rows; a registration debits any
-- bucket that has credit and is not locked by another registration, so up
-- to 16 commits overlap. Every bucket keeps CHECK (credits >= 0), so the sum
-- can never go below zero, and the ledger still explains every change.
--
-- organization_balances is the one definition of "the balance": a sum over
-- the organization's 16 rows, an index range scan. Each bucket holds at most
-- 134217728 credits, so a balance never exceeds 16 x 134217728 = 2147483648 (2^31)
-- (every balance the single column allowed migrates intact); a CHECK on each row is exact
-- under concurrency where a check on a computed sum would not be.

CREATE TABLE credit_buckets (
    organization_id et_id    NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    slot            smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    credits         integer  NOT NULL,
    PRIMARY KEY (organization_id, slot),
    CONSTRAINT credit_buckets_credits_range CHECK (credits BETWEEN 0 AND 134217728)
);

INSERT INTO credit_buckets (organization_id, slot, credits)
SELECT o.id, s.slot, o.credits / 16 + CASE WHEN s.slot < o.credits % 16 THEN 1 ELSE 0 END
  FROM organizations o CROSS JOIN generate_series(0, 15) AS s (slot);

ALTER TABLE organizations DROP COLUMN credits;

CREATE VIEW organization_balances AS
SELECT organization_id, sum(credits)::bigint AS balance
  FROM credit_buckets
 GROUP BY organization_id;
