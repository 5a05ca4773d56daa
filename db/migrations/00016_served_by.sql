-- +goose Up

-- Which upstream, under which model name, answered a request: its own route's, or its fallback's
-- (served_fallback). NULL until an upstream has answered it.
ALTER TABLE requests
    ADD COLUMN served_upstream text,
    ADD COLUMN served_model text,
    ADD COLUMN served_fallback boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE requests DROP COLUMN served_fallback, DROP COLUMN served_model, DROP COLUMN served_upstream;
