-- +goose Up

-- A batch's requests are looked up by custom_id: a single request, and the cursor of a page.
CREATE INDEX requests_batch_custom_id ON requests (batch_id, custom_id) WHERE batch_id IS NOT NULL;

-- Set when a user cancels a request that was running: its call is aborted, and if it comes back to
-- the queue (a retry, a rescue) it is settled as cancelled instead of being claimed again.
ALTER TABLE requests ADD COLUMN cancel_requested_at timestamptz;

CREATE INDEX requests_cancel_requested ON requests (batch_id) WHERE cancel_requested_at IS NOT NULL AND state = 'pending';

-- +goose Down
DROP INDEX requests_cancel_requested;
ALTER TABLE requests DROP COLUMN cancel_requested_at;
DROP INDEX requests_batch_custom_id;
