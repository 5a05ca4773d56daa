-- name: ModelLimitCut :one
-- Cuts a model's effective limit to @decrease of itself (at least @min_limit, and from at most
-- @ceiling) for an overloaded call that started under @epoch, unless another cut came since, in
-- which case no row is returned. The cut is logged in model_limit_changes.
WITH cut AS (
    UPDATE model_limits AS ml
    SET effective = greatest(@min_limit::int, floor(least(ml.effective, @ceiling::int) * @decrease::float8)::int),
        epoch = ml.epoch + 1, cuts = ml.cuts + 1, updated_at = now()
    WHERE ml.model = @model::text AND ml.epoch = @epoch::bigint
    RETURNING ml.model, ml.effective, ml.epoch
), logged AS (
    INSERT INTO model_limit_changes (model, effective, cause) SELECT cut.model, cut.effective, 'cut' FROM cut
)
SELECT cut.effective, cut.epoch FROM cut;

-- name: ModelLimitFirstCut :one
-- The first cut of a model, which has no row yet (it was at its ceiling, epoch 0): @effective
-- is the cut limit. No row is returned when another replica's first cut came first.
WITH cut AS (
    INSERT INTO model_limits (model, effective, epoch, cuts)
    VALUES (@model::text, @effective::int, 1, 1)
    ON CONFLICT (model) DO NOTHING
    RETURNING model, effective, epoch
), logged AS (
    INSERT INTO model_limit_changes (model, effective, cause) SELECT cut.model, cut.effective, 'cut' FROM cut
)
SELECT cut.effective, cut.epoch FROM cut;

-- name: ModelLimitRaise :one
-- Raises a model's effective limit by @increase, at most @max_limit, unless a cut came since
-- @epoch. A model without a row is at its ceiling already. The raise is logged in
-- model_limit_changes.
WITH raised AS (
    UPDATE model_limits AS ml
    SET effective = least(@max_limit::int, ml.effective + @increase::int), raises = ml.raises + 1, updated_at = now()
    WHERE ml.model = @model::text AND ml.epoch = @epoch::bigint AND ml.effective < @max_limit::int
    RETURNING ml.model, ml.effective, ml.epoch
), logged AS (
    INSERT INTO model_limit_changes (model, effective, cause) SELECT raised.model, raised.effective, 'raise' FROM raised
)
SELECT raised.effective, raised.epoch FROM raised;

-- name: ModelLimitChanges :many
-- A model's limit history since @since: the moves, oldest first, after the one in force at @since.
(SELECT c.at, c.effective, c.cause FROM model_limit_changes c
 WHERE c.model = @model::text AND c.at <= @since::timestamptz ORDER BY c.at DESC LIMIT 1)
UNION ALL
(SELECT c.at, c.effective, c.cause FROM model_limit_changes c
 WHERE c.model = @model::text AND c.at > @since::timestamptz ORDER BY c.at)
ORDER BY at;

-- name: ModelLimitChangesPrune :execrows
-- Retention of the limit history: moves older than @older_than_seconds go, but each model's latest.
DELETE FROM model_limit_changes c
WHERE c.at < now() - make_interval(secs => @older_than_seconds::float8)
  AND EXISTS (SELECT 1 FROM model_limit_changes x WHERE x.model = c.model AND x.at > c.at);

-- name: ModelLimitsList :many
SELECT model, effective, epoch, cuts, raises, updated_at FROM model_limits ORDER BY model;

-- name: ModelLimitsForget :execrows
-- Drops the rows of models whose limit does not adapt (any not in @adaptive, unless
-- @adaptive_default says that every model without a route of its own adapts, in which case only
-- those in @fixed): their limit is the configured one again.
DELETE FROM model_limits
WHERE model = ANY (@fixed::text[]) OR (NOT @adaptive_default::bool AND NOT model = ANY (@adaptive::text[]));
