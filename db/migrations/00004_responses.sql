-- +goose Up

-- A queued response's request carries the response's id, so that the daemon can give the
-- upstream's answer Volley's id and wake whoever waits for it.
ALTER TABLE requests ADD COLUMN response_id text;

-- Responses created through /v1/responses. Background and flex ones are queued as a request; their
-- state and final object are read from it. Synchronous ones store the upstream's final object.
CREATE TABLE responses (
    id           text        PRIMARY KEY,
    owner        text        NOT NULL,
    model        text        NOT NULL,
    mode         text        NOT NULL, -- background | flex | sync
    request_id   bigint,
    -- The create request as the client sent it, for the fields of the queued object.
    params       bytea       NOT NULL,
    object       bytea,
    created_at   timestamptz NOT NULL,
    cancelled_at timestamptz,
    deleted_at   timestamptz
);

CREATE INDEX responses_request ON responses (request_id) WHERE request_id IS NOT NULL;

-- +goose Down
DROP TABLE responses;
ALTER TABLE requests DROP COLUMN response_id;
