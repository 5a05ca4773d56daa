-- name: MetricsQueue :many
-- The queue per model for the metrics: pending (split by time to deadline) and running, and when the
-- oldest pending request's batch or response was created. Read through the pending and running
-- indexes, never the terminal rows.
WITH pending AS (
    SELECT model,
           count(*)                                                            AS pending,
           count(*) FILTER (WHERE deadline <= now())                           AS overdue,
           count(*) FILTER (WHERE deadline > now()
                              AND deadline <= now() + interval '1 hour')       AS within_1h,
           count(*) FILTER (WHERE deadline > now() + interval '1 hour'
                              AND deadline <= now() + interval '24 hours')     AS within_24h,
           min(id)                                                             AS oldest_id
    FROM requests
    WHERE state = 'pending'
    GROUP BY model
), running AS (
    SELECT model, count(*) AS running
    FROM requests
    WHERE state = 'running'
    GROUP BY model
)
SELECT coalesce(p.model, r.model)::text                AS model,
       coalesce(p.pending, 0)::bigint                  AS pending,
       coalesce(p.overdue, 0)::bigint                  AS overdue,
       coalesce(p.within_1h, 0)::bigint                AS within_1h,
       coalesce(p.within_24h, 0)::bigint               AS within_24h,
       coalesce(r.running, 0)::bigint                  AS running,
       -- Unix seconds; 0 when nothing is pending.
       coalesce(extract(epoch FROM (
           SELECT coalesce(b.created_at, s.created_at)
             FROM requests q
             LEFT JOIN batches b ON b.id = q.batch_id
             LEFT JOIN responses s ON s.id = q.response_id
            WHERE q.id = p.oldest_id)), 0)::float8      AS oldest_pending_unix
FROM pending p
FULL JOIN running r ON r.model = p.model
ORDER BY 1;
