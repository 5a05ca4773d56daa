-- name: BatchInsert :one
INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, model, status, metadata,
                     output_expires_seconds, created_at, in_progress_at, expires_at, total, service_tier)
VALUES (@id, @owner, @input_file_id, @endpoint, @completion_window, sqlc.narg(model), 'in_progress', @metadata,
        sqlc.narg(output_expires_seconds), @created_at, @created_at, @expires_at, @total, sqlc.narg(service_tier))
RETURNING *;

-- name: BatchGet :one
SELECT * FROM batches WHERE id = @id AND owner = @owner AND deleted_at IS NULL;

-- name: BatchList :many
-- A page of an owner's batches, newest first or, with @active_first, running ones first. @search
-- is a LIKE pattern escaped by the caller, matched against the id, the input filename and every
-- metadata value.
SELECT b.* FROM batches b
WHERE b.owner = @owner AND b.deleted_at IS NULL
  AND (cardinality(@statuses::text[]) = 0 OR b.status = ANY (@statuses::text[]))
  AND (sqlc.narg(input_file_id)::text IS NULL OR b.input_file_id = sqlc.narg(input_file_id)::text)
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR b.created_at >= sqlc.narg(created_after)::timestamptz)
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR b.created_at < sqlc.narg(created_before)::timestamptz)
  AND (sqlc.narg(search)::text IS NULL OR b.id ILIKE sqlc.narg(search)::text
       OR EXISTS (SELECT 1 FROM files f WHERE f.id = b.input_file_id AND f.filename ILIKE sqlc.narg(search)::text)
       OR EXISTS (SELECT 1 FROM jsonb_each_text(coalesce(b.metadata, '{}'::jsonb)) kv WHERE kv.value ILIKE sqlc.narg(search)::text))
  AND (sqlc.narg(after)::text IS NULL
       OR (CASE WHEN @active_first::bool
                THEN (b.status IN ('validating', 'in_progress', 'finalizing', 'cancelling'), b.id) < (@after_active::bool, sqlc.narg(after)::text)
                ELSE b.id < sqlc.narg(after)::text END))
ORDER BY (CASE WHEN @active_first::bool THEN b.status IN ('validating', 'in_progress', 'finalizing', 'cancelling') END) DESC, b.id DESC
LIMIT @max_rows;

-- name: BatchIsActive :one
SELECT status IN ('validating', 'in_progress', 'finalizing', 'cancelling') AS active FROM batches
WHERE id = @id AND owner = @owner AND deleted_at IS NULL;

-- name: BatchRequestCancel :one
-- Moves a running batch to cancelling. Nothing happens to a batch in any other state.
UPDATE batches SET status = 'cancelling', cancelling_at = now()
WHERE id = @id AND owner = @owner AND status = 'in_progress' AND deleted_at IS NULL
RETURNING *;

-- name: BatchMarkExpiring :many
-- Batches whose completion window has passed. They settle as expired once their in-flight
-- requests are aborted and recorded.
UPDATE batches SET expiring_at = now()
WHERE status = 'in_progress' AND expiring_at IS NULL AND expires_at <= now()
RETURNING id;

-- name: BatchesSettled :many
-- Batches whose every request is terminal but which have not been finalized, for the sweeper.
SELECT id FROM batches
WHERE status IN ('in_progress', 'cancelling') AND completed + failed >= total;

-- name: BatchesEnding :many
-- Batches whose in-flight requests must be aborted: cancelling, or past their window.
SELECT id, status FROM batches
WHERE status = 'cancelling' OR (status = 'in_progress' AND expiring_at IS NOT NULL);

-- name: BatchFinalize :one
-- Settles a batch whose requests are all terminal, creating its output and error files (only those
-- that have lines) with their exact sizes: in_progress → completed (through finalizing),
-- cancelling → cancelled, in_progress past its window → expired. The batch.<status> webhook event
-- and its deliveries are written in the same statement.
WITH b AS (
    SELECT * FROM batches
    WHERE batches.id = @id AND status IN ('in_progress', 'cancelling') AND completed + failed >= total
    FOR UPDATE
), out_file AS (
    INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, expires_at, batch_id, deleted_at)
    SELECT @output_file_id::text, b.owner, 'batch_' || b.id || '_output.jsonl', 'batch_output', b.output_bytes,
           b.completed, now(), now() + make_interval(secs => coalesce(b.output_expires_seconds, @default_expiry_seconds::int)), b.id,
           CASE WHEN b.deleted_at IS NOT NULL THEN now() END
    FROM b WHERE b.completed > 0
    RETURNING files.id
), err_file AS (
    INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, expires_at, batch_id, deleted_at)
    SELECT @error_file_id::text, b.owner, 'batch_' || b.id || '_error.jsonl', 'batch_error', b.error_bytes,
           b.failed, now(), now() + make_interval(secs => coalesce(b.output_expires_seconds, @default_expiry_seconds::int)), b.id,
           CASE WHEN b.deleted_at IS NOT NULL THEN now() END
    FROM b WHERE b.failed > 0
    RETURNING files.id
), ended AS (
UPDATE batches SET
    status = CASE WHEN b.status = 'cancelling' THEN 'cancelled'
                  WHEN b.expiring_at IS NOT NULL THEN 'expired'
                  ELSE 'completed' END,
    finalizing_at = CASE WHEN b.status = 'in_progress' AND b.expiring_at IS NULL THEN now() END,
    completed_at  = CASE WHEN b.status = 'in_progress' AND b.expiring_at IS NULL THEN now() END,
    expired_at    = CASE WHEN b.status = 'in_progress' AND b.expiring_at IS NOT NULL THEN now() END,
    cancelled_at  = CASE WHEN b.status = 'cancelling' THEN now() END,
    output_file_id = (SELECT out_file.id FROM out_file),
    error_file_id  = (SELECT err_file.id FROM err_file)
FROM b
WHERE batches.id = b.id
RETURNING batches.*
), event AS (
    -- The batch's webhook event, in the same transaction, when an endpoint of its owner wants it.
    INSERT INTO webhook_events (id, owner, type, data, created_at)
    SELECT @event_id::text, ended.owner, 'batch.' || ended.status, jsonb_build_object('id', ended.id), now()
    FROM ended
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints e
                  WHERE e.owner = ended.owner AND 'batch.' || ended.status = ANY (e.event_types))
    RETURNING webhook_events.id, webhook_events.owner, webhook_events.type
), delivery AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id)
    SELECT e.id, event.id FROM event
    JOIN webhook_endpoints e ON e.owner = event.owner AND event.type = ANY (e.event_types)
)
SELECT * FROM ended;

-- name: BatchSettlePending :one
-- Ends every pending request of an ending batch with an error line, in one statement counted in
-- the batch: batch_cancelled when it is cancelling, batch_expired when its window has passed.
-- Requests that come back to the queue later (a replica's lease ran out, a retry was recorded) are
-- settled by the next call, which the daemon makes on every tick while the batch is ending.
WITH b AS (
    SELECT batches.id, batches.status = 'cancelling' AS cancelled FROM batches
    WHERE batches.id = @batch_id
      AND (batches.status = 'cancelling' OR (batches.status = 'in_progress' AND batches.expiring_at IS NOT NULL))
), settled AS (
    UPDATE requests SET
        state = CASE WHEN b.cancelled THEN 'cancelled' ELSE 'expired' END,
        finished_at = now(),
        daemon_id = NULL,
        result = convert_to(json_build_object(
            'id', 'batch_req_' || md5(requests.batch_id || ':' || requests.line),
            'custom_id', requests.custom_id,
            'response', NULL,
            'error', CASE WHEN b.cancelled
                THEN json_build_object('code', 'batch_cancelled', 'message', 'This request was not completed because the batch was cancelled.')
                ELSE json_build_object('code', 'batch_expired', 'message', 'This request could not be executed before the completion window expired.')
            END)::text || E'\n', 'UTF8')
    FROM b
    WHERE requests.batch_id = b.id AND requests.state = 'pending'
    RETURNING length(requests.result) AS bytes
)
UPDATE batches SET
    failed = failed + (SELECT count(*) FROM settled),
    error_bytes = error_bytes + (SELECT coalesce(sum(bytes), 0) FROM settled)
WHERE batches.id = @batch_id
RETURNING batches.completed + batches.failed >= batches.total AS settled;

-- name: BatchEndRunning :exec
-- Moves the deadline of a cancelled batch's running requests to now, so that none of them is
-- claimed again if it comes back to the queue: BatchSettlePending ends it instead.
UPDATE requests SET deadline = least(deadline, now())
WHERE batch_id = @batch_id::text AND state = 'running';

-- name: BatchFileLinesFirstURLMismatch :one
SELECT line, url FROM file_lines
WHERE file_id = @file_id AND custom_id IS NOT NULL AND url <> @endpoint
ORDER BY line
LIMIT 1;

-- name: BatchFileModels :many
-- The models an input file uses, each with the first line that names it.
SELECT model::text AS model, min(line)::int AS first_line FROM file_lines
WHERE file_id = @file_id AND custom_id IS NOT NULL
GROUP BY model
ORDER BY first_line;

-- name: FileGetLiveForShare :one
-- Locks the file against deletion while a batch is created from it.
SELECT * FROM files
WHERE id = @id AND owner = @owner AND deleted_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
FOR SHARE;

-- name: BatchNotifyWork :exec
SELECT pg_notify('volley_work', @payload::text);

-- name: BatchNotifyAbort :exec
SELECT pg_notify('volley_abort', @batch_id::text);

-- name: BatchMarkDeleted :one
UPDATE batches SET deleted_at = now()
WHERE id = @id AND owner = @owner AND deleted_at IS NULL
RETURNING id;

-- name: BatchFilesMarkDeleted :exec
-- A batch's output and error files go with it.
UPDATE files SET deleted_at = now() WHERE batch_id = @batch_id::text AND deleted_at IS NULL;
