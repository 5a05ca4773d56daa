-- name: RequestsCreateFromFile :execrows
INSERT INTO requests (batch_id, line, owner, model, url, custom_id, file_id, deadline, background)
SELECT @batch_id::text, fl.line, @owner::text, fl.model, fl.url, fl.custom_id, fl.file_id, @deadline::timestamptz, @background::bool
FROM file_lines fl
WHERE fl.file_id = @file_id::text AND fl.custom_id IS NOT NULL;

-- name: SetGenericPlans :exec
-- Until the transaction ends, prepared statements run with their generic plans.
SET LOCAL plan_cache_mode = force_generic_plan;

-- name: RequestClaimLockModels :many
-- Takes, for this transaction, the claim lock of every model with pending requests that no other
-- claim holds, and returns those models. Claims of one model are serialised by its lock, so that
-- the running counts a claim reads cannot be raced past the model's limit; claims of different
-- models, from different replicas, run side by side. The models in @waiting are locked too, with
-- or without pending requests: calls of theirs wait at this replica's gate for an allowance, which
-- only a claim holding the lock may read.
WITH RECURSIVE m AS (
    (SELECT q.model FROM queues q WHERE q.pending > 0 ORDER BY q.model LIMIT 1)
    UNION ALL
    SELECT (SELECT q.model FROM queues q WHERE q.pending > 0 AND q.model > m.model ORDER BY q.model LIMIT 1)
    FROM m WHERE m.model IS NOT NULL
), cand AS (
    SELECT m.model FROM m WHERE m.model IS NOT NULL
    UNION
    SELECT unnest(@waiting::text[])
)
SELECT cand.model::text AS model FROM cand
WHERE pg_try_advisory_xact_lock(726211853, hashtext(cand.model));

-- name: RequestClaim :many
-- Claims up to @max_claim pending requests of the @locked models for @daemon_id, within each
-- model's free global capacity: its limit, plus what @ahead gives the model in @ahead_models (at
-- most the limit again), minus the requests running anywhere. What is claimed past the limit waits in the replica, ready to start the
-- moment one of its calls returns: it starts calls only within its allowance
-- (RequestClaimAllowance), so the upstream never sees more than the limit. Within a model, free
-- slots go to the owners with the fewest requests running (water-filling), owners at the same
-- level taking turns, and each owner's earliest deadlines first. It may take fewer than the free
-- slots allow when an owner has fewer ready than its share: claiming again completes the
-- water-filling. Requests of the background tier are taken only while no other request of their
-- model is pending, and only while the model's background ones running stay within
-- @background_share of its limit.
WITH arg AS (
    SELECT @max_claim::int AS max_claim, @daemon_id::bigint AS me,
           @ramp_fraction::float8 AS ramp_fraction, make_interval(secs => @ramp_horizon_seconds::float8) AS ramp_horizon,
           @background_share::float8 AS background_share
), lk AS (
    SELECT unnest(@locked::text[])::text AS model
), cfg AS (
    SELECT lk.model, coalesce((@limits::int[])[array_position(@models::text[], lk.model)], @default_limit::int) AS configured
    FROM lk
), avail AS (
    -- A model's availability is its latest event (none: live), read once per model rather than
    -- once per owner or request taken.
    SELECT lk.model, (SELECT e.state FROM model_availability_events e WHERE e.model = lk.model ORDER BY e.id DESC LIMIT 1) AS state
    FROM lk
), run AS (
    -- The locked models' running requests per owner, whichever replica runs them. They are
    -- bounded by the limits (and what is claimed ahead), so they are counted here rather than
    -- kept in counters that every result's write would have to move.
    SELECT r.model, r.owner, count(*)::int AS running, count(*) FILTER (WHERE r.background)::int AS running_background
    FROM requests r
    WHERE r.state = 'running' AND r.model = ANY (@locked::text[])
    GROUP BY r.model, r.owner
), room AS (
    -- A model whose limit adapts runs at its effective limit, never above the configured one.
    SELECT lk.model,
           least(cfg.configured, coalesce((SELECT ml.effective FROM model_limits ml WHERE ml.model = lk.model), cfg.configured)) AS lim,
           coalesce((SELECT sum(run.running) FROM run WHERE run.model = lk.model), 0)::int AS running,
           coalesce((SELECT sum(run.running_background) FROM run WHERE run.model = lk.model), 0)::int AS running_background,
           -- No request of the model but background ones is pending: the background tier's turn.
           -- The probe walks the model's entries in queues_ready, in the index's order, and stops
           -- at the first pair with other work; as an EXISTS the planner read the whole table for
           -- it, every pair of every model, once per model.
           (SELECT q.pending > q.pending_background FROM queues q
            WHERE q.model = lk.model AND q.pending > 0 AND q.pending > q.pending_background
            ORDER BY q.model, q.served_at LIMIT 1) IS NULL AS background,
           -- Another replica holds requests of the model (as RequestClaimAllowance found, in
           -- this transaction): none is claimed ahead, so that what one holds ahead never starves
           -- the others' allowances.
           (lk.model = ANY (@shared::text[])) AS shared,
           coalesce((@ahead::int[])[array_position(@ahead_models::text[], lk.model)], 0) AS ahead
    FROM lk JOIN cfg ON cfg.model = lk.model
), mdl AS (
    -- Models take turns: each may take its even part of the claim.
    SELECT y.model, y.background, least(y.free, (y.n + arg.max_claim - 1) / y.n)::int AS want
    FROM (
        SELECT x.model, x.background, x.free, count(*) OVER () AS n
        FROM (
            SELECT room.model, room.background,
                   least(room.lim - room.running + CASE WHEN room.shared THEN 0 ELSE least(room.lim, room.ahead) END,
                         -- Background requests hold at most their share of the limit (at least one
                         -- slot), counting those claimed ahead.
                         CASE WHEN room.background
                              THEN greatest(1, floor(room.lim * arg.background_share))::int - room.running_background END) AS free
            FROM room CROSS JOIN arg
        ) x
        WHERE x.free > 0
    ) y CROSS JOIN arg
), pairs AS (
    -- The owners with the fewest running are the only ones water-filling can give these slots
    -- to; a few more are looked at in case some have nothing ready (in backoff, or past their
    -- deadline and not yet expired). They are the owners with none running, longest unserved
    -- first (queues_ready, in its order, passing over the few owners that run some), then those
    -- that run some, fewest first.
    SELECT mdl.model, mdl.want, mdl.background, p.owner, p.running
    FROM mdl CROSS JOIN LATERAL (
        SELECT x.owner, x.running FROM (
            (SELECT q.owner, 0 AS running, q.served_at FROM queues q
             WHERE q.model = mdl.model AND q.pending > 0 AND (mdl.background OR q.pending > q.pending_background)
               -- Not correlated, so that it is one hash for the statement rather than a scan of
               -- the running owners for every pair passed.
               AND (q.model, q.owner) NOT IN (SELECT run.model, run.owner FROM run)
             ORDER BY q.served_at
             LIMIT mdl.want + 16)
            UNION ALL
            -- Each one's pair looked up by its key: as a join, the generic plan read the model's
            -- every pair for each owner. No pair means nothing of the tier is pending (a pair's
            -- background requests are among its pending ones).
            SELECT b.owner, b.running, b.served_at FROM (
                SELECT run.owner, run.running,
                       (SELECT q.served_at FROM queues q
                        WHERE q.model = run.model AND q.owner = run.owner
                          AND CASE WHEN mdl.background THEN q.pending ELSE q.pending - q.pending_background END > 0) AS served_at
                FROM run WHERE run.model = mdl.model
            ) b
            WHERE b.served_at IS NOT NULL
        ) x
        ORDER BY x.running, x.served_at
        LIMIT mdl.want + 16
    ) p
), share AS (
    -- Water-filling never lifts an owner above ceil((free slots + running) / owners) when every
    -- owner has enough ready, so no owner needs candidates past that level.
    SELECT pairs.model, count(*)::int AS owners, sum(pairs.running)::int AS running FROM pairs GROUP BY pairs.model
), cand AS (
    SELECT c.id, p.model, c.deadline,
           p.running + row_number() OVER (PARTITION BY p.model, p.owner ORDER BY c.deadline, c.id) AS level
    FROM pairs p
    JOIN share s ON s.model = p.model
    JOIN avail av ON av.model = p.model
    CROSS JOIN arg
    CROSS JOIN LATERAL (
        (SELECT q.id, q.deadline FROM requests q
         WHERE q.state = 'pending' AND q.model = p.model AND q.owner = p.owner AND q.background = p.background
           AND q.not_before <= now() AND q.deadline > now()
         ORDER BY q.deadline, q.id
         LIMIT least(p.want,
                     greatest(0, (p.want + s.running + s.owners - 1) / s.owners - p.running),
                     -- A model that is not live takes nothing, except that a `coming` one lets one
                     -- request per owner through per trickle interval.
                     CASE WHEN av.state IS NULL OR av.state = 'live' THEN p.want
                          WHEN av.state = 'coming' AND @trickle_seconds::float8 > 0 AND NOT EXISTS (
                              SELECT 1 FROM model_trickle t WHERE t.model = p.model AND t.owner = p.owner
                                AND t.at > now() - make_interval(secs => @trickle_seconds::float8))
                          THEN 1 ELSE 0 END))
        UNION ALL
        -- A model that is not live but has a fallback also takes the requests inside their
        -- deadline ramp: the last ramp_fraction of their window (none is further from its
        -- deadline than ramp_horizon, which bounds the scan).
        (SELECT q.id, q.deadline FROM requests q
         WHERE av.state IS NOT NULL AND av.state <> 'live'
           AND (p.model = ANY (@fallback_models::text[]) OR (@fallback_default::bool AND NOT p.model = ANY (@models::text[])))
           AND q.state = 'pending' AND q.model = p.model AND q.owner = p.owner AND q.background = p.background
           AND q.not_before <= now() AND q.deadline > now() AND q.deadline <= now() + arg.ramp_horizon
           AND q.deadline - (q.deadline - q.created_at) * arg.ramp_fraction <= now()
         ORDER BY q.deadline, q.id
         LIMIT least(p.want, greatest(0, (p.want + s.running + s.owners - 1) / s.owners - p.running)))
    ) c
), pick AS (
    SELECT x.id FROM (
        SELECT cand.id, cand.level, cand.deadline, mdl.want,
               row_number() OVER (PARTITION BY cand.model ORDER BY cand.level, cand.deadline, cand.id) AS k
        FROM cand JOIN mdl ON mdl.model = cand.model
    ) x
    WHERE x.k <= x.want
    ORDER BY x.k, x.level, x.deadline
    LIMIT @max_claim::int
), locked AS (
    -- Looked up by primary key from an array, so that the plan never depends on how many rows the
    -- statistics expect the steps above to produce.
    -- What its model meant to take comes from arrays built once: a lookup in mdl for each request
    -- read every locked model for each, 20,000 rows for a claim of 1,000 over 20 models.
    SELECT q.id, q.file_id, q.line, q.model, q.owner, (w.wants)[array_position(w.models, q.model)] AS want
    FROM requests q
    CROSS JOIN (SELECT array_agg(mdl.model) AS models, array_agg(mdl.want) AS wants FROM mdl) w
    WHERE q.id = ANY (ARRAY(SELECT pick.id FROM pick)) AND q.state = 'pending'
    FOR UPDATE OF q SKIP LOCKED
), ramps AS (
    -- The locked models that send requests in their deadline ramp to their fallback: not live,
    -- and with one. Usually none; an array, read once, for the same reason as above.
    SELECT coalesce(array_agg(av.model), '{}') AS models FROM avail av
    WHERE coalesce(av.state, 'live') <> 'live'
      AND (av.model = ANY (@fallback_models::text[]) OR (@fallback_default::bool AND NOT av.model = ANY (@models::text[])))
), trickled AS (
    -- Requests of a `coming` model went through the trickle: the next one of that owner waits an
    -- interval. Claims of a model are serialised, so a later claim sees this.
    INSERT INTO model_trickle (model, owner, at)
    SELECT DISTINCT l.model, l.owner, now() FROM locked l
    WHERE l.model IN (SELECT av.model FROM avail av WHERE av.state = 'coming')
      AND EXISTS (SELECT 1 FROM daemons d WHERE d.id = @daemon_id::bigint AND d.stopped_at IS NULL
                  AND d.heartbeat_at > now() - make_interval(secs => @fresh_seconds::float8))
    ON CONFLICT (model, owner) DO UPDATE SET at = excluded.at
)
UPDATE requests r SET state = 'running', daemon_id = @daemon_id::bigint, attempt = r.attempt + 1, claimed_at = now()
FROM locked
LEFT JOIN file_lines fl ON fl.file_id = locked.file_id AND fl.line = locked.line
WHERE r.id = locked.id
  -- Only a replica whose lease is fresh may claim: one that stalled, and may have been declared
  -- dead, must heartbeat first, or its claims could overlap the rescue of its earlier ones.
  AND EXISTS (SELECT 1 FROM daemons d WHERE d.id = @daemon_id::bigint AND d.stopped_at IS NULL
              AND d.heartbeat_at > now() - make_interval(secs => @fresh_seconds::float8))
RETURNING r.id, r.batch_id, r.line, r.owner, r.model, r.url, r.custom_id, r.response_id, r.attempt, r.failures, r.deadline,
          coalesce(r.body, substring(fl.data FROM fl.body_start + 1 FOR fl.body_end - fl.body_start))::bytea AS body,
          -- What the claim meant to take of the model: taking less means some owner had less ready
          -- than its share, which another round can hand to the others.
          locked.want::int AS model_want,
          -- Taken in its deadline ramp while its model is not live: it goes to the fallback.
          (r.model = ANY ((SELECT ramps.models FROM ramps)::text[]) AND r.deadline - (r.deadline - r.created_at) * @ramp_fraction::float8 <= now())::bool AS ramped;

-- name: RequestClaimAllowance :many
-- How many calls of each @locked model this replica may have in flight: the model's limit minus
-- the requests the other replicas hold. It is read under the models' claim locks, so no other
-- replica can add to what it counts until this transaction ends.
-- The probes first look for any such request, which is cheap on the (model, daemon_id) index of
-- running requests; only when one exists are they counted.
WITH arg AS (
    SELECT @daemon_id::bigint AS me
), l AS (
    SELECT unnest(@locked::text[])::text AS model
), c AS (
    SELECT l.model, coalesce((@limits::int[])[array_position(@models::text[], l.model)], @default_limit::int) AS configured
    FROM l
), o AS (
    SELECT c.model, least(c.configured, coalesce(ml.effective, c.configured)) AS lim, coalesce(ml.epoch, 0) AS epoch,
           (EXISTS (SELECT 1 FROM requests r WHERE r.state = 'running' AND r.model = c.model AND r.daemon_id < arg.me)
            OR EXISTS (SELECT 1 FROM requests r WHERE r.state = 'running' AND r.model = c.model AND r.daemon_id > arg.me)
            OR EXISTS (SELECT 1 FROM requests r WHERE r.state = 'running' AND r.model = c.model AND r.daemon_id IS NULL)) AS shared
    FROM c LEFT JOIN model_limits ml ON ml.model = c.model CROSS JOIN arg
)
SELECT o.model::text AS model, o.lim::int AS effective_limit, o.epoch::bigint AS epoch, o.shared::bool AS shared,
       (o.lim - CASE WHEN o.shared THEN (SELECT count(*) FROM requests r CROSS JOIN arg
                                         WHERE r.state = 'running' AND r.model = o.model AND r.daemon_id IS DISTINCT FROM arg.me)
                     ELSE 0 END)::int AS allowance
FROM o;

-- name: RequestsRecord :many
-- Records many results at once, fenced on (running, this daemon, this attempt), and moves the
-- batches' counters in the same statement. state 'pending' is a retry: the request waits until
-- not_before. A request whose cancel was asked while it ran ends cancelled whatever its call
-- returned, so that a cancel answered "cancelled" holds even when the abort came too late.
-- Returns the batches it touched and whether each is now settled.
WITH res AS (
    SELECT unnest(@ids::bigint[]) AS id, unnest(@attempts::int[]) AS attempt, unnest(@states::text[]) AS state,
           unnest(@results::bytea[]) AS result, unnest(@failures::int[]) AS failures,
           unnest(@not_before::timestamptz[]) AS not_before, unnest(@input_tokens::bigint[]) AS input_tokens,
           unnest(@cached_tokens::bigint[]) AS cached_tokens, unnest(@output_tokens::bigint[]) AS output_tokens,
           unnest(@reasoning_tokens::bigint[]) AS reasoning_tokens, unnest(@total_tokens::bigint[]) AS total_tokens,
           unnest(@served_upstream::text[]) AS served_upstream, unnest(@served_model::text[]) AS served_model,
           unnest(@served_fallback::bool[]) AS served_fallback
), upd AS (
    UPDATE requests r SET
        state = CASE WHEN r.cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE res.state END,
        result = CASE
            WHEN r.cancel_requested_at IS NOT NULL AND res.state <> 'cancelled' THEN request_cancelled_line(r.batch_id, r.line, r.custom_id)
            WHEN res.state = 'pending' THEN NULL
            ELSE res.result END,
        failures = res.failures,
        not_before = res.not_before,
        daemon_id = NULL,
        finished_at = CASE WHEN res.state = 'pending' AND r.cancel_requested_at IS NULL THEN NULL ELSE now() END,
        served_upstream = CASE WHEN res.state = 'pending' OR r.cancel_requested_at IS NOT NULL THEN NULL ELSE nullif(res.served_upstream, '') END,
        served_model = CASE WHEN res.state = 'pending' OR r.cancel_requested_at IS NOT NULL THEN NULL ELSE nullif(res.served_model, '') END,
        served_fallback = res.state <> 'pending' AND r.cancel_requested_at IS NULL AND coalesce(res.served_fallback, false)
    FROM res
    WHERE r.id = res.id AND r.state = 'running' AND r.daemon_id = @daemon_id::bigint AND r.attempt = res.attempt
    -- r is the row as updated: its state and result are what was written.
    RETURNING r.batch_id, r.state, length(r.result) AS bytes,
              CASE WHEN r.state = res.state THEN res.input_tokens ELSE 0 END AS input_tokens,
              CASE WHEN r.state = res.state THEN res.cached_tokens ELSE 0 END AS cached_tokens,
              CASE WHEN r.state = res.state THEN res.output_tokens ELSE 0 END AS output_tokens,
              CASE WHEN r.state = res.state THEN res.reasoning_tokens ELSE 0 END AS reasoning_tokens,
              CASE WHEN r.state = res.state THEN res.total_tokens ELSE 0 END AS total_tokens
), agg AS (
    SELECT upd.batch_id,
           count(*) FILTER (WHERE upd.state = 'completed')::int AS completed,
           count(*) FILTER (WHERE upd.state NOT IN ('completed', 'pending'))::int AS failed,
           coalesce(sum(upd.bytes) FILTER (WHERE upd.state = 'completed'), 0)::bigint AS output_bytes,
           coalesce(sum(upd.bytes) FILTER (WHERE upd.state NOT IN ('completed', 'pending')), 0)::bigint AS error_bytes,
           coalesce(sum(upd.input_tokens), 0)::bigint AS input_tokens,
           coalesce(sum(upd.cached_tokens), 0)::bigint AS cached_tokens,
           coalesce(sum(upd.output_tokens), 0)::bigint AS output_tokens,
           coalesce(sum(upd.reasoning_tokens), 0)::bigint AS reasoning_tokens,
           coalesce(sum(upd.total_tokens), 0)::bigint AS total_tokens
    FROM upd WHERE upd.batch_id IS NOT NULL
    GROUP BY upd.batch_id
)
UPDATE batches b SET
    completed = b.completed + agg.completed,
    failed = b.failed + agg.failed,
    output_bytes = b.output_bytes + agg.output_bytes,
    error_bytes = b.error_bytes + agg.error_bytes,
    input_tokens = b.input_tokens + agg.input_tokens,
    cached_tokens = b.cached_tokens + agg.cached_tokens,
    output_tokens = b.output_tokens + agg.output_tokens,
    reasoning_tokens = b.reasoning_tokens + agg.reasoning_tokens,
    total_tokens = b.total_tokens + agg.total_tokens
FROM agg
WHERE b.id = agg.batch_id
RETURNING b.id, b.completed + b.failed >= b.total AS settled;

-- name: RequestResultsChunk :many
-- A batch's output (completed) or error lines in input order, a chunk at a time.
SELECT line, result FROM requests
WHERE batch_id = @batch_id AND line > @after_line
  AND (CASE WHEN @errors::bool THEN state IN ('failed', 'cancelled', 'expired') ELSE state = 'completed' END)
ORDER BY line
LIMIT @max_rows;

-- name: RequestsBrowse :many
-- A page of a batch's requests in input order after @after_line, with their results and, when
-- @with_body, the body as sent upstream. @search is a LIKE pattern, escaped by the caller.
SELECT r.line::int AS line, r.custom_id::text AS custom_id, r.model, r.state, r.attempt, r.claimed_at, r.finished_at, r.result,
       r.served_upstream, r.served_model, r.served_fallback,
       (CASE WHEN @with_body::bool THEN coalesce(r.body, substring(fl.data FROM fl.body_start + 1 FOR fl.body_end - fl.body_start)) END)::bytea AS body
FROM requests r
LEFT JOIN file_lines fl ON @with_body::bool AND fl.file_id = r.file_id AND fl.line = r.line
WHERE r.batch_id = @batch_id::text AND r.line > @after_line::int
  AND (cardinality(@states::text[]) = 0 OR r.state = ANY (@states::text[]))
  AND (sqlc.narg(model)::text IS NULL OR r.model = sqlc.narg(model)::text)
  AND (sqlc.narg(search)::text IS NULL OR r.custom_id ILIKE sqlc.narg(search)::text)
ORDER BY r.line
LIMIT @max_rows;

-- name: RequestGetByCustomID :one
-- One request of a batch with its body as sent upstream.
SELECT r.line::int AS line, r.custom_id::text AS custom_id, r.model, r.state, r.attempt, r.claimed_at, r.finished_at, r.result,
       r.served_upstream, r.served_model, r.served_fallback,
       coalesce(r.body, substring(fl.data FROM fl.body_start + 1 FOR fl.body_end - fl.body_start))::bytea AS body
FROM requests r
LEFT JOIN file_lines fl ON fl.file_id = r.file_id AND fl.line = r.line
WHERE r.batch_id = @batch_id::text AND r.custom_id = @custom_id::text;

-- name: RequestLineByCustomID :one
SELECT line::int AS line FROM requests WHERE batch_id = @batch_id::text AND custom_id = @custom_id::text;

-- name: RequestResultsSelection :one
-- The extent of a selection of a batch's output (or error) lines, as FileLinesSelection.
WITH sel AS (
    SELECT line, length(result) AS n FROM requests
    WHERE batch_id = @batch_id::text
      AND (CASE WHEN @errors::bool THEN state IN ('failed', 'cancelled', 'expired') ELSE state = 'completed' END)
      AND (sqlc.narg(search)::text IS NULL OR custom_id ILIKE sqlc.narg(search)::text)
    ORDER BY line OFFSET @skip::bigint LIMIT @take::bigint
)
SELECT count(*)::bigint AS lines, coalesce(sum(n), 0)::bigint AS bytes, coalesce(min(line), 0)::int AS first_line, coalesce(max(line), 0)::int AS last_line FROM sel;

-- name: RequestResultsSelectedChunk :many
SELECT line::int AS line, result FROM requests
WHERE batch_id = @batch_id::text AND line > @after_line::int AND line <= @last_line::int
  AND (CASE WHEN @errors::bool THEN state IN ('failed', 'cancelled', 'expired') ELSE state = 'completed' END)
  AND (sqlc.narg(search)::text IS NULL OR custom_id ILIKE sqlc.narg(search)::text)
ORDER BY line
LIMIT @max_rows;
