-- +goose Up

-- The expiry sweep looks for queued responses past their deadline on every tick. Without an index
-- of its own it read every pending request, batches' included, by sequential scan: with a backlog
-- of millions, millions of rows a tick, on every replica.
CREATE INDEX requests_response_pending ON requests (deadline) WHERE response_id IS NOT NULL AND state = 'pending';

-- +goose Down
DROP INDEX requests_response_pending;
