-- +goose Up

-- An append-only log of what admins said of each model: the latest event of a model is its state.
-- A model with no event is live. Requests of a model that is not live wait in the queue.
CREATE TABLE model_availability_events (
    id         bigserial PRIMARY KEY,
    model      text NOT NULL,
    state      text NOT NULL CHECK (state IN ('live', 'coming', 'absent')),
    note       text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_availability_events_model ON model_availability_events (model, id DESC);

-- When each owner last had a request of a `coming` model let through, so that at most one per
-- (owner, model) goes per trickle interval.
CREATE TABLE model_trickle (
    model text NOT NULL,
    owner text NOT NULL,
    at    timestamptz NOT NULL,
    PRIMARY KEY (model, owner)
);

-- +goose Down
DROP TABLE model_trickle;
DROP TABLE model_availability_events;
