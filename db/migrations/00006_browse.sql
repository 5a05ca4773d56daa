-- +goose Up

-- A batch's requests are looked up by custom_id: a single request, and the cursor of a page.
CREATE INDEX requests_batch_custom_id ON requests (batch_id, custom_id) WHERE batch_id IS NOT NULL;

-- +goose Down
DROP INDEX requests_batch_custom_id;
