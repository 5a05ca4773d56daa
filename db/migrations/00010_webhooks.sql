-- +goose Up

-- An owner's webhook endpoint. The signing secret (whsec_ + base64 of 32 random bytes) is kept
-- because every delivery is signed with it; it is shown to the owner only when it is made. After a
-- rotation that keeps the old secret for a while, deliveries carry a signature by each.
CREATE TABLE webhook_endpoints (
    id                    text        PRIMARY KEY,
    owner                 text        NOT NULL,
    name                  text        NOT NULL,
    url                   text        NOT NULL,
    event_types           text[]      NOT NULL,
    secret                text        NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

CREATE INDEX webhook_endpoints_owner_id ON webhook_endpoints (owner, id);

-- An event, written in the transaction that causes it (a batch ending), only when one of the
-- owner's endpoints subscribes to its type. data is the event's "data" object.
CREATE TABLE webhook_events (
    id         text        PRIMARY KEY,
    owner      text        NOT NULL,
    type       text        NOT NULL,
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);

-- One event to one endpoint. state: pending → succeeded | failed. A claim counts an attempt and
-- moves next_attempt_at past the delivery timeout: that is the lease. Until it passes no other
-- replica takes the delivery, and once it passes (the replica died) the next claim does, with the
-- next attempt number; an outcome is recorded only by the claim whose attempt it is.
CREATE TABLE webhook_deliveries (
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        text        NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_events_created_at ON webhook_events (created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
