-- +goose Up

-- queues keeps what is pending per (model, owner), and when the pair was last served; what is
-- running is read from the running requests themselves. A pair's running counter changed twice in
-- every request's life, at its claim and at its result's write: a write of results spread over a
-- few hundred owners updated a few hundred counter rows, all of them a write the claim of those
-- owners then waited on. The running requests of a model are bounded by its limit (and what is
-- claimed ahead), so a claim counts them, found through a running index and read from their
-- rows for owner and tier, about as cheaply as it summed their counters; a result's write now
-- moves no counter at all unless the request goes back to pending.
DROP INDEX queues_busy;
DROP INDEX queues_ready;
ALTER TABLE queues DROP COLUMN running, DROP COLUMN running_background;
CREATE INDEX queues_ready ON queues (model, served_at) WHERE pending > 0;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, pending_background, served_at)
    SELECT n.model, n.owner, count(*) FILTER (WHERE n.state = 'pending'), count(*) FILTER (WHERE n.state = 'pending' AND n.background),
           CASE WHEN bool_or(n.state = 'running') THEN now() ELSE '-infinity' END
    FROM new_rows n WHERE n.state IN ('pending', 'running')
    GROUP BY n.model, n.owner ORDER BY n.model, n.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending,
        pending_background = q.pending_background + excluded.pending_background,
        served_at = greatest(q.served_at, excluded.served_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- A pair is served when more of its requests run after the statement than before.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, pending_background, served_at)
    SELECT d.model, d.owner, sum(d.p)::int, sum(d.pb)::int,
           CASE WHEN sum(d.r) > 0 THEN now() ELSE '-infinity' END
    FROM (
        SELECT n.model, n.owner, (n.state = 'pending')::int AS p, (n.state = 'pending' AND n.background)::int AS pb,
               (n.state = 'running')::int AS r FROM new_rows n
        UNION ALL
        SELECT o.model, o.owner, -(o.state = 'pending')::int, -(o.state = 'pending' AND o.background)::int,
               -(o.state = 'running')::int FROM old_rows o
    ) d
    GROUP BY d.model, d.owner HAVING sum(d.p) <> 0 OR sum(d.pb) <> 0 OR sum(d.r) > 0
    ORDER BY d.model, d.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending,
        pending_background = q.pending_background + excluded.pending_background,
        served_at = greatest(q.served_at, excluded.served_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, pending_background)
    SELECT o.model, o.owner, -count(*), -count(*) FILTER (WHERE o.background)
    FROM old_rows o WHERE o.state = 'pending'
    GROUP BY o.model, o.owner ORDER BY o.model, o.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending,
        pending_background = q.pending_background + excluded.pending_background;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX queues_ready;
ALTER TABLE queues ADD COLUMN running integer NOT NULL DEFAULT 0,
                   ADD COLUMN running_background integer NOT NULL DEFAULT 0;
UPDATE queues q SET running = c.r, running_background = c.rb
FROM (SELECT model, owner, count(*) AS r, count(*) FILTER (WHERE background) AS rb
      FROM requests WHERE state = 'running' GROUP BY model, owner) c
WHERE q.model = c.model AND q.owner = c.owner;
CREATE INDEX queues_ready ON queues (model, running, served_at) WHERE pending > 0;
CREATE INDEX queues_busy ON queues (model) INCLUDE (running) WHERE running > 0;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, pending_background, running_background, served_at)
    SELECT n.model, n.owner, count(*) FILTER (WHERE n.state = 'pending'), count(*) FILTER (WHERE n.state = 'running'),
           count(*) FILTER (WHERE n.state = 'pending' AND n.background), count(*) FILTER (WHERE n.state = 'running' AND n.background),
           CASE WHEN bool_or(n.state = 'running') THEN now() ELSE '-infinity' END
    FROM new_rows n WHERE n.state IN ('pending', 'running')
    GROUP BY n.model, n.owner ORDER BY n.model, n.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        pending_background = q.pending_background + excluded.pending_background,
        running_background = q.running_background + excluded.running_background,
        served_at = greatest(q.served_at, excluded.served_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, pending_background, running_background, served_at)
    SELECT d.model, d.owner, sum(d.p)::int, sum(d.r)::int, sum(d.pb)::int, sum(d.rb)::int,
           CASE WHEN bool_or(d.started) THEN now() ELSE '-infinity' END
    FROM (
        SELECT n.model, n.owner, (n.state = 'pending')::int AS p, (n.state = 'running')::int AS r,
               (n.state = 'pending' AND n.background)::int AS pb, (n.state = 'running' AND n.background)::int AS rb,
               n.state = 'running' AS started FROM new_rows n
        UNION ALL
        SELECT o.model, o.owner, -(o.state = 'pending')::int, -(o.state = 'running')::int,
               -(o.state = 'pending' AND o.background)::int, -(o.state = 'running' AND o.background)::int, false FROM old_rows o
    ) d
    GROUP BY d.model, d.owner HAVING sum(d.p) <> 0 OR sum(d.r) <> 0 OR sum(d.pb) <> 0 OR sum(d.rb) <> 0
    ORDER BY d.model, d.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        pending_background = q.pending_background + excluded.pending_background,
        running_background = q.running_background + excluded.running_background,
        served_at = CASE WHEN excluded.running > 0 THEN greatest(q.served_at, excluded.served_at) ELSE q.served_at END;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, pending_background, running_background)
    SELECT o.model, o.owner, -count(*) FILTER (WHERE o.state = 'pending'), -count(*) FILTER (WHERE o.state = 'running'),
           -count(*) FILTER (WHERE o.state = 'pending' AND o.background), -count(*) FILTER (WHERE o.state = 'running' AND o.background)
    FROM old_rows o WHERE o.state IN ('pending', 'running')
    GROUP BY o.model, o.owner ORDER BY o.model, o.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        pending_background = q.pending_background + excluded.pending_background,
        running_background = q.running_background + excluded.running_background;
    RETURN NULL;
END $$;
-- +goose StatementEnd
