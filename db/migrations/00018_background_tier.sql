-- +goose Up

-- The `background` service tier: such requests run only while no other request of their model is
-- pending, and within a share of its limit. A batch keeps the tier it was created with.
ALTER TABLE requests ADD COLUMN background boolean NOT NULL DEFAULT false;
ALTER TABLE batches ADD COLUMN service_tier text;

-- The claim reads an owner's pending requests of one tier in deadline order.
CREATE INDEX requests_pending_tier ON requests (model, owner, background, deadline, id) WHERE state = 'pending';
DROP INDEX requests_pending;

-- Of each pair's pending and running requests, how many are background ones: a model has
-- deadline work waiting while some pair's pending exceeds its pending_background.
ALTER TABLE queues ADD COLUMN pending_background integer NOT NULL DEFAULT 0,
                   ADD COLUMN running_background integer NOT NULL DEFAULT 0;

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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, served_at)
    SELECT n.model, n.owner, count(*) FILTER (WHERE n.state = 'pending'), count(*) FILTER (WHERE n.state = 'running'),
           CASE WHEN bool_or(n.state = 'running') THEN now() ELSE '-infinity' END
    FROM new_rows n WHERE n.state IN ('pending', 'running')
    GROUP BY n.model, n.owner ORDER BY n.model, n.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        served_at = greatest(q.served_at, excluded.served_at);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running, served_at)
    SELECT d.model, d.owner, sum(d.p)::int, sum(d.r)::int,
           CASE WHEN bool_or(d.started) THEN now() ELSE '-infinity' END
    FROM (
        SELECT n.model, n.owner, (n.state = 'pending')::int AS p, (n.state = 'running')::int AS r, n.state = 'running' AS started FROM new_rows n
        UNION ALL
        SELECT o.model, o.owner, -(o.state = 'pending')::int, -(o.state = 'running')::int, false FROM old_rows o
    ) d
    GROUP BY d.model, d.owner HAVING sum(d.p) <> 0 OR sum(d.r) <> 0
    ORDER BY d.model, d.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running,
        served_at = CASE WHEN excluded.running > 0 THEN greatest(q.served_at, excluded.served_at) ELSE q.served_at END;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION queues_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queues AS q (model, owner, pending, running)
    SELECT o.model, o.owner, -count(*) FILTER (WHERE o.state = 'pending'), -count(*) FILTER (WHERE o.state = 'running')
    FROM old_rows o WHERE o.state IN ('pending', 'running')
    GROUP BY o.model, o.owner ORDER BY o.model, o.owner
    ON CONFLICT (model, owner) DO UPDATE SET pending = q.pending + excluded.pending, running = q.running + excluded.running;
    RETURN NULL;
END $$;
-- +goose StatementEnd

ALTER TABLE queues DROP COLUMN running_background, DROP COLUMN pending_background;
CREATE INDEX requests_pending ON requests (model, owner, deadline, id) WHERE state = 'pending';
DROP INDEX requests_pending_tier;
ALTER TABLE batches DROP COLUMN service_tier;
ALTER TABLE requests DROP COLUMN background;
