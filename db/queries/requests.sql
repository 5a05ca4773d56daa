-- name: RequestsCreateFromFile :execrows
INSERT INTO requests (batch_id, line, owner, model, url, custom_id, file_id, deadline)
SELECT @batch_id::text, fl.line, @owner::text, fl.model, fl.url, fl.custom_id, fl.file_id, @deadline::timestamptz
FROM file_lines fl
WHERE fl.file_id = @file_id::text AND fl.custom_id IS NOT NULL;

-- name: RequestClaimLock :exec
-- Claims are serialised across replicas by this transaction-scoped lock, so that the running
-- counts a claim reads cannot be raced past a model's limit.
SELECT pg_advisory_xact_lock(7262118533);

-- name: RequestClaim :many
-- Claims up to @max_claim pending requests for @daemon_id within every model's free global
-- capacity (its limit minus requests running anywhere). Within a model, free slots go to the
-- owners with the fewest requests running (water-filling), and earlier deadlines first. It may
-- take fewer than the free slots allow when an owner has fewer pending than its share: calling it
-- again in the same transaction, until it returns nothing, completes the water-filling.
WITH RECURSIVE pairs AS (
    (SELECT q.model, q.owner FROM requests q WHERE q.state = 'pending' ORDER BY q.model, q.owner LIMIT 1)
    UNION ALL
    SELECT n.model, n.owner FROM pairs p CROSS JOIN LATERAL (
        SELECT q.model, q.owner FROM requests q
        WHERE q.state = 'pending' AND (q.model, q.owner) > (p.model, p.owner)
        ORDER BY q.model, q.owner LIMIT 1
    ) n
), run AS (
    SELECT q.model, q.owner, count(*)::int AS n FROM requests q WHERE q.state = 'running' GROUP BY q.model, q.owner
), free AS (
    SELECT m.model,
           coalesce((SELECT c.lim FROM (SELECT unnest(@models::text[]) AS model, unnest(@limits::int[]) AS lim) c WHERE c.model = m.model),
                    @default_limit::int)
           - coalesce((SELECT sum(run.n) FROM run WHERE run.model = m.model), 0)::int AS slots
    FROM (SELECT DISTINCT pairs.model FROM pairs) m
), share AS (
    -- Water-filling never lifts an owner above ceil((free slots + running) / owners) when every
    -- owner has enough pending, so no owner needs candidates past that level: with many owners
    -- each contributes a few rows instead of a model's whole free capacity. An owner with fewer
    -- pending leaves slots over; the caller claims again in the same transaction for those.
    SELECT p.model, count(*)::int AS owners, coalesce(sum(r.n), 0)::int AS running
    FROM pairs p LEFT JOIN run r ON r.model = p.model AND r.owner = p.owner
    GROUP BY p.model
), cand AS (
    SELECT c.id, c.model, c.deadline,
           coalesce(r.n, 0) + row_number() OVER (PARTITION BY c.model, c.owner ORDER BY c.deadline, c.id) AS level
    FROM pairs p
    JOIN free f ON f.model = p.model AND f.slots > 0
    JOIN share s ON s.model = p.model
    LEFT JOIN run r ON r.model = p.model AND r.owner = p.owner
    -- A model's availability is its latest event (none: live).
    LEFT JOIN LATERAL (
        SELECT e.state FROM model_availability_events e WHERE e.model = p.model ORDER BY e.id DESC LIMIT 1
    ) av ON true
    CROSS JOIN LATERAL (
        SELECT q.id, q.model, q.owner, q.deadline FROM requests q
        WHERE q.state = 'pending' AND q.model = p.model AND q.owner = p.owner
          AND q.not_before <= now() AND q.deadline > now()
        ORDER BY q.deadline, q.id
        LIMIT least(f.slots, @max_claim::int,
                    greatest(0, (f.slots + s.running + s.owners - 1) / s.owners - coalesce(r.n, 0)),
                    -- A model that is not live takes nothing, except that a `coming` one lets one
                    -- request per owner through per trickle interval.
                    CASE WHEN av.state IS NULL OR av.state = 'live' THEN @max_claim::int
                         WHEN av.state = 'coming' AND @trickle_seconds::float8 > 0 AND NOT EXISTS (
                             SELECT 1 FROM model_trickle t WHERE t.model = p.model AND t.owner = p.owner
                               AND t.at > now() - make_interval(secs => @trickle_seconds::float8))
                         THEN 1 ELSE 0 END)
    ) c
), pick AS (
    SELECT x.id FROM (
        SELECT cand.id, cand.level, cand.deadline, f.slots,
               row_number() OVER (PARTITION BY cand.model ORDER BY cand.level, cand.deadline, cand.id) AS k
        FROM cand JOIN free f ON f.model = cand.model
    ) x
    WHERE x.k <= x.slots
    -- Models take turns (each model's best first, then each one's second, …), so that a claim cut
    -- short by @max_claim shares it between models instead of handing it all to the model whose
    -- requests are due soonest; within a turn the lower level and earlier deadline go first.
    ORDER BY x.k, x.level, x.deadline
    LIMIT @max_claim::int
), locked AS (
    -- Looked up by primary key from an array, so that the plan never depends on how many rows the
    -- statistics expect the steps above to produce.
    SELECT q.id, q.file_id, q.line, q.model, q.owner FROM requests q
    WHERE q.id = ANY (ARRAY(SELECT pick.id FROM pick)) AND q.state = 'pending'
    FOR UPDATE OF q SKIP LOCKED
), trickled AS (
    -- Requests of a `coming` model went through the trickle: the next one of that owner waits an
    -- interval. Claims are serialised, so a later round or replica sees this.
    INSERT INTO model_trickle (model, owner, at)
    SELECT DISTINCT l.model, l.owner, now() FROM locked l
    WHERE (SELECT e.state FROM model_availability_events e WHERE e.model = l.model ORDER BY e.id DESC LIMIT 1) = 'coming'
      AND EXISTS (SELECT 1 FROM daemons d WHERE d.id = @daemon_id::bigint AND d.stopped_at IS NULL
                  AND d.heartbeat_at > now() - make_interval(secs => @fresh_seconds::float8))
    ON CONFLICT (model, owner) DO UPDATE SET at = excluded.at
)
UPDATE requests r SET state = 'running', daemon_id = @daemon_id::bigint, attempt = r.attempt + 1, claimed_at = now()
FROM locked LEFT JOIN file_lines fl ON fl.file_id = locked.file_id AND fl.line = locked.line
WHERE r.id = locked.id
  -- Only a replica whose lease is fresh may claim: one that stalled, and may have been declared
  -- dead, must heartbeat first, or its claims could overlap the rescue of its earlier ones.
  AND EXISTS (SELECT 1 FROM daemons d WHERE d.id = @daemon_id::bigint AND d.stopped_at IS NULL
              AND d.heartbeat_at > now() - make_interval(secs => @fresh_seconds::float8))
RETURNING r.id, r.batch_id, r.line, r.owner, r.model, r.url, r.custom_id, r.response_id, r.attempt, r.failures, r.deadline,
          coalesce(r.body, substring(fl.data FROM fl.body_start + 1 FOR fl.body_end - fl.body_start))::bytea AS body;

-- name: RequestsRecord :many
-- Records many results at once, fenced on (running, this daemon, this attempt), and moves the
-- batches' counters in the same statement. state 'pending' is a retry: the request waits until
-- not_before. Returns the batches it touched and whether each is now settled.
WITH res AS (
    SELECT unnest(@ids::bigint[]) AS id, unnest(@attempts::int[]) AS attempt, unnest(@states::text[]) AS state,
           unnest(@results::bytea[]) AS result, unnest(@failures::int[]) AS failures,
           unnest(@not_before::timestamptz[]) AS not_before, unnest(@input_tokens::bigint[]) AS input_tokens,
           unnest(@cached_tokens::bigint[]) AS cached_tokens, unnest(@output_tokens::bigint[]) AS output_tokens,
           unnest(@reasoning_tokens::bigint[]) AS reasoning_tokens, unnest(@total_tokens::bigint[]) AS total_tokens
), upd AS (
    UPDATE requests r SET
        state = res.state,
        result = CASE WHEN res.state = 'pending' THEN NULL ELSE res.result END,
        failures = res.failures,
        not_before = res.not_before,
        daemon_id = NULL,
        finished_at = CASE WHEN res.state = 'pending' THEN NULL ELSE now() END
    FROM res
    WHERE r.id = res.id AND r.state = 'running' AND r.daemon_id = @daemon_id::bigint AND r.attempt = res.attempt
    RETURNING r.batch_id, res.state, length(res.result) AS bytes, res.input_tokens, res.cached_tokens,
              res.output_tokens, res.reasoning_tokens, res.total_tokens
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
