-- name: RequestsCancelPending :many
-- Ends the named pending requests of a batch with a request_cancelled error line, counted in the
-- batch in the same statement. Pending requests whose cancel was asked while they ran (they came
-- back to the queue since) are ended the same way.
WITH settled AS (
    UPDATE requests SET
        state = 'cancelled',
        finished_at = now(),
        daemon_id = NULL,
        result = request_cancelled_line(requests.batch_id, requests.line, requests.custom_id)
    WHERE requests.batch_id = @batch_id::text AND requests.state = 'pending'
      AND (requests.custom_id = ANY (@custom_ids::text[]) OR requests.cancel_requested_at IS NOT NULL)
    RETURNING requests.custom_id::text AS custom_id, length(requests.result) AS bytes
), counted AS (
    UPDATE batches SET
        failed = failed + (SELECT count(*) FROM settled),
        error_bytes = error_bytes + (SELECT coalesce(sum(bytes), 0) FROM settled)
    WHERE batches.id = @batch_id::text AND EXISTS (SELECT 1 FROM settled)
)
SELECT settled.custom_id FROM settled;

-- name: RequestsMarkCancelRunning :many
-- Marks the named running requests of a batch for cancelling; their deadline moves to now so that
-- no claim takes them again should they come back to the queue.
UPDATE requests SET cancel_requested_at = coalesce(cancel_requested_at, now()), deadline = least(deadline, now())
WHERE batch_id = @batch_id::text AND state = 'running' AND custom_id = ANY (@custom_ids::text[])
RETURNING custom_id::text AS custom_id;

-- name: RequestsStates :many
SELECT custom_id::text AS custom_id, state FROM requests
WHERE batch_id = @batch_id::text AND custom_id = ANY (@custom_ids::text[]);

-- name: RequestsCancelRequestedAmong :many
-- Which of these in-flight requests a user asked to cancel.
SELECT id FROM requests WHERE id = ANY (@ids::bigint[]) AND cancel_requested_at IS NOT NULL;

-- name: RequestsCancelRequestedBatches :many
-- Batches holding pending requests whose cancel was asked while they ran, for the sweeper.
SELECT DISTINCT r.batch_id::text AS batch_id FROM requests r
WHERE r.cancel_requested_at IS NOT NULL AND r.state = 'pending';

-- name: RequestsCreateRetry :execrows
-- The requests of a retry batch: those of the old batch in one of @states (and among @custom_ids
-- when any are given), at their input lines, reading their bodies from the same input file.
INSERT INTO requests (batch_id, line, owner, model, url, custom_id, file_id, deadline, background)
SELECT @batch_id::text, r.line, r.owner, r.model, r.url, r.custom_id, r.file_id, @deadline::timestamptz, r.background
FROM requests r
WHERE r.batch_id = @old_batch_id::text AND r.state = ANY (@states::text[])
  AND (cardinality(@custom_ids::text[]) = 0 OR r.custom_id = ANY (@custom_ids::text[]))
ORDER BY r.line;

-- name: RequestsBatchModels :many
SELECT DISTINCT model FROM requests WHERE batch_id = @batch_id::text ORDER BY model;
