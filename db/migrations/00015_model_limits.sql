-- +goose Up

-- The effective concurrency limit of each model whose limit adapts to its upstream, shared by
-- every replica. A model without a row runs at its configured limit. epoch counts the cuts: a
-- cut names the epoch its overloaded call started under and applies only if no other cut came
-- first, so one overload episode costs one cut however many calls report it.
CREATE TABLE model_limits (
    model      text PRIMARY KEY,
    effective  integer NOT NULL CHECK (effective > 0),
    epoch      bigint NOT NULL DEFAULT 0,
    cuts       bigint NOT NULL DEFAULT 0,
    raises     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE model_limits;
