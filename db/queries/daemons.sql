-- name: DaemonRegister :one
INSERT INTO daemons (host, pid) VALUES (@host, @pid) RETURNING id;

-- name: DaemonHeartbeat :execrows
UPDATE daemons SET heartbeat_at = now(), completed = @completed, failed = @failed WHERE id = @id AND stopped_at IS NULL;

-- name: DaemonStop :exec
UPDATE daemons SET stopped_at = now() WHERE id = @id AND stopped_at IS NULL;

-- name: DaemonHandBack :execrows
-- Returns a daemon's running requests to the queue, for another claim to pick up at once.
UPDATE requests SET state = 'pending', daemon_id = NULL
WHERE daemon_id = @daemon_id AND state = 'running';

-- name: DaemonsRescue :execrows
-- Declares replicas that stopped heartbeating dead and returns their requests to the queue.
-- Their attempt numbers no longer match, so a late answer from them can never be recorded.
WITH dead AS (
    UPDATE daemons SET stopped_at = now(), declared_dead = true
    WHERE stopped_at IS NULL AND heartbeat_at < now() - make_interval(secs => @lease_seconds::float8)
    RETURNING id
)
UPDATE requests SET state = 'pending', daemon_id = NULL
WHERE state = 'running'
  AND (daemon_id IN (SELECT id FROM dead)
       OR daemon_id IN (SELECT d.id FROM daemons d WHERE d.stopped_at IS NOT NULL));

-- name: FilesJanitor :many
-- Files past their expiry are marked deleted; returns deleted input files whose lines no running
-- batch needs any more, for their lines to be removed. (The files this statement marks are not
-- visible to its own SELECT over files, hence the union with what it returns.)
WITH expired AS (
    UPDATE files SET deleted_at = now()
    WHERE deleted_at IS NULL AND expires_at <= now()
    RETURNING files.id, files.batch_id
), candidates AS (
    SELECT expired.id FROM expired WHERE expired.batch_id IS NULL
    UNION
    SELECT f.id FROM files f
    WHERE f.deleted_at IS NOT NULL AND f.batch_id IS NULL
      AND EXISTS (SELECT 1 FROM file_lines fl WHERE fl.file_id = f.id)
)
SELECT c.id FROM candidates c
WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = c.id AND b.status IN ('in_progress', 'cancelling'))
LIMIT 100;

-- name: DaemonListen :exec
LISTEN volley_work;

-- name: DaemonListenAbort :exec
LISTEN volley_abort;

-- name: BatchResultsRemove :execrows
-- Removes the requests, and so the results, of up to 100 ended batches whose output and error
-- files are both gone (deleted, expired, or never created); returns how many requests went.
WITH gone AS (
    SELECT b.id FROM batches b
    WHERE b.results_removed_at IS NULL AND b.status IN ('completed', 'failed', 'expired', 'cancelled')
      AND NOT EXISTS (SELECT 1 FROM files f
                      WHERE f.id IN (b.output_file_id, b.error_file_id)
                        AND f.deleted_at IS NULL AND (f.expires_at IS NULL OR f.expires_at > now()))
    LIMIT 100
    FOR UPDATE OF b SKIP LOCKED
), marked AS (
    UPDATE batches SET results_removed_at = now()
    FROM gone WHERE batches.id = gone.id
    RETURNING batches.id
)
DELETE FROM requests r USING marked WHERE r.batch_id = marked.id;

-- name: ResponsesRemoveDeleted :execrows
-- Removes up to 500 deleted responses for good, with their requests, once nothing of them runs.
WITH gone AS (
    DELETE FROM responses r
    WHERE r.id IN (SELECT d.id FROM responses d WHERE d.deleted_at IS NOT NULL ORDER BY d.deleted_at LIMIT 500)
      AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.id = r.request_id AND q.state IN ('pending', 'running'))
    RETURNING r.request_id
)
DELETE FROM requests q USING gone WHERE q.id = gone.request_id;

-- name: BatchesDeletedRemove :execrows
-- Removes up to 100 deleted batches that have ended, for good: their output and error files are
-- marked deleted (those a finalize made after the delete already are), then their requests, and so
-- every result, and the batch rows themselves go. Returns how many requests went.
WITH gone AS (
    SELECT b.id FROM batches b
    WHERE b.deleted_at IS NOT NULL AND b.status NOT IN ('in_progress', 'cancelling')
    ORDER BY b.deleted_at
    LIMIT 100
    FOR UPDATE OF b SKIP LOCKED
), files_gone AS (
    UPDATE files SET deleted_at = now()
    FROM gone WHERE files.batch_id = gone.id AND files.deleted_at IS NULL
), batches_gone AS (
    DELETE FROM batches USING gone WHERE batches.id = gone.id
)
DELETE FROM requests r USING gone WHERE r.batch_id = gone.id;

-- name: DaemonsList :many
-- Every replica, newest first, with its requests in flight and whether its lease has lapsed.
SELECT d.id, d.host, d.pid, d.started_at, d.heartbeat_at, d.stopped_at, d.completed, d.failed,
       (d.declared_dead OR (d.stopped_at IS NULL AND d.heartbeat_at < now() - make_interval(secs => @lease_seconds::float8)))::bool AS dead,
       (SELECT count(*) FROM requests r WHERE r.daemon_id = d.id AND r.state = 'running')::bigint AS in_flight
FROM daemons d
ORDER BY d.id DESC
LIMIT 1000;
