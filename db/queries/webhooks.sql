-- name: WebhookEndpointInsert :one
INSERT INTO webhook_endpoints (id, owner, name, url, event_types, secret, created_at, updated_at)
VALUES (@id, @owner, @name, @url, @event_types::text[], @secret, @created_at, @created_at)
RETURNING *;

-- name: WebhookEndpointCount :one
SELECT count(*) FROM webhook_endpoints WHERE owner = @owner;

-- name: WebhookEndpointGet :one
SELECT * FROM webhook_endpoints WHERE id = @id AND owner = @owner;

-- name: WebhookEndpointList :many
SELECT * FROM webhook_endpoints
WHERE owner = @owner AND (sqlc.narg(after)::text IS NULL OR id < sqlc.narg(after))
ORDER BY id DESC
LIMIT @max_rows;

-- name: WebhookEndpointUpdate :one
-- Changes what is given; updated_at moves only when something changed.
UPDATE webhook_endpoints SET
    name = coalesce(sqlc.narg(name), name),
    url = coalesce(sqlc.narg(url), url),
    event_types = coalesce(sqlc.narg(event_types)::text[], event_types),
    updated_at = CASE
        WHEN (coalesce(sqlc.narg(name), name), coalesce(sqlc.narg(url), url), coalesce(sqlc.narg(event_types)::text[], event_types))
             IS DISTINCT FROM (name, url, event_types) THEN now()
        ELSE updated_at END
WHERE id = @id AND owner = @owner
RETURNING *;

-- name: WebhookEndpointRotateSecret :one
-- A new secret; the old one keeps signing beside it for 24 hours when asked, else it stops at once.
UPDATE webhook_endpoints SET
    previous_secret = CASE WHEN @keep_old::bool THEN secret END,
    previous_secret_until = CASE WHEN @keep_old::bool THEN now() + interval '24 hours' END,
    secret = @secret,
    updated_at = now()
WHERE id = @id AND owner = @owner
RETURNING *;

-- name: WebhookEndpointDelete :one
-- Removes an endpoint with its deliveries, pending ones included.
DELETE FROM webhook_endpoints WHERE id = @id AND owner = @owner
RETURNING id;

-- name: WebhookDeliveryClaim :many
-- Takes due deliveries for one attempt each. The claim leases them by moving next_attempt_at
-- lease_seconds ahead, past the delivery timeout, so no other replica takes them meanwhile; a
-- replica that dies leaves them to be claimed again once that time passes.
WITH due AS (
    SELECT d.endpoint_id, d.event_id FROM webhook_deliveries d
    WHERE d.state = 'pending' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET
        attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => @lease_seconds::float8),
        last_attempt_at = now()
    FROM due
    WHERE d.endpoint_id = due.endpoint_id AND d.event_id = due.event_id
    RETURNING d.endpoint_id, d.event_id, d.attempts
)
SELECT c.endpoint_id, c.event_id, c.attempts::int AS attempt, e.url, e.secret,
       coalesce(CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END, '')::text AS previous_secret,
       ev.type, ev.data, ev.created_at AS event_created_at
FROM claimed c
JOIN webhook_endpoints e ON e.id = c.endpoint_id
JOIN webhook_events ev ON ev.id = c.event_id;

-- name: WebhookDeliveryRecord :one
-- Records the outcome of one attempt, fenced on the attempt number so that a claim whose lease ran
-- out can never overwrite a later one. A failure is retried after retry_seconds unless that is past
-- the retry window, counted from the event, in which case the delivery has failed for good.
UPDATE webhook_deliveries SET
    state = CASE
        WHEN @succeeded::bool THEN 'succeeded'
        WHEN created_at + make_interval(secs => @retry_for_seconds::float8)
             < now() + make_interval(secs => @retry_seconds::float8) THEN 'failed'
        ELSE 'pending' END,
    next_attempt_at = CASE WHEN @succeeded::bool THEN now()
                           ELSE now() + make_interval(secs => @retry_seconds::float8) END,
    last_status = sqlc.narg(status),
    last_error = sqlc.narg(error),
    delivered_at = CASE WHEN @succeeded::bool THEN now() END
WHERE endpoint_id = @endpoint_id AND event_id = @event_id AND attempts = @attempt AND state = 'pending'
RETURNING state;

-- name: WebhookDeliveryList :many
-- An endpoint's deliveries, newest event first.
SELECT d.*, ev.type AS event_type
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.endpoint_id = @endpoint_id AND (sqlc.narg(after)::text IS NULL OR d.event_id < sqlc.narg(after))
ORDER BY d.event_id DESC
LIMIT @max_rows;

-- name: WebhookEventsPrune :execrows
-- Events older than the retention with nothing left to deliver, with their deliveries.
DELETE FROM webhook_events ev
WHERE ev.created_at < now() - make_interval(secs => @keep_seconds::float8)
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id AND d.state = 'pending');

-- name: WebhookEndpointLockOwner :exec
-- Serialises one owner's endpoint creates until the transaction ends, so that the limit holds.
SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || @owner::text, 0));
