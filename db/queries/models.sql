-- name: ModelAvailabilityInsert :one
-- Appends an availability event; the model's state is now @state.
INSERT INTO model_availability_events (model, state, note, created_by)
VALUES (@model, @state, @note, @created_by)
RETURNING *;

-- name: ModelAvailabilityLatest :many
-- The state of every model that has events: its latest one.
SELECT DISTINCT ON (model) * FROM model_availability_events
ORDER BY model, id DESC;

-- name: ModelAvailabilityGet :one
SELECT * FROM model_availability_events WHERE model = @model ORDER BY id DESC LIMIT 1;

-- name: ModelAvailabilityPrune :execrows
-- Retention: deletes events older than @older_than_seconds except each model's latest @keep, so
-- a model's state never changes by pruning.
DELETE FROM model_availability_events e
WHERE e.created_at < now() - make_interval(secs => @older_than_seconds::float8)
  AND e.id NOT IN (
      SELECT k.id FROM (
          SELECT x.id, row_number() OVER (PARTITION BY x.model ORDER BY x.id DESC) AS rn
          FROM model_availability_events x
      ) k WHERE k.rn <= @keep::int
  );

-- name: ModelTrickleExpire :execrows
-- Trickle marks older than any interval in use only take room.
DELETE FROM model_trickle WHERE at < now() - make_interval(secs => @older_than_seconds::float8);
