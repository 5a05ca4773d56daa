-- +goose Up

-- When the janitor removed an ended batch's requests, whose results were its output and error
-- files, once both files were deleted or expired. The batch itself and its counters stay.
ALTER TABLE batches ADD COLUMN results_removed_at timestamptz;

CREATE INDEX batches_results_kept ON batches (id)
WHERE results_removed_at IS NULL AND status IN ('completed', 'failed', 'expired', 'cancelled');

-- Deleted responses, for the janitor to remove with their requests.
CREATE INDEX responses_deleted ON responses (deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP INDEX responses_deleted;
DROP INDEX batches_results_kept;
ALTER TABLE batches DROP COLUMN results_removed_at;
