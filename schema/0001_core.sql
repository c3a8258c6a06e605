-- 0001_core.sql: the source of truth for EventTrack.
--
-- Every business rule that can be stated as data lives here, so that no code
-- path (this service, a psql session, a future worker) can break it:
--   * ids are checked by one domain, money is NUMERIC(10,2), time is TIMESTAMPTZ;
--   * every reference is a foreign key with ON DELETE RESTRICT: nothing dangles;
--   * a registration's organization is the one that runs the session's event,
--     enforced by composite foreign keys rather than by application code;
--   * a balance never goes below zero (CHECK), and every change to it is
--     explained by a row of the append-only credit ledger;
--   * one registration per (session, user), decided by a UNIQUE constraint,
--     never by a check-then-insert race;
--   * analytics events have a fixed envelope and a JSONB payload, so a new event
--     type needs no migration; the event id is unique, so it counts once, ever.
--
-- Released migrations are never edited: change the schema with a new file.

CREATE DOMAIN et_id AS text
    CHECK (VALUE ~ '^[A-Za-z0-9_.:-]{1,128}$');

CREATE TABLE organizations (
    id          et_id       PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    credits     integer     NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id              et_id       PRIMARY KEY,
    organization_id et_id       NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    name            text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    starts_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Target of the composite keys below: lets a child carry its organization
    -- and have the database prove it is the right one.
    UNIQUE (id, organization_id)
);
CREATE INDEX events_organization_id ON events (organization_id);

CREATE TABLE sessions (
    id              et_id       PRIMARY KEY,
    event_id        et_id       NOT NULL,
    organization_id et_id       NOT NULL,
    title           text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    speaker_id      et_id       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (event_id, organization_id)
        REFERENCES events (id, organization_id) ON DELETE RESTRICT,
    UNIQUE (id, organization_id)
);
CREATE INDEX sessions_event_id ON sessions (event_id);

CREATE TABLE registrations (
    id              et_id         PRIMARY KEY,
    session_id      et_id         NOT NULL,
    organization_id et_id         NOT NULL,
    user_id         et_id         NOT NULL,
    ticket_type     text          NOT NULL CHECK (ticket_type ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    price_paid      numeric(10,2) NOT NULL CHECK (price_paid >= 0),
    registered_at   timestamptz   NOT NULL DEFAULT now(),
    -- The organization paying the credit is the one running the session.
    FOREIGN KEY (session_id, organization_id)
        REFERENCES sessions (id, organization_id) ON DELETE RESTRICT,
    CONSTRAINT registrations_one_per_user UNIQUE (session_id, user_id)
);
CREATE INDEX registrations_organization_id ON registrations (organization_id);

-- Append-only: organizations.credits always equals the sum of delta for the
-- organization. Rows are only ever inserted, in the same transaction as the
-- balance change they explain.
CREATE TABLE credit_ledger (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id et_id       NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    kind            text        NOT NULL CHECK (kind IN ('opening_balance', 'top_up', 'registration')),
    delta           integer     NOT NULL CHECK (delta <> 0),
    registration_id et_id       REFERENCES registrations (id) ON DELETE RESTRICT,
    reason          text        CHECK (char_length(reason) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'registration') = (registration_id IS NOT NULL)),
    CHECK (CASE kind WHEN 'registration' THEN delta = -1 ELSE delta > 0 END)
);
CREATE INDEX credit_ledger_organization_id ON credit_ledger (organization_id);

CREATE FUNCTION credit_ledger_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER credit_ledger_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON credit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION credit_ledger_forbid_change();

-- The analytics log: a fixed envelope, a free-form JSONB payload.
-- leaderboard_event_id/leaderboard_speaker_id record the effect the event has
-- on a speaker leaderboard (NULL: none), resolved once at ingest; rebuilding
-- Redis from this table is then an indexed GROUP BY, never a payload scan.
CREATE TABLE analytics_events (
    event_id               et_id       PRIMARY KEY,
    event_type             text        NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]{0,63}$'),
    user_id                et_id       NOT NULL,
    organization_id        et_id       REFERENCES organizations (id) ON DELETE RESTRICT,
    occurred_at            timestamptz NOT NULL,
    received_at            timestamptz NOT NULL DEFAULT now(),
    payload                jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    leaderboard_event_id   et_id       REFERENCES events (id) ON DELETE RESTRICT,
    leaderboard_speaker_id et_id,
    CHECK ((leaderboard_event_id IS NULL) = (leaderboard_speaker_id IS NULL))
);
CREATE INDEX analytics_events_leaderboard
    ON analytics_events (leaderboard_event_id, leaderboard_speaker_id)
    WHERE leaderboard_event_id IS NOT NULL;
CREATE INDEX analytics_events_type_time ON analytics_events (event_type, occurred_at);

-- Idempotency-Key records: the first response to a keyed request, replayed to
-- retries. Written in the same transaction as the effect it describes, so a
-- crash can never leave an effect without its record (or the reverse).
CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request       jsonb       NOT NULL,
    status        smallint    NOT NULL CHECK (status BETWEEN 200 AND 599),
    response_body text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
