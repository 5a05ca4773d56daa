-- +goose Up

-- A batch's requests are looked up by custom_id: a single request, and the cursor of a page.
CREATE INDEX requests_batch_custom_id ON requests (batch_id, custom_id) WHERE batch_id IS NOT NULL;

-- Set when a user cancels a request that was running: its call is aborted, and if it comes back to
-- the queue (a retry, a rescue) it is settled as cancelled instead of being claimed again.
ALTER TABLE requests ADD COLUMN cancel_requested_at timestamptz;

CREATE INDEX requests_cancel_requested ON requests (batch_id) WHERE cancel_requested_at IS NOT NULL AND state = 'pending';

-- A deleted batch is gone for its owner at once; the janitor removes it, its requests and so its
-- results for good once it has ended.
ALTER TABLE batches ADD COLUMN deleted_at timestamptz;

CREATE INDEX batches_deleted ON batches (deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP INDEX batches_deleted;
ALTER TABLE batches DROP COLUMN deleted_at;
DROP INDEX requests_cancel_requested;
ALTER TABLE requests DROP COLUMN cancel_requested_at;
DROP INDEX requests_batch_custom_id;
