-- +goose Up

-- When a request was queued: with its deadline, the window its deadline ramp is a fraction of.
-- Requests queued before this migration count from it.
ALTER TABLE requests ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
ALTER TABLE requests DROP COLUMN created_at;
