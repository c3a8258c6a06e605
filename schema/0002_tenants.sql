-- 0002_tenants.sql: API keys, and analytics event ids scoped to their tenant.
--
-- API keys: a key is shown to its organization once and stored only as the
-- SHA-256 of its secret. Keys are 256-bit random tokens, so a fast hash is
-- the right one (a slow password hash protects guessable secrets, which
-- these are not). Revocation keeps the row: who had access, and until when.
--
-- Analytics: an event id was unique across all tenants, so one organization
-- could learn that another had used an id (409 instead of 201), or take ids
-- another organization's clients will generate. The dedup identity becomes
-- (organization_id, event_id), NULLS NOT DISTINCT so that events sent with
-- the admin key (organization_id NULL) form one namespace of their own. A
-- surrogate sequence becomes the primary key: it orders the log for replay.

CREATE TABLE api_keys (
    id              et_id       PRIMARY KEY,
    organization_id et_id       NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    secret_sha256   bytea       NOT NULL UNIQUE CHECK (octet_length(secret_sha256) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX api_keys_organization_id ON api_keys (organization_id);

ALTER TABLE analytics_events DROP CONSTRAINT analytics_events_pkey;
ALTER TABLE analytics_events ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE analytics_events ADD CONSTRAINT analytics_events_pkey PRIMARY KEY (seq);
ALTER TABLE analytics_events ADD CONSTRAINT analytics_events_tenant_event_id
    UNIQUE NULLS NOT DISTINCT (organization_id, event_id);
