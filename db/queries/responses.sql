-- name: ResponseRequestInsert :one
INSERT INTO requests (owner, model, url, body, deadline, response_id, background)
VALUES (@owner, @model, '/v1/responses', @body, @deadline, @response_id, @background)
RETURNING id;

-- name: ResponseInsert :exec
INSERT INTO responses (id, owner, model, mode, request_id, params, object, created_at)
VALUES (@id, @owner, @model, @mode, sqlc.narg(request_id), @params, @object, @created_at);

-- name: ResponseGet :one
-- A stored response with the state of its queued request, if it has one.
SELECT r.id, r.owner, r.model, r.mode, r.params, r.object, r.created_at, r.cancelled_at,
       q.state AS request_state, q.result AS request_result, q.finished_at AS request_finished_at
FROM responses r
LEFT JOIN requests q ON q.id = r.request_id
WHERE r.id = @id AND r.owner = @owner AND r.deleted_at IS NULL;

-- name: ResponseCancelPending :execrows
-- Ends a background response that has not started yet.
UPDATE requests SET state = 'cancelled', finished_at = now(), daemon_id = NULL,
    result = convert_to(json_build_object('code', 'cancelled', 'message', 'The response was cancelled.')::text, 'UTF8')
WHERE response_id = @response_id AND state = 'pending';

-- name: ResponseEndRunning :exec
-- Moves the deadline of a cancelled response's running request to now, so that it is not claimed
-- again if it comes back to the queue (ResponsesExpire ends it instead).
UPDATE requests SET deadline = least(deadline, now())
WHERE id = (SELECT request_id FROM responses WHERE responses.id = @response_id) AND state = 'running';

-- name: ResponseMarkCancelled :exec
UPDATE responses SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = @id;

-- name: ResponseMarkDeleted :execrows
UPDATE responses SET deleted_at = now() WHERE id = @id AND owner = @owner AND deleted_at IS NULL;

-- name: ResponsesNotifyDone :exec
SELECT pg_notify('volley_response', id) FROM unnest(@ids::text[]) AS id;

-- name: ResponseNotifyAbort :exec
SELECT pg_notify('volley_abort', 'cancelled ' || @response_id::text);

-- name: ResponsesListen :exec
LISTEN volley_response;

-- name: QueueDepth :many
-- Pending and running requests per model: the pending ones from the per-(model, owner) counters
-- that every change of a request's state keeps exact, one row per pair rather than one per
-- request; the running ones, bounded by the models' limits, counted where they are.
WITH p AS (
    SELECT q.model, sum(q.pending) AS pending, coalesce(sum(q.pending) FILTER (WHERE q.owner = @owner), 0) AS own_pending,
           sum(q.pending_background) AS background_pending
    FROM queues q WHERE q.pending > 0
    GROUP BY q.model
), r AS (
    SELECT r.model, count(*) AS running, count(*) FILTER (WHERE r.owner = @owner) AS own_running,
           count(*) FILTER (WHERE r.background) AS background_running
    FROM requests r WHERE r.state = 'running'
    GROUP BY r.model
)
SELECT coalesce(p.model, r.model)::text AS model,
       coalesce(p.pending, 0)::bigint AS pending,
       coalesce(r.running, 0)::bigint AS running,
       coalesce(p.own_pending, 0)::bigint AS own_pending,
       coalesce(r.own_running, 0)::bigint AS own_running,
       coalesce(p.background_pending, 0)::bigint AS background_pending,
       coalesce(r.background_running, 0)::bigint AS background_running
FROM p FULL JOIN r ON r.model = p.model
ORDER BY 1;

-- name: ResponsesExpire :many
-- Queued responses whose window passed without a slot: they fail.
UPDATE requests SET state = 'expired', finished_at = now(), daemon_id = NULL,
    result = convert_to(json_build_object('code', 'server_error',
        'message', 'The response could not be completed within its time limit.')::text, 'UTF8')
WHERE response_id IS NOT NULL AND state = 'pending' AND deadline <= now()
RETURNING response_id::text;

-- name: ResponseList :many
-- A page of an owner's stored responses, newest first, with the state of their queued requests.
SELECT r.id, r.owner, r.model, r.mode, r.params, r.object, r.created_at, r.cancelled_at,
       q.state AS request_state, q.result AS request_result, q.finished_at AS request_finished_at
FROM responses r
LEFT JOIN requests q ON q.id = r.request_id
WHERE r.owner = @owner AND r.deleted_at IS NULL
  AND (sqlc.narg(after)::text IS NULL OR r.id < sqlc.narg(after))
  AND (sqlc.narg(background)::boolean IS NULL OR (r.mode = 'background') = sqlc.narg(background))
ORDER BY r.id DESC
LIMIT @max_rows;

-- name: QueueDeadlineWindows :many
-- Pending requests per model by time to their deadline: bucket -1 is overdue, bucket k counts
-- those due within the (k+1)-th of @bounds (seconds, ascending), len(@bounds) those due later.
-- Only @owner's unless @everyone.
SELECT q.model::text AS model,
       (CASE WHEN q.deadline <= now() THEN -1
             ELSE width_bucket(extract(epoch FROM q.deadline - now())::float8, @bounds::float8[]) END)::int AS bucket,
       count(*)::bigint AS pending
FROM requests q
WHERE q.state = 'pending' AND (@everyone::bool OR q.owner = @owner::text)
GROUP BY 1, 2
ORDER BY 1, 2;
